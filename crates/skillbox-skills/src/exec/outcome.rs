//! What a finished child means as a result: its status, the limit that stopped it, its exit
//! code or signal, and the one-line message for people.
//!
//! The decisions take the sandbox's plain values ([`ExitStatus`], [`Limit`]) rather than a
//! whole outcome, so that each can be checked on its own.

use skillbox_sandbox::{ChildOutcome, Enforcement, ExitStatus, Guarantee, Limit, SandboxError};

use crate::result::{LimitKind, SkillResult, Status, Usage};
use crate::security::{EffectiveGrant, ResourceLimits, TrustLevel};

/// Fills `result` from the outcome of a child of the skill `name` that ran under `grant` at
/// `level`: report, usage, output, the confinement hint, then the status.
pub(super) fn apply(
    result: &mut SkillResult,
    outcome: &ChildOutcome,
    name: &str,
    grant: &EffectiveGrant,
    level: TrustLevel,
) {
    result.enforcement = super::policy::enforcement_entries(&outcome.enforcement);
    result.usage = Some(Usage {
        wall_ms: outcome.wall_time.as_millis().try_into().unwrap_or(u64::MAX),
        cpu_ms: outcome.cpu_time.as_millis().try_into().unwrap_or(u64::MAX),
        max_rss_kib: outcome.max_rss_kib,
        processes_peak: outcome.processes_peak,
        bytes_written: outcome.bytes_written,
    });
    result.stdout = outcome.stdout.to_text();
    result.stderr = outcome.stderr.to_text();
    result.stdout_truncated = outcome.stdout.truncated();
    result.stderr_truncated = outcome.stderr.truncated();
    result.confinement = super::hint::confinement_hint(outcome.status, &result.stderr, grant);
    result.planted = crate::result::PlantedReport::of(&outcome.planted, name);
    let limit = outcome.limit.or_else(|| {
        memory_error(memory_by_rlimit(&outcome.enforcement), outcome.status, &result.stderr)
    });
    match limit {
        Some(which) => stopped_by_limit(result, which, outcome.status, name, &grant.limits, level),
        None => ended(result, outcome.status, name, &grant.limits, level),
    }
}

/// A child the sandbox did not run: a policy it cannot express is a refusal (`denied`), any
/// other failure an `error`; the message is the sandbox's.
pub(super) fn not_run(result: &mut SkillResult, e: &SandboxError) {
    match e {
        SandboxError::Policy(_) => result.status = Status::Denied,
        SandboxError::Unsupported { missing, .. } => {
            result.unsupported = missing.iter().map(|g| g.as_str().to_string()).collect();
        }
        _ => {}
    }
    result.message = Some(e.to_string());
}

/// A child stopped by `which`: status `limit_exceeded`, the limit's kind, and what it was.
pub(super) fn stopped_by_limit(
    result: &mut SkillResult,
    which: Limit,
    status: ExitStatus,
    name: &str,
    limits: &ResourceLimits,
    level: TrustLevel,
) {
    result.status = Status::LimitExceeded;
    result.exit_code = match status {
        ExitStatus::Exited(c) => Some(c),
        _ => None,
    };
    result.signal = match status {
        ExitStatus::Signaled(s) => Some(s),
        _ => None,
    };
    let (kind, what) = limit_kind(which, limits);
    result.limit = Some(kind);
    if which == Limit::DiskWriteUnreadable {
        // Stopped by the watchdog without the total being over: a process of the run whose
        // counters could not be read (see skillbox_sandbox's disk-writes).
        result.message = Some(format!(
            "skill `{name}` was stopped because skillbox could not read the write counters of \
             one of its processes, so its total disk writes limit ({} MiB) could not be \
             enforced",
            limits.max_disk_io_mb
        ));
    } else {
        result.message = Some(format!(
            "skill `{name}` exceeded its {what} limit at trust level {level} and was stopped"
        ));
    }
}

/// The kind a result reports for the sandbox's `which`, and the limit in words.
fn limit_kind(which: Limit, l: &ResourceLimits) -> (LimitKind, String) {
    match which {
        Limit::Memory => (LimitKind::Memory, format!("memory ({} MiB)", l.max_memory_mb)),
        Limit::Cpu => (LimitKind::Cpu, format!("CPU time ({} s)", l.max_execution_time.as_secs())),
        Limit::FileSize => (LimitKind::FileSize, format!("file size ({} MiB)", l.max_disk_io_mb)),
        Limit::Processes => (LimitKind::Processes, format!("process count ({})", l.max_processes)),
        other => (
            LimitKind::DiskWrite,
            if other == Limit::DiskWrite {
                format!("total disk writes ({} MiB)", l.max_disk_io_mb)
            } else {
                other.as_str().to_string()
            },
        ),
    }
}

/// A child that ended by itself, was killed by a signal, or timed out.
pub(super) fn ended(
    result: &mut SkillResult,
    status: ExitStatus,
    name: &str,
    limits: &ResourceLimits,
    level: TrustLevel,
) {
    match status {
        ExitStatus::Exited(0) => {
            result.status = Status::Success;
            result.exit_code = Some(0);
        }
        ExitStatus::Exited(code) => {
            result.status = Status::Failed;
            result.exit_code = Some(code);
            result.message = Some(format!("skill `{name}` exited with code {code}"));
        }
        ExitStatus::Signaled(sig) => {
            result.status = Status::Failed;
            result.signal = Some(sig);
            result.message = Some(format!("skill `{name}` was killed by signal {sig}"));
        }
        ExitStatus::TimedOut => {
            result.status = Status::Timeout;
            result.message = Some(format!(
                "skill `{name}` timed out after {:.1} s (its limit at trust level {level}); all \
                 its processes were killed",
                limits.max_execution_time.as_secs_f64(),
            ));
        }
    }
}

/// Whether the run's memory was limited with `RLIMIT_AS` (no memory cgroup).
fn memory_by_rlimit(e: &Enforcement) -> bool {
    e.line(Guarantee::Memory).is_some_and(|m| m.detail.starts_with("RLIMIT_AS"))
}

/// Under `RLIMIT_AS` (no memory cgroup), an allocation beyond the limit fails inside the
/// program instead of a kill: recognise the usual messages of a failed allocation in the
/// stderr of a run that failed.
pub(super) fn memory_error(by_rlimit: bool, status: ExitStatus, stderr: &str) -> Option<Limit> {
    if !by_rlimit || matches!(status, ExitStatus::Exited(0)) {
        return None;
    }
    ["MemoryError", "Cannot allocate memory", "out of memory", "bad_alloc", "failed to allocate"]
        .iter()
        .any(|p| stderr.contains(p))
        .then_some(Limit::Memory)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::security::SecurityContext;

    fn limits() -> ResourceLimits {
        let mut l = SecurityContext::for_trust_level(TrustLevel::UserVerified, "/").resource_limits;
        l.max_execution_time = Duration::from_millis(2500);
        l
    }

    fn fresh() -> SkillResult {
        SkillResult::new(Status::Error, "s", "id".into())
    }

    #[test]
    fn a_child_that_ended_is_success_failed_or_timeout() {
        let level = TrustLevel::UserVerified;
        let cases = [
            (ExitStatus::Exited(0), Status::Success, Some(0), None, None),
            (
                ExitStatus::Exited(3),
                Status::Failed,
                Some(3),
                None,
                Some("skill `s` exited with code 3"),
            ),
            (
                ExitStatus::Signaled(9),
                Status::Failed,
                None,
                Some(9),
                Some("skill `s` was killed by signal 9"),
            ),
            (
                ExitStatus::TimedOut,
                Status::Timeout,
                None,
                None,
                Some(
                    "skill `s` timed out after 2.5 s (its limit at trust level user-verified); \
                     all its processes were killed",
                ),
            ),
        ];
        for (status, want, code, signal, message) in cases {
            let mut r = fresh();
            ended(&mut r, status, "s", &limits(), level);
            assert_eq!(r.status, want, "{status:?}");
            assert_eq!((r.exit_code, r.signal), (code, signal), "{status:?}");
            assert_eq!(r.message.as_deref(), message, "{status:?}");
            assert_eq!(r.limit, None);
        }
    }

    #[test]
    fn each_limit_is_reported_with_its_kind_and_size() {
        let l = limits();
        let level = TrustLevel::UserVerified;
        let over = |what: &str| {
            format!(
                "skill `s` exceeded its {what} limit at trust level user-verified and was stopped"
            )
        };
        let cases = [
            (Limit::Memory, LimitKind::Memory, over("memory (256 MiB)")),
            (Limit::Cpu, LimitKind::Cpu, over("CPU time (2 s)")),
            (Limit::FileSize, LimitKind::FileSize, over("file size (100 MiB)")),
            (Limit::DiskWrite, LimitKind::DiskWrite, over("total disk writes (100 MiB)")),
            (
                Limit::DiskWriteUnreadable,
                LimitKind::DiskWrite,
                "skill `s` was stopped because skillbox could not read the write counters of one \
                 of its processes, so its total disk writes limit (100 MiB) could not be enforced"
                    .to_string(),
            ),
        ];
        for (which, kind, message) in cases {
            for (status, code, signal) in [
                (ExitStatus::Signaled(9), None, Some(9)),
                (ExitStatus::Exited(1), Some(1), None),
                (ExitStatus::TimedOut, None, None),
            ] {
                let mut r = fresh();
                stopped_by_limit(&mut r, which, status, "s", &l, level);
                assert_eq!(r.status, Status::LimitExceeded);
                assert_eq!(r.limit, Some(kind), "{which:?}");
                assert_eq!(r.message.as_deref(), Some(message.as_str()), "{which:?}");
                assert_eq!((r.exit_code, r.signal), (code, signal), "{which:?} {status:?}");
            }
        }
    }

    #[test]
    fn a_failed_allocation_under_rlimit_as_is_the_memory_limit() {
        let failed = ExitStatus::Exited(1);
        assert_eq!(memory_error(true, failed, "MemoryError\n"), Some(Limit::Memory));
        assert_eq!(memory_error(true, failed, "x: Cannot allocate memory"), Some(Limit::Memory));
        assert_eq!(
            memory_error(true, ExitStatus::Signaled(6), "std::bad_alloc"),
            Some(Limit::Memory)
        );
        assert_eq!(memory_error(true, failed, "some other error"), None);
        assert_eq!(memory_error(true, ExitStatus::Exited(0), "MemoryError"), None, "succeeded");
        assert_eq!(memory_error(false, failed, "MemoryError"), None, "a cgroup would have killed");
    }

    #[test]
    fn a_policy_the_sandbox_cannot_express_is_a_denial_other_failures_an_error() {
        let mut r = fresh();
        not_run(&mut r, &SandboxError::Policy("a link in the path".into()));
        assert_eq!(r.status, Status::Denied);
        assert_eq!(r.message.as_deref(), Some("cannot confine the child: a link in the path"));
        let mut r = fresh();
        not_run(&mut r, &SandboxError::InvalidSpec("NUL byte".into()));
        assert_eq!(r.status, Status::Error);
        assert_eq!(r.message.as_deref(), Some("invalid child spec: NUL byte"));
    }
}
