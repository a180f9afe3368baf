//! JSON to [`FeatureRow`]s.
//!
//! Two paths: [`RowExtractor::extract_bytes`] reads only the needed fields of
//! a flat JSON object straight from its bytes (no intermediate tree, unknown
//! fields skipped) — the hot path of generic record sources; and
//! [`RowExtractor::extract_value`] works on a decoded value and supports
//! `explode` (one row per element of a list field, element fields over the
//! parent's). Both reject a record that lacks a field or has a non-numeric
//! value where a number is needed, with a reason for the dead-letter record.

use super::spec::{stable_hash, FeatureRow, FeatureSpec};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
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
        RowExtractor { spec, fields }
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
        let mut partial = self.empty_row();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        RowSeed {
            ex: self,
            out: &mut partial,
        }
        .deserialize(&mut de)
        .map_err(|e| format!("invalid JSON: {e}"))?;
        de.end().map_err(|e| format!("invalid JSON: {e}"))?;
        self.complete(partial)
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
                key.push(crate::features::KEY_SEPARATOR);
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
    fn set(&mut self, name: &str, uses: &[Use], v: Picked) -> Result<(), String> {
        for u in uses {
            match (u, &v) {
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
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match self.ex.fields.iter().find(|(n, _)| *n == key) {
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
