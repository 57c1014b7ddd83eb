//! Raw logs in an s3:// bucket on a real S3-compatible server give the same sequences as
//! the same logs in a local folder; outputs written to s3:// are complete and marked.

use crate::common;

use std::path::Path;

use crate::common::data::*;
use crate::common::s3::S3Server;

/// Runs the dumn binary with `env`, and panics with its output if it fails.
fn dumn(args: &[&str], env: &[(&'static str, String)]) -> String {
    let (ok, text) = run_dumn(args, env);
    assert!(ok, "dumn {args:?} failed:\n{text}");
    text
}

/// Every row of a Parquet table, rendered and sorted, so two tables compare as multisets.
fn rows(dir: &Path) -> Vec<String> {
    rows_without(dir, &[])
}

/// [`rows`], without the columns in `skip`.
fn rows_without(dir: &Path, skip: &[&str]) -> Vec<String> {
    let batches: Vec<_> = runtime()
        .block_on(read_parquet(dir))
        .into_iter()
        .map(|b| {
            let keep: Vec<usize> = (0..b.num_columns())
                .filter(|&i| !skip.contains(&b.schema().field(i).name().as_str()))
                .collect();
            b.project(&keep).unwrap()
        })
        .collect();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("| "))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn s3_logs_give_the_same_sequences_as_local_files() {
    let server = S3Server::start(&["dumn"]);
    let env = server.env();
    let local = tempfile::tempdir().unwrap();
    let l = |p: &str| local.path().join(p).to_string_lossy().into_owned();
    let gen = [
        "--users",
        "150",
        "--impressions-per-user",
        "30",
        "--candidates-per-user",
        "6",
        "--seed",
        "5",
    ];

    dumn(&[&["gen", "s3://dumn/raw"][..], &gen].concat(), &env);
    dumn(&[&["gen", &l("raw")][..], &gen].concat(), &[]);
    assert!(
        server.root.path().join("dumn/raw/impressions").is_dir(),
        "objects are in the bucket"
    );

    for output in ["training", "scoring"] {
        let s3_out = format!("s3://dumn/out/{output}");
        let text = dumn(
            &[
                "sequences",
                output,
                "--data",
                "s3://dumn/raw",
                "--seq-len",
                "8",
                "--out",
                &s3_out,
            ],
            &env,
        );
        assert!(text.contains("wrote"), "{text}");
        dumn(
            &[
                "sequences",
                output,
                "--data",
                &l("raw"),
                "--seq-len",
                "8",
                "--out",
                &l(output),
            ],
            &[],
        );
        let in_bucket = server.root.path().join("dumn/out").join(output);
        assert!(
            in_bucket.join("_SUCCESS").is_file(),
            "the marker is written"
        );
        let (a, b) = (rows(&in_bucket), rows(&local.path().join(output)));
        assert!(a.len() > 500, "{output}: {} rows", a.len());
        assert_eq!(a, b, "{output}: s3 and local outputs differ");
        // No object is left under a staging prefix (s3s-fs may keep the empty folder).
        let staging: Vec<_> = std::fs::read_dir(server.root.path().join("dumn/out"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("staging"))
            .flat_map(|p| files_under(&p))
            .collect();
        assert!(staging.is_empty(), "staging objects left: {staging:?}");
    }

    // A model trained from the bucket's logs is written into the bucket.
    let text = dumn(
        &[
            "train",
            "--data",
            "s3://dumn/raw",
            "--out",
            "s3://dumn/models/m",
            "--epochs",
            "1",
            "--seq-len",
            "8",
            "--device",
            "cpu",
        ],
        &env,
    );
    assert!(text.contains("saved model"), "{text}");
    let summary = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("model_version").is_some())
        .unwrap_or_else(|| panic!("no summary line: {text}"));
    let version = summary["model_version"].as_str().unwrap().to_string();
    // A version folder of the registry s3://dumn/models/m, and its `latest` alias.
    let alias: serde_json::Value = serde_json::from_slice(
        &std::fs::read(server.root.path().join("dumn/models/m/latest")).unwrap(),
    )
    .unwrap();
    assert_eq!(alias["version"], version.as_str());
    let model = server.root.path().join("dumn/models/m").join(&version);
    for f in [
        "manifest.json",
        "weights.safetensors",
        "report.json",
        "learning_curve.svg",
        "_SUCCESS",
    ] {
        assert!(model.join(f).is_file(), "{f} missing from the bucket");
    }

    // The nightly job with its inputs, its model and its outputs in the bucket scores the
    // same as with local copies of them.
    let local_model = local.path().join("model");
    std::fs::create_dir_all(&local_model).unwrap();
    for f in ["manifest.json", "weights.safetensors"] {
        std::fs::copy(model.join(f), local_model.join(f)).unwrap();
    }
    let job = |name: &str, data: &str, model: &str, out: &str| {
        let p = local.path().join(name);
        std::fs::write(
            &p,
            format!(
                "data = \"{data}\"\nmodel = \"{model}\"\nout = \"{out}\"\n\
                 date = \"2026-11-15\"\ndevice = \"cpu\"\ntop_k = 3\nformat = \"parquet\"\n"
            ),
        )
        .unwrap();
        p.to_string_lossy().into_owned()
    };
    let s3_job = job(
        "s3.toml",
        "s3://dumn/raw",
        "s3://dumn/models/m",
        "s3://dumn/nightly",
    );
    let text = dumn(&["run", &s3_job], &env);
    assert!(text.contains("wrote"), "{text}");
    let local_job = job("local.toml", &l("raw"), &l("model"), &l("nightly"));
    dumn(&["run", &local_job], &[]);
    for table in ["scores", "ranking"] {
        let day = format!("{table}/dt=2026-11-15");
        let in_bucket = server.root.path().join("dumn/nightly").join(&day);
        assert!(in_bucket.join("_SUCCESS").is_file(), "{table}: marker");
        let (a, b) = (
            rows_without(&in_bucket, &["scored_at"]),
            rows_without(&local.path().join("nightly").join(&day), &["scored_at"]),
        );
        assert!(a.len() > 100, "{table}: {} rows", a.len());
        assert_eq!(a, b, "{table}: s3 and local runs differ");
    }
    // `dumn sql` reads the bucket's tables and scores with the bucket's model.
    let text = dumn(
        &[
            "sql",
            "--model",
            "s3://dumn/models/m",
            "--table",
            "r=s3://dumn/nightly/ranking/dt=2026-11-15",
            "-c",
            "SELECT count(*) AS n, max(rank) AS k FROM r",
        ],
        &env,
    );
    assert!(text.contains("| 3 "), "top 3 per user: {text}");
    // `models`, `inspect` and `eval` take the bucket's registry too.
    let text = dumn(&["models", "list", "s3://dumn/models/m"], &env);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&version) && l.contains("latest")),
        "{text}"
    );
    let text = dumn(&["inspect", "s3://dumn/models/m@latest"], &env);
    assert!(
        text.contains(&format!("\"model_version\": \"{version}\"")),
        "{text}"
    );
    let text = dumn(
        &[
            "eval",
            &format!("s3://dumn/models/m@{version}"),
            "--data",
            "s3://dumn/raw",
            "--device",
            "cpu",
        ],
        &env,
    );
    assert!(text.contains("AUC"), "{text}");
}

/// Whether any object of a published day exists in the server's files.
fn day_published(server: &S3Server, table: &str) -> bool {
    server
        .root
        .path()
        .join("dumn/nightly")
        .join(table)
        .join("dt=2026-11-07/_SUCCESS")
        .exists()
}

#[test]
fn s3_faults_fail_clearly_before_work_or_without_a_partial_day() {
    let mut server = S3Server::start(&["dumn"]);
    let env = server.env();
    let fx = common::scoring::Fixture::new(40);
    let job = |name: &str, out: &str| {
        let p = fx.path(name);
        std::fs::write(
            &p,
            format!(
                "data = \"s3://dumn/raw\"\nmodel = \"{}\"\nout = \"{out}\"\n\
                 date = \"2026-11-07\"\ndevice = \"cpu\"\nbatch_size = 16\nformat = \"parquet\"\n",
                fx.path("model").display()
            ),
        )
        .unwrap();
        p.to_string_lossy().into_owned()
    };
    // The fixture's logs, in the bucket.
    for table in ["impressions", "actions", "users", "items", "candidates"] {
        let from = fx.path("data").join(table);
        let to = server.root.path().join("dumn/raw").join(table);
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(&from).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
    let nightly = job("nightly.toml", "s3://dumn/nightly");

    // Wrong credentials: an error at start that says the output cannot be written.
    let mut bad = env.clone();
    bad.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    bad.push(("AWS_SECRET_ACCESS_KEY", "wrong".into()));
    let started = std::time::Instant::now();
    let (ok, out) = run_dumn(&["run", &nightly], &bad);
    assert!(
        !ok && out.contains("cannot write s3://dumn/nightly") && out.contains("credentials"),
        "{out}"
    );
    assert!(started.elapsed().as_secs() < 60, "bounded retries");
    assert!(!server.root.path().join("dumn/nightly").exists());

    // A bucket that does not exist.
    let (ok, out) = run_dumn(
        &["run", &job("nobucket.toml", "s3://no-such-bucket/nightly")],
        &env,
    );
    assert!(
        !ok && out.contains("s3://no-such-bucket") && out.contains("does the bucket"),
        "{out}"
    );

    // The server stops once the job has started scoring (its inputs are still being read
    // from the bucket, its tables not yet written): the job fails after bounded retries,
    // and no day appears.
    let (child, mut stdout, mut text) = start_dumn_until(
        &["run", &nightly],
        &env,
        Watch::Stdout,
        |line| line.starts_with("scoring "),
        "the job ended before it started scoring",
    );
    server.stop();
    let t = std::time::Instant::now();
    use std::io::Read;
    stdout.read_to_string(&mut text).unwrap();
    let out = child.wait_with_output().unwrap();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{text}");
    assert!(t.elapsed().as_secs() < 120, "bounded retries: {text}");
    assert!(
        text.contains("error:") && text.contains("retries"),
        "{text}"
    );
    assert!(!day_published(&server, "scores") && !day_published(&server, "ranking"));

    // Back up: a re-run completes the day.
    server.restart();
    let (ok, out) = run_dumn(&["run", &nightly], &env);
    assert!(ok, "{out}");
    assert!(day_published(&server, "scores") && day_published(&server, "ranking"));
    // ... and removed what the failed run had staged (s3s-fs may keep empty folders).
    for table in ["scores", "ranking"] {
        let dir = server.root.path().join("dumn/nightly").join(table);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("staging"))
            .flat_map(|p| files_under(&p))
            .collect();
        assert!(left.is_empty(), "{table}: staged objects left: {left:?}");
    }
    // Killed at two steps of the publish (src/io/day.rs) on S3: the markers still pair up,
    // and the next run finishes or rolls back, leaving only the files its markers list.
    let day = |table: &str| {
        server
            .root
            .path()
            .join("dumn/nightly")
            .join(table)
            .join("dt=2026-11-07")
    };
    let marker = |table: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(day(table).join("_SUCCESS")).unwrap()).unwrap()
    };
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for point in ["placed", "marker-1"] {
        let before = marker("scores")["run_id"].clone();
        let mut failing = env_refs.clone();
        failing.push(("DUMN_FAILPOINT", point));
        let (code, out) = dumn_exit_code(&["run", &nightly], &failing);
        assert_ne!(code, 0, "{point}: {out}");
        let (s, r) = (marker("scores"), marker("ranking"));
        assert!(
            s["run_id"] == r["run_id"] || s["previous"]["run_id"] == r["run_id"],
            "{point}: {s} {r}"
        );
        assert_eq!(
            r["run_id"], before,
            "{point}: the day is the previous run's"
        );
        let (ok, out) = run_dumn(&["run", &nightly], &env);
        assert!(ok, "{point}: {out}");
        for table in ["scores", "ranking"] {
            let m = marker(table);
            assert_ne!(m["run_id"], before);
            let listed = marker_listing(&m);
            let mut present: Vec<String> = files_under(&day(table))
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            present.sort();
            assert_eq!(present, listed, "{point}: {table}");
        }
    }

    // The run removed its lease from the bucket; a lease that another live run holds
    // there (an object of the bucket, which the conditional PUT finds) stops a second run
    // of the day with code 3.
    let lease = server
        .root
        .path()
        .join("dumn/nightly/_leases/2026-11-07.json");
    assert!(!lease.exists());
    let now = chrono::Utc::now();
    let holder = serde_json::json!({
        "run": "dumn run elsewhere", "host": "worker-9", "pid": 77,
        "started_at": now, "expires_at": now + chrono::Duration::hours(1),
    });
    let planted = fx.path("lease.json");
    std::fs::write(&planted, holder.to_string()).unwrap();
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    std::fs::copy(&planted, &lease).unwrap();
    let (code, out) = dumn_exit_code(
        &["run", &nightly],
        &env.iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("worker-9"), "{out}");
}

/// The test server creates atomically, as AWS S3 does (ci/setup.sh patches s3s-fs for it):
/// of many concurrent `If-None-Match: *` PUTs of one key exactly one wins, the others fail
/// as "already exists", and the object holds the winner's bytes. The lease and the Delta
/// commits of concurrent runs rely on it; a stock s3s-fs fails this test instead of making
/// those tests flaky.
#[test]
fn the_test_servers_conditional_create_has_one_winner_among_concurrent_writers() {
    use object_store::{ObjectStoreExt, PutMode, PutPayload};
    use std::sync::Arc;

    let server = S3Server::start(&["dumn"]);
    let store = server.store("dumn");
    runtime().block_on(async {
        for round in 0..10 {
            let key = object_store::path::Path::from(format!("race/{round}.json"));
            let mut writers = tokio::task::JoinSet::new();
            let start = Arc::new(tokio::sync::Barrier::new(16));
            for writer in 0..16 {
                let (store, key, start) = (store.clone(), key.clone(), start.clone());
                // 8 KiB: enough to widen a stock server's window between its check and its
                // write, small enough to be sent whole before an early refusal closes the
                // connection (a larger body then fails as a transport error).
                let body = format!("{writer:>4}").repeat(2 * 1024);
                writers.spawn(async move {
                    start.wait().await;
                    let put = store
                        .put_opts(&key, PutPayload::from(body), PutMode::Create.into())
                        .await;
                    (writer, put)
                });
            }
            let mut winners = Vec::new();
            while let Some(joined) = writers.join_next().await {
                match joined.unwrap() {
                    (writer, Ok(_)) => winners.push(writer),
                    (_, Err(object_store::Error::AlreadyExists { .. })) => {}
                    (writer, Err(e)) => panic!("writer {writer}: {e}"),
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
            let stored = store.get(&key).await.unwrap().bytes().await.unwrap();
            assert_eq!(&stored[..4], format!("{:>4}", winners[0]).as_bytes());
        }
    });
}
