//! `dumn sql` for people: the prompt through a pseudo-terminal, the backslash commands,
//! `dumn_predict('TABLE')` and the functions' documentation.

use std::process::{Command, Stdio};

use crate::common::data::*;
use crate::common::scoring::Fixture;

/// The model's input columns for the fixture's model, in call order.
const INPUTS: &str = "user_id, age_band, region, device, item_id, category, brand, \
                      click_seq, unclick_seq, like_seq, dislike_seq";

/// `(user_id, item_id, ctr, p_dislike)` rows of a CSV result with that header.
fn scored(csv: &str) -> Vec<(i64, i64, f64, f64)> {
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("user_id,item_id,ctr,p_dislike"), "{csv}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn dumn_predict_equals_dumn_ctr_and_names_a_missing_column() {
    let fx = Fixture::new(4);
    let job = fx.job("job.toml", "");
    let sql = |query: &str| {
        run_dumn_in(
            fx.dir.path(),
            &[
                "sql",
                "--job",
                job.to_str().unwrap(),
                "--format",
                "csv",
                "-c",
                query,
            ],
            &[],
        )
    };
    let (ok, by_name, err) = sql(
        "SELECT user_id, item_id, ctr, p_dislike FROM dumn_predict('scoring_input') \
         ORDER BY user_id, item_id",
    );
    assert!(ok, "{err}");
    let (ok, by_position, err) = sql(&format!(
        "SELECT user_id, item_id, dumn_ctr({INPUTS}) AS ctr, dumn_dislike({INPUTS}) AS p_dislike \
         FROM scoring_input ORDER BY user_id, item_id"
    ));
    assert!(ok, "{err}");
    let (a, b) = (scored(&by_name), scored(&by_position));
    assert_eq!(a.len(), 120 * 4, "every candidate, once");
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.0, x.1), (y.0, y.1));
        assert!(
            (x.2 - y.2).abs() < 1e-6 && (x.3 - y.3).abs() < 1e-6,
            "{x:?} {y:?}"
        );
    }
    // Every column of the table passes through, and filters apply above the function.
    let (ok, out, err) = sql(
        "SELECT count(*) AS n, count(DISTINCT category) > 1 AS categories \
         FROM dumn_predict('scoring_input') WHERE ctr >= 0 AND ctr <= 1",
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().nth(1), Some("480,true"), "{out}");

    // A table without one of the model's inputs: the error names it.
    let (ok, _, err) = sql(
        "CREATE VIEW no_brand AS SELECT user_id, item_id, age_band, region, device, category, \
         click_seq, unclick_seq, like_seq, dislike_seq FROM scoring_input; \
         SELECT * FROM dumn_predict('no_brand')",
    );
    assert!(!ok && err.contains("no column `brand`"), "{err}");
    let (ok, _, err) = sql("SELECT * FROM dumn_predict('nowhere')");
    assert!(!ok && err.contains("no table or view `nowhere`"), "{err}");
}

#[test]
fn df_and_inspect_print_the_model_functions_arguments_by_name() {
    let fx = Fixture::new(2);
    let model = fx.path("model");
    // The backslash commands work from a pipe too.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dumn"))
        .args(["sql", "--model", model.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"\\df\n\\df dumn_ctr\n\\df dumn_predict\n",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for listed in [
        "dumn_ctr",
        "dumn_recent",
        "dumn_history",
        "dumn_rank",
        "dumn_predict",
    ] {
        assert!(text.contains(listed), "\\df lists {listed}:\n{text}");
    }
    assert!(text.contains(&format!("dumn_ctr({INPUTS})")), "{text}");
    assert!(
        text.contains("brand") && text.contains("item feature"),
        "{text}"
    );
    assert!(text.contains("dumn_predict('TABLE')"), "{text}");

    let (ok, stdout, stderr) = run_dumn_in(fx.dir.path(), &["inspect", "model"], &[]);
    assert!(ok, "{stderr}");
    let manifest: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(manifest["model_version"].is_string());
    assert!(stderr.contains(&format!("({INPUTS})")), "{stderr}");
    assert!(
        stderr.contains("dislike_seq") && stderr.contains("disliked"),
        "{stderr}"
    );
}

#[test]
fn the_prompt_recalls_history_across_sessions_and_describes_tables() {
    let fx = Fixture::new(2);
    let history = fx.path("history");
    let table = format!("events={}", fx.path("data/impressions").display());
    let start = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dumn"));
        command
            .args(["sql", "--table", &table])
            .env("DUMN_HISTORY", &history)
            .env("TERM", "xterm");
        rexpect::session::spawn_command(command, Some(60_000)).unwrap()
    };

    let mut p = start();
    p.exp_string("dumn> ").unwrap();
    p.send_line("SELECT 40 + 2 AS answer;").unwrap();
    p.exp_string("42").unwrap();
    p.exp_string("dumn> ").unwrap();
    p.send_line("\\d").unwrap();
    p.exp_string("events").unwrap();
    p.exp_string("dumn> ").unwrap();
    p.send_line("\\d events").unwrap();
    p.exp_string("clicked").unwrap();
    p.exp_string("dumn> ").unwrap();
    p.send_line("\\d nowhere").unwrap();
    p.exp_string("no table or view `nowhere`").unwrap();
    p.exp_string("dumn> ").unwrap();
    p.send_line("\\q").unwrap();
    p.exp_eof().unwrap();
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("SELECT 40 + 2 AS answer;"), "{saved}");

    // A new session recalls the statement from the history file: four steps up (past
    // `\d nowhere`, `\d events` and `\d`; `\q` is not kept), then Enter runs it again.
    let mut p = start();
    p.exp_string("dumn> ").unwrap();
    for _ in 0..4 {
        p.send("\x1b[A").unwrap();
    }
    p.send_line("").unwrap();
    p.exp_string("42").unwrap();
    p.exp_string("dumn> ").unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}
