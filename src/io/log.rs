//! The operator's log: warnings, progress and the final error on stderr, as text lines for
//! people (`warning: …`, `progress: …`, `error: …`) or, with `--log-format json`, as one
//! JSON object per line for log shippers (the `tracing` JSON format: `timestamp`, `level`,
//! `fields.message`, `target`).
//!
//! The command line picks the format once, before any work ([`set_format`]); library code
//! reports through [`warn`] and [`progress`] and never prints to stderr itself. Results
//! (tables, the run summary) go to stdout and are not log lines.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `warning: …` lines, and a progress bar on a terminal.
    #[default]
    Text,
    /// One JSON object per line (through `tracing`'s JSON formatter), progress included.
    Json,
}

static JSON: AtomicBool = AtomicBool::new(false);

/// Chooses the format for the rest of the process. The caller installs the matching
/// `tracing` subscriber (see `src/main.rs`).
pub fn set_format(format: LogFormat) {
    JSON.store(format == LogFormat::Json, Ordering::Relaxed);
}

/// The format chosen with [`set_format`] (text until then).
pub fn format() -> LogFormat {
    if JSON.load(Ordering::Relaxed) {
        LogFormat::Json
    } else {
        LogFormat::Text
    }
}

/// Something the operator should know that does not stop the work.
pub fn warn(message: impl Display) {
    match format() {
        LogFormat::Text => eprintln!("warning: {message}"),
        LogFormat::Json => tracing::warn!(target: "dumn", "{message}"),
    }
}

/// A progress line of long work (rows done, rate, time left).
pub fn progress(message: impl Display) {
    match format() {
        LogFormat::Text => eprintln!("progress: {message}"),
        LogFormat::Json => tracing::info!(target: "dumn::progress", "{message}"),
    }
}

/// The error that ends the process.
pub fn error(message: impl Display) {
    match format() {
        LogFormat::Text => eprintln!("error: {message}"),
        LogFormat::Json => tracing::error!(target: "dumn", "{message}"),
    }
}
