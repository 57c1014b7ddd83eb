//! Input and output: where data lives and how outputs appear whole.
//!
//! | module | owns |
//! | --- | --- |
//! | [`location`] | local, `file://` and `s3://` locations; list, put, get, remove |
//! | [`stores`] | the S3 store of each bucket and the registry every session resolves URLs with |
//! | [`publish`] | staging folders and the atomic publish of a folder with its `_SUCCESS` marker |
//! | [`parquet`] | writing a query's result as a Parquet table, all or nothing |
//! | [`lease`] | the lease that keeps two runs of one output from overlapping |
//! | [`job_file`] | reading a TOML job file, with overrides laid over it |
//! | [`day`] | publishing one day of several Parquet tables together, with recovery |
//! | [`delta`] | Delta Lake tables: replacing one day in one commit, reading, vacuum |
//! | [`guard`] | checks that an output location is apart from the inputs and is dumn's |
//! | [`failure`] | the kinds of failure behind the exit codes |
//! | [`log`] | warnings and progress for the operator, as text or JSON lines |
//!
//! This stage calls no other stage of the crate.

pub mod day;
pub mod delta;
pub mod failure;
pub mod guard;
pub mod job_file;
pub mod lease;
pub mod location;
pub mod log;
pub mod parquet;
pub mod publish;
pub mod stores;

pub use location::Location;
