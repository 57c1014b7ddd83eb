//! Paper §3.6, the loss: logloss (eq. 16) plus the triplet loss on the memories (eq. 17-20).
//!
//! Triplets: memory `M_c` is pulled towards clicked items and away from unclicked ones,
//! `M_u` the reverse, `M_l` towards liked and away from disliked items, `M_d` the reverse.
//! The anchor `q_k` is the write-addressed read of the written memory (eq. 18), mapped from
//! Z to E by a learned projection so it can be compared with item embeddings (the paper
//! compares a Z-vector with an E-vector without saying how).
//!
//! Sampling (4.3.4): per feedback kind, up to `triplet_pool` items are drawn at random from
//! all that kind's sequence positions in the batch; "hardest" then picks, per anchor, the
//! positive least similar and the negative most similar by cosine; "random" picks one of each
//! uniformly. The item embeddings enter the triplet loss detached: its job is to make the
//! *memory writes* express the feedback (3.6, goal 2), and an independent implementation
//! found that letting its gradient into the shared item table hurt click AUC.

use tch::{nn, Kind, Tensor};

use super::batch::{CLICK, DISLIKE, LIKE, UNCLICK};
use super::config::TripletMode;
use super::memory::l2_normalize;
use super::params::{einsum, uniform};

/// Eq. 19: `d(a, b) = 1 − cos(a, b)` row-wise over the last axis.
pub fn cosine_distance(a: &Tensor, b: &Tensor) -> Tensor {
    1.0 - (l2_normalize(a) * l2_normalize(b)).sum_dim_intlist(-1, false, Kind::Float)
}

/// Eq. 17 per row: `max(d(q, pos) − d(q, neg) + margin, 0)`.
pub fn triplet_hinge(q: &Tensor, pos: &Tensor, neg: &Tensor, margin: f64) -> Tensor {
    (cosine_distance(q, pos) - cosine_distance(q, neg) + margin).clamp_min(0.0)
}

/// Eq. 16: mean binary logloss of logits against 0/1 labels.
pub fn logloss(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, tch::Reduction::Mean)
}

#[derive(Debug)]
pub struct TripletLoss {
    /// `[S, Z, E]`: anchor projection into the item-embedding space.
    proj: Tensor,
    mode: TripletMode,
    margin: f64,
    pool: i64,
    /// `(anchor sequence, positive kind, negative kind)`.
    pairs: Vec<(i64, i64, i64)>,
}

impl TripletLoss {
    pub fn new(
        p: &nn::Path,
        sequences: i64,
        slot_dim: i64,
        emb_dim: i64,
        mode: TripletMode,
        margin: f64,
        pool: i64,
    ) -> Self {
        let (c, u, l, d) = (CLICK as i64, UNCLICK as i64, LIKE as i64, DISLIKE as i64);
        let pairs = match sequences {
            4 => vec![(c, c, u), (u, u, c), (l, l, d), (d, d, l)],
            2 => vec![(c, c, u), (u, u, c)],
            _ => vec![],
        };
        Self {
            proj: uniform(p, "proj", &[sequences, slot_dim, emb_dim], slot_dim),
            mode,
            margin,
            pool,
            pairs,
        }
    }

    /// A random pool of at most `pool` embeddings of kind `k`: `[P, E]`, or None when the
    /// batch has no item of that kind.
    fn sample_pool(&self, seq_emb: &Tensor, mask: &Tensor, k: i64) -> Option<Tensor> {
        let emb = seq_emb.select(1, k).flatten(0, 1); // [U·L, E]
        let valid = mask.select(1, k).flatten(0, 1).nonzero().squeeze_dim(-1);
        let n = valid.size()[0];
        if n == 0 {
            return None;
        }
        let chosen = if n > self.pool {
            valid.index_select(
                0,
                &Tensor::randperm(n, (Kind::Int64, valid.device())).narrow(0, 0, self.pool),
            )
        } else {
            valid
        };
        Some(emb.index_select(0, &chosen))
    }

    /// Picks, for each anchor `[N, E]`, one row of `pool` `[P, E]`: the least (`hardest_far`)
    /// or most similar one in hardest mode, a random one otherwise.
    fn pick(&self, q: &Tensor, pool: &Tensor, hardest_far: bool) -> Tensor {
        let n = q.size()[0];
        let idx = match self.mode {
            TripletMode::Random | TripletMode::Off => {
                Tensor::randint(pool.size()[0], [n], (Kind::Int64, q.device()))
            }
            TripletMode::Hardest => {
                let sim = l2_normalize(q).matmul(&l2_normalize(pool).tr()).detach(); // [N, P]
                if hardest_far {
                    sim.argmin(1, false)
                } else {
                    sim.argmax(1, false)
                }
            }
        };
        pool.index_select(0, &idx)
    }

    /// Eq. 20: `L2 = Σ_k L_k`, each `L_k` averaged over the batch's anchors.
    /// `anchors`: `[N, S, Z]`; `seq_emb`: `[U, S, L, E]` and `mask`: `[U, S, L]` are the batch's
    /// sequence items.
    pub fn forward(&self, anchors: &Tensor, seq_emb: &Tensor, mask: &Tensor) -> Tensor {
        let q_all = einsum("nsz,sze->nse", &[anchors, &self.proj]);
        let seq_emb = seq_emb.detach();
        let mut total = Tensor::zeros([], (Kind::Float, anchors.device()));
        for &(s, pos_k, neg_k) in &self.pairs {
            let (Some(pos_pool), Some(neg_pool)) = (
                self.sample_pool(&seq_emb, mask, pos_k),
                self.sample_pool(&seq_emb, mask, neg_k),
            ) else {
                continue;
            };
            let q = q_all.select(1, s);
            let pos = self.pick(&q, &pos_pool, true);
            let neg = self.pick(&q, &neg_pool, false);
            total += triplet_hinge(&q, &pos, &neg, self.margin).mean(Kind::Float);
        }
        total
    }
}
