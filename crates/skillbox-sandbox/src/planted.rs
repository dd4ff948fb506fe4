//! Protected names a run planted, taken away after it (threat model 7).
//!
//! The kernel grants by hierarchy: Landlock cannot refuse one name inside a directory the
//! run may write, and neither can a bind mount. A directory that holds a protected entry is
//! split (nothing can be created, removed or renamed in it), and so is the top of a guarded
//! tree (`crate::grants`), but a run can still make `src/.git` in a writable `src/` that held
//! none, or anything in a directory it made. So once every process of the run is gone (no
//! one is left to plant again), every writable tree is walked again, and each entry under a
//! protected name that did not exist before is taken: moved into the policy's quarantine
//! directory, or removed where it cannot be moved there. This happens whatever the run's
//! end (exit, signal, timeout, limit, a caller that dropped it).
//!
//! What existed before is known by identity, not by name or path: the walk that granted the
//! trees records the device and inode of every entry it carved out of a writable tree or
//! left unexamined (the [`Census`]). A protected entry that existed is carved, so it stays,
//! whatever the run did around it (it could not rename or replace it: its directory was
//! split); a directory left unexamined (too deep, not listable) was read-only to the run, so
//! nothing in it is new, and it is not entered.
//!
//! The walk is iterative and on directory descriptors, never follows a link (`openat2` with
//! `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`), holds at most [`MAX_OPEN`] directories open at
//! any depth (deeper, an ancestor is closed and opened again through `..` on the way back,
//! checked by device and inode), and stops after [`MAX_SWEEP_ENTRIES`] entries, which the
//! outcome reports as incomplete: never a silent pass. A directory of this user that the run
//! made unreadable or unwritable is opened up for the walk, and its mode put back.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, RenameFlags, ResolveFlags, CWD};
use rustix::io::Errno;

use crate::grants::{grant_tree, Budget, Carved, GrantError, Grants, Level};
use crate::policy::Policy;

/// Most directory entries the sweep after one run looks at, over all its writable trees.
/// The walk before the run admits at most `MAX_GRANT_ENTRIES` (250,000); the rest is what
/// the run made. Beyond this the sweep stops and says so (a run that made a million entries
/// to hide a `.git` behind them is reported, not passed).
pub const MAX_SWEEP_ENTRIES: usize = 1_000_000;

/// Most planted entries listed one by one in an outcome; the rest are counted.
pub const MAX_PLANTED_LISTED: usize = 1_000;

/// Most directories the sweep holds open at once.
const MAX_OPEN: usize = 32;

/// How long the sweep waits for the run's killed processes to be gone (without a PID
/// namespace, `SIGKILL` is delivered, not waited for), polling every millisecond.
const GONE_WAIT: Duration = Duration::from_secs(2);

/// What the walk before the run kept out of the writable trees: the device and inode of
/// each carved or unexamined entry (the inode as the directory listing gives it).
#[derive(Debug, Default)]
pub(crate) struct Census {
    seen: Vec<(u64, u64)>,
    /// A walk of the writable trees made it (an empty census of no walk proves nothing).
    taken: bool,
}

impl Census {
    /// Counts the entry with inode `ino` in a directory on device `dev`.
    pub(crate) fn record(&mut self, dev: u64, ino: u64) {
        self.seen.push((dev, ino));
    }

    /// The census, marked as made by a walk of the writable trees.
    pub(crate) fn taken(mut self) -> Self {
        self.taken = true;
        self
    }

    /// Adds what `other` counted.
    pub(crate) fn absorb(&mut self, other: Census) {
        self.seen.extend(other.seen);
        self.taken |= other.taken;
    }

    fn seal(&mut self) {
        self.seen.sort_unstable();
        self.seen.dedup();
    }

    fn contains(&self, dev: u64, ino: u64) -> bool {
        self.seen.binary_search(&(dev, ino)).is_ok()
    }
}

/// What the sweep after a run found: the entries the run left under a protected name, and
/// what became of each. A caller reports them (the skills layer records each in its audit
/// log), so that an attempt to leave code behind for a tool to run later is seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planted {
    /// The entries taken, in the order found, at most [`MAX_PLANTED_LISTED`].
    pub entries: Vec<PlantedEntry>,
    /// How many were found in all (more than `entries` holds beyond the cap).
    pub count: u64,
    /// Set when the sweep could not look everywhere or could not take an entry, with why:
    /// a planted entry may then remain, and the caller must say so.
    pub incomplete: Option<String>,
}

impl Planted {
    /// Nothing was planted and the sweep was complete (or there was nothing to sweep).
    pub fn is_clean(&self) -> bool {
        self.count == 0 && self.incomplete.is_none()
    }

    fn note(&mut self, why: String) {
        if self.incomplete.is_none() {
            self.incomplete = Some(why);
        }
    }
}

/// One entry a run planted under a protected name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantedEntry {
    /// Where the run left it.
    pub path: PathBuf,
    /// What became of it.
    pub fate: PlantedFate,
}

/// What became of a planted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlantedFate {
    /// Moved there, into the policy's quarantine directory.
    Quarantined(PathBuf),
    /// Removed: no quarantine directory, or one on another file system.
    Removed,
    /// Still where the run left it: neither moving nor removing it worked, for this reason.
    Left(String),
}

/// The sweep of one run: its writable trees, the protected names, where to move what it
/// finds, and the census of what was there before.
pub(crate) struct Sweep {
    /// The writable trees (none inside another).
    roots: Vec<PathBuf>,
    /// Trees not entered: the run's scratch trees (discarded anyway), the quarantine.
    skip: Vec<PathBuf>,
    names: Vec<String>,
    quarantine: Option<PathBuf>,
    census: Census,
    /// Why there is no census to compare with, when there is none.
    no_census: Option<String>,
    /// Entries the sweep may look at ([`MAX_SWEEP_ENTRIES`]).
    budget: usize,
}

impl Sweep {
    /// The sweep a run of `policy` needs after it, given the census the grant walk took
    /// (`census`); `None` when nothing can be planted: files not confined (the run could
    /// write anywhere its user can, and nothing is promised), no protected name, or no
    /// writable tree. Where no mechanism walked the trees (files not enforced on this host),
    /// the census is taken here, by the same walk.
    pub(crate) fn new(policy: &Policy, mut census: Census) -> Option<Self> {
        if !policy.confine_files || policy.protected.is_empty() || policy.write.is_empty() {
            return None;
        }
        let mut no_census = None;
        if !census.taken {
            match census_walk(policy) {
                Ok(c) => census.absorb(c),
                Err(e) => no_census = Some(e.to_string()),
            }
        }
        census.seal();
        let mut roots: Vec<PathBuf> =
            policy.write.iter().map(|p| crate::paths::normalize(p)).collect();
        roots.sort();
        roots.dedup();
        let all = roots.clone();
        roots.retain(|r| !all.iter().any(|o| o != r && r.starts_with(o)));
        let mut skip: Vec<PathBuf> =
            policy.scratch.iter().map(|p| crate::paths::normalize(p)).collect();
        skip.extend(policy.quarantine.clone());
        Some(Self {
            roots,
            skip,
            names: policy.protected.clone(),
            quarantine: policy.quarantine.clone(),
            census,
            no_census,
            budget: MAX_SWEEP_ENTRIES,
        })
    }

    /// Waits until no process of the run's group `group` is left (its first process has
    /// been reaped), then sweeps.
    pub(crate) fn after(self, group: libc::pid_t) -> Planted {
        let gone = wait_gone(group);
        let mut planted = self.sweep();
        if !gone {
            planted.note(format!(
                "processes of the run were still exiting {} s after they were killed; the \
                 sweep went on",
                GONE_WAIT.as_secs()
            ));
        }
        planted
    }

    /// Walks every writable tree and takes what was planted.
    fn sweep(&self) -> Planted {
        let mut state = State {
            out: Planted::default(),
            left: self.budget,
            budget: self.budget,
            carved: Carved::new(&[], &self.names),
            census: &self.census,
            skip: self.skip.iter().filter_map(|p| identity_of(p)).collect(),
            quarantine: Quarantine { path: self.quarantine.clone(), opened: None, next: 1 },
            // SAFETY: geteuid has no failure mode and no memory effects.
            uid: unsafe { libc::geteuid() },
            buf: vec![std::mem::MaybeUninit::uninit(); 32 * 1024],
        };
        if let Some(why) = &self.no_census {
            state.out.note(format!(
                "the writable trees could not be examined before the run ({why}), so nothing \
                 was looked for after it"
            ));
            return state.out;
        }
        for root in &self.roots {
            if state.tree(root).is_err() {
                break;
            }
        }
        state.out
    }
}

/// The census walk where no confinement mechanism walked the writable trees: the grant walk
/// itself, granting nothing.
fn census_walk(policy: &Policy) -> Result<Census, GrantError> {
    struct Nothing;
    impl Grants for Nothing {
        fn grant(
            &mut self,
            _: BorrowedFd<'_>,
            _: &Path,
            _: Level,
            _: bool,
        ) -> Result<(), GrantError> {
            Ok(())
        }
    }
    let carved_paths = crate::landlock::carved_paths(policy);
    let carved = Carved::new(&carved_paths, &policy.protected);
    let mut budget = Budget::new(crate::landlock::MAX_GRANT_ENTRIES);
    for p in &policy.write {
        let root = crate::paths::normalize(p);
        let guarded = policy.guarded.iter().any(|g| crate::paths::normalize(g) == root);
        grant_tree(&mut Nothing, &root, true, guarded, &carved, &mut budget)?;
    }
    Ok(budget.into_census())
}

/// Whether the process group `group` is gone, waiting up to [`GONE_WAIT`].
fn wait_gone(group: libc::pid_t) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(group) else { return true };
    let deadline = Instant::now() + GONE_WAIT;
    loop {
        if rustix::process::test_kill_process_group(pid) == Err(Errno::SRCH) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Device and inode of the directory at `p`, not through a link.
fn identity_of(p: &Path) -> Option<(u64, u64)> {
    let fd = rustix::fs::openat2(
        CWD,
        p,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    Some((st.st_dev, st.st_ino))
}

/// The sweep stopped: its budget is spent or its way back up a tree was lost (the outcome
/// says which).
struct Stop;

/// The state of one sweep.
struct State<'a> {
    out: Planted,
    /// Entries that may still be looked at.
    left: usize,
    /// Entries the sweep could look at in all.
    budget: usize,
    carved: Carved<'a>,
    census: &'a Census,
    /// Device and inode of the trees not entered.
    skip: Vec<(u64, u64)>,
    quarantine: Quarantine,
    /// This process's effective user: only its directories are opened up.
    uid: u32,
    /// The buffer directories are read into.
    buf: Vec<std::mem::MaybeUninit<u8>>,
}

/// Names with the inode their directory's listing gave.
type Names = Vec<(OsString, u64)>;

/// A directory being swept.
struct Frame {
    /// Open while it is among the [`MAX_OPEN`] deepest of the way.
    dir: Option<OwnedFd>,
    dev: u64,
    ino: u64,
    /// Its name in its parent (empty for the tree's top).
    name: OsString,
    /// Its subdirectories still to sweep.
    subdirs: Names,
    /// The mode to put back when leaving it, when it was opened up.
    restore: Option<u32>,
}

impl Frame {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.dir.as_ref().map(|d| d.as_fd())
    }
}

/// A directory opened for the sweep.
struct Opened {
    fd: OwnedFd,
    dev: u64,
    ino: u64,
    /// Its mode and owner, when they were read (only needed to take an entry from it).
    stat: Option<(u32, u32)>,
    /// The mode it had, when it was opened up.
    restore: Option<u32>,
}

impl State<'_> {
    /// Sweeps the tree at `root`; `Err` when the whole sweep must stop.
    fn tree(&mut self, root: &Path) -> Result<(), Stop> {
        let top = match self.open(CWD, root.as_os_str(), ResolveFlags::NO_SYMLINKS, None) {
            Ok(Some(o)) => o,
            Ok(None) => return Ok(()),
            Err(e) => {
                self.out.note(format!("cannot open the writable tree {}: {e}", root.display()));
                return Ok(());
            }
        };
        if self.census.contains(top.dev, top.ino) || self.skip.contains(&(top.dev, top.ino)) {
            put_back(top.fd.as_fd(), top.restore);
            return Ok(());
        }
        let mut stack: Vec<Frame> = Vec::new();
        let walked = self
            .push(&mut stack, top, OsString::new(), root)
            .and_then(|()| self.walk(&mut stack, root));
        // Stopped part way: what was opened up and is still open gets its mode back.
        for f in &stack {
            if let Some(fd) = f.fd() {
                put_back(fd, f.restore);
            }
        }
        walked
    }

    /// The depth-first walk of a tree whose top is on `stack`.
    fn walk(&mut self, stack: &mut Vec<Frame>, root: &Path) -> Result<(), Stop> {
        loop {
            let Some(frame) = stack.last_mut() else { return Ok(()) };
            if let Some((name, ino)) = frame.subdirs.pop() {
                let (Some(parent), parent_dev) = (frame.fd(), frame.dev) else {
                    return Err(self.lost(root, stack));
                };
                let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH;
                let child = match self.open(parent, &name, resolve, Some((parent_dev, ino))) {
                    // A mount point's listed inode is the one under the mount.
                    Ok(Some(c)) if c.ino == ino || c.dev != parent_dev => c,
                    Ok(Some(c)) => {
                        put_back(c.fd.as_fd(), c.restore);
                        let path = path_of(root, stack, &name);
                        self.out.note(format!("{} changed during the sweep", path.display()));
                        continue;
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        let path = path_of(root, stack, &name);
                        self.out.note(format!("cannot open {}: {e}", path.display()));
                        continue;
                    }
                };
                if stack.len() >= MAX_OPEN {
                    let i = stack.len() - MAX_OPEN;
                    stack[i].dir = None;
                }
                self.push(stack, child, name, root)?;
                continue;
            }
            // Every subdirectory is swept: leave it, and go back up.
            let Some(done) = stack.pop() else { return Ok(()) };
            let Some(fd) = done.fd() else {
                stack.push(done);
                return Err(self.lost(root, stack));
            };
            put_back(fd, done.restore);
            let Some(parent) = stack.last_mut() else { return Ok(()) };
            if parent.dir.is_none() {
                match reopen_parent(fd, parent.dev, parent.ino) {
                    Some(p) => parent.dir = Some(p),
                    None => {
                        let path = path_of(root, stack, &done.name);
                        self.out.note(format!(
                            "lost the way back up from {} during the sweep",
                            path.display()
                        ));
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Notes that the directory on top of `stack` is not open where it must be (never
    /// expected: the deepest directory of the way is always open), and stops the sweep.
    fn lost(&mut self, root: &Path, stack: &[Frame]) -> Stop {
        let path = path_of(root, stack, OsStr::new(""));
        self.out.note(format!("the sweep lost its place at {}", path.display()));
        Stop
    }

    /// Lists the directory `opened` (named `name` in the directory on top of `stack`), takes
    /// what was planted in it, and pushes it with its subdirectories to sweep.
    fn push(
        &mut self,
        stack: &mut Vec<Frame>,
        opened: Opened,
        name: OsString,
        root: &Path,
    ) -> Result<(), Stop> {
        let mut restore = opened.restore;
        let dir = opened.fd;
        let (subdirs, planted) = self.list(dir.as_fd(), opened.dev, root, stack, &name)?;
        if !planted.is_empty() {
            let fd = dir.as_fd();
            // Moving or removing an entry takes write and search rights on its directory.
            let stat = opened
                .stat
                .or_else(|| rustix::fs::fstat(fd).ok().map(|st| (st.st_mode, st.st_uid)));
            if let Some((mode, _)) = stat.filter(|(m, u)| *u == self.uid && m & 0o300 != 0o300) {
                let opened_up = Mode::from_raw_mode((mode | 0o700) & 0o7777);
                if rustix::fs::fchmod(fd, opened_up).is_ok() && restore.is_none() {
                    restore = Some(mode & 0o7777);
                }
            }
            let mut at = path_of(root, stack, &name);
            for (entry, ino) in planted {
                at.push(&entry);
                self.take(fd, opened.dev, &entry, ino, at.clone());
                at.pop();
            }
        }
        stack.push(Frame {
            dir: Some(dir),
            dev: opened.dev,
            ino: opened.ino,
            name,
            subdirs,
            restore,
        });
        Ok(())
    }

    /// The subdirectories to sweep and the planted entries of the directory `dir` (on
    /// device `dev`). Read into one buffer kept for the whole sweep, without an allocation
    /// per entry.
    fn list(
        &mut self,
        dir: BorrowedFd<'_>,
        dev: u64,
        root: &Path,
        stack: &[Frame],
        name: &OsStr,
    ) -> Result<(Names, Names), Stop> {
        let mut buf = std::mem::take(&mut self.buf);
        let listed = self.list_into(&mut buf, dir, dev, root, stack, name);
        self.buf = buf;
        listed
    }

    fn list_into(
        &mut self,
        buf: &mut [std::mem::MaybeUninit<u8>],
        dir: BorrowedFd<'_>,
        dev: u64,
        root: &Path,
        stack: &[Frame],
        name: &OsStr,
    ) -> Result<(Names, Names), Stop> {
        let (mut subdirs, mut planted) = (Vec::new(), Vec::new());
        let mut kinds: Vec<usize> = Vec::new();
        let mut listing = RawDir::new(dir, buf);
        while let Some(item) = listing.next() {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    let path = path_of(root, stack, name);
                    self.out.note(format!("cannot list {}: {e}", path.display()));
                    break;
                }
            };
            let entry = item.file_name().to_bytes();
            if entry == b"." || entry == b".." {
                continue;
            }
            let Some(left) = self.left.checked_sub(1) else {
                let path = path_of(root, stack, name);
                self.out.note(format!(
                    "the sweep for planted protected entries stopped after {} entries, in {}; \
                     what lies beyond was not looked at",
                    self.budget,
                    path.display()
                ));
                return Err(Stop);
            };
            self.left = left;
            let ino = item.ino();
            if self.carved.name_matches(entry) {
                if !self.census.contains(dev, ino) {
                    planted.push((OsString::from_vec(entry.to_vec()), ino));
                }
                continue;
            }
            let unknown = item.file_type() == FileType::Unknown;
            let maybe_dir = unknown || item.file_type() == FileType::Directory;
            if maybe_dir && !self.census.contains(dev, ino) && !self.skip.contains(&(dev, ino)) {
                if unknown {
                    kinds.push(subdirs.len());
                }
                subdirs.push((OsString::from_vec(entry.to_vec()), ino));
            }
        }
        // Entries whose type the listing did not give are asked, once it is done.
        let not_dir = |n: &OsString| {
            let st = rustix::fs::statat(dir, n.as_os_str(), AtFlags::SYMLINK_NOFOLLOW);
            !st.is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
        };
        for i in kinds.into_iter().rev() {
            if subdirs.get(i).is_some_and(|(n, _)| not_dir(n)) {
                subdirs.remove(i);
            }
        }
        Ok((subdirs, planted))
    }

    /// Opens the directory `name` of `dir` for listing, never through a link: `None` when it
    /// is gone or not a directory. A directory of this user the run made unreadable is
    /// given its owner's rights first (the mode to put back is returned).
    ///
    /// `listed`: the device of `dir` and the inode its listing gave for `name`. A directory
    /// on the same device is then taken to be that inode, without an `fstat` (one system
    /// call less per directory: `RESOLVE_NO_XDEV` refuses a mount point, which is opened
    /// again and asked).
    fn open(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        resolve: ResolveFlags,
        listed: Option<(u64, u64)>,
    ) -> Result<Option<Opened>, Errno> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if let Some((dev, ino)) = listed {
            let same_device = resolve | ResolveFlags::NO_XDEV;
            match rustix::fs::openat2(dir, name, flags, Mode::empty(), same_device) {
                Ok(fd) => return Ok(Some(Opened { fd, dev, ino, stat: None, restore: None })),
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
                // A mount point, or one to open up: the general way below.
                Err(_) => {}
            }
        }
        let (fd, restore) = match rustix::fs::openat2(dir, name, flags, Mode::empty(), resolve) {
            Ok(fd) => (fd, None),
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
            Err(Errno::ACCESS) => {
                let path_flags =
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let p = rustix::fs::openat2(dir, name, path_flags, Mode::empty(), resolve)?;
                let st = rustix::fs::fstat(&p)?;
                if st.st_uid != self.uid {
                    return Err(Errno::ACCESS);
                }
                let mode = st.st_mode & 0o7777;
                chmod_path_fd(p.as_fd(), mode | 0o700)?;
                match rustix::fs::openat(&p, c".", flags, Mode::empty()) {
                    Ok(fd) => (fd, Some(mode)),
                    Err(e) => {
                        let _ = chmod_path_fd(p.as_fd(), mode);
                        return Err(e);
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let st = rustix::fs::fstat(&fd)?;
        let stat = Some((st.st_mode, st.st_uid));
        Ok(Some(Opened { fd, dev: st.st_dev, ino: st.st_ino, stat, restore }))
    }

    /// Takes the planted entry `name` (inode `ino`) of the directory `dir` (on `dev`), found
    /// at `path`: into the quarantine where it can be moved, else removed.
    fn take(&mut self, dir: BorrowedFd<'_>, dev: u64, name: &OsStr, ino: u64, path: PathBuf) {
        self.out.count += 1;
        let fate = match self.quarantine.put(dir, dev, name, self.uid) {
            Some(to) => PlantedFate::Quarantined(to),
            None => remove(dir, name, ino),
        };
        if let PlantedFate::Left(why) = &fate {
            self.out.note(format!("{} could not be taken away: {why}", path.display()));
        }
        if self.out.entries.len() < MAX_PLANTED_LISTED {
            self.out.entries.push(PlantedEntry { path, fate });
        }
    }
}

/// Puts back the mode a directory had before the sweep opened it up.
fn put_back(fd: BorrowedFd<'_>, restore: Option<u32>) {
    if let Some(mode) = restore {
        let _ = rustix::fs::fchmod(fd, Mode::from_raw_mode(mode));
    }
}

/// The path of the entry `name` of the directory on top of `stack` (the tree's top when
/// `stack` is empty), for reports: built only when one is needed, since a run can nest
/// directories deeper than any path can name.
fn path_of(root: &Path, stack: &[Frame], name: &OsStr) -> PathBuf {
    let mut p = root.to_path_buf();
    for f in stack.iter().skip(1) {
        p.push(&f.name);
    }
    if !name.is_empty() {
        p.push(name);
    }
    p
}

/// The parent of the directory `fd`, opened through `..`, if it is still the directory on
/// device `dev` with inode `ino`.
fn reopen_parent(fd: BorrowedFd<'_>, dev: u64, ino: u64) -> Option<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let p = rustix::fs::openat(fd, c"..", flags, Mode::empty()).ok()?;
    let st = rustix::fs::fstat(&p).ok()?;
    (st.st_dev == dev && st.st_ino == ino).then_some(p)
}

/// Gives the object the `O_PATH` descriptor `fd` refers to `mode`. `fchmod` refuses an
/// `O_PATH` descriptor, and a directory mode 000 cannot be opened otherwise; the path
/// through `/proc/self/fd` names exactly that object.
fn chmod_path_fd(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    rustix::fs::chmod(proc_path.as_str(), Mode::from_raw_mode(mode))
}

/// Removes the planted entry `name` (inode `ino`) of `dir`, a whole tree when it is a
/// directory (iteratively: a run can nest one deeper than any recursion survives).
fn remove(dir: BorrowedFd<'_>, name: &OsStr, ino: u64) -> PlantedFate {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return PlantedFate::Removed,
        Err(e) => return PlantedFate::Left(e.to_string()),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let (dev, ino) = (st.st_dev, ino);
        let budget = Some(MAX_SWEEP_ENTRIES as u64);
        match crate::remove::remove_tree_at(dir, name, |id| id.dev == dev && id.ino == ino, budget)
        {
            Ok(()) => PlantedFate::Removed,
            Err(e) => PlantedFate::Left(e.to_string()),
        }
    } else {
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => PlantedFate::Removed,
            Err(e) => PlantedFate::Left(e.to_string()),
        }
    }
}

/// The quarantine directory of one sweep, made and opened when first needed.
struct Quarantine {
    path: Option<PathBuf>,
    /// The directory and its device, once opened; `Err` when it cannot be had.
    opened: Option<Result<(OwnedFd, u64), ()>>,
    /// The number the next entry's name starts with.
    next: u64,
}

impl Quarantine {
    /// Moves `name` of `dir` (on device `dev`) into the quarantine as `N-NAME`; its new path,
    /// or `None` when it cannot be moved there (no quarantine, another file system, or the
    /// rename refused), for the caller to remove it instead.
    fn put(&mut self, dir: BorrowedFd<'_>, dev: u64, name: &OsStr, uid: u32) -> Option<PathBuf> {
        let path = self.path.clone()?;
        if self.opened.is_none() {
            self.opened = Some(open_quarantine(&path));
        }
        let Some(Ok((q, qdev))) = &self.opened else { return None };
        if *qdev != dev {
            return None;
        }
        let mut opened_up = false;
        // Bounded: each name tried is taken by an entry already in the quarantine.
        for _ in 0..MAX_SWEEP_ENTRIES {
            let mut new_name = format!("{}-", self.next).into_bytes();
            new_name.extend_from_slice(name.as_bytes());
            let new_name = OsString::from_vec(new_name);
            match rustix::fs::renameat_with(dir, name, q, &new_name, RenameFlags::NOREPLACE) {
                Ok(()) => {
                    self.next += 1;
                    return Some(path.join(new_name));
                }
                Err(Errno::EXIST) => self.next += 1,
                // Moving a directory to another parent takes write access to it: a run may
                // have made its own read-only.
                Err(Errno::ACCESS | Errno::PERM) if !opened_up => {
                    opened_up = true;
                    if !open_up_entry(dir, name, uid) {
                        return None;
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }
}

/// Makes (with its parents, mode 0700) and opens the quarantine directory `path`.
fn open_quarantine(path: &Path) -> Result<(OwnedFd, u64), ()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(drop)?;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(drop)?;
    let st = rustix::fs::fstat(&fd).map_err(drop)?;
    Ok((fd, st.st_dev))
}

/// Gives the directory `name` of `dir`, when it is this user's, its owner's rights.
fn open_up_entry(dir: BorrowedFd<'_>, name: &OsStr, uid: u32) -> bool {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(p) = rustix::fs::openat(dir, name, flags, Mode::empty()) else { return false };
    let Ok(st) = rustix::fs::fstat(&p) else { return false };
    st.st_uid == uid && chmod_path_fd(p.as_fd(), (st.st_mode | 0o700) & 0o7777).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    const NAMES: &[&str] = &[".git", ".q-skills", ".claude", ".bashrc", ".profile"];

    /// A policy writing `root` (guarded), protecting [`NAMES`], quarantining into `q`.
    fn policy(root: &Path, q: Option<&Path>) -> Policy {
        let mut p = Policy::strict();
        p.write = vec![root.to_path_buf()];
        p.guarded = vec![root.to_path_buf()];
        p.protected = NAMES.iter().map(|n| n.to_string()).collect();
        p.quarantine = q.map(Path::to_path_buf);
        p
    }

    /// Everything beneath `dir`: each path with its bytes (`None` for a directory, the
    /// target for a link).
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let m = fs::symlink_metadata(&p).unwrap();
                if m.is_symlink() {
                    out.push((
                        p.clone(),
                        Some(fs::read_link(&p).unwrap().into_os_string().into_vec()),
                    ));
                } else if m.is_dir() {
                    out.push((p.clone(), None));
                    todo.push(p);
                } else {
                    out.push((p.clone(), Some(fs::read(&p).unwrap())));
                }
            }
        }
        out.sort();
        out
    }

    fn exists(p: &Path) -> bool {
        fs::symlink_metadata(p).is_ok()
    }

    fn mode(p: &Path) -> u32 {
        fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// Entries made under a protected name after the census, at depths 1 to 3, in a
    /// directory made after it, as a link and in another case, are moved to the
    /// quarantine; what held a protected name before (a nested repository, a file at the
    /// top) stays byte for byte, and so does everything else.
    #[test]
    fn what_was_made_under_a_protected_name_is_quarantined_and_what_was_there_stays() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        fs::create_dir_all(ws.join("vendor/lib/.git/refs")).unwrap();
        fs::write(ws.join("vendor/lib/.git/config"), "[core]\n").unwrap();
        fs::create_dir_all(ws.join("src/a/b")).unwrap();
        fs::write(ws.join("src/main.txt"), "main").unwrap();
        fs::write(ws.join(".bashrc"), "# mine").unwrap();
        let q = t.path().join("home/quarantine/run-1");
        let sweep = Sweep::new(&policy(&ws, Some(&q)), Census::default()).unwrap();
        let vendor_before = snapshot(&ws.join("vendor"));

        // What a run does.
        fs::create_dir(ws.join("src/.git")).unwrap();
        fs::write(ws.join("src/.git/config"), "[core]\n\tfsmonitor = touch /tmp/x\n").unwrap();
        fs::create_dir(ws.join("src/a/.claude")).unwrap();
        fs::write(ws.join("src/a/b/.BashRC"), "evil").unwrap();
        fs::create_dir_all(ws.join("new/deep/.q-skills/s")).unwrap();
        std::os::unix::fs::symlink("/etc", ws.join("src/a/b/.profile")).unwrap();
        fs::write(ws.join("src/a/b/kept.txt"), "output").unwrap();

        let p = sweep.after(0);
        assert_eq!(p.incomplete, None, "{p:?}");
        assert_eq!(p.count, 5, "{p:?}");
        let mut paths: Vec<PathBuf> = p.entries.iter().map(|e| e.path.clone()).collect();
        paths.sort();
        let want: Vec<PathBuf> = [
            "new/deep/.q-skills",
            "src/.git",
            "src/a/.claude",
            "src/a/b/.BashRC",
            "src/a/b/.profile",
        ]
        .iter()
        .map(|r| ws.join(r))
        .collect();
        assert_eq!(paths, want);
        for e in &p.entries {
            assert!(!exists(&e.path), "{} is still there", e.path.display());
            let PlantedFate::Quarantined(to) = &e.fate else { panic!("{e:?}") };
            assert!(to.starts_with(&q) && exists(to), "{e:?}");
            let name = to.file_name().unwrap().to_string_lossy().into_owned();
            let original = e.path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.ends_with(&format!("-{original}")), "{name}");
        }
        let git = p.entries.iter().find(|e| e.path.ends_with("src/.git")).unwrap();
        let PlantedFate::Quarantined(to) = &git.fate else { unreachable!() };
        assert!(fs::read_to_string(to.join("config")).unwrap().contains("fsmonitor"));
        assert_eq!(mode(&q), 0o700);
        assert_eq!(snapshot(&ws.join("vendor")), vendor_before, "a nested repository changed");
        assert_eq!(fs::read_to_string(ws.join(".bashrc")).unwrap(), "# mine");
        assert_eq!(fs::read_to_string(ws.join("src/a/b/kept.txt")).unwrap(), "output");
        assert!(exists(&ws.join("new/deep")), "the rest of what the run made stays");
        // A second sweep finds nothing more.
        let again = Sweep::new(&policy(&ws, Some(&q)), Census::default()).unwrap().after(0);
        assert!(again.is_clean(), "{again:?}");
    }

    /// A chain far deeper than the directories the sweep holds open, with planted entries
    /// along it and at its end; and directories the run locked (mode 000, 500), which are
    /// opened for the sweep and get their modes back.
    #[test]
    fn deep_and_locked_directories_are_swept() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        fs::create_dir_all(ws.join("src")).unwrap();
        let q = t.path().join("q");
        let sweep = Sweep::new(&policy(&ws, Some(&q)), Census::default()).unwrap();

        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let mut dir = rustix::fs::open(ws.join("src"), flags, Mode::empty()).unwrap();
        let depth = 10 * MAX_OPEN + 7;
        for i in 0..depth {
            rustix::fs::mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
            if i % 100 == 50 {
                rustix::fs::mkdirat(&dir, ".git", Mode::from_raw_mode(0o755)).unwrap();
            }
            dir = rustix::fs::openat(&dir, "d", flags, Mode::empty()).unwrap();
        }
        rustix::fs::mkdirat(&dir, ".claude", Mode::from_raw_mode(0o500)).unwrap();
        drop(dir);
        fs::create_dir_all(ws.join("src/locked/.git")).unwrap();
        fs::create_dir_all(ws.join("src/ro/.q-skills")).unwrap();
        fs::set_permissions(ws.join("src/locked"), fs::Permissions::from_mode(0o000)).unwrap();
        fs::set_permissions(ws.join("src/ro"), fs::Permissions::from_mode(0o500)).unwrap();

        let p = sweep.after(0);
        assert_eq!(p.incomplete, None, "{p:?}");
        assert_eq!(p.count, 4 + 2, "{p:?}");
        assert!(p.entries.iter().all(|e| matches!(e.fate, PlantedFate::Quarantined(_))), "{p:?}");
        assert_eq!(mode(&ws.join("src/locked")), 0);
        assert_eq!(mode(&ws.join("src/ro")), 0o500);
        fs::set_permissions(ws.join("src/locked"), fs::Permissions::from_mode(0o700)).unwrap();
        fs::set_permissions(ws.join("src/ro"), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(!exists(&ws.join("src/locked/.git")) && !exists(&ws.join("src/ro/.q-skills")));
        let deepest = p.entries.iter().find(|e| e.path.ends_with(".claude")).unwrap();
        assert_eq!(
            deepest.path.components().count(),
            ws.join("src").components().count() + depth + 1
        );
        let ok = std::process::Command::new("rm").arg("-rf").arg(t.path()).status().unwrap();
        assert!(ok.success());
    }

    /// Beyond its budget the sweep stops and says so; within it, it finishes.
    #[test]
    fn a_sweep_over_its_budget_says_so() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        fs::create_dir_all(ws.join("junk")).unwrap();
        let mut sweep = Sweep::new(&policy(&ws, None), Census::default()).unwrap();
        for i in 0..100 {
            fs::write(ws.join(format!("junk/f{i}")), "").unwrap();
        }
        fs::create_dir_all(ws.join("junk/z/.git")).unwrap();
        sweep.budget = 50;
        let p = sweep.sweep();
        let why = p.incomplete.expect("incomplete");
        assert!(why.contains("stopped after 50 entries"), "{why}");
        sweep.budget = 1000;
        let p = sweep.sweep();
        assert_eq!((p.count, p.incomplete), (1, None));
        assert_eq!(p.entries[0].fate, PlantedFate::Removed);
        assert!(!exists(&ws.join("junk/z/.git")));
    }

    /// The sweep waits until no process of the run's group is left: here a zombie of the
    /// group, reaped 300 ms later (a killed process of a run without a PID namespace may
    /// still finish a system call meanwhile).
    #[test]
    fn the_sweep_waits_until_the_group_is_empty() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 0"])
            .process_group(0)
            .spawn()
            .unwrap();
        let group = child.id() as libc::pid_t;
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        let reaper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            child.wait().unwrap();
        });
        assert!(wait_gone(group));
        assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
        reaper.join().unwrap();
    }

    /// A file system mounted inside a writable tree is swept too (a run can write there):
    /// what was planted in it is taken (removed: the quarantine is on another file system),
    /// what it held before stays. Needs root and a `mount` that works here.
    #[test]
    fn a_mount_inside_a_writable_tree_is_swept() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        let m = ws.join("src/m");
        fs::create_dir_all(&m).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "skillbox-test"])
            .arg(&m)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(!rustix::process::geteuid().is_root(), "root must be able to mount here");
            eprintln!(
                "!!! NOT CHECKED: this user cannot mount; the mount point case is not tested"
            );
            return;
        }
        fs::create_dir_all(m.join("keep/.git")).unwrap();
        let sweep = Sweep::new(&policy(&ws, Some(&t.path().join("q"))), Census::default());
        fs::create_dir_all(m.join("keep/x/.git")).unwrap();
        fs::write(m.join(".claude"), "x").unwrap();
        let p = sweep.unwrap().after(0);
        let kept = exists(&m.join("keep/.git"));
        let gone = !exists(&m.join("keep/x/.git")) && !exists(&m.join(".claude"));
        let _ = std::process::Command::new("umount").arg(&m).status();
        assert_eq!((p.count, p.incomplete.as_deref()), (2, None), "{p:?}");
        assert!(p.entries.iter().all(|e| e.fate == PlantedFate::Removed), "{p:?}");
        assert!(kept, "what the mount held before the run was taken");
        assert!(gone, "what was planted in the mount is still there");
    }

    /// Without a quarantine, or with one on another file system, a planted entry is
    /// removed, a directory with everything in it.
    #[test]
    fn without_a_quarantine_on_the_same_file_system_it_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        fs::create_dir_all(ws.join("src")).unwrap();
        let shm = tempfile::tempdir_in("/dev/shm").expect("/dev/shm, a tmpfs, is needed here");
        let dev = |p: &Path| std::os::unix::fs::MetadataExt::dev(&fs::metadata(p).unwrap());
        assert_ne!(
            dev(shm.path()),
            dev(t.path()),
            "the temp dir is on /dev/shm's file system: this test needs two"
        );
        for q in [None, Some(shm.path().join("q"))] {
            let sweep = Sweep::new(&policy(&ws, q.as_deref()), Census::default()).unwrap();
            fs::create_dir_all(ws.join("src/.git/hooks")).unwrap();
            fs::write(ws.join("src/.git/hooks/pre-commit"), "#!/bin/sh\n").unwrap();
            fs::write(ws.join("src/.profile"), "evil").unwrap();
            let p = sweep.after(0);
            assert_eq!((p.count, p.incomplete.as_deref()), (2, None), "{q:?}: {p:?}");
            assert!(p.entries.iter().all(|e| e.fate == PlantedFate::Removed), "{p:?}");
            assert!(!exists(&ws.join("src/.git")) && !exists(&ws.join("src/.profile")));
        }
    }
}
