//! Generated data with planted structure, so that model quality can be judged and not only
//! shapes.
//!
//! | module | writes | used by |
//! | --- | --- | --- |
//! | [`logs`] | raw logs in the input contract (impressions, actions, users, items, candidates) | `dumn gen`, the data-plane, training and scoring tests |
//! | [`planted`] | model [`crate::model::Example`]s in memory, without SQL | `dumn demo`, the model tests |
//!
//! This stage calls [`crate::model`] (the example type) and [`crate::io`].

pub mod logs;
pub mod planted;

/// The logistic function: a planted logit to a probability.
pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}
