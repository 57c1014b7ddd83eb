//! Shared helpers for the integration tests.
#![allow(dead_code)]

use dumn::model::features::FeatureSchema;
use dumn::model::{Ablation, Example, ModelConfig};
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
pub mod data;
pub mod s3;
pub mod scoring;
