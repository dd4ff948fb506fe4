//! The support matrix as the tests expect it: for the host a test binary runs on (this
//! machine, or a weaker host simulated by `skillbox-hostsim PROFILE -- TEST-BINARY`), which
//! guarantees a policy keeps and by which mechanism, and which it lacks, so that a run of it
//! is refused naming exactly those.
//!
//! Written from the facts of the host, independently of the crate's plan (`src/plan.rs`),
//! which these tests never ask what to expect: a plan that picks another mechanism, refuses
//! where a rung exists, or runs where none does, shows as a difference between this model
//! and the run. The facts:
//!
//! * the profile in force: `SKILLBOX_HOSTSIM_PROFILE`, which hostsim exports (`full`, this
//!   host as it is, without it). Each profile's facts are in [`PROFILES`], and checked by
//!   doing where that is cheap (a user namespace is made or refused, Landlock answers or
//!   not), so that a profile that does not take away what it says fails loudly;
//! * user namespaces (the profile's);
//! * the Landlock ABI: what the kernel answers, capped by the profile (`min(real, cap)`), or
//!   0 where the profile takes Landlock away;
//! * mount namespaces: one is made in a new user namespace (checked by doing);
//! * in such a mount namespace, the new mount API (`open_tree` of a recursive clone made
//!   read-only by `mount_setattr`, Linux 5.12) and a procfs of a new PID namespace mounted
//!   on `/proc` (`unshare --mount-proc`; a container that masks parts of its `/proc`
//!   refuses it), each checked by doing;
//! * root or not (`geteuid`); a run's cgroups can be made where this process is root and
//!   the cgroup tree is mounted writable (a container often mounts it read-only; so do the
//!   `no-cgroups` and `docker-default` profiles, checked by doing: root's `access(W_OK)`
//!   answers `EROFS` there);
//! * `RLIMIT_NPROC` counts per user namespace from Linux 5.14; the kernel keeps per-process
//!   I/O counters where `/proc/self/io` has them; seccomp filters are always there.
//!
//! The ladders, strongest first (docs/security-model.md has the same table):
//!
//! | guarantee | mechanisms |
//! |---|---|
//! | filesystem | Landlock ABI 3+ · ABI 1-2 with seccomp · a mount namespace of the run's own (user, PID and mount namespaces, `pid_namespace`) |
//! | file-metadata (asked with `pid_namespace`) | a mount namespace of the run's own: its own root where Landlock is missing, else beside Landlock, with the new mount API |
//! | process-visibility (asked with `pid_namespace`) | a procfs of the run's PID namespace in its mount namespace |
//! | ipc | Landlock ABI 6+ with seccomp · a PID namespace (user namespaces and `pid_namespace`) with seccomp |
//! | network `none` | seccomp (with Landlock's TCP rules from ABI 4) · `https-only`: Landlock ABI 4+ with seccomp · `loopback`: the run's own network namespace (user namespaces), with Landlock from ABI 4 and seccomp |
//! | processes with a count | pids cgroup · `RLIMIT_NPROC` in the run's own user namespace (non-root, PID namespace) · the watchdog, with an `RLIMIT_NPROC` backstop for non-root (root: the watchdog alone) |
//! | tree-kill | a PID namespace · the supervisor, with seccomp, where ipc is kept |
//! | process-group | a new session; in a PID namespace programs may start their own (setsid, setpgid), else seccomp denies them |
//! | memory | memory cgroup · `RLIMIT_AS` |
//! | cpu-share, disk-writes | cpu cgroup; the watchdog on I/O counters: declarations where missing, never a refusal |

#![allow(dead_code)]

use std::sync::OnceLock;

use skillbox_sandbox::{
    ChildOutcome, ChildSpec, Enforcement, Guarantee, MechanismState, NetworkAccess, Policy,
    ProcessAccess, SandboxError, Via, DEVICES, SYSTEM_READ,
};

/// Guarantees whose absence never refuses a run: what the policy says of them is then a
/// declaration (their own bounds hold by rlimits on every host).
pub(crate) const DECLARATIONS: [Guarantee; 2] = [Guarantee::CpuShare, Guarantee::DiskWrites];

/// Guarantees whose absence refuses a run, but whose effects only tests/metadata.rs and
/// tests/proc.rs check (and check where they are missing, too). A run the model refuses for
/// these alone (a host without user namespaces, with a PID namespace asked for, as every
/// skill's policy does) is checked to be refused exactly so, and then made again with weaker
/// isolation asked for ([`as_tested`]), so that the effect checks of every other guarantee
/// still run on such hosts rather than stopping at the refusal.
pub(crate) const RETRIED_WEAKER: [Guarantee; 2] =
    [Guarantee::FileMetadata, Guarantee::ProcessVisibility];

/// The environment variable hostsim sets to the profile in force.
pub(crate) const PROFILE_ENV: &str = "SKILLBOX_HOSTSIM_PROFILE";

/// Set to `1`, the tests' policies ask for a PID namespace, as every skill's does (see
/// [`strict`]): scripts/test.sh sets it for the runs under the simulated profiles.
pub(crate) const PID_NAMESPACE_ENV: &str = "SKILLBOX_TEST_PID_NAMESPACE";

/// What a simulated profile takes away: `(name, user namespaces, Landlock, cgroups)`, where
/// Landlock is `None` when the profile takes it away and `Some(cap)` otherwise (`u32::MAX`:
/// no cap), and `cgroups` is false where the profile mounts the cgroup tree read-only. The
/// same hosts as skillbox-hostsim's, written down again here on purpose.
pub(crate) const PROFILES: &[(&str, bool, Option<u32>, bool)] = &[
    ("full", true, Some(u32::MAX), true),
    ("no-userns", false, Some(u32::MAX), true),
    ("no-landlock", true, None, true),
    ("landlock-eperm", true, None, true),
    ("landlock-abi-1", true, Some(1), true),
    ("landlock-abi-2", true, Some(2), true),
    ("landlock-abi-3", true, Some(3), true),
    ("landlock-abi-4", true, Some(4), true),
    ("landlock-abi-5", true, Some(5), true),
    ("ubuntu-24.04", false, Some(4), true),
    ("debian-12", true, Some(2), true),
    ("docker-default", false, Some(u32::MAX), false),
    ("no-userns-no-landlock", false, None, true),
    ("no-cgroups", true, Some(u32::MAX), false),
];

/// The facts of the host this test binary runs on.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    /// The profile's name (`full` without hostsim).
    pub(crate) profile: String,
    /// New user namespaces can be made.
    pub(crate) user_namespaces: bool,
    /// The Landlock ABI skillbox may use here: 0 for none.
    pub(crate) landlock_abi: i32,
    /// The tests run as root.
    pub(crate) root: bool,
    /// A mount namespace can be made in a new user namespace (what a run's own root needs).
    pub(crate) mount_namespaces: bool,
    /// In such a mount namespace, a recursive clone of `/` is made by `open_tree` and made
    /// read-only by `mount_setattr` (what the mount namespace beside Landlock needs).
    pub(crate) mount_api: bool,
    /// In such a mount namespace, a procfs of a new PID namespace can be mounted on `/proc`.
    pub(crate) own_proc: bool,
    /// A run's cgroups (pids, memory, cpu) can be made: root, with the tree writable.
    pub(crate) cgroups: bool,
    /// The profile leaves the cgroup tree as this host mounts it (all but `no-cgroups` and
    /// `docker-default`, which mount it read-only).
    pub(crate) profile_leaves_cgroups: bool,
    /// `RLIMIT_NPROC` counts per user namespace (Linux 5.14 and later).
    pub(crate) nproc_per_user_namespace: bool,
    /// The kernel keeps per-process I/O counters.
    pub(crate) io_counters: bool,
}

/// The facts, found once per test binary.
pub(crate) fn facts() -> &'static Facts {
    static FACTS: OnceLock<Facts> = OnceLock::new();
    FACTS.get_or_init(find_facts)
}

fn find_facts() -> Facts {
    let profile = std::env::var(PROFILE_ENV).unwrap_or_else(|_| "full".to_string());
    let &(_, user_namespaces, landlock, cgroups_left) = PROFILES
        .iter()
        .find(|(name, ..)| *name == profile)
        .unwrap_or_else(|| panic!("{PROFILE_ENV}={profile}: a profile this model does not know"));
    // Checked by doing: the profile took away what it says, and this host has the rest.
    let kernel_abi = landlock_version();
    match landlock {
        None => assert!(
            kernel_abi.is_err(),
            "profile {profile} takes Landlock away, yet the kernel answered ABI {kernel_abi:?}"
        ),
        Some(_) => assert!(kernel_abi.is_ok(), "profile {profile}: no Landlock: {kernel_abi:?}"),
    }
    let cap = std::env::var("SKILLBOX_TEST_LANDLOCK_ABI").ok().and_then(|v| v.parse::<u32>().ok());
    assert_eq!(
        cap,
        landlock.filter(|c| *c != u32::MAX),
        "profile {profile}: SKILLBOX_TEST_LANDLOCK_ABI is not the profile's cap"
    );
    let made = namespaces_made(libc::CLONE_NEWUSER);
    assert_eq!(
        made.is_ok(),
        user_namespaces,
        "profile {profile} says user namespaces are {}, but making one: {made:?}",
        if user_namespaces { "available" } else { "refused" }
    );
    let mount_namespaces =
        user_namespaces && namespaces_made(libc::CLONE_NEWUSER | libc::CLONE_NEWNS).is_ok();
    let mount_api = mount_namespaces && read_only_clone_made().is_ok();
    let own_proc = mount_namespaces && own_proc_mounted();
    let landlock_abi = match (landlock, kernel_abi) {
        (Some(cap), Ok(real)) => real.min(cap as i64) as i32,
        _ => 0,
    };
    let root = rustix::process::geteuid().is_root();
    let cgroups_writable = cgroup_tree_writable();
    if !cgroups_left {
        // Root could write there but for the read-only mount; anyone else has no permission
        // (or finds the mount read-only too).
        use rustix::io::Errno;
        let want: &[Errno] = if root { &[Errno::ROFS] } else { &[Errno::ACCESS, Errno::ROFS] };
        assert!(
            cgroups_writable.is_err_and(|e| want.contains(&e)),
            "profile {profile} takes writable cgroups away, yet access(W_OK) answers \
             {cgroups_writable:?} (as {}root)",
            if root { "" } else { "non-" }
        );
    }
    Facts {
        profile,
        user_namespaces,
        mount_namespaces,
        mount_api,
        own_proc,
        landlock_abi,
        root,
        cgroups: root && cgroups_writable.is_ok(),
        profile_leaves_cgroups: cgroups_left,
        nproc_per_user_namespace: kernel_at_least(5, 14),
        io_counters: std::fs::read_to_string("/proc/self/io")
            .is_ok_and(|s| s.contains("write_bytes:")),
    }
}

/// The kernel's answer to a Landlock version query: the ABI, or the errno.
fn landlock_version() -> Result<i64, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: with a NULL attribute, size 0 and the VERSION flag, the call reads nothing and
    // only returns the ABI version.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// Starts `/bin/true` after `unshare(flags)`: what a run's namespaces need first.
fn namespaces_made(flags: libc::c_int) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/bin/true");
    let unshare = move || {
        // SAFETY: unshare(2) takes only flags and touches no memory of this process.
        if unsafe { libc::unshare(flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook makes one system call and allocates nothing: it is safe between fork
    // and exec.
    unsafe { cmd.pre_exec(unshare) };
    let status = cmd.status()?;
    assert!(status.success(), "/bin/true after unshare({flags:#x}): {status}");
    Ok(())
}

/// Starts `/bin/true` after a new user and mount namespace in which a recursive clone of `/`
/// is made by `open_tree` and made read-only by `mount_setattr`: what the mount namespace
/// beside Landlock does first.
fn read_only_clone_made() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    let mut cmd = std::process::Command::new("/bin/true");
    let clone = move || {
        let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS;
        // SAFETY: unshare(2) takes only flags and touches no memory of this process.
        if unsafe { libc::unshare(flags) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let how = OPEN_TREE_CLONE | libc::AT_RECURSIVE as libc::c_uint;
        // SAFETY: open_tree reads the NUL-terminated path and returns a descriptor.
        let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c"/".as_ptr(), how) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let attr =
            MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
        let at = libc::AT_EMPTY_PATH | libc::AT_RECURSIVE;
        // SAFETY: mount_setattr reads the empty path and `size_of::<MountAttr>()` bytes of
        // `attr`, which lives across the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd,
                c"".as_ptr(),
                at,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the hook makes three system calls and allocates nothing: it is safe between
    // fork and exec.
    unsafe { cmd.pre_exec(clone) };
    let status = cmd.status()?;
    assert!(status.success(), "/bin/true after open_tree and mount_setattr: {status}");
    Ok(())
}

/// Whether a procfs of a new PID namespace is mounted on `/proc` in a new user and mount
/// namespace, asked of `unshare(1)` (`--mount-proc`), not of skillbox.
fn own_proc_mounted() -> bool {
    std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--pid", "--fork", "--mount", "--mount-proc"])
        .arg("/bin/true")
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the cgroup tree can be written (a group made): the pids hierarchy of a v1 or
/// hybrid layout, else the unified one. Asked of the kernel (`access(W_OK)`: read-only
/// mounts answer `EROFS`, and a non-root user has no write permission there); `ENOENT`
/// where no cgroup tree is mounted.
fn cgroup_tree_writable() -> Result<(), rustix::io::Errno> {
    let tree = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
        .iter()
        .find(|p| std::path::Path::new(p).join("cgroup.procs").exists())
        .ok_or(rustix::io::Errno::NOENT)?;
    rustix::fs::access(*tree, rustix::fs::Access::WRITE_OK)
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

/// Whether the tests' policies ask for a PID namespace ([`PID_NAMESPACE_ENV`]).
pub(crate) fn pid_namespace_asked() -> bool {
    std::env::var(PID_NAMESPACE_ENV).is_ok_and(|v| v == "1")
}

/// The strict policy the confinement tests start from: [`Policy::strict`], asking for a PID
/// namespace when [`PID_NAMESPACE_ENV`] says so. By default it does not (the crate's
/// default, tested as it is); under the simulated profiles scripts/test.sh sets it, so that
/// each host is tried with the policy every skill gets, which is what reaches the PID
/// namespace rungs of `ipc` and `tree-kill` on hosts with user namespaces and an older
/// Landlock.
pub(crate) fn strict() -> Policy {
    let mut p = Policy::strict();
    p.pid_namespace = pid_namespace_asked();
    p
}

/// What the model expects of one guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// Kept, by these mechanisms (in any order).
    Kept(Vec<Via>),
    /// The policy grants everything in this area.
    NotAsked,
    /// Asked for, and no mechanism keeps it here.
    Missing,
}

use Expected::{Kept, Missing, NotAsked};

/// What the model expects of a run of one policy on this host.
#[derive(Debug, Clone)]
pub(crate) struct Expectation {
    /// One entry per guarantee, in report order.
    pub(crate) lines: Vec<(Guarantee, Expected)>,
    /// The run was asked to go ahead with less.
    pub(crate) allow_weaker: bool,
    /// The run's processes are in a PID namespace of their own (the program is its PID 1).
    pub(crate) pid_namespace: bool,
}

impl Expectation {
    /// What is expected of `g`.
    pub(crate) fn of(&self, g: Guarantee) -> &Expected {
        &self.lines.iter().find(|(n, _)| *n == g).expect("every guarantee is modelled").1
    }

    /// Whether `g` is kept with `via` among its mechanisms.
    pub(crate) fn by(&self, g: Guarantee, via: Via) -> bool {
        matches!(self.of(g), Kept(v) if v.contains(&via))
    }

    /// The guarantees that refuse the run here, in report order.
    pub(crate) fn missing(&self) -> Vec<Guarantee> {
        self.lines
            .iter()
            .filter(|(g, e)| *e == Missing && !DECLARATIONS.contains(g))
            .map(|(g, _)| *g)
            .collect()
    }

    /// Whether a run is refused here.
    pub(crate) fn refused(&self) -> bool {
        !self.allow_weaker && !self.missing().is_empty()
    }

    /// The mechanisms of a line of the report, sorted.
    fn sorted(via: &[Via]) -> Vec<Via> {
        let mut v = via.to_vec();
        v.sort();
        v
    }

    /// Checks the enforcement report of a run against the model: every line there, in
    /// order, with the state and the mechanisms expected.
    pub(crate) fn check_report(&self, report: &Enforcement) {
        let names: Vec<Guarantee> = report.mechanisms.iter().map(|m| m.name).collect();
        let want: Vec<Guarantee> = self.lines.iter().map(|(g, _)| *g).collect();
        assert_eq!(names, want, "the report's lines");
        for (m, (_, e)) in report.mechanisms.iter().zip(&self.lines) {
            let (state, via) = match e {
                Kept(v) => (MechanismState::Enforced, Self::sorted(v)),
                NotAsked => (MechanismState::Unrestricted, Vec::new()),
                Missing => (MechanismState::NotEnforced, Vec::new()),
            };
            assert_eq!(
                (m.state, Self::sorted(&m.via)),
                (state, via),
                "on profile {}, {} is not what the matrix says: {}",
                facts().profile,
                m.name,
                m.detail
            );
        }
        assert_eq!(
            report.simulated.is_some(),
            std::env::var_os("SKILLBOX_TEST_LANDLOCK_ABI").is_some(),
            "a simulated host is named in every report: {:?}",
            report.simulated
        );
    }
}

/// What the model expects of a run of `spec` here.
pub(crate) fn expect(spec: &ChildSpec) -> Expectation {
    expect_policy(&spec.policy, spec.allow_weaker)
}

/// What the model expects of a run of `policy` here.
pub(crate) fn expect_policy(policy: &Policy, allow_weaker: bool) -> Expectation {
    let f = facts();
    let abi = f.landlock_abi;
    let landlock = Via::Landlock(abi as u8);
    let pid_ns = f.user_namespaces && policy.pid_namespace;
    let r = &policy.rlimits;
    let asked = |yes: bool, e: Expected| if yes { e } else { NotAsked };

    let filesystem = if !policy.confine_files {
        NotAsked
    } else if abi >= 3 {
        Kept(vec![landlock])
    } else if abi >= 1 {
        Kept(vec![landlock, Via::Seccomp])
    } else if pid_ns && f.mount_namespaces {
        Kept(vec![Via::MountNamespace])
    } else {
        Missing
    };
    // Read-only metadata, asked for with a PID namespace (the run's mount namespace is made in
    // its user namespace): the run's own root keeps it where that keeps its files, else the
    // mount namespace beside Landlock, which needs the new mount API.
    let file_metadata = if !policy.confine_files {
        NotAsked
    } else if pid_ns && f.mount_namespaces && (abi == 0 || f.mount_api) {
        Kept(vec![Via::MountNamespace])
    } else {
        asked(policy.pid_namespace, Missing)
    };
    let process_visibility = if pid_ns && f.mount_namespaces && f.own_proc {
        Kept(vec![Via::PidNamespace, Via::MountNamespace])
    } else {
        asked(policy.pid_namespace, Missing)
    };
    let ipc = if abi >= 6 {
        Kept(vec![landlock, Via::Seccomp])
    } else if pid_ns {
        Kept(vec![Via::PidNamespace, Via::Seccomp])
    } else {
        Missing
    };
    let ipc_kept = matches!(ipc, Kept(_));
    let network = match policy.network {
        NetworkAccess::Full => NotAsked,
        NetworkAccess::None if abi >= 4 => Kept(vec![Via::Seccomp, landlock]),
        NetworkAccess::None => Kept(vec![Via::Seccomp]),
        NetworkAccess::HttpsOnly if abi >= 4 => Kept(vec![landlock, Via::Seccomp]),
        NetworkAccess::HttpsOnly => Missing,
        NetworkAccess::Loopback { .. } if pid_ns && abi >= 4 => {
            Kept(vec![Via::NetNamespace, landlock, Via::Seccomp])
        }
        NetworkAccess::Loopback { .. } if pid_ns => Kept(vec![Via::NetNamespace, Via::Seccomp]),
        NetworkAccess::Loopback { .. } => Missing,
    };
    let processes = match (policy.processes, r.processes) {
        (ProcessAccess::None, _) => Kept(vec![Via::Seccomp]),
        (ProcessAccess::Limited, Some(_)) if f.cgroups => Kept(vec![Via::PidsCgroup]),
        (ProcessAccess::Limited, Some(_)) if pid_ns && !f.root && f.nproc_per_user_namespace => {
            Kept(vec![Via::Rlimits])
        }
        // The watchdog; with an RLIMIT_NPROC backstop where that can bound anything: root
        // is exempt from it.
        (ProcessAccess::Limited, Some(_)) if f.root => Kept(vec![Via::Watchdog]),
        (ProcessAccess::Limited, Some(_)) => Kept(vec![Via::Watchdog, Via::Rlimits]),
        _ => NotAsked,
    };
    // A policy without `pid_namespace` does not ask for the tree to die with skillbox; it
    // still gets the supervisor where that can keep it.
    let tree_kill = if pid_ns {
        Kept(vec![Via::PidNamespace])
    } else if ipc_kept {
        Kept(vec![Via::Supervisor, Via::Seccomp])
    } else {
        asked(policy.pid_namespace, Missing)
    };
    let process_group = if pid_ns {
        Kept(vec![Via::Session, Via::PidNamespace])
    } else {
        Kept(vec![Via::Session, Via::Seccomp])
    };
    let privileges = if f.root {
        Kept(vec![Via::NoNewPrivs, Via::Capabilities])
    } else {
        Kept(vec![Via::NoNewPrivs])
    };
    let memory = asked(
        r.memory.is_some(),
        Kept(vec![if f.cgroups { Via::MemoryCgroup } else { Via::Rlimits }]),
    );
    let cpu_share = asked(
        r.cpu_percent.is_some(),
        if f.cgroups { Kept(vec![Via::CpuCgroup]) } else { Missing },
    );
    let disk_writes = asked(
        r.disk_write_bytes.is_some(),
        if f.io_counters { Kept(vec![Via::Watchdog]) } else { Missing },
    );
    let lines = vec![
        (Guarantee::NoShell, Kept(vec![Via::Execve])),
        (Guarantee::Environment, Kept(vec![Via::Execve])),
        (Guarantee::Descriptors, Kept(vec![Via::CloseRange])),
        (Guarantee::ProcessGroup, process_group),
        (Guarantee::Timeout, Kept(vec![Via::Watchdog])),
        (Guarantee::OutputCap, Kept(vec![Via::Pipes])),
        (Guarantee::Filesystem, filesystem),
        (Guarantee::FileMetadata, file_metadata),
        (Guarantee::Ipc, ipc),
        (Guarantee::ProcessVisibility, process_visibility),
        (Guarantee::SideDoors, Kept(vec![Via::Seccomp])),
        (Guarantee::Network, network),
        (Guarantee::Processes, processes),
        (Guarantee::Privileges, privileges),
        (Guarantee::Memory, memory),
        (Guarantee::CpuShare, cpu_share),
        (Guarantee::ResourceLimits, Kept(vec![Via::Rlimits])),
        (Guarantee::TreeKill, tree_kill),
        (Guarantee::DiskWrites, disk_writes),
    ];
    Expectation { lines, allow_weaker, pid_namespace: pid_ns }
}

/// The environment variable naming a file where each refusal the matrix expected is
/// written down (`<test>\t<guarantees>`, one line each): libtest shows a passing test's
/// output to nobody, and scripts/test.sh counts the tests that were refused from it.
pub(crate) const REFUSALS_ENV: &str = "SKILLBOX_TEST_REFUSALS";

/// Prints the one loud line of a run refused as the matrix says, and writes it down where
/// [`REFUSALS_ENV`] says (with a third field where the run is then made again with weaker
/// isolation asked for, see [`RETRIED_WEAKER`]).
fn say_refused(missing: &[Guarantee]) {
    let names: Vec<&str> = missing.iter().map(|g| g.as_str()).collect();
    let weaker = !missing.is_empty() && missing.iter().all(|g| RETRIED_WEAKER.contains(g));
    let then = if weaker { "\tthen run with weaker isolation" } else { "" };
    eprintln!(
        "!!! REFUSED on profile {} as the matrix says: {}{}",
        facts().profile,
        names.join(", "),
        if weaker {
            " (then run with weaker isolation asked for, its effects checked)"
        } else {
            ""
        }
    );
    if let Some(path) = std::env::var_os(REFUSALS_ENV) {
        use std::io::Write;
        let test = std::thread::current().name().unwrap_or("?").to_string();
        // One write of one short line to a file opened for appending: lines of tests
        // running at once do not mix.
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap();
        f.write_all(format!("{test}\t{}{then}\n", names.join(",")).as_bytes()).unwrap();
    }
}

/// Judges what `run(spec)` (or [`skillbox_sandbox::preview`]) returned against the model.
///
/// Where the model says the policy is refused here, the result must be exactly that
/// refusal (`SandboxError::Unsupported` naming the model's `missing`), and `None` says so
/// after one loud line: the caller skips the rest of that check. Where the model says it
/// runs, any refusal fails the test, and a successful run's report must name the mechanisms
/// the model expects; the result is handed back for the effect checks.
pub(crate) fn judge<T>(
    spec: &ChildSpec,
    result: Result<T, SandboxError>,
    report: impl Fn(&T) -> &Enforcement,
) -> Option<Result<T, SandboxError>> {
    let e = expect(spec);
    if e.refused() {
        match result {
            Err(SandboxError::Unsupported { missing, reason, fix }) => {
                assert_eq!(
                    missing,
                    e.missing(),
                    "on profile {}, refused naming the wrong guarantees: {reason}; fix: {fix}",
                    facts().profile
                );
                assert!(!fix.is_empty(), "a refusal says how to fix it");
                say_refused(&missing);
                None
            }
            Err(other) => panic!(
                "on profile {}, the matrix says this run is refused ({:?}), but it failed \
                 otherwise: {other}",
                facts().profile,
                e.missing()
            ),
            Ok(_) => panic!(
                "on profile {}, the matrix says this run is refused ({:?}), but it ran",
                facts().profile,
                e.missing()
            ),
        }
    } else {
        match result {
            Err(SandboxError::Unsupported { missing, reason, .. }) => panic!(
                "on profile {}, refused although the matrix says this policy runs here: \
                 {missing:?}: {reason}",
                facts().profile
            ),
            Ok(v) => {
                e.check_report(report(&v));
                Some(Ok(v))
            }
            Err(other) => Some(Err(other)),
        }
    }
}

/// Whether the run's own root (the mount-namespace rung) holds `spec`'s working directory:
/// it holds `/`, the system directories, `/etc`, `/proc`, the harmless devices, the
/// granted trees and the directories on the way to them (docs/security-model.md, "Files
/// without Landlock"), nothing else.
pub(crate) fn cwd_in_own_root(spec: &ChildSpec) -> bool {
    let p = &spec.policy;
    let system = SYSTEM_READ.iter().chain(["/etc", "/proc"].iter()).chain(DEVICES.iter());
    spec.cwd == std::path::Path::new("/")
        || system.map(std::path::Path::new).any(|d| spec.cwd.starts_with(d))
        || p.read
            .iter()
            .chain(&p.write)
            .any(|d| spec.cwd.starts_with(d) || d.starts_with(&spec.cwd))
}

/// Whether the model refuses `spec` here for [`RETRIED_WEAKER`] alone.
pub(crate) fn refused_for_retried_alone(spec: &ChildSpec) -> bool {
    let e = expect(spec);
    e.refused() && e.missing().iter().all(|g| RETRIED_WEAKER.contains(g))
}

/// The guarantees a run of `spec` is made without here ([`as_tested`]): those the model
/// refuses it for where they are [`RETRIED_WEAKER`] alone, else none.
pub(crate) fn retried(spec: &ChildSpec) -> Vec<Guarantee> {
    match refused_for_retried_alone(spec) {
        true => expect(spec).missing(),
        false => Vec::new(),
    }
}

/// Runs `spec` as it is and checks that it is refused exactly as the matrix says (one loud
/// line): for a test that then asks for weaker isolation itself.
pub(crate) async fn assert_refused(spec: &ChildSpec) {
    assert!(expect(spec).refused(), "the matrix does not refuse this run here");
    assert!(run_as_is(spec).await.is_none(), "judge lets no refused run through");
}

/// `spec` with weaker isolation asked for where the model refuses it for
/// [`RETRIED_WEAKER`] alone, else `spec` as it is; nothing is run (a helper process that
/// makes the run its test checked uses it).
pub(crate) fn weaker(spec: &ChildSpec) -> ChildSpec {
    let mut s = spec.clone();
    if refused_for_retried_alone(spec) {
        s.allow_weaker = true;
    }
    s
}

/// The spec a test runs here: where the model refuses `spec` for [`RETRIED_WEAKER`] alone,
/// a run of it is made and checked to be refused exactly so (one loud line), and `spec`
/// with weaker isolation asked for is returned, which the model then expects to run with
/// those guarantees `not-enforced`; else `spec` as it is.
pub(crate) async fn as_tested(spec: &ChildSpec) -> ChildSpec {
    if !refused_for_retried_alone(spec) {
        return spec.clone();
    }
    let refused = run_as_is(spec).await;
    assert!(refused.is_none(), "the matrix refuses this run, and run_as_is did not fail");
    weaker(spec)
}

/// Runs `spec` as the tests run it here ([`as_tested`]) and judges the result ([`judge`]):
/// `None` when refused as the matrix says.
pub(crate) async fn run(spec: &ChildSpec) -> Option<Result<ChildOutcome, SandboxError>> {
    run_as_is(&as_tested(spec).await).await
}

/// Runs `spec` and judges the result ([`judge`]): `None` when refused as the matrix says.
///
/// Where the model says files are kept by the run's own mount namespace and that root does
/// not hold the working directory, the mechanism's contract is that the run fails changing
/// to it (`ENOENT`), and nothing runs: that is checked, said in one loud line, and the run is
/// made again with the working directory granted for reading, which the effect checks then
/// see. A read grant only takes denials away, so it can make a check fail, never pass.
async fn run_as_is(spec: &ChildSpec) -> Option<Result<ChildOutcome, SandboxError>> {
    let e = expect(spec);
    if e.refused() || !e.by(Guarantee::Filesystem, Via::MountNamespace) || cwd_in_own_root(spec) {
        return judge(spec, skillbox_sandbox::run(spec).await, |o| &o.enforcement);
    }
    match skillbox_sandbox::run(spec).await {
        Err(SandboxError::Confine { step, source })
            if step == "changing to the working directory"
                && source.raw_os_error() == Some(libc::ENOENT) => {}
        other => panic!(
            "on profile {}, the run's own root does not hold the working directory {}, yet \
             the run did not fail changing to it: {:?}",
            facts().profile,
            spec.cwd.display(),
            other.map(|o| o.status)
        ),
    }
    eprintln!(
        "!!! on profile {} the run's own root does not hold the working directory {} (it \
         failed changing to it, as the mount namespace does): run again with it readable",
        facts().profile,
        spec.cwd.display()
    );
    let mut seen = spec.clone();
    seen.policy.read.push(spec.cwd.clone());
    judge(&seen, skillbox_sandbox::run(&seen).await, |o| &o.enforcement)
}

/// Runs `spec`, which must run here unless the matrix says it is refused (`None`).
pub(crate) async fn run_ok(spec: &ChildSpec) -> Option<ChildOutcome> {
    run(spec).await.map(|r| r.unwrap_or_else(|e| panic!("run({:?}) failed: {e}", spec.program)))
}

/// [`skillbox_sandbox::preview`] of `spec`, judged like a run (and, where the model refuses
/// it for [`RETRIED_WEAKER`] alone, checked to be refused, then previewed with weaker
/// isolation asked for).
pub(crate) fn preview(spec: &ChildSpec) -> Option<Enforcement> {
    let judged = |s: &ChildSpec| judge(s, skillbox_sandbox::preview(s), |r| r).map(|r| r.unwrap());
    if refused_for_retried_alone(spec) {
        assert!(judged(spec).is_none(), "the matrix refuses this preview, and judge did not fail");
        return judged(&weaker(spec));
    }
    judged(spec)
}
