//! One optimisation step.
//!
//! [`Trainer::step`] is one step of AdamW on `L = L1 + L2` (see [`Dumn::losses`]) followed
//! by the memory write of eq. 12. AdamW with `weight_decay = 0` is the paper's Adam.
//! `dumn train` drives it from SQL-defined datasets; the demo and the tests drive it from
//! generated examples.

use anyhow::Result;
use tch::{nn, nn::OptimizerConfig, Kind, Tensor};

use crate::model::{Batch, Dumn, Losses};

/// Loss values of one step, read from the device ([`StepStats::read`]).
#[derive(Debug, Clone, Copy)]
pub struct StepStats {
    pub total: f64,
    pub click_logloss: f64,
    pub dislike_logloss: f64,
    pub triplet: f64,
}

impl StepStats {
    /// The four values of a step's `losses` ([`Trainer::step`]), in one read from the
    /// device.
    pub fn read(losses: &Losses) -> Result<Self> {
        let all = Tensor::stack(
            &[
                &losses.total,
                &losses.click_logloss,
                &losses.dislike_logloss,
                &losses.triplet,
            ],
            0,
        )
        .to_kind(Kind::Double);
        let v = Vec::<f64>::try_from(&all)?;
        Ok(Self {
            total: v[0],
            click_logloss: v[1],
            dislike_logloss: v[2],
            triplet: v[3],
        })
    }
}

/// AdamW over all of the model's trainable variables (paper 4.1.3: Adam).
pub struct Trainer {
    opt: nn::Optimizer,
    pub steps: u64,
}

impl Trainer {
    pub fn new(model: &Dumn) -> Result<Self> {
        let opt = nn::AdamW {
            wd: model.config.weight_decay,
            ..Default::default()
        }
        .build(model.var_store(), model.config.learning_rate)?;
        Ok(Self { opt, steps: 0 })
    }

    /// Sets the learning rate of the following steps (a schedule's job).
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.opt.set_lr(lr);
    }

    /// One optimisation step on `batch`; nothing in it waits for the device (except the
    /// batch-pool triplet sampling of `triplets_per_user = false`, which counts the pool).
    /// The losses stay on the model's device, detached: reading one waits for the device
    /// to finish the step, so the training loop reads them once per logging interval.
    pub fn step(&mut self, model: &Dumn, batch: &Batch) -> Losses {
        let out = model.forward_train(batch);
        let losses = model.losses(&out, batch);
        self.opt.zero_grad();
        losses.total.backward();
        self.opt.step();
        if let Some(w) = &out.write {
            model.apply_memory_write(w);
        }
        self.steps += 1;
        Losses {
            total: losses.total.detach(),
            click_logloss: losses.click_logloss.detach(),
            dislike_logloss: losses.dislike_logloss.detach(),
            triplet: losses.triplet.detach(),
        }
    }
}
