//! Inference for scoring: a loaded model that scores rows of candidates, sharing each
//! user's work among that user's candidates.
//!
//! Contract:
//! - [`Scorer::score`] returns, for every input row and in input order, the click and the
//!   dislike probability;
//! - rows with the same user inputs (profile values and the four sequences) form one
//!   *user*: its [`Dumn::user_step`] (embeddings, the self-attention of eq. 1-2, the
//!   user-only halves of eq. 3 and eq. 8) runs once, and [`Dumn::candidate_step`] scores
//!   all its candidates. Grouping is by value, not by position, so rows of one user need
//!   not be adjacent; the data plane delivers them adjacent only so that they share a call;
//! - a score depends on its own row only: not on the other rows of the call, their order,
//!   or the batch size (inference never writes the memories of eq. 12, and every equation
//!   masks padding). Different batch shapes may change the last bits of a float (results
//!   agree within 1e-5);
//! - the model runs under no-grad, in chunks of at most `batch_size` candidates, on the
//!   device it was loaded on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tch::Device;

use super::artifact::{Artifact, Manifest};
use super::device::Precision;
use super::features::FeatureSchema;
use super::inputs::model_inputs;
use super::{heads_to_host, CandidateBatch, Dumn, Rows, UserBatch};

/// Candidates per model call on a CPU unless configured otherwise. On 2 CPU cores 2,048
/// scored fastest (about 5% ahead of 4,096: every temporary of a pass then stays under the
/// C allocator's 32 MiB reuse limit, see [`super::device::tune_allocator`]).
pub const DEFAULT_BATCH_SIZE: usize = 2048;

/// Candidates per model call on a GPU unless configured otherwise. A call of 2,048 keeps
/// an H200 busy for a few milliseconds between waits (docs/benchmarks.md); 16,384 makes
/// eight times fewer calls with about 0.3 GB of temporaries per call (the memory
/// controller's `[S, N, 512]` is the largest). Not yet measured against other sizes: no GPU
/// has been lent since.
pub const DEFAULT_GPU_BATCH_SIZE: usize = 16_384;

/// Click and dislike probability of one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    pub ctr: f32,
    pub p_dislike: f32,
}

/// Counters of what a scorer did, for progress and benchmarks.
#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    rows: AtomicU64,
    users: AtomicU64,
    nanos: AtomicU64,
}

/// What a scorer has done so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScorerStats {
    /// Forward passes run.
    pub calls: u64,
    /// Candidates scored.
    pub rows: u64,
    /// User steps run (distinct users per call, summed over calls).
    pub users: u64,
    /// Time spent building the input tensors and holding the model (the forward, reading
    /// the results); not the time spent waiting for a worker.
    pub model_time: Duration,
}

/// A loaded model ready to score. One per process: every partition of a query shares it.
/// It holds one or more *workers*, copies of the model with the same weights: a call takes
/// a free worker (or waits for one), so with several workers the partitions of a query
/// score in parallel, tensor building included. One worker serialises calls, which suits a
/// GPU (one device) and a CPU model whose operators already use every core.
#[derive(Debug)]
pub struct Scorer {
    workers: Vec<Mutex<Dumn>>,
    /// Where the workers' weights live, and their float type.
    device: Device,
    precision: Precision,
    next: AtomicU64,
    manifest: Manifest,
    batch_size: usize,
    counters: Counters,
}

impl Scorer {
    /// Wraps a loaded artifact in one worker; `batch_size` is the most candidates per
    /// model call.
    pub fn new(artifact: Artifact, batch_size: usize) -> Self {
        Self {
            device: artifact.model.device(),
            precision: artifact.model.precision(),
            workers: vec![Mutex::new(artifact.model)],
            next: AtomicU64::new(0),
            manifest: artifact.manifest,
            batch_size: batch_size.max(1),
            counters: Counters::default(),
        }
    }

    /// [`Scorer::new`] with `workers` copies of the model (at least one). Scores do not
    /// depend on the number of workers (see the module's contract).
    pub fn with_workers(artifact: Artifact, batch_size: usize, workers: usize) -> Result<Self> {
        let mut scorer = Self::new(artifact, batch_size);
        let first = scorer.workers[0]
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        let mut copies = Vec::new();
        for _ in 1..workers.max(1) {
            let mut copy = Dumn::new(first.config.clone(), first.device())
                .context("building a copy of the model for another worker")?;
            copy.set_precision(first.precision());
            copy.var_store_mut()
                .copy(first.var_store())
                .context("copying the weights to another worker")?;
            copies.push(Mutex::new(copy));
        }
        scorer.workers.extend(copies);
        Ok(scorer)
    }

    /// How many calls may run at once.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// A free worker, else (all busy) the next one in turn, waited for.
    fn worker(&self) -> std::sync::MutexGuard<'_, Dumn> {
        let n = self.workers.len();
        let start = (self.next.fetch_add(1, Ordering::Relaxed) % n as u64) as usize;
        for k in 0..n {
            if let Ok(guard) = self.workers[(start + k) % n].try_lock() {
                return guard;
            }
        }
        // A panic in a call is caught inside it (see `score`), so a poisoned lock only
        // means a panic elsewhere; the model is still whole.
        self.workers[start]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn model_version(&self) -> &str {
        &self.manifest.model_version
    }

    pub fn schema(&self) -> &FeatureSchema {
        &self.manifest.config.schema
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The input columns in argument order: the user fields (`user_id` first), the item
    /// fields (`item_id` first), then `click_seq`, `unclick_seq`, `like_seq`, `dislike_seq`.
    pub fn input_columns(&self) -> Vec<String> {
        model_inputs(self.schema())
    }

    pub fn stats(&self) -> ScorerStats {
        ScorerStats {
            calls: self.counters.calls.load(Ordering::Relaxed),
            rows: self.counters.rows.load(Ordering::Relaxed),
            users: self.counters.users.load(Ordering::Relaxed),
            model_time: Duration::from_nanos(self.counters.nanos.load(Ordering::Relaxed)),
        }
    }

    /// Scores every row (labels are ignored), in input order.
    ///
    /// The input tensors of every model call are built (and, to a GPU, queued for copying,
    /// see [`super::batch::upload`]) before a worker is taken: while one partition's call
    /// holds the model, the others build theirs, so with one worker on a GPU the host's
    /// work overlaps the device's. The partitions waiting for the worker are the queue
    /// between the two, bounded by their number.
    pub fn score(&self, rows: &Rows) -> Result<Vec<Scores>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let users = group_by_user(rows);
        let chunks = chunks(&users, self.batch_size);
        let config = &self.manifest.config;
        let inputs = chunks
            .iter()
            .map(|chunk| {
                let users: Vec<usize> = chunk.iter().map(|p| p.rows[0]).collect();
                let items: Vec<&[usize]> = chunk.iter().map(|p| p.rows).collect();
                catch_libtorch(|| {
                    Ok((
                        UserBatch::new(config, rows, &users, self.device)?,
                        CandidateBatch::new(config, rows, &items, self.device)?,
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
            .context("building the model's input tensors")?;
        let built = start.elapsed();
        let mut out = vec![
            Scores {
                ctr: f32::NAN,
                p_dislike: f32::NAN
            };
            rows.len()
        ];
        // A panic in a model call is caught inside it, so the lock is never poisoned.
        let model = self.worker();
        let held = Instant::now();
        for (chunk, (ub, cb)) in chunks.iter().zip(&inputs) {
            let probs = catch_libtorch(|| {
                Ok(tch::no_grad(|| {
                    let state = model.user_step(ub);
                    model.candidate_step(&state, cb).sigmoid()
                }))
            })
            .context("scoring a batch of candidates")?;
            let [ctr, dislike] = heads_to_host(&probs)?;
            let mut i = 0;
            for piece in chunk {
                for &r in piece.rows {
                    out[r] = Scores {
                        ctr: ctr[i],
                        p_dislike: dislike[i],
                    };
                    i += 1;
                }
            }
        }
        drop(model);
        let busy = built + held.elapsed();
        let c = &self.counters;
        c.calls.fetch_add(chunks.len() as u64, Ordering::Relaxed);
        c.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        c.users.fetch_add(users.len() as u64, Ordering::Relaxed);
        c.nanos.fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
        Ok(out)
    }
}

/// Runs `f`, turning a panic into an error. libtorch errors (a bad shape, CUDA out of
/// memory) surface as panics in tch: caught, they fail the call with an error and leave the
/// scorer usable.
fn catch_libtorch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        Err(anyhow::anyhow!(
            "the model failed (libtorch panicked): {message}"
        ))
    })
}

/// Row `r` of `rows` as a key that is equal for rows of the same user (see
/// [`Rows::same_user`]).
struct UserKey<'a> {
    rows: &'a Rows,
    r: usize,
}

impl std::hash::Hash for UserKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.rows.hash_user(self.r, state);
    }
}

impl PartialEq for UserKey<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.rows.same_user(self.r, other.r)
    }
}

impl Eq for UserKey<'_> {}

/// The rows of one distinct user, in input order. Rows of one user usually arrive
/// adjacent, so a row is first compared with the one before it.
fn group_by_user(rows: &Rows) -> Vec<Vec<usize>> {
    let mut index: HashMap<UserKey, usize> = HashMap::new();
    let mut users: Vec<Vec<usize>> = Vec::new();
    let mut last = None;
    for r in 0..rows.len() {
        let u = match last {
            Some(u) if rows.same_user(r - 1, r) => u,
            _ => *index.entry(UserKey { rows, r }).or_insert_with(|| {
                users.push(Vec::new());
                users.len() - 1
            }),
        };
        users[u].push(r);
        last = Some(u);
    }
    users
}

/// A run of one user's rows that goes into one model call.
struct Piece<'a> {
    rows: &'a [usize],
}

/// Cuts users into model calls of at most `batch_size` candidates. A user with more
/// candidates than that is cut into pieces, each with its own (identical) user step.
fn chunks(users: &[Vec<usize>], batch_size: usize) -> Vec<Vec<Piece<'_>>> {
    let mut out = Vec::new();
    let mut current: Vec<Piece> = Vec::new();
    let mut size = 0;
    for rows in users {
        for part in rows.chunks(batch_size) {
            if size + part.len() > batch_size && !current.is_empty() {
                out.push(std::mem::take(&mut current));
                size = 0;
            }
            size += part.len();
            current.push(Piece { rows: part });
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Example, History};

    #[test]
    fn rows_group_by_user_values_wherever_they_are() {
        let row = |user: i64, clicks: Vec<i64>| Example {
            user: vec![Some(user)],
            item: vec![Some(7)],
            history: History {
                items: [clicks, vec![], vec![], vec![]],
                feedback: None,
            },
            click: false,
            dislike: false,
        };
        // Users 1 and 2, and user 1 again with another history (another user to the
        // model); user 1's first rows are not all adjacent.
        let rows = Rows::from_examples(&[
            row(1, vec![5]),
            row(1, vec![5]),
            row(2, vec![5]),
            row(1, vec![5]),
            row(1, vec![6]),
            row(2, vec![5]),
        ]);
        assert_eq!(
            group_by_user(&rows),
            vec![vec![0, 1, 3], vec![2, 5], vec![4]]
        );
    }

    #[test]
    fn chunks_hold_at_most_batch_size_and_keep_every_row_once() {
        let users: Vec<Vec<usize>> = vec![(0..5).collect(), (5..17).collect(), vec![17]];
        for bs in [1, 3, 4, 7, 100] {
            let chunks = chunks(&users, bs);
            let mut seen = Vec::new();
            for c in &chunks {
                assert!(c.iter().map(|p| p.rows.len()).sum::<usize>() <= bs);
                seen.extend(c.iter().flat_map(|p| p.rows.iter().copied()));
            }
            seen.sort();
            assert_eq!(seen, (0..18).collect::<Vec<_>>(), "batch size {bs}");
        }
        assert_eq!(chunks(&users, 100).len(), 1);
    }
}
