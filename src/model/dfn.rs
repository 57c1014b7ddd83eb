//! The `BASE_DFN` competitor: the Deep Feedback Network (Xie et al., "Deep Feedback Network
//! for Recommendation", IJCAI 2020), which the DUMN paper's Table 1 compares against. It
//! reads the click, unclick and dislike sequences (not likes) and replaces DUMN's
//! purification, memories and PAIR; embeddings, output FFN and training loop are shared.
//!
//! From the published description:
//! - **internal feedback interaction**: per feedback kind, a transformer layer over the
//!   target item followed by that kind's sequence, `[t, s_1, …, s_L]`, pooled into one
//!   vector: `f_c`, `f_u`, `f_d`;
//! - **external feedback interaction**: the clicks and the dislikes, which are reliable,
//!   pick out what matters in the noisy unclick sequence: attention with query `f_c` (and
//!   `f_d`) over the unclick positions gives `f_uc` (and `f_ud`);
//! - the five vectors are combined and fed with the user and item features to the output
//!   network.
//!
//! Where the description is vague, chosen here:
//! - one transformer layer per kind (multi-head attention with `heads` heads, residual and
//!   layer normalisation, a 2E feed-forward layer, residual and layer normalisation), its
//!   output mean-pooled over the target and the valid positions;
//! - the target token is `e_item` projected to E (the sequences hold item embeddings of
//!   size E);
//! - the external attention is bilinear, `softmax_j(⟨f W_k, u_j⟩ / √E)` over the unclick
//!   embeddings `u_j`, zero for an empty unclick sequence;
//! - "combined" is a gate per vector, `v ⊙ σ(v W_v)` (as DUMN's eq. 13), then concatenation;
//!   DFN's wide and FM parts are left out, since every model here shares one output FFN.
//!
//! The transformer sees the target, so nothing of it is shared between a user's
//! candidates: DFN's cost per candidate is a transformer pass over three sequences.

use tch::{nn, Tensor};

use super::inputs::{CLICK, DISLIKE, UNCLICK};
use super::params::{einsum, uniform};
use super::purification::{attention, masked_softmax};

/// The sequences DFN reads, in its internal layer's order.
const KINDS: [usize; 3] = [CLICK, UNCLICK, DISLIKE];
/// Vectors DFN hands to the output network: f_c, f_u, f_d, f_uc, f_ud.
pub const OUTPUTS: i64 = 5;

/// Layer normalisation over the last axis with a gain and bias `[K, E]` per kind `k`
/// (axis 1 of `x`: `[N, K, L, E]`).
fn norm(x: &Tensor, gain: &Tensor, bias: &Tensor) -> Tensor {
    let e = x.size()[3];
    let k = gain.size()[0];
    x.layer_norm([e], None::<Tensor>, None::<Tensor>, 1e-5, false) * gain.view([1, k, 1, e])
        + bias.view([1, k, 1, e])
}

#[derive(Debug)]
pub struct Dfn {
    heads: i64,
    /// `[3]`: [`KINDS`] as an index tensor, built once.
    kinds: Tensor,
    /// `[D_item, E]`: the target token.
    target: Tensor,
    /// Internal layer, per kind: `[3, E, 3E]` q/k/v, `[3, E, E]` output, norms `[3, E]`,
    /// feed-forward `[3, E, 2E]`, `[3, 2E]`, `[3, 2E, E]`, `[3, E]`.
    w_qkv: Tensor,
    w_out: Tensor,
    norm1: (Tensor, Tensor),
    ffn1: (Tensor, Tensor),
    ffn2: (Tensor, Tensor),
    norm2: (Tensor, Tensor),
    /// External attention `[2, E, E]` (query from f_c, from f_d).
    w_external: Tensor,
    /// Gates `[5, E, E]`.
    w_gate: Tensor,
}

impl Dfn {
    pub fn new(p: &nn::Path, emb_dim: i64, item_dim: i64, heads: i64) -> Self {
        let (e, k) = (emb_dim, KINDS.len() as i64);
        let ones = |name: &str| p.var(name, &[k, e], nn::Init::Const(1.0));
        let zeros = |name: &str| p.var(name, &[k, e], nn::Init::Const(0.0));
        Self {
            heads,
            kinds: Tensor::from_slice(&KINDS.map(|k| k as i64)).to_device(p.device()),
            target: uniform(p, "target", &[item_dim, e], item_dim),
            w_qkv: uniform(p, "w_qkv", &[k, e, 3 * e], e),
            w_out: uniform(p, "w_out", &[k, e, e], e),
            norm1: (ones("norm1_gain"), zeros("norm1_bias")),
            ffn1: (
                uniform(p, "ffn1_w", &[k, e, 2 * e], e),
                uniform(p, "ffn1_b", &[k, 2 * e], e),
            ),
            ffn2: (
                uniform(p, "ffn2_w", &[k, 2 * e, e], 2 * e),
                uniform(p, "ffn2_b", &[k, e], 2 * e),
            ),
            norm2: (ones("norm2_gain"), zeros("norm2_bias")),
            w_external: uniform(p, "w_external", &[2, e, e], e),
            w_gate: uniform(p, "w_gate", &[OUTPUTS, e, e], e),
        }
    }

    /// Width of the output: five vectors of E.
    pub fn output_dim(&self) -> i64 {
        OUTPUTS * self.w_out.size()[1]
    }

    /// `seq_emb` `[N, S, L, E]` and `mask` `[N, S, L]`: each row's user's sequences (S = 4,
    /// in [`super::FEEDBACK_KINDS`] order); `e_item` `[N, D_item]` → `[N, 5E]`.
    pub fn forward(&self, seq_emb: &Tensor, mask: &Tensor, e_item: &Tensor) -> Tensor {
        let (n, _, l, e) = seq_emb.size4().unwrap();
        let k = KINDS.len() as i64;
        let seqs = seq_emb.index_select(1, &self.kinds); // [N, 3, L, E]
        let seq_mask = mask.index_select(1, &self.kinds); // [N, 3, L]
                                                          // Internal: [t, s_1..s_L] per kind.
        let t = e_item.matmul(&self.target); // [N, E]
        let x = Tensor::cat(&[t.view([n, 1, 1, e]).expand([n, k, 1, e], false), seqs], 2);
        let m = Tensor::cat(
            &[Tensor::ones([n, k, 1], (x.kind(), x.device())), seq_mask],
            2,
        );
        let h = self.heads;
        let dh = e / h;
        let qkv = einsum("nkle,kef->nklf", &[&x, &self.w_qkv]).chunk(3, -1);
        // [N, K, L+1, E] each → [N·K, L+1, H, E/H]. The target is always a valid key.
        let split = |t: &Tensor| t.reshape([n * k, l + 1, h, dh]);
        let heads = attention(
            &split(&qkv[0]),
            &split(&qkv[1]),
            &split(&qkv[2]),
            &m.view([n * k, l + 1]),
        )
        .reshape([n, k, l + 1, e]);
        let y = norm(
            &(&x + einsum("nkle,kef->nklf", &[&heads, &self.w_out])),
            &self.norm1.0,
            &self.norm1.1,
        );
        let hidden = (einsum("nkle,kef->nklf", &[&y, &self.ffn1.0])
            + self.ffn1.1.view([1, k, 1, 2 * e]))
        .relu();
        let ffn =
            einsum("nklf,kfe->nkle", &[&hidden, &self.ffn2.0]) + self.ffn2.1.view([1, k, 1, e]);
        let z = norm(&(y + ffn), &self.norm2.0, &self.norm2.1) * m.unsqueeze(-1);
        // [N, 3, E]: f_c, f_u, f_d.
        let internal = z.sum_dim_intlist(2, false, None) / m.sum_dim_intlist(2, true, None);
        // External: f_c and f_d attend over the unclick positions.
        let unclick = seq_emb.select(1, UNCLICK as i64); // [N, L, E]
        let unclick_mask = mask.select(1, UNCLICK as i64); // [N, L]
        let queries = Tensor::stack(&[internal.select(1, 0), internal.select(1, 2)], 1); // [N, 2, E]
        let keys = einsum("nie,ief->nif", &[&queries, &self.w_external]);
        let logits = einsum("nif,nlf->nil", &[&keys, &unclick]) / (e as f64).sqrt();
        let alpha = masked_softmax(&logits, &unclick_mask.unsqueeze(1));
        let external = einsum("nil,nle->nie", &[&alpha, &unclick]); // [N, 2, E]: f_uc, f_ud
        let all = Tensor::cat(&[internal, external], 1); // [N, 5, E]
        let gated = &all * einsum("nie,ief->nif", &[&all, &self.w_gate]).sigmoid();
        gated.flatten(1, 2)
    }
}
