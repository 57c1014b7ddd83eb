//! The SQL scripts of the data plane: the embedded steps of `sql/`, the adapters of
//! `sql/adapters/`, a team's own files, and the `${name}` parameters they take.
//!
//! Each file in `sql/` is one step and defines one view (adapters define the contract's
//! tables). The binary embeds the files as they are in the repository, so it runs from any
//! folder; `--sql FILE` replaces a step with a team's own file. The order the steps run in
//! is [`super::pipeline`]'s.
//!
//! | step | file | defines |
//! | --- | --- | --- |
//! | feedback | `sql/feedback.sql` | `feedback(user_id, item_id, ts, kind)`: the four kinds from impressions and actions |
//! | training examples | `sql/training_examples.sql` | `training_examples`: one row per impression, sequences strictly before it |
//! | candidates by user | `sql/candidates_by_user.sql` | a query: the candidates ordered by user, materialised before the scoring input |
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

use anyhow::{bail, Context, Result};
use chrono::NaiveDateTime;
use datafusion::prelude::{DataFrame, SessionContext};

use super::sql::{timestamp_literal, Statements};

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
        let statements = Statements::parse(ctx, &sql, &self.name)?;
        if statements.is_empty() {
            bail!("{} holds no SQL statement", self.name);
        }
        statements.run_all().await
    }

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
    Script::embedded("sql/feedback.sql", include_str!("../../sql/feedback.sql"))
}

/// `sql/training_examples.sql`.
pub fn training_examples() -> Script {
    Script::embedded(
        "sql/training_examples.sql",
        include_str!("../../sql/training_examples.sql"),
    )
}

/// `sql/scoring_input.sql`.
pub fn scoring_input() -> Script {
    Script::embedded(
        "sql/scoring_input.sql",
        include_str!("../../sql/scoring_input.sql"),
    )
}

/// `sql/candidates_by_user.sql`.
pub fn candidates_by_user() -> Script {
    Script::embedded(
        "sql/candidates_by_user.sql",
        include_str!("../../sql/candidates_by_user.sql"),
    )
}

/// `sql/scores.sql`.
pub fn scores() -> Script {
    Script::embedded("sql/scores.sql", include_str!("../../sql/scores.sql"))
}

/// `sql/ranking.sql`.
pub fn ranking() -> Script {
    Script::embedded("sql/ranking.sql", include_str!("../../sql/ranking.sql"))
}

/// The adapters in `sql/adapters/`, by name.
pub const ADAPTERS: [&str; 2] = ["kuairand", "taobao"];

/// An adapter by name (`kuairand`, `taobao`) or a path to an adapter file.
pub fn adapter(name_or_path: &str) -> Result<Script> {
    match name_or_path {
        "kuairand" => Ok(Script::embedded(
            "sql/adapters/kuairand.sql",
            include_str!("../../sql/adapters/kuairand.sql"),
        )),
        "taobao" => Ok(Script::embedded(
            "sql/adapters/taobao.sql",
            include_str!("../../sql/adapters/taobao.sql"),
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
    /// No parameters set but `${merged_feedback}` and `${as_of_midnight}`, both FALSE.
    pub fn new() -> Self {
        Self::default().merged_feedback(false).as_of_midnight(false)
    }

    /// Sets `${as_of_midnight}`: whether the training examples' sequences are cut at the
    /// start of each impression's day (as the nightly job sees them) rather than at its time.
    pub fn as_of_midnight(self, on: bool) -> Self {
        self.with("as_of_midnight", if on { "TRUE" } else { "FALSE" })
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

    /// Sets `${cutoff}`: only feedback strictly before it enters the scoring input, and
    /// `${history_since}` to the whole history (see [`Self::lookback`]).
    pub fn cutoff(self, cutoff: NaiveDateTime) -> Self {
        self.with("cutoff", timestamp_literal(cutoff))
            .with("history_since", "TRUE")
    }

    /// Sets `${cutoff}` and `${history_since}`: only feedback of the `days` days before
    /// `cutoff` enters the scoring input (`ts >= cutoff − days`); 0 keeps the whole history.
    pub fn lookback(self, cutoff: NaiveDateTime, days: u32) -> Self {
        let since = match days {
            0 => "TRUE".to_string(),
            d => format!(
                "ts >= {}",
                timestamp_literal(cutoff - chrono::Duration::days(i64::from(d)))
            ),
        };
        self.cutoff(cutoff).with("history_since", since)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::sql::parse_time;

    #[test]
    fn parameters_render_and_unset_ones_are_named() {
        let p = Params::new().seq_len(5).unwrap();
        assert_eq!(
            p.render("slice(x, 1, ${seq_len})").unwrap(),
            "slice(x, 1, 5)"
        );
        let err = p.render("ts < ${cutoff}").unwrap_err().to_string();
        assert!(err.contains("${cutoff}"), "{err}");
        let p = p.cutoff(parse_time("2026-11-15").unwrap());
        assert_eq!(
            p.render("ts < ${cutoff}").unwrap(),
            "ts < TIMESTAMP '2026-11-15T00:00:00'"
        );
        assert!(Params::new().seq_len(0).is_err());
    }
}
