//! JSON to [`FeatureRow`]s.
//!
//! Two paths: [`RowExtractor::extract_bytes`] reads only the needed fields of
//! a flat JSON object straight from its bytes (no intermediate tree, unknown
//! fields skipped) — the hot path of generic record sources; and
//! [`RowExtractor::extract_value`] works on a decoded value and supports
//! `explode` (one row per element of a list field, element fields over the
//! parent's). Both reject a record that lacks a field or has a non-numeric
//! value where a number is needed, with a reason for the dead-letter record.

use super::spec::{FeatureRow, FeatureSpec};
use crate::codec::json_scan::{same_bytes, scan_plain_string, scan_scalar, skip_ws, Scalar};
use crate::util::stable_hash;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use smallvec::SmallVec;
use std::fmt;
use std::sync::Arc;

/// What a needed field is used for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Use {
    /// Part `i` of the (possibly composite) key.
    Key(usize),
    Time,
    Value(usize),
    Distinct(usize),
}

/// Extracts rows for one feature set.
#[derive(Debug, Clone)]
pub struct RowExtractor {
    spec: Arc<FeatureSpec>,
    /// Every needed field with its uses (a field may feed several).
    fields: Vec<(String, Vec<Use>)>,
    /// Number of parts of the key.
    key_parts: usize,
    /// Bit `n` set if a needed field's name is `n` bytes long (names under 64 bytes).
    name_lengths: u64,
}

impl RowExtractor {
    /// An extractor for `spec`.
    pub fn new(spec: Arc<FeatureSpec>) -> RowExtractor {
        let mut fields: Vec<(String, Vec<Use>)> = Vec::new();
        let mut add = |name: &str, u: Use| match fields.iter_mut().find(|(n, _)| n == name) {
            Some((_, uses)) => uses.push(u),
            None => fields.push((name.to_string(), vec![u])),
        };
        for (i, part) in spec.key_parts().enumerate() {
            add(part, Use::Key(i));
        }
        add(&spec.time_field, Use::Time);
        for (i, f) in spec.inputs.iter().enumerate() {
            add(f, Use::Value(i));
        }
        for (i, f) in spec.distinct_inputs.iter().enumerate() {
            add(f, Use::Distinct(i));
        }
        let key_parts = spec.key_parts().count();
        let name_lengths = fields
            .iter()
            .map(|(n, _)| if n.len() < 64 { 1u64 << n.len() } else { 0 })
            .fold(0, |a, b| a | b);
        RowExtractor {
            spec,
            fields,
            key_parts,
            name_lengths,
        }
    }

    /// Whether `other` extracts exactly the same row from a record.
    pub fn same_fields(&self, other: &RowExtractor) -> bool {
        let (a, b) = (&self.spec, &other.spec);
        a.key_field == b.key_field
            && a.time_field == b.time_field
            && a.inputs == b.inputs
            && a.distinct_inputs == b.distinct_inputs
            && a.explode == b.explode
            && a.lookups == b.lookups
    }

    /// Maps a string through the field's lookup, if it has one.
    fn lookup(&self, name: &str, picked: Picked) -> Result<Picked, String> {
        if self.spec.lookups.is_empty() {
            return Ok(picked);
        }
        match (self.spec.lookups.get(name), picked) {
            (Some(map), Picked::Str(s)) => match map.get(&s) {
                Some(v) => Ok(Picked::Num(*v)),
                None => Err(format!(
                    "field `{name}` = `{s}` has no number in its lookup; known: {}",
                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                )),
            },
            (_, p) => Ok(p),
        }
    }

    /// The feature set.
    pub fn spec(&self) -> &Arc<FeatureSpec> {
        &self.spec
    }

    fn empty_row(&self) -> Partial {
        Partial {
            key: smallvec::smallvec![None; self.spec.key_parts().count()],
            ts: None,
            values: smallvec::smallvec![None; self.spec.inputs.len()],
            distinct: smallvec::smallvec![None; self.spec.distinct_inputs.len()],
        }
    }

    /// Extracts one row from a flat JSON object's bytes.
    pub fn extract_bytes(&self, bytes: &[u8]) -> Result<FeatureRow, String> {
        // One UTF-8 check of the whole line is cheaper than serde_json's check of each string.
        let text = std::str::from_utf8(bytes).map_err(|e| format!("invalid JSON: not UTF-8: {e}"))?;
        if let Some(row) = self.scan_flat(text) {
            return Ok(row);
        }
        // Anything the scanner does not take, serde_json reads or explains.
        self.extract_with_serde(text)
    }

    /// The general path of [`extract_bytes`](Self::extract_bytes).
    fn extract_with_serde(&self, text: &str) -> Result<FeatureRow, String> {
        let mut partial = self.empty_row();
        let mut de = serde_json::Deserializer::from_str(text);
        RowSeed {
            ex: self,
            out: &mut partial,
        }
        .deserialize(&mut de)
        .map_err(|e| format!("invalid JSON: {e}"))?;
        de.end().map_err(|e| format!("invalid JSON: {e}"))?;
        self.complete(partial)
    }

    /// The fast path of [`extract_bytes`](Self::extract_bytes): one pass over
    /// a flat JSON object whose strings have no escapes and whose values are
    /// scalars, reading only the needed fields straight into the row. `None`
    /// for any other input, valid or not, for a value a field cannot use and
    /// for a row that would be rejected (a missing field, an empty key, a time
    /// out of range): the serde_json path then reads it, or rejects it with
    /// its reason. Where both read a record they give the same row: integers
    /// up to 18 digits convert exactly, and other numbers are correctly
    /// rounded by both.
    fn scan_flat(&self, text: &str) -> Option<FeatureRow> {
        let spec = &*self.spec;
        if spec.inputs.len() > 64 || spec.distinct_inputs.len() > 64 {
            return None;
        }
        let mut row = ScannedRow::new(self.key_parts, spec.inputs.len(), spec.distinct_inputs.len());
        let b = text.as_bytes();
        let mut i = skip_ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i = skip_ws(b, i + 1);
        if b.get(i) == Some(&b'}') {
            i = skip_ws(b, i + 1);
        } else {
            loop {
                let (key_start, key_end) = scan_plain_string(b, i)?;
                i = skip_ws(b, key_end + 1);
                if b.get(i) != Some(&b':') {
                    return None;
                }
                i = skip_ws(b, i + 1);
                let (scalar, end) = scan_scalar(b, i)?;
                if let Some((field, uses)) = self.needed(&b[key_start..key_end]) {
                    let value = match scalar {
                        Scalar::Null => None,
                        Scalar::Bool(v) => Some(Scanned::Int(v as i64)),
                        Scalar::Int(n) => Some(Scanned::Int(n)),
                        Scalar::Float(v) => Some(Scanned::Num(v)),
                        // A string through the field's lookup, if it has one.
                        Scalar::Str => match spec.lookups.get(field) {
                            Some(map) => Some(Scanned::Num(*map.get(&text[i + 1..end - 1])?)),
                            None => Some(Scanned::Str(i + 1, end - 1)),
                        },
                    };
                    if let Some(value) = value {
                        row.take(text, uses, value)?;
                    }
                }
                i = skip_ws(b, end);
                match b.get(i) {
                    Some(b',') => i = skip_ws(b, i + 1),
                    Some(b'}') => {
                        i = skip_ws(b, i + 1);
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if i != b.len() {
            return None;
        }
        row.finish(text)
    }

    /// The needed field named `name`, if any (most names are ruled out by
    /// their length alone).
    #[inline]
    fn needed(&self, name: &[u8]) -> Option<&(String, Vec<Use>)> {
        if name.len() < 64 && self.name_lengths & (1 << name.len()) == 0 {
            return None;
        }
        self.fields.iter().find(|(n, _)| same_bytes(n.as_bytes(), name))
    }

    /// Extracts the rows of a decoded value, exploding the configured list field.
    pub fn extract_value(&self, value: &Value, out: &mut Vec<FeatureRow>) -> Result<(), String> {
        let Value::Object(top) = value else {
            return Err("record is not a JSON object".into());
        };
        match &self.spec.explode {
            None => out.push(self.extract_layers(&[top])?),
            Some(list) => {
                let Some(Value::Array(items)) = top.get(list) else {
                    return Err(format!("missing list field `{list}` to explode"));
                };
                for (i, item) in items.iter().enumerate() {
                    let Value::Object(inner) = item else {
                        return Err(format!("{list}[{i}] is not an object"));
                    };
                    out.push(
                        self.extract_layers(&[inner, top])
                            .map_err(|e| format!("{list}[{i}]: {e}"))?,
                    );
                }
            }
        }
        Ok(())
    }

    /// Looks fields up in `layers`, first match wins.
    fn extract_layers(&self, layers: &[&serde_json::Map<String, Value>]) -> Result<FeatureRow, String> {
        let mut partial = self.empty_row();
        for (name, uses) in &self.fields {
            if let Some(v) = layers.iter().find_map(|m| m.get(name)) {
                let picked = match v {
                    Value::Number(n) => Picked::Num(n.as_f64().unwrap_or(f64::NAN)),
                    Value::Bool(b) => Picked::Num(*b as i64 as f64),
                    Value::String(s) => Picked::Str(s.clone()),
                    Value::Null => continue,
                    _ => Picked::Other,
                };
                partial.set(name, uses, self.lookup(name, picked)?)?;
            }
        }
        self.complete(partial)
    }

    fn complete(&self, p: Partial) -> Result<FeatureRow, String> {
        let spec = &self.spec;
        let mut key = String::new();
        for (i, (part, value)) in spec.key_parts().zip(p.key).enumerate() {
            let value = value.ok_or_else(|| format!("missing key field `{part}`"))?;
            if value.is_empty() {
                return Err(format!("empty key field `{part}`"));
            }
            if i == 0 {
                key = value; // a single-field key moves, without a copy
            } else {
                key.push(crate::util::KEY_SEPARATOR);
                key.push_str(&value);
            }
        }
        let ts =
            p.ts.ok_or_else(|| format!("missing time field `{}`", spec.time_field))?;
        // Generic records may be historical, so no "near now" check; but a
        // time outside 1970..3000 is a unit mistake (seconds, µs) or garbage.
        if !(0..=LATEST_TIME_MS).contains(&ts) {
            return Err(format!(
                "time field `{}` = {ts} is outside 1970..3000 in UTC milliseconds",
                spec.time_field
            ));
        }
        let mut missing: Vec<&str> = Vec::new();
        for (i, v) in p.values.iter().enumerate() {
            if v.is_none() && !missing.contains(&spec.inputs[i].as_str()) {
                missing.push(&spec.inputs[i]);
            }
        }
        for (i, v) in p.distinct.iter().enumerate() {
            if v.is_none() && !missing.contains(&spec.distinct_inputs[i].as_str()) {
                missing.push(&spec.distinct_inputs[i]);
            }
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
            return Err(format!(
                "missing field{} {}",
                if list.len() > 1 { "s" } else { "" },
                list.join(", ")
            ));
        }
        let values = p.values.into_iter().map(|v| v.unwrap_or_default()).collect();
        let distinct = p.distinct.into_iter().map(|v| v.unwrap_or_default()).collect();
        Ok(FeatureRow {
            key,
            ts,
            values,
            distinct,
        })
    }
}

/// 3000-01-01T00:00:00Z in UTC milliseconds: the latest believable event time.
const LATEST_TIME_MS: i64 = 32_503_680_000_000;

/// A field value as read.
enum Picked {
    Num(f64),
    Str(String),
    Other,
}

/// A row being read; inline storage, so reading a row allocates only its key.
struct Partial {
    key: smallvec::SmallVec<[Option<String>; 2]>,
    ts: Option<i64>,
    values: smallvec::SmallVec<[Option<f64>; 8]>,
    distinct: smallvec::SmallVec<[Option<u64>; 4]>,
}

impl Partial {
    fn set(&mut self, name: &str, uses: &[Use], mut v: Picked) -> Result<(), String> {
        for (n, u) in uses.iter().enumerate() {
            match (u, &mut v) {
                // The last use takes the string; only a field used twice is copied.
                (Use::Key(i), Picked::Str(s)) if n + 1 == uses.len() => self.key[*i] = Some(std::mem::take(s)),
                (Use::Key(i), Picked::Str(s)) => self.key[*i] = Some(s.clone()),
                (Use::Key(i), Picked::Num(n)) => self.key[*i] = Some(format_number(*n)),
                (Use::Time, Picked::Num(n)) if n.is_finite() && n.fract() == 0.0 => self.ts = Some(*n as i64),
                (Use::Time, Picked::Str(s)) => {
                    let t = chrono::DateTime::parse_from_rfc3339(s)
                        .map_err(|_| format!("time field `{name}` is neither UTC milliseconds nor RFC 3339: `{s}`"))?;
                    self.ts = Some(t.timestamp_millis());
                }
                (Use::Time, _) => return Err(format!("time field `{name}` must be integer UTC milliseconds")),
                (Use::Value(i), Picked::Num(n)) if n.is_finite() => self.values[*i] = Some(*n),
                (Use::Value(_), _) => return Err(format!("field `{name}` is not a number")),
                (Use::Distinct(i), Picked::Str(s)) => self.distinct[*i] = Some(stable_hash(s.as_bytes())),
                (Use::Distinct(i), Picked::Num(n)) => self.distinct[*i] = Some(stable_hash(&n.to_bits().to_le_bytes())),
                (Use::Key(_), Picked::Other) | (Use::Distinct(_), Picked::Other) => {
                    return Err(format!("field `{name}` must be a string or a number"))
                }
            }
        }
        Ok(())
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// A needed value as the scanner read it: an integer (exact), another
/// number, or a string's byte range.
#[derive(Clone, Copy)]
enum Scanned {
    Int(i64),
    Num(f64),
    Str(usize, usize),
}

// Out of line, so the optimizer does not compute them for every value
// ahead of the uses loop (they are rarely needed).
#[inline(never)]
fn number_hash(n: f64) -> u64 {
    stable_hash(&n.to_bits().to_le_bytes())
}

#[inline(never)]
fn integral_time(n: f64) -> Option<i64> {
    (n.is_finite() && n.fract() == 0.0).then_some(n as i64)
}

#[inline(never)]
fn rfc3339_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A key part as the scanner read it.
#[derive(Clone, Copy)]
enum KeyPart {
    Missing,
    Text(usize, usize),
    Num(f64),
}

/// The row the scanner fills: values as found (strings as byte ranges of
/// the record), with one bit per input and distinct input that has one.
struct ScannedRow {
    key: SmallVec<[KeyPart; 2]>,
    ts: Option<i64>,
    values: SmallVec<[f64; 8]>,
    distinct: SmallVec<[u64; 4]>,
    have_values: u64,
    have_distinct: u64,
}

impl ScannedRow {
    /// An empty row (at most 64 inputs and distinct inputs: the bit sets' size).
    #[inline]
    fn new(key_parts: usize, inputs: usize, distinct: usize) -> ScannedRow {
        ScannedRow {
            key: smallvec::smallvec![KeyPart::Missing; key_parts],
            ts: None,
            values: smallvec::smallvec![0.0; inputs],
            distinct: smallvec::smallvec![0; distinct],
            have_values: 0,
            have_distinct: 0,
        }
    }

    /// Gives `value` to every use of its field; `None` if a use cannot take it.
    #[inline]
    fn take(&mut self, text: &str, uses: &[Use], value: Scanned) -> Option<()> {
        for u in uses {
            match (*u, value) {
                (Use::Value(k), Scanned::Int(n)) => self.set_value(k, n as f64),
                (Use::Value(k), Scanned::Num(n)) if n.is_finite() => self.set_value(k, n),
                (Use::Time, Scanned::Int(n)) => self.ts = Some(n),
                (Use::Time, Scanned::Num(n)) => self.ts = Some(integral_time(n)?),
                (Use::Time, Scanned::Str(s, e)) => self.ts = Some(rfc3339_time(&text[s..e])?),
                (Use::Key(k), Scanned::Str(s, e)) => self.key[k] = KeyPart::Text(s, e),
                (Use::Key(k), Scanned::Int(n)) => self.key[k] = KeyPart::Num(n as f64),
                (Use::Key(k), Scanned::Num(n)) => self.key[k] = KeyPart::Num(n),
                (Use::Distinct(k), Scanned::Str(s, e)) => self.set_distinct(k, stable_hash(&text.as_bytes()[s..e])),
                (Use::Distinct(k), Scanned::Int(n)) => self.set_distinct(k, number_hash(n as f64)),
                (Use::Distinct(k), Scanned::Num(n)) => self.set_distinct(k, number_hash(n)),
                _ => return None,
            }
        }
        Some(())
    }

    #[inline]
    fn set_value(&mut self, k: usize, v: f64) {
        self.values[k] = v;
        self.have_values |= 1 << k;
    }

    #[inline]
    fn set_distinct(&mut self, k: usize, hash: u64) {
        self.distinct[k] = hash;
        self.have_distinct |= 1 << k;
    }

    /// The row, if it is complete and acceptable; `None` leaves the record
    /// to serde_json, which reads it the same way or says why not.
    #[inline]
    fn finish(self, text: &str) -> Option<FeatureRow> {
        let all = |n: usize| if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        if self.have_values != all(self.values.len()) || self.have_distinct != all(self.distinct.len()) {
            return None;
        }
        let ts = self.ts.filter(|t| (0..=LATEST_TIME_MS).contains(t))?;
        let key = match self.key.as_slice() {
            // The usual single-field key: one exact allocation.
            [KeyPart::Text(s, e)] if s < e => text[*s..*e].to_owned(),
            parts => join_key(text, parts)?,
        };
        Some(FeatureRow {
            key,
            ts,
            values: self.values,
            distinct: self.distinct,
        })
    }
}

/// A composite (or numeric) key's parts joined; `None` if one is missing or empty.
fn join_key(text: &str, parts: &[KeyPart]) -> Option<String> {
    let mut key = String::new();
    for (k, part) in parts.iter().enumerate() {
        if k > 0 {
            key.push(crate::util::KEY_SEPARATOR);
        }
        match *part {
            KeyPart::Missing => return None,
            KeyPart::Text(s, e) if s == e => return None,
            KeyPart::Text(s, e) => key.push_str(&text[s..e]),
            KeyPart::Num(n) => key.push_str(&format_number(n)),
        }
    }
    Some(key)
}

struct RowSeed<'a> {
    ex: &'a RowExtractor,
    out: &'a mut Partial,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(field) = map.next_key_seed(FieldSeed(&self.ex.fields))? {
            match field.map(|i| &self.ex.fields[i]) {
                Some((name, uses)) => {
                    let v: PickedValue = map.next_value()?;
                    if let Some(p) = v.0 {
                        let p = self.ex.lookup(name, p).map_err(serde::de::Error::custom)?;
                        self.out.set(name, uses, p).map_err(serde::de::Error::custom)?;
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Reads an object key as the index of the needed field it names, if any,
/// without allocating.
struct FieldSeed<'a>(&'a [(String, Vec<Use>)]);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.iter().position(|(name, _)| name == key))
    }
}

/// A scalar read without building a tree (`None` for null).
struct PickedValue(Option<Picked>);

impl<'de> serde::Deserialize<'de> for PickedValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PickedValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_i64<E>(self, v: i64) -> Result<PickedValue, E> {
                Ok(PickedValue(Some(Picked::Num(v as f64))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<PickedValue, E> {
                Ok(PickedValue(Some(Picked::Num(v as f64))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<PickedValue, E> {
                Ok(PickedValue(Some(Picked::Num(v))))
            }
            fn visit_bool<E>(self, v: bool) -> Result<PickedValue, E> {
                Ok(PickedValue(Some(Picked::Num(v as i64 as f64))))
            }
            fn visit_str<E>(self, v: &str) -> Result<PickedValue, E> {
                Ok(PickedValue(Some(Picked::Str(v.to_string()))))
            }
            fn visit_unit<E>(self) -> Result<PickedValue, E> {
                Ok(PickedValue(None))
            }
            fn visit_none<E>(self) -> Result<PickedValue, E> {
                Ok(PickedValue(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<PickedValue, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(PickedValue(Some(Picked::Other)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<PickedValue, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(PickedValue(Some(Picked::Other)))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FeatureSetConfig, WindowConfig, WindowKind};
    use std::collections::BTreeMap;

    fn spec(explode: Option<&str>) -> Arc<FeatureSpec> {
        let mut aggregates = BTreeMap::new();
        aggregates.insert("games".to_string(), "count".to_string());
        aggregates.insert("kills".to_string(), "sum(kills)".to_string());
        aggregates.insert("champions".to_string(), "count_distinct(champion)".to_string());
        let cfg = FeatureSetConfig {
            source: "s".into(),
            explode: explode.map(String::from),
            key: "player_id".into(),
            time: "ts".into(),
            window: WindowConfig {
                kind: WindowKind::Tumbling,
                size: Some(std::time::Duration::from_secs(60)),
                slide: None,
                gap: None,
                allowed_lateness: None,
            },
            aggregates,
            features: BTreeMap::new(),
            online: None,
            lookups: Default::default(),
        };
        Arc::new(FeatureSpec::compile("t", &cfg).unwrap())
    }

    #[test]
    fn bytes_and_value_paths_agree() {
        let ex = RowExtractor::new(spec(None));
        let line = br#"{"match_id":"m1","player_id":"p1","champion":"Ahri","ts":1767225600123,"kills":3,"extra":{"a":[1,2]},"win":true}"#;
        let a = ex.extract_bytes(line).unwrap();
        let mut b = Vec::new();
        ex.extract_value(&serde_json::from_slice(line).unwrap(), &mut b)
            .unwrap();
        assert_eq!(a, b[0]);
        assert_eq!(a.key, "p1");
        assert_eq!(a.ts, 1_767_225_600_123);
        assert_eq!(a.values.as_slice(), &[3.0]);
    }

    /// A JSON text for a value, in one of several spellings.
    fn spell(value: &serde_json::Value, variant: u8) -> String {
        match (value, variant % 6) {
            (serde_json::Value::Number(n), 1) if n.is_i64() => format!("{}.0", n),
            (serde_json::Value::Number(n), 2) if n.is_i64() => format!("{}e0", n),
            (serde_json::Value::Number(n), 3) if n.is_i64() => format!("{}E+00", n),
            // Out of f64's range unless zero: serde_json rejects the record.
            (serde_json::Value::Number(n), 4) => format!("{}e400", n),
            // Longer than any integer type.
            (serde_json::Value::Number(n), 5) if n.is_i64() => format!("{}000000000000000000000", n),
            (serde_json::Value::String(s), 1) => {
                // Escaped, which the scanner leaves to serde_json.
                s.chars()
                    .map(|c| format!("\\u{:04x}", c as u32))
                    .collect::<String>()
                    .pipe_quote()
            }
            _ => value.to_string(),
        }
    }

    trait PipeQuote {
        fn pipe_quote(self) -> String;
    }
    impl PipeQuote for String {
        fn pipe_quote(self) -> String {
            format!("\"{self}\"")
        }
    }

    proptest::proptest! {
        /// The scanner and serde_json agree on every record: the same row, or
        /// the same rejection (the scanner hands over anything unusual).
        #[test]
        fn the_fast_scanner_agrees_with_serde_json(
            required in (0i64..1 << 40, proptest::num::i64::ANY, proptest::num::f64::NORMAL, 0u8..8, 0u8..16),
            extras in proptest::collection::vec((0usize..6, proptest::num::i64::ANY, proptest::num::f64::NORMAL, 0u8..8, 0u8..4), 0..6),
            order in proptest::num::u64::ANY,
            broken in proptest::option::of(0usize..300),
        ) {
            let ex = RowExtractor::new(spec(None));
            let (ts, int, float, kind, spelling) = required;
            let kills = match kind {
                0 => serde_json::json!(int),
                1 | 2 => serde_json::json!(int % 1_000),
                3 => serde_json::json!(float),
                4 => serde_json::json!(-float.abs()),
                5 => serde_json::json!(int % 2 == 0),
                6 => serde_json::json!(null),
                _ => serde_json::json!(format!("{}", int % 10)),
            };
            let mut fields = vec![
                ("player_id".to_string(), spell(&serde_json::json!(format!("p{}", int.rem_euclid(97))), spelling / 4), spelling % 4),
                ("ts".to_string(), spell(&serde_json::json!(1_700_000_000_000i64 + ts), spelling / 8), spelling % 3),
                ("kills".to_string(), spell(&kills, spelling), spelling % 2),
                ("champion".to_string(), spell(&serde_json::json!(format!("c{}", int.rem_euclid(7))), spelling / 2), 0),
            ];
            let names = ["match_id", "extra", "win", "kills ", "k\\u0069lls", "gold"];
            for (name, int, float, kind, space) in extras {
                let value = match kind {
                    0 => serde_json::json!(int),
                    1 => serde_json::json!(float),
                    2 => serde_json::json!(format!("m{int}")),
                    3 => serde_json::json!(null),
                    4 => serde_json::json!(int % 2 == 0),
                    5 => serde_json::json!({"nested": [int, {"deep": float}]}),
                    6 => serde_json::json!([1, "two", null]),
                    _ => serde_json::json!(int % 1_000),
                };
                fields.push((names[name].to_string(), spell(&value, space + kind), space));
            }
            // A fixed shuffle from `order`.
            let n = fields.len();
            for k in (1..n).rev() {
                fields.swap(k, (order.rotate_left(k as u32 * 7) % (k as u64 + 1)) as usize);
            }
            let body: Vec<String> = fields
                .iter()
                .map(|(name, value, space)| {
                    let pad = " ".repeat(*space as usize);
                    format!("{pad}\"{name}\"{pad}:{pad}{value}")
                })
                .collect();
            let mut text = format!("{{{}}}", body.join(","));
            if let Some(at) = broken {
                // Cut the record short somewhere.
                if at < text.len() && text.is_char_boundary(at) {
                    text.truncate(at);
                }
            }
            let fast = ex.extract_bytes(text.as_bytes());
            let general = ex.extract_with_serde(&text);
            proptest::prop_assert_eq!(fast, general, "{}", text);
        }
    }

    #[test]
    fn the_fast_scanner_reads_plain_records_and_hands_over_the_rest() {
        let ex = RowExtractor::new(spec(None));
        let plain = r#" {"player_id" : "p1", "champion":"Ahri","ts":1767225600123,"kills":-3.5e1,"x":[1]} "#;
        assert!(ex.scan_flat(plain).is_none(), "nested values go to serde_json");
        let plain =
            r#" {"player_id" : "p1", "champion":"Ahri","ts":1767225600123,"kills":-3.5e1,"win":true,"n":null} "#;
        let row = ex.scan_flat(plain).expect("a plain record takes the fast path");
        assert_eq!(row, ex.extract_with_serde(plain).unwrap());
        assert_eq!(row.values.as_slice(), &[-35.0]);
        // Out of f64's range: serde_json skips it in an unneeded field and
        // rejects it in a needed one, key included; the scanner agrees.
        let skipped = r#"{"player_id":"p1","champion":"Ahri","ts":1767225600123,"kills":1,"gold":5e400}"#;
        let rejected = r#"{"player_id":5e400,"champion":"Ahri","ts":1767225600123,"kills":1}"#;
        assert!(ex.extract_with_serde(skipped).is_ok());
        assert!(ex.extract_with_serde(rejected).is_err());
        for huge in [skipped, rejected] {
            assert_eq!(ex.extract_bytes(huge.as_bytes()), ex.extract_with_serde(huge), "{huge}");
        }
        // `-0` is the float -0.0 to serde_json: a distinct value apart from 0.
        for zero in ["0", "-0", "-0.0", "0.0"] {
            let line = format!(r#"{{"player_id":"p1","champion":{zero},"ts":1767225600123,"kills":{zero}}}"#);
            let (fast, general) = (ex.extract_bytes(line.as_bytes()), ex.extract_with_serde(&line));
            assert_eq!(fast, general, "{line}");
        }
        for other in [
            r#"{"player_id":"p\u0031","champion":"Ahri","ts":1,"kills":1}"#,
            r#"{"kills":01}"#,
            r#"{"kills":1.}"#,
            r#"{"a":1}x"#,
        ] {
            assert!(ex.scan_flat(other).is_none(), "{other}");
        }
    }

    #[test]
    fn missing_and_mistyped_fields_are_rejected_with_a_reason() {
        let ex = RowExtractor::new(spec(None));
        let e = ex
            .extract_bytes(br#"{"player_id":"p1","champion":"Ahri","ts":1}"#)
            .unwrap_err();
        assert_eq!(e, "missing field `kills`");
        let e = ex
            .extract_bytes(br#"{"player_id":"p1","champion":"Ahri","ts":1,"kills":"three"}"#)
            .unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let e = ex
            .extract_bytes(br#"{"player_id":"p1","champion":"Ahri","ts":1,"kills":1"#)
            .unwrap_err();
        assert!(e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn explode_takes_element_fields_over_parent_fields() {
        let ex = RowExtractor::new(spec(Some("participants")));
        let v = serde_json::json!({"ts": 5, "kills": 99, "participants": [
            {"player_id": "a", "champion": "Ahri", "kills": 1},
            {"player_id": "b", "champion": "Zed", "kills": 2}
        ]});
        let mut rows = Vec::new();
        ex.extract_value(&v, &mut rows).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].key.as_str(), rows[0].ts, rows[0].values[0]), ("a", 5, 1.0));
        assert_eq!((rows[1].key.as_str(), rows[1].values[0]), ("b", 2.0));
    }

    #[test]
    fn composite_keys_join_their_parts_and_lookups_number_strings() {
        let mut cfg_spec = (*spec(None)).clone();
        cfg_spec.key_field = "player_id+champion".into();
        cfg_spec.inputs = vec!["tier".into()];
        cfg_spec.lookups = BTreeMap::from([(
            "tier".to_string(),
            BTreeMap::from([("GOLD".to_string(), 3.0), ("SILVER".to_string(), 2.0)]),
        )]);
        assert_eq!(cfg_spec.entity(), "player+champion");
        let ex = RowExtractor::new(Arc::new(cfg_spec));
        let line = br#"{"player_id":"p1","champion":"Ahri","ts":1767225600000,"tier":"GOLD"}"#;
        let row = ex.extract_bytes(line).unwrap();
        assert_eq!((row.key.as_str(), row.values[0]), ("p1/Ahri", 3.0));
        let mut rows = Vec::new();
        ex.extract_value(&serde_json::from_slice(line).unwrap(), &mut rows)
            .unwrap();
        assert_eq!(rows[0], row);
        let e = ex
            .extract_bytes(br#"{"player_id":"p1","champion":"Ahri","ts":1767225600000,"tier":"WOOD"}"#)
            .unwrap_err();
        assert!(e.contains("`WOOD`") && e.contains("GOLD, SILVER"), "{e}");
        let e = ex
            .extract_bytes(br#"{"player_id":"p1","ts":1767225600000,"tier":"GOLD"}"#)
            .unwrap_err();
        assert_eq!(e, "missing key field `champion`");
    }
}
