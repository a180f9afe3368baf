//! Records to feature rows: the decoder of sources that feed feature sets.

use super::{FeatureRow, FeatureSpec, RowExtractor};
use crate::codec::{Decoder, Rejection, ValueFormat};
use crate::config::RecordSchema;
use crate::events::RawRecord;
use crate::util::now_ms;
use std::sync::Arc;

/// Decodes rows for the feature sets that read one source. Sets that read
/// exactly the same fields share one extraction: each output is
/// `(group, row)`, and [`RowDecoder::groups`] lists the sets of each group.
pub struct RowDecoder {
    schema: RecordSchema,
    format: ValueFormat,
    /// One extractor per group of sets reading the same fields.
    extractors: Vec<RowExtractor>,
    /// Per group: the tags of its sets, as given to [`RowDecoder::new`].
    groups: Vec<Vec<usize>>,
    rows: Vec<FeatureRow>,
}

impl RowDecoder {
    /// A decoder for records of `schema` feeding `sets` (tag, spec).
    pub fn new(schema: RecordSchema, sets: Vec<(usize, Arc<FeatureSpec>)>, format: ValueFormat) -> RowDecoder {
        let mut extractors: Vec<RowExtractor> = Vec::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (tag, spec) in sets {
            let ex = RowExtractor::new(spec);
            match extractors.iter().position(|e| e.same_fields(&ex)) {
                Some(g) => groups[g].push(tag),
                None => {
                    extractors.push(ex);
                    groups.push(vec![tag]);
                }
            }
        }
        RowDecoder {
            schema,
            format,
            extractors,
            groups,
            rows: Vec::new(),
        }
    }

    /// Per group (the index in each output): the tags of the sets it feeds.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        self.groups.clone()
    }

    fn typed_value(&self, bytes: &[u8]) -> Result<serde_json::Value, Rejection> {
        use crate::events::{GameEvent, Match, PlayerStats, PredictionRequest};
        let now = now_ms();
        let typed = match self.schema {
            RecordSchema::Matches => serde_json::to_value(self.format.decode::<Match>(bytes, now)?),
            RecordSchema::PlayerStats => serde_json::to_value(self.format.decode::<PlayerStats>(bytes, now)?),
            RecordSchema::GameEvents => serde_json::to_value(self.format.decode::<GameEvent>(bytes, now)?),
            RecordSchema::PredictionRequests => {
                serde_json::to_value(self.format.decode::<PredictionRequest>(bytes, now)?)
            }
            RecordSchema::ModelUpdates | RecordSchema::Records => {
                return serde_json::from_slice(bytes).map_err(|e| Rejection::decode(format!("invalid JSON: {e}")))
            }
        };
        typed.map_err(|e| Rejection::decode(e.to_string()))
    }
}

impl Decoder for RowDecoder {
    type Output = (usize, FeatureRow);

    fn decode(&mut self, raw: &RawRecord, out: &mut Vec<(i64, (usize, FeatureRow))>) -> Result<(), Rejection> {
        let first = out.len();
        // Generic flat records take the fast path when no feature set explodes a list.
        let flat = self.schema == RecordSchema::Records && self.extractors.iter().all(|e| e.spec().explode.is_none());
        if flat {
            for (group, ex) in self.extractors.iter().enumerate() {
                match ex.extract_bytes(&raw.value) {
                    Ok(row) => out.push((row.ts, (group, row))),
                    Err(reason) => {
                        out.truncate(first);
                        return Err(Rejection::decode(reason));
                    }
                }
            }
            return Ok(());
        }
        let value = self.typed_value(&raw.value)?;
        for (group, ex) in self.extractors.iter().enumerate() {
            self.rows.clear();
            if let Err(reason) = ex.extract_value(&value, &mut self.rows) {
                out.truncate(first);
                return Err(Rejection::decode(reason));
            }
            out.extend(self.rows.drain(..).map(|r| (r.ts, (group, r))));
        }
        Ok(())
    }
}
