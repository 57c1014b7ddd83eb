//! Generated training examples with planted structure, for the model's demo and tests.
//!
//! Each user has a stable long-term taste (one of `topics` item topics), a topic they hate,
//! and a short-term topic that their newest clicks drift to. Their history holds:
//! - clicks: mostly on the taste, the newest few on the short-term topic, and some
//!   *accidental* clicks on the hated topic, which are also disliked (the noise that the
//!   orthogonal mapping of click against dislike is meant to remove);
//! - unclicks: random topics; likes: the taste; dislikes: the hated topic.
//!
//! The target item's click probability is `σ(−1 + 2·[taste] + 1·[short-term] − 2.5·[hated])`
//! and it is disliked with probability 0.4 on the hated topic, 0.02 elsewhere. An item's topic
//! is `item_id % topics`, which the model can only learn through the item embeddings; held-out
//! users are new, so their `user_id` tells nothing and only their sequences do.
//!
//! (The raw-log generator of `dumn gen` is a different thing: it writes impressions and
//! actions for the SQL data plane.)

use rand::{rngs::StdRng, Rng, SeedableRng};

use super::sigmoid;
use crate::model::{Example, History};

#[derive(Debug, Clone)]
pub struct PlantedConfig {
    pub users: usize,
    pub examples_per_user: usize,
    pub topics: usize,
    pub items_per_topic: usize,
    /// Users get ids from this offset on, so two sets can hold disjoint users.
    pub first_user: i64,
    pub seed: u64,
}

impl Default for PlantedConfig {
    fn default() -> Self {
        Self {
            users: 2000,
            examples_per_user: 4,
            topics: 4,
            items_per_topic: 25,
            first_user: 0,
            seed: 7,
        }
    }
}

struct Planted {
    taste: usize,
    hated: usize,
    short_term: usize,
}

fn item_of(rng: &mut StdRng, cfg: &PlantedConfig, topic: usize) -> i64 {
    (topic + cfg.topics * rng.random_range(0..cfg.items_per_topic)) as i64
}

fn other_topic(rng: &mut StdRng, topics: usize, not: usize) -> usize {
    (not + rng.random_range(1..topics)) % topics
}

fn history(rng: &mut StdRng, cfg: &PlantedConfig, p: &Planted) -> History {
    let k = cfg.topics;
    let mut items: [Vec<i64>; 4] = Default::default();
    let n_clicks = rng.random_range(4..30);
    for j in 0..n_clicks {
        let topic = if j < 3 {
            p.short_term
        } else {
            let x: f64 = rng.random();
            if x < 0.6 {
                p.taste
            } else if x < 0.8 {
                rng.random_range(0..k)
            } else {
                p.hated
            }
        };
        let item = item_of(rng, cfg, topic);
        items[0].push(item);
        if topic == p.hated && j >= 3 {
            items[3].push(item); // an accidental click, disliked afterwards
        }
    }
    for _ in 0..rng.random_range(8..50) {
        let t = rng.random_range(0..k);
        items[1].push(item_of(rng, cfg, t));
    }
    for _ in 0..rng.random_range(0..6) {
        items[2].push(item_of(rng, cfg, p.taste));
    }
    for _ in 0..rng.random_range(0..3) {
        items[3].push(item_of(rng, cfg, p.hated));
    }
    // Merged by time: the kinds interleave, the j-th newest of each kind before the
    // (j+1)-th of any.
    let longest = items.iter().map(Vec::len).max().unwrap_or(0);
    let feedback = (0..longest)
        .flat_map(|j| items.iter().filter_map(move |seq| seq.get(j).copied()))
        .collect();
    History {
        items,
        feedback: Some(feedback),
    }
}

/// Generates `users × examples_per_user` examples.
pub fn planted_examples(cfg: &PlantedConfig) -> Vec<Example> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut out = Vec::with_capacity(cfg.users * cfg.examples_per_user);
    for u in 0..cfg.users {
        let taste = rng.random_range(0..cfg.topics);
        let hated = other_topic(&mut rng, cfg.topics, taste);
        let short_term = rng.random_range(0..cfg.topics);
        let planted = Planted {
            taste,
            hated,
            short_term,
        };
        let h = history(&mut rng, cfg, &planted);
        for _ in 0..cfg.examples_per_user {
            let topic = rng.random_range(0..cfg.topics);
            let item = item_of(&mut rng, cfg, topic);
            let logit = -1.0
                + 2.0 * (topic == taste) as u8 as f64
                + 1.0 * (topic == short_term) as u8 as f64
                - 2.5 * (topic == hated) as u8 as f64;
            let click = rng.random::<f64>() < sigmoid(logit);
            let p_dislike = if topic == hated { 0.4 } else { 0.02 };
            let dislike = rng.random::<f64>() < p_dislike;
            out.push(Example {
                user: vec![Some(cfg.first_user + u as i64)],
                item: vec![Some(item)],
                history: h.clone(),
                click,
                dislike,
            });
        }
    }
    out
}

/// Generates examples and holds out each user's last example: `(train, test)`. Held-out
/// examples are new impressions of users seen in training, as tomorrow's traffic would be.
pub fn train_test(cfg: &PlantedConfig) -> (Vec<Example>, Vec<Example>) {
    let per_user = cfg.examples_per_user.max(2);
    let all = planted_examples(&PlantedConfig {
        examples_per_user: per_user,
        ..cfg.clone()
    });
    let mut train = Vec::with_capacity(all.len());
    let mut test = Vec::with_capacity(cfg.users);
    for (i, e) in all.into_iter().enumerate() {
        if i % per_user == per_user - 1 {
            test.push(e);
        } else {
            train.push(e);
        }
    }
    (train, test)
}

/// Shuffles examples in place, repeatably for a given seed.
pub fn shuffle(examples: &mut [Example], seed: u64) {
    use rand::seq::SliceRandom;
    examples.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5EED));
}
