//! The raw-log input contract: the five tables `dumn` reads, where they come from, and the
//! checks that turn a bad input into an error naming the table and the column.
//!
//! | table | required columns | meaning |
//! | --- | --- | --- |
//! | `impressions` | `user_id BIGINT, item_id BIGINT, ts TIMESTAMP, clicked BOOLEAN` | an item shown to a user; `clicked` gives a click or an unclick, and is the CTR label |
//! | `actions` | `user_id BIGINT, item_id BIGINT, ts TIMESTAMP, action VARCHAR` | explicit feedback; `sql/feedback.sql` maps action names to like / dislike |
//! | `users` | `user_id BIGINT` + categorical profile columns | one row per user |
//! | `items` | `item_id BIGINT` + categorical columns | one row per item |
//! | `candidates` | `user_id BIGINT, item_id BIGINT` + pass-through columns | what a scoring run scores |
//!
//! Any integer type is accepted where BIGINT is written, and any timestamp unit (timestamps
//! are read as UTC wall-clock time, without a zone). Extra columns of `impressions`,
//! `actions` and `candidates` are ignored by the SQL, except that candidates' extra columns
//! are passed through. Every column of `users` and `items` is a feature.
//!
//! A table is a folder (or one file) of Parquet (`.parquet`), CSV (`.csv`) or TSV (`.tsv`)
//! files, with a header line for CSV and TSV. Files whose names start with `_` or `.` are
//! skipped (markers, staging folders). Files are read at the top of the folder and below
//! `key=value` partition folders (`dt=2026-12-01/part-0.parquet`); files in other
//! sub-folders are not, with a warning that counts them. A scoring job with
//! `lookback_days` reads only the `dt=` folders of its window (see [`Inputs::event_days`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::datasource::listing::{ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::execution::options::ReadOptions;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};
use object_store::ObjectStoreExt;

use super::script::{self, Params, Script};
use crate::engine::session::first_row;
use crate::io::delta;
use crate::io::location::{self, Location};
use crate::io::log;

/// The type a required column must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Any signed or unsigned integer (the contract writes BIGINT).
    Integer,
    /// Any timestamp unit, no time zone expected.
    Timestamp,
    Boolean,
    /// Utf8, LargeUtf8 or Utf8View.
    Text,
}

impl ColumnType {
    fn accepts(self, t: &DataType) -> bool {
        match self {
            ColumnType::Integer => t.is_integer(),
            ColumnType::Timestamp => matches!(t, DataType::Timestamp(_, _)),
            ColumnType::Boolean => matches!(t, DataType::Boolean),
            ColumnType::Text => {
                matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
            }
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Integer => "BIGINT",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Text => "VARCHAR",
        })
    }
}

/// One table of the contract.
#[derive(Debug)]
pub struct TableSpec {
    pub name: &'static str,
    pub required: &'static [(&'static str, ColumnType)],
}

use ColumnType::*;

pub const IMPRESSIONS: TableSpec = TableSpec {
    name: "impressions",
    required: &[
        ("user_id", Integer),
        ("item_id", Integer),
        ("ts", Timestamp),
        ("clicked", Boolean),
    ],
};
pub const ACTIONS: TableSpec = TableSpec {
    name: "actions",
    required: &[
        ("user_id", Integer),
        ("item_id", Integer),
        ("ts", Timestamp),
        ("action", Text),
    ],
};
pub const USERS: TableSpec = TableSpec {
    name: "users",
    required: &[("user_id", Integer)],
};
pub const ITEMS: TableSpec = TableSpec {
    name: "items",
    required: &[("item_id", Integer)],
};
pub const CANDIDATES: TableSpec = TableSpec {
    name: "candidates",
    required: &[("user_id", Integer), ("item_id", Integer)],
};

/// The contract's tables, in the order the pipeline needs them.
pub const ALL: [&TableSpec; 5] = [&IMPRESSIONS, &ACTIONS, &USERS, &ITEMS, &CANDIDATES];

/// Looks a contract table up by name.
pub fn spec(name: &str) -> Option<&'static TableSpec> {
    ALL.into_iter().find(|s| s.name == name)
}

impl TableSpec {
    /// Checks `schema` (the table as read from `source`) against the required columns.
    pub fn check(&self, schema: &Schema, source: &str) -> Result<()> {
        let want = self
            .required
            .iter()
            .map(|(c, t)| format!("{c} {t}"))
            .collect::<Vec<_>>()
            .join(", ");
        for (col, ty) in self.required {
            let Ok(field) = schema.field_with_name(col) else {
                let found: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                bail!(
                    "table `{}` ({source}) has no column `{col}`; it needs {want}; found: {}",
                    self.name,
                    found.join(", ")
                );
            };
            if !ty.accepts(field.data_type()) {
                bail!(
                    "table `{}` ({source}), column `{col}`: expected {ty}, found {}; \
                     convert it in an adapter (see sql/adapters/)",
                    self.name,
                    field.data_type()
                );
            }
        }
        Ok(())
    }
}

/// The file format of a table, from its files' extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Csv,
    Tsv,
}

impl Format {
    fn of(name: &str) -> Option<Format> {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.starts_with('_') || base.starts_with('.') {
            return None;
        }
        if base.ends_with(".parquet") {
            Some(Format::Parquet)
        } else if base.ends_with(".csv") {
            Some(Format::Csv)
        } else if base.ends_with(".tsv") {
            Some(Format::Tsv)
        } else {
            None
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Parquet => ".parquet",
            Format::Csv => ".csv",
            Format::Tsv => ".tsv",
        }
    }
}

/// What [`detect`] found at a table's location.
struct Found {
    format: Format,
    /// The files of the format, relative to the folder; `None` for a single file.
    files: Option<Vec<String>>,
}

/// Finds the format of the table at `loc` (a folder, or a single file).
async fn detect(table: &str, loc: &Location) -> Result<Found> {
    if let Some(format) = Format::of(&loc.file_name()) {
        let (store, path) = loc.store()?;
        store
            .head(&path)
            .await
            .with_context(|| format!("table `{table}`: cannot read {loc}"))?;
        return Ok(Found {
            format,
            files: None,
        });
    }
    let files = location::list(loc)
        .await
        .with_context(|| format!("table `{table}`: cannot list {loc}"))?;
    let files: Vec<String> = files
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| Format::of(n).is_some() && !is_hidden(n))
        .collect();
    let mut formats: Vec<Format> = files.iter().filter_map(|n| Format::of(n)).collect();
    formats.sort_by_key(|f| f.extension());
    formats.dedup();
    match formats.as_slice() {
        [] => bail!(
            "table `{table}`: no .parquet, .csv or .tsv files at {loc} (does the path exist?)"
        ),
        [format] => Ok(Found {
            format: *format,
            files: Some(files),
        }),
        _ => bail!("table `{table}`: {loc} mixes file formats; keep one format per table"),
    }
}

/// Whether a file is skipped by every reader: a part of its path starts with `_` or `.`
/// (markers, staging folders).
fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .any(|p| p.starts_with('_') || p.starts_with('.'))
}

/// Whether the reader reads a file of a table's folder: one at the top, or below only
/// `key=value` partition folders (as Hive, and DataFusion, read them).
fn is_read(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    parts[..parts.len() - 1].iter().all(|p| p.contains('='))
}

/// The `dt=YYYY-MM-DD` folder a file sits in, directly under the table's folder.
fn day_partition(rel: &str) -> Option<(&str, NaiveDate)> {
    let (folder, _) = rel.split_once('/')?;
    let day = folder.strip_prefix("dt=")?;
    Some((folder, NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?))
}

/// The folders to read of a table partitioned by `dt=` whose events must fall on the days
/// `days` (inclusive): the partitions of those days and of one day either side (slack for
/// time zones), or, when none of them exists, the newest partition (which gives the table
/// its schema; the SQL's filter on `ts` then drops its rows). `None` when the files are not
/// all in `dt=` folders: then everything is read.
fn partitions_to_read(files: &[String], days: (NaiveDate, NaiveDate)) -> Option<Vec<String>> {
    let mut partitions: Vec<(NaiveDate, &str)> = Vec::new();
    for f in files {
        let (folder, day) = day_partition(f)?;
        partitions.push((day, folder));
    }
    partitions.sort();
    partitions.dedup();
    let (from, to) = (days.0 - chrono::Days::new(1), days.1 + chrono::Days::new(1));
    let mut kept: Vec<String> = partitions
        .iter()
        .filter(|(d, _)| (from..=to).contains(d))
        .map(|(_, f)| f.to_string())
        .collect();
    if kept.is_empty() {
        kept.push(partitions.last()?.1.to_string());
    }
    Some(kept)
}

/// Registers the table `name` from `loc` on `ctx` and checks it against the contract (when
/// `name` is one of the contract's tables). A folder with `_delta_log/` is read as a Delta
/// Lake table (its newest snapshot). With `days`, a folder partitioned by
/// `dt=YYYY-MM-DD` is read only for those days (see [`partitions_to_read`]). Files in
/// sub-folders that the reader skips (not `key=value`) are counted into a warning.
pub async fn register(
    ctx: &SessionContext,
    name: &str,
    loc: &Location,
    days: Option<(NaiveDate, NaiveDate)>,
) -> Result<()> {
    if delta::is_table(loc).await? {
        // A Delta table: its newest snapshot; filters on `dt` prune its files.
        let provider = delta::provider(loc)
            .await
            .with_context(|| format!("table `{name}`"))?;
        ctx.register_table(name, provider)?;
        if let Some(spec) = spec(name) {
            check_registered(ctx, spec, &loc.to_string()).await?;
        }
        return Ok(());
    }
    let found = detect(name, loc).await?;
    let format = found.format;
    let urls: Vec<String> = match &found.files {
        None => vec![loc.url(false)],
        Some(files) => {
            let skipped: Vec<&String> = files.iter().filter(|f| !is_read(f)).collect();
            if let Some(first) = skipped.first() {
                let mut folders: Vec<&str> = skipped
                    .iter()
                    .map(|f| f.rsplit_once('/').map_or("", |(d, _)| d))
                    .collect();
                folders.dedup();
                log::warn(format_args!(
                    "table `{name}`: {} file(s) in {} sub-folder(s) of {loc} are not read \
                     (only files at the top and in key=value partition folders are), for \
                     example {first}; move them up or into a key=value folder",
                    skipped.len(),
                    folders.len()
                ));
            }
            match days.and_then(|d| partitions_to_read(files, d)) {
                Some(kept) => {
                    let total = files.iter().filter_map(|f| day_partition(f)).count();
                    tracing::info!(
                        "table `{name}`: reading {} dt= partition(s) of {loc} ({total} files in all)",
                        kept.len()
                    );
                    kept.iter().map(|f| loc.join(f).url(true)).collect()
                }
                None => vec![loc.url(true)],
            }
        }
    };
    register_listing(ctx, name, format, &urls)
        .await
        .with_context(|| format!("table `{name}`: cannot read {loc}"))?;
    if let Some(spec) = spec(name) {
        check_registered(ctx, spec, &loc.to_string()).await?;
    }
    Ok(())
}

/// Registers one listing table over `urls` (folders or files of one format); its schema
/// comes from the first.
async fn register_listing(
    ctx: &SessionContext,
    name: &str,
    format: Format,
    urls: &[String],
) -> datafusion::common::Result<()> {
    let (config, table_options) = (ctx.copied_config(), ctx.copied_table_options());
    let options = match format {
        Format::Parquet => ParquetReadOptions::default()
            .file_extension(format.extension())
            .to_listing_options(&config, table_options),
        Format::Csv | Format::Tsv => CsvReadOptions::new()
            .has_header(true)
            .delimiter(if format == Format::Tsv { b'\t' } else { b',' })
            .file_extension(format.extension())
            .to_listing_options(&config, table_options),
    };
    let urls: Vec<ListingTableUrl> = urls
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::common::Result<_>>()?;
    let schema = options.infer_schema(&ctx.state(), &urls[0]).await?;
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config)?
        .with_cache(ctx.runtime_env().cache_manager.get_file_statistic_cache());
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// Checks a table already registered on `ctx` (by a location or by an adapter's SQL).
pub async fn check_registered(ctx: &SessionContext, spec: &TableSpec, source: &str) -> Result<()> {
    let table = ctx
        .table(spec.name)
        .await
        .with_context(|| format!("table `{}` is not defined ({source})", spec.name))?;
    spec.check(table.schema().as_arrow(), source)
}

/// Where each input table comes from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// A folder holding one sub-folder per table (`impressions/`, `actions/`, …), as
    /// `dumn gen` writes it, or the source folder an adapter reads.
    pub data: Option<Location>,
    /// Per-table locations that override `data/<name>`.
    pub tables: BTreeMap<String, Location>,
    /// SQL that defines the contract's tables from other files (`sql/adapters/`), run
    /// with `${data}` bound to `data`.
    pub adapter: Option<Script>,
    /// The days whose events the run needs (inclusive), when bounded (a scoring job's
    /// `lookback_days`): `impressions` and `actions` folders partitioned by
    /// `dt=YYYY-MM-DD` are then read only for those days, give or take one. A `dt=D`
    /// folder must hold events of day D.
    pub event_days: Option<(NaiveDate, NaiveDate)>,
}

impl Inputs {
    /// The days to read of table `name` (only the event tables are bounded).
    fn days_of(&self, name: &str) -> Option<(NaiveDate, NaiveDate)> {
        self.event_days
            .filter(|_| matches!(name, "impressions" | "actions"))
    }

    /// Inputs from a data folder, `name=location` table overrides (as `--table` takes them)
    /// and an adapter name or file.
    pub fn from_flags(
        data: Option<&str>,
        tables: &[String],
        adapter: Option<&str>,
    ) -> Result<Self> {
        Ok(Self {
            data: data.map(Location::parse).transpose()?,
            tables: tables
                .iter()
                .map(|t| Self::parse_table_flag(t))
                .collect::<Result<_>>()?,
            adapter: adapter.map(script::adapter).transpose()?,
            event_days: None,
        })
    }

    /// Parses `name=location` as given to `--table`.
    pub fn parse_table_flag(s: &str) -> Result<(String, Location)> {
        let (name, loc) = s
            .split_once('=')
            .with_context(|| format!("`--table {s}`: write NAME=LOCATION"))?;
        Ok((name.trim().to_string(), Location::parse(loc)?))
    }

    /// Registers the tables in `names` on `ctx`, then every other `--table`, and checks the
    /// contract's tables among them.
    pub async fn register(&self, ctx: &SessionContext, names: &[&str]) -> Result<()> {
        if let Some(adapter) = &self.adapter {
            let data = self.data.as_ref().with_context(|| {
                format!(
                    "the `{}` adapter needs --data (its source folder)",
                    adapter.name
                )
            })?;
            // `${data}` goes inside a '…' literal of the adapter's SQL.
            let params = Params::new().with("data", data.url(false).replace('\'', "''"));
            adapter.run(ctx, &params).await?;
        }
        for (name, loc) in &self.tables {
            register(ctx, name, loc, self.days_of(name)).await?;
        }
        for name in names {
            if self.tables.contains_key(*name) {
                continue;
            }
            if self.adapter.is_some() {
                let spec = spec(name).expect("a contract table");
                check_registered(ctx, spec, "defined by the adapter").await?;
                continue;
            }
            let Some(data) = &self.data else {
                bail!("no location for table `{name}`: give --data DIR (with {name}/ inside) or --table {name}=LOCATION");
            };
            register(ctx, name, &data.join(name), self.days_of(name)).await?;
        }
        Ok(())
    }
}

/// What the pre-flight checks found that the SQL will quietly drop.
#[derive(Debug, Default)]
pub struct Preflight {
    /// Rows per checked table.
    pub rows: BTreeMap<String, u64>,
    /// One line per table with rows that the SQL drops (NULL keys).
    pub warnings: Vec<String>,
}

/// Checks the registered tables before any long work: `non_empty` tables must have rows;
/// `users` and `items` must hold one row per id; rows with NULL keys, which the SQL drops,
/// are counted into warnings. Errors name the table and the column.
pub async fn preflight(
    ctx: &SessionContext,
    tables: &[&str],
    non_empty: &[&str],
) -> Result<Preflight> {
    let mut out = Preflight::default();
    for &name in tables {
        // The columns whose NULL makes the SQL drop a row, and the id that must be unique.
        let (keys, id): (&[&str], _) = match name {
            "impressions" => (&["user_id", "item_id", "ts", "clicked"], None),
            "actions" => (&["user_id", "item_id", "ts"], None),
            "candidates" => (&["user_id", "item_id"], None),
            "users" => (&["user_id"], Some("user_id")),
            "items" => (&["item_id"], Some("item_id")),
            _ => continue,
        };
        let any_null = keys
            .iter()
            .map(|k| format!("{k} IS NULL"))
            .collect::<Vec<_>>()
            .join(" OR ");
        let counts = first_row(
            ctx,
            &format!("SELECT count(*), count(*) FILTER (WHERE {any_null}) FROM {name}"),
        )
        .await
        .with_context(|| format!("checking table `{name}`"))?;
        let (rows, nulls) = (counts[0].unwrap_or(0) as u64, counts[1].unwrap_or(0) as u64);
        out.rows.insert(name.to_string(), rows);
        if rows == 0 && non_empty.contains(&name) {
            bail!("table `{name}` has no rows; there is nothing to build from");
        }
        if rows == 0 && name == "actions" {
            out.warnings.push(
                "table `actions` has no rows: every like and dislike sequence is empty \
                 (check its location if the logs do have likes or dislikes)"
                    .to_string(),
            );
        }
        if nulls > 0 {
            out.warnings.push(format!(
                "table `{name}`: {nulls} of {rows} rows have a NULL in {} and are skipped",
                keys.join(", ")
            ));
        }
        if let Some(id) = id {
            let dup = ctx
                .sql(&format!(
                    "SELECT {id}, count(*) AS n FROM {name} WHERE {id} IS NOT NULL \
                     GROUP BY {id} HAVING count(*) > 1 LIMIT 1"
                ))
                .await?
                .collect()
                .await
                .with_context(|| format!("checking table `{name}`"))?;
            if let Some(b) = dup.iter().find(|b| b.num_rows() > 0) {
                let shown =
                    datafusion::arrow::util::display::array_value_to_string(b.column(0), 0)?;
                bail!(
                    "table `{name}`: {id} {shown} appears in more than one row; \
                     it must hold one row per {id}"
                );
            }
        }
    }
    Ok(out)
}

/// Checks that every candidate names a user in `users` and an item in `items`: a candidate
/// the profile tables do not know is a broken candidate generator, not a new user (a new
/// user has a `users` row and no feedback). The error names the table, the column and one
/// offending id.
pub async fn check_candidates(ctx: &SessionContext) -> Result<()> {
    for (id, table) in [("user_id", "users"), ("item_id", "items")] {
        let unknown = format!(
            "FROM candidates AS c WHERE c.{id} IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM {table} AS t WHERE t.{id} = c.{id})"
        );
        let n = first_row(ctx, &format!("SELECT count(*) {unknown}"))
            .await
            .with_context(|| format!("checking table `candidates` against `{table}`"))?[0]
            .unwrap_or(0);
        if n > 0 {
            let b = ctx
                .sql(&format!("SELECT c.{id} {unknown} LIMIT 1"))
                .await?
                .collect()
                .await?;
            let shown = b
                .iter()
                .find(|b| b.num_rows() > 0)
                .map(|b| datafusion::arrow::util::display::array_value_to_string(b.column(0), 0))
                .transpose()?
                .unwrap_or_default();
            bail!(
                "table `candidates`: {n} rows reference a {id} that is not in table `{table}` \
                 (for example {id} {shown}); add it to `{table}` or drop those candidates"
            );
        }
    }
    Ok(())
}
