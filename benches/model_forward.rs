//! Benchmark: scoring throughput of the model alone, per-row forward vs. the two-step forward
//! that shares the user step across a user's candidates.
//!
//! Run: `ci/bench-model.sh` (or `cargo bench --bench model_forward` in the ci env).
//! Paper-size model (T=100, E=16, FFN 512, m=256, Z=64); histories with the mean lengths an
//! independent implementation measured on KuaiRand-like logs (about 19 clicks, 71 unclicks,
//! 4 likes, 3 dislikes); 100 candidates per user. Prints rows per second for both paths and
//! their largest score difference.

mod common;

use std::time::Instant;

use dumn::model::device::describe;
use dumn::model::features::FeatureSchema;
use dumn::model::{Batch, CandidateBatch, Dumn, Example, History, ModelConfig, Rows, UserBatch};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tch::{Device, Tensor};

const USERS: usize = 80;
const CANDIDATES: usize = 100;
const ROW_BATCH: usize = 1000;

fn main() -> anyhow::Result<()> {
    let device = common::device()?;
    tch::manual_seed(1);
    let model = Dumn::new(ModelConfig::new(FeatureSchema::ids_only(100_000)), device)?;
    let mut rng = StdRng::seed_from_u64(1);
    let users: Vec<(Vec<Option<i64>>, History)> = (0..USERS)
        .map(|u| (vec![Some(u as i64)], common::history(&mut rng)))
        .collect();
    let cands: Vec<Vec<Vec<Option<i64>>>> = (0..USERS)
        .map(|_| {
            (0..CANDIDATES)
                .map(|_| vec![Some(rng.random_range(0..50_000))])
                .collect()
        })
        .collect();
    let rows: Vec<Example> = users
        .iter()
        .zip(&cands)
        .flat_map(|((user, h), items)| {
            items.iter().map(move |item| Example {
                user: user.clone(),
                item: item.clone(),
                history: h.clone(),
                click: false,
                dislike: false,
            })
        })
        .collect();
    let n = rows.len();
    let rows = Rows::from_examples(&rows);
    println!(
        "model-only scoring, {} rows ({USERS} users x {CANDIDATES} candidates) on {}",
        n,
        describe(device)
    );

    let per_row = |count: usize| -> anyhow::Result<Tensor> {
        let all: Vec<usize> = (0..count).collect();
        let mut outs = Vec::new();
        for chunk in all.chunks(ROW_BATCH) {
            outs.push(model.predict(&Batch::new(&model.config, &rows, chunk, device)?));
        }
        Ok(Tensor::cat(&outs, 0))
    };
    // Users in order, each with its CANDIDATES rows.
    let firsts: Vec<usize> = (0..USERS).map(|u| u * CANDIDATES).collect();
    let all: Vec<usize> = (0..n).collect();
    let two_step = || -> anyhow::Result<Tensor> {
        let c: Vec<&[usize]> = all.chunks(CANDIDATES).collect();
        let ub = UserBatch::new(&model.config, &rows, &firsts, device)?;
        let cb = CandidateBatch::new(&model.config, &rows, &c, device)?;
        Ok(tch::no_grad(|| {
            model.candidate_step(&model.user_step(&ub), &cb).sigmoid()
        }))
    };

    // Warm up both paths once.
    let _ = per_row(ROW_BATCH)?;
    let _ = two_step()?;
    let t = Instant::now();
    let a = per_row(n)?.to_device(Device::Cpu);
    let per_row_s = t.elapsed().as_secs_f64();
    let reps = 3;
    let t = Instant::now();
    let mut b = Tensor::zeros([1], (tch::Kind::Float, Device::Cpu));
    for _ in 0..reps {
        b = two_step()?.to_device(Device::Cpu);
    }
    let shared_s = t.elapsed().as_secs_f64() / reps as f64;
    let diff = (a - b).abs().max().double_value(&[]);
    println!("| path | rows/s |");
    println!("|---|---|");
    println!(
        "| per-row forward (batches of {ROW_BATCH}) | {:.0} |",
        n as f64 / per_row_s
    );
    println!(
        "| two-step, user step shared by {CANDIDATES} candidates | {:.0} |",
        n as f64 / shared_s
    );
    println!(
        "speed-up {:.1}x, max |score difference| {diff:.2e}",
        per_row_s / shared_s
    );
    Ok(())
}
