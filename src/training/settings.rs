//! The settings of `dumn train`, `dumn ablate` and `dumn eval`, resolved in one place.
//!
//! Contract: a [`TrainSettings`] is read by [`crate::io::job_file::load`] from a TOML job
//! file (`jobs/train-demo.toml`) under `DUMN_<KEY>` environment variables, `--set
//! KEY=VALUE` and the command's flags, so a flag beats the environment, which beats the
//! file, which beats the defaults: [`TrainSettings::default`] and, for the model's
//! hyper-parameters left unset, [`crate::model::ModelConfig::new`]'s (the paper's). Every
//! key of the file is also a flag of the same name (`-` for `_`); an unknown key is an
//! error that names it. Relative paths in the file are read from its folder ([`KEYS`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use tch::Device;

use super::evaluate::Label;
use super::fit::Schedule;
use super::vocabulary::VocabularyOptions;
use crate::data::sql::parse_time;
use crate::io::job_file::{key, Key, KeyKind};
use crate::model::device::DeviceChoice;

/// The keys of a training job, and which are locations.
pub const KEYS: &[Key] = &[
    key("data", KeyKind::Location),
    key("adapter", KeyKind::NameOrSqlFile),
    key("sql", KeyKind::Location),
    key("out", KeyKind::Location),
    key("label", KeyKind::Value),
    key("variant", KeyKind::Value),
    key("epochs", KeyKind::Value),
    key("patience", KeyKind::Value),
    key("batch_size", KeyKind::Value),
    key("learning_rate", KeyKind::Value),
    key("weight_decay", KeyKind::Value),
    key("dropout", KeyKind::Value),
    key("lr_schedule", KeyKind::Value),
    key("attention_residual", KeyKind::Value),
    key("count_aware_pooling", KeyKind::Value),
    key("position_buckets", KeyKind::Value),
    key("memory_write", KeyKind::Value),
    key("triplets_per_user", KeyKind::Value),
    key("seq_len", KeyKind::Value),
    key("memory_slots", KeyKind::Value),
    key("slot_dim", KeyKind::Value),
    key("controller_dim", KeyKind::Value),
    key("shuffle_buffer", KeyKind::Value),
    key("prefetch", KeyKind::Value),
    key("valid_from", KeyKind::Value),
    key("test_from", KeyKind::Value),
    key("max_embedding_rows", KeyKind::Value),
    // The old name of `max_embedding_rows`, still read.
    key("max_hash_size", KeyKind::Value),
    key("min_count", KeyKind::Value),
    key("seed", KeyKind::Value),
    key("device", KeyKind::Value),
    key("work", KeyKind::Location),
];

/// Every setting of a training job. See `dumn train --help` for each key's meaning.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// Raw logs (local or s3://), or the folder an adapter reads.
    pub data: Option<String>,
    /// An adapter: kuairand, taobao or a .sql file.
    pub adapter: Option<String>,
    /// A team's own final step (defines `training_examples`).
    pub sql: Option<PathBuf>,
    /// Where the artifact goes (local or s3://).
    pub out: Option<String>,
    pub label: Label,
    pub variant: String,
    pub epochs: usize,
    pub patience: usize,
    /// Unset: [`CPU_BATCH_SIZE`] on a CPU, [`GPU_BATCH_SIZE`] on a GPU.
    pub batch_size: Option<usize>,
    /// Unset: the model's default (paper: 0.005) at [`CPU_BATCH_SIZE`], scaled with the
    /// square root of the batch size (see [`TrainSettings::learning_rate`]).
    pub learning_rate: Option<f64>,
    /// Unset: the model's default (see `dumn train --help`).
    pub weight_decay: Option<f64>,
    /// Unset: the model's default.
    pub dropout: Option<f64>,
    pub lr_schedule: Schedule,
    /// Unset: on (see [`crate::model::ModelConfig::attention_residual`]).
    pub attention_residual: Option<bool>,
    /// Unset: off (see [`crate::model::ModelConfig::count_aware_pooling`]).
    pub count_aware_pooling: Option<bool>,
    /// Unset: on (see [`crate::model::ModelConfig::position_buckets`]).
    pub position_buckets: Option<bool>,
    /// Unset: on (see [`crate::model::ModelConfig::memory_write`]).
    pub memory_write: Option<bool>,
    /// Unset: on (see [`crate::model::ModelConfig::triplets_per_user`]).
    pub triplets_per_user: Option<bool>,
    pub seq_len: usize,
    /// Unset: the model's default (paper: 256).
    pub memory_slots: Option<i64>,
    /// Unset: the model's default (paper: 64).
    pub slot_dim: Option<i64>,
    /// Unset: the model's default (paper: 512).
    pub controller_dim: Option<i64>,
    pub shuffle_buffer: usize,
    /// Minibatches built ahead of the training step (unset: 4 on a GPU, 0 on a CPU).
    pub prefetch: Option<usize>,
    pub valid_from: Option<String>,
    pub test_from: Option<String>,
    /// The most rows of one embedding table; the most frequent values keep theirs.
    #[serde(alias = "max_hash_size")]
    pub max_embedding_rows: i64,
    /// Training rows a value needs for an embedding row of its own; rarer values share the
    /// out-of-vocabulary row.
    pub min_count: u64,
    pub seed: u64,
    pub device: DeviceChoice,
    /// Scratch folder for the materialised examples (unset: a temporary folder).
    pub work: Option<PathBuf>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            data: None,
            adapter: None,
            sql: None,
            out: None,
            label: Label::Click,
            variant: "DUMN".into(),
            epochs: 10,
            patience: 2,
            batch_size: None,
            learning_rate: None,
            weight_decay: None,
            dropout: None,
            lr_schedule: Schedule::Constant,
            attention_residual: None,
            count_aware_pooling: None,
            position_buckets: None,
            memory_write: None,
            triplets_per_user: None,
            seq_len: 100,
            memory_slots: None,
            slot_dim: None,
            controller_dim: None,
            shuffle_buffer: 100_000,
            prefetch: None,
            valid_from: None,
            test_from: None,
            max_embedding_rows: 1 << 22,
            min_count: 2,
            seed: 1,
            device: DeviceChoice::Auto,
            work: None,
        }
    }
}

/// Where the training examples come from: raw logs, an adapter, a team's own final step.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub data: Option<String>,
    pub adapter: Option<String>,
    pub sql: Option<PathBuf>,
}

/// How the examples are built and split.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// T, the longest sequence kept.
    pub seq_len: usize,
    /// How the embedding vocabularies are cut; `None` (evaluation) builds none.
    pub vocabulary: Option<VocabularyOptions>,
    /// The split's boundaries; unset, 80% and 90% into the impressions' time range.
    pub valid_from: Option<NaiveDateTime>,
    pub test_from: Option<NaiveDateTime>,
    /// Scratch folder for the materialised examples (unset: a temporary folder).
    pub work: Option<PathBuf>,
    /// Whether `feedback_seq` (every kind merged by time) is filled.
    pub merged_feedback: bool,
    /// Whether histories are cut at the start of each impression's day (`dumn eval
    /// --as-of-midnight`) instead of at its time.
    pub as_of_midnight: bool,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        let s = TrainSettings::default();
        Self {
            seq_len: s.seq_len,
            vocabulary: Some(s.vocabulary_options()),
            valid_from: None,
            test_from: None,
            work: None,
            merged_feedback: false,
            as_of_midnight: false,
        }
    }
}

/// Examples per optimizer step on a CPU unless set.
pub const CPU_BATCH_SIZE: usize = 256;

/// Examples per optimizer step on a GPU unless set: a step of 256 examples keeps a GPU busy
/// for a few milliseconds between launches (docs/benchmarks.md); 1,024 makes four times
/// fewer steps. With the learning rate scaled by √4 (see [`TrainSettings::learning_rate`]),
/// DUMN's validation AUC on planted data tied the one at 256 (two seeds); at 2,048 (rate
/// ×√8) it was lower with both seeds, so 1,024 it is (docs/training.md). How fast each is
/// on a GPU waits for one to be lent.
pub const GPU_BATCH_SIZE: usize = 1024;

impl TrainSettings {
    /// Examples per optimizer step on `device` (see [`Self::batch_size`]).
    pub fn batch_size_on(&self, device: Device) -> usize {
        let default = match device {
            Device::Cpu => CPU_BATCH_SIZE,
            _ => GPU_BATCH_SIZE,
        };
        self.batch_size.unwrap_or(default).max(1)
    }

    /// AdamW's learning rate for steps of `batch_size` examples: the setting, else
    /// `default` (the model's rate, meant for [`CPU_BATCH_SIZE`]) times
    /// `√(batch_size / CPU_BATCH_SIZE)`, the square-root rule for adaptive optimizers: a
    /// larger batch averages away noise in the gradient, so a step may go further.
    pub fn learning_rate(&self, batch_size: usize, default: f64) -> f64 {
        self.learning_rate
            .unwrap_or(default * (batch_size as f64 / CPU_BATCH_SIZE as f64).sqrt())
    }

    pub fn source(&self) -> Source {
        Source {
            data: self.data.clone(),
            adapter: self.adapter.clone(),
            sql: self.sql.clone(),
        }
    }

    pub fn vocabulary_options(&self) -> VocabularyOptions {
        VocabularyOptions {
            min_count: self.min_count,
            max_rows: self.max_embedding_rows,
        }
    }

    /// The options of [`super::workflow::TrainingSet::prepare`]; `merged_feedback` as given.
    pub fn prepare_options(&self, merged_feedback: bool) -> Result<PrepareOptions> {
        let parse = |key: &str, t: &Option<String>| {
            t.as_deref()
                .map(parse_time)
                .transpose()
                .with_context(|| format!("setting `{key}`"))
        };
        Ok(PrepareOptions {
            seq_len: self.seq_len,
            vocabulary: Some(self.vocabulary_options()),
            valid_from: parse("valid_from", &self.valid_from)?,
            test_from: parse("test_from", &self.test_from)?,
            work: self.work.clone(),
            merged_feedback,
            as_of_midnight: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_list_is_exactly_the_settings_keys() {
        crate::io::job_file::check_keys::<TrainSettings>(KEYS).unwrap();
    }

    #[test]
    fn the_batch_size_defaults_by_device_and_the_learning_rate_follows_its_square_root() {
        let unset = TrainSettings::default();
        assert_eq!(unset.batch_size_on(Device::Cpu), CPU_BATCH_SIZE);
        assert_eq!(unset.batch_size_on(Device::Cuda(0)), GPU_BATCH_SIZE);
        assert!((unset.learning_rate(256, 0.005) - 0.005).abs() < 1e-12);
        assert!((unset.learning_rate(1024, 0.005) - 0.01).abs() < 1e-12);
        assert!((unset.learning_rate(64, 0.004) - 0.002).abs() < 1e-12);
        let set = TrainSettings {
            batch_size: Some(64),
            learning_rate: Some(0.001),
            ..Default::default()
        };
        assert_eq!(set.batch_size_on(Device::Cuda(0)), 64, "a set size wins");
        assert_eq!(
            set.learning_rate(64, 0.005),
            0.001,
            "a set rate is not scaled"
        );
    }
}
