//! Small helpers for the stacked per-sequence weights the modules use.

use tch::{nn, Tensor};

/// A trainable tensor initialised uniformly in ±1/√fan_in (PyTorch's `Linear` default).
pub(crate) fn uniform(p: &nn::Path, name: &str, dims: &[i64], fan_in: i64) -> Tensor {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    p.var(name, dims, nn::Init::Uniform { lo: -b, up: b })
}

/// `Tensor::einsum` with the default contraction path.
pub(crate) fn einsum(eq: &str, xs: &[&Tensor]) -> Tensor {
    Tensor::einsum(eq, xs, None::<i64>)
}
