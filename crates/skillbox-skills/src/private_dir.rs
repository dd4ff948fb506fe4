//! The private directory of a run: `HOME` and `TMPDIR` of the child, mode 0700, made ahead
//! and kept for the next run when its run left it exactly as made.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use skillbox_sandbox::{remove_tree, Identity};

/// A directory private to one run: `home/` becomes `HOME`, `tmp/` becomes `TMPDIR`. Removed
/// when dropped, with [`remove_tree`] (iterative, whatever the run left in it).
///
/// A directory whose run left it exactly as it was made (see [`PrivateDir::finish`]) serves
/// the next run of the process instead of being removed: making and removing one costs three
/// `mkdir` and three `rmdir`, which on some file systems (ext4 without a journal, with online
/// discard) took 0.44 ms of CPU per run (BENCHMARKS.md).
pub(crate) struct PrivateDir {
    path: PathBuf,
    /// The device of the directory, and the inode numbers of it, `home/` and `tmp/` when
    /// they were made.
    dev: u64,
    made: [u64; 3],
    /// Their inode flags (`FS_IOC_GETFLAGS`) when they were made; `None` if they could not
    /// be read, and then the directory is never handed on.
    flags: [Option<InodeFlags>; 3],
}

/// The inode flags of a directory (`chattr`'s attributes), or none on a file system that
/// has no such `ioctl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InodeFlags {
    Flags(u32),
    Unsupported,
}

impl PrivateDir {
    /// Creates `skillbox-run-<pid>-XXXX/{home,tmp}` in the system temp directory, each mode
    /// 0700. The pid lets a later process remove what a killed one left (`sweep`).
    pub(crate) fn create() -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        // Made by tempfile, whose `TempDir` removes it if a step below fails (it holds at
        // most two empty directories then); kept from it once made.
        let dir = tempfile::Builder::new()
            .prefix(&format!("skillbox-run-{}-", std::process::id()))
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        for sub in ["home", "tmp"] {
            std::fs::create_dir(dir.path().join(sub))?;
            std::fs::set_permissions(dir.path().join(sub), std::fs::Permissions::from_mode(0o700))?;
        }
        let paths = [dir.path().to_path_buf(), dir.path().join("home"), dir.path().join("tmp")];
        let dev = std::fs::symlink_metadata(dir.path())?.dev();
        let (mut made, mut flags) = ([0; 3], [None; 3]);
        for (i, p) in paths.iter().enumerate() {
            let (id, fd) = open_dir(p)?;
            (made[i], flags[i]) = (id.ino, inode_flags(fd.as_fd()));
        }
        Ok(Self { path: dir.keep(), dev, made, flags })
    }

    /// A directory for one run: the one kept from an earlier run or prepared ahead when there
    /// is one, else one created now.
    ///
    /// Creating one costs about 0.36 ms (more on some file systems), so a directory is given
    /// back after its run when it is still as it was made, and otherwise the next one is
    /// created on tokio's blocking pool, like the sandbox's Landlock base and cgroups. Either
    /// way a directory serves exactly one run at a time (it is taken out of its slot), and
    /// one left in the slot is removed when the process exits (`atexit`).
    pub(crate) fn for_run() -> std::io::Result<Self> {
        // One removed meanwhile (a temp cleaner on a long-idle host) is not used.
        let kept = lock_ahead().take().filter(|d| d.tmp().is_dir() && d.home().is_dir());
        match kept {
            Some(d) => Ok(d),
            None => Self::create(),
        }
    }

    /// Gives the directory back after its run. `contained` says that every process of the
    /// run is gone and that Landlock kept the run's writes inside `home/` and `tmp/`. Then a
    /// directory still as it was made (see [`PrivateDir::is_as_made`]) is kept for the next
    /// run of this process; any other is removed off the path of the result, and a fresh one
    /// prepared ahead for the next run.
    ///
    /// Nothing is kept after the first run of a process (a `skillbox run` process makes one
    /// run and exits), nor without a tokio runtime.
    pub(crate) fn finish(self, contained: bool) {
        static FIRST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
        let first = FIRST.swap(false, std::sync::atomic::Ordering::AcqRel);
        let runtime = tokio::runtime::Handle::try_current().ok();
        if let Some(h) = runtime.as_ref().filter(|_| !first && contained && self.is_as_made()) {
            register_at_exit(Sweep::OnPool(h));
            // A directory already waiting (from a run that ended at the same time) goes.
            if let Some(old) = lock_ahead().replace(self) {
                old.remove_in_background();
            }
            return;
        }
        self.remove_in_background();
        prepare_ahead();
    }

    /// Whether the directory, `home/` and `tmp/` are the ones [`PrivateDir::create`] made
    /// (same inode numbers), owned by this user, mode 0700, with the inode flags they were
    /// made with and without extended attributes (POSIX ACLs are kept as such), and `home/`
    /// and `tmp/` are empty. A run cannot replace or remove the three, since Landlock grants
    /// it nothing on the directory itself; but Landlock does not mediate `chmod`, `setxattr`,
    /// `FS_IOC_SETFLAGS` (`chattr`: `FS_NOATIME_FL`, `FS_SYNC_FL`, ... on what the run owns)
    /// or timestamps, so those are looked at. Timestamps are not: they carry no rights.
    fn is_as_made(&self) -> bool {
        // SAFETY: geteuid has no failure mode and no memory effects.
        let uid = unsafe { libc::geteuid() };
        let paths = [self.path.clone(), self.home(), self.tmp()];
        paths.iter().zip(self.made).zip(self.flags).enumerate().all(|(i, ((p, ino), flags))| {
            // Each looked at through one descriptor, opened without following a link.
            let Ok((id, fd)) = open_dir(p) else { return false };
            id.dev == self.dev
                && id.ino == ino
                && id.uid == uid
                && id.mode & 0o7777 == 0o700
                && flags.is_some()
                && inode_flags(fd.as_fd()) == flags
                && no_xattrs(fd.as_fd())
                && (i == 0 || is_empty(fd))
        })
    }

    /// Removes the directory on tokio's blocking pool when there is one, else now. A
    /// runtime shut down before the task ran drops it, which removes the directory too; one
    /// shut down without waiting for its blocking tasks (`skillbox mcp` waits 2 s) leaves
    /// the removal running, and the process's exit waits for it (up to [`EXIT_WAIT`]).
    pub(crate) fn remove_in_background(self) {
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                register_at_exit(Sweep::No);
                let removal = Removal::new(self);
                drop(h.spawn_blocking(move || drop(removal)));
            }
            Err(_) => drop(self),
        }
    }

    /// The directory itself, which the run may write.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `HOME` of the run.
    pub(crate) fn home(&self) -> PathBuf {
        self.path.join("home")
    }

    /// `TMPDIR` of the run.
    pub(crate) fn tmp(&self) -> PathBuf {
        self.path.join("tmp")
    }
}

impl Drop for PrivateDir {
    /// Removes the directory and whatever the run left in it, however deep or locked; only
    /// the directory this one made (same device and inode) is removed. What cannot be
    /// removed (nothing a run can make, as far as known) stays for the next process's sweep,
    /// once this one is gone.
    fn drop(&mut self) {
        let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let (dev, ino) = (self.dev, self.made[0]);
        let _ = remove_tree(parent, name, |id| id.dev == dev && id.ino == ino, None);
    }
}

/// Opens the directory `p` for reading, without following a link; returns its identity
/// and the descriptor.
fn open_dir(p: &Path) -> std::io::Result<(Identity, OwnedFd)> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(p, flags, Mode::empty())?;
    let id = Identity::of(fd.as_fd())?;
    Ok((id, fd))
}

/// Whether the directory `fd` has no entries.
fn is_empty(fd: OwnedFd) -> bool {
    let Ok(mut dir) = rustix::fs::Dir::new(fd) else { return false };
    while let Some(entry) = dir.read() {
        match entry {
            Ok(e) if e.file_name() == c"." || e.file_name() == c".." => {}
            _ => return false,
        }
    }
    true
}

/// The inode flags of the directory `fd`, `Unsupported` where the file system has no
/// `FS_IOC_GETFLAGS` (`ENOTTY`, `EOPNOTSUPP`), `None` if they could not be read otherwise.
fn inode_flags(fd: BorrowedFd<'_>) -> Option<InodeFlags> {
    use rustix::io::Errno;
    match rustix::fs::ioctl_getflags(fd) {
        Ok(f) => Some(InodeFlags::Flags(f.bits())),
        Err(Errno::NOTTY | Errno::OPNOTSUPP) => Some(InodeFlags::Unsupported),
        Err(_) => None,
    }
}

/// The directory prepared for the next run, if any.
static AHEAD: Mutex<Option<PrivateDir>> = Mutex::new(None);

fn lock_ahead() -> std::sync::MutexGuard<'static, Option<PrivateDir>> {
    lock(&AHEAD)
}

/// Creates the next run's directory on tokio's blocking pool, unless one is being created,
/// there is no runtime, or this is the process's first run (a `skillbox run` process makes
/// one run and exits). A failure is dropped: the next run then creates its directory itself
/// and reports the error.
fn prepare_ahead() {
    static GATE: skillbox_sandbox::AheadGate = skillbox_sandbox::AheadGate::new();
    GATE.spawn(|| {
        register_at_exit(Sweep::Here);
        if let Ok(d) = PrivateDir::create() {
            // A directory already waiting (none, normally) is dropped, which removes it.
            let old = lock_ahead().replace(d);
            drop(old);
        }
    });
}

/// Background removals of private directories not finished yet, and the signal that one
/// finished: the exit waits for them ([`remove_ahead_at_exit`]).
static IN_FLIGHT: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// How long the exit of a process waits for the removals it started: what a run can leave
/// (20,000 nested directories took from 2 to 25 s to remove on the test machine's ext4 with
/// online discard) is removed before the process ends, unless it would take longer; then
/// what is left is swept by a later process.
const EXIT_WAIT: Duration = Duration::from_secs(60);

/// A directory on its way to removal, counted in [`IN_FLIGHT`] until it is gone (also when
/// a runtime shutting down drops the task unrun: that drop removes it).
struct Removal(Option<PrivateDir>);

impl Removal {
    fn new(dir: PrivateDir) -> Self {
        *lock(&IN_FLIGHT.0) += 1;
        Self(Some(dir))
    }
}

impl Drop for Removal {
    fn drop(&mut self) {
        drop(self.0.take());
        let (count, done) = &IN_FLIGHT;
        let mut n = lock(count);
        *n = n.saturating_sub(1);
        done.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Whether [`register_at_exit`] also starts the sweep of what killed processes left.
enum Sweep<'a> {
    /// No: the caller removes a directory, which keeps or prepares none.
    No,
    /// On this thread, already on tokio's blocking pool.
    Here,
    /// On tokio's blocking pool.
    OnPool(&'a tokio::runtime::Handle),
}

/// Makes sure, once per process, that at exit the removals under way are waited for and
/// the directory left in the slot is removed (`atexit`); and, the first time `sweep` asks
/// for it, removes what killed processes left (a process killed by a signal runs no
/// `atexit`, so the directory it had kept or prepared is removed by the next process that
/// keeps or prepares one). The sweep lists the temp directory, so it runs on tokio's
/// blocking pool.
fn register_at_exit(sweep: Sweep<'_>) {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    static SWEEP: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        EXIT_PID.store(std::process::id(), std::sync::atomic::Ordering::Release);
        // SAFETY: registers a plain function without arguments; it runs at normal process
        // exit, after main returns or `exit` is called.
        unsafe {
            libc::atexit(remove_ahead_at_exit);
        }
    });
    if matches!(sweep, Sweep::No) {
        return;
    }
    let mut first = false;
    SWEEP.call_once(|| first = true);
    if first {
        let tmp = std::env::temp_dir();
        match sweep {
            Sweep::OnPool(h) => drop(h.spawn_blocking(move || self::sweep(&tmp))),
            Sweep::Here | Sweep::No => {
                self::sweep(&tmp);
            }
        }
    }
}

/// The process that registered [`remove_ahead_at_exit`]: a child forked from it that calls
/// `exit` must neither wait for its removals nor remove its directory.
static EXIT_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether the file `fd` has no extended attributes (a file system without them has none).
fn no_xattrs(fd: BorrowedFd<'_>) -> bool {
    // Without a buffer, flistxattr only returns the size the list of names would need.
    match rustix::fs::flistxattr_query(fd) {
        Ok(n) => n == 0,
        Err(e) => e == rustix::io::Errno::NOTSUP,
    }
}

/// How many entries the sweep looks at in one leftover directory: what a killed run left can
/// be large, and the sweep holds up the directory being prepared ahead (and, in a process
/// that waits for its blocking tasks at exit, the exit). 200,000 empty files took about 2 s
/// to remove on ext4 with online discard (debug build, measured); what is left of a larger
/// tree is removed by the next processes' sweeps, each going on where the last stopped.
const SWEEP_BUDGET: u64 = 200_000;

/// Removes the private directories in `tmp` that processes which are gone left behind (one
/// prepared ahead by a process killed by a signal, or the directory of a run it was making),
/// and returns how many. Only directories named `skillbox-run-<pid>-...` for a pid that no
/// longer exists, owned by this user, are removed; a live process's are never touched, nor
/// anything without `/proc` to tell which processes live. Each is removed with
/// [`remove_tree`] (iterative, restoring the owner's modes), at most [`SWEEP_BUDGET`]
/// entries of each.
fn sweep(tmp: &Path) -> usize {
    if !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else { return 0 };
    // SAFETY: geteuid has no failure mode and no memory effects.
    let uid = unsafe { libc::geteuid() };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("skillbox-run-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let gone = pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists();
        // A link or another user's directory is refused by `remove_tree`'s check, made on
        // the directory itself (opened without following a link) before anything changes.
        let ours = |id: &Identity| id.uid == uid;
        if gone && remove_tree(tmp, &name, ours, Some(SWEEP_BUDGET)).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Waits (up to [`EXIT_WAIT`]) for the removals under way, then removes the directory
/// prepared ahead and never used.
extern "C" fn remove_ahead_at_exit() {
    if EXIT_PID.load(std::sync::atomic::Ordering::Acquire) != std::process::id() {
        return;
    }
    let deadline = Instant::now() + EXIT_WAIT;
    let (count, done) = &IN_FLIGHT;
    let mut n = lock(count);
    while *n > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        n = match done.wait_timeout(n, left) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
    drop(n);
    // Never wait for the slot: if a thread holds the lock, its directory stays.
    let taken = match AHEAD.try_lock() {
        Ok(mut g) => g.take(),
        Err(_) => return,
    };
    drop(taken);
}
