use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::output::Capture;
use crate::plan::Plan;
use crate::probe::HostSupport;
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
    /// More processes at once than `processes`, counted by the watchdog where no pids
    /// cgroup or per-namespace `RLIMIT_NPROC` bounds the run (with those, a fork past the
    /// limit fails instead and the run goes on).
    Processes,
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
            Self::Processes => "processes",
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
    /// Entries the run left under a [`crate::Policy::protected`] name in a writable tree,
    /// taken away after it (see [`crate::Planted`]), and whether the sweep was complete.
    pub planted: crate::Planted,
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
    /// The supervisor the run's group is registered with, if it is.
    supervisor: Option<Arc<crate::supervisor::Supervisor>>,
    /// The sweep for planted protected names, made once every process of the run is gone
    /// (by the run, or here for a run dropped before its end).
    sweep: Option<crate::planted::Sweep>,
    /// The run's mount namespace, released with the reaper.
    _held: HeldNamespace,
}

/// A reference to a run's mount namespace (see `crate::metadata::hold`): dropped on tokio's
/// blocking pool where there is one, since the last reference's drop waits for the kernel
/// to tear the namespace down.
struct HeldNamespace(Option<OwnedFd>);

impl Drop for HeldNamespace {
    fn drop(&mut self) {
        let Some(fd) = self.0.take() else { return };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            drop(rt.spawn_blocking(move || drop(fd)));
        }
    }
}

impl Reaper {
    /// Kills every process of the run, then takes the group off the supervisor's list. The
    /// group id is the pid of our child, which is not reaped yet (a zombie keeps its pid and
    /// group), so it cannot name a recycled, unrelated group.
    fn kill_group(&self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        if let Some(s) = &self.supervisor {
            s.unregister(self.pid);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.kill_group();
        let Some(pid) = rustix::process::Pid::from_raw(self.pid) else { return };
        let sweep = self.sweep.take();
        // The leader dies at once, but not synchronously; reap it off this thread, then
        // take what the run planted (no one is there to report it to: the quarantine holds
        // it).
        std::thread::spawn(move || {
            let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty());
            if let Some(sweep) = sweep {
                sweep.after(pid.as_raw_nonzero().get());
            }
        });
    }
}

/// Starts the child described by `spec` under its policy, supervises it to the end, and
/// returns its outcome.
///
/// Dropping the future kills the child's process group (with a PID namespace, its first
/// process, whose end takes every other with it). Without a PID namespace the filter denies
/// `setsid` and `setpgid`, so that group holds every process of the run.
pub async fn run(spec: &ChildSpec) -> Result<ChildOutcome, SandboxError> {
    spec.check()?;
    let plan = crate::plan::plan(&spec.policy, spec.allow_weaker, host())?;
    let supervisor = match plan.supervisor {
        true => Some(crate::supervisor::get().map_err(SandboxError::Policy)?),
        false => None,
    };
    let mut census = crate::planted::Census::default();
    // Where the host cannot give a `loopback` policy its namespace (weaker isolation, as the
    // report says), the child gets the network the plan fell back to.
    let fallback;
    let policy = match plan.network == spec.policy.network {
        true => &spec.policy,
        false => {
            fallback = crate::Policy { network: plan.network, ..spec.policy.clone() };
            &fallback
        }
    };
    let mut prepared = prepare(spec, policy, &plan, supervisor.as_deref(), &mut census)?;
    let sweep = crate::planted::Sweep::new(&spec.policy, census);
    let mut enforcement = plan.report;
    say_passed(&mut enforcement, spec);

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
    // Taken at once, before a short program can end: the run's mount namespace is then torn
    // down when this is dropped, off the path of the result (see `crate::metadata`).
    let held = HeldNamespace(
        (prepared.mounts.is_some() || prepared.metadata.is_some())
            .then(|| crate::metadata::hold(spawned.pidfd.as_fd(), spawned.pid))
            .flatten(),
    );
    let cgroup = prepared.cgroup.take();
    let pid_namespace = prepared.namespaces.is_some();
    // The child has exec'd, so the listener of its network namespace is waiting in the pair.
    let listener = prepared.loopback.as_ref().map(|pass| {
        let step = crate::spawn::Stage::Network.describe();
        pass.receive().map_err(|source| SandboxError::Confine { step, source })
    });
    // The run's cgroup lists its processes far more cheaply than a walk of /proc, but only
    // when they cannot leave it: Landlock, or the run's own root (which holds no cgroup
    // file system but read-only), keeps them from writing any cgroup.procs.
    let members_in_cgroup =
        spec.policy.confine_files && (prepared.landlock.is_some() || prepared.mounts.is_some());
    drop((stdin, out_w, err_w, prepared));
    let mut reaper = Reaper { pid: spawned.pid, done: false, supervisor, sweep, _held: held };
    // Handed over only now, with the reaper set: a failure above kills the run.
    match (listener.transpose()?, &spec.listener) {
        (Some(listener), Some(sink)) => sink.take(listener),
        // Nobody serves the door: closing it leaves the run's namespace with none.
        (Some(listener), None) => drop(listener),
        (None, _) => {}
    }
    if let Some(sink) = &spec.on_start {
        sink.take(spawned.pid);
    }

    let observed = |stream| spec.observer.clone().map(|o| (o, stream));
    let stdout = reader(out_r, spec.output_limit, observed(crate::Stream::Stdout))?;
    let stderr = reader(err_r, spec.output_limit, observed(crate::Stream::Stderr))?;

    // SAFETY: the pidfd is an OwnedFd moved into the AsyncFd, so it stays open and names
    // the same process for the AsyncFd's whole life.
    let pidfd =
        unsafe { AsyncFd::register_with_interest(spawned.pidfd, tokio::io::Interest::READABLE) }
            .map_err(|e| SandboxError::Supervise(e.into()))?;
    let limits = Watch {
        timeout: spec.timeout,
        write_limit: spec.policy.rlimits.disk_write_bytes.filter(|_| crate::diskio::available()),
        process_limit: plan.watched_processes,
    };
    let walk = crate::members::Members::Walk {
        pgid: spawned.pid,
        namespace: pid_namespace.then(|| crate::members::namespace_of(spawned.pid)).flatten(),
    };
    let listed = cgroup.as_ref().filter(|_| members_in_cgroup).map(crate::members::Members::Cgroup);
    let list_run = || listed.as_ref().and_then(|m| m.list()).or_else(|| walk.list());
    let watched = watch(&pidfd, started, &limits, list_run).await?;
    // The last count, before the rest of the group is killed: with a PID namespace the
    // leader has already reaped every other process of the run (the kernel kills and reaps
    // them when PID 1 of a namespace exits), so its own counters hold the total. A normal
    // user cannot read a zombie's counters; its rusage below gives the same total then.
    let last = if pid_namespace {
        crate::diskio::of_process(spawned.pid)
    } else {
        crate::diskio::of_group(spawned.pid)
    };
    let written = watched.written.max(last.bytes);
    // Whatever happened, nothing of the group outlives the run. The leader is unreaped
    // (alive or a zombie), so the group id is still ours.
    reaper.kill_group();
    if watched.timed_out || watched.stopped.is_some() {
        let _ready = pidfd.readable().await.map_err(SandboxError::Supervise)?;
    }
    // The leader has exited and is not reaped yet: its CPU time as RLIMIT_CPU counts it
    // can still be read.
    let cpu_limit = spec.policy.rlimits.cpu_seconds.map(Duration::from_secs);
    let cpu_counted = cpu_limit.and_then(|_| rlimit_cpu_time(spawned.pid));
    let reaped = reap(spawned.pid);
    reaper.done = true;
    // Once no process of the run is left to plant again, whatever its end.
    let planted = reaper.sweep.take().map(|s| s.after(spawned.pid)).unwrap_or_default();
    let (status, usage) = reaped?;
    let wall_time = started.elapsed();
    let status = if watched.timed_out { ExitStatus::TimedOut } else { status };
    let oom = cgroup.as_ref().is_some_and(|c| c.oom_killed());
    let peak_kib = cgroup.as_ref().and_then(|c| c.memory_peak()).map(|b| b >> 10);
    let processes_peak = cgroup.as_ref().and_then(|c| c.processes_peak()).or(watched.processes);
    // The groups are removed off the path of the result, once the run's killed processes
    // have left them (the same happens when a cancelled run drops them).
    drop(cgroup);
    // ru_oublock is write_bytes less cancelled writes, in 512-byte blocks, of the leader
    // and the children it reaped: a floor when /proc could not be read at the end.
    let written = written.max((usage.ru_oublock as u64).saturating_mul(512));
    let limit = limit_reached(&Ending {
        status,
        oom,
        stopped: watched.stopped,
        cpu_reached: cpu_limit_reached(cpu_limit, cpu_counted, status),
        over_writes: limits.write_limit.is_some_and(|max| written > max),
    });
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
        planted,
    })
}

/// What the wait for the end of a run watches besides the leader's exit.
struct Watch {
    /// The wall-clock limit.
    timeout: Duration,
    /// The total of disk writes, where the kernel keeps the counters it is summed from.
    write_limit: Option<u64>,
    /// The process count, where no kernel limit holds it.
    process_limit: Option<u64>,
}

/// How the wait for the end of a run ended.
struct Watched {
    /// The wall-clock limit passed.
    timed_out: bool,
    /// The watchdog stopped the run: the disk-write total was over, a process's counters
    /// could not be read (so the total could not be known), or too many processes ran.
    stopped: Option<Limit>,
    /// The most the watchdog saw written.
    written: u64,
    /// The most processes the watchdog saw at once, when it counted them.
    processes: Option<u64>,
}

/// Waits for the leader's exit (`pidfd` readable), the timeout, or, when a limit needs it,
/// the watchdog, which lists the run's processes (`list_run`) every
/// [`crate::diskio::POLL`]: it sums their write counters against the total of disk writes,
/// and counts them against the process limit.
async fn watch(
    pidfd: &AsyncFd<OwnedFd>,
    started: Instant,
    limits: &Watch,
    list_run: impl Fn() -> Option<Vec<i32>>,
) -> Result<Watched, SandboxError> {
    // A timeout too large for an Instant (a caller's "no limit") never passes.
    let deadline = started.checked_add(limits.timeout);
    let sampled = limits.write_limit.is_some() || limits.process_limit.is_some();
    let mut seen = Watched { timed_out: false, stopped: None, written: 0, processes: None };
    loop {
        let left = deadline.map_or(limits.timeout, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            seen.timed_out = true;
            return Ok(seen);
        }
        let poll = match limits.process_limit {
            Some(_) => crate::members::PROCESS_POLL,
            None => crate::diskio::POLL,
        };
        let wait = if sampled { left.min(poll) } else { left };
        match tokio::time::timeout(wait, pidfd.readable()).await {
            Ok(Ok(_)) => {
                // One last count before the run's group is killed: a fork bomb can keep
                // skillbox off the CPU for longer than the interval (64 ms measured on two
                // busy cores), and its processes are still there to be counted now.
                seen.stopped = last_count(limits, &list_run, &mut seen);
                return Ok(seen);
            }
            Ok(Err(e)) => return Err(SandboxError::Supervise(e)),
            Err(_) => {}
        }
        if !sampled {
            continue;
        }
        if let Some(stop) = check(limits, &list_run, &mut seen) {
            seen.stopped = Some(stop);
            return Ok(seen);
        }
    }
}

/// The watchdog's count of the processes a run's first process left when it exited: the
/// process limit if they are more than it allows. Disk writes are not sampled again here:
/// the first process's own counters decide them after the run.
fn last_count(
    limits: &Watch,
    list_run: &impl Fn() -> Option<Vec<i32>>,
    seen: &mut Watched,
) -> Option<Limit> {
    let max = limits.process_limit?;
    let count = list_run()?.len() as u64;
    seen.processes = Some(seen.processes.unwrap_or(0).max(count));
    (count > max).then_some(Limit::Processes)
}

/// One look of the watchdog: the limit the run is over, if any, having recorded in `seen`
/// what it found. A run whose processes cannot be listed is over both limits it watches.
fn check(
    limits: &Watch,
    list_run: &impl Fn() -> Option<Vec<i32>>,
    seen: &mut Watched,
) -> Option<Limit> {
    let Some(pids) = list_run() else {
        return limits.write_limit.map(|_| Limit::DiskWriteUnreadable).or(Some(Limit::Processes));
    };
    if let Some(max) = limits.process_limit {
        let count = pids.len() as u64;
        seen.processes = Some(seen.processes.unwrap_or(0).max(count));
        if count > max {
            return Some(Limit::Processes);
        }
    }
    let max = limits.write_limit?;
    let sample = crate::diskio::of_pids(pids);
    if !over(sample, max) {
        seen.written = seen.written.max(sample.bytes);
        return None;
    }
    // A child reaped between reading it and reading its parent is counted twice in one
    // sample; a second sample confirms before the run is killed.
    let again = list_run()
        .map_or(crate::diskio::Sample { bytes: 0, unreadable: 1 }, crate::diskio::of_pids);
    if !over(again, max) {
        return None;
    }
    seen.written = seen.written.max(again.bytes);
    Some(if again.bytes > max { Limit::DiskWrite } else { Limit::DiskWriteUnreadable })
}

/// Reaps the leader, which has exited (its pidfd is readable): how it ended, and the
/// resources it and the children it waited for used.
fn reap(pid: libc::pid_t) -> Result<(ExitStatus, libc::rusage), SandboxError> {
    let mut status = 0;
    // SAFETY: rusage is plain data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes only `status` and `usage`, for our own child, which has exited,
    // so it returns at once. (rustix has no wait4 that returns the rusage.)
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r < 0 {
        return Err(SandboxError::Supervise(std::io::Error::last_os_error()));
    }
    let status = if libc::WIFEXITED(status) {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    } else {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    };
    Ok((status, usage))
}

/// What is known of a run's end once its leader is reaped, for [`limit_reached`].
#[derive(Debug, Clone, Copy)]
struct Ending {
    /// How the leader ended (`TimedOut` when the wall-clock limit passed).
    status: ExitStatus,
    /// The memory cgroup counted an OOM kill.
    oom: bool,
    /// The disk-write watchdog stopped the run, and why.
    stopped: Option<Limit>,
    /// The leader's CPU time reached `RLIMIT_CPU` (see [`cpu_limit_reached`]).
    cpu_reached: bool,
    /// More was written than the total, counted after the end.
    over_writes: bool,
}

/// The limit that stopped a run, if one did. The memory cgroup's kill comes first (the
/// kernel's SIGKILL says nothing else), then the watchdog's own decision, then the CPU
/// limit, then a write past the file size (`SIGXFSZ`), then a total found over only at the
/// end (a run that wrote and exited between two samples).
fn limit_reached(e: &Ending) -> Option<Limit> {
    match e.status {
        _ if e.oom => Some(Limit::Memory),
        _ if e.stopped.is_some() => e.stopped,
        ExitStatus::Signaled(_) | ExitStatus::TimedOut if e.cpu_reached => Some(Limit::Cpu),
        ExitStatus::Signaled(libc::SIGXFSZ) => Some(Limit::FileSize),
        _ if e.over_writes => Some(Limit::DiskWrite),
        _ => None,
    }
}

/// Whether the leader's CPU time reached its limit. RLIMIT_CPU is set hard = soft, so the
/// kernel stops the leader with SIGKILL (never SIGXCPU) once its count reaches the limit;
/// that count (`counted`, read before the reap) tells the kernel's kill from any other
/// SIGKILL. When the limit equals the timeout, a busy run reaches both at about the same
/// moment: whichever kill landed first, a count at the limit means the CPU limit was
/// reached, and that is what is reported.
fn cpu_limit_reached(
    limit: Option<Duration>,
    counted: Option<Duration>,
    status: ExitStatus,
) -> bool {
    match (limit, counted) {
        (Some(max), Some(used)) => used >= max,
        // The count could not be read: only the signal of a soft limit is evidence.
        _ => status == ExitStatus::Signaled(libc::SIGXCPU),
    }
}

/// The enforcement report `spec` would get, without starting anything: what `skillbox info`
/// and `skillbox doctor` show. Fails where [`run`] would refuse: a mechanism the host lacks
/// (without [`ChildSpec::allow_weaker`]), or a grant the Landlock ruleset (or the run's mount
/// namespace) cannot take (a path through a symbolic link, a writable tree too large to
/// examine), for which the ruleset (or the mount program) is built and closed again. Nothing
/// else is made: no cgroup, no process, no mount, no work ahead for a later run.
pub fn preview(spec: &ChildSpec) -> Result<Enforcement, SandboxError> {
    spec.check()?;
    let plan = crate::plan::plan(&spec.policy, spec.allow_weaker, host())?;
    if plan.landlock {
        crate::landlock::check(&spec.policy).map_err(|e| SandboxError::Policy(e.to_string()))?;
    }
    if plan.mounts {
        // Opened and closed again: nothing is mounted.
        crate::mountns::build(&spec.policy).map_err(|e| SandboxError::Policy(e.to_string()))?;
    }
    if let Some(shape) = plan.seccomp {
        crate::seccomp::program(shape).map_err(|e| SandboxError::Policy(e.to_string()))?;
    }
    let mut report = plan.report;
    say_passed(&mut report, spec);
    Ok(report)
}

/// The report's descriptors line names the descriptors the spec passes, when it does.
fn say_passed(report: &mut Enforcement, spec: &ChildSpec) {
    if spec.passed_fds.is_empty() {
        return;
    }
    let last = 2 + spec.passed_fds.len();
    for m in report.mechanisms.iter_mut().filter(|m| m.name == crate::Guarantee::Descriptors) {
        m.detail.push_str(&format!(
            "; and descriptors 3 to {last}, which the caller passed (its protocol pipes)"
        ));
    }
}

/// Makes `plan` real for `spec`: the one step of preparing a run that has effects. Builds
/// the Landlock ruleset (opening every granted tree) or the mount program of the run's own
/// root, takes the seccomp program (compiled once per shape), creates the run's cgroups,
/// and lays out the argument vector, the environment and the id maps of the new user
/// namespace, all before the clone. The walk of the writable trees leaves its census in
/// `census`, for the sweep after the run.
fn prepare(
    spec: &ChildSpec,
    policy: &crate::Policy,
    plan: &Plan,
    supervisor: Option<&crate::supervisor::Supervisor>,
    census: &mut crate::planted::Census,
) -> Result<Prepared, SandboxError> {
    let cstr = |b: &[u8]| CString::new(b).map_err(|_| SandboxError::InvalidSpec("NUL byte".into()));
    let mut marks =
        plan.metadata.filter(|m| m.read_only).map(|_| crate::metadata::Marks::default());
    let landlock = if plan.landlock {
        let built = crate::landlock::build(policy, census, marks.as_mut());
        Some(built.map_err(|e| SandboxError::Policy(e.to_string()))?)
    } else {
        None
    };
    let metadata = plan.metadata.map(|m| {
        // The new /proc gets the rights the host's has, where a ruleset confines files.
        let proc_access = match landlock.is_some() && policy.confine_files {
            true => crate::landlock::proc_access(),
            false => 0,
        };
        let marks = marks.take().unwrap_or_default();
        crate::metadata::build(marks, m.read_only, m.proc_, proc_access)
    });
    let mounts = match plan.mounts {
        true => {
            let built = crate::mountns::build_counted(policy, census);
            Some(built.map_err(|e| SandboxError::Policy(e.to_string()))?)
        }
        false => None,
    };
    let seccomp = match plan.seccomp {
        Some(shape) => {
            Some(crate::seccomp::program(shape).map_err(|e| SandboxError::Policy(e.to_string()))?)
        }
        None => None,
    };
    let cgroup = match plan.cgroups {
        Some(c) => crate::cgroup::RunCgroup::create(c.pids_max, c.memory, c.cpu_percent)
            .map_err(|e| SandboxError::Policy(format!("cannot create the run's cgroup: {e}")))?,
        None => None,
    };
    let namespaces = plan.namespaces.then(crate::spawn::own_id_maps);
    let mut rlimits: Vec<(libc::c_int, libc::rlimit)> =
        plan.rlimits.iter().map(|&(res, v)| (res, lim(v))).collect();
    if let Some(n) = plan.nproc_backstop {
        // Outside a user namespace RLIMIT_NPROC counts every thread of the user. At the
        // host's thread count plus the run's count plus a margin, the user's other
        // processes cannot stop the run early unless they start more than the margin
        // meanwhile, and a fork bomb that outruns the watchdog stops there. No count
        // readable: no backstop.
        if let Some(threads) = crate::members::host_threads() {
            let max = threads.saturating_add(n).saturating_add(crate::members::NPROC_MARGIN);
            rlimits.push((libc::RLIMIT_NPROC as libc::c_int, lim(max)));
        }
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
    Ok(Prepared {
        program: cstr(spec.program.as_os_str().as_bytes())?,
        argv,
        envp,
        cwd: cstr(spec.cwd.as_os_str().as_bytes())?,
        rlimits,
        cgroup,
        namespaces,
        mounts,
        metadata,
        stdin_null: true,
        drop_caps: true,
        caps_required: plan.caps_required,
        landlock,
        seccomp,
        supervisor_fd: supervisor.map(|s| s.fd()),
        loopback: match plan.loopback {
            Some(port) => Some(
                crate::netns::Passing::new(port)
                    .map_err(|e| SandboxError::Policy(format!("cannot make a socket pair: {e}")))?,
            ),
            None => None,
        },
        passed: spec.take_passed()?,
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
    rustix::io::fcntl_dupfd_cloexec(&fd, 3).map_err(|e| SandboxError::Supervise(e.into()))
}

/// A pipe (close-on-exec), both ends at 3 or above. The write end stays blocking for the
/// child; the read end is made non-blocking for the supervisor where it is handed to tokio
/// (`Receiver::from_owned_fd`, see [`reader`]).
fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let (r, w) = std::io::pipe().map_err(SandboxError::Supervise)?;
    Ok((cloexec_fd(r.into())?, cloexec_fd(w.into())?))
}

type Reader = (JoinHandle<()>, std::sync::Arc<std::sync::Mutex<Capture>>);

/// Reads `fd`, the read end of a pipe, into a capture of `limit` bytes on a task of its own.
/// tokio sets the descriptor non-blocking.
fn reader(
    fd: OwnedFd,
    limit: usize,
    observer: Option<(crate::OutputObserver, crate::Stream)>,
) -> Result<Reader, SandboxError> {
    let stream =
        tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(SandboxError::Supervise)?;
    Ok(read_into(stream, limit, observer))
}

fn read_into<R: AsyncRead + Unpin + Send + 'static>(
    mut stream: R,
    limit: usize,
    observer: Option<(crate::OutputObserver, crate::Stream)>,
) -> Reader {
    let capture = std::sync::Arc::new(std::sync::Mutex::new(Capture::new(limit)));
    let shared = capture.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some((o, which)) = &observer {
                        o.see(*which, &buf[..n]);
                    }
                    match shared.lock() {
                        Ok(mut c) => c.push(&buf[..n]),
                        Err(_) => break,
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;

    fn ending(status: ExitStatus) -> Ending {
        Ending { status, oom: false, stopped: None, cpu_reached: false, over_writes: false }
    }

    /// Which limit a run is said to have reached, for each way it can end: the memory
    /// cgroup's kill first, then the watchdog, the CPU count, SIGXFSZ, a total over at the
    /// end; nothing for an ordinary exit or another signal.
    #[test]
    fn the_limit_reported_is_the_one_that_stopped_the_run() {
        let killed = ExitStatus::Signaled(libc::SIGKILL);
        let cases = [
            (ending(ExitStatus::Exited(0)), None),
            (ending(killed), None),
            (ending(ExitStatus::TimedOut), None),
            (Ending { oom: true, cpu_reached: true, ..ending(killed) }, Some(Limit::Memory)),
            (
                Ending { oom: true, stopped: Some(Limit::DiskWrite), ..ending(killed) },
                Some(Limit::Memory),
            ),
            (
                Ending { stopped: Some(Limit::DiskWriteUnreadable), ..ending(killed) },
                Some(Limit::DiskWriteUnreadable),
            ),
            (
                Ending { stopped: Some(Limit::DiskWrite), cpu_reached: true, ..ending(killed) },
                Some(Limit::DiskWrite),
            ),
            (Ending { cpu_reached: true, ..ending(killed) }, Some(Limit::Cpu)),
            (Ending { cpu_reached: true, ..ending(ExitStatus::TimedOut) }, Some(Limit::Cpu)),
            // A program that exits by itself has not been stopped by its CPU limit.
            (Ending { cpu_reached: true, ..ending(ExitStatus::Exited(0)) }, None),
            (ending(ExitStatus::Signaled(libc::SIGXFSZ)), Some(Limit::FileSize)),
            (
                Ending { cpu_reached: true, ..ending(ExitStatus::Signaled(libc::SIGXFSZ)) },
                Some(Limit::Cpu),
            ),
            (Ending { over_writes: true, ..ending(ExitStatus::Exited(0)) }, Some(Limit::DiskWrite)),
            (
                Ending { over_writes: true, ..ending(ExitStatus::Signaled(libc::SIGXFSZ)) },
                Some(Limit::FileSize),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(limit_reached(&e), want, "{e:?}");
        }
    }

    /// The CPU limit counts as reached when the kernel's count reached it; without a count,
    /// only SIGXCPU says so.
    #[test]
    fn the_cpu_limit_is_read_from_the_count_and_else_from_sigxcpu() {
        let s = Duration::from_secs;
        let killed = ExitStatus::Signaled(libc::SIGKILL);
        assert!(cpu_limit_reached(Some(s(2)), Some(s(2)), killed));
        assert!(cpu_limit_reached(Some(s(2)), Some(s(3)), ExitStatus::TimedOut));
        assert!(!cpu_limit_reached(Some(s(2)), Some(Duration::from_millis(1999)), killed));
        assert!(!cpu_limit_reached(Some(s(2)), None, killed));
        assert!(cpu_limit_reached(Some(s(2)), None, ExitStatus::Signaled(libc::SIGXCPU)));
        assert!(!cpu_limit_reached(None, None, killed));
    }

    /// A leader in its own process group with a background child: `sh` prints the child's
    /// pid and waits. The leader is left unreaped: reaping it is the reaper's job under test.
    #[expect(clippy::zombie_processes, reason = "the reaper under test waits for the leader")]
    fn group_with_a_background_child() -> (i32, i32) {
        let mut leader = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 60 & echo $!; wait"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(leader.stdout.take().unwrap()).read_line(&mut line).unwrap();
        (leader.id() as i32, line.trim().parse().unwrap())
    }

    /// `None` when there is no process `pid` (reaped), else its state letter.
    fn state(pid: i32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat[stat.rfind(')')? + 1..].trim_start().chars().next()
    }

    /// Waits (at most 10 s) until `done` holds.
    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// A run dropped before its end (a cancelled future) kills its whole process group and
    /// reaps the leader: nothing is left running, and no zombie of ours stays behind.
    #[test]
    fn a_dropped_reaper_kills_the_group_and_reaps_the_leader() {
        let (leader, background) = group_with_a_background_child();
        assert_eq!(state(leader).map(|s| s != 'Z'), Some(true), "control: the leader runs");
        let held = HeldNamespace(None);
        drop(Reaper { pid: leader, done: false, supervisor: None, sweep: None, _held: held });
        assert!(eventually(|| state(leader).is_none()), "the leader was not reaped");
        let dead = |pid| matches!(state(pid), None | Some('Z') | Some('X'));
        assert!(eventually(|| dead(background)), "the background child survived");
    }

    /// The groups made for a run are the ones its plan reported, from the host's facts
    /// alone: a memory group where the memory line says so, a CPU quota where the
    /// cpu-share line says so. Needs a host where this process makes groups (root).
    #[test]
    fn the_groups_made_are_the_ones_the_report_promised() {
        let h = host();
        if !(h.cgroup_memory_writable || h.cgroup_cpu || h.cgroup_pids) {
            assert!(!h.root, "root must be able to create cgroups on this host");
            eprintln!("!!! NOT CHECKED: this user makes no cgroups here");
            return;
        }
        let mut spec = ChildSpec::new("/bin/true", "/");
        spec.policy.processes = crate::ProcessAccess::Limited;
        spec.policy.rlimits.processes = Some(8);
        spec.policy.rlimits.memory = Some(64 << 20);
        spec.policy.rlimits.cpu_percent = Some(20);
        let plan = crate::plan::plan(&spec.policy, false, h).unwrap();
        let prepared = prepare(&spec, &spec.policy, &plan, None, &mut Default::default()).unwrap();
        let cg = prepared.cgroup.as_ref().expect("a group");
        let said = |g, how: &str| plan.report.line(g).unwrap().detail.starts_with(how);
        assert_eq!(cg.limits_memory(), said(crate::Guarantee::Memory, "memory cgroup"));
        assert_eq!(cg.limits_cpu(), said(crate::Guarantee::CpuShare, "cpu cgroup"));
    }
}
