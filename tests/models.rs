//! Model versions and aliases (`src/model/registry.rs`): `dumn train --out MODELS`,
//! `MODELS@ALIAS` in jobs, `dumn models list|alias`.

use std::path::Path;

use crate::common::data::*;
use crate::common::scoring::Fixture;
use dumn::io::Location;
use dumn::model::registry::{self, Registry};

/// `dumn train` of a tiny model on the fixture's logs into the registry `models`, with
/// `extra` flags; the summary line.
fn train(fx: &Fixture, models: &Path, extra: &[&str]) -> serde_json::Value {
    let data = fx.path("data");
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        models.to_str().unwrap(),
        "--epochs",
        "1",
        "--seq-len",
        "10",
        "--memory-slots",
        "4",
        "--slot-dim",
        "4",
        "--controller-dim",
        "8",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    let (ok, stdout, stderr) = run_dumn_in(fx.dir.path(), &args, &[]);
    assert!(ok, "{stdout}{stderr}");
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// Runs the job and returns the model version its summary line names.
fn run_version(job: &Path) -> String {
    let (ok, stdout, stderr) =
        run_dumn_in(job.parent().unwrap(), &["run", job.to_str().unwrap()], &[]);
    assert!(ok, "{stdout}{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    summary["model_version"].as_str().unwrap().to_string()
}

#[test]
fn an_alias_moves_atomically_and_a_job_following_it_scores_with_the_new_version() {
    let fx = Fixture::new(3);
    let models = fx.path("models");
    let first = train(&fx, &models, &["--seed", "1"]);
    let v1 = first["model_version"].as_str().unwrap().to_string();
    assert_eq!(aliased(&models, "latest"), models.join(&v1));
    assert!(models.join(&v1).join("weights.safetensors").is_file());

    // A job names the registry's alias, relative to the job file's folder.
    let job = fx.job("follow.toml", "model = \"models@latest\"");
    assert_eq!(run_version(&job), v1);

    let second = train(&fx, &models, &["--seed", "2"]);
    let v2 = second["model_version"].as_str().unwrap().to_string();
    assert_ne!(v1, v2);
    assert_eq!(second["alias"], format!("{}@latest", models.display()));
    // The new version is what the alias names now; the old one is kept whole.
    assert_eq!(aliased(&models, "latest"), models.join(&v2));
    assert!(models.join(&v1).join("weights.safetensors").is_file());
    assert_eq!(run_version(&job), v2, "the job follows the alias");

    // A fixed version, and a named alias moved back to the first model (a rollback).
    let pinned = fx.job("pinned.toml", &format!("model = \"models@{v1}\""));
    assert_eq!(run_version(&pinned), v1);
    let (ok, text) = run_dumn(
        &["models", "alias", models.to_str().unwrap(), "prod", &v1],
        &[],
    );
    assert!(ok, "{text}");
    let prod = fx.job("prod.toml", "model = \"models@prod\"");
    assert_eq!(run_version(&prod), v1);

    // `dumn models list` shows both, oldest first, with their aliases and metrics.
    let (ok, listing) = run_dumn(&["models", "list", models.to_str().unwrap()], &[]);
    assert!(ok, "{listing}");
    let lines: Vec<&str> = listing.lines().filter(|l| l.starts_with("20")).collect();
    assert_eq!(lines.len(), 2, "{listing}");
    assert!(
        lines[0].starts_with(&v1) && lines[0].contains("prod"),
        "{listing}"
    );
    assert!(
        lines[1].starts_with(&v2) && lines[1].contains("latest"),
        "{listing}"
    );
    assert!(listing.contains("valid_clicked_auc"), "{listing}");

    // An unknown alias names what there is.
    let (ok, text) = run_dumn(&["inspect", &format!("{}@canary", models.display())], &[]);
    assert!(
        !ok && text.contains("canary") && text.contains(&v2),
        "{text}"
    );

    // While the alias flips between the two versions, every reader resolves it to one of
    // them, whole: never a missing or half-written alias.
    let rt = runtime();
    let registry = Registry::new(Location::Local(models.clone()));
    let spec = format!("{}@flip", models.display());
    rt.block_on(registry.set_alias("flip", &v1)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (registry, stop) = (registry.clone(), stop.clone());
        let (v1, v2) = (v1.clone(), v2.clone());
        std::thread::spawn(move || {
            let rt = runtime();
            let mut flips = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || flips < 50 {
                let v = if flips % 2 == 0 { &v2 } else { &v1 };
                rt.block_on(registry.set_alias("flip", v)).unwrap();
                flips += 1;
            }
            flips
        })
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let loc = rt.block_on(registry::resolve(&spec)).unwrap();
        let Location::Local(dir) = loc else {
            panic!("a local registry resolves locally")
        };
        seen.insert(dir.file_name().unwrap().to_string_lossy().into_owned());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() >= 50);
    assert!(
        seen.iter().all(|v| *v == v1 || *v == v2),
        "a reader saw {seen:?}"
    );
    // No temporary alias file is left behind.
    let hidden: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn training_refuses_an_artifact_folder_and_a_bad_alias_before_any_work() {
    let fx = Fixture::new(2);
    // The fixture's model is a plain artifact (manifest.json at its top).
    let (code, text) = dumn_exit_code(
        &[
            "train",
            "--data",
            fx.path("data").to_str().unwrap(),
            "--out",
            fx.path("model").to_str().unwrap(),
            "--device",
            "cpu",
        ],
        &[],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("is a model artifact itself"), "{text}");
    let (code, text) = dumn_exit_code(
        &[
            "train",
            "--data",
            fx.path("data").to_str().unwrap(),
            "--out",
            fx.path("models").to_str().unwrap(),
            "--alias",
            "../up",
            "--device",
            "cpu",
        ],
        &[],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not a valid alias"), "{text}");
    assert!(!fx.path("models").exists());
}
