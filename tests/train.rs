//! `dumn train` / `dumn eval` from raw logs: the time split, the artifact and report, job
//! files, and the errors that must come before any training.

use std::path::{Path, PathBuf};

use crate::common::data::*;
use dumn::data::contract::Inputs;
use dumn::data::pipeline::{self, ModelInput};
use dumn::data::script::Params;
use dumn::engine::session::{context, EngineOptions};
use dumn::io::parquet::write_parquet;
use dumn::io::Location;
use dumn::synthetic::logs::{write_logs, LogsConfig};
use dumn::training::dataset::{ExampleFiles, Part, Split};

fn tiny_gen() -> LogsConfig {
    LogsConfig {
        users: 150,
        impressions_per_user: 30,
        candidates_per_user: 5,
        topics: 6,
        items_per_topic: 20,
        days: 6,
        seed: 3,
        ..Default::default()
    }
}

fn gen_into(dir: &Path) {
    runtime()
        .block_on(write_logs(
            &tiny_gen(),
            &Location::Local(dir.to_path_buf()),
            |_| {},
        ))
        .unwrap();
}

/// Runs the binary; returns (success, stdout + stderr).
fn dumn(args: &[&str]) -> (bool, String) {
    run_dumn(args, &[])
}

#[test]
fn the_split_is_by_time_and_never_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    gen_into(&data);
    runtime().block_on(async {
        let ctx = context(&EngineOptions::default()).unwrap();
        let inputs = Inputs {
            data: Some(Location::Local(data.clone())),
            ..Default::default()
        };
        let (df, _) = pipeline::prepare(
            &ctx,
            &inputs,
            ModelInput::Training,
            None,
            &Params::new().seq_len(5).unwrap(),
            &pipeline::Scratch::Temporary,
        )
        .await
        .unwrap();
        let split = Split::resolve(&ctx, None, None).await.unwrap();
        let loc = Location::Local(dir.path().join("examples"));
        write_parquet(df, &loc, serde_json::json!({}), |_| {})
            .await
            .unwrap();
        let ex = ExampleFiles::open(&loc).await.unwrap();
        let mut range = Vec::new();
        let mut total = 0;
        for part in [Part::Train, Part::Valid, Part::Test] {
            let (mut lo, mut hi, mut n) = (i64::MAX, i64::MIN, 0);
            let mut s = ex.stream(&split.predicate(part)).await.unwrap();
            use futures::StreamExt;
            while let Some(b) = s.next().await {
                let (_, ts) = ExampleFiles::users_and_times(&b.unwrap()).unwrap();
                n += ts.len();
                lo = lo.min(*ts.iter().min().unwrap_or(&lo));
                hi = hi.max(*ts.iter().max().unwrap_or(&hi));
            }
            assert!(n > 100, "{part:?} has {n} rows");
            total += n;
            range.push((lo, hi));
        }
        assert!(
            range[0].1 < range[1].0,
            "no validation example before a train example"
        );
        assert!(
            range[1].1 < range[2].0,
            "no test example before a validation example"
        );
        assert_eq!(
            total as u64,
            ex.count("TRUE").await.unwrap(),
            "every example is in one part"
        );
    });
}

#[test]
fn train_writes_a_model_report_and_curve_and_eval_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    gen_into(&data);
    let model = dir.path().join("model");
    let job = dir.path().join("job.toml");
    std::fs::write(
        &job,
        format!(
            "data = {:?}\nout = {:?}\nepochs = 2\nbatch_size = 128\nseed = 4\n\
             memory_slots = 8\nslot_dim = 4\ncontroller_dim = 16\n",
            data, model
        ),
    )
    .unwrap();
    let (ok, text) = dumn(&[
        "train",
        "--job",
        job.to_str().unwrap(),
        "--variant",
        "BASE_DIN",
        "--device",
        "cpu",
    ]);
    assert!(ok, "{text}");
    // A new version folder of the registry `model`, named by its `latest` alias.
    let model = aliased(&model, "latest");
    for f in [
        "manifest.json",
        "weights.safetensors",
        "report.json",
        "learning_curve.svg",
    ] {
        assert!(model.join(f).is_file(), "{f} missing:\n{text}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["variant"], "BASE_DIN",
        "the flag overrides the job file's default"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    let config = &manifest["config"];
    assert_eq!(
        (
            &config["mem_slots"],
            &config["slot_dim"],
            &config["ffn_dim"]
        ),
        (&8.into(), &4.into(), &16.into()),
        "the job file's memory sizes reach the model"
    );
    // Each feature's class of values, as training read it.
    for side in ["user_fields", "item_fields"] {
        for f in config["schema"][side].as_array().unwrap() {
            assert_eq!(f["class"], "integer", "{f}");
        }
    }
    let best = report["result"]["best_epoch"].as_u64().unwrap();
    let epochs = report["result"]["epochs"].as_array().unwrap();
    assert!(epochs.len() <= 2 && best >= 1);
    // The best epoch is the one with the highest validation AUC.
    let aucs: Vec<f64> = epochs
        .iter()
        .map(|e| e["valid"]["auc"].as_f64().unwrap())
        .collect();
    let argmax = aucs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0
        + 1;
    assert_eq!(best as usize, argmax);
    let svg = std::fs::read_to_string(model.join("learning_curve.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("AUC"));

    // eval on the test period gives the test AUC of the report.
    let test_from = report["split"]["test_from"].as_str().unwrap().to_string();
    // `dumn eval` on the test period, with `extra` flags: its stdout and its JSON.
    let eval = |name: &str, extra: &[&str]| {
        let json = dir.path().join(name);
        let mut args = vec![
            "eval",
            model.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--from",
            &test_from,
            "--device",
            "cpu",
            "--json",
            json.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (ok, text) = dumn(&args);
        assert!(ok, "{text}");
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        (text, value)
    };
    let (_, plain) = eval("eval.json", &[]);
    let (a, b) = (
        plain["clicked"]["auc"].as_f64().unwrap(),
        report["result"]["test"]["auc"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-6, "eval {a} vs train's test {b}");
    // With --as-of-midnight: the same point-in-time figure, and beside it the nightly one.
    let (text, both) = eval("eval-midnight.json", &["--as-of-midnight"]);
    assert!(text.contains("as of midnight, clicked: "), "{text}");
    let pit = both["point_in_time"]["clicked"]["auc"].as_f64().unwrap();
    let midnight = both["as_of_midnight"]["clicked"]["auc"].as_f64().unwrap();
    assert!((pit - b).abs() < 1e-6, "point in time {pit} vs {b}");
    assert!(midnight != pit, "the cut changes what the model sees");
}

#[test]
fn errors_come_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    gen_into(&data);
    let d = data.to_str().unwrap();
    let out = dir.path().join("m");
    let o = out.to_str().unwrap();

    // An empty train split.
    let (ok, text) = dumn(&[
        "train",
        "--data",
        d,
        "--out",
        o,
        "--valid-from",
        "2020-01-01",
        "--test-from",
        "2020-01-02",
        "--device",
        "cpu",
    ]);
    assert!(
        !ok && text.contains("train") && text.contains("no examples"),
        "{text}"
    );

    // A model path that cannot be written.
    let (ok, text) = dumn(&[
        "train",
        "--data",
        d,
        "--out",
        "/proc/dumn/model",
        "--device",
        "cpu",
    ]);
    assert!(!ok && text.contains("/proc/dumn"), "{text}");

    // A label column with other values than 0/1 (a team's own SQL).
    let sql = dir.path().join("bad_label.sql");
    std::fs::write(
        &sql,
        "CREATE OR REPLACE VIEW training_examples AS SELECT user_id, item_id, ts, \
         CASE WHEN kind = 'click' THEN 2 ELSE 0 END AS clicked, false AS disliked, \
         [] AS click_seq, [] AS unclick_seq, [] AS like_seq, [] AS dislike_seq \
         FROM feedback WHERE kind IN ('click', 'unclick');",
    )
    .unwrap();
    let with_sql = |sql: &Path| {
        dumn(&[
            "train",
            "--data",
            d,
            "--out",
            o,
            "--sql",
            sql.to_str().unwrap(),
            "--device",
            "cpu",
        ])
    };
    let (ok, text) = with_sql(&sql);
    assert!(
        !ok && text.contains("`clicked`") && text.contains("0 or 1"),
        "{text}"
    );

    // Labels of one class only: refused before the first epoch.
    let one_class = dir.path().join("one_class.sql");
    let default_sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/training_examples.sql");
    let default_sql = std::fs::read_to_string(default_sql).unwrap();
    assert!(default_sql.contains("r.kind = 'click' AS clicked"));
    std::fs::write(
        &one_class,
        default_sql.replace("r.kind = 'click' AS clicked", "false AS clicked"),
    )
    .unwrap();
    let (ok, text) = with_sql(&one_class);
    assert!(
        !ok && text.contains("only negative `clicked` labels") && !text.contains("epoch  1"),
        "{text}"
    );

    // No explicit feedback at all.
    for f in std::fs::read_dir(data.join("actions")).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    let empty = datafusion::arrow::array::RecordBatch::try_from_iter(vec![
        (
            "user_id",
            std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(Vec::<i64>::new())) as _,
        ),
        (
            "item_id",
            std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(Vec::<i64>::new())) as _,
        ),
        (
            "ts",
            std::sync::Arc::new(datafusion::arrow::array::TimestampMicrosecondArray::from(
                Vec::<i64>::new(),
            )) as _,
        ),
        (
            "action",
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from(
                Vec::<String>::new(),
            )) as _,
        ),
    ])
    .unwrap();
    let file = std::fs::File::create(data.join("actions/part-0.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, empty.schema(), None).unwrap();
    w.write(&empty).unwrap();
    w.close().unwrap();
    let (ok, text) = dumn(&["train", "--data", d, "--out", o, "--device", "cpu"]);
    assert!(!ok && text.contains("no explicit feedback"), "{text}");
    assert!(!out.exists(), "nothing written");
}

#[test]
fn a_cpu_run_with_the_same_seed_repeats_with_minibatches_built_inline_or_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    gen_into(&data);
    let mut hashes = Vec::new();
    // The second run builds its minibatches ahead on a task of their own (`--prefetch`).
    for (run, prefetch) in [("a", "0"), ("b", "3")] {
        let out = dir.path().join(run);
        let (ok, text) = dumn(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--seq-len",
            "10",
            "--seed",
            "9",
            "--shuffle-buffer",
            "1000",
            "--prefetch",
            prefetch,
            "--device",
            "cpu",
        ]);
        assert!(ok, "{text}");
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(aliased(&out, "latest").join("manifest.json")).unwrap(),
        )
        .unwrap();
        hashes.push(m["weights"]["sha256"].as_str().unwrap().to_string());
    }
    assert_eq!(
        hashes[0], hashes[1],
        "same seed, same data: same weights, however the minibatches were built"
    );
}

#[test]
fn a_training_job_elsewhere_runs_from_any_folder_under_env_and_set_and_ends_with_json() {
    let dir = tempfile::tempdir().unwrap();
    gen_into(&dir.path().join("data"));
    std::fs::create_dir(dir.path().join("jobs")).unwrap();
    let job = dir.path().join("jobs/train.toml");
    std::fs::write(
        &job,
        "data = \"../data\"\nout = \"../model\"\nepochs = 3\nseq_len = 20\n\
         memory_slots = 8\nslot_dim = 4\ncontroller_dim = 16\ndevice = \"cpu\"\n",
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run_dumn_in(
        elsewhere.path(),
        &["train", "--job", job.to_str().unwrap(), "--set", "epochs=1"],
        &[("DUMN_SEQ_LEN", "10"), ("DUMN_EPOCHS", "2")],
    );
    assert!(ok, "{stdout}{stderr}");
    let model = aliased(&dir.path().join("model"), "latest");
    let manifest = dumn::model::artifact::read_manifest(&model).unwrap();
    assert_eq!(
        manifest.config.seq_len, 10,
        "the environment beats the file"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["result"]["epochs"].as_array().unwrap().len(),
        1,
        "--set beats the environment"
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("a JSON last line");
    assert_eq!(summary["model_version"], manifest.model_version.as_str());
    assert_eq!(summary["epochs"], 1);
    assert!(summary["test"]["auc"].as_f64().is_some(), "{summary}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn relative_paths_resolve_against_the_current_folder_work_folder_included() {
    let dir = tempfile::tempdir().unwrap();
    gen_into(&dir.path().join("data"));
    let (ok, stdout, stderr) = run_dumn_in(
        dir.path(),
        &[
            "train",
            "--data",
            "data",
            "--out",
            "model",
            "--work",
            "scratch/../work",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--set",
            "seq_len=10",
            "--set",
            "memory_slots=8",
            "--set",
            "slot_dim=4",
            "--set",
            "controller_dim=16",
        ],
        &[],
    );
    assert!(ok, "{stdout}{stderr}");
    assert!(
        dir.path().join("work/examples/_SUCCESS").is_file(),
        "the training examples are kept in the --work folder, under the current folder"
    );
    assert!(!dir.path().join("scratch").exists());
    assert!(aliased(&dir.path().join("model"), "latest")
        .join("manifest.json")
        .is_file());
}

/// `dumn ablate` with tiny models for one epoch on generated data, plus `extra` flags:
/// the temporary folder (kept alive), the output root and the output. Panics on failure.
fn tiny_ablate(extra: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    gen_into(&dir.path().join("data"));
    let text = tiny_ablate_in(dir.path(), extra);
    let out = dir.path().join("models");
    (dir, out, text)
}

/// `dumn ablate` as [`tiny_ablate`] on the data already in `dir/data`, to `dir/models`.
fn tiny_ablate_in(dir: &Path, extra: &[&str]) -> String {
    let data = dir.join("data");
    let out = dir.join("models");
    let mut args = vec![
        "ablate",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--seq-len",
        "10",
        "--memory-slots",
        "8",
        "--slot-dim",
        "4",
        "--controller-dim",
        "16",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    let (ok, text) = dumn(&args);
    assert!(ok, "{text}");
    text
}

#[test]
fn ablate_trains_every_feedback_layout_from_sql_and_prints_one_row_each() {
    // DUMN_AF reads `feedback_seq`, DUMN_IF two sequences, BASE_FEATURES none: each must
    // train from the default SQL and get its row in the table.
    let variants = ["DUMN_AF", "DUMN_IF", "BASE_FEATURES"];
    let (_dir, out, text) = tiny_ablate(&["--variants", &variants.join(",")]);
    for v in variants {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("| {v} |"))),
            "no table row for {v}: {text}"
        );
        assert!(out.join(v).join("manifest.json").exists(), "{v} saved");
    }
}

#[test]
fn ablate_with_seeds_trains_each_seed_and_summarises_with_intervals() {
    let (_dir, out, text) = tiny_ablate(&[
        "--variants",
        "DUMN,BASE_FEATURES",
        "--seeds",
        "2",
        "--seed",
        "5",
    ]);
    for v in ["DUMN", "BASE_FEATURES"] {
        for seed in [5, 6] {
            let model = out.join(v).join(format!("seed-{seed}"));
            assert!(
                model.join("manifest.json").exists(),
                "{v} seed {seed} saved"
            );
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("| {v} | {seed} |"))),
                "no row for {v} seed {seed}: {text}"
            );
        }
    }
    // The summary: two seeds give an interval; DUMN is the reference; the baseline's
    // difference to it has a bootstrap interval and a verdict.
    let summary = |v: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("| {v} | 2 |")))
            .unwrap_or_else(|| panic!("no summary row for {v}: {text}"))
            .to_string()
    };
    let dumn_row = summary("DUMN");
    assert!(dumn_row.contains("reference"), "{dumn_row}");
    let base = summary("BASE_FEATURES");
    let cells: Vec<&str> = base.split('|').map(str::trim).collect();
    assert!(
        cells[4].contains('[') && cells[4].contains(']'),
        "test AUC interval: {base}"
    );
    assert!(
        cells[7].contains('[') && cells[7].contains(", "),
        "paired interval: {base}"
    );
    assert!(
        ["tie", "ahead of DUMN", "behind DUMN"].contains(&cells[8]),
        "verdict: {base}"
    );
    let md = std::fs::read_to_string(out.join("ablation.md")).unwrap();
    assert!(md.contains(&base), "ablation.md holds the summary");
    // Generated data carries its true click probabilities: their AUC is the ceiling.
    let ceiling: f64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "The generator's own test AUC (its true click probabilities, the ceiling): ",
            )
        })
        .unwrap_or_else(|| panic!("no ceiling line: {text}"))
        .trim()
        .parse()
        .unwrap();
    assert!(ceiling > 0.6 && ceiling <= 1.0, "ceiling {ceiling}");
    assert!(md.contains("the ceiling"), "ablation.md holds the ceiling");
    let svg = std::fs::read_to_string(out.join("ablation.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("BASE_FEATURES"),
        "the bar chart"
    );
}

#[test]
fn ablate_resume_keeps_finished_runs_of_the_same_settings_and_retrains_changed_ones() {
    let variants = ["--variants", "DUMN,BASE_FEATURES"];
    let (dir, out, first) = tiny_ablate(&variants);
    let version = |v: &str| {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(v).join("manifest.json")).unwrap())
                .unwrap();
        m["model_version"].as_str().unwrap().to_string()
    };
    let before = [version("DUMN"), version("BASE_FEATURES")];
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("| DUMN |") || l.starts_with("| BASE_FEATURES |"))
            .map(str::to_string)
            .collect()
    };

    // Same settings: nothing trains again, and the tables are the same, test scores and
    // paired intervals included.
    let again = tiny_ablate_in(dir.path(), &[variants[0], variants[1], "--resume"]);
    for v in ["DUMN", "BASE_FEATURES"] {
        assert!(
            again.contains(&format!("{v}: kept the finished run")),
            "{v} kept: {again}"
        );
        assert!(
            !again.contains(&format!("{v} epoch")),
            "{v} not retrained: {again}"
        );
    }
    assert_eq!([version("DUMN"), version("BASE_FEATURES")], before);
    assert_eq!(rows(&again), rows(&first));
    assert!(!rows(&first).is_empty());

    // Another learning rate: the finished runs do not match and train again.
    let changed = tiny_ablate_in(
        dir.path(),
        &[
            "--variants",
            "BASE_FEATURES",
            "--resume",
            "--learning-rate",
            "0.001",
        ],
    );
    assert!(
        changed.contains("BASE_FEATURES: the run in")
            && changed.contains("another model configuration"),
        "{changed}"
    );
    assert_ne!(version("BASE_FEATURES"), before[1], "retrained");
}
