//! Saving, loading and refusing bad artifacts.

use std::collections::BTreeMap;
use std::fs;

use crate::common::{examples, small_config, with_vocabularies};
use dumn::model::artifact::{self, DataInfo, MANIFEST_FILE, WEIGHTS_FILE};
use dumn::model::device::DeviceChoice;
use dumn::model::scorer::Scorer;
use dumn::model::{Ablation, Batch, Dumn, Rows};
use dumn::training::step::Trainer;
use tch::Device;

fn trained_model() -> Dumn {
    tch::manual_seed(21);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let mut trainer = Trainer::new(&model).unwrap();
    let batch = Batch::from_examples(&model.config, &examples(40, 21), Device::Cpu).unwrap();
    for _ in 0..3 {
        trainer.step(&model, &batch);
    }
    model
}

fn save(model: &Dumn, dir: &std::path::Path) -> artifact::Manifest {
    let data = DataInfo {
        fingerprint: "abc".into(),
        rows: 80,
        description: "test".into(),
    };
    let metrics = BTreeMap::from([("test_auc".to_string(), 0.7)]);
    artifact::save(model, dir, Some(data), metrics).unwrap()
}

#[test]
fn vocabularies_and_the_item_fields_table_travel_with_the_artifact() {
    tch::manual_seed(23);
    let mut exs = examples(30, 23);
    let (cfg, table) = with_vocabularies(small_config(Ablation::default()), &mut exs);
    let model = Dumn::new(cfg, Device::Cpu).unwrap();
    model.set_item_fields(&table).unwrap();
    let mut trainer = Trainer::new(&model).unwrap();
    let batch = Batch::from_examples(&model.config, &exs, Device::Cpu).unwrap();
    for _ in 0..2 {
        trainer.step(&model, &batch);
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let manifest = save(&model, &dir);
    assert!(manifest.weights.tensors.contains_key("vocabulary.item_id"));
    let text = fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
    assert!(text.contains("\"lookup\": \"vocabulary\"") && text.contains("shared_rate"));
    let loaded = artifact::load(&dir, Device::Cpu).unwrap();
    assert_eq!(loaded.model.config, model.config, "vocabularies included");
    let diff = (model.predict(&batch) - loaded.model.predict(&batch))
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(diff, 0.0);
    let fields =
        |m: &Dumn| m.var_store().variables()["embedding.item.fields_of_item"].shallow_clone();
    assert!(
        fields(&loaded.model).equal(&table),
        "the item-fields table was saved"
    );
    assert!(!fields(&model).requires_grad(), "the table does not train");
}

#[test]
fn save_load_and_score_gives_identical_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let model = trained_model();
    let manifest = save(&model, &dir);
    let loaded = artifact::load(&dir, Device::Cpu).unwrap();
    assert_eq!(loaded.manifest, manifest);
    assert_eq!(loaded.manifest.config, model.config);
    assert_eq!(loaded.manifest.metrics["test_auc"], 0.7);
    let batch = Batch::from_examples(&model.config, &examples(25, 22), Device::Cpu).unwrap();
    let diff = (model.predict(&batch) - loaded.model.predict(&batch))
        .abs()
        .max()
        .double_value(&[]);
    assert_eq!(diff, 0.0);
    // The memories are part of the artifact.
    let m0 = model.memory().unwrap().contents();
    let m1 = loaded.model.memory().unwrap().contents();
    assert_eq!((m0 - m1).abs().max().double_value(&[]), 0.0);
    // Saving again over it replaces it whole, leaving no temporary folders behind.
    save(&model, &dir);
    let names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names, vec!["model".to_string()]);
}

#[test]
fn a_truncated_weights_file_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    save(&trained_model(), &dir);
    let w = dir.join(WEIGHTS_FILE);
    let bytes = fs::read(&w).unwrap();
    fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
    let err = artifact::load(&dir, Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("truncated") && err.contains(WEIGHTS_FILE),
        "{err}"
    );
}

#[test]
fn weights_of_another_model_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    save(&trained_model(), &a);
    tch::manual_seed(3);
    let other = Dumn::new(
        small_config(Ablation::variant("DUMN-UMN").unwrap()),
        Device::Cpu,
    )
    .unwrap();
    save(&other, &b);
    // b's weights under a's manifest.
    fs::copy(b.join(WEIGHTS_FILE), a.join(WEIGHTS_FILE)).unwrap();
    let err = artifact::load(&a, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("manifest"), "{err}");
}

#[test]
fn a_manifest_that_disagrees_with_its_weights_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    save(&trained_model(), &dir);
    // Claim a bigger memory than the weights hold.
    let path = dir.join(MANIFEST_FILE);
    let mut m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    m["config"]["mem_slots"] = serde_json::json!(64);
    fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
    let err = artifact::load(&dir, Device::Cpu).unwrap_err().to_string();
    assert!(
        err.contains("memory.memory") && err.contains("shape"),
        "{err}"
    );
}

#[test]
fn a_weights_file_outside_the_artifact_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    save(&trained_model(), &dir);
    let path = dir.join(MANIFEST_FILE);
    let manifest = fs::read_to_string(&path).unwrap();
    for file in ["../other/weights.safetensors", "/etc/passwd", "..", ""] {
        let mut m: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        m["weights"]["file"] = serde_json::json!(file);
        fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        let err = format!("{:#}", artifact::load(&dir, Device::Cpu).unwrap_err());
        assert!(
            err.contains("weights.file") && err.contains("plain name"),
            "{file}: {err}"
        );
    }
}

#[test]
fn a_libtorch_panic_fails_the_call_and_leaves_the_scorer_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    save(&trained_model(), &dir);
    let rows = Rows::from_examples(&examples(12, 4));
    let healthy = Scorer::new(artifact::load(&dir, Device::Cpu).unwrap(), 8)
        .score(&rows)
        .unwrap();

    // One weight of the loaded model gets a shape its layer cannot use: every forward
    // panics inside libtorch, as a corrupted weight or a device fault would.
    let loaded = artifact::load(&dir, Device::Cpu).unwrap();
    let weight = loaded
        .model
        .var_store()
        .variables()
        .remove("click_head.fc0.weight")
        .expect("the click head's first layer");
    let original = weight.copy();
    let mut handle = weight.shallow_clone();
    tch::no_grad(|| handle.set_data(&tch::Tensor::zeros([1, 1], (tch::Kind::Float, Device::Cpu))));
    let scorer = Scorer::new(loaded, 8);
    let err = format!("{:#}", scorer.score(&rows).unwrap_err());
    assert!(err.contains("libtorch panicked"), "{err}");

    // The scorer is not poisoned: with the weight back, the same rows score as before.
    tch::no_grad(|| handle.set_data(&original));
    assert_eq!(scorer.device(), Device::Cpu);
    let again = scorer.score(&rows).unwrap();
    assert_eq!(again, healthy);
}

#[test]
fn missing_or_garbled_artifacts_get_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let err = artifact::load(&tmp.path().join("nope"), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");
    let dir = tmp.path().join("garbled");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(MANIFEST_FILE), "{not json").unwrap();
    let err = format!("{:#}", artifact::load(&dir, Device::Cpu).unwrap_err());
    assert!(err.contains(MANIFEST_FILE), "{err}");
}

#[test]
fn asking_for_cuda_without_a_gpu_is_a_clear_error() {
    if tch::Cuda::is_available() {
        assert_eq!(DeviceChoice::Cuda(0).resolve().unwrap(), Device::Cuda(0));
        let count = tch::Cuda::device_count() as usize;
        let err = DeviceChoice::Cuda(count).resolve().unwrap_err().to_string();
        assert!(err.contains(&format!("sees {count} CUDA")), "{err}");
    } else {
        let err = DeviceChoice::Cuda(0).resolve().unwrap_err().to_string();
        assert!(err.contains("--device cpu"), "{err}");
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), Device::Cpu);
    }
}
