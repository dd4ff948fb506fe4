use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::output::Capture;
use crate::policy::{NetworkAccess, ProcessAccess};
use crate::probe::HostSupport;
use crate::report::Guarantee;
use crate::report::MechanismState::{Enforced, NotEnforced, Unrestricted};
use crate::spawn::{spawn, Prepared};
use crate::{CapturedOutput, ChildSpec, Enforcement, SandboxError};

/// How long output readers may keep draining after the run's processes are gone.
const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// How a supervised child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// The program exited with this code.
    Exited(i32),
    /// The program was killed by this signal (not by the timeout).
    Signaled(i32),
    /// The wall-clock timeout passed and the process group was killed.
    TimedOut,
}

/// A limit that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// The memory cgroup's limit: the kernel killed the run.
    Memory,
    /// The first process's CPU time, as the kernel counts it, reached `cpu_seconds` (also
    /// when the wall-clock timeout fired at the same moment, `status` then being
    /// `TimedOut`).
    Cpu,
    /// A write past `file_size` (`SIGXFSZ`).
    FileSize,
    /// More written to disk than `disk_write_bytes` (also when the run ended by itself with
    /// more written than its total).
    DiskWrite,
    /// Stopped because a process's write counters could not be read, so the total could not
    /// be enforced.
    DiskWriteUnreadable,
}

impl Limit {
    /// The stable spelling used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Cpu => "cpu",
            Self::FileSize => "file-size",
            Self::DiskWrite => "disk-write",
            Self::DiskWriteUnreadable => "disk-write-unreadable",
        }
    }
}

/// The result of supervising one child.
#[derive(Debug, Clone)]
pub struct ChildOutcome {
    /// How it ended.
    pub status: ExitStatus,
    /// Captured standard output.
    pub stdout: CapturedOutput,
    /// Captured standard error.
    pub stderr: CapturedOutput,
    /// Wall-clock time from spawn to exit.
    pub wall_time: Duration,
    /// User plus system CPU time of the child and the descendants it waited for.
    pub cpu_time: Duration,
    /// Peak memory: of the whole run where a memory cgroup measured it, else the peak
    /// resident memory of the largest process the child waited for, in KiB.
    pub max_rss_kib: u64,
    /// The limit that stopped the run, when one did.
    pub limit: Option<Limit>,
    /// Bytes the run wrote to disk: the kernel's `write_bytes` counters (bytes dirtied in
    /// files of block-backed filesystems, page-granular, plus direct I/O; not tmpfs, pipes
    /// or sockets), summed over the run's processes and the children they waited for. With
    /// a PID namespace this is every process of the run, except children reaped
    /// automatically because their parent ignored `SIGCHLD`; without one, orphans that
    /// exited before the end are also missed.
    pub bytes_written: u64,
    /// Most processes of the run alive at once, where a pids cgroup counted them.
    pub processes_peak: Option<u64>,
    /// What was enforced for this run.
    pub enforcement: Enforcement,
}

/// True when a sample shows more than `max` bytes written, or a process of the run whose
/// counters cannot be read (it could write unseen; the run is stopped rather than trusted).
fn over(sample: crate::diskio::Sample, max: u64) -> bool {
    sample.bytes > max || sample.unreadable > 0
}

/// The host's mechanisms, probed once per process.
pub fn host() -> &'static HostSupport {
    static HOST: OnceLock<HostSupport> = OnceLock::new();
    HOST.get_or_init(HostSupport::probe)
}

/// Kills the run's process group and reaps the leader, unless the run was supervised to the
/// end. A cancelled run (an agent that drops the future) leaves nothing behind.
struct Reaper {
    pid: libc::pid_t,
    done: bool,
}

impl Reaper {
    fn kill_group(&self) {
        // SAFETY: killpg takes plain integers. The group id is the pid of our child, which
        // is not reaped yet (a zombie keeps its pid and group), so it cannot name a
        // recycled, unrelated group.
        unsafe {
            libc::killpg(self.pid, libc::SIGKILL);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.kill_group();
        let pid = self.pid;
        // The leader dies at once, but not synchronously; reap it off this thread.
        std::thread::spawn(move || {
            let mut status = 0;
            // SAFETY: waits for our own child; writes only to `status`.
            unsafe { libc::waitpid(pid, &mut status, 0) };
        });
    }
}

/// Starts the child described by `spec` under its policy, supervises it to the end, and
/// returns its outcome.
///
/// Dropping the future kills the child's process group. Because the filter denies `setsid`
/// and `setpgid`, that group holds every process of the run.
pub async fn run(spec: &ChildSpec) -> Result<ChildOutcome, SandboxError> {
    spec.check()?;
    let (mut prepared, enforcement) = prepare(spec)?;

    let stdin = cloexec_fd(open_dev_null()?)?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let started = Instant::now();
    let spawned = spawn(&prepared, [stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()])
        .map_err(|f| match f.stage {
            Some(crate::spawn::Stage::Exec) | None => {
                SandboxError::Spawn { program: spec.program.display().to_string(), source: f.error }
            }
            Some(stage) => SandboxError::Confine { step: stage.describe(), source: f.error },
        })?;
    let cgroup = prepared.cgroup.take();
    let pid_namespace = prepared.namespaces.is_some();
    // The run's cgroup lists its processes far more cheaply than a walk of /proc, but only
    // when they cannot leave it: Landlock keeps them from writing any cgroup.procs.
    let members_in_cgroup = spec.policy.confine_files && prepared.landlock.is_some();
    drop((stdin, out_w, err_w, prepared));
    let mut reaper = Reaper { pid: spawned.pid, done: false };

    let stdout = reader(out_r, spec.output_limit)?;
    let stderr = reader(err_r, spec.output_limit)?;

    // SAFETY: the pidfd is an OwnedFd moved into the AsyncFd, so it stays open and names
    // the same process for the AsyncFd's whole life.
    let pidfd =
        unsafe { AsyncFd::register_with_interest(spawned.pidfd, tokio::io::Interest::READABLE) }
            .map_err(|e| SandboxError::Supervise(e.into()))?;
    // Wait for the leader's exit, the timeout, or (when a total is set) the disk-write
    // watchdog, which samples the group's counters every POLL.
    let write_limit = spec.policy.rlimits.disk_write_bytes.filter(|_| crate::diskio::available());
    // A timeout too large for an Instant (a caller's "no limit") never passes.
    let deadline = started.checked_add(spec.timeout);
    let mut written: u64 = 0;
    // Why the watchdog stopped the run: the total was over, or a process's counters could
    // not be read (so the total could not be known).
    let mut stopped_for_writes: Option<Limit> = None;
    let timed_out = loop {
        let left = deadline.map_or(spec.timeout, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            break true;
        }
        let wait = if write_limit.is_some() { left.min(crate::diskio::POLL) } else { left };
        match tokio::time::timeout(wait, pidfd.readable()).await {
            Ok(Ok(_)) => break false,
            Ok(Err(e)) => return Err(SandboxError::Supervise(e)),
            Err(_) => {}
        }
        if let Some(max) = write_limit {
            let sample_run = || match cgroup.as_ref().filter(|_| members_in_cgroup) {
                Some(cg) => match cg.members() {
                    Some(pids) => crate::diskio::of_pids(pids),
                    None => crate::diskio::of_group(spawned.pid),
                },
                None => crate::diskio::of_group(spawned.pid),
            };
            let sample = sample_run();
            if over(sample, max) {
                // A child reaped between reading it and reading its parent is counted twice
                // in one sample; a second sample confirms before the run is killed.
                let again = sample_run();
                if over(again, max) {
                    written = written.max(again.bytes);
                    stopped_for_writes = Some(if again.bytes > max {
                        Limit::DiskWrite
                    } else {
                        Limit::DiskWriteUnreadable
                    });
                    break false;
                }
            } else {
                written = written.max(sample.bytes);
            }
        }
    };
    // The last count, before the rest of the group is killed: with a PID namespace the
    // leader has already reaped every other process of the run (the kernel kills and reaps
    // them when PID 1 of a namespace exits), so its own counters hold the total. A normal
    // user cannot read a zombie's counters; its rusage below gives the same total then.
    let last = if pid_namespace {
        crate::diskio::of_process(spawned.pid)
    } else {
        crate::diskio::of_group(spawned.pid)
    };
    written = written.max(last.bytes);
    // Whatever happened, nothing of the group outlives the run. The leader is unreaped
    // (alive or a zombie), so the group id is still ours.
    reaper.kill_group();
    if timed_out || stopped_for_writes.is_some() {
        let _ready = pidfd.readable().await.map_err(SandboxError::Supervise)?;
    }
    // The leader has exited and is not reaped yet: its CPU time as RLIMIT_CPU counts it
    // can still be read.
    let cpu_limit = spec.policy.rlimits.cpu_seconds.map(Duration::from_secs);
    let cpu_counted = cpu_limit.and_then(|_| rlimit_cpu_time(spawned.pid));
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 writes `status` and `usage` for our own child,
    // which has exited (the pidfd is readable), so it returns at once.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(spawned.pid, &mut status, 0, &mut usage) };
    reaper.done = true;
    if r < 0 {
        return Err(SandboxError::Supervise(std::io::Error::last_os_error()));
    }
    let wall_time = started.elapsed();
    let status = if timed_out {
        ExitStatus::TimedOut
    } else if libc::WIFEXITED(status) {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    } else {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    };
    let oom = cgroup.as_ref().is_some_and(|c| c.oom_killed());
    let peak_kib = cgroup.as_ref().and_then(|c| c.memory_peak()).map(|b| b >> 10);
    let processes_peak = cgroup.as_ref().and_then(|c| c.processes_peak());
    // The groups are removed off the path of the result, once the run's killed processes
    // have left them (the same happens when a cancelled run drops them).
    drop(cgroup);
    // ru_oublock is write_bytes less cancelled writes, in 512-byte blocks, of the leader
    // and the children it reaped: a floor when /proc could not be read at the end.
    let written = written.max((usage.ru_oublock as u64).saturating_mul(512));
    let over_writes = write_limit.is_some_and(|max| written > max);
    // RLIMIT_CPU is set hard = soft, so the kernel stops the leader with SIGKILL (never
    // SIGXCPU) once its count reaches the limit; that count, read above, tells the kernel's
    // kill from any other SIGKILL. When the limit equals the timeout, a busy run reaches
    // both at about the same moment: whichever kill landed first, a count at the limit
    // means the CPU limit was reached, and that is what is reported.
    let cpu_reached = match (cpu_limit, cpu_counted) {
        (Some(max), Some(used)) => used >= max,
        // The count could not be read: only the signal of a soft limit is evidence.
        _ => status == ExitStatus::Signaled(libc::SIGXCPU),
    };
    let limit = match status {
        _ if oom => Some(Limit::Memory),
        _ if stopped_for_writes.is_some() => stopped_for_writes,
        ExitStatus::Signaled(_) | ExitStatus::TimedOut if cpu_reached => Some(Limit::Cpu),
        ExitStatus::Signaled(libc::SIGXFSZ) => Some(Limit::FileSize),
        _ if over_writes => Some(Limit::DiskWrite),
        _ => None,
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Ok(ChildOutcome {
        status,
        stdout: drain(stdout).await,
        stderr: drain(stderr).await,
        wall_time,
        cpu_time: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: peak_kib.unwrap_or(usage.ru_maxrss as u64),
        limit,
        processes_peak,
        bytes_written: written,
        enforcement,
    })
}

/// CPU time of process `pid`, all its threads but not its children, as the kernel counts it
/// against `RLIMIT_CPU`: the process's `CPUCLOCK_PROF` clock (user plus system time as
/// accounted at each tick, which runs a few milliseconds apart from the exact time that
/// `wait4` reports). Readable until the process is reaped; `None` if the kernel refuses.
fn rlimit_cpu_time(pid: libc::pid_t) -> Option<Duration> {
    // The clock id of another process's CPU clock, as the kernel encodes it (include/linux/
    // posix-timers.h, `MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_PROF)`): `~pid << 3`, with the
    // low bits 0 for PROF. glibc's clock_getcpuclockid builds the same with SCHED (2),
    // which counts exact run time, not what the rlimit compares.
    let clock = (!pid).checked_mul(8)? as libc::clockid_t;
    // SAFETY: timespec is plain data, for which all zeroes is a valid value.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes only to `t`.
    if unsafe { libc::clock_gettime(clock, &mut t) } != 0 {
        return None;
    }
    Some(Duration::new(u64::try_from(t.tv_sec).ok()?, u32::try_from(t.tv_nsec).ok()?))
}

/// The enforcement report `spec` would get, without starting anything: what `skillbox info`
/// shows. Fails exactly where [`run`] would refuse.
pub fn preview(spec: &ChildSpec) -> Result<Enforcement, SandboxError> {
    spec.check()?;
    prepare(spec).map(|(_, report)| report)
}

/// Builds everything the child needs, and the report of what will be enforced. Refuses when
/// the policy needs a mechanism the host lacks, unless the spec opts into weaker isolation.
fn prepare(spec: &ChildSpec) -> Result<(Prepared, Enforcement), SandboxError> {
    let host = host();
    let policy = &spec.policy;
    let mut rep = Enforcement::default();
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| SandboxError::InvalidSpec("NUL byte".into()));

    rep.push(
        Guarantee::NoShell,
        Enforced,
        "the program is executed directly; arguments never pass through a shell",
    );
    rep.push(
        Guarantee::Environment,
        Enforced,
        "the environment is replaced by the one given; nothing else is inherited",
    );
    rep.push(Guarantee::Descriptors, Enforced, "close_range in the child: only stdin (/dev/null), stdout and stderr (pipes) reach the program");
    rep.push(Guarantee::ProcessGroup, Enforced, "a new session; setsid and setpgid are denied, so every descendant stays in the group that is killed when the run ends");
    rep.push(
        Guarantee::Timeout,
        Enforced,
        "wall-clock limit; at the limit the whole process group is killed with SIGKILL",
    );
    rep.push(
        Guarantee::OutputCap,
        Enforced,
        "stdout and stderr are captured within a fixed budget (head and tail kept)",
    );

    // Landlock: files, TCP, signals and abstract Unix sockets.
    let landlock = match crate::landlock::build(policy) {
        Ok(fd) => {
            let abi = host.landlock_abi;
            if policy.confine_files {
                rep.push(Guarantee::Filesystem, Enforced, format!("Landlock ABI {abi}: reads only under the granted trees and system directories, writes only under the granted trees; protected entries stay read-only"));
            } else {
                rep.push(Guarantee::Filesystem, Unrestricted, "the policy grants every path the user can access");
            }
            rep.push(Guarantee::Ipc, Enforced, format!("Landlock ABI {abi} scopes: no signal to, and no abstract Unix socket of, any process outside the run; ptrace and process_vm_* denied by seccomp"));
            Some(fd)
        }
        Err(crate::landlock::LandlockError::Unsupported { found }) if spec.allow_weaker => {
            let why = format!("host has Landlock ABI {found}, {} needed; run allowed by explicit opt-in", crate::landlock::REQUIRED_ABI);
            rep.push(Guarantee::Filesystem, if policy.confine_files { NotEnforced } else { Unrestricted }, why.clone());
            rep.push(Guarantee::Ipc, NotEnforced, why);
            None
        }
        Err(crate::landlock::LandlockError::Unsupported { found }) => {
            return Err(SandboxError::Unsupported {
                mechanism: "landlock",
                reason: format!("this kernel offers Landlock ABI {found}; skillbox needs ABI {} (Linux 6.12 or later) to confine files, TCP, signals and abstract sockets", crate::landlock::REQUIRED_ABI),
                fix: "boot a kernel with Landlock enabled (CONFIG_SECURITY_LANDLOCK=y and `landlock` in the lsm= boot parameter), or opt into weaker isolation for this run".into(),
            })
        }
        Err(e) => return Err(SandboxError::Policy(e.to_string())),
    };

    // seccomp: socket families, side doors, process creation.
    let seccomp = if host.seccomp {
        let prog = crate::seccomp::program(policy.network, policy.processes)
            .map_err(|e| SandboxError::Policy(e.to_string()))?;
        rep.push(Guarantee::SideDoors, Enforced, "seccomp: io_uring, TIOCSTI, keyctl, bpf, perf_event_open, userfaultfd, mount, namespaces, ptrace, process_vm_* and the x32 ABI are denied; 32-bit syscalls kill the process");
        Some(prog)
    } else if spec.allow_weaker {
        rep.push(
            Guarantee::SideDoors,
            NotEnforced,
            "host has no seccomp filters; run allowed by explicit opt-in",
        );
        None
    } else {
        return Err(SandboxError::Unsupported {
            mechanism: "seccomp",
            reason: "this kernel cannot install seccomp filters".into(),
            fix: "use a kernel built with CONFIG_SECCOMP_FILTER=y, or opt into weaker isolation for this run".into(),
        });
    };
    let both = landlock.is_some() && seccomp.is_some();
    let (net_state, net_detail) = match policy.network {
        NetworkAccess::None if both => (Enforced, "no sockets but socketpair (seccomp) and no TCP (Landlock): no network, no loopback service, no Unix socket"),
        NetworkAccess::HttpsOnly if both => (Enforced, "TCP connect to port 443 only, no bind (Landlock); IPv4, IPv6 and netlink route sockets only (seccomp); UDP destinations are not restricted"),
        NetworkAccess::Full => (Unrestricted, "the policy grants full network"),
        _ => (NotEnforced, "Landlock or seccomp is missing; network not confined (explicit opt-in)"),
    };
    rep.push(Guarantee::Network, net_state, net_detail);
    let pids_max =
        (policy.processes == ProcessAccess::Limited).then_some(policy.rlimits.processes).flatten();
    let cgroup = crate::cgroup::RunCgroup::create(
        pids_max,
        policy.rlimits.memory,
        policy.rlimits.cpu_percent,
    )
    .map_err(|e| SandboxError::Policy(format!("cannot create the run's cgroup: {e}")))?;
    let pids_in_cgroup =
        pids_max.is_some() && crate::cgroup::available(crate::cgroup::Controller::Pids);
    // Without a pids cgroup, a non-root run in its own user namespace can still be bounded:
    // since Linux 5.14 RLIMIT_NPROC counts per user namespace, so in the run's namespace it
    // counts the run's processes and threads only (measured: with 8 other processes of the
    // same user running, a limit of 5 let the run fork 4 children; outside a namespace it
    // let it fork none). Root is exempt from RLIMIT_NPROC, but root gets the cgroup.
    let own_user_namespace = policy.pid_namespace && host.user_namespaces;
    let nproc_limit = match pids_max {
        Some(n)
            if !pids_in_cgroup
                && own_user_namespace
                && !host.root
                && host.nproc_per_user_namespace =>
        {
            Some(n)
        }
        _ => None,
    };
    let (proc_state, proc_detail) = match policy.processes {
        ProcessAccess::None if seccomp.is_some() => (
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
            Some(n) if nproc_limit.is_some() => (
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
    rep.push(Guarantee::Processes, proc_state, proc_detail);
    rep.push(Guarantee::Privileges, Enforced, if host.root {
        "no_new_privs; every capability dropped (bounding, ambient, permitted, effective), so uid 0 gains nothing from any exec"
    } else {
        "no_new_privs: no privilege gain through setuid or file capabilities"
    });

    // Resource limits.
    let r = &policy.rlimits;
    let mut rlimits = vec![(libc::RLIMIT_CORE as libc::c_int, lim(0))];
    let mut applied = vec!["core dumps off".to_string()];
    if let Some(n) = nproc_limit {
        rlimits.push((libc::RLIMIT_NPROC as libc::c_int, lim(n)));
        applied.push(format!("processes {n} (in the run's user namespace)"));
    }
    for (res, v, what) in [
        (libc::RLIMIT_NOFILE, r.open_files, "open files"),
        (libc::RLIMIT_FSIZE, r.file_size, "file size"),
        (libc::RLIMIT_CPU, r.cpu_seconds, "CPU seconds"),
        (libc::RLIMIT_AS, r.address_space, "address space"),
    ] {
        if let Some(v) = v {
            rlimits.push((res as libc::c_int, lim(v)));
            applied.push(format!("{what} {v}"));
        }
    }
    let memory_in_cgroup = cgroup.as_ref().is_some_and(|c| c.limits_memory());
    match r.memory {
        Some(m) if memory_in_cgroup => rep.push(
            Guarantee::Memory,
            Enforced,
            format!("memory cgroup: {} MiB for the whole run; the kernel kills it beyond", m >> 20),
        ),
        Some(m) => {
            if r.address_space.is_none() {
                rlimits.push((libc::RLIMIT_AS as libc::c_int, lim(m)));
            }
            rep.push(
                Guarantee::Memory,
                Enforced,
                format!(
                    "RLIMIT_AS {} MiB per process (address space, not resident memory; no \
                     memory cgroup can be created here)",
                    m >> 20
                ),
            );
        }
        None => rep.push(Guarantee::Memory, Unrestricted, "no memory limit was given"),
    }
    match r.cpu_percent {
        Some(p) if cgroup.as_ref().is_some_and(|c| c.limits_cpu()) => rep.push(
            Guarantee::CpuShare,
            Enforced,
            format!("cpu cgroup quota: {p}% of one CPU for the whole run"),
        ),
        Some(p) => rep.push(
            Guarantee::CpuShare,
            NotEnforced,
            format!(
                "{p}% of one CPU is not enforced: no cpu cgroup can be created here (CPU time is \
                 still bounded by RLIMIT_CPU)"
            ),
        ),
        None => rep.push(Guarantee::CpuShare, Unrestricted, "no CPU share was given"),
    }
    rep.push(
        Guarantee::ResourceLimits,
        Enforced,
        format!("rlimits (hard = soft, cannot be raised): {}", applied.join(", ")),
    );

    let namespaces = if policy.pid_namespace && host.user_namespaces {
        // SAFETY: getuid/getgid have no failure mode and no memory effects.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        rep.push(
            Guarantee::TreeKill,
            Enforced,
            "a new PID namespace: when the run's first process ends, or skillbox itself dies \
             (even by SIGKILL), the kernel kills every process of the run",
        );
        Some([
            (cstr(b"/proc/self/setgroups")?, "deny".to_string()),
            (cstr(b"/proc/self/uid_map")?, format!("{uid} {uid} 1")),
            (cstr(b"/proc/self/gid_map")?, format!("{gid} {gid} 1")),
        ])
    } else {
        let why = if policy.pid_namespace {
            "no unprivileged user namespaces here: if skillbox itself is killed, the run's \
             processes are not"
        } else {
            "not asked for: if skillbox itself is killed, the run's processes are not"
        };
        rep.push(
            Guarantee::TreeKill,
            if policy.pid_namespace { NotEnforced } else { Unrestricted },
            why,
        );
        None
    };
    match r.disk_write_bytes {
        Some(max) if !crate::diskio::available() => rep.push(
            Guarantee::DiskWrites,
            NotEnforced,
            format!(
                "the total of {max} bytes is not enforced: this kernel keeps no per-process \
                 I/O counters (/proc/PID/io, CONFIG_TASK_IO_ACCOUNTING); each file is still \
                 capped by RLIMIT_FSIZE"
            ),
        ),
        Some(max) => rep.push(
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
                if namespaces.is_some() {
                    "only children of a parent that ignores SIGCHLD, with the PID namespace"
                } else {
                    "orphans, and children of a parent that ignores SIGCHLD: no PID namespace"
                },
            ),
        ),
        None => rep.push(Guarantee::DiskWrites, Unrestricted, "no total of disk writes was given"),
    }
    let mut argv = vec![cstr(spec.program.as_os_str().as_bytes())?];
    for a in &spec.args {
        argv.push(cstr(a.as_bytes())?);
    }
    let mut envp = Vec::with_capacity(spec.env.len());
    for (k, v) in &spec.env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        envp.push(cstr(&kv)?);
    }
    Ok((
        Prepared {
            program: cstr(spec.program.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd: cstr(spec.cwd.as_os_str().as_bytes())?,
            rlimits,
            cgroup,
            namespaces,
            drop_caps: true,
            caps_required: host.root,
            landlock,
            seccomp,
        },
        rep,
    ))
}

fn lim(v: u64) -> libc::rlimit {
    libc::rlimit { rlim_cur: v as libc::rlim_t, rlim_max: v as libc::rlim_t }
}

fn open_dev_null() -> Result<OwnedFd, SandboxError> {
    let f = std::fs::File::open("/dev/null").map_err(SandboxError::Supervise)?;
    Ok(OwnedFd::from(f))
}

/// Moves a descriptor to 3 or above, so that the child's dup2 onto 0..2 never clobbers
/// another of its inputs (an embedding program may have closed its own stdio).
fn cloexec_fd(fd: OwnedFd) -> Result<OwnedFd, SandboxError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: duplicates a descriptor we own; the new one is owned by the returned OwnedFd.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(SandboxError::Supervise(std::io::Error::last_os_error()));
    }
    // SAFETY: `n` is a fresh descriptor returned by fcntl.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// A pipe: the read end non-blocking for the supervisor, the write end blocking for the child.
fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(SandboxError::Supervise(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (r, w) = (cloexec_fd(r)?, cloexec_fd(w)?);
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fl = libc::fcntl(r.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(r.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok((r, w))
}

type Reader = (JoinHandle<()>, std::sync::Arc<std::sync::Mutex<Capture>>);

fn reader(fd: OwnedFd, limit: usize) -> Result<Reader, SandboxError> {
    let stream =
        tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(SandboxError::Supervise)?;
    Ok(read_into(stream, limit))
}

fn read_into<R: AsyncRead + Unpin + Send + 'static>(mut stream: R, limit: usize) -> Reader {
    let capture = std::sync::Arc::new(std::sync::Mutex::new(Capture::new(limit)));
    let shared = capture.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => match shared.lock() {
                    Ok(mut c) => c.push(&buf[..n]),
                    Err(_) => break,
                },
            }
        }
    });
    (task, capture)
}

async fn drain((mut task, capture): Reader) -> CapturedOutput {
    if tokio::time::timeout(DRAIN_GRACE, &mut task).await.is_err() {
        task.abort();
    }
    let taken = match capture.lock() {
        Ok(mut c) => std::mem::replace(&mut *c, Capture::new(0)),
        Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), Capture::new(0)),
    };
    taken.finish()
}
