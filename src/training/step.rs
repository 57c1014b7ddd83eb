//! One optimisation step.
//!
//! [`Trainer::step`] is one step of Adam on `L = L1 + L2` (see [`Dumn::losses`]) followed by
//! the memory write of eq. 12. `dumn train` drives it from SQL-defined datasets; the demo and
//! the tests drive it from generated examples.

use anyhow::Result;
use tch::{nn, nn::OptimizerConfig};

use crate::model::{Batch, Dumn};

/// Loss values of one step.
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    pub total: f64,
    pub click_logloss: f64,
    pub dislike_logloss: f64,
    pub triplet: f64,
}

/// Adam over all of the model's variables (paper 4.1.3).
pub struct Trainer {
    opt: nn::Optimizer,
    pub steps: u64,
}

impl Trainer {
    pub fn new(model: &Dumn) -> Result<Self> {
        let opt = nn::Adam::default().build(model.var_store(), model.config.learning_rate)?;
        Ok(Self { opt, steps: 0 })
    }

    /// One optimisation step on `batch`.
    pub fn step(&mut self, model: &Dumn, batch: &Batch) -> StepStats {
        let out = model.forward_train(batch);
        let losses = model.losses(&out, batch);
        self.opt.zero_grad();
        losses.total.backward();
        self.opt.step();
        if let Some(w) = &out.write {
            model.apply_memory_write(w);
        }
        self.steps += 1;
        StepStats {
            total: losses.total.double_value(&[]),
            click_logloss: losses.click_logloss.double_value(&[]),
            dislike_logloss: losses.dislike_logloss.double_value(&[]),
            triplet: losses.triplet.double_value(&[]),
        }
    }
}
