//! Benchmark: one training step of the model alone, by phase.
//!
//! Run: `cargo bench --bench train_step` in the ci env (`ci/bench-train.sh` runs it after
//! the end-to-end figures). Paper-size models (T=100, E=16, FFN 512, m=256, Z=64) at batch
//! 256, histories with the KuaiRand-like mean lengths of `model_forward` (about 19 clicks,
//! 71 unclicks, 4 likes, 3 dislikes). For DUMN and the baselines it prints examples per
//! second of a whole step and the milliseconds of each phase: building the batch, the
//! user step, the rest of the forward (candidate step, memory write, triplet loss), the
//! backward pass and the optimizer step (with the memory write's commit).

mod common;

use std::time::Instant;

use dumn::model::device::describe;
use dumn::model::features::FeatureSchema;
use dumn::model::{Ablation, Batch, Dumn, Example, ModelConfig};
use dumn::training::step::Trainer;
use rand::{rngs::StdRng, Rng, SeedableRng};

const BATCH: usize = 256;
const STEPS: usize = 30;

fn examples(rng: &mut StdRng) -> Vec<Example> {
    (0..BATCH)
        .map(|_| Example {
            user: vec![Some(rng.random_range(0..10_000))],
            item: vec![Some(rng.random_range(0..50_000))],
            history: common::history(rng),
            click: rng.random_bool(0.3),
            dislike: rng.random_bool(0.05),
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    // As the binary does (see its docs): large temporaries stay in the process.
    dumn::model::device::tune_allocator();
    let device = common::device()?;
    println!(
        "training step by phase, batch {BATCH}, {STEPS} steps after 3 warm-up steps, on {}",
        describe(device)
    );
    println!("| variant | examples/s | batch ms | user step ms | rest of forward ms | backward ms | optimizer ms |");
    println!("|---|---|---|---|---|---|---|");
    for name in ["DUMN", "BASE_DIN", "BASE_DIN4", "BASE_DFN"] {
        tch::manual_seed(1);
        let mut config = ModelConfig::new(FeatureSchema::ids_only(100_000));
        config.ablation = Ablation::variant(name).expect("a known variant");
        let model = Dumn::new(config, device)?;
        let mut trainer = Trainer::new(&model)?;
        let mut rng = StdRng::seed_from_u64(1);
        let data: Vec<Vec<Example>> = (0..STEPS + 3).map(|_| examples(&mut rng)).collect();
        let mut ms = [0f64; 5];
        let mut total = 0.0;
        for (i, rows) in data.iter().enumerate() {
            let timed = i >= 3;
            let t0 = Instant::now();
            let batch = Batch::from_examples(&model.config, rows, device)?;
            let t1 = Instant::now();
            let state = model.user_step(&batch.users);
            let t2 = Instant::now();
            drop(state);
            let out = model.forward_train(&batch);
            let losses = model.losses(&out, &batch);
            let _ = losses.total.double_value(&[]);
            let t3 = Instant::now();
            losses.total.backward();
            let _ = losses.total.double_value(&[]);
            let t4 = Instant::now();
            drop((out, losses));
            // The whole step again, as training runs it (its own forward and backward);
            // the optimizer's share is that minus the phases above.
            let step_start = Instant::now();
            let _ = trainer.step(&model, &batch);
            let step = step_start.elapsed().as_secs_f64();
            if timed {
                let user = (t2 - t1).as_secs_f64();
                let forward = (t3 - t2).as_secs_f64() - user;
                let backward = (t4 - t3).as_secs_f64();
                ms[0] += (t1 - t0).as_secs_f64();
                ms[1] += user;
                ms[2] += forward.max(0.0);
                ms[3] += backward;
                ms[4] += (step - user - forward - backward).max(0.0);
                total += (t1 - t0).as_secs_f64() + step;
            }
        }
        let per = |x: f64| 1000.0 * x / STEPS as f64;
        println!(
            "| {name} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            (STEPS * BATCH) as f64 / total,
            per(ms[0]),
            per(ms[1]),
            per(ms[2]),
            per(ms[3]),
            per(ms[4])
        );
    }
    Ok(())
}
