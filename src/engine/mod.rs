//! The query engine: the DataFusion session every stage runs SQL on, and the Ballista
//! cluster that runs the same SQL on several processes.
//!
//! | module | owns |
//! | --- | --- |
//! | [`session`] | the session (dumn's functions, memory limit, `s3://` stores) and small query helpers |
//! | [`cluster`] | `dumn scheduler`, `dumn executor`, and a client session that sends queries to them |
//!
//! This stage calls [`crate::udfs`] (the functions it registers), [`crate::model`] (the
//! scorer behind them) and [`crate::io`] (object stores).

pub mod cluster;
pub mod session;
