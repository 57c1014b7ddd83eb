//! The subcommands, one module each, and what they share: the async runtime, progress
//! displays and the engine flags.

pub mod cluster;
pub mod demo;
pub mod gen;
pub mod inspect;
pub mod models;
pub mod prompt;
pub mod run;
pub mod sequences;
pub mod sql;
pub mod train;
pub mod vacuum;

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use dumn::engine::session::{parse_memory, EngineOptions};
use dumn::io::failure::{Failure, MarkFailure};
use dumn::io::log::LogFormat;

/// Runs an async subcommand on a multi-threaded runtime. Its threads get 32 MB stacks, as
/// in Ballista's own binaries: encoding and decoding a deep query plan recurses.
pub fn block_on<F: Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()?
        .block_on(f)
}

/// Runs `f`, failing with a [`Failure::Timeout`] error once `limit` has passed (dropping
/// the work: what was staged is removed by the next run, and nothing is published).
pub async fn within<T>(limit: Option<Duration>, f: impl Future<Output = Result<T>>) -> Result<T> {
    let Some(limit) = limit else {
        return f.await;
    };
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!(
            "stopped after --timeout {}; nothing was published",
            humantime::format_duration(limit)
        ))
        .failure(Failure::Timeout),
    }
}

/// Where progress bars draw: on stderr when it is a terminal (and the log is text);
/// otherwise as log lines ([`dumn::io::log::progress`]), one every `DUMN_PROGRESS_SECONDS`
/// seconds (default 5), for a scheduler's log.
pub fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() && dumn::io::log::format() == LogFormat::Text {
        return ProgressDrawTarget::stderr();
    }
    let every = std::env::var("DUMN_PROGRESS_SECONDS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(5.0);
    let hz = if every < 1.0 { 20 } else { 1 };
    ProgressDrawTarget::term_like_with_hz(
        Box::new(LogLines {
            every: Duration::from_secs_f64(every),
            last: Mutex::new(None),
        }),
        hz,
    )
}

/// A progress "terminal" that writes a bar's text as a line, at most once per `every`.
#[derive(Debug)]
struct LogLines {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl TermLike for LogLines {
    fn width(&self) -> u16 {
        120
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write_str(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        // The bar itself (`[====>   ]`, `█████░░`) and the spinner's glyph say nothing in
        // a log: only words with a letter or a digit are kept.
        let text: String = s
            .split_whitespace()
            .filter(|w| {
                !w.starts_with('[') && !w.ends_with(']') && w.chars().any(|c| c.is_alphanumeric())
            })
            .collect::<Vec<_>>()
            .join(" ");
        if text.is_empty() {
            return Ok(());
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= self.every) {
            *last = Some(Instant::now());
            dumn::io::log::progress(text);
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A spinner counting rows, with the rate (see [`draw_target`]).
pub fn row_spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, draw_target()).with_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {human_pos} {msg} ({per_sec})")
            .expect("a valid template"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar counting rows towards `total`, with the rate and the time left (see
/// [`draw_target`]).
pub fn row_bar(what: &str, total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), draw_target()).with_style(
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
    /// 512M or 4G; `none` for no limit. `dumn run` orders the candidates, and ranks the
    /// scores with sql/ranking.sql, in pools of their own (64M each) that spill beyond.
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
