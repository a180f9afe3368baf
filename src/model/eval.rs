//! Metrics for blue-win probabilities against 0/1 outcomes.
//!
//! [`evaluate`] computes accuracy (threshold 0.5, `p >= 0.5` predicts blue),
//! log loss (probabilities clipped to `[1e-15, 1 - 1e-15]`, like
//! scikit-learn), ROC AUC (Mann–Whitney rank statistic, tied scores get their
//! average rank, so a tie between a positive and a negative counts one half),
//! the Brier score, and a calibration table of 10 equal-width bins
//! (`[0, 0.1), …, [0.9, 1.0]`, the last bin closed). `riftstream evaluate`
//! prints the [`Evaluation`] as JSON.
//!
//! Guarantees: all sums are in f64; never panics — mismatched lengths, an
//! empty input, a probability outside `[0, 1]` or a label other than 0/1 is an
//! error; AUC is `None` (JSON `null`) when only one class is present, and an
//! empty bin has `None` mean/rate.

use serde::{Deserialize, Serialize};

use super::{ModelError, Result};

/// Probabilities are clipped to `[EPS, 1 - EPS]` before taking logs.
const LOG_LOSS_EPS: f64 = 1e-15;
/// Number of equal-width calibration bins.
const BINS: usize = 10;

/// One calibration bin: predictions in `[lower, upper)` (the last bin is
/// `[0.9, 1.0]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    /// How many predictions fell in the bin.
    pub count: usize,
    /// Mean predicted probability in the bin (`None` if empty).
    pub mean_predicted: Option<f64>,
    /// Share of positives (blue wins) in the bin (`None` if empty).
    pub observed_rate: Option<f64>,
}

/// Quality of a set of probabilistic predictions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of predictions evaluated.
    pub count: usize,
    /// Share of predictions on the right side of 0.5.
    pub accuracy: f64,
    /// Mean negative log-likelihood (natural log), with clipping.
    pub log_loss: f64,
    /// Area under the ROC curve; `None` if only one class is present.
    pub auc: Option<f64>,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// Ten equal-width reliability bins.
    pub calibration: Vec<CalibrationBin>,
}

/// Evaluates `probs[i]` (probability that blue wins) against `labels[i]`
/// (1.0 = blue won, 0.0 = red won).
pub fn evaluate(probs: &[f32], labels: &[f32]) -> Result<Evaluation> {
    if probs.len() != labels.len() {
        return Err(ModelError::InvalidData(format!(
            "{} predictions for {} labels",
            probs.len(),
            labels.len()
        )));
    }
    if probs.is_empty() {
        return Err(ModelError::InvalidData("nothing to evaluate".into()));
    }
    if let Some(i) = probs.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(ModelError::InvalidData(format!(
            "prediction {i} is {} (not a probability)",
            probs[i]
        )));
    }
    if let Some(i) = labels.iter().position(|y| *y != 0.0 && *y != 1.0) {
        return Err(ModelError::InvalidData(format!(
            "label {i} is {} (not 0 or 1)",
            labels[i]
        )));
    }
    let n = probs.len() as f64;
    let pairs = || probs.iter().zip(labels).map(|(p, y)| (f64::from(*p), f64::from(*y)));

    let correct = pairs().filter(|(p, y)| (*p >= 0.5) == (*y == 1.0)).count();
    let log_loss = -pairs()
        .map(|(p, y)| {
            let p = p.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            y * p.ln() + (1.0 - y) * (1.0 - p).ln()
        })
        .sum::<f64>()
        / n;
    let brier = pairs().map(|(p, y)| (p - y) * (p - y)).sum::<f64>() / n;

    Ok(Evaluation {
        count: probs.len(),
        accuracy: correct as f64 / n,
        log_loss,
        auc: auc(probs, labels),
        brier,
        calibration: calibration(probs, labels),
    })
}

/// ROC AUC by the Mann–Whitney U statistic with average ranks for ties.
fn auc(probs: &[f32], labels: &[f32]) -> Option<f64> {
    let positives = labels.iter().filter(|y| **y == 1.0).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|a, b| probs[*a].total_cmp(&probs[*b]));
    // Sum of (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0f64;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && probs[order[end]] == probs[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their average.
        let avg_rank = (start + 1 + end) as f64 / 2.0;
        let pos_in_group = order[start..end].iter().filter(|i| labels[**i] == 1.0).count();
        rank_sum += avg_rank * pos_in_group as f64;
        start = end;
    }
    let (p, q) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * q))
}

/// Ten equal-width reliability bins.
fn calibration(probs: &[f32], labels: &[f32]) -> Vec<CalibrationBin> {
    let mut count = [0usize; BINS];
    let mut sum_p = [0f64; BINS];
    let mut sum_y = [0f64; BINS];
    for (p, y) in probs.iter().zip(labels) {
        let p = f64::from(*p);
        let bin = ((p * BINS as f64).floor() as usize).min(BINS - 1);
        count[bin] += 1;
        sum_p[bin] += p;
        sum_y[bin] += f64::from(*y);
    }
    (0..BINS)
        .map(|b| {
            let c = count[b];
            CalibrationBin {
                lower: b as f64 / BINS as f64,
                upper: (b + 1) as f64 / BINS as f64,
                count: c,
                mean_predicted: (c > 0).then(|| sum_p[b] / c as f64),
                observed_rate: (c > 0).then(|| sum_y[b] / c as f64),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn hand_computed_tiny_case() {
        // p:  0.9  0.6  0.6  0.2  0.35
        // y:  1    1    0    0    1
        let probs = [0.9f32, 0.6, 0.6, 0.2, 0.35];
        let labels = [1.0f32, 1.0, 0.0, 0.0, 1.0];
        let e = evaluate(&probs, &labels).expect("evaluate");
        assert_eq!(e.count, 5);
        // Predicted classes 1,1,1,0,0 -> right, right, wrong, right, wrong.
        assert!(close(e.accuracy, 3.0 / 5.0));
        // Brier: .01 + .16 + .36 + .04 + .4225 = .9925
        let f = |x: f32| f64::from(x);
        let brier = [(0.9f32, 1.0), (0.6, 1.0), (0.6, 0.0), (0.2, 0.0), (0.35, 1.0)]
            .iter()
            .map(|(p, y)| (f(*p) - y).powi(2))
            .sum::<f64>()
            / 5.0;
        assert!(close(e.brier, brier));
        assert!((e.brier - 0.9925 / 5.0).abs() < 1e-7);
        // Log loss: -(ln .9 + ln .6 + ln .4 + ln .8 + ln .35) / 5
        let ll = -(f(0.9).ln() + f(0.6).ln() + (1.0 - f(0.6)).ln() + (1.0 - f(0.2)).ln() + f(0.35).ln()) / 5.0;
        assert!(close(e.log_loss, ll));
        assert!((e.log_loss - 0.56109).abs() < 1e-4);
        // AUC: positive/negative pairs (3 x 2 = 6):
        // 0.9 beats 0.6 and 0.2 (2); 0.6 ties 0.6 (0.5) and beats 0.2 (1);
        // 0.35 loses to 0.6 (0) and beats 0.2 (1) -> 4.5 / 6 = 0.75.
        assert!(close(e.auc.expect("two classes"), 0.75));
        // Calibration: bins 2 (0.2), 3 (0.35), 6 (0.6 x2), and 8 for 0.9:
        // 0.9f32 is 0.89999998 < 0.9, so it belongs to [0.8, 0.9).
        let counts: Vec<usize> = e.calibration.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![0, 0, 1, 1, 0, 0, 2, 0, 1, 0]);
        assert_eq!(e.calibration[6].observed_rate, Some(0.5));
        assert_eq!(e.calibration[0].mean_predicted, None);
        assert!(close(e.calibration[9].upper, 1.0));
    }

    #[test]
    fn clipping_and_edges() {
        // A confident wrong answer is bounded by the clip, not infinite.
        let e = evaluate(&[0.0, 1.0], &[1.0, 1.0]).expect("evaluate");
        assert!(e.log_loss.is_finite() && e.log_loss > 10.0);
        assert_eq!(e.auc, None);
        assert_eq!(e.calibration[9].count, 1); // p = 1.0 lands in the last bin
                                               // Perfect ranking.
        let e = evaluate(&[0.1, 0.2, 0.8, 0.9], &[0.0, 0.0, 1.0, 1.0]).expect("evaluate");
        assert_eq!(e.auc, Some(1.0));
        assert_eq!(e.accuracy, 1.0);
        // All scores tied: AUC is exactly one half.
        let e = evaluate(&[0.5; 4], &[0.0, 1.0, 0.0, 1.0]).expect("evaluate");
        assert_eq!(e.auc, Some(0.5));
        // JSON has the fields `riftstream evaluate` promises.
        let json = serde_json::to_value(&e).expect("json");
        for key in ["accuracy", "log_loss", "auc", "brier", "calibration"] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(evaluate(&[], &[]).is_err());
        assert!(evaluate(&[0.5], &[1.0, 0.0]).is_err());
        assert!(evaluate(&[1.5], &[1.0]).is_err());
        assert!(evaluate(&[f32::NAN], &[1.0]).is_err());
        assert!(evaluate(&[0.5], &[2.0]).is_err());
    }
}
