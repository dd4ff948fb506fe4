//! What this host can enforce, per trust level: the data behind `skillbox doctor`.

use std::path::Path;

use serde::Serialize;
use skillbox_sandbox::HostSupport;

use crate::result::EnforcementEntry;
use crate::security::{EffectiveGrant, FileScope, SecurityContext, TrustLevel};

/// One mechanism of the host, with what it is used for and how to get it.
#[derive(Debug, Clone, Serialize)]
pub struct HostMechanism {
    /// Name, e.g. `landlock`.
    pub name: &'static str,
    /// Whether the host has it in the form skillbox needs.
    pub available: bool,
    /// What was found.
    pub found: String,
    /// What skillbox uses it for.
    pub used_for: &'static str,
    /// Whether runs are refused without it (unless a person opts into weaker isolation).
    pub required: bool,
    /// How to get it, when missing.
    pub fix: Option<&'static str>,
}

/// What a trust level gets on this host.
#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    /// The level.
    pub trust_level: TrustLevel,
    /// The enforcement report of a run that uses everything the level allows, or the reason
    /// such a run would be refused.
    pub enforcement: Result<Vec<EnforcementEntry>, String>,
}

/// The whole host report.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// Mechanisms, one by one.
    pub mechanisms: Vec<HostMechanism>,
    /// Per trust level.
    pub levels: Vec<LevelReport>,
}

impl HostReport {
    /// True when every required mechanism is available.
    pub fn ready(&self) -> bool {
        self.mechanisms.iter().all(|m| m.available || !m.required)
    }
}

/// Probes the host and previews a run at each trust level in `workspace`.
pub fn host_report(workspace: &Path) -> HostReport {
    let h: &HostSupport = skillbox_sandbox::host();
    let abi = h.landlock_abi;
    let need = skillbox_sandbox::LANDLOCK_REQUIRED_ABI;
    let mechanisms = vec![
        HostMechanism {
            name: "landlock",
            available: abi >= need,
            found: if abi == 0 { "absent or disabled".into() } else { format!("ABI {abi} (needs {need})") },
            used_for: "files, TCP ports, signals and abstract Unix sockets",
            required: true,
            fix: Some("use Linux 6.12 or later with CONFIG_SECURITY_LANDLOCK=y and `landlock` in the lsm= boot parameter (check /sys/kernel/security/lsm)"),
        },
        HostMechanism {
            name: "seccomp",
            available: h.seccomp,
            found: if h.seccomp { "filters available".into() } else { "unavailable".into() },
            used_for: "socket families, process creation, io_uring, TIOCSTI, namespaces, keyrings, bpf, ptrace, x32",
            required: true,
            fix: Some("use a kernel built with CONFIG_SECCOMP_FILTER=y"),
        },
        HostMechanism {
            name: "no_new_privs",
            available: true,
            found: "always available (Linux 3.5+)".into(),
            used_for: "no privilege gain through setuid binaries or file capabilities",
            required: true,
            fix: None,
        },
        HostMechanism {
            name: "capabilities",
            available: true,
            found: if h.root { "running as root: every capability is dropped in each child".into() } else { "running unprivileged: nothing to drop".into() },
            used_for: "a child started by root keeps no capability",
            required: true,
            fix: None,
        },
        HostMechanism {
            name: "user-namespaces",
            available: h.user_namespaces,
            found: if h.user_namespaces { "unprivileged user namespaces allowed".into() } else { "not allowed".into() },
            used_for: "a PID namespace per run, so that nothing of a run survives skillbox being killed (tree-kill)",
            required: false,
            fix: None,
        },
        HostMechanism {
            name: "pids-cgroup",
            available: h.cgroup_pids,
            found: format!(
                "layout {}; {}",
                h.cgroups,
                if h.cgroup_pids { "a pids cgroup can be created per run" } else { "no writable pids cgroup" }
            ),
            used_for: "the process count of a run at process_spawn `limited` (fork bombs)",
            required: false,
            fix: Some("run as root, or have root create a cgroup for your user and delegate it (chown the directory and its cgroup.procs)"),
        },
        HostMechanism {
            name: "memory-cgroup",
            available: h.cgroup_memory_writable,
            found: if h.cgroup_memory_writable { "a memory cgroup can be created per run".into() } else { "no writable memory cgroup: RLIMIT_AS per process is used instead".into() },
            used_for: "memory of the whole run (max_memory_mb)",
            required: false,
            fix: Some("run as root, or have root create a cgroup for your user and delegate it"),
        },
        HostMechanism {
            name: "cpu-cgroup",
            available: h.cgroup_cpu,
            found: if h.cgroup_cpu { "a cpu cgroup can be created per run".into() } else { "no writable cpu cgroup: max_cpu_percent is not enforced".into() },
            used_for: "the CPU share of a run (max_cpu_percent)",
            required: false,
            fix: Some("run as root, or have root create a cgroup for your user and delegate it"),
        },
    ];
    let levels = TrustLevel::ALL
        .into_iter()
        .map(|l| LevelReport { trust_level: l, enforcement: preview_level(l, workspace) })
        .collect();
    HostReport { kernel: kernel_release(), mechanisms, levels }
}

/// The enforcement report of a run that uses everything `level` allows.
fn preview_level(level: TrustLevel, workspace: &Path) -> Result<Vec<EnforcementEntry>, String> {
    let ctx = SecurityContext::for_trust_level(level, workspace);
    // The mechanisms, not the extent, are what the preview reports: a level that may
    // declare anything is previewed on the workspace (a write grant of `/` would be walked
    // for protected entries to the end of the disk, and refused as too large to examine).
    let scope = |s: &[FileScope]| {
        if s.contains(&FileScope::Everything) || s.contains(&FileScope::Workspace) {
            vec![std::path::PathBuf::from(workspace)]
        } else {
            vec![]
        }
    };
    let grant = EffectiveGrant {
        file_read: scope(&ctx.permissions.file_read),
        file_write: scope(&ctx.permissions.file_write),
        network: ctx.permissions.network_access,
        process_spawn: ctx.permissions.process_spawn,
        limits: ctx.resource_limits.clone(),
        hidden: crate::protect::hidden(&ctx.reserved, &ctx.homes, &[workspace.to_path_buf()])
            .into_iter()
            .map(|h| h.path)
            .collect(),
    };
    crate::exec::preview(&grant, workspace, false)
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
