//! A session ready to score a job's day: the model's functions registered, the inputs
//! checked, the views `feedback` and `scoring_input` defined as of the day.

use std::sync::Arc;

use anyhow::{ensure, Result};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::job::Job;
use crate::data::contract::Preflight;
use crate::data::pipeline::{self, ModelInput, Scratch};
use crate::data::script::{Params, Script};
use crate::engine::cluster::connect;
use crate::engine::session::{self, EngineOptions};
use crate::io::failure::{Failure, MarkFailure};
use crate::io::Location;
use crate::model::device::{DeviceChoice, Precision};
use crate::model::registry;
use crate::model::scorer::{Scorer, DEFAULT_BATCH_SIZE, DEFAULT_GPU_BATCH_SIZE};
use crate::udfs;

/// How a scoring model runs: the `--device`, `--batch-size`, `--workers` and
/// `--precision` flags and job keys; `None` picks the default for the device.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScorerOptions {
    pub device: DeviceChoice,
    pub batch_size: Option<usize>,
    pub workers: Option<usize>,
    pub precision: Precision,
}

/// Loads the model at `model` (local or s3://) onto `device` as a scorer of at most
/// `batch_size` candidates per call (default [`DEFAULT_BATCH_SIZE`] on a CPU,
/// [`DEFAULT_GPU_BATCH_SIZE`] on a GPU) with `workers` copies
/// of the model (see [`Scorer`]; default: one per core on a CPU, one on a GPU), its weights
/// cast to `precision`. On a CPU with several workers, each call's operators get an equal
/// share of the cores (libtorch's intra-op threads). On 2 cores, 2 workers scored 1.52x the
/// candidates per second of one worker with 2 threads, end to end (docs/benchmarks.md).
pub async fn load_scorer(model: &str, options: ScorerOptions) -> Result<Arc<Scorer>> {
    let ScorerOptions {
        device,
        batch_size,
        workers,
        precision,
    } = options;
    let device = device.resolve().failure(Failure::Infrastructure)?;
    let batch_size = batch_size.unwrap_or(if device == tch::Device::Cpu {
        DEFAULT_BATCH_SIZE
    } else {
        DEFAULT_GPU_BATCH_SIZE
    });
    ensure!(batch_size > 0, "the batch size must be at least 1");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = workers.unwrap_or(if device == tch::Device::Cpu { cores } else { 1 });
    ensure!(
        (1..=256).contains(&workers),
        "workers must be between 1 and 256, not {workers}"
    );
    let mut artifact = registry::open(model, device)
        .await
        .failure(Failure::BadInput)?;
    artifact.model.set_precision(precision);
    if device == tch::Device::Cpu && workers > 1 {
        tch::set_num_threads((cores / workers).max(1) as i32);
    }
    Ok(Arc::new(Scorer::with_workers(
        artifact, batch_size, workers,
    )?))
}

/// A session ready to score a job's day: the model registered behind `dumn_score`,
/// `dumn_ctr` and `dumn_dislike`, the input tables checked, and the views `feedback` and
/// `scoring_input` defined as of `date`. On a cluster the candidates ordered by user are
/// written to `scratch`, under the job's output root, which [`Scoring::close`] removes.
pub struct Scoring {
    pub ctx: SessionContext,
    pub scorer: Arc<Scorer>,
    pub checks: Preflight,
    scratch: Scratch,
}

impl Scoring {
    /// Opens the session of `job` for `date`, scoring with `scorer`, in this process or
    /// on the cluster whose scheduler is at `cluster`.
    pub async fn open(
        job: &Job,
        date: NaiveDate,
        scorer: Arc<Scorer>,
        engine: &EngineOptions,
        cluster: Option<&str>,
    ) -> Result<Scoring> {
        let local = session::context(engine)?;
        let (ctx, scratch) = match cluster {
            Some(url) => {
                let ctx = connect(&local, url, Some(scorer.clone())).await?;
                let run = format!(
                    "{date}-{}-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S"),
                    std::process::id()
                );
                let scratch = Location::parse(&job.out)?.join("_scratch").join(&run);
                (ctx, Scratch::At(scratch))
            }
            None => {
                udfs::register_model(&local, Some(scorer.clone()));
                (local, Scratch::Temporary)
            }
        };
        match Self::define(job, date, &ctx, &scorer, &scratch).await {
            Ok(checks) => Ok(Scoring {
                ctx,
                scorer,
                checks,
                scratch,
            }),
            Err(e) => {
                scratch.remove().await;
                Err(e)
            }
        }
    }

    /// Removes what the session wrote besides its outputs (on a cluster, the scratch
    /// folder).
    pub async fn close(self) {
        self.scratch.remove().await;
    }

    async fn define(
        job: &Job,
        date: NaiveDate,
        ctx: &SessionContext,
        scorer: &Scorer,
        scratch: &Scratch,
    ) -> Result<Preflight> {
        let params = Params::new()
            .seq_len(scorer.manifest().config.seq_len as usize)?
            .lookback(
                date.and_hms_opt(0, 0, 0).expect("midnight"),
                job.lookback_days,
            );
        let last = job.sql.as_deref().map(Script::from_file).transpose()?;
        let mut inputs = job.inputs()?;
        if job.lookback_days > 0 {
            let first = date - chrono::Days::new(u64::from(job.lookback_days));
            inputs.event_days = Some((first, date - chrono::Days::new(1)));
        }
        let (df, checks) = pipeline::prepare(
            ctx,
            &inputs,
            ModelInput::Scoring,
            last.as_ref(),
            &params,
            scratch,
        )
        .await?;
        let have: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for col in scorer.input_columns() {
            ensure!(
                have.contains(&col),
                "model {} reads the column `{col}`, which `scoring_input` ({}) does not have; \
                 it has: {}. Score with a model trained on these columns, or add `{col}` to \
                 the SQL",
                scorer.model_version(),
                last.as_ref()
                    .map_or("sql/scoring_input.sql", |s| s.name.as_str()),
                have.join(", ")
            );
        }
        Ok(checks)
    }
}
