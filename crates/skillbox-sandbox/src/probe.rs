//! What confinement the host offers, found by asking the kernel.

use std::path::Path;

/// The confinement mechanisms of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSupport {
    /// Landlock ABI version; 0 when Landlock is absent or disabled at boot.
    pub landlock_abi: i32,
    /// Whether seccomp filters can be installed.
    pub seccomp: bool,
    /// Whether unprivileged user namespaces are allowed (for the PID namespace of a run).
    pub user_namespaces: bool,
    /// Whether this process runs as root (capabilities are then dropped for every child).
    pub root: bool,
    /// The cgroup layout: `v2`, `v1`, `hybrid` or `none`.
    pub cgroups: &'static str,
    /// Whether this process could create a memory cgroup for a run (root, or a delegated
    /// cgroup v2 subtree).
    pub cgroup_memory_writable: bool,
    /// Whether this process can create a pids cgroup per run (bounds the process count).
    pub cgroup_pids: bool,
    /// Whether this process can create a cpu cgroup per run (bounds the CPU share).
    pub cgroup_cpu: bool,
    /// Whether `RLIMIT_NPROC` counts per user namespace (Linux 5.14 and later): in a run's
    /// own user namespace it then counts the run's processes only, not every process of the
    /// user, which makes it a process-count limit for runs without a pids cgroup.
    pub nproc_per_user_namespace: bool,
}

impl HostSupport {
    /// Probes the running kernel. Cheap (a few system calls and file reads), but not free:
    /// call it once per process.
    pub fn probe() -> Self {
        // SAFETY: geteuid has no failure mode and no memory effects.
        let root = unsafe { libc::geteuid() } == 0;
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let v1_mem = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
        let cgroups = match (v2, v1_mem, Path::new("/sys/fs/cgroup/unified").exists()) {
            (true, _, _) => "v2",
            (false, true, true) => "hybrid",
            (false, true, false) => "v1",
            _ => "none",
        };
        let cgroup_memory_writable = crate::cgroup::available(crate::cgroup::Controller::Memory);
        Self {
            landlock_abi: crate::landlock::kernel_abi(),
            seccomp: seccomp_available(),
            user_namespaces: user_namespaces(),
            root,
            cgroups,
            cgroup_memory_writable,
            cgroup_pids: crate::cgroup::available(crate::cgroup::Controller::Pids),
            cgroup_cpu: crate::cgroup::available(crate::cgroup::Controller::Cpu),
            nproc_per_user_namespace: kernel_at_least(5, 14),
        }
    }
}

/// Whether the running kernel's release is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

fn seccomp_available() -> bool {
    // SAFETY: prctl(PR_GET_SECCOMP) only returns the calling thread's mode.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    // EINVAL means the kernel was built without seccomp. Filters additionally need
    // CONFIG_SECCOMP_FILTER, which /proc/self/status reveals by its Seccomp_filters line.
    mode >= 0
        && std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Seccomp_filters:")))
}

fn user_namespaces() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return false;
    }
    read("/proc/sys/user/max_user_namespaces").is_some_and(|v| v != "0")
}
