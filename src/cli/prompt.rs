//! The interactive prompt of `dumn sql`: statements end with `;` and may span lines;
//! backslash commands describe the session.
//!
//! On a terminal, lines are read with rustyline: editing, Ctrl-R search, and a history
//! kept across sessions in `$DUMN_HISTORY`, else `$XDG_STATE_HOME/dumn/sql_history`, else
//! `~/.local/state/dumn/sql_history` (`DUMN_HISTORY=` with no value keeps none). Each
//! statement is one history entry, saved as soon as it is entered. From a pipe, lines are
//! read plainly, the backslash commands work the same, and the first failing statement
//! ends the run with its error.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, Result};
use datafusion::prelude::SessionContext;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use dumn::udfs;

use super::sql::{run_statements, Output};

/// What `\?` prints.
const HELP: &str = "\
Statements end with `;` and may span lines. Besides SELECT, DataFusion's DDL works:
  CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'path/or/s3://…';
  CREATE VIEW v AS SELECT …;   COPY (SELECT …) TO 'out.parquet';   SET datafusion.….
  (docs/sql.md has examples.)
Commands:
  \\d            list the tables and views
  \\d NAME       the columns of a table or view
  \\df           list dumn's functions
  \\df NAME      a function's arguments (the model's, by name) and an example
  \\?            this help
  \\q            leave (or Ctrl-D)";

/// Where lines come from.
enum Lines {
    /// A terminal: rustyline, with the history file when there is one.
    Editor {
        editor: Box<DefaultEditor>,
        history: Option<PathBuf>,
    },
    /// A pipe or file.
    Plain(std::io::Lines<std::io::StdinLock<'static>>),
}

/// One read.
enum Read {
    Line(String),
    /// Ctrl-C: drop the statement being typed.
    Interrupted,
    End,
}

impl Lines {
    fn open() -> Result<Self> {
        if !std::io::stdin().is_terminal() {
            return Ok(Lines::Plain(std::io::stdin().lock().lines()));
        }
        let mut editor = DefaultEditor::new().context("starting the line editor")?;
        let history = history_path();
        if let Some(path) = &history {
            // A first session has no file yet.
            let _ = editor.load_history(path);
        }
        Ok(Lines::Editor {
            editor: Box::new(editor),
            history,
        })
    }

    fn interactive(&self) -> bool {
        matches!(self, Lines::Editor { .. })
    }

    fn read(&mut self, prompt: &str) -> Result<Read> {
        match self {
            Lines::Plain(lines) => match lines.next() {
                Some(line) => Ok(Read::Line(line?)),
                None => Ok(Read::End),
            },
            Lines::Editor { editor, .. } => match editor.readline(prompt) {
                Ok(line) => Ok(Read::Line(line)),
                Err(ReadlineError::Interrupted) => Ok(Read::Interrupted),
                Err(ReadlineError::Eof) => Ok(Read::End),
                Err(e) => Err(e).context("reading the prompt"),
            },
        }
    }

    /// Adds a finished statement or command to the history, and saves it.
    fn remember(&mut self, entry: &str) {
        let Lines::Editor { editor, history } = self else {
            return;
        };
        let _ = editor.add_history_entry(entry);
        if let Some(path) = history {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = editor.append_history(path) {
                dumn::io::log::warn(format_args!(
                    "cannot save the history in {}: {e}",
                    path.display()
                ));
                *history = None;
            }
        }
    }
}

/// The history file (see the module docs), or none.
fn history_path() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("DUMN_HISTORY") {
        return (!v.is_empty()).then(|| PathBuf::from(v));
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("dumn").join("sql_history"))
}

/// Runs the prompt until `\q` or the end of input.
pub(super) async fn run(ctx: &SessionContext, out: Output) -> Result<()> {
    let mut lines = Lines::open()?;
    let interactive = lines.interactive();
    if interactive {
        println!("dumn sql: end statements with `;`; \\? for help, \\q to leave");
    }
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "dumn> "
        } else {
            "  ... "
        };
        let line = match lines.read(prompt)? {
            Read::Line(line) => line,
            Read::Interrupted => {
                pending.clear();
                continue;
            }
            Read::End => break,
        };
        let trimmed = line.trim();
        if pending.is_empty() && trimmed.starts_with('\\') {
            if trimmed != "\\q" {
                lines.remember(trimmed);
            }
            match command(ctx, trimmed, out).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) if interactive => eprintln!("error: {e:#}"),
                Err(e) => return Err(e),
            }
            continue;
        }
        if pending.is_empty() && matches!(trimmed, "quit" | "exit") {
            break;
        }
        if trimmed.is_empty() && pending.is_empty() {
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if line.trim_end().ends_with(';') {
            let sql = std::mem::take(&mut pending);
            lines.remember(sql.trim_end());
            if let Err(e) = run_statements(ctx, &sql, "the statement", out).await {
                if !interactive {
                    return Err(e);
                }
                eprintln!("error: {e:#}");
            }
        }
    }
    if !pending.trim().is_empty() {
        run_statements(ctx, &pending, "the statement", out).await?;
    }
    Ok(())
}

/// Runs a backslash command; `false` to leave.
async fn command(ctx: &SessionContext, line: &str, out: Output) -> Result<bool> {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let arg = words.next();
    match (name, arg) {
        ("\\q", _) => return Ok(false),
        ("\\?", _) => println!("{HELP}"),
        ("\\d", None) => {
            let sql = "SELECT table_schema, table_name, table_type \
                       FROM information_schema.tables \
                       WHERE table_schema <> 'information_schema' \
                       ORDER BY table_schema, table_name";
            run_statements(ctx, sql, "\\d", out).await?;
        }
        ("\\d", Some(table)) => {
            anyhow::ensure!(
                ctx.table_exist(table)?,
                "there is no table or view `{table}` (\\d lists them)"
            );
            let reference = datafusion::common::TableReference::from(table);
            let quoted = |s: &str| s.replace('\'', "''");
            let mut sql = format!(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
                 WHERE table_name = '{}'",
                quoted(reference.table())
            );
            if let Some(schema) = reference.schema() {
                sql.push_str(&format!(" AND table_schema = '{}'", quoted(schema)));
            }
            sql.push_str(" ORDER BY ordinal_position");
            run_statements(ctx, &sql, "\\d", out).await?;
        }
        ("\\df", None) => {
            let functions = udfs::documented(&ctx.state());
            let width = functions.iter().map(|f| f.name.len()).max().unwrap_or(0);
            for f in functions {
                let first = f.doc.description.split(". ").next().unwrap_or_default();
                println!("{:<width$}  {:<9}  {first}", f.name, f.kind);
            }
            println!("(\\df NAME shows a function's arguments)");
        }
        ("\\df", Some(function)) => {
            let functions = udfs::documented(&ctx.state());
            let Some(f) = functions.iter().find(|f| f.name == function) else {
                anyhow::bail!("dumn has no function `{function}` (\\df lists them)");
            };
            print!("{}", udfs::describe(&f.doc));
        }
        _ => anyhow::bail!("unknown command `{line}` (\\? lists the commands)"),
    }
    Ok(true)
}
