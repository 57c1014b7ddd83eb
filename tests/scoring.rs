//! Scoring: the model UDFs against the model's own per-row forward, and `dumn run`'s
//! tables, re-runs, killed runs and bad inputs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::data::*;
use crate::common::scoring::*;
use datafusion::arrow::array::{RecordBatch, UInt32Array, UInt64Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use dumn::data::pipeline::{self, ModelInput};
use dumn::data::script::Params;
use dumn::engine::session::{context, EngineOptions};
use dumn::model::artifact;
use dumn::model::device::{Precision, BF16_TOLERANCE};
use dumn::model::scorer::Scorer;
use dumn::model::{Batch, Rows as InputRows};
use tch::Device;

/// The scoring input of the fixture as one batch, with a row id column `rid` added.
async fn scoring_rows(fx: &Fixture) -> RecordBatch {
    let ctx = context(&EngineOptions::default()).unwrap();
    let t = artifact::read_manifest(&fx.path("model"))
        .unwrap()
        .config
        .seq_len as usize;
    let params = Params::new().seq_len(t).unwrap().cutoff(fx.gen.cutoff());
    let (df, _) = pipeline::prepare(
        &ctx,
        &local_inputs(&fx.path("data")),
        ModelInput::Scoring,
        None,
        &params,
        &pipeline::Scratch::Temporary,
    )
    .await
    .unwrap();
    let batches = df.collect().await.unwrap();
    let batch = concat_batches(&batches[0].schema(), &batches).unwrap();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("rid", DataType::UInt64, false));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(UInt64Array::from_iter_values(
        0..batch.num_rows() as u64,
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// `dumn_score` over `rows` cut into batches of `chunk` rows, dealt round-robin into
/// `partitions` partitions (which a scorer with several workers scores in parallel), by
/// row id.
async fn udf_scores(
    scorer: Arc<Scorer>,
    rows: &RecordBatch,
    chunk: usize,
    partitions: usize,
) -> HashMap<u64, (f64, f64)> {
    let ctx = context(&EngineOptions::default()).unwrap();
    dumn::udfs::register_model(&ctx, Some(scorer.clone()));
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions];
    for (k, i) in (0..rows.num_rows()).step_by(chunk).enumerate() {
        parts[k % partitions].push(rows.slice(i, chunk.min(rows.num_rows() - i)));
    }
    ctx.register_table(
        "rows",
        Arc::new(MemTable::try_new(rows.schema(), parts).unwrap()),
    )
    .unwrap();
    let args = scorer.input_columns().join(", ");
    let out = sql(
        &ctx,
        &format!("SELECT rid, s['ctr'] AS ctr, s['p_dislike'] AS p FROM (SELECT rid, dumn_score({args}) AS s FROM rows)"),
    )
    .await;
    let mut m = HashMap::new();
    for b in &out {
        let rid = i64s(b, "rid");
        let (ctr, p) = (f64s(b, "ctr"), f64s(b, "p"));
        for i in 0..b.num_rows() {
            m.insert(rid[i].unwrap() as u64, (ctr[i].unwrap(), p[i].unwrap()));
        }
    }
    assert_eq!(m.len(), rows.num_rows(), "one score per row");
    m
}

#[test]
fn the_udf_equals_the_per_row_forward_whatever_the_batch_size_or_row_order() {
    let fx = Fixture::new(6);
    runtime().block_on(async {
        let rows = scoring_rows(&fx).await;
        let n = rows.num_rows();
        assert!(n > 500, "{n} rows");
        let model_dir = fx.path("model");
        let loaded = artifact::load(&model_dir, Device::Cpu).unwrap();
        let cfg = loaded.model.config.clone();
        // The reference: the model's one-step forward, one row at a time.
        let inputs = InputRows::from_batch(&rows, &cfg.schema, false).unwrap();
        let reference: Vec<(f64, f64)> = (0..inputs.len())
            .map(|r| {
                let b = Batch::new(&cfg, &inputs, &[r], Device::Cpu).unwrap();
                let p: Vec<f32> = Vec::try_from(loaded.model.predict(&b).flatten(0, -1)).unwrap();
                (p[0] as f64, p[1] as f64)
            })
            .collect();
        let spread = reference.iter().map(|r| r.0).fold(f64::MIN, f64::max)
            - reference.iter().map(|r| r.0).fold(f64::MAX, f64::min);
        assert!(spread > 1e-3, "scores must differ between rows ({spread})");

        // A permutation that scatters each user's candidates across the table.
        let perm = UInt32Array::from_iter_values((0..n as u32).map(|i| (i * 7919) % n as u32));
        let mut sorted: Vec<u32> = perm.values().to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), n, "7919 is prime to the row count");
        let shuffled = take_record_batch(&rows, &perm).unwrap();

        // (batch size, rows per input batch, row order, model workers, partitions)
        for (batch_size, chunk, order, workers, partitions) in [
            (4096, 8192, &rows, 1, 1),
            (7, 8192, &rows, 1, 1),
            (1, 50, &rows, 1, 1),
            (4096, 8192, &shuffled, 1, 1),
            (33, 13, &shuffled, 1, 1),
            (64, 100, &rows, 3, 4),
            (33, 13, &shuffled, 2, 3),
        ] {
            let scorer = Arc::new(
                Scorer::with_workers(
                    artifact::load(&model_dir, Device::Cpu).unwrap(),
                    batch_size,
                    workers,
                )
                .unwrap(),
            );
            assert_eq!(scorer.workers(), workers);
            let got = udf_scores(scorer.clone(), order, chunk, partitions).await;
            for (rid, want) in reference.iter().enumerate() {
                let have = got[&(rid as u64)];
                assert!(
                    (have.0 - want.0).abs() < 1e-5 && (have.1 - want.1).abs() < 1e-5,
                    "row {rid}, batch size {batch_size}, chunk {chunk}, {workers} workers: \
                     {have:?} vs {want:?}"
                );
            }
            if std::ptr::eq(order, &rows) && batch_size >= 1000 {
                let s = scorer.stats();
                assert!(
                    s.users * 3 < s.rows,
                    "users' rows arrive together in scoring_input, so user steps are shared: {s:?}"
                );
            }
        }

        // bf16 (`--precision bf16`), with two workers (each a bf16 copy): every score within
        // the documented tolerance of fp32's, and not fp32's exactly (the cast happened).
        let mut loaded = artifact::load(&model_dir, Device::Cpu).unwrap();
        loaded.model.set_precision(Precision::Bf16);
        let scorer = Arc::new(Scorer::with_workers(loaded, 64, 2).unwrap());
        let got = udf_scores(scorer, &shuffled, 100, 3).await;
        let worst = reference
            .iter()
            .enumerate()
            .map(|(rid, want)| {
                let have = got[&(rid as u64)];
                (have.0 - want.0).abs().max((have.1 - want.1).abs())
            })
            .fold(0.0, f64::max);
        eprintln!("bf16: largest difference from fp32 {worst:.2e} over {n} rows");
        assert!(
            worst > 0.0 && worst < BF16_TOLERANCE as f64,
            "bf16 scores are {worst} from fp32"
        );
    });
}

fn dumn(args: &[&str]) -> (bool, String) {
    run_dumn(args, &[])
}

/// The rows of a day's table.
fn day_rows(fx: &Fixture, table: &str) -> RecordBatch {
    let batches = runtime().block_on(read_parquet(&fx.day(table)));
    concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn marker(fx: &Fixture, table: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fx.day(table).join("_SUCCESS")).unwrap()).unwrap()
}

#[test]
fn a_run_writes_one_score_per_candidate_and_a_filtered_top_k_ranking() {
    let fx = Fixture::new(15);
    let job = fx.job(
        "job.toml",
        "dislike_threshold = 0.5\ntop_k = 6\nbatch_size = 100",
    );
    let (ok, out) = dumn(&["run", job.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("candidates/s"),
        "a summary with the rate: {out}"
    );

    // Scores: exactly the candidates, with the model's version.
    let scores = day_rows(&fx, "scores");
    let cands = runtime().block_on(read_parquet(&fx.path("data/candidates")));
    let cands = concat_batches(&cands[0].schema(), &cands).unwrap();
    // (user, item, source): the candidate and its pass-through column.
    let rows = |b: &RecordBatch| {
        let mut v: Vec<(i64, i64, String)> = i64s(b, "user_id")
            .into_iter()
            .zip(i64s(b, "item_id"))
            .zip(strings(b, "source"))
            .map(|((u, i), s)| (u.unwrap(), i.unwrap(), s.unwrap()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows(&scores), rows(&cands), "one score row per candidate");
    let version = artifact::read_manifest(&fx.path("model"))
        .unwrap()
        .model_version;
    assert!(strings(&scores, "model_version")
        .iter()
        .all(|v| v.as_deref() == Some(version.as_str())));
    let m = marker(&fx, "scores");
    assert_eq!(m["rows"], scores.num_rows() as u64);
    assert_eq!(m["model_version"], version.as_str());

    // Ranking: per user, the eligible candidates by ctr (ties by item id), each item once
    // (the fixture's candidate sources offer some items twice), at most k.
    let (ctr, pd) = (f64s(&scores, "ctr"), f64s(&scores, "p_dislike"));
    let (users, items) = (i64s(&scores, "user_id"), i64s(&scores, "item_id"));
    let mut best: HashMap<(i64, i64), f64> = HashMap::new();
    let mut excluded = 0;
    for i in 0..scores.num_rows() {
        if pd[i].unwrap() <= 0.5 {
            let c = best
                .entry((users[i].unwrap(), items[i].unwrap()))
                .or_insert(f64::MIN);
            *c = c.max(ctr[i].unwrap());
        } else {
            excluded += 1;
        }
    }
    let offered: std::collections::HashSet<(i64, i64)> = users
        .iter()
        .zip(&items)
        .map(|(u, i)| (u.unwrap(), i.unwrap()))
        .collect();
    assert!(
        offered.len() < scores.num_rows(),
        "the fixture offers some items twice to a user"
    );
    let mut eligible: HashMap<i64, Vec<(f64, i64)>> = HashMap::new();
    for ((user, item), c) in best {
        eligible.entry(user).or_default().push((c, item));
    }
    assert!(
        excluded > 0,
        "the fixture's model must put some p_dislike above 0.5"
    );
    let ranking = day_rows(&fx, "ranking");
    let (ru, rr, ri, rc, rp) = (
        i64s(&ranking, "user_id"),
        i64s(&ranking, "rank"),
        i64s(&ranking, "item_id"),
        f64s(&ranking, "ctr"),
        f64s(&ranking, "p_dislike"),
    );
    let mut got: HashMap<i64, Vec<(i64, f64, i64)>> = HashMap::new();
    for i in 0..ranking.num_rows() {
        assert!(rp[i].unwrap() <= 0.5, "a high-dislike item is ranked");
        got.entry(ru[i].unwrap()).or_default().push((
            rr[i].unwrap(),
            rc[i].unwrap(),
            ri[i].unwrap(),
        ));
    }
    assert_eq!(
        got.len(),
        eligible.len(),
        "every user with an eligible candidate is ranked"
    );
    for (user, mut want) in eligible {
        want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        want.truncate(6);
        let mut have = got.remove(&user).unwrap();
        have.sort_by_key(|r| r.0);
        assert_eq!(
            have.iter().map(|r| r.0).collect::<Vec<_>>(),
            (1..=want.len() as i64).collect::<Vec<_>>()
        );
        let have: Vec<(f64, i64)> = have.iter().map(|r| (r.1, r.2)).collect();
        assert_eq!(have, want, "user {user}");
    }
    assert_eq!(marker(&fx, "ranking")["rows"], ranking.num_rows() as u64);

    // Within each file, the rows are in (user_id, rank) order (sql/ranking.sql).
    for file in std::fs::read_dir(fx.day("ranking")).unwrap() {
        let file = file.unwrap().path();
        if file.extension().is_some_and(|e| e == "parquet") {
            let batches = runtime().block_on(read_parquet(&file));
            let b = concat_batches(&batches[0].schema(), &batches).unwrap();
            let keys: Vec<(i64, i64)> = i64s(&b, "user_id")
                .into_iter()
                .zip(i64s(&b, "rank"))
                .map(|(u, r)| (u.unwrap(), r.unwrap()))
                .collect();
            assert!(
                keys.windows(2).all(|w| w[0] < w[1]),
                "{} is not in (user_id, rank) order",
                file.display()
            );
        }
    }
}

/// A table's rows: the non-float columns rendered, and the float columns (scores).
type Rows = Vec<(String, Vec<f64>)>;

/// What a reader that follows the `_SUCCESS` markers gets for the fixture's day (see
/// `src/io/day.rs`): the run id and, per table, its rows sorted (without `scored_at`).
/// Panics when the two markers name runs that the protocol cannot pair.
fn marker_read(fx: &Fixture) -> (String, Vec<Rows>) {
    let (s, r) = (marker(fx, "scores"), marker(fx, "ranking"));
    let files = |m: &serde_json::Value| -> Vec<String> {
        m["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect()
    };
    let (run, scores, ranking) = if s["run_id"] == r["run_id"] {
        (s["run_id"].clone(), files(&s), files(&r))
    } else if s["previous"]["run_id"] == r["run_id"] {
        (r["run_id"].clone(), files(&s["previous"]), files(&r))
    } else if r["previous"]["run_id"] == s["run_id"] {
        (s["run_id"].clone(), files(&s), files(&r["previous"]))
    } else {
        panic!("markers of two runs that do not pair: {s} {r}")
    };
    let rows = |table: &str, names: Vec<String>| -> Rows {
        use datafusion::arrow::array::Float64Array;
        let mut out = Vec::new();
        for name in names {
            for b in runtime().block_on(read_parquet(&fx.day(table).join(&name))) {
                for row in 0..b.num_rows() {
                    let (mut key, mut floats) = (Vec::new(), Vec::new());
                    for (field, c) in b.schema().fields().iter().zip(b.columns()) {
                        match field.data_type() {
                            _ if field.name() == "scored_at" => {}
                            DataType::Float32 | DataType::Float64 => {
                                let f = datafusion::arrow::compute::cast(c, &DataType::Float64);
                                let f = f.unwrap();
                                let f = f.as_any().downcast_ref::<Float64Array>().unwrap();
                                floats.push(f.value(row));
                            }
                            _ => key.push(
                                datafusion::arrow::util::display::array_value_to_string(c, row)
                                    .unwrap(),
                            ),
                        }
                    }
                    out.push((key.join("|"), floats));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.partial_cmp(&b.1).unwrap()));
        out
    };
    (
        run.as_str().unwrap().to_string(),
        vec![rows("scores", scores), rows("ranking", ranking)],
    )
}

/// Two tables' rows are the same, scores within 1e-5 (the model's batches differ from run
/// to run, which moves a score by about 1e-7).
fn assert_same_rows(a: &[Rows], b: &[Rows], what: &str) {
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len(), "{what}: row counts");
        for (r, s) in x.iter().zip(y) {
            assert_eq!(r.0, s.0, "{what}");
            assert!(
                r.1.iter().zip(&s.1).all(|(p, q)| (p - q).abs() < 1e-5),
                "{what}: {r:?} vs {s:?}"
            );
        }
    }
}

/// The day folders hold exactly the files their markers list, and nothing else is left
/// under the output root (no staging, no stray files).
fn assert_clean_day(fx: &Fixture, when: &str) {
    for t in ["scores", "ranking"] {
        assert_eq!(
            file_names(&fx.day(t)),
            marker_listing(&marker(fx, t)),
            "{t}"
        );
        assert_eq!(
            file_names(&fx.path(&format!("out/{t}"))),
            vec![format!("dt={}", fx.date())]
        );
    }
    let staging = fx.path(&format!("out/_staging/{}", fx.date()));
    assert!(
        file_names(&staging).is_empty(),
        "{when}: left in {}: {:?}",
        staging.display(),
        file_names(&staging)
    );
}

#[test]
fn a_rerun_replaces_the_day_exactly() {
    let fx = Fixture::new(5);
    let job = fx.job("job.toml", "");
    let (ok, out) = dumn(&["run", job.to_str().unwrap()]);
    assert!(ok, "{out}");
    let (first_run, first) = marker_read(&fx);
    assert_clean_day(&fx, "the first run");
    // The re-run with two model workers (src/model/scorer.rs) gives the same scores.
    let (ok, out) = dumn(&["run", job.to_str().unwrap(), "--workers", "2"]);
    assert!(ok, "{out}");
    let (second_run, second) = marker_read(&fx);
    assert_ne!(first_run, second_run, "replaced by the re-run");
    assert_same_rows(&first, &second, "the same rows, no second copy");
    assert_clean_day(&fx, "the re-run");
    // The new markers name the run they replaced.
    for t in ["scores", "ranking"] {
        assert_eq!(marker(&fx, t)["previous"]["run_id"], first_run.as_str());
    }
}

#[test]
fn a_run_killed_at_any_step_leaves_a_consistent_day_and_the_next_run_completes_it() {
    let fx = Fixture::new(20);
    let job = fx.job("job.toml", "batch_size = 16");
    let job = job.to_str().unwrap();
    let (ok, out) = dumn(&["run", job]);
    assert!(ok, "{out}");
    let (mut current, reference) = marker_read(&fx);
    // Each step of the publish protocol (src/io/day.rs), as a kill there would leave it.
    for point in ["journal", "placed", "marker-1", "markers", "cleaned"] {
        let (code, text) = dumn_exit_code(&["run", job], &[("DUMN_FAILPOINT", point)]);
        assert_ne!(code, 0, "{point}: {text}");
        let (run, rows) = marker_read(&fx);
        assert_same_rows(&rows, &reference, &format!("{point}: one run's whole pair"));
        let new_run = run != current;
        assert_eq!(
            new_run,
            matches!(point, "markers" | "cleaned"),
            "{point}: the day changes once every marker is written"
        );
        // The next run finishes or rolls back what was left, then publishes its own day.
        let (ok, text) = dumn(&["run", job]);
        assert!(ok, "{point}: {text}");
        let (after, rows) = marker_read(&fx);
        assert_same_rows(&rows, &reference, &format!("{point}: the re-run's rows"));
        assert_ne!(after, run);
        assert_clean_day(&fx, point);
        current = after;
    }

    // A kill while the tables are being written (the staging folder exists).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dumn"))
        .args(["run", job])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while file_names(&fx.path(&format!("out/_staging/{}", fx.date()))).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended too soon"
        );
        assert!(started.elapsed() < Duration::from_secs(120));
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (run, rows) = marker_read(&fx);
    assert_eq!(
        run, current,
        "a kill while staging leaves the day as it was"
    );
    assert_same_rows(&rows, &reference, "after a kill while staging");
    let (ok, text) = dumn(&["run", job]);
    assert!(ok, "{text}");
    assert_same_rows(&marker_read(&fx).1, &reference, "the run after the kill");
    assert_clean_day(&fx, "after a kill while staging");
}

/// Runs a job that must fail; returns its output, after checking that no day appeared.
fn fails(fx: &Fixture, job: &std::path::Path) -> String {
    let (ok, out) = dumn(&["run", job.to_str().unwrap()]);
    assert!(!ok, "the run must fail: {out}");
    for t in ["scores", "ranking"] {
        assert!(!fx.day(t).exists(), "no {t} day after a failed run: {out}");
    }
    out
}

#[test]
fn bad_inputs_fail_clearly_and_leave_no_day() {
    let fx = Fixture::new(3);

    // A model trained on a column the SQL does not produce.
    let mut schema = gen_schema();
    schema
        .item_fields
        .push(dumn::model::features::FieldSpec::new("color", 64));
    artifact::save(
        &small_model(schema, 1),
        &fx.path("model-color"),
        None,
        Default::default(),
    )
    .unwrap();
    let d = fx.dir.path().display();
    let out = fails(
        &fx,
        &fx.job("a.toml", &format!("model = \"{d}/model-color\"")),
    );
    assert!(
        out.contains("`color`") && out.contains("scoring_input"),
        "{out}"
    );

    // A missing model.
    let out = fails(
        &fx,
        &fx.job("b.toml", &format!("model = \"{d}/no-such-model\"")),
    );
    assert!(
        out.contains("no-such-model") && out.contains("does not exist"),
        "{out}"
    );

    // Candidates naming a user or an item that the profile tables do not have.
    for (col, table) in [("user_id", "users"), ("item_id", "items")] {
        let cands = fx.path(&format!("cands-{col}"));
        std::fs::create_dir_all(&cands).unwrap();
        let (u, i) = if col == "user_id" {
            (999_999, 100_000)
        } else {
            (1, 999_999)
        };
        std::fs::write(
            cands.join("c.csv"),
            format!("user_id,item_id,source\n1,100000,x\n{u},{i},x\n"),
        )
        .unwrap();
        let out = fails(
            &fx,
            &fx.job(
                &format!("c-{col}.toml"),
                &format!("[tables]\ncandidates = \"{}\"", cands.display()),
            ),
        );
        assert!(
            out.contains("`candidates`")
                && out.contains(col)
                && out.contains(&format!("`{table}`"))
                && out.contains("999999"),
            "{out}"
        );
    }

    // An output root that cannot be written (a file stands where a folder must be).
    std::fs::write(fx.path("blocker"), b"").unwrap();
    let job = fx.job("d.toml", &format!("out = \"{d}/blocker/out\""));
    let (ok, out) = dumn(&["run", job.to_str().unwrap()]);
    assert!(!ok && out.contains("blocker"), "{out}");
    assert!(!fx.path("blocker/out").exists());
}

#[test]
fn a_users_candidates_share_one_user_step_whatever_the_file_order() {
    // 24,000 candidates: three of DataFusion's 8,192-row batches, so order across batches
    // matters (within one call the UDF groups rows by user anyway).
    let fx = Fixture::new(200);
    // The candidates rewritten in item order: every user's rows scattered over the file.
    let cands = runtime().block_on(read_parquet(&fx.path("data/candidates")));
    let cands = concat_batches(&cands[0].schema(), &cands).unwrap();
    let mut rows: Vec<(i64, i64, String)> = i64s(&cands, "user_id")
        .into_iter()
        .zip(i64s(&cands, "item_id"))
        .zip(strings(&cands, "source"))
        .map(|((u, i), s)| (u.unwrap(), i.unwrap(), s.unwrap()))
        .collect();
    rows.sort_by_key(|r| (r.1, r.0));
    let dir = fx.path("by-item");
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("user_id,item_id,source\n");
    for (u, i, s) in &rows {
        csv.push_str(&format!("{u},{i},{s}\n"));
    }
    std::fs::write(dir.join("c.csv"), csv).unwrap();
    let job = fx.job(
        "job.toml",
        &format!("[tables]\ncandidates = \"{}\"", dir.display()),
    );
    let (ok, out) = dumn(&["run", job.to_str().unwrap()]);
    assert!(ok, "{out}");
    let per_step: f64 = out
        .split(" per user step")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no per-user-step figure in: {out}"));
    assert!(
        per_step > 150.0,
        "{per_step} candidates per user step: {out}"
    );
    assert_eq!(day_rows(&fx, "scores").num_rows(), rows.len());
}

#[test]
fn wrong_arguments_are_planning_errors_that_name_the_argument() {
    let fx = Fixture::new(2);
    runtime().block_on(async {
        let scorer = Arc::new(Scorer::new(
            artifact::load(&fx.path("model"), Device::Cpu).unwrap(),
            64,
        ));
        let ctx = context(&EngineOptions::default()).unwrap();
        let plan = |ctx: &datafusion::prelude::SessionContext, q: &str| {
            let ctx = ctx.clone();
            let q = q.to_string();
            async move { ctx.sql(&q).await.err().map(|e| e.to_string()) }
        };
        let lists = "[1, 2], [3], [], []";
        // Registered without a model: the message says how to give one.
        let err = plan(
            &ctx,
            &format!("SELECT dumn_ctr(1, 'a', 'b', 'c', 2, 'x', 'y', {lists})"),
        )
        .await
        .expect("an error");
        assert!(
            err.contains("needs a model") && err.contains("--model"),
            "{err}"
        );

        dumn::udfs::register_model(&ctx, Some(scorer));
        let ok = format!("SELECT dumn_ctr(1, 'a', 'b', 'c', 2, 'x', 'y', {lists})");
        assert_eq!(plan(&ctx, &ok).await, None, "a well-typed call plans");
        // A text where the click sequence goes.
        let err = plan(
            &ctx,
            "SELECT dumn_dislike(1, 'a', 'b', 'c', 2, 'x', 'y', 'oops', [3], [], [])",
        )
        .await
        .expect("an error");
        assert!(
            err.contains("argument 8") && err.contains("`click_seq`"),
            "{err}"
        );
        // A float feature.
        let err = plan(
            &ctx,
            &format!("SELECT dumn_score(1.5, 'a', 'b', 'c', 2, 'x', 'y', {lists})"),
        )
        .await
        .expect("an error");
        assert!(
            err.contains("argument 1") && err.contains("`user_id`"),
            "{err}"
        );
        // A missing argument: the message lists the model's inputs.
        let err = plan(&ctx, "SELECT dumn_ctr(1, 2)").await.expect("an error");
        assert!(
            err.contains("takes 11 arguments") && err.contains("dislike_seq"),
            "{err}"
        );
    });
}

#[test]
fn a_job_file_elsewhere_runs_from_any_folder_under_env_and_set_overrides() {
    let fx = Fixture::new(15);
    // Relative paths, read from the job file's folder.
    std::fs::create_dir(fx.path("jobs")).unwrap();
    let job = fx.path("jobs/nightly.toml");
    std::fs::write(
        &job,
        format!(
            "data = \"../data\"\nmodel = \"../model\"\nout = \"../out\"\ndate = \"{}\"\n\
             device = \"cpu\"\ntop_k = 7\nbatch_size = 64\nformat = \"parquet\"\n",
            fx.date()
        ),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let job_arg = job.to_str().unwrap();
    let max_rank = |fx: &Fixture| i64s(&day_rows(fx, "ranking"), "rank").into_iter().max();

    // The environment beats the file; progress goes to the log as plain lines.
    let env = [("DUMN_TOP_K", "5"), ("DUMN_PROGRESS_SECONDS", "0")];
    let (ok, stdout, stderr) = run_dumn_in(elsewhere.path(), &["run", job_arg], &env);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(marker(&fx, "ranking")["top_k"], 5, "{stdout}");
    assert_eq!(max_rank(&fx), Some(Some(5)));
    assert!(
        stderr.lines().any(|l| l.starts_with("progress: ")),
        "progress lines without a terminal: {stderr}"
    );
    assert_eq!(
        std::fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing written in the working folder"
    );

    // The last line of stdout is the run's summary, one JSON object.
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap()).expect("a JSON last line");
    let version = artifact::read_manifest(&fx.path("model"))
        .unwrap()
        .model_version;
    assert_eq!(summary["model_version"], version.as_str());
    assert_eq!(summary["date"], fx.date().as_str());
    assert_eq!(
        summary["scores"]["rows"],
        day_rows(&fx, "scores").num_rows() as u64
    );
    assert_eq!(
        summary["ranking"]["rows"],
        day_rows(&fx, "ranking").num_rows() as u64
    );
    assert!(summary["scores"]["files"].as_u64().unwrap() >= 1);
    assert!(summary["total_seconds"].as_f64().unwrap() > 0.0);

    // --set beats the environment.
    let (ok, stdout, stderr) = run_dumn_in(
        elsewhere.path(),
        &["run", job_arg, "--set", "top_k=3"],
        &env,
    );
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(marker(&fx, "ranking")["top_k"], 3);
    assert_eq!(max_rank(&fx), Some(Some(3)));

    // A key that does not exist is named.
    let (ok, _, stderr) = run_dumn_in(elsewhere.path(), &["run", job_arg, "--set", "topk=3"], &[]);
    assert!(!ok && stderr.contains("no key `topk`"), "{stderr}");
}

/// A team's own ranking SQL replaces the embedded one, and may join (here the scores with
/// `items`, counted by category). (It runs in the engine's pool, not in the embedded
/// ranking's 64 MB of its own: a join's build side cannot spill.)
#[test]
fn a_teams_own_ranking_sql_replaces_the_embedded_one_and_may_join() {
    let fx = Fixture::new(15);
    let sql = fx.path("by_category.sql");
    std::fs::write(
        &sql,
        "CREATE OR REPLACE VIEW ranking AS \
         SELECT s.user_id, i.category, count(*) AS n \
         FROM items AS i JOIN scores AS s ON s.item_id = i.item_id \
         GROUP BY s.user_id, i.category",
    )
    .unwrap();
    let job = fx.job("job.toml", &format!("ranking_sql = \"{}\"", sql.display()));
    let (ok, out) = dumn(&["run", job.to_str().unwrap()]);
    assert!(ok, "{out}");
    let ranking = day_rows(&fx, "ranking");
    let columns: Vec<String> = ranking
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(columns, ["user_id", "category", "n"]);
    // Every score whose item has a row in `items` is counted once.
    let items = runtime().block_on(read_parquet(&fx.path("data/items")));
    let known: std::collections::HashSet<i64> = items
        .iter()
        .flat_map(|b| i64s(b, "item_id"))
        .map(|i| i.unwrap())
        .collect();
    let scores = day_rows(&fx, "scores");
    let want = i64s(&scores, "item_id")
        .into_iter()
        .filter(|i| known.contains(&i.unwrap()))
        .count() as i64;
    let got: i64 = i64s(&ranking, "n").into_iter().map(|n| n.unwrap()).sum();
    assert!(want > 0);
    assert_eq!(got, want);
}

/// Writes a lease on `fx`'s day as another run would hold it.
fn plant_lease(fx: &Fixture, host: &str, pid: u32, expires_in: chrono::Duration) -> PathBuf {
    let lease = fx.path("out/_leases").join(format!("{}.json", fx.date()));
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    let now = chrono::Utc::now();
    let holder = serde_json::json!({
        "run": "dumn run of the nightly job",
        "host": host,
        "pid": pid,
        "started_at": now,
        "expires_at": now + expires_in,
    });
    std::fs::write(&lease, serde_json::to_vec(&holder).unwrap()).unwrap();
    lease
}

#[test]
fn a_second_run_of_a_day_fails_with_code_3_and_dead_runs_leases_are_taken_over() {
    let fx = Fixture::new(3);
    let job = fx.job("job.toml", "");
    let job = job.to_str().unwrap();

    // A live run of the day, on another machine, holds the lease: this run stops before
    // any work with code 3 and names it; the holder's lease is left alone.
    let lease = plant_lease(&fx, "worker-7", 4242, chrono::Duration::hours(1));
    let planted = std::fs::read(&lease).unwrap();
    let (code, text) = dumn_exit_code(&["run", job], &[]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("worker-7") && text.contains("4242"), "{text}");
    assert!(!fx.day("scores").exists() && !fx.day("ranking").exists());
    assert_eq!(std::fs::read(&lease).unwrap(), planted);

    // Its lease expired (the run was killed on its machine): taken over; removed after.
    plant_lease(&fx, "worker-7", 4242, chrono::Duration::minutes(-1));
    let (code, text) = dumn_exit_code(&["run", job], &[]);
    assert_eq!(code, 0, "{text}");
    assert!(!lease.exists(), "the run removes its lease");

    // A run of this machine whose process is gone: taken over at once.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    plant_lease(&fx, host.trim(), pid, chrono::Duration::hours(1));
    let (code, text) = dumn_exit_code(&["run", job], &[]);
    assert_eq!(code, 0, "{text}");

    // Two runs of the day started together: at most one fails, with code 3, and the day
    // is whole (every candidate once) with its marker.
    std::fs::remove_dir_all(fx.path("out")).unwrap();
    let (a, b) = run_twice_together(&["run", job], &[]);
    let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    codes.sort();
    assert!(codes == [0, 0] || codes == [0, 3], "{codes:?}: {a:?} {b:?}");
    assert!(fx.day("scores").join("_SUCCESS").is_file());
    assert_eq!(day_rows(&fx, "scores").num_rows(), 120 * 3);
}

#[test]
fn a_job_whose_paths_have_spaces_quotes_hashes_percents_and_accents_runs() {
    let fx = Fixture::new(2);
    let odd = fx.path("it's #1 at 100% — ünï");
    copy_tree(&fx.path("data"), &odd.join("data"));
    copy_tree(&fx.path("model"), &odd.join("model"));
    let job = fx.job(
        "odd.toml",
        &format!(
            "data = \"{0}/data\"\nmodel = \"{0}/model\"\nout = \"{0}/out\"",
            odd.display()
        ),
    );
    let (ok, text) = dumn(&["run", job.to_str().unwrap()]);
    assert!(ok, "{text}");
    let day = odd.join(format!("out/scores/dt={}", fx.date()));
    assert!(day.join("_SUCCESS").is_file(), "{text}");
    // `dumn sql --table` reads the odd folder too.
    let table = format!("s={}", day.display());
    let (ok, text) = dumn(&[
        "sql",
        "--table",
        &table,
        "-c",
        "SELECT count(*) AS n FROM s",
    ]);
    assert!(ok && text.contains("| 240 |"), "{text}");
}

#[test]
fn outputs_that_overlap_inputs_or_hold_other_files_are_refused_before_any_work() {
    let fx = Fixture::new(2);
    let data = fx.path("data");
    let listing = |dir: &std::path::Path| file_names(dir);
    let before = listing(&data.join("impressions"));
    // The output's tables would land inside the logs, or the logs inside a table.
    let tables_in_out = format!(
        "out = \"{0}\"\n[tables]\ncandidates = \"{0}/ranking/c\"",
        fx.path("elsewhere").display()
    );
    for (extra, says) in [
        (
            format!("out = \"{}\"", data.display()),
            "lies inside the input `data`",
        ),
        (
            format!("out = \"{}/impressions\"", data.display()),
            "lies inside the input `data`",
        ),
        (tables_in_out, "contains the input `tables.candidates`"),
    ] {
        let job = fx.job("overlap.toml", &extra);
        let (code, text) = dumn_exit_code(&["run", job.to_str().unwrap()], &[]);
        assert_eq!(code, 2, "{extra}: {text}");
        assert!(text.contains(says), "{extra}: {text}");
    }
    assert_eq!(
        listing(&data.join("impressions")),
        before,
        "the input is untouched"
    );
    assert!(!data.join("_leases").exists() && !data.join("scores").exists());

    // An output root that holds the inputs beside the tables (as jobs/demo.toml's does)
    // is fine.
    let job = fx.job(
        "beside.toml",
        &format!("out = \"{}\"", fx.path("").display()),
    );
    let (code, text) = dumn_exit_code(&["run", job.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{text}");

    // A table root that holds someone else's files.
    let theirs = fx.path("theirs");
    std::fs::create_dir_all(theirs.join("scores")).unwrap();
    std::fs::write(theirs.join("scores/report.xlsx"), b"keep me").unwrap();
    let job = fx.job("theirs.toml", &format!("out = \"{}\"", theirs.display()));
    let (code, text) = dumn_exit_code(&["run", job.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("report.xlsx") && text.contains("holds other files"),
        "{text}"
    );
    assert_eq!(file_names(&theirs), vec!["scores".to_string()]);
    let theirs = theirs.join("scores");

    // Training into the logs, or into that folder, is refused too.
    for out in [&data, &theirs] {
        let (code, text) = dumn_exit_code(
            &[
                "train",
                "--data",
                data.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 2, "{text}");
        assert!(
            text.contains("is the input `data`") || text.contains("holds other files"),
            "{text}"
        );
    }

    // `dumn sql --timeout` ends a statement with code 5 too.
    let table = format!("i={}", data.join("impressions").display());
    let (code, text) = dumn_exit_code(
        &[
            "sql",
            "--table",
            &table,
            "--timeout",
            "300ms",
            "-c",
            "SELECT count(*) FROM i a, i b, i c WHERE a.ts < b.ts AND b.ts < c.ts",
        ],
        &[],
    );
    assert_eq!(code, 5, "{text}");
}

#[test]
fn a_feature_of_another_class_than_in_training_is_an_error_naming_it() {
    let fx = Fixture::new(2);
    // The model says training read `age_band` as text; the logs hold integers.
    let manifest = fx.path("model/manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let age = &mut m["config"]["schema"]["user_fields"][1];
    assert_eq!(age["name"], "age_band");
    age["class"] = serde_json::json!("text");
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let job = fx.job("job.toml", "");
    let (ok, text) = dumn(&["run", job.to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("`age_band`") && text.contains("integer values") && text.contains("text"),
        "{text}"
    );
    assert!(!fx.day("scores").exists());
    // Cast in the job's SQL, it scores.
    let sql = fx.path("cast.sql");
    let original = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/scoring_input.sql"),
    )
    .unwrap();
    assert!(original.contains("CREATE OR REPLACE VIEW scoring_input AS"));
    std::fs::write(
        &sql,
        format!(
            "{}\nCREATE OR REPLACE VIEW scoring_input AS SELECT * EXCLUDE (age_band), \
             CAST(age_band AS VARCHAR) AS age_band FROM scoring_input_raw;",
            original.replace(
                "CREATE OR REPLACE VIEW scoring_input AS",
                "CREATE OR REPLACE VIEW scoring_input_raw AS"
            )
        ),
    )
    .unwrap();
    let job = fx.job("cast.toml", &format!("sql = \"{}\"", sql.display()));
    let (ok, text) = dumn(&["run", job.to_str().unwrap()]);
    assert!(ok, "{text}");
}

#[test]
fn exit_codes_tell_bad_input_from_infrastructure_and_timeouts() {
    let fx = Fixture::new(5);
    let job = fx.job("job.toml", "");
    let job = job.to_str().unwrap();
    // 2: bad input, whether a key, a table or a model.
    let (code, text) = dumn_exit_code(&["run", job, "--set", "topk=3"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("bad input") && text.contains("topk"),
        "{text}"
    );
    let (code, text) = dumn_exit_code(&["run", job, "--set", "model=/nowhere/model"], &[]);
    assert_eq!(code, 2, "{text}");
    let (code, text) = dumn_exit_code(
        &[
            "run",
            job,
            "--set",
            &format!("tables.users={}", fx.path("data/items").display()),
        ],
        &[],
    );
    assert_eq!(code, 2, "a table without its columns: {text}");
    // 4: the output's store cannot be reached.
    let s3 = [
        ("AWS_ENDPOINT", "http://127.0.0.1:9"),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ];
    let (code, text) = dumn_exit_code(&["run", job, "--set", "out=s3://nowhere/out"], &s3);
    assert_eq!(code, 4, "{text}");
    // 5: the run passed --timeout, and published nothing.
    let (code, text) = dumn_exit_code(&["run", job, "--timeout", "1ms"], &[]);
    assert_eq!(code, 5, "{text}");
    assert!(text.contains("--timeout"), "{text}");
    assert!(!fx.day("scores").exists() && !fx.day("ranking").exists());
    // 0: the same job, whole.
    let (code, text) = dumn_exit_code(&["run", job], &[]);
    assert_eq!(code, 0, "{text}");
}

/// A copy of `fx`'s logs in `to`: `users`, `items` and `candidates` as they are, and
/// `impressions` and `actions` rewritten by `copy`, a COPY statement from the table `t`
/// to the folder `{to}`.
fn rewrite_logs(fx: &Fixture, to: &std::path::Path, copy: &str) {
    for table in ["users", "items", "candidates"] {
        let dir = to.join(table);
        std::fs::create_dir_all(&dir).unwrap();
        for f in std::fs::read_dir(fx.path(&format!("data/{table}"))).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
        }
    }
    for table in ["impressions", "actions"] {
        let sql = copy.replace("{to}", &to.join(table).display().to_string());
        let from = format!("t={}", fx.path(&format!("data/{table}")).display());
        let (ok, text) = dumn(&["sql", "--table", &from, "-c", &sql]);
        assert!(ok, "{text}");
    }
}

#[test]
fn lookback_days_scores_as_if_older_events_were_not_in_the_logs() {
    let fx = Fixture::new(8);
    let cutoff = fx.gen.cutoff();
    let since = cutoff - chrono::Duration::days(2);
    let scores = |job: &std::path::Path| {
        let (ok, text) = dumn(&["run", job.to_str().unwrap()]);
        assert!(ok, "{text}");
        score_rows(&fx)
    };
    let windowed = scores(&fx.job("window.toml", "lookback_days = 2"));
    let everything = scores(&fx.job("all.toml", "lookback_days = 0"));
    assert_ne!(windowed, everything, "older events change scores when kept");

    // The same logs without the events before the window, scored with the whole history.
    let trimmed = fx.path("trimmed");
    rewrite_logs(
        &fx,
        &trimmed,
        &format!(
            "COPY (SELECT * FROM t WHERE ts >= TIMESTAMP '{since}') TO '{{to}}/' STORED AS PARQUET"
        ),
    );
    let job = fx.job(
        "trimmed.toml",
        &format!("data = \"{}\"\nlookback_days = 0", trimmed.display()),
    );
    assert_eq!(scores(&job), windowed);
}

/// The day's scores of `fx`'s output as sorted (user, item, ctr × 1e6) rows.
fn score_rows(fx: &Fixture) -> Vec<(i64, i64, i64)> {
    let b = day_rows(fx, "scores");
    let mut rows: Vec<(i64, i64, i64)> = i64s(&b, "user_id")
        .into_iter()
        .zip(i64s(&b, "item_id"))
        .zip(f64s(&b, "ctr"))
        .map(|((u, i), p)| (u.unwrap(), i.unwrap(), (p.unwrap() * 1e6).round() as i64))
        .collect();
    rows.sort();
    rows
}

#[test]
fn lookback_days_reads_only_the_dt_partitions_of_its_window_and_logs_json() {
    let fx = Fixture::new(3);
    // The same logs partitioned by day (impressions/dt=YYYY-MM-DD/…), with a broken file
    // in a partition years before the window, and a file in a folder readers skip.
    let parted = fx.path("parted");
    rewrite_logs(
        &fx,
        &parted,
        "COPY (SELECT *, CAST(CAST(ts AS DATE) AS VARCHAR) AS dt FROM t) TO '{to}/' \
         STORED AS PARQUET PARTITIONED BY (dt)",
    );
    let days = std::fs::read_dir(parted.join("impressions"))
        .unwrap()
        .count();
    assert!(days >= 5, "one folder per day: {days}");
    let old = parted.join("impressions/dt=2001-01-01");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("broken.parquet"), b"not a parquet file").unwrap();
    let archive = parted.join("actions/archive");
    std::fs::create_dir_all(&archive).unwrap();
    let some_day = std::fs::read_dir(parted.join("actions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("dt="))
        .unwrap();
    let file = std::fs::read_dir(some_day)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::copy(file.path(), archive.join("old.parquet")).unwrap();

    // The window's partitions give the scores of the unpartitioned logs, the broken file
    // is never opened, and every log line is JSON.
    let data = format!("data = \"{}\"\nlookback_days = 2", parted.display());
    let job = fx.job("parted.toml", &data);
    let (ok, stdout, stderr) = run_dumn_in(
        fx.dir.path(),
        &["run", job.to_str().unwrap(), "--log-format", "json"],
        &[("DUMN_PROGRESS_SECONDS", "0")],
    );
    assert!(ok, "{stdout}{stderr}");
    let parted_scores = score_rows(&fx);
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let skipped = logs
        .iter()
        .find(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("not read")
        })
        .unwrap_or_else(|| panic!("no warning about the skipped folder: {stderr}"));
    let message = skipped["fields"]["message"].as_str().unwrap();
    assert!(
        message.contains("table `actions`: 1 file(s) in 1 sub-folder(s)"),
        "{message}"
    );
    assert!(
        logs.iter().any(|l| l["target"] == "dumn::progress"),
        "progress as JSON lines: {stderr}"
    );
    let (ok, text) = dumn(&[
        "run",
        fx.job("flat.toml", "lookback_days = 2").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert_eq!(parted_scores, score_rows(&fx));

    // The whole history reads every partition, the broken one included.
    let all = fx.job(
        "parted-all.toml",
        &data.replace("lookback_days = 2", "lookback_days = 0"),
    );
    let (ok, text) = dumn(&["run", all.to_str().unwrap()]);
    assert!(!ok && text.contains("impressions"), "{text}");
}

#[test]
fn sql_results_print_as_csv_json_and_ndjson_that_parse() {
    let fx = Fixture::new(5);
    let table = format!("c={}", fx.path("data/candidates").display());
    let query = "CREATE VIEW v AS SELECT user_id, item_id FROM c; \
                 SELECT user_id, item_id FROM v ORDER BY user_id, item_id LIMIT 4";
    let run = |format: &str| {
        let (ok, stdout, stderr) = run_dumn_in(
            fx.dir.path(),
            &["sql", "--table", &table, "--format", format, "-c", query],
            &[],
        );
        assert!(ok, "{stderr}");
        stdout
    };
    let expected: Vec<(i64, i64)> = {
        let b = runtime().block_on(read_parquet(&fx.path("data/candidates")));
        let b = concat_batches(&b[0].schema(), &b).unwrap();
        let mut v: Vec<(i64, i64)> = i64s(&b, "user_id")
            .into_iter()
            .zip(i64s(&b, "item_id"))
            .map(|(u, i)| (u.unwrap(), i.unwrap()))
            .collect();
        v.sort();
        v.truncate(4);
        v
    };
    let csv = run("csv");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("user_id,item_id"), "{csv}");
    let rows: Vec<(i64, i64)> = lines
        .map(|l| {
            let (u, i) = l.split_once(',').unwrap();
            (u.parse().unwrap(), i.parse().unwrap())
        })
        .collect();
    assert_eq!(rows, expected);
    let pair = |o: &serde_json::Value| {
        (
            o["user_id"].as_i64().unwrap(),
            o["item_id"].as_i64().unwrap(),
        )
    };
    let json: Vec<serde_json::Value> = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json.iter().map(pair).collect::<Vec<_>>(), expected);
    let ndjson = run("ndjson");
    let rows: Vec<(i64, i64)> = ndjson
        .lines()
        .map(|l| pair(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn a_run_removes_the_scratch_folders_that_killed_runs_left() {
    let fx = Fixture::new(2);
    let tmp = std::env::temp_dir();
    // A folder of a process that is gone, and one of a process that runs (this one).
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dead = tmp.join(format!(
        "dumn-scoring-{dead_pid}-test{}",
        std::process::id()
    ));
    let live = tmp.join(format!("dumn-scoring-{}-test", std::process::id()));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d.join("candidates")).unwrap();
    }
    let job = fx.job("job.toml", "");
    let (ok, text) = dumn(&["run", job.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(!dead.exists(), "the killed run's scratch is removed");
    assert!(live.exists(), "a running process keeps its scratch");
    std::fs::remove_dir_all(&live).unwrap();
}
