//! The SQL steps of the data plane, and how they run.
//!
//! Each file in `sql/` is one step and defines one view (adapters define the contract's
//! tables). The binary embeds the files as they are in the repository, so it runs from any
//! folder; `--sql FILE` replaces a step with a team's own file.
//!
//! | step | file | defines |
//! | --- | --- | --- |
//! | feedback | `sql/feedback.sql` | `feedback(user_id, item_id, ts, kind)`: the four kinds from impressions and actions |
//! | training examples | `sql/training_examples.sql` | `training_examples`: one row per impression, sequences strictly before it |
//! | candidates by user | `sql/candidates_by_user.sql` | a query: the candidates ordered by user, materialised before the scoring input ([`cluster_candidates`]) |
//! | scoring input | `sql/scoring_input.sql` | `scoring_input`: one row per candidate, sequences strictly before the cutoff |
//! | scores | `sql/scores.sql` | `scores`: one row per candidate with `ctr`, `p_dislike`, the model version |
//! | ranking | `sql/ranking.sql` | `ranking`: per user, the top candidates by `ctr` without likely dislikes |
//! | adapters | `sql/adapters/*.sql` | `impressions`, `actions`, `users`, `items` from a public dataset |
//!
//! Parameters are written `${name}` in the SQL and replaced before parsing: `${seq_len}`
//! (T, a positive integer), `${cutoff}` (a `TIMESTAMP '…'` literal), `${data}` (an
//! adapter's source folder URL), and the scoring parameters that `sql/scores.sql` and
//! `sql/ranking.sql` document. A parameter that a script uses but that is not set is an
//! error naming it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::DFParser;

use crate::storage::Location;

/// A SQL script: a name for messages and its text.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub text: String,
}

impl Script {
    fn embedded(name: &str, text: &str) -> Self {
        Self {
            name: name.to_string(),
            text: text.to_string(),
        }
    }

    /// Reads a team's own SQL file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the SQL file {}", path.display()))?;
        Ok(Self {
            name: path.display().to_string(),
            text,
        })
    }

    /// Runs every statement of the script on `ctx`, after replacing the parameters.
    pub async fn run(&self, ctx: &SessionContext, params: &Params) -> Result<()> {
        let sql = params
            .render(&self.text)
            .with_context(|| format!("in {}", self.name))?;
        let statements = DFParser::parse_sql(&sql)
            .with_context(|| format!("cannot parse the SQL in {}", self.name))?;
        if statements.is_empty() {
            bail!("{} holds no SQL statement", self.name);
        }
        let state = ctx.state();
        for statement in statements {
            let plan = state
                .statement_to_plan(statement)
                .await
                .with_context(|| format!("in {}", self.name))?;
            ctx.execute_logical_plan(plan)
                .await
                .with_context(|| format!("in {}", self.name))?
                .collect()
                .await
                .with_context(|| format!("in {}", self.name))?;
        }
        Ok(())
    }
}

impl Script {
    /// Runs a script that is one query and returns its result, after replacing the
    /// parameters.
    pub async fn query(&self, ctx: &SessionContext, params: &Params) -> Result<DataFrame> {
        let sql = params
            .render(&self.text)
            .with_context(|| format!("in {}", self.name))?;
        ctx.sql(&sql)
            .await
            .with_context(|| format!("in {}", self.name))
    }
}

/// `sql/feedback.sql`.
pub fn feedback() -> Script {
    Script::embedded("sql/feedback.sql", include_str!("../sql/feedback.sql"))
}

/// `sql/training_examples.sql`.
pub fn training_examples() -> Script {
    Script::embedded(
        "sql/training_examples.sql",
        include_str!("../sql/training_examples.sql"),
    )
}

/// `sql/scoring_input.sql`.
pub fn scoring_input() -> Script {
    Script::embedded(
        "sql/scoring_input.sql",
        include_str!("../sql/scoring_input.sql"),
    )
}

/// `sql/candidates_by_user.sql`.
pub fn candidates_by_user() -> Script {
    Script::embedded(
        "sql/candidates_by_user.sql",
        include_str!("../sql/candidates_by_user.sql"),
    )
}

/// `sql/scores.sql`.
pub fn scores() -> Script {
    Script::embedded("sql/scores.sql", include_str!("../sql/scores.sql"))
}

/// `sql/ranking.sql`.
pub fn ranking() -> Script {
    Script::embedded("sql/ranking.sql", include_str!("../sql/ranking.sql"))
}

/// The adapters in `sql/adapters/`, by name.
pub const ADAPTERS: [&str; 2] = ["kuairand", "taobao"];

/// An adapter by name (`kuairand`, `taobao`) or a path to an adapter file.
pub fn adapter(name_or_path: &str) -> Result<Script> {
    match name_or_path {
        "kuairand" => Ok(Script::embedded(
            "sql/adapters/kuairand.sql",
            include_str!("../sql/adapters/kuairand.sql"),
        )),
        "taobao" => Ok(Script::embedded(
            "sql/adapters/taobao.sql",
            include_str!("../sql/adapters/taobao.sql"),
        )),
        other if other.ends_with(".sql") => Script::from_file(Path::new(other)),
        other => bail!(
            "unknown adapter `{other}`; use one of {} or a path to a .sql file",
            ADAPTERS.join(", ")
        ),
    }
}

/// Values for the `${name}` parameters of the scripts.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
}

impl Params {
    /// No parameters set but `${merged_feedback}`, which is FALSE.
    pub fn new() -> Self {
        Self::default().merged_feedback(false)
    }

    /// Sets `${merged_feedback}`: whether the training examples' `feedback_seq` (every
    /// kind merged by time, which only the DUMN_AF ablation reads) is filled; when FALSE it
    /// is an empty list and costs next to nothing.
    pub fn merged_feedback(self, on: bool) -> Self {
        self.with("merged_feedback", if on { "TRUE" } else { "FALSE" })
    }

    /// Sets a parameter to a SQL fragment, inserted as is.
    pub fn with(mut self, name: &str, sql: impl Into<String>) -> Self {
        self.values.insert(name.to_string(), sql.into());
        self
    }

    /// Sets `${seq_len}`, the longest sequence kept (T).
    pub fn seq_len(self, t: usize) -> Result<Self> {
        if t == 0 {
            bail!("the sequence length must be at least 1");
        }
        Ok(self.with("seq_len", t.to_string()))
    }

    /// Sets `${cutoff}`: only feedback strictly before it enters the scoring input.
    pub fn cutoff(self, cutoff: NaiveDateTime) -> Self {
        self.with(
            "cutoff",
            format!("TIMESTAMP '{}'", cutoff.format("%Y-%m-%dT%H:%M:%S%.f")),
        )
    }

    /// Replaces every `${name}` in `sql`; an unset name is an error.
    pub fn render(&self, sql: &str) -> Result<String> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').context("a `${` without its closing `}`")?;
            let name = &after[..end];
            let value = self.values.get(name).with_context(|| {
                format!("the SQL uses the parameter `${{{name}}}`, which is not set")
            })?;
            out.push_str(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Parses a cutoff given as `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM:SS`.
pub fn parse_cutoff(s: &str) -> Result<NaiveDateTime> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight"));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t);
        }
    }
    bail!("`{s}` is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM:SS)")
}

/// Which output of the data plane to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One row per impression with the sequences strictly before it and both labels.
    Training,
    /// One row per candidate with the sequences strictly before the cutoff.
    Scoring,
}

impl Output {
    /// The view the final step defines.
    pub fn view(self) -> &'static str {
        match self {
            Output::Training => "training_examples",
            Output::Scoring => "scoring_input",
        }
    }

    /// The contract tables this output reads.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Output::Training => &["impressions", "actions", "users", "items"],
            Output::Scoring => &["impressions", "actions", "users", "items", "candidates"],
        }
    }

    /// The embedded script of the final step.
    pub fn script(self) -> Script {
        match self {
            Output::Training => training_examples(),
            Output::Scoring => scoring_input(),
        }
    }
}

/// Runs the feedback step and `last` (the output's final step, embedded or a team's own
/// file) on `ctx`, whose input tables are registered, and returns the output view.
pub async fn build(
    ctx: &SessionContext,
    output: Output,
    last: &Script,
    params: &Params,
) -> Result<DataFrame> {
    feedback().run(ctx, params).await?;
    last.run(ctx, params).await?;
    ctx.table(output.view())
        .await
        .with_context(|| format!("{} must define the view `{}`", last.name, output.view()))
}

/// Memory the candidate sort of [`cluster_candidates`] holds before it spills to disk.
pub const CLUSTER_SORT_MEMORY: usize = 256 << 20;

/// Replaces the registered `candidates` with a copy ordered by user
/// (`sql/candidates_by_user.sql`), written as Parquet into the folder `scratch`. The sort runs in its
/// own memory pool of [`CLUSTER_SORT_MEMORY`] and spills beyond it, so its memory does not
/// grow with the number of candidates.
pub async fn cluster_candidates(ctx: &SessionContext, scratch: &Location) -> Result<()> {
    use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
    use datafusion::execution::memory_pool::FairSpillPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::execution::session_state::SessionStateBuilder;
    let runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(ctx.runtime_env().object_store_registry.clone())
        .with_memory_pool(Arc::new(FairSpillPool::new(CLUSTER_SORT_MEMORY)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::OsTmpDirectory),
        )
        .build_arc()?;
    let sorting = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(ctx.state())
            .with_runtime_env(runtime)
            .build(),
    );
    let df = candidates_by_user().query(&sorting, &Params::new()).await?;
    let target = scratch.join("candidates");
    crate::output::write_parquet(df, &target, serde_json::json!({}), |_| {})
        .await
        .context("ordering the candidates by user")?;
    ctx.deregister_table("candidates")?;
    crate::contract::register(ctx, "candidates", &target).await
}

/// Impressions per partition when building training examples (see [`prepare`]).
pub const TRAINING_ROWS_PER_PARTITION: u64 = 100_000;

/// Where [`prepare`] writes the candidates ordered by user.
#[derive(Debug, Clone, Default)]
pub enum Scratch {
    /// A temporary local folder, removed when the session drops.
    #[default]
    Temporary,
    /// This folder, which the caller removes ([`crate::storage::remove_all`]) when done:
    /// for a cluster, whose executors must read it (see `src/cluster.rs`).
    At(Location),
}

impl Scratch {
    /// Removes the folder of [`Scratch::At`] (a temporary one goes with its session).
    pub async fn remove(&self) {
        if let Scratch::At(folder) = self {
            let _ = crate::storage::remove_all(folder).await;
        }
    }
}

/// Registers the inputs that `output` reads, runs the pre-flight checks (for the scoring
/// input also [`crate::contract::check_candidates`], then [`cluster_candidates`] into
/// `scratch`), and builds the output view (with `last`, or the embedded final step when
/// `None`).
pub async fn prepare(
    ctx: &SessionContext,
    inputs: &crate::contract::Inputs,
    output: Output,
    last: Option<&Script>,
    params: &Params,
    scratch: &Scratch,
) -> Result<(DataFrame, crate::contract::Preflight)> {
    inputs.register(ctx, output.tables()).await?;
    let non_empty: &[&str] = match output {
        Output::Training => &["impressions"],
        Output::Scoring => &["candidates"],
    };
    let checks = crate::contract::preflight(ctx, output.tables(), non_empty).await?;
    if output == Output::Training {
        // dumn_history runs in DataFusion's unbounded window operator, which holds a whole
        // partition's rows and sequences at once: cut the work into partitions of about
        // TRAINING_ROWS_PER_PARTITION impressions (output::write_parquet runs only as many at a
        // time as there are cores), so memory does not grow with the log.
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
    if output == Output::Scoring {
        crate::contract::check_candidates(ctx).await?;
        match scratch {
            Scratch::At(folder) => cluster_candidates(ctx, folder).await?,
            Scratch::Temporary => {
                // The ordered copy lives as long as the session that reads it: the folder
                // is an extension of the session's config, removed when the last clone of
                // it drops.
                let dir = tempfile::Builder::new().prefix("dumn-scoring-").tempdir()?;
                cluster_candidates(ctx, &Location::Local(dir.path().to_path_buf())).await?;
                ctx.state_ref()
                    .write()
                    .config_mut()
                    .set_extension(Arc::new(dir));
            }
        }
    }
    let default = output.script();
    let df = build(ctx, output, last.unwrap_or(&default), params).await?;
    Ok((df, checks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_render_and_unset_ones_are_named() {
        let p = Params::new().seq_len(5).unwrap();
        assert_eq!(
            p.render("slice(x, 1, ${seq_len})").unwrap(),
            "slice(x, 1, 5)"
        );
        let err = p.render("ts < ${cutoff}").unwrap_err().to_string();
        assert!(err.contains("${cutoff}"), "{err}");
        let p = p.cutoff(parse_cutoff("2026-11-15").unwrap());
        assert_eq!(
            p.render("ts < ${cutoff}").unwrap(),
            "ts < TIMESTAMP '2026-11-15T00:00:00'"
        );
        assert!(Params::new().seq_len(0).is_err());
    }

    #[test]
    fn cutoffs_parse_as_dates_or_times() {
        assert_eq!(
            parse_cutoff("2026-11-15T06:30:00").unwrap().to_string(),
            "2026-11-15 06:30:00"
        );
        assert!(parse_cutoff("15/11/2026").is_err());
    }
}
