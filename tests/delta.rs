//! Delta Lake outputs, the default format of `dumn run` (src/io/delta.rs): one commit per
//! day and table, other days untouched, the run named in every row, read back by dumn's
//! own SQL, by `STORED AS DELTATABLE`, and by an independent reader (Python's deltalake),
//! on a local disk and on the S3 test server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::prelude::SessionContext;
use dumn::io::{delta, Location};

use crate::common::data::{
    copy_tree, dumn_exit_code, f64s, files_under, i64s, read_parquet, run_dumn, run_twice_together,
    runtime, start_dumn_until, Watch,
};
use crate::common::s3::S3Server;
use crate::common::scoring::Fixture;

/// A fixture with `candidates` per user and a job that writes Delta tables under its
/// `out/` (plus the TOML lines `extra`): the fixture, the job file, the output root and
/// the day the job scores.
fn delta_setup(candidates: usize, extra: &str) -> (Fixture, String, PathBuf, String) {
    let fx = Fixture::new(candidates);
    let job = fx.job("job.toml", &format!("format = \"delta\"\n{extra}"));
    let (out, date) = (fx.path("out"), fx.date());
    (fx, job.to_string_lossy().into_owned(), out, date)
}

/// Copies `fx`'s logs and model into the bucket `dumn` of `server` and writes a job that
/// reads them there and writes Delta tables under `s3://dumn/out` (plus the TOML lines
/// `extra`); returns the job file.
fn bucket_job(fx: &Fixture, server: &S3Server, extra: &str) -> String {
    for d in ["data", "model"] {
        copy_tree(&fx.path(d), &server.root.path().join("dumn").join(d));
    }
    let job = fx.job(
        "s3.toml",
        &format!(
            "format = \"delta\"\ndata = \"s3://dumn/data\"\nmodel = \"s3://dumn/model\"\n\
             out = \"s3://dumn/out\"\n{extra}"
        ),
    );
    job.to_string_lossy().into_owned()
}

/// A job of `fx` writing under `out` with no `format` key: the default.
fn default_format_job(fx: &Fixture, name: &str, out: &str) -> PathBuf {
    let p = fx.job(name, &format!("out = \"{out}\"\nformat = \"delta\""));
    let text = std::fs::read_to_string(&p).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("format"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(text, without, "the job named a format");
    std::fs::write(&p, without).unwrap();
    p
}

/// Day `date` of the Delta table at `table` as of `version` (newest when `None`): its rows
/// rendered and sorted, without `scored_at`, `run_id` and `dt`; and the run ids of its rows.
fn delta_day(
    table: &Location,
    version: Option<u64>,
    date: &str,
) -> (Vec<String>, BTreeSet<String>) {
    runtime().block_on(async {
        let t = delta::open_at(table, version).await.unwrap();
        let ctx = SessionContext::new();
        let provider = t.table_provider().await.unwrap();
        let skipped: Vec<String> = provider
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| ["scored_at", "run_id", "dt"].contains(&n.as_str()))
            .collect();
        ctx.register_table("t", provider).unwrap();
        let rows = ctx
            .sql(&format!(
                "SELECT * EXCEPT ({}) FROM t WHERE dt = '{date}'",
                skipped.join(", ")
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let runs = ctx
            .sql(&format!(
                "SELECT DISTINCT run_id FROM t WHERE dt = '{date}'"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        (sorted_lines(&rows), strings_of(&runs))
    })
}

fn sorted_lines(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<String> {
    let text = datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .unwrap()
        .to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("| "))
        .skip(1)
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn strings_of(batches: &[datafusion::arrow::array::RecordBatch]) -> BTreeSet<String> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::compute::cast;
    let mut out = BTreeSet::new();
    for b in batches {
        let c = cast(b.column(0), &DataType::Utf8).unwrap();
        out.extend(c.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    out
}

/// Day `date` of a plain-Parquet table (the files of `dt=DATE/`), as [`delta_day`] renders
/// it.
fn parquet_day(day: &Path) -> Vec<String> {
    let keep: Vec<_> = runtime()
        .block_on(read_parquet(day))
        .iter()
        .map(|b| {
            let idx: Vec<usize> = (0..b.num_columns())
                .filter(|&i| b.schema().field(i).name() != "scored_at")
                .collect();
            b.project(&idx).unwrap()
        })
        .collect();
    sorted_lines(&keep)
}

/// The type of `scored_at` in the Parquet files of the folder `day`.
fn scored_at_type(day: &Path) -> DataType {
    let batches = runtime().block_on(read_parquet(day));
    batches[0]
        .schema()
        .field_with_name("scored_at")
        .unwrap()
        .data_type()
        .clone()
}

fn local(p: &Path) -> Location {
    Location::Local(p.to_path_buf())
}

/// The day before `date` (YYYY-MM-DD).
fn day_before(date: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
    (d - chrono::Duration::days(1)).to_string()
}

fn run_ok(args: &[&str], env: &[(&str, String)]) -> String {
    let (ok, text) = run_dumn(args, env);
    assert!(ok, "dumn {args:?}: {text}");
    text
}

/// The commit file of version `v` of `out`'s scores table.
fn scores_log(out: &Path, v: u64) -> PathBuf {
    out.join("scores/_delta_log").join(format!("{v:020}.json"))
}

/// The one run id of day `date` of the Delta table at `table`.
fn day_run(table: &Location, date: &str) -> String {
    let (_, runs) = delta_day(table, None, date);
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs.into_iter().next().unwrap()
}

#[test]
fn delta_is_the_default_and_a_rerun_replaces_only_its_day_with_the_plain_parquet_rows() {
    let fx = Fixture::new(5);
    let out = fx.path("out-delta");
    let job = default_format_job(&fx, "delta.toml", &out.to_string_lossy());
    let job = job.to_str().unwrap();
    let (today, yesterday) = (fx.date(), day_before(&fx.date()));
    let text = run_ok(&["run", job], &[]);
    assert!(text.contains("Delta table"), "{text}");
    run_ok(&["run", job, "--date", &yesterday], &[]);
    let scores = local(&out.join("scores"));
    let ranking = local(&out.join("ranking"));
    let (before, before_runs) = delta_day(&scores, None, &yesterday);
    assert!(!before.is_empty());
    // Re-running today: one more commit per table, only today's rows replaced.
    let text = run_ok(&["run", job], &[]);
    let summary: serde_json::Value = text
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary: {text}"));
    assert_eq!(summary["format"], "delta", "{text}");
    assert_eq!(summary["scores"]["delta_version"], 2, "{text}");
    assert_eq!(summary["ranking"]["delta_version"], 2, "{text}");
    // The commit added the staged files as they are, renamed for the run, with their row
    // counts, and removed the day's files of the run before.
    let commit = std::fs::read_to_string(scores_log(&out, 2)).unwrap();
    let actions: Vec<serde_json::Value> = commit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let added: Vec<&serde_json::Value> = actions.iter().filter_map(|a| a.get("add")).collect();
    let run = day_run(&scores, &today);
    for add in &added {
        let path = add["path"].as_str().unwrap();
        assert!(
            path.starts_with(&format!("dt={today}/part-{run}-")),
            "{path}"
        );
        assert_eq!(add["partitionValues"]["dt"], today.as_str());
    }
    let counted: u64 = added
        .iter()
        .map(|a| {
            let stats: serde_json::Value =
                serde_json::from_str(a["stats"].as_str().unwrap()).unwrap();
            stats["numRecords"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(counted, summary["scores"]["rows"].as_u64().unwrap());
    // Each file's column ranges and null counts are its own (readers skip files by them);
    // strings and timestamps get none.
    for add in &added {
        let stats: serde_json::Value =
            serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        let batches = runtime().block_on(read_parquet(
            &out.join("scores").join(add["path"].as_str().unwrap()),
        ));
        let b = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        for column in ["user_id", "item_id"] {
            let v: Vec<i64> = i64s(&b, column).into_iter().map(Option::unwrap).collect();
            assert_eq!(
                stats["minValues"][column],
                *v.iter().min().unwrap(),
                "{stats}"
            );
            assert_eq!(
                stats["maxValues"][column],
                *v.iter().max().unwrap(),
                "{stats}"
            );
            assert_eq!(stats["nullCount"][column], 0, "{stats}");
        }
        for column in ["ctr", "p_dislike"] {
            let v: Vec<f64> = f64s(&b, column).into_iter().map(Option::unwrap).collect();
            let (lo, hi) = v
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), x| (l.min(*x), h.max(*x)));
            assert_eq!(stats["minValues"][column].as_f64(), Some(lo), "{stats}");
            assert_eq!(stats["maxValues"][column].as_f64(), Some(hi), "{stats}");
        }
        for column in ["source", "model_version", "scored_at", "run_id"] {
            assert!(
                stats["minValues"].get(column).is_none(),
                "{column}: {stats}"
            );
        }
    }
    assert_eq!(
        added.len() as u64,
        summary["scores"]["files"].as_u64().unwrap()
    );
    let removed = actions.iter().filter(|a| a.get("remove").is_some()).count();
    assert!(removed > 0, "the day's files before were removed: {commit}");
    assert_eq!(delta_day(&scores, None, &yesterday), (before, before_runs));
    let (rows, runs) = delta_day(&scores, None, &today);
    let (ranked, ranking_runs) = delta_day(&ranking, None, &today);
    assert_eq!(runs.len(), 1, "one run's rows: {runs:?}");
    assert_eq!(runs, ranking_runs, "both tables of one run");
    assert_eq!(
        rows.len() as u64,
        summary["scores"]["rows"].as_u64().unwrap()
    );
    // The same job in plain Parquet writes exactly the same rows.
    let plain = fx.job("plain.toml", "");
    run_ok(&["run", plain.to_str().unwrap()], &[]);
    assert_eq!(rows, parquet_day(&fx.day("scores")));
    assert_eq!(ranked, parquet_day(&fx.day("ranking")));
    // And stores `scored_at` as the same type: microseconds (Delta's and Spark's precision).
    let microseconds = DataType::Timestamp(TimeUnit::Microsecond, None);
    assert_eq!(scored_at_type(&fx.day("scores")), microseconds);
    runtime().block_on(async {
        let t = delta::open(&scores).await.unwrap();
        let schema = t.table_provider().await.unwrap().schema();
        assert_eq!(
            schema.field_with_name("scored_at").unwrap().data_type(),
            &microseconds
        );
    });
    // Nothing staged is left.
    let staging = out.join("_staging");
    let left: Vec<_> = files_under(&staging);
    assert!(left.is_empty(), "staged files left: {left:?}");
}

/// The Python interpreter of the project's venv (ci/setup.sh --test-server puts deltalake
/// and pyarrow there).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("DUMN_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "the Delta reader test needs {}: run ci/setup.sh --test-server",
        python.display()
    );
    python
}

/// Runs `script` (Python code) with `args` in the venv's interpreter; its output.
fn python<S: AsRef<std::ffi::OsStr>>(script: &str, args: &[S]) -> std::process::Output {
    std::process::Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap()
}

/// Reads a Delta table with Python's deltalake and prints `user_id,item_id,ctr` (ctr to 6
/// decimals) of each row of day `date`, one per line.
///
/// It ends with `os._exit`: on this machine the interpreter's own shutdown sometimes aborts
/// ("terminate called without an active exception", from a native thread still running at
/// exit) after everything was read and printed.
const PY_READER: &str = r#"
import os, sys, deltalake
path, date = sys.argv[1], sys.argv[2]
opts = {k: v for k, v in (a.split("=", 1) for a in sys.argv[3:])}
t = deltalake.DeltaTable(path, storage_options=opts or None).to_pyarrow_table()
for r in t.to_pylist():
    if r["dt"] == date:
        print(f'{r["user_id"]},{r["item_id"]},{r["ctr"]:.6f}')
print("end")
sys.stdout.flush()
os._exit(0)
"#;

/// Day `date` of a Delta table (scores or ranking) as Python's deltalake reads it: the
/// lines of [`PY_READER`], sorted.
fn python_rows(table: &str, date: &str, storage: &[String]) -> Vec<String> {
    let args: Vec<&str> = [table, date]
        .into_iter()
        .chain(storage.iter().map(String::as_str))
        .collect();
    let out = python(PY_READER, &args);
    assert!(
        out.status.success(),
        "python deltalake: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines.pop().as_deref(),
        Some("end"),
        "the reader read to the end"
    );
    lines.sort();
    lines
}

/// The same lines, from `dumn sql` over the table at `table`.
fn dumn_rows(table: &str, date: &str, env: &[(&str, String)]) -> Vec<String> {
    let text = run_ok(
        &[
            "sql",
            "--table",
            &format!("r={table}"),
            "--format",
            "csv",
            "-c",
            &format!(
                "SELECT user_id, item_id, CAST(ctr AS DOUBLE) AS ctr FROM r WHERE dt = '{date}'"
            ),
        ],
        env,
    );
    let mut lines: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("user_id"))
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            format!("{},{},{:.6}", f[0], f[1], f[2].parse::<f64>().unwrap())
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn dumn_sql_stored_as_deltatable_and_python_deltalake_read_the_same_rows() {
    let (fx, job, out, _) = delta_setup(4, "");
    run_ok(&["run", &job], &[]);
    for table in ["scores", "ranking"] {
        let at = out.join(table);
        let ours = dumn_rows(at.to_str().unwrap(), &fx.date(), &[]);
        assert!(ours.len() > 100, "{table}: {} rows", ours.len());
        assert_eq!(
            python_rows(at.to_str().unwrap(), &fx.date(), &[]),
            ours,
            "{table}"
        );
    }
    let ranking = out.join("ranking");
    let ranking = ranking.to_str().unwrap();
    let ours = dumn_rows(ranking, &fx.date(), &[]);
    // CREATE EXTERNAL TABLE … STORED AS DELTATABLE reads the same table.
    let text = run_ok(
        &[
            "sql",
            "--format",
            "csv",
            "-c",
            &format!(
                "CREATE EXTERNAL TABLE r STORED AS DELTATABLE LOCATION '{ranking}'; \
                 SELECT count(*) AS n FROM r"
            ),
        ],
        &[],
    );
    assert!(
        text.lines().any(|l| l.trim() == ours.len().to_string()),
        "{} rows expected: {text}",
        ours.len()
    );
}

#[test]
fn a_run_killed_between_its_two_commits_leaves_a_pair_that_its_run_ids_match() {
    let (_fx, job, out, date) = delta_setup(4, "");
    let job = job.as_str();
    run_ok(&["run", job], &[]);
    let (scores, ranking) = (local(&out.join("scores")), local(&out.join("ranking")));
    let (first_rows, first_run) = delta_day(&scores, None, &date);
    let (first_ranked, _) = delta_day(&ranking, None, &date);

    // Killed right after the scores' commit: the newest scores name the new run, the
    // ranking still the first; the scores' previous version holds the first run, whole.
    let (code, text) = dumn_exit_code(&["run", job], &[("DUMN_FAILPOINT", "commit-1")]);
    assert_ne!(code, 0, "{text}");
    let (_, newer) = delta_day(&scores, None, &date);
    let (_, ranking_run) = delta_day(&ranking, None, &date);
    assert_ne!(newer, first_run, "the scores were committed");
    assert_eq!(ranking_run, first_run, "the ranking was not");
    let newest = delta::open(&scores).now_or_panic().version().unwrap();
    let first = first_run.iter().next().unwrap();
    let previous = delta::version_of_run(&scores, first).now_or_panic();
    assert_eq!(previous, Some(newest - 1));
    assert_eq!(
        delta_day(&scores, previous, &date),
        (first_rows.clone(), first_run.clone()),
        "the reader's rule: the scores version whose run id the ranking names"
    );

    // Killed after both commits, before the staging folder went: a whole new pair.
    let (code, text) = dumn_exit_code(&["run", job], &[("DUMN_FAILPOINT", "commits")]);
    assert_ne!(code, 0, "{text}");
    let (rows, s_run) = delta_day(&scores, None, &date);
    let (ranked, r_run) = delta_day(&ranking, None, &date);
    assert_eq!(s_run, r_run);
    assert_eq!((rows, ranked), (first_rows.clone(), first_ranked.clone()));
    // It left the run's staging folder (its files were moved into the tables).
    let runs_staged =
        || std::fs::read_dir(out.join("_staging").join(&date)).map_or(0, |d| d.count());
    assert_eq!(runs_staged(), 1, "the kill left staging");

    // The next run commits both again and removes what the killed runs left.
    run_ok(&["run", job], &[]);
    let (rows, s_run) = delta_day(&scores, None, &date);
    let (ranked, r_run) = delta_day(&ranking, None, &date);
    assert_eq!(s_run, r_run);
    assert_eq!((rows, ranked), (first_rows, first_ranked));
    assert!(files_under(&out.join("_staging")).is_empty());
    assert_eq!(runs_staged(), 0);
}

/// Blocks on a future in the tests' runtime and unwraps it.
trait NowOrPanic<T> {
    fn now_or_panic(self) -> T;
}

impl<T, F: std::future::Future<Output = anyhow::Result<T>>> NowOrPanic<T> for F {
    fn now_or_panic(self) -> T {
        runtime().block_on(self).unwrap()
    }
}

#[test]
fn dumn_vacuum_deletes_only_files_that_no_recent_version_reads() {
    let (fx, job, out, _) = delta_setup(3, "");
    let job = job.as_str();
    run_ok(&["run", job], &[]);
    run_ok(&["run", job], &[]);
    let table = out.join("scores");
    let parquet_files = || {
        files_under(&table)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count()
    };
    let (rows, _) = delta_day(&local(&table), None, &fx.date());
    let before = parquet_files();
    let t = table.to_str().unwrap();
    // The first run's files were replaced moments ago: a week's retention keeps them.
    let text = run_ok(&["vacuum", t], &[]);
    assert!(text.contains("deleted 0 file(s)"), "{text}");
    let text = run_ok(&["vacuum", t, "--retain-hours", "0", "--dry-run"], &[]);
    assert!(text.contains("would delete"), "{text}");
    assert_eq!(parquet_files(), before, "a dry run deletes nothing");
    let text = run_ok(&["vacuum", t, "--retain-hours", "0"], &[]);
    let deleted = before - parquet_files();
    assert!(deleted > 0, "{text}");
    assert!(
        text.contains(&format!("deleted {deleted} file(s)")),
        "{text}"
    );
    // The newest version reads as before.
    assert_eq!(delta_day(&local(&table), None, &fx.date()).0, rows);
    // A folder that is not a Delta table is named.
    let (code, text) = dumn_exit_code(&["vacuum", fx.path("data").to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(text.contains("is not a Delta table"), "{text}");
}

#[test]
fn a_job_refuses_a_table_root_written_in_the_other_format() {
    let fx = Fixture::new(2);
    let plain = fx.job("plain.toml", "");
    run_ok(&["run", plain.to_str().unwrap()], &[]);
    let delta_job = fx.job("delta.toml", "format = \"delta\"");
    let (code, text) = dumn_exit_code(&["run", delta_job.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        text.contains("holds plain Parquet days") && text.contains("format = \"parquet\""),
        "{text}"
    );
    let other = fx.job(
        "delta2.toml",
        &format!(
            "format = \"delta\"\nout = \"{}\"",
            fx.path("out2").display()
        ),
    );
    run_ok(&["run", other.to_str().unwrap()], &[]);
    let plain2 = fx.job(
        "plain2.toml",
        &format!("out = \"{}\"", fx.path("out2").display()),
    );
    let (code, text) = dumn_exit_code(&["run", plain2.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(text.contains("is a Delta table"), "{text}");
    // A job file's format must be one of the two.
    let bad = fx.job("bad.toml", "format = \"orc\"");
    let (code, text) = dumn_exit_code(&["run", bad.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(text.contains("orc"), "{text}");
}

#[test]
fn delta_tables_on_s3_match_local_ones_and_runs_of_other_days_commit_side_by_side() {
    let server = S3Server::start(&["dumn"]);
    let env = server.env();
    let fx = Fixture::new(3);
    let s3_job = bucket_job(&fx, &server, "");
    let s3_job = s3_job.as_str();
    let date = fx.date();
    run_ok(&["run", s3_job], &env);
    let local_job = fx.job("local.toml", "format = \"delta\"");
    run_ok(&["run", local_job.to_str().unwrap()], &[]);
    let in_bucket = server.root.path().join("dumn/out/ranking");
    assert!(in_bucket.join("_delta_log").is_dir());
    let ours = dumn_rows("s3://dumn/out/ranking", &date, &env);
    assert_eq!(
        ours,
        dumn_rows(fx.path("out/ranking").to_str().unwrap(), &date, &[])
    );
    // Python's deltalake reads the bucket too.
    let storage: Vec<String> = [
        ("AWS_ACCESS_KEY_ID", env[0].1.clone()),
        ("AWS_SECRET_ACCESS_KEY", env[1].1.clone()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL", server.endpoint.clone()),
        ("AWS_ALLOW_HTTP", "true".to_string()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={v}"))
    .collect();
    assert_eq!(python_rows("s3://dumn/out/ranking", &date, &storage), ours);

    // Three other days started together: each commits (retrying past the others' commits,
    // which touch other days), and every day holds one run's rows.
    let days: Vec<String> = (1..=3)
        .map(|n| {
            let d = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").unwrap();
            (d - chrono::Duration::days(n)).to_string()
        })
        .collect();
    let children: Vec<_> = days
        .iter()
        .map(|d| {
            std::process::Command::new(env!("CARGO_BIN_EXE_dumn"))
                .args(["run", s3_job, "--date", d])
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = run_ok(
        &[
            "sql",
            "--table",
            "s=s3://dumn/out/scores",
            "--format",
            "csv",
            "-c",
            "SELECT dt, count(DISTINCT run_id) AS runs, count(*) AS n FROM s GROUP BY dt \
             ORDER BY dt",
        ],
        &env,
    );
    let per_day: Vec<Vec<String>> = text
        .lines()
        .skip_while(|l| !l.starts_with("dt,"))
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let mut want: Vec<String> = days.clone();
    want.push(date.clone());
    want.sort();
    assert_eq!(
        per_day.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        want,
        "{text}"
    );
    for r in &per_day {
        assert_eq!(r[1], "1", "day {}: rows of one run: {text}", r[0]);
        assert_ne!(r[2], "0", "day {}: {text}", r[0]);
    }
}

/// What a reader of the two Delta tables under `out` gets for `date`: each table's rows of
/// the day, of one run (directly, or, when the run ids differ, through the scores' version
/// that the ranking's run committed: the reader's rule).
fn pair_read(out: &Path, date: &str) -> (Vec<String>, Vec<String>) {
    let (scores, ranking) = (local(&out.join("scores")), local(&out.join("ranking")));
    let (s_rows, s_run) = delta_day(&scores, None, date);
    let (r_rows, r_run) = delta_day(&ranking, None, date);
    assert_eq!(
        s_run.len(),
        1,
        "scores of day {date} from one run: {s_run:?}"
    );
    assert_eq!(
        r_run.len(),
        1,
        "ranking of day {date} from one run: {r_run:?}"
    );
    if s_run == r_run {
        return (s_rows, r_rows);
    }
    let run = r_run.iter().next().unwrap();
    let version = delta::version_of_run(&scores, run).now_or_panic();
    let (older, older_run) = delta_day(&scores, version, date);
    assert_eq!(older_run, r_run, "the scores' version of the ranking's run");
    (older, r_rows)
}

/// Starts `dumn run JOB` with `env` added; its stderr is piped (the caller waits for it).
#[allow(clippy::zombie_processes)]
fn start_run(job: &str, env: &[(&str, String)]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_dumn"))
        .args(["run", job])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `dumn run JOB` with `env` and kills it with SIGKILL after each of `points`
/// (seconds); after each kill `check` is called.
fn kill_at(job: &str, env: &[(&str, String)], points: &[f64], mut check: impl FnMut(f64)) {
    for &at in points {
        let mut child = start_run(job, env);
        std::thread::sleep(std::time::Duration::from_secs_f64(at));
        let _ = child.kill();
        let _ = child.wait();
        check(at);
    }
}

/// The seconds a full run of `job` takes, and eleven points spread over it.
fn kill_points(job: &str, env: &[(&str, String)]) -> Vec<f64> {
    let started = std::time::Instant::now();
    run_ok(&["run", job], env);
    let full = started.elapsed().as_secs_f64();
    (1..=11).map(|i| full * i as f64 / 12.0).collect()
}

#[test]
fn kill_9_at_eleven_points_of_a_local_delta_run_leaves_whole_days_of_one_run() {
    let (_fx, job, out, date) = delta_setup(20, "batch_size = 64");
    let job = job.as_str();
    run_ok(&["run", job], &[]);
    let reference = pair_read(&out, &date);
    assert!(reference.0.len() > 1000);
    let points = kill_points(job, &[]);
    kill_at(job, &[], &points, |at| {
        assert_eq!(pair_read(&out, &date), reference, "killed at {at:.2}s");
    });
    // The next run completes: one run's pair, the reference rows, nothing staged left.
    run_ok(&["run", job], &[]);
    let (scores, ranking) = (local(&out.join("scores")), local(&out.join("ranking")));
    assert_eq!(
        delta_day(&scores, None, &date).1,
        delta_day(&ranking, None, &date).1
    );
    assert_eq!(pair_read(&out, &date), reference);
    assert!(files_under(&out.join("_staging")).is_empty());
}

#[test]
fn kill_9_or_a_stopped_server_during_an_s3_delta_run_leaves_whole_days_of_one_run() {
    let mut server = S3Server::start(&["dumn"]);
    let env = server.env();
    let fx = Fixture::new(20);
    let job = bucket_job(&fx, &server, "batch_size = 64");
    let job = job.as_str();
    let date = fx.date();
    // The bucket's objects are plain files of the server: its tables read as local ones.
    let out = server.root.path().join("dumn/out");
    run_ok(&["run", job], &env);
    let reference = pair_read(&out, &date);
    let points = kill_points(job, &env);
    kill_at(job, &env, &points, |at| {
        assert_eq!(pair_read(&out, &date), reference, "killed at {at:.2}s");
    });
    // Killed right after the first table's commit: the pair still reads as one run.
    let mut failing = env.clone();
    failing.push(("DUMN_FAILPOINT", "commit-1".to_string()));
    let (ok, text) = run_dumn(&["run", job], &failing);
    assert!(!ok && text.contains("aborting"), "{text}");
    assert_eq!(pair_read(&out, &date), reference, "after the first commit");
    // The server stopped at five points of a run: the run fails, the day stays whole, and
    // after a restart a run completes.
    for at in points.iter().step_by(2).take(5) {
        let child = start_run(job, &env);
        std::thread::sleep(std::time::Duration::from_secs_f64(*at));
        server.stop();
        let done = child.wait_with_output().unwrap();
        server.restart();
        assert_eq!(
            pair_read(&out, &date),
            reference,
            "server stopped at {at:.2}s: {}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    // The server stopped just before the first commit (the run paused there): the commit
    // fails, the day is as it was, and after a restart a run completes.
    let (mut child, mut stderr) = paused_run(job, &env, "before-commit-1");
    server.stop();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the commit must fail: {rest}"
    );
    assert!(rest.contains("failed while committing"), "{rest}");
    server.restart();
    assert_eq!(pair_read(&out, &date), reference);
    run_ok(&["run", job], &env);
    assert_eq!(pair_read(&out, &date), reference);
}

/// Starts `dumn run JOB` with `env` and `DUMN_FAILPOINT=pause:POINT`, and returns once the
/// run has paused there (5 seconds), with its stderr to read the rest from. The caller
/// waits for the child.
fn paused_run(
    job: &str,
    env: &[(&str, String)],
    point: &str,
) -> (
    std::process::Child,
    std::io::BufReader<Box<dyn std::io::Read + Send>>,
) {
    let mut env = env.to_vec();
    env.push(("DUMN_FAILPOINT", format!("pause:{point}")));
    let (child, stderr, _) = start_dumn_until(
        &["run", job],
        &env,
        Watch::Stderr,
        |line| line.contains("paused"),
        &format!("the run ended before {point}"),
    );
    (child, stderr)
}

/// Two runs of one day started together, after a first run: one commits, the other
/// either fails with exit code 3 naming the first, or (when the first had finished)
/// replaces the day; the day holds one run's rows, exactly the first run's. The loser
/// usually finds the lease held; a lease taken over as expired could also let it lose at
/// the Delta commit instead, which must also be exit code 3 naming the winner.
fn two_runs_of_one_day(job: &str, env: &[(&str, String)], out: &Path, date: &str) {
    run_ok(&["run", job], env);
    let reference = pair_read(out, date);
    let (a, b) = run_twice_together(&["run", job], env);
    let mut runs = [
        (a.status.code().unwrap(), &a),
        (b.status.code().unwrap(), &b),
    ];
    runs.sort_by_key(|r| r.0);
    let codes = [runs[0].0, runs[1].0];
    assert!(codes == [0, 0] || codes == [0, 3], "{codes:?}: {a:?} {b:?}");
    if codes[1] == 3 {
        let text = String::from_utf8_lossy(&runs[1].1.stderr);
        assert!(
            text.contains("dumn run of") || text.contains("another writer (run "),
            "the loser names the other run: {text}"
        );
    }
    assert_eq!(pair_read(out, date), reference);
}

#[test]
fn two_delta_runs_of_one_day_started_together_leave_one_whole_day_locally_and_on_s3() {
    let fx = Fixture::new(3);
    let job = fx.job("job.toml", "format = \"delta\"");
    two_runs_of_one_day(job.to_str().unwrap(), &[], &fx.path("out"), &fx.date());
    let (rows, _) = delta_day(&local(&fx.path("out/scores")), None, &fx.date());
    assert_eq!(rows.len(), 120 * 3, "every candidate once");

    let server = S3Server::start(&["dumn"]);
    let s3_job = bucket_job(&fx, &server, "");
    let out = server.root.path().join("dumn/out");
    two_runs_of_one_day(&s3_job, &server.env(), &out, &fx.date());
    assert_eq!(
        delta_day(&local(&out.join("scores")), None, &fx.date()).0,
        rows
    );
}

#[test]
fn an_input_table_may_be_a_delta_table() {
    let fx = Fixture::new(3);
    // The candidates, rewritten as a Delta table by Python's deltalake.
    let delta_candidates = fx.path("candidates-delta");
    // (`os._exit`: see PY_READER.)
    let script = "import os, sys, deltalake, pyarrow.dataset as ds\n\
                  t = ds.dataset(sys.argv[1], format='parquet').to_table()\n\
                  deltalake.write_deltalake(sys.argv[2], t)\n\
                  os._exit(0)";
    let done = python(
        script,
        &[fx.path("data/candidates"), delta_candidates.clone()],
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(delta_candidates.join("_delta_log").is_dir());
    let plain = fx.job("plain.toml", "");
    run_ok(&["run", plain.to_str().unwrap()], &[]);
    let from_delta = fx.job(
        "from-delta.toml",
        &format!(
            "out = \"{}\"\n[tables]\ncandidates = \"{}\"",
            fx.path("out2").display(),
            delta_candidates.display()
        ),
    );
    run_ok(&["run", from_delta.to_str().unwrap()], &[]);
    let day = |out: &str| fx.path(&format!("{out}/scores/dt={}", fx.date()));
    assert_eq!(parquet_day(&day("out2")), parquet_day(&day("out")));
}

#[test]
fn a_commit_beaten_by_another_writer_of_the_day_is_exit_code_3_and_leaves_that_writers_day() {
    let (_fx, job, out, date) = delta_setup(3, "");
    run_ok(&["run", &job], &[]);
    let reference = pair_read(&out, &date);
    // While the run holds a snapshot of `scores`, another tool (Python's deltalake)
    // rewrites the same day: the run's commit must lose, as a conflict that says so.
    let (mut child, mut stderr) = paused_run(&job, &[], "snapshot");
    let writer = "import os, sys, deltalake, pyarrow.compute as pc\n\
                  path, date = sys.argv[1], sys.argv[2]\n\
                  t = deltalake.DeltaTable(path).to_pyarrow_table()\n\
                  t = t.filter(pc.equal(t['dt'], date))\n\
                  deltalake.write_deltalake(path, t, mode='overwrite', predicate=f\"dt = '{date}'\")\n\
                  print('end'); sys.stdout.flush(); os._exit(0)";
    let wrote = python(writer, &[out.join("scores"), PathBuf::from(&date)]);
    assert!(
        String::from_utf8_lossy(&wrote.stdout).contains("end"),
        "python deltalake: {}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3), "{rest}");
    assert!(
        rest.contains("another writer (not a dumn run) committed day"),
        "the message says who won: {rest}"
    );
    // The day is the other writer's (the same rows, written back), whole, in both tables.
    assert_eq!(pair_read(&out, &date), reference);
    let versions = std::fs::read_dir(out.join("scores/_delta_log"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(versions, 2, "the first run's commit and the other writer's");
}

/// A day whose rows have other columns than the table's is refused before anything is
/// committed: here a team's ranking SQL with columns of its own, against the ranking
/// table of the embedded one. (Committing the scores first would leave a pair of two runs.)
#[test]
fn a_day_with_other_columns_than_its_table_is_refused_and_commits_nothing() {
    let (fx, job, out, date) = delta_setup(3, "");
    run_ok(&["run", &job], &[]);
    let before = pair_read(&out, &date);
    let sql = fx.path("counts.sql");
    std::fs::write(
        &sql,
        "CREATE OR REPLACE VIEW ranking AS SELECT user_id, count(*) AS n FROM scores GROUP BY user_id",
    )
    .unwrap();
    let other = fx.job(
        "counts.toml",
        &format!("format = \"delta\"\nranking_sql = \"{}\"", sql.display()),
    );
    let (code, text) = dumn_exit_code(&["run", other.to_str().unwrap()], &[]);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("ranking") && text.contains("has the columns") && text.contains("\"n\""),
        "the error names the table and both column lists: {text}"
    );
    assert_eq!(pair_read(&out, &date), before, "nothing was committed");
    for table in ["scores", "ranking"] {
        let version = delta::open(&local(&out.join(table)))
            .now_or_panic()
            .version();
        assert_eq!(version, Some(0), "{table}");
    }
    assert!(files_under(&out.join("_staging")).is_empty());
}
