//! The two real datasets in ../shared/datasets load through their adapters in
//! sql/adapters/ and become training examples.

use crate::common::data::*;
use dumn::data::contract::Inputs;
use dumn::data::pipeline::ModelInput;
use dumn::data::script::{self, Params};
use dumn::io::Location;

/// Builds the training examples of `dataset` with `adapter`, returning the written rows.
fn examples(
    adapter: &str,
    dataset: &str,
    out: &std::path::Path,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    examples_from(adapter, &shared_dir().join("datasets").join(dataset), out)
}

/// [`examples`] from the dataset's folder `data`.
fn examples_from(
    adapter: &str,
    data: &std::path::Path,
    out: &std::path::Path,
) -> Vec<datafusion::arrow::array::RecordBatch> {
    let inputs = Inputs {
        data: Some(Location::Local(data.to_path_buf())),
        adapter: Some(script::adapter(adapter).unwrap()),
        ..Default::default()
    };
    let params = Params::new().seq_len(20).unwrap();
    runtime().block_on(async {
        build_output(&inputs, ModelInput::Training, &params, out)
            .await
            .unwrap();
        read_parquet(out).await
    })
}

#[test]
fn kuairand_loads_with_all_four_signals() {
    let dir = tempfile::tempdir().unwrap();
    let batches = examples("kuairand", "kuairand27k_like_hate", &dir.path().join("out"));
    let (mut rows, mut clicked, mut disliked) = (0, 0, 0);
    let mut nonempty = [0usize; 4];
    for b in &batches {
        rows += b.num_rows();
        clicked += bools(b, "clicked")
            .iter()
            .filter(|c| **c == Some(true))
            .count();
        disliked += bools(b, "disliked")
            .iter()
            .filter(|c| **c == Some(true))
            .count();
        for (k, kind) in KINDS.iter().enumerate() {
            nonempty[k] += lists(b, &format!("{kind}_seq"))
                .iter()
                .filter(|s| !s.as_ref().unwrap().is_empty())
                .count();
        }
        assert!(
            strings(b, "user_active_degree").iter().all(Option::is_some),
            "profile joined"
        );
    }
    // SOURCE.txt: 41,828 rows, 27,484 clicked, 8,083 hated (each row its own impression).
    assert!((41_000..=41_828).contains(&rows), "{rows} examples");
    assert!((26_500..=27_484).contains(&clicked), "{clicked} clicked");
    assert!((7_800..=8_083).contains(&disliked), "{disliked} disliked");
    assert!(
        nonempty.iter().all(|n| *n > 5_000),
        "every kind of sequence is used: {nonempty:?}"
    );
}

#[test]
fn taobao_loads_with_likes_from_the_behaviour_log() {
    let dir = tempfile::tempdir().unwrap();
    let batches = examples("taobao", "ali_display_dmr_sample", &dir.path().join("out"));
    let (mut rows, mut clicked, mut with_likes) = (0, 0, 0);
    for b in &batches {
        rows += b.num_rows();
        clicked += bools(b, "clicked")
            .iter()
            .filter(|c| **c == Some(true))
            .count();
        with_likes += lists(b, "like_seq")
            .iter()
            .filter(|s| !s.as_ref().unwrap().is_empty())
            .count();
        assert!(
            lists(b, "dislike_seq")
                .iter()
                .all(|s| s.as_ref().unwrap().is_empty()),
            "no dislikes in this dataset"
        );
        assert!(
            i64s(b, "cate_id").iter().all(Option::is_some),
            "ad features joined"
        );
        assert!(
            i64s(b, "age_level").iter().all(Option::is_some),
            "profile joined"
        );
    }
    // SOURCE.txt: 500 rows, 210 clicked.
    assert_eq!(rows, 500);
    assert_eq!(clicked, 210);
    assert!(
        with_likes > 100,
        "cart/fav/buy events become likes: {with_likes}"
    );
}

#[test]
fn an_adapter_reads_a_folder_whose_name_has_spaces_quotes_hashes_percents_and_accents() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("it's #1 at 100% — ünï");
    std::fs::create_dir_all(&odd).unwrap();
    let from = shared_dir().join("datasets/ali_display_dmr_sample");
    std::fs::copy(
        from.join("alimama_sampled_train.txt"),
        odd.join("alimama_sampled_train.txt"),
    )
    .unwrap();
    let rows = |b: &[datafusion::arrow::array::RecordBatch]| -> usize {
        b.iter().map(|b| b.num_rows()).sum()
    };
    let here = examples_from("taobao", &odd, &dir.path().join("a"));
    let there = examples("taobao", "ali_display_dmr_sample", &dir.path().join("b"));
    assert!(rows(&here) > 0);
    assert_eq!(rows(&here), rows(&there));
}
