//! `dumn gen`: write a synthetic raw-log dataset.

use std::time::Instant;

use anyhow::Result;
use chrono::NaiveDate;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use dumn::io::Location;
use dumn::synthetic::logs::{write_logs, LogsConfig};

#[derive(Args)]
pub struct GenArgs {
    /// Where to write the dataset: a local folder or s3://bucket/prefix. Replaced if it
    /// exists; written to a staging folder first, so a failed run leaves it as it was.
    pub out: String,
    /// Users (5% of them are new: candidates but no logs).
    #[arg(long, default_value_t = 2_000)]
    pub users: usize,
    /// Mean impressions per user over the period.
    #[arg(long, default_value_t = 100)]
    pub impressions_per_user: usize,
    /// Candidates per user, for the day after the logs end.
    #[arg(long, default_value_t = 100)]
    pub candidates_per_user: usize,
    /// Item categories (topics of taste).
    #[arg(long, default_value_t = 20)]
    pub topics: usize,
    /// Items per category.
    #[arg(long, default_value_t = 200)]
    pub items_per_topic: usize,
    /// First day of the logs.
    #[arg(long, default_value = "2026-11-01")]
    pub start: NaiveDate,
    /// Days of logs; the scoring cutoff is the day after the last.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub async fn run(args: GenArgs) -> Result<()> {
    let out = Location::parse(&args.out)?;
    let cfg = LogsConfig {
        users: args.users,
        impressions_per_user: args.impressions_per_user,
        candidates_per_user: args.candidates_per_user,
        topics: args.topics,
        items_per_topic: args.items_per_topic,
        start: args.start,
        days: args.days,
        seed: args.seed,
        ..Default::default()
    };
    let bar = ProgressBar::with_draw_target(Some(cfg.users as u64), super::draw_target())
        .with_style(
            ProgressStyle::with_template(
                "{bar:30} {human_pos}/{human_len} users {per_sec} eta {eta}",
            )
            .expect("a valid template"),
        );
    let started = Instant::now();
    let progress = bar.clone();
    let summary = write_logs(&cfg, &out, move |done| progress.set_position(done)).await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {out} in {secs:.1}s: {} users, {} items, {} impressions, {} actions, {} candidates ({:.0} impressions/s)",
        summary.users,
        summary.items,
        summary.impressions,
        summary.actions,
        summary.candidates,
        summary.impressions as f64 / secs
    );
    println!(
        "logs cover {} .. {}; score as of --cutoff {}",
        cfg.start,
        cfg.cutoff() - chrono::Duration::seconds(1),
        cfg.cutoff().date()
    );
    Ok(())
}
