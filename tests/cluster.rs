//! A Ballista cluster of dumn processes on 127.0.0.1 (one scheduler, two executors)
//! scores a job exactly as one process does, with local files and with every location in
//! a bucket of a real S3-compatible server.

use std::collections::HashMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::data::*;
use crate::common::s3::S3Server;
use crate::common::scoring::*;
use dumn::model::artifact;

/// One cluster at a time: the two tests' six processes at once would share two cores.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The processes of a local cluster, killed when dropped; each one's output in a log file.
struct Cluster {
    url: String,
    children: Vec<Child>,
    logs: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Cluster {
    /// A scheduler and `executors` executors serving `model` (a local path or s3://), with
    /// `env`, each executor running two tasks at a time; returns once every executor has
    /// registered.
    fn start(dir: &Path, model: &str, executors: usize, env: &[(&str, String)]) -> Cluster {
        let port = free_port();
        let mut cluster = Cluster {
            url: format!("127.0.0.1:{port}"),
            children: Vec::new(),
            logs: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        let bind = format!("127.0.0.1:{port}");
        cluster.spawn(
            dir,
            "scheduler",
            &["scheduler", "--model", model, "--bind", &bind],
        );
        for i in 0..executors {
            let work = dir.join(format!("executor-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            let flight = format!("127.0.0.1:{}", free_port());
            let grpc = free_port().to_string();
            cluster.spawn(
                dir,
                &format!("executor-{i}"),
                &[
                    "executor",
                    "--model",
                    model,
                    "--scheduler",
                    &bind,
                    "--bind",
                    &flight,
                    "--grpc-port",
                    &grpc,
                    "--concurrent-tasks",
                    "2",
                    "--device",
                    "cpu",
                    "--work-dir",
                    work.to_str().unwrap(),
                ],
            );
        }
        let started = Instant::now();
        while !(1..=executors).all(|i| cluster.log(i).contains("Executor registration succeed")) {
            for (i, c) in cluster.children.iter_mut().enumerate() {
                if let Some(status) = c.try_wait().unwrap() {
                    panic!(
                        "cluster process {i} exited ({status}):\n{}",
                        std::fs::read_to_string(&cluster.logs[i]).unwrap()
                    );
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the executors did not register within 2 minutes:\n{}",
                cluster.all_logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        cluster
    }

    fn spawn(&mut self, dir: &Path, name: &str, args: &[&str]) {
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dumn"))
            .args(args)
            .env("DUMN_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
        self.logs.push(log);
    }

    /// Process `i`'s output so far (0: the scheduler).
    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    fn all_logs(&self) -> String {
        (0..self.logs.len())
            .map(|i| format!("--- {}\n{}", self.logs[i].display(), self.log(i)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// (user_id, item_id, ctr, p_dislike) of every row of a score table, sorted (a user may
/// have the same item twice among its candidates).
fn scores(dir: &Path) -> Vec<(i64, i64, f64, f64)> {
    let mut out = Vec::new();
    for b in runtime().block_on(read_parquet(dir)) {
        let (u, i) = (i64s(&b, "user_id"), i64s(&b, "item_id"));
        let (c, d) = (f64s(&b, "ctr"), f64s(&b, "p_dislike"));
        for r in 0..b.num_rows() {
            out.push((u[r].unwrap(), i[r].unwrap(), c[r].unwrap(), d[r].unwrap()));
        }
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

/// (user_id, rank) -> item_id of a ranking table.
fn ranking(dir: &Path) -> HashMap<(i64, i64), i64> {
    let mut out = HashMap::new();
    for b in runtime().block_on(read_parquet(dir)) {
        let (u, r, i) = (i64s(&b, "user_id"), i64s(&b, "rank"), i64s(&b, "item_id"));
        for k in 0..b.num_rows() {
            out.insert((u[k].unwrap(), r[k].unwrap()), i[k].unwrap());
        }
    }
    out
}

#[test]
fn a_local_cluster_scores_the_demo_job_like_one_process() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new(20);
    // The demo job's settings (jobs/demo.toml), one output root per run.
    let settings = "batch_size = 2048\ntop_k = 20\ndislike_threshold = 0.5";
    let single = fx.job(
        "single.toml",
        &format!("out = \"{}\"\n{settings}", fx.path("out-single").display()),
    );
    let clustered = fx.job(
        "cluster.toml",
        &format!("out = \"{}\"\n{settings}", fx.path("out-cluster").display()),
    );
    let (ok, text) = run_dumn(&["run", single.to_str().unwrap()], &[]);
    assert!(ok, "single-process run failed:\n{text}");

    let cluster = Cluster::start(fx.dir.path(), fx.path("model").to_str().unwrap(), 2, &[]);
    let (ok, text) = run_dumn(
        &[
            "run",
            clustered.to_str().unwrap(),
            "--cluster",
            &cluster.url,
        ],
        &[],
    );
    assert!(
        ok,
        "run on the cluster failed:\n{text}\n{}",
        cluster.all_logs()
    );
    assert!(text.contains("on the cluster at"), "{text}");

    // Both executors ran tasks of the job.
    for i in 1..=2 {
        assert!(
            cluster.log(i).contains("Execute task"),
            "executor {i} ran no task:\n{}",
            cluster.all_logs()
        );
    }

    // The same rows, the same scores (within 1e-6), the same ranking.
    let day = format!("dt={}", fx.date());
    let a = scores(&fx.path(&format!("out-single/scores/{day}")));
    let b = scores(&fx.path(&format!("out-cluster/scores/{day}")));
    assert_eq!(a.len(), fx.gen.users * 20, "one score per candidate");
    assert_eq!(a.len(), b.len());
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.0, x.1), (y.0, y.1), "the same candidates");
        worst = worst.max((x.2 - y.2).abs()).max((x.3 - y.3).abs());
    }
    assert!(worst <= 1e-6, "scores differ by up to {worst}");
    assert_eq!(
        ranking(&fx.path(&format!("out-single/ranking/{day}"))),
        ranking(&fx.path(&format!("out-cluster/ranking/{day}")))
    );
    // The ordered candidates the executors read are gone.
    assert_eq!(
        file_names(&fx.path("out-cluster/_scratch")),
        Vec::<String>::new()
    );

    // dumn sql sends its statements to the cluster too.
    let scores_dir = fx.path(&format!("out-cluster/scores/{day}"));
    let (ok, text) = run_dumn(
        &[
            "sql",
            "--cluster",
            &cluster.url,
            "--model",
            fx.path("model").to_str().unwrap(),
            "--table",
            &format!("s={}", scores_dir.display()),
            "-c",
            "SELECT count(*) AS n, dumn_model_version() AS v FROM s",
        ],
        &[],
    );
    assert!(ok, "{text}");
    let version = artifact::read_manifest(&fx.path("model"))
        .unwrap()
        .model_version;
    assert!(text.contains(&(fx.gen.users * 20).to_string()), "{text}");
    assert!(text.contains(&version), "{text}");

    // The same job on the cluster in the default format, Delta: the commits run in the
    // client, and the day holds every candidate of one run.
    let delta_out = fx.path("out-cluster-delta");
    let (ok, text) = run_dumn(
        &[
            "run",
            clustered.to_str().unwrap(),
            "--cluster",
            &cluster.url,
            "--set",
            "format=delta",
            "--set",
            &format!("out={}", delta_out.display()),
        ],
        &[],
    );
    assert!(ok, "{text}\n{}", cluster.all_logs());
    let (ok, text) = run_dumn(
        &[
            "sql",
            "--table",
            &format!("s={}", delta_out.join("scores").display()),
            "-c",
            &format!(
                "SELECT count(*) AS n, count(DISTINCT run_id) AS runs FROM s WHERE dt = '{}'",
                fx.date()
            ),
        ],
        &[],
    );
    assert!(ok, "{text}");
    let row = format!("| {} | 1    |", fx.gen.users * 20);
    assert!(text.contains(&row), "{row} expected: {text}");

    // A ranking with no eligible candidate (every p_dislike above a threshold of 0): the
    // job ends, with an empty ranking. (Ballista's adaptive planner, which dumn turns off,
    // planned stage after stage of such a job and never ended it; a run past the deadline
    // is that hang.)
    let empty_out = fx.path("out-cluster-empty");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dumn"))
        .args([
            "run",
            clustered.to_str().unwrap(),
            "--cluster",
            &cluster.url,
            "--set",
            "dislike_threshold=0",
            "--set",
            &format!("out={}", empty_out.display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "a run with an empty ranking did not end:\n{}",
                cluster.all_logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(status.success(), "{}", cluster.all_logs());
    let ranked = ranking(&empty_out.join(format!("ranking/{day}")));
    assert!(ranked.is_empty(), "{ranked:?}");
    assert_eq!(
        scores(&empty_out.join(format!("scores/{day}"))).len(),
        fx.gen.users * 20
    );

    // A client whose model differs from the cluster's is refused before any work.
    let other = fx.path("other-model");
    artifact::save(
        &small_model(gen_schema(), 8),
        &other,
        None,
        Default::default(),
    )
    .unwrap();
    let (ok, text) = run_dumn(
        &[
            "sql",
            "--cluster",
            &cluster.url,
            "--model",
            other.to_str().unwrap(),
            "-c",
            "SELECT 1",
        ],
        &[],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("serves model") && text.contains(&version),
        "{text}"
    );
}

#[test]
fn a_cluster_reads_its_model_and_data_from_s3_and_writes_there() {
    let _one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    let fx = Fixture::new(10);
    let server = S3Server::start(&["dumn"]);
    let env = server.env();
    // The raw logs and the model, as objects of the bucket (s3s-fs keeps objects as files).
    copy_tree(&fx.path("data"), &server.root.path().join("dumn/raw"));
    copy_tree(&fx.path("model"), &server.root.path().join("dumn/model"));
    let local = fx.job("local.toml", "");
    let remote = fx.job(
        "s3.toml",
        "data = \"s3://dumn/raw\"\nmodel = \"s3://dumn/model\"\nout = \"s3://dumn/out\"",
    );
    let (ok, text) = run_dumn(&["run", local.to_str().unwrap()], &[]);
    assert!(ok, "{text}");

    // Every process loads the model from the bucket itself.
    let cluster = Cluster::start(fx.dir.path(), "s3://dumn/model", 2, &env);
    let (ok, text) = run_dumn(
        &["run", remote.to_str().unwrap(), "--cluster", &cluster.url],
        &env,
    );
    assert!(ok, "{text}\n{}", cluster.all_logs());

    let day = format!("dt={}", fx.date());
    let a = scores(&fx.day("scores"));
    let b = scores(&server.root.path().join(format!("dumn/out/scores/{day}")));
    assert_eq!(a.len(), fx.gen.users * 10);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.0, x.1), (y.0, y.1), "the same candidates");
        assert!(
            (x.2 - y.2).abs() <= 1e-6 && (x.3 - y.3).abs() <= 1e-6,
            "{x:?} vs {y:?}"
        );
    }
    assert!(server
        .root
        .path()
        .join(format!("dumn/out/ranking/{day}/_SUCCESS"))
        .is_file());
    // The scratch objects the executors read are gone (s3s-fs may keep empty folders).
    let scratch = server.root.path().join("dumn/out/_scratch");
    let mut left = Vec::new();
    if scratch.is_dir() {
        let mut stack = vec![scratch];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    left.push(p);
                }
            }
        }
    }
    assert!(left.is_empty(), "scratch objects left: {left:?}");
}
