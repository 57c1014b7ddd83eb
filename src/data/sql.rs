//! SQL text: the one place that quotes identifiers and literals, writes timestamps, parses
//! the times users type, and runs a text of several statements.
//!
//! Contract: every value that dumn puts into SQL text goes through [`quote_ident`],
//! [`quote_literal`] or [`timestamp_literal`]; every multi-statement text (a `sql/` step, a
//! `dumn sql` command) runs through [`Statements`], which plans each statement after the
//! previous one ran, so a view defined by one is visible to the next.

use std::collections::VecDeque;

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::execution::session_state::SessionState;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};

/// A SQL identifier, quoted: `a"b` becomes `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal, quoted: `it's` becomes `'it''s'`.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A `TIMESTAMP '…'` literal that keeps fractional seconds.
pub fn timestamp_literal(t: NaiveDateTime) -> String {
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%dT%H:%M:%S%.f"))
}

/// Parses a time given as `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM:SS[.fff]` (also
/// with a space for the `T`, as `dumn train` prints its split's bounds).
pub fn parse_time(s: &str) -> Result<NaiveDateTime> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight"));
    }
    // `%.f`: an optional fraction of a second.
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t);
        }
    }
    bail!("`{s}` is not a date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM:SS[.ffffff])")
}

/// The statements of one SQL text, run one at a time on a session.
pub struct Statements<'a> {
    ctx: &'a SessionContext,
    state: SessionState,
    rest: VecDeque<Statement>,
    name: String,
}

impl<'a> Statements<'a> {
    /// Parses `sql`; `name` (a file, "the command") is named in every error.
    pub fn parse(ctx: &'a SessionContext, sql: &str, name: &str) -> Result<Self> {
        let rest =
            DFParser::parse_sql(sql).with_context(|| format!("cannot parse the SQL in {name}"))?;
        Ok(Self {
            ctx,
            state: ctx.state(),
            rest,
            name: name.to_string(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Plans the next statement and returns its result, not yet run (DDL has taken effect;
    /// a query runs when the frame is collected or streamed). `None` after the last.
    pub async fn next(&mut self) -> Option<Result<DataFrame>> {
        let statement = self.rest.pop_front()?;
        let name = &self.name;
        Some(
            async {
                let plan = self
                    .state
                    .statement_to_plan(statement)
                    .await
                    .with_context(|| format!("in {name}"))?;
                self.ctx
                    .execute_logical_plan(plan)
                    .await
                    .with_context(|| format!("in {name}"))
            }
            .await,
        )
    }

    /// Runs every remaining statement to completion, discarding results.
    pub async fn run_all(mut self) -> Result<()> {
        while let Some(df) = self.next().await {
            df?.collect()
                .await
                .with_context(|| format!("in {}", self.name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        let t = parse_time("2026-11-15T06:30:00.25").unwrap();
        assert_eq!(timestamp_literal(t), "TIMESTAMP '2026-11-15T06:30:00.250'");
    }

    #[test]
    fn times_parse_as_dates_or_times() {
        assert_eq!(
            parse_time("2026-11-15T06:30:00").unwrap().to_string(),
            "2026-11-15 06:30:00"
        );
        // The split's bounds as `dumn train` prints them parse back to the same time.
        let printed = "2022-04-20 06:15:13.055100";
        assert_eq!(
            parse_time(printed).unwrap().to_string(),
            "2022-04-20 06:15:13.055100"
        );
        assert_eq!(
            parse_time("2022-04-20T06:15:13.0551").unwrap(),
            parse_time(printed).unwrap()
        );
        assert!(parse_time("15/11/2026").is_err());
        assert!(parse_time("2022-04-20 06:15").is_err());
    }

    #[tokio::test]
    async fn each_statement_sees_the_views_before_it() {
        let ctx = SessionContext::new();
        let mut s = Statements::parse(
            &ctx,
            "CREATE VIEW v AS SELECT 1 AS x; SELECT x + 1 AS y FROM v",
            "test",
        )
        .unwrap();
        s.next().await.unwrap().unwrap().collect().await.unwrap();
        let rows = s.next().await.unwrap().unwrap().collect().await.unwrap();
        assert_eq!(rows[0].num_rows(), 1);
        assert!(s.next().await.is_none());
        let err = Statements::parse(&ctx, "SELEC 1", "f.sql").err().unwrap();
        assert!(err.to_string().contains("f.sql"));
    }
}
