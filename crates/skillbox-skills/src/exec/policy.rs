//! The kernel policy for a grant, the result's entries of the sandbox's report, and the
//! preview of what a run would enforce.

use std::path::{Path, PathBuf};

use skillbox_sandbox::{
    ChildSpec, Enforcement, MechanismState, NetworkAccess, Policy, ProcessAccess, Rlimits,
};

use crate::format::{NetworkLevel, ProcessSpawn};
use crate::result::EnforcementEntry;
use crate::security::EffectiveGrant;

/// Converts the sandbox report into result entries.
pub fn enforcement_entries(e: &Enforcement) -> Vec<EnforcementEntry> {
    e.mechanisms
        .iter()
        .map(|m| EnforcementEntry {
            mechanism: m.name,
            enforced: m.state == MechanismState::Enforced,
            state: m.state,
            via: m.via_str(),
            detail: m.detail.clone(),
        })
        .collect()
}

/// The kernel policy for a grant: the grant's paths, the run's private directory
/// (`scratch`), the protected entries and where what a run plants under their names goes
/// (`quarantine`), network and process rights, and rlimits from the limits.
///
/// Memory is a memory cgroup where the sandbox can create one, else `RLIMIT_AS` (see
/// `skillbox_sandbox::Rlimits::memory`).
pub(super) fn policy_for(
    grant: &EffectiveGrant,
    scratch: &Path,
    workspace: &Path,
    quarantine: Option<PathBuf>,
) -> Policy {
    let write = grant.file_write.clone();
    let read = grant.file_read.clone();
    let limits = &grant.limits;
    Policy {
        confine_files: true,
        read,
        write,
        protected: crate::protect::protected_names(),
        hidden: grant.hidden.clone(),
        scratch: vec![scratch.to_path_buf()],
        guarded: vec![workspace.to_path_buf()],
        quarantine,
        pid_namespace: true,
        network: match grant.network {
            NetworkLevel::None => NetworkAccess::None,
            // Below `full`, the run's own network namespace, whose one way out is the
            // egress proxy (`super::egress`).
            NetworkLevel::HttpsOnly => NetworkAccess::Loopback { port: super::egress::PROXY_PORT },
            NetworkLevel::Full => NetworkAccess::Full,
        },
        processes: match grant.process_spawn {
            ProcessSpawn::None => ProcessAccess::None,
            ProcessSpawn::Limited => ProcessAccess::Limited,
            ProcessSpawn::Full => ProcessAccess::Full,
        },
        rlimits: Rlimits {
            open_files: Some(limits.max_open_files),
            file_size: Some(limits.max_disk_io_mb.saturating_mul(1024 * 1024)),
            disk_write_bytes: Some(limits.max_disk_io_mb.saturating_mul(1024 * 1024)),
            cpu_seconds: Some(limits.max_execution_time.as_secs_f64().ceil() as u64),
            processes: Some(limits.max_processes),
            address_space: None,
            memory: Some(limits.max_memory_mb.saturating_mul(1024 * 1024)),
            cpu_percent: Some(limits.max_cpu_percent),
        },
    }
}

/// The enforcement report of a run under `grant` in `workspace`, without running it (what
/// `skillbox info` and `skillbox doctor` show), or the message a run would fail with.
///
/// Creates no private directory: the policy names a placeholder that does not exist (see
/// [`preview_scratch`]).
pub(crate) fn preview(
    grant: &EffectiveGrant,
    workspace: &Path,
    allow_weaker: bool,
) -> Result<Vec<EnforcementEntry>, String> {
    let mut spec = ChildSpec::new("/bin/true", workspace);
    spec.policy = policy_for(grant, &preview_scratch(), workspace, None);
    spec.allow_weaker = allow_weaker;
    skillbox_sandbox::preview(&spec).map(|e| enforcement_entries(&e)).map_err(|e| e.to_string())
}

/// The private directory a preview's policy names: a path in the temp directory that is
/// never created.
///
/// A preview builds the run's Landlock ruleset and seccomp program only to learn what the
/// host enforces; nothing is confined by them and no process starts. The report's lines do
/// not depend on the private directory, and a path that does not exist grants nothing, so
/// it need not exist; `info` and `doctor` then leave nothing behind (making and removing a
/// real one also cost three `mkdir` and three `rmdir` per preview). The name ends in a
/// random id, so that no one can have put a link there for the preview to trip on.
fn preview_scratch() -> PathBuf {
    let id = crate::result::new_execution_id();
    std::env::temp_dir().join(format!("skillbox-preview-{id}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::exec::testing::{def, granted, workspace};
    use crate::security::TrustLevel;

    #[test]
    fn the_policy_carries_the_grant_and_the_limits() {
        let (_w, ws) = workspace();
        std::fs::create_dir(ws.join("out")).expect("mkdir");
        let d = def(json!({"name": "s", "type": "command", "command": "true",
            "security": {"permissions": {"file_write": ["out"], "network_access": true}}}));
        let scratch = Path::new("/run/private");
        let proxied = NetworkAccess::Loopback { port: crate::exec::egress::PROXY_PORT };
        for (level, network, processes) in [
            (TrustLevel::UserVerified, proxied, ProcessAccess::Limited),
            (TrustLevel::SystemTrusted, proxied, ProcessAccess::Full),
        ] {
            let (_, grant) = granted(level, &ws, &d);
            let p = policy_for(&grant, scratch, &ws, Some(PathBuf::from("/q/id")));
            assert!(p.confine_files && p.pid_namespace);
            assert_eq!((p.network, p.processes), (network, processes), "{level}");
            assert_eq!(p.write, vec![ws.join("out")]);
            assert_eq!(p.scratch, vec![scratch.to_path_buf()]);
            assert_eq!(p.guarded, vec![ws.clone()]);
            assert_eq!(p.quarantine, Some(PathBuf::from("/q/id")));
            let l = &grant.limits;
            assert_eq!(p.rlimits.memory, Some(l.max_memory_mb * 1024 * 1024));
            assert_eq!(p.rlimits.file_size, Some(l.max_disk_io_mb * 1024 * 1024));
            assert_eq!(p.rlimits.disk_write_bytes, p.rlimits.file_size);
            assert_eq!(p.rlimits.processes, Some(l.max_processes));
            assert_eq!(p.rlimits.cpu_seconds, Some(l.max_execution_time.as_secs()));
            assert_eq!(p.rlimits.address_space, None, "a cgroup or RLIMIT_AS, the sandbox's call");
        }
    }

    #[test]
    fn a_preview_names_a_private_directory_that_does_not_exist() {
        let (a, b) = (preview_scratch(), preview_scratch());
        assert_ne!(a, b);
        for p in [a, b] {
            assert!(p.starts_with(std::env::temp_dir()), "{p:?}");
            assert!(std::fs::symlink_metadata(&p).is_err(), "{p:?} exists");
        }
    }
}
