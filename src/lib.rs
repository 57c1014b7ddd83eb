//! `dumn`: batch scoring for the DUMN click-through-rate model.
//!
//! - [`model`]: the network of the paper, in `tch`;
//! - [`artifact`]: saving and loading trained models (safetensors + JSON manifest);
//! - [`features`]: the feature schema and id hashing;
//! - [`train`]: the optimisation step and evaluation;
//! - [`synth`]: generated examples with planted structure;
//! - [`device`]: `--device auto|cpu|cuda`.

pub mod artifact;
pub mod device;
pub mod features;
pub mod metrics;
pub mod model;
pub mod synth;
pub mod train;
