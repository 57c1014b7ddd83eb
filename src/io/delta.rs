//! Delta Lake tables: the default format of a scoring run's outputs, and a format every
//! input table may have.
//!
//! Contract:
//! - a folder is a Delta table when it holds `_delta_log/` ([`is_table`]); it is opened
//!   through the `deltalake` crate with the same object store as every other location
//!   (local files, or the bucket's S3 store configured from the `AWS_*` variables);
//! - [`replace_day`] replaces the rows of one day of a table partitioned by `dt`
//!   (`YYYY-MM-DD` text) in **one commit**: an overwrite whose predicate is `dt = 'D'`. The
//!   run's staged files ([`as_stored`] gives them the table's columns) are moved first into
//!   `dt=D/` under names of the run, not rewritten (each added with the statistics of its
//!   Parquet footer, `file_stats`: row count, null counts, numeric ranges), then the
//!   commit file `_delta_log/NNNNNNNNNNNNNNNNNNNN.json` is created only if that version
//!   does not exist yet (an atomic create on a local disk, a conditional `PUT` with
//!   `If-None-Match` on S3), so a reader sees the day before or after the commit, never a
//!   mixture; rows of other days are not touched. A commit that loses the race to a
//!   concurrent writer is retried by `deltalake` when the two do not conflict (another
//!   day), and fails as a conflict (exit code 3, naming the winner's run) when they do (the
//!   same day, which [`super::lease`] normally excludes). Each commit carries the caller's
//!   metadata (`dumn.run_id`, the model version, …) in its `commitInfo`;
//! - files a commit removed stay until [`vacuum`] deletes those older than the retention
//!   period, so a reader holding an older snapshot keeps working;
//! - [`provider`] reads a table's newest snapshot in a DataFusion session, and
//!   [`register_factory`] makes `CREATE EXTERNAL TABLE … STORED AS DELTATABLE` work.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::prelude::{cast, ident, lit, DataFrame, Expr, SessionContext};
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{normalize_for_delta, Action, Add, StructType};
use deltalake::operations::create::CreateBuilder;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, FilterOp, FilterValue};
use futures::TryStreamExt;
use object_store::ObjectMeta;
use parquet::arrow::parquet_to_arrow_schema;
use url::Url;

use super::failure::Failure;
use super::location::{self, Location};
use super::stores::s3_store;

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

/// The rows of `df` as the Delta table at `table` stores a day of them: the table's
/// columns (a new table's: the rows' own, in the types Delta gives them), in its order and
/// of its types, with `run_id` = `run_id`, and without `dt` (the partition, which is in
/// the files' folder, not in them). [`replace_day`] commits the files staged from these
/// rows as they are, so they must have the table's shape. An error names both column
/// lists when the table's columns are not the rows' (a job whose candidates changed
/// columns writes to a new `out`).
pub async fn as_stored(df: DataFrame, table: &Location, run_id: &str) -> Result<DataFrame> {
    let df = df
        .drop_columns(&[DAY_COLUMN])?
        .with_column(RUN_ID_COLUMN, lit(run_id.to_string()))?;
    let delta = open_or_new(table).await?;
    let target: SchemaRef = if delta.version().is_some() {
        let stored = delta.snapshot()?.snapshot().arrow_schema();
        let fields: Vec<_> = stored
            .fields()
            .iter()
            .filter(|f| f.name() != DAY_COLUMN)
            .cloned()
            .collect();
        Arc::new(Schema::new(fields))
    } else {
        let rows: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let kernel: StructType = normalize_for_delta(&rows)
            .try_into_kernel()
            .with_context(|| format!("the rows for the new Delta table at {table}"))?;
        Arc::new((&kernel).try_into_arrow()?)
    };
    fn names(schema: &Schema) -> Vec<&String> {
        let mut names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        names.sort();
        names
    }
    let (want, have) = (names(&target), names(df.schema().as_arrow()));
    if want != have {
        bail!(
            "the Delta table at {table} has the columns {want:?} (besides {DAY_COLUMN}) but \
             this run's rows have {have:?}: a day's rows must have the table's columns. Write \
             the job to a new `out`, or make its SQL give the table's columns"
        );
    }
    let columns: Vec<Expr> = target
        .fields()
        .iter()
        .map(|f| cast(ident(f.name()), f.data_type().clone()).alias(f.name()))
        .collect();
    Ok(df.select(columns)?)
}

/// Replaces day `date` of the Delta table at `table` (created, partitioned by `dt`, when
/// it does not exist yet) with the Parquet files in the folder `staged`, written from
/// rows that [`as_stored`] shaped, in one commit whose `commitInfo` carries `metadata`,
/// the run id and the date, each key prefixed with `dumn.` (see the module's contract).
///
/// The files are not rewritten: each is moved (a local rename, a server-side copy on S3)
/// into the day's folder under a name of the run, `dt=D/part-RUN-NNNNN.parquet`, and the
/// commit adds them (with their footers' statistics, [`file_stats`]) and removes the day's
/// files of the snapshot it read. Until that commit no reader sees them; a commit that fails
/// deletes them, and a killed run leaves them for [`vacuum`], as any Delta writer does.
pub async fn replace_day(
    table: &Location,
    staged: &Location,
    date: &str,
    run_id: &str,
    mut metadata: serde_json::Map<String, serde_json::Value>,
) -> Result<Committed> {
    metadata.insert(RUN_ID_COLUMN.into(), run_id.into());
    metadata.insert("date".into(), date.into());
    let properties = CommitProperties::default()
        .with_metadata(metadata.into_iter().map(|(k, v)| (format!("dumn.{k}"), v)));
    let delta = open_or_new(table).await?;
    super::day::failpoint("snapshot");
    let mut placed = Vec::new();
    let committed =
        commit_staged(&delta, table, staged, date, run_id, properties, &mut placed).await;
    match committed {
        Ok(version) => Ok(Committed { version }),
        Err(e) => {
            // A commit that was written and then reported an error (a failed checkpoint
            // after it, say) stands: its files must stay.
            if let Ok(Some(version)) = version_of_run(table, run_id).await {
                super::log::warn(format_args!(
                    "day {date} was committed to the Delta table at {table} (version \
                     {version}) and then: {e:#}"
                ));
                return Ok(Committed { version });
            }
            for file in &placed {
                let _ = location::remove_all(file).await;
            }
            match e.downcast::<DeltaTableError>() {
                Ok(e) if is_conflict(&e) => Err(lost_commit(table, date, e).await),
                Ok(e) if delta.version().is_none() && is_table(table).await.unwrap_or(false) => {
                    // Another writer created the table first.
                    Err(lost_commit(table, date, e).await)
                }
                Ok(e) => Err(anyhow::Error::new(e).context(format!(
                    "committing day {date} to the Delta table at {table}"
                ))),
                Err(e) => Err(e),
            }
        }
    }
}

/// The work of [`replace_day`]: places the staged files (recording each in `placed`) and
/// commits them; returns the new version.
async fn commit_staged(
    delta: &DeltaTable,
    table: &Location,
    staged: &Location,
    date: &str,
    run_id: &str,
    properties: CommitProperties,
    placed: &mut Vec<Location>,
) -> Result<u64> {
    let files: Vec<(String, u64)> = location::list(staged)
        .await?
        .into_iter()
        .filter(|(name, _)| name.ends_with(".parquet"))
        .collect();
    let mut schema = None;
    let mut actions = Vec::new();
    for (i, (name, size)) in files.iter().enumerate() {
        let from = staged.join(name);
        let (stats, file_schema) = footer(&from, *size).await?;
        schema.get_or_insert(file_schema);
        let path = format!("{DAY_COLUMN}={date}/part-{run_id}-{i:05}.parquet");
        let to = table.join(&path);
        super::day::place(&from, &to).await?;
        placed.push(to);
        actions.push(Action::Add(Add {
            path,
            partition_values: [(DAY_COLUMN.to_string(), Some(date.to_string()))].into(),
            size: *size as i64,
            modification_time: chrono::Utc::now().timestamp_millis(),
            data_change: true,
            stats: Some(stats.to_string()),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        }));
    }
    let Some(schema) = schema else {
        bail!("no staged Parquet files at {staged}");
    };
    if delta.version().is_none() {
        // A new table: its schema and first day in one commit (version 0).
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(DAY_COLUMN, DataType::Utf8, true));
        let kernel: StructType = Arc::new(Schema::new(fields)).try_into_kernel()?;
        let created = CreateBuilder::new()
            .with_log_store(delta.log_store())
            .with_columns(kernel.fields().cloned())
            .with_partition_columns([DAY_COLUMN])
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_actions(actions)
            .with_commit_properties(properties)
            .await?;
        return Ok(created.version().unwrap_or_default() as u64);
    }
    let filter = [(DAY_COLUMN, FilterOp::Eq, FilterValue::Scalar(date))];
    let removed: Vec<Action> = delta
        .get_active_add_actions_by_partitions(&filter)
        .map_ok(|f| Action::Remove(f.remove_action(true)))
        .try_collect()
        .await?;
    actions.extend(removed);
    let operation = DeltaOperation::Write {
        mode: SaveMode::Overwrite,
        partition_by: Some(vec![DAY_COLUMN.to_string()]),
        predicate: Some(format!("{DAY_COLUMN} = '{date}'")),
    };
    let commit = CommitBuilder::from(properties)
        .with_actions(actions)
        .build(Some(delta.snapshot()?), delta.log_store(), operation)
        .await?;
    Ok(commit.version() as u64)
}

/// The Delta statistics ([`file_stats`]) and Arrow schema of the Parquet file at `loc`
/// (`size` bytes), from its footer.
async fn footer(loc: &Location, size: u64) -> Result<(serde_json::Value, SchemaRef)> {
    let (store, key) = loc.store()?;
    let object = ObjectMeta {
        location: key,
        last_modified: chrono::Utc::now(),
        size,
        e_tag: None,
        version: None,
    };
    let meta = DFParquetMetadata::new(store.as_ref(), &object)
        .fetch_metadata()
        .await
        .with_context(|| format!("reading the Parquet footer of {loc}"))?;
    let file = meta.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .with_context(|| format!("the schema of {loc}"))?;
    let stats = file_stats(&meta, &schema).with_context(|| format!("the statistics of {loc}"))?;
    Ok((stats, Arc::new(schema)))
}

/// A data file's statistics as a Delta `add` action carries them, from its Parquet footer:
/// `numRecords`, and for each top-level signed integer or floating-point column (Delta has
/// no unsigned types; the staged files have the table's) its `nullCount`,
/// and its `minValues` and `maxValues` when every row group that has a value states them
/// (readers skip files and plan queries by these, as they did when `deltalake` wrote the
/// files). String, timestamp and other columns get no ranges: the footer's strings may be
/// truncated, and Delta writes timestamps to the millisecond, which would round a
/// microsecond maximum down. A column without ranges is one readers cannot skip by, never
/// a wrong skip.
fn file_stats(
    meta: &parquet::file::metadata::ParquetMetaData,
    schema: &Schema,
) -> Result<serde_json::Value> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::compute::{cast, max, min};
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    use parquet::arrow::arrow_reader::statistics::StatisticsConverter;

    let groups = meta.row_groups();
    let (mut mins, mut maxes, mut nulls) = (
        serde_json::Map::new(),
        serde_json::Map::new(),
        serde_json::Map::new(),
    );
    for field in schema.fields() {
        let t = field.data_type();
        if !(t.is_signed_integer() || t.is_floating()) {
            continue;
        }
        let stats = StatisticsConverter::try_new(
            field.name(),
            schema,
            meta.file_metadata().schema_descr(),
        )?;
        let null_counts = stats.row_group_null_counts(groups)?;
        if null_counts.null_count() > 0 {
            continue; // a row group without statistics: nothing is known
        }
        nulls.insert(
            field.name().clone(),
            null_counts.values().iter().sum::<u64>().into(),
        );
        // Row groups that hold only NULLs state no range; any other must.
        let (lo, hi) = (
            stats.row_group_mins(groups)?,
            stats.row_group_maxes(groups)?,
        );
        let all_null = |g: usize| null_counts.value(g) as i64 == groups[g].num_rows();
        if (0..groups.len()).any(|g| !all_null(g) && (lo.is_null(g) || hi.is_null(g))) {
            continue;
        }
        let (lo, hi) = if t.is_signed_integer() {
            let (lo, hi) = (cast(&lo, &DataType::Int64)?, cast(&hi, &DataType::Int64)?);
            (
                min(lo.as_primitive::<Int64Type>()).map(serde_json::Value::from),
                max(hi.as_primitive::<Int64Type>()).map(serde_json::Value::from),
            )
        } else {
            let (lo, hi) = (
                cast(&lo, &DataType::Float64)?,
                cast(&hi, &DataType::Float64)?,
            );
            (
                min(lo.as_primitive::<Float64Type>()).and_then(finite),
                max(hi.as_primitive::<Float64Type>()).and_then(finite),
            )
        };
        if let (Some(lo), Some(hi)) = (lo, hi) {
            mins.insert(field.name().clone(), lo);
            maxes.insert(field.name().clone(), hi);
        }
    }
    Ok(serde_json::json!({
        "numRecords": meta.file_metadata().num_rows(),
        "minValues": mins,
        "maxValues": maxes,
        "nullCount": nulls,
    }))
}

/// A float as JSON; NaN and the infinities have no JSON number, so no range.
fn finite(x: f64) -> Option<serde_json::Value> {
    x.is_finite().then(|| x.into())
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray,
    };
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::ParquetMetaDataReader;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    /// A Parquet file of rows in row groups of two: `id` with a NULL, `x` (FLOAT), `g`
    /// NULL through a whole row group, a string column, and `n` written without statistics.
    #[test]
    fn file_stats_span_every_row_group_and_skip_what_they_cannot_state() {
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "id",
                Arc::new(Int64Array::from(vec![
                    Some(5),
                    Some(1),
                    None,
                    Some(9),
                    Some(3),
                ])),
            ),
            (
                "x",
                Arc::new(Float32Array::from(vec![0.5, -0.25, 0.75, 0.125, 0.3])),
            ),
            (
                "g",
                Arc::new(Int32Array::from(vec![
                    Some(7),
                    Some(8),
                    None,
                    None,
                    Some(-2),
                ])),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec!["b", "a", "c", "d", "e"])),
            ),
            ("n", Arc::new(Int64Array::from(vec![4, 2, 6, 8, 0]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = tempfile::tempfile().unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(2))
            .set_column_statistics_enabled("n".into(), EnabledStatistics::None)
            .build();
        let mut w =
            ArrowWriter::try_new(file.try_clone().unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&file)
            .unwrap();
        assert_eq!(meta.num_row_groups(), 3);

        let stats = super::file_stats(&meta, &batch.schema()).unwrap();
        assert_eq!(
            stats,
            serde_json::json!({
                "numRecords": 5,
                "minValues": {"id": 1, "x": -0.25, "g": -2},
                "maxValues": {"id": 9, "x": 0.75, "g": 8},
                "nullCount": {"id": 1, "x": 0, "g": 2},
            })
        );
    }
}
