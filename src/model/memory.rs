//! Paper §3.4, the user memory network (UMN): controller (eq. 8), cosine addressing and
//! read (eq. 9-11), erase/add write (eq. 12), and the anchor of the triplet loss (eq. 18).
//!
//! # What the memory is
//! Section 3.4 says a slot aggregates "similar interests between users", so there is one
//! memory per feedback kind, `M_k ∈ R^{m×Z}`, shared by all users (not a per-user NTM
//! state). Its life:
//! - **training**: `M_k` is a trainable tensor, so the CTR loss shapes it through every read,
//!   and after each optimizer step it is rewritten by eq. 12, `M ← (1 − E) ⊙ M + A`, with the
//!   batch rule `E = mean_n w^w_n ⊗ erase_n`, `A = mean_n w^w_n ⊗ add_n` (the paper gives no
//!   batch rule; averaging keeps a write's size independent of the batch size). The write
//!   head (write key, erase, add) learns through the triplet loss, whose anchor `q` reads
//!   the *written* memory (eq. 18);
//! - **inference**: the memory is frozen as training left it (it is saved in the artifact)
//!   and only read, so a score never depends on the other rows of its batch.
//!
//! # Choices where the paper is open
//! - The controller FFN of eq. 8 is one ReLU layer of `ffn_dim` units (paper: 512) shared by
//!   four heads: read key (Z), write key (Z), erase (Z, sigmoid) and add (Z, tanh), the NTM
//!   conventions.
//! - Eq. 9 has no key strength, which leaves reads nearly uniform over 256 slots; we
//!   multiply the cosine by a learned strength β > 0 per memory (NTM's β), initialised to 5.
//! - The anchor `q ∈ R^Z` is compared with item embeddings `s ∈ R^E`: a learned Z→E
//!   projection per memory maps it first (see [`super::loss`]).
//! - The controller's first layer splits into a `f^o` block and an `e_user` block; the
//!   `e_user` block is computed once per user ([`UserMemory::user_part`]).

use tch::{nn, Kind, Tensor};

use super::params::{einsum, uniform};

/// Initial key strength β.
const INIT_BETA: f64 = 5.0;

/// The batch-averaged erase and add matrices of eq. 12, one per memory, detached.
#[derive(Debug)]
pub struct MemoryWrite {
    /// `[n_mem, m, Z]`.
    pub erase: Tensor,
    /// `[n_mem, m, Z]`.
    pub add: Tensor,
}

/// What the write path produces during training.
#[derive(Debug)]
pub struct WriteOutput {
    /// Eq. 18 anchors `q = Σ_j w^w(j) M'(j)` over the written memory, `[N, S, Z]`.
    pub anchors: Tensor,
    pub write: MemoryWrite,
}

#[derive(Debug)]
pub struct UserMemory {
    /// `[n_mem, m, Z]`: the memories themselves.
    memory: Tensor,
    /// `[n_mem]`: log of the key strength β.
    log_beta: Tensor,
    /// Controller layer 1: `[n_mem, E, F]` (f^o block), `[n_mem, D_user, F]` (e_user block), `[n_mem, F]`.
    w_f: Tensor,
    w_user: Tensor,
    b_hidden: Tensor,
    /// Read head `[n_mem, F, Z]`, `[n_mem, Z]`.
    w_read: Tensor,
    b_read: Tensor,
    /// Write head `[n_mem, F, 3Z]`, `[n_mem, 3Z]`: write key, erase, add.
    w_write: Tensor,
    b_write: Tensor,
    /// `[S]`: which memory each sequence uses (identity, or all 0 for DUMN+UMN1).
    mem_of_seq: Tensor,
    n_mem: i64,
    sequences: i64,
}

impl UserMemory {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        p: &nn::Path,
        n_mem: i64,
        sequences: i64,
        slots: i64,
        slot_dim: i64,
        emb_dim: i64,
        user_dim: i64,
        ffn_dim: i64,
    ) -> Self {
        let fan = emb_dim + user_dim;
        let mem_of_seq: Vec<i64> = (0..sequences)
            .map(|s| if n_mem == 1 { 0 } else { s })
            .collect();
        Self {
            memory: p.var(
                "memory",
                &[n_mem, slots, slot_dim],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0 / (slot_dim as f64).sqrt(),
                },
            ),
            log_beta: p.var("log_beta", &[n_mem], nn::Init::Const(INIT_BETA.ln())),
            w_f: uniform(p, "w_f", &[n_mem, emb_dim, ffn_dim], fan),
            w_user: uniform(p, "w_user", &[n_mem, user_dim, ffn_dim], fan),
            b_hidden: uniform(p, "b_hidden", &[n_mem, ffn_dim], fan),
            w_read: uniform(p, "w_read", &[n_mem, ffn_dim, slot_dim], ffn_dim),
            b_read: uniform(p, "b_read", &[n_mem, slot_dim], ffn_dim),
            w_write: uniform(p, "w_write", &[n_mem, ffn_dim, 3 * slot_dim], ffn_dim),
            b_write: uniform(p, "b_write", &[n_mem, 3 * slot_dim], ffn_dim),
            mem_of_seq: Tensor::from_slice(&mem_of_seq).to_device(p.device()),
            n_mem,
            sequences,
        }
    }

    /// A per-memory tensor laid out per sequence: `[n_mem, ...]` → `[S, ...]`.
    fn per_seq(&self, t: &Tensor) -> Tensor {
        if self.n_mem == self.sequences {
            t.shallow_clone()
        } else {
            t.index_select(0, &self.mem_of_seq)
        }
    }

    /// The `e_user` block of eq. 8's first layer plus its bias: `[U, D_user]` → `[S, U, F]`
    /// (sequence-major, like the hidden state).
    pub fn user_part(&self, e_user: &Tensor) -> Tensor {
        einsum("ud,sdf->suf", &[e_user, &self.per_seq(&self.w_user)])
            + self.per_seq(&self.b_hidden).unsqueeze(1)
    }

    /// Eq. 8's hidden layer from `f^o` `[N, S, E]` and the user part `[S, U, F]` of
    /// [`Self::user_part`], taken for each row by `user_of_row` `[N]` (`None`: row `i` is
    /// user `i`, as in a training batch): `[S, N, F]`. The controller works
    /// sequence-major, so that every product below is one batched matrix product over the
    /// S sequences with no transposed copies of the `[N, S, F]`-sized tensors, where most
    /// of a candidate's arithmetic is. The user part is gathered to one row per candidate
    /// and the product added to it in place: an out-of-place `baddbmm` would copy that
    /// `[S, N, F]` tensor once more (6% of model-only scoring's samples at 4M,
    /// docs/benchmarks.md). Without `user_of_row` there is nothing to gather: the
    /// out-of-place `baddbmm` makes the one copy, and the backward has no scatter.
    pub fn hidden(&self, fo: &Tensor, user_part: &Tensor, user_of_row: Option<&Tensor>) -> Tensor {
        let (fo, w_f) = (fo.transpose(0, 1), self.per_seq(&self.w_f));
        let mut h = match user_of_row {
            Some(users) => {
                let mut h = user_part.index_select(1, users);
                let _ = h.baddbmm_(&fo, &w_f);
                h
            }
            None => user_part.baddbmm(&fo, &w_f, 1, 1),
        };
        let _ = h.relu_();
        h
    }

    /// Eq. 9-10 with key strength: softmax_j(β cos(k, M(j))) for keys `[S, N, Z]` →
    /// `[S, N, m]`. β scales the normalised slots (`[S, m, Z]`, once per call) rather than
    /// the `[S, N, m]` cosines: the same product, one pass over the candidates fewer.
    fn address(&self, key: &Tensor, memory: &Tensor) -> Tensor {
        let k = l2_normalize(key);
        let beta = self.per_seq(&self.log_beta.exp()).view([-1, 1, 1]); // [S, 1, 1]
        let m = l2_normalize(&self.per_seq(memory)) * beta; // [S, m, Z]
        k.bmm(&m.transpose(1, 2)).softmax(-1, None)
    }

    /// Read weights of eq. 9 for a hidden state `[S, N, F]` → `[S, N, m]` (rows sum to 1).
    pub fn read_weights(&self, hidden: &Tensor) -> Tensor {
        let key = self.per_seq(&self.b_read).unsqueeze(1).baddbmm(
            hidden,
            &self.per_seq(&self.w_read),
            1,
            1,
        );
        self.address(&key, &self.memory)
    }

    /// Eq. 8-11: the long-term interest `r = Σ_j w^r(j) M(j)` for a hidden state
    /// `[S, N, F]`: `[N, S, Z]`.
    pub fn read(&self, hidden: &Tensor) -> Tensor {
        let w = self.read_weights(hidden);
        w.bmm(&self.per_seq(&self.memory)).transpose(0, 1)
    }

    /// Eq. 12 applied to `memory` `[n_mem, m, Z]` with per-sequence write weights `[N, S, m]`,
    /// erase and add vectors `[N, S, Z]`: returns the written memory and the E, A matrices.
    pub fn write_rule(
        &self,
        memory: &Tensor,
        w: &Tensor,
        erase: &Tensor,
        add: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let n = w.size()[0] as f64;
        let (s, m, z) = (self.sequences, memory.size()[1], memory.size()[2]);
        // Σ_n w_n ⊗ erase_n per sequence, then averaged over rows and over the sequences
        // sharing a memory.
        let per_seq_e = einsum("nsm,nsz->smz", &[w, erase]) / n;
        let per_seq_a = einsum("nsm,nsz->smz", &[w, add]) / n;
        let (e, a) = if self.n_mem == s {
            (per_seq_e, per_seq_a)
        } else {
            let e = per_seq_e.mean_dim(0, true, Kind::Float).view([1, m, z]);
            let a = per_seq_a.mean_dim(0, true, Kind::Float).view([1, m, z]);
            (e, a)
        };
        let written = (1.0 - &e) * memory + &a;
        (written, e, a)
    }

    /// The training-time write path for a hidden state `[S, N, F]`: eq. 12 on the current
    /// memory and the eq. 18 anchors `[N, S, Z]`.
    pub fn write(&self, hidden: &Tensor) -> WriteOutput {
        let out = self.per_seq(&self.b_write).unsqueeze(1).baddbmm(
            hidden,
            &self.per_seq(&self.w_write),
            1,
            1,
        ); // [S, N, 3Z]
        let parts = out.chunk(3, -1);
        let w_s = self.address(&parts[0], &self.memory); // [S, N, m]
        let rows = |t: Tensor| t.transpose(0, 1); // [S, N, ·] → [N, S, ·]
        let (erase, add) = (rows(parts[1].sigmoid()), rows(parts[2].tanh()));
        let w = rows(w_s.shallow_clone());
        let (written, e, a) = self.write_rule(&self.memory, &w, &erase, &add);
        let anchors = rows(w_s.bmm(&self.per_seq(&written)));
        WriteOutput {
            anchors,
            write: MemoryWrite {
                erase: e.detach(),
                add: a.detach(),
            },
        }
    }

    /// Commits a training write to the memory (after the optimizer step).
    pub fn apply(&self, write: &MemoryWrite) {
        tch::no_grad(|| {
            let new = (1.0 - &write.erase) * &self.memory + &write.add;
            let mut mem = self.memory.shallow_clone();
            mem.copy_(&new);
        });
    }

    /// The memory contents `[n_mem, m, Z]`.
    pub fn contents(&self) -> &Tensor {
        &self.memory
    }
}

/// `x / |x|` over the last axis; zero stays zero.
pub fn l2_normalize(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [-1i64], true).clamp_min(1e-8)
}
