//! Helpers for the data-plane tests: a runtime, reading tables back, and a brute-force
//! reference of the sequences that the SQL must reproduce.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

pub const KINDS: [&str; 4] = ["click", "unclick", "like", "dislike"];

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The folder of the shared datasets: $DUMN_SHARED_DIR, ../shared beside the repository,
/// or /work/shared.
pub fn shared_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("DUMN_SHARED_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")),
        Some(PathBuf::from("/work/shared")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("datasets").is_dir())
        .expect("the shared datasets: set DUMN_SHARED_DIR to the folder holding datasets/")
}

pub async fn sql(ctx: &SessionContext, q: &str) -> Vec<RecordBatch> {
    ctx.sql(q).await.unwrap().collect().await.unwrap()
}

/// Reads a Parquet folder or file into batches.
pub async fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    ctx.read_parquet(path.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

pub fn i64s(b: &RecordBatch, col: &str) -> Vec<Option<i64>> {
    let a = cast(b.column_by_name(col).unwrap(), &DataType::Int64).unwrap();
    let a = a.as_primitive::<Int64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

pub fn f64s(b: &RecordBatch, col: &str) -> Vec<Option<f64>> {
    let a = cast(b.column_by_name(col).unwrap(), &DataType::Float64).unwrap();
    let a = a.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

/// A timestamp column as microseconds since the epoch.
pub fn micros(b: &RecordBatch, col: &str) -> Vec<Option<i64>> {
    let a = cast(
        b.column_by_name(col).unwrap(),
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )
    .unwrap();
    let a = cast(&a, &DataType::Int64).unwrap();
    let a = a.as_primitive::<Int64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

pub fn bools(b: &RecordBatch, col: &str) -> Vec<Option<bool>> {
    let a = b.column_by_name(col).unwrap().as_boolean();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

pub fn strings(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = cast(b.column_by_name(col).unwrap(), &DataType::Utf8).unwrap();
    let a = a.as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

/// A list-of-integers column; a NULL list is returned as `None`.
pub fn lists(b: &RecordBatch, col: &str) -> Vec<Option<Vec<i64>>> {
    let a = b.column_by_name(col).unwrap();
    let a = cast(a, &DataType::new_list(DataType::Int64, true)).unwrap();
    let a = a.as_list::<i32>();
    (0..a.len())
        .map(|i| {
            a.is_valid(i).then(|| {
                let v = a.value(i);
                let v = v.as_primitive::<Int64Type>();
                v.iter()
                    .map(|x| x.expect("no NULL inside a sequence"))
                    .collect()
            })
        })
        .collect()
}

/// One feedback event of the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    pub item: i64,
    pub ts: i64,
    pub kind: usize,
}

/// Every user's feedback events, built in Rust from the raw tables with the mapping of
/// sql/feedback.sql (deduplicated).
#[derive(Default)]
pub struct Reference {
    pub events: HashMap<i64, Vec<Event>>,
}

impl Reference {
    pub async fn load(data: &Path) -> Self {
        let mut seen = std::collections::HashSet::new();
        let mut events: HashMap<i64, Vec<Event>> = HashMap::new();
        let mut add = |u: Option<i64>, i: Option<i64>, t: Option<i64>, kind: Option<usize>| {
            if let (Some(u), Some(i), Some(t), Some(kind)) = (u, i, t, kind) {
                if seen.insert((u, i, t, kind)) {
                    events.entry(u).or_default().push(Event {
                        item: i,
                        ts: t,
                        kind,
                    });
                }
            }
        };
        // An impression logged several times counts once, as a click if any copy is one.
        let mut impressions: HashMap<(i64, i64, i64), bool> = HashMap::new();
        for b in read_parquet(&data.join("impressions")).await {
            let (u, i, t, c) = (
                i64s(&b, "user_id"),
                i64s(&b, "item_id"),
                micros(&b, "ts"),
                bools(&b, "clicked"),
            );
            for r in 0..b.num_rows() {
                if let (Some(u), Some(i), Some(t), Some(c)) = (u[r], i[r], t[r], c[r]) {
                    *impressions.entry((u, i, t)).or_default() |= c;
                }
            }
        }
        for ((u, i, t), c) in impressions {
            add(Some(u), Some(i), Some(t), Some(if c { 0 } else { 1 }));
        }
        for b in read_parquet(&data.join("actions")).await {
            let (u, i, t, a) = (
                i64s(&b, "user_id"),
                i64s(&b, "item_id"),
                micros(&b, "ts"),
                strings(&b, "action"),
            );
            for r in 0..b.num_rows() {
                let kind = a[r]
                    .as_deref()
                    .and_then(|a| match a.trim().to_lowercase().as_str() {
                        "like" | "cart" | "fav" | "buy" => Some(2),
                        "dislike" | "hate" => Some(3),
                        _ => None,
                    });
                add(u[r], i[r], t[r], kind);
            }
        }
        Self { events }
    }

    /// The four sequences of `user` from events strictly before `before`, newest first
    /// (ties: larger item id first), at most `t` each.
    pub fn sequences(&self, user: i64, before: i64, t: usize) -> [Vec<i64>; 4] {
        std::array::from_fn(|kind| self.newest(user, before, t, |e| e.kind == kind))
    }

    /// Every kind merged by time (the `feedback_seq` column), with the same rules.
    pub fn merged(&self, user: i64, before: i64, t: usize) -> Vec<i64> {
        self.newest(user, before, t, |_| true)
    }

    fn newest(&self, user: i64, before: i64, t: usize, keep: impl Fn(&Event) -> bool) -> Vec<i64> {
        let mut v: Vec<(i64, i64)> = self
            .events
            .get(&user)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .filter(|e| e.ts < before && keep(e))
            .map(|e| (e.ts, e.item))
            .collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().take(t).map(|(_, item)| item).collect()
    }

    /// Whether `user` disliked `item` at or after `at`.
    pub fn disliked(&self, user: i64, item: i64, at: i64) -> bool {
        self.events.get(&user).is_some_and(|v| {
            v.iter()
                .any(|e| e.kind == 3 && e.item == item && e.ts >= at)
        })
    }
}

/// Registers `inputs`, builds `output` with the embedded SQL and writes it to `out`:
/// the write summary and the pre-flight warnings.
pub async fn build_output(
    inputs: &dumn::data::contract::Inputs,
    output: dumn::data::pipeline::ModelInput,
    params: &dumn::data::script::Params,
    out: &Path,
) -> anyhow::Result<(dumn::io::parquet::WriteSummary, Vec<String>)> {
    let ctx = dumn::engine::session::context(&dumn::engine::session::EngineOptions::default())?;
    let (df, checks) = dumn::data::pipeline::prepare(
        &ctx,
        inputs,
        output,
        None,
        params,
        &dumn::data::pipeline::Scratch::Temporary,
    )
    .await?;
    let loc = dumn::io::Location::Local(out.to_path_buf());
    let summary = dumn::io::parquet::write_parquet(df, &loc, serde_json::json!({}), |_| {}).await?;
    Ok((summary, checks.warnings))
}

/// Inputs read from a `dumn gen`-style folder.
pub fn local_inputs(data: &Path) -> dumn::data::contract::Inputs {
    dumn::data::contract::Inputs {
        data: Some(dumn::io::Location::Local(data.to_path_buf())),
        ..Default::default()
    }
}

/// Runs the dumn binary (in `cwd` when given) with extra environment variables.
pub fn dumn_output(cwd: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dumn"));
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn stdout_and_stderr(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the dumn binary with extra environment variables: (success, stdout + stderr).
pub fn run_dumn(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = dumn_output(None, args, &env);
    (out.status.success(), stdout_and_stderr(&out))
}

/// `dumn ARGS` run in the folder `cwd` with `env` added: success, stdout, stderr.
pub fn run_dumn_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = dumn_output(Some(cwd), args, env);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dumn ARGS` with `env` added: the exit code and stdout + stderr.
pub fn dumn_exit_code(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = dumn_output(None, args, env);
    (out.status.code().unwrap_or(-1), stdout_and_stderr(&out))
}

/// The version folder that `alias` of the model registry `registry` names (`dumn train
/// --out REGISTRY` writes `REGISTRY/<version>/` and the alias `REGISTRY/latest`).
pub fn aliased(registry: &Path, alias: &str) -> PathBuf {
    let path = registry.join(alias);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let alias: serde_json::Value = serde_json::from_slice(&text).unwrap();
    registry.join(alias["version"].as_str().unwrap())
}

/// What a day folder published by `dumn run` must hold: the files its `_SUCCESS` marker
/// lists, and the marker; sorted.
pub fn marker_listing(marker: &serde_json::Value) -> Vec<String> {
    let mut listed: Vec<String> = marker["files"]
        .as_array()
        .expect("a marker lists its files")
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    listed.push("_SUCCESS".into());
    listed.sort();
    listed
}

/// Copies the folder `from` into `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// Every file under the folder `dir` (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Starts `dumn ARGS` twice at once (with `env` added) and waits for both.
pub fn run_twice_together(args: &[&str], env: &[(&str, String)]) -> (Output, Output) {
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_dumn"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap()
    };
    std::thread::scope(|s| {
        let a = s.spawn(start);
        let b = s.spawn(start);
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// Which output of a process [`start_dumn_until`] watches.
pub enum Watch {
    Stdout,
    Stderr,
}

/// Starts `dumn ARGS` with `env` added (both outputs piped) and reads the `watch`ed one line
/// by line until a line for which `until` holds. Returns the process, the rest of that
/// output, and the lines read; panics with `ended_before` and them when the process ends
/// first (after waiting for it). The caller waits for the process.
#[allow(clippy::zombie_processes)]
pub fn start_dumn_until(
    args: &[&str],
    env: &[(&str, String)],
    watch: Watch,
    until: impl Fn(&str) -> bool,
    ended_before: &str,
) -> (
    std::process::Child,
    std::io::BufReader<Box<dyn std::io::Read + Send>>,
    String,
) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dumn"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stream: Box<dyn std::io::Read + Send> = match watch {
        Watch::Stdout => Box::new(child.stdout.take().unwrap()),
        Watch::Stderr => Box::new(child.stderr.take().unwrap()),
    };
    let mut reader = std::io::BufReader::new(stream);
    let mut said = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        said.push_str(&line);
        if n > 0 && until(&line) {
            return (child, reader, said);
        }
        if n == 0 {
            let status = child.wait().unwrap();
            panic!("{ended_before} ({status}): {said}");
        }
    }
}
