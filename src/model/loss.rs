//! Paper §3.6, the loss: logloss (eq. 16) plus the triplet loss on the memories (eq. 17-20).
//!
//! Triplets: memory `M_c` is pulled towards clicked items and away from unclicked ones,
//! `M_u` the reverse, `M_l` towards liked and away from disliked items, `M_d` the reverse.
//! The anchor `q_k` is the write-addressed read of the written memory (eq. 18), mapped from
//! Z to E by a learned projection so it can be compared with item embeddings (the paper
//! compares a Z-vector with an E-vector without saying how).
//!
//! Sampling (4.3.4), two ways:
//! - **per user** (`triplets_per_user`, the default of new models): an anchor's positive and
//!   negative come from its own user's sequences of the two kinds; anchors whose user lacks
//!   either kind are left out of the mean;
//! - **batch pool** (older models): per feedback kind, up to `triplet_pool` items are drawn
//!   at random from all that kind's sequence positions in the batch, every user's mixed.
//!
//! "Hardest" then picks, per anchor, the positive least similar and the negative most
//! similar by cosine; "random" picks one of each uniformly. The item embeddings enter the triplet loss detached: its job is to make the
//! *memory writes* express the feedback (3.6, goal 2), and an independent implementation
//! found that letting its gradient into the shared item table hurt click AUC.

use tch::{nn, Kind, Tensor};

use super::config::{ModelConfig, TripletMode};
use super::inputs::{CLICK, DISLIKE, LIKE, UNCLICK};
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
    per_user: bool,
    /// `(anchor sequence, positive kind, negative kind)`.
    pairs: Vec<(i64, i64, i64)>,
}

impl TripletLoss {
    /// The loss of a model of `sequences` sequences with `config`'s slot and embedding
    /// sizes, sampling mode, margin, pool size and per-user switch.
    pub fn new(p: &nn::Path, sequences: i64, config: &ModelConfig) -> Self {
        let (slot_dim, emb_dim) = (config.slot_dim, config.emb_dim);
        let (c, u, l, d) = (CLICK as i64, UNCLICK as i64, LIKE as i64, DISLIKE as i64);
        let pairs = match sequences {
            4 => vec![(c, c, u), (u, u, c), (l, l, d), (d, d, l)],
            2 => vec![(c, c, u), (u, u, c)],
            _ => vec![],
        };
        Self {
            proj: uniform(p, "proj", &[sequences, slot_dim, emb_dim], slot_dim),
            mode: config.ablation.triplet,
            margin: config.triplet_margin,
            pool: config.triplet_pool,
            per_user: config.triplets_per_user,
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

    /// Per user: for anchors `q` `[N, E]` and each anchor's own items `[N, L, E]` (with
    /// their L2-normalised copy) and mask `[N, L]`, the chosen item `[N, E]` (least
    /// similar when `farthest`, else most similar; a random valid one in random mode). A
    /// row without any valid item gets an arbitrary one, which the caller masks out.
    fn pick_own(&self, q: &Tensor, items: &OwnItems, farthest: bool) -> Tensor {
        let score = match self.mode {
            TripletMode::Random | TripletMode::Off => Tensor::rand_like(&items.mask),
            TripletMode::Hardest => {
                let sim = einsum("ne,nle->nl", &[&l2_normalize(q), &items.normed]);
                if farthest {
                    -sim
                } else {
                    sim
                }
            }
        }
        .detach();
        // Padding never wins the argmax.
        let idx = (score + (&items.mask - 1.0) * 1e9).argmax(1, true); // [N, 1]
        let e = items.emb.size()[2];
        items
            .emb
            .gather(1, &idx.unsqueeze(-1).expand([-1, 1, e], false), false)
            .squeeze_dim(1)
    }

    /// Eq. 20 with per-user sampling; see [`Self::forward`].
    fn forward_per_user(
        &self,
        q_all: &Tensor,
        seq_emb: &Tensor,
        mask: &Tensor,
        lengths: &[i64],
    ) -> Tensor {
        let mut total = Tensor::zeros([], (Kind::Float, q_all.device()));
        // Each kind's items once, cut to the kind's longest sequence in the batch (None
        // when no user has one: its pairs add nothing).
        let kinds: Vec<Option<OwnItems>> = (0..seq_emb.size()[1])
            .map(|k| OwnItems::new(seq_emb, mask, k, lengths))
            .collect();
        for &(s, pos_k, neg_k) in &self.pairs {
            let (Some(pos_items), Some(neg_items)) =
                (&kinds[pos_k as usize], &kinds[neg_k as usize])
            else {
                continue;
            };
            let q = q_all.select(1, s);
            let pos = self.pick_own(&q, pos_items, true);
            let neg = self.pick_own(&q, neg_items, false);
            // Anchors whose user has both kinds: [N] of 0/1, no host sync.
            let has = pos_items.mask.amax(1, false) * neg_items.mask.amax(1, false);
            let hinge = triplet_hinge(&q, &pos, &neg, self.margin) * &has;
            total += hinge.sum(Kind::Float) / has.sum(Kind::Float).clamp_min(1.0);
        }
        total
    }

    /// Eq. 20: `L2 = Σ_k L_k`, each `L_k` averaged over the batch's anchors.
    /// `anchors`: `[N, S, Z]`; `seq_emb`: `[U, S, L, E]` and `mask`: `[U, S, L]` are the batch's
    /// sequence items, `lengths` each kind's longest sequence (see
    /// [`super::UserBatch::seq_lens`]; empty: `L` for all); per-user sampling needs one
    /// anchor per user row (`N = U`, as in training batches).
    pub fn forward(
        &self,
        anchors: &Tensor,
        seq_emb: &Tensor,
        mask: &Tensor,
        lengths: &[i64],
    ) -> Tensor {
        let q_all = einsum("nsz,sze->nse", &[anchors, &self.proj]);
        let seq_emb = seq_emb.detach();
        if self.per_user {
            return self.forward_per_user(&q_all, &seq_emb, mask, lengths);
        }
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

/// One feedback kind's items of every user row, for per-user picks.
struct OwnItems {
    /// `[N, L_k, E]`, `[N, L_k, E]` L2-normalised, `[N, L_k]`.
    emb: Tensor,
    normed: Tensor,
    mask: Tensor,
}

impl OwnItems {
    /// Kind `k` of `seq_emb` `[N, S, L, E]` and `mask` `[N, S, L]`, cut to `lengths[k]`
    /// positions; None when that is 0.
    fn new(seq_emb: &Tensor, mask: &Tensor, k: i64, lengths: &[i64]) -> Option<Self> {
        let l = mask.size()[2];
        let n = lengths.get(k as usize).map_or(l, |&n| n.min(l));
        if n == 0 {
            return None;
        }
        let emb = seq_emb.select(1, k).narrow(1, 0, n);
        Some(Self {
            normed: l2_normalize(&emb),
            mask: mask.select(1, k).narrow(1, 0, n),
            emb,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn loss(mode: TripletMode) -> TripletLoss {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut c = ModelConfig::new(crate::model::features::FeatureSchema::ids_only(10));
        (c.slot_dim, c.emb_dim, c.triplet_pool) = (2, 2, 8);
        c.ablation.triplet = mode;
        c.triplets_per_user = true;
        TripletLoss::new(&vs.root(), 4, &c)
    }

    #[test]
    fn per_user_picks_come_from_the_anchors_own_valid_items() {
        let t = |v: &[f32], shape: &[i64]| Tensor::from_slice(v).view(shape);
        let q = t(&[1.0, 0.0, 1.0, 0.0], &[2, 2]);
        // User 0: items (1, 0), (0.5, 0.5) and a zero pad; user 1: (-1, 0) and (0, 1).
        let items = t(
            &[1.0, 0.0, 0.5, 0.5, 0.0, 0.0, -1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
            &[2, 3, 2],
        );
        let mask = t(&[1.0, 1.0, 0.0, 1.0, 1.0, 0.0], &[2, 3]);
        let own = OwnItems::new(&items.unsqueeze(1), &mask.unsqueeze(1), 0, &[]).unwrap();
        let hard = loss(TripletMode::Hardest);
        let far = hard.pick_own(&q, &own, true);
        let near = hard.pick_own(&q, &own, false);
        // User 0's least similar own item is (0.5, 0.5): not the pad (cosine 0), not user
        // 1's (-1, 0).
        assert_eq!(Vec::<f32>::try_from(far.get(0)).unwrap(), vec![0.5, 0.5]);
        assert_eq!(Vec::<f32>::try_from(near.get(0)).unwrap(), vec![1.0, 0.0]);
        assert_eq!(Vec::<f32>::try_from(far.get(1)).unwrap(), vec![-1.0, 0.0]);
        let random = loss(TripletMode::Random);
        for _ in 0..20 {
            let pick = random.pick_own(&q, &own, true);
            let row0 = Vec::<f32>::try_from(pick.get(0)).unwrap();
            assert!(row0 == vec![1.0, 0.0] || row0 == vec![0.5, 0.5], "{row0:?}");
        }
    }

    #[test]
    fn anchors_whose_user_lacks_a_kind_are_left_out() {
        let hard = loss(TripletMode::Hardest);
        // Two users, one item per sequence; user 1 has no unclick (kind 1).
        let seq = Tensor::randn([2, 4, 1, 2], (Kind::Float, Device::Cpu));
        let mut mask = Tensor::ones([2, 4, 1], (Kind::Float, Device::Cpu));
        let _ = mask.get(1).get(1).fill_(0.0);
        let q = Tensor::randn([2, 4, 2], (Kind::Float, Device::Cpu));
        let both = hard.forward_per_user(&q, &seq, &mask, &[]);
        // The same loss with user 1's anchor changed: the click and unclick pairs ignore it.
        let q2 = q.copy();
        let _ = q2.get(1).narrow(0, 0, 2).fill_(5.0);
        let changed = hard.forward_per_user(&q2, &seq, &mask, &[]);
        assert!((both.double_value(&[]) - changed.double_value(&[])).abs() < 1e-6);
        mask = mask.fill_(0.0);
        assert_eq!(
            hard.forward_per_user(&q, &seq, &mask, &[])
                .double_value(&[]),
            0.0
        );
    }

    #[test]
    fn cutting_each_kind_to_its_longest_sequence_changes_nothing() {
        tch::manual_seed(8);
        let hard = loss(TripletMode::Hardest);
        let seq = Tensor::randn([3, 4, 5, 2], (Kind::Float, Device::Cpu));
        // Clicks up to 5 long, unclicks up to 3, likes 1, no dislikes at all.
        let lens = [[5i64, 3, 1, 0], [2, 1, 0, 0], [4, 3, 1, 0]];
        let mask = Tensor::zeros([3, 4, 5], (Kind::Float, Device::Cpu));
        for (u, kinds) in lens.iter().enumerate() {
            for (k, &n) in kinds.iter().enumerate() {
                let _ = mask.get(u as i64).get(k as i64).narrow(0, 0, n).fill_(1.0);
            }
        }
        let seq = &seq * mask.unsqueeze(-1);
        let q = Tensor::randn([3, 4, 2], (Kind::Float, Device::Cpu));
        let full = hard.forward_per_user(&q, &seq, &mask, &[]);
        let cut = hard.forward_per_user(&q, &seq, &mask, &[5, 3, 1, 0]);
        assert!(full.double_value(&[]) > 0.0);
        assert!((full.double_value(&[]) - cut.double_value(&[])).abs() < 1e-6);
    }
}
