//! The job catalog: every job a cluster was asked to run, with its
//! definition and state, persisted in process 0's state directory.
//!
//! States: `created` (accepted, not yet installed), `running`, `failed`
//! (with its reason), `cancelling`, `cancelled`, `finished`. The catalog is
//! written (to a temporary file, synced, renamed over `jobs.json`) on every
//! change, so a cluster that restarts after a crash or a redeploy finds the
//! jobs it was running and starts them again from their checkpoints. Job
//! names are unique among live jobs (`created`, `running`, `cancelling`):
//! a name names the job's checkpoint state, and a job submitted again
//! under the same name continues from it.

use super::control::JobSpec;
use crate::error::{Result, RiftError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Accepted, not yet installed.
    Created,
    /// Installed on every worker.
    Running,
    /// Failed on some worker (the reason is kept).
    Failed,
    /// A cancel is under way (a savepoint being taken).
    Cancelling,
    /// Cancelled.
    Cancelled,
    /// Its input ended and everything was committed.
    Finished,
}

impl JobStatus {
    /// Whether the job holds its name (is or will be installed).
    pub fn is_live(self) -> bool {
        matches!(self, JobStatus::Created | JobStatus::Running | JobStatus::Cancelling)
    }
}

/// A job in the catalog.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id (`j-000001`, …).
    pub id: String,
    /// Name (the job's name in its topology).
    pub name: String,
    /// State.
    pub state: JobStatus,
    /// Why it failed.
    pub reason: Option<String>,
    /// When it was submitted (Unix ms).
    pub submitted_at_ms: i64,
    /// When it was last installed (Unix ms).
    pub started_at_ms: Option<i64>,
    /// When it ended (Unix ms).
    pub ended_at_ms: Option<i64>,
    /// Whether its cancel took a savepoint.
    pub savepoint: bool,
    /// Its definition.
    pub spec: JobSpec,
}

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    next_id: u64,
    jobs: BTreeMap<String, JobRecord>,
}

/// The catalog of one cluster.
pub struct Catalog {
    /// Where it is kept (`None`: in memory, for a bounded run).
    path: Option<PathBuf>,
    stored: Stored,
}

impl Catalog {
    /// The catalog under `state_dir` (empty if there is none yet).
    pub fn open(state_dir: &Path) -> Result<Catalog> {
        let path = state_dir.join("jobs.json");
        let stored = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| RiftError::config(path.display().to_string(), "", format!("not a job catalog: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(RiftError::io(&path, e)),
        };
        Ok(Catalog {
            path: Some(path),
            stored,
        })
    }

    /// A catalog kept in memory only (a bounded run's).
    pub fn in_memory() -> Catalog {
        Catalog {
            path: None,
            stored: Stored::default(),
        }
    }

    fn save(&self) -> Result<()> {
        use std::io::Write;
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| RiftError::io(dir, e))?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(&self.stored).map_err(|e| RiftError::Internal(format!("job catalog: {e}")))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| RiftError::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| RiftError::io(&tmp, e))?;
        f.sync_all().map_err(|e| RiftError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| RiftError::io(path, e))
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<JobRecord> {
        self.stored.jobs.values().cloned().collect()
    }

    /// Job `id`.
    pub fn get(&self, id: &str) -> Option<&JobRecord> {
        self.stored.jobs.get(id)
    }

    /// The live job named `name`, if any.
    pub fn live(&self, name: &str) -> Option<&JobRecord> {
        self.stored.jobs.values().find(|j| j.name == name && j.state.is_live())
    }

    /// Adds a job as `created`. Fails if a live job has its name.
    pub fn add(&mut self, name: &str, topology: &str, file: &str) -> Result<JobRecord> {
        if let Some(j) = self.live(name) {
            return Err(RiftError::Usage(format!(
                "a job named `{name}` is already {} as {}",
                serde_json::to_value(j.state)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                j.id
            )));
        }
        self.stored.next_id += 1;
        let id = format!("j-{:06}", self.stored.next_id);
        let record = JobRecord {
            id: id.clone(),
            name: name.to_string(),
            state: JobStatus::Created,
            reason: None,
            submitted_at_ms: crate::util::now_ms(),
            started_at_ms: None,
            ended_at_ms: None,
            savepoint: false,
            spec: JobSpec {
                id: id.clone(),
                name: name.to_string(),
                topology: topology.to_string(),
                file: file.to_string(),
            },
        };
        self.stored.jobs.insert(id, record.clone());
        self.save()?;
        Ok(record)
    }

    /// Moves job `id` to `state` (with `reason` for a failure) and saves.
    /// An ended job stays ended: a late report does not revive it.
    pub fn set(&mut self, id: &str, state: JobStatus, reason: Option<String>) -> Result<()> {
        let Some(job) = self.stored.jobs.get_mut(id) else {
            return Ok(());
        };
        if !job.state.is_live() || job.state == state {
            return Ok(());
        }
        let now = crate::util::now_ms();
        match state {
            JobStatus::Running => job.started_at_ms = Some(now),
            JobStatus::Failed | JobStatus::Cancelled | JobStatus::Finished => job.ended_at_ms = Some(now),
            JobStatus::Created | JobStatus::Cancelling => {}
        }
        job.state = state;
        job.reason = reason;
        self.save()
    }

    /// Moves job `id` to `cancelling` (noting whether a savepoint is taken) and saves.
    pub fn cancel(&mut self, id: &str, savepoint: bool) -> Result<()> {
        if let Some(job) = self.stored.jobs.get_mut(id) {
            job.savepoint = savepoint;
        }
        self.set(id, JobStatus::Cancelling, None)
    }

    /// The jobs a restarted cluster starts again: those that were live. A
    /// cancel that was under way is completed instead (they are cancelled).
    pub fn resume(&mut self) -> Result<Vec<JobSpec>> {
        let mut specs = Vec::new();
        for job in self.stored.jobs.values_mut() {
            match job.state {
                JobStatus::Created | JobStatus::Running => specs.push(job.spec.clone()),
                JobStatus::Cancelling => {
                    job.state = JobStatus::Cancelled;
                    job.ended_at_ms = Some(crate::util::now_ms());
                }
                _ => {}
            }
        }
        self.save()?;
        Ok(specs)
    }

    /// Whether the catalog has ever held a job.
    pub fn is_new(&self) -> bool {
        self.stored.jobs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_survives_a_restart_and_resumes_the_live_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        assert!(c.is_new());
        let a = c.add("lake", "t", "topology.toml").unwrap();
        let b = c.add("features", "t", "topology.toml").unwrap();
        let d = c.add("predictions", "t", "topology.toml").unwrap();
        assert!(c
            .add("lake", "t", "x.toml")
            .unwrap_err()
            .to_string()
            .contains("already created as j-000001"));
        c.set(&a.id, JobStatus::Running, None).unwrap();
        c.set(&b.id, JobStatus::Failed, Some("boom".into())).unwrap();
        c.set(&b.id, JobStatus::Running, None).unwrap();
        c.cancel(&d.id, true).unwrap();

        let mut again = Catalog::open(dir.path()).unwrap();
        let failed = again.get(&b.id).unwrap();
        assert_eq!(
            (failed.state, failed.reason.as_deref()),
            (JobStatus::Failed, Some("boom"))
        );
        let resumed: Vec<String> = again.resume().unwrap().into_iter().map(|s| s.name).collect();
        assert_eq!(resumed, ["lake"]);
        assert_eq!(again.get(&d.id).unwrap().state, JobStatus::Cancelled);
        // A failed name is free again; ids keep counting.
        assert_eq!(again.add("features", "t", "topology.toml").unwrap().id, "j-000004");
    }
}
