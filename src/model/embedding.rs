//! Paper §3.2, the embedding layer: one table per categorical field.
//!
//! `e_user` is the concatenation of the user fields' embeddings, `e_item` that of the item
//! fields'. Each feedback sequence gives `e_c, e_u, e_l, e_d ∈ R^{T×E}`: a position holds an
//! item id, embedded with the `item_id` table and, when the schema has a vocabulary and
//! other item fields ([`FeatureSchema::sequences_read_item_fields`]), plus the embeddings of
//! that item's other fields (category, brand…) looked up in the item-fields table that
//! training fills ([`Embeddings::set_item_fields`]). The paper embeds a sequence item like
//! the target item; summing the fields (rather than concatenating them, as `e_item` does)
//! keeps every sequence vector at E, which eq. 1-12 assume.
//!
//! Row 0 of every table is the padding/NULL row: zero at initialisation and excluded from
//! gradients (`padding_idx`), and sequence embeddings are multiplied by their mask as well,
//! so padding is exactly zero downstream.

use anyhow::{ensure, Result};
use tch::{nn, nn::Module, Kind, Tensor};

use super::features::{FeatureSchema, FieldSpec};

/// Standard deviation of the initial embedding vectors.
const INIT_STD: f64 = 0.1;

#[derive(Debug)]
pub struct Embeddings {
    user: Vec<nn::Embedding>,
    item: Vec<nn::Embedding>,
    /// `[rows of item_id, n_item_fields − 1]`: the rows of each item's other fields, by its
    /// `item_id` row (all 0, i.e. padding, for the padding and out-of-vocabulary rows and
    /// until training fills it). A non-trainable variable, so it is saved with the weights.
    item_fields: Option<Tensor>,
}

fn table(p: &nn::Path, field: &FieldSpec, dim: i64) -> nn::Embedding {
    let cfg = nn::EmbeddingConfig {
        padding_idx: 0,
        ws_init: nn::Init::Randn {
            mean: 0.0,
            stdev: INIT_STD,
        },
        ..Default::default()
    };
    let emb = nn::embedding(p / field.name.as_str(), field.rows, dim, cfg);
    tch::no_grad(|| {
        let _ = emb.ws.get(0).zero_();
    });
    emb
}

impl Embeddings {
    pub fn new(p: &nn::Path, schema: &FeatureSchema, dim: i64) -> Self {
        let user_p = p / "user";
        let item_p = p / "item";
        let item_fields = schema.sequences_read_item_fields().then(|| {
            let shape = [
                schema.item_fields[0].rows,
                schema.item_fields.len() as i64 - 1,
            ];
            item_p.add(
                "fields_of_item",
                Tensor::zeros(shape, (Kind::Int64, p.device())),
                false,
            )
        });
        Self {
            user: schema
                .user_fields
                .iter()
                .map(|f| table(&user_p, f, dim))
                .collect(),
            item: schema
                .item_fields
                .iter()
                .map(|f| table(&item_p, f, dim))
                .collect(),
            item_fields,
        }
    }

    /// Fills the item-fields table: `rows` is `[rows of item_id, n_item_fields − 1]`, the
    /// other fields' rows for each `item_id` row. An error when the model has no such table
    /// or the shape differs.
    pub fn set_item_fields(&self, rows: &Tensor) -> Result<()> {
        let Some(table) = &self.item_fields else {
            anyhow::bail!("this model does not embed sequence items with their fields");
        };
        ensure!(
            rows.size() == table.size(),
            "the item-fields table is {:?}, the model needs {:?}",
            rows.size(),
            table.size()
        );
        tch::no_grad(|| table.shallow_clone().copy_(rows));
        Ok(())
    }

    fn concat(tables: &[nn::Embedding], idx: &Tensor) -> Tensor {
        let parts: Vec<Tensor> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| t.forward(&idx.select(-1, i as i64)))
            .collect();
        Tensor::cat(&parts, -1)
    }

    /// The float type of the tables.
    pub fn kind(&self) -> tch::Kind {
        self.item[0].ws.kind()
    }

    /// `e_user`: `[..., n_user_fields]` rows → `[..., n_user_fields·E]`.
    pub fn user(&self, idx: &Tensor) -> Tensor {
        Self::concat(&self.user, idx)
    }

    /// `e_item`: `[..., n_item_fields]` rows → `[..., n_item_fields·E]`.
    pub fn item(&self, idx: &Tensor) -> Tensor {
        Self::concat(&self.item, idx)
    }

    /// Sequence items: `[U, S, L]` `item_id` rows and mask → `[U, S, L, E]`, zero at
    /// padding: the `item_id` embedding plus, with an item-fields table, the embeddings of
    /// the item's other fields.
    pub fn sequence(&self, idx: &Tensor, mask: &Tensor) -> Tensor {
        let mut e = self.item[0].forward(idx);
        if let Some(table) = &self.item_fields {
            let (u, s, l) = idx.size3().unwrap();
            let rows = table.index_select(0, &idx.flatten(0, -1)); // [U·S·L, n − 1]
            for (f, emb) in self.item[1..].iter().enumerate() {
                e += emb.forward(&rows.select(1, f as i64)).view([u, s, l, -1]);
            }
        }
        e * mask.unsqueeze(-1)
    }
}

/// Rank-recency vectors (`position_buckets`): one learned vector per sequence and bucket of
/// a position's rank `j` (newest first): bucket 0 for `j = 0`, else `1 + ⌊log2 j⌋`.
#[derive(Debug)]
pub struct PositionBuckets {
    /// `[S, B, E]`, zero at initialisation (the model starts as without it).
    table: Tensor,
    /// `[T]`: the bucket of each rank, built once.
    bucket_of_rank: Tensor,
}

/// The bucket of rank `j` (newest first).
pub fn position_bucket(j: i64) -> i64 {
    if j == 0 {
        0
    } else {
        1 + (63 - j.leading_zeros() as i64)
    }
}

impl PositionBuckets {
    pub fn new(p: &nn::Path, sequences: i64, seq_len: i64, dim: i64) -> Self {
        let buckets = position_bucket(seq_len.max(1) - 1) + 1;
        let ranks: Vec<i64> = (0..seq_len.max(1)).map(position_bucket).collect();
        Self {
            table: p.var(
                "position_buckets",
                &[sequences, buckets, dim],
                nn::Init::Const(0.0),
            ),
            bucket_of_rank: Tensor::from_slice(&ranks).to_device(p.device()),
        }
    }

    /// For `mask` `[U, S, L]`: `[U, S, L, E]`, each real position's bucket vector (zero
    /// at padding).
    pub fn forward(&self, mask: &Tensor) -> Tensor {
        let (_, s, l) = mask.size3().unwrap();
        let idx = self.bucket_of_rank.narrow(0, 0, l); // L ≤ T: sequences are capped at T
        let per_seq = self.table.index_select(1, &idx).view([1, s, l, -1]); // [1, S, L, E]
        per_seq * mask.unsqueeze(-1)
    }
}

#[cfg(test)]
mod tests {
    use super::position_bucket;

    #[test]
    fn buckets_are_log2_of_the_rank() {
        let b: Vec<i64> = [0, 1, 2, 3, 4, 7, 8, 99].map(position_bucket).to_vec();
        assert_eq!(b, vec![0, 1, 2, 2, 3, 3, 4, 7]);
    }
}
