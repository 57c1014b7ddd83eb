//! `dumn sql`: ad-hoc SQL with dumn's functions, the model's included.
//!
//! Statements come from `-c`, from `-f FILE`, or from the prompt (`src/cli/prompt.rs`:
//! line editing, history, `\d` and `\df`). Tables come from `--table NAME=LOCATION` and, with `--job`,
//! from a scoring job (its inputs, its model, and the views `feedback` and
//! `scoring_input` as of `--date`). Results print as tables, or with `--format` as csv,
//! json or ndjson for programs; `COPY (…) TO 'LOCATION'`
//! writes them (note that COPY adds files: write each result to a fresh location). With
//! `--cluster URL` the statements run on a Ballista cluster (`src/engine/cluster.rs`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use dumn::data::contract::Inputs;
use dumn::data::sql::Statements;
use dumn::engine::{cluster, session};
use dumn::scoring::job::Job;
use dumn::scoring::session::Scoring;
use dumn::udfs;

use super::run::{ClusterArgs, ModelArgs};
use super::EngineArgs;

#[derive(Args)]
pub struct SqlArgs {
    /// Run these statements (separated by `;`) and exit.
    #[arg(
        short = 'c',
        long = "command",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    pub command: Option<String>,
    /// Run the statements in this file and exit.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Register a table: NAME=LOCATION, a Parquet, CSV or TSV file or folder, local or
    /// s3://. Repeat for several tables.
    #[arg(long = "table", value_name = "NAME=LOCATION")]
    pub tables: Vec<String>,
    /// The model artifact behind dumn_ctr, dumn_dislike and dumn_score (local or s3://).
    #[arg(long, value_name = "LOCATION")]
    pub model: Option<String>,
    /// A scoring job file: registers its input tables and its model (unless --model), and
    /// defines the views `feedback` and `scoring_input` as of --date.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// With --job: the day whose scoring input to define (default: the job's date).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "job")]
    pub date: Option<String>,
    /// Rows printed per result as a table; the rest are counted (csv, json and ndjson
    /// print every row).
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub max_rows: usize,
    /// How results print: a table for people, or csv (with a header), json (one array per
    /// result) or ndjson (one object per line) for programs.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Stop after this long (e.g. 10m) with exit code 5. Default: no limit.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    #[command(flatten)]
    pub model_args: ModelArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// How `dumn sql` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table, at most --max-rows rows, and the row count.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of objects per result.
    Json,
    /// One JSON object per row and line.
    Ndjson,
}

/// Where and how results print.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    format: Format,
    max_rows: usize,
}

/// Runs each statement of `sql` and prints its result.
/// `name` (the command, a file, the prompt) is named in errors.
pub(super) async fn run_statements(
    ctx: &SessionContext,
    sql: &str,
    name: &str,
    out: Output,
) -> Result<()> {
    let mut statements = Statements::parse(ctx, sql, name)?;
    while let Some(df) = statements.next().await {
        let df = df?;
        if out.format != Format::Table {
            print_for_programs(df.collect().await?, out.format)?;
            continue;
        }
        let max_rows = out.max_rows;
        let mut stream = df.execute_stream().await?;
        let mut shown: Vec<RecordBatch> = Vec::new();
        let (mut rows, mut kept) = (0usize, 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            if kept < max_rows {
                let take = batch.num_rows().min(max_rows - kept);
                shown.push(batch.slice(0, take));
                kept += take;
            }
        }
        if shown.iter().any(|b| b.num_columns() > 0) && rows > 0 {
            println!("{}", pretty_format_batches(&shown)?);
        }
        if rows > kept {
            println!("({rows} rows, first {kept} shown)");
        } else {
            println!("({rows} {})", if rows == 1 { "row" } else { "rows" });
        }
    }
    Ok(())
}

/// Prints every row of a result as csv, json or ndjson on stdout (nothing for a statement
/// without columns, such as CREATE).
fn print_for_programs(batches: Vec<RecordBatch>, format: Format) -> Result<()> {
    use datafusion::arrow::{csv, json};
    if !batches.iter().any(|b| b.num_columns() > 0) {
        return Ok(());
    }
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let mut stdout = std::io::stdout().lock();
    match format {
        Format::Table => unreachable!("tables print in run_statements"),
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut stdout);
            for b in &batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = json::ArrayWriter::new(&mut stdout);
            w.write_batches(&refs)?;
            w.finish()?;
            writeln!(stdout)?;
        }
        Format::Ndjson => {
            let mut w = json::LineDelimitedWriter::new(&mut stdout);
            w.write_batches(&refs)?;
            w.finish()?;
        }
    }
    Ok(())
}

pub async fn run(args: SqlArgs) -> Result<()> {
    super::within(args.timeout, sql(&args)).await
}

async fn sql(args: &SqlArgs) -> Result<()> {
    match &args.job {
        Some(path) => {
            let mut job = Job::read(path, &[])?;
            if let Some(m) = &args.model {
                job.model = m.clone();
            }
            let date = job.date(args.date.as_deref())?;
            let scorer = args.model_args.scorer(&job.model, Some(&job)).await?;
            let s = Scoring::open(
                &job,
                date,
                scorer,
                &args.engine.options(),
                args.cluster.cluster.as_deref(),
            )
            .await?;
            for w in &s.checks.warnings {
                dumn::io::log::warn(w);
            }
            let result = statements(args, &s.ctx).await;
            s.close().await;
            result
        }
        None => {
            let local = session::context(&args.engine.options())?;
            let scorer = match &args.model {
                Some(m) => Some(args.model_args.scorer(m, None).await?),
                None => None,
            };
            let ctx = match &args.cluster.cluster {
                Some(url) => cluster::connect(&local, url, scorer).await?,
                None => {
                    udfs::register_model(&local, scorer);
                    local
                }
            };
            statements(args, &ctx).await
        }
    }
}

/// Registers the --table tables and runs the statements of -c, -f or the prompt.
async fn statements(args: &SqlArgs, ctx: &SessionContext) -> Result<()> {
    Inputs::from_flags(None, &args.tables, None)?
        .register(ctx, &[])
        .await?;
    let out = Output {
        format: args.format,
        max_rows: args.max_rows,
    };
    match (&args.command, &args.file) {
        (Some(sql), _) => run_statements(ctx, sql, "the command", out).await,
        (None, Some(path)) => {
            let sql = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the SQL file {}", path.display()))?;
            if sql.trim().is_empty() {
                bail!("{} holds no SQL", path.display());
            }
            run_statements(ctx, &sql, &path.display().to_string(), out).await
        }
        (None, None) => super::prompt::run(ctx, out).await,
    }
}
