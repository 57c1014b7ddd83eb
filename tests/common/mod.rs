//! Shared helpers for the integration tests.
#![allow(dead_code)]

use dumn::model::features::FeatureSchema;
use dumn::model::{Ablation, Example, History, ModelConfig, Rows};
use dumn::synthetic::planted::{self, PlantedConfig};

/// A small configuration (fast on CPU) with every component of the paper present.
pub fn small_config(ablation: Ablation) -> ModelConfig {
    let mut c = ModelConfig::new(FeatureSchema::ids_only(4096));
    c.seq_len = 40;
    c.emb_dim = 16;
    c.heads = 2;
    c.ffn_dim = 64;
    c.mem_slots = 32;
    c.slot_dim = 16;
    c.out_hidden = vec![64, 32];
    c.triplet_pool = 64;
    c.ablation = ablation;
    c
}

/// A handful of generated examples (planted data, with timestamps).
pub fn examples(n_users: usize, seed: u64) -> Vec<Example> {
    planted::planted_examples(&PlantedConfig {
        users: n_users,
        examples_per_user: 2,
        seed,
        ..Default::default()
    })
}
/// One row per user, with the user's id and history and no candidate: what a
/// `UserBatch` is built from (`UserBatch::new(config, &rows, &[0, 1, …], device)`).
pub fn user_rows(users: &[(Option<i64>, &History)]) -> Rows {
    let examples: Vec<Example> = users
        .iter()
        .map(|(user, history)| Example {
            user: vec![*user],
            item: vec![None],
            history: (*history).clone(),
            click: false,
            dislike: false,
        })
        .collect();
    Rows::from_examples(&examples)
}

pub mod data;
pub mod s3;
pub mod scoring;

/// `examples` with a second item field, `category` (the item id modulo 7), and a config
/// whose fields have vocabularies of every value in them (rows of their own), with the
/// table of each item's category filled in on `model`.
pub fn with_vocabularies(
    mut cfg: ModelConfig,
    examples: &mut [Example],
) -> (ModelConfig, tch::Tensor) {
    use dumn::model::features::{Coverage, FieldSpec, Vocabulary};
    let category = |item: i64| item.rem_euclid(7);
    for e in examples.iter_mut() {
        let item = e.item[0].expect("an item id");
        e.item = vec![Some(item), Some(category(item))];
    }
    let mut items: Vec<i64> = examples
        .iter()
        .flat_map(|e| e.history.items.iter().flatten().copied().chain(e.item[0]))
        .collect();
    items.sort_unstable();
    items.dedup();
    let users: Vec<i64> = examples.iter().filter_map(|e| e.user[0]).collect();
    let coverage = |n: usize| Coverage {
        distinct: n as u64,
        min_count: 1,
        shared_rate: 0.0,
    };
    let field = |name: &str, values: Vec<i64>| {
        let v = Vocabulary::new(values);
        let n = v.values().len();
        FieldSpec::with_vocabulary(name, v, coverage(n))
    };
    cfg.schema = FeatureSchema {
        user_fields: vec![field("user_id", users)],
        item_fields: vec![
            field("item_id", items.clone()),
            field("category", (0..7).collect()),
        ],
    };
    let cat = &cfg.schema.item_fields[1];
    let mut rows = vec![0i64; items.len() + Vocabulary::RESERVED as usize];
    for (i, &item) in items.iter().enumerate() {
        rows[i + Vocabulary::RESERVED as usize] = cat.index(Some(category(item)));
    }
    let table = tch::Tensor::from_slice(&rows).view([-1, 1]);
    (cfg, table)
}
