//! Logistic regression as a candle network: one linear layer, `d → 1`.
//!
//! `logit = x · w + b` on standardized features; the probability is
//! `sigmoid(logit)`. Parameters are named `linear.weight` (shape `(1, d)`) and
//! `linear.bias` (shape `(1,)`); those names are the keys in
//! `model.safetensors`, so they must not change.
//!
//! Guarantees: construction only creates or looks up parameters (initial
//! values are set by the trainer's seeded RNG, never by candle's unseeded
//! one); [`Classifier::logits`] returns shape `(n,)` for an `(n, d)` batch.

use candle_core::Tensor;
use candle_nn::{Linear, Module, VarBuilder};

use super::Classifier;

/// Creates (or, from loaded tensors, looks up) a linear layer `in_dim → out_dim`
/// named `{prefix}.weight` / `{prefix}.bias`. New parameters start at zero;
/// the trainer overwrites them from its seeded RNG.
pub(crate) fn linear_layer(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let zero = candle_nn::Init::Const(0.0);
    let w = vb.get_with_hints((out_dim, in_dim), "weight", zero)?;
    let b = vb.get_with_hints(out_dim, "bias", zero)?;
    Ok(Linear::new(w, Some(b)))
}

/// Logistic regression over `d` standardized features.
#[derive(Clone, Debug)]
pub struct LogisticRegression {
    linear: Linear,
}

impl LogisticRegression {
    /// Builds the model, creating or loading `linear.{weight,bias}` from `vb`.
    pub fn new(d: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            linear: linear_layer(d, 1, vb.pp("linear"))?,
        })
    }
}

impl Classifier for LogisticRegression {
    fn logits(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.linear.forward(xs)?.squeeze(1)
    }
}
