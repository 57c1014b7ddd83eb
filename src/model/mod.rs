//! The DUMN network (paper §3), in `tch`, and what turns it into a scoring model: its
//! inputs, its artifact on disk, the device it runs on and the [`scorer::Scorer`].
//!
//! | module | owns |
//! | --- | --- |
//! | [`features`] | the feature schema (which columns, how many embedding rows) and id hashing |
//! | [`inputs`] | Arrow batches of the data plane → [`Rows`] (the model's input columns, no object per row); the hand-built [`Example`] |
//! | [`batch`] | rows → padded tensors ([`Batch`], [`UserBatch`], [`CandidateBatch`]) |
//! | [`config`] | hyper-parameters and the paper's ablation variants |
//! | [`artifact`] | saving and loading a trained model (safetensors + JSON manifest) |
//! | [`registry`] | model versions and aliases (`MODELS/<version>/`, `MODELS@latest`) |
//! | [`device`] | `--device auto|cpu|cuda|cuda:N` |
//! | [`scorer`] | a loaded model scoring rows, one user step per user |
//!
//! The network itself, equation by equation:
//!
//! | paper | what | where |
//! |---|---|---|
//! | §3.2 | embedding layer | [`embedding::Embeddings`] |
//! | eq. 1-2 | multi-head self-attention per sequence | [`purification::SelfAttention`] |
//! | eq. 3-5 | target attention, sequence → `f` | [`purification::TargetAttention`] |
//! | eq. 6-7 | orthogonal mapping | [`purification::orthogonal_map`] |
//! | eq. 8-11 | memory controller, addressing, read | [`memory::UserMemory`] |
//! | eq. 12 | memory write | [`memory::UserMemory::write`], [`Dumn::apply_memory_write`] |
//! | eq. 13-14 | PAIR gate and `R_cross` | [`pair::Pair`] |
//! | eq. 15 | output FFN (click head, and the dislike head of §4.5) | [`Dumn::candidate_step`] |
//! | eq. 16-20 | logloss, triplet loss | [`loss`] |
//! | — | BASE_DFN's network instead of eq. 1-14 (the DFN paper) | [`dfn::Dfn`] |
//!
//! # Two-step forward
//! [`Dumn::user_step`] does everything that depends only on the user: `e_user`, the
//! sequence embeddings, the self-attention of eq. 1-2 and the user-only halves of eq. 3 and
//! eq. 8's first layer. [`Dumn::candidate_step`] does the rest for any number of candidates
//! per user. [`Dumn::forward`] is the two run back to back with one candidate per user row,
//! so one user's state reused for many candidates gives the same scores as many rows.
//!
//! # Eq. 15's inputs
//! The equation feeds `Concat(e_user, e_item, R_cross)` to the output FFN; the text also
//! names "short-term interests and cross features". We add one cross feature: for each
//! sequence, the purified short-term interest `f^o_k` times the target item mapped into that
//! sequence's space (`e_item W_t`, element-wise). Without it the FFN must learn a product of
//! `e_item` and `f^o` from concatenation alone, which on planted data it did only slowly.
//!
//! # Two heads
//! Paper §4.5 predicts dislikes with DUMN. Here that is a second output FFN on the same
//! deep representation, trained jointly (`dislike_weight`): one forward yields both the
//! click probability and the dislike probability. Output column 0 is click, 1 is dislike.

pub mod artifact;
pub mod batch;
pub mod config;
pub mod device;
pub mod dfn;
pub mod embedding;
pub mod features;
pub mod inputs;
pub mod loss;
pub mod memory;
pub mod pair;
mod params;
pub mod purification;
pub mod registry;
pub mod scorer;

use anyhow::Result;
use tch::{nn, nn::Module, Device, Kind, Tensor};

pub use batch::{Batch, CandidateBatch, UserBatch};
pub use config::{Ablation, FeedbackMode, ModelConfig, Network, PairMode, TripletMode};
pub use inputs::{Example, History, Rows, FEEDBACK_KINDS};

use dfn::Dfn;
use embedding::{Embeddings, PositionBuckets};
use inputs::{CLICK, DISLIKE, LIKE, UNCLICK};
use loss::TripletLoss;
use memory::{MemoryWrite, UserMemory};
use pair::Pair;
use purification::{orthogonal_map, SelfAttention, TargetAttention, TargetKeys};

/// Output columns of the model.
pub const HEAD_CLICK: i64 = 0;
pub const HEAD_DISLIKE: i64 = 1;

/// `[N, 2]` probabilities on any device, in any float type → `[click, dislike]` on the
/// host as f32 (indexed by [`HEAD_CLICK`] and [`HEAD_DISLIKE`]).
pub fn heads_to_host(probs: &Tensor) -> Result<[Vec<f32>; 2]> {
    let p = probs.to_device(Device::Cpu).to_kind(Kind::Float);
    Ok([
        Vec::try_from(p.select(1, HEAD_CLICK))?,
        Vec::try_from(p.select(1, HEAD_DISLIKE))?,
    ])
}

/// The output of [`Dumn::user_step`] for `U` users: everything the candidates share.
#[derive(Debug)]
pub struct UserState {
    /// `[U, D_user]`.
    pub e_user: Tensor,
    /// `[U, S, L, E]`: the sequence embeddings (zero at padding).
    pub seq_emb: Tensor,
    /// `[U, S, L]`.
    pub mask: Tensor,
    /// The user-only half of eq. 3 (None in BASE_DFN, which has no target attention).
    pub keys: Option<TargetKeys>,
    /// `[S, U, F]`: the `e_user` block of eq. 8's first layer (None without memory).
    pub controller: Option<Tensor>,
    /// `[U, H_click + H_dislike]`: the `e_user` block of both output FFNs' first layers,
    /// with their biases.
    pub heads: Tensor,
}

impl UserState {
    /// `O` of eq. 2, `[U, S, L, E]`, zero at padding: the per-kind cuts the candidate step
    /// reads ([`TargetKeys::values`]) padded back to `L`, for inspection (the equation
    /// tests check it). `None` without eq. 3-5 (BASE_DFN).
    pub fn o(&self) -> Option<Tensor> {
        let keys = self.keys.as_ref()?;
        Some(purification::stack_padded(
            &keys.values,
            self.mask.size()[2],
        ))
    }
}

/// Intermediate values of the candidate step that training needs.
struct CandidateOut {
    /// `[N, 2]`.
    logits: Tensor,
    /// `[S, N, F]`: controller hidden state, when the model has memory.
    hidden: Option<Tensor>,
}

/// What one training forward produces.
#[derive(Debug)]
pub struct TrainOutput {
    /// `[B, 2]` click and dislike logits.
    pub logits: Tensor,
    /// L2 of eq. 20, already weighted by `triplet_weight` (0 when the loss is off).
    pub triplet: Tensor,
    /// The eq. 12 write to commit after the optimizer step.
    pub write: Option<MemoryWrite>,
}

/// The three terms of the training loss, and their sum.
#[derive(Debug)]
pub struct Losses {
    pub total: Tensor,
    pub click_logloss: Tensor,
    pub dislike_logloss: Tensor,
    pub triplet: Tensor,
}

/// An output FFN of eq. 15: linear layers with ReLU between them, ending in one logit.
#[derive(Debug)]
struct Head {
    /// `fc0 … fc{k-1}`, then `out`.
    layers: Vec<nn::Linear>,
}

impl Head {
    fn new(p: &nn::Path, input: i64, hidden: &[i64]) -> Self {
        let mut layers = Vec::new();
        let mut width = input;
        for (i, &h) in hidden.iter().enumerate() {
            layers.push(nn::linear(
                p / format!("fc{i}"),
                width,
                h,
                Default::default(),
            ));
            width = h;
        }
        layers.push(nn::linear(p / "out", width, 1, Default::default()));
        Self { layers }
    }

    fn first(&self) -> &nn::Linear {
        &self.layers[0]
    }

    /// The layers after the first, given the first layer's output (before its ReLU), with
    /// dropout `p` after each ReLU when `train`.
    fn rest(&self, first_out: &Tensor, p: f64, train: bool) -> Tensor {
        let mut x = first_out.shallow_clone();
        for layer in &self.layers[1..] {
            x = layer.forward(&x.relu().dropout(p, train && p > 0.0));
        }
        x
    }
}

/// The DUMN model and its variables.
#[derive(Debug)]
pub struct Dumn {
    pub config: ModelConfig,
    vs: nn::VarStore,
    emb: Embeddings,
    /// Eq. 1-2, when the variant runs it.
    self_attention: Option<SelfAttention>,
    /// Eq. 3-5 (DUMN's network).
    target_attention: Option<TargetAttention>,
    /// BASE_DFN's network instead of eq. 1-14.
    dfn: Option<Dfn>,
    /// Rank-recency vectors added to sequence positions (`position_buckets`).
    positions: Option<PositionBuckets>,
    memory: Option<UserMemory>,
    pair: Pair,
    triplet: Option<TripletLoss>,
    /// `[D_item, S·E]`: maps `e_item` into each sequence's space for the target × interest
    /// product of eq. 15 (see the module docs); DUMN's network only.
    target_cross: Option<Tensor>,
    click_head: Head,
    dislike_head: Head,
}

impl Dumn {
    /// A freshly initialised model on `device`. Seed with `tch::manual_seed` first for a
    /// repeatable initialisation.
    pub fn new(config: ModelConfig, device: Device) -> Result<Self> {
        config
            .validate()
            .and_then(|()| config.schema.validate())
            .map_err(|e| anyhow::anyhow!("invalid model config: {e}"))?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let c = &config;
        let a = &c.ablation;
        let s = a.num_sequences() as i64;
        let (e, z, du, di) = (c.emb_dim, c.slot_dim, c.user_dim(), c.item_dim());
        let emb = Embeddings::new(&(&root / "embedding"), &c.schema, e);
        let dumn_network = a.network == Network::Dumn;
        let self_attention = a.uses_self_attention().then(|| {
            SelfAttention::new(
                &(&root / "self_attention"),
                s,
                e,
                c.heads,
                c.attention_residual,
            )
        });
        let target_attention = dumn_network.then(|| {
            TargetAttention::new(
                &(&root / "target_attention"),
                s,
                e,
                du + di,
                c.count_aware_pooling,
            )
        });
        let dfn = (a.network == Network::Dfn).then(|| Dfn::new(&(&root / "dfn"), e, di, c.heads));
        let positions = c
            .position_buckets
            .then(|| PositionBuckets::new(&(&root / "embedding"), s, c.seq_len, e));
        let memory = (a.num_memories() > 0).then(|| {
            UserMemory::new(
                &(&root / "memory"),
                a.num_memories() as i64,
                s,
                c.mem_slots,
                z,
                e,
                du,
                c.ffn_dim,
            )
        });
        let pair = Pair::new(&(&root / "pair"), a.pair, memory.is_some(), s, e, z);
        let triplet = a
            .uses_triplet()
            .then(|| TripletLoss::new(&(&root / "triplet"), s, c));
        let target_cross = dumn_network
            .then(|| params::uniform(&(&root / "output"), "target_cross", &[di, s * e], di));
        let interest = match &dfn {
            Some(d) => d.output_dim(),
            None => s * pair.unit_dim() + s * e,
        };
        let deep = du + di + interest;
        let click_head = Head::new(&(&root / "click_head"), deep, &c.out_hidden);
        let dislike_head = Head::new(&(&root / "dislike_head"), deep, &c.out_hidden);
        Ok(Self {
            config,
            vs,
            emb,
            self_attention,
            target_attention,
            dfn,
            positions,
            memory,
            pair,
            triplet,
            target_cross,
            click_head,
            dislike_head,
        })
    }

    /// Fills the table of each item's other fields that sequence positions are embedded
    /// with (see [`embedding`]); `[rows of item_id, n_item_fields − 1]`.
    pub fn set_item_fields(&self, rows: &Tensor) -> Result<()> {
        self.emb.set_item_fields(rows)
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Casts every float weight and the memories to `precision`, for scoring (see
    /// [`device::Precision`]); the forward then computes in that type and returns logits of
    /// it. Training runs in fp32 only.
    pub fn set_precision(&mut self, precision: device::Precision) {
        match precision {
            device::Precision::Fp32 => self.vs.float(),
            device::Precision::Bf16 => self.vs.bfloat16(),
        }
    }

    /// The float type the weights are in.
    pub fn precision(&self) -> device::Precision {
        match self.emb.kind() {
            Kind::BFloat16 => device::Precision::Bf16,
            _ => device::Precision::Fp32,
        }
    }

    /// The user step: `e_user`, sequence embeddings, eq. 1-2, and the user-only halves of
    /// eq. 3 and eq. 8.
    pub fn user_step(&self, users: &UserBatch) -> UserState {
        let e_user = self.emb.user(&users.user_idx);
        // The batch's mask is fp32; the forward computes in the weights' type.
        let mask = users.seq_mask.to_kind(e_user.kind());
        let mut seq_emb = self.emb.sequence(&users.seq_idx, &mask);
        if let Some(p) = &self.positions {
            seq_emb += p.forward(&mask);
        }
        // Eq. 1-2 (when the variant has them) and the user-only half of eq. 3, each kind
        // over its own length.
        let keys = self
            .target_attention
            .as_ref()
            .map(|ta| match &self.self_attention {
                Some(sa) => ta.keys_of(sa.forward_kinds(&seq_emb, &mask, &users.seq_lens)),
                None => ta.keys(&seq_emb, &users.seq_lens),
            });
        let controller = self.memory.as_ref().map(|m| m.user_part(&e_user));
        let w_user = self.head_weights(0, e_user.size()[1]);
        let heads = e_user.matmul(&w_user.tr()) + self.head_bias();
        UserState {
            heads,
            e_user,
            seq_emb,
            mask,
            keys,
            controller,
        }
    }

    /// The candidate step for `C` candidates per user (padded, see [`CandidateBatch`]).
    /// Returns `[N, 2]` logits (click, dislike) for the `N` real candidates: users in order,
    /// each user's candidates in order.
    pub fn candidate_step(&self, state: &UserState, cands: &CandidateBatch) -> Tensor {
        self.candidate_core(state, cands, false).logits
    }

    /// The candidate step; `train` turns dropout on.
    fn candidate_core(
        &self,
        state: &UserState,
        cands: &CandidateBatch,
        train: bool,
    ) -> CandidateOut {
        let (u, c, _) = cands.item_idx.size3().unwrap();
        // [U, C, D_item], then one row per real candidate, [N, D_item]: users in order,
        // each user's candidates in order.
        let e_item = self.emb.item(&cands.item_idx);
        let e_item_rows = cands.real(&e_item.flatten(0, 1));
        let (interest, hidden) = match (&self.dfn, &self.target_attention, &state.keys) {
            (Some(dfn), _, _) => {
                let seq = cands.of_user(&state.seq_emb, 0);
                let mask = cands.of_user(&state.mask, 0);
                (dfn.forward(&seq, &mask, &e_item_rows), None)
            }
            (None, Some(ta), Some(keys)) => {
                let ctx = Tensor::cat(
                    &[state.e_user.unsqueeze(1).expand([u, c, -1], false), e_item],
                    -1,
                );
                // Eq. 3-5: f per candidate and sequence, [U, C, S, E], then per row.
                let f = ta.forward(keys, &ctx, &state.mask);
                let f = cands.real(&f.flatten(0, 1)); // [N, S, E]
                self.dumn_interest(state, f, &e_item_rows, cands)
            }
            _ => unreachable!("a model has DFN's network or DUMN's target attention"),
        };
        // The deep input is Concat(e_user, e_item, interest); its e_user block went through
        // both heads' first layers once per user, in the user step.
        let rest = Tensor::cat(&[e_item_rows, interest], -1);
        let w_rest = self.head_weights(state.e_user.size()[1], rest.size()[1]);
        let first = cands.of_user(&state.heads, 0).addmm(&rest, &w_rest.tr());
        let h = self.click_head.first().ws.size()[0];
        let p = self.config.dropout;
        let logits = Tensor::cat(
            &[
                self.click_head.rest(&first.narrow(1, 0, h), p, train),
                self.dislike_head
                    .rest(&first.narrow(1, h, first.size()[1] - h), p, train),
            ],
            -1,
        );
        CandidateOut { logits, hidden }
    }

    /// Eq. 6-14 for pooled `f` `[N, S, E]`: `Concat(R_cross, f^o ⊙ target)` `[N, ·]`, and the
    /// memory controller's hidden state when the model has memory.
    fn dumn_interest(
        &self,
        state: &UserState,
        f: Tensor,
        e_item: &Tensor,
        cands: &CandidateBatch,
    ) -> (Tensor, Option<Tensor>) {
        // Eq. 6-7: purify click by dislike and unclick by like.
        let fo = if self.config.ablation.uses_orthogonal_mapping() {
            let k = |i: usize| f.select(1, i as i64);
            Tensor::stack(
                &[
                    orthogonal_map(&k(CLICK), &k(DISLIKE)),
                    orthogonal_map(&k(UNCLICK), &k(LIKE)),
                    k(LIKE),
                    k(DISLIKE),
                ],
                1,
            )
        } else {
            f
        };

        // Eq. 8-11: read the memories.
        let (hidden, r) = match (&self.memory, &state.controller) {
            (Some(mem), Some(user_part)) => {
                let users = (!cands.one_per_user()).then_some(&cands.user_of_row);
                let h = mem.hidden(&fo, user_part, users);
                let r = mem.read(&h);
                (Some(h), Some(r))
            }
            _ => (None, None),
        };

        // Eq. 13-15.
        let r_cross = self.pair.forward(&fo, r.as_ref());
        let target_cross = self
            .target_cross
            .as_ref()
            .expect("DUMN's network has the target cross");
        let target = e_item.matmul(target_cross).view_as(&fo);
        let short_term_x_target = (&fo * target).flatten(1, 2);
        (Tensor::cat(&[r_cross, short_term_x_target], -1), hidden)
    }

    /// Columns `[from, from + len)` of both heads' first-layer weights, stacked (click
    /// rows, then dislike rows): `[H_click + H_dislike, len]`. The user step takes the
    /// `e_user` columns, the candidate step the rest.
    fn head_weights(&self, from: i64, len: i64) -> Tensor {
        let block = |h: &Head| h.first().ws.narrow(1, from, len);
        Tensor::cat(&[block(&self.click_head), block(&self.dislike_head)], 0)
    }

    /// Both heads' first-layer biases, stacked like [`Self::head_weights`].
    fn head_bias(&self) -> Tensor {
        let bias = |h: &Head| {
            h.first()
                .bs
                .as_ref()
                .expect("linear layers have a bias")
                .shallow_clone()
        };
        Tensor::cat(&[bias(&self.click_head), bias(&self.dislike_head)], 0)
    }

    /// One-step forward: `[B, 2]` logits for a batch of one candidate per row.
    pub fn forward(&self, batch: &Batch) -> Tensor {
        self.candidate_step(&self.user_step(&batch.users), &batch.cands)
    }

    /// Click and dislike probabilities `[B, 2]`, without gradients.
    pub fn predict(&self, batch: &Batch) -> Tensor {
        tch::no_grad(|| self.forward(batch).sigmoid())
    }

    /// The training forward (dropout on): logits, the weighted triplet loss and the pending
    /// memory write.
    pub fn forward_train(&self, batch: &Batch) -> TrainOutput {
        let state = self.user_step(&batch.users);
        let out = self.candidate_core(&state, &batch.cands, true);
        let zero = || Tensor::zeros([], (Kind::Float, self.device()));
        let (triplet, write) = match (&self.memory, &out.hidden) {
            (Some(mem), Some(h)) => {
                let w = mem.write(h);
                let l2 = match &self.triplet {
                    Some(t) => {
                        t.forward(
                            &w.anchors,
                            &state.seq_emb,
                            &state.mask,
                            &batch.users.seq_lens,
                        ) * self.config.triplet_weight
                    }
                    None => zero(),
                };
                (l2, self.config.memory_write.then_some(w.write))
            }
            _ => (zero(), None),
        };
        TrainOutput {
            logits: out.logits,
            triplet,
            write,
        }
    }

    /// `L = L1(click) + dislike_weight · L1(dislike) + triplet_weight · L2`.
    pub fn losses(&self, out: &TrainOutput, batch: &Batch) -> Losses {
        let click_logloss = loss::logloss(&out.logits.select(1, HEAD_CLICK), &batch.click_labels());
        let dislike_logloss =
            loss::logloss(&out.logits.select(1, HEAD_DISLIKE), &batch.dislike_labels());
        let total = &click_logloss + &dislike_logloss * self.config.dislike_weight + &out.triplet;
        Losses {
            total,
            click_logloss,
            dislike_logloss,
            triplet: out.triplet.shallow_clone(),
        }
    }

    /// Commits eq. 12's write to the memories. Call after the optimizer step.
    pub fn apply_memory_write(&self, write: &MemoryWrite) {
        if let Some(m) = &self.memory {
            m.apply(write);
        }
    }

    /// The memory network, if the variant has one.
    pub fn memory(&self) -> Option<&UserMemory> {
        self.memory.as_ref()
    }

    /// Eq. 1-2, when the variant runs them.
    pub fn self_attention(&self) -> Option<&SelfAttention> {
        self.self_attention.as_ref()
    }

    /// Eq. 3-5 (None in BASE_DFN).
    pub fn target_attention(&self) -> Option<&TargetAttention> {
        self.target_attention.as_ref()
    }

    /// Names and shapes of all variables, sorted by name.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<i64>)> {
        let mut v: Vec<(String, Vec<i64>)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect();
        v.sort();
        v
    }

    /// Total number of scalar parameters.
    pub fn num_parameters(&self) -> i64 {
        self.parameter_shapes()
            .iter()
            .map(|(_, s)| s.iter().product::<i64>())
            .sum()
    }
}
