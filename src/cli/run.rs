//! `dumn run JOB.toml`: flags in, [`dumn::scoring::run`] does the work. Also the model and
//! cluster flags that `dumn sql` and `dumn executor` share.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use indicatif::ProgressBar;

use dumn::io::lease::Lease;
use dumn::model::device::{DeviceChoice, Precision};
use dumn::model::scorer::Scorer;
use dumn::scoring::job::Job;
use dumn::scoring::session::{load_scorer, ScorerOptions};

use super::{row_bar, EngineArgs};

/// Flags that override the job file.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// Where the model runs: auto (CUDA when present), cpu, cuda (the first GPU) or cuda:N.
    /// Overrides the job.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceChoice>,
    /// Candidates per model call (default: the job's, else 2048 on a CPU and 16384 on a
    /// GPU, where larger calls keep the device busier).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Copies of the model that score partitions in parallel, each with an equal share of
    /// the CPU cores (default: the job's, else one per core on a CPU and one on a GPU).
    /// Overrides the job.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// The float type the model scores in: fp32 (as trained) or bf16 (half the memory
    /// traffic, for GPUs; scores move by up to about 1e-2). Overrides the job.
    #[arg(long, value_name = "fp32|bf16")]
    pub precision: Option<Precision>,
}

impl ModelArgs {
    /// Loads the model at `model` with these flags, else the job's settings.
    pub async fn scorer(&self, model: &str, job: Option<&Job>) -> Result<Arc<Scorer>> {
        let options = ScorerOptions {
            device: self
                .device
                .or(job.and_then(|j| j.device))
                .unwrap_or_default(),
            batch_size: self.batch_size.or(job.and_then(|j| j.batch_size)),
            workers: self.workers.or(job.and_then(|j| j.workers)),
            precision: self
                .precision
                .or(job.and_then(|j| j.precision))
                .unwrap_or_default(),
        };
        load_scorer(model, options).await
    }
}

/// `--cluster`: where the queries run.
#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Send the queries to the Ballista cluster whose scheduler is at URL (`host:port` or
    /// `df://host:port`; see `dumn scheduler`). Its processes must serve the job's model
    /// and reach the job's data and output under the same names (on several machines:
    /// s3://). Default: run in this process.
    #[arg(long, value_name = "URL")]
    pub cluster: Option<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// The job file (TOML): inputs, model, output root and options; see jobs/demo.toml and
    /// docs/job-file.md. Relative paths in it are read from its folder.
    pub job: PathBuf,
    /// Set any job key: KEY=VALUE (e.g. --set top_k=10, --set tables.candidates=s3://…);
    /// repeatable. Beats the job file and DUMN_<KEY> environment variables; --date and the
    /// model flags (--device, --batch-size, --workers, --precision) beat it.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop the run after this long (e.g. 90m, 2h) with exit code 5; the day stays as it
    /// was. Default: no limit.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// The day to score, YYYY-MM-DD: sequences hold feedback strictly before its midnight,
    /// and the tables go to dt=YYYY-MM-DD/. Default: the job's `date`, else today (UTC).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub async fn run(args: RunArgs) -> Result<()> {
    let job = Job::read(&args.job, &args.set)?;
    let date = job.date(args.date.as_deref())?;
    // Held for the whole run, and released even when --timeout ends it.
    let lease = dumn::scoring::run::lease_day(&job, date).await?;
    let result = super::within(args.timeout, run_job(&args, &job, date, &lease)).await;
    lease.release().await;
    result
}

async fn run_job(args: &RunArgs, job: &Job, date: NaiveDate, lease: &Lease) -> Result<()> {
    let scorer = args.model.scorer(&job.model, Some(job)).await?;
    // The bar appears once scoring starts, when the number of candidates is known.
    let bar: Arc<OnceLock<ProgressBar>> = Arc::default();
    let progress = bar.clone();
    let result = dumn::scoring::run::run(
        job,
        date,
        lease,
        scorer,
        &args.engine.options(),
        args.cluster.cluster.as_deref(),
        move |n, total| {
            progress
                .get_or_init(|| row_bar("candidates scored", total))
                .set_position(n)
        },
    )
    .await;
    if let Some(bar) = bar.get() {
        bar.finish_and_clear();
    }
    // The last line: one JSON object for schedulers and log shippers.
    println!("{}", serde_json::to_string(&result?)?);
    Ok(())
}
