//! `dumn gen`: a synthetic raw-log dataset in the input contract, with the structure the
//! paper's claims depend on planted in it.
//!
//! What is planted, per user:
//! - a stable **long-term taste**: a primary and a secondary topic (item category) with a
//!   raised click probability for the whole period, and likes (like, cart, fav, buy) that
//!   mostly land on them — likes are informative;
//! - **short-term drift**: a current topic that clicks favour, which moves to another topic
//!   about three times over the period, so the newest clicks say more than old ones;
//! - a **hated topic**: rarely clicked on purpose, often disliked (dislike, hate) when shown —
//!   dislikes are informative;
//! - **accidental clicks**: 5% of impressions that would not be clicked are clicked anyway,
//!   whatever the topic, and half of them are followed by a dislike within a minute — click
//!   noise that the dislike sequence can explain away;
//! - a **regretted topic**: clickbait that the user clicks eagerly at first, and regrets:
//!   40% of those clicks are followed by a dislike, and each dislike lowers the topic's
//!   appeal for good. The click history keeps the early clicks long after the user has
//!   turned away from the topic; the dislike and unclick sequences show that they did, the
//!   click sequence alone does not;
//! - profile columns: `region` equals the primary taste 60% of the time (informative),
//!   `age_band` and `device` are noise; item popularity within a topic is skewed.
//!
//! The click logit of an impression of an item of topic `k` and popularity `p ∈ [0, 1]` is
//! `−2 + 2·[k primary] + 1.2·[k secondary] + 1.5·[k current] − 3·[k hated] + 0.8·p +
//! a·[k regretted]`, where the appeal `a = max(3 − 1.5·r, −2)` falls with `r`, the
//! dislikes the user has given the regretted topic so far.
//!
//! Tables written under the output folder, one sub-folder each, Parquet:
//! `users(user_id, age_band, region, device)`, `items(item_id, category, brand)`,
//! `impressions(user_id, item_id, ts, clicked, p_click)` (`p_click`: the true click
//! probability the click was drawn with, which no model can beat; `dumn ablate` reports
//! its AUC as the ceiling, and the SQL ignores it), `actions(user_id, item_id, ts, action)`
//! (action names include `share`, which maps to no feedback kind), and
//! `candidates(user_id, item_id, source)` for the day after the logs end. 5% of users are
//! new: they have candidates but no logs. Generation is deterministic for a seed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

use super::sigmoid;
use crate::io::location::{self, Location};
use crate::io::publish;

/// The size and shape of a generated dataset.
#[derive(Debug, Clone, Serialize)]
pub struct LogsConfig {
    pub users: usize,
    /// Mean impressions per user over the period (each user gets 0.5x to 1.5x).
    pub impressions_per_user: usize,
    pub candidates_per_user: usize,
    /// Item categories.
    pub topics: usize,
    pub items_per_topic: usize,
    pub brands_per_topic: usize,
    /// The logs cover `days` days from `start`; candidates are for the day after.
    pub start: NaiveDate,
    pub days: u32,
    pub seed: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            users: 2_000,
            impressions_per_user: 100,
            candidates_per_user: 100,
            topics: 20,
            items_per_topic: 200,
            brands_per_topic: 5,
            start: NaiveDate::from_ymd_opt(2026, 11, 1).expect("a date"),
            days: 14,
            seed: 1,
        }
    }
}

impl LogsConfig {
    /// The first moment after the logs: the natural scoring cutoff.
    pub fn cutoff(&self) -> NaiveDateTime {
        (self.start + chrono::Days::new(self.days as u64))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
    }

    fn validate(&self) -> Result<()> {
        ensure!(self.users > 0, "--users must be at least 1");
        ensure!(self.topics >= 4, "--topics must be at least 4");
        ensure!(
            self.items_per_topic > 0,
            "--items-per-topic must be at least 1"
        );
        ensure!(
            self.brands_per_topic > 0,
            "--brands-per-topic must be at least 1"
        );
        ensure!(self.days > 0, "--days must be at least 1");
        Ok(())
    }

    fn item_id(&self, topic: usize, rank: usize) -> i64 {
        100_000 + (rank * self.topics + topic) as i64
    }
}

/// Rows written per table.
#[derive(Debug, Default, Serialize)]
pub struct LogsSummary {
    pub users: u64,
    pub items: u64,
    pub impressions: u64,
    pub actions: u64,
    pub candidates: u64,
}

const NEW_USER_RATE: f64 = 0.05;
const ACCIDENTAL_CLICK_RATE: f64 = 0.05;
/// The regretted topic's appeal before any regret, what each regret takes off, its floor,
/// and the share of its clicks that are regretted (followed by a dislike).
const REGRET_APPEAL: f64 = 3.0;
const REGRET_STEP: f64 = 1.5;
const REGRET_FLOOR: f64 = -2.0;
const REGRET_RATE: f64 = 0.4;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

fn schema(fields: Vec<(&str, DataType)>) -> SchemaRef {
    Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| Field::new(n, t, false))
            .collect::<Vec<_>>(),
    ))
}

/// The planted state of one user.
struct Taste {
    primary: usize,
    secondary: usize,
    hated: usize,
    regretted: usize,
}

/// Column builders for one chunk of users.
#[derive(Default)]
struct Chunk {
    users: (Int64Builder, Int64Builder, Int64Builder, Int64Builder),
    impressions: (
        Int64Builder,
        Int64Builder,
        TimestampMicrosecondBuilder,
        BooleanBuilder,
        Float64Builder,
    ),
    actions: (
        Int64Builder,
        Int64Builder,
        TimestampMicrosecondBuilder,
        StringBuilder,
    ),
    candidates: (Int64Builder, Int64Builder, StringBuilder),
}

impl Chunk {
    fn action(&mut self, user: i64, item: i64, ts: i64, name: &str) {
        self.actions.0.append_value(user);
        self.actions.1.append_value(item);
        self.actions.2.append_value(ts);
        self.actions.3.append_value(name);
    }

    fn batches(mut self) -> Result<[(&'static str, RecordBatch); 4]> {
        let col = |b: &mut Int64Builder| Arc::new(b.finish()) as ArrayRef;
        let users = RecordBatch::try_new(
            schema(vec![
                ("user_id", DataType::Int64),
                ("age_band", DataType::Int64),
                ("region", DataType::Int64),
                ("device", DataType::Int64),
            ]),
            vec![
                col(&mut self.users.0),
                col(&mut self.users.1),
                col(&mut self.users.2),
                col(&mut self.users.3),
            ],
        )?;
        let impressions = RecordBatch::try_new(
            schema(vec![
                ("user_id", DataType::Int64),
                ("item_id", DataType::Int64),
                ("ts", ts_type()),
                ("clicked", DataType::Boolean),
                ("p_click", DataType::Float64),
            ]),
            vec![
                col(&mut self.impressions.0),
                col(&mut self.impressions.1),
                Arc::new(self.impressions.2.finish()),
                Arc::new(self.impressions.3.finish()),
                Arc::new(self.impressions.4.finish()),
            ],
        )?;
        let actions = RecordBatch::try_new(
            schema(vec![
                ("user_id", DataType::Int64),
                ("item_id", DataType::Int64),
                ("ts", ts_type()),
                ("action", DataType::Utf8),
            ]),
            vec![
                col(&mut self.actions.0),
                col(&mut self.actions.1),
                Arc::new(self.actions.2.finish()),
                Arc::new(self.actions.3.finish()),
            ],
        )?;
        let candidates = RecordBatch::try_new(
            schema(vec![
                ("user_id", DataType::Int64),
                ("item_id", DataType::Int64),
                ("source", DataType::Utf8),
            ]),
            vec![
                col(&mut self.candidates.0),
                col(&mut self.candidates.1),
                Arc::new(self.candidates.2.finish()),
            ],
        )?;
        Ok([
            ("users", users),
            ("impressions", impressions),
            ("actions", actions),
            ("candidates", candidates),
        ])
    }
}

/// A topic other than the ones in `not`.
fn topic_except(rng: &mut StdRng, topics: usize, not: &[usize]) -> usize {
    loop {
        let t = rng.random_range(0..topics);
        if !not.contains(&t) {
            return t;
        }
    }
}

/// A popularity rank in `0..n`, skewed towards 0 (popular).
fn skewed_rank(rng: &mut StdRng, n: usize) -> usize {
    let u: f64 = rng.random();
    ((u * u) * n as f64) as usize
}

/// Generates users `first..first + count` into one chunk.
fn generate_chunk(cfg: &LogsConfig, first: usize, count: usize) -> Chunk {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ (first as u64).wrapping_mul(0x9E37_79B9));
    let mut c = Chunk::default();
    let start_us = cfg
        .start
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_micros();
    let span_us = cfg.days as i64 * 86_400_000_000;
    let n_topics = cfg.topics;
    for u in first..first + count {
        let user = 1 + u as i64;
        let primary = rng.random_range(0..n_topics);
        let secondary = topic_except(&mut rng, n_topics, &[primary]);
        let hated = topic_except(&mut rng, n_topics, &[primary, secondary]);
        let regretted = topic_except(&mut rng, n_topics, &[primary, secondary, hated]);
        let taste = Taste {
            primary,
            secondary,
            hated,
            regretted,
        };
        let region = if rng.random::<f64>() < 0.6 {
            primary as i64
        } else {
            rng.random_range(0..n_topics) as i64
        };
        c.users.0.append_value(user);
        c.users.1.append_value(rng.random_range(0..6));
        c.users.2.append_value(region);
        c.users.3.append_value(rng.random_range(0..3));

        let is_new = rng.random::<f64>() < NEW_USER_RATE;
        let n = if is_new {
            0
        } else {
            let m = cfg.impressions_per_user.max(1) as f64;
            (m * rng.random_range(0.5..1.5)).round().max(1.0) as usize
        };
        let mut times: Vec<i64> = (0..n)
            .map(|_| start_us + rng.random_range(0..span_us))
            .collect();
        times.sort_unstable();
        let mut current = topic_except(&mut rng, n_topics, &[hated, regretted]);
        let drift = 3.0 / n.max(1) as f64;
        let mut regrets = 0.0;
        for &ts in &times {
            if rng.random::<f64>() < drift {
                current = topic_except(&mut rng, n_topics, &[hated, regretted, current]);
            }
            let topic = pick_topic(&mut rng, &taste, current, n_topics);
            let rank = skewed_rank(&mut rng, cfg.items_per_topic);
            let item = cfg.item_id(topic, rank);
            let popularity = 1.0 - rank as f64 / cfg.items_per_topic as f64;
            let logit = -2.0
                + 2.0 * f64::from(topic == taste.primary)
                + 1.2 * f64::from(topic == taste.secondary)
                + 1.5 * f64::from(topic == current)
                - 3.0 * f64::from(topic == taste.hated)
                + 0.8 * popularity
                + f64::from(topic == taste.regretted)
                    * (REGRET_APPEAL - REGRET_STEP * regrets).max(REGRET_FLOOR);
            let genuine = rng.random::<f64>() < sigmoid(logit);
            let accidental = !genuine && rng.random::<f64>() < ACCIDENTAL_CLICK_RATE;
            c.impressions.0.append_value(user);
            c.impressions.1.append_value(item);
            c.impressions.2.append_value(ts);
            c.impressions.3.append_value(genuine || accidental);
            // The true click probability: a genuine click, or else an accidental one.
            let p = sigmoid(logit);
            c.impressions
                .4
                .append_value(p + (1.0 - p) * ACCIDENTAL_CLICK_RATE);
            if genuine {
                let p_like = if topic == taste.primary || topic == taste.secondary {
                    0.25
                } else {
                    0.05
                };
                if rng.random::<f64>() < p_like {
                    let name = ["like", "cart", "fav", "buy"][rng.random_range(0..4)];
                    c.action(user, item, ts + rng.random_range(10..300) * 1_000_000, name);
                }
            }
            if genuine && topic == taste.regretted && rng.random::<f64>() < REGRET_RATE {
                let name = ["dislike", "hate"][rng.random_range(0..2)];
                c.action(user, item, ts + rng.random_range(30..600) * 1_000_000, name);
                regrets += 1.0;
            } else if accidental && rng.random::<f64>() < 0.5 {
                let name = ["dislike", "hate"][rng.random_range(0..2)];
                c.action(user, item, ts + rng.random_range(5..60) * 1_000_000, name);
            } else if topic == taste.hated && rng.random::<f64>() < 0.2 {
                let name = ["dislike", "hate"][rng.random_range(0..2)];
                c.action(user, item, ts + rng.random_range(1..30) * 1_000_000, name);
            }
            if rng.random::<f64>() < 0.02 {
                c.action(user, item, ts + 1_000_000, "share");
            }
        }
        for _ in 0..cfg.candidates_per_user {
            let (topic, source) = match rng.random::<f64>() {
                x if x < 0.5 => (pick_topic(&mut rng, &taste, current, n_topics), "retrieval"),
                x if x < 0.8 => (rng.random_range(0..n_topics), "popular"),
                _ => (rng.random_range(0..n_topics), "explore"),
            };
            let rank = skewed_rank(&mut rng, cfg.items_per_topic);
            c.candidates.0.append_value(user);
            c.candidates.1.append_value(cfg.item_id(topic, rank));
            c.candidates.2.append_value(source);
        }
    }
    c
}

/// The topic of a shown item: the taste, the current topic, the hated one, the regretted
/// one, or any.
fn pick_topic(rng: &mut StdRng, taste: &Taste, current: usize, topics: usize) -> usize {
    match rng.random::<f64>() {
        x if x < 0.25 => taste.primary,
        x if x < 0.35 => taste.secondary,
        x if x < 0.55 => current,
        x if x < 0.65 => taste.hated,
        x if x < 0.80 => taste.regretted,
        _ => rng.random_range(0..topics),
    }
}

/// The `items` table: every item of every topic, with its brand.
fn items_batch(cfg: &LogsConfig) -> Result<RecordBatch> {
    let mut ids = Int64Builder::new();
    let mut cats = Int64Builder::new();
    let mut brands = Int64Builder::new();
    for topic in 0..cfg.topics {
        for rank in 0..cfg.items_per_topic {
            ids.append_value(cfg.item_id(topic, rank));
            cats.append_value(topic as i64);
            brands
                .append_value((topic * cfg.brands_per_topic + rank % cfg.brands_per_topic) as i64);
        }
    }
    Ok(RecordBatch::try_new(
        schema(vec![
            ("item_id", DataType::Int64),
            ("category", DataType::Int64),
            ("brand", DataType::Int64),
        ]),
        vec![
            Arc::new(ids.finish()),
            Arc::new(cats.finish()),
            Arc::new(brands.finish()),
        ],
    )?)
}

/// Encodes one batch as a Parquet file in memory.
fn encode(batch: &RecordBatch) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    w.write(batch)?;
    w.close()?;
    Ok(buf)
}

/// Writes the dataset to `out` (local or `s3://`), replacing what is there, and returns the
/// row counts. `progress` is called with the number of users done so far.
pub async fn write_logs(
    cfg: &LogsConfig,
    out: &Location,
    progress: impl Fn(u64) + Send + Sync,
) -> Result<LogsSummary> {
    cfg.validate()?;
    let staging = publish::staging_for(out)?;
    let result = write_all(cfg, &staging, &progress).await;
    match result {
        Ok(summary) => {
            let marker = serde_json::to_vec_pretty(&serde_json::json!({
                "generator": "dumn gen",
                "config": cfg,
                "cutoff": cfg.cutoff().to_string(),
                "rows": &summary,
            }))?;
            publish::publish(&staging, out, &marker).await?;
            Ok(summary)
        }
        Err(e) => {
            let _ = location::remove_all(&staging).await;
            Err(e)
        }
    }
}

async fn write_all(
    cfg: &LogsConfig,
    dir: &Location,
    progress: &(impl Fn(u64) + Send + Sync),
) -> Result<LogsSummary> {
    let items = items_batch(cfg)?;
    location::put(&dir.join("items/part-00000.parquet"), encode(&items)?).await?;
    let per_chunk = (200_000 / cfg.impressions_per_user.max(1)).clamp(1, 20_000);
    let chunks: Vec<(usize, usize)> = (0..cfg.users)
        .step_by(per_chunk)
        .map(|first| (first, per_chunk.min(cfg.users - first)))
        .collect();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = AtomicU64::new(0);
    let rows: [AtomicU64; 4] = Default::default();
    futures::stream::iter(chunks.into_iter().enumerate())
        .map(|(part, (first, count))| {
            let cfg = cfg.clone();
            let (done, rows) = (&done, &rows);
            async move {
                let files = tokio::task::spawn_blocking(move || -> Result<Vec<_>> {
                    let chunk = generate_chunk(&cfg, first, count);
                    chunk
                        .batches()?
                        .iter()
                        .map(|(table, b)| Ok((*table, b.num_rows(), encode(b)?)))
                        .collect()
                })
                .await
                .context("the generator thread failed")??;
                for (i, (table, n, bytes)) in files.into_iter().enumerate() {
                    location::put(&dir.join(&format!("{table}/part-{part:05}.parquet")), bytes)
                        .await?;
                    rows[i].fetch_add(n as u64, Ordering::Relaxed);
                }
                progress(done.fetch_add(count as u64, Ordering::Relaxed) + count as u64);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(workers)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(LogsSummary {
        users: rows[0].load(Ordering::Relaxed),
        items: items.num_rows() as u64,
        impressions: rows[1].load(Ordering::Relaxed),
        actions: rows[2].load(Ordering::Relaxed),
        candidates: rows[3].load(Ordering::Relaxed),
    })
}
