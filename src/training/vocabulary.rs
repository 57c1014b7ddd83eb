//! The embedding vocabularies of a new model, built from the train split.
//!
//! Contract: one pass over the train split's examples counts every value of every feature
//! column, read exactly as the model reads it ([`crate::model::inputs::categorical`]: text
//! hashed, booleans 0/1). A value seen at least `min_count` times gets a row of its own;
//! when more values qualify than `max_rows − 2`, the most frequent keep their rows (ties
//! broken by the smaller value). Everything else shares the out-of-vocabulary row, which
//! therefore trains on rare values and serves unseen ones. Validation and test rows never
//! enter a vocabulary.
//!
//! The same pass records, for each `item_id` with a row, its other item fields (the first
//! values seen), so sequence positions can be embedded with the item's category and
//! brand as the candidate item is ([`crate::model::embedding`]).

use std::collections::HashMap;

use anyhow::Result;
use futures::StreamExt;

use super::dataset::{ExampleFiles, Part, Split};
use crate::model::features::{Coverage, FeatureSchema, FieldSpec, ValueClass, Vocabulary};
use crate::model::inputs::categorical;

/// How vocabularies are cut.
#[derive(Debug, Clone, Copy)]
pub struct VocabularyOptions {
    /// Training rows a value needs for a row of its own.
    pub min_count: u64,
    /// The most rows of one table (values past it share the out-of-vocabulary row).
    pub max_rows: i64,
}

/// The vocabularies of a training set: the schema with one vocabulary per field, and the
/// table of each item's other fields by its `item_id` row.
#[derive(Debug, Clone)]
pub struct Vocabularies {
    pub schema: FeatureSchema,
    /// `[rows of item_id] × [n_item_fields − 1]` row-major: the rows of each item's other
    /// fields (0 for the reserved rows and unknown values). Empty without other fields.
    pub item_fields: Vec<i64>,
}

/// Counts per value of one column.
#[derive(Default)]
struct Counts(HashMap<i64, u64>);

impl Counts {
    fn add(&mut self, values: &[Option<i64>]) {
        for v in values.iter().flatten() {
            *self.0.entry(*v).or_insert(0) += 1;
        }
    }

    /// The vocabulary and its coverage under `options`.
    fn vocabulary(&self, options: &VocabularyOptions) -> (Vocabulary, Coverage) {
        let mut kept: Vec<(i64, u64)> = self
            .0
            .iter()
            .filter(|(_, &c)| c >= options.min_count.max(1))
            .map(|(&v, &c)| (v, c))
            .collect();
        kept.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        kept.truncate((options.max_rows - Vocabulary::RESERVED).max(0) as usize);
        let distinct = self.0.len() as u64;
        let coverage = Coverage {
            distinct,
            min_count: options.min_count.max(1),
            shared_rate: if distinct == 0 {
                0.0
            } else {
                (distinct - kept.len() as u64) as f64 / distinct as f64
            },
        };
        (
            Vocabulary::new(kept.into_iter().map(|(v, _)| v).collect()),
            coverage,
        )
    }
}

/// Builds the vocabularies of the columns `names` names (its sizes are ignored) from the
/// train split of `files`.
pub async fn build(
    files: &ExampleFiles,
    split: &Split,
    names: &FeatureSchema,
    options: &VocabularyOptions,
) -> Result<Vocabularies> {
    let user_cols: Vec<&str> = names.user_fields.iter().map(|f| f.name.as_str()).collect();
    let item_cols: Vec<&str> = names.item_fields.iter().map(|f| f.name.as_str()).collect();
    let mut user_counts: Vec<Counts> = user_cols.iter().map(|_| Counts::default()).collect();
    let mut item_counts: Vec<Counts> = item_cols.iter().map(|_| Counts::default()).collect();
    // item_id → its other fields, first seen.
    let mut fields_of_item: HashMap<i64, Vec<Option<i64>>> = HashMap::new();
    let mut stream = files.stream(&split.predicate(Part::Train)).await?;
    // Each column's class of values, as training reads them (see `ValueClass`).
    let mut classes: HashMap<String, ValueClass> = HashMap::new();
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        for f in batch.schema().fields() {
            if let Some(c) = ValueClass::of(f.data_type()) {
                classes.entry(f.name().clone()).or_insert(c);
            }
        }
        for (name, counts) in user_cols.iter().zip(&mut user_counts) {
            counts.add(&categorical(&batch, name)?);
        }
        let items: Vec<Vec<Option<i64>>> = item_cols
            .iter()
            .map(|c| categorical(&batch, c))
            .collect::<Result<_>>()?;
        for (values, counts) in items.iter().zip(&mut item_counts) {
            counts.add(values);
        }
        for (row, id) in items[0].iter().enumerate() {
            if let Some(id) = id {
                fields_of_item
                    .entry(*id)
                    .or_insert_with(|| items[1..].iter().map(|c| c[row]).collect());
            }
        }
    }
    let fields = |cols: &[&str], counts: &[Counts]| -> Vec<FieldSpec> {
        cols.iter()
            .zip(counts)
            .map(|(name, c)| {
                let (v, coverage) = c.vocabulary(options);
                FieldSpec {
                    class: classes.get(*name).copied(),
                    ..FieldSpec::with_vocabulary(*name, v, coverage)
                }
            })
            .collect()
    };
    let schema = FeatureSchema {
        user_fields: fields(&user_cols, &user_counts),
        item_fields: fields(&item_cols, &item_counts),
    };
    let others = &schema.item_fields[1..];
    let mut item_fields = Vec::new();
    if !others.is_empty() {
        let ids = schema.item_fields[0]
            .vocabulary
            .as_ref()
            .expect("built above")
            .values();
        item_fields = vec![0i64; (ids.len() + Vocabulary::RESERVED as usize) * others.len()];
        for (i, id) in ids.iter().enumerate() {
            let row = (i + Vocabulary::RESERVED as usize) * others.len();
            for (f, (spec, value)) in others.iter().zip(&fields_of_item[id]).enumerate() {
                item_fields[row + f] = spec.index(*value);
            }
        }
    }
    Ok(Vocabularies {
        schema,
        item_fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_values_share_the_out_of_vocabulary_row_and_the_cap_keeps_the_most_frequent() {
        let mut c = Counts::default();
        c.add(&[Some(5), Some(5), Some(5), Some(9), Some(9), Some(7), None]);
        let (v, cov) = c.vocabulary(&VocabularyOptions {
            min_count: 2,
            max_rows: 100,
        });
        assert_eq!(v.values(), &[5, 9]);
        assert_eq!(v.row(7), Vocabulary::OUT_OF_VOCABULARY);
        assert_eq!((cov.distinct, cov.min_count), (3, 2));
        assert!((cov.shared_rate - 1.0 / 3.0).abs() < 1e-12);
        let (capped, cov) = c.vocabulary(&VocabularyOptions {
            min_count: 1,
            max_rows: 3,
        });
        assert_eq!(
            capped.values(),
            &[5],
            "one row left after the two reserved ones"
        );
        assert!((cov.shared_rate - 2.0 / 3.0).abs() < 1e-12);
    }
}
