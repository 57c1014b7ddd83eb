//! The model learns a planted signal: loss goes down and held-out AUC rises clearly above 0.5.

use crate::common::small_config;
use dumn::model::{Ablation, Batch, Dumn, Rows};
use dumn::synthetic::planted::{self, PlantedConfig};
use dumn::training::evaluate::evaluate_in_memory;
use dumn::training::step::{StepStats, Trainer};
use tch::Device;

#[test]
fn a_few_hundred_steps_on_planted_data_learn_the_signal() {
    tch::manual_seed(42);
    let cfg = PlantedConfig {
        users: 1500,
        examples_per_user: 30,
        seed: 42,
        ..Default::default()
    };
    let (mut train, test) = planted::train_test(&cfg);
    planted::shuffle(&mut train, 42);
    let test = Rows::from_examples(&test);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let before = evaluate_in_memory(&model, &test, 512).unwrap();
    let mut trainer = Trainer::new(&model).unwrap();
    let (steps, bs) = (400, 128);
    let mut losses = Vec::new();
    for step in 0..steps {
        let start = (step * bs) % (train.len() - bs);
        let batch =
            Batch::from_examples(&model.config, &train[start..start + bs], Device::Cpu).unwrap();
        losses.push(
            StepStats::read(&trainer.step(&model, &batch))
                .unwrap()
                .click_logloss,
        );
    }
    let first: f64 = losses[..30].iter().sum::<f64>() / 30.0;
    let last: f64 = losses[steps - 30..].iter().sum::<f64>() / 30.0;
    let after = evaluate_in_memory(&model, &test, 512).unwrap();
    let auc = after.click_auc.unwrap();
    eprintln!(
        "click logloss {first:.4} -> {last:.4}; held-out click AUC {:.4} -> {auc:.4}, dislike AUC {:.4}",
        before.click_auc.unwrap(),
        after.dislike_auc.unwrap()
    );
    assert!(
        last < first - 0.02,
        "training loss did not go down: {first:.4} -> {last:.4}"
    );
    assert!(
        auc > 0.65,
        "held-out click AUC {auc:.4} is not clearly above 0.5"
    );
    assert!(
        after.dislike_auc.unwrap() > 0.6,
        "the dislike head did not learn"
    );
}
