//! Refusals made before any skill is looked up (a bad or unknown name, unreadable
//! parameters), recorded in the audit log, at a bounded rate.
//!
//! A prompt-injected model probing for tools sends names, not runs: each probe is refused
//! before anything starts, and each must leave a trace. But an agent in a loop can send
//! thousands a second, and each event costs a line of the log; so at most [`BURST`] such
//! events are written per [`WINDOW`], and the ones beyond are counted. The count is written
//! with the next event that is recorded (`suppressed_before`), and, when the runtime is
//! dropped with a count left, in a summary event of its own. Nothing is dropped without
//! being counted, and a refusal never waits for the log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use skillbox_audit::AuditLog;

/// Length of one rate window.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);
/// Events written per window; the rest are counted.
pub(crate) const BURST: u32 = 20;

/// The rate limiter and the log, shared by a runtime and the runtimes reloaded from it.
pub(crate) struct Refusals {
    log: Arc<AuditLog>,
    state: Mutex<State>,
}

struct State {
    window_start: Instant,
    written: u32,
    suppressed: u64,
}

impl Refusals {
    pub(crate) fn new(log: Arc<AuditLog>) -> Self {
        Self {
            log,
            state: Mutex::new(State { window_start: Instant::now(), written: 0, suppressed: 0 }),
        }
    }

    /// Records the refusal of `name` (shown escaped and cut when it is not a valid name)
    /// with `message`; returns the audit error, if the log refused the event. An event
    /// over the rate is counted, not written.
    pub(crate) fn record(&self, name: &str, message: &str, params: &Value) -> Option<String> {
        let suppressed = {
            let mut s = match self.state.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if s.window_start.elapsed() >= WINDOW {
                s.window_start = Instant::now();
                s.written = 0;
            }
            if s.written >= BURST {
                s.suppressed += 1;
                return None;
            }
            s.written += 1;
            std::mem::take(&mut s.suppressed)
        };
        let mut event = event(name, message, params);
        if suppressed > 0 {
            event.details["suppressed_before"] = suppressed.into();
        }
        crate::audit::write(&self.log, &[event])
    }
}

/// A refusal made before any skill is looked up, where there is no runtime (a name the CLI
/// refuses before opening a workspace): recorded in `log` like `Refusals::record` does,
/// without a rate (one such refusal per process), and returned as the result to report.
pub fn refused_before_lookup(
    log: &AuditLog,
    name: &str,
    status: crate::Status,
    message: String,
    params: &Value,
) -> crate::SkillResult {
    let mut r = crate::SkillResult::refused(status, result_name(name), message.clone());
    r.audit_error = crate::audit::write(log, &[event(name, &message, params)]);
    r
}

/// The event of a refusal of `name`: named as given when it is a valid skill name, else
/// escaped and cut (it is input, possibly megabytes of it).
fn event(name: &str, message: &str, params: &Value) -> skillbox_audit::EventDraft {
    let shown = match crate::name::check_name(name) {
        Ok(()) => name.to_string(),
        Err(_) => crate::name::quote(name),
    };
    crate::audit::lookup_failed(&shown, message, params)
}

/// The skill name a refusal's result carries: none for a name that is not valid.
pub(crate) fn result_name(name: &str) -> &str {
    if crate::name::check_name(name).is_ok() {
        name
    } else {
        ""
    }
}

impl Drop for Refusals {
    fn drop(&mut self) {
        let suppressed = match self.state.get_mut() {
            Ok(s) => s.suppressed,
            Err(mut p) => p.get_mut().suppressed,
        };
        if suppressed > 0 {
            let event = crate::audit::refusals_suppressed(suppressed);
            // Nowhere to report a failure to: the runtime is going away.
            let _ = crate::audit::write(&self.log, &[event]);
        }
    }
}
