//! What confinement the host offers, found by trying: asking Landlock its ABI, making a
//! user namespace once, opening cgroup files for writing. A sysctl that says what is allowed
//! is not asked: a container's seccomp profile or an AppArmor restriction refuses what the
//! sysctls allow, and only doing it tells.

use std::path::Path;

/// Why a mechanism the kernel has was refused when tried: the step and its errno. `EPERM`
/// from a step the kernel offers means a policy around this process (a container's seccomp
/// profile, an AppArmor restriction) said no, which is fixed differently from a kernel that
/// lacks the mechanism (`ENOSYS`, `EINVAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The step that failed, as a person reads it (`clone`, `writing the id maps`, ...).
    pub step: &'static str,
    /// Its errno.
    pub errno: i32,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} failed: {}", self.step, std::io::Error::from_raw_os_error(self.errno))
    }
}

/// The confinement mechanisms of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSupport {
    /// Landlock ABI version this process uses; 0 when Landlock is absent, disabled at boot,
    /// or refused.
    pub landlock_abi: i32,
    /// Why the kernel gave no Landlock ABI, when it gave none: the errno of asking (`ENOSYS`:
    /// not built in; `EOPNOTSUPP`: not enabled at boot; `EPERM`: refused by a filter).
    pub landlock_absence: Option<i32>,
    /// The cap `SKILLBOX_TEST_LANDLOCK_ABI` puts on the ABI used, when set: a simulated
    /// older kernel, which every report then says.
    pub landlock_test_cap: Option<i32>,
    /// Whether seccomp filters can be installed.
    pub seccomp: bool,
    /// Whether this process can make a user namespace with a PID namespace, and map its ids
    /// in it: tried once (a run's PID namespace needs exactly that).
    pub user_namespaces: bool,
    /// Whether, in such a namespace, a mount namespace can be made and mounted in (a run's
    /// own root of read-only binds needs it).
    pub mount_namespaces: bool,
    /// Whether, in such a mount namespace, `open_tree`, `mount_setattr` and `move_mount`
    /// work (Linux 5.12): the mount namespace beside Landlock needs them to make what a run
    /// may only read read-only in every respect (`file-metadata`).
    pub mount_api: bool,
    /// Whether, in such a mount namespace, a procfs of the run's own PID namespace can be
    /// mounted (a container that masks parts of its `/proc` refuses it): the run then sees
    /// only its own processes (`process-visibility`).
    pub own_proc: bool,
    /// What refused the first of the two that failed, when one did.
    pub namespaces_refused: Option<Refusal>,
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
        let (user_namespaces, mount_namespaces, mounts, namespaces_refused) = try_namespaces();
        Self {
            landlock_abi: crate::landlock::kernel_abi(),
            landlock_absence: crate::landlock::absence(),
            landlock_test_cap: crate::landlock::test_cap(),
            seccomp: seccomp_available(),
            user_namespaces,
            mount_namespaces,
            mount_api: mount_namespaces && mounts.api_errno == 0,
            own_proc: mount_namespaces && mounts.proc_errno == 0,
            namespaces_refused,
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

/// Makes the namespaces of a run once: new user, PID and mount namespaces whose ids are
/// mapped and whose mounts can be changed (and, in them, a procfs of their own and the mount
/// calls of `crate::metadata`). Returns whether user (with PID) namespaces work, whether
/// mount namespaces work in them, what the mount namespace's trial found, and what refused
/// the first that did not work.
fn try_namespaces() -> (bool, bool, crate::spawn::MountTrial, Option<Refusal>) {
    let maps = crate::spawn::own_id_maps();
    let refusal = |t: crate::spawn::NamespaceTrial| Refusal {
        step: t.stage.map_or("clone with new user and PID namespaces", |s| s.describe()),
        errno: t.errno,
    };
    match crate::spawn::try_namespaces(&maps, true) {
        Ok(mounts) => (true, true, mounts, None),
        Err(with_mount) => {
            // A host may refuse the mount namespace only: try without it.
            let without = crate::spawn::try_namespaces(&maps, false);
            let refused = Some(refusal(without.err().unwrap_or(with_mount)));
            (without.is_ok(), false, crate::spawn::MountTrial::default(), refused)
        }
    }
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
