//! The `dumn` command line. Each subcommand lives in its own module under `src/cli/`, which
//! parses its flags and calls the library.

use clap::{Parser, Subcommand};
use dumn::io::log::{self, LogFormat};

mod cli;

/// Batch scoring for the DUMN click-through-rate model (Denoising User-aware Memory Network).
///
/// dumn builds each user's click, unclick, like and dislike sequences from raw feedback
/// logs with DataFusion SQL (local files or s3://), trains the model of the paper with
/// libtorch (CUDA when present, CPU otherwise) and stores it as an artifact: a directory
/// with weights.safetensors and manifest.json.
///
/// A first run, on generated data:
///
///   dumn gen out/data
///   dumn sequences training --data out/data --out out/examples
///   dumn train --job jobs/train-demo.toml
///   dumn run jobs/demo.toml
//
// The first run's commands keep their lines (`verbatim_doc_comment`): clap would otherwise
// join them into one paragraph. A subcommand's examples are its `after_long_help`.
#[derive(Parser)]
#[command(
    name = "dumn",
    version = dumn::BUILD,
    propagate_version = true,
    max_term_width = 100,
    verbatim_doc_comment
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How warnings, progress and errors are written on stderr: text for people, or json
    /// (one object per line, progress included) for log shippers. DUMN_LOG=debug (a
    /// tracing filter) shows more.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic raw-log dataset (impressions, actions, users, items, candidates).
    ///
    /// The data has the structure the model is meant to find planted in it: a long-term
    /// taste per user, short-term drift, accidental clicks followed by dislikes, a
    /// regretted clickbait topic, and informative likes and dislikes (see
    /// src/synthetic/logs.rs).
    /// Deterministic for a --seed.
    Gen(cli::gen::GenArgs),
    /// Build the model's input from raw logs with the SQL in sql/, and write it as Parquet.
    ///
    /// `training` gives one row per impression with the user's four feedback sequences
    /// strictly before it and both labels; `scoring` gives one row per candidate with the
    /// sequences strictly before --cutoff.
    Sequences(cli::sequences::SequencesArgs),
    /// Train DUMN from raw logs: time split, AdamW, early stopping on validation AUC.
    ///
    /// Builds the training examples with sql/ (or --sql), splits them by time into train,
    /// validation and test, trains with logloss plus the triplet loss, keeps the weights of
    /// the best validation epoch, and writes a new version OUT/<version>/ (weights,
    /// manifest, report.json, learning_curve.svg), then moves the alias OUT/latest to it.
    /// Settings can come from a TOML job file (--job).
    Train(cli::train::TrainCmdArgs),
    /// The AUC, GAUC and logloss of a saved model on any dataset.
    Eval(cli::train::EvalArgs),
    /// Train the paper's ablation variants and the baselines on one split, with several
    /// seeds, and print the table (AUC, GAUC and logloss with intervals, and each model's
    /// paired difference to DUMN).
    Ablate(cli::train::AblateArgs),
    /// Run a nightly scoring job: score every candidate and write the day's score and
    /// ranking tables.
    ///
    /// Builds each user's sequences as of --date with sql/, scores every candidate with
    /// both probabilities (dumn_ctr, dumn_dislike), writes day DATE of the table
    /// OUT/scores and, from it, of OUT/ranking (per user, by ctr, likely dislikes removed,
    /// top k). Both are Delta Lake tables partitioned by dt (or, with format = "parquet",
    /// dt=DATE/ folders with a _SUCCESS marker); a re-run replaces the day whole.
    Run(cli::run::RunArgs),
    /// Run SQL with dumn's functions, the model's included (dumn_ctr, dumn_dislike,
    /// dumn_score).
    ///
    /// Give statements with -c or -f, or type them at the prompt. Register tables with
    /// --table NAME=LOCATION, a model with --model, or everything a scoring job reads with
    /// --job.
    #[command(after_long_help = r#"Example:

  dumn sql --job jobs/demo.toml -c "SELECT user_id, item_id,
    dumn_ctr(user_id, age_band, region, device, item_id, category, brand,
             click_seq, unclick_seq, like_seq, dislike_seq) AS ctr
  FROM scoring_input LIMIT 5""#)]
    Sql(cli::sql::SqlArgs),
    /// Train the model on generated examples with a planted signal, and show it learn.
    ///
    /// Generates users with a long-term taste, a hated topic and short-term drift, trains
    /// DUMN for --steps AdamW steps, prints the loss going down and the AUC on held-out
    /// users, then saves the artifact to --out and checks that reloading it gives the same
    /// scores.
    Demo(cli::demo::DemoArgs),
    /// Start the scheduler of a Ballista cluster that runs dumn's SQL.
    ///
    /// Executors (`dumn executor`) join it, and `dumn run --cluster` / `dumn sql --cluster`
    /// send it their queries. Every process of the cluster is started with the same
    /// --model.
    #[command(after_long_help = "Example, one machine:

  dumn scheduler --model models/demo &
  dumn executor --model models/demo --bind 127.0.0.1:50051 --grpc-port 50052 &
  dumn executor --model models/demo --bind 127.0.0.1:50061 --grpc-port 50062 &
  dumn run jobs/demo.toml --cluster 127.0.0.1:50050")]
    Scheduler(cli::cluster::SchedulerArgs),
    /// Start an executor of a Ballista cluster: it joins the scheduler and runs tasks, the
    /// model's included (loaded from --model).
    Executor(cli::cluster::ExecutorArgs),
    /// Print a model's manifest (version, hyper-parameters, schema, metrics) and the
    /// arguments of its SQL functions.
    Inspect {
        /// The model, local or s3://: MODELS@ALIAS, MODELS@VERSION, MODELS (its latest) or
        /// an artifact folder.
        model: String,
    },
    /// List a model registry's versions (with their metrics and aliases), or move an alias.
    ///
    /// `dumn train --out MODELS` writes MODELS/<version>/ and moves the alias
    /// MODELS/latest (or --alias NAME) to it; jobs name MODELS@latest, MODELS@NAME or a
    /// fixed MODELS@VERSION.
    Models(cli::models::ModelsArgs),
    /// Delete the files of a Delta table (a scoring job's `scores` or `ranking`) that no
    /// version of the last --retain-hours reads.
    ///
    /// A run replaces its day in one commit and leaves the replaced files for readers that
    /// still hold an older version; this removes them once they are old enough.
    #[command(after_long_help = "Example:

  dumn vacuum out/scores --retain-hours 48 --dry-run")]
    Vacuum(cli::vacuum::VacuumArgs),
}

/// Installs the `tracing` subscriber for the chosen format. In JSON mode dumn's own
/// warnings and progress are `tracing` events too, so the default filter shows them.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    log::set_format(format);
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::from_env("DUMN_LOG"))
            .with_writer(std::io::stderr)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(
                EnvFilter::try_from_env("DUMN_LOG")
                    .unwrap_or_else(|_| EnvFilter::new("warn,dumn=info")),
            )
            .with_writer(std::io::stderr)
            .init(),
    }
}

fn main() {
    dumn::model::device::tune_allocator();
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Gen(args) => cli::block_on(cli::gen::run(args)),
        Command::Sequences(args) => cli::block_on(cli::sequences::run(args)),
        Command::Train(args) => cli::block_on(cli::train::run(args)),
        Command::Eval(args) => cli::block_on(cli::train::eval(args)),
        Command::Ablate(args) => cli::block_on(cli::train::ablate(args)),
        Command::Run(args) => cli::block_on(cli::run::run(args)),
        Command::Sql(args) => cli::block_on(cli::sql::run(args)),
        Command::Scheduler(args) => cli::block_on(cli::cluster::scheduler(args)),
        Command::Executor(args) => cli::block_on(cli::cluster::executor(args)),
        Command::Demo(args) => cli::demo::run(args),
        Command::Inspect { model } => cli::block_on(cli::inspect::run(model)),
        Command::Models(args) => cli::block_on(cli::models::run(args)),
        Command::Vacuum(args) => cli::block_on(cli::vacuum::run(args)),
    };
    if let Err(e) = result {
        log::error(format_args!("{e:#}"));
        // The codes are documented in src/io/failure.rs and docs/troubleshooting.md.
        let code = dumn::io::failure::Failure::of(&e).map_or(1, |f| f.exit_code());
        std::process::exit(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own consistency checks of every subcommand (unique names, valid defaults),
    /// which otherwise fail only when that subcommand is first run.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// A subcommand's path of names (`[]` for dumn itself) and its long help.
    type Help = (Vec<String>, String);

    /// Every subcommand's long help.
    fn helps() -> Vec<Help> {
        fn walk(cmd: &mut clap::Command, path: Vec<String>, out: &mut Vec<Help>) {
            out.push((path.clone(), cmd.render_long_help().to_string()));
            for sub in cmd.get_subcommands_mut() {
                let mut p = path.clone();
                p.push(sub.get_name().to_string());
                walk(sub, p, out);
            }
        }
        use clap::CommandFactory;
        let mut out = Vec::new();
        walk(&mut Cli::command(), Vec::new(), &mut out);
        out
    }

    /// The examples of `--help` keep their lines: one command per line, as typed.
    #[test]
    fn help_examples_keep_one_command_per_line() {
        let helps = helps();
        let help = |path: &[&str]| {
            &helps
                .iter()
                .find(|(p, _)| p.iter().map(String::as_str).eq(path.iter().copied()))
                .unwrap_or_else(|| panic!("no subcommand {path:?}"))
                .1
        };
        for (path, line) in [
            (
                &[][..],
                "  dumn sequences training --data out/data --out out/examples",
            ),
            (
                &["sql"],
                "  dumn sql --job jobs/demo.toml -c \"SELECT user_id, item_id,",
            ),
            (
                &["scheduler"],
                "  dumn run jobs/demo.toml --cluster 127.0.0.1:50050",
            ),
            (
                &["vacuum"],
                "  dumn vacuum out/scores --retain-hours 48 --dry-run",
            ),
            (&["models", "list"], "  dumn models list models/ctr"),
            (
                &["models", "alias"],
                "  dumn models alias models/ctr prod 20261205T071500Z-ab12cd34",
            ),
        ] {
            assert!(
                help(path).lines().any(|l| l.trim_end() == line),
                "{path:?}: no line {line:?} in\n{}",
                help(path)
            );
        }
        // No help joins two commands on one line (what clap does to an example that is
        // not verbatim).
        for (path, text) in &helps {
            for l in text.lines() {
                assert!(
                    l.matches("dumn ").count() < 2 || !l.trim_start().starts_with("dumn "),
                    "{path:?}: {l:?}"
                );
            }
        }
    }
}
