//! The DataFusion session every subcommand runs its SQL on.

use std::sync::Arc;

use anyhow::Result;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::object_store::ObjectStoreRegistry;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Engine settings shared by the subcommands.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Parallel partitions; `None` = one per core.
    pub partitions: Option<usize>,
    /// Memory the engine's sorts, joins and aggregates may hold before they spill to disk
    /// (bytes); `None` = unbounded.
    pub memory_limit: Option<usize>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            partitions: None,
            memory_limit: Some(2 << 30),
        }
    }
}

/// Parses a memory size such as `512M`, `2G` or `1073741824`; `0` or `none` = unbounded.
pub fn parse_memory(s: &str) -> Result<Option<usize>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") || s == "0" {
        return Ok(None);
    }
    let (digits, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size; write e.g. 512M or 2G"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("unknown size unit `{other}`; use K, M or G")),
    };
    Ok(Some(n * mult))
}

/// A session with dumn's functions registered, the options above, URL tables enabled,
/// `s3://` resolved through [`crate::io::stores::Stores`], `STORED AS DELTATABLE` for
/// Delta Lake tables ([`crate::io::delta`]), and spilling to the system's
/// temporary folder when a memory limit is set.
pub fn context(opts: &EngineOptions) -> Result<SessionContext> {
    let mut config = SessionConfig::new().with_information_schema(true);
    if let Some(p) = opts.partitions {
        config = config.with_target_partitions(p.max(1));
    }
    let runtime = runtime(crate::io::stores::Stores::registry(), opts.memory_limit)?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::udfs::register(&ctx);
    crate::io::delta::register_factory(&ctx);
    Ok(ctx.enable_url_table())
}

/// The runtime of dumn's sessions: object stores from `registry`, a fair spilling pool of
/// `memory_limit` bytes (`None` = unbounded), spills in the system's temporary folder.
fn runtime(
    registry: Arc<dyn ObjectStoreRegistry>,
    memory_limit: Option<usize>,
) -> Result<Arc<RuntimeEnv>> {
    let mut runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(registry)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::OsTmpDirectory),
        );
    if let Some(limit) = memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    Ok(runtime.build_arc()?)
}

/// A session that shares `ctx`'s tables, functions and settings but runs its queries in
/// its own memory pool of `bytes` (spilling to the system's temporary folder beyond it).
/// For a step whose operators can all spill (a sort, an aggregate, a window): its memory
/// then stays bounded whatever the size of the job, and it does not compete with the
/// session's pool, where a join's build side (which cannot spill) needs the room.
pub fn with_own_pool(ctx: &SessionContext, bytes: usize) -> Result<SessionContext> {
    let runtime = runtime(ctx.runtime_env().object_store_registry.clone(), Some(bytes))?;
    Ok(SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(ctx.state())
            .with_runtime_env(runtime)
            .build(),
    ))
}

/// Runs `sql` and returns its first row, every column cast to BIGINT (`None` for NULL or
/// when there is no row). For the small count and range queries of the pre-flight checks.
pub async fn first_row(ctx: &SessionContext, sql: &str) -> Result<Vec<Option<i64>>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Int64Type};
    let batches = ctx.sql(sql).await?.collect().await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        let width = batches.first().map_or(0, |b| b.num_columns());
        return Ok(vec![None; width]);
    };
    (0..b.num_columns())
        .map(|c| {
            let a = cast(b.column(c), &DataType::Int64)?;
            let a = a.as_primitive::<Int64Type>();
            Ok(a.is_valid(0).then(|| a.value(0)))
        })
        .collect()
}

/// Runs `sql` and returns the first column of its first row as text (`None` for NULL or
/// when there is no row).
pub async fn first_string(ctx: &SessionContext, sql: &str) -> Result<Option<String>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    let batches = ctx.sql(sql).await?.collect().await?;
    let Some(b) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let a = cast(b.column(0), &DataType::Utf8)?;
    let a = a.as_string::<i32>();
    Ok(a.is_valid(0).then(|| a.value(0).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("512M"), Ok(Some(512 << 20)));
        assert_eq!(parse_memory("2g"), Ok(Some(2 << 30)));
        assert_eq!(parse_memory("none"), Ok(None));
        assert!(parse_memory("2T").is_err());
        assert!(parse_memory("lots").is_err());
    }

    /// A join's build side cannot spill: in a 16 KiB pool it fails; in a session of its
    /// own pool ([`with_own_pool`]) the same query over the same registered tables runs.
    #[tokio::test]
    async fn a_session_with_its_own_pool_shares_the_tables_but_not_the_pool() {
        let ctx = context(&EngineOptions {
            partitions: Some(1),
            memory_limit: Some(16 << 10),
        })
        .unwrap();
        ctx.sql("CREATE VIEW t AS SELECT value AS k FROM generate_series(1, 50000)")
            .await
            .unwrap();
        let join = "SELECT count(*) FROM t AS a JOIN t AS b ON a.k = b.k";
        let err = ctx.sql(join).await.unwrap().collect().await.unwrap_err();
        assert!(err.to_string().contains("Resources exhausted"), "{err}");
        let own = with_own_pool(&ctx, 64 << 20).unwrap();
        let rows = first_row(&own, join).await.unwrap();
        assert_eq!(rows, vec![Some(50000)]);
    }
}
