//! Job files: one job submitted to a running cluster, with whatever
//! sources, sinks and feature sets it needs beyond the running topology's.
//!
//! A job file is a topology fragment: `[jobs.NAME]` (exactly one) and
//! optionally `[sources.*]`, `[sinks.*]`, `[feature_sets.*]`. It is merged
//! into the running topology's text — a name the topology already defines
//! must be defined identically — and the merged text is validated as a
//! whole, so errors name the job file and the key as topology errors do.

use super::Topology;
use crate::error::{Result, RiftError};

/// Sections a job file may hold.
const SECTIONS: [&str; 4] = ["sources", "sinks", "feature_sets", "jobs"];

impl Topology {
    /// The topology with the job file `text` (read from `file`) merged in,
    /// and the name of the job it defines.
    pub fn with_job_file(&self, text: &str, file: &str) -> Result<(Topology, String)> {
        let fragment: toml::Table = super::parse_toml(text, file)?;
        let mut base: toml::Table = super::parse_toml(&self.text, &self.file)?;
        for key in fragment.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                return Err(RiftError::config(
                    file,
                    key,
                    format!("a job file holds only {}", SECTIONS.join(", ")),
                ));
            }
        }
        let jobs = fragment.get("jobs").and_then(|j| j.as_table());
        let name = match jobs.map(|j| j.keys().collect::<Vec<_>>()).as_deref() {
            Some([only]) => only.to_string(),
            _ => return Err(RiftError::config(file, "jobs", "a job file defines exactly one job")),
        };
        for (section, entries) in &fragment {
            let Some(entries) = entries.as_table() else {
                return Err(RiftError::config(file, section, "expected a table"));
            };
            let target = base
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let Some(target) = target.as_table_mut() else {
                return Err(RiftError::config(&self.file, section, "expected a table"));
            };
            for (entry, value) in entries {
                match target.get(entry) {
                    Some(existing) if existing != value => {
                        return Err(RiftError::config(
                            file,
                            format!("{section}.{entry}"),
                            "already defined differently by the running topology",
                        ))
                    }
                    Some(_) => {}
                    None => {
                        target.insert(entry.clone(), value.clone());
                    }
                }
            }
        }
        let merged =
            toml::to_string(&base).map_err(|e| RiftError::Internal(format!("serializing a merged topology: {e}")))?;
        Ok((Topology::parse(&merged, file)?, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[sources.matches]
kind = "file"
path = "in/matches.jsonl"
schema = "matches"
[sinks.out]
kind = "lake"
root = "lake"
[jobs.lake]
kind = "lake"
sources = ["matches"]
lake = "out"
"#;

    fn base() -> Topology {
        Topology::parse(BASE, "topology.toml").unwrap()
    }

    #[test]
    fn a_job_file_adds_its_job_and_sinks_to_the_running_topology() {
        let (merged, name) = base()
            .with_job_file(
                "[sinks.more]\nkind = \"lake\"\nroot = \"more\"\n[jobs.lake2]\nkind = \"lake\"\nsources = [\"matches\"]\nlake = \"more\"\n",
                "lake2.toml",
            )
            .unwrap();
        assert_eq!(name, "lake2");
        assert!(merged.jobs.contains_key("lake") && merged.jobs.contains_key("lake2"));
        assert!(merged.sinks.contains_key("more"));
    }

    #[test]
    fn a_job_file_that_fails_names_the_file_and_the_key() {
        let errors = [
            ("[runtime]\nworkers = 2\n[jobs.x]\nkind = \"lake\"\n", "runtime"),
            ("[sinks.more]\nkind = \"file\"\npath = \"m\"\n", "jobs"),
            (
                "[sinks.out]\nkind = \"lake\"\nroot = \"elsewhere\"\n[jobs.x]\nkind = \"lake\"\nsources = [\"matches\"]\nlake = \"out\"\n",
                "sinks.out",
            ),
            (
                "[jobs.x]\nkind = \"lake\"\nsources = [\"nowhere\"]\nlake = \"out\"\n",
                "jobs.x.sources",
            ),
        ];
        for (text, key) in errors {
            let e = base().with_job_file(text, "x.toml").unwrap_err().to_string();
            assert!(
                e.starts_with("x.toml: `") && e.contains(&format!("`{key}")),
                "{key}: {e}"
            );
        }
    }
}
