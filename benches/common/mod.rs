//! What the model benchmarks share: the device they run on and the histories they score.

use dumn::model::device::DeviceChoice;
use dumn::model::History;
use rand::{rngs::StdRng, Rng};
use tch::Device;

/// `DUMN_BENCH_DEVICE`: cpu (default), cuda or cuda:N.
pub fn device() -> anyhow::Result<Device> {
    Ok(match std::env::var("DUMN_BENCH_DEVICE") {
        Ok(d) => d
            .parse::<DeviceChoice>()
            .map_err(anyhow::Error::msg)?
            .resolve()?,
        Err(_) => Device::Cpu,
    })
}

/// A history with the mean lengths an independent implementation measured on
/// KuaiRand-like logs (about 19 clicks, 71 unclicks, 4 likes, 3 dislikes; each uniform up
/// to twice its mean, at most 100), over 50,000 items.
pub fn history(rng: &mut StdRng) -> History {
    let mut seq = |mean: usize| -> Vec<i64> {
        let n = rng.random_range(0..=2 * mean).min(100);
        (0..n).map(|_| rng.random_range(0..50_000)).collect()
    };
    History {
        items: [seq(19), seq(71), seq(4), seq(3)],
        feedback: None,
    }
}
