//! Evaluating a model: the metrics of one label on a split of the materialised examples
//! ([`evaluate`]), or of both labels on examples in memory ([`evaluate_in_memory`]).
//!
//! Contract: scores come from [`Dumn::predict`] (no memory write, no gradient); AUC and
//! logloss are over every row, GAUC weights each user's AUC by their rows and skips users
//! whose rows all share one label (see [`super::metrics`]).

use anyhow::Result;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::dataset::ExampleFiles;
use super::metrics::{auc, gauc, logloss};
use crate::model::{heads_to_host, Batch, Dumn, Rows, HEAD_CLICK, HEAD_DISLIKE};

/// Which label the model is selected and reported on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// The click-through rate: column `clicked`, the click head.
    Click,
    /// The dislike probability of paper §4.5: column `disliked`, the dislike head.
    Dislike,
}

impl Label {
    pub fn column(self) -> &'static str {
        match self {
            Label::Click => "clicked",
            Label::Dislike => "disliked",
        }
    }

    pub fn head(self) -> i64 {
        match self {
            Label::Click => HEAD_CLICK,
            Label::Dislike => HEAD_DISLIKE,
        }
    }

    /// This label of every row of `rows`.
    pub fn of(self, rows: &Rows) -> &[bool] {
        match self {
            Label::Click => &rows.clicked,
            Label::Dislike => &rows.disliked,
        }
    }
}

/// Metrics of one label on one split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    pub rows: usize,
    pub auc: Option<f64>,
    pub gauc: Option<f64>,
    /// Users in the split, and those skipped by GAUC because all their impressions have one
    /// label.
    pub gauc_users: usize,
    pub gauc_skipped_users: usize,
    pub logloss: f64,
}

impl Metrics {
    pub fn summary(&self) -> String {
        let f = |v: Option<f64>| v.map_or("n/a".into(), |v| format!("{v:.4}"));
        format!(
            "AUC {} GAUC {} logloss {:.4} ({} rows; GAUC skipped {} of {} users with one class)",
            f(self.auc),
            f(self.gauc),
            self.logloss,
            self.rows,
            self.gauc_skipped_users,
            self.gauc_users
        )
    }
}

/// Examples per forward pass when evaluating.
pub const EVAL_BATCH: usize = 1024;

/// Every scored row of a split, in the files' order: the same rows in the same order for
/// every model scored on the same files (what a paired comparison needs).
#[derive(Debug, Clone, Default)]
pub struct Scored {
    pub users: Vec<i64>,
    pub scores: Vec<f32>,
    pub labels: Vec<bool>,
}

impl Scored {
    pub fn metrics(&self) -> Metrics {
        let g = gauc(&self.users, &self.scores, &self.labels);
        Metrics {
            rows: self.scores.len(),
            auc: auc(&self.scores, &self.labels),
            gauc: g.value,
            gauc_users: g.users,
            gauc_skipped_users: g.skipped_users,
            logloss: logloss(&self.scores, &self.labels),
        }
    }
}

/// Scores every row of `files` that matches `predicate` (SQL on the examples' columns,
/// e.g. a split's [`super::dataset::Split::predicate`]) and computes the metrics of
/// `label`.
pub async fn evaluate(
    model: &Dumn,
    files: &ExampleFiles,
    predicate: &str,
    label: Label,
    batch_size: usize,
) -> Result<Metrics> {
    Ok(score(model, files, predicate, label, batch_size)
        .await?
        .metrics())
}

/// The probabilities of `label` for every row of `files` that matches `predicate`.
pub async fn score(
    model: &Dumn,
    files: &ExampleFiles,
    predicate: &str,
    label: Label,
    batch_size: usize,
) -> Result<Scored> {
    let schema = &model.config.schema;
    let (mut users, mut scores, mut labels) = (Vec::new(), Vec::new(), Vec::new());
    let mut stream = files.stream(predicate).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let (u, _) = ExampleFiles::users_and_times(&batch)?;
        let rows = Rows::from_batch(&batch, schema, true)?;
        let mut heads = predict(model, &rows, batch_size)?;
        scores.append(&mut heads[label.head() as usize]);
        labels.extend_from_slice(label.of(&rows));
        users.extend_from_slice(&u);
    }
    Ok(Scored {
        users,
        scores,
        labels,
    })
}

/// Both labels' metrics of a model on examples held in memory (the demo's and the tests'
/// generated examples).
#[derive(Debug, Clone, Copy)]
pub struct InMemoryMetrics {
    pub click_auc: Option<f64>,
    pub dislike_auc: Option<f64>,
    pub click_logloss: f64,
    pub rows: usize,
}

/// Scores `rows` in batches and computes AUC and logloss.
pub fn evaluate_in_memory(model: &Dumn, rows: &Rows, batch_size: usize) -> Result<InMemoryMetrics> {
    let [click, dislike] = predict(model, rows, batch_size)?;
    Ok(InMemoryMetrics {
        click_auc: auc(&click, &rows.clicked),
        dislike_auc: auc(&dislike, &rows.disliked),
        click_logloss: logloss(&click, &rows.clicked),
        rows: rows.len(),
    })
}

/// The probabilities of every row of `rows` per output head (see [`heads_to_host`]), in
/// forward passes of at most `batch_size` rows.
fn predict(model: &Dumn, rows: &Rows, batch_size: usize) -> Result<[Vec<f32>; 2]> {
    let all: Vec<usize> = (0..rows.len()).collect();
    let mut heads = [
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    ];
    for chunk in all.chunks(batch_size.max(1)) {
        let batch = Batch::new(&model.config, rows, chunk, model.device())?;
        for (out, part) in heads.iter_mut().zip(heads_to_host(&model.predict(&batch))?) {
            out.extend(part);
        }
    }
    Ok(heads)
}
