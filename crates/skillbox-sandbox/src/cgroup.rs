//! A cgroup per run, where this process may create one (root, or a delegated subtree): the
//! kernel then bounds the whole run's process count (`pids`) and memory (`memory`), which
//! rlimits cannot do (`RLIMIT_NPROC` counts every process of the user and root ignores it;
//! `RLIMIT_AS` limits address space per process, not memory of the tree).
//!
//! The child joins the groups itself, between clone and exec, by writing `0` to each
//! `tasks` (v1) or `cgroup.procs` (v2) descriptor opened here, so every process it creates
//! is counted from the start. cgroup v1 (one hierarchy per controller) and v2 (one
//! hierarchy) are both handled.
//!
//! Every group this process makes is recorded until it is removed. A group is given back
//! when its run is over, finished or cancelled ([`RunCgroup`]'s `Drop`), and a thread of
//! this module removes it once its processes have left (see [`release`]); at normal exit
//! every group still recorded is removed (see [`remove_all_at_exit`]).

use std::collections::{BTreeSet, HashMap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// A controller this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Controller {
    /// `pids`: the number of processes.
    Pids,
    /// `memory`: memory of the whole group.
    Memory,
    /// `cpu`: share of CPU time of the whole group.
    Cpu,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Self::Pids => "pids",
            Self::Memory => "memory",
            Self::Cpu => "cpu",
        }
    }
}

/// Where this process's cgroup for `c` lives, if it can create groups beneath it, and
/// whether that hierarchy is v2.
fn parent(c: Controller) -> Option<&'static (PathBuf, bool)> {
    static PARENTS: OnceLock<HashMap<Controller, Option<(PathBuf, bool)>>> = OnceLock::new();
    PARENTS
        .get_or_init(|| {
            // Read once for the three controllers.
            let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok();
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok();
            let found: HashMap<Controller, Option<(PathBuf, bool)>> =
                [Controller::Pids, Controller::Memory, Controller::Cpu]
                    .into_iter()
                    .map(|c| {
                        let found = match (&cgroups, &mounts) {
                            (Some(cg), Some(m)) => find_parent(c, cg, m),
                            _ => None,
                        };
                        (c, found)
                    })
                    .collect();
            // Before this process has made any group: one with our pid is stale too.
            for (dir, _) in found.values().flatten() {
                sweep(dir, true);
            }
            found
        })
        .get(&c)?
        .as_ref()
}

/// Where groups for `c` can be made, from this process's `/proc/self/cgroup` and
/// `/proc/self/mountinfo`.
fn find_parent(c: Controller, cgroups: &str, mounts: &str) -> Option<(PathBuf, bool)> {
    let v1_rel = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrl.split(',').any(|x| x == c.name()).then(|| path.to_string())
    });
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        let (Some(mount_point), Some(fstype)) = (fields.get(4), fields.get(sep + 1)) else {
            continue;
        };
        let opts = fields.get(sep + 3).copied().unwrap_or("");
        let (dir, v2) = match (*fstype, &v1_rel) {
            ("cgroup", Some(rel)) if opts.split(',').any(|o| o == c.name()) => {
                (Path::new(mount_point).join(rel.trim_start_matches('/')), false)
            }
            ("cgroup2", _) => {
                let Some(rel) = cgroups.lines().find_map(|l| l.strip_prefix("0::")) else {
                    continue;
                };
                let dir = Path::new(mount_point).join(rel.trim_start_matches('/'));
                let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
                    .is_ok_and(|s| s.split_whitespace().any(|x| x == c.name()));
                if !enabled {
                    continue;
                }
                (dir, true)
            }
            _ => continue,
        };
        if writable(&dir) {
            return Some((dir, v2));
        }
    }
    None
}

/// Removes the groups that skillbox processes which are gone left in `dir`, and returns how
/// many. A process killed with SIGKILL takes its runs' processes with it (their PID
/// namespace dies) but cannot remove its groups, which would otherwise pile up.
///
/// A group is removed only if its name is `skillbox-<pid>-<n>` for a `pid` that no longer
/// exists (or, with `own_too`, this process's own pid, before it made any group), and `rmdir`
/// itself refuses a group that still holds a process, so a live run's group is never lost.
fn sweep(dir: &Path, own_too: bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let own = std::process::id();
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("skillbox-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        let gone =
            if pid == own { own_too } else { !Path::new("/proc").join(pid.to_string()).exists() };
        if gone && std::fs::remove_dir(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Sweeps the groups left by skillbox processes that are gone (see `sweep`) under every
/// controller's parent; returns how many were removed. Done once per process on first use;
/// callable again by long-lived hosts (this process's own groups are kept).
pub fn sweep_stale_groups() -> usize {
    [Controller::Pids, Controller::Memory, Controller::Cpu]
        .into_iter()
        .filter_map(parent)
        .map(|(dir, _)| sweep(dir, false))
        .sum()
}

/// Whether this process may write in `p` (create groups there), as `access(2)` says.
fn writable(p: &Path) -> bool {
    rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok()
}

/// Sequence number of this process's groups.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// `skillbox-<pid>-<n>`, a new `n` each time.
fn next_name() -> String {
    format!("skillbox-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// True when runs can be given a group with controller `c` on this host.
pub(crate) fn available(c: Controller) -> bool {
    parent(c).is_some()
}

/// The groups created for one run, removed once dropped and empty (see [`release`]).
pub(crate) struct RunCgroup {
    /// Group directories, one per hierarchy.
    dirs: Vec<PathBuf>,
    /// The memory group's directory and whether it is v2.
    memory: Option<(PathBuf, bool)>,
    /// Whether a CPU quota is in force.
    cpu: bool,
    /// The pids group's directory.
    pids: Option<PathBuf>,
    /// `tasks` (v1) or `cgroup.procs` (v2) of each group, open for writing; the child writes
    /// `0` to each.
    pub procs: Vec<OwnedFd>,
    /// The files read after the run, opened with the groups (off the run's path when they
    /// are made ahead): the OOM count, peak memory, peak process count.
    oom_file: Option<std::fs::File>,
    peak_file: Option<std::fs::File>,
    pids_peak_file: Option<std::fs::File>,
}

impl RunCgroup {
    /// Creates groups bounding the run to `pids_max` processes, `memory_max` bytes and
    /// `cpu_percent` of one CPU, for each limit whose controller is available. Returns `None`
    /// when none is.
    ///
    /// The groups of a run with the same limits as the one before are usually prepared
    /// already (see [`prepare_ahead`]); otherwise they are made here.
    pub(crate) fn create(
        pids_max: Option<u64>,
        memory_max: Option<u64>,
        cpu_percent: Option<u32>,
    ) -> std::io::Result<Option<Self>> {
        let limits = Limits { pids_max, memory_max, cpu_percent };
        let made = match take_ahead(limits) {
            Some(cg) => Some(cg),
            None => Self::create_new(limits)?,
        };
        if made.is_some() {
            prepare_ahead(limits);
        }
        Ok(made)
    }

    fn create_new(l: Limits) -> std::io::Result<Option<Self>> {
        // A group named after an earlier process with our pid (one killed before it could
        // remove its groups) holds the name: take the next one.
        let mut attempts = 0;
        loop {
            match Self::create_once(l.pids_max, l.memory_max, l.cpu_percent) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 64 => {
                    attempts += 1;
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`RunCgroup::create`] with the next name; groups made before a failure
    /// are removed (`Drop`).
    fn create_once(
        pids_max: Option<u64>,
        memory_max: Option<u64>,
        cpu_percent: Option<u32>,
    ) -> std::io::Result<Option<Self>> {
        let name = next_name();
        let mut wanted: Vec<(Controller, u64)> = Vec::new();
        if let Some(n) = pids_max.filter(|_| available(Controller::Pids)) {
            wanted.push((Controller::Pids, n));
        }
        if let Some(m) = memory_max.filter(|_| available(Controller::Memory)) {
            wanted.push((Controller::Memory, m));
        }
        if let Some(p) = cpu_percent.filter(|_| available(Controller::Cpu)) {
            wanted.push((Controller::Cpu, u64::from(p)));
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        // The child joins at most four groups (one per hierarchy); see `spawn::ChildArgs`.
        debug_assert!(wanted.len() <= 4);
        let mut cg = Self {
            dirs: Vec::new(),
            memory: None,
            cpu: false,
            pids: None,
            procs: Vec::new(),
            oom_file: None,
            peak_file: None,
            pids_peak_file: None,
        };
        for (c, limit) in wanted {
            let Some((parent, v2)) = parent(c) else { continue };
            let dir = parent.join(&name);
            if !cg.dirs.contains(&dir) {
                make_dir(&dir)?;
                cg.dirs.push(dir.clone());
                // v1: `tasks`, which moves only the writing thread. The child is a single
                // thread (its own thread group, created without CLONE_THREAD), so that is
                // the whole process; and a thread moving itself skips the global
                // threadgroup lock, whose first writer after a quiet spell waits for an RCU
                // grace period (measured 12 ms here, on every sporadic run). v2 has no
                // `tasks` in a domain group: `cgroup.procs`.
                let file = if *v2 { "cgroup.procs" } else { "tasks" };
                let procs = std::fs::OpenOptions::new().write(true).open(dir.join(file))?;
                cg.procs.push(OwnedFd::from(procs));
            }
            match (c, v2) {
                (Controller::Pids, _) => {
                    std::fs::write(dir.join("pids.max"), limit.to_string())?;
                    cg.pids = Some(dir.clone());
                }
                (Controller::Memory, false) => {
                    std::fs::write(dir.join("memory.limit_in_bytes"), limit.to_string())?;
                    // Without swap accounting this file is absent; the limit above holds.
                    let _ =
                        std::fs::write(dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
                    cg.memory = Some((dir.clone(), false));
                }
                (Controller::Memory, true) => {
                    std::fs::write(dir.join("memory.max"), limit.to_string())?;
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                    cg.memory = Some((dir.clone(), true));
                }
                // `limit` percent of one CPU per 100 ms period.
                (Controller::Cpu, false) => {
                    std::fs::write(dir.join("cpu.cfs_period_us"), "100000")?;
                    std::fs::write(dir.join("cpu.cfs_quota_us"), (limit * 1000).to_string())?;
                    cg.cpu = true;
                }
                (Controller::Cpu, true) => {
                    std::fs::write(dir.join("cpu.max"), format!("{} 100000", limit * 1000))?;
                    cg.cpu = true;
                }
            }
        }
        if let Some((dir, v2)) = &cg.memory {
            let (oom, peak) = if *v2 {
                ("memory.events", "memory.peak")
            } else {
                ("memory.oom_control", "memory.max_usage_in_bytes")
            };
            cg.oom_file = std::fs::File::open(dir.join(oom)).ok();
            cg.peak_file = std::fs::File::open(dir.join(peak)).ok();
        }
        if let Some(dir) = &cg.pids {
            cg.pids_peak_file = std::fs::File::open(dir.join("pids.peak")).ok();
        }
        Ok(Some(cg))
    }

    /// True when a CPU quota is in force.
    #[cfg(test)]
    pub(crate) fn limits_cpu(&self) -> bool {
        self.cpu
    }

    /// True when the memory group is in force.
    #[cfg(test)]
    pub(crate) fn limits_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// True when the kernel killed a process of the run for exceeding the memory limit.
    pub(crate) fn oom_killed(&self) -> bool {
        if self.memory.is_none() {
            return false;
        }
        read(self.oom_file.as_ref()).is_some_and(|s| {
            s.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .is_some_and(|n| n.trim().parse::<u64>().unwrap_or(0) > 0)
            })
        })
    }

    /// Most processes of the run alive at once, where the kernel keeps the count
    /// (`pids.peak`, Linux 6.1 and later).
    pub(crate) fn processes_peak(&self) -> Option<u64> {
        self.pids.as_ref()?;
        read(self.pids_peak_file.as_ref())?.trim().parse().ok()
    }

    /// The processes in the run's groups (`cgroup.procs`, pids as this process sees them),
    /// or `None` when it cannot be read. Every process of the run is in it from its start:
    /// the child joins before exec, descendants inherit it, and leaving needs a write to a
    /// `cgroup.procs` file, which Landlock denies when files are confined.
    pub(crate) fn members(&self) -> Option<Vec<i32>> {
        let dir = self.dirs.first()?;
        let text = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
        text.lines().map(|l| l.trim().parse().ok()).collect()
    }

    /// Peak memory of the whole run, in bytes.
    pub(crate) fn memory_peak(&self) -> Option<u64> {
        self.memory.as_ref()?;
        read(self.peak_file.as_ref())?.trim().parse().ok()
    }
}

/// The whole text of a cgroup file opened earlier, read from its start (each read of a
/// cgroup file generates it anew).
fn read(file: Option<&std::fs::File>) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let file = file?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match file.read_at(&mut buf[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).ok()
}

/// The limits of a run's groups, which groups prepared ahead must match exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    pids_max: Option<u64>,
    memory_max: Option<u64>,
    cpu_percent: Option<u32>,
}

/// Groups made ahead for the next run. Making a run's groups (a directory per hierarchy, its
/// limits written) costs about 0.3 ms, so after each run one set with the same limits is
/// made on tokio's blocking pool, for the next run with those limits (an agent's runs at one
/// trust level all have the same). Each set is fresh, empty, and serves exactly one run.
/// Their names are those of any group of this process (`skillbox-<pid>-<n>`): a process
/// killed with sets prepared leaves groups the next process sweeps; one that exits normally
/// removes them with every other group it made ([`remove_all_at_exit`]).
static AHEAD: Mutex<Vec<(Limits, RunCgroup)>> = Mutex::new(Vec::new());
/// Sets kept at most: one per limits of recent runs.
const AHEAD_MAX: usize = 4;

fn lock_ahead() -> std::sync::MutexGuard<'static, Vec<(Limits, RunCgroup)>> {
    match AHEAD.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn take_ahead(limits: Limits) -> Option<RunCgroup> {
    let mut list = lock_ahead();
    let i = list.iter().position(|(l, _)| *l == limits)?;
    Some(list.swap_remove(i).1)
}

/// Makes one set of groups with `limits` on tokio's blocking pool, unless one is being made,
/// there is no runtime, or this is the process's first run (a `skillbox run` process makes
/// one run and exits). Failures are dropped: the next run then makes its groups itself and
/// reports the error.
fn prepare_ahead(limits: Limits) {
    static GATE: crate::AheadGate = crate::AheadGate::new();
    GATE.spawn(move || {
        if let Ok(Some(cg)) = RunCgroup::create_new(limits) {
            let mut list = lock_ahead();
            list.retain(|(l, _)| *l != limits);
            if list.len() >= AHEAD_MAX {
                list.remove(0);
            }
            list.push((limits, cg));
        }
    });
}

impl Drop for RunCgroup {
    /// Gives the groups back: they are removed once their processes have left, off the
    /// caller's path (see [`release`]). This is how every group ends, whether its run
    /// finished, was cancelled (its future dropped) or never started.
    fn drop(&mut self) {
        release(std::mem::take(&mut self.dirs));
    }
}

/// The groups this process made and has not removed yet.
struct Registry {
    /// Every group directory made and not yet removed: in use by a run, prepared ahead, or
    /// released and waiting to be empty. [`remove_all_at_exit`] removes what is left here.
    made: BTreeSet<PathBuf>,
    /// Released groups not yet removed, each with when to try next and the delay after.
    released: Vec<(PathBuf, Instant, Duration)>,
    /// Set by [`remove_all_at_exit`]: no group is made after it.
    exiting: bool,
    /// Whether the remover thread runs.
    remover: bool,
    /// The process that made the groups: a process forked from it (which copies this
    /// registry) and then calls `exit` must not remove its parent's groups.
    owner: u32,
}

impl Registry {
    const EMPTY: Registry = Registry {
        made: BTreeSet::new(),
        released: Vec::new(),
        exiting: false,
        remover: false,
        owner: 0,
    };
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry::EMPTY);
/// Wakes the remover thread when groups are released.
static RELEASED: Condvar = Condvar::new();

/// First wait between two attempts to remove a group that still holds a process; it
/// doubles after each attempt.
const FIRST_RETRY: Duration = Duration::from_millis(1);
/// Longest wait between two attempts: a group that stays busy costs one `rmdir` a second.
const LONGEST_RETRY: Duration = Duration::from_secs(1);
/// How long the exit handler waits for groups to be left by processes that are dying.
const EXIT_WAIT: Duration = Duration::from_secs(2);

fn registry() -> MutexGuard<'static, Registry> {
    // The lock is never held across anything that can panic; a poisoned registry is still
    // consistent.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates the group directory `dir` and records it, so that it is removed at exit even if
/// nothing else removes it. The lock is held across `mkdir`, so that the exit handler never
/// runs between the two (a group made then would be left behind).
fn make_dir(dir: &Path) -> std::io::Result<()> {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function without arguments; it runs at normal process
        // exit, after main returns or `exit` is called. (Neither std nor rustix offers
        // atexit.)
        unsafe {
            libc::atexit(remove_all_at_exit);
        }
    });
    let mut reg = registry();
    if reg.exiting {
        return Err(std::io::Error::other("the process is exiting"));
    }
    let me = std::process::id();
    if reg.owner != me {
        // The first group of this process, or of a child forked from a process that had
        // groups: the parent's groups are the parent's to remove, and its thread was not
        // copied.
        *reg = Registry { owner: me, ..Registry::EMPTY };
    }
    std::fs::create_dir(dir)?;
    reg.made.insert(dir.to_path_buf());
    Ok(())
}

/// Removes `dirs` once no process is left in them, on this module's remover thread.
///
/// The processes of a run that ended were killed, but they leave their groups only as they
/// finish exiting, and a cancelled run's are often still running when its future is
/// dropped: `rmdir` then fails with `EBUSY`. cgroup v1 tells nobody when a group becomes
/// empty (its only hook, `release_agent`, is one program for the whole hierarchy, set by the
/// administrator); v2's `cgroup.events` does, but would be a second path for one hierarchy
/// kind. So the thread tries `rmdir` again with a doubling delay (1 ms, then up to one
/// second apart), on both: the leader of a run is reaped within milliseconds of its kill,
/// and the first or second try usually succeeds. A group that never empties (a process
/// stuck in the kernel) is retried once a second, and left to [`remove_all_at_exit`] and to
/// the next process's sweep.
fn release(dirs: Vec<PathBuf>) {
    if dirs.is_empty() {
        return;
    }
    let mut reg = registry();
    if reg.owner != std::process::id() {
        // A copy of a parent's group in a forked child: the parent removes it.
        return;
    }
    let now = Instant::now();
    reg.released.extend(dirs.into_iter().map(|d| (d, now, FIRST_RETRY)));
    if !reg.remover {
        let started =
            std::thread::Builder::new().name("skillbox-cgroup-rm".into()).spawn(remove_released);
        reg.remover = started.is_ok();
        if !reg.remover {
            // No thread (out of resources): one attempt here; what is left is removed at
            // exit, or by the next process's sweep.
            let dirs: Vec<PathBuf> = reg.released.drain(..).map(|(d, _, _)| d).collect();
            drop(reg);
            let gone: Vec<PathBuf> = dirs.into_iter().filter(|d| rmdir_done(d)).collect();
            let mut reg = registry();
            for d in gone {
                reg.made.remove(&d);
            }
            return;
        }
    }
    drop(reg);
    RELEASED.notify_one();
}

/// `rmdir`, true when the directory is gone (removed now, or already).
fn rmdir_done(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// The remover thread: removes released groups as they become empty.
fn remove_released() {
    let mut reg = registry();
    loop {
        let now = Instant::now();
        let next = reg.released.iter().map(|(_, at, _)| *at).min();
        match next {
            None => {
                reg = RELEASED.wait(reg).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            Some(at) if at > now => {
                reg = RELEASED.wait_timeout(reg, at - now).unwrap_or_else(|p| p.into_inner()).0;
                continue;
            }
            Some(_) => {}
        }
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut reg.released).into_iter().partition(|(_, at, _)| *at <= now);
        reg.released = later;
        drop(reg);
        let mut gone = Vec::new();
        let mut again = Vec::new();
        for (dir, _, delay) in due {
            match std::fs::remove_dir(&dir) {
                Ok(()) => gone.push(dir),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => gone.push(dir),
                // EBUSY: a process is still inside. Anything else will not change by waiting
                // a second either, but costs nothing to retry.
                Err(_) => {
                    let at = Instant::now() + delay;
                    again.push((dir, at, (delay * 2).min(LONGEST_RETRY)));
                }
            }
        }
        reg = registry();
        for d in &gone {
            reg.made.remove(d);
        }
        reg.released.extend(again);
    }
}

/// Removes every group this process made and has not removed yet, at normal exit (after
/// `main` returns, or `exit`): the groups prepared ahead, and those of runs that ended
/// moments ago (a cancelled run's killed processes may still be leaving; they are given
/// [`EXIT_WAIT`]). Runs still in flight at exit (an embedder calling `exit` without dropping
/// them) keep their groups, which the next skillbox process sweeps once this one is gone.
extern "C" fn remove_all_at_exit() {
    let mut left: Vec<PathBuf> = {
        let mut reg = registry();
        if reg.owner != std::process::id() {
            return;
        }
        reg.exiting = true;
        reg.released.clear();
        std::mem::take(&mut reg.made).into_iter().collect()
    };
    let deadline = Instant::now() + EXIT_WAIT;
    let mut delay = FIRST_RETRY;
    loop {
        left.retain(|d| !rmdir_done(d));
        if left.is_empty() || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups left by a killed process whose pid this process now has must not make runs
    /// fail: the names are skipped. Needs a memory hierarchy this process may create groups
    /// in (root, or a delegated one); passes trivially elsewhere.
    #[test]
    fn names_held_by_groups_left_behind_are_skipped() {
        let Some((parent, _)) = parent(Controller::Memory) else {
            no_hierarchy_here();
            return;
        };
        let next = SEQ.load(Ordering::Relaxed);
        let stale: Vec<PathBuf> = (next..next + 3)
            .map(|n| parent.join(format!("skillbox-{}-{n}", std::process::id())))
            .collect();
        for d in &stale {
            std::fs::create_dir(d).unwrap();
        }
        let made = RunCgroup::create(None, Some(64 << 20), None);
        for d in &stale {
            let _ = std::fs::remove_dir(d);
        }
        let cg = made.unwrap().expect("a memory group");
        assert!(cg.limits_memory());
        assert!(cg.dirs.iter().all(|d| !stale.contains(d)), "{:?}", cg.dirs);
    }

    /// Without a writable hierarchy no group is ever made, so there is nothing to check; that
    /// is expected for a normal user, and a failure for root.
    fn no_hierarchy_here() {
        let root = rustix::process::geteuid().is_root();
        eprintln!("!!! no writable cgroup hierarchy for this user: skillbox makes no groups here");
        assert!(!root, "root must be able to create cgroups on this host");
    }

    /// Groups left by skillbox processes that are gone are removed; a group named after a
    /// live process, and a group still holding a process, are kept.
    #[test]
    fn groups_of_processes_that_are_gone_are_swept() {
        let Some((parent, _)) = parent(Controller::Pids) else {
            no_hierarchy_here();
            assert_eq!(sweep_stale_groups(), 0);
            return;
        };
        let dead = (4_000_000u32..4_100_000)
            .rev()
            .find(|p| !Path::new("/proc").join(p.to_string()).exists())
            .expect("a pid that is not in use");
        let stale = parent.join(format!("skillbox-{dead}-7"));
        let live_name = parent.join("skillbox-1-7");
        let busy = parent.join(format!("skillbox-{}-8", dead - 1));
        for d in [&stale, &live_name, &busy] {
            let _ = std::fs::create_dir(d);
        }
        // A group holding a process: a sleeping child moved into it.
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(busy.join("cgroup.procs"), child.id().to_string()).unwrap();

        let removed = sweep_stale_groups();
        let (stale_left, live_left, busy_left) =
            (stale.exists(), live_name.exists(), busy.exists());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir(&live_name);
        let _ = std::fs::remove_dir(&busy);
        let _ = std::fs::remove_dir(&stale);
        assert!(!stale_left, "the group of a process that is gone was kept");
        assert!(live_left, "the group named after a live process (pid 1) was removed");
        assert!(busy_left, "a group still holding a process was removed");
        assert!(removed >= 1);
    }
}
