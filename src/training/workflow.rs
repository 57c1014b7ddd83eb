//! What `dumn train`, `dumn ablate` and `dumn eval` do, from settings to artifacts and
//! tables: build the training examples once ([`TrainingSet::prepare`]), train a variant on
//! them and save it ([`train_variant`]), train several and tabulate them ([`ablate`]),
//! and evaluate a saved model ([`evaluate_model`]).
//!
//! Contract: every model of one run trains on the same materialised examples and split;
//! its artifact holds the weights of its best validation epoch, `report.json` and
//! `learning_curve.svg`; an `s3://` artifact is written locally, then staged and
//! published like any output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{anyhow, ensure, Context, Result};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Float32Type;
use datafusion::prelude::SessionContext;
use serde_json::json;
use tch::{Device, Tensor};

use super::compare::{self, Interval};
use super::dataset::{self, ExampleFiles, FeedbackSummary, Part, Split};
use super::evaluate::{evaluate, score, Label, Metrics, EVAL_BATCH};
use super::fit::{fit, FitConfig, FitResult, Progress};
use super::metrics::auc;
use super::report;
use super::settings::{PrepareOptions, Source, TrainSettings};
use super::vocabulary::{self, Vocabularies};
use crate::data::contract::Inputs;
use crate::data::pipeline::{self, ModelInput, Scratch};
use crate::data::script::{self, Params, Script};
use crate::data::sql::{parse_time, timestamp_literal};
use crate::engine::session::{self, EngineOptions};
use crate::io::failure::{Failure, MarkFailure};
use crate::io::location::{self, Location};
use crate::io::parquet::write_parquet;
use crate::io::publish;
use crate::model::artifact::{self, DataInfo};
use crate::model::device::describe;
use crate::model::features::FeatureSchema;
use crate::model::registry::Registry;
use crate::model::{Ablation, Dumn, FeedbackMode, ModelConfig};

/// Examples materialised once, shared by every model trained on them.
pub struct TrainingSet {
    pub files: ExampleFiles,
    pub split: Split,
    /// The feature columns of the inputs (names; sizes are placeholders).
    pub columns: FeatureSchema,
    /// The embedding vocabularies of the train split, when the options asked for them
    /// (training does; evaluation reads the model's own).
    pub vocabularies: Option<Vocabularies>,
    pub feedback: FeedbackSummary,
    pub fingerprint: String,
    pub rows: u64,
    /// Where the examples came from, for the artifact's description.
    pub data: String,
    /// The test AUC of the data's own click probabilities (`impressions.p_click`, which
    /// `dumn gen` writes): the ceiling no model can pass. `None` for data without them.
    pub ceiling_auc: Option<f64>,
    _work: Option<tempfile::TempDir>,
}

impl TrainingSet {
    /// Builds the training examples from `source` with the SQL of `sql/` (or the source's
    /// own final step), writes them as Parquet into the work folder, and resolves the
    /// split and the feature schema. `on_rows` is called with the rows written so far.
    pub async fn prepare(
        source: &Source,
        options: &PrepareOptions,
        engine: &EngineOptions,
        on_rows: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<TrainingSet> {
        let inputs = Inputs {
            data: source.data.as_deref().map(Location::parse).transpose()?,
            adapter: source.adapter.as_deref().map(script::adapter).transpose()?,
            ..Default::default()
        };
        ensure!(
            inputs.data.is_some(),
            "give --data LOCATION (or `data = ...` in the job file)"
        );
        let last = source.sql.as_deref().map(Script::from_file).transpose()?;
        let params = Params::new()
            .seq_len(options.seq_len)?
            .merged_feedback(options.merged_feedback)
            .as_of_midnight(options.as_of_midnight);
        let ctx = session::context(engine)?;
        let (df, checks) = pipeline::prepare(
            &ctx,
            &inputs,
            ModelInput::Training,
            last.as_ref(),
            &params,
            &Scratch::Temporary,
        )
        .await?;
        for w in &checks.warnings {
            crate::io::log::warn(w);
        }
        let feedback = FeedbackSummary::read(&ctx).await?;
        let columns = dataset::feature_columns(&ctx).await?;
        let split = Split::resolve(&ctx, options.valid_from, options.test_from).await?;
        let ceiling_auc = generator_ceiling(&ctx, &split).await?;

        let (work_dir, guard) = match &options.work {
            Some(w) => (w.clone(), None),
            None => {
                let t = tempfile::Builder::new().prefix("dumn-train-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let location = Location::local(&work_dir.join("examples"))?;
        let written = write_parquet(df, &location, json!({}), on_rows).await?;
        let files = ExampleFiles::open(&location).await?;
        files.check_label("clicked").await?;
        files.check_label("disliked").await?;
        let vocabularies = match &options.vocabulary {
            Some(v) => Some(vocabulary::build(&files, &split, &columns, v).await?),
            None => None,
        };
        let fingerprint = format!(
            "{}|{}|{}|{}",
            source.data.as_deref().unwrap_or(""),
            source.adapter.as_deref().unwrap_or(""),
            written.rows,
            serde_json::to_string(&checks.rows)?
        );
        Ok(TrainingSet {
            files,
            split,
            columns,
            vocabularies,
            feedback,
            fingerprint,
            rows: written.rows,
            data: source.data.clone().unwrap_or_else(|| "?".into()),
            ceiling_auc,
            _work: guard,
        })
    }
}

/// The AUC of `impressions.p_click` against `clicked` over the test period, when the
/// registered `impressions` has that column (generated data); else `None`.
async fn generator_ceiling(ctx: &SessionContext, split: &Split) -> Result<Option<f64>> {
    let impressions = ctx.table("impressions").await?;
    if impressions
        .schema()
        .field_with_unqualified_name("p_click")
        .is_err()
    {
        return Ok(None);
    }
    let batches = ctx
        .sql(&format!(
            "SELECT CAST(p_click AS FLOAT) AS p, clicked FROM impressions \
             WHERE p_click IS NOT NULL AND clicked IS NOT NULL AND {}",
            split.predicate(Part::Test)
        ))
        .await?
        .collect()
        .await
        .context("reading the generator's click probabilities")?;
    let (mut p, mut clicked) = (Vec::new(), Vec::new());
    for b in &batches {
        p.extend(b.column(0).as_primitive::<Float32Type>().iter().flatten());
        clicked.extend(b.column(1).as_boolean().iter().flatten());
    }
    Ok(auc(&p, &clicked))
}

/// The variant named `name`, or an error that lists the known ones.
pub fn ablation(name: &str) -> Result<Ablation> {
    Ablation::variant(name)
        .with_context(|| {
            format!(
                "unknown variant `{name}`; one of: {}, {}",
                Ablation::VARIANTS.join(", "),
                Ablation::BASELINES.join(", ")
            )
        })
        .failure(Failure::BadInput)
}

/// Whether any of `variants` reads `feedback_seq` (see sql/training_examples.sql).
pub fn reads_merged_feedback<S: AsRef<str>>(variants: &[S]) -> bool {
    variants
        .iter()
        .any(|v| Ablation::variant(v.as_ref()).is_some_and(|a| a.reads_merged_feedback()))
}

/// A trained and saved model.
#[derive(Debug)]
pub struct Trained {
    pub fit: FitResult,
    pub model_version: String,
    /// The artifact folder written.
    pub location: Location,
}

/// Where [`train_variant`] saves the model.
pub enum SaveTo {
    /// Exactly this artifact folder, replacing what is there (`dumn ablate`: one per
    /// variant and seed).
    Artifact(Location),
    /// A new version folder of this registry, then `alias` moved to it (`dumn train`; see
    /// [`crate::model::registry`]).
    Version { registry: Registry, alias: String },
}

impl SaveTo {
    fn describe(&self) -> String {
        match self {
            SaveTo::Artifact(loc) => loc.to_string(),
            SaveTo::Version { registry, alias } => format!("{}@{alias}", registry.root()),
        }
    }
}

/// Trains `variant` on `set` with the settings `s`, saves it (see [`SaveTo`]) and returns
/// the fit, the saved model's version and where it went.
pub async fn train_variant(
    set: &TrainingSet,
    s: &TrainSettings,
    variant: &str,
    save_to: &SaveTo,
    progress: &dyn Progress,
) -> Result<Trained> {
    let ablation = ablation(variant)?;
    let label = s.label;
    let (likes, dislikes) = (set.feedback.likes, set.feedback.dislikes);
    let needs_explicit = matches!(
        ablation.feedback,
        FeedbackMode::Separate | FeedbackMode::AllInOne
    );
    if needs_explicit && likes + dislikes == 0 {
        return Err(anyhow!(
            "the data has no explicit feedback (no like or dislike actions): {variant}'s like and \
             dislike memories would learn nothing; train DUMN_IF (implicit feedback only) or add actions"
        ))
        .failure(Failure::BadInput);
    }
    if label == Label::Dislike && dislikes == 0 {
        return Err(anyhow!(
            "--label dislike, but the data has no dislike actions to learn from"
        ))
        .failure(Failure::BadInput);
    }
    let seed = s.seed;
    tch::manual_seed(seed as i64);
    let device = s.device.resolve().failure(Failure::Infrastructure)?;
    let vocabularies = set
        .vocabularies
        .as_ref()
        .context("the training set was prepared without vocabularies")?;
    let config = model_config(set, s, ablation, device)?;
    let mut model = Dumn::new(config, device)?;
    if model.config.schema.sequences_read_item_fields() {
        let others = model.config.schema.item_fields.len() as i64 - 1;
        let table = Tensor::from_slice(&vocabularies.item_fields).view([-1, others]);
        model.set_item_fields(&table)?;
    }
    println!(
        "{variant}: {} parameters on {}; split: {}, {}, {}",
        model.num_parameters(),
        describe(device),
        set.split.describe(Part::Train),
        set.split.describe(Part::Valid),
        set.split.describe(Part::Test)
    );
    // The id fields' vocabularies (every field's coverage is in the manifest).
    let schema = &model.config.schema;
    let coverage: Vec<String> = [&schema.user_fields[0], &schema.item_fields[0]]
        .into_iter()
        .filter_map(|f| {
            f.coverage.as_ref().map(|c| {
                format!(
                    "{} {} rows ({:.1}% of {} values share the out-of-vocabulary row)",
                    f.name,
                    f.rows,
                    100.0 * c.shared_rate,
                    c.distinct
                )
            })
        })
        .collect();
    if !coverage.is_empty() {
        println!("{variant}: embeddings: {}", coverage.join("; "));
    }
    let cfg = fit_config(s, device);
    let result = fit(&mut model, &set.files, &set.split, &cfg, progress).await;
    progress.finish();
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
    let report = json!({
        "variant": variant,
        "label": label,
        "split": set.split,
        "fit": cfg,
        "result": &result,
        "gauc_note": "GAUC weights each user's AUC by their impressions; users whose impressions all share one label are skipped (counted in gauc_skipped_users)",
    });
    let svg = report::learning_curve_svg(&result, variant)?;
    let data = DataInfo {
        fingerprint: set.fingerprint.clone(),
        rows: set.rows,
        description: format!("training examples from {}", set.data),
    };
    // An S3 artifact is written locally first, then staged and published like any output;
    // a local version is written in a hidden folder of the registry, then renamed.
    let local_dir = match save_to {
        SaveTo::Version { registry, .. } => match registry.root() {
            Location::Local(root) => {
                std::fs::create_dir_all(root)
                    .with_context(|| format!("creating {}", root.display()))?;
                tempfile::Builder::new()
                    .prefix(".dumn-model-")
                    .tempdir_in(root)?
            }
            Location::S3 { .. } => tempfile::Builder::new().prefix("dumn-model-").tempdir()?,
        },
        SaveTo::Artifact(_) => tempfile::Builder::new().prefix("dumn-model-").tempdir()?,
    };
    let local: PathBuf = match save_to {
        SaveTo::Artifact(Location::Local(p)) => p.clone(),
        _ => local_dir.path().join("model"),
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
    println!("{variant}: {}", result.summary());
    let location = match save_to {
        SaveTo::Artifact(out @ Location::Local(_)) => out.clone(),
        SaveTo::Artifact(out) => {
            let marker = json!({ "model_version": manifest.model_version });
            publish::upload(&local, out, &serde_json::to_vec_pretty(&marker)?).await?;
            out.clone()
        }
        SaveTo::Version { registry, alias } => {
            let loc = registry.add(&local, &manifest.model_version).await?;
            registry.set_alias(alias, &manifest.model_version).await?;
            loc
        }
    };
    println!(
        "saved model {} to {location} ({})",
        manifest.model_version,
        save_to.describe()
    );
    Ok(Trained {
        fit: result,
        model_version: manifest.model_version,
        location,
    })
}

/// The model `train_variant` builds for `variant` from the settings `s` and the
/// vocabularies of `set`, to train on `device`.
fn model_config(
    set: &TrainingSet,
    s: &TrainSettings,
    ablation: Ablation,
    device: Device,
) -> Result<ModelConfig> {
    let vocabularies = set
        .vocabularies
        .as_ref()
        .context("the training set was prepared without vocabularies")?;
    let mut config = ModelConfig::new(vocabularies.schema.clone());
    config.seq_len = s.seq_len as i64;
    config.learning_rate = s.learning_rate(s.batch_size_on(device), config.learning_rate);
    config.weight_decay = s.weight_decay.unwrap_or(config.weight_decay);
    config.dropout = s.dropout.unwrap_or(config.dropout);
    config.attention_residual = s.attention_residual.unwrap_or(config.attention_residual);
    config.count_aware_pooling = s.count_aware_pooling.unwrap_or(config.count_aware_pooling);
    config.position_buckets = s.position_buckets.unwrap_or(config.position_buckets);
    config.memory_write = s.memory_write.unwrap_or(config.memory_write);
    config.triplets_per_user = s.triplets_per_user.unwrap_or(config.triplets_per_user);
    config.mem_slots = s.memory_slots.unwrap_or(config.mem_slots);
    config.slot_dim = s.slot_dim.unwrap_or(config.slot_dim);
    config.ffn_dim = s.controller_dim.unwrap_or(config.ffn_dim);
    config.ablation = ablation;
    Ok(config)
}

/// The training loop's settings from `s`, on `device`.
fn fit_config(s: &TrainSettings, device: Device) -> FitConfig {
    FitConfig {
        epochs: s.epochs,
        batch_size: s.batch_size_on(device),
        patience: s.patience,
        shuffle_buffer: s.shuffle_buffer.max(1),
        seed: s.seed,
        label: s.label,
        schedule: s.lr_schedule,
        prefetch: s.prefetch,
    }
}

/// A finished run that `dumn ablate --resume` may keep instead of training again: the
/// artifact in `dir` (with its `report.json`) of `variant` trained with the same model
/// configuration, the same loop settings (seed included) and the same training data as
/// this run would use. Its epochs and validation metrics come from the report; its test
/// split is scored again with the saved weights, as the paired comparison needs every
/// test row's score (the same weights give the same scores: test still informs no
/// choice). With the result comes the build that trained it (the manifest's
/// `dumn_version`): a run of another build is kept, and the tables say so. `Ok(None)`
/// when there is nothing to keep, and why is printed.
async fn finished_run(
    set: &TrainingSet,
    s: &TrainSettings,
    variant: &str,
    dir: &Location,
    name: &str,
) -> Result<Option<(FitResult, String)>> {
    let Ok(report) = location::get(&dir.join("report.json")).await else {
        return Ok(None);
    };
    let report: serde_json::Value = serde_json::from_slice(&report)
        .with_context(|| format!("{} is not JSON", dir.join("report.json")))?;
    let device = s.device.resolve()?;
    let artifact = artifact::open(dir, device).await?;
    let expected = model_config(set, s, ablation(variant)?, device)?;
    let data = artifact.manifest.training_data.as_ref();
    let differs = if report["variant"] != json!(variant) {
        Some("another variant")
    } else if serde_json::to_value(&artifact.manifest.config)? != serde_json::to_value(&expected)? {
        Some("another model configuration")
    } else if report["fit"] != serde_json::to_value(fit_config(s, device))? {
        Some("other training settings")
    } else if data.map(|d| d.fingerprint.as_str()) != Some(set.fingerprint.as_str()) {
        Some("other training data")
    } else {
        None
    };
    if let Some(why) = differs {
        println!("{name}: the run in {dir} was made with {why}; training it again");
        return Ok(None);
    }
    let mut result: FitResult = serde_json::from_value(report["result"].clone())
        .with_context(|| format!("{}: no training result", dir.join("report.json")))?;
    result.test_scored = score(
        &artifact.model,
        &set.files,
        &set.split.predicate(Part::Test),
        s.label,
        EVAL_BATCH,
    )
    .await?;
    result.test = result.test_scored.metrics();
    let build = artifact.manifest.dumn_version;
    println!(
        "{name}: kept the finished run in {dir}, made by dumn {build} ({})",
        result.summary()
    );
    Ok(Some((result, build)))
}

/// `variants`, or every variant of the paper's tables then the baselines when empty; each
/// checked to exist.
pub fn ablation_variants(variants: &[String]) -> Result<Vec<String>> {
    let variants: Vec<String> = if variants.is_empty() {
        Ablation::VARIANTS
            .iter()
            .chain(Ablation::BASELINES.iter())
            .map(|v| v.to_string())
            .collect()
    } else {
        variants.to_vec()
    };
    for v in &variants {
        ablation(v)?;
    }
    Ok(variants)
}

/// One trained model of an ablation run.
#[derive(Debug, Clone)]
pub struct AblationRun {
    pub variant: String,
    pub seed: u64,
    pub result: FitResult,
    /// The dumn build that trained it ([`crate::BUILD`] of the binary, or of an older one
    /// for a run kept by `--resume`).
    pub build: String,
}

/// Bootstrap resamples of [`compare::paired_auc_difference`] in the summary table.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// The per-model table (Markdown): one line per variant and seed, then the builds that
/// trained them.
pub fn ablation_table(runs: &[AblationRun]) -> String {
    let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let mut table = String::from(
        "| variant | seed | best epoch | valid AUC | valid GAUC | test AUC | test GAUC | test logloss |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for AblationRun {
        variant: v,
        seed,
        result: r,
        build: _,
    } in runs
    {
        table.push_str(&format!(
            "| {v} | {seed} | {} | {} | {} | {} | {} | {:.4} |\n",
            r.best_epoch,
            f(r.valid.auc),
            f(r.valid.gauc),
            f(r.test.auc),
            f(r.test.gauc),
            r.test.logloss
        ));
    }
    let mut builds: Vec<(&str, usize)> = Vec::new();
    for r in runs {
        match builds.iter_mut().find(|(b, _)| *b == r.build) {
            Some((_, n)) => *n += 1,
            None => builds.push((&r.build, 1)),
        }
    }
    let builds: Vec<String> = builds
        .iter()
        .map(|(b, n)| format!("dumn {b} ({n} run{})", if *n == 1 { "" } else { "s" }))
        .collect();
    table.push_str(&format!("\nTrained by {}.\n", builds.join(", ")));
    table
}

/// The summary table (Markdown): per variant, the mean and 95% interval over seeds of
/// validation AUC and test AUC, GAUC and logloss, and the paired bootstrap interval of
/// its test AUC minus `reference`'s (see [`compare`]), with the verdict it supports.
pub fn ablation_summary(runs: &[AblationRun], reference: &str) -> String {
    let variants: Vec<&str> = runs.iter().fold(Vec::new(), |mut v, r| {
        if !v.contains(&r.variant.as_str()) {
            v.push(r.variant.as_str());
        }
        v
    });
    fn of<'a>(runs: &'a [AblationRun], v: &str) -> Vec<&'a AblationRun> {
        runs.iter().filter(|r| r.variant == v).collect()
    }
    let reference_runs = of(runs, reference);
    let labels = reference_runs.first().map(|r| &r.result.test_scored.labels);
    let mut table = format!(
        "| variant | seeds | valid AUC | test AUC | test GAUC | test logloss | test AUC − {reference} (paired bootstrap) | verdict |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for v in variants {
        let mine = of(runs, v);
        let metric = |get: &dyn Fn(&FitResult) -> Option<f64>| {
            let values: Option<Vec<f64>> = mine.iter().map(|r| get(&r.result)).collect();
            values.map_or("n/a".to_string(), |x| Interval::over_seeds(&x).show(4))
        };
        let (diff, verdict) = if v == reference {
            ("—".to_string(), "reference".to_string())
        } else {
            let aligned = |r: &&AblationRun| Some(&r.result.test_scored.labels) == labels;
            fn scores<'a>(rs: &[&'a AblationRun]) -> Vec<&'a [f32]> {
                rs.iter()
                    .map(|r| r.result.test_scored.scores.as_slice())
                    .collect()
            }
            let interval = match &labels {
                Some(l) if mine.iter().all(aligned) => compare::paired_auc_difference(
                    l,
                    &scores(&mine),
                    &scores(&reference_runs),
                    BOOTSTRAP_RESAMPLES,
                    1,
                ),
                _ => None,
            };
            match interval {
                Some(i) => (
                    format!(
                        "{:+.4} [{:+.4}, {:+.4}]",
                        i.mean,
                        i.low.unwrap_or(f64::NAN),
                        i.high.unwrap_or(f64::NAN)
                    ),
                    match (i.excludes_zero(), i.mean > 0.0) {
                        (false, _) => "tie".to_string(),
                        (true, true) => format!("ahead of {reference}"),
                        (true, false) => format!("behind {reference}"),
                    },
                ),
                None => ("n/a".to_string(), "n/a".to_string()),
            }
        };
        table.push_str(&format!(
            "| {v} | {} | {} | {} | {} | {} | {diff} | {verdict} |\n",
            mine.len(),
            metric(&|r| r.valid.auc),
            metric(&|r| r.test.auc),
            metric(&|r| r.test.gauc),
            metric(&|r| Some(r.test.logloss)),
        ));
    }
    table
}

/// What `dumn ablate` trains: every variant `seeds` times.
#[derive(Debug, Clone)]
pub struct AblationPlan {
    pub variants: Vec<String>,
    pub seeds: usize,
    /// Keep finished runs of the same settings and data (see [`finished_run`]).
    pub resume: bool,
}

/// `dumn ablate`: trains every one of `plan.variants` with `plan.seeds` seeds (`s.seed`,
/// `s.seed + 1`, …) on the same examples and split, each to `out/<variant>` (one seed) or
/// `out/<variant>/seed-<seed>`, prints the per-model and summary tables and writes both to
/// `out/ablation.md`, with a bar chart of the test AUCs in `out/ablation.svg`. The summary
/// compares every variant with DUMN when it is among them, else with the first. With
/// `plan.resume`, a model whose folder already holds a finished run of the same settings and
/// data is kept, not trained again (see [`finished_run`]): a long comparison can be
/// stopped and started again.
pub async fn ablate(
    s: &TrainSettings,
    plan: &AblationPlan,
    out: &Location,
    engine: &EngineOptions,
    on_rows: impl Fn(u64) + Send + Sync + 'static,
    progress: &dyn Fn(&str) -> Box<dyn Progress>,
) -> Result<Vec<AblationRun>> {
    let AblationPlan {
        variants,
        seeds,
        resume,
    } = plan;
    let (seeds, resume) = (*seeds, *resume);
    ensure!(seeds >= 1, "--seeds must be at least 1");
    let set = TrainingSet::prepare(
        &s.source(),
        &s.prepare_options(reads_merged_feedback(variants))?,
        engine,
        on_rows,
    )
    .await
    .failure(Failure::BadInput)?;
    let mut runs = Vec::new();
    for v in variants {
        for k in 0..seeds as u64 {
            let seed = s.seed + k;
            let (dir, name) = if seeds == 1 {
                (out.join(v), v.clone())
            } else {
                (
                    out.join(v).join(&format!("seed-{seed}")),
                    format!("{v} seed {seed}"),
                )
            };
            let settings = TrainSettings { seed, ..s.clone() };
            let kept = match resume {
                true => finished_run(&set, &settings, v, &dir, &name).await?,
                false => None,
            };
            let (result, build) = match kept {
                Some(kept) => kept,
                None => {
                    let trained = train_variant(
                        &set,
                        &settings,
                        v,
                        &SaveTo::Artifact(dir.clone()),
                        progress(&name).as_ref(),
                    )
                    .await?;
                    (trained.fit, crate::BUILD.to_string())
                }
            };
            runs.push(AblationRun {
                variant: v.clone(),
                seed,
                result,
                build,
            });
        }
    }
    let reference = if variants.iter().any(|v| v == "DUMN") {
        "DUMN"
    } else {
        variants[0].as_str()
    };
    let ceiling = set.ceiling_auc.map_or(String::new(), |c| {
        format!(
            "\nThe generator's own test AUC (its true click probabilities, the ceiling): {c:.4}\n"
        )
    });
    let table = format!(
        "{}\n{}{ceiling}",
        ablation_table(&runs),
        ablation_summary(&runs, reference)
    );
    println!(
        "\n{} label, {} examples, {seeds} seed(s)\n\n{table}",
        s.label.column(),
        set.rows
    );
    location::put(&out.join("ablation.md"), table.into_bytes()).await?;
    let mut bars: Vec<(String, Interval)> = Vec::new();
    for v in variants {
        let aucs: Vec<f64> = runs
            .iter()
            .filter(|r| &r.variant == v)
            .filter_map(|r| r.result.test.auc)
            .collect();
        if !aucs.is_empty() {
            bars.push((v.clone(), Interval::over_seeds(&aucs)));
        }
    }
    let title = format!("test AUC, {seeds} seed(s), 95% interval over seeds");
    let chart = report::ablation_chart_svg(&bars, &title)?;
    location::put(&out.join("ablation.svg"), chart.into_bytes()).await?;
    Ok(runs)
}

/// The SQL predicate on `ts` of the half-open time range `[from, until)`; either end may be
/// open.
pub fn time_range(from: Option<&str>, until: Option<&str>) -> Result<String> {
    let mut predicate = vec!["TRUE".to_string()];
    if let Some(f) = from {
        predicate.push(format!("ts >= {}", timestamp_literal(parse_time(f)?)));
    }
    if let Some(u) = until {
        predicate.push(format!("ts < {}", timestamp_literal(parse_time(u)?)));
    }
    Ok(predicate.join(" AND "))
}

/// `dumn eval`: the click and dislike metrics of `model` on the examples of `set` that
/// match `predicate`.
pub async fn evaluate_model(
    model: &Dumn,
    set: &TrainingSet,
    predicate: &str,
) -> Result<Vec<(Label, Metrics)>> {
    if set.columns.user_fields.iter().map(|f| &f.name).ne(model
        .config
        .schema
        .user_fields
        .iter()
        .map(|f| &f.name))
        || set.columns.item_fields.iter().map(|f| &f.name).ne(model
            .config
            .schema
            .item_fields
            .iter()
            .map(|f| &f.name))
    {
        crate::io::log::warn("the data's feature columns differ from the model's; the model reads its own columns by name");
    }
    let mut out = Vec::new();
    for label in [Label::Click, Label::Dislike] {
        let m = evaluate(model, &set.files, predicate, label, EVAL_BATCH).await?;
        out.push((label, m));
    }
    Ok(out)
}
