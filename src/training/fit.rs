//! The training loop of `dumn train`: epochs over streamed examples, validation after each
//! epoch, early stopping, and the best-on-validation weights kept (never chosen on test).
//!
//! Contract:
//! - each epoch streams the train split once in a fresh random order that mixes users
//!   ([`ExampleFiles::stream_shuffled`], seeded by the run's seed and the epoch), then
//!   through a shuffle buffer of `shuffle_buffer` rows, in minibatches of `batch_size`;
//! - after each epoch the validation metric of the chosen label (AUC) is computed; the
//!   weights of the best epoch so far are copied aside; training stops after `patience`
//!   epochs without improvement or after `epochs`;
//! - the model ends with the best epoch's weights, and only then is the test split scored.

use std::collections::VecDeque;

use anyhow::{anyhow, bail, Result};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};
use tokio::sync::mpsc;

use super::dataset::{ExampleFiles, Part, Split};
use super::evaluate::{evaluate, score, Label, Metrics, Scored, EVAL_BATCH};
use super::step::Trainer;
use crate::io::failure::{Failure, MarkFailure};
use crate::model::{Batch, Dumn, ModelConfig, Rows};

/// Training steps between two reads of the running loss (each read waits for the
/// device; progress shows the mean loss of the steps since the last read).
const READ_EVERY: u64 = 20;

/// How the learning rate moves over the planned steps.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// The model's learning rate throughout (the paper's).
    #[default]
    Constant,
    /// Cosine decay from the learning rate to a tenth of it over `epochs` epochs.
    Cosine,
}

impl Schedule {
    /// The factor on the learning rate at `step` of `total` steps.
    pub fn factor(self, step: u64, total: u64) -> f64 {
        match self {
            Schedule::Constant => 1.0,
            Schedule::Cosine => {
                let t = (step as f64 / total.max(1) as f64).min(1.0);
                0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

/// One epoch's minibatches: the stream's batches become [`Rows`], fill the shuffle buffer
/// (`shuffle_buffer` rows, whose order is shuffled with `rng`; the remainder smaller than
/// a minibatch waits for the next round) and leave as minibatches of `batch_size` on
/// `device`, in order. Built on the training thread ([`Minibatches::next`]) or ahead of
/// it on a task of their own ([`Minibatches::spawn`]): the batches are the same.
struct Minibatches {
    stream: SendableRecordBatchStream,
    config: ModelConfig,
    device: Device,
    rng: StdRng,
    shuffle_buffer: usize,
    batch_size: usize,
    /// Rows waiting for the next shuffle.
    buffer: Rows,
    /// The last shuffled buffer, and its minibatches (rows of it, in shuffled order)
    /// waiting for their tensors.
    shuffled: Rows,
    ready: VecDeque<Vec<usize>>,
    done: bool,
}

impl Minibatches {
    /// An epoch's minibatches from `stream`, with the loop's settings of `cfg`.
    fn new(
        stream: SendableRecordBatchStream,
        config: ModelConfig,
        device: Device,
        rng: StdRng,
        cfg: &FitConfig,
    ) -> Self {
        Self {
            stream,
            config,
            device,
            rng,
            shuffle_buffer: cfg.shuffle_buffer,
            batch_size: cfg.batch_size,
            buffer: Rows::default(),
            shuffled: Rows::default(),
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// The next minibatch; None at the end of the epoch.
    async fn next(&mut self) -> Result<Option<Batch>> {
        loop {
            if let Some(rows) = self.ready.pop_front() {
                return Batch::new(&self.config, &self.shuffled, &rows, self.device).map(Some);
            }
            if self.done {
                return Ok(None);
            }
            match self.stream.next().await {
                Some(batch) => {
                    self.buffer
                        .append(Rows::from_batch(&batch?, &self.config.schema, true)?)
                }
                None => self.done = true,
            }
            let n = self.buffer.len();
            if n >= self.shuffle_buffer || (self.done && n > 0) {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(&mut self.rng);
                let keep = if self.done { 0 } else { n % self.batch_size };
                let rest = self.buffer.select(&order[n - keep..]);
                self.shuffled = std::mem::replace(&mut self.buffer, rest);
                self.ready.extend(
                    order[..n - keep]
                        .chunks(self.batch_size)
                        .map(<[usize]>::to_vec),
                );
            }
        }
    }

    /// Builds the minibatches on a task of their own, at most `ahead` ahead of the
    /// receiver, so that decoding and tensor building overlap the training step; an error
    /// ends the stream. The task hands the generator back at the end, so the next epoch
    /// continues its sequence.
    fn spawn(
        mut self,
        ahead: usize,
    ) -> (
        mpsc::Receiver<Result<Batch>>,
        tokio::task::JoinHandle<StdRng>,
    ) {
        let (tx, rx) = mpsc::channel(ahead.max(1));
        let task = tokio::spawn(async move {
            loop {
                let next = self.next().await.transpose();
                let Some(next) = next else { break };
                let failed = next.is_err();
                if tx.send(next).await.is_err() || failed {
                    break; // the training loop stopped listening, or told of the error
                }
            }
            self.rng
        });
        (rx, task)
    }
}

/// Where the training loop takes its minibatches from.
enum Feed {
    /// Built on the training thread, when asked for.
    Inline(Box<Minibatches>),
    /// Built ahead on a task of their own ([`Minibatches::spawn`]).
    Ahead(
        mpsc::Receiver<Result<Batch>>,
        tokio::task::JoinHandle<StdRng>,
    ),
}

impl Feed {
    /// `minibatches` built `ahead` of the step on a task, or on the training thread when
    /// `ahead` is 0.
    fn new(minibatches: Minibatches, ahead: usize) -> Self {
        if ahead > 0 {
            let (rx, task) = minibatches.spawn(ahead);
            Feed::Ahead(rx, task)
        } else {
            Feed::Inline(Box::new(minibatches))
        }
    }

    /// The next minibatch; None at the end of the epoch.
    async fn next(&mut self) -> Result<Option<Batch>> {
        match self {
            Feed::Inline(m) => m.next().await,
            Feed::Ahead(rx, _) => rx.recv().await.transpose(),
        }
    }

    /// The shuffle's generator, back for the next epoch.
    async fn finish(self) -> Result<StdRng> {
        Ok(match self {
            Feed::Inline(m) => m.rng,
            Feed::Ahead(_, task) => task.await?,
        })
    }
}

/// Minibatches built ahead of the training step on a GPU unless configured otherwise.
const GPU_PREFETCH: usize = 4;

/// Settings of the loop.
#[derive(Debug, Clone, Serialize)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub patience: usize,
    pub shuffle_buffer: usize,
    pub seed: u64,
    pub label: Label,
    pub schedule: Schedule,
    /// Minibatches built ahead of the step on a task of their own (None: 4 on a GPU, 0 on
    /// a CPU). It changes no result, so it is not part of the recorded settings.
    #[serde(skip)]
    pub prefetch: Option<usize>,
}

/// One epoch's record, for the report and the learning curve.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_examples: u64,
    pub seconds: f64,
    pub examples_per_second: f64,
    pub valid: Metrics,
}

/// What [`EarlyStopping::update`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A new best: keep these weights.
    Improved,
    /// Not better; go on.
    Continue,
    /// `patience` epochs without improvement: stop.
    Stop,
}

/// Tracks the best validation metric (higher is better).
#[derive(Debug, Clone)]
pub struct EarlyStopping {
    patience: usize,
    pub best_epoch: Option<usize>,
    best: f64,
    since_best: usize,
}

impl EarlyStopping {
    pub fn new(patience: usize) -> Self {
        Self {
            patience: patience.max(1),
            best_epoch: None,
            best: f64::NEG_INFINITY,
            since_best: 0,
        }
    }

    /// Records `metric` of `epoch` (1-based). A metric that is not a number never improves.
    pub fn update(&mut self, epoch: usize, metric: f64) -> Decision {
        if metric > self.best {
            self.best = metric;
            self.best_epoch = Some(epoch);
            self.since_best = 0;
            Decision::Improved
        } else {
            self.since_best += 1;
            if self.since_best >= self.patience {
                Decision::Stop
            } else {
                Decision::Continue
            }
        }
    }
}

/// The outcome of [`fit`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FitResult {
    pub epochs: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub valid: Metrics,
    pub test: Metrics,
    /// The test split's rows as scored by the kept weights (for paired comparisons; not
    /// part of the report).
    #[serde(skip)]
    pub test_scored: Scored,
}

impl FitResult {
    /// `best epoch B of N; validation …; test …`.
    pub fn summary(&self) -> String {
        format!(
            "best epoch {} of {}; validation {}; test {}",
            self.best_epoch,
            self.epochs.len(),
            self.valid.summary(),
            self.test.summary()
        )
    }
}

/// Progress callbacks: examples seen in the epoch and the running loss.
pub trait Progress {
    fn epoch_start(&self, epoch: usize, rows: u64);
    /// `examples` seen so far in the epoch; `loss`: the mean loss of the steps since the
    /// last call (called every few steps, see `READ_EVERY`, and at the end of the epoch).
    fn step(&self, examples: u64, loss: f64);
    fn epoch_end(&self, record: &EpochRecord, improved: bool);
    /// The fit is over (called by the caller of [`fit`], before it prints its results).
    fn finish(&self) {}
}

/// Trains `model` on the train split of `files` (see the module's contract).
pub async fn fit(
    model: &mut Dumn,
    files: &ExampleFiles,
    split: &Split,
    cfg: &FitConfig,
    progress: &dyn Progress,
) -> Result<FitResult> {
    let train_rows = files.count(&split.predicate(Part::Train)).await?;
    let valid_rows = files.count(&split.predicate(Part::Valid)).await?;
    if train_rows == 0 {
        return Err(anyhow!(
            "the {} split has no examples; move the split later",
            split.describe(Part::Train)
        ))
        .failure(Failure::BadInput);
    }
    if valid_rows == 0 {
        return Err(anyhow!(
            "the {} split has no examples; early stopping needs one",
            split.describe(Part::Valid)
        ))
        .failure(Failure::BadInput);
    }
    // Both classes in both splits, before any epoch: a split of one class teaches nothing
    // (train) or cannot rank (validation, whose AUC early stopping reads).
    let label = cfg.label.column();
    for part in [Part::Train, Part::Valid] {
        let positives = files
            .count(&format!(
                "({}) AND CAST({label} AS BIGINT) = 1",
                split.predicate(part)
            ))
            .await?;
        let rows = if part == Part::Train {
            train_rows
        } else {
            valid_rows
        };
        if positives == 0 || positives == rows {
            return Err(anyhow!(
                "the {} split holds only {} `{label}` labels ({rows} rows): it needs both \
                 classes; move the split or check the label",
                split.describe(part),
                if positives == 0 {
                    "negative"
                } else {
                    "positive"
                }
            ))
            .failure(Failure::BadInput);
        }
    }
    let device = model.device();
    let mut best = Dumn::new(model.config.clone(), Device::Cpu)?;
    let mut stopping = EarlyStopping::new(cfg.patience);
    let mut records = Vec::new();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut trainer = Trainer::new(model)?;
    let base_lr = model.config.learning_rate;
    let planned_steps = cfg.epochs.max(1) as u64 * train_rows.div_ceil(cfg.batch_size as u64);
    for epoch in 1..=cfg.epochs.max(1) {
        progress.epoch_start(epoch, train_rows);
        let started = std::time::Instant::now();
        let (mut seen, mut steps) = (0u64, 0u64);
        // The epoch's summed loss stays on the device; it is read every READ_EVERY steps
        // (for progress) and at the end of the epoch.
        let mut loss_sum = Tensor::zeros([], (Kind::Double, device));
        let (mut read_sum, mut read_steps) = (0.0, 0u64);
        let order_seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64);
        let stream = files
            .stream_shuffled(&split.predicate(Part::Train), order_seed)
            .await?;
        let ahead = cfg
            .prefetch
            .unwrap_or(if device.is_cuda() { GPU_PREFETCH } else { 0 });
        let mut feed = Feed::new(
            Minibatches::new(stream, model.config.clone(), device, rng, cfg),
            ahead,
        );
        while let Some(batch) = feed.next().await? {
            trainer.set_learning_rate(base_lr * cfg.schedule.factor(trainer.steps, planned_steps));
            let losses = trainer.step(model, &batch);
            loss_sum += losses.total.to_kind(Kind::Double);
            seen += batch.size() as u64;
            steps += 1;
            if steps % READ_EVERY == 0 {
                let sum = loss_sum.double_value(&[]);
                progress.step(seen, (sum - read_sum) / (steps - read_steps) as f64);
                (read_sum, read_steps) = (sum, steps);
            }
        }
        rng = feed.finish().await?;
        let loss_sum = loss_sum.double_value(&[]);
        if steps > read_steps {
            progress.step(seen, (loss_sum - read_sum) / (steps - read_steps) as f64);
        }
        let seconds = started.elapsed().as_secs_f64();
        let valid = evaluate(
            model,
            files,
            &split.predicate(Part::Valid),
            cfg.label,
            EVAL_BATCH,
        )
        .await?;
        let metric = valid.auc.unwrap_or(f64::NAN);
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / steps.max(1) as f64,
            train_examples: seen,
            seconds,
            examples_per_second: seen as f64 / seconds.max(1e-9),
            valid,
        };
        let decision = stopping.update(epoch, metric);
        progress.epoch_end(&record, decision == Decision::Improved);
        records.push(record);
        match decision {
            Decision::Improved => best.var_store_mut().copy(model.var_store())?,
            Decision::Continue => {}
            Decision::Stop => break,
        }
    }
    let Some(best_epoch) = stopping.best_epoch else {
        bail!(
            "the validation split never gave a {} AUC (it needs both classes); nothing to keep",
            cfg.label.column()
        );
    };
    model.var_store_mut().copy(best.var_store())?;
    let valid = records[best_epoch - 1].valid.clone();
    let test_scored = score(
        model,
        files,
        &split.predicate(Part::Test),
        cfg.label,
        EVAL_BATCH,
    )
    .await?;
    Ok(FitResult {
        epochs: records,
        best_epoch,
        valid,
        test: test_scored.metrics(),
        test_scored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cosine_schedule_falls_from_one_to_a_tenth() {
        let s = Schedule::Cosine;
        assert_eq!(s.factor(0, 100), 1.0);
        assert!((s.factor(50, 100) - 0.55).abs() < 1e-12);
        assert!((s.factor(100, 100) - 0.1).abs() < 1e-12);
        assert!((s.factor(70, 100) < s.factor(60, 100)));
        assert_eq!(Schedule::Constant.factor(70, 100), 1.0);
    }

    #[test]
    fn early_stopping_keeps_the_best_validation_epoch() {
        let mut s = EarlyStopping::new(2);
        assert_eq!(s.update(1, 0.60), Decision::Improved);
        assert_eq!(s.update(2, 0.70), Decision::Improved);
        assert_eq!(s.update(3, 0.65), Decision::Continue);
        assert_eq!(s.update(4, 0.72), Decision::Improved);
        assert_eq!(s.update(5, 0.71), Decision::Continue);
        assert_eq!(s.update(6, 0.72), Decision::Stop, "equal is not better");
        assert_eq!(s.best_epoch, Some(4));
        let mut nan = EarlyStopping::new(1);
        assert_eq!(nan.update(1, f64::NAN), Decision::Stop);
        assert_eq!(nan.best_epoch, None);
    }
}
