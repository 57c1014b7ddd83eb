//! [`Rows`] to tensors: hashing ids, padding sequences, and the masks every equation
//! respects. Tensors are built straight from the rows' columns, by row index: no object
//! per row on the way.
//!
//! The model's input is split the way its forward pass is (see [`super::Dumn`]):
//! - a [`UserBatch`] holds what depends only on the user (profile fields, four sequences);
//! - a [`CandidateBatch`] holds, for each of those users, `C` candidate items (padded when
//!   users have different numbers of candidates; the real ones are listed by position).
//!
//! A training [`Batch`] is the special case of one candidate per user row.
//!
//! Tensors are built in host memory and then moved to the model's device with [`upload`]:
//! to a GPU through page-locked (pinned) memory with a non-blocking copy, so a thread that
//! builds a batch does not wait for the device (the scorer builds outside the model's
//! lock, training builds ahead on a task of its own with `--prefetch`).
//!
//! Sequences are padded only to the longest sequence in the batch (never past T), and
//! [`UserBatch::seq_lens`] records each kind's own longest, so the self-attention (eq.
//! 1-2, `L²` per user) and the target attention (eq. 3-5, `L` per candidate) work on each
//! kind over its own length: masked positions contribute exactly zero, so neither length
//! changes a score.

use anyhow::{ensure, Result};
use tch::{Device, Tensor};

use super::config::ModelConfig;
use super::inputs::{Example, Rows};

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

/// `host`, a tensor built in host memory, on `device`. On a CPU it is `host` itself. To
/// a GPU it is copied from page-locked (pinned) host memory without waiting: the copy is
/// queued on the device's stream, ahead of any kernel that later reads it, and libtorch's
/// pinned-memory allocator keeps the host block until the copy has run. One extra host
/// copy (pageable to pinned) buys a thread that never waits for the device here.
pub fn upload(host: Tensor, device: Device) -> Tensor {
    match device {
        Device::Cpu => host,
        _ => {
            let kind = host.kind();
            host.pin_memory(device)
                .to_device_(device, kind, true, false)
        }
    }
}

/// Checks that `cols` has one column per field of `fields`, naming them if not.
fn check_fields(
    cols: &[Vec<Option<i64>>],
    fields: &[super::features::FieldSpec],
    side: &str,
) -> Result<()> {
    ensure!(
        cols.len() == fields.len(),
        "the rows have {} {side} values but the schema has {} {side} fields ({})",
        cols.len(),
        fields.len(),
        fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

impl UserBatch {
    /// Builds the user side of `users`: user `u` has the profile and sequences of row
    /// `users[u]` of `rows`.
    pub fn new(config: &ModelConfig, rows: &Rows, users: &[usize], device: Device) -> Result<Self> {
        ensure!(!users.is_empty(), "a batch needs at least one user");
        let fields = &config.schema.user_fields;
        check_fields(&rows.user, fields, "user")?;
        let s = config.ablation.num_sequences();
        let mut user_idx = Vec::with_capacity(users.len() * fields.len());
        let mut seqs = Vec::with_capacity(users.len());
        for &r in users {
            user_idx.extend(rows.user.iter().zip(fields).map(|(c, f)| f.index(c[r])));
            seqs.push(rows.sequences_of(r, config.ablation.feedback, config.seq_len as usize)?);
        }
        let seq_lens: Vec<i64> = (0..s)
            .map(|k| seqs.iter().map(|u| u[k].len()).max().unwrap_or(0) as i64)
            .collect();
        let len = seq_lens.iter().copied().max().unwrap_or(0).max(1) as usize;
        let item_field = &config.schema.item_fields[0];
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
            user_idx: upload(
                Tensor::from_slice(&user_idx).view([u, fields.len() as i64]),
                device,
            ),
            seq_idx: upload(Tensor::from_slice(&idx).view([u, s, len]), device),
            seq_mask: upload(Tensor::from_slice(&mask).view([u, s, len]), device),
            seq_lens,
        })
    }

    pub fn num_users(&self) -> i64 {
        self.user_idx.size()[0]
    }
}

impl CandidateBatch {
    /// Whether candidate `i` is user `i`'s only one, for every user (a training batch):
    /// then each gather below is the identity, and is skipped.
    pub fn one_per_user(&self) -> bool {
        let (users, per_user) = (self.item_idx.size()[0], self.item_idx.size()[1]);
        per_user == 1 && self.rows.size()[0] == users
    }

    /// `t` `[U·C, ...]`, a value per padded position → `[N, ...]`, the real candidates'.
    pub fn real(&self, t: &Tensor) -> Tensor {
        if self.one_per_user() {
            t.shallow_clone()
        } else {
            t.index_select(0, &self.rows)
        }
    }

    /// `t`, a value per user along `dim` → one per real candidate: its user's.
    pub fn of_user(&self, t: &Tensor, dim: i64) -> Tensor {
        if self.one_per_user() {
            t.shallow_clone()
        } else {
            t.index_select(dim, &self.user_of_row)
        }
    }

    /// `items[u]` lists user `u`'s candidates, as rows of `rows`.
    pub fn new(
        config: &ModelConfig,
        rows: &Rows,
        items: &[&[usize]],
        device: Device,
    ) -> Result<Self> {
        let fields = &config.schema.item_fields;
        check_fields(&rows.item, fields, "item")?;
        let c = items.iter().map(|i| i.len()).max().unwrap_or(0).max(1);
        let n = fields.len();
        let mut idx = vec![0i64; items.len() * c * n];
        let mut real = Vec::with_capacity(items.len());
        let mut user_of_row = Vec::with_capacity(items.len());
        for (u, cands) in items.iter().enumerate() {
            for (j, &r) in cands.iter().enumerate() {
                let base = (u * c + j) * n;
                for (slot, (col, f)) in idx[base..base + n]
                    .iter_mut()
                    .zip(rows.item.iter().zip(fields))
                {
                    *slot = f.index(col[r]);
                }
                real.push((u * c + j) as i64);
                user_of_row.push(u as i64);
            }
        }
        let (u, c, n) = (items.len() as i64, c as i64, n as i64);
        Ok(Self {
            item_idx: upload(Tensor::from_slice(&idx).view([u, c, n]), device),
            rows: upload(Tensor::from_slice(&real), device),
            user_of_row: upload(Tensor::from_slice(&user_of_row), device),
        })
    }
}

impl Batch {
    /// One user row and one candidate per row of `rows` listed in `indices`, in that
    /// order, with their labels.
    pub fn new(
        config: &ModelConfig,
        rows: &Rows,
        indices: &[usize],
        device: Device,
    ) -> Result<Self> {
        let items: Vec<&[usize]> = indices.iter().map(std::slice::from_ref).collect();
        let labels: Vec<f32> = indices
            .iter()
            .flat_map(|&r| [rows.clicked[r] as u8 as f32, rows.disliked[r] as u8 as f32])
            .collect();
        Ok(Self {
            users: UserBatch::new(config, rows, indices, device)?,
            cands: CandidateBatch::new(config, rows, &items, device)?,
            labels: upload(
                Tensor::from_slice(&labels).view([indices.len() as i64, 2]),
                device,
            ),
        })
    }

    /// [`Batch::new`] over every one of hand-built `examples`.
    pub fn from_examples(
        config: &ModelConfig,
        examples: &[Example],
        device: Device,
    ) -> Result<Self> {
        let all: Vec<usize> = (0..examples.len()).collect();
        Self::new(config, &Rows::from_examples(examples), &all, device)
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
    use crate::model::inputs::History;
    use crate::model::FeedbackMode;

    fn history() -> History {
        History {
            items: [vec![1, 2, 3], vec![4], vec![], vec![5, 6]],
            feedback: Some(vec![1, 5, 4, 2, 3, 6]),
        }
    }

    /// Rows of `(user id, item id, history)`.
    fn rows(of: &[(Option<i64>, i64, History)]) -> Rows {
        let examples: Vec<Example> = of
            .iter()
            .map(|(user, item, history)| Example {
                user: vec![*user],
                item: vec![Some(*item)],
                history: history.clone(),
                click: false,
                dislike: false,
            })
            .collect();
        Rows::from_examples(&examples)
    }

    #[test]
    fn pads_to_the_longest_sequence_and_masks_padding() {
        let cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        let rows = rows(&[(Some(1), 1, history()), (None, 1, History::default())]);
        let ub = UserBatch::new(&cfg, &rows, &[0, 1], Device::Cpu).unwrap();
        assert_eq!(ub.seq_idx.size(), vec![2, 4, 3]);
        assert_eq!(ub.seq_lens, vec![3, 1, 0, 2]);
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
        let h = History::default();
        let rows = rows(&[(None, 1, h.clone()), (None, 2, h.clone()), (None, 3, h)]);
        let items: Vec<&[usize]> = vec![&[0, 1], &[], &[2, 0, 1]];
        let cb = CandidateBatch::new(&cfg, &rows, &items, Device::Cpu).unwrap();
        assert_eq!(
            cb.item_idx.size(),
            vec![3, 3, 1],
            "padded to the most candidates"
        );
        let real = Vec::<i64>::try_from(&cb.rows).unwrap();
        assert_eq!(real, vec![0, 1, 6, 7, 8]);
        let users = Vec::<i64>::try_from(&cb.user_of_row).unwrap();
        assert_eq!(users, vec![0, 0, 2, 2, 2]);
        let idx = Vec::<i64>::try_from(cb.item_idx.flatten(0, -1)).unwrap();
        let index = |id| cfg.schema.item_fields[0].index(Some(id));
        assert_eq!(
            idx,
            vec![index(1), index(2), 0, 0, 0, 0, index(3), index(1), index(2)]
        );
    }

    #[test]
    fn a_batch_takes_the_rows_it_is_given_in_that_order_with_their_labels() {
        let cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        let mut examples: Vec<Example> = (0..4)
            .map(|i| Example {
                user: vec![Some(i)],
                item: vec![Some(10 + i)],
                history: History {
                    items: [vec![i + 1], vec![], vec![], vec![]],
                    feedback: None,
                },
                click: i % 2 == 0,
                dislike: i == 3,
            })
            .collect();
        let rows = Rows::from_examples(&examples);
        let picked = Batch::new(&cfg, &rows, &[3, 0], Device::Cpu).unwrap();
        examples = vec![examples[3].clone(), examples[0].clone()];
        let direct = Batch::from_examples(&cfg, &examples, Device::Cpu).unwrap();
        for (a, b) in [
            (&picked.users.user_idx, &direct.users.user_idx),
            (&picked.users.seq_idx, &direct.users.seq_idx),
            (&picked.cands.item_idx, &direct.cands.item_idx),
        ] {
            assert!(a.equal(b));
        }
        let labels = Vec::<f32>::try_from(picked.labels.flatten(0, -1)).unwrap();
        assert_eq!(labels, vec![0., 1., 1., 0.]);
    }

    #[test]
    fn sequences_are_capped_at_t() {
        let mut cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        cfg.seq_len = 2;
        let rows = rows(&[(Some(1), 1, history())]);
        let ub = UserBatch::new(&cfg, &rows, &[0], Device::Cpu).unwrap();
        assert_eq!(ub.seq_idx.size(), vec![1, 4, 2]);
    }

    #[test]
    fn all_in_one_reads_the_merged_sequence_capped_at_t() {
        let merged = rows(&[(Some(1), 1, history())]);
        let seqs = merged.sequences_of(0, FeedbackMode::AllInOne, 4).unwrap();
        assert_eq!(seqs, vec![&[1, 5, 4, 2][..]]);
        let unmerged = History {
            feedback: None,
            ..history()
        };
        let unmerged = rows(&[(Some(1), 1, unmerged)]);
        let err = unmerged
            .sequences_of(0, FeedbackMode::AllInOne, 4)
            .unwrap_err();
        assert!(err.to_string().contains("feedback_seq"), "{err}");
    }

    #[test]
    fn wrong_field_count_names_the_fields() {
        let cfg = ModelConfig::new(FeatureSchema::ids_only(50));
        let mut rows = rows(&[(Some(1), 1, History::default())]);
        rows.user.push(vec![Some(2)]);
        let err = UserBatch::new(&cfg, &rows, &[0], Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("user_id"), "{err}");
    }
}
