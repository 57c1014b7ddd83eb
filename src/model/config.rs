//! Hyper-parameters and the paper's ablation switches.
//!
//! Defaults follow section 4.1.3 of the paper: T=100, E=16, FFN 512, m=256 slots of Z=64,
//! Adam with lr 0.005. The values the paper does not give (heads, output FFN, triplet margin
//! and weight) are chosen here and documented on each field.

use serde::{Deserialize, Serialize};

use super::features::FeatureSchema;

/// Which feedback sequences the model sees (paper 4.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackMode {
    /// DUMN: click, unclick, like and dislike as four sequences and four memories.
    #[default]
    Separate,
    /// DUMN_IF: click and unclick only; no like/dislike memories, no orthogonal mapping.
    ImplicitOnly,
    /// DUMN_AF: all feedback merged by time into one sequence and one memory; no orthogonal
    /// mapping, no triplet loss (it needs two kinds of feedback to contrast).
    AllInOne,
    /// Baseline BASE_DIN: the click sequence only.
    ClickOnly,
    /// Baseline BASE_FEATURES: no sequence at all (one always-empty, fully masked sequence,
    /// which contributes exactly zero).
    NoSequences,
}

/// How PAIR fuses short- and long-term interest (paper 3.5 and 4.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PairMode {
    /// Eq. 13: each vector times a sigmoid gate of itself, then concatenated.
    #[default]
    Gate,
    /// DUMN_CONCAT: plain concatenation.
    Concat,
    /// DUMN_CROSS: concatenation of f, r', f+r', f-r', f*r' (r' = r projected to E).
    Cross,
    /// DUMN_FFN: one ReLU layer on each, then concatenation.
    Ffn,
    /// DUMN_ATTE: attention-weighted sum of f and r'.
    Attention,
}

/// How the triplet loss of eq. 17-20 picks its positive and negative samples (4.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TripletMode {
    /// DUMN: hardest in the batch by cosine similarity to the anchor.
    #[default]
    Hardest,
    /// DUMN_RS: uniformly random samples from the batch.
    Random,
    /// DUMN-TL: no triplet loss.
    Off,
}

/// What turns the sequences and the target into interest vectors for the output network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// DUMN's: purification (eq. 1-7), memories (eq. 8-12), PAIR (eq. 13-14), each as the
    /// other switches say.
    #[default]
    Dumn,
    /// The Deep Feedback Network's internal and external feedback interaction (BASE_DFN,
    /// see [`super::dfn`]).
    Dfn,
}

/// The paper's ablation switches. `Ablation::default()` is the full DUMN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ablation {
    /// Feature purification by orthogonal mapping, eq. 6-7 (off: DUMN-FP).
    pub orthogonal_mapping: bool,
    /// The user memory network layer, eq. 8-12 (off: DUMN-UMN).
    pub memory: bool,
    /// One memory shared by all feedback kinds instead of one per kind (DUMN+UMN1).
    pub one_memory: bool,
    pub pair: PairMode,
    pub triplet: TripletMode,
    pub feedback: FeedbackMode,
    /// The self-attention of eq. 1-2 over each sequence (off only in the DIN baseline).
    #[serde(default = "enabled")]
    pub self_attention: bool,
    /// DUMN's network or DFN's (BASE_DFN).
    #[serde(default)]
    pub network: Network,
}

fn enabled() -> bool {
    true
}

impl Default for Ablation {
    fn default() -> Self {
        Self {
            orthogonal_mapping: true,
            memory: true,
            one_memory: false,
            pair: PairMode::Gate,
            triplet: TripletMode::Hardest,
            feedback: FeedbackMode::Separate,
            self_attention: true,
            network: Network::Dumn,
        }
    }
}

impl Ablation {
    /// The variant names of the paper's tables 2, 4, 5 and 6, full model first.
    pub const VARIANTS: [&'static str; 12] = [
        "DUMN",
        "DUMN-FP",
        "DUMN-UMN",
        "DUMN+UMN1",
        "DUMN_CONCAT",
        "DUMN_CROSS",
        "DUMN_FFN",
        "DUMN_ATTE",
        "DUMN-TL",
        "DUMN_RS",
        "DUMN_IF",
        "DUMN_AF",
    ];

    /// Baselines trained by the same code on the same data, for comparison (not in the
    /// paper's ablation tables): BASE_DIN is a DIN-style model (target attention over the
    /// click sequence, no self-attention, no memory, no purification); BASE_DIN4 is the
    /// same DIN-style target attention over each of the four sequences, concatenated (what
    /// DUMN's machinery must beat to be worth it); BASE_FEATURES sees the user and item
    /// features only; BASE_DFN is the Deep Feedback Network (see [`super::dfn`]), which the
    /// paper's Table 1 compares against.
    pub const BASELINES: [&'static str; 4] = ["BASE_DIN", "BASE_DIN4", "BASE_DFN", "BASE_FEATURES"];

    /// The switches of a named variant (case-insensitive), or `None` for an unknown name.
    pub fn variant(name: &str) -> Option<Self> {
        let full = Self::default();
        let v = match name.to_ascii_uppercase().as_str() {
            "DUMN" => full,
            "DUMN-FP" => Self {
                orthogonal_mapping: false,
                ..full
            },
            "DUMN-UMN" => Self {
                memory: false,
                ..full
            },
            "DUMN+UMN1" => Self {
                one_memory: true,
                ..full
            },
            "DUMN_CONCAT" => Self {
                pair: PairMode::Concat,
                ..full
            },
            "DUMN_CROSS" => Self {
                pair: PairMode::Cross,
                ..full
            },
            "DUMN_FFN" => Self {
                pair: PairMode::Ffn,
                ..full
            },
            "DUMN_ATTE" => Self {
                pair: PairMode::Attention,
                ..full
            },
            "DUMN-TL" => Self {
                triplet: TripletMode::Off,
                ..full
            },
            "DUMN_RS" => Self {
                triplet: TripletMode::Random,
                ..full
            },
            "DUMN_IF" => Self {
                feedback: FeedbackMode::ImplicitOnly,
                ..full
            },
            "DUMN_AF" => Self {
                feedback: FeedbackMode::AllInOne,
                ..full
            },
            "BASE_DIN" => Self {
                orthogonal_mapping: false,
                memory: false,
                one_memory: false,
                pair: PairMode::Concat,
                triplet: TripletMode::Off,
                feedback: FeedbackMode::ClickOnly,
                self_attention: false,
                network: Network::Dumn,
            },
            "BASE_DIN4" => Self {
                orthogonal_mapping: false,
                memory: false,
                one_memory: false,
                pair: PairMode::Concat,
                triplet: TripletMode::Off,
                feedback: FeedbackMode::Separate,
                self_attention: false,
                network: Network::Dumn,
            },
            // BASE_DIN4's switches (no purification, memory or PAIR) with DFN's network.
            "BASE_DFN" => Self {
                network: Network::Dfn,
                ..Self::variant("BASE_DIN4")?
            },
            "BASE_FEATURES" => Self {
                orthogonal_mapping: false,
                memory: false,
                one_memory: false,
                pair: PairMode::Concat,
                triplet: TripletMode::Off,
                feedback: FeedbackMode::NoSequences,
                self_attention: false,
                network: Network::Dumn,
            },
            _ => return None,
        };
        Some(v)
    }

    /// Number of sequences the model attends over: 4, 2 (implicit only) or 1 (all in one).
    pub fn num_sequences(&self) -> usize {
        match self.feedback {
            FeedbackMode::Separate => 4,
            FeedbackMode::ImplicitOnly => 2,
            FeedbackMode::AllInOne | FeedbackMode::ClickOnly | FeedbackMode::NoSequences => 1,
        }
    }

    /// Whether eq. 6-7 run: the switch is on and both pairs ⟨click, dislike⟩ and
    /// ⟨unclick, like⟩ exist.
    pub fn uses_orthogonal_mapping(&self) -> bool {
        self.orthogonal_mapping && self.feedback == FeedbackMode::Separate
    }

    /// Whether eq. 1-2 run (DUMN's network with its self-attention on).
    pub fn uses_self_attention(&self) -> bool {
        self.self_attention && self.network == Network::Dumn
    }

    /// Whether the variant reads `feedback_seq`, every kind merged by time (DUMN_AF), which
    /// the training SQL fills only when asked to (`${merged_feedback}`).
    pub fn reads_merged_feedback(&self) -> bool {
        self.feedback == FeedbackMode::AllInOne
    }

    /// Number of memory networks: 0, 1 or one per sequence.
    pub fn num_memories(&self) -> usize {
        match (self.memory, self.one_memory) {
            (false, _) => 0,
            (true, true) => 1,
            (true, false) => self.num_sequences(),
        }
    }

    /// Whether the triplet loss of eq. 17-20 is part of training.
    pub fn uses_triplet(&self) -> bool {
        self.memory && self.triplet != TripletMode::Off && self.feedback != FeedbackMode::AllInOne
    }
}

/// AdamW's weight decay of a new model (not in the paper, which uses Adam).
pub const DEFAULT_WEIGHT_DECAY: f64 = 1e-4;
/// The output FFNs' dropout of a new model (not in the paper).
pub const DEFAULT_DROPOUT: f64 = 0.1;

/// Everything needed to rebuild the network: stored in the artifact manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub schema: FeatureSchema,
    /// T: the longest sequence the model reads (newest items first). Paper: 100.
    pub seq_len: i64,
    /// E: embedding size of every field. Paper: 16.
    pub emb_dim: i64,
    /// H: self-attention heads of eq. 1; must divide E. Not given in the paper; 2 here.
    pub heads: i64,
    /// Hidden size of the memory controller FFN (eq. 8). Paper: 512.
    pub ffn_dim: i64,
    /// m: slots per memory. Paper: 256.
    pub mem_slots: i64,
    /// Z: size of a memory slot. Paper: 64.
    pub slot_dim: i64,
    /// Hidden sizes of the output FFN of eq. 15 (unstated in the paper; DIN's 200, 80).
    pub out_hidden: Vec<i64>,
    /// Triplet margin of eq. 17 (unstated in the paper).
    pub triplet_margin: f64,
    /// Weight of L2 in the total loss (the paper adds it with weight 1; an independent
    /// implementation found that magnitude dominated training, so 0.1 here).
    pub triplet_weight: f64,
    /// Samples per feedback kind drawn from the batch as the triplet candidates (4.3.4
    /// samples "in each batch"; a bounded pool keeps the hardest-search cost fixed).
    pub triplet_pool: i64,
    /// Weight of the dislike head's logloss (paper 4.5's dislike task, trained jointly).
    pub dislike_weight: f64,
    /// Adam learning rate. Paper: 0.005.
    pub learning_rate: f64,
    /// Decoupled weight decay of AdamW (0: plain Adam, the paper's; models saved before
    /// this setting read as 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Dropout after each hidden ReLU of the output FFNs (eq. 15), training only (0 in
    /// models saved before this setting).
    #[serde(default)]
    pub dropout: f64,
    /// Deviation from eq. 2: `O = LayerNorm(E + MultiHead(E))`, a residual path and a
    /// per-sequence layer normalisation (the paper's `O` alone starts ~30x smaller than
    /// its input and nearly equal at every position). False in models saved before it.
    #[serde(default)]
    pub attention_residual: bool,
    /// Deviation from eq. 4: a learned null position in the target attention's softmax,
    /// with a zero value, so the pooled `f` grows with the number of matching positions
    /// (one dislike vs four) instead of being a pure average. Off by default: validation
    /// preferred the plain softmax (docs/training.md, "Measured"). False in older models.
    #[serde(default)]
    pub count_aware_pooling: bool,
    /// Not in the paper: a learned vector per sequence and position bucket (newest 0, then
    /// 1, 2-3, 4-7, …: log2 of the rank) added to each sequence position, so the model
    /// can tell recent feedback from old. The sequences carry ranks, not times, so this is
    /// recency by rank. False in older models.
    #[serde(default)]
    pub position_buckets: bool,
    /// Whether training commits eq. 12's write to the memories after each step. Off, the
    /// memories are plain trained tensors (the CTR loss shapes them through the reads) and
    /// the write head only serves the triplet anchors. The batch-averaged write nudges every
    /// slot towards one batch mean. True in models saved before this setting.
    #[serde(default = "enabled")]
    pub memory_write: bool,
    /// Draw each triplet's positive and negative from the anchor's own user's sequences
    /// (the hardest or a random one among them), instead of from a pool of the whole
    /// batch's items, where "positive" and "negative" mix every user's feedback. False in
    /// models saved before this setting.
    #[serde(default)]
    pub triplets_per_user: bool,
    pub ablation: Ablation,
}

impl ModelConfig {
    /// The paper's defaults over the given schema.
    pub fn new(schema: FeatureSchema) -> Self {
        Self {
            schema,
            seq_len: 100,
            emb_dim: 16,
            heads: 2,
            ffn_dim: 512,
            mem_slots: 256,
            slot_dim: 64,
            out_hidden: vec![200, 80],
            triplet_margin: 0.2,
            triplet_weight: 0.1,
            triplet_pool: 256,
            dislike_weight: 1.0,
            learning_rate: 0.005,
            weight_decay: DEFAULT_WEIGHT_DECAY,
            dropout: DEFAULT_DROPOUT,
            attention_residual: true,
            // Off: on KuaiRand, validation AUC rose 0.007 without it (ci/choose-defaults.sh).
            count_aware_pooling: false,
            position_buckets: true,
            memory_write: true,
            triplets_per_user: true,
            ablation: Ablation::default(),
        }
    }

    /// Checks sizes and the schema; the error says which setting is wrong.
    /// Vocabularies are not checked here (a manifest is validated before its weights are
    /// read); [`super::Dumn::new`] checks them.
    pub fn validate(&self) -> Result<(), String> {
        self.schema.validate_names_and_sizes()?;
        let positive = [
            ("seq_len", self.seq_len),
            ("emb_dim", self.emb_dim),
            ("heads", self.heads),
            ("ffn_dim", self.ffn_dim),
            ("mem_slots", self.mem_slots),
            ("slot_dim", self.slot_dim),
            ("triplet_pool", self.triplet_pool),
        ];
        for (name, v) in positive {
            if v < 1 {
                return Err(format!("{name} must be at least 1, got {v}"));
            }
        }
        if self.emb_dim % self.heads != 0 {
            return Err(format!(
                "heads ({}) must divide emb_dim ({})",
                self.heads, self.emb_dim
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("dropout must be in [0, 1), got {}", self.dropout));
        }
        if self.weight_decay < 0.0 {
            return Err(format!(
                "weight_decay must be >= 0, got {}",
                self.weight_decay
            ));
        }
        if self.out_hidden.iter().any(|&h| h < 1) {
            return Err("out_hidden sizes must be at least 1".into());
        }
        // Upper bounds, checked before any tensor is allocated: a manifest or a flag with
        // a size in the billions is an error, not an allocation that exhausts memory.
        let bounded = [
            ("seq_len", self.seq_len, MAX_SEQ_LEN),
            ("emb_dim", self.emb_dim, MAX_WIDTH),
            ("heads", self.heads, MAX_HEADS),
            ("ffn_dim", self.ffn_dim, MAX_WIDTH),
            ("mem_slots", self.mem_slots, MAX_WIDTH),
            ("slot_dim", self.slot_dim, MAX_WIDTH),
            ("triplet_pool", self.triplet_pool, MAX_WIDTH),
        ];
        for (name, v, max) in bounded {
            if v > max {
                return Err(format!("{name} is {v}; at most {max} is supported"));
            }
        }
        if let Some(h) = self.out_hidden.iter().find(|&&h| h > MAX_WIDTH) {
            return Err(format!(
                "out_hidden size {h} is over the supported {MAX_WIDTH}"
            ));
        }
        let rows: i64 = self
            .schema
            .user_fields
            .iter()
            .chain(&self.schema.item_fields)
            .map(|f| f.rows)
            .fold(0i64, i64::saturating_add);
        if rows.saturating_mul(self.emb_dim) > MAX_EMBEDDING_FLOATS {
            return Err(format!(
                "the embedding tables would hold {rows} rows of {} floats, over the supported \
                 {MAX_EMBEDDING_FLOATS} floats (8 GiB); lower the fields' rows or emb_dim",
                self.emb_dim
            ));
        }
        Ok(())
    }

    /// Width of `e_user`: one embedding per user field.
    pub fn user_dim(&self) -> i64 {
        self.schema.user_fields.len() as i64 * self.emb_dim
    }

    pub(crate) fn item_dim(&self) -> i64 {
        self.schema.item_fields.len() as i64 * self.emb_dim
    }
}

/// The longest sequence a model may read.
pub const MAX_SEQ_LEN: i64 = 10_000;
/// The largest width of any layer (embedding, hidden, memory).
pub const MAX_WIDTH: i64 = 65_536;
/// The most attention heads.
pub const MAX_HEADS: i64 = 256;
/// The most floats all embedding tables together may hold (8 GiB of f32).
pub const MAX_EMBEDDING_FLOATS: i64 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_past_the_bounds_are_refused_before_allocation() {
        let mut c = ModelConfig::new(FeatureSchema::ids_only(1000));
        c.validate().unwrap();
        c.mem_slots = 1 << 40;
        assert!(c.validate().unwrap_err().contains("mem_slots"));
        let mut c = ModelConfig::new(FeatureSchema::ids_only(1 << 40));
        let err = c.validate().unwrap_err();
        assert!(
            err.contains("embedding tables") && err.contains("rows"),
            "{err}"
        );
        c.schema = FeatureSchema::ids_only(1000);
        c.seq_len = MAX_SEQ_LEN + 1;
        assert!(c.validate().unwrap_err().contains("seq_len"));
    }

    #[test]
    fn every_variant_name_parses_and_differs_from_the_others() {
        let all: Vec<Ablation> = Ablation::VARIANTS
            .iter()
            .map(|n| Ablation::variant(n).unwrap_or_else(|| panic!("{n}")))
            .collect();
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(
                    all[i],
                    all[j],
                    "{} == {}",
                    Ablation::VARIANTS[i],
                    Ablation::VARIANTS[j]
                );
            }
        }
        for b in Ablation::BASELINES {
            let base = Ablation::variant(b).unwrap();
            assert!(!all.contains(&base), "{b} is not a paper variant");
        }
        assert!(Ablation::variant("dumn_if").is_some());
        assert!(Ablation::variant("nope").is_none());
    }

    #[test]
    fn defaults_are_the_papers() {
        let c = ModelConfig::new(FeatureSchema::ids_only(10));
        assert_eq!(
            (c.seq_len, c.emb_dim, c.ffn_dim, c.mem_slots, c.slot_dim),
            (100, 16, 512, 256, 64)
        );
        assert_eq!(c.learning_rate, 0.005);
        assert!(c.validate().is_ok());
        let bad = ModelConfig { heads: 3, ..c };
        assert!(bad.validate().unwrap_err().contains("heads"));
    }
}
