//! Checks of a parsed topology: values in range and every name a job or
//! feature set refers to defined, with the right kind. Every error names the
//! file and the dotted key.

use super::*;
use std::time::Duration;

impl Topology {
    pub(crate) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> RiftError {
        RiftError::config(&self.file, key, message)
    }

    /// Checks values and cross-references; every error names its key.
    pub fn validate(&self) -> Result<()> {
        if self.runtime.workers == 0 || self.runtime.workers > 256 {
            return Err(self.err("runtime.workers", "must be between 1 and 256"));
        }
        if self.runtime.watermark_granularity.is_zero() {
            return Err(self.err("runtime.watermark_granularity", "must be positive"));
        }
        for (name, source) in &self.sources {
            let key = format!("sources.{name}");
            match source {
                SourceConfig::Kafka { .. } if self.kafka.is_none() => {
                    return Err(self.err(&key, "a kafka source needs a [kafka] section with `brokers`"))
                }
                SourceConfig::Kafka {
                    topic, schema: None, ..
                } if source.schema().is_none() => {
                    return Err(self.err(
                        format!("{key}.schema"),
                        format!("topic `{topic}` is not one of SPEC's topics; say which `schema` its records have"),
                    ))
                }
                SourceConfig::File { splits, .. } if *splits == 0 || *splits > 4096 => {
                    return Err(self.err(format!("{key}.splits"), "must be between 1 and 4096"))
                }
                SourceConfig::Generator {
                    schema: RecordSchema::Records | RecordSchema::ModelUpdates,
                    ..
                } => {
                    return Err(self.err(
                        format!("{key}.schema"),
                        "the generator yields matches, player_stats, game_events or prediction_requests",
                    ))
                }
                _ => {}
            }
        }
        for (name, sink) in &self.sinks {
            if let SinkConfig::Kafka { .. } = sink {
                if self.kafka.is_none() {
                    return Err(self.err(
                        format!("sinks.{name}"),
                        "a kafka sink needs a [kafka] section with `brokers`",
                    ));
                }
            }
            if let SinkConfig::Lake {
                target_file_bytes,
                row_group_rows,
                ..
            } = sink
            {
                if *target_file_bytes < 1024 {
                    return Err(self.err(format!("sinks.{name}.target_file_bytes"), "must be at least 1024"));
                }
                if *row_group_rows == 0 {
                    return Err(self.err(format!("sinks.{name}.row_group_rows"), "must be positive"));
                }
            }
        }
        for (name, set) in &self.feature_sets {
            self.validate_feature_set(name, set)?;
        }
        for (name, job) in &self.jobs {
            self.validate_job(name, job)?;
        }
        Ok(())
    }

    fn validate_feature_set(&self, name: &str, set: &FeatureSetConfig) -> Result<()> {
        let key = format!("feature_sets.{name}");
        self.require_source(&format!("{key}.source"), &set.source)?;
        let w = &set.window;
        let positive = |d: Option<Duration>, field: &str| -> Result<u64> {
            match d {
                Some(d) if d.as_millis() > 0 => Ok(d.as_millis() as u64),
                Some(_) => Err(self.err(format!("{key}.window.{field}"), "must be positive")),
                None => Err(self.err(
                    format!("{key}.window.{field}"),
                    format!("a {:?} window needs `{field}`", w.kind).to_lowercase(),
                )),
            }
        };
        match w.kind {
            WindowKind::Tumbling => {
                positive(w.size, "size")?;
            }
            WindowKind::Sliding => {
                let size = positive(w.size, "size")?;
                let slide = positive(w.slide, "slide")?;
                if slide > size {
                    return Err(self.err(format!("{key}.window.slide"), "must not exceed `size`"));
                }
            }
            WindowKind::Session => {
                positive(w.gap, "gap")?;
            }
        }
        if set.aggregates.is_empty() {
            return Err(self.err(format!("{key}.aggregates"), "name at least one aggregate"));
        }
        Ok(())
    }

    fn validate_job(&self, name: &str, job: &JobConfig) -> Result<()> {
        let key = format!("jobs.{name}");
        match job {
            JobConfig::Lake { sources, lake, dlq } => {
                for (i, s) in sources.iter().enumerate() {
                    self.require_source(&format!("{key}.sources[{i}]"), s)?;
                }
                self.require_sink(&format!("{key}.lake"), lake, &["lake"])?;
                if let Some(d) = dlq {
                    self.require_sink(&format!("{key}.dlq"), d, &["kafka", "file", "lake"])?;
                }
            }
            JobConfig::PlayerFeatures {
                feature_sets,
                online,
                offline,
                output,
                dlq,
            } => {
                if feature_sets.is_empty() {
                    return Err(self.err(format!("{key}.feature_sets"), "name at least one feature set"));
                }
                for (i, f) in feature_sets.iter().enumerate() {
                    if !self.feature_sets.contains_key(f) {
                        return Err(self.err(
                            format!("{key}.feature_sets[{i}]"),
                            format!(
                                "unknown feature set `{f}`; defined: {}",
                                names(self.feature_sets.keys())
                            ),
                        ));
                    }
                }
                if let Some(s) = online {
                    self.require_sink(&format!("{key}.online"), s, &["redis", "embedded"])?;
                }
                if let Some(s) = offline {
                    self.require_sink(&format!("{key}.offline"), s, &["lake"])?;
                }
                if let Some(s) = output {
                    self.require_sink(&format!("{key}.output"), s, &["file"])?;
                }
                if let Some(d) = dlq {
                    self.require_sink(&format!("{key}.dlq"), d, &["kafka", "file", "lake"])?;
                }
                if offline.is_none() && output.is_none() {
                    return Err(self.err(
                        &key,
                        "name `offline` (a lake sink) or `output` (a file sink): late events are stored there",
                    ));
                }
            }
            JobConfig::Predictions {
                live_source,
                requests_source,
                matches_source,
                outputs,
                dlq,
                ..
            } => {
                for (field, s) in [
                    ("live_source", live_source),
                    ("requests_source", requests_source),
                    ("matches_source", matches_source),
                ] {
                    if let Some(s) = s {
                        self.require_source(&format!("{key}.{field}"), s)?;
                    }
                }
                if live_source.is_none() && requests_source.is_none() {
                    return Err(self.err(&key, "name a `live_source`, a `requests_source` or both"));
                }
                if outputs.is_empty() {
                    return Err(self.err(format!("{key}.outputs"), "name at least one sink"));
                }
                for (i, s) in outputs.iter().enumerate() {
                    self.require_sink(&format!("{key}.outputs[{i}]"), s, &["kafka", "file", "lake"])?;
                }
                if let Some(d) = dlq {
                    self.require_sink(&format!("{key}.dlq"), d, &["kafka", "file", "lake"])?;
                }
            }
        }
        Ok(())
    }

    fn require_source(&self, key: &str, name: &str) -> Result<&SourceConfig> {
        self.sources.get(name).ok_or_else(|| {
            self.err(
                key,
                format!("unknown source `{name}`; defined: {}", names(self.sources.keys())),
            )
        })
    }

    fn require_sink(&self, key: &str, name: &str, kinds: &[&str]) -> Result<&SinkConfig> {
        let sink = self.sinks.get(name).ok_or_else(|| {
            self.err(
                key,
                format!("unknown sink `{name}`; defined: {}", names(self.sinks.keys())),
            )
        })?;
        if !kinds.contains(&sink.kind()) {
            return Err(self.err(
                key,
                format!("sink `{name}` is a `{}` sink; expected one of {kinds:?}", sink.kind()),
            ));
        }
        Ok(sink)
    }
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(|s| s.as_str()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[kafka]
brokers = "b:9092"
[sources.m]
kind = "file"
path = "m.jsonl"
schema = "matches"
[sinks.lake]
kind = "lake"
root = "lake"
[sinks.out]
kind = "file"
path = "out"
[feature_sets.f]
source = "m"
key = "player_id"
time = "end_time"
window = { kind = "tumbling", size = "1d" }
aggregates = { n = "count" }
"#;

    /// The error for `BASE` with `extra` appended, as (key, message).
    fn error(extra: &str) -> (String, String) {
        match Topology::parse(&format!("{BASE}{extra}"), "topo.toml") {
            Ok(_) => panic!("accepted:\n{extra}"),
            Err(RiftError::Config { file, key, message }) => {
                assert_eq!(file, "topo.toml", "every error names the file");
                (key, message)
            }
            Err(other) => panic!("not a configuration error: {other}"),
        }
    }

    fn assert_error(extra: &str, key: &str, message_has: &str) {
        let (k, m) = error(extra);
        assert_eq!(k, key, "{m}");
        assert!(m.contains(message_has), "{key}: {m}");
    }

    #[test]
    fn the_base_topology_is_valid() {
        Topology::parse(BASE, "topo.toml").unwrap();
    }

    #[test]
    fn runtime_errors_name_their_key() {
        assert_error("[runtime]\nworkers = 0\n", "runtime.workers", "between 1 and 256");
        assert_error(
            "[runtime]\nwatermark_granularity = \"0s\"\n",
            "runtime.watermark_granularity",
            "positive",
        );
        assert_error("[runtime]\nworkerz = 2\n", "runtime.workerz", "unknown field `workerz`");
    }

    #[test]
    fn kafka_errors_name_their_key() {
        let (k, m) = error("[kafka.properties]\nx = 1\n");
        assert!(k.starts_with("kafka"), "{k}: {m}");
        let no_kafka = "[sources.k]\nkind = \"kafka\"\ntopic = \"esports.matches\"\n";
        let text = BASE.replace("[kafka]\nbrokers = \"b:9092\"\n", "");
        match Topology::parse(&format!("{text}{no_kafka}"), "topo.toml") {
            Err(RiftError::Config { key, message, .. }) => {
                assert_eq!(key, "sources.k");
                assert!(message.contains("[kafka] section"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn source_errors_name_their_key() {
        assert_error(
            "[sources.x]\nkind = \"file\"\npath = \"x\"\nschema = \"matches\"\nsplits = 0\n",
            "sources.x.splits",
            "between 1 and 4096",
        );
        assert_error(
            "[sources.x]\nkind = \"kafka\"\ntopic = \"other\"\n",
            "sources.x.schema",
            "not one of SPEC's topics",
        );
        assert_error(
            "[sources.x]\nkind = \"generator\"\nschema = \"records\"\n",
            "sources.x.schema",
            "the generator yields",
        );
        assert_error(
            "[sources.x]\nkind = \"ftp\"\n",
            "sources.x.kind",
            "unknown variant `ftp`",
        );
    }

    #[test]
    fn sink_errors_name_their_key() {
        assert_error(
            "[sinks.l]\nkind = \"lake\"\nroot = \"l\"\ntarget_file_bytes = 10\n",
            "sinks.l.target_file_bytes",
            "at least 1024",
        );
        assert_error(
            "[sinks.l]\nkind = \"lake\"\nroot = \"l\"\nrow_group_rows = 0\n",
            "sinks.l.row_group_rows",
            "positive",
        );
        assert_error(
            "[sinks.r]\nkind = \"redis\"\nurl = \"redis://x\"\nttl = \"soon\"\n",
            "sinks.r.ttl",
            "expected a duration",
        );
    }

    #[test]
    fn feature_set_errors_name_their_key() {
        let set = |window: &str| {
            format!(
                "[feature_sets.g]\nsource = \"m\"\nkey = \"k\"\ntime = \"t\"\nwindow = {window}\naggregates = {{ n = \"count\" }}\n"
            )
        };
        assert_error(
            &set("{ kind = \"tumbling\" }"),
            "feature_sets.g.window.size",
            "needs `size`",
        );
        assert_error(
            &set("{ kind = \"sliding\", size = \"1h\", slide = \"2h\" }"),
            "feature_sets.g.window.slide",
            "must not exceed `size`",
        );
        assert_error(
            &set("{ kind = \"session\" }"),
            "feature_sets.g.window.gap",
            "needs `gap`",
        );
        assert_error(
            "[feature_sets.g]\nsource = \"nowhere\"\nkey = \"k\"\ntime = \"t\"\nwindow = { kind = \"tumbling\", size = \"1h\" }\naggregates = { n = \"count\" }\n",
            "feature_sets.g.source",
            "unknown source `nowhere`; defined: m",
        );
        assert_error(
            "[feature_sets.g]\nsource = \"m\"\nkey = \"k\"\ntime = \"t\"\nwindow = { kind = \"tumbling\", size = \"1h\" }\naggregates = {}\n",
            "feature_sets.g.aggregates",
            "at least one aggregate",
        );
    }

    #[test]
    fn job_errors_name_their_key() {
        assert_error(
            "[jobs.j]\nkind = \"lake\"\nsources = [\"m\"]\nlake = \"nope\"\n",
            "jobs.j.lake",
            "unknown sink `nope`",
        );
        assert_error(
            "[jobs.j]\nkind = \"lake\"\nsources = [\"m\"]\nlake = \"out\"\n",
            "jobs.j.lake",
            "is a `file` sink",
        );
        assert_error(
            "[jobs.j]\nkind = \"player_features\"\nfeature_sets = [\"f\", \"g\"]\noffline = \"lake\"\n",
            "jobs.j.feature_sets[1]",
            "unknown feature set `g`",
        );
        assert_error(
            "[jobs.j]\nkind = \"player_features\"\nfeature_sets = [\"f\"]\n",
            "jobs.j",
            "late events are stored there",
        );
        assert_error(
            "[jobs.j]\nkind = \"predictions\"\noutputs = [\"out\"]\n",
            "jobs.j",
            "`live_source`, a `requests_source`",
        );
        assert_error(
            "[jobs.j]\nkind = \"predictions\"\nlive_source = \"m\"\noutputs = [\"out\"]\ndlq = \"lake2\"\n",
            "jobs.j.dlq",
            "unknown sink `lake2`",
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let (k, _) = error("[jobs.j\nkind = 1\n");
        assert!(k.starts_with("line "), "{k}");
    }
}
