//! Delta Lake tables: the default format of a scoring run's outputs, and a format every
//! input table may have.
//!
//! Contract:
//! - a folder is a Delta table when it holds `_delta_log/` ([`is_table`]); it is opened
//!   through the `deltalake` crate with the same object store as every other location
//!   (local files, or the bucket's S3 store configured from the `AWS_*` variables);
//! - [`replace_day`] replaces the rows of one day of a table partitioned by `dt`
//!   (`YYYY-MM-DD` text) in **one commit**: an overwrite whose predicate is `dt = 'D'`. The
//!   data files are written first under unique names, then the commit file
//!   `_delta_log/NNNNNNNNNNNNNNNNNNNN.json` is created only if that version does not exist
//!   yet (an atomic create on a local disk, a conditional `PUT` with `If-None-Match` on
//!   S3), so a reader sees the day before or after the commit, never a mixture; rows of
//!   other days are not touched. A commit that loses the race to a concurrent writer is
//!   retried by `deltalake` when the two do not conflict (another day), and fails as a
//!   conflict (exit code 3, naming the winner's run) when they do (the same day, which
//!   [`super::lease`] normally excludes). Each commit carries the
//!   caller's metadata (`dumn.run_id`, the model version, …) in its `commitInfo`;
//! - files a commit removed stay until [`vacuum`] deletes those older than the retention
//!   period, so a reader holding an older snapshot keeps working;
//! - [`provider`] reads a table's newest snapshot in a DataFusion session, and
//!   [`register_factory`] makes `CREATE EXTERNAL TABLE … STORED AS DELTATABLE` work.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::catalog::TableProvider;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{col, lit, ParquetReadOptions, SessionConfig, SessionContext};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use deltalake::kernel::transaction::{CommitProperties, TransactionError};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use url::Url;

use super::failure::Failure;
use super::location::{self, Location};
use super::stores::{s3_store, Stores};

/// The partition column of dumn's Delta tables: the scored day as `YYYY-MM-DD` text.
pub const DAY_COLUMN: &str = "dt";

/// The column, and the `commitInfo` key (`dumn.run_id`), that name the run which wrote a
/// day: a reader that needs two tables of one run compares it (see docs/nightly-job.md).
pub const RUN_ID_COLUMN: &str = "run_id";

/// The folder of a Delta table's transaction log.
pub const LOG_FOLDER: &str = "_delta_log";

/// A table builder for `loc`, on the location's own object store.
fn builder(loc: &Location) -> Result<DeltaTableBuilder> {
    let url = Url::parse(&loc.url(true)).with_context(|| format!("{loc} is not a URL"))?;
    let builder = DeltaTableBuilder::from_url(url.clone())
        .with_context(|| format!("cannot open {loc} as a Delta table"))?;
    Ok(match loc {
        Location::S3 { bucket, .. } => builder.with_storage_backend(s3_store(bucket)?, url),
        Location::Local(_) => builder,
    })
}

/// Whether `loc` is a Delta table: it holds a `_delta_log/` with at least one entry.
pub async fn is_table(loc: &Location) -> Result<bool> {
    let log = loc.join(LOG_FOLDER);
    if let Location::Local(p) = &log {
        return Ok(p.is_dir());
    }
    Ok(!location::list(&log).await?.is_empty())
}

/// Opens the Delta table at `loc` (its newest version); an error when it is none.
pub async fn open(loc: &Location) -> Result<DeltaTable> {
    open_at(loc, None).await
}

/// Opens the Delta table at `loc` as of `version` (its newest when `None`).
pub async fn open_at(loc: &Location, version: Option<u64>) -> Result<DeltaTable> {
    if !is_table(loc).await? {
        bail!("{loc} is not a Delta table (it has no {LOG_FOLDER}/)");
    }
    load(loc, version).await
}

/// Loads the table at `loc` (which the caller knew to be one) as of `version`.
async fn load(loc: &Location, version: Option<u64>) -> Result<DeltaTable> {
    let mut builder = builder(loc)?;
    if let Some(v) = version {
        builder = builder.with_version(v);
    }
    builder
        .load()
        .await
        .with_context(|| format!("cannot read the Delta table at {loc}"))
}

/// Opens the table at `loc`, or a handle on which the first write creates it.
async fn open_or_new(loc: &Location) -> Result<DeltaTable> {
    if is_table(loc).await? {
        load(loc, None).await
    } else {
        Ok(builder(loc)?.build()?)
    }
}

/// A table provider over the newest snapshot of the Delta table at `loc`, which the caller
/// found to be one ([`is_table`]).
pub async fn provider(loc: &Location) -> Result<Arc<dyn TableProvider>> {
    let table = load(loc, None).await?;
    let provider = table
        .table_provider()
        .await
        .with_context(|| format!("cannot read the Delta table at {loc}"))?;
    Ok(provider)
}

/// Makes `CREATE EXTERNAL TABLE name STORED AS DELTATABLE LOCATION '…'` work in `ctx`.
pub fn register_factory(ctx: &SessionContext) {
    ctx.state_ref().write().table_factories_mut().insert(
        "DELTATABLE".to_string(),
        Arc::new(deltalake::delta_datafusion::DeltaTableFactory {}),
    );
}

/// What [`replace_day`] committed.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The table version the commit created.
    pub version: u64,
}

/// Replaces day `date` of the Delta table at `table` (created, partitioned by `dt`, when
/// it does not exist yet) with the rows of the Parquet files in the folder `staged`, plus
/// the columns `run_id` = `run_id` and `dt` = `date`, in one commit whose `commitInfo`
/// carries `metadata`, the run id and the date, each key prefixed with `dumn.` (see the
/// module's contract). The copy runs in a
/// session of its own, in this process (also when the scoring ran on a cluster).
pub async fn replace_day(
    table: &Location,
    staged: &Location,
    date: &str,
    run_id: &str,
    mut metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<Committed> {
    // deltalake plans its write with its own planner; the object stores are dumn's.
    // One partition: given several, deltalake hash-repartitions the rows by `dt`, and with
    // one day every row goes to one output while the others stay empty. DataFusion's
    // repartition does not hold back its input while any output is empty, so the scan ran
    // ahead of the day's one Parquet encoder and buffered the day in memory (+75-95 MB at
    // 4M scores). With one partition the scan keeps the encoder's pace, in the same time:
    // one encoder writes the day either way.
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(SessionConfig::new().with_target_partitions(1))
        .with_runtime_env(
            RuntimeEnvBuilder::new()
                .with_object_store_registry(Stores::registry())
                .build_arc()?,
        )
        .with_query_planner(DeltaPlanner::new())
        .build();
    let ctx = SessionContext::new_with_state(state);
    let rows = ctx
        .read_parquet(staged.url(true), ParquetReadOptions::default())
        .await
        .with_context(|| format!("reading the staged files at {staged}"))?
        .with_column(RUN_ID_COLUMN, lit(run_id.to_string()))?
        .with_column(DAY_COLUMN, lit(date.to_string()))?;
    metadata.insert(RUN_ID_COLUMN.into(), run_id.into());
    metadata.insert("date".into(), date.into());
    let metadata = metadata.into_iter().map(|(k, v)| (format!("dumn.{k}"), v));
    let plan = rows.into_optimized_plan()?;
    let delta = open_or_new(table).await?;
    super::day::failpoint("snapshot");
    let written = delta
        .write(Vec::new())
        .with_input_plan(plan)
        .with_session_state(Arc::new(ctx.state()))
        .with_save_mode(SaveMode::Overwrite)
        .with_partition_columns([DAY_COLUMN])
        .with_replace_where(col(DAY_COLUMN).eq(lit(date.to_string())))
        .with_commit_properties(CommitProperties::default().with_metadata(metadata))
        .await;
    let written = match written {
        Ok(t) => t,
        Err(e) if is_conflict(&e) => return Err(lost_commit(table, date, e).await),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("committing day {date} to the Delta table at {table}"))
        }
    };
    Ok(Committed {
        version: written.version().unwrap_or_default(),
    })
}

/// Whether `e` is a commit that another writer's commit beat: Delta's optimistic
/// concurrency found the two overlapping (the same day), or the version was taken.
fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::VersionAlreadyExists(_)
                    | TransactionError::MaxCommitAttempts(_)
            }
    )
}

/// The error of a commit to `table` that another writer's commit of day `date` beat
/// (exit code 3, as when the day's lease is held): it names that writer's run, from the
/// newest commit's `dumn.run_id`. The lease keeps two runs of one day apart; this is
/// what a run sees when the store let both take it (a store whose conditional create is
/// not atomic) or another tool wrote the day.
async fn lost_commit(table: &Location, date: &str, e: DeltaTableError) -> anyhow::Error {
    let newest = match load(table, None).await.map(|t| t.version()) {
        Ok(Some(v)) => location::get(&table.join(LOG_FOLDER).join(&format!("{v:020}.json")))
            .await
            .ok(),
        _ => None,
    };
    let run = newest
        .and_then(|text| commit_run(&text))
        .map(|r| format!("run {r}"));
    anyhow::Error::new(e)
        .context(format!(
            "another writer ({}) committed day {date} to the Delta table at {table} while \
             this run worked: its day stands, and this run committed nothing to {table}. \
             Runs of one day must not overlap; rerun when it has ended",
            run.unwrap_or_else(|| "not a dumn run".into())
        ))
        .context(Failure::Conflict)
}

/// Commits day `date` of each of `tables` (staged under [`super::day::staging_root`] by
/// run `run_id`) to the Delta table `out/TABLE`, one commit per table in the order given,
/// each carrying the table's marker fields as metadata; then removes the staging folder.
/// Returns each table's new version.
///
/// Two tables cannot share a commit. A failure or kill between the commits leaves the
/// first table at the new run and the second at an older one; both carry their run in the
/// `run_id` column, so a reader that needs the pair compares them and, when they differ,
/// reads the first table at the version that the second's run committed
/// ([`version_of_run`]; `docs/nightly-job.md`). The next run of the day commits both
/// again. The staging folder left by a killed run is removed by
/// [`super::day::recover`].
pub async fn publish_day(
    out: &Location,
    date: &str,
    run_id: &str,
    tables: Vec<super::day::TableDay>,
) -> Result<Vec<Committed>> {
    let mut committed = Vec::with_capacity(tables.len());
    let staging = super::day::staging_root(out, date, run_id);
    for (i, t) in tables.into_iter().enumerate() {
        super::day::failpoint(&format!("before-commit-{}", i + 1));
        committed.push(replace_day(&out.join(&t.table), &t.staged, date, run_id, t.marker).await?);
        super::day::failpoint(&format!("commit-{}", i + 1));
    }
    super::day::failpoint("commits");
    location::remove_all(&staging).await?;
    Ok(committed)
}

/// The version of the table at `loc` whose commit was made by run `run_id` (its
/// `commitInfo` carries `dumn.run_id`), read from the `_delta_log/*.json` entries; `None`
/// when no commit names that run. A reader that finds day D of `ranking` written by
/// another run than day D of `scores` reads `scores` at this version of the ranking's run
/// (see [`publish_day`]).
pub async fn version_of_run(loc: &Location, run_id: &str) -> Result<Option<u64>> {
    let log = loc.join(LOG_FOLDER);
    let mut found = None;
    for (name, _) in location::list(&log).await? {
        let Some(version) = name
            .strip_suffix(".json")
            .filter(|n| !n.contains('/'))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let text = location::get(&log.join(&name)).await?;
        if commit_run(&text).as_deref() == Some(run_id) {
            found = found.max(Some(version));
        }
    }
    Ok(found)
}

/// The run a commit file (`_delta_log/N.json`) names in its `commitInfo`
/// (`dumn.run_id`), if any.
fn commit_run(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text).lines().find_map(|line| {
        let v = serde_json::from_str::<serde_json::Value>(line).ok()?;
        Some(
            v["commitInfo"][format!("dumn.{RUN_ID_COLUMN}")]
                .as_str()?
                .to_string(),
        )
    })
}

/// What [`vacuum`] removed (or would remove, when a dry run).
#[derive(Debug, Clone)]
pub struct Vacuumed {
    pub files: Vec<String>,
    pub dry_run: bool,
}

/// Deletes the files of the Delta table at `loc` that no version newer than
/// `retain_hours` needs: files removed by a commit at least that old, and files at least
/// that old that no commit lists (what a killed write left). A reader that opened a
/// version older than that may fail afterwards.
pub async fn vacuum(loc: &Location, retain_hours: u64, dry_run: bool) -> Result<Vacuumed> {
    let table = open(loc).await?;
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(chrono::Duration::hours(retain_hours as i64))
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .with_dry_run(dry_run)
        .await
        .with_context(|| format!("vacuuming the Delta table at {loc}"))?;
    Ok(Vacuumed {
        files: metrics.files_deleted,
        dry_run,
    })
}
