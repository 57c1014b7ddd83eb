//! `dumn sequences`: materialise the training examples or the scoring input as Parquet.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use dumn::data::contract::Inputs;
use dumn::data::pipeline::{self, ModelInput};
use dumn::data::script::{Params, Script};
use dumn::data::sql::parse_time;
use dumn::engine::session;
use dumn::io::location::{self, Location};
use dumn::io::parquet::write_parquet;
use dumn::io::publish;

use super::{row_spinner, EngineArgs};

#[derive(Args)]
pub struct SequencesArgs {
    /// Which output to build.
    #[arg(value_enum)]
    pub output: ModelInput,
    /// The raw logs: a folder (local or s3://) with one sub-folder per table
    /// (impressions/, actions/, users/, items/, candidates/), as `dumn gen` writes it; or,
    /// with --adapter, the folder the adapter reads.
    #[arg(long, value_name = "LOCATION")]
    pub data: Option<String>,
    /// A table's location, overriding DATA/NAME; repeat for several tables.
    #[arg(long = "table", value_name = "NAME=LOCATION")]
    pub tables: Vec<String>,
    /// Define the input tables with an adapter: `kuairand`, `taobao` (see sql/adapters/) or
    /// a .sql file of your own.
    #[arg(long, value_name = "NAME|FILE")]
    pub adapter: Option<String>,
    /// Your own SQL file for the final step, defining the view `training_examples` or
    /// `scoring_input` (default: the embedded sql/training_examples.sql or
    /// sql/scoring_input.sql).
    #[arg(long, value_name = "FILE")]
    pub sql: Option<PathBuf>,
    /// T: the most items kept per sequence.
    #[arg(long, default_value_t = 100)]
    pub seq_len: usize,
    /// Scoring only: feedback strictly before this time enters the sequences. YYYY-MM-DD
    /// (midnight) or YYYY-MM-DDTHH:MM:SS. Default: the cutoff recorded by `dumn gen` in
    /// DATA/_SUCCESS.
    #[arg(long)]
    pub cutoff: Option<String>,
    /// Where to write the Parquet table (local or s3://). Replaced atomically.
    #[arg(long, value_name = "LOCATION")]
    pub out: Option<String>,
    /// Print the query plan instead of writing.
    #[arg(long)]
    pub explain: bool,
    /// Run the query without writing, and print the plan with each operator's time and
    /// rows (EXPLAIN ANALYZE).
    #[arg(long, conflicts_with = "explain")]
    pub analyze: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// The cutoff `dumn gen` recorded in `data/_SUCCESS`, if any.
pub async fn recorded_cutoff(data: &Location) -> Option<String> {
    let bytes = location::get(&data.join(publish::SUCCESS_MARKER))
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("cutoff")?.as_str().map(str::to_string)
}

pub async fn run(args: SequencesArgs) -> Result<()> {
    let inputs = Inputs::from_flags(args.data.as_deref(), &args.tables, args.adapter.as_deref())?;
    let last = args.sql.as_deref().map(Script::from_file).transpose()?;

    let mut params = Params::new().seq_len(args.seq_len)?;
    if args.output == ModelInput::Scoring {
        let cutoff = match (&args.cutoff, &inputs.data) {
            (Some(c), _) => c.clone(),
            (None, Some(data)) => recorded_cutoff(data).await.with_context(|| {
                format!("give --cutoff: {data} holds no cutoff recorded by `dumn gen`")
            })?,
            (None, None) => anyhow::bail!("give --cutoff (the scoring input's as-of time)"),
        };
        params = params.cutoff(parse_time(&cutoff)?);
    }

    let ctx = session::context(&args.engine.options())?;
    let (df, checks) = pipeline::prepare(
        &ctx,
        &inputs,
        args.output,
        last.as_ref(),
        &params,
        &pipeline::Scratch::Temporary,
    )
    .await?;
    for w in &checks.warnings {
        dumn::io::log::warn(w);
    }
    if args.explain || args.analyze {
        let plan = df.explain(false, args.analyze)?.collect().await?;
        println!(
            "{}",
            datafusion::arrow::util::pretty::pretty_format_batches(&plan)?
        );
        return Ok(());
    }
    let out = Location::parse(
        args.out
            .as_deref()
            .context("give --out LOCATION (or --explain to see the plan)")?,
    )?;
    let started = Instant::now();
    let bar = row_spinner(&format!("{} rows", args.output.view()));
    let progress = bar.clone();
    let extra = serde_json::json!({
        "output": args.output.view(),
        "seq_len": args.seq_len,
        "input_rows": checks.rows,
    });
    let summary = write_parquet(df, &out, extra, move |n| progress.set_position(n)).await;
    bar.finish_and_clear();
    let summary = summary?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} rows of {} to {out} in {secs:.2}s ({:.0} rows/s, {} files)",
        summary.rows,
        args.output.view(),
        summary.rows as f64 / secs,
        summary.files
    );
    Ok(())
}
