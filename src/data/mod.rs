//! The data plane: from raw logs to the model's input, in SQL.
//!
//! | module | owns |
//! | --- | --- |
//! | [`contract`] | the five input tables, where they come from ([`contract::Inputs`]) and their checks |
//! | [`script`] | the SQL files of `sql/` and `sql/adapters/`, a team's own files, `${name}` parameters |
//! | [`pipeline`] | the order of the steps, from registered inputs to a [`pipeline::ModelInput`] view |
//! | [`sql`] | quoting, timestamp literals, times typed by users, the multi-statement runner |
//!
//! This stage calls [`crate::engine`] (sessions) and [`crate::io`] (locations, Parquet).

pub mod contract;
pub mod pipeline;
pub mod script;
pub mod sql;
