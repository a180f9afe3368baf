//! Compiled feature sets, rows, accumulators and window results.

use super::expr::Expr;
use crate::config::{FeatureSetConfig, WindowKind};
use crate::util::stable_hash;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use std::collections::HashSet;

/// Inline storage: accumulators and rows of typical feature sets need no heap.
pub type Slots = SmallVec<[f64; 8]>;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// Number of rows.
    Count,
    /// Sum of a field.
    Sum,
    /// Mean of a field.
    Avg,
    /// Minimum of a field.
    Min,
    /// Maximum of a field.
    Max,
    /// The field's value in the row with the latest event time.
    Last,
    /// Number of distinct values of a field.
    CountDistinct,
}

/// One compiled aggregate.
#[derive(Debug, Clone)]
pub struct AggregateSpec {
    /// Output name.
    pub name: String,
    /// Function.
    pub func: AggFunc,
    /// Index of the input in [`FeatureRow::values`] (or `distinct` for `CountDistinct`).
    pub input: usize,
    /// Offset of this aggregate's state in [`Accumulator`] slots.
    slot: usize,
}

/// A window, with lateness, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// `[k*size, (k+1)*size)`.
    Tumbling {
        /// Window length.
        size: i64,
    },
    /// `[k*slide, k*slide + size)`.
    Sliding {
        /// Window length.
        size: i64,
        /// Hop.
        slide: i64,
    },
    /// Per-key activity sessions closed by `gap` of inactivity.
    Session {
        /// Inactivity gap.
        gap: i64,
    },
}

impl WindowSpec {
    /// Calls `f(start, end)` for every aligned window containing `ts`
    /// (tumbling and sliding; sessions are assigned by their operator).
    #[inline]
    pub fn for_each_window(&self, ts: i64, mut f: impl FnMut(i64, i64)) {
        match *self {
            WindowSpec::Tumbling { size } => {
                let start = ts.div_euclid(size) * size;
                f(start, start + size);
            }
            WindowSpec::Sliding { size, slide } => {
                let last = ts.div_euclid(slide) * slide;
                let mut start = last;
                while start > ts - size {
                    f(start, start + size);
                    start -= slide;
                }
            }
            WindowSpec::Session { gap } => f(ts, ts + gap),
        }
    }

    /// The kind's name, as in the topology.
    pub fn kind_name(&self) -> &'static str {
        match self {
            WindowSpec::Tumbling { .. } => "tumbling",
            WindowSpec::Sliding { .. } => "sliding",
            WindowSpec::Session { .. } => "session",
        }
    }
}

/// A compiled `[feature_sets.NAME]`.
#[derive(Debug, Clone)]
pub struct FeatureSpec {
    /// Feature set name.
    pub name: String,
    /// Source name.
    pub source: String,
    /// List field exploded into rows.
    pub explode: Option<String>,
    /// Key field.
    pub key_field: String,
    /// Event-time field.
    pub time_field: String,
    /// Window.
    pub window: WindowSpec,
    /// Allowed lateness, ms.
    pub allowed_lateness: i64,
    /// Numeric input fields, in [`FeatureRow::values`] order.
    pub inputs: Vec<String>,
    /// Inputs of `count_distinct`, in [`FeatureRow::distinct`] order.
    pub distinct_inputs: Vec<String>,
    /// Aggregates, in output order.
    pub aggregates: Vec<AggregateSpec>,
    /// Derived features, in output order.
    pub features: Vec<(String, Expr)>,
    /// Indices (into aggregates ++ features) of the outputs sent to the online store.
    pub online: Vec<usize>,
    /// Numbers for the values of string input fields.
    pub lookups: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
    slots: usize,
}

impl FeatureSpec {
    /// The fields of the key: one, or several joined by `+` (a composite key).
    pub fn key_parts(&self) -> impl Iterator<Item = &str> {
        self.key_field.split('+').map(str::trim)
    }

    /// The entity type of the key: `player` for `player_id`, otherwise the
    /// key fields (`champion`, `player+champion`), `player_id` named `player`.
    pub fn entity(&self) -> String {
        self.key_parts()
            .map(|p| {
                if p == "player_id" {
                    "player".to_string()
                } else {
                    crate::util::partition_value(p)
                }
            })
            .collect::<Vec<_>>()
            .join("+")
    }

    /// Compiles a feature set; errors name the offending field of the config.
    pub fn compile(name: &str, cfg: &FeatureSetConfig) -> Result<FeatureSpec, (String, String)> {
        let w = &cfg.window;
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as i64).unwrap_or(0);
        let window = match w.kind {
            WindowKind::Tumbling => WindowSpec::Tumbling { size: ms(w.size) },
            WindowKind::Sliding => WindowSpec::Sliding {
                size: ms(w.size),
                slide: ms(w.slide),
            },
            WindowKind::Session => WindowSpec::Session { gap: ms(w.gap) },
        };
        let mut inputs: Vec<String> = Vec::new();
        let mut distinct_inputs: Vec<String> = Vec::new();
        let mut aggregates = Vec::new();
        let mut slots = 0;
        for (out, text) in &cfg.aggregates {
            let field = format!("aggregates.{out}");
            let text = text.trim();
            let (func, arg) = if text == "count" || text == "count()" {
                (AggFunc::Count, None)
            } else {
                let open = text.find('(').ok_or_else(|| {
                    (
                        field.clone(),
                        format!("`{text}` is not an aggregate; write e.g. `sum(kills)`"),
                    )
                })?;
                if !text.ends_with(')') {
                    return Err((field, format!("`{text}`: missing `)`")));
                }
                let arg = text[open + 1..text.len() - 1].trim().to_string();
                if arg.is_empty() {
                    return Err((field, format!("`{text}` needs a field name")));
                }
                let func = match &text[..open] {
                    "sum" => AggFunc::Sum,
                    "avg" => AggFunc::Avg,
                    "min" => AggFunc::Min,
                    "max" => AggFunc::Max,
                    "last" => AggFunc::Last,
                    "count_distinct" => AggFunc::CountDistinct,
                    other => {
                        return Err((
                            field,
                            format!(
                                "unknown aggregate `{other}`; known: count, sum, avg, min, max, last, count_distinct"
                            ),
                        ))
                    }
                };
                (func, Some(arg))
            };
            let input = match (&func, arg) {
                (AggFunc::Count, _) | (_, None) => 0,
                (AggFunc::CountDistinct, Some(a)) => position_or_push(&mut distinct_inputs, a),
                (_, Some(a)) => position_or_push(&mut inputs, a),
            };
            let width = match func {
                AggFunc::Avg | AggFunc::Last => 2,
                AggFunc::CountDistinct => 0,
                _ => 1,
            };
            aggregates.push(AggregateSpec {
                name: out.clone(),
                func,
                input,
                slot: slots,
            });
            slots += width;
        }
        let resolve = |n: &str| aggregates.iter().position(|a: &AggregateSpec| a.name == n);
        let mut features = Vec::new();
        for (out, text) in &cfg.features {
            if resolve(out).is_some() {
                return Err((
                    format!("features.{out}"),
                    "a feature may not reuse an aggregate's name".into(),
                ));
            }
            let e = Expr::parse(text, &resolve).map_err(|m| (format!("features.{out}"), m))?;
            features.push((out.clone(), e));
        }
        let names: Vec<String> = aggregates
            .iter()
            .map(|a| a.name.clone())
            .chain(features.iter().map(|(n, _)| n.clone()))
            .collect();
        let online = match &cfg.online {
            None => (0..names.len()).collect(),
            Some(list) => list
                .iter()
                .map(|n| {
                    names.iter().position(|x| x == n).ok_or_else(|| {
                        (
                            "online".to_string(),
                            format!("`{n}` is neither an aggregate nor a feature"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(FeatureSpec {
            name: name.to_string(),
            source: cfg.source.clone(),
            explode: cfg.explode.clone(),
            key_field: cfg.key.clone(),
            time_field: cfg.time.clone(),
            window,
            allowed_lateness: ms(w.allowed_lateness),
            inputs,
            distinct_inputs,
            aggregates,
            features,
            online,
            lookups: cfg.lookups.clone(),
            slots,
        })
    }

    /// Output names: aggregates then features.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.aggregates
            .iter()
            .map(|a| a.name.as_str())
            .chain(self.features.iter().map(|(n, _)| n.as_str()))
    }

    /// A fresh accumulator.
    pub fn new_accumulator(&self) -> Accumulator {
        // Built in place: inline for up to 8 slots, no heap allocation per window and key.
        let mut slots: Slots = SmallVec::from_elem(0.0, self.slots);
        for a in &self.aggregates {
            match a.func {
                AggFunc::Min => slots[a.slot] = f64::INFINITY,
                AggFunc::Max => slots[a.slot] = f64::NEG_INFINITY,
                AggFunc::Last => slots[a.slot] = f64::NEG_INFINITY,
                _ => {}
            }
        }
        Accumulator {
            slots,
            distinct: (0..self.distinct_inputs.len()).map(|_| HashSet::new()).collect(),
            rows: 0,
        }
    }

    /// Adds a row to an accumulator.
    #[inline]
    pub fn update(&self, acc: &mut Accumulator, row: &FeatureRow) {
        acc.rows += 1;
        for a in &self.aggregates {
            let s = &mut acc.slots[a.slot..];
            match a.func {
                AggFunc::Count => s[0] += 1.0,
                AggFunc::Sum => s[0] += row.values[a.input],
                AggFunc::Avg => {
                    s[0] += row.values[a.input];
                    s[1] += 1.0;
                }
                AggFunc::Min => s[0] = s[0].min(row.values[a.input]),
                AggFunc::Max => s[0] = s[0].max(row.values[a.input]),
                AggFunc::Last => {
                    let (t, v) = (row.ts as f64, row.values[a.input]);
                    if t > s[0] || (t == s[0] && v > s[1]) {
                        s[0] = t;
                        s[1] = v;
                    }
                }
                AggFunc::CountDistinct => {
                    acc.distinct[a.input].insert(row.distinct[a.input]);
                }
            }
        }
    }

    /// Merges `other` into `acc` (session merges).
    pub fn merge(&self, acc: &mut Accumulator, other: &Accumulator) {
        acc.rows += other.rows;
        for a in &self.aggregates {
            let (s, o) = (&mut acc.slots[a.slot..], &other.slots[a.slot..]);
            match a.func {
                AggFunc::Count | AggFunc::Sum => s[0] += o[0],
                AggFunc::Avg => {
                    s[0] += o[0];
                    s[1] += o[1];
                }
                AggFunc::Min => s[0] = s[0].min(o[0]),
                AggFunc::Max => s[0] = s[0].max(o[0]),
                AggFunc::Last => {
                    if o[0] > s[0] || (o[0] == s[0] && o[1] > s[1]) {
                        s[0] = o[0];
                        s[1] = o[1];
                    }
                }
                AggFunc::CountDistinct => {
                    let extra: Vec<u64> = other.distinct[a.input].iter().copied().collect();
                    acc.distinct[a.input].extend(extra);
                }
            }
        }
    }

    /// Final values: aggregates then features (`None` = no value).
    pub fn finish(&self, acc: &Accumulator) -> Vec<Option<f64>> {
        let mut out: Vec<Option<f64>> = Vec::with_capacity(self.aggregates.len() + self.features.len());
        out.extend(self.aggregates.iter().map(|a| {
            let s = &acc.slots[a.slot..];
            let v = match a.func {
                AggFunc::Count | AggFunc::Sum => s[0],
                AggFunc::Avg => s[0] / s[1],
                AggFunc::Min | AggFunc::Max => s[0],
                AggFunc::Last => s[1],
                AggFunc::CountDistinct => acc.distinct[a.input].len() as f64,
            };
            v.is_finite().then_some(v)
        }));
        // Features read the aggregates, which come first in `out`.
        for (_, e) in &self.features {
            let v = e.eval(&out[..self.aggregates.len()]);
            out.push(v);
        }
        out
    }
}

fn position_or_push(list: &mut Vec<String>, item: String) -> usize {
    match list.iter().position(|x| *x == item) {
        Some(i) => i,
        None => {
            list.push(item);
            list.len() - 1
        }
    }
}

/// Per-(key, window) aggregation state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    slots: Slots,
    distinct: Vec<HashSet<u64>>,
    /// Rows added.
    pub rows: u64,
}

/// One input row, reduced to what a feature set needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureRow {
    /// The key (e.g. player id).
    pub key: String,
    /// Event time, UTC ms.
    pub ts: i64,
    /// Numeric inputs, in [`FeatureSpec::inputs`] order (inline up to 8: no allocation per row).
    pub values: SmallVec<[f64; 8]>,
    /// Hashes of `count_distinct` inputs, in [`FeatureSpec::distinct_inputs`] order.
    pub distinct: SmallVec<[u64; 4]>,
}

impl FeatureRow {
    /// A stable hash of the key, used to route rows to workers.
    #[inline]
    pub fn key_hash(&self) -> u64 {
        stable_hash(self.key.as_bytes())
    }
}

/// A fired (or re-fired) window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowResult {
    /// Index of the feature set in its job.
    pub set: usize,
    /// The key.
    pub key: String,
    /// Window start, UTC ms (inclusive).
    pub start: i64,
    /// Window end, UTC ms (exclusive).
    pub end: i64,
    /// 0 for the first firing, then 1, 2, … for re-fires caused by late events.
    pub revision: u32,
    /// Aggregates then features.
    pub values: Vec<Option<f64>>,
}
