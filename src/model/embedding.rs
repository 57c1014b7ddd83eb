//! Paper §3.2, the embedding layer: one hashed table per categorical field.
//!
//! `e_user` is the concatenation of the user fields' embeddings, `e_item` that of the item
//! fields', and each feedback sequence is embedded with the `item_id` table, giving
//! `e_c, e_u, e_l, e_d ∈ R^{T×E}`. Row 0 of every table is the padding/NULL row: zero at
//! initialisation and excluded from gradients (`padding_idx`), and sequence embeddings are
//! multiplied by their mask as well, so padding is exactly zero downstream.

use tch::{nn, nn::Module, Tensor};

use super::features::{FeatureSchema, FieldSpec};

/// Standard deviation of the initial embedding vectors.
const INIT_STD: f64 = 0.1;

#[derive(Debug)]
pub struct Embeddings {
    user: Vec<nn::Embedding>,
    item: Vec<nn::Embedding>,
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
    let emb = nn::embedding(p / field.name.as_str(), field.hash_size, dim, cfg);
    tch::no_grad(|| {
        let _ = emb.ws.get(0).zero_();
    });
    emb
}

impl Embeddings {
    pub fn new(p: &nn::Path, schema: &FeatureSchema, dim: i64) -> Self {
        let user_p = p / "user";
        let item_p = p / "item";
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
        }
    }

    fn concat(tables: &[nn::Embedding], idx: &Tensor) -> Tensor {
        let parts: Vec<Tensor> = tables
            .iter()
            .enumerate()
            .map(|(i, t)| t.forward(&idx.select(-1, i as i64)))
            .collect();
        Tensor::cat(&parts, -1)
    }

    /// `e_user`: `[..., n_user_fields]` rows → `[..., n_user_fields·E]`.
    pub fn user(&self, idx: &Tensor) -> Tensor {
        Self::concat(&self.user, idx)
    }

    /// `e_item`: `[..., n_item_fields]` rows → `[..., n_item_fields·E]`.
    pub fn item(&self, idx: &Tensor) -> Tensor {
        Self::concat(&self.item, idx)
    }

    /// Sequence items: `[U, S, L]` rows and mask → `[U, S, L, E]`, zero at padding.
    pub fn sequence(&self, idx: &Tensor, mask: &Tensor) -> Tensor {
        self.item[0].forward(idx) * mask.unsqueeze(-1)
    }
}
