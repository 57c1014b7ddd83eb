//! The feature schema: which columns feed the model, and how raw ids become embedding rows.
//!
//! Contract:
//! - the user side has `user_id` first, then any categorical profile columns;
//! - the item side has `item_id` first, then any categorical item columns (brand, category…);
//! - the four feedback sequences hold item ids; each position is embedded with the
//!   `item_id` table and, when the model has a vocabulary, with the item's other fields
//!   (see [`super::embedding`]);
//! - row 0 of every table is padding and NULL (an all-zero vector that never trains).
//!
//! Two ways to map a value to a row, recorded per field in the manifest ([`Lookup`]):
//! - **vocabulary** (what `dumn train` builds): every value seen at least `min_count` times
//!   in the training split has its own row `2..rows`; row 1 is the shared out-of-vocabulary
//!   row, for values seen less often and values never seen (it trains on the rare ones).
//!   The sorted values are stored in the weights file beside the model's tensors;
//! - **hashed** (models from before vocabularies, and [`FeatureSchema::ids_only`]): every
//!   value is hashed into rows `1..rows` (SplitMix64), so values may share a row.
//!
//! [`Coverage`] records, for the artifact, how many distinct values training saw and what
//! share of them do not have a row of their own.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How a field's values become rows of its embedding table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Lookup {
    /// SplitMix64 into `1..rows` (the default of manifests written before vocabularies).
    #[default]
    Hashed,
    /// A [`Vocabulary`] built from the training split.
    Vocabulary,
}

/// The values of one field that have a row of their own, sorted. Row of the `i`-th value:
/// `i + 2`; any other value: [`Vocabulary::OUT_OF_VOCABULARY`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vocabulary {
    values: Vec<i64>,
}

impl Vocabulary {
    /// The shared row of every value without a row of its own.
    pub const OUT_OF_VOCABULARY: i64 = 1;
    /// Rows before the first value's: padding and out-of-vocabulary.
    pub const RESERVED: i64 = 2;

    /// A vocabulary of `values` (any order, duplicates ignored).
    pub fn new(mut values: Vec<i64>) -> Self {
        values.sort_unstable();
        values.dedup();
        Self { values }
    }

    /// The row of `value`.
    pub fn row(&self, value: i64) -> i64 {
        match self.values.binary_search(&value) {
            Ok(i) => i as i64 + Self::RESERVED,
            Err(_) => Self::OUT_OF_VOCABULARY,
        }
    }

    /// Rows of the embedding table this vocabulary needs.
    pub fn rows(&self) -> i64 {
        self.values.len() as i64 + Self::RESERVED
    }

    /// The values, sorted: value `i` has row `i + 2`.
    pub fn values(&self) -> &[i64] {
        &self.values
    }
}

/// What the training data held of a field, reported in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Distinct values in the training split.
    pub distinct: u64,
    /// A value needs this many training rows for a row of its own (vocabulary only).
    pub min_count: u64,
    /// Share of the distinct values without a row of their own: below `min_count` or past
    /// the table's cap (vocabulary), or colliding with another value (hashed).
    pub shared_rate: f64,
}

/// The class of values a feature column held in training. A value finds its row by its
/// class: the integer 3 and the text "3" hash differently, so scoring must see the class
/// training saw (checked in [`super::inputs::Rows::from_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueClass {
    Integer,
    Text,
    Boolean,
}

impl ValueClass {
    /// The class of an Arrow type; `None` for NULL-only and unsupported types.
    pub fn of(t: &datafusion::arrow::datatypes::DataType) -> Option<ValueClass> {
        use datafusion::arrow::datatypes::DataType;
        match t {
            t if t.is_integer() => Some(ValueClass::Integer),
            DataType::Boolean => Some(ValueClass::Boolean),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(ValueClass::Text),
            DataType::Dictionary(_, v) => ValueClass::of(v),
            _ => None,
        }
    }
}

impl std::fmt::Display for ValueClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ValueClass::Integer => "integer",
            ValueClass::Text => "text",
            ValueClass::Boolean => "boolean",
        })
    }
}

/// One categorical input column and how its values find their embedding rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Column name, as the SQL that feeds the model spells it.
    pub name: String,
    /// Rows in the embedding table, including the padding row 0. At least 2.
    #[serde(alias = "hash_size")]
    pub rows: i64,
    #[serde(default)]
    pub lookup: Lookup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
    /// The class of values the column held in training (absent in artifacts written
    /// before it was recorded: then any class is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<ValueClass>,
    /// The values of a [`Lookup::Vocabulary`] field. Not in the manifest: the artifact
    /// stores it in the weights file ([`super::artifact`]).
    #[serde(skip)]
    pub vocabulary: Option<Arc<Vocabulary>>,
}

impl FieldSpec {
    /// A hashed field of `rows` rows.
    pub fn new(name: impl Into<String>, rows: i64) -> Self {
        Self {
            name: name.into(),
            rows,
            lookup: Lookup::Hashed,
            coverage: None,
            class: None,
            vocabulary: None,
        }
    }

    /// A field with its own vocabulary.
    pub fn with_vocabulary(
        name: impl Into<String>,
        vocabulary: Vocabulary,
        coverage: Coverage,
    ) -> Self {
        Self {
            name: name.into(),
            rows: vocabulary.rows(),
            lookup: Lookup::Vocabulary,
            coverage: Some(coverage),
            class: None,
            vocabulary: Some(Arc::new(vocabulary)),
        }
    }

    /// The embedding row of `id` in this field's table; `None` (SQL NULL) maps to the padding row.
    ///
    /// Panics for a vocabulary field whose vocabulary was not loaded: [`FeatureSchema::validate`]
    /// and the artifact loader see to it that a model never has one.
    pub fn index(&self, id: Option<i64>) -> i64 {
        match (id, self.lookup) {
            (None, _) => 0,
            (Some(id), Lookup::Hashed) => hash_id(id, self.rows),
            (Some(id), Lookup::Vocabulary) => self
                .vocabulary
                .as_ref()
                .expect("a vocabulary field has its vocabulary")
                .row(id),
        }
    }
}

/// The columns a model was trained on. Stored in the artifact's manifest; scoring checks its
/// SQL against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    /// `user_id` first, then user profile columns.
    pub user_fields: Vec<FieldSpec>,
    /// `item_id` first, then item columns. Sequences use `item_fields[0]`'s table.
    pub item_fields: Vec<FieldSpec>,
}

impl FeatureSchema {
    /// Only the two id columns, each hashed into `hash_size` rows.
    pub fn ids_only(hash_size: i64) -> Self {
        Self {
            user_fields: vec![FieldSpec::new("user_id", hash_size)],
            item_fields: vec![FieldSpec::new("item_id", hash_size)],
        }
    }

    /// Whether sequence positions are embedded with the item fields too: the item side has
    /// more than `item_id` and `item_id` has a vocabulary (the table of each item's fields
    /// is indexed by its vocabulary row).
    pub fn sequences_read_item_fields(&self) -> bool {
        self.item_fields.len() > 1 && self.item_fields[0].lookup == Lookup::Vocabulary
    }

    /// Every field, user side first.
    pub fn fields(&self) -> impl Iterator<Item = &FieldSpec> {
        self.user_fields.iter().chain(&self.item_fields)
    }

    /// Checks the contract above and that every vocabulary field has its vocabulary; the
    /// error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_names_and_sizes()?;
        for f in self.fields() {
            match (&f.vocabulary, f.lookup) {
                (None, Lookup::Vocabulary) => {
                    return Err(format!("field `{}` has no vocabulary loaded", f.name))
                }
                (Some(v), _) if v.rows() != f.rows => {
                    return Err(format!(
                        "field `{}` has {} rows but its vocabulary needs {}",
                        f.name,
                        f.rows,
                        v.rows()
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// [`Self::validate`] without the vocabularies (for a manifest read before its weights).
    pub fn validate_names_and_sizes(&self) -> Result<(), String> {
        let first = |fields: &[FieldSpec], want: &str, side: &str| -> Result<(), String> {
            match fields.first() {
                Some(f) if f.name == want => Ok(()),
                Some(f) => Err(format!(
                    "the first {side} field must be `{want}`, found `{}`",
                    f.name
                )),
                None => Err(format!("the {side} side needs at least the `{want}` field")),
            }
        };
        first(&self.user_fields, "user_id", "user")?;
        first(&self.item_fields, "item_id", "item")?;
        let mut seen = std::collections::HashSet::new();
        for f in self.user_fields.iter().chain(&self.item_fields) {
            if f.rows < 2 {
                return Err(format!(
                    "field `{}` has {} rows; it needs at least 2 (row 0 is padding)",
                    f.name, f.rows
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("field `{}` appears twice", f.name));
            }
        }
        Ok(())
    }
}

/// The expected share of `distinct` values that share their row with another value when
/// hashed into `rows` rows (row 0 excluded): `1 − (1 − 1/(rows−1))^(distinct−1)`.
pub fn expected_collision_rate(distinct: u64, rows: i64) -> f64 {
    if distinct < 2 || rows < 2 {
        return 0.0;
    }
    1.0 - (1.0 - 1.0 / (rows - 1) as f64).powf((distinct - 1) as f64)
}

/// Hashes `id` into `1..size` with SplitMix64, so nearby ids spread over the table.
pub fn hash_id(id: i64, size: i64) -> i64 {
    debug_assert!(size >= 2);
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    1 + (z % (size as u64 - 1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_never_uses_the_padding_row_and_stays_in_range() {
        for size in [2, 3, 17, 1000] {
            for id in [-5, 0, 1, 2, 99, i64::MAX, i64::MIN] {
                let h = hash_id(id, size);
                assert!((1..size).contains(&h), "id {id} size {size} -> {h}");
            }
        }
        assert_eq!(FieldSpec::new("x", 10).index(None), 0);
    }

    #[test]
    fn the_vocabulary_gives_every_known_value_its_own_row_and_the_rest_the_shared_row() {
        let known = vec![907, -3, 42, 42, 1 << 40, 0];
        let v = Vocabulary::new(known.clone());
        assert_eq!(v.rows(), 5 + Vocabulary::RESERVED, "duplicates count once");
        let field = FieldSpec::with_vocabulary(
            "item_id",
            v,
            Coverage {
                distinct: 5,
                min_count: 1,
                shared_rate: 0.0,
            },
        );
        let rows: std::collections::BTreeSet<i64> =
            known.iter().map(|&id| field.index(Some(id))).collect();
        assert_eq!(rows.len(), 5, "one row per distinct known value");
        assert!(rows.iter().all(|&r| (2..field.rows).contains(&r)));
        for unseen in [1, 41, 43, i64::MIN, i64::MAX] {
            assert_eq!(field.index(Some(unseen)), Vocabulary::OUT_OF_VOCABULARY);
        }
        assert_eq!(field.index(None), 0, "NULL is padding");
    }

    #[test]
    fn a_vocabulary_field_without_its_vocabulary_is_invalid() {
        let mut s = FeatureSchema::ids_only(100);
        s.item_fields[0].lookup = Lookup::Vocabulary;
        assert!(s.validate().unwrap_err().contains("item_id"));
        assert!(s.validate_names_and_sizes().is_ok());
    }

    #[test]
    fn collision_rate_matches_a_count_of_hashed_ids() {
        let (n, rows) = (2000u64, 4001i64);
        let mut per_row = std::collections::HashMap::new();
        for id in 0..n as i64 {
            *per_row.entry(hash_id(id * 7919, rows)).or_insert(0u32) += 1;
        }
        let shared: u32 = per_row.values().filter(|&&c| c > 1).sum();
        let measured = shared as f64 / n as f64;
        let expected = expected_collision_rate(n, rows);
        assert!(
            (measured - expected).abs() < 0.05,
            "{measured} vs {expected}"
        );
        assert_eq!(expected_collision_rate(1, 10), 0.0);
    }

    #[test]
    fn validation_names_the_bad_field() {
        let mut s = FeatureSchema::ids_only(100);
        assert!(s.validate().is_ok());
        s.item_fields.push(FieldSpec::new("brand", 1));
        assert!(s.validate().unwrap_err().contains("brand"));
        s.item_fields.pop();
        s.user_fields[0].name = "uid".into();
        assert!(s.validate().unwrap_err().contains("uid"));
    }
}
