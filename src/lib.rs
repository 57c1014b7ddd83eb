//! `dumn`: batch scoring for the DUMN click-through-rate model.
//!
//! - [`model`]: the network of the paper, in `tch`;
//! - [`artifact`]: saving and loading trained models (safetensors + JSON manifest);
//! - [`features`]: the feature schema and id hashing;
//! - [`train`]: the optimisation step and evaluation;
//! - [`dataset`], [`fit`]: `dumn train`'s time split, streamed examples and training loop;
//! - [`examples`]: Arrow rows to model examples;
//! - [`synth`]: generated examples with planted structure;
//! - [`device`]: `--device auto|cpu|cuda`;
//! - [`contract`]: the raw-log input tables and their checks;
//! - [`pipeline`]: the SQL steps of `sql/` (feedback, training examples, scoring input);
//! - [`gen`]: `dumn gen`, synthetic raw logs with planted structure;
//! - [`storage`]: local and `s3://` locations, publishing outputs atomically;
//! - [`output`]: writing query results as Parquet tables;
//! - [`scoring`]: a loaded model scoring candidates, one user step per user;
//! - [`session`]: the DataFusion session;
//! - [`udfs`]: dumn's SQL functions (the files live in `udfs/`).

pub mod artifact;
pub mod cluster;
pub mod contract;
pub mod dataset;
pub mod device;
pub mod examples;
pub mod features;
pub mod fit;
pub mod gen;
pub mod metrics;
pub mod model;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod scoring;
pub mod session;
pub mod storage;
pub mod synth;
pub mod train;
#[path = "../udfs/mod.rs"]
pub mod udfs;
