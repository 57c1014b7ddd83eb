//! The nightly scoring job: a job file, a session ready to score a day, and the run that
//! writes and publishes the day's score and ranking tables.
//!
//! | module | owns |
//! | --- | --- |
//! | [`job`] | the job file (`jobs/demo.toml`) and its checks |
//! | [`session`] | loading the scorer; a session with the model and the scoring input of a day |
//! | [`run`] | `dumn run`: the score and ranking tables, written and published |
//!
//! This stage calls [`crate::data`], [`crate::engine`], [`crate::model`], [`crate::udfs`]
//! and [`crate::io`].

pub mod job;
pub mod run;
pub mod session;
