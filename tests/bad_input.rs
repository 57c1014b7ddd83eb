//! Bad input to the data plane: each case is a clear error naming the table and column (or
//! the path), or a documented behaviour; a failed run leaves no partial output.

use std::path::Path;

use crate::common::data::*;
use dumn::data::pipeline::ModelInput;
use dumn::data::script::Params;

const USERS: &str = "user_id,region\n1,10\n2,20\n3,30\n";
const ITEMS: &str = "item_id,category\n100,1\n101,1\n102,2\n103,3\n";
const ACTIONS: &str = "user_id,item_id,ts,action\n\
1,100,2026-11-01T10:00:05,like\n\
1,103,2026-11-01T11:00:00,hate\n";

/// Five impressions of users 1 and 2 over a day.
const IMPRESSIONS: &str = "user_id,item_id,ts,clicked\n\
1,100,2026-11-01T10:00:00,true\n\
1,101,2026-11-01T12:00:00,false\n\
1,102,2026-11-01T13:00:00,true\n\
2,101,2026-11-01T09:00:00,true\n\
2,103,2026-11-01T14:00:00,false\n";

/// Writes a CSV dataset with the given impressions (and the default other tables).
fn dataset(dir: &Path, impressions: &str) {
    for (name, text) in [
        ("users", USERS),
        ("items", ITEMS),
        ("actions", ACTIONS),
        ("impressions", impressions),
    ] {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("part-0.csv"), text).unwrap();
    }
}

async fn training(data: &Path, out: &Path) -> anyhow::Result<(u64, Vec<String>)> {
    let params = Params::new().seq_len(10)?;
    let (summary, warnings) =
        build_output(&local_inputs(data), ModelInput::Training, &params, out).await?;
    Ok((summary.rows, warnings))
}

fn error_of(impressions: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), impressions);
    let out = dir.path().join("out");
    let err = runtime()
        .block_on(training(dir.path(), &out))
        .expect_err("bad input must fail");
    assert!(!out.exists(), "nothing written on failure");
    format!("{err:#}")
}

/// Replaces `dir/<table>/part-0.csv` with a typed Parquet file holding no rows.
fn replace_with_empty_parquet(
    dir: &Path,
    table: &str,
    empty: &datafusion::arrow::array::RecordBatch,
) {
    std::fs::remove_file(dir.join(table).join("part-0.csv")).unwrap();
    let file = std::fs::File::create(dir.join(table).join("part-0.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, empty.schema(), None).unwrap();
    w.write(empty).unwrap();
    w.close().unwrap();
}

#[test]
fn the_clean_dataset_builds() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), IMPRESSIONS);
    let (rows, warnings) = runtime()
        .block_on(training(dir.path(), &dir.path().join("o")))
        .unwrap();
    assert_eq!(rows, 5);
    assert!(warnings.is_empty());
}

#[test]
fn a_missing_column_is_named() {
    let err = error_of("user_id,item_id,ts\n1,100,2026-11-01T10:00:00\n");
    assert!(
        err.contains("`impressions`") && err.contains("`clicked`"),
        "{err}"
    );
}

#[test]
fn a_wrong_column_type_is_named() {
    let err = error_of("user_id,item_id,ts,clicked\n1,100,2026-11-01T10:00:00,yes\n");
    assert!(
        err.contains("`impressions`") && err.contains("`clicked`"),
        "{err}"
    );
    assert!(err.contains("BOOLEAN"), "{err}");
}

#[test]
fn an_empty_table_is_an_error_for_training() {
    use datafusion::arrow::array::{
        BooleanArray, Int64Array, RecordBatch, TimestampMicrosecondArray,
    };
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), IMPRESSIONS);
    // A typed Parquet table with no rows.
    let empty = RecordBatch::try_from_iter(vec![
        (
            "user_id",
            Arc::new(Int64Array::from(Vec::<i64>::new())) as _,
        ),
        (
            "item_id",
            Arc::new(Int64Array::from(Vec::<i64>::new())) as _,
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(Vec::<i64>::new())) as _,
        ),
        (
            "clicked",
            Arc::new(BooleanArray::from(Vec::<bool>::new())) as _,
        ),
    ])
    .unwrap();
    replace_with_empty_parquet(dir.path(), "impressions", &empty);
    let out = dir.path().join("out");
    let err = runtime().block_on(training(dir.path(), &out)).unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("`impressions`") && err.contains("no rows"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_path_that_does_not_exist_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let err = runtime()
        .block_on(training(&missing, &dir.path().join("out")))
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("nowhere") && err.contains("`impressions`"),
        "{err}"
    );
}

#[test]
fn null_ids_are_skipped_with_a_warning() {
    let with_nulls =
        format!("{IMPRESSIONS},101,2026-11-01T15:00:00,true\n1,,2026-11-01T16:00:00,false\n");
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), &with_nulls);
    let out = dir.path().join("out");
    let (rows, warnings) = runtime().block_on(training(dir.path(), &out)).unwrap();
    assert_eq!(rows, 5, "the two rows with a NULL id are dropped");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`impressions`") && warnings[0].contains("2 of 7"),
        "{warnings:?}"
    );
}

#[test]
fn duplicate_events_count_once() {
    // Impression of user 1 at 10:00 logged three times, once as not clicked.
    let dup =
        format!("{IMPRESSIONS}1,100,2026-11-01T10:00:00,true\n1,100,2026-11-01T10:00:00,false\n");
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), &dup);
    let out = dir.path().join("out");
    let (rows, _) = runtime().block_on(training(dir.path(), &out)).unwrap();
    assert_eq!(rows, 5, "one example per distinct impression");
    let batches = runtime().block_on(read_parquet(&out));
    for b in &batches {
        let (u, i, c) = (i64s(b, "user_id"), i64s(b, "item_id"), bools(b, "clicked"));
        let clicks = lists(b, "click_seq");
        let unclicks = lists(b, "unclick_seq");
        for r in 0..b.num_rows() {
            if (u[r], i[r]) == (Some(1), Some(100)) {
                assert_eq!(c[r], Some(true), "clicked in any copy counts as clicked");
            }
            if (u[r], i[r]) == (Some(1), Some(102)) {
                // Before 13:00: the 10:00 click (once) and the 12:00 unclick.
                assert_eq!(clicks[r].as_deref(), Some(&[100][..]));
                assert_eq!(unclicks[r].as_deref(), Some(&[101][..]));
            }
        }
    }
}

#[test]
fn duplicate_user_rows_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), IMPRESSIONS);
    std::fs::write(
        dir.path().join("users/part-0.csv"),
        "user_id,region\n1,10\n1,11\n",
    )
    .unwrap();
    let err = runtime()
        .block_on(training(dir.path(), &dir.path().join("out")))
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(
        err.contains("`users`") && err.contains("user_id 1"),
        "{err}"
    );
}

#[test]
fn a_failure_mid_write_leaves_the_previous_output() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), IMPRESSIONS);
    let out = dir.path().join("out");
    runtime().block_on(training(dir.path(), &out)).unwrap();
    let before = std::fs::read(out.join("_SUCCESS")).unwrap();
    // A value that only fails when the rows are read (past the rows used to infer types).
    let mut bad = String::from("user_id,item_id,ts,clicked\n");
    for k in 0..3000 {
        bad.push_str(&format!(
            "3,{},2026-11-02T00:00:{:02},true\n",
            100 + k % 4,
            k % 60
        ));
    }
    bad.push_str("3,100,2026-11-03T00:00:00,maybe\n");
    std::fs::write(dir.path().join("impressions/part-0.csv"), bad).unwrap();
    let err = runtime().block_on(training(dir.path(), &out)).unwrap_err();
    assert!(format!("{err:#}").contains("maybe"), "{err:#}");
    assert_eq!(
        std::fs::read(out.join("_SUCCESS")).unwrap(),
        before,
        "previous output intact"
    );
    let rows: usize = runtime()
        .block_on(read_parquet(&out))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(rows, 5);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("staging")), "{names:?}");
}

#[test]
fn an_empty_actions_table_builds_with_a_warning() {
    use datafusion::arrow::array::{
        Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), IMPRESSIONS);
    let empty = RecordBatch::try_from_iter(vec![
        (
            "user_id",
            Arc::new(Int64Array::from(Vec::<i64>::new())) as _,
        ),
        (
            "item_id",
            Arc::new(Int64Array::from(Vec::<i64>::new())) as _,
        ),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(Vec::<i64>::new())) as _,
        ),
        (
            "action",
            Arc::new(StringArray::from(Vec::<String>::new())) as _,
        ),
    ])
    .unwrap();
    replace_with_empty_parquet(dir.path(), "actions", &empty);
    let (rows, warnings) = runtime()
        .block_on(training(dir.path(), &dir.path().join("o")))
        .unwrap();
    assert_eq!(rows, 5);
    assert!(
        warnings.iter().any(|w| w.contains("`actions` has no rows")),
        "{warnings:?}"
    );
}
