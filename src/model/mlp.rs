//! A small multi-layer perceptron: one or two ReLU hidden layers, then a
//! single logit.
//!
//! `d → h1 → ReLU [→ h2 → ReLU] → 1`. Parameters are named `fc1.*`, `fc2.*`
//! for the hidden layers and `out.*` for the output layer (weights `(out, in)`,
//! biases `(out,)`); these are the keys in `model.safetensors`.
//!
//! Guarantees: construction only creates or looks up parameters (the trainer
//! initializes them from its seeded RNG); [`Classifier::logits`] returns shape
//! `(n,)` for an `(n, d)` batch; more than two hidden layers, or a zero-width
//! layer, is refused.

use candle_core::Tensor;
use candle_nn::{Linear, Module, VarBuilder};

use super::logistic::linear_layer;
use super::Classifier;

/// MLP with ReLU hidden layers and one output logit.
#[derive(Clone, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
}

impl Mlp {
    /// Builds `d → hidden[0] → … → 1`; `hidden` has one or two widths.
    pub fn new(d: usize, hidden: &[usize], vb: VarBuilder) -> candle_core::Result<Self> {
        if hidden.is_empty() || hidden.len() > 2 || hidden.contains(&0) {
            candle_core::bail!("an MLP needs one or two non-empty hidden layers, got {hidden:?}");
        }
        let mut layers = Vec::with_capacity(hidden.len());
        let mut in_dim = d;
        for (i, &width) in hidden.iter().enumerate() {
            layers.push(linear_layer(in_dim, width, vb.pp(format!("fc{}", i + 1)))?);
            in_dim = width;
        }
        Ok(Self {
            hidden: layers,
            out: linear_layer(in_dim, 1, vb.pp("out"))?,
        })
    }
}

impl Classifier for Mlp {
    fn logits(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = xs.clone();
        for layer in &self.hidden {
            h = layer.forward(&h)?.relu()?;
        }
        self.out.forward(&h)?.squeeze(1)
    }
}
