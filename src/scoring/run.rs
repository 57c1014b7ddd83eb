//! `dumn run`: the nightly scoring job, for one day D.
//!
//! 1. loads the model artifact (local or s3://) once, on the job's device;
//! 2. builds `scoring_input` with sql/ as of D (feedback strictly before D's midnight);
//! 3. writes the scores of D with sql/scores.sql: one row per candidate;
//! 4. writes the ranking of D with sql/ranking.sql, read from the scores just written;
//! 5. publishes both tables' day D under `OUT/scores` and `OUT/ranking`.
//!
//! Both tables are first written under `OUT/_staging/D/RUN/` (outside the table roots) and
//! published only when both are complete, in the job's `format`:
//! - `delta` (the default): each table is a Delta Lake table partitioned by `dt`; day D is
//!   replaced in one commit per table, scores first, each commit and each row naming the
//!   run (`run_id`), so a reader sees the previous day or the new one, and can tell that
//!   the two tables come from one run ([`crate::io::delta`]);
//! - `parquet`: Hive-style `dt=D/` folders, by the protocol of [`crate::io::day`]:
//!   run-unique file names, a journal, `_SUCCESS` markers that list their files, the
//!   previous files removed last.
//!
//! A run that fails or is killed leaves day D readable as it was, and the next run of D
//! finishes or rolls back what it left. Runs of the same day exclude each other: each
//! holds the day's lease ([`lease_day`]) while it works.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, SubsecRound};
use datafusion::prelude::{DataFrame, SessionContext};
use serde::Serialize;

use super::job::{Job, OutputFormat};
use super::session::Scoring;
use crate::data::contract;
use crate::data::script::{self, Params, Script};
use crate::data::sql::{quote_ident, quote_literal, timestamp_literal};
use crate::engine::session::{with_own_pool, EngineOptions};
use crate::io::day::{self, TableDay};
use crate::io::delta;
use crate::io::failure::{Failure, MarkFailure};
use crate::io::guard;
use crate::io::lease::Lease;
use crate::io::location;
use crate::io::parquet::{stage_parquet_into, WriteSummary};
use crate::io::{publish, Location};
use crate::model::device::describe;
use crate::model::registry;
use crate::model::scorer::Scorer;

/// Memory the embedded ranking step (sql/ranking.sql) holds before it spills to disk: its
/// own pool ([`with_own_pool`]), so that its sort over every score does not grow the run's
/// peak with the number of candidates.
pub const RANKING_MEMORY: usize = 64 << 20;

/// Checks where the job writes before anything is written: `OUT/scores`, `OUT/ranking`
/// and dumn's own `OUT/_staging` and `OUT/_leases` must each be apart from every input
/// (the logs, each `[tables]` entry, the model), a table root that exists must hold only
/// days (`dt=…`), markers and a Delta log (see [`crate::io::guard`]), and in the job's
/// format: a Delta table for `format = "delta"`, plain Parquet days for `"parquet"`.
/// `OUT` itself may hold other things, the inputs among them.
pub async fn check_output(job: &Job) -> Result<()> {
    let out = Location::parse(&job.out)?;
    let mut inputs: Vec<(String, Location)> = Vec::new();
    if let Some(data) = &job.data {
        inputs.push(("data".into(), Location::parse(data)?));
    }
    for (name, loc) in &job.tables {
        inputs.push((format!("tables.{name}"), Location::parse(loc)?));
    }
    inputs.push(("model".into(), registry::folder_of(&job.model)?));
    for written in ["scores", "ranking", "_staging", "_leases"] {
        guard::check_apart(&out.join(written), &inputs)?;
    }
    for table in ["scores", "ranking"] {
        let root = out.join(table);
        let names = guard::check_ours(
            &root,
            |name| name.starts_with("dt=") || name.starts_with('_'),
            &format!("the `{table}` table of a scoring job"),
        )
        .await?;
        let is_delta = names.iter().any(|n| n == delta::LOG_FOLDER);
        let has_days = names.iter().any(|n| n.starts_with("dt="));
        match job.format {
            OutputFormat::Delta if has_days && !is_delta => bail!(
                "{root} holds plain Parquet days (dt=… folders, no {}/) but the job writes \
                 Delta tables (format = \"delta\", the default); set format = \"parquet\" to \
                 go on writing plain Parquet there, or point `out` at a new folder",
                delta::LOG_FOLDER
            ),
            OutputFormat::Parquet if is_delta => bail!(
                "{root} is a Delta table but the job writes plain Parquet (format = \
                 \"parquet\"); remove that setting to write Delta, or point `out` at a new folder"
            ),
            _ => {}
        }
    }
    Ok(())
}

/// Checks the output ([`check_output`]) and takes the lease on `job`'s day `date`
/// (`OUT/_leases/DATE.json`), which every run of that day must hold while it works: a
/// second run of the day fails with exit code 3, naming the first (see
/// [`crate::io::lease`]).
pub async fn lease_day(job: &Job, date: NaiveDate) -> Result<Lease> {
    check_output(job).await?;
    let at = Location::parse(&job.out)?
        .join("_leases")
        .join(&format!("{date}.json"));
    publish::check_writable(&at).await?;
    Lease::acquire(&at, &format!("dumn run of {} for {date}", job.out)).await
}

/// Runs `job` for `date` with `scorer`, in this process or on the cluster whose
/// scheduler is at `cluster`, holding `lease` (from [`lease_day`]); `on_rows` is called
/// with the candidates scored so far and the number to score.
pub async fn run(
    job: &Job,
    date: NaiveDate,
    lease: &Lease,
    scorer: Arc<Scorer>,
    engine: &EngineOptions,
    cluster: Option<&str>,
    on_rows: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<RunSummary> {
    let out = Location::parse(&job.out)?;
    let scores_at = day::day_folder(&out, "scores", &date.to_string());
    let ranking_at = day::day_folder(&out, "ranking", &date.to_string());
    publish::check_writable(&scores_at).await?;
    publish::check_writable(&ranking_at).await?;
    // What a killed run of this day left is finished or rolled back first.
    day::recover(&out, &date.to_string()).await?;
    let run_id = format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    );

    let started = Instant::now();
    let scoring = Scoring::open(job, date, scorer, engine, cluster)
        .await
        .failure(Failure::BadInput)?;
    let result = score_day(
        job,
        Day {
            date,
            out: &out,
            run_id: &run_id,
            scores_at: &scores_at,
            ranking_at: &ranking_at,
            lease,
        },
        &scoring,
        cluster,
        started,
        on_rows,
    )
    .await;
    scoring.close().await;
    result
}

/// The day a run writes: its date, the output root, the run's id, its two tables' day
/// folders and the lease it holds.
struct Day<'a> {
    date: NaiveDate,
    out: &'a Location,
    run_id: &'a str,
    scores_at: &'a Location,
    ranking_at: &'a Location,
    lease: &'a Lease,
}

/// Writes and publishes the day's tables from an open [`Scoring`] session.
async fn score_day(
    job: &Job,
    day: Day<'_>,
    scoring: &Scoring,
    cluster: Option<&str>,
    started: Instant,
    on_rows: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<RunSummary> {
    let Scoring {
        ctx,
        scorer,
        checks,
        ..
    } = scoring;
    let Day {
        date,
        out,
        run_id,
        scores_at,
        ranking_at,
        lease,
    } = day;
    let staging = day::staging_root(out, &date.to_string(), run_id);
    let scored_at = chrono::Utc::now();
    for w in &checks.warnings {
        crate::io::log::warn(w);
    }
    let version = scorer.model_version().to_string();
    let candidates = checks.rows.get("candidates").copied().unwrap_or(0);
    println!(
        "scoring {candidates} candidates for {date} with model {version} on {}",
        match cluster {
            Some(url) => format!("the cluster at {url}"),
            None => format!(
                "{}, {} model worker(s), {}",
                describe(scorer.device()),
                scorer.workers(),
                scorer.precision()
            ),
        }
    );

    // The score table.
    let candidate_columns: Vec<String> = ctx
        .table("candidates")
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| quote_ident(f.name()))
        .collect();
    let params = Params::new()
        .with("candidate_columns", candidate_columns.join(", "))
        .with(
            "model_inputs",
            scorer
                .input_columns()
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", "),
        )
        .with("model_version", quote_literal(&version))
        .with(
            "scored_at",
            timestamp_literal(scored_at.naive_utc().trunc_subsecs(6)),
        )
        .with("dislike_threshold", job.dislike_threshold.to_string())
        .with("top_k", job.top_k.to_string());
    let df = define_view(
        ctx,
        job.scores_sql.as_deref(),
        script::scores,
        "scores",
        &params,
    )
    .await?;
    // Delta commits the staged files as they are: they are written in the table's shape.
    let stored = |df, table: &str| {
        let table = out.join(table);
        async move {
            match job.format {
                OutputFormat::Delta => delta::as_stored(df, &table, run_id).await,
                OutputFormat::Parquet => Ok(df),
            }
        }
    };
    let df = stored(df, "scores").await?;
    let scores =
        stage_parquet_into(df, staging.join("scores"), move |n| on_rows(n, candidates)).await?;
    let scoring_secs = started.elapsed().as_secs_f64();

    // The ranking table, from the scores just written.
    let ranked = async {
        ctx.deregister_table("scores")?;
        contract::register(ctx, "scores", &scores.staging, None).await?;
        // The embedded ranking holds little but its sort, which spills (its window
        // streams, one user at a time): a bounded pool of its own. A team's own ranking
        // may join, and a join's build side cannot spill, so it keeps the session's pool.
        let ranking_ctx = match job.ranking_sql {
            None => with_own_pool(ctx, RANKING_MEMORY)?,
            Some(_) => ctx.clone(),
        };
        let df = define_view(
            &ranking_ctx,
            job.ranking_sql.as_deref(),
            script::ranking,
            "ranking",
            &params,
        )
        .await?;
        stage_parquet_into(
            stored(df, "ranking").await?,
            staging.join("ranking"),
            |_| {},
        )
        .await
    }
    .await;
    let ranking = match ranked {
        Ok(r) => r,
        Err(e) => {
            let _ = location::remove_all(&staging).await;
            return Err(e);
        }
    };

    // Publish both together (src/io/day.rs); the markers come last.
    let marker = |table: &str, written: &WriteSummary| -> Result<_> {
        let mut m = match serde_json::to_value(written)? {
            serde_json::Value::Object(m) => m,
            _ => unreachable!("a summary is an object"),
        };
        m.extend(
            serde_json::json!({
                "table": table,
                "model_version": version,
                "scored_at": scored_at.to_rfc3339(),
                "written_at": chrono::Utc::now().to_rfc3339(),
                "dislike_threshold": job.dislike_threshold,
                "top_k": job.top_k,
                "lookback_days": job.lookback_days,
            })
            .as_object()
            .expect("an object")
            .clone(),
        );
        Ok(m)
    };
    if let Err(e) = lease.check() {
        let _ = location::remove_all(&staging).await;
        return Err(e);
    }
    let tables = vec![
        TableDay {
            table: "scores".into(),
            staged: scores.staging.clone(),
            marker: marker("scores", &scores.summary)?,
        },
        TableDay {
            table: "ranking".into(),
            staged: ranking.staging.clone(),
            marker: marker("ranking", &ranking.summary)?,
        },
    ];
    let publishing = Instant::now();
    // Each table's new Delta version (scores, ranking); none in plain Parquet.
    let versions: [Option<u64>; 2] = match job.format {
        // One commit per table, scores first; both carry the run id (src/io/delta.rs).
        OutputFormat::Delta => {
            let committed = delta::publish_day(out, &date.to_string(), run_id, tables)
                .await
                .inspect_err(|_| {
                    crate::io::log::warn(format_args!(
                        "the run {run_id} failed while committing; day {date} of each table \
                         holds the run its `run_id` column names"
                    ))
                })?;
            [Some(committed[0].version), Some(committed[1].version)]
        }
        // A failure from here on leaves the journal: the next run finishes or rolls back.
        OutputFormat::Parquet => {
            day::publish(out, &date.to_string(), run_id, tables).await?;
            [None, None]
        }
    };
    let publish_secs = publishing.elapsed().as_secs_f64();
    let (scored, ranked) = (scores.summary, ranking.summary);

    let secs = started.elapsed().as_secs_f64();
    let rate = scored.rows as f64 / scoring_secs;
    let stats = scorer.stats();
    if cluster.is_some() {
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
    let written_to = |day_folder: &Location, table: &str, version: Option<u64>| match version {
        Some(v) => format!(
            "the Delta table {} (dt={date}, version {v})",
            out.join(table)
        ),
        None => day_folder.to_string(),
    };
    println!(
        "wrote {} score rows to {}",
        scored.rows,
        written_to(scores_at, "scores", versions[0])
    );
    println!(
        "wrote {} ranking rows (top {}, p_dislike <= {}) to {}",
        ranked.rows,
        job.top_k,
        job.dislike_threshold,
        written_to(ranking_at, "ranking", versions[1])
    );
    println!("done in {secs:.2}s (publishing {publish_secs:.2}s)");
    let table = |at: &Location, w: &WriteSummary, version: Option<u64>| TableSummary {
        location: at.to_string(),
        rows: w.rows,
        files: w.files,
        delta_version: version,
    };
    Ok(RunSummary {
        date: date.to_string(),
        model_version: version,
        format: job.format,
        scores: table(scores_at, &scored, versions[0]),
        ranking: table(ranking_at, &ranked, versions[1]),
        scoring_seconds: scoring_secs,
        publish_seconds: publish_secs,
        model_seconds: cluster.is_none().then_some(stats.model_time.as_secs_f64()),
        total_seconds: secs,
    })
}

/// What a run wrote: `dumn run` prints it as its last line, one JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub date: String,
    pub model_version: String,
    /// `delta` or `parquet` (the job's `format`).
    pub format: OutputFormat,
    pub scores: TableSummary,
    pub ranking: TableSummary,
    /// Start to the score table written.
    pub scoring_seconds: f64,
    /// Publishing both tables (Delta: the moves of the staged files and the two
    /// commits; Parquet: the moves and markers).
    pub publish_seconds: f64,
    /// Time inside the model (None on a cluster, where the executors run it).
    pub model_seconds: Option<f64>,
    pub total_seconds: f64,
}

/// One published table of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    /// The day's folder (`OUT/TABLE/dt=D`).
    pub location: String,
    pub rows: u64,
    pub files: usize,
    /// The Delta table's version that holds the day (Delta format only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta_version: Option<u64>,
}

/// Runs the team's own script at `custom`, or the embedded `default`, and returns the view
/// `view` that it must define.
async fn define_view(
    ctx: &SessionContext,
    custom: Option<&std::path::Path>,
    default: fn() -> Script,
    view: &str,
    params: &Params,
) -> Result<DataFrame> {
    let script = match custom {
        Some(p) => Script::from_file(p)?,
        None => default(),
    };
    script.run(ctx, params).await?;
    ctx.table(view)
        .await
        .with_context(|| format!("{} must define the view `{view}`", script.name))
}
