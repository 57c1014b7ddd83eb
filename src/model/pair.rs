//! Paper §3.5, preference-aware interactive representation (PAIR): eq. 13-14, and the
//! fusions of the ablation in 4.3.3.
//!
//! Eq. 13 gates each vector by a sigmoid of itself: `U = Concat(f ⊙ σ(f W1), r ⊙ σ(r W2))`.
//! Because the product is element-wise, W1 (E×E) and W2 (Z×Z) are square, whatever the text's
//! "dimension conversion" suggests. Each feedback kind has its own W1, W2. Eq. 14 then
//! concatenates the kinds: `R_cross = Concat(U_c, U_u, U_l, U_d)`.
//!
//! Without the memory network (DUMN-UMN) there is no `r`; the gate keeps its `f` half and
//! the other fusions pass `f` through.

use tch::Tensor;

use super::config::PairMode;
use super::params::{einsum, uniform};
use tch::nn;

/// The weights of one fusion; which exist depends on the mode and on whether there is a
/// memory read `r` to fuse.
#[derive(Debug)]
enum Weights {
    /// Eq. 13 without memory: the `f` half of the gate, W1 `[S, E, E]`.
    GateFeaturesOnly { w1: Tensor },
    /// Eq. 13: W1 `[S, E, E]`, W2 `[S, Z, Z]`.
    Gate { w1: Tensor, w2: Tensor },
    /// No weights: `f` alone (no memory) or `Concat(f, r)`.
    None,
    /// Cross: r projected to E, `[S, Z, E]`.
    Cross { proj: Tensor },
    /// FFN: one layer on each side, `[S, E, E]` + `[S, E]` and `[S, Z, Z]` + `[S, Z]`.
    Ffn {
        w1: Tensor,
        b1: Tensor,
        w2: Tensor,
        b2: Tensor,
    },
    /// Attention: r projected to E `[S, Z, E]`, then `[S, E, E]` and `[S, E]`.
    Attention {
        proj: Tensor,
        att_w: Tensor,
        att_v: Tensor,
    },
}

#[derive(Debug)]
pub struct Pair {
    mode: PairMode,
    has_memory: bool,
    emb_dim: i64,
    slot_dim: i64,
    weights: Weights,
}

impl Pair {
    pub fn new(p: &nn::Path, mode: PairMode, has_memory: bool, s: i64, e: i64, z: i64) -> Self {
        let weights = match (mode, has_memory) {
            (PairMode::Gate, false) => Weights::GateFeaturesOnly {
                w1: uniform(p, "w1", &[s, e, e], e),
            },
            (PairMode::Gate, true) => Weights::Gate {
                w1: uniform(p, "w1", &[s, e, e], e),
                w2: uniform(p, "w2", &[s, z, z], z),
            },
            (_, false) | (PairMode::Concat, true) => Weights::None,
            (PairMode::Cross, true) => Weights::Cross {
                proj: uniform(p, "proj", &[s, z, e], z),
            },
            (PairMode::Ffn, true) => Weights::Ffn {
                w1: uniform(p, "w1", &[s, e, e], e),
                b1: uniform(p, "b1", &[s, e], e),
                w2: uniform(p, "w2", &[s, z, z], z),
                b2: uniform(p, "b2", &[s, z], z),
            },
            (PairMode::Attention, true) => Weights::Attention {
                proj: uniform(p, "proj", &[s, z, e], z),
                att_w: uniform(p, "att_w", &[s, e, e], e),
                att_v: uniform(p, "att_v", &[s, e], e),
            },
        };
        Self {
            mode,
            has_memory,
            emb_dim: e,
            slot_dim: z,
            weights,
        }
    }

    /// Width of one `U_k`.
    pub fn unit_dim(&self) -> i64 {
        let (e, z) = (self.emb_dim, self.slot_dim);
        match (self.mode, self.has_memory) {
            (_, false) => e,
            (PairMode::Gate | PairMode::Concat | PairMode::Ffn, true) => e + z,
            (PairMode::Cross, true) => 5 * e,
            (PairMode::Attention, true) => e,
        }
    }

    /// The gate of eq. 13 on one side: `x ⊙ σ(x W)`, `x`: `[N, S, D]`, `w`: `[S, D, D]`.
    pub fn gate(x: &Tensor, w: &Tensor) -> Tensor {
        x * einsum("nsd,sde->nse", &[x, w]).sigmoid()
    }

    /// `f^o`: `[N, S, E]`, `r`: `[N, S, Z]` (None without memory) → `R_cross`: `[N, S·unit_dim]`.
    ///
    /// Without `r` the gate keeps its `f` half and the other fusions pass `f` through.
    /// Panics when `r` is given to a fusion built without memory: the model builds both
    /// from the same ablation.
    pub fn forward(&self, f: &Tensor, r: Option<&Tensor>) -> Tensor {
        let units = match (&self.weights, r) {
            (Weights::GateFeaturesOnly { w1 } | Weights::Gate { w1, .. }, None) => {
                Self::gate(f, w1)
            }
            (_, None) => f.shallow_clone(),
            (Weights::Gate { w1, w2 }, Some(r)) => {
                Tensor::cat(&[Self::gate(f, w1), Self::gate(r, w2)], -1)
            }
            (Weights::None, Some(r)) if self.mode == PairMode::Concat => Tensor::cat(&[f, r], -1),
            (Weights::Cross { proj }, Some(r)) => {
                let p = einsum("nsz,sze->nse", &[r, proj]);
                Tensor::cat(&[f, &p, &(f + &p), &(f - &p), &(f * &p)], -1)
            }
            (Weights::Ffn { w1, b1, w2, b2 }, Some(r)) => {
                let layer = |x: &Tensor, w: &Tensor, b: &Tensor| {
                    (einsum("nsd,sde->nse", &[x, w]) + b).relu()
                };
                Tensor::cat(&[layer(f, w1, b1), layer(r, w2, b2)], -1)
            }
            (Weights::Attention { proj, att_w, att_v }, Some(r)) => {
                let p = einsum("nsz,sze->nse", &[r, proj]);
                let both = Tensor::stack(&[f, &p], 2); // [N, S, 2, E]
                let hidden = einsum("nsie,sef->nsif", &[&both, att_w]).tanh();
                let score = einsum("nsif,sf->nsi", &[&hidden, att_v]);
                let a = score.softmax(-1, None);
                einsum("nsi,nsie->nse", &[&a, &both])
            }
            (_, Some(_)) => panic!(
                "PAIR fusion {:?} was built without memory and called with a memory read",
                self.mode
            ),
        };
        units.flatten(1, 2)
    }
}
