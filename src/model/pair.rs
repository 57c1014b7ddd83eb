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

use tch::{Kind, Tensor};

use super::config::PairMode;
use super::params::{einsum, uniform};
use tch::nn;

#[derive(Debug)]
pub struct Pair {
    mode: PairMode,
    has_memory: bool,
    emb_dim: i64,
    slot_dim: i64,
    /// Gate: W1 `[S, E, E]`, W2 `[S, Z, Z]`. FFN: the two layers' weights.
    w1: Option<Tensor>,
    w2: Option<Tensor>,
    b1: Option<Tensor>,
    b2: Option<Tensor>,
    /// Cross / attention: r projected to E, `[S, Z, E]`.
    proj: Option<Tensor>,
    /// Attention: `[S, E, E]` and `[S, E]`.
    att_w: Option<Tensor>,
    att_v: Option<Tensor>,
}

impl Pair {
    pub fn new(p: &nn::Path, mode: PairMode, has_memory: bool, s: i64, e: i64, z: i64) -> Self {
        let mut me = Self {
            mode,
            has_memory,
            emb_dim: e,
            slot_dim: z,
            w1: None,
            w2: None,
            b1: None,
            b2: None,
            proj: None,
            att_w: None,
            att_v: None,
        };
        match (mode, has_memory) {
            (PairMode::Gate, _) => {
                me.w1 = Some(uniform(p, "w1", &[s, e, e], e));
                if has_memory {
                    me.w2 = Some(uniform(p, "w2", &[s, z, z], z));
                }
            }
            (_, false) | (PairMode::Concat, true) => {}
            (PairMode::Cross, true) => me.proj = Some(uniform(p, "proj", &[s, z, e], z)),
            (PairMode::Ffn, true) => {
                me.w1 = Some(uniform(p, "w1", &[s, e, e], e));
                me.b1 = Some(uniform(p, "b1", &[s, e], e));
                me.w2 = Some(uniform(p, "w2", &[s, z, z], z));
                me.b2 = Some(uniform(p, "b2", &[s, z], z));
            }
            (PairMode::Attention, true) => {
                me.proj = Some(uniform(p, "proj", &[s, z, e], z));
                me.att_w = Some(uniform(p, "att_w", &[s, e, e], e));
                me.att_v = Some(uniform(p, "att_v", &[s, e], e));
            }
        }
        me
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
    pub fn forward(&self, f: &Tensor, r: Option<&Tensor>) -> Tensor {
        let units = match (self.mode, r) {
            (PairMode::Gate, None) => Self::gate(f, self.w1.as_ref().unwrap()),
            (_, None) => f.shallow_clone(),
            (PairMode::Gate, Some(r)) => Tensor::cat(
                &[
                    Self::gate(f, self.w1.as_ref().unwrap()),
                    Self::gate(r, self.w2.as_ref().unwrap()),
                ],
                -1,
            ),
            (PairMode::Concat, Some(r)) => Tensor::cat(&[f, r], -1),
            (PairMode::Cross, Some(r)) => {
                let p = einsum("nsz,sze->nse", &[r, self.proj.as_ref().unwrap()]);
                Tensor::cat(&[f, &p, &(f + &p), &(f - &p), &(f * &p)], -1)
            }
            (PairMode::Ffn, Some(r)) => {
                let layer = |x: &Tensor, w: &Tensor, b: &Tensor| {
                    (einsum("nsd,sde->nse", &[x, w]) + b).relu()
                };
                let a = layer(f, self.w1.as_ref().unwrap(), self.b1.as_ref().unwrap());
                let b = layer(r, self.w2.as_ref().unwrap(), self.b2.as_ref().unwrap());
                Tensor::cat(&[a, b], -1)
            }
            (PairMode::Attention, Some(r)) => {
                let p = einsum("nsz,sze->nse", &[r, self.proj.as_ref().unwrap()]);
                let both = Tensor::stack(&[f, &p], 2); // [N, S, 2, E]
                let hidden =
                    einsum("nsie,sef->nsif", &[&both, self.att_w.as_ref().unwrap()]).tanh();
                let score = einsum("nsif,sf->nsi", &[&hidden, self.att_v.as_ref().unwrap()]);
                let a = score.softmax(-1, Kind::Float);
                einsum("nsi,nsie->nse", &[&a, &both])
            }
        };
        units.flatten(1, 2)
    }
}
