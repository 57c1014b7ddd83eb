//! Rows to tensors: hashing ids, padding sequences, and the masks every equation respects.
//!
//! The model's input is split the way its forward pass is (see [`super::Dumn`]):
//! - a [`UserBatch`] holds what depends only on the user (profile fields, four sequences);
//! - a [`CandidateBatch`] holds, for each of those users, `C` candidate items (padded when
//!   users have different numbers of candidates; the real ones are listed by position).
//!
//! A training [`Batch`] is the special case of one candidate per user row.
//!
//! Sequences are padded only to the longest sequence in the batch (never past T), and
//! [`UserBatch::seq_lens`] records each kind's own longest, so the self-attention's `L²`
//! work is done per kind: masked positions contribute exactly zero, so neither length
//! changes a score.

use anyhow::{bail, ensure, Result};
use tch::{Device, Tensor};

use super::config::{FeedbackMode, ModelConfig};

/// Index of each feedback kind in [`History::items`].
pub const CLICK: usize = 0;
pub const UNCLICK: usize = 1;
pub const LIKE: usize = 2;
pub const DISLIKE: usize = 3;
/// Feedback kind names, in [`History::items`] order.
pub const FEEDBACK_KINDS: [&str; 4] = ["click", "unclick", "like", "dislike"];

/// A user's four feedback sequences, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Item ids per kind: `[click, unclick, like, dislike]`.
    pub items: [Vec<i64>; 4],
    /// Every kind's items merged by time, newest first (the `feedback_seq` column of
    /// `sql/training_examples.sql`). Only the all-in-one ablation (DUMN_AF) reads it.
    pub feedback: Option<Vec<i64>>,
}

impl History {
    /// The sequences the model reads under `mode`, each newest first and at most `t` long.
    fn sequences(&self, mode: FeedbackMode, t: usize) -> Result<Vec<Vec<i64>>> {
        let cut = |v: &Vec<i64>| v.iter().take(t).copied().collect::<Vec<_>>();
        Ok(match mode {
            FeedbackMode::Separate => self.items.iter().map(cut).collect(),
            FeedbackMode::ImplicitOnly => self.items[..2].iter().map(cut).collect(),
            FeedbackMode::ClickOnly => vec![cut(&self.items[CLICK])],
            FeedbackMode::NoSequences => vec![Vec::new()],
            FeedbackMode::AllInOne => match &self.feedback {
                Some(all) => vec![cut(all)],
                None => bail!(
                    "the all-in-one ablation (DUMN_AF) needs the column `feedback_seq`: every \
                     kind of feedback merged by time, newest first (sql/training_examples.sql \
                     writes it; scoring SQL does not, so a DUMN_AF model does not score)"
                ),
            },
        })
    }
}

/// One training or evaluation row: a user, a target item, the user's history before the
/// impression, and the two labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// One value per `schema.user_fields` (`None` = NULL).
    pub user: Vec<Option<i64>>,
    /// One value per `schema.item_fields`.
    pub item: Vec<Option<i64>>,
    pub history: History,
    pub click: bool,
    pub dislike: bool,
}

/// The user side of a batch. `U` users, `S` sequences, `L` ≤ T padded positions.
#[derive(Debug)]
pub struct UserBatch {
    /// `[U, n_user_fields]` hashed rows.
    pub user_idx: Tensor,
    /// `[U, S, L]` hashed item rows (0 at padding).
    pub seq_idx: Tensor,
    /// `[U, S, L]` 1.0 at real items, 0.0 at padding.
    pub seq_mask: Tensor,
    /// `[S]`, on the host: the longest real sequence of each kind in the batch (0 when no
    /// user has one). Positions past it are padding for every user, so the self-attention
    /// attends each kind over its own length (`L` is the longest of all kinds).
    pub seq_lens: Vec<i64>,
}

/// Candidates grouped by user: row `u` holds user `u`'s candidates.
#[derive(Debug)]
pub struct CandidateBatch {
    /// `[U, C, n_item_fields]` hashed rows.
    pub item_idx: Tensor,
    /// `[N]`: the real candidates' positions in the flattened `[U·C]` (the rest is
    /// padding), users in order, each user's candidates in order; and `[N]`: each one's
    /// user. Built on the host, so the forward never asks the device where the candidates
    /// are (a `nonzero` over a mask would wait for the device).
    pub rows: Tensor,
    pub user_of_row: Tensor,
}

/// A training batch: one candidate per user row, with labels.
#[derive(Debug)]
pub struct Batch {
    pub users: UserBatch,
    pub cands: CandidateBatch,
    /// `[B, 2]`: click and dislike labels, 0.0 or 1.0.
    pub labels: Tensor,
}

impl Batch {
    pub fn size(&self) -> i64 {
        self.labels.size()[0]
    }
}

fn hash_row(
    values: &[Option<i64>],
    fields: &[super::features::FieldSpec],
    side: &str,
) -> Result<Vec<i64>> {
    ensure!(
        values.len() == fields.len(),
        "a {side} row has {} values but the schema has {} {side} fields ({})",
        values.len(),
        fields.len(),
        fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(values
        .iter()
        .zip(fields)
        .map(|(v, f)| f.index(*v))
        .collect())
}

impl UserBatch {
    /// Builds the user side from `(profile values, history)` pairs.
    pub fn new(
        config: &ModelConfig,
        users: &[(&[Option<i64>], &History)],
        device: Device,
    ) -> Result<Self> {
        ensure!(!users.is_empty(), "a batch needs at least one user");
        let schema = &config.schema;
        let n_fields = schema.user_fields.len();
        let s = config.ablation.num_sequences();
        let mut user_idx = Vec::with_capacity(users.len() * n_fields);
        let mut seqs = Vec::with_capacity(users.len());
        for (values, history) in users {
            user_idx.extend(hash_row(values, &schema.user_fields, "user")?);
            seqs.push(history.sequences(config.ablation.feedback, config.seq_len as usize)?);
        }
        let len = seqs
            .iter()
            .flatten()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(1);
        let seq_lens: Vec<i64> = (0..s)
            .map(|k| seqs.iter().map(|u| u[k].len()).max().unwrap_or(0) as i64)
            .collect();
        let item_field = &schema.item_fields[0];
        let mut idx = vec![0i64; users.len() * s * len];
        let mut mask = vec![0f32; users.len() * s * len];
        for (u, user_seqs) in seqs.iter().enumerate() {
            for (k, seq) in user_seqs.iter().enumerate() {
                let base = (u * s + k) * len;
                for (j, &item) in seq.iter().enumerate() {
                    idx[base + j] = item_field.index(Some(item));
                    mask[base + j] = 1.0;
                }
            }
        }
        let (u, s, len) = (users.len() as i64, s as i64, len as i64);
        Ok(Self {
            user_idx: Tensor::from_slice(&user_idx)
                .view([u, n_fields as i64])
                .to_device(device),
            seq_idx: Tensor::from_slice(&idx).view([u, s, len]).to_device(device),
            seq_mask: Tensor::from_slice(&mask)
                .view([u, s, len])
                .to_device(device),
            seq_lens,
        })
    }

    pub fn num_users(&self) -> i64 {
        self.user_idx.size()[0]
    }
}

impl CandidateBatch {
    /// `items[u]` lists user `u`'s candidates, each one value per `schema.item_fields`.
    pub fn new(
        config: &ModelConfig,
        items: &[Vec<&[Option<i64>]>],
        device: Device,
    ) -> Result<Self> {
        let fields = &config.schema.item_fields;
        let c = items.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let n = fields.len();
        let mut idx = vec![0i64; items.len() * c * n];
        let mut rows = Vec::with_capacity(items.len());
        let mut user_of_row = Vec::with_capacity(items.len());
        for (u, cands) in items.iter().enumerate() {
            for (j, values) in cands.iter().enumerate() {
                let row = hash_row(values, fields, "item")?;
                let base = (u * c + j) * n;
                idx[base..base + n].copy_from_slice(&row);
                rows.push((u * c + j) as i64);
                user_of_row.push(u as i64);
            }
        }
        let (u, c, n) = (items.len() as i64, c as i64, n as i64);
        Ok(Self {
            item_idx: Tensor::from_slice(&idx).view([u, c, n]).to_device(device),
            rows: Tensor::from_slice(&rows).to_device(device),
            user_of_row: Tensor::from_slice(&user_of_row).to_device(device),
        })
    }
}

impl Batch {
    /// One user row and one candidate per example.
    pub fn from_examples(
        config: &ModelConfig,
        examples: &[Example],
        device: Device,
    ) -> Result<Self> {
        let users: Vec<(&[Option<i64>], &History)> = examples
            .iter()
            .map(|e| (e.user.as_slice(), &e.history))
            .collect();
        let items: Vec<Vec<&[Option<i64>]>> =
            examples.iter().map(|e| vec![e.item.as_slice()]).collect();
        let labels: Vec<f32> = examples
            .iter()
            .flat_map(|e| [e.click as u8 as f32, e.dislike as u8 as f32])
            .collect();
        Ok(Self {
            users: UserBatch::new(config, &users, device)?,
            cands: CandidateBatch::new(config, &items, device)?,
            labels: Tensor::from_slice(&labels)
                .view([examples.len() as i64, 2])
                .to_device(device),
        })
    }

    /// Click labels as a `[B]` float tensor.
    pub fn click_labels(&self) -> Tensor {
        self.labels.select(1, 0)
    }

    /// Dislike labels as a `[B]` float tensor.
    pub fn dislike_labels(&self) -> Tensor {
        self.labels.select(1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::features::FeatureSchema;

    fn history() -> History {
        History {
            items: [vec![1, 2, 3], vec![4], vec![], vec![5, 6]],
            feedback: Some(vec![1, 5, 4, 2, 3, 6]),
        }
    }

    #[test]
    fn pads_to_the_longest_sequence_and_masks_padding() {
        let cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        let h = history();
        let empty = History::default();
        let ub = UserBatch::new(&cfg, &[(&[Some(1)], &h), (&[None], &empty)], Device::Cpu).unwrap();
        assert_eq!(ub.seq_idx.size(), vec![2, 4, 3]);
        let mask: Vec<f32> = Vec::try_from(ub.seq_mask.flatten(0, -1)).unwrap();
        assert_eq!(
            &mask[..12],
            &[1., 1., 1., 1., 0., 0., 0., 0., 0., 1., 1., 0.]
        );
        assert!(
            mask[12..].iter().all(|&m| m == 0.0),
            "empty history is all padding"
        );
        let idx: Vec<i64> = Vec::try_from(ub.seq_idx.flatten(0, -1)).unwrap();
        assert!(idx.iter().zip(&mask).all(|(&i, &m)| (i == 0) == (m == 0.0)));
        assert_eq!(
            Vec::<i64>::try_from(ub.user_idx.flatten(0, -1)).unwrap()[1],
            0
        );
    }

    #[test]
    fn the_real_candidates_rows_are_their_positions_past_the_padding_and_their_users() {
        let cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        let (a, b, c) = ([Some(1)], [Some(2)], [Some(3)]);
        let items: Vec<Vec<&[Option<i64>]>> = vec![vec![&a, &b], vec![], vec![&c, &a, &b]];
        let cb = CandidateBatch::new(&cfg, &items, Device::Cpu).unwrap();
        assert_eq!(
            cb.item_idx.size(),
            vec![3, 3, 1],
            "padded to the most candidates"
        );
        let rows = Vec::<i64>::try_from(&cb.rows).unwrap();
        assert_eq!(rows, vec![0, 1, 6, 7, 8]);
        let users = Vec::<i64>::try_from(&cb.user_of_row).unwrap();
        assert_eq!(users, vec![0, 0, 2, 2, 2]);
    }

    #[test]
    fn sequences_are_capped_at_t() {
        let mut cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        cfg.seq_len = 2;
        let h = history();
        let ub = UserBatch::new(&cfg, &[(&[Some(1)], &h)], Device::Cpu).unwrap();
        assert_eq!(ub.seq_idx.size(), vec![1, 4, 2]);
    }

    #[test]
    fn all_in_one_reads_the_merged_sequence_capped_at_t() {
        let h = history();
        let seqs = h.sequences(FeedbackMode::AllInOne, 4).unwrap();
        assert_eq!(seqs, vec![vec![1, 5, 4, 2]]);
        let unmerged = History {
            feedback: None,
            ..h
        };
        let err = unmerged.sequences(FeedbackMode::AllInOne, 4).unwrap_err();
        assert!(err.to_string().contains("feedback_seq"), "{err}");
    }

    #[test]
    fn wrong_field_count_names_the_fields() {
        let cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        let h = History::default();
        let err = UserBatch::new(&cfg, &[(&[Some(1), Some(2)], &h)], Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("user_id"), "{err}");
    }
}
