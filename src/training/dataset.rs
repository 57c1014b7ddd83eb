//! Training data for `dumn train` and `dumn eval`: the feature schema read off the input
//! tables, the split by time, and the examples streamed back in batches.
//!
//! Contract:
//! - the split is by time, never random: train is `ts < valid_from`, validation
//!   `valid_from <= ts < test_from`, test `ts >= test_from`. Without explicit times the
//!   boundaries cut the impressions' time range at 80% and 90%;
//! - the examples are materialised once as Parquet in a work folder and read back with one
//!   partition, so a run is repeatable; evaluation reads them in file order, training in a
//!   seeded random order per epoch ([`ExampleFiles::stream_shuffled`]) that mixes users
//!   (the files hold each user's examples together).

use anyhow::{bail, Context, Result};
use chrono::{DateTime, NaiveDateTime};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use serde::Serialize;

use crate::data::sql::timestamp_literal;
use crate::engine::session::first_row;
use crate::io::Location;
use crate::model::features::{FeatureSchema, FieldSpec};

/// Which part of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Part {
    Train,
    Valid,
    Test,
}

/// The time boundaries of the split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Split {
    pub valid_from: NaiveDateTime,
    pub test_from: NaiveDateTime,
}

impl Split {
    /// The split of the registered `impressions`: explicit boundaries, or 80% / 90% of its
    /// time range. Boundaries out of order are an error.
    pub async fn resolve(
        ctx: &SessionContext,
        valid_from: Option<NaiveDateTime>,
        test_from: Option<NaiveDateTime>,
    ) -> Result<Split> {
        let (valid_from, test_from) = match (valid_from, test_from) {
            (Some(v), Some(t)) => (v, t),
            (v, t) => {
                let r = first_row(
                    ctx,
                    "SELECT CAST(min(CAST(ts AS TIMESTAMP(6))) AS BIGINT), \
                     CAST(max(CAST(ts AS TIMESTAMP(6))) AS BIGINT) FROM impressions",
                )
                .await?;
                let (Some(lo), Some(hi)) = (r[0], r[1]) else {
                    bail!("table `impressions` has no timestamps to split by");
                };
                let at = |f: f64| {
                    DateTime::from_timestamp_micros(lo + ((hi - lo) as f64 * f) as i64)
                        .expect("a time in range")
                        .naive_utc()
                };
                (v.unwrap_or_else(|| at(0.8)), t.unwrap_or_else(|| at(0.9)))
            }
        };
        if valid_from > test_from {
            bail!("the validation split starts ({valid_from}) after the test split ({test_from})");
        }
        Ok(Split {
            valid_from,
            test_from,
        })
    }

    /// The SQL predicate on `ts` that selects `part`.
    pub fn predicate(&self, part: Part) -> String {
        let (v, t) = (
            timestamp_literal(self.valid_from),
            timestamp_literal(self.test_from),
        );
        match part {
            Part::Train => format!("ts < {v}"),
            Part::Valid => format!("ts >= {v} AND ts < {t}"),
            Part::Test => format!("ts >= {t}"),
        }
    }

    /// How a part is described in messages.
    pub fn describe(&self, part: Part) -> String {
        match part {
            Part::Train => format!("train (before {})", self.valid_from),
            Part::Valid => format!("validation ({} to {})", self.valid_from, self.test_from),
            Part::Test => format!("test (from {})", self.test_from),
        }
    }
}

/// The explicit feedback the `feedback` view holds (which some variants need).
#[derive(Debug, Clone, Copy)]
pub struct FeedbackSummary {
    pub likes: u64,
    pub dislikes: u64,
}

impl FeedbackSummary {
    pub async fn read(ctx: &SessionContext) -> Result<Self> {
        let r = first_row(
            ctx,
            "SELECT count(*) FILTER (WHERE kind = 'like'), \
             count(*) FILTER (WHERE kind = 'dislike') FROM feedback",
        )
        .await
        .context("summarising the feedback")?;
        let v = |i: usize| r[i].unwrap_or(0);
        Ok(Self {
            likes: v(0) as u64,
            dislikes: v(1) as u64,
        })
    }
}

/// The model's feature columns from the registered `users` and `items` tables: `user_id`
/// and every other `users` column, `item_id` and every other `items` column. The sizes are
/// placeholders: [`super::vocabulary::build`] sizes each field from the train split.
pub async fn feature_columns(ctx: &SessionContext) -> Result<FeatureSchema> {
    let mut sides = Vec::new();
    for (table, id) in [("users", "user_id"), ("items", "item_id")] {
        let schema = ctx.table(table).await?.schema().as_arrow().clone();
        let cols = std::iter::once(id.to_string()).chain(
            schema
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|n| n != id),
        );
        sides.push(cols.map(|c| FieldSpec::new(c, 2)).collect::<Vec<_>>());
    }
    let item_fields = sides.pop().expect("items");
    let user_fields = sides.pop().expect("users");
    let schema = FeatureSchema {
        user_fields,
        item_fields,
    };
    schema
        .validate_names_and_sizes()
        .map_err(anyhow::Error::msg)?;
    Ok(schema)
}

/// Memory for sorting the examples into an epoch's order; past it the sort spills to disk.
const SHUFFLE_MEMORY: usize = 2 << 30;

/// The materialised training examples (Parquet files), read back: one session, one
/// partition, file order.
pub struct ExampleFiles {
    ctx: SessionContext,
    location: Location,
}

impl ExampleFiles {
    pub async fn open(location: &Location) -> Result<Self> {
        // A bounded pool, so the per-epoch shuffle's sort spills to disk on a large split.
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_object_store_registry(crate::io::stores::Stores::registry())
            .with_memory_limit(SHUFFLE_MEMORY, 1.0)
            .build_arc()?;
        let ctx = SessionContext::new_with_config_rt(
            SessionConfig::new().with_target_partitions(1),
            runtime,
        );
        ctx.register_parquet(
            "examples",
            &location.url(true),
            ParquetReadOptions::default(),
        )
        .await
        .with_context(|| format!("reading the examples at {location}"))?;
        Ok(Self {
            ctx,
            location: location.clone(),
        })
    }

    /// The rows matching `predicate` (SQL on the examples' columns), in a stable order.
    pub async fn stream(&self, predicate: &str) -> Result<SendableRecordBatchStream> {
        let df = self
            .ctx
            .sql(&format!("SELECT * FROM examples WHERE {predicate}"))
            .await?;
        Ok(df.execute_stream().await?)
    }

    /// The rows matching `predicate` in a random order fixed by `seed`: sorted by an MD5
    /// of the row's user, item, time and the seed, which no two examples share (the
    /// feedback view has one impression per user, item and time). The sort spills to disk
    /// past 2 GiB.
    pub async fn stream_shuffled(
        &self,
        predicate: &str,
        seed: u64,
    ) -> Result<SendableRecordBatchStream> {
        let df = self
            .ctx
            .sql(&format!(
                "SELECT * FROM examples WHERE {predicate} ORDER BY md5(concat_ws('|', \
                 CAST(user_id AS VARCHAR), CAST(item_id AS VARCHAR), \
                 CAST(CAST(ts AS TIMESTAMP(6)) AS BIGINT), '{seed}'))"
            ))
            .await?;
        Ok(df.execute_stream().await?)
    }

    /// Rows matching `predicate`.
    pub async fn count(&self, predicate: &str) -> Result<u64> {
        let r = first_row(
            &self.ctx,
            &format!("SELECT count(*) FROM examples WHERE {predicate}"),
        )
        .await?;
        Ok(r[0].unwrap_or(0) as u64)
    }

    /// Checks that `label` holds only 0/1 (or false/true), naming a bad value.
    pub async fn check_label(&self, label: &str) -> Result<()> {
        let sql = format!(
            "SELECT CAST({label} AS BIGINT) AS v, count(*) FROM examples \
             WHERE {label} IS NULL OR CAST({label} AS BIGINT) NOT IN (0, 1) GROUP BY 1 LIMIT 1"
        );
        let batches = self
            .ctx
            .sql(&sql)
            .await
            .with_context(|| {
                format!(
                    "the examples at {} have no usable label column `{label}`",
                    self.location
                )
            })?
            .collect()
            .await?;
        if let Some(b) = batches.iter().find(|b| b.num_rows() > 0) {
            let v = datafusion::arrow::util::display::array_value_to_string(b.column(0), 0)?;
            bail!("the label column `{label}` holds {v}; labels must be 0 or 1 (true or false)");
        }
        Ok(())
    }

    /// The timestamps (microseconds) and user ids of a batch, for GAUC and the split test.
    pub fn users_and_times(batch: &RecordBatch) -> Result<(Vec<i64>, Vec<i64>)> {
        let users = cast(
            batch.column_by_name("user_id").context("no user_id")?,
            &DataType::Int64,
        )?;
        let ts = cast(
            batch.column_by_name("ts").context("no ts")?,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?;
        let ts = cast(&ts, &DataType::Int64)?;
        Ok((
            users.as_primitive::<Int64Type>().values().to_vec(),
            ts.as_primitive::<Int64Type>().values().to_vec(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    /// 40 users × 25 examples, written grouped by user as the training SQL writes them.
    async fn grouped_examples(dir: &std::path::Path) -> ExampleFiles {
        let (users, per_user) = (40i64, 25i64);
        let n = users * per_user;
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, false),
            Field::new("item_id", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i / per_user))),
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 7))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| 1_000_000 * (i % per_user)),
                )),
            ],
        )
        .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let file = std::fs::File::create(dir.join("part-0.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        ExampleFiles::open(&Location::Local(dir.to_path_buf()))
            .await
            .unwrap()
    }

    async fn order(files: &ExampleFiles, seed: Option<u64>) -> Vec<(i64, i64)> {
        let mut stream = match seed {
            Some(s) => files.stream_shuffled("true", s).await.unwrap(),
            None => files.stream("true").await.unwrap(),
        };
        let mut out = Vec::new();
        while let Some(b) = futures::StreamExt::next(&mut stream).await {
            let (users, ts) = ExampleFiles::users_and_times(&b.unwrap()).unwrap();
            out.extend(users.into_iter().zip(ts));
        }
        out
    }

    #[tokio::test]
    async fn the_shuffled_order_mixes_users_and_repeats_per_seed() {
        let tmp = tempfile::tempdir().unwrap();
        let files = grouped_examples(tmp.path()).await;
        let distinct_in =
            |rows: &[(i64, i64)]| rows.iter().map(|r| r.0).collect::<HashSet<_>>().len();
        // In file order a window of 100 rows holds 4 or 5 users.
        let plain = order(&files, None).await;
        assert!(plain.chunks(100).all(|w| distinct_in(w) <= 5));
        let a = order(&files, Some(1)).await;
        assert_eq!(a.len(), plain.len());
        let mut sorted = a.clone();
        sorted.sort_unstable();
        let mut all = plain.clone();
        all.sort_unstable();
        assert_eq!(sorted, all, "every row once");
        // Shuffled, each window of 100 rows draws from most of the 40 users (about 37 on
        // average for a uniform order; 25 would already be far from grouped).
        for w in a.chunks(100) {
            assert!(distinct_in(w) >= 25, "{} users in a window", distinct_in(w));
        }
        assert_eq!(a, order(&files, Some(1)).await, "a seed repeats its order");
        assert_ne!(
            a,
            order(&files, Some(2)).await,
            "another seed, another order"
        );
    }
}
