//! `riftstream checkpoints list`: the checkpoints of every job in a state directory.

use super::load_topology;
use crate::state::checkpoint::list_checkpoints;
use std::path::{Path, PathBuf};

/// Prints, per job: the latest complete checkpoint, the ones kept (id,
/// time, size), and the sources' positions in the latest.
pub fn list(state: Option<PathBuf>, topology: &Path, json: bool) -> anyhow::Result<()> {
    let dir = match state {
        Some(dir) => dir,
        None => PathBuf::from(&load_topology(topology)?.runtime.state_dir),
    };
    let jobs = list_checkpoints(&dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("no checkpoints under {}", dir.display());
    }
    for job in jobs {
        match job.latest {
            Some(n) => println!("job {}: latest complete checkpoint {n}", job.job),
            None => println!("job {}: no complete checkpoint", job.job),
        }
        println!(
            "  {:>22}  {:<24} {:>12} {:>9}",
            "checkpoint", "completed (UTC)", "bytes", "entries"
        );
        for c in job.history.iter().rev() {
            let when = chrono::DateTime::from_timestamp_millis(c.completed_at)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                .unwrap_or_default();
            println!("  {:>22}  {:<24} {:>12} {:>9}", c.epoch, when, c.bytes, c.entries);
        }
        for (source, partition, next) in &job.positions {
            println!("  source {source} partition {partition}: next offset {next}");
        }
    }
    Ok(())
}
