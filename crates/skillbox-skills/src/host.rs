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
    /// Whether the host has it (for Landlock: any ABI).
    pub available: bool,
    /// What was found, by trying it.
    pub found: String,
    /// What skillbox uses it for.
    pub used_for: &'static str,
    /// How to get it (or a newer one), when it is missing or partial on this host.
    pub fix: Option<String>,
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

/// A mechanism this host lacks, what that costs, and how to get it.
#[derive(Debug, Clone, Serialize)]
pub struct HostFinding {
    /// The mechanism: `user-namespaces`, `landlock`, `seccomp`.
    pub mechanism: &'static str,
    /// What was found, and why.
    pub found: String,
    /// What falls back to a weaker mechanism, or goes unkept, without it.
    pub costs: String,
    /// How to get it on this kind of host.
    pub fix: String,
}

/// The whole host report.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The kind of host recognised: `host`, `docker`, `podman`, `kubernetes`, `wsl2`,
    /// `ubuntu-apparmor-userns`.
    pub profile: &'static str,
    /// Set when a test setting simulates an older host (`SKILLBOX_TEST_LANDLOCK_ABI`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated_host: Option<String>,
    /// What this host lacks, what it costs and the fix, one per missing mechanism.
    pub findings: Vec<HostFinding>,
    /// Mechanisms, one by one.
    pub mechanisms: Vec<HostMechanism>,
    /// Per trust level.
    pub levels: Vec<LevelReport>,
}

impl HostReport {
    /// True when a run at every trust level would start without opting into weaker
    /// isolation: every guarantee each level's grant needs has a mechanism here.
    pub fn ready(&self) -> bool {
        self.levels.iter().all(|l| l.enforcement.is_ok())
    }
}

/// Probes the host (by trying: see `skillbox_sandbox::HostSupport`) and previews a run at
/// each trust level in `workspace`.
pub fn host_report(workspace: &Path) -> HostReport {
    let h: &HostSupport = skillbox_sandbox::host();
    let profile = skillbox_sandbox::host_profile(h);
    let fix_of =
        |name: &str| profile.findings.iter().find(|f| f.mechanism == name).map(|f| f.fix.clone());
    let levels = TrustLevel::ALL
        .into_iter()
        .map(|l| LevelReport { trust_level: l, enforcement: preview_level(l, workspace) })
        .collect();
    HostReport {
        kernel: kernel_release(),
        profile: profile.name,
        simulated_host: skillbox_sandbox::simulated_host(),
        findings: profile
            .findings
            .iter()
            .map(|f| HostFinding {
                mechanism: f.mechanism,
                found: f.found.clone(),
                costs: f.costs.clone(),
                fix: f.fix.clone(),
            })
            .collect(),
        mechanisms: mechanisms(h, fix_of),
        levels,
    }
}

/// The mechanisms of `h`, one by one, with the fix of each missing one (`fix_of`).
fn mechanisms(h: &HostSupport, fix_of: impl Fn(&str) -> Option<String>) -> Vec<HostMechanism> {
    let abi = h.landlock_abi;
    let full = skillbox_sandbox::LANDLOCK_FULL_ABI;
    vec![
        HostMechanism {
            name: "landlock",
            available: abi >= 1,
            found: match (abi, h.landlock_test_cap) {
                (0, _) => "absent, disabled or refused".into(),
                (_, Some(cap)) if cap == abi => {
                    format!("ABI {abi} (capped by SKILLBOX_TEST_LANDLOCK_ABI)")
                }
                _ => format!("ABI {abi}"),
            },
            used_for: "files (ABI 1; truncation from 3), TCP ports (4), device ioctls (5), \
                       signals and abstract Unix sockets (6)",
            fix: (abi < full).then(|| fix_of("landlock")).flatten(),
        },
        HostMechanism {
            name: "seccomp",
            available: h.seccomp,
            found: if h.seccomp { "filters available".into() } else { "unavailable".into() },
            used_for: "socket families, process creation, io_uring, TIOCSTI, namespaces, \
                       keyrings, bpf, ptrace, x32; truncation below Landlock ABI 3",
            fix: fix_of("seccomp"),
        },
        HostMechanism {
            name: "user-namespaces",
            available: h.user_namespaces,
            found: match (&h.namespaces_refused, h.user_namespaces) {
                (None, _) => "a user, PID and mount namespace were made and mapped".into(),
                (Some(r), true) => format!("user and PID namespaces work; a mount namespace: {r}"),
                (Some(r), false) => format!("unavailable: {r}"),
            },
            used_for: "a PID namespace per run: nothing outlives skillbox, signals reach only \
                       the run (below Landlock ABI 6), programs may start sessions of their own",
            fix: fix_of("user-namespaces"),
        },
        HostMechanism {
            name: "mount-namespaces",
            available: h.user_namespaces && h.mount_namespaces && h.mount_api && h.own_proc,
            found: match (h.user_namespaces, h.mount_namespaces, h.mount_api, h.own_proc) {
                (false, ..) => "unavailable: no user namespaces".into(),
                (true, false, ..) => {
                    "no mount namespace can be made in a run's user namespace".into()
                }
                (true, true, true, true) => "a mount namespace per run, with open_tree, \
                                             mount_setattr and move_mount, and a procfs of \
                                             its own"
                    .into(),
                (true, true, api, proc_) => format!(
                    "a mount namespace per run; the new mount API: {}; a procfs of its own: {}",
                    if api { "works" } else { "refused" },
                    if proc_ { "works" } else { "refused (parts of /proc are masked)" }
                ),
            },
            used_for: "read-only metadata of what a run may only read (file-metadata), a /proc \
                       showing only the run's processes (process-visibility), and files where \
                       Landlock is missing",
            fix: fix_of("mount-namespaces")
                .or_else(|| (!h.user_namespaces).then(|| fix_of("user-namespaces")).flatten()),
        },
        HostMechanism {
            name: "supervisor",
            available: true,
            found: "one process per skillbox process, started when a run has no PID namespace"
                .into(),
            used_for: "without a PID namespace: killing a run's process group if skillbox dies",
            fix: None,
        },
        HostMechanism {
            name: "no_new_privs",
            available: true,
            found: "always available (Linux 3.5+)".into(),
            used_for: "no privilege gain through setuid binaries or file capabilities",
            fix: None,
        },
        HostMechanism {
            name: "capabilities",
            available: true,
            found: if h.root {
                "running as root: every capability is dropped in each child".into()
            } else {
                "running unprivileged: nothing to drop".into()
            },
            used_for: "a child started by root keeps no capability",
            fix: None,
        },
    ]
    .into_iter()
    .chain(usage_mechanisms(h))
    .collect()
}

/// The mechanisms that bound what a run uses: cgroups and the kernel's I/O counters.
fn usage_mechanisms(h: &HostSupport) -> Vec<HostMechanism> {
    let cgroup_fix = || {
        Some(
            "run as root, or have root create a cgroup for your user and delegate it (chown \
              the directory and its cgroup.procs)"
                .to_string(),
        )
    };
    let created = |yes: bool, what: &str| {
        if yes {
            format!("a {what} cgroup can be created per run")
        } else {
            format!("no writable {what} cgroup")
        }
    };
    vec![
        HostMechanism {
            name: "pids-cgroup",
            available: h.cgroup_pids,
            found: format!("layout {}; {}", h.cgroups, created(h.cgroup_pids, "pids")),
            used_for: "the process count at process_spawn `limited` (else RLIMIT_NPROC in the \
                       run's user namespace, else the watchdog)",
            fix: if h.cgroup_pids { None } else { cgroup_fix() },
        },
        HostMechanism {
            name: "memory-cgroup",
            available: h.cgroup_memory_writable,
            found: if h.cgroup_memory_writable {
                created(true, "memory")
            } else {
                "no writable memory cgroup: RLIMIT_AS per process is used instead".into()
            },
            used_for: "memory of the whole run (max_memory_mb)",
            fix: if h.cgroup_memory_writable { None } else { cgroup_fix() },
        },
        HostMechanism {
            name: "cpu-cgroup",
            available: h.cgroup_cpu,
            found: if h.cgroup_cpu {
                created(true, "cpu")
            } else {
                "no writable cpu cgroup: max_cpu_percent is a declaration".into()
            },
            used_for: "the CPU share of a run (max_cpu_percent)",
            fix: if h.cgroup_cpu { None } else { cgroup_fix() },
        },
        HostMechanism {
            name: "io-counters",
            available: h.io_counters,
            found: if h.io_counters {
                "per-process I/O counters (/proc/PID/io)".into()
            } else {
                "absent: max_disk_io_mb in total is a declaration".into()
            },
            used_for: "the total of disk writes of a run (max_disk_io_mb), by the watchdog",
            fix: if h.io_counters {
                None
            } else {
                Some("use a kernel built with CONFIG_TASK_IO_ACCOUNTING=y".into())
            },
        },
    ]
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
        allowed_domains: None,
        plain_http: false,
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
