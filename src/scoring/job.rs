//! A scoring job file (`jobs/demo.toml`): inputs, model, output root and options.
//!
//! Contract: [`Job::read`] reads the file with [`crate::io::job_file::load`] under `--set`
//! and `DUMN_<KEY>` overrides; unknown keys are errors naming the key; `dislike_threshold`
//! lies in [0, 1] and `top_k` is at least 1. Relative paths in the file are read from the
//! file's folder ([`KEYS`] says which keys are locations).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::data::contract::{self, Inputs};
use crate::io::job_file::{self, key, Key, KeyKind, Layers};
use crate::io::Location;
use crate::model::device::{DeviceChoice, Precision};

/// A scoring job file (TOML; see jobs/demo.toml and docs/job-file.md). Relative paths in
/// the file are read from the file's folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Raw logs: a folder (local or s3://) with impressions/, actions/, users/, items/ and
    /// candidates/; or, with `adapter`, the folder the adapter reads.
    pub data: Option<String>,
    /// Per-table locations that override `data/<name>`, e.g. `candidates = "s3://…"`.
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    /// An adapter (kuairand, taobao or a .sql file) that defines the input tables.
    pub adapter: Option<String>,
    /// The model, local or s3://: `MODELS@ALIAS` or `MODELS@VERSION` of a folder `dumn
    /// train --out MODELS` writes, `MODELS` alone for its `latest`, or an artifact folder
    /// (see [`crate::model::registry`]).
    pub model: String,
    /// The output root: the run writes day D of the tables `scores` and `ranking` under it.
    pub out: String,
    /// How the tables are written: `delta` (Delta Lake tables partitioned by `dt`, the
    /// default) or `parquet` (Hive-style `dt=D/` folders with `_SUCCESS` markers).
    #[serde(default)]
    pub format: OutputFormat,
    /// The day to score when `--date` is not given (YYYY-MM-DD).
    pub date: Option<String>,
    /// Your own SQL for the scoring input (defines `scoring_input`).
    pub sql: Option<PathBuf>,
    /// Your own SQL for the score table (defines `scores`; see sql/scores.sql).
    pub scores_sql: Option<PathBuf>,
    /// Your own SQL for the ranking table (defines `ranking`; see sql/ranking.sql).
    pub ranking_sql: Option<PathBuf>,
    /// Candidates per model call.
    pub batch_size: Option<usize>,
    /// Copies of the model that score partitions in parallel (see `Scorer`).
    pub workers: Option<usize>,
    /// Where the model runs: auto, cpu, cuda or cuda:N.
    pub device: Option<DeviceChoice>,
    /// The float type the model scores in: fp32 or bf16 (see `Precision`).
    pub precision: Option<Precision>,
    /// Candidates with a higher dislike probability are left out of the ranking.
    #[serde(default = "default_threshold")]
    pub dislike_threshold: f64,
    /// Candidates kept per user in the ranking.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Days of feedback before the scored day that build the sequences (0: the whole
    /// history). Older events are filtered out before any aggregation, and Parquet row
    /// groups whose `ts` statistics lie before the window are not read.
    #[serde(default = "default_lookback_days")]
    pub lookback_days: u32,
}

/// The format of a scoring run's output tables (job key `format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Delta Lake tables: a run replaces its day in one commit (see [`crate::io::delta`]).
    #[default]
    Delta,
    /// Plain Parquet in `dt=D/` folders with `_SUCCESS` markers (see [`crate::io::day`]).
    Parquet,
}

/// The default window: wide enough to hold T = 100 events of each kind for nearly every
/// user of a log with daily activity (see docs/job-file.md).
pub const DEFAULT_LOOKBACK_DAYS: u32 = 180;

fn default_lookback_days() -> u32 {
    DEFAULT_LOOKBACK_DAYS
}

fn default_threshold() -> f64 {
    0.5
}

fn default_top_k() -> usize {
    50
}

/// The keys of a scoring job, and which are locations.
pub const KEYS: &[Key] = &[
    key("data", KeyKind::Location),
    key("tables", KeyKind::Locations),
    key("adapter", KeyKind::NameOrSqlFile),
    key("model", KeyKind::Location),
    key("out", KeyKind::Location),
    key("format", KeyKind::Value),
    key("date", KeyKind::Value),
    key("sql", KeyKind::Location),
    key("scores_sql", KeyKind::Location),
    key("ranking_sql", KeyKind::Location),
    key("batch_size", KeyKind::Value),
    key("workers", KeyKind::Value),
    key("device", KeyKind::Value),
    key("precision", KeyKind::Value),
    key("dislike_threshold", KeyKind::Value),
    key("top_k", KeyKind::Value),
    key("lookback_days", KeyKind::Value),
];

impl Job {
    /// Reads and checks a job file, under `set` (`--set KEY=VALUE`) and the `DUMN_<KEY>`
    /// environment variables.
    pub fn read(path: &Path, set: &[String]) -> Result<Job> {
        let layers = Layers {
            file: Some(path),
            set,
            flags: toml::Table::new(),
        };
        let job: Job = job_file::load(KEYS, layers)?;
        ensure!(
            (0.0..=1.0).contains(&job.dislike_threshold),
            "in the job file {}: dislike_threshold must be between 0 and 1, not {}",
            path.display(),
            job.dislike_threshold
        );
        ensure!(
            job.top_k > 0,
            "in the job file {}: top_k must be at least 1",
            path.display()
        );
        job.check_tables()
            .with_context(|| format!("in the job file {}", path.display()))?;
        Ok(job)
    }

    /// Each `[tables]` key must be an input table of the contract, or a table that one of
    /// the job's own SQL files reads: a typo (`candidate = …`) would otherwise be ignored
    /// and the default location read instead.
    fn check_tables(&self) -> Result<()> {
        let own_sql: Vec<String> = [&self.sql, &self.scores_sql, &self.ranking_sql]
            .into_iter()
            .flatten()
            .chain(
                self.adapter
                    .as_ref()
                    .filter(|a| a.ends_with(".sql"))
                    .map(PathBuf::from)
                    .as_ref(),
            )
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .map(|sql| sql.to_lowercase())
            .collect();
        for name in self.tables.keys() {
            if contract::spec(name).is_some()
                || own_sql.iter().any(|sql| sql.contains(&name.to_lowercase()))
            {
                continue;
            }
            let tables: Vec<&str> = contract::ALL.iter().map(|s| s.name).collect();
            bail!(
                "[tables] has the key `{name}`, which is not an input table ({}) and which no \
                 SQL of the job (sql, scores_sql, ranking_sql, adapter) reads; check its \
                 spelling",
                tables.join(", ")
            );
        }
        Ok(())
    }

    /// The input tables the job names.
    pub fn inputs(&self) -> Result<Inputs> {
        let mut inputs = Inputs::from_flags(self.data.as_deref(), &[], self.adapter.as_deref())?;
        for (name, loc) in &self.tables {
            inputs.tables.insert(name.clone(), Location::parse(loc)?);
        }
        Ok(inputs)
    }

    /// The day to score: `flag`, else the job's `date`, else today (UTC).
    pub fn date(&self, flag: Option<&str>) -> Result<NaiveDate> {
        match flag.or(self.date.as_deref()) {
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .with_context(|| format!("`{d}` is not a date; write YYYY-MM-DD")),
            None => Ok(chrono::Utc::now().date_naive()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_list_is_exactly_the_jobs_keys() {
        job_file::check_keys::<Job>(KEYS).unwrap();
    }

    #[test]
    fn a_tables_key_must_be_an_input_table_or_read_by_the_jobs_own_sql() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job.toml");
        let write = |extra: &str| {
            std::fs::write(
                &job,
                format!("model = \"m\"\nout = \"o\"\n{extra}\n[tables]\ncandidate = \"c/\"\n"),
            )
            .unwrap();
        };
        write("");
        let err = format!("{:#}", Job::read(&job, &[]).unwrap_err());
        assert!(
            err.contains("`candidate`") && err.contains("candidates") && err.contains("job.toml"),
            "{err}"
        );
        // A table that the job's own SQL reads is the SQL's to use.
        std::fs::write(
            dir.path().join("input.sql"),
            "CREATE VIEW scoring_input AS SELECT * FROM candidate JOIN users USING (user_id);",
        )
        .unwrap();
        write("sql = \"input.sql\"");
        let job = Job::read(&job, &[]).unwrap();
        assert!(job.tables.contains_key("candidate"));
    }
}
