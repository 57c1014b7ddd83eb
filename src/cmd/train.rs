//! `dumn train` and `dumn ablate`: train DUMN (or a variant, or a baseline) from raw logs
//! and the SQL in sql/, with a time split and early stopping, and write the artifact.
//!
//! Settings come from flags and, with `--job FILE`, from a TOML job file (`jobs/`); a flag
//! overrides the file, and the file overrides the defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;

use dumn::artifact::{self, DataInfo};
use dumn::contract::Inputs;
use dumn::dataset::{self, Examples, Split};
use dumn::device::{describe, DeviceChoice};
use dumn::fit::{self, EpochRecord, FitConfig, FitResult, Label};
use dumn::model::{Ablation, Dumn, FeedbackMode, ModelConfig};
use dumn::output::write_parquet;
use dumn::pipeline::{self, parse_cutoff, Output, Params, Script};
use dumn::storage::{self, Location};
use dumn::{report, session};

use super::{row_spinner, EngineArgs};

/// The settings of a training job; every field may come from the TOML file or a flag.
#[derive(Args, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
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
    /// Where to write the model artifact: a local folder or s3://bucket/prefix.
    #[arg(long, value_name = "LOCATION")]
    pub out: Option<String>,
    /// The label to train for and select on: click (CTR) or dislike (paper §4.5).
    #[arg(long, value_enum)]
    pub label: Option<Label>,
    /// The variant of the paper's ablations (DUMN, DUMN-FP, …) or a baseline (BASE_DIN,
    /// BASE_FEATURES).
    #[arg(long)]
    pub variant: Option<String>,
    /// Most epochs (passes over the train split).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Stop after this many epochs without a better validation AUC.
    #[arg(long)]
    pub patience: Option<usize>,
    /// Examples per Adam step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Adam's learning rate (paper: 0.005).
    #[arg(long)]
    pub learning_rate: Option<f64>,
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
    /// Rows shuffled together while streaming the train split.
    #[arg(long)]
    pub shuffle_buffer: Option<usize>,
    /// Validation starts here (default: 80% into the impressions' time range).
    #[arg(long, value_name = "TIME")]
    pub valid_from: Option<String>,
    /// Test starts here (default: 90% into the time range).
    #[arg(long, value_name = "TIME")]
    pub test_from: Option<String>,
    /// Largest embedding table per feature (rows).
    #[arg(long)]
    pub max_hash_size: Option<i64>,
    /// Seed of the model's initialisation and the shuffling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the model runs: auto, cpu or cuda.
    #[arg(long, value_enum)]
    pub device: Option<DeviceChoice>,
    /// Scratch folder for the materialised examples (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub work: Option<PathBuf>,
}

impl TrainSettings {
    /// Fills every unset field from `file`.
    fn or(self, file: TrainSettings) -> TrainSettings {
        macro_rules! pick {
            ($($f:ident),*) => { TrainSettings { $($f: self.$f.or(file.$f)),* } };
        }
        pick!(
            data,
            adapter,
            sql,
            out,
            label,
            variant,
            epochs,
            patience,
            batch_size,
            learning_rate,
            seq_len,
            memory_slots,
            slot_dim,
            controller_dim,
            shuffle_buffer,
            valid_from,
            test_from,
            max_hash_size,
            seed,
            device,
            work
        )
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// A TOML job file (see jobs/train-demo.toml); flags override it.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
    #[command(flatten)]
    pub settings: TrainSettings,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Reads the job file (if any) under the flags.
fn settings(args: TrainArgs) -> Result<(TrainSettings, EngineArgs)> {
    let file = match &args.job {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the job file {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("in the job file {}", path.display()))?
        }
        None => TrainSettings::default(),
    };
    Ok((args.settings.or(file), args.engine))
}

/// Examples materialised once, shared by every model trained on them.
pub struct Prepared {
    pub examples: Examples,
    pub split: Split,
    pub schema: dumn::features::FeatureSchema,
    pub feedback: dataset::FeedbackSummary,
    pub fingerprint: String,
    pub rows: u64,
    _work: Option<tempfile::TempDir>,
}

/// Whether the named variant reads `feedback_seq` (see sql/training_examples.sql).
fn reads_merged_feedback(variant: &str) -> bool {
    Ablation::variant(variant).is_some_and(|a| a.reads_merged_feedback())
}

/// Builds and materialises the training examples; `merged` fills `feedback_seq`.
async fn prepare(s: &TrainSettings, engine: &EngineArgs, merged: bool) -> Result<Prepared> {
    let inputs = Inputs {
        data: s.data.as_deref().map(Location::parse).transpose()?,
        adapter: s.adapter.as_deref().map(pipeline::adapter).transpose()?,
        ..Default::default()
    };
    ensure!(
        inputs.data.is_some(),
        "give --data LOCATION (or `data = ...` in the job file)"
    );
    let last = s.sql.as_deref().map(Script::from_file).transpose()?;
    let params = Params::new()
        .seq_len(s.seq_len.unwrap_or(100))?
        .merged_feedback(merged);
    let ctx = session::context(&engine.options())?;
    let (df, checks) = pipeline::prepare(
        &ctx,
        &inputs,
        Output::Training,
        last.as_ref(),
        &params,
        &pipeline::Scratch::Temporary,
    )
    .await?;
    for w in &checks.warnings {
        eprintln!("warning: {w}");
    }
    let feedback = dataset::FeedbackSummary::read(&ctx).await?;
    let schema =
        dataset::feature_schema(&ctx, &feedback, s.max_hash_size.unwrap_or(1 << 20)).await?;
    let parse = |t: &Option<String>| t.as_deref().map(parse_cutoff).transpose();
    let split = Split::resolve(&ctx, parse(&s.valid_from)?, parse(&s.test_from)?).await?;

    let (work_dir, guard) = match &s.work {
        Some(w) => (w.clone(), None),
        None => {
            let t = tempfile::Builder::new().prefix("dumn-train-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let location = Location::Local(work_dir.join("examples"));
    let bar = row_spinner("training examples");
    let progress = bar.clone();
    let written = write_parquet(df, &location, serde_json::json!({}), move |n| {
        progress.set_position(n)
    })
    .await;
    bar.finish_and_clear();
    let written = written?;
    let examples = Examples::open(&location).await?;
    examples.check_label("clicked").await?;
    examples.check_label("disliked").await?;
    let fingerprint = format!(
        "{}|{}|{}|{}",
        s.data.as_deref().unwrap_or(""),
        s.adapter.as_deref().unwrap_or(""),
        written.rows,
        serde_json::to_string(&checks.rows)?
    );
    Ok(Prepared {
        examples,
        split,
        schema,
        feedback,
        fingerprint,
        rows: written.rows,
        _work: guard,
    })
}

/// The progress display of a fit.
struct Bar {
    bar: ProgressBar,
    name: String,
}

impl fit::Progress for Bar {
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
}

/// Trains one variant on prepared examples and saves it to `out`.
async fn train_one(
    p: &Prepared,
    s: &TrainSettings,
    variant: &str,
    out: &Location,
) -> Result<FitResult> {
    let ablation = Ablation::variant(variant).with_context(|| {
        format!(
            "unknown variant `{variant}`; one of: {}, {}",
            Ablation::VARIANTS.join(", "),
            Ablation::BASELINES.join(", ")
        )
    })?;
    let label = s.label.unwrap_or(Label::Click);
    let (likes, dislikes) = (p.feedback.likes, p.feedback.dislikes);
    let needs_explicit = matches!(
        ablation.feedback,
        FeedbackMode::Separate | FeedbackMode::AllInOne
    );
    if needs_explicit && likes + dislikes == 0 {
        bail!(
            "the data has no explicit feedback (no like or dislike actions): {variant}'s like and \
             dislike memories would learn nothing; train DUMN_IF (implicit feedback only) or add actions"
        );
    }
    if label == Label::Dislike && dislikes == 0 {
        bail!("--label dislike, but the data has no dislike actions to learn from");
    }
    let seed = s.seed.unwrap_or(1);
    tch::manual_seed(seed as i64);
    let device = s.device.unwrap_or(DeviceChoice::Auto).resolve()?;
    let mut config = ModelConfig::new(p.schema.clone());
    config.seq_len = s.seq_len.unwrap_or(100) as i64;
    config.learning_rate = s.learning_rate.unwrap_or(config.learning_rate);
    config.mem_slots = s.memory_slots.unwrap_or(config.mem_slots);
    config.slot_dim = s.slot_dim.unwrap_or(config.slot_dim);
    config.ffn_dim = s.controller_dim.unwrap_or(config.ffn_dim);
    config.ablation = ablation;
    let mut model = Dumn::new(config, device)?;
    println!(
        "{variant}: {} parameters on {}; split: {}, {}, {}",
        model.num_parameters(),
        describe(device),
        p.split.describe(dataset::Part::Train),
        p.split.describe(dataset::Part::Valid),
        p.split.describe(dataset::Part::Test)
    );
    let cfg = FitConfig {
        epochs: s.epochs.unwrap_or(10),
        batch_size: s.batch_size.unwrap_or(256).max(1),
        patience: s.patience.unwrap_or(2),
        shuffle_buffer: s.shuffle_buffer.unwrap_or(100_000).max(1),
        seed,
        label,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{bar:30} {human_pos}/{human_len} {msg} {prefix} {per_sec} eta {eta}",
        )
        .expect("a valid template"),
    );
    let progress = Bar {
        bar: bar.clone(),
        name: variant.to_string(),
    };
    let result = fit::fit(&mut model, &p.examples, &p.split, &cfg, &progress).await;
    bar.finish_and_clear();
    let result = result?;

    let mut metrics = BTreeMap::new();
    for (split, m) in [("valid", &result.valid), ("test", &result.test)] {
        let l = label.column();
        if let Some(v) = m.auc {
            metrics.insert(format!("{split}_{l}_auc"), v);
        }
        if let Some(v) = m.gauc {
            metrics.insert(format!("{split}_{l}_gauc"), v);
        }
        metrics.insert(format!("{split}_{l}_logloss"), m.logloss);
    }
    let report = serde_json::json!({
        "variant": variant,
        "label": label,
        "split": p.split,
        "fit": cfg,
        "result": &result,
        "gauc_note": "GAUC weights each user's AUC by their impressions; users whose impressions all share one label are skipped (counted in gauc_skipped_users)",
    });
    let svg = report::learning_curve_svg(&result, variant)?;
    let data = DataInfo {
        fingerprint: p.fingerprint.clone(),
        rows: p.rows,
        description: format!(
            "training examples from {}",
            s.data.as_deref().unwrap_or("?")
        ),
    };
    // An S3 artifact is written locally first, then staged and published like any output.
    let local_dir = tempfile::Builder::new().prefix("dumn-model-").tempdir()?;
    let local = match out {
        Location::Local(p) => p.clone(),
        Location::S3 { .. } => local_dir.path().join("model"),
    };
    let manifest = artifact::save_with_files(
        &model,
        &local,
        Some(data),
        metrics,
        &[
            ("report.json", serde_json::to_vec_pretty(&report)?),
            ("learning_curve.svg", svg.into_bytes()),
        ],
    )?;
    println!(
        "{variant}: best epoch {} of {}; validation {}; test {}",
        result.best_epoch,
        result.epochs.len(),
        result.valid.summary(),
        result.test.summary()
    );
    if !out.is_local() {
        let staging = storage::staging_for(out)?;
        for entry in std::fs::read_dir(&local)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            storage::put(&staging.join(&name), std::fs::read(entry.path())?).await?;
        }
        let marker = serde_json::json!({ "model_version": manifest.model_version });
        storage::publish(&staging, out, &serde_json::to_vec_pretty(&marker)?).await?;
    }
    println!("saved model {} to {out}", manifest.model_version);
    Ok(result)
}

pub async fn run(args: TrainArgs) -> Result<()> {
    let (s, engine) = settings(args)?;
    let out = Location::parse(
        s.out
            .as_deref()
            .context("give --out LOCATION (or `out = ...` in the job file)")?,
    )?;
    storage::check_writable(&out).await?;
    let variant = s.variant.clone().unwrap_or_else(|| "DUMN".into());
    let prepared = prepare(&s, &engine, reads_merged_feedback(&variant)).await?;
    train_one(&prepared, &s, &variant, &out).await?;
    Ok(())
}

#[derive(Args)]
pub struct AblateArgs {
    #[command(flatten)]
    pub train: TrainArgs,
    /// Variants to train (default: every variant of the paper's tables, then the
    /// baselines BASE_DIN and BASE_FEATURES).
    #[arg(long, value_delimiter = ',')]
    pub variants: Vec<String>,
}

/// `dumn ablate`: every variant on the same examples and split, then a table.
pub async fn ablate(args: AblateArgs) -> Result<()> {
    let (s, engine) = settings(args.train)?;
    let out = Location::parse(
        s.out
            .as_deref()
            .context("give --out LOCATION: one artifact per variant goes under it")?,
    )?;
    storage::check_writable(&out.join("x")).await?;
    let variants: Vec<String> = if args.variants.is_empty() {
        Ablation::VARIANTS
            .iter()
            .chain(Ablation::BASELINES.iter())
            .map(|v| v.to_string())
            .collect()
    } else {
        args.variants.clone()
    };
    for v in &variants {
        ensure!(Ablation::variant(v).is_some(), "unknown variant `{v}`");
    }
    let merged = variants.iter().any(|v| reads_merged_feedback(v));
    let prepared = prepare(&s, &engine, merged).await?;
    let mut rows = Vec::new();
    for v in &variants {
        let r = train_one(&prepared, &s, v, &out.join(v)).await?;
        rows.push((v.clone(), r));
    }
    let label = s.label.unwrap_or(Label::Click).column();
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let mut table = String::from(
        "| variant | best epoch | valid AUC | valid GAUC | test AUC | test GAUC | test logloss |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for (v, r) in &rows {
        table.push_str(&format!(
            "| {v} | {} | {} | {} | {} | {} | {:.4} |\n",
            r.best_epoch,
            f(r.valid.auc),
            f(r.valid.gauc),
            f(r.test.auc),
            f(r.test.gauc),
            r.test.logloss
        ));
    }
    println!("\n{label} label, {} examples\n\n{table}", prepared.rows);
    storage::put(&out.join("ablation.md"), table.into_bytes()).await?;
    Ok(())
}

#[derive(Args)]
pub struct EvalArgs {
    /// The model artifact folder.
    pub model: PathBuf,
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
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
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
    let loaded = artifact::load(&args.model, device)?;
    let s = TrainSettings {
        data: Some(args.data.clone()),
        adapter: args.adapter.clone(),
        sql: args.sql.clone(),
        seq_len: Some(loaded.model.config.seq_len as usize),
        ..Default::default()
    };
    let merged = loaded.model.config.ablation.reads_merged_feedback();
    let p = prepare(&s, &args.engine, merged).await?;
    if p.schema.user_fields.iter().map(|f| &f.name).ne(loaded
        .model
        .config
        .schema
        .user_fields
        .iter()
        .map(|f| &f.name))
        || p.schema.item_fields.iter().map(|f| &f.name).ne(loaded
            .model
            .config
            .schema
            .item_fields
            .iter()
            .map(|f| &f.name))
    {
        eprintln!("warning: the data's feature columns differ from the model's; the model reads its own columns by name");
    }
    let mut predicate = vec!["TRUE".to_string()];
    if let Some(f) = &args.from {
        predicate.push(format!(
            "ts >= TIMESTAMP '{}'",
            parse_cutoff(f)?.format("%Y-%m-%dT%H:%M:%S")
        ));
    }
    if let Some(u) = &args.until {
        predicate.push(format!(
            "ts < TIMESTAMP '{}'",
            parse_cutoff(u)?.format("%Y-%m-%dT%H:%M:%S")
        ));
    }
    let predicate = predicate.join(" AND ");
    let mut out = serde_json::Map::new();
    for label in [Label::Click, Label::Dislike] {
        let m = fit::evaluate(
            &loaded.model,
            &p.examples,
            &predicate,
            label,
            fit::EVAL_BATCH,
        )
        .await?;
        println!("{}: {}", label.column(), m.summary());
        out.insert(label.column().into(), serde_json::to_value(&m)?);
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
