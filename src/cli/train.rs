//! `dumn train`, `dumn ablate` and `dumn eval`: flags in, [`dumn::training::workflow`] does
//! the work.
//!
//! Settings come from flags and, with `--job FILE`, from a TOML job file (`jobs/`); a flag
//! overrides the file, and the file overrides the defaults
//! ([`dumn::training::settings`]).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use dumn::io::failure::{Failure, MarkFailure};
use dumn::io::{guard, job_file, publish, Location};
use dumn::model::device::DeviceChoice;
use dumn::model::registry::{self, Registry, DEFAULT_ALIAS};
use dumn::training::evaluate::Label;
use dumn::training::fit::{EpochRecord, Progress, Schedule};
use dumn::training::settings::{self, PrepareOptions, Source, TrainSettings};
use dumn::training::workflow::{self as training, SaveTo, TrainingSet};

use super::{row_spinner, EngineArgs};

/// The flags of a training job; each may also come from the TOML file, under the same
/// name with `_` for `-` (see [`TrainSettings`] for the defaults).
#[derive(Args, Debug, Default, Serialize)]
pub struct TrainFlags {
    /// Raw logs: a folder (local or s3://) with impressions/, actions/, users/, items/; or,
    /// with --adapter, the folder the adapter reads.
    #[arg(long, value_name = "LOCATION")]
    pub data: Option<String>,
    /// Define the input tables with an adapter: kuairand, taobao or a .sql file.
    #[arg(long, value_name = "NAME|FILE")]
    pub adapter: Option<String>,
    /// Your own SQL for the training examples (defines the view `training_examples`;
    /// default: sql/training_examples.sql).
    #[arg(long, value_name = "FILE")]
    pub sql: Option<PathBuf>,
    /// The model registry to write into, a local folder or s3://bucket/prefix: the model
    /// goes to OUT/<version>/ and the alias OUT/latest (see --alias) moves to it. (`dumn
    /// ablate` writes one plain artifact per variant under OUT instead.)
    #[arg(long, value_name = "LOCATION")]
    pub out: Option<String>,
    /// The label to train for and select on: click (CTR) or dislike (paper §4.5).
    #[arg(long, value_enum)]
    pub label: Option<Label>,
    /// The variant of the paper's ablations (DUMN, DUMN-FP, …) or a baseline (BASE_DIN,
    /// BASE_DIN4, BASE_DFN, BASE_FEATURES).
    #[arg(long)]
    pub variant: Option<String>,
    /// Most epochs (passes over the train split).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many epochs without a better validation AUC.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Examples per optimizer step (default 256 on a CPU, 1024 on a GPU, where larger
    /// steps keep the device busier).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// AdamW's learning rate (default: the paper's 0.005 at batch 256, times
    /// √(batch size / 256): 0.01 at 1024).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// AdamW's decoupled weight decay (default 1e-4; 0 is the paper's plain Adam).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    /// Dropout after the output network's hidden layers, in training (default 0.1).
    #[arg(long)]
    pub dropout: Option<f64>,
    /// Learning-rate schedule over the planned epochs.
    #[arg(long, value_enum)]
    pub lr_schedule: Option<Schedule>,
    /// Residual path and layer normalisation around eq. 1-2 (a deviation from the paper;
    /// default true).
    #[arg(long, value_name = "BOOL")]
    pub attention_residual: Option<bool>,
    /// A learned null position in eq. 4's softmax, so pooling counts matching items (a
    /// deviation from the paper; default false: validation preferred it off).
    #[arg(long, value_name = "BOOL")]
    pub count_aware_pooling: Option<bool>,
    /// Rank-recency vectors added to sequence positions (not in the paper; default true).
    #[arg(long, value_name = "BOOL")]
    pub position_buckets: Option<bool>,
    /// Commit eq. 12's memory write after each step (default true; false: the memories
    /// are trained tensors only).
    #[arg(long, value_name = "BOOL")]
    pub memory_write: Option<bool>,
    /// Triplets from the anchor's own user's sequences rather than a pool of the batch's
    /// (default true).
    #[arg(long, value_name = "BOOL")]
    pub triplets_per_user: Option<bool>,
    /// T, the longest sequence (paper: 100).
    #[arg(long)]
    pub seq_len: Option<usize>,
    /// m, slots per user memory (paper: 256).
    #[arg(long, value_name = "M")]
    pub memory_slots: Option<i64>,
    /// Z, the size of a memory slot (paper: 64).
    #[arg(long, value_name = "Z")]
    pub slot_dim: Option<i64>,
    /// Hidden units of the memory controller, eq. 8 (paper: 512).
    #[arg(long, value_name = "N")]
    pub controller_dim: Option<i64>,
    /// Rows shuffled together after each epoch's full shuffle, while streaming.
    #[arg(long)]
    pub shuffle_buffer: Option<usize>,
    /// Minibatches built ahead of the training step on a thread of their own, overlapping
    /// it (default: 4 on a GPU; 0 on a CPU, where building them beside the step's own
    /// threads slowed DUMN from 4,300 to 2,600 examples/s on 2 cores). Results do not
    /// change.
    #[arg(long, value_name = "N")]
    pub prefetch: Option<usize>,
    /// Validation starts here (default: 80% into the impressions' time range).
    #[arg(long, value_name = "TIME")]
    pub valid_from: Option<String>,
    /// Test starts here (default: 90% into the time range).
    #[arg(long, value_name = "TIME")]
    pub test_from: Option<String>,
    /// Most rows of one embedding table (the most frequent values keep theirs).
    #[arg(long, value_name = "ROWS")]
    pub max_embedding_rows: Option<i64>,
    /// Training rows a value needs for an embedding row of its own; rarer and unseen
    /// values share one out-of-vocabulary row.
    #[arg(long, value_name = "N")]
    pub min_count: Option<u64>,
    /// Seed of the model's initialisation and the shuffling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the model runs: auto (CUDA when present), cpu, cuda (the first GPU) or cuda:N.
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<DeviceChoice>,
    /// Scratch folder for the materialised examples (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
}

#[derive(Args)]
pub struct TrainArgs {
    /// A TOML job file (see jobs/train-demo.toml and docs/job-file.md); relative paths in it
    /// are read from its folder. Flags, then --set, then DUMN_<KEY> environment variables
    /// override it.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// Set any job key: KEY=VALUE (e.g. --set epochs=3); repeatable. Beats the job file and
    /// the environment; a dedicated flag beats it.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Stop after this long (e.g. 90m, 2h) with exit code 5, writing no artifact. Default:
    /// no limit.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub timeout: Option<std::time::Duration>,
    #[command(flatten)]
    pub flags: TrainFlags,
    #[command(flatten)]
    pub engine: EngineArgs,
}

impl TrainArgs {
    /// The job file (if any) under the flags: the settings, resolved.
    fn settings(&self) -> Result<TrainSettings> {
        let flags = toml::Table::try_from(&self.flags).context("reading the flags")?;
        let layers = job_file::Layers {
            file: self.job.as_deref(),
            set: &self.set,
            flags,
        };
        job_file::load(settings::KEYS, layers)
    }
}

/// The progress display of a fit.
struct Bar {
    bar: ProgressBar,
    name: String,
}

impl Bar {
    fn new(name: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), super::draw_target()).with_style(
            ProgressStyle::with_template(
                "{bar:30} {human_pos}/{human_len} {msg} {prefix} {per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
        Self {
            bar,
            name: name.to_string(),
        }
    }
}

impl Progress for Bar {
    fn epoch_start(&self, epoch: usize, rows: u64) {
        self.bar.reset();
        self.bar.set_length(rows);
        self.bar.set_message(format!("{} epoch {epoch}", self.name));
    }
    fn step(&self, examples: u64, loss: f64) {
        self.bar.set_position(examples);
        self.bar.set_prefix(format!("loss {loss:.4}"));
    }
    fn epoch_end(&self, r: &EpochRecord, improved: bool) {
        self.bar.suspend(|| {
            println!(
                "{} epoch {:>2}: train loss {:.4}, {:.0} examples/s; validation {}{}",
                self.name,
                r.epoch,
                r.train_loss,
                r.examples_per_second,
                r.valid.summary(),
                if improved { "  (best so far)" } else { "" }
            )
        });
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Builds the training examples with a spinner counting the rows written.
async fn prepare(
    source: &Source,
    options: &PrepareOptions,
    engine: &EngineArgs,
) -> Result<TrainingSet> {
    let bar = row_spinner("training examples");
    let progress = bar.clone();
    let set = TrainingSet::prepare(source, options, &engine.options(), move |n| {
        progress.set_position(n)
    })
    .await
    .failure(Failure::BadInput);
    bar.finish_and_clear();
    set
}

/// `dumn train`: the training flags and the alias to move.
#[derive(Args)]
pub struct TrainCmdArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// The alias of OUT moved to the new version once it is written (jobs name it as
    /// OUT@ALIAS; `OUT` alone means OUT@latest).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_ALIAS)]
    pub alias: String,
}

pub async fn run(args: TrainCmdArgs) -> Result<()> {
    super::within(args.train.timeout, train(&args.train, &args.alias)).await
}

async fn train(args: &TrainArgs, alias: &str) -> Result<()> {
    let started = std::time::Instant::now();
    let s = args.settings()?;
    let out = Location::parse(
        s.out
            .as_deref()
            .context("give --out LOCATION (or `out = ...` in the job file)")?,
    )?;
    registry::check_alias(alias).failure(Failure::BadInput)?;
    let registry = Registry::new(out.clone());
    if let Some(data) = &s.data {
        guard::check_apart(&out, &[("data".to_string(), Location::parse(data)?)])?;
    }
    registry.check_target().await.failure(Failure::BadInput)?;
    publish::check_writable(&out).await?;
    let options = s.prepare_options(training::reads_merged_feedback(&[&s.variant]))?;
    let set = prepare(&s.source(), &options, &args.engine).await?;
    let save_to = SaveTo::Version {
        registry,
        alias: alias.to_string(),
    };
    let trained =
        training::train_variant(&set, &s, &s.variant, &save_to, &Bar::new(&s.variant)).await?;
    // The last line: one JSON object for schedulers and log shippers.
    let fit = &trained.fit;
    let summary = serde_json::json!({
        "model_version": trained.model_version,
        "out": trained.location.to_string(),
        "alias": format!("{out}@{alias}"),
        "variant": s.variant,
        "label": s.label.column(),
        "rows": set.rows,
        "best_epoch": fit.best_epoch,
        "epochs": fit.epochs.len(),
        "valid": fit.valid,
        "test": fit.test,
        "total_seconds": started.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    Ok(())
}

#[derive(Args)]
pub struct AblateArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Variants to train (default: every variant of the paper's tables, then the
    /// baselines BASE_DIN, BASE_DIN4, BASE_DFN and BASE_FEATURES).
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
    /// Train every variant this many times, with seeds --seed, --seed + 1, …; the summary
    /// table then shows the mean and 95% interval over the seeds, and each variant's test
    /// AUC difference to DUMN with a paired bootstrap interval over the test impressions.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seeds: usize,
    /// Keep every model whose folder under --out already holds a finished run with the
    /// same settings, seed and data (its test split is scored again for the tables), and
    /// train only the others: a long comparison that was stopped goes on where it was.
    #[arg(long)]
    pub resume: bool,
}

/// `dumn ablate`: every variant on the same examples and split, then a table.
pub async fn ablate(args: AblateArgs) -> Result<()> {
    super::within(args.train.timeout, compare(args)).await
}

async fn compare(args: AblateArgs) -> Result<()> {
    let s = args.train.settings()?;
    let out = Location::parse(
        s.out
            .as_deref()
            .context("give --out LOCATION: one artifact per variant goes under it")?,
    )?;
    publish::check_writable(&out.join("x")).await?;
    let variants = training::ablation_variants(&args.variants)?;
    let bar = row_spinner("training examples");
    let progress = bar.clone();
    let result = training::ablate(
        &s,
        &training::AblationPlan {
            variants,
            seeds: args.seeds,
            resume: args.resume,
        },
        &out,
        &args.train.engine.options(),
        move |n| progress.set_position(n),
        &|v: &str| {
            bar.finish_and_clear();
            Box::new(Bar::new(v)) as Box<dyn Progress>
        },
    )
    .await;
    result.map(|_| ())
}

#[derive(Args)]
pub struct EvalArgs {
    /// The model, local or s3://: MODELS@ALIAS, MODELS@VERSION, MODELS (its latest) or an
    /// artifact folder.
    pub model: String,
    /// Raw logs, as for `dumn train`.
    #[arg(long, value_name = "LOCATION")]
    pub data: String,
    /// An adapter, as for `dumn train`.
    #[arg(long, value_name = "NAME|FILE")]
    pub adapter: Option<String>,
    /// Your own SQL for the examples, as for `dumn train`.
    #[arg(long, value_name = "FILE")]
    pub sql: Option<PathBuf>,
    /// Only impressions at or after this time.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Only impressions before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Also score with histories cut at the start of each impression's day (00:00 UTC), as
    /// the nightly job sees them, and print both figures: the gap is what serving from
    /// last night's histories costs.
    #[arg(long)]
    pub as_of_midnight: bool,
    /// Where the model runs: auto (CUDA when present), cpu, cuda (the first GPU) or cuda:N.
    #[arg(long, value_name = "DEVICE", default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Also write the metrics as JSON here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// `dumn eval`: the metrics of a saved model on any dataset.
pub async fn eval(args: EvalArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let loaded = registry::open(&args.model, device)
        .await
        .failure(Failure::BadInput)?;
    let model = &loaded.model;
    let source = Source {
        data: Some(args.data.clone()),
        adapter: args.adapter.clone(),
        sql: args.sql.clone(),
    };
    let options = PrepareOptions {
        seq_len: model.config.seq_len as usize,
        merged_feedback: model.config.ablation.reads_merged_feedback(),
        vocabulary: None,
        ..PrepareOptions::default()
    };
    let predicate = training::time_range(args.from.as_deref(), args.until.as_deref())?;
    // (cut at midnight, what it is called in the output and the JSON); one unnamed pass
    // without --as-of-midnight.
    let passes: &[(bool, Option<(&str, &str)>)] = if args.as_of_midnight {
        &[
            (false, Some(("point in time", "point_in_time"))),
            (true, Some(("as of midnight", "as_of_midnight"))),
        ]
    } else {
        &[(false, None)]
    };
    let mut out = serde_json::Map::new();
    for &(as_of_midnight, name) in passes {
        let options = PrepareOptions {
            as_of_midnight,
            ..options.clone()
        };
        let set = prepare(&source, &options, &args.engine).await?;
        let mut metrics = serde_json::Map::new();
        for (label, m) in training::evaluate_model(model, &set, &predicate).await? {
            let prefix = name.map_or(String::new(), |(title, _)| format!("{title}, "));
            println!("{prefix}{}: {}", label.column(), m.summary());
            metrics.insert(label.column().into(), serde_json::to_value(&m)?);
        }
        match name {
            Some((_, key)) => {
                out.insert(key.into(), metrics.into());
            }
            None => out = metrics,
        }
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_job_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("train.toml");
        std::fs::write(&job, "data = \"d\"\nepochs = 3\nvariant = \"BASE_DIN\"\n").unwrap();
        let args = TrainArgs {
            job: Some(job.clone()),
            set: vec![],
            timeout: None,
            flags: TrainFlags {
                epochs: Some(7),
                device: Some(DeviceChoice::Cpu),
                label: Some(Label::Dislike),
                ..Default::default()
            },
            engine: EngineArgs {
                partitions: None,
                memory_limit: None,
            },
        };
        let s = args.settings().unwrap();
        assert_eq!(s.epochs, 7, "the flag wins");
        assert_eq!(s.variant, "BASE_DIN", "the file beats the default");
        let folder = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            s.data,
            Some(folder.join("d").display().to_string()),
            "a relative path of the file is read from its folder"
        );
        assert_eq!(s.device, DeviceChoice::Cpu);
        assert_eq!(s.label, Label::Dislike);
        assert_eq!(s.batch_size, TrainSettings::default().batch_size);
        std::fs::write(&job, "candidate = 1\n").unwrap();
        let err = format!("{:#}", args.settings().unwrap_err());
        assert!(err.contains("candidate"), "{err}");
    }
}
