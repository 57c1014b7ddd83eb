//! The data plane on generated logs: the SQL's sequences equal a brute-force reference
//! computed in Rust, so they are point-in-time, newest first, capped at T, and empty (not
//! NULL) for users without history.

use std::collections::HashMap;
use std::path::Path;

use crate::common::data::*;
use dumn::data::pipeline::ModelInput;
use dumn::data::script::Params;
use dumn::data::sql::parse_time;
use dumn::io::parquet::WriteSummary;
use dumn::io::Location;
use dumn::synthetic::logs::{write_logs, LogsConfig};

const T: usize = 6;

fn small_gen() -> LogsConfig {
    LogsConfig {
        users: 300,
        impressions_per_user: 40,
        candidates_per_user: 8,
        topics: 6,
        items_per_topic: 30,
        days: 6,
        seed: 11,
        ..Default::default()
    }
}

async fn build(data: &Path, out: &Path, output: ModelInput, params: Params) -> WriteSummary {
    let (summary, warnings) = build_output(&local_inputs(data), output, &params, out)
        .await
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    summary
}

#[test]
fn training_examples_match_the_point_in_time_reference() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("examples");
    runtime().block_on(async {
        let cfg = small_gen();
        let gen = write_logs(&cfg, &Location::Local(data.clone()), |_| {})
            .await
            .unwrap();
        let summary = build(
            &data,
            &out,
            ModelInput::Training,
            Params::new().seq_len(T).unwrap().merged_feedback(true),
        )
        .await;
        assert!(out.join("_SUCCESS").is_file());
        let reference = Reference::load(&data).await;

        let mut rows = 0;
        let (mut full, mut empty, mut disliked, mut clicked) = (0, 0, 0, 0);
        let mut keys = std::collections::HashSet::new();
        for b in read_parquet(&out).await {
            let (u, i, t) = (i64s(&b, "user_id"), i64s(&b, "item_id"), micros(&b, "ts"));
            let (c, d) = (bools(&b, "clicked"), bools(&b, "disliked"));
            let seqs: Vec<_> = KINDS
                .iter()
                .map(|k| lists(&b, &format!("{k}_seq")))
                .collect();
            let merged = lists(&b, "feedback_seq");
            let (region, category) = (i64s(&b, "region"), i64s(&b, "category"));
            for r in 0..b.num_rows() {
                rows += 1;
                let (user, item, ts) = (u[r].unwrap(), i[r].unwrap(), t[r].unwrap());
                assert!(
                    keys.insert((user, item, ts)),
                    "impression {user}/{item}/{ts} twice"
                );
                let want = reference.sequences(user, ts, T);
                for k in 0..4 {
                    let got = seqs[k][r].as_ref().expect("a list, never NULL");
                    assert_eq!(got, &want[k], "{} of user {user} at {ts}", KINDS[k]);
                    full += usize::from(got.len() == T);
                    empty += usize::from(got.is_empty());
                }
                assert_eq!(
                    merged[r].as_ref().expect("a list, never NULL"),
                    &reference.merged(user, ts, T),
                    "feedback_seq of user {user} at {ts}"
                );
                assert_eq!(
                    d[r],
                    Some(reference.disliked(user, item, ts)),
                    "disliked {user}/{item}"
                );
                disliked += usize::from(d[r].unwrap());
                clicked += usize::from(c[r].unwrap());
                assert!(
                    region[r].is_some() && category[r].is_some(),
                    "features joined"
                );
            }
        }
        assert_eq!(rows as u64, summary.rows);
        // Every generated impression has a distinct (user, item, time): one example each.
        assert_eq!(rows as u64, gen.impressions);
        // The check must have bitten on all the cases: capped, empty, both labels.
        assert!(full > 1000 && empty > 1000, "full {full}, empty {empty}");
        assert!(
            disliked > 50 && clicked > 1000,
            "disliked {disliked}, clicked {clicked}"
        );
    });
}

#[test]
fn as_of_midnight_examples_see_the_history_the_nightly_job_saw() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("examples");
    runtime().block_on(async {
        let gen = write_logs(&small_gen(), &Location::Local(data.clone()), |_| {})
            .await
            .unwrap();
        let params = Params::new()
            .seq_len(T)
            .unwrap()
            .merged_feedback(true)
            .as_of_midnight(true);
        let summary = build(&data, &out, ModelInput::Training, params).await;
        assert_eq!(
            summary.rows, gen.impressions,
            "one example per impression still"
        );
        let reference = Reference::load(&data).await;
        const DAY: i64 = 86_400_000_000;
        let (mut rows, mut cut_mattered) = (0, 0);
        for b in read_parquet(&out).await {
            let (u, t) = (i64s(&b, "user_id"), micros(&b, "ts"));
            let seqs: Vec<_> = KINDS
                .iter()
                .map(|k| lists(&b, &format!("{k}_seq")))
                .collect();
            let merged = lists(&b, "feedback_seq");
            for r in 0..b.num_rows() {
                rows += 1;
                let (user, ts) = (u[r].unwrap(), t[r].unwrap());
                let midnight = ts - ts.rem_euclid(DAY);
                let want = reference.sequences(user, midnight, T);
                for k in 0..4 {
                    let got = seqs[k][r].as_ref().expect("a list, never NULL");
                    assert_eq!(got, &want[k], "{} of user {user} at {ts}", KINDS[k]);
                }
                assert_eq!(
                    merged[r].as_ref().unwrap(),
                    &reference.merged(user, midnight, T)
                );
                cut_mattered += usize::from(want != reference.sequences(user, ts, T));
            }
        }
        assert_eq!(rows as u64, summary.rows);
        assert!(
            cut_mattered > 1000,
            "the cut changed {cut_mattered} histories"
        );
    });
}

#[test]
fn scoring_input_sees_only_feedback_before_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("scoring");
    runtime().block_on(async {
        let cfg = small_gen();
        let gen = write_logs(&cfg, &Location::Local(data.clone()), |_| {})
            .await
            .unwrap();
        // A cutoff in the middle of the logs, at a time of day: later events must not leak.
        let cutoff = parse_time("2026-11-04T13:30:00").unwrap();
        let cutoff_us = cutoff.and_utc().timestamp_micros();
        let params = Params::new().seq_len(T).unwrap().cutoff(cutoff);
        let summary = build(&data, &out, ModelInput::Scoring, params).await;
        assert_eq!(summary.rows, gen.candidates, "one row per candidate");
        let reference = Reference::load(&data).await;
        let later = reference
            .events
            .values()
            .flatten()
            .filter(|e| e.ts >= cutoff_us)
            .count();
        assert!(later > 1000, "the cutoff must exclude events ({later})");

        let mut no_history = 0;
        let mut per_user: HashMap<i64, usize> = HashMap::new();
        for b in read_parquet(&out).await {
            let (u, src) = (i64s(&b, "user_id"), strings(&b, "source"));
            let seqs: Vec<_> = KINDS
                .iter()
                .map(|k| lists(&b, &format!("{k}_seq")))
                .collect();
            for r in 0..b.num_rows() {
                let user = u[r].unwrap();
                *per_user.entry(user).or_default() += 1;
                assert!(src[r].is_some(), "pass-through column kept");
                let want = reference.sequences(user, cutoff_us, T);
                for k in 0..4 {
                    assert_eq!(seqs[k][r].as_ref().expect("never NULL"), &want[k]);
                }
                if !reference.events.contains_key(&user) {
                    no_history += 1;
                    assert!(seqs.iter().all(|s| s[r].as_ref().unwrap().is_empty()));
                }
            }
        }
        assert_eq!(
            per_user.len(),
            cfg.users,
            "every user's candidates are there"
        );
        assert!(
            no_history > 0,
            "new users (no logs) get rows with empty lists"
        );
    });
}

#[test]
fn a_rerun_replaces_the_output_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = dir.path().join("scoring");
    runtime().block_on(async {
        let cfg = LogsConfig {
            users: 50,
            ..small_gen()
        };
        write_logs(&cfg, &Location::Local(data.clone()), |_| {})
            .await
            .unwrap();
        let params = Params::new().seq_len(T).unwrap().cutoff(cfg.cutoff());
        let first = build(&data, &out, ModelInput::Scoring, params.clone()).await;
        let second = build(&data, &out, ModelInput::Scoring, params).await;
        assert_eq!(first.rows, second.rows);
        let total: usize = read_parquet(&out).await.iter().map(|b| b.num_rows()).sum();
        assert_eq!(
            total as u64, second.rows,
            "no file of the first run is left"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("staging") || n.contains("replaced"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    });
}
