//! What a run will get, decided before anything is made: for each guarantee of the threat
//! model, the strongest mechanism this host offers for it (or why none does), and the line
//! of the enforcement report that names it.
//!
//! A guarantee is not a mechanism. Each guarantee has an ordered list of mechanisms that can
//! keep it on Linux, strongest first, and the plan takes, per guarantee, the first the host
//! offers (the support matrix of docs/security-model.md follows these lists):
//!
//! | guarantee | mechanisms, strongest first |
//! |---|---|
//! | `filesystem` | Landlock ABI 3 or later · Landlock ABI 1-2 with seccomp denying truncation · a mount namespace of the run's own (with its user and PID namespaces) |
//! | `ipc` | Landlock ABI 6 scopes with seccomp · a PID namespace with seccomp |
//! | `side-doors` | seccomp |
//! | `network` | `none`: seccomp · `https-only`: Landlock ABI 4 or later with seccomp · `loopback`: a network namespace of the run's own (with its user namespace), with seccomp and, from ABI 4, Landlock |
//! | `processes` | `none`: seccomp · a count: pids cgroup · `RLIMIT_NPROC` in the run's own user namespace · the watchdog |
//! | `memory` | memory cgroup · `RLIMIT_AS` per process |
//! | `cpu-share` | cpu cgroup |
//! | `tree-kill` | a PID namespace · the supervisor with seccomp (where `ipc` holds) |
//! | `disk-writes` | the watchdog on the kernel's I/O counters | A run is refused only when a
//! guarantee its policy needs has no mechanism at all here, and then the refusal names the
//! guarantee and the fix for this host ([`crate::diagnose`]), unless the caller opted into
//! weaker isolation.
//!
//! Every function here is a function of the host's facts ([`HostSupport`]) and the spec's
//! policy alone: nothing is opened, created or started. [`crate::run()`] then makes the plan
//! real (`run::prepare`: the Landlock ruleset, the seccomp program, the cgroups, the id
//! maps), and [`crate::preview`] reports it without making any of that.
//!
//! One function per guarantee (or pair that share a mechanism), each returning its part of
//! the spawn input and its lines of the report; [`plan`] calls them in report order.

use crate::policy::{NetworkAccess, Policy, ProcessAccess, Rlimits};
use crate::probe::HostSupport;
use crate::report::MechanismState::{self, Enforced, NotEnforced, Unrestricted};
use crate::report::{Enforcement, Guarantee, Mechanism, Via};
use crate::seccomp::Shape;
use crate::SandboxError;

/// Guarantees whose absence is reported but does not refuse a run: limits beyond the threat
/// model, whose own bounds hold by rlimits on every host (CPU time by `RLIMIT_CPU` and the
/// timeout; each file's size by `RLIMIT_FSIZE`). Where no mechanism keeps them, what the
/// policy says of them is a declaration, and the report says so.
pub const DECLARATIONS: [Guarantee; 2] = [Guarantee::CpuShare, Guarantee::DiskWrites];

/// The Landlock ABI from which truncation is Landlock's to deny (`LANDLOCK_ACCESS_FS_TRUNCATE`,
/// Linux 6.2); below it, seccomp denies the calls that truncate without a writable open.
const TRUNCATE_ABI: i32 = 3;
/// The Landlock ABI from which TCP ports are Landlock's (Linux 6.7).
const TCP_ABI: i32 = 4;
/// The Landlock ABI from which signals and abstract Unix sockets are scoped (Linux 6.12).
const SCOPE_ABI: i32 = crate::landlock::FULL_ABI;

/// Everything decided about a run before it is prepared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Build the Landlock ruleset and restrict the child with it.
    pub landlock: bool,
    /// Give the child a mount namespace whose root holds only what the policy grants
    /// (`crate::mountns`); only with `namespaces`.
    pub mounts: bool,
    /// Give the child a mount namespace beside Landlock (`crate::metadata`); only with
    /// `namespaces`, never with `mounts`.
    pub metadata: Option<Metadata>,
    /// The seccomp filter's shape, when one is installed.
    pub seccomp: Option<Shape>,
    /// The run's cgroups, when the host can make a group for at least one of its limits.
    pub cgroups: Option<Cgroups>,
    /// `(resource, value)` of each rlimit set in the child, hard = soft.
    pub rlimits: Vec<(libc::c_int, u64)>,
    /// Start the child in new user and PID namespaces.
    pub namespaces: bool,
    /// Without a PID namespace: register the run's process group with the supervisor, which
    /// kills it if skillbox dies.
    pub supervisor: bool,
    /// The process count the watchdog holds the run to, where no kernel limit can.
    pub watched_processes: Option<u64>,
    /// With the watchdog, for a non-root run: `RLIMIT_NPROC` at the host's thread count
    /// when the run starts plus this count, a kernel backstop (see `run::prepare`).
    pub nproc_backstop: Option<u64>,
    /// Start the child in a network namespace of its own holding only loopback, with a
    /// listener at this port passed back (`crate::netns`); only with `namespaces`.
    pub loopback: Option<u16>,
    /// The network the child gets: the policy's, but `https-only` where a `loopback` policy
    /// runs without its namespace (weaker isolation, which the report says).
    pub network: NetworkAccess,
    /// Capabilities are dropped, and failing to drop the bounding set is an error (root).
    pub caps_required: bool,
    /// What the run is told was enforced.
    pub report: Enforcement,
}

/// What the mount namespace beside Landlock does (`crate::metadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Metadata {
    /// The host's tree read-only but for the writable grants, protected entries and hidden
    /// paths read-only beneath them (files are confined).
    pub read_only: bool,
    /// A procfs of the run's PID namespace on `/proc`.
    pub proc_: bool,
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

fn line(
    name: Guarantee,
    state: MechanismState,
    via: &[Via],
    detail: impl Into<String>,
) -> Mechanism {
    let via = if state == Enforced { via.to_vec() } else { Vec::new() };
    Mechanism { name, state, via, detail: detail.into() }
}

/// What the host offers that more than one guarantee rests on, decided once per plan.
#[derive(Debug, Clone, Copy)]
struct Base {
    /// The Landlock ABI used (0: none).
    abi: i32,
    /// seccomp filters can be installed.
    seccomp: bool,
    /// The run gets its own user and PID namespaces.
    namespaces: bool,
}

/// Plans a run of `policy` on `host`. Refuses where a guarantee the policy needs has no
/// mechanism on this host, unless `allow_weaker` says to run with less.
pub(crate) fn plan(
    policy: &Policy,
    allow_weaker: bool,
    host: &HostSupport,
) -> Result<Plan, SandboxError> {
    let base = Base {
        abi: host.landlock_abi,
        seccomp: host.seccomp,
        namespaces: policy.pid_namespace && host.user_namespaces,
    };
    let mut report = Enforcement {
        simulated: host.landlock_test_cap.map(|cap| {
            format!("SKILLBOX_TEST_LANDLOCK_ABI={cap}: Landlock capped at ABI {}", base.abi)
        }),
        ..Enforcement::default()
    };
    let (files, filesystem) = files(policy, base, host);
    let (metadata, metadata_line) = file_metadata(policy, base, host, files);
    let (proc_, proc_line) = process_visibility(policy, base, host, files);
    let ipc = ipc(policy.network, base);
    let (loopback, effective_network, network) = network(policy.network, base);
    let (processes, processes_line) = processes(policy, base, host);
    let (tree, tree_line) = tree_kill(policy, base, ipc.state == Enforced);
    report.mechanisms.extend(fixed_lines(base, tree));
    report.mechanisms.extend([
        filesystem,
        metadata_line,
        ipc,
        proc_line,
        side_doors(base),
        network,
        processes_line,
    ]);
    report.mechanisms.push(privileges(host.root));
    let (memory, memory_line) = memory(&policy.rlimits, host);
    report.mechanisms.push(memory_line);
    report.mechanisms.push(cpu_share(&policy.rlimits, host));
    let (rlimits, rlimits_line) = rlimits(&policy.rlimits, processes.nproc, memory.address_space);
    report.mechanisms.push(rlimits_line);
    report.mechanisms.push(tree_line);
    report.mechanisms.push(disk_writes(&policy.rlimits, base.namespaces, host));
    refuse_unless_kept(&report, allow_weaker, host)?;
    let landlock_needed = (policy.confine_files && files.landlock)
        || (effective_network != NetworkAccess::Full && base.abi >= TCP_ABI)
        || base.abi >= SCOPE_ABI;
    let cgroups = Cgroups {
        pids_max: processes.pids_max.filter(|_| host.cgroup_pids),
        memory: policy.rlimits.memory,
        cpu_percent: policy.rlimits.cpu_percent,
    };
    Ok(Plan {
        landlock: base.abi >= 1 && landlock_needed,
        mounts: files.mounts,
        metadata: (metadata || proc_)
            .then_some(Metadata { read_only: metadata, proc_ })
            .filter(|_| !files.mounts),
        seccomp: base.seccomp.then_some(Shape {
            // The socket rules of `loopback` are those of `https-only`: the namespace, not
            // the filter, decides where a socket leads.
            network: match effective_network {
                NetworkAccess::Loopback { .. } => NetworkAccess::HttpsOnly,
                n => n,
            },
            processes: policy.processes,
            sessions: tree == Tree::PidNamespace,
            truncation: files.truncation_by_seccomp,
        }),
        cgroups: cgroups.made_on(host).then_some(cgroups),
        rlimits,
        namespaces: base.namespaces,
        supervisor: tree == Tree::Supervisor,
        watched_processes: processes.watched,
        nproc_backstop: processes.watched.filter(|_| !host.root),
        loopback,
        network: effective_network,
        caps_required: host.root,
        report,
    })
}

/// Refuses, naming each guarantee the policy needs that no mechanism keeps here and the
/// fix for this host, unless weaker isolation was asked for. [`DECLARATIONS`] never refuse.
fn refuse_unless_kept(
    report: &Enforcement,
    allow_weaker: bool,
    host: &HostSupport,
) -> Result<(), SandboxError> {
    let missing: Vec<&Mechanism> =
        report.not_enforced().filter(|m| !DECLARATIONS.contains(&m.name)).collect();
    if allow_weaker || missing.is_empty() {
        return Ok(());
    }
    let reason =
        missing.iter().map(|m| format!("{}: {}", m.name, m.detail)).collect::<Vec<_>>().join("; ");
    Err(SandboxError::Unsupported {
        missing: missing.iter().map(|m| m.name).collect(),
        reason,
        fix: crate::diagnose::fix_for(&missing.iter().map(|m| m.name).collect::<Vec<_>>(), host),
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

/// How nothing of a run outlives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tree {
    /// The run is a PID namespace of its own, which dies with skillbox.
    PidNamespace,
    /// The supervisor kills the run's process group if skillbox dies.
    Supervisor,
    /// Nothing does.
    Unkept,
}

/// The lines every run gets, whatever the host and the policy: what [`crate::run()`] itself
/// does (an exec without a shell, the environment given, close_range, a new session, the
/// timeout, the output budget). How the run's processes are kept together depends on the
/// tree's mechanism (`tree`).
fn fixed_lines(base: Base, tree: Tree) -> [Mechanism; 6] {
    let group = match tree {
        Tree::PidNamespace => line(
            Guarantee::ProcessGroup,
            Enforced,
            &[Via::Session, Via::PidNamespace],
            "a new session; programs may start sessions and groups of their own (setsid, \
             setpgid), since the PID namespace holds every process of the run",
        ),
        _ if base.seccomp => line(
            Guarantee::ProcessGroup,
            Enforced,
            &[Via::Session, Via::Seccomp],
            "a new session; setsid and setpgid are denied, so every descendant stays in the \
             group that is killed when the run ends",
        ),
        _ => line(
            Guarantee::ProcessGroup,
            NotEnforced,
            &[],
            "a new session, but no seccomp filter and no PID namespace keep the run's \
             processes in it",
        ),
    };
    [
        line(
            Guarantee::NoShell,
            Enforced,
            &[Via::Execve],
            "the program is executed directly; arguments never pass through a shell",
        ),
        line(
            Guarantee::Environment,
            Enforced,
            &[Via::Execve],
            "the environment is replaced by the one given; nothing else is inherited",
        ),
        line(
            Guarantee::Descriptors,
            Enforced,
            &[Via::CloseRange],
            "close_range in the child: only stdin (/dev/null), stdout and stderr (pipes) \
             reach the program",
        ),
        group,
        line(
            Guarantee::Timeout,
            Enforced,
            &[Via::Watchdog],
            "wall-clock limit; at the limit the whole run is killed with SIGKILL",
        ),
        line(
            Guarantee::OutputCap,
            Enforced,
            &[Via::Pipes],
            "stdout and stderr are captured within a fixed budget (head and tail kept)",
        ),
    ]
}

/// How files are confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Files {
    /// Landlock confines them.
    landlock: bool,
    /// seccomp denies the truncating calls Landlock cannot see (ABI 1 and 2).
    truncation_by_seccomp: bool,
    /// The run's own mount namespace confines them.
    mounts: bool,
}

/// Files: Landlock from ABI 3; at ABI 1 and 2 with seccomp denying what truncates a file
/// without opening it for writing (Landlock sees truncation from ABI 3 only); else, where
/// the run has user and PID namespaces of its own and the host lets it make a mount
/// namespace in them, a root of its own holding only what is granted. Returns how, and the
/// `filesystem` line.
fn files(policy: &Policy, base: Base, host: &HostSupport) -> (Files, Mechanism) {
    let abi = base.abi;
    let none = Files { landlock: false, truncation_by_seccomp: false, mounts: false };
    if !policy.confine_files {
        let l = line(
            Guarantee::Filesystem,
            Unrestricted,
            &[],
            "the policy grants every path the user can access",
        );
        return (none, l);
    }
    let what = "reads only under the granted trees and system directories, writes only under \
                the granted trees; protected entries stay read-only";
    let devices = if abi >= 5 { "" } else { "; device ioctls are not Landlock's before ABI 5" };
    if abi >= TRUNCATE_ABI {
        let detail = format!("Landlock ABI {abi}: {what}{devices}");
        let l = line(Guarantee::Filesystem, Enforced, &[Via::Landlock(abi as u8)], detail);
        return (Files { landlock: true, ..none }, l);
    }
    if abi >= 1 && base.seccomp {
        let detail = format!(
            "Landlock ABI {abi}: {what}; seccomp denies truncate(2) and read-only opens with \
             O_TRUNC, which Landlock sees from ABI 3 only (openat2 is answered ENOSYS){devices}"
        );
        let via = [Via::Landlock(abi as u8), Via::Seccomp];
        let l = line(Guarantee::Filesystem, Enforced, &via, detail);
        return (Files { landlock: true, truncation_by_seccomp: true, ..none }, l);
    }
    let why = if abi >= 1 {
        format!("Landlock ABI {abi} does not see truncation and no seccomp filter can stand in")
    } else {
        "no Landlock on this host".to_string()
    };
    if base.namespaces && host.mount_namespaces {
        let detail = format!(
            "a mount namespace of the run's own ({why}): its root holds only the system \
             directories, /etc without its secrets, the harmless devices, a /proc of its PID \
             namespace and the granted trees, read-only but for the writable grants; hidden \
             paths are covered by empty entries nobody may read, protected entries and the \
             directories on the way to them are read-only mounts, and the program can mount \
             nothing. Unlike Landlock: covers are made when the run starts, so a hidden entry \
             replaced from outside the run while it lasts (an editor's save, passwd rewriting \
             /etc/shadow) is seen at its new content; the names of granted paths' parents are \
             visible; files can be renamed and linked between directories of one writable \
             tree; chmod, chown, timestamps and extended attributes work in writable trees, \
             as under Landlock, and fail (read-only file system) elsewhere; the working \
             directory must lie in what the run sees"
        );
        let l = line(Guarantee::Filesystem, Enforced, &[Via::MountNamespace], detail);
        return (Files { mounts: true, ..none }, l);
    }
    let mounts = if !host.mount_namespaces {
        "no mount namespace can be made here either"
    } else {
        "a mount namespace of the run's own needs a PID namespace, which this run does not have"
    };
    let l = line(
        Guarantee::Filesystem,
        NotEnforced,
        &[],
        format!("{why}, and {mounts}: files are not confined"),
    );
    (none, l)
}

/// Why the run has no mount namespace of its own beside Landlock, when it has none: `None`
/// when it has one.
fn no_mount_namespace(policy: &Policy, base: Base, host: &HostSupport) -> Option<&'static str> {
    if !policy.pid_namespace {
        Some("no PID namespace asked for")
    } else if !base.namespaces {
        Some("no user namespaces here")
    } else if !host.mount_namespaces {
        Some("no mount namespace can be made here")
    } else {
        None
    }
}

/// Metadata of what the run may only read: read-only mounts in the run's own mount namespace,
/// the root of its own where Landlock is missing (`files.mounts`), else beside Landlock
/// (`open_tree`, `mount_setattr`, `move_mount`). Returns whether the namespace beside
/// Landlock makes the tree read-only, and the `file-metadata` line.
fn file_metadata(
    policy: &Policy,
    base: Base,
    host: &HostSupport,
    files: Files,
) -> (bool, Mechanism) {
    let what = "mode, owner, timestamps and extended attributes";
    if !policy.confine_files {
        let l = line(
            Guarantee::FileMetadata,
            Unrestricted,
            &[],
            "the policy grants every path the user can access",
        );
        return (false, l);
    }
    if files.mounts {
        let detail = format!(
            "the run's own root (see filesystem): everything but the writable grants is a \
             read-only mount, so the {what} of what the run may only read cannot be changed \
             (read-only file system)"
        );
        return (false, line(Guarantee::FileMetadata, Enforced, &[Via::MountNamespace], detail));
    }
    let why = match no_mount_namespace(policy, base, host) {
        None if files.landlock && host.mount_api => {
            let detail = format!(
                "a mount namespace of the run's own beside Landlock: the host's tree is \
                 read-only there but for the writable grants, and protected entries and \
                 hidden paths beneath those are read-only mounts, so the {what} of what the \
                 run may only read cannot be changed (read-only file system); within a \
                 writable tree they can, the directories on the way to a protected entry \
                 included"
            );
            return (true, line(Guarantee::FileMetadata, Enforced, &[Via::MountNamespace], detail));
        }
        None if files.landlock => {
            "open_tree, mount_setattr and move_mount (Linux 5.12) do not work in the run's \
             mount namespace here"
        }
        None => "files are not confined",
        Some(why) => why,
    };
    let state = if policy.pid_namespace { NotEnforced } else { Unrestricted };
    let detail = format!(
        "{why}: Landlock does not mediate {what}, so the run can change them on every file \
         of the user it can name, also where it may only read"
    );
    (false, line(Guarantee::FileMetadata, state, &[], detail))
}

/// Which processes the run sees: a procfs of its PID namespace, mounted in its mount
/// namespace (the root of its own, or the one beside Landlock). Returns whether the
/// namespace beside Landlock mounts it, and the `process-visibility` line.
fn process_visibility(
    policy: &Policy,
    base: Base,
    host: &HostSupport,
    files: Files,
) -> (bool, Mechanism) {
    let why = match no_mount_namespace(policy, base, host) {
        None if host.own_proc => {
            let l = line(
                Guarantee::ProcessVisibility,
                Enforced,
                &[Via::PidNamespace, Via::MountNamespace],
                "/proc is a procfs of the run's PID namespace, mounted in its own mount \
                 namespace: no other process's command line, environment or existence can \
                 be seen",
            );
            return (!files.mounts, l);
        }
        None => {
            "a procfs of the run's own cannot be mounted here (a container that masks parts \
             of /proc refuses it)"
        }
        Some(why) => why,
    };
    let state = if policy.pid_namespace { NotEnforced } else { Unrestricted };
    let detail = format!(
        "{why}: /proc is the host's, where the run can read every process's command line \
         (not its memory or environment, which need ptrace access)"
    );
    (false, line(Guarantee::ProcessVisibility, state, &[], detail))
}

/// Signals, ptrace and abstract Unix sockets: Landlock's scopes from ABI 6; else a PID
/// namespace, outside which no process can be named, with seccomp denying Unix sockets below
/// `full`. Returns the `ipc` line.
fn ipc(network: NetworkAccess, base: Base) -> Mechanism {
    let abi = base.abi;
    let ptrace = if base.seccomp {
        "ptrace and process_vm_* denied by seccomp"
    } else {
        "ptrace confined by Landlock"
    };
    if abi >= SCOPE_ABI {
        let via = if base.seccomp {
            vec![Via::Landlock(abi as u8), Via::Seccomp]
        } else {
            vec![Via::Landlock(abi as u8)]
        };
        return line(
            Guarantee::Ipc,
            Enforced,
            &via,
            format!(
                "Landlock ABI {abi} scopes: no signal to, and no abstract Unix socket of, any \
                 process outside the run; {ptrace}"
            ),
        );
    }
    if base.namespaces && base.seccomp {
        let sockets = match network {
            NetworkAccess::Full => {
                "abstract Unix sockets are reachable, as the full network grant allows"
            }
            _ => "no Unix socket can be made but a connected pair (seccomp)",
        };
        return line(
            Guarantee::Ipc,
            Enforced,
            &[Via::PidNamespace, Via::Seccomp],
            format!(
                "a PID namespace: no process outside the run can be named, so none can be \
                 signalled; {sockets}; {ptrace} (Landlock ABI {abi} has no scopes)"
            ),
        );
    }
    let why = match (abi >= 1, base.namespaces) {
        (_, true) => "no seccomp filter here".to_string(),
        _ => format!(
            "Landlock ABI {abi} has no scopes (ABI 6) and the run has no PID namespace: it \
             can signal every process of this user"
        ),
    };
    line(Guarantee::Ipc, NotEnforced, &[], why)
}

/// Kernel side doors and socket families: seccomp. Returns the `side-doors` line.
fn side_doors(base: Base) -> Mechanism {
    if base.seccomp {
        line(
            Guarantee::SideDoors,
            Enforced,
            &[Via::Seccomp],
            "seccomp: io_uring, TIOCSTI, keyctl, bpf, perf_event_open, userfaultfd, mount, \
             namespaces, ptrace, process_vm_* and the x32 ABI are denied; 32-bit syscalls kill \
             the process",
        )
    } else {
        line(Guarantee::SideDoors, NotEnforced, &[], "this kernel cannot install seccomp filters")
    }
}

/// The network: at `none`, seccomp alone (no socket but a connected Unix pair); at
/// `https-only`, Landlock's TCP port rules (ABI 4) with seccomp's socket families; at
/// `loopback`, a network namespace of the run's own. Returns the port of the namespace's
/// listener (when it gets one), the network the child gets, and the `network` line.
fn network(network: NetworkAccess, base: Base) -> (Option<u16>, NetworkAccess, Mechanism) {
    if let NetworkAccess::Loopback { port } = network {
        return loopback(port, base);
    }
    (None, network, network_line(network, base))
}

/// The `loopback` network: its own namespace where the run has user namespaces; else the
/// run gets `https-only` (only with weaker isolation: the line is `not-enforced`).
fn loopback(port: u16, base: Base) -> (Option<u16>, NetworkAccess, Mechanism) {
    let abi = base.abi;
    if !base.namespaces {
        let weaker = network_line(NetworkAccess::HttpsOnly, base);
        let detail = format!(
            "the run's own network namespace needs user namespaces, which this host does not \
             give: no host can be held to a list, and with weaker isolation the run gets \
             https-only instead ({})",
            weaker.detail
        );
        return (
            None,
            NetworkAccess::HttpsOnly,
            line(Guarantee::Network, NotEnforced, &[], detail),
        );
    }
    let mut via = vec![Via::NetNamespace];
    let ports = if base.seccomp && abi >= TCP_ABI {
        via.push(Via::Landlock(abi as u8));
        format!("TCP connects to port {port} only, no bind (Landlock)")
    } else {
        format!("TCP ports are not restricted inside it (Landlock ABI {abi} has no TCP rules)")
    };
    let sockets = if base.seccomp {
        via.push(Via::Seccomp);
        "IPv4, IPv6 and netlink route sockets only, no raw or Unix socket (seccomp)"
    } else {
        "socket families are not restricted (no seccomp filter here)"
    };
    let detail = format!(
        "a network namespace of the run's own holding only loopback: its one way out is the \
         listener on 127.0.0.1:{port} served from outside; no route, no UDP or DNS that \
         leaves it, no host loopback; {ports}; {sockets}"
    );
    let network = NetworkAccess::Loopback { port };
    (Some(port), network, line(Guarantee::Network, Enforced, &via, detail))
}

/// The `network` line of `none`, `https-only` and `full`.
fn network_line(network: NetworkAccess, base: Base) -> Mechanism {
    let abi = base.abi;
    match network {
        NetworkAccess::Full => {
            line(Guarantee::Network, Unrestricted, &[], "the policy grants full network")
        }
        NetworkAccess::None if base.seccomp => {
            let mut via = vec![Via::Seccomp];
            if abi >= TCP_ABI {
                via.push(Via::Landlock(abi as u8));
            }
            line(
                Guarantee::Network,
                Enforced,
                &via,
                "no socket but a connected Unix pair (seccomp): no TCP, UDP, raw or netlink \
                 socket, no loopback service, no Unix socket of any address",
            )
        }
        NetworkAccess::HttpsOnly if base.seccomp && abi >= TCP_ABI => line(
            Guarantee::Network,
            Enforced,
            &[Via::Landlock(abi as u8), Via::Seccomp],
            "TCP connect to port 443 only, no bind (Landlock); IPv4, IPv6 and netlink route \
             sockets only, no Unix socket (seccomp); UDP destinations are not restricted",
        ),
        NetworkAccess::HttpsOnly if base.seccomp => line(
            Guarantee::Network,
            NotEnforced,
            &[],
            format!(
                "https-only needs Landlock's TCP rules (ABI 4, Linux 6.7); this host has ABI \
                 {abi}, so TCP ports are not restricted"
            ),
        ),
        _ => line(
            Guarantee::Network,
            NotEnforced,
            &[],
            "no seccomp filter here: sockets are not restricted",
        ),
    }
}

/// How the process count of a run is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessCount {
    /// The count asked for (with [`ProcessAccess::Limited`]).
    pids_max: Option<u64>,
    /// `RLIMIT_NPROC` in the run's own user namespace, where no pids cgroup bounds the run.
    nproc: Option<u64>,
    /// The count the watchdog holds the run to, where neither can.
    watched: Option<u64>,
}

/// Process creation: seccomp for none; for a count, a pids cgroup, else `RLIMIT_NPROC` in
/// the run's own user namespace, else the watchdog. Returns the count's bounds and the
/// `processes` line.
fn processes(policy: &Policy, base: Base, host: &HostSupport) -> (ProcessCount, Mechanism) {
    let pids_max =
        (policy.processes == ProcessAccess::Limited).then_some(policy.rlimits.processes).flatten();
    let pids_in_cgroup = pids_max.is_some() && host.cgroup_pids;
    // Without a pids cgroup, a non-root run in its own user namespace can still be bounded:
    // since Linux 5.14 RLIMIT_NPROC counts per user namespace, so in the run's namespace it
    // counts the run's processes and threads only (measured: with 8 other processes of the
    // same user running, a limit of 5 let the run fork 4 children; outside a namespace it
    // let it fork none). Root is exempt from RLIMIT_NPROC whatever its capabilities.
    let nproc = pids_max.filter(|_| {
        !pids_in_cgroup && base.namespaces && !host.root && host.nproc_per_user_namespace
    });
    let watched = pids_max.filter(|_| !pids_in_cgroup && nproc.is_none());
    let count = ProcessCount { pids_max, nproc, watched };
    let (state, via, detail): (_, &[Via], _) = match policy.processes {
        ProcessAccess::None if base.seccomp => (
            Enforced,
            &[Via::Seccomp],
            "fork, vfork and clone of processes are denied (seccomp); threads are allowed"
                .to_string(),
        ),
        ProcessAccess::None => {
            (NotEnforced, &[], "no seccomp filter here: process creation is not denied".to_string())
        }
        ProcessAccess::Limited => match pids_max {
            Some(n) if pids_in_cgroup => (
                Enforced,
                &[Via::PidsCgroup],
                format!(
                    "pids cgroup: at most {n} processes of the run at once (fork bombs contained)"
                ),
            ),
            Some(n) if nproc.is_some() => (
                Enforced,
                &[Via::Rlimits],
                format!(
                    "RLIMIT_NPROC {n} in the run's own user namespace: at most {n} processes \
                     and threads of the run at once (fork bombs contained); no pids cgroup here"
                ),
            ),
            Some(n) => (
                Enforced,
                if host.root { &[Via::Watchdog] } else { &[Via::Watchdog, Via::Rlimits] },
                format!(
                    "supervision, not a kernel limit (no pids cgroup can be made here, and \
                     RLIMIT_NPROC outside a user namespace counts every process of the user): \
                     every {} ms skillbox counts the run's processes and kills the run beyond \
                     {n}; a fork bomb can overshoot by what it starts in one interval{}",
                    crate::members::PROCESS_POLL.as_millis(),
                    if host.root {
                        " (root is exempt from RLIMIT_NPROC, so nothing else bounds it)".to_string()
                    } else {
                        format!(
                            ", and never past RLIMIT_NPROC, set to the host's thread count at \
                             the start plus {n} plus {}",
                            crate::members::NPROC_MARGIN
                        )
                    }
                ),
            ),
            None => (Unrestricted, &[], "process creation allowed; no count was given".to_string()),
        },
        ProcessAccess::Full => {
            (Unrestricted, &[], "the policy grants process creation".to_string())
        }
    };
    (count, line(Guarantee::Processes, state, via, detail))
}

/// No privilege gain: `no_new_privs`, and as root every capability dropped. Returns the
/// `privileges` line.
fn privileges(root: bool) -> Mechanism {
    if root {
        line(
            Guarantee::Privileges,
            Enforced,
            &[Via::NoNewPrivs, Via::Capabilities],
            "no_new_privs; every capability dropped (bounding, ambient, permitted, effective), \
             so uid 0 gains nothing from any exec",
        )
    } else {
        line(
            Guarantee::Privileges,
            Enforced,
            &[Via::NoNewPrivs],
            "no_new_privs: no privilege gain through setuid or file capabilities",
        )
    }
}

/// Nothing of the run outlives it: a PID namespace whose first process dies with skillbox;
/// else the supervisor, which kills the run's group if skillbox dies, where seccomp keeps
/// every process in that group and the run cannot signal the supervisor (`ipc_kept`).
/// Returns the mechanism and the `tree-kill` line.
fn tree_kill(policy: &Policy, base: Base, ipc_kept: bool) -> (Tree, Mechanism) {
    if base.namespaces {
        return (
            Tree::PidNamespace,
            line(
                Guarantee::TreeKill,
                Enforced,
                &[Via::PidNamespace],
                "a new PID namespace: when the run's first process ends, or skillbox itself \
                 dies (even by SIGKILL), the kernel kills every process of the run",
            ),
        );
    }
    let no_namespace =
        if policy.pid_namespace { "no user namespaces here" } else { "no PID namespace asked for" };
    if base.seccomp && ipc_kept {
        return (
            Tree::Supervisor,
            line(
                Guarantee::TreeKill,
                Enforced,
                &[Via::Supervisor, Via::Seccomp],
                format!(
                    "{no_namespace}: a supervisor process, which the run cannot signal, kills \
                     the run's process group if skillbox dies (even by SIGKILL); setsid and \
                     setpgid are denied, so the group holds every process of the run"
                ),
            ),
        );
    }
    let why = if base.seccomp {
        "the run could signal skillbox and the supervisor (ipc is not enforced)"
    } else {
        "no seccomp filter keeps the run's processes in its group"
    };
    let state = if policy.pid_namespace { NotEnforced } else { Unrestricted };
    (
        Tree::Unkept,
        line(
            Guarantee::TreeKill,
            state,
            &[],
            format!(
                "{no_namespace}, and {why}: if skillbox is killed, the run's processes may \
                     live on"
            ),
        ),
    )
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
                &[Via::MemoryCgroup],
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
                &[Via::Rlimits],
                format!(
                    "RLIMIT_AS {} MiB per process (address space, not resident memory; no \
                     memory cgroup can be created here)",
                    m >> 20
                ),
            ),
        ),
        None => (
            MemoryBound { address_space: None },
            line(Guarantee::Memory, Unrestricted, &[], "no memory limit was given"),
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
            &[Via::CpuCgroup],
            format!("cpu cgroup quota: {p}% of one CPU for the whole run"),
        ),
        Some(p) => line(
            Guarantee::CpuShare,
            NotEnforced,
            &[],
            format!(
                "{p}% of one CPU is a declaration here: no cpu cgroup can be created (CPU time \
                 is still bounded by RLIMIT_CPU and the timeout, so the run is not refused)"
            ),
        ),
        None => line(Guarantee::CpuShare, Unrestricted, &[], "no CPU share was given"),
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
    (set, line(Guarantee::ResourceLimits, Enforced, &[Via::Rlimits], detail))
}

/// The total of disk writes: supervision on the kernel's per-process I/O counters, where
/// the kernel keeps them. Returns the `disk-writes` line.
fn disk_writes(r: &Rlimits, pid_namespace: bool, host: &HostSupport) -> Mechanism {
    match r.disk_write_bytes {
        Some(max) if !host.io_counters => line(
            Guarantee::DiskWrites,
            NotEnforced,
            &[],
            format!(
                "the total of {max} bytes is a declaration here: this kernel keeps no \
                 per-process I/O counters (/proc/PID/io, CONFIG_TASK_IO_ACCOUNTING); each file \
                 is still capped by RLIMIT_FSIZE, so the run is not refused"
            ),
        ),
        Some(max) => line(
            Guarantee::DiskWrites,
            Enforced,
            &[Via::Watchdog],
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
        None => line(Guarantee::DiskWrites, Unrestricted, &[], "no total of disk writes was given"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of the host facts the plan reads: each Landlock ABI from none to
    /// 6, and each yes-or-no fact.
    fn hosts() -> impl Iterator<Item = HostSupport> {
        (0i32..=6).flat_map(|abi| {
            (0u32..1 << 10).map(move |bits| {
                let b = |i: u32| bits & (1 << i) != 0;
                HostSupport {
                    landlock_abi: abi,
                    landlock_absence: (abi == 0).then_some(libc::ENOSYS),
                    landlock_test_cap: None,
                    seccomp: b(0),
                    user_namespaces: b(1),
                    mount_namespaces: b(1),
                    mount_api: b(1) && b(8),
                    own_proc: b(1) && b(9),
                    namespaces_refused: None,
                    root: b(2),
                    cgroups: "v2",
                    cgroup_memory_writable: b(3),
                    cgroup_pids: b(4),
                    cgroup_cpu: b(5),
                    nproc_per_user_namespace: b(6),
                    io_counters: b(7),
                }
            })
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

    const NETWORKS: [NetworkAccess; 4] = [
        NetworkAccess::None,
        NetworkAccess::HttpsOnly,
        NetworkAccess::Loopback { port: 3128 },
        NetworkAccess::Full,
    ];
    const PROCESSES: [ProcessAccess; 3] =
        [ProcessAccess::None, ProcessAccess::Limited, ProcessAccess::Full];

    /// Whether `via` names only mechanisms `host` has.
    fn offered(via: &Via, host: &HostSupport) -> bool {
        match via {
            Via::Landlock(n) => i32::from(*n) == host.landlock_abi && host.landlock_abi >= 1,
            Via::Seccomp => host.seccomp,
            Via::PidNamespace => host.user_namespaces,
            Via::MountNamespace => host.mount_namespaces && host.user_namespaces,
            Via::PidsCgroup => host.cgroup_pids,
            Via::MemoryCgroup => host.cgroup_memory_writable,
            Via::CpuCgroup => host.cgroup_cpu,
            Via::Capabilities => host.root,
            _ => true,
        }
    }

    /// On every host, at every network and process setting: the report has one line per
    /// guarantee in report order; a line in force names the mechanisms that keep it, each
    /// one the host has, and a line not in force names none; each guarantee is kept exactly
    /// where one of its mechanisms exists; and a run is refused exactly when a guarantee
    /// other than the declarations is not kept and weaker isolation was not asked for.
    #[test]
    fn each_guarantee_is_kept_by_the_strongest_mechanism_the_host_has() {
        let mut refused = 0;
        for host in hosts() {
            let abi = host.landlock_abi;
            for (network, processes) in NETWORKS.into_iter().flat_map(|n| PROCESSES.map(|p| (n, p)))
            {
                let policy = limited(network, processes);
                let weaker = plan(&policy, true, &host).unwrap();
                let r = &weaker.report;
                let names: Vec<Guarantee> = r.mechanisms.iter().map(|m| m.name).collect();
                assert_eq!(names, Guarantee::ALL, "{host:?}");
                for m in &r.mechanisms {
                    assert_eq!(m.state == Enforced, !m.via.is_empty(), "{m:?}");
                    assert!(m.via.iter().all(|v| offered(v, &host)), "{host:?}: {m:?}");
                }
                let kept = |g| r.state(g) == Some(Enforced);
                let ipc = abi >= 6 || (host.user_namespaces && host.seccomp);
                let by_landlock = abi >= 3 || (abi >= 1 && host.seccomp);
                let by_mounts = host.mount_namespaces && host.user_namespaces;
                assert_eq!(kept(Guarantee::Filesystem), by_landlock || by_mounts, "{host:?}");
                // Landlock where it confines files; the run's own mount namespace only where
                // it does not.
                assert_eq!(weaker.mounts, !by_landlock && by_mounts, "{host:?}");
                if weaker.mounts {
                    assert!(weaker.namespaces, "mounts only in the run's own namespaces");
                    let via = &r.line(Guarantee::Filesystem).unwrap().via;
                    assert_eq!(via, &vec![Via::MountNamespace]);
                }
                // Read-only metadata: the run's own root where it stands in for Landlock,
                // else the mount namespace beside Landlock, which needs the new mount API;
                // a /proc of its own wherever a procfs of its own can be mounted.
                let own = host.user_namespaces && host.mount_namespaces;
                let metadata =
                    (!by_landlock && by_mounts) || (by_landlock && own && host.mount_api);
                assert_eq!(kept(Guarantee::FileMetadata), metadata, "{host:?}");
                assert_eq!(kept(Guarantee::ProcessVisibility), own && host.own_proc, "{host:?}");
                let beside = weaker.metadata;
                assert_eq!(
                    beside.is_some(),
                    !weaker.mounts && own && ((by_landlock && host.mount_api) || host.own_proc),
                    "{host:?}"
                );
                if let Some(m) = beside {
                    assert!(weaker.namespaces, "mounts only in the run's own namespaces");
                    assert_eq!(m.read_only, by_landlock && host.mount_api, "{host:?}");
                    assert_eq!(m.proc_, host.own_proc, "{host:?}");
                }
                assert_eq!(kept(Guarantee::Ipc), ipc, "{host:?}");
                assert_eq!(kept(Guarantee::SideDoors), host.seccomp);
                let net = match network {
                    NetworkAccess::None => host.seccomp,
                    NetworkAccess::HttpsOnly => host.seccomp && abi >= 4,
                    NetworkAccess::Loopback { .. } => host.user_namespaces,
                    NetworkAccess::Full => false,
                };
                assert_eq!(kept(Guarantee::Network), net, "{host:?} {network:?}");
                // The namespace is made exactly where the line says it holds; without it the
                // run falls back to https-only, never to more.
                if let NetworkAccess::Loopback { port } = network {
                    assert_eq!(weaker.loopback, net.then_some(port), "{host:?}");
                    let fell_back = if net { network } else { NetworkAccess::HttpsOnly };
                    assert_eq!(weaker.network, fell_back, "{host:?}");
                }
                let tree = host.user_namespaces || (host.seccomp && ipc);
                assert_eq!(kept(Guarantee::TreeKill), tree, "{host:?}");
                assert_eq!(weaker.namespaces, host.user_namespaces);
                assert_eq!(weaker.supervisor, tree && !host.user_namespaces);
                let shape = weaker.seccomp;
                assert_eq!(shape.is_some(), host.seccomp);
                if let Some(shape) = shape {
                    assert_eq!(
                        shape.sessions, host.user_namespaces,
                        "sessions only in a PID namespace"
                    );
                    assert_eq!(shape.truncation, (1..3).contains(&abi));
                }
                assert!(kept(Guarantee::Memory), "memory is always bounded");
                assert_eq!(kept(Guarantee::CpuShare), host.cgroup_cpu);
                assert_eq!(kept(Guarantee::DiskWrites), host.io_counters);
                assert_eq!(weaker.caps_required, host.root);
                let missing: Vec<Guarantee> = r
                    .not_enforced()
                    .map(|m| m.name)
                    .filter(|g| !DECLARATIONS.contains(g))
                    .collect();
                match plan(&policy, false, &host) {
                    Ok(strict) => {
                        assert!(missing.is_empty(), "{host:?}: {missing:?}");
                        assert_eq!(strict, weaker, "allow_weaker changes nothing here");
                    }
                    Err(SandboxError::Unsupported { missing: named, reason, fix }) => {
                        refused += 1;
                        assert_eq!(named, missing, "{host:?}");
                        for g in &named {
                            assert!(reason.contains(g.as_str()), "{reason}");
                        }
                        assert!(fix.contains("weaker isolation"), "{fix}");
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        assert!(refused > 0);
    }

    /// The hosts the issue names, by their facts: each gets the mechanisms its row of the
    /// support matrix (docs/security-model.md) says, for an untrusted run.
    #[test]
    fn the_hosts_of_the_support_matrix_get_their_rows() {
        let full = hosts().find(|h| {
            h.landlock_abi == 6
                && h.seccomp
                && h.user_namespaces
                && !h.root
                && !h.cgroup_pids
                && !h.cgroup_cpu
                && !h.cgroup_memory_writable
                && h.nproc_per_user_namespace
                && h.io_counters
                && h.mount_api
                && h.own_proc
        });
        let full = full.unwrap();
        let row = |abi: i32, userns: bool| {
            let host = HostSupport { landlock_abi: abi, user_namespaces: userns, ..full.clone() };
            let p =
                plan(&limited(NetworkAccess::None, ProcessAccess::Limited), true, &host).unwrap();
            let via = |g| p.report.line(g).map(|m| m.via_str()).unwrap_or_default();
            [
                Guarantee::Filesystem,
                Guarantee::FileMetadata,
                Guarantee::Ipc,
                Guarantee::ProcessVisibility,
                Guarantee::Processes,
                Guarantee::TreeKill,
            ]
            .map(via)
        };
        let own = "pid-namespace+mount-namespace";
        // Ubuntu 24.04 as a normal user: ABI 4, no user namespaces.
        assert_eq!(
            row(4, false),
            ["landlock-abi-4", "none", "none", "none", "watchdog+rlimits", "none"]
        );
        // Debian 12: ABI 2, user namespaces.
        assert_eq!(
            row(2, true),
            [
                "landlock-abi-2+seccomp",
                "mount-namespace",
                "pid-namespace+seccomp",
                own,
                "rlimits",
                "pid-namespace"
            ]
        );
        // Docker's default profile on a 6.12 kernel: ABI 6, no user namespaces.
        assert_eq!(
            row(6, false),
            [
                "landlock-abi-6",
                "none",
                "landlock-abi-6+seccomp",
                "none",
                "watchdog+rlimits",
                "supervisor+seccomp"
            ]
        );
        // No Landlock, user namespaces: files by the run's own mount namespace.
        assert_eq!(
            row(0, true),
            [
                "mount-namespace",
                "mount-namespace",
                "pid-namespace+seccomp",
                own,
                "rlimits",
                "pid-namespace"
            ]
        );
        // No Landlock, no user namespaces: nothing confines files.
        assert_eq!(row(0, false)[..2], ["none", "none"]);
    }

    /// The run's own mount namespace confines files only where Landlock does not, and only
    /// for a run with its own PID namespace (the namespaces it is made in) that confines
    /// files at all; otherwise `filesystem` is not enforced and the run refused.
    #[test]
    fn files_fall_back_to_a_mount_namespace_only_where_landlock_cannot_confine_them() {
        for host in hosts().filter(|h| h.user_namespaces && h.mount_namespaces) {
            let mut policy = limited(NetworkAccess::None, ProcessAccess::None);
            let p = plan(&policy, true, &host).unwrap();
            let landlock = host.landlock_abi >= 3 || (host.landlock_abi >= 1 && host.seccomp);
            assert_eq!(p.mounts, !landlock, "{host:?}");
            policy.pid_namespace = false;
            let p = plan(&policy, true, &host).unwrap();
            assert!(!p.mounts, "{host:?}");
            let line = p.report.line(Guarantee::Filesystem).unwrap();
            assert_eq!(line.state == Enforced, landlock, "{host:?}: {line:?}");
            if !landlock {
                assert!(line.detail.contains("needs a PID namespace"), "{line:?}");
                assert!(plan(&policy, false, &host).is_err(), "refused without weaker isolation");
            }
            let mut open = limited(NetworkAccess::None, ProcessAccess::None);
            open.confine_files = false;
            assert!(!plan(&open, true, &host).unwrap().mounts, "nothing to confine");
        }
    }

    /// The process count at `limited`: a pids cgroup where the host makes one; else
    /// RLIMIT_NPROC, but only where it counts the run's own processes (a non-root run in
    /// its own user namespace, Linux 5.14 or later); else the watchdog.
    #[test]
    fn the_process_count_is_bounded_by_the_strongest_mechanism_there_is() {
        for host in hosts().filter(|h| h.seccomp) {
            let policy = limited(NetworkAccess::None, ProcessAccess::Limited);
            let p = plan(&policy, true, &host).unwrap();
            let nproc = p.rlimits.iter().find(|(r, _)| *r == libc::RLIMIT_NPROC as libc::c_int);
            let per_namespace = host.user_namespaces && !host.root && host.nproc_per_user_namespace;
            let line = p.report.line(Guarantee::Processes).unwrap();
            assert_eq!(line.state, Enforced, "{host:?}");
            if host.cgroup_pids {
                assert!(line.detail.starts_with("pids cgroup"), "{host:?}: {line:?}");
                assert_eq!(p.cgroups.and_then(|c| c.pids_max), Some(8));
                assert_eq!((nproc, p.watched_processes), (None, None));
            } else if per_namespace {
                assert!(line.detail.starts_with("RLIMIT_NPROC 8"), "{host:?}: {line:?}");
                assert_eq!(nproc, Some(&(libc::RLIMIT_NPROC as libc::c_int, 8)));
                assert_eq!(p.watched_processes, None);
            } else {
                let via =
                    if host.root { vec![Via::Watchdog] } else { vec![Via::Watchdog, Via::Rlimits] };
                assert_eq!(line.via, via, "{host:?}");
                assert_eq!((nproc, p.watched_processes), (None, Some(8)));
                let backstop = if host.root { None } else { Some(8) };
                assert_eq!(p.nproc_backstop, backstop, "root is exempt from RLIMIT_NPROC");
            }
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
            let p = plan(&policy, true, &host).unwrap();
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
            let p = plan(&policy, true, &host).unwrap();
            assert_eq!(as_limit(&p), vec![1 << 30], "{host:?}");
        }
    }

    /// A group is made only where the host can make one for some limit the policy gives.
    #[test]
    fn no_group_is_planned_where_none_would_be_made() {
        for host in hosts().filter(|h| h.seccomp && h.landlock_abi >= 6) {
            let p = plan(&Policy::strict(), true, &host).unwrap();
            assert_eq!(p.cgroups, None, "no limit asks for a group");
            let p =
                plan(&limited(NetworkAccess::None, ProcessAccess::Limited), true, &host).unwrap();
            let any = host.cgroup_pids || host.cgroup_memory_writable || host.cgroup_cpu;
            assert_eq!(p.cgroups.is_some(), any, "{host:?}");
        }
    }

    /// A test cap on the ABI is in the report, so that no result of a simulated host can be
    /// taken for this host's.
    #[test]
    fn a_simulated_host_is_named_in_the_report() {
        let host = hosts().next().unwrap();
        let p = plan(&Policy::strict(), true, &host).unwrap();
        assert_eq!(p.report.simulated, None);
        let capped = HostSupport { landlock_test_cap: Some(3), landlock_abi: 3, ..host };
        let p = plan(&Policy::strict(), true, &capped).unwrap();
        assert_eq!(
            p.report.simulated.as_deref(),
            Some("SKILLBOX_TEST_LANDLOCK_ABI=3: Landlock capped at ABI 3")
        );
    }
}
