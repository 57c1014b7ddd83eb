//! `dumn run JOB.toml`: the nightly scoring job.
//!
//! A run, for one day D (`--date`, else the job's `date`, else today in UTC):
//! 1. loads the model artifact (local or s3://) once, on the job's device;
//! 2. builds `scoring_input` with sql/ as of D (feedback strictly before D's midnight);
//! 3. writes `OUT/scores/dt=D/` with sql/scores.sql: one row per candidate;
//! 4. writes `OUT/ranking/dt=D/` with sql/ranking.sql, read from the scores just written;
//! 5. publishes both, each with a `_SUCCESS` marker (rows, model version) written last.
//!
//! Both tables are first written into hidden staging folders beside their targets and
//! published only when both are complete: a failed or killed run leaves day D as it was
//! (readable, from the previous run, or absent), and a re-run of D replaces that day's
//! files exactly and removes the staging folders that the failed run left (see
//! [`dumn::output::stage_parquet`]). Runs of the same day must not overlap.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use chrono::NaiveDate;
use clap::Args;
use datafusion::prelude::SessionContext;
use serde::Deserialize;

use dumn::artifact;
use dumn::contract::{self, Inputs, Preflight};
use dumn::device::{describe, DeviceChoice};
use dumn::output::stage_parquet;
use dumn::pipeline::{self, Output, Params, Script};
use dumn::scoring::{Scorer, DEFAULT_BATCH_SIZE};
use dumn::storage::{self, Location};
use dumn::{session, udfs};

use super::{row_bar, EngineArgs};

/// A scoring job file (TOML; see jobs/demo.toml). Relative paths are read from the folder
/// the command runs in.
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
    /// The model artifact (local folder or s3://).
    pub model: String,
    /// The output root: the run writes `scores/dt=D/` and `ranking/dt=D/` under it.
    pub out: String,
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
    /// Where the model runs: auto, cpu or cuda.
    pub device: Option<DeviceChoice>,
    /// Candidates with a higher dislike probability are left out of the ranking.
    #[serde(default = "default_threshold")]
    pub dislike_threshold: f64,
    /// Candidates kept per user in the ranking.
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

fn default_threshold() -> f64 {
    0.5
}

fn default_top_k() -> usize {
    50
}

impl Job {
    pub fn read(path: &std::path::Path) -> Result<Job> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the job file {}", path.display()))?;
        let job: Job =
            toml::from_str(&text).with_context(|| format!("in the job file {}", path.display()))?;
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
        Ok(job)
    }

    fn inputs(&self) -> Result<Inputs> {
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

/// Flags that override the job file.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// Where the model runs: auto (CUDA when present), cpu or cuda. Overrides the job.
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// Candidates per model call (default: the job's, else 2048). Larger keeps a GPU busier.
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
}

impl ModelArgs {
    /// Loads the model at `model` onto the chosen device.
    pub async fn scorer(&self, model: &str, job: Option<&Job>) -> Result<Arc<Scorer>> {
        let device = self
            .device
            .or(job.and_then(|j| j.device))
            .unwrap_or_default()
            .resolve()?;
        let batch_size = self
            .batch_size
            .or(job.and_then(|j| j.batch_size))
            .unwrap_or(DEFAULT_BATCH_SIZE);
        ensure!(batch_size > 0, "the batch size must be at least 1");
        let artifact = artifact::open(&Location::parse(model)?, device).await?;
        Ok(Arc::new(Scorer::new(artifact, batch_size)))
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

/// A session ready to score a job's day: the model registered behind `dumn_score`,
/// `dumn_ctr` and `dumn_dislike`, the input tables checked, and the views `feedback` and
/// `scoring_input` defined as of `date`. On a cluster the candidates ordered by user are
/// written to `scratch`, under the job's output root, which [`Scoring::close`] removes.
pub struct Scoring {
    pub ctx: SessionContext,
    pub scorer: Arc<Scorer>,
    pub checks: Preflight,
    scratch: pipeline::Scratch,
}

impl Scoring {
    pub async fn open(
        job: &Job,
        date: NaiveDate,
        model: &ModelArgs,
        engine: &EngineArgs,
        cluster: &ClusterArgs,
    ) -> Result<Scoring> {
        let scorer = model.scorer(&job.model, Some(job)).await?;
        let local = session::context(&engine.options())?;
        let (ctx, scratch) = match &cluster.cluster {
            Some(url) => {
                let ctx = dumn::cluster::connect(&local, url, Some(scorer.clone())).await?;
                let run = format!(
                    "{date}-{}-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S"),
                    std::process::id()
                );
                let scratch = Location::parse(&job.out)?.join("_scratch").join(&run);
                (ctx, pipeline::Scratch::At(scratch))
            }
            None => {
                udfs::register_model(&local, Some(scorer.clone()));
                (local, pipeline::Scratch::Temporary)
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
        scratch: &pipeline::Scratch,
    ) -> Result<Preflight> {
        let params = Params::new()
            .seq_len(scorer.manifest().config.seq_len as usize)?
            .cutoff(date.and_hms_opt(0, 0, 0).expect("midnight"));
        let last = job.sql.as_deref().map(Script::from_file).transpose()?;
        let (df, checks) = pipeline::prepare(
            ctx,
            &job.inputs()?,
            Output::Scoring,
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

#[derive(Args)]
pub struct RunArgs {
    /// The job file (TOML): inputs, model, output root and options; see jobs/demo.toml.
    pub job: PathBuf,
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

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub async fn run(args: RunArgs) -> Result<()> {
    let job = Job::read(&args.job)?;
    let date = job.date(args.date.as_deref())?;
    let out = Location::parse(&job.out)?;
    let day = format!("dt={date}");
    let scores_at = out.join("scores").join(&day);
    let ranking_at = out.join("ranking").join(&day);
    storage::check_writable(&scores_at).await?;
    storage::check_writable(&ranking_at).await?;

    let started = Instant::now();
    let scoring = Scoring::open(&job, date, &args.model, &args.engine, &args.cluster).await?;
    let result = score_day(
        &job,
        date,
        (&scores_at, &ranking_at),
        &scoring,
        &args.cluster,
        started,
    )
    .await;
    scoring.close().await;
    result
}

/// Writes and publishes the day's tables from an open [`Scoring`] session.
async fn score_day(
    job: &Job,
    date: NaiveDate,
    (scores_at, ranking_at): (&Location, &Location),
    scoring: &Scoring,
    cluster: &ClusterArgs,
    started: Instant,
) -> Result<()> {
    let Scoring {
        ctx,
        scorer,
        checks,
        ..
    } = scoring;
    let scored_at = chrono::Utc::now();
    for w in &checks.warnings {
        eprintln!("warning: {w}");
    }
    let version = scorer.model_version().to_string();
    let candidates = checks.rows.get("candidates").copied().unwrap_or(0);
    println!(
        "scoring {candidates} candidates for {date} with model {version} on {}",
        match &cluster.cluster {
            Some(url) => format!("the cluster at {url}"),
            None => describe(scorer.device()),
        }
    );

    // The score table.
    let candidate_columns: Vec<String> = ctx
        .table("candidates")
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| quoted(f.name()))
        .collect();
    let params = Params::new()
        .with("candidate_columns", candidate_columns.join(", "))
        .with(
            "model_inputs",
            scorer
                .input_columns()
                .iter()
                .map(|c| quoted(c))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .with("model_version", string_literal(&version))
        .with(
            "scored_at",
            format!(
                "CAST({} AS TIMESTAMP)",
                string_literal(&scored_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string())
            ),
        )
        .with("dislike_threshold", job.dislike_threshold.to_string())
        .with("top_k", job.top_k.to_string());
    let scores_sql = match &job.scores_sql {
        Some(p) => Script::from_file(p)?,
        None => pipeline::scores(),
    };
    scores_sql.run(ctx, &params).await?;
    let df = ctx
        .table("scores")
        .await
        .with_context(|| format!("{} must define the view `scores`", scores_sql.name))?;
    let bar = row_bar("candidates scored", candidates);
    let progress = bar.clone();
    let scores = stage_parquet(df, scores_at, move |n| progress.set_position(n)).await;
    bar.finish_and_clear();
    let scores = scores?;
    let scoring_secs = started.elapsed().as_secs_f64();

    // The ranking table, from the scores just written.
    let ranked = async {
        ctx.deregister_table("scores")?;
        contract::register(ctx, "scores", &scores.staging).await?;
        let ranking_sql = match &job.ranking_sql {
            Some(p) => Script::from_file(p)?,
            None => pipeline::ranking(),
        };
        ranking_sql.run(ctx, &params).await?;
        let df = ctx
            .table("ranking")
            .await
            .with_context(|| format!("{} must define the view `ranking`", ranking_sql.name))?;
        stage_parquet(df, ranking_at, |_| {}).await
    }
    .await;
    let ranking = match ranked {
        Ok(r) => r,
        Err(e) => {
            scores.discard().await;
            return Err(e);
        }
    };

    // Publish both; the markers come last.
    let marker = |table: &str| {
        serde_json::json!({
            "table": table,
            "date": date.to_string(),
            "model_version": version,
            "scored_at": scored_at.to_rfc3339(),
            "dislike_threshold": job.dislike_threshold,
            "top_k": job.top_k,
        })
    };
    let scored = scores.publish(scores_at, marker("scores")).await;
    let scored = match scored {
        Ok(s) => s,
        Err(e) => {
            ranking.discard().await;
            return Err(e);
        }
    };
    let ranked = ranking.publish(ranking_at, marker("ranking")).await?;

    let secs = started.elapsed().as_secs_f64();
    let rate = scored.rows as f64 / scoring_secs;
    let stats = scorer.stats();
    if cluster.cluster.is_some() {
        // The model ran in the executors; this process only planned and wrote.
        println!(
            "scored {} candidates in {scoring_secs:.2}s ({rate:.0} candidates/s end to end, on \
             the cluster)",
            scored.rows
        );
    } else {
        println!(
            "scored {} candidates in {scoring_secs:.2}s ({rate:.0} candidates/s end to end; \
             model {:.2}s in {} forward passes, {:.1} candidates per pass, {:.1} per user step)",
            scored.rows,
            stats.model_time.as_secs_f64(),
            stats.calls,
            stats.rows as f64 / stats.calls.max(1) as f64,
            stats.rows as f64 / stats.users.max(1) as f64
        );
    }
    println!("wrote {} score rows to {scores_at}", scored.rows);
    println!(
        "wrote {} ranking rows (top {}, p_dislike <= {}) to {ranking_at}",
        ranked.rows, job.top_k, job.dislike_threshold
    );
    println!("done in {secs:.2}s");
    Ok(())
}
