//! The feature schema: which columns feed the model, and how raw ids become embedding rows.
//!
//! Contract:
//! - the user side has `user_id` first, then any categorical profile columns;
//! - the item side has `item_id` first, then any categorical item columns (brand, category…);
//! - the four feedback sequences hold item ids and are embedded with the `item_id` table;
//! - every id is hashed into its field's table of `hash_size` rows: row 0 is reserved for
//!   padding and NULL (an all-zero vector that never trains), rows `1..hash_size` hold ids.
//!   An id never seen in training still lands in some row, as it would have in training.

use serde::{Deserialize, Serialize};

/// One categorical input column and the size of its hashed embedding table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldSpec {
    /// Column name, as the SQL that feeds the model spells it.
    pub name: String,
    /// Rows in the embedding table, including the padding row 0. At least 2.
    pub hash_size: i64,
}

impl FieldSpec {
    pub fn new(name: impl Into<String>, hash_size: i64) -> Self {
        Self {
            name: name.into(),
            hash_size,
        }
    }

    /// The embedding row of `id` in this field's table; `None` (SQL NULL) maps to the padding row.
    pub fn index(&self, id: Option<i64>) -> i64 {
        match id {
            Some(id) => hash_id(id, self.hash_size),
            None => 0,
        }
    }
}

/// The columns a model was trained on. Stored in the artifact's manifest; scoring checks its
/// SQL against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Checks the contract above; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
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
            if f.hash_size < 2 {
                return Err(format!(
                    "field `{}` has hash_size {}; it needs at least 2 (row 0 is padding)",
                    f.name, f.hash_size
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("field `{}` appears twice", f.name));
            }
        }
        Ok(())
    }
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
