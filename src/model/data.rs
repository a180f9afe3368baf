//! Labeled data for training and evaluating a model, from either of the two
//! formats models read: the Kaggle 10-minute CSV (live models) or a
//! `riftstream features export` table (pre-game models).

use super::pregame::load_pregame_table;
use super::{load_ten_minute_csv, Dataset, Result};
use std::path::Path;

/// The format of a data file, and for pre-game tables which features to read.
#[derive(Debug, Clone, Copy)]
pub enum DataFormat<'a> {
    /// The per-team 10-minute statistics CSV.
    TenMinute,
    /// A point-in-time training table; `features`: the player features to
    /// read (every feature column when `None`).
    PreGame {
        /// Player features, in input order.
        features: Option<&'a [String]>,
    },
}

/// A data set with, for generated pre-game data, the accuracy of the
/// simulator's own probabilities (the best any model can do).
#[derive(Debug)]
pub struct LabeledData {
    /// Features and labels.
    pub dataset: Dataset,
    /// The simulator's accuracy on these matches, where every match has it.
    pub simulator_accuracy: Option<f64>,
}

/// Reads `path` in `format`.
pub fn load_labeled(path: &Path, format: DataFormat<'_>) -> Result<LabeledData> {
    Ok(match format {
        DataFormat::TenMinute => LabeledData {
            dataset: load_ten_minute_csv(path)?,
            simulator_accuracy: None,
        },
        DataFormat::PreGame { features } => {
            let table = load_pregame_table(path, features)?;
            LabeledData {
                simulator_accuracy: table.simulator_accuracy(),
                dataset: table.dataset,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ten_minute_csv_has_no_simulator_accuracy() {
        let dir = super::super::test_support::temp_dir("labeled");
        let path = super::super::test_support::ten_minute_csv();
        let data = load_labeled(&path, DataFormat::TenMinute).unwrap();
        let direct = load_ten_minute_csv(&path).unwrap();
        assert_eq!(data.dataset.n(), direct.n());
        assert!(data.simulator_accuracy.is_none());
        let missing = load_labeled(&dir.join("none.csv"), DataFormat::TenMinute).unwrap_err();
        assert!(missing.to_string().contains("none.csv"), "{missing}");
    }
}
