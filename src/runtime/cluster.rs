//! A cluster of processes: who is who, and failing fast instead of hanging.
//!
//! * [`statefulset_cluster`]: in a Kubernetes StatefulSet, a pod's process
//!   index is its ordinal (`riftstream-2` → 2) and the hosts are the pods'
//!   names under the headless service, so no hostfile is needed.
//! * [`fail_fast_on_peer_loss`]: timely's network threads panic with
//!   "timely communication error" when another process goes away; the
//!   workers would then wait forever for its progress. The process exits
//!   at once instead (exit code 4) with a clear message; every job restarts
//!   from its last checkpoint when the cluster is started again.
//! * [`connect_watchdog`]: a process whose peers never connect (one failed
//!   to start) exits after `runtime.connect_timeout` instead of waiting
//!   forever after "awaiting connections".

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Exit code of a process that lost or never reached its cluster (a service unavailable).
pub const EXIT_CLUSTER: i32 = 4;

/// `(process index, hosts)` of a pod of a StatefulSet, from `HOSTNAME`
/// (`NAME-ORDINAL`), `RIFT_STATEFULSET_REPLICAS`, `RIFT_STATEFULSET_SERVICE`
/// (the headless service), `POD_NAMESPACE` and `RIFT_CLUSTER_PORT`; `None`
/// when `RIFT_STATEFULSET_REPLICAS` is unset.
pub fn statefulset_cluster(env: impl Fn(&str) -> Option<String>) -> Result<Option<(usize, Vec<String>)>, String> {
    let Some(replicas) = env("RIFT_STATEFULSET_REPLICAS") else {
        return Ok(None);
    };
    let replicas: usize = replicas
        .trim()
        .parse()
        .map_err(|_| format!("RIFT_STATEFULSET_REPLICAS={replicas}: not a number"))?;
    let host = env("HOSTNAME").ok_or("HOSTNAME is not set: cannot tell this pod's ordinal")?;
    let (set, ordinal) = host
        .rsplit_once('-')
        .and_then(|(set, n)| n.parse::<usize>().ok().map(|n| (set.to_string(), n)))
        .ok_or_else(|| format!("HOSTNAME={host}: not a StatefulSet pod name (NAME-ORDINAL)"))?;
    if ordinal >= replicas {
        return Err(format!(
            "pod {host} has ordinal {ordinal} but RIFT_STATEFULSET_REPLICAS={replicas}"
        ));
    }
    let service = env("RIFT_STATEFULSET_SERVICE").unwrap_or_else(|| set.clone());
    let port = env("RIFT_CLUSTER_PORT").unwrap_or_else(|| "2101".into());
    let domain = match env("POD_NAMESPACE") {
        Some(ns) => format!("{service}.{ns}.svc.cluster.local"),
        None => service,
    };
    let hosts = (0..replicas).map(|i| format!("{set}-{i}.{domain}:{port}")).collect();
    Ok(Some((ordinal, hosts)))
}

/// Makes a lost connection to another process end this one at once, with
/// a clear message, instead of leaving its workers waiting.
pub fn fail_fast_on_peer_loss() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("timely communication error") {
            eprintln!(
                "error: lost the connection to another process of the cluster ({message}); stopping. \
                 Start every process again: each job resumes from its last checkpoint."
            );
            crate::state::stop_background_work();
            std::process::exit(EXIT_CLUSTER);
        }
        default(info);
    }));
}

/// Exits the process (code 4) unless `formed` is raised within `timeout`.
pub fn connect_watchdog(formed: Arc<AtomicBool>, timeout: Duration, hosts: Vec<String>) {
    std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if formed.load(Ordering::SeqCst) {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
        if !formed.load(Ordering::SeqCst) {
            eprintln!(
                "error: the cluster did not form within {timeout:?}: not every process of {} connected \
                 (one may have failed to start; see its output)",
                hosts.join(", ")
            );
            crate::state::stop_background_work();
            std::process::exit(EXIT_CLUSTER);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_pod_of_a_statefulset_knows_its_index_and_its_peers() {
        let got = statefulset_cluster(env(&[
            ("RIFT_STATEFULSET_REPLICAS", "3"),
            ("HOSTNAME", "riftstream-2"),
            ("RIFT_STATEFULSET_SERVICE", "riftstream"),
            ("POD_NAMESPACE", "esports"),
            ("RIFT_CLUSTER_PORT", "2101"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(got.0, 2);
        assert_eq!(
            got.1,
            [
                "riftstream-0.riftstream.esports.svc.cluster.local:2101",
                "riftstream-1.riftstream.esports.svc.cluster.local:2101",
                "riftstream-2.riftstream.esports.svc.cluster.local:2101",
            ]
        );
        // A set name with dashes; no namespace: the service name alone.
        let got = statefulset_cluster(env(&[
            ("RIFT_STATEFULSET_REPLICAS", "2"),
            ("HOSTNAME", "rift-stream-0"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            got,
            (
                0,
                vec![
                    "rift-stream-0.rift-stream:2101".into(),
                    "rift-stream-1.rift-stream:2101".into()
                ]
            )
        );
        assert_eq!(statefulset_cluster(env(&[("HOSTNAME", "riftstream-0")])).unwrap(), None);
        for bad in [
            env(&[("RIFT_STATEFULSET_REPLICAS", "2"), ("HOSTNAME", "riftstream-2")]),
            env(&[("RIFT_STATEFULSET_REPLICAS", "2"), ("HOSTNAME", "laptop")]),
            env(&[("RIFT_STATEFULSET_REPLICAS", "two"), ("HOSTNAME", "riftstream-0")]),
            env(&[("RIFT_STATEFULSET_REPLICAS", "2")]),
        ] {
            assert!(statefulset_cluster(bad).is_err());
        }
    }
}
