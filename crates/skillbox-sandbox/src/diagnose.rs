//! What kind of host this is, as far as confinement goes, and what would give it the
//! mechanisms it lacks: the words behind `skillbox doctor` and behind every refusal's fix.
//!
//! The facts come from [`HostSupport`] (found by trying) and from a few files that say why a
//! trial failed: the sysctls that restrict user namespaces, the marks a container runtime
//! leaves (`/.dockerenv`, `/run/.containerenv`, the `container` variable of PID 1's
//! environment as systemd documents it), the kernel release (WSL2's names `microsoft`),
//! and the active security modules (`/sys/kernel/security/lsm`). Nothing here changes what a
//! run gets: the plan decides on the trial results alone.

use crate::probe::HostSupport;
use crate::report::Guarantee;

/// The shipped AppArmor profile's install commands, from a checkout of the repository.
pub const APPARMOR_INSTALL: &str = "sudo install -m 0644 contrib/apparmor/skillbox \
     /etc/apparmor.d/skillbox && sudo apparmor_parser -r /etc/apparmor.d/skillbox";

/// One thing this host lacks, with what it costs and how to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The mechanism: `user-namespaces`, `mount-namespaces`, `landlock`, `seccomp`.
    pub mechanism: &'static str,
    /// What was found, and why (the profile recognised).
    pub found: String,
    /// The guarantees that fall back to a weaker mechanism or go unkept without it.
    pub costs: String,
    /// How to get it on this kind of host.
    pub fix: String,
}

/// The kind of host, as recognised: a container runtime, WSL2, or a plain kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProfile {
    /// A short name (`docker`, `podman`, `kubernetes`, `wsl2`, `ubuntu-apparmor-userns`,
    /// `host`).
    pub name: &'static str,
    /// The findings, one per missing mechanism.
    pub findings: Vec<Finding>,
}

/// Recognises `host` and says what each missing mechanism costs and how to get it.
pub fn profile(host: &HostSupport) -> HostProfile {
    let facts = Facts::read();
    let mut findings = Vec::new();
    if !host.user_namespaces {
        findings.push(user_namespaces(host, &facts));
    } else if !(host.mount_namespaces && host.mount_api && host.own_proc) {
        findings.push(mount_namespaces(host, &facts));
    }
    if host.landlock_abi < 6 {
        findings.push(landlock(host, &facts));
    }
    if !host.seccomp {
        findings.push(Finding {
            mechanism: "seccomp",
            found: "this kernel cannot install seccomp filters".into(),
            costs: "side-doors, network, processes and the tree-kill fallback".into(),
            fix: "use a kernel built with CONFIG_SECCOMP_FILTER=y".into(),
        });
    }
    HostProfile { name: facts.name(), findings }
}

/// The fix for a run refused because `missing` have no mechanism on `host`: the fixes of
/// the findings that would give them, then the opt-out.
pub(crate) fn fix_for(missing: &[Guarantee], host: &HostSupport) -> String {
    let profile = profile(host);
    let mut fixes: Vec<String> = Vec::new();
    for f in &profile.findings {
        let helps = match f.mechanism {
            "user-namespaces" => missing.iter().any(|g| {
                matches!(
                    g,
                    Guarantee::Ipc
                        | Guarantee::TreeKill
                        | Guarantee::Processes
                        | Guarantee::FileMetadata
                        | Guarantee::ProcessVisibility
                )
            }),
            "mount-namespaces" => missing.iter().any(|g| {
                matches!(
                    g,
                    Guarantee::Filesystem | Guarantee::FileMetadata | Guarantee::ProcessVisibility
                )
            }),
            "landlock" => missing.iter().any(|g| {
                matches!(
                    g,
                    Guarantee::Filesystem
                        | Guarantee::Network
                        | Guarantee::Ipc
                        | Guarantee::TreeKill
                )
            }),
            _ => true,
        };
        if helps && !fixes.contains(&f.fix) {
            fixes.push(f.fix.clone());
        }
    }
    fixes.push("or opt into weaker isolation for this run (it is recorded)".into());
    fixes.join("; ")
}

/// The files that tell why a mechanism is missing.
struct Facts {
    /// `kernel.apparmor_restrict_unprivileged_userns` is 1 (Ubuntu 23.10 and later).
    apparmor_userns: bool,
    /// `kernel.unprivileged_userns_clone` is 0 (Debian's and Ubuntu's older switch).
    userns_clone_off: bool,
    /// `user.max_user_namespaces` is 0.
    max_userns_zero: bool,
    /// The container runtime that left its mark, if any.
    container: Option<&'static str>,
    /// The kernel is WSL2's.
    wsl: bool,
    /// `landlock` is among the active security modules (`None`: the list is unreadable).
    lsm_has_landlock: Option<bool>,
}

impl Facts {
    fn read() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
        let release = read("/proc/sys/kernel/osrelease").unwrap_or_default().to_lowercase();
        let container = if std::path::Path::new("/.dockerenv").exists() {
            Some("docker")
        } else if std::path::Path::new("/run/.containerenv").exists() {
            Some("podman")
        } else if std::path::Path::new("/var/run/secrets/kubernetes.io").exists() {
            Some("kubernetes")
        } else {
            match std::env::var("container").ok().as_deref() {
                Some("podman") => Some("podman"),
                Some("docker") => Some("docker"),
                Some(_) => Some("container"),
                None => None,
            }
        };
        Facts {
            apparmor_userns: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                .as_deref()
                == Some("1"),
            userns_clone_off: read("/proc/sys/kernel/unprivileged_userns_clone").as_deref()
                == Some("0"),
            max_userns_zero: read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0"),
            container,
            wsl: release.contains("microsoft") || release.contains("wsl"),
            lsm_has_landlock: read("/sys/kernel/security/lsm")
                .map(|l| l.split(',').any(|m| m == "landlock")),
        }
    }

    fn name(&self) -> &'static str {
        match (self.container, self.wsl, self.apparmor_userns) {
            (Some(c), _, _) => c,
            (None, true, _) => "wsl2",
            (None, false, true) => "ubuntu-apparmor-userns",
            _ => "host",
        }
    }
}

/// Why user namespaces are missing here, and how to get them.
fn user_namespaces(host: &HostSupport, facts: &Facts) -> Finding {
    let refused = host.namespaces_refused.map(|r| r.to_string()).unwrap_or_default();
    let (found, fix) = match facts.container {
        Some("kubernetes") => (
            format!("a Kubernetes pod whose seccomp or AppArmor profile refuses user namespaces ({refused})"),
            "give the pod a seccomp profile that allows clone with CLONE_NEWUSER (or \
             `securityContext.seccompProfile.type: Unconfined`), or run skillbox on the node"
                .to_string(),
        ),
        Some(runtime @ ("docker" | "podman" | "container")) => (
            format!("a {runtime} container whose default seccomp profile refuses user namespaces ({refused})"),
            format!(
                "start the container with a seccomp profile that allows user namespaces \
                 (`{} run --security-opt seccomp=unconfined`, or a copy of the default profile \
                 allowing clone, unshare and clone3 with CLONE_NEWUSER)",
                if runtime == "podman" { "podman" } else { "docker" }
            ),
        ),
        _ if facts.apparmor_userns => (
            format!(
                "AppArmor restricts unprivileged user namespaces \
                 (kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu 23.10 and later; {refused})"
            ),
            format!(
                "install the AppArmor profile skillbox ships, which allows it user namespaces: \
                 `{APPARMOR_INSTALL}` (edit the path in it if skillbox is installed elsewhere)"
            ),
        ),
        _ if facts.userns_clone_off => (
            format!("kernel.unprivileged_userns_clone=0 ({refused})"),
            "`sudo sysctl kernel.unprivileged_userns_clone=1` (and in /etc/sysctl.d to keep it)"
                .to_string(),
        ),
        _ if facts.max_userns_zero => (
            format!("user.max_user_namespaces=0 ({refused})"),
            "`sudo sysctl user.max_user_namespaces=15000` (and in /etc/sysctl.d to keep it)"
                .to_string(),
        ),
        _ => (
            format!("refused ({refused}), by a policy around this process"),
            "allow this process unprivileged user namespaces (a seccomp or LSM policy around \
             it refuses them)"
                .to_string(),
        ),
    };
    Finding {
        mechanism: "user-namespaces",
        found,
        costs: "no PID namespace per run: the supervisor keeps nothing alive after skillbox \
                (where the run cannot signal it, Landlock ABI 6), signals are confined only by \
                Landlock ABI 6, programs cannot start sessions of their own, a process count \
                is held by the watchdog; and no mount namespace per run: the mode, owner, \
                times and attributes of what a run may only read can be changed \
                (file-metadata), and /proc shows every process (process-visibility)"
            .into(),
        fix,
    }
}

/// Why the run's mount namespace, or part of what it needs, is missing here although user
/// namespaces work, and how to get it.
fn mount_namespaces(host: &HostSupport, facts: &Facts) -> Finding {
    let (found, costs) = if !host.mount_namespaces {
        let refused = host.namespaces_refused.map(|r| r.to_string()).unwrap_or_default();
        (
            format!("no mount namespace can be made in the run's user namespace ({refused})"),
            "file-metadata and process-visibility, and files where Landlock is missing",
        )
    } else if !host.own_proc {
        (
            "a procfs of the run's own cannot be mounted in its mount namespace: parts of \
             /proc are masked (a container's default)"
                .to_string(),
            "process-visibility",
        )
    } else {
        (
            "open_tree, mount_setattr or move_mount is refused in the run's mount namespace \
             (Linux 5.12 has them)"
                .to_string(),
            "file-metadata",
        )
    };
    let fix = match facts.container {
        Some(runtime @ ("docker" | "podman")) if host.mount_namespaces && !host.own_proc => {
            format!(
                "start the container with /proc unmasked (`{runtime} run --security-opt \
                 systempaths=unconfined`, or `--security-opt unmask=/proc/*` for Podman)"
            )
        }
        Some(_) => "allow the container mount namespaces and the new mount API (a seccomp \
                    profile allowing open_tree, move_mount and mount_setattr)"
            .to_string(),
        None => "allow this process mount namespaces in its user namespaces, and the new \
                 mount API (Linux 5.12: open_tree, move_mount, mount_setattr)"
            .to_string(),
    };
    Finding { mechanism: "mount-namespaces", found, costs: costs.into(), fix }
}

/// Why Landlock is missing or old here, and how to get a newer one.
fn landlock(host: &HostSupport, facts: &Facts) -> Finding {
    let abi = host.landlock_abi;
    let found = match (abi, host.landlock_absence, host.landlock_test_cap) {
        (_, _, Some(cap)) if abi == cap => {
            format!("ABI {abi}, capped by SKILLBOX_TEST_LANDLOCK_ABI (a simulated older kernel)")
        }
        (0, Some(libc::EPERM), _) => "refused (EPERM): a seccomp profile around this process \
                                      denies the Landlock system calls"
            .to_string(),
        (0, Some(libc::EOPNOTSUPP), _) => "built in but not enabled at boot".to_string(),
        (0, _, _) if facts.lsm_has_landlock == Some(false) => {
            "absent: not among the active security modules".to_string()
        }
        (0, _, _) => "absent (this kernel was built without it)".to_string(),
        _ => format!("ABI {abi}"),
    };
    let fix = match (abi, host.landlock_absence, facts.container) {
        (0, Some(libc::EPERM), Some(_)) => {
            "use a container runtime whose seccomp profile allows landlock_create_ruleset, \
             landlock_add_rule and landlock_restrict_self (Docker 23 and later do)"
                .to_string()
        }
        (0, Some(libc::EOPNOTSUPP), _) | (0, _, _) if facts.lsm_has_landlock == Some(false) => {
            "add `landlock` to the lsm= kernel parameter (e.g. lsm=landlock,lockdown,yama,\
             integrity,apparmor,bpf) and reboot"
                .to_string()
        }
        _ if facts.wsl => "update WSL (`wsl --update`) for a kernel with Landlock ABI 6 \
                           (Linux 6.12 or later)"
            .to_string(),
        _ => "boot Linux 6.12 or later (Landlock ABI 6): Ubuntu's HWE kernel, Debian's \
              backports kernel, or your distribution's newest"
            .to_string(),
    };
    let costs = match abi {
        0 => {
            "files are not confined, https-only has no port rules, and signals are confined \
              only by a PID namespace"
        }
        1 | 2 => {
            "truncation is left to seccomp, device ioctls and TCP ports are not \
                  Landlock's, and signals are confined only by a PID namespace"
        }
        3 => {
            "device ioctls and TCP ports are not Landlock's (https-only is refused), and \
              signals are confined only by a PID namespace"
        }
        4 | 5 => "signals and abstract Unix sockets are confined only by a PID namespace",
        _ => "",
    };
    Finding { mechanism: "landlock", found, costs: costs.into(), fix }
}
