//! `dumn`: batch scoring for the DUMN click-through-rate model.
//!
//! The source is grouped by stage, and data flows one way: raw logs → [`data`] (the SQL of
//! `sql/`) → [`model`] (through the functions of [`udfs`]) → Parquet tables ([`io`]).
//! `ARCHITECTURE.md` draws it and says what each stage may call.
//!
//! | stage | what it owns |
//! | --- | --- |
//! | [`io`] | locations (local, `s3://`), object stores, atomic publishing, Parquet writing, job files |
//! | [`model`] | the network of the paper, its inputs, artifacts, devices and the scorer |
//! | [`udfs`] | dumn's SQL functions (the files live in `udfs/`) and their registration |
//! | [`engine`] | the DataFusion session and the Ballista cluster |
//! | [`data`] | the input contract, the SQL scripts and the order of the data plane's steps |
//! | [`training`] | settings, the training set, the fit loop, evaluation, metrics, reports |
//! | [`scoring`] | the nightly job: job file, scoring session, score and ranking tables |
//! | [`synthetic`] | generated raw logs and in-memory examples with planted structure |
//!
//! The command line (`src/main.rs`, `src/cli/`) parses flags and calls these.

/// This build of dumn: the package version with the git commit it was built from as
/// semver build metadata (`0.1.0+6d97118`; the bare version outside a git checkout). Set by
/// `build.rs`; printed by `dumn --version`, written in every artifact's manifest and in
/// `dumn ablate`'s tables, so a figure can be traced to the code that measured it.
pub const BUILD: &str = env!("DUMN_BUILD");

pub mod data;
pub mod engine;
pub mod io;
pub mod model;
pub mod scoring;
pub mod synthetic;
pub mod training;
#[path = "../udfs/mod.rs"]
pub mod udfs;
