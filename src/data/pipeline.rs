//! The data plane's order of steps: register and check the inputs, order the candidates
//! by user, run the feedback step and the final step, and hand back the output view.
//!
//! The steps themselves are the files of `sql/` ([`super::script`]); what each builds is
//! a [`ModelInput`]: the training examples or the scoring input.

use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::prelude::{DataFrame, SessionContext};

use super::contract::{self, Inputs, Preflight};
use super::script::{self, Params, Script};
use crate::io::Location;

/// Which model input the data plane builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelInput {
    /// One row per impression with the sequences strictly before it and both labels.
    Training,
    /// One row per candidate with the sequences strictly before the cutoff.
    Scoring,
}

impl ModelInput {
    /// The view the final step defines.
    pub fn view(self) -> &'static str {
        match self {
            ModelInput::Training => "training_examples",
            ModelInput::Scoring => "scoring_input",
        }
    }

    /// The contract tables this output reads.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            ModelInput::Training => &["impressions", "actions", "users", "items"],
            ModelInput::Scoring => &["impressions", "actions", "users", "items", "candidates"],
        }
    }

    /// The embedded script of the final step.
    pub fn script(self) -> Script {
        match self {
            ModelInput::Training => script::training_examples(),
            ModelInput::Scoring => script::scoring_input(),
        }
    }
}

/// Runs the feedback step and `last` (the output's final step, embedded or a team's own
/// file) on `ctx`, whose input tables are registered, and returns the output view.
pub async fn build(
    ctx: &SessionContext,
    output: ModelInput,
    last: &Script,
    params: &Params,
) -> Result<DataFrame> {
    script::feedback().run(ctx, params).await?;
    last.run(ctx, params).await?;
    ctx.table(output.view())
        .await
        .with_context(|| format!("{} must define the view `{}`", last.name, output.view()))
}

/// Memory the candidate sort of [`cluster_candidates`] holds before it spills to disk.
/// At 256M a 4M-candidate job's sort stayed in memory; at 64M it spills (to local
/// scratch, in about the same time), and with the ranking in a pool of its own too a 4M
/// run's peak fell from 1.44x a 1M run's to 1.32x (docs/benchmarks.md).
pub const CLUSTER_SORT_MEMORY: usize = 64 << 20;

/// Replaces the registered `candidates` with a copy ordered by user
/// (`sql/candidates_by_user.sql`), written as Parquet into the folder `scratch`. The sort
/// runs in its own memory pool of [`CLUSTER_SORT_MEMORY`] and spills beyond it, so its
/// memory does not grow with the number of candidates.
pub async fn cluster_candidates(ctx: &SessionContext, scratch: &Location) -> Result<()> {
    let sorting = crate::engine::session::with_own_pool(ctx, CLUSTER_SORT_MEMORY)?;
    let df = script::candidates_by_user()
        .query(&sorting, &Params::new())
        .await?;
    let target = scratch.join("candidates");
    crate::io::parquet::write_parquet(df, &target, serde_json::json!({}), |_| {})
        .await
        .context("ordering the candidates by user")?;
    ctx.deregister_table("candidates")?;
    contract::register(ctx, "candidates", &target, None).await
}

/// Impressions per partition when building training examples (see [`prepare`]).
pub const TRAINING_ROWS_PER_PARTITION: u64 = 100_000;

/// Where [`prepare`] writes the candidates ordered by user.
#[derive(Debug, Clone, Default)]
pub enum Scratch {
    /// A temporary local folder, `dumn-scoring-PID-…`, removed when the session drops; the
    /// next session on the host removes those of processes that were killed.
    #[default]
    Temporary,
    /// This folder, which the caller removes ([`crate::io::location::remove_all`]) when done:
    /// for a cluster, whose executors must read it (see `src/engine/cluster.rs`).
    At(Location),
}

/// The name of the temporary folders of [`Scratch::Temporary`]: `dumn-scoring-PID-…`.
const SCRATCH_PREFIX: &str = "dumn-scoring-";

/// Removes the temporary scratch folders whose process is gone (a process killed with
/// SIGKILL removes none of its own): those named `dumn-scoring-PID-…` in the system's
/// temporary folder where no process PID runs on this host.
fn remove_orphaned_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix(SCRATCH_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !crate::io::lease::alive(pid) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

impl Scratch {
    /// Removes the folder of [`Scratch::At`] (a temporary one goes with its session).
    pub async fn remove(&self) {
        if let Scratch::At(folder) = self {
            let _ = crate::io::location::remove_all(folder).await;
        }
    }
}

/// Registers the inputs that `output` reads, runs the pre-flight checks (for the scoring
/// input also [`contract::check_candidates`], then [`cluster_candidates`] into
/// `scratch`), and builds the output view (with `last`, or the embedded final step when
/// `None`).
pub async fn prepare(
    ctx: &SessionContext,
    inputs: &Inputs,
    output: ModelInput,
    last: Option<&Script>,
    params: &Params,
    scratch: &Scratch,
) -> Result<(DataFrame, Preflight)> {
    let started = std::time::Instant::now();
    let step = |what: &str| {
        tracing::debug!(
            "{what}: {:.2}s into the data plane",
            started.elapsed().as_secs_f64()
        )
    };
    inputs.register(ctx, output.tables()).await?;
    step("inputs registered");
    let non_empty: &[&str] = match output {
        ModelInput::Training => &["impressions"],
        ModelInput::Scoring => &["candidates"],
    };
    let checks = contract::preflight(ctx, output.tables(), non_empty).await?;
    step("inputs checked");
    if output == ModelInput::Training {
        // dumn_history runs in DataFusion's unbounded window operator, which holds a whole
        // partition's rows and sequences at once: cut the work into partitions of about
        // TRAINING_ROWS_PER_PARTITION impressions, so that no one operator holds the whole
        // log. (io::parquet::write_parquet starts a writer for every partition at once.)
        let rows = checks.rows.get("impressions").copied().unwrap_or(0);
        let wanted = (rows / TRAINING_ROWS_PER_PARTITION + 1) as usize;
        let current = ctx.state().config().target_partitions();
        if wanted > current {
            ctx.sql(&format!(
                "SET datafusion.execution.target_partitions = {wanted}"
            ))
            .await?
            .collect()
            .await?;
        }
    }
    if output == ModelInput::Scoring {
        contract::check_candidates(ctx).await?;
        step("candidates checked against users and items");
        match scratch {
            Scratch::At(folder) => cluster_candidates(ctx, folder).await?,
            Scratch::Temporary => {
                // The ordered copy lives as long as the session that reads it: the folder
                // is an extension of the session's config, removed when the last clone of
                // it drops.
                remove_orphaned_scratch();
                let dir = tempfile::Builder::new()
                    .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
                    .tempdir()?;
                cluster_candidates(ctx, &Location::local(dir.path())?).await?;
                ctx.state_ref()
                    .write()
                    .config_mut()
                    .set_extension(Arc::new(dir));
            }
        }
        step("candidates ordered by user");
    }
    let default = output.script();
    let df = build(ctx, output, last.unwrap_or(&default), params).await?;
    Ok((df, checks))
}
