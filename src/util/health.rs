//! Per-job health on one worker, shared by the job's operators: transient
//! failures are logged (rate-limited) and retried by whoever met them; the
//! first non-retryable failure marks the job failed, and the runtime drops
//! it on every worker.

use crate::error::RiftError;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Health of one job on one worker, shared by its operators.
#[derive(Clone, Default)]
pub struct JobHealth(Rc<RefCell<HealthState>>);

#[derive(Default)]
struct HealthState {
    fatal: Option<String>,
    transient: u64,
    last_logged: Option<Instant>,
}

impl JobHealth {
    /// Reports a failure met by `component`: retryable ones are logged (at
    /// most every few seconds), others fail the job.
    pub fn report(&self, component: &str, error: RiftError) {
        let mut s = self.0.borrow_mut();
        if error.is_retryable() {
            s.transient += 1;
            if s.last_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                tracing::warn!(component, %error, retries = s.transient, "transient failure, retrying");
                s.last_logged = Some(Instant::now());
            }
        } else if s.fatal.is_none() {
            tracing::error!(component, %error, "job failed");
            s.fatal = Some(format!("{component}: {error}"));
        }
    }

    /// The failure that stopped the job, if any.
    pub fn fatal(&self) -> Option<String> {
        self.0.borrow().fatal.clone()
    }
}
