//! Ranking metrics.

/// Area under the ROC curve of `scores` against 0/1 `labels`, with tied scores counted as
/// half (the Mann-Whitney statistic). `None` when either class is absent.
pub fn auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "auc: scores and labels differ in length"
    );
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let (pos, neg) = (pos as f64, neg as f64);
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Group AUC: the AUC within each user, averaged with each user weighted by their number of
/// impressions (paper 4.1.2). Users whose impressions are all of one class have no AUC and
/// are skipped; [`Gauc::skipped_users`] says how many.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gauc {
    /// `None` when no user has both classes.
    pub value: Option<f64>,
    pub users: usize,
    pub skipped_users: usize,
}

/// Computes [`Gauc`] of `scores` against `labels`, grouped by `users`.
pub fn gauc(users: &[i64], scores: &[f32], labels: &[bool]) -> Gauc {
    assert!(
        users.len() == scores.len() && scores.len() == labels.len(),
        "gauc: lengths differ"
    );
    let mut groups: std::collections::HashMap<i64, Vec<usize>> = std::collections::HashMap::new();
    for (i, u) in users.iter().enumerate() {
        groups.entry(*u).or_default().push(i);
    }
    let (mut weighted, mut weight, mut skipped) = (0.0, 0.0, 0);
    for rows in groups.values() {
        let s: Vec<f32> = rows.iter().map(|&i| scores[i]).collect();
        let l: Vec<bool> = rows.iter().map(|&i| labels[i]).collect();
        match auc(&s, &l) {
            Some(a) => {
                weighted += a * rows.len() as f64;
                weight += rows.len() as f64;
            }
            None => skipped += 1,
        }
    }
    Gauc {
        value: (weight > 0.0).then(|| weighted / weight),
        users: groups.len(),
        skipped_users: skipped,
    }
}

/// Mean binary cross-entropy of probabilities `p` against `labels` (clamped to 1e-7).
pub fn logloss(p: &[f32], labels: &[bool]) -> f64 {
    let eps = 1e-7f64;
    let sum: f64 = p
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = f64::from(p).clamp(eps, 1.0 - eps);
            if y {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    sum / p.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_hand_computed() {
        assert_eq!(
            auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        assert_eq!(auc(&[0.9, 0.1], &[true, false]), Some(1.0));
        assert_eq!(auc(&[0.1, 0.9], &[true, false]), Some(0.0));
        assert_eq!(auc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(auc(&[0.5, 0.7], &[true, true]), None);
    }

    #[test]
    fn gauc_hand_computed() {
        // User 1: 3 impressions, AUC 1.0 (0.9 > 0.2 and 0.9 > 0.1... one positive).
        // User 2: 4 impressions, positives 0.3 and 0.8 against negatives 0.5 and 0.1:
        //   pairs (0.3,0.5) lost, (0.3,0.1) won, (0.8,0.5) won, (0.8,0.1) won -> 0.75.
        // User 3: one class only, skipped.
        // GAUC = (3 * 1.0 + 4 * 0.75) / 7 = 6 / 7.
        let users = [1, 1, 1, 2, 2, 2, 2, 3, 3];
        let scores = [0.9, 0.2, 0.1, 0.3, 0.5, 0.8, 0.1, 0.4, 0.6];
        let labels = [true, false, false, true, false, true, false, true, true];
        let g = gauc(&users, &scores, &labels);
        assert!((g.value.unwrap() - 6.0 / 7.0).abs() < 1e-12, "{g:?}");
        assert_eq!((g.users, g.skipped_users), (3, 1));
        assert_eq!(gauc(&[1, 1], &[0.1, 0.2], &[true, true]).value, None);
    }

    #[test]
    fn logloss_of_certain_and_even_guesses() {
        assert!((logloss(&[0.5, 0.5], &[true, false]) - std::f64::consts::LN_2).abs() < 1e-9);
        assert!(logloss(&[1.0], &[true]) < 1e-6);
    }
}
