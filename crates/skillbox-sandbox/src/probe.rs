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
    /// Whether the kernel keeps per-process I/O counters (`/proc/PID/io`,
    /// `CONFIG_TASK_IO_ACCOUNTING`), which a run's total of disk writes is enforced with:
    /// without them every process would count zero.
    pub io_counters: bool,
}

impl HostSupport {
    /// Probes the running kernel. Cheap (a few system calls and file reads), but not free:
    /// call it once per process.
    pub fn probe() -> Self {
        let root = rustix::process::geteuid().is_root();
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
            io_counters: crate::diskio::available(),
        }
    }
}

/// Whether the running kernel's release is at least `major.minor`. The release comes from
/// `uname(2)`, the same string as `/proc/sys/kernel/osrelease` without opening a file.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uname = rustix::system::uname();
    let release = uname.release().to_str().unwrap_or_default();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

/// Whether seccomp filters can be installed. `PR_GET_SECCOMP` fails without CONFIG_SECCOMP;
/// filters additionally need CONFIG_SECCOMP_FILTER. That is asked of the call itself rather
/// than read from `/proc/self/status` (its `Seccomp_filters:` line; generating that file
/// costs more than the rest of the probe): `seccomp(SECCOMP_SET_MODE_FILTER)` with a NULL
/// program installs nothing; a kernel with filters fails copying the program (EFAULT), one
/// without them answers EINVAL from its stub. Any other refusal (a filter of the process
/// around skillbox denying the call) counts as available, as the status line said: the
/// install in the child then fails, and the run with it.
fn seccomp_available() -> bool {
    if rustix::thread::secure_computing_mode().is_err() {
        return false;
    }
    // SAFETY: with a NULL program the kernel reads nothing and installs nothing: it fails
    // with EFAULT copying the program, or earlier when filters are not built in. (rustix
    // has no seccomp call.)
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0u32,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    let errno = std::io::Error::last_os_error().raw_os_error();
    r < 0 && !matches!(errno, Some(libc::EINVAL) | Some(libc::ENOSYS))
}

fn user_namespaces() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return false;
    }
    read("/proc/sys/user/max_user_namespaces").is_some_and(|v| v != "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probes that replaced reading files agree with the files.
    #[test]
    fn probes_agree_with_proc() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let filters = status.lines().any(|l| l.starts_with("Seccomp_filters:"));
        assert_eq!(seccomp_available(), filters);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap());
        let (a, b) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(kernel_at_least(a, b));
        assert!(!kernel_at_least(a, b + 1));
        assert!(!kernel_at_least(a + 1, 0));
        assert!(kernel_at_least(5, 14) == ((a, b) >= (5, 14)));
    }
}
