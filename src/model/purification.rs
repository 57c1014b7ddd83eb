//! Paper §3.3, the feature purification (FP) layer.
//!
//! - [`SelfAttention`]: the multi-head interaction attention of eq. 1-2, per sequence;
//! - [`TargetAttention`]: the target attention of eq. 3-5 that pools each sequence into
//!   one vector `f` for the candidate item;
//! - [`orthogonal_map`]: the orthogonal mapping of eq. 6-7.
//!
//! All four (or two, or one) sequences are processed together: weights are stacked on a
//! leading `S` axis, one slice per sequence, so each sequence keeps its own parameters.
//!
//! Choices where the paper is open:
//! - eq. 1 is scaled by √(E/H) (the usual √d_k), not √T: with T=100 the paper's scale makes
//!   every head nearly uniform at initialisation;
//! - with `attention_residual` (the default of new models) eq. 2 becomes
//!   `O = LayerNorm(E + MultiHead(E))` per sequence, with a learned gain and bias, zero at
//!   padding: the literal `O` starts far smaller than `E` and nearly the same at every
//!   position, so the target attention had little to tell apart;
//! - with `count_aware_pooling` (the default of new models) eq. 4's softmax has one more,
//!   learned, logit per sequence for a "null" position whose value is zero: `f` then
//!   shrinks when few positions match the target, and one matching dislike gives a smaller
//!   `f` than four (the literal softmax averages them to the same vector);
//! - W^Q, W^K, W^V are per sequence and per head (E/H × E/H, as written); W^F is one E×E
//!   matrix per sequence;
//! - eq. 3 taken literally, `ReLU(Concat(e_user, e_item, o_j) W_c)`, is additive: the user
//!   and item terms are the same for every position j and cancel in the softmax of eq. 4
//!   except where the ReLU clips, so the attention barely sees the target. We keep that term
//!   and add a multiplicative one, `⟨o_j W^K_t, Concat(e_user, e_item) W^Q_t⟩ / √E`
//!   (the product of position and target that DIN's activation unit relies on). Both halves
//!   split into a user-only part (computed once per user in the user step) and a
//!   candidate-only part, so sharing the user step across candidates stays exact.

use tch::{nn, Tensor};

use super::params::{einsum, uniform};

/// Added to masked attention logits: exp of it underflows to exactly 0 in f32.
const MASKED: f64 = -1e9;

/// Masked softmax over the last axis. Padded positions get weight exactly 0; a row with no
/// valid position gets all-zero weights (not NaN).
pub fn masked_softmax(logits: &Tensor, mask: &Tensor) -> Tensor {
    let shifted = logits + (mask - 1.0) * (-MASKED);
    shifted.softmax(-1, None) * mask
}

/// Multi-head scaled dot-product attention of each position over the valid positions of
/// its row: `q`, `k`, `v` `[B, L, H, D]`, `mask` `[B, L]` (1.0 at valid keys) →
/// `[B, L, H, D]`, `softmax(q·k / √D)` over the valid keys, times `v`.
///
/// It runs libtorch's fused attention kernel (`scaled_dot_product_attention`), which
/// never materialises the `[L, L]` weights: on 2 CPU cores it halved the forward and
/// backward time of a 100-long sequence against the same equation written with
/// [`masked_softmax`]. The mask is additive ([`MASKED`] on padded keys), so padded keys
/// weigh exactly zero whenever a row has a valid key; a row with none gets some average of
/// its values instead of zeros (callers zero padded positions afterwards).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Tensor {
    let (b, l, _, d) = q.size4().unwrap();
    let per_head = |t: &Tensor| t.transpose(1, 2); // [B, H, L, D]
    let key_mask = ((mask - 1.0) * (-MASKED)).view([b, 1, 1, l]);
    Tensor::scaled_dot_product_attention(
        &per_head(q),
        &per_head(k),
        &per_head(v),
        Some(key_mask),
        0.0,
        false,
        1.0 / (d as f64).sqrt(),
        false,
    )
    .transpose(1, 2)
}

/// Per-kind `[U, L_k, E]` tensors (each kind cut to its own length) padded back to `L`
/// with zeros and stacked: `[U, S, L, E]`.
pub fn stack_padded(kinds: &[Tensor], l: i64) -> Tensor {
    let parts: Vec<Tensor> = kinds
        .iter()
        .map(|t| t.constant_pad_nd([0, 0, 0, l - t.size()[1]]))
        .collect();
    Tensor::stack(&parts, 1)
}

/// Eq. 1-2: multi-head self-attention over each feedback sequence.
#[derive(Debug)]
pub struct SelfAttention {
    heads: i64,
    /// `[S, E]` gain and bias of the layer normalisation around eq. 2 (residual variant).
    norm: Option<(Tensor, Tensor)>,
    /// `[S, H, E/H, E/H]` per-sequence, per-head projections.
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    /// `[S, E, E]` output projection W^F.
    w_f: Tensor,
}

impl SelfAttention {
    /// With `residual`, eq. 2 is `LayerNorm(E + MultiHead(E))` (see the module docs).
    pub fn new(p: &nn::Path, sequences: i64, emb_dim: i64, heads: i64, residual: bool) -> Self {
        let dh = emb_dim / heads;
        let norm = residual.then(|| {
            (
                p.var("norm_gain", &[sequences, emb_dim], nn::Init::Const(1.0)),
                p.var("norm_bias", &[sequences, emb_dim], nn::Init::Const(0.0)),
            )
        });
        Self {
            heads,
            norm,
            w_q: uniform(p, "w_q", &[sequences, heads, dh, dh], dh),
            w_k: uniform(p, "w_k", &[sequences, heads, dh, dh], dh),
            w_v: uniform(p, "w_v", &[sequences, heads, dh, dh], dh),
            w_f: uniform(p, "w_f", &[sequences, emb_dim, emb_dim], emb_dim),
        }
    }

    /// The weights of sequences `[from, from + n)`.
    fn slice(&self, from: i64, n: i64) -> Weights {
        let narrow = |t: &Tensor| t.narrow(0, from, n);
        Weights {
            w_q: narrow(&self.w_q),
            w_k: narrow(&self.w_k),
            w_v: narrow(&self.w_v),
            w_f: narrow(&self.w_f),
            norm: self.norm.as_ref().map(|(g, b)| (narrow(g), narrow(b))),
        }
    }

    /// Per-head q, k, v: `[U, S, L, H, E/H]` each.
    fn qkv(&self, w: &Weights, e: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (u, s, l, d) = e.size4().unwrap();
        let x = e.view([u, s, l, self.heads, d / self.heads]);
        let proj = |w: &Tensor| einsum("uslhd,shde->uslhe", &[&x, w]);
        (proj(&w.w_q), proj(&w.w_k), proj(&w.w_v))
    }

    /// The attention weights of eq. 1: `[U, S, H, L(query), L(key)]`; zero on padded keys.
    pub fn weights(&self, e: &Tensor, mask: &Tensor) -> Tensor {
        let all = self.slice(0, e.size()[1]);
        let (q, k, _) = self.qkv(&all, e);
        self.weights_from(&q, &k, mask)
    }

    fn weights_from(&self, q: &Tensor, k: &Tensor, mask: &Tensor) -> Tensor {
        let dh = q.size()[4];
        let logits =
            einsum("uqhd,ukhd->uhqk", &[&q.flatten(0, 1), &k.flatten(0, 1)]) / (dh as f64).sqrt();
        let (u, s, l) = mask.size3().unwrap();
        let key_mask = mask.view([u * s, 1, 1, l]);
        masked_softmax(&logits, &key_mask).view([u, s, self.heads, l, l])
    }

    /// `e`: `[U, S, L, E]`, `mask`: `[U, S, L]` → `O`: `[U, S, L, E]` (eq. 2), zero at
    /// padding. `lengths` (`[S]`, on the host, see [`super::UserBatch::seq_lens`]): no
    /// user has a real position past `lengths[s]` in sequence `s`, so each sequence is
    /// attended over its own length ([`Self::forward_kinds`]) and padded back to `L` with
    /// zeros; the result equals attending over all `L` positions (masked keys weigh
    /// exactly zero), and costs the `L²` terms of the longest kind only once. An empty
    /// `lengths` attends over all `L`.
    pub fn forward(&self, e: &Tensor, mask: &Tensor, lengths: &[i64]) -> Tensor {
        let (_, s, l, _) = e.size4().unwrap();
        if lengths.is_empty() || lengths.iter().all(|&n| n >= l) {
            return self.attend(&self.slice(0, s), e, mask);
        }
        stack_padded(&self.forward_kinds(e, mask, lengths), l)
    }

    /// Eq. 1-2 kind by kind, each over its own length: for kind `k`, `O_k` `[U, L_k, E]`
    /// with `L_k = lengths[k]` (at least one position; an empty kind's is zero), the cut
    /// that [`TargetAttention::keys_of`] takes. The forward feeds these straight to the
    /// target attention: padding them to `L` and cutting them again (as [`Self::forward`]
    /// and [`TargetAttention::keys`] do) would cost a copy each way, and in the backward a
    /// zero tensor of the whole `[U, L, E]` per kind.
    pub fn forward_kinds(&self, e: &Tensor, mask: &Tensor, lengths: &[i64]) -> Vec<Tensor> {
        let l = e.size()[2];
        // One unbind rather than a narrow per kind: the backward of a narrow is a zero
        // tensor of the whole input's size, the backward of unbind one stack.
        e.unbind(1)
            .iter()
            .enumerate()
            .map(|(k, e_k)| {
                let n = lengths.get(k).map_or(l, |&n| n.clamp(0, l));
                let k = k as i64;
                if n == 0 {
                    return e_k.narrow(1, 0, 1).zeros_like();
                }
                self.attend(
                    &self.slice(k, 1),
                    &e_k.narrow(1, 0, n).unsqueeze(1),
                    &mask.narrow(1, k, 1).narrow(2, 0, n),
                )
                .squeeze_dim(1)
            })
            .collect()
    }

    /// Eq. 1-2 with the weights `w` of `e`'s sequences.
    fn attend(&self, w: &Weights, e: &Tensor, mask: &Tensor) -> Tensor {
        let (u, s, l, d) = e.size4().unwrap();
        let (q, k, v) = self.qkv(w, e); // [U, S, L, H, E/H] each
        let heads = attention(
            &q.flatten(0, 1),
            &k.flatten(0, 1),
            &v.flatten(0, 1),
            &mask.view([u * s, l]),
        )
        .reshape([u, s, l, d]);
        let out = einsum("usle,sef->uslf", &[&heads, &w.w_f]);
        let out = match &w.norm {
            Some((gain, bias)) => {
                let x = (e + out).layer_norm([d], None::<Tensor>, None::<Tensor>, 1e-5, false);
                x * gain.view([1, s, 1, d]) + bias.view([1, s, 1, d])
            }
            None => out,
        };
        out * mask.unsqueeze(-1)
    }
}

/// [`SelfAttention`]'s weights for a run of sequences (views, no copies).
struct Weights {
    w_q: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_f: Tensor,
    norm: Option<(Tensor, Tensor)>,
}

/// Eq. 3-5: attention of the target (user, item) over each sequence's positions.
#[derive(Debug)]
pub struct TargetAttention {
    /// `[S, E]`: the `o_j` block of eq. 3's W_c.
    w_pos: Tensor,
    /// `[D_ctx, S]` and `[S]`: the `(e_user, e_item)` block of eq. 3's W_c, and a bias.
    w_ctx: Tensor,
    b: Tensor,
    /// `[S, E, E]` and `[D_ctx, S·E]`: the multiplicative term (see the module docs).
    w_key: Tensor,
    w_query: Tensor,
    /// `[S]`: the logit of the null position (count-aware pooling), or none.
    null_logit: Option<Tensor>,
    emb_dim: i64,
}

/// The candidate-independent half of eq. 3, computed once per user, for each sequence
/// over its own length (see [`TargetAttention::keys`]).
#[derive(Debug)]
pub struct TargetKeys {
    /// Per sequence `k`, `[U, L_k, E]`: o_j itself, the values that eq. 5 pools.
    pub values: Vec<Tensor>,
    /// Per sequence `k`, `[U, L_k, E]`: o_j W^K_t.
    pub keys: Vec<Tensor>,
    /// Per sequence `k`, `[U, L_k]`: o_j · w_pos.
    pub pos_logit: Vec<Tensor>,
}

impl TargetAttention {
    /// With `count_aware`, eq. 4 has a learned null position (see the module docs).
    pub fn new(
        p: &nn::Path,
        sequences: i64,
        emb_dim: i64,
        ctx_dim: i64,
        count_aware: bool,
    ) -> Self {
        let fan = ctx_dim + emb_dim;
        Self {
            null_logit: count_aware
                .then(|| p.var("null_logit", &[sequences], nn::Init::Const(0.0))),
            w_pos: uniform(p, "w_pos", &[sequences, emb_dim], fan),
            w_ctx: uniform(p, "w_ctx", &[ctx_dim, sequences], fan),
            b: uniform(p, "b", &[sequences], fan),
            w_key: uniform(p, "w_key", &[sequences, emb_dim, emb_dim], emb_dim),
            w_query: uniform(p, "w_query", &[ctx_dim, sequences * emb_dim], ctx_dim),
            emb_dim,
        }
    }

    /// User step: `o` `[U, S, L, E]` → keys. `lengths` (`[S]`, on the host, see
    /// [`super::UserBatch::seq_lens`]): no user has a real position past `lengths[k]` in
    /// sequence `k`, so each sequence's keys (and, per candidate, eq. 3-5) cover its own
    /// length only, at least one position; an empty `lengths` means `L` for all. Masked
    /// positions weigh exactly zero, so the cut changes no weight.
    pub fn keys(&self, o: &Tensor, lengths: &[i64]) -> TargetKeys {
        let l = o.size()[2];
        // One unbind for all kinds (see SelfAttention::forward_kinds).
        let values: Vec<Tensor> = o
            .unbind(1)
            .iter()
            .enumerate()
            .map(|(k, o_k)| {
                let n = lengths.get(k).map_or(l, |&n| n.clamp(1, l));
                o_k.narrow(1, 0, n) // [U, L_k, E]
            })
            .collect();
        self.keys_of(values)
    }

    /// User step from `O` already cut per kind, `values[k]` `[U, L_k, E]` (as
    /// [`SelfAttention::forward_kinds`] returns it) → keys over those positions.
    pub fn keys_of(&self, values: Vec<Tensor>) -> TargetKeys {
        let (keys, pos_logit) = values
            .iter()
            .enumerate()
            .map(|(k, o_k)| {
                let k = k as i64;
                (
                    o_k.matmul(&self.w_key.get(k)),
                    o_k.matmul(&self.w_pos.get(k)),
                )
            })
            .unzip();
        TargetKeys {
            values,
            keys,
            pos_logit,
        }
    }

    /// The candidate side of eq. 3: `[U, C, S]` additive logits and `[U, C, S, E]` queries.
    fn queries(&self, ctx: &Tensor) -> (Tensor, Tensor) {
        let (u, c, _) = ctx.size3().unwrap();
        let s = self.b.size()[0];
        let ctx_logit = ctx.matmul(&self.w_ctx) + &self.b;
        let query = ctx.matmul(&self.w_query).view([u, c, s, self.emb_dim]);
        (ctx_logit, query)
    }

    /// Eq. 3-4 for sequence `k`: weights `[U, C, L_k]` over its `L_k` keys. Every
    /// operation on the `[U, C, L_k]` logits is one pass: the product half accumulates onto
    /// the additive half inside its matrix product (scaled there by 1/√E), and the mask
    /// stays `[U, 1, L_k]`, broadcast rather than expanded to every candidate.
    fn weights_of(
        &self,
        k: i64,
        keys: &TargetKeys,
        (ctx_logit, query): &(Tensor, Tensor),
        mask: &Tensor,
    ) -> Tensor {
        let (keys_k, pos_k) = (&keys.keys[k as usize], &keys.pos_logit[k as usize]);
        let n = keys_k.size()[1];
        let mut additive = ctx_logit.select(2, k).unsqueeze(-1) + pos_k.unsqueeze(1);
        let _ = additive.relu_();
        let logits = additive.baddbmm(
            &query.select(2, k),
            &keys_k.transpose(1, 2),
            1.0,
            1.0 / (self.emb_dim as f64).sqrt(),
        ); // [U, C, L_k]
        let mask = mask.select(1, k).narrow(1, 0, n).unsqueeze(1); // [U, 1, L_k]
        match &self.null_logit {
            None => masked_softmax(&logits, &mask),
            Some(null) => {
                // One more position, always present, whose value is zero: no row is
                // without a valid position, so the padded ones need only their logit.
                let (u, c, _) = logits.size3().unwrap();
                let null = null.get(k).view([1, 1, 1]).expand([u, c, 1], false);
                let masked = logits + (mask - 1.0) * (-MASKED);
                Tensor::cat(&[masked, null], -1)
                    .softmax(-1, None)
                    .narrow(2, 0, n)
            }
        }
    }

    /// Eq. 3-4: normalised weights `[U, C, S, L]` of each candidate over each sequence (zero
    /// past a sequence's keys). `ctx`: `[U, C, D_ctx]` = Concat(e_user, e_item) per
    /// candidate; `mask`: `[U, S, L]`.
    pub fn weights(&self, keys: &TargetKeys, ctx: &Tensor, mask: &Tensor) -> Tensor {
        let l = mask.size()[2];
        let q = self.queries(ctx);
        let per_kind: Vec<Tensor> = (0..keys.keys.len() as i64)
            .map(|k| {
                let w = self.weights_of(k, keys, &q, mask);
                let n = w.size()[2];
                w.constant_pad_nd([0, l - n])
            })
            .collect();
        Tensor::stack(&per_kind, 2)
    }

    /// Eq. 5: `f = Σ_j α̃_j o_j` over the positions the user step kept
    /// ([`TargetKeys::values`]) → `[U, C, S, E]`; zero for an empty sequence.
    pub fn forward(&self, keys: &TargetKeys, ctx: &Tensor, mask: &Tensor) -> Tensor {
        let q = self.queries(ctx);
        let per_kind: Vec<Tensor> = keys
            .values
            .iter()
            .enumerate()
            .map(|(k, o_k)| {
                let alpha = self.weights_of(k as i64, keys, &q, mask); // [U, C, L_k]
                alpha.matmul(o_k) // [U, C, E]
            })
            .collect();
        Tensor::stack(&per_kind, 2)
    }
}

/// Guards eq. 6 against an empty explicit sequence (b = 0).
const PROJECT_EPS: f64 = 1e-6;

/// Eq. 6-7: `a − project(a, b)`, with `project(a, b) = (a·b / |b|²) b` over the last axis.
/// The result is orthogonal to `b`; when `b` is zero (no explicit feedback) `a` is returned
/// unchanged.
pub fn orthogonal_map(a: &Tensor, b: &Tensor) -> Tensor {
    let dot = (a * b).sum_dim_intlist(-1, true, None);
    let norm2 = (b * b).sum_dim_intlist(-1, true, None);
    a - b * (dot / (norm2 + PROJECT_EPS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_fused_attention_kernel_equals_the_written_out_equation_and_its_gradient() {
        tch::manual_seed(11);
        let opts = (Kind::Float, Device::Cpu);
        // Rows with every number of valid keys, none among them.
        let (b, l, h, d) = (5i64, 9i64, 2i64, 8i64);
        let lens = Tensor::from_slice(&[0i64, 1, 3, 9, 5]).view([b, 1]);
        let mask = Tensor::arange(l, (Kind::Int64, Device::Cpu))
            .view([1, l])
            .lt_tensor(&lens)
            .to_kind(Kind::Float);
        let leaf = |_| Tensor::randn([b, l, h, d], opts).set_requires_grad(true);
        let (q, k, v) = (leaf(0), leaf(1), leaf(2));
        let written_out = |q: &Tensor, k: &Tensor, v: &Tensor| {
            let logits = einsum("bqhd,bkhd->bhqk", &[q, k]) / (d as f64).sqrt();
            let att = masked_softmax(&logits, &mask.view([b, 1, 1, l]));
            einsum("bhqk,bkhd->bqhd", &[&att, v])
        };
        // Rows without a valid key differ by design; compare the others.
        let valid = mask.amax([1], true).view([b, 1, 1, 1]);
        let fused = attention(&q, &k, &v, &mask) * &valid;
        let want = written_out(&q, &k, &v);
        let diff = (&fused - &want).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "forward differs by {diff}");
        assert!(want.abs().max().double_value(&[]) > 0.1);
        // Padded keys do not matter: changing their values changes nothing.
        let noise = Tensor::randn([b, l, h, d], opts) * (1.0 - mask.view([b, l, 1, 1]));
        let moved = attention(&q, &(&k + &noise), &(&v + &noise), &mask) * &valid;
        assert!((&moved - &fused).abs().max().double_value(&[]) < 1e-5);
        let r = Tensor::randn([b, l, h, d], opts);
        let grads = |y: &Tensor| {
            Tensor::run_backward(&[(y * &r).sum(Kind::Float)], &[&q, &k, &v], false, false)
        };
        for (i, (got, want)) in grads(&fused).iter().zip(grads(&want)).enumerate() {
            let diff = (got - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "gradient {i} differs by {diff}");
            assert!(want.abs().max().double_value(&[]) > 1e-3, "gradient {i}");
        }
    }
}
