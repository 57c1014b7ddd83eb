//! A scoring set-up for the tests: generated raw logs, a model whose feature schema matches
//! them (the real network, seeded initial weights: scoring tests check the plumbing, not
//! what training learned), and job files.

use std::path::{Path, PathBuf};

use dumn::io::Location;
use dumn::model::artifact;
use dumn::model::features::{FeatureSchema, FieldSpec};
use dumn::model::{Ablation, Dumn};
use dumn::synthetic::logs::{write_logs, LogsConfig};

use super::data::runtime;

/// The columns `dumn gen` writes, as a model reads them.
pub fn gen_schema() -> FeatureSchema {
    let f = |n: &str| FieldSpec::new(n, 512);
    FeatureSchema {
        user_fields: vec![f("user_id"), f("age_band"), f("region"), f("device")],
        item_fields: vec![f("item_id"), f("category"), f("brand")],
    }
}

/// A small DUMN on `schema` (the tests' [`super::small_config`]), every component of the
/// paper present, seeded.
pub fn small_model(schema: FeatureSchema, seed: i64) -> Dumn {
    let mut c = super::small_config(Ablation::variant("DUMN").unwrap());
    c.schema = schema;
    tch::manual_seed(seed);
    Dumn::new(c, tch::Device::Cpu).unwrap()
}

pub fn tiny_gen(candidates_per_user: usize) -> LogsConfig {
    LogsConfig {
        users: 120,
        impressions_per_user: 30,
        candidates_per_user,
        topics: 6,
        items_per_topic: 20,
        days: 6,
        seed: 5,
        ..Default::default()
    }
}

/// A folder with `data/` (generated logs) and `model/` (an artifact for them).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub gen: LogsConfig,
}

impl Fixture {
    pub fn new(candidates_per_user: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let gen = tiny_gen(candidates_per_user);
        runtime()
            .block_on(write_logs(
                &gen,
                &Location::Local(dir.path().join("data")),
                |_| {},
            ))
            .unwrap();
        artifact::save(
            &small_model(gen_schema(), 7),
            &dir.path().join("model"),
            None,
            Default::default(),
        )
        .unwrap();
        Fixture { dir, gen }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The day after the logs, as `dumn run --date` takes it.
    pub fn date(&self) -> String {
        self.gen.cutoff().date().to_string()
    }

    /// Writes a job file reading `data/` and `model/`, writing under `out/`, plus `extra`
    /// TOML lines (later keys must not repeat these). Its format is plain Parquet (whose
    /// day folders and markers most scoring tests read) unless `extra` sets `format`; the
    /// Delta default is tested in tests/delta.rs.
    pub fn job(&self, name: &str, extra: &str) -> PathBuf {
        let p = self.path(name);
        let d = self.dir.path().display();
        let mut text = String::new();
        let has = |k: &str| extra.lines().any(|l| l.trim_start().starts_with(k));
        for (key, value) in [
            ("data", format!("{d}/data")),
            ("model", format!("{d}/model")),
            ("out", format!("{d}/out")),
            ("format", "parquet".to_string()),
        ] {
            if !has(key) {
                text.push_str(&format!("{key} = \"{value}\"\n"));
            }
        }
        // The fixture's model is untrained: its dislike probabilities sit near 0.5, on one
        // side or the other depending on its weights, which libtorch draws from a generator
        // that the tests running beside this one draw from too. A ranking filtered at 0.5
        // could then hold every candidate in one run and none in the next, so the jobs keep
        // every candidate eligible unless a test sets the threshold (the tests of the
        // filter set 0.5 and check that it both keeps and drops candidates).
        if !has("dislike_threshold") {
            text.push_str("dislike_threshold = 1.0\n");
        }
        text.push_str(&format!(
            "date = \"{}\"\ndevice = \"cpu\"\n{extra}\n",
            self.date()
        ));
        std::fs::write(&p, text).unwrap();
        p
    }

    /// `out/<table>/dt=<date>`.
    pub fn day(&self, table: &str) -> PathBuf {
        self.path(&format!("out/{table}/dt={}", self.date()))
    }
}

/// The files of a folder, names only, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
