//! The subcommands, one module each, and what they share: the async runtime, progress
//! displays and the engine flags.

pub mod cluster;
pub mod demo;
pub mod gen;
pub mod inspect;
pub mod run;
pub mod sequences;
pub mod sql;
pub mod train;

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use dumn::engine::session::{parse_memory, EngineOptions};

/// Runs an async subcommand on a multi-threaded runtime. Its threads get 32 MB stacks, as
/// in Ballista's own binaries: encoding and decoding a deep query plan recurses.
pub fn block_on<F: Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()?
        .block_on(f)
}

/// A spinner counting rows, with the rate; hidden when stderr is not a terminal.
pub fn row_spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {human_pos} {msg} ({per_sec})")
            .expect("a valid template"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar counting rows towards `total`, with the rate and the time left; hidden when
/// stderr is not a terminal.
pub fn row_bar(what: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{elapsed:>4} [{bar:30}] {human_pos}/{human_len} {msg} ({per_sec}, {eta} left)",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Flags that tune the query engine.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Parallel partitions (default: one per core).
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,
    /// Memory that sorts, joins and aggregates may hold before spilling to disk, e.g.
    /// 512M or 4G; `none` for no limit.
    // Spelled out so that clap parses the whole `Option` (None = no limit) with
    // parse_memory instead of treating the flag as optional.
    #[arg(long, value_name = "SIZE", default_value = "2G", value_parser = parse_memory)]
    pub memory_limit: std::option::Option<usize>,
}

impl EngineArgs {
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            partitions: self.partitions,
            memory_limit: self.memory_limit,
        }
    }
}
