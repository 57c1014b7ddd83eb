//! `dumn demo`: train on generated examples and show the model learn.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use dumn::model::artifact;
use dumn::model::device::{describe, DeviceChoice};
use dumn::model::features::FeatureSchema;
use dumn::model::{Ablation, Batch, Dumn, ModelConfig, Rows};
use dumn::synthetic::planted::{self, PlantedConfig};
use dumn::training::evaluate::evaluate_in_memory;
use dumn::training::step::{StepStats, Trainer};

#[derive(Args)]
pub struct DemoArgs {
    /// Optimizer (AdamW) steps to train.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Where the model runs: auto (CUDA when present), cpu, cuda (the first GPU) or cuda:N.
    #[arg(long, value_name = "DEVICE", default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Ablation variant to train (one of the paper's names, e.g. DUMN-UMN, DUMN_IF).
    #[arg(long, default_value = "DUMN")]
    variant: String,
    /// Where to write the trained artifact.
    #[arg(long, default_value = "out/demo-model")]
    out: PathBuf,
    /// Seed for the data and the model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: DemoArgs) -> Result<()> {
    ensure!(args.steps > 0, "--steps must be at least 1");
    ensure!(args.batch_size > 0, "--batch-size must be at least 1");
    let ablation = Ablation::variant(&args.variant).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown variant `{}`; one of: {}",
            args.variant,
            Ablation::VARIANTS.join(", ")
        )
    })?;
    let device = args.device.resolve()?;
    tch::manual_seed(args.seed as i64);
    let data_cfg = PlantedConfig {
        seed: args.seed,
        users: 2_000,
        examples_per_user: 40,
        ..Default::default()
    };
    let (mut train, test) = planted::train_test(&data_cfg);
    planted::shuffle(&mut train, args.seed);
    let (train, test) = (Rows::from_examples(&train), Rows::from_examples(&test));

    let mut config = ModelConfig::new(FeatureSchema::ids_only(20_000));
    config.ablation = ablation;
    let model = Dumn::new(config, device)?;
    println!(
        "dumn demo: {} ({} parameters) on {}, {} training examples, {} held-out examples",
        args.variant,
        model.num_parameters(),
        describe(device),
        train.len(),
        test.len()
    );
    let before = evaluate_in_memory(&model, &test, 1024)?;
    let mut trainer = Trainer::new(&model)?;
    let bar = ProgressBar::with_draw_target(Some(args.steps as u64), super::draw_target())
        .with_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} steps {per_sec} eta {eta} {msg}")
                .unwrap(),
        );
    let started = Instant::now();
    let mut window = Vec::new();
    let report_every = (args.steps / 10).max(1);
    for step in 0..args.steps {
        let start = (step * args.batch_size) % train.len();
        let end = (start + args.batch_size).min(train.len());
        let rows: Vec<usize> = (start..end).collect();
        let batch = Batch::new(&model.config, &train, &rows, device)?;
        let stats = StepStats::read(&trainer.step(&model, &batch))?;
        window.push(stats.total);
        bar.set_message(format!("loss {:.4}", stats.total));
        bar.inc(1);
        if (step + 1) % report_every == 0 {
            let mean = window.iter().sum::<f64>() / window.len() as f64;
            bar.suspend(|| {
                println!(
                    "step {:>5}  loss {mean:.4}  (last step: click logloss {:.4}, dislike {:.4}, triplet {:.4})",
                    step + 1,
                    stats.click_logloss,
                    stats.dislike_logloss,
                    stats.triplet
                )
            });
            window.clear();
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let after = evaluate_in_memory(&model, &test, 1024)?;
    let fmt = |a: Option<f64>| a.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    println!(
        "trained {} steps in {secs:.1}s ({:.0} examples/s)",
        args.steps,
        (args.steps * args.batch_size) as f64 / secs
    );
    println!(
        "held-out click AUC {} -> {}, dislike AUC {} -> {}, click logloss {:.4} -> {:.4}",
        fmt(before.click_auc),
        fmt(after.click_auc),
        fmt(before.dislike_auc),
        fmt(after.dislike_auc),
        before.click_logloss,
        after.click_logloss
    );
    let mut metrics = std::collections::BTreeMap::new();
    if let Some(v) = after.click_auc {
        metrics.insert("test_click_auc".to_string(), v);
    }
    metrics.insert("test_click_logloss".to_string(), after.click_logloss);
    let data = artifact::DataInfo {
        fingerprint: format!("synth-seed{}-users{}", data_cfg.seed, data_cfg.users),
        rows: train.len() as u64,
        description: "dumn demo: generated examples with planted taste, hate and drift".into(),
    };
    let manifest = artifact::save(&model, &args.out, Some(data), metrics)?;
    let loaded = artifact::load(&args.out, device)?;
    let first: Vec<usize> = (0..test.len().min(512)).collect();
    let check = Batch::new(&loaded.model.config, &test, &first, device)?;
    let diff = (model.predict(&check) - loaded.model.predict(&check))
        .abs()
        .max()
        .double_value(&[]);
    ensure!(diff == 0.0, "reloaded model scores differ by {diff}");
    println!(
        "saved model {} to {} (reloaded: identical scores)",
        manifest.model_version,
        args.out.display()
    );
    Ok(())
}
