//! The model's input rows: from the data plane's Arrow batches to [`Rows`], held column by
//! column the way the batches hold them (no object per row), and the one-row [`Example`]
//! that generated data and tests build by hand.
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
//! (the padding row), a dictionary-encoded column as its values' type. Floats are refused:
//! a feature is categorical; cast it in SQL.

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};

use super::config::FeedbackMode;
use super::features::{FeatureSchema, FieldSpec, ValueClass};

/// Index of each feedback kind in [`History::items`] and [`Rows::sequences`].
pub const CLICK: usize = 0;
pub const UNCLICK: usize = 1;
pub const LIKE: usize = 2;
pub const DISLIKE: usize = 3;
/// Feedback kind names, in [`History::items`] order.
pub const FEEDBACK_KINDS: [&str; 4] = ["click", "unclick", "like", "dislike"];

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
    ids(column(batch, name)?, name)
}

/// `col`'s values as ids (see the module docs). A dictionary-encoded column is read as its
/// values' type: each distinct value is turned into an id once, and rows take their key's.
fn ids(col: &ArrayRef, name: &str) -> Result<Vec<Option<i64>>> {
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
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let c = cast(col, &DataType::Utf8)
                .with_context(|| format!("column `{name}` cannot be read as text"))?;
            let c = c.as_string::<i32>();
            (0..n)
                .map(|i| c.is_valid(i).then(|| string_id(c.value(i))))
                .collect()
        }
        DataType::Dictionary(_, _) => {
            let dict = col.as_any_dictionary();
            let values = ids(dict.values(), name)?;
            let keys = dict.normalized_keys();
            (0..n)
                .map(|i| {
                    if col.is_valid(i) {
                        values[keys[i]]
                    } else {
                        None
                    }
                })
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

/// Lists of ids, flattened as an Arrow list column is: list `r` is
/// `values[offsets[r]..offsets[r + 1]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdLists {
    offsets: Vec<usize>,
    values: Vec<i64>,
}

impl Default for IdLists {
    fn default() -> Self {
        Self {
            offsets: vec![0],
            values: Vec::new(),
        }
    }
}

impl IdLists {
    /// A list-of-ids column. NULL lists are read as empty and NULL elements are skipped.
    pub fn from_column(batch: &RecordBatch, name: &str) -> Result<Self> {
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
        let (first, last) = (offsets[0] as usize, offsets[lists.len()] as usize);
        if lists.null_count() == 0 && values.slice(first, last - first).null_count() == 0 {
            // The usual case: one copy of the values, offsets rebased to 0.
            return Ok(Self {
                offsets: offsets.iter().map(|&o| o as usize - first).collect(),
                values: values.values()[first..last].to_vec(),
            });
        }
        let mut out = Self::default();
        for r in 0..lists.len() {
            if lists.is_valid(r) {
                let range = offsets[r] as usize..offsets[r + 1] as usize;
                out.values.extend(
                    range
                        .filter(|&j| values.is_valid(j))
                        .map(|j| values.value(j)),
                );
            }
            out.offsets.push(out.values.len());
        }
        Ok(out)
    }

    /// List `r`.
    pub fn get(&self, r: usize) -> &[i64] {
        &self.values[self.offsets[r]..self.offsets[r + 1]]
    }

    /// The number of lists.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `other`'s lists at the end.
    fn append(&mut self, other: &IdLists) {
        let base = self.values.len();
        self.values.extend_from_slice(&other.values);
        self.offsets
            .extend(other.offsets[1..].iter().map(|&o| o + base));
    }
}

impl<'a> FromIterator<&'a [i64]> for IdLists {
    fn from_iter<I: IntoIterator<Item = &'a [i64]>>(lists: I) -> Self {
        let mut out = Self::default();
        for list in lists {
            out.values.extend_from_slice(list);
            out.offsets.push(out.values.len());
        }
        out
    }
}

/// A user's four feedback sequences, newest first: one row's history in an [`Example`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Item ids per kind: `[click, unclick, like, dislike]`.
    pub items: [Vec<i64>; 4],
    /// Every kind's items merged by time, newest first (the `feedback_seq` column of
    /// `sql/training_examples.sql`). Only the all-in-one ablation (DUMN_AF) reads it.
    pub feedback: Option<Vec<i64>>,
}

/// One training or evaluation row, built by hand: a user, a target item, the user's
/// history before the impression, and the two labels. Generated data and tests build
/// these; the data plane's batches become [`Rows`] directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// One value per `schema.user_fields` (`None` = NULL).
    pub user: Vec<Option<i64>>,
    /// One value per `schema.item_fields`.
    pub item: Vec<Option<i64>>,
    pub history: History,
    pub click: bool,
    pub dislike: bool,
}

/// Model input rows, column by column: what every tensor of a batch is built from
/// ([`super::UserBatch`], [`super::CandidateBatch`], [`super::Batch`]).
///
/// Contract: every column has [`Rows::len`] entries; `user[f]` and `item[f]` follow
/// `schema.user_fields` and `schema.item_fields` (ids as [`categorical`] reads them);
/// sequences are newest first, uncut (the model cuts them to its `T`); `feedback` is
/// present only when every row has it (the training SQL's `feedback_seq`); the labels are
/// false where none were read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// `[field][row]`.
    pub user: Vec<Vec<Option<i64>>>,
    /// `[field][row]`.
    pub item: Vec<Vec<Option<i64>>>,
    /// `[click, unclick, like, dislike]`.
    pub sequences: [IdLists; 4],
    pub feedback: Option<IdLists>,
    pub clicked: Vec<bool>,
    pub disliked: Vec<bool>,
}

impl Rows {
    /// Reads a batch's model inputs. With `with_labels`, `clicked` and `disliked` are read
    /// (they must be 0/1); without, both labels are false.
    pub fn from_batch(
        batch: &RecordBatch,
        schema: &FeatureSchema,
        with_labels: bool,
    ) -> Result<Self> {
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
        let [click, unclick, like, dislike] =
            SEQUENCE_COLUMNS.map(|c| IdLists::from_column(batch, c));
        let (clicked, disliked) = if with_labels {
            (labels(batch, "clicked")?, labels(batch, "disliked")?)
        } else {
            (vec![false; n], vec![false; n])
        };
        Ok(Self {
            user: read(&schema.user_fields)?,
            item: read(&schema.item_fields)?,
            sequences: [click?, unclick?, like?, dislike?],
            feedback: batch
                .column_by_name(MERGED_SEQUENCE_COLUMN)
                .map(|_| IdLists::from_column(batch, MERGED_SEQUENCE_COLUMN))
                .transpose()?,
            clicked,
            disliked,
        })
    }

    /// The rows of hand-built examples (all with the same number of fields).
    pub fn from_examples(examples: &[Example]) -> Self {
        let field = |count: usize, of: fn(&Example) -> &[Option<i64>]| -> Vec<Vec<Option<i64>>> {
            (0..count)
                .map(|f| examples.iter().map(|e| of(e)[f]).collect())
                .collect()
        };
        let first = examples.first();
        Self {
            user: field(first.map_or(0, |e| e.user.len()), |e| &e.user),
            item: field(first.map_or(0, |e| e.item.len()), |e| &e.item),
            sequences: std::array::from_fn(|k| {
                examples.iter().map(|e| &e.history.items[k][..]).collect()
            }),
            feedback: examples
                .iter()
                .map(|e| e.history.feedback.as_deref())
                .collect::<Option<IdLists>>(),
            clicked: examples.iter().map(|e| e.click).collect(),
            disliked: examples.iter().map(|e| e.dislike).collect(),
        }
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.clicked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `other`'s rows at the end (both read with the same schema). The merged
    /// sequence is kept only when both have it.
    pub fn append(&mut self, other: Rows) {
        if self.is_empty() {
            *self = other;
            return;
        }
        let extend = |mine: &mut Vec<Vec<Option<i64>>>, theirs: &Vec<Vec<Option<i64>>>| {
            mine.iter_mut()
                .zip(theirs)
                .for_each(|(a, b)| a.extend_from_slice(b));
        };
        extend(&mut self.user, &other.user);
        extend(&mut self.item, &other.item);
        for (a, b) in self.sequences.iter_mut().zip(&other.sequences) {
            a.append(b);
        }
        self.feedback = match (self.feedback.take(), &other.feedback) {
            (Some(mut a), Some(b)) => {
                a.append(b);
                Some(a)
            }
            _ => None,
        };
        self.clicked.extend_from_slice(&other.clicked);
        self.disliked.extend_from_slice(&other.disliked);
    }

    /// The rows `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Rows {
        let pick = |cols: &Vec<Vec<Option<i64>>>| -> Vec<Vec<Option<i64>>> {
            cols.iter()
                .map(|c| indices.iter().map(|&r| c[r]).collect())
                .collect()
        };
        let lists = |l: &IdLists| indices.iter().map(|&r| l.get(r)).collect();
        Rows {
            user: pick(&self.user),
            item: pick(&self.item),
            sequences: self.sequences.each_ref().map(lists),
            feedback: self.feedback.as_ref().map(lists),
            clicked: indices.iter().map(|&r| self.clicked[r]).collect(),
            disliked: indices.iter().map(|&r| self.disliked[r]).collect(),
        }
    }

    /// Whether rows `a` and `b` have the same user inputs: profile values and the four
    /// sequences.
    pub fn same_user(&self, a: usize, b: usize) -> bool {
        self.user.iter().all(|c| c[a] == c[b])
            && self.sequences.iter().all(|s| s.get(a) == s.get(b))
    }

    /// Hashes row `r`'s user inputs (what [`Rows::same_user`] compares).
    pub fn hash_user(&self, r: usize, state: &mut impl std::hash::Hasher) {
        use std::hash::Hash;
        self.user.iter().for_each(|c| c[r].hash(state));
        self.sequences.iter().for_each(|s| s.get(r).hash(state));
    }

    /// The sequences the model reads under `mode` for row `r`, each newest first and at
    /// most `t` long.
    pub fn sequences_of(&self, r: usize, mode: FeedbackMode, t: usize) -> Result<Vec<&[i64]>> {
        fn cut(l: &IdLists, r: usize, t: usize) -> &[i64] {
            let s = l.get(r);
            &s[..s.len().min(t)]
        }
        let cut = |l| cut(l, r, t);
        Ok(match mode {
            FeedbackMode::Separate => self.sequences.iter().map(cut).collect(),
            FeedbackMode::ImplicitOnly => self.sequences[..2].iter().map(cut).collect(),
            FeedbackMode::ClickOnly => vec![cut(&self.sequences[CLICK])],
            FeedbackMode::NoSequences => vec![&[]],
            FeedbackMode::AllInOne => match &self.feedback {
                Some(all) => vec![cut(all)],
                None => bail!(
                    "the all-in-one ablation (DUMN_AF) needs the column `feedback_seq`: every \
                     kind of feedback merged by time, newest first (sql/training_examples.sql \
                     writes it; scoring SQL does not, so a DUMN_AF model does not score)"
                ),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, ListArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    /// A batch with `user_id`, `item_id`, and `click_seq` holding `click`; the other three
    /// sequences empty.
    fn batch(click: Vec<Option<Vec<Option<i64>>>>) -> RecordBatch {
        let n = click.len();
        let list = |v: Vec<Option<Vec<Option<i64>>>>| -> ArrayRef {
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(v))
        };
        let ids = |base: i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| base + i),
            ))
        };
        let mut cols = vec![ids(100), ids(200), list(click)];
        cols.extend((0..3).map(|_| list(vec![Some(vec![]); n])));
        let fields: Vec<Field> = ["user_id", "item_id"]
            .iter()
            .chain(&SEQUENCE_COLUMNS)
            .zip(&cols)
            .map(|(name, c)| Field::new(*name, c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    }

    #[test]
    fn lists_read_null_lists_as_empty_and_skip_null_elements_also_in_a_slice() {
        let b = batch(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![Some(3), None, Some(4)]),
            Some(vec![]),
            Some(vec![Some(5)]),
        ]);
        let all = IdLists::from_column(&b, "click_seq").unwrap();
        let got: Vec<&[i64]> = (0..all.len()).map(|r| all.get(r)).collect();
        assert_eq!(got, vec![&[1, 2][..], &[], &[3, 4], &[], &[5]]);
        // A slice of a batch (its offsets start past 0), without nulls: the fast path.
        let tail = IdLists::from_column(&b.slice(3, 2), "click_seq").unwrap();
        assert_eq!((tail.get(0), tail.get(1)), (&[][..], &[5][..]));
        let head = IdLists::from_column(&b.slice(0, 1), "click_seq").unwrap();
        assert_eq!(head.len(), 1);
        assert_eq!(head.get(0), &[1, 2]);
    }

    #[test]
    fn appended_and_selected_rows_keep_each_rows_values_together() {
        let schema = FeatureSchema::ids_only(50);
        let a = Rows::from_batch(
            &batch(vec![Some(vec![Some(1)]), Some(vec![Some(2), Some(3)])]),
            &schema,
            false,
        )
        .unwrap();
        let b = Rows::from_batch(
            &batch(vec![Some(vec![Some(4), Some(5), Some(6)])]),
            &schema,
            false,
        )
        .unwrap();
        let mut all = a.clone();
        all.append(b);
        assert_eq!(all.len(), 3);
        assert_eq!(all.sequences[CLICK].get(2), &[4, 5, 6]);
        assert_eq!(all.user[0], vec![Some(100), Some(101), Some(100)]);
        let picked = all.select(&[2, 0]);
        assert_eq!(picked.user[0], vec![Some(100), Some(100)]);
        assert_eq!(picked.item[0], vec![Some(200), Some(200)]);
        assert_eq!(picked.sequences[CLICK].get(0), &[4, 5, 6]);
        assert_eq!(picked.sequences[CLICK].get(1), &[1]);
        assert!(
            picked.same_user(0, 0) && !picked.same_user(0, 1),
            "same id, other history"
        );
    }

    #[test]
    fn a_dictionary_encoded_column_gives_the_ids_of_its_plain_values() {
        use datafusion::arrow::array::{DictionaryArray, StringArray};
        use datafusion::arrow::datatypes::{Int16Type, Int32Type};
        let one = |col: ArrayRef| {
            let schema = Schema::new(vec![Field::new("c", col.data_type().clone(), true)]);
            let b = RecordBatch::try_new(Arc::new(schema), vec![col]).unwrap();
            categorical(&b, "c").unwrap()
        };
        let text: DictionaryArray<Int32Type> = vec![Some("a"), None, Some("b"), Some("a")]
            .into_iter()
            .collect();
        let plain_text = StringArray::from(vec![Some("a"), None, Some("b"), Some("a")]);
        assert_eq!(one(Arc::new(text)), one(Arc::new(plain_text)));
        // Integers stay integers (not the hash of their text), as training reads them.
        let ints = DictionaryArray::<Int16Type>::try_new(
            vec![1i16, 0, 1].into(),
            Arc::new(Int64Array::from(vec![Some(7), None])),
        )
        .unwrap();
        assert_eq!(one(Arc::new(ints)), vec![None, Some(7), None]);
        let keyed = DictionaryArray::<Int16Type>::try_new(
            vec![Some(0i16), None, Some(0)].into(),
            Arc::new(Int64Array::from(vec![42])),
        )
        .unwrap();
        assert_eq!(one(Arc::new(keyed)), vec![Some(42), None, Some(42)]);
    }

    #[test]
    fn a_missing_sequence_column_is_named() {
        let b = batch(vec![Some(vec![Some(1)])]);
        let b = b.project(&[0, 1, 2, 3, 4]).unwrap(); // no dislike_seq
        let err = Rows::from_batch(&b, &FeatureSchema::ids_only(50), false).unwrap_err();
        assert!(format!("{err:#}").contains("dislike_seq"), "{err:#}");
    }
}
