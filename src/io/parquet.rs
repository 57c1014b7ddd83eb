//! Writing a query's result as a Parquet table, all or nothing.
//!
//! Contract: [`write_parquet`] runs the query with one writer per output partition, into a
//! staging folder beside the target, and publishes it (see [`super::publish::publish`]) only
//! when every partition finished: the target then holds exactly this run's files and a
//! `_SUCCESS` marker (JSON: rows, files, columns, written_at, plus the caller's fields). On
//! any error the staging folder is removed and the previous target is left as it was.
//!
//! Row groups are capped at [`ROW_GROUP_ROWS`] rows, so a writer buffers a bounded amount
//! whatever the table's size. Every output partition gets its own writer task, all started
//! at once; they run on the async runtime's worker threads (one per core).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use object_store::buffered::BufWriter;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Serialize;

use super::location::{self, Location};
use super::publish;

/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 16_384;

/// What a write produced.
#[derive(Debug, Clone, Serialize)]
pub struct WriteSummary {
    pub rows: u64,
    pub files: usize,
    pub columns: Vec<String>,
}

fn properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build()
}

/// Runs `df` and writes its rows under `target` as `part-NNNNN.parquet` files, then
/// publishes them with a `_SUCCESS` marker that also holds `extra` (a JSON object).
/// `on_rows` is called with the running row count as batches are written.
pub async fn write_parquet(
    df: DataFrame,
    target: &Location,
    extra: serde_json::Value,
    on_rows: impl Fn(u64) + Send + Sync + 'static,
) -> Result<WriteSummary> {
    stage_parquet(df, target, on_rows)
        .await?
        .publish(target, extra)
        .await
}

/// A table written into its staging folder and not yet published: readable there (for a
/// step that reads it back), invisible at the target.
#[derive(Debug)]
pub struct Staged {
    pub staging: Location,
    pub summary: WriteSummary,
}

/// The first half of [`write_parquet`]: runs `df` into a fresh staging folder beside
/// `target`, after removing what failed or killed writes of `target` left there
/// ([`publish::remove_stale_staging`]; so two writers of one target must not overlap). On
/// error the staging folder is removed.
pub async fn stage_parquet(
    df: DataFrame,
    target: &Location,
    on_rows: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Staged> {
    publish::remove_stale_staging(target).await?;
    stage_parquet_into(df, publish::staging_for(target)?, on_rows).await
}

/// Runs `df` into the folder `staging` (which should not exist yet). On error the folder
/// is removed.
pub async fn stage_parquet_into(
    df: DataFrame,
    staging: Location,
    on_rows: impl Fn(u64) + Send + Sync + 'static,
) -> Result<Staged> {
    match write_staged(df, &staging, Arc::new(on_rows)).await {
        Ok(summary) => Ok(Staged { staging, summary }),
        Err(e) => {
            let _ = location::remove_all(&staging).await;
            Err(e)
        }
    }
}

impl Staged {
    /// The second half of [`write_parquet`]: moves the staged files to `target`, replacing
    /// what was there, with the `_SUCCESS` marker (summary, `extra`, `written_at`) last.
    pub async fn publish(
        self,
        target: &Location,
        extra: serde_json::Value,
    ) -> Result<WriteSummary> {
        let mut marker = serde_json::to_value(&self.summary)?;
        if let (Some(m), serde_json::Value::Object(extra)) = (marker.as_object_mut(), extra) {
            m.extend(extra);
            m.insert("written_at".into(), chrono::Utc::now().to_rfc3339().into());
        }
        if let Err(e) =
            publish::publish(&self.staging, target, &serde_json::to_vec_pretty(&marker)?).await
        {
            let _ = location::remove_all(&self.staging).await;
            return Err(e);
        }
        Ok(self.summary)
    }

    /// Removes the staged files.
    pub async fn discard(self) {
        let _ = location::remove_all(&self.staging).await;
    }
}

async fn write_staged(
    df: DataFrame,
    staging: &Location,
    on_rows: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<WriteSummary> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    let (store, prefix) = staging.store()?;
    if let Location::Local(p) = staging {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
    }
    let streams = df.execute_stream_partitioned().await?;
    let rows = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (part, mut stream) in streams.into_iter().enumerate() {
        let (store, path) = (
            store.clone(),
            prefix
                .clone()
                .join(format!("part-{part:05}.parquet").as_str()),
        );
        let (rows, on_rows, schema) = (rows.clone(), on_rows.clone(), schema.clone());
        tasks.push(tokio::spawn(async move {
            let mut writer: Option<AsyncArrowWriter<BufWriter>> = None;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                if batch.num_rows() == 0 {
                    continue;
                }
                let w = match &mut writer {
                    Some(w) => w,
                    None => writer.insert(AsyncArrowWriter::try_new(
                        BufWriter::new(store.clone(), path.clone()),
                        schema.clone(),
                        Some(properties()),
                    )?),
                };
                w.write(&batch).await?;
                let n = rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                on_rows(n + batch.num_rows() as u64);
            }
            if let Some(w) = writer {
                w.close().await?;
                return anyhow::Ok(1usize);
            }
            anyhow::Ok(0usize)
        }));
    }
    let mut files = 0;
    for t in tasks {
        files += t.await.context("a writer task failed")??;
    }
    if files == 0 {
        // No rows at all: one empty file keeps the schema readable.
        let w = AsyncArrowWriter::try_new(
            BufWriter::new(store.clone(), prefix.clone().join("part-00000.parquet")),
            schema.clone(),
            Some(properties()),
        )?;
        w.close().await?;
        files = 1;
    }
    Ok(WriteSummary {
        rows: rows.load(Ordering::Relaxed),
        files,
        columns,
    })
}
