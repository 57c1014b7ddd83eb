//! Each test checks a property that breaks if the equation it names is implemented wrong.

use crate::common::{examples, small_config, user_rows, with_vocabularies};
use dumn::model::device::{Precision, BF16_TOLERANCE};
use dumn::model::loss::{cosine_distance, triplet_hinge};
use dumn::model::pair::Pair;
use dumn::model::purification::{masked_softmax, orthogonal_map};
use dumn::model::{Ablation, Batch, CandidateBatch, Dumn, History, Rows, UserBatch};
use tch::{Device, Kind, Tensor};

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

/// `a` and `b`, two computations of the same values from the leaf `x`, give `x` the same
/// (non-zero) gradient for a random weighting of their outputs.
fn assert_same_gradient(a: &Tensor, b: &Tensor, x: &Tensor, what: &str) {
    let r = Tensor::randn(a.size(), (Kind::Float, Device::Cpu));
    let grad = |y: &Tensor| Tensor::run_backward(&[(y * &r).sum(Kind::Float)], &[x], false, false);
    let (ga, gb) = (grad(a).remove(0), grad(b).remove(0));
    assert!(max_abs(&gb) > 1e-3, "no gradient: {what}");
    assert!(max_abs(&(&ga - &gb)) < 1e-5, "gradients differ: {what}");
}

#[test]
fn eq6_7_orthogonal_map_removes_exactly_the_projection() {
    tch::manual_seed(1);
    let a = Tensor::randn([64, 16], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([64, 16], (Kind::Float, Device::Cpu));
    let fo = orthogonal_map(&a, &b);
    // Orthogonal to the explicit vector.
    let dot = (&fo * &b).sum_dim_intlist(-1, false, Kind::Float);
    assert!(max_abs(&dot) < 1e-4, "f^o · f_d = {}", max_abs(&dot));
    // Equals the input minus its projection (a·b/|b|²) b.
    let proj = &b
        * ((&a * &b).sum_dim_intlist(-1, true, Kind::Float)
            / (&b * &b).sum_dim_intlist(-1, true, Kind::Float));
    assert!(max_abs(&(&fo - (&a - proj))) < 1e-4);
    // An empty explicit sequence (f_d = 0) leaves the implicit vector unchanged, without NaN.
    let zero = Tensor::zeros([64, 16], (Kind::Float, Device::Cpu));
    let same = orthogonal_map(&a, &zero);
    assert_eq!(max_abs(&(&same - &a)), 0.0);
}

#[test]
fn masked_softmax_gives_zero_weight_to_padding_and_no_nan_when_empty() {
    let logits = Tensor::from_slice(&[1.0f32, 5.0, 2.0, 0.5, 3.0, 3.0]).view([2, 3]);
    let mask = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 0.0, 0.0, 0.0]).view([2, 3]);
    let w: Vec<f32> = Vec::try_from(masked_softmax(&logits, &mask).flatten(0, -1)).unwrap();
    assert_eq!(w[1], 0.0);
    assert!((w[0] + w[2] - 1.0).abs() < 1e-6);
    assert!(
        (w[2] / w[0] - 1.0f32.exp()).abs() < 1e-4,
        "softmax over the valid positions only"
    );
    assert_eq!(&w[3..], &[0.0, 0.0, 0.0]);
}

fn padded_user_batch(model: &Dumn) -> (UserBatch, Vec<Vec<f32>>) {
    let long = History {
        items: [vec![1, 2, 3, 4, 5], vec![6, 7], vec![8], vec![]],
        feedback: None,
    };
    let short = History {
        items: [vec![9], vec![], vec![], vec![10, 11]],
        feedback: None,
    };
    let rows = user_rows(&[(Some(1), &long), (Some(2), &short)]);
    let ub = UserBatch::new(&model.config, &rows, &[0, 1], Device::Cpu).unwrap();
    let mask: Vec<f32> = Vec::try_from(ub.seq_mask.flatten(0, -1)).unwrap();
    (ub, vec![mask])
}

#[test]
fn eq1_self_attention_weights_are_zero_on_padded_keys() {
    tch::manual_seed(2);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let (ub, _) = padded_user_batch(&model);
    let state = model.user_step(&ub);
    let w = model
        .self_attention()
        .unwrap()
        .weights(&state.seq_emb, &ub.seq_mask); // [U,S,H,L,L]
    let key_mask = ub.seq_mask.unsqueeze(2).unsqueeze(2); // [U,S,1,1,L]
    let pad: Tensor = 1.0 - &key_mask;
    let on_padding = (&w * pad).abs().max().double_value(&[]);
    assert_eq!(on_padding, 0.0);
    // Rows of real queries over a non-empty sequence sum to 1.
    let sums = w.sum_dim_intlist(-1, false, Kind::Float); // [U,S,H,L]
    let real = ub.seq_mask.unsqueeze(2); // [U,S,1,L]
    let err = ((&sums - 1.0) * &real).abs().max().double_value(&[]);
    assert!(err < 1e-5, "{err}");
    // Outputs at padded positions are zero.
    let pad: Tensor = 1.0 - ub.seq_mask.unsqueeze(-1);
    let o_pad = (&state.o().unwrap() * pad).abs().max().double_value(&[]);
    assert_eq!(o_pad, 0.0);
}

#[test]
fn eq1_2_attending_each_kind_over_its_own_length_equals_attending_over_all_positions() {
    // The batch's kinds have different longest lengths (some none at all); O over each
    // kind's own length, padded back, must equal O over the common length.
    for residual in [false, true] {
        tch::manual_seed(5);
        let mut cfg = small_config(Ablation::default());
        cfg.attention_residual = residual;
        let model = Dumn::new(cfg, Device::Cpu).unwrap();
        let (ub, _) = padded_user_batch(&model);
        let l = ub.seq_mask.size()[2];
        let lens = ub.seq_lens.clone();
        assert!(
            lens.iter().any(|&n| n < l),
            "kinds of different lengths: {lens:?}"
        );
        let lens_of_mask: Vec<i64> = Vec::try_from(
            ub.seq_mask
                .sum_dim_intlist(-1, false, Kind::Float)
                .amax([0], false)
                .to_kind(Kind::Int64),
        )
        .unwrap();
        assert_eq!(
            lens, lens_of_mask,
            "seq_lens is each kind's longest real sequence"
        );
        let sa = model.self_attention().unwrap();
        let e = model
            .user_step(&ub)
            .seq_emb
            .detach()
            .set_requires_grad(true);
        let trimmed = sa.forward(&e, &ub.seq_mask, &lens);
        let full = sa.forward(&e, &ub.seq_mask, &[]);
        assert_eq!(trimmed.size(), full.size());
        assert!(max_abs(&full) > 0.0);
        assert!(max_abs(&(&trimmed - &full)) < 1e-6, "residual {residual}");
        // The gradient flows back to each kind's positions alike (the per-kind path takes
        // the kinds apart and puts them back together).
        assert_same_gradient(&trimmed, &full, &e, &format!("residual {residual}"));
    }
}

#[test]
fn eq3_5_attending_each_kind_over_its_own_length_equals_attending_over_all_positions() {
    // Target attention cuts each kind's keys to its own longest sequence (at least one
    // position, as for the empty like sequence here); with and without the null position,
    // the weights and f must equal those over the common length.
    for count_aware in [false, true] {
        tch::manual_seed(6);
        let mut cfg = small_config(Ablation::default());
        cfg.count_aware_pooling = count_aware;
        let model = Dumn::new(cfg, Device::Cpu).unwrap();
        let (ub, _) = padded_user_batch(&model);
        let l = ub.seq_mask.size()[2];
        let state = model.user_step(&ub);
        let ta = model.target_attention().unwrap();
        let o = state.o().unwrap().detach().set_requires_grad(true);
        let cut = &ta.keys(&o, &ub.seq_lens);
        let widths: Vec<i64> = cut.keys.iter().map(|k| k.size()[1]).collect();
        assert!(widths.iter().any(|&n| n < l), "{widths:?} of {l}");
        assert!(widths.iter().all(|&n| n >= 1), "{widths:?}");
        let full = ta.keys(&o, &[]);
        let ctx = Tensor::randn([2, 3, 32], (Kind::Float, Device::Cpu));
        let (a, b) = (
            ta.weights(cut, &ctx, &state.mask),
            ta.weights(&full, &ctx, &state.mask),
        );
        assert_eq!(a.size(), b.size());
        assert!(max_abs(&(&a - &b)) < 1e-6, "count-aware {count_aware}");
        let (f_cut, f_full) = (
            ta.forward(cut, &ctx, &state.mask),
            ta.forward(&full, &ctx, &state.mask),
        );
        assert!(max_abs(&f_full) > 0.0);
        assert!(
            max_abs(&(&f_cut - &f_full)) < 1e-6,
            "count-aware {count_aware}"
        );
        // And so does the gradient of f with respect to O.
        assert_same_gradient(&f_cut, &f_full, &o, &format!("count-aware {count_aware}"));
    }
}

#[test]
fn eq3_5_target_attention_ignores_padding_and_empty_sequences_pool_to_zero() {
    tch::manual_seed(3);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let (ub, _) = padded_user_batch(&model);
    let state = model.user_step(&ub);
    let ctx = Tensor::randn([2, 3, 32], (Kind::Float, Device::Cpu)); // [U, C, D_user + D_item]
    let ta = model.target_attention().unwrap();
    let alpha = ta.weights(state.keys.as_ref().unwrap(), &ctx, &state.mask); // [U,C,S,L]
    let mask = state.mask.unsqueeze(1);
    let pad: Tensor = 1.0 - &mask;
    assert_eq!((&alpha * pad).abs().max().double_value(&[]), 0.0);
    let f = ta.forward(state.keys.as_ref().unwrap(), &ctx, &state.mask); // [U,C,S,E]
    assert!(!bool::try_from(f.isnan().any()).unwrap());
    // User 0 has no dislikes, user 1 no unclicks and no likes: those f are exactly zero.
    for (u, s) in [(0i64, 3i64), (1, 1), (1, 2)] {
        assert_eq!(
            max_abs(&f.get(u).select(1, s)),
            0.0,
            "user {u} sequence {s}"
        );
    }
    // The target matters: different candidates get different weights over the same sequence.
    let a0 = alpha.get(0).get(0).get(0);
    let a1 = alpha.get(0).get(1).get(0);
    assert!(max_abs(&(a0 - a1)) > 1e-6);
}

#[test]
fn the_residual_normalised_attention_and_the_null_position_keep_padding_at_zero_weight() {
    for (residual, count_aware, positions) in [
        (false, false, false),
        (true, false, false),
        (false, true, false),
        (true, true, true),
    ] {
        tch::manual_seed(31);
        let mut cfg = small_config(Ablation::default());
        cfg.attention_residual = residual;
        cfg.count_aware_pooling = count_aware;
        cfg.position_buckets = positions;
        let model = Dumn::new(cfg, Device::Cpu).unwrap();
        let (ub, _) = padded_user_batch(&model);
        let state = model.user_step(&ub);
        let what = format!("residual {residual}, count-aware {count_aware}, positions {positions}");
        let w = model
            .self_attention()
            .unwrap()
            .weights(&state.seq_emb, &ub.seq_mask);
        let key_pad: Tensor = 1.0 - ub.seq_mask.unsqueeze(2).unsqueeze(2);
        assert_eq!(max_abs(&(&w * key_pad)), 0.0, "{what}: self-attention");
        let pad: Tensor = 1.0 - ub.seq_mask.unsqueeze(-1);
        assert_eq!(
            max_abs(&(&state.o().unwrap() * &pad)),
            0.0,
            "{what}: O at padding"
        );
        assert_eq!(
            max_abs(&(&state.seq_emb * &pad)),
            0.0,
            "{what}: E at padding"
        );
        let ctx = Tensor::randn([2, 3, 32], (Kind::Float, Device::Cpu));
        let ta = model.target_attention().unwrap();
        let alpha = ta.weights(state.keys.as_ref().unwrap(), &ctx, &state.mask);
        let pad: Tensor = 1.0 - state.mask.unsqueeze(1);
        assert_eq!(max_abs(&(&alpha * pad)), 0.0, "{what}: target attention");
        let sums = alpha.sum_dim_intlist(-1, false, Kind::Float); // [U, C, S]
        let nonempty = state.mask.amax(-1, false).unsqueeze(1); // [U, 1, S]
        let below_one = (&sums - 1.0) * &nonempty;
        if count_aware {
            assert!(
                bool::try_from(below_one.lt(0.0).logical_or(&nonempty.eq(0.0)).all()).unwrap(),
                "{what}: the null position takes some weight"
            );
        } else {
            assert!(max_abs(&below_one) < 1e-5, "{what}: weights sum to one");
        }
        // Empty sequences still pool to exactly zero.
        let f = ta.forward(state.keys.as_ref().unwrap(), &ctx, &state.mask);
        assert_eq!(
            max_abs(&f.get(0).select(1, 3)),
            0.0,
            "{what}: empty pools to zero"
        );
    }
}

#[test]
fn count_aware_pooling_tells_one_matching_item_from_four() {
    // Without self-attention or position vectors, four copies of an item are four equal
    // positions: the plain softmax averages them to the same f as one copy.
    let norms = |count_aware: bool| {
        tch::manual_seed(32);
        let mut cfg = small_config(Ablation::variant("BASE_DIN4").unwrap());
        cfg.count_aware_pooling = count_aware;
        cfg.position_buckets = false;
        let model = Dumn::new(cfg, Device::Cpu).unwrap();
        let one = History {
            items: [vec![], vec![], vec![], vec![7]],
            feedback: None,
        };
        let four = History {
            items: [vec![], vec![], vec![], vec![7, 7, 7, 7]],
            feedback: None,
        };
        let rows = user_rows(&[(Some(1), &one), (Some(1), &four)]);
        let ub = UserBatch::new(&model.config, &rows, &[0, 1], Device::Cpu).unwrap();
        let state = model.user_step(&ub);
        let ctx = Tensor::randn([1, 1, 32], (Kind::Float, Device::Cpu)).expand([2, 1, 32], false);
        let f = model.target_attention().unwrap().forward(
            state.keys.as_ref().unwrap(),
            &ctx,
            &state.mask,
        ); // [U, C, S, E]
        let norm = |u: i64| f.get(u).get(0).get(3).norm().double_value(&[]);
        (norm(0), norm(1))
    };
    let (one, four) = norms(false);
    assert!((one - four).abs() < 1e-6, "plain softmax: {one} vs {four}");
    let (one, four) = norms(true);
    assert!(four > one * 1.2, "count-aware: {one} vs {four}");
}

#[test]
fn eq8_the_hidden_state_shares_each_users_part_and_leaves_it_unchanged() {
    // The controller's e_user block is computed once per user and taken for each row of
    // that user, then the f^o product is added to it in place: the same hidden state as
    // with each row's own user part, and the per-user part itself is not written.
    tch::manual_seed(8);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let mem = model.memory().unwrap();
    let opts = (Kind::Float, Device::Cpu);
    let (n, s) = (7i64, 4i64);
    let e_user = Tensor::randn([3, model.config.user_dim()], opts);
    let fo = Tensor::randn([n, s, model.config.emb_dim], opts);
    let user_of_row = Tensor::from_slice(&[0i64, 0, 1, 2, 2, 2, 1]);
    let part = mem.user_part(&e_user); // [S, U, F]
    let before = part.copy();
    let shared = mem.hidden(&fo, &part, Some(&user_of_row));
    assert!(part.equal(&before), "the user part was written");
    let own = mem.user_part(&e_user.index_select(0, &user_of_row));
    let per_row = mem.hidden(&fo, &own, None);
    assert_eq!(shared.size(), per_row.size());
    assert!(max_abs(&(&shared - &per_row)) < 1e-5);
    // ReLU: no negative unit, some units off and some on.
    assert!(shared.min().double_value(&[]) >= 0.0);
    let on = shared
        .gt(0.0)
        .to_kind(Kind::Float)
        .mean(Kind::Float)
        .double_value(&[]);
    assert!(on > 0.1 && on < 0.9, "{on}");
    // The hidden state depends on the user: two rows with the same f^o and other users
    // differ.
    let same_fo = fo.get(0).unsqueeze(0).expand([2, s, -1], false);
    let two = mem.hidden(&same_fo, &part, Some(&Tensor::from_slice(&[0i64, 1])));
    assert!(max_abs(&(two.select(1, 0) - two.select(1, 1))) > 1e-3);
}

#[test]
fn eq9_read_weights_sum_to_one() {
    tch::manual_seed(4);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let mem = model.memory().unwrap();
    // Sequence-major: [S, N, F].
    let hidden = Tensor::randn([4, 5, 64], (Kind::Float, Device::Cpu)).relu();
    let w = mem.read_weights(&hidden);
    assert_eq!(w.size(), vec![4, 5, 32]);
    let err = (w.sum_dim_intlist(-1, false, Kind::Float) - 1.0)
        .abs()
        .max()
        .double_value(&[]);
    assert!(err < 1e-5, "{err}");
    assert!(w.min().double_value(&[]) >= 0.0);
}

#[test]
fn eq12_erase_one_add_zero_clears_the_addressed_slot_only() {
    tch::manual_seed(5);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let mem = model.memory().unwrap();
    let m = mem.contents().detach();
    let (n_mem, slots, z) = m.size3().unwrap();
    // One row, addressing slot 7 of every memory with weight 1; erase all ones, add zeros.
    let w = Tensor::zeros([1, n_mem, slots], (Kind::Float, Device::Cpu));
    let _ = w.narrow(2, 7, 1).fill_(1.0);
    let erase = Tensor::ones([1, n_mem, z], (Kind::Float, Device::Cpu));
    let add = Tensor::zeros([1, n_mem, z], (Kind::Float, Device::Cpu));
    let (written, _, _) = mem.write_rule(&m, &w, &erase, &add);
    assert_eq!(max_abs(&written.narrow(1, 7, 1)), 0.0, "slot 7 is cleared");
    assert_eq!(
        max_abs(&(written.narrow(1, 0, 7) - m.narrow(1, 0, 7))),
        0.0,
        "other slots untouched"
    );
    assert!(max_abs(&m.narrow(1, 7, 1)) > 0.0);
    // And add writes exactly the add vector into a cleared slot.
    let add = Tensor::full([1, n_mem, z], 0.25, (Kind::Float, Device::Cpu));
    let (written, _, _) = mem.write_rule(&m, &w, &erase, &add);
    assert!(max_abs(&(written.narrow(1, 7, 1) - 0.25)) < 1e-7);
}

#[test]
fn eq12_training_write_changes_memory_and_inference_never_does() {
    tch::manual_seed(6);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let batch = Batch::from_examples(&model.config, &examples(20, 1), Device::Cpu).unwrap();
    let before = model.memory().unwrap().contents().detach().copy();
    let _ = model.predict(&batch);
    assert_eq!(
        max_abs(&(model.memory().unwrap().contents() - &before)),
        0.0
    );
    let out = model.forward_train(&batch);
    model.apply_memory_write(out.write.as_ref().unwrap());
    assert!(max_abs(&(model.memory().unwrap().contents() - &before)) > 0.0);
}

#[test]
fn eq13_gate_output_lies_between_zero_and_the_input() {
    tch::manual_seed(7);
    let x = Tensor::randn([32, 4, 16], (Kind::Float, Device::Cpu)) * 3.0;
    let w = Tensor::randn([4, 16, 16], (Kind::Float, Device::Cpu));
    let g = Pair::gate(&x, &w);
    // Same sign as the input (or zero) and no larger in magnitude.
    assert!(bool::try_from((&g * &x).ge(0.0).all()).unwrap());
    assert!(bool::try_from(g.abs().le_tensor(&x.abs()).all()).unwrap());
    assert!(max_abs(&(&g - &x)) > 0.0, "the gate does something");
}

#[test]
fn eq17_triplet_loss_is_zero_when_the_margin_is_met_and_positive_otherwise() {
    let q = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
    let close = Tensor::from_slice(&[1.0f32, 0.1]).view([1, 2]);
    let far = Tensor::from_slice(&[-1.0f32, 0.2]).view([1, 2]);
    let d_pos = cosine_distance(&q, &close).double_value(&[0]);
    let d_neg = cosine_distance(&q, &far).double_value(&[0]);
    assert!(d_neg - d_pos > 1.5);
    // Margin met: zero.
    assert_eq!(triplet_hinge(&q, &close, &far, 0.5).double_value(&[0]), 0.0);
    // Margin not met: d_pos - d_neg + margin.
    let l = triplet_hinge(&q, &close, &far, 3.0).double_value(&[0]);
    assert!((l - (d_pos - d_neg + 3.0)).abs() < 1e-6 && l > 0.0);
    // Positive and negative swapped: positive.
    assert!(triplet_hinge(&q, &far, &close, 0.0).double_value(&[0]) > 0.0);
}

#[test]
fn the_triplet_loss_trains_the_write_head_not_the_read_head() {
    tch::manual_seed(8);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let batch = Batch::from_examples(&model.config, &examples(30, 2), Device::Cpu).unwrap();
    let out = model.forward_train(&batch);
    assert!(out.triplet.double_value(&[]) > 0.0);
    out.triplet.backward();
    let vars = model.var_store().variables();
    let grad = |name: &str| {
        let g = vars[name].grad();
        if g.defined() {
            g.abs().sum(Kind::Float).double_value(&[])
        } else {
            0.0
        }
    };
    assert!(
        grad("memory.w_write") > 0.0,
        "eq. 18's anchor depends on the write head"
    );
    assert!(grad("memory.memory") > 0.0, "and on the written memory");
    assert_eq!(
        grad("memory.w_read"),
        0.0,
        "the read key plays no part in the triplet loss"
    );
    assert_eq!(grad("click_head.out.weight"), 0.0);
}

#[test]
fn every_ablation_switch_changes_the_parameters_or_the_output() {
    let exs = examples(8, 3);
    let run = |name: &str| {
        tch::manual_seed(9);
        let cfg = small_config(Ablation::variant(name).unwrap());
        let model = Dumn::new(cfg, Device::Cpu).unwrap();
        let batch = Batch::from_examples(&model.config, &exs, Device::Cpu).unwrap();
        let out = model.forward_train(&batch);
        let loss = model.losses(&out, &batch).total.double_value(&[]);
        (model.parameter_shapes(), model.predict(&batch), loss)
    };
    let (full_params, full_out, full_loss) = run("DUMN");
    for name in &Ablation::VARIANTS[1..] {
        let (params, out, loss) = run(name);
        let differs = params != full_params
            || max_abs(&(&out - &full_out)) > 1e-6
            || (loss - full_loss).abs() > 1e-6;
        assert!(differs, "{name} is indistinguishable from DUMN");
    }
}

#[test]
fn bf16_scores_stay_within_the_documented_tolerance_of_fp32_in_every_variant() {
    let exs = examples(8, 3);
    for name in Ablation::VARIANTS {
        tch::manual_seed(9);
        let cfg = small_config(Ablation::variant(name).unwrap());
        let mut model = Dumn::new(cfg, Device::Cpu).unwrap();
        let batch = Batch::from_examples(&model.config, &exs, Device::Cpu).unwrap();
        let fp32 = model.predict(&batch);
        model.set_precision(Precision::Bf16);
        assert_eq!(model.precision(), Precision::Bf16);
        let bf16 = model.predict(&batch);
        assert_eq!(bf16.kind(), Kind::BFloat16, "{name} computes in bf16");
        let diff = max_abs(&(bf16.to_kind(Kind::Float) - &fp32));
        assert!(
            diff < BF16_TOLERANCE as f64,
            "{name}: bf16 is {diff} from fp32"
        );
    }
}

#[test]
fn two_step_forward_equals_one_step_forward() {
    for variant in ["DUMN", "BASE_DFN"] {
        two_step_equals_one_step(variant);
    }
}

fn two_step_equals_one_step(variant: &str) {
    tch::manual_seed(10);
    let model = Dumn::new(
        small_config(Ablation::variant(variant).unwrap()),
        Device::Cpu,
    )
    .unwrap();
    let exs = examples(3, 4);
    // Three users; user 0 gets 4 candidates, user 1 gets 1, user 2 gets 3.
    let counts = [4usize, 1, 3];
    let items: Vec<Vec<Option<i64>>> = (0..8).map(|i| vec![Some(100 + i * 7)]).collect();
    let mut rows = Vec::new();
    let mut per_user: Vec<Vec<usize>> = vec![Vec::new(); 3];
    for (u, &n) in counts.iter().enumerate() {
        for _ in 0..n {
            let mut e = exs[u * 2].clone();
            e.item = items[rows.len()].clone();
            per_user[u].push(rows.len());
            rows.push(e);
        }
    }
    let one_step = model.predict(&Batch::from_examples(&model.config, &rows, Device::Cpu).unwrap());
    let rows = Rows::from_examples(&rows);
    let users: Vec<usize> = per_user.iter().map(|r| r[0]).collect();
    let per_user: Vec<&[usize]> = per_user.iter().map(Vec::as_slice).collect();
    let ub = UserBatch::new(&model.config, &rows, &users, Device::Cpu).unwrap();
    let cb = CandidateBatch::new(&model.config, &rows, &per_user, Device::Cpu).unwrap();
    let two_step = tch::no_grad(|| model.candidate_step(&model.user_step(&ub), &cb).sigmoid());
    assert_eq!(two_step.size(), vec![8, 2]);
    let diff = max_abs(&(&one_step - &two_step));
    assert!(diff < 1e-5, "{variant}: two-step differs by {diff}");
}

#[test]
fn base_dfn_reads_clicks_unclicks_and_dislikes_through_its_own_network() {
    let shapes = |name: &str| {
        tch::manual_seed(33);
        let model = Dumn::new(small_config(Ablation::variant(name).unwrap()), Device::Cpu).unwrap();
        let names: Vec<String> = model
            .parameter_shapes()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        (model, names)
    };
    let (dfn, names) = shapes("BASE_DFN");
    let (_, din4) = shapes("BASE_DIN4");
    // Documented: DFN's network replaces eq. 1-14; embeddings and output FFNs are shared.
    for gone in [
        "self_attention",
        "target_attention",
        "memory",
        "pair",
        "triplet",
        "output.target_cross",
    ] {
        assert!(
            !names.iter().any(|n| n.starts_with(gone)),
            "BASE_DFN has {gone}"
        );
    }
    for part in [
        "dfn.w_qkv",
        "dfn.w_external",
        "dfn.w_gate",
        "dfn.target",
        "embedding.item.item_id",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(part)),
            "BASE_DFN lacks {part}"
        );
    }
    let shared: Vec<&String> = din4
        .iter()
        .filter(|n| n.starts_with("embedding") || n.contains("_head"))
        .collect();
    assert!(
        shared.iter().all(|n| names.contains(n)),
        "embeddings and heads are shared"
    );
    // Likes are not an input; clicks, unclicks and dislikes are.
    let base = History {
        items: [vec![1, 2], vec![3, 4, 5], vec![6], vec![7]],
        feedback: None,
    };
    let score = |h: &History| {
        let mut e = examples(1, 3)[0].clone();
        e.history = h.clone();
        dfn.predict(&Batch::from_examples(&dfn.config, &[e], Device::Cpu).unwrap())
    };
    let s0 = score(&base);
    for (k, what, matters) in [
        (0, "clicks", true),
        (1, "unclicks", true),
        (2, "likes", false),
        (3, "dislikes", true),
    ] {
        let mut h = base.clone();
        h.items[k] = vec![42, 43];
        let d = max_abs(&(score(&h) - &s0));
        assert_eq!(d > 1e-7, matters, "{what}: change {d}");
    }
}

#[test]
fn scores_do_not_depend_on_the_rest_of_the_batch() {
    tch::manual_seed(11);
    let model = Dumn::new(small_config(Ablation::default()), Device::Cpu).unwrap();
    let exs = examples(10, 5);
    let all = model.predict(&Batch::from_examples(&model.config, &exs, Device::Cpu).unwrap());
    let one = model.predict(&Batch::from_examples(&model.config, &exs[3..4], Device::Cpu).unwrap());
    assert!(max_abs(&(all.get(3) - one.get(0))) < 1e-5);
}

#[test]
fn sequence_positions_are_embedded_with_their_item_fields() {
    tch::manual_seed(13);
    let mut exs = examples(6, 13);
    let (cfg, table) = with_vocabularies(small_config(Ablation::default()), &mut exs);
    let model = Dumn::new(cfg, Device::Cpu).unwrap();
    model.set_item_fields(&table).unwrap();
    let schema = &model.config.schema;
    let known: Vec<i64> = schema.item_fields[0].vocabulary.as_ref().unwrap().values()[..3].to_vec();
    let unseen = known.iter().max().unwrap() + 1_000_003;
    let history = History {
        items: [
            vec![known[0], known[1], unseen, known[2]],
            vec![],
            vec![],
            vec![],
        ],
        feedback: None,
    };
    let ub = UserBatch::new(
        &model.config,
        &user_rows(&[(None, &history)]),
        &[0],
        Device::Cpu,
    )
    .unwrap();
    let seq = model.user_step(&ub).seq_emb.get(0).get(0); // click sequence, [L, E]
    let vars = model.var_store().variables();
    let id_table = &vars["embedding.item.item_id.weight"];
    let cat_table = &vars["embedding.item.category.weight"];
    for (pos, &item) in known
        .iter()
        .enumerate()
        .map(|(i, v)| (if i == 2 { 3 } else { i }, v))
    {
        let want = id_table.get(schema.item_fields[0].index(Some(item)))
            + cat_table.get(schema.item_fields[1].index(Some(item.rem_euclid(7))));
        assert!(
            max_abs(&(seq.get(pos as i64) - want)) < 1e-6,
            "position {pos}"
        );
    }
    // An item without a row of its own: the shared row, and no fields (unknown).
    let oov = dumn::model::features::Vocabulary::OUT_OF_VOCABULARY;
    assert!(max_abs(&(seq.get(2) - id_table.get(oov))) < 1e-6);
}

#[test]
fn profile_and_item_columns_feed_the_model() {
    use dumn::model::features::{FeatureSchema, FieldSpec};
    tch::manual_seed(12);
    let mut cfg = small_config(Ablation::default());
    cfg.schema = FeatureSchema {
        user_fields: vec![
            FieldSpec::new("user_id", 100),
            FieldSpec::new("gender", 4),
            FieldSpec::new("age", 10),
        ],
        item_fields: vec![
            FieldSpec::new("item_id", 100),
            FieldSpec::new("brand", 20),
            FieldSpec::new("category", 8),
        ],
    };
    let model = Dumn::new(cfg, Device::Cpu).unwrap();
    let mut exs = examples(2, 6);
    for e in &mut exs {
        e.user = vec![e.user[0], Some(1), None];
        e.item = vec![e.item[0], Some(3), Some(5)];
    }
    let a = model.predict(&Batch::from_examples(&model.config, &exs, Device::Cpu).unwrap());
    exs[0].item[1] = Some(4); // another brand
    exs[1].user[1] = Some(2); // another gender
    let b = model.predict(&Batch::from_examples(&model.config, &exs, Device::Cpu).unwrap());
    assert!(max_abs(&(a.get(0) - b.get(0))) > 0.0, "brand is an input");
    assert!(max_abs(&(a.get(1) - b.get(1))) > 0.0, "gender is an input");
    // A row with the wrong number of item values is refused, naming the columns.
    exs[0].item.pop();
    let err = Batch::from_examples(&model.config, &exs, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("brand") && err.contains("category"), "{err}");
}

#[test]
fn base_din4_is_din_over_all_four_sequences_and_nothing_else() {
    // BASE_DIN4 documents itself as BASE_DIN's target attention over each of the four
    // sequences: DUMN's parameters minus the memories, the PAIR gate and the triplet head,
    // and BASE_DIN's with the per-sequence tensors four wide instead of one.
    let params = |name: &str| {
        let cfg = small_config(Ablation::variant(name).unwrap());
        Dumn::new(cfg, Device::Cpu).unwrap().parameter_shapes()
    };
    let (din, din4, dumn) = (params("BASE_DIN"), params("BASE_DIN4"), params("DUMN"));
    let names = |p: &[(String, Vec<i64>)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&din), names(&din4), "the same components as BASE_DIN");
    let widened: Vec<&String> = din
        .iter()
        .zip(&din4)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| &a.0)
        .collect();
    assert!(!widened.is_empty(), "some tensors grow with the sequences");
    for ((name, s1), (_, s4)) in din.iter().zip(&din4) {
        if s1 != s4 {
            // A per-sequence tensor has one row per sequence; the output layer reads four
            // sequences' features instead of one.
            let per_sequence = s1.first() == Some(&1) && s4.first() == Some(&4);
            let output_input = s1.len() == 2 && s1[0] == s4[0] && s4[1] > s1[1];
            assert!(per_sequence || output_input, "{name}: {s1:?} -> {s4:?}");
        }
    }
    for name in names(&din4) {
        assert!(
            names(&dumn).contains(&name),
            "{name} is not one of DUMN's parameters"
        );
    }
    let dumn_only: Vec<String> = names(&dumn)
        .into_iter()
        .filter(|n| !names(&din4).contains(n))
        .collect();
    for part in ["memory", "triplet", "pair", "self_attention"] {
        assert!(
            dumn_only.iter().any(|n| n.contains(part)),
            "DUMN has {part} parameters that BASE_DIN4 lacks: {dumn_only:?}"
        );
    }
}
