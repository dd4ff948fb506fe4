//! What a run will get, decided before anything is made: for each guarantee, the mechanism
//! that keeps it on this host (or why none does), and the line of the enforcement report
//! that says so.
//!
//! Every function here is a function of the host's facts ([`HostSupport`]) and the spec's
//! policy alone: nothing is opened, created or started. [`crate::run()`] then makes the plan
//! real (`run::prepare`: the Landlock ruleset, the seccomp program, the cgroups, the id
//! maps), and [`crate::preview`] reports it without making any of that.
//!
//! One function per mechanism, each returning its part of the spawn input and its lines of
//! the report; [`plan`] calls them in report order.

use crate::policy::{NetworkAccess, Policy, ProcessAccess, Rlimits};
use crate::probe::HostSupport;
use crate::report::MechanismState::{self, Enforced, NotEnforced, Unrestricted};
use crate::report::{Enforcement, Guarantee, Mechanism};
use crate::SandboxError;

/// Everything decided about a run before it is prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Build the Landlock ruleset and restrict the child with it.
    pub landlock: bool,
    /// Install the seccomp filter.
    pub seccomp: bool,
    /// The run's cgroups, when the host can make a group for at least one of its limits.
    pub cgroups: Option<Cgroups>,
    /// `(resource, value)` of each rlimit set in the child, hard = soft.
    pub rlimits: Vec<(libc::c_int, u64)>,
    /// Start the child in new user and PID namespaces.
    pub namespaces: bool,
    /// Capabilities are dropped, and failing to drop the bounding set is an error (root).
    pub caps_required: bool,
    /// What the run is told was enforced.
    pub report: Enforcement,
}

/// The limits a run's cgroups are made with, as [`crate::cgroup::RunCgroup::create`] takes
/// them: each is applied where its controller is available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cgroups {
    /// Processes of the run at once (`pids`).
    pub pids_max: Option<u64>,
    /// Memory of the whole run, in bytes (`memory`).
    pub memory: Option<u64>,
    /// Percent of one CPU (`cpu`).
    pub cpu_percent: Option<u32>,
}

fn line(name: Guarantee, state: MechanismState, detail: impl Into<String>) -> Mechanism {
    Mechanism { name, state, detail: detail.into() }
}

/// Plans a run of `policy` on `host`. Refuses where the policy needs a mechanism the host
/// lacks (Landlock, seccomp), unless `allow_weaker` says to run with less.
pub(crate) fn plan(
    policy: &Policy,
    allow_weaker: bool,
    host: &HostSupport,
) -> Result<Plan, SandboxError> {
    let mut report = Enforcement::default();
    report.mechanisms.extend(fixed_lines());
    let (landlock, lines) = files(policy, allow_weaker, host)?;
    report.mechanisms.extend(lines);
    let (seccomp, lines) = seccomp_and_network(policy.network, landlock, allow_weaker, host)?;
    report.mechanisms.extend(lines);
    let (processes, lines) = processes(policy, seccomp, host);
    report.mechanisms.extend(lines);
    let (memory, memory_line) = memory(&policy.rlimits, host);
    report.mechanisms.push(memory_line);
    report.mechanisms.push(cpu_share(&policy.rlimits, host));
    let (rlimits, rlimits_line) = rlimits(&policy.rlimits, processes.nproc, memory.address_space);
    report.mechanisms.push(rlimits_line);
    let (namespaces, tree_line) = namespaces(policy, host);
    report.mechanisms.push(tree_line);
    report.mechanisms.push(disk_writes(&policy.rlimits, namespaces, host));
    let cgroups = Cgroups {
        pids_max: processes.pids_max,
        memory: policy.rlimits.memory,
        cpu_percent: policy.rlimits.cpu_percent,
    };
    Ok(Plan {
        landlock,
        seccomp,
        cgroups: cgroups.made_on(host).then_some(cgroups),
        rlimits,
        namespaces,
        caps_required: host.root,
        report,
    })
}

impl Cgroups {
    /// Whether `host` can make a group for at least one of these limits: otherwise no group
    /// is made at all.
    fn made_on(&self, host: &HostSupport) -> bool {
        (self.pids_max.is_some() && host.cgroup_pids)
            || (self.memory.is_some() && host.cgroup_memory_writable)
            || (self.cpu_percent.is_some() && host.cgroup_cpu)
    }
}

/// The lines every run gets, whatever the host and the policy: what [`crate::run()`] itself
/// does (an exec without a shell, the environment given, close_range, a new session, the
/// timeout, the output budget).
fn fixed_lines() -> [Mechanism; 6] {
    [
        line(
            Guarantee::NoShell,
            Enforced,
            "the program is executed directly; arguments never pass through a shell",
        ),
        line(
            Guarantee::Environment,
            Enforced,
            "the environment is replaced by the one given; nothing else is inherited",
        ),
        line(
            Guarantee::Descriptors,
            Enforced,
            "close_range in the child: only stdin (/dev/null), stdout and stderr (pipes) \
             reach the program",
        ),
        line(
            Guarantee::ProcessGroup,
            Enforced,
            "a new session; setsid and setpgid are denied, so every descendant stays in the \
             group that is killed when the run ends",
        ),
        line(
            Guarantee::Timeout,
            Enforced,
            "wall-clock limit; at the limit the whole process group is killed with SIGKILL",
        ),
        line(
            Guarantee::OutputCap,
            Enforced,
            "stdout and stderr are captured within a fixed budget (head and tail kept)",
        ),
    ]
}

/// Files, and signals and abstract Unix sockets: Landlock, where the host has the ABI this
/// crate needs. Returns whether the ruleset is built, and the `filesystem` and `ipc` lines.
fn files(
    policy: &Policy,
    allow_weaker: bool,
    host: &HostSupport,
) -> Result<(bool, [Mechanism; 2]), SandboxError> {
    let abi = host.landlock_abi;
    let required = crate::landlock::REQUIRED_ABI;
    if abi >= required {
        let filesystem = if policy.confine_files {
            line(
                Guarantee::Filesystem,
                Enforced,
                format!(
                    "Landlock ABI {abi}: reads only under the granted trees and system \
                     directories, writes only under the granted trees; protected entries stay \
                     read-only"
                ),
            )
        } else {
            line(
                Guarantee::Filesystem,
                Unrestricted,
                "the policy grants every path the user can access",
            )
        };
        let ipc = line(
            Guarantee::Ipc,
            Enforced,
            format!(
                "Landlock ABI {abi} scopes: no signal to, and no abstract Unix socket of, any \
                 process outside the run; ptrace and process_vm_* denied by seccomp"
            ),
        );
        return Ok((true, [filesystem, ipc]));
    }
    if !allow_weaker {
        return Err(SandboxError::Unsupported {
            mechanism: "landlock",
            reason: format!(
                "this kernel offers Landlock ABI {abi}; skillbox needs ABI {required} (Linux \
                 6.12 or later) to confine files, TCP, signals and abstract sockets"
            ),
            fix: "boot a kernel with Landlock enabled (CONFIG_SECURITY_LANDLOCK=y and \
                  `landlock` in the lsm= boot parameter), or opt into weaker isolation for \
                  this run"
                .into(),
        });
    }
    let why =
        format!("host has Landlock ABI {abi}, {required} needed; run allowed by explicit opt-in");
    let files_state = if policy.confine_files { NotEnforced } else { Unrestricted };
    Ok((
        false,
        [
            line(Guarantee::Filesystem, files_state, why.clone()),
            line(Guarantee::Ipc, NotEnforced, why),
        ],
    ))
}

/// Kernel side doors and socket families (seccomp), and the network as a whole (seccomp
/// for sockets, Landlock for TCP ports). Returns whether the filter is installed, and the
/// `side-doors` and `network` lines.
fn seccomp_and_network(
    network: NetworkAccess,
    landlock: bool,
    allow_weaker: bool,
    host: &HostSupport,
) -> Result<(bool, [Mechanism; 2]), SandboxError> {
    let side_doors = if host.seccomp {
        line(
            Guarantee::SideDoors,
            Enforced,
            "seccomp: io_uring, TIOCSTI, keyctl, bpf, perf_event_open, userfaultfd, mount, \
             namespaces, ptrace, process_vm_* and the x32 ABI are denied; 32-bit syscalls kill \
             the process",
        )
    } else if allow_weaker {
        line(
            Guarantee::SideDoors,
            NotEnforced,
            "host has no seccomp filters; run allowed by explicit opt-in",
        )
    } else {
        return Err(SandboxError::Unsupported {
            mechanism: "seccomp",
            reason: "this kernel cannot install seccomp filters".into(),
            fix: "use a kernel built with CONFIG_SECCOMP_FILTER=y, or opt into weaker \
                  isolation for this run"
                .into(),
        });
    };
    let both = landlock && host.seccomp;
    let (state, detail) = match network {
        NetworkAccess::None if both => (
            Enforced,
            "no sockets but socketpair (seccomp) and no TCP (Landlock): no network, no \
             loopback service, no Unix socket",
        ),
        NetworkAccess::HttpsOnly if both => (
            Enforced,
            "TCP connect to port 443 only, no bind (Landlock); IPv4, IPv6 and netlink route \
             sockets only (seccomp); UDP destinations are not restricted",
        ),
        NetworkAccess::Full => (Unrestricted, "the policy grants full network"),
        _ => {
            (NotEnforced, "Landlock or seccomp is missing; network not confined (explicit opt-in)")
        }
    };
    Ok((host.seccomp, [side_doors, line(Guarantee::Network, state, detail)]))
}

/// How the process count of a run is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessCount {
    /// The count asked for (with [`ProcessAccess::Limited`]), for the pids cgroup.
    pids_max: Option<u64>,
    /// `RLIMIT_NPROC` in the run's own user namespace, where no pids cgroup bounds the run.
    nproc: Option<u64>,
}

/// Process creation (seccomp for none, a pids cgroup or `RLIMIT_NPROC` in the run's user
/// namespace for a count) and privileges. Returns the count's bounds, and the `processes`
/// and `privileges` lines.
fn processes(policy: &Policy, seccomp: bool, host: &HostSupport) -> (ProcessCount, [Mechanism; 2]) {
    let pids_max =
        (policy.processes == ProcessAccess::Limited).then_some(policy.rlimits.processes).flatten();
    let pids_in_cgroup = pids_max.is_some() && host.cgroup_pids;
    // Without a pids cgroup, a non-root run in its own user namespace can still be bounded:
    // since Linux 5.14 RLIMIT_NPROC counts per user namespace, so in the run's namespace it
    // counts the run's processes and threads only (measured: with 8 other processes of the
    // same user running, a limit of 5 let the run fork 4 children; outside a namespace it
    // let it fork none). Root is exempt from RLIMIT_NPROC, but root gets the cgroup.
    let own_user_namespace = policy.pid_namespace && host.user_namespaces;
    let nproc = pids_max.filter(|_| {
        !pids_in_cgroup && own_user_namespace && !host.root && host.nproc_per_user_namespace
    });
    let (state, detail) = match policy.processes {
        ProcessAccess::None if seccomp => (
            Enforced,
            "fork, vfork and clone of processes are denied (seccomp); threads are allowed"
                .to_string(),
        ),
        ProcessAccess::None => (
            NotEnforced,
            "seccomp missing; process creation not denied (explicit opt-in)".to_string(),
        ),
        ProcessAccess::Limited => match pids_max {
            Some(n) if pids_in_cgroup => (
                Enforced,
                format!(
                    "pids cgroup: at most {n} processes of the run at once (fork bombs contained)"
                ),
            ),
            Some(n) if nproc.is_some() => (
                Enforced,
                format!(
                    "RLIMIT_NPROC {n} in the run's own user namespace: at most {n} processes \
                     and threads of the run at once (fork bombs contained); no pids cgroup here"
                ),
            ),
            Some(_) => (
                NotEnforced,
                "process creation allowed, count not bounded: no pids cgroup can be created \
                 here; run as root or delegate a cgroup to this user"
                    .to_string(),
            ),
            None => (NotEnforced, "process creation allowed; no count was given".to_string()),
        },
        ProcessAccess::Full => (Unrestricted, "the policy grants process creation".to_string()),
    };
    let privileges = line(
        Guarantee::Privileges,
        Enforced,
        if host.root {
            "no_new_privs; every capability dropped (bounding, ambient, permitted, effective), \
             so uid 0 gains nothing from any exec"
        } else {
            "no_new_privs: no privilege gain through setuid or file capabilities"
        },
    );
    (ProcessCount { pids_max, nproc }, [line(Guarantee::Processes, state, detail), privileges])
}

/// How the memory of a run is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemoryBound {
    /// `RLIMIT_AS` standing in for the memory limit, where no memory cgroup can be made.
    address_space: Option<u64>,
}

/// Memory: a memory cgroup for the whole run where the host can make one, else `RLIMIT_AS`
/// per process. Returns the rlimit standing in, if any, and the `memory` line.
fn memory(r: &Rlimits, host: &HostSupport) -> (MemoryBound, Mechanism) {
    match r.memory {
        Some(m) if host.cgroup_memory_writable => (
            MemoryBound { address_space: None },
            line(
                Guarantee::Memory,
                Enforced,
                format!(
                    "memory cgroup: {} MiB for the whole run; the kernel kills it beyond",
                    m >> 20
                ),
            ),
        ),
        Some(m) => (
            // An address-space limit of its own takes precedence.
            MemoryBound { address_space: r.address_space.is_none().then_some(m) },
            line(
                Guarantee::Memory,
                Enforced,
                format!(
                    "RLIMIT_AS {} MiB per process (address space, not resident memory; no \
                     memory cgroup can be created here)",
                    m >> 20
                ),
            ),
        ),
        None => (
            MemoryBound { address_space: None },
            line(Guarantee::Memory, Unrestricted, "no memory limit was given"),
        ),
    }
}

/// The share of one CPU: a cpu cgroup quota where the host can make one; nothing else can
/// enforce it. Returns the `cpu-share` line.
fn cpu_share(r: &Rlimits, host: &HostSupport) -> Mechanism {
    match r.cpu_percent {
        Some(p) if host.cgroup_cpu => line(
            Guarantee::CpuShare,
            Enforced,
            format!("cpu cgroup quota: {p}% of one CPU for the whole run"),
        ),
        Some(p) => line(
            Guarantee::CpuShare,
            NotEnforced,
            format!(
                "{p}% of one CPU is not enforced: no cpu cgroup can be created here (CPU time is \
                 still bounded by RLIMIT_CPU)"
            ),
        ),
        None => line(Guarantee::CpuShare, Unrestricted, "no CPU share was given"),
    }
}

/// The rlimits of the child, each hard = soft: no core dumps, `RLIMIT_NPROC` where it
/// bounds the process count (`nproc`), the limits the policy gives, and `RLIMIT_AS` where it
/// stands in for the memory limit (`memory_as`). Returns them, and the `resource-limits`
/// line.
fn rlimits(
    r: &Rlimits,
    nproc: Option<u64>,
    memory_as: Option<u64>,
) -> (Vec<(libc::c_int, u64)>, Mechanism) {
    let mut set = vec![(libc::RLIMIT_CORE as libc::c_int, 0)];
    let mut applied = vec!["core dumps off".to_string()];
    if let Some(n) = nproc {
        set.push((libc::RLIMIT_NPROC as libc::c_int, n));
        applied.push(format!("processes {n} (in the run's user namespace)"));
    }
    for (res, v, what) in [
        (libc::RLIMIT_NOFILE, r.open_files, "open files"),
        (libc::RLIMIT_FSIZE, r.file_size, "file size"),
        (libc::RLIMIT_CPU, r.cpu_seconds, "CPU seconds"),
        (libc::RLIMIT_AS, r.address_space, "address space"),
    ] {
        if let Some(v) = v {
            set.push((res as libc::c_int, v));
            applied.push(format!("{what} {v}"));
        }
    }
    // The memory limit as an address-space limit is not listed: the memory line says so.
    if let Some(m) = memory_as {
        set.push((libc::RLIMIT_AS as libc::c_int, m));
    }
    let detail = format!("rlimits (hard = soft, cannot be raised): {}", applied.join(", "));
    (set, line(Guarantee::ResourceLimits, Enforced, detail))
}

/// The tree's end: a new PID namespace (in a new user namespace) where the policy asks for
/// one and the host allows unprivileged user namespaces. Returns whether the child gets
/// them, and the `tree-kill` line.
fn namespaces(policy: &Policy, host: &HostSupport) -> (bool, Mechanism) {
    if policy.pid_namespace && host.user_namespaces {
        return (
            true,
            line(
                Guarantee::TreeKill,
                Enforced,
                "a new PID namespace: when the run's first process ends, or skillbox itself \
                 dies (even by SIGKILL), the kernel kills every process of the run",
            ),
        );
    }
    let (state, why) = if policy.pid_namespace {
        (
            NotEnforced,
            "no unprivileged user namespaces here: if skillbox itself is killed, the run's \
             processes are not",
        )
    } else {
        (Unrestricted, "not asked for: if skillbox itself is killed, the run's processes are not")
    };
    (false, line(Guarantee::TreeKill, state, why))
}

/// The total of disk writes: supervision on the kernel's per-process I/O counters, where
/// the kernel keeps them. Returns the `disk-writes` line.
fn disk_writes(r: &Rlimits, pid_namespace: bool, host: &HostSupport) -> Mechanism {
    match r.disk_write_bytes {
        Some(max) if !host.io_counters => line(
            Guarantee::DiskWrites,
            NotEnforced,
            format!(
                "the total of {max} bytes is not enforced: this kernel keeps no per-process \
                 I/O counters (/proc/PID/io, CONFIG_TASK_IO_ACCOUNTING); each file is still \
                 capped by RLIMIT_FSIZE"
            ),
        ),
        Some(max) => line(
            Guarantee::DiskWrites,
            Enforced,
            format!(
                "supervision on kernel counters, not a kernel quota: every {} ms skillbox sums \
                 write_bytes of /proc/PID/io over the run's processes (found in its cgroup, \
                 else by process group; bytes dirtied in files \
                 of block-backed filesystems, page-granular; not tmpfs) and kills the run \
                 beyond {max} bytes, or when a process's counters cannot be read; it can \
                 overshoot by what the run writes in one interval; \
                 not seen: fallocate, zombies until waited for, \
                 and processes that exit between two samples reaped \
                 outside the run ({}); each file is capped exactly by RLIMIT_FSIZE",
                crate::diskio::POLL.as_millis(),
                if pid_namespace {
                    "only children of a parent that ignores SIGCHLD, with the PID namespace"
                } else {
                    "orphans, and children of a parent that ignores SIGCHLD: no PID namespace"
                },
            ),
        ),
        None => line(Guarantee::DiskWrites, Unrestricted, "no total of disk writes was given"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of the host facts the plan reads.
    fn hosts() -> impl Iterator<Item = HostSupport> {
        (0u32..1 << 9).map(|bits| {
            let b = |i: u32| bits & (1 << i) != 0;
            HostSupport {
                landlock_abi: if b(0) { crate::landlock::REQUIRED_ABI } else { 4 },
                seccomp: b(1),
                user_namespaces: b(2),
                root: b(3),
                cgroups: "v2",
                cgroup_memory_writable: b(4),
                cgroup_pids: b(5),
                cgroup_cpu: b(6),
                nproc_per_user_namespace: b(7),
                io_counters: b(8),
            }
        })
    }

    /// A policy asking for every limit, at `network` and `processes`.
    fn limited(network: NetworkAccess, processes: ProcessAccess) -> Policy {
        let mut p = Policy::strict();
        p.network = network;
        p.processes = processes;
        p.pid_namespace = true;
        p.rlimits = Rlimits {
            open_files: Some(64),
            file_size: Some(1 << 20),
            disk_write_bytes: Some(8 << 20),
            cpu_seconds: Some(5),
            processes: Some(8),
            address_space: None,
            memory: Some(256 << 20),
            cpu_percent: Some(50),
        };
        p
    }

    const NETWORKS: [NetworkAccess; 3] =
        [NetworkAccess::None, NetworkAccess::HttpsOnly, NetworkAccess::Full];
    const PROCESSES: [ProcessAccess; 3] =
        [ProcessAccess::None, ProcessAccess::Limited, ProcessAccess::Full];

    /// On every host, at every network and process setting: a run is refused exactly when
    /// Landlock or seccomp is missing and weaker isolation was not asked for; otherwise the
    /// report has one line per guarantee, in report order, and says "not enforced" for each
    /// mechanism the host lacks.
    #[test]
    fn every_host_gets_a_line_per_guarantee_or_a_refusal() {
        for host in hosts() {
            let complete = host.landlock_abi >= crate::landlock::REQUIRED_ABI && host.seccomp;
            for (network, processes) in NETWORKS.into_iter().flat_map(|n| PROCESSES.map(|p| (n, p)))
            {
                let policy = limited(network, processes);
                let strict = plan(&policy, false, &host);
                assert_eq!(strict.is_ok(), complete, "{host:?}");
                let weaker = plan(&policy, true, &host).unwrap();
                let names: Vec<Guarantee> =
                    weaker.report.mechanisms.iter().map(|m| m.name).collect();
                assert_eq!(names, Guarantee::ALL, "{host:?}");
                let state = |g| weaker.report.state(g);
                assert_eq!(weaker.landlock, host.landlock_abi >= crate::landlock::REQUIRED_ABI);
                assert_eq!(weaker.seccomp, host.seccomp);
                if !weaker.landlock {
                    assert_eq!(state(Guarantee::Filesystem), Some(NotEnforced), "{host:?}");
                }
                if !host.seccomp {
                    assert_eq!(state(Guarantee::SideDoors), Some(NotEnforced), "{host:?}");
                }
                if complete {
                    assert_eq!(strict.unwrap(), weaker, "allow_weaker changes nothing here");
                }
                // Memory is always bounded one way or the other; the CPU share only by a
                // cgroup.
                assert_eq!(state(Guarantee::Memory), Some(Enforced));
                let cpu = if host.cgroup_cpu { Enforced } else { NotEnforced };
                assert_eq!(state(Guarantee::CpuShare), Some(cpu), "{host:?}");
                let tree = if host.user_namespaces { Enforced } else { NotEnforced };
                assert_eq!(state(Guarantee::TreeKill), Some(tree), "{host:?}");
                assert_eq!(weaker.namespaces, host.user_namespaces);
                let disk = if host.io_counters { Enforced } else { NotEnforced };
                assert_eq!(state(Guarantee::DiskWrites), Some(disk), "{host:?}");
                assert_eq!(weaker.caps_required, host.root);
            }
        }
    }

    /// The process count at `limited`: a pids cgroup where the host makes one; else
    /// RLIMIT_NPROC, but only where it counts the run's own processes (a non-root run in
    /// its own user namespace, Linux 5.14 or later); else the report says it is not
    /// bounded.
    #[test]
    fn the_process_count_is_bounded_by_the_strongest_mechanism_there_is() {
        for host in hosts().filter(|h| h.seccomp) {
            let policy = limited(NetworkAccess::None, ProcessAccess::Limited);
            let p = plan(&policy, true, &host).unwrap();
            let nproc = p.rlimits.iter().find(|(r, _)| *r == libc::RLIMIT_NPROC as libc::c_int);
            let per_namespace = host.user_namespaces && !host.root && host.nproc_per_user_namespace;
            let line = p.report.line(Guarantee::Processes).unwrap();
            if host.cgroup_pids {
                assert!(line.detail.starts_with("pids cgroup"), "{host:?}: {line:?}");
                assert_eq!(p.cgroups.and_then(|c| c.pids_max), Some(8));
                assert_eq!(nproc, None);
            } else if per_namespace {
                assert!(line.detail.starts_with("RLIMIT_NPROC 8"), "{host:?}: {line:?}");
                assert_eq!(nproc, Some(&(libc::RLIMIT_NPROC as libc::c_int, 8)));
            } else {
                assert_eq!(line.state, NotEnforced, "{host:?}");
                assert_eq!(nproc, None);
            }
            assert_eq!(line.state == Enforced, host.cgroup_pids || per_namespace);
        }
    }

    /// Without a memory cgroup, the memory limit becomes RLIMIT_AS, unless the policy set
    /// an address-space limit of its own, which then stands.
    #[test]
    fn memory_falls_back_to_the_address_space_limit() {
        let as_limit = |p: &Plan| -> Vec<u64> {
            let r#as = libc::RLIMIT_AS as libc::c_int;
            p.rlimits.iter().filter(|(r, _)| *r == r#as).map(|(_, v)| *v).collect()
        };
        for host in hosts().filter(|h| h.seccomp && h.landlock_abi >= 6) {
            let mut policy = limited(NetworkAccess::None, ProcessAccess::None);
            let p = plan(&policy, false, &host).unwrap();
            let memory = p.report.line(Guarantee::Memory).unwrap();
            if host.cgroup_memory_writable {
                assert!(memory.detail.starts_with("memory cgroup: 256 MiB"), "{memory:?}");
                assert_eq!(as_limit(&p), Vec::<u64>::new());
                assert_eq!(p.cgroups.and_then(|c| c.memory), Some(256 << 20));
            } else {
                assert!(memory.detail.starts_with("RLIMIT_AS 256 MiB"), "{memory:?}");
                assert_eq!(as_limit(&p), vec![256 << 20]);
            }
            policy.rlimits.address_space = Some(1 << 30);
            let p = plan(&policy, false, &host).unwrap();
            assert_eq!(as_limit(&p), vec![1 << 30], "{host:?}");
        }
    }

    /// A group is made only where the host can make one for some limit the policy gives.
    #[test]
    fn no_group_is_planned_where_none_would_be_made() {
        for host in hosts().filter(|h| h.seccomp && h.landlock_abi >= 6) {
            let p = plan(&Policy::strict(), false, &host).unwrap();
            assert_eq!(p.cgroups, None, "no limit asks for a group");
            let p =
                plan(&limited(NetworkAccess::None, ProcessAccess::Limited), false, &host).unwrap();
            let any = host.cgroup_pids || host.cgroup_memory_writable || host.cgroup_cpu;
            assert_eq!(p.cgroups.is_some(), any, "{host:?}");
        }
    }
}
