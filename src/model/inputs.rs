//! From the data plane's Arrow rows to the model's [`Example`]s.
//!
//! Contract: a batch of `training_examples` or `scoring_input` rows holds the columns that
//! the [`FeatureSchema`] names (`user_id` and the user features, `item_id` and the item
//! features), the four list columns `click_seq`, `unclick_seq`, `like_seq`,
//! `dislike_seq`, and, for training, the labels `clicked` and `disliked`. The training
//! SQL also writes `feedback_seq`, all kinds merged by time, for the DUMN_AF ablation;
//! it is read when present.
//!
//! Categorical cells become ids the way training and scoring both see them: integers as
//! they are, booleans as 0/1, strings by a stable 64-bit hash (FNV-1a), NULL as `None`
//! (the padding row). Floats are refused: a feature is categorical; cast it in SQL.

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};

use super::features::{FeatureSchema, FieldSpec, ValueClass};
use super::{Example, History, FEEDBACK_KINDS};

/// The sequence column of each feedback kind, in [`History::items`] order.
pub const SEQUENCE_COLUMNS: [&str; 4] = ["click_seq", "unclick_seq", "like_seq", "dislike_seq"];

/// The optional column of every kind merged by time, which only the all-in-one ablation
/// (DUMN_AF) reads.
pub const MERGED_SEQUENCE_COLUMN: &str = "feedback_seq";

/// The columns a model with `schema` reads, in the order its SQL functions take them: the
/// user fields (`user_id` first), the item fields (`item_id` first), then
/// [`SEQUENCE_COLUMNS`].
pub fn model_inputs(schema: &FeatureSchema) -> Vec<String> {
    schema
        .user_fields
        .iter()
        .chain(&schema.item_fields)
        .map(|f| f.name.clone())
        .chain(SEQUENCE_COLUMNS.iter().map(|s| s.to_string()))
        .collect()
}

/// A stable 64-bit FNV-1a hash of a string, as an id.
pub fn string_id(s: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).with_context(|| {
        let have: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        format!(
            "the input has no column `{name}` (it has: {})",
            have.join(", ")
        )
    })
}

/// One categorical column as ids.
pub fn categorical(batch: &RecordBatch, name: &str) -> Result<Vec<Option<i64>>> {
    let col = column(batch, name)?;
    let n = col.len();
    let out = match col.data_type() {
        t if t.is_integer() => {
            let c = cast(col, &DataType::Int64)?;
            let c = c.as_primitive::<Int64Type>();
            (0..n).map(|i| c.is_valid(i).then(|| c.value(i))).collect()
        }
        DataType::Boolean => {
            let c = col.as_boolean();
            (0..n)
                .map(|i| c.is_valid(i).then(|| i64::from(c.value(i))))
                .collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            let c = cast(col, &DataType::Utf8)
                .with_context(|| format!("column `{name}` cannot be read as text"))?;
            let c = c.as_string::<i32>();
            (0..n)
                .map(|i| c.is_valid(i).then(|| string_id(c.value(i))))
                .collect()
        }
        DataType::Null => vec![None; n],
        other => bail!(
            "column `{name}` has type {other}; features must be integers, booleans or text \
             (cast or bucket it in SQL)"
        ),
    };
    Ok(out)
}

/// A list-of-ids column; NULL lists and NULL elements are read as empty / skipped.
pub fn id_lists(batch: &RecordBatch, name: &str) -> Result<Vec<Vec<i64>>> {
    let col = column(batch, name)?;
    let col = cast(col, &DataType::new_list(DataType::Int64, true)).with_context(|| {
        format!(
            "column `{name}` must be a list of integer ids, found {}",
            col.data_type()
        )
    })?;
    let lists = col.as_list::<i32>();
    let values = lists.values().as_primitive::<Int64Type>();
    let offsets = lists.value_offsets();
    Ok((0..lists.len())
        .map(|i| {
            if lists.is_null(i) {
                return Vec::new();
            }
            (offsets[i] as usize..offsets[i + 1] as usize)
                .filter(|&j| values.is_valid(j))
                .map(|j| values.value(j))
                .collect()
        })
        .collect())
}

fn labels(batch: &RecordBatch, name: &str) -> Result<Vec<bool>> {
    let col = column(batch, name)?;
    let n = col.len();
    let vals: Vec<Option<i64>> = match col.data_type() {
        DataType::Boolean => {
            let c = col.as_boolean();
            (0..n)
                .map(|i| c.is_valid(i).then(|| i64::from(c.value(i))))
                .collect()
        }
        t if t.is_integer() => categorical(batch, name)?,
        other => bail!("the label column `{name}` must be BOOLEAN or 0/1 integers, found {other}"),
    };
    vals.into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(x) => {
                bail!("the label column `{name}` holds {x} (row {i}); labels must be 0 or 1")
            }
            None => bail!("the label column `{name}` holds NULL (row {i}); labels must be 0 or 1"),
        })
        .collect()
}

/// Fails when column `f` holds another class of values than in training (see
/// [`ValueClass`]); a NULL-only column passes.
fn check_class(batch: &RecordBatch, f: &FieldSpec) -> Result<()> {
    let Some(want) = f.class else {
        return Ok(());
    };
    let col = column(batch, &f.name)?;
    match ValueClass::of(col.data_type()) {
        Some(have) if have != want => bail!(
            "column `{}` holds {have} values ({}), but the model was trained on {want} \
             values: the same value would find another embedding row; cast it in SQL \
             (CAST({} AS {}))",
            f.name,
            col.data_type(),
            f.name,
            match want {
                ValueClass::Integer => "BIGINT",
                ValueClass::Text => "VARCHAR",
                ValueClass::Boolean => "BOOLEAN",
            }
        ),
        _ => Ok(()),
    }
}

/// Converts a batch to examples. With `with_labels`, `clicked` and `disliked` are read
/// (they must be 0/1); without, both labels are false.
pub fn from_batch(
    batch: &RecordBatch,
    schema: &FeatureSchema,
    with_labels: bool,
) -> Result<Vec<Example>> {
    let n = batch.num_rows();
    let read = |fields: &[FieldSpec]| -> Result<Vec<Vec<Option<i64>>>> {
        fields
            .iter()
            .map(|f| {
                check_class(batch, f)?;
                categorical(batch, &f.name)
            })
            .collect()
    };
    let users = read(&schema.user_fields)?;
    let items = read(&schema.item_fields)?;
    let seqs: Vec<Vec<Vec<i64>>> = SEQUENCE_COLUMNS
        .iter()
        .map(|c| id_lists(batch, c))
        .collect::<Result<_>>()?;
    let (clicked, disliked) = if with_labels {
        (labels(batch, "clicked")?, labels(batch, "disliked")?)
    } else {
        (vec![false; n], vec![false; n])
    };
    debug_assert_eq!(FEEDBACK_KINDS.len(), SEQUENCE_COLUMNS.len());
    let mut feedback = batch
        .column_by_name(MERGED_SEQUENCE_COLUMN)
        .map(|_| id_lists(batch, MERGED_SEQUENCE_COLUMN).map(Vec::into_iter))
        .transpose()?;
    let mut seqs: Vec<std::vec::IntoIter<Vec<i64>>> =
        seqs.into_iter().map(Vec::into_iter).collect();
    Ok((0..n)
        .map(|r| Example {
            user: users.iter().map(|c| c[r]).collect(),
            item: items.iter().map(|c| c[r]).collect(),
            history: History {
                items: std::array::from_fn(|k| seqs[k].next().unwrap_or_default()),
                feedback: feedback.as_mut().and_then(Iterator::next),
            },
            click: clicked[r],
            dislike: disliked[r],
        })
        .collect())
}
