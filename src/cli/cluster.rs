//! `dumn scheduler` and `dumn executor`: the processes of a Ballista cluster that runs
//! dumn's SQL (see `src/cluster.rs` for what each does and what they share).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;

use dumn::engine::cluster::{self, ExecutorOptions};
use dumn::model::device::{describe, DeviceChoice};
use dumn::scoring::session::{load_scorer, ScorerOptions};

use super::run::ModelArgs;

#[derive(Args)]
pub struct SchedulerArgs {
    /// The model artifact the cluster serves (local path or s3://); the executors must be
    /// started with the same one.
    #[arg(long, value_name = "LOCATION")]
    pub model: String,
    /// Address to listen on. Use 0.0.0.0:50050 to accept executors and clients from other
    /// machines.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    pub bind: SocketAddr,
    /// The host name other machines reach this scheduler by (default: the bind address).
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,
}

#[derive(Args)]
pub struct ExecutorArgs {
    /// The model artifact to score with (local path or s3://): the scheduler's.
    #[arg(long, value_name = "LOCATION")]
    pub model: String,
    /// The scheduler, HOST:PORT. An executor started before its scheduler keeps trying to
    /// reach it, every half second.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
    pub scheduler: String,
    /// Address for the data service (Arrow Flight), which other executors and the client
    /// read results from. Use 0.0.0.0:PORT on a machine of a multi-machine cluster.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
    pub bind: SocketAddr,
    /// Port of the task service (gRPC), on the bind host.
    #[arg(long, value_name = "PORT", default_value_t = 50052)]
    pub grpc_port: u16,
    /// The host name other machines reach this executor by (default: the bind address).
    #[arg(long, value_name = "HOST")]
    pub external_host: Option<String>,
    /// Tasks run at once (default: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub concurrent_tasks: usize,
    /// Folder for shuffle files between stages (default: a temporary folder).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<String>,
    #[command(flatten)]
    pub model_args: ModelArgs,
}

pub async fn scheduler(args: SchedulerArgs) -> Result<()> {
    // The scheduler only plans: the model's manifest is what it reads, on the CPU.
    let scorer = load_scorer(
        &args.model,
        ScorerOptions {
            device: DeviceChoice::Cpu,
            ..Default::default()
        },
    )
    .await?;
    let host = args
        .external_host
        .clone()
        .unwrap_or_else(|| args.bind.ip().to_string());
    println!(
        "dumn scheduler on {} serving model {}; clients connect with --cluster {host}:{}",
        args.bind,
        scorer.model_version(),
        args.bind.port()
    );
    cluster::scheduler(args.bind, &host, scorer).await
}

pub async fn executor(args: ExecutorArgs) -> Result<()> {
    let (host, port) = args
        .scheduler
        .rsplit_once(':')
        .map(|(h, p)| (h.to_string(), p.parse::<u16>()))
        .with_context(|| format!("--scheduler `{}` is not HOST:PORT", args.scheduler))?;
    let port = port.with_context(|| format!("--scheduler `{}`: bad port", args.scheduler))?;
    let scorer = args.model_args.scorer(&args.model, None).await?;
    println!(
        "dumn executor on {} (tasks on port {}), model {} on {}, joining the scheduler at {host}:{port}",
        args.bind,
        args.grpc_port,
        scorer.model_version(),
        describe(scorer.device())
    );
    cluster::executor(
        ExecutorOptions {
            scheduler_host: host,
            scheduler_port: port,
            bind: args.bind,
            grpc_port: args.grpc_port,
            external_host: args.external_host,
            concurrent_tasks: args.concurrent_tasks,
            work_dir: args.work_dir,
        },
        scorer,
    )
    .await
}
