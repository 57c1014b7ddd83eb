//! Running dumn's SQL on an Apache DataFusion Ballista cluster.
//!
//! A cluster is one scheduler (`dumn scheduler`) and any number of executors
//! (`dumn executor`), each started by this binary so that dumn's functions
//! ([`crate::udfs::Functions`]) are known everywhere: Ballista sends plans with functions by
//! name, the scheduler plans them and the executors run them. Each process loads the model
//! itself from `--model` (a local path or `s3://`): the scheduler to plan the model's
//! functions (their argument list comes from the manifest), the executors to score.
//!
//! A client (`dumn run --cluster`, `dumn sql --cluster`) plans on its own session, with
//! its own copy of the model for the same checks, and [`connect`] sends every query to the
//! scheduler. Tables are read, and intermediate tables written, by whichever process runs
//! the step, so on several machines every location a job names (data, model, output) must
//! be reachable from all of them under the same name: an `s3://` bucket, or a shared
//! filesystem mounted at the same path. Results come back to the client, which writes the
//! output tables as it does without a cluster (`src/io/parquet.rs`).
//!
//! Contract: the scheduler and the executors must serve the model the client scores with;
//! [`connect`] checks that the executors' model version equals the client's.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use ballista::prelude::SessionContextExt;
use ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::io::stores::Stores;
use crate::model::scorer::Scorer;
use crate::udfs;

/// Starts a scheduler listening on `bind` and serves until the process is stopped. Every
/// session it opens for a client has dumn's functions, the model's backed by `scorer`,
/// and resolves `s3://` through [`Stores`].
pub async fn scheduler(bind: SocketAddr, external_host: &str, scorer: Arc<Scorer>) -> Result<()> {
    // One registry for every session, so each bucket's store is configured once.
    let stores = Stores::registry();
    let session_builder = move |config: SessionConfig| {
        let base = default_session_builder(config)?;
        let runtime = RuntimeEnvBuilder::new()
            .with_object_store_registry(stores.clone())
            .build_arc()?;
        let mut state = SessionStateBuilder::new_from_existing(base)
            .with_runtime_env(runtime)
            .build();
        udfs::Functions::all(Some(scorer.clone())).register_into(&mut state)?;
        Ok(state)
    };
    let mut config = SchedulerConfig {
        bind_host: bind.ip().to_string(),
        bind_port: bind.port(),
        external_host: external_host.to_string(),
        ..Default::default()
    };
    config = config.with_override_session_builder(Arc::new(session_builder));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .context("setting up the scheduler's cluster state")?;
    start_server(cluster, bind, Arc::new(config))
        .await
        .with_context(|| format!("the scheduler on {bind} stopped"))
}

/// How an executor joins a cluster.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `host:port`.
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Address to listen on (Arrow Flight); the gRPC service listens on `grpc_port`.
    pub bind: SocketAddr,
    pub grpc_port: u16,
    /// The host name other processes reach this executor by (default: the bind address).
    pub external_host: Option<String>,
    /// Tasks run at once (default: one per core).
    pub concurrent_tasks: usize,
    /// Folder for shuffle files (default: a temporary folder).
    pub work_dir: Option<String>,
}

/// Starts an executor that registers with the scheduler and runs tasks until the process
/// is stopped, with dumn's functions (the model's backed by `scorer`) and `s3://` through
/// [`Stores`].
pub async fn executor(opts: ExecutorOptions, scorer: Arc<Scorer>) -> Result<()> {
    let registry = udfs::Functions::all(Some(scorer)).into_ballista_registry();
    let work_dir = opts.work_dir.clone();
    // One registry for every task's runtime, so each bucket's store is configured once.
    let stores = Stores::registry();
    let config = ExecutorProcessConfig {
        bind_host: opts.bind.ip().to_string(),
        port: opts.bind.port(),
        grpc_port: opts.grpc_port,
        external_host: Some(
            opts.external_host
                .clone()
                .unwrap_or_else(|| opts.bind.ip().to_string()),
        ),
        scheduler_host: opts.scheduler_host.clone(),
        scheduler_port: opts.scheduler_port,
        // Keep trying to reach a scheduler that is still starting, instead of failing at
        // once. (Ballista 55 measures this timeout from a fresh `Instant` on every try, so
        // in effect it retries until the scheduler answers.)
        scheduler_connect_timeout_seconds: 60,
        vcores: opts.concurrent_tasks,
        work_dir,
        override_function_registry: Some(Arc::new(registry)),
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| {
            let mut runtime = RuntimeEnvBuilder::new().with_object_store_registry(stores.clone());
            if let Some(dir) = &opts.work_dir {
                runtime = runtime.with_temp_file_path(dir.clone());
            }
            runtime.build_arc()
        })),
        ..Default::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .with_context(|| {
            format!(
                "the executor on {} (scheduler {}:{}) stopped",
                opts.bind, opts.scheduler_host, opts.scheduler_port
            )
        })
}

/// Turns `ctx` (a [`super::session::context`] session) into one whose queries run on the
/// cluster whose scheduler is at `url` (`df://host:port`, or `host:port`), with dumn's
/// functions registered again (Ballista's session upgrade replaces the function list),
/// the model's backed by `scorer`. When `scorer` is given, checks that the executors serve
/// the same model version.
pub async fn connect(
    ctx: &SessionContext,
    url: &str,
    scorer: Option<Arc<Scorer>>,
) -> Result<SessionContext> {
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("df://{url}")
    };
    let remote = SessionContext::remote_with_state(&url, ctx.state())
        .await
        .with_context(|| format!("connecting to the cluster at {url}"))?;
    // Ballista 55's adaptive planner never finishes a job with a stage that yields no row:
    // a ranking with no candidate at or below the dislike threshold made the scheduler plan
    // stage after stage, over 100,000 of a millisecond each. Its static planner finishes
    // such jobs, and scored the 1M-candidate benchmark as fast (docs/cluster.md).
    remote
        .state_ref()
        .write()
        .config_mut()
        .options_mut()
        .set(BALLISTA_ADAPTIVE_PLANNER_ENABLED, "false")?;
    udfs::register(&remote);
    udfs::register_model(&remote, scorer.clone());
    if let Some(scorer) = scorer {
        let served = super::session::first_string(&remote, "SELECT dumn_model_version()")
            .await
            .with_context(|| {
                format!(
                    "asking the cluster at {url} which model it serves (is its scheduler \
                     running, with executors started with --model?)"
                )
            })?;
        ensure!(
            served.as_deref() == Some(scorer.model_version()),
            "the cluster at {url} serves model {}, and this job scores with model {}: start \
             the scheduler and the executors with --model set to this job's model",
            served.as_deref().unwrap_or("(none)"),
            scorer.model_version()
        );
    }
    Ok(remote)
}
