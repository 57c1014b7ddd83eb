//! Telling a win from noise: intervals over seeds and paired bootstrap intervals over the
//! test impressions, for `dumn ablate --seeds N`.
//!
//! Contract:
//! - [`Interval::over_seeds`] is the mean of one metric over the seeds with a two-sided 95%
//!   Student-t interval (no interval from a single seed);
//! - [`paired_auc_difference`] compares model A with model B on the *same* test rows: each
//!   bootstrap resample draws the rows with replacement (seeded), computes
//!   `mean over seeds of AUC(A_s) − AUC(B_s)` on that resample, and the interval is the
//!   2.5% and 97.5% percentiles. Pairing removes the rows' own difficulty from the noise,
//!   so the interval is much narrower than two unpaired ones. It covers the sampling noise
//!   of the test set; the seed noise is in the spread of [`Interval::over_seeds`].
//! - a difference whose interval contains 0 is a tie ([`Interval::excludes_zero`]).

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::Serialize;

/// A mean (or point estimate) with a 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    /// `None` when one value gives no spread.
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        _ => 1.960,
    }
}

impl Interval {
    /// The mean of `values` (one per seed) with a 95% t-interval.
    pub fn over_seeds(values: &[f64]) -> Interval {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        if n < 2 {
            return Interval {
                mean,
                low: None,
                high: None,
            };
        }
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let half = t_975(n - 1) * (var / n as f64).sqrt();
        Interval {
            mean,
            low: Some(mean - half),
            high: Some(mean + half),
        }
    }

    /// Whether the interval lies entirely above or entirely below zero.
    pub fn excludes_zero(&self) -> bool {
        match (self.low, self.high) {
            (Some(l), Some(h)) => l > 0.0 || h < 0.0,
            _ => false,
        }
    }

    /// `0.7012 [0.6990, 0.7034]`, or `0.7012` without an interval.
    pub fn show(&self, digits: usize) -> String {
        match (self.low, self.high) {
            (Some(l), Some(h)) => format!("{:.d$} [{:.d$}, {:.d$}]", self.mean, l, h, d = digits),
            _ => format!("{:.d$}", self.mean, d = digits),
        }
    }
}

/// The AUC of `scores` (already ordered as `order`, ascending by score) against `labels`,
/// with each row counted `weight[row]` times and tied scores counted as half.
fn weighted_auc(order: &[usize], scores: &[f32], labels: &[bool], weight: &[u32]) -> Option<f64> {
    let (mut pos, mut neg) = (0f64, 0f64);
    let mut num = 0f64;
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        let (mut gp, mut gn) = (0f64, 0f64);
        while i < order.len() && scores[order[i]] == s {
            let r = order[i];
            let w = f64::from(weight[r]);
            if labels[r] {
                gp += w;
            } else {
                gn += w;
            }
            i += 1;
        }
        num += gp * (neg + 0.5 * gn);
        pos += gp;
        neg += gn;
    }
    (pos > 0.0 && neg > 0.0).then(|| num / (pos * neg))
}

fn ascending(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    order
}

/// The paired bootstrap interval of `mean_s AUC(a[s]) − mean_s AUC(b[s])` over the rows of
/// `labels` (see the module's contract). `a` and `b` hold one score vector per seed, each
/// aligned with `labels`. `None` when a resample has one class only every time.
pub fn paired_auc_difference(
    labels: &[bool],
    a: &[&[f32]],
    b: &[&[f32]],
    resamples: usize,
    seed: u64,
) -> Option<Interval> {
    let n = labels.len();
    if n == 0 || a.is_empty() || b.is_empty() {
        return None;
    }
    let orders_a: Vec<Vec<usize>> = a.iter().map(|s| ascending(s)).collect();
    let orders_b: Vec<Vec<usize>> = b.iter().map(|s| ascending(s)).collect();
    let mean_auc = |orders: &[Vec<usize>], scores: &[&[f32]], w: &[u32]| -> Option<f64> {
        let mut sum = 0.0;
        for (o, s) in orders.iter().zip(scores) {
            sum += weighted_auc(o, s, labels, w)?;
        }
        Some(sum / scores.len() as f64)
    };
    let ones = vec![1u32; n];
    let point = mean_auc(&orders_a, a, &ones)? - mean_auc(&orders_b, b, &ones)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut weight = vec![0u32; n];
    let mut diffs = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        weight.iter_mut().for_each(|w| *w = 0);
        for _ in 0..n {
            weight[rng.random_range(0..n)] += 1;
        }
        if let (Some(x), Some(y)) = (
            mean_auc(&orders_a, a, &weight),
            mean_auc(&orders_b, b, &weight),
        ) {
            diffs.push(x - y);
        }
    }
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_by(f64::total_cmp);
    let at = |q: f64| diffs[((diffs.len() - 1) as f64 * q).round() as usize];
    Some(Interval {
        mean: point,
        low: Some(at(0.025)),
        high: Some(at(0.975)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::metrics::auc;

    #[test]
    fn weighted_auc_with_unit_weights_is_the_auc() {
        let scores = [0.1f32, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2];
        let labels = [false, true, false, true, false, true, true];
        let got = weighted_auc(&ascending(&scores), &scores, &labels, &[1; 7]).unwrap();
        assert!((got - auc(&scores, &labels).unwrap()).abs() < 1e-12);
        // A row counted twice is the same as the row repeated.
        let mut w = [1u32; 7];
        w[2] = 2;
        let rep_s = [0.1f32, 0.4, 0.35, 0.8, 0.4, 0.9, 0.2, 0.35];
        let rep_l = [false, true, false, true, false, true, true, false];
        let got = weighted_auc(&ascending(&scores), &scores, &labels, &w).unwrap();
        assert!((got - auc(&rep_s, &rep_l).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn t_intervals_widen_with_spread_and_shrink_with_seeds() {
        let i = Interval::over_seeds(&[0.70, 0.71, 0.69]);
        assert!((i.mean - 0.70).abs() < 1e-12);
        // s = 0.01, n = 3: half-width = 4.303 * 0.01 / sqrt(3).
        assert!((i.high.unwrap() - 0.70 - 4.303 * 0.01 / 3f64.sqrt()).abs() < 1e-9);
        assert!(Interval::over_seeds(&[0.7]).low.is_none());
        assert!(!Interval::over_seeds(&[0.7]).excludes_zero());
    }

    /// Scores with a known AUC gap: A separates the classes better than B by construction.
    fn planted(n: usize, gap: f32, seed: u64) -> (Vec<bool>, Vec<f32>, Vec<f32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let labels: Vec<bool> = (0..n).map(|_| rng.random_bool(0.3)).collect();
        let noise = |rng: &mut StdRng| rng.random_range(-1.0f32..1.0);
        let a = labels
            .iter()
            .map(|&l| if l { 0.5 + gap } else { 0.0 } + noise(&mut rng))
            .collect();
        let b = labels
            .iter()
            .map(|&l| if l { 0.5 } else { 0.0 } + noise(&mut rng))
            .collect();
        (labels, a, b)
    }

    #[test]
    fn the_paired_bootstrap_interval_covers_the_true_difference() {
        // The true AUC difference is estimated on a very large sample; the interval from a
        // small test set must cover it, and must exclude zero for a real gap.
        let (big_l, big_a, big_b) = planted(200_000, 0.3, 1);
        let truth = auc(&big_a, &big_l).unwrap() - auc(&big_b, &big_l).unwrap();
        assert!(truth > 0.05, "a real gap: {truth}");
        let (l, a, b) = planted(4_000, 0.3, 2);
        let i = paired_auc_difference(&l, &[&a], &[&b], 400, 7).unwrap();
        let (lo, hi) = (i.low.unwrap(), i.high.unwrap());
        assert!(lo <= truth && truth <= hi, "{truth} outside [{lo}, {hi}]");
        assert!(i.excludes_zero());
        // Identical models: the difference is exactly zero, a tie.
        let same = paired_auc_difference(&l, &[&a], &[&a], 200, 7).unwrap();
        assert_eq!(
            (same.mean, same.low, same.high),
            (0.0, Some(0.0), Some(0.0))
        );
        assert!(!same.excludes_zero());
        // No gap: the interval contains zero.
        let (l, a, b) = planted(4_000, 0.0, 3);
        let tie = paired_auc_difference(&l, &[&a], &[&b], 400, 7).unwrap();
        assert!(!tie.excludes_zero(), "{tie:?}");
    }
}
