//! The run's own file tree, made of mounts: how files are confined where Landlock cannot
//! confine them (no Landlock, or an ABI that misses truncation without seccomp to stand in)
//! and the run has user and PID namespaces of its own.
//!
//! The parent decides everything and opens everything ([`build`]): it walks the granted trees
//! with the same walk Landlock's grants use (`crate::grants`), so that a tree is split around
//! its hidden paths and protected entries exactly as a ruleset would be, and turns each
//! decision into a mount: a tree or an entry granted whole is bound with the tree's rights, a
//! directory on the way to a carved-out path is bound read-only onto itself (so nothing in it
//! can be created, removed or renamed), an entry it keeps writable is bound back, a protected
//! entry is read-only, a hidden one is covered by an empty entry nobody may read. Every source
//! is an object the parent opened (without following a link, for the granted trees) and
//! decided on.
//!
//! The child runs the result ([`MountProgram`]) between clone and exec, in its new user, PID
//! and mount namespaces, with system calls only ([`apply`]):
//!
//! 1. every mount made private, so that nothing propagates to the host;
//! 2. every source looked up again in the new namespace (the parent's descriptors name the
//!    host's mounts, which the kernel will not bind from another namespace), one component at
//!    a time with `O_PATH | O_NOFOLLOW`, and checked to be the object the parent opened (same
//!    device and inode: a path changed since, or a link put in the way, fails the run); it
//!    takes the parent's descriptor's number, and is bound through `/proc/self/fd/N`;
//! 3. a staging tmpfs mounted on a directory of the host (`/tmp`), holding the empty entries
//!    that covers are bound from; the run's root, a second tmpfs, mounted on top of it;
//! 4. the steps in path order (a parent before what lies beneath it): each target opened
//!    beneath the new root one component at a time with `O_PATH | O_NOFOLLOW` (a link in
//!    the way fails the run rather than redirecting a mount), its missing components created
//!    only where they lie in a tmpfs of the run, never in a tree of the host; then the bind
//!    (recursive) and, for a read-only one, `mount_setattr` making it and every mount
//!    beneath it read-only, nosuid and nodev (on kernels before 5.12: a bind without its
//!    submounts and a remount keeping the flags the kernel locks); a fresh procfs of the
//!    run's PID namespace at `/proc` (the host's, bound read-only, where the kernel refuses a
//!    new one);
//! 5. both tmpfs made read-only;
//! 6. `pivot_root` into the new root and the old one detached, so that nothing else of the
//!    host's tree is reachable.
//!
//! A step that fails fails the run (`Stage::Mounts` and its errno): never a run with less.
//!
//! Beside Landlock, a run gets a much lighter program for read-only metadata and a `/proc`
//! of its own (`crate::metadata`): Landlock already confines what it reads and writes.

use std::ffi::{c_int, c_ulong, c_void, CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags};

use crate::grants::{grant_tree, Budget, Carve, Carved, GrantError, Grants, Level};
use crate::policy::{Policy, DEVICES, SYSTEM_READ};

/// Why the run's mount namespace could not be prepared.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MountError {
    /// A granted tree could not be granted as the policy says (see [`GrantError`]).
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// No directory of the host to build the run's root on.
    #[error(
        "cannot build the run's mount namespace: none of /tmp, /mnt, /dev is a directory here"
    )]
    NoBase,
    /// A path that must be bound could not be opened or examined.
    #[error("cannot build the run's mount namespace: {0}: {1}")]
    Open(PathBuf, std::io::Error),
}

/// The directory of the run's root that the staging tmpfs is mounted on while the root is
/// built (removed before the run starts; no target may begin with it).
const STAGING: &CStr = c".skillbox-staging";

/// `MOUNT_ATTR_*` of linux/mount.h (libc has no constants for them).
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `struct mount_attr` of linux/mount.h (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// An object the parent opened and decided on, and where the child finds it again in its
/// own mount namespace.
struct Source {
    /// The parent's descriptor (of the host's mount); in the child, replaced by the same
    /// object in the run's namespace.
    fd: OwnedFd,
    /// The components of its path, which holds no link.
    path: Vec<CString>,
    dir: bool,
}

/// Where the run's root is built before the pivot: a directory of the host (`/tmp`), which
/// the staging and root tmpfs are mounted on, in the run's namespace only.
struct Base {
    /// The root (`/`): each walk starts there and looks the base up by name, which finds the
    /// topmost mount on it.
    root: Source,
    /// The base's name in the root.
    name: CString,
    /// The directory itself: the target of the two tmpfs mounts.
    dir: Source,
}

/// One entry of the staging tmpfs, made by the child: an empty file or directory that a
/// cover is bound from.
struct Staged {
    name: CString,
    dir: bool,
    /// 0: nobody may read it (caps are dropped before exec, so root neither); 0o111 for a
    /// directory with granted paths beneath it, which must be passed through.
    mode: u32,
}

/// What a step does at its target.
enum Op {
    /// Binds `src` there.
    Bind {
        src: Source,
        dir: bool,
        read_only: bool,
        /// Device files keep working: no `nodev` on their mounts.
        devices: bool,
        /// For kernels without `mount_setattr`: the flags the remount must keep (those the
        /// kernel locks on mounts copied from the host: nosuid, nodev, noexec, atime).
        locked: c_ulong,
    },
    /// Binds staged entry `staged` there.
    Cover { staged: usize, dir: bool },
    /// Mounts a procfs of the run's PID namespace there, or binds `host` read-only where
    /// the kernel refuses a new one.
    Proc { host: Source },
    /// Makes a symbolic link there, with this text.
    Symlink { text: CString },
}

/// One mount (or link) of the program, at `target` beneath the new root.
struct Step {
    /// The target's components beneath the new root (empty: the root itself).
    target: Vec<CString>,
    /// Components from this index on may be created when missing: they lie in a tmpfs of
    /// the run. Before it they lie in a tree of the host, and must already exist.
    create_from: usize,
    op: Op,
}

/// The mounts of one run, prepared in the parent: paths as C strings, sources as open
/// descriptors, decisions as plain data. [`apply`] runs it in the child.
pub(crate) struct MountProgram {
    base: Base,
    staged: Vec<Staged>,
    steps: Vec<Step>,
    /// Read-only mounts are made with `mount_setattr`, recursively (Linux 5.12); else with a
    /// remount, and binds leave submounts out.
    recursive: bool,
}

/// Whether `mount_setattr` exists here (Linux 5.12): asked once, with arguments it refuses.
fn has_mount_setattr() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        // SAFETY: a descriptor of -1 and a NULL attribute of size 0: the kernel refuses
        // (EBADF, EINVAL) before reading anything, or answers ENOSYS.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                -1,
                c"".as_ptr(),
                0u32,
                std::ptr::null::<MountAttr>(),
                0usize,
            )
        };
        let errno = std::io::Error::last_os_error().raw_os_error();
        !(r < 0 && matches!(errno, Some(libc::ENOSYS) | Some(libc::EPERM)))
    })
}

/// A bind or cover decided in the parent, before the steps are laid out.
enum Planned {
    /// `fd` is the object at the path (`source` when it was reached through a link).
    Bind {
        fd: OwnedFd,
        source: Option<PathBuf>,
        dir: bool,
        write: bool,
        devices: bool,
    },
    Cover {
        dir: bool,
    },
    Proc {
        host: OwnedFd,
    },
    Symlink {
        text: PathBuf,
    },
}

impl Planned {
    fn rank(&self) -> u8 {
        // What wins when two decisions name the same path: an explicit grant over a cover
        // (a grant of a hidden path itself is the caller's choice), anything over a link.
        match self {
            Planned::Bind { .. } => 3,
            Planned::Proc { .. } => 2,
            Planned::Cover { .. } => 1,
            Planned::Symlink { .. } => 0,
        }
    }
}

/// What the walk of one granted tree comes to: its decisions as binds and covers.
struct Collect<'a> {
    out: &'a mut Vec<(PathBuf, Planned)>,
    /// The tree writes: an object granted whole is bound writable.
    writes: bool,
}

impl Grants for Collect<'_> {
    fn grant(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &Path,
        level: Level,
        dir: bool,
    ) -> Result<(), GrantError> {
        let fd = fd.try_clone_to_owned().map_err(|e| GrantError::List(path.to_path_buf(), e))?;
        let write = self.writes && level == Level::Whole;
        let bind = Planned::Bind { fd, source: None, dir, write, devices: false };
        self.out.push((path.to_path_buf(), bind));
        Ok(())
    }

    fn hide(&mut self, path: &Path, dir: bool) -> Result<(), GrantError> {
        self.out.push((path.to_path_buf(), Planned::Cover { dir }));
        Ok(())
    }
}

/// An `O_PATH` descriptor of `path`, following links (system paths: owned by root), and
/// the path it resolved to, when that differs.
fn open_system(path: &Path) -> Option<(OwnedFd, Option<PathBuf>)> {
    let fd = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let real = std::fs::canonicalize(path).ok()?;
    Some((fd, (real != path).then_some(real)))
}

/// A system path opened as a bind of `devices` (or not), read-only.
fn system_bind(path: &Path, devices: bool) -> Option<Planned> {
    let (fd, source) = open_system(path)?;
    let dir = is_dir(&fd);
    Some(Planned::Bind { fd, source, dir, write: false, devices })
}

fn is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
}

/// The base to build on: the first of `/tmp`, `/mnt`, `/dev` that is a directory (not a
/// link), with the root.
fn base() -> Result<Base, MountError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let root = rustix::fs::open("/", flags, Mode::empty())
        .map_err(|e| MountError::Open(PathBuf::from("/"), e.into()))?;
    for name in [c"tmp", c"mnt", c"dev"] {
        if let Ok(dir) = rustix::fs::openat(&root, name, flags, Mode::empty()) {
            let dir = Source { fd: dir, path: vec![name.to_owned()], dir: true };
            let root = Source { fd: root, path: Vec::new(), dir: true };
            return Ok(Base { root, name: name.to_owned(), dir });
        }
    }
    Err(MountError::NoBase)
}

/// `path`'s components as C strings.
fn c_components(path: &Path) -> Result<Vec<CString>, MountError> {
    components(path).iter().map(|c| CString::new(c.as_bytes()).map_err(|_| nul(path))).collect()
}

/// The system part of every run's tree, as Landlock's system rules grant it: the system
/// directories (a link among them, `/bin -> usr/bin`, made as a link, and what it leads to
/// bound where it lives), `/etc` read-only (its secrets are covered with the other carved
/// paths), what the links directly in `/etc` lead to (`/etc/resolv.conf` into `/run`), the
/// harmless devices, and `/proc`.
fn system(out: &mut Vec<(PathBuf, Planned)>, targets: &mut Vec<PathBuf>) {
    for dir in SYSTEM_READ.iter().map(Path::new) {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(text) = std::fs::read_link(dir) {
                    out.push((dir.to_path_buf(), Planned::Symlink { text }));
                }
                if let Ok(t) = std::fs::canonicalize(dir) {
                    targets.push(t);
                }
            }
            Ok(_) => {
                if let Some(bind) = system_bind(dir, false) {
                    out.push((dir.to_path_buf(), bind));
                }
            }
            Err(_) => {}
        }
    }
    if let Some(bind) = system_bind(Path::new("/etc"), false) {
        out.push((PathBuf::from("/etc"), bind));
        targets.extend(etc_link_targets().iter().cloned());
    }
    for dev in DEVICES.iter().map(Path::new) {
        if let Some(bind) = system_bind(dev, true) {
            out.push((dev.to_path_buf(), bind));
        }
    }
    // The usual links of /dev, into the run's own /proc.
    for (name, text) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        out.push((PathBuf::from(name), Planned::Symlink { text: PathBuf::from(text) }));
    }
    if let Ok(host) = rustix::fs::open(
        "/proc",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        out.push((PathBuf::from("/proc"), Planned::Proc { host }));
    }
}

/// What the links directly in `/etc` lead to, resolved; read again when `/etc` changes (its
/// modification time moves when an entry is added, removed or replaced).
fn etc_link_targets() -> std::sync::Arc<Vec<PathBuf>> {
    type Cache = (Option<std::time::SystemTime>, std::sync::Arc<Vec<PathBuf>>);
    static CACHE: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);
    let mtime = std::fs::metadata("/etc").and_then(|m| m.modified()).ok();
    let mut guard = match CACHE.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Some((at, list)) = guard.as_ref() {
        if at.is_some() && *at == mtime {
            return list.clone();
        }
    }
    let mut list = Vec::new();
    for e in std::fs::read_dir("/etc").into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_symlink()) {
            if let Ok(t) = std::fs::canonicalize(e.path()) {
                list.push(t);
            }
        }
    }
    let list = std::sync::Arc::new(list);
    *guard = Some((mtime, list.clone()));
    list
}

/// Builds the mount program of a run of `policy`, whose files are confined (see the module's
/// documentation). Fails where Landlock's grants would: a granted path through a link, a
/// writable tree too large to examine, an entry that changed while examined.
pub(crate) fn build(policy: &Policy) -> Result<MountProgram, MountError> {
    build_counted(policy, &mut Default::default())
}

/// [`build`], adding what the walk kept out of the writable trees to `census` (see
/// `crate::planted`).
pub(crate) fn build_counted(
    policy: &Policy,
    census: &mut crate::planted::Census,
) -> Result<MountProgram, MountError> {
    let base = base()?;
    let mut planned: Vec<(PathBuf, Planned)> = Vec::new();
    let mut link_targets = Vec::new();
    system(&mut planned, &mut link_targets);

    // The granted trees, split by the walk Landlock's grants use.
    let carved_paths = crate::landlock::carved_paths(policy);
    let carved = Carved::new(&carved_paths, &policy.protected);
    let unnamed = Carved::new(&carved_paths, &[]);
    let mut budget = Budget::new(crate::landlock::MAX_GRANT_ENTRIES);
    for p in &policy.read {
        let root = crate::paths::normalize(p);
        let mut sink = Collect { out: &mut planned, writes: false };
        grant_tree(&mut sink, &root, false, false, &carved, &mut budget)?;
    }
    for p in &policy.write {
        let root = crate::paths::normalize(p);
        let guarded = policy.guarded.iter().any(|g| crate::paths::normalize(g) == root);
        let mut sink = Collect { out: &mut planned, writes: true };
        grant_tree(&mut sink, &root, true, guarded, &carved, &mut budget)?;
    }
    for p in &policy.scratch {
        let root = crate::paths::normalize(p);
        let mut sink = Collect { out: &mut planned, writes: true };
        grant_tree(&mut sink, &root, true, false, &unnamed, &mut budget)?;
    }
    census.absorb(budget.into_census());

    // One decision per path: the strongest.
    let mut by_path: std::collections::BTreeMap<PathBuf, Planned> = Default::default();
    for (path, p) in planned {
        match by_path.get_mut(&path) {
            None => {
                by_path.insert(path, p);
            }
            Some(old) => merge(old, p),
        }
    }
    // What system links lead to, where nothing else shows it and it is no secret.
    for t in link_targets {
        let shown = ancestor_or_self(&by_path, &t).is_some();
        let secret = carved_paths.iter().any(|(c, _)| t.starts_with(c));
        if shown || secret {
            continue;
        }
        if let Some(bind) = system_bind(&t, false) {
            by_path.insert(t, bind);
        }
    }
    // Every carved path that exists, beneath anything the run sees, is covered (the walk
    // covers those of the granted trees; these are the ones beneath system trees, and the
    // secrets of /etc).
    for (c, kind) in &carved_paths {
        if *kind != Carve::Hidden || by_path.contains_key(c) {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(c) else { continue };
        if m.file_type().is_symlink() || ancestor(&by_path, c).is_none() {
            continue;
        }
        by_path.insert(c.clone(), Planned::Cover { dir: m.is_dir() });
    }
    lay_out(base, by_path)
}

/// Merges a second decision for the same path into `old`: the stronger kind wins; of two
/// binds, the one that writes (Landlock's rights add up).
fn merge(old: &mut Planned, new: Planned) {
    if let (Planned::Bind { write, .. }, Planned::Bind { write: w, .. }) = (&mut *old, &new) {
        *write |= *w;
    } else if new.rank() > old.rank() {
        *old = new;
    }
}

/// The nearest entry strictly above `p`.
fn ancestor<'a>(
    map: &'a std::collections::BTreeMap<PathBuf, Planned>,
    p: &Path,
) -> Option<(&'a Path, &'a Planned)> {
    p.ancestors().skip(1).find_map(|a| map.get_key_value(a).map(|(k, v)| (k.as_path(), v)))
}

/// The nearest entry at or above `p`.
fn ancestor_or_self<'a>(
    map: &'a std::collections::BTreeMap<PathBuf, Planned>,
    p: &Path,
) -> Option<(&'a Path, &'a Planned)> {
    p.ancestors().find_map(|a| map.get_key_value(a).map(|(k, v)| (k.as_path(), v)))
}

/// The mount id of `fd` (`statx`, Linux 5.8), when the kernel gives it.
fn mount_id(fd: &OwnedFd) -> Option<u64> {
    let st =
        rustix::fs::statx(fd, "", rustix::fs::AtFlags::EMPTY_PATH, rustix::fs::StatxFlags::MNT_ID)
            .ok()?;
    (st.stx_mask & rustix::fs::StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id)
}

/// The flags a remount of a bind of `fd` must keep: those the kernel locks on a mount copied
/// into a less privileged namespace.
fn locked_flags(fd: &OwnedFd) -> c_ulong {
    use rustix::fs::StatVfsMountFlags as F;
    let Ok(st) = rustix::fs::fstatvfs(fd) else { return 0 };
    let f = st.f_flag;
    let mut out = 0;
    for (have, ms) in [
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
        (F::RDONLY, libc::MS_RDONLY),
    ] {
        if f.contains(have) {
            out |= ms;
        }
    }
    out
}

/// Lays the decisions out as steps, parents first: drops a bind that changes nothing (the
/// same object with the same rights, already shown by the bind above it), and says where
/// each target's missing components may be created.
fn lay_out(
    base: Base,
    by_path: std::collections::BTreeMap<PathBuf, Planned>,
) -> Result<MountProgram, MountError> {
    let recursive = has_mount_setattr();
    // What each kept path is, for the entries beneath it: a host bind (with its rights and
    // mount), or a tmpfs of the run (a cover), or the run's procfs.
    enum Kept {
        Host { write: bool, mount: Option<u64> },
        Tmpfs { staged: usize },
        Proc,
        Link,
    }
    let mut kept: std::collections::BTreeMap<PathBuf, Kept> = Default::default();
    let mut staged: Vec<Staged> = Vec::new();
    let mut steps = Vec::new();
    for (path, planned) in by_path {
        let above = path.ancestors().skip(1).find_map(|a| kept.get_key_value(a));
        // Where the target's missing components may be created (in a tmpfs of the run:
        // beneath the root, or a cover), and the host bind it lies in, if it does.
        let (create_from, under_host) = match above {
            None => (Some(0), None),
            Some((a, Kept::Tmpfs { staged: i })) => {
                // Something granted beneath a hidden directory: its cover is passed through.
                if let Some(s) = staged.get_mut(*i) {
                    s.mode = 0o111;
                }
                (Some(components(a).len()), None)
            }
            Some((_, Kept::Host { write, mount })) => (None, Some((*write, *mount))),
            Some((_, Kept::Proc | Kept::Link)) => (None, None),
        };
        let shown_above = above.is_some();
        let target = c_components(&path)?;
        if target.first().is_some_and(|c| c.as_c_str() == STAGING) {
            return Err(MountError::Open(path, std::io::Error::from_raw_os_error(libc::EEXIST)));
        }
        let op = match planned {
            Planned::Bind { fd, source, dir, write, devices } => {
                let write = write || under_host.is_some_and(|(w, _)| w);
                if let Some((w, mount)) = under_host {
                    let same_mount = recursive || (mount.is_some() && mount == mount_id(&fd));
                    if w == write && same_mount && !devices {
                        continue;
                    }
                }
                let mount = if recursive { None } else { mount_id(&fd) };
                kept.insert(path.clone(), Kept::Host { write, mount });
                let locked = if recursive { 0 } else { locked_flags(&fd) };
                let path = match source {
                    Some(real) => c_components(&real)?,
                    None => target.clone(),
                };
                let src = Source { fd, path, dir };
                Op::Bind { src, dir, read_only: !write, devices, locked }
            }
            Planned::Cover { dir } => {
                if !shown_above {
                    // Nothing shows it: nothing to cover.
                    continue;
                }
                let i = staged.len();
                let name = CString::new(i.to_string()).map_err(|_| nul(&path))?;
                staged.push(Staged { name, dir, mode: 0 });
                kept.insert(path.clone(), Kept::Tmpfs { staged: i });
                Op::Cover { staged: i, dir }
            }
            Planned::Proc { host } => {
                kept.insert(path.clone(), Kept::Proc);
                Op::Proc { host: Source { fd: host, path: target.clone(), dir: true } }
            }
            Planned::Symlink { text } => {
                // Only in a tmpfs of the run: a tree of the host has its own.
                if create_from.is_none() {
                    continue;
                }
                kept.insert(path.clone(), Kept::Link);
                let text = CString::new(text.as_os_str().as_bytes()).map_err(|_| nul(&path))?;
                Op::Symlink { text }
            }
        };
        let create_from = create_from.unwrap_or(target.len()).min(target.len());
        steps.push(Step { target, create_from, op });
    }
    Ok(MountProgram { base, staged, steps, recursive })
}

fn nul(path: &Path) -> MountError {
    MountError::Open(
        path.to_path_buf(),
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL byte in path"),
    )
}

/// The normal components of an absolute path.
fn components(p: &Path) -> Vec<&std::ffi::OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The child's part: system calls only, on the program the parent prepared.
// ---------------------------------------------------------------------------------------

/// `/proc/self/fd/N` for a descriptor, written into a buffer on the child's stack.
struct FdPath {
    buf: [u8; 32],
}

impl FdPath {
    fn new(fd: c_int) -> Self {
        const PREFIX: &[u8; 14] = b"/proc/self/fd/";
        let mut buf = [0u8; 32];
        let mut i = 0;
        while i < PREFIX.len() {
            buf[i] = PREFIX[i];
            i += 1;
        }
        // The digits, most significant first; a descriptor has at most 10.
        let mut digits = [0u8; 10];
        let mut n = fd.max(0) as u32;
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            n /= 10;
            len += 1;
            if n == 0 || len == digits.len() {
                break;
            }
        }
        for k in 0..len {
            buf[PREFIX.len() + k] = digits[len - 1 - k];
        }
        Self { buf }
    }

    fn as_ptr(&self) -> *const libc::c_char {
        self.buf.as_ptr() as *const libc::c_char
    }
}

/// The errno of the last failed call.
fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `Err(())` when a system call returned a negative value; errno tells why.
fn ok(r: impl Into<i64>) -> Result<(), ()> {
    if r.into() < 0 {
        Err(())
    } else {
        Ok(())
    }
}

fn close(fd: c_int) {
    // SAFETY: closes a descriptor this child opened and no longer uses.
    unsafe { libc::close(fd) };
}

/// `mount(2)` with optional C strings; `data` NULL.
fn mount(
    source: *const libc::c_char,
    target: *const libc::c_char,
    fstype: *const libc::c_char,
    flags: c_ulong,
    data: *const libc::c_char,
) -> Result<(), ()> {
    // SAFETY: every pointer is NULL or a NUL-terminated string of the program (alive until
    // exec) or of this child's stack (alive across the call).
    ok(unsafe { libc::mount(source, target, fstype, flags, data as *const c_void) })
}

/// `openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | extra)`.
fn open_path(dir: c_int, name: &CStr, extra: c_int) -> c_int {
    // SAFETY: `name` is a NUL-terminated string of the program, alive until exec.
    unsafe {
        libc::openat(dir, name.as_ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC | extra)
    }
}

/// Opens the top of the base (the topmost mount on it: the run's root once it is mounted).
fn open_base(p: &MountProgram) -> Result<c_int, ()> {
    let fd = open_path(p.base.root.fd.as_raw_fd(), &p.base.name, libc::O_DIRECTORY);
    ok(fd).map(|()| fd)
}

/// Opens the target of `step` beneath the base, one component at a time and never through
/// a link, creating a missing component where the step allows (as a directory, or, for the
/// last, what `leaf_dir` says). Returns the directory holding the target and the target
/// itself (the base's parent and the base for the root); with `parent_only`, the target is
/// not opened (-1).
fn open_target(
    p: &MountProgram,
    step: &Step,
    leaf_dir: bool,
    parent_only: bool,
) -> Result<(c_int, c_int), ()> {
    let mut dir = open_base(p)?;
    let Some(last) = step.target.len().checked_sub(1) else {
        // SAFETY: dup takes and returns plain integers.
        let parent = unsafe { libc::fcntl(p.base.root.fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
        ok(parent)?;
        return Ok((parent, dir));
    };
    for (i, name) in step.target.iter().enumerate() {
        if i == last && parent_only {
            return Ok((dir, -1));
        }
        let as_dir = i < last || leaf_dir;
        let extra = if as_dir { libc::O_DIRECTORY } else { 0 };
        let mut fd = open_path(dir, name, extra);
        if fd < 0 && errno() == libc::ENOENT && i >= step.create_from {
            create(dir, name, as_dir)?;
            fd = open_path(dir, name, extra);
        }
        ok(fd)?;
        if i == last {
            return Ok((dir, fd));
        }
        close(dir);
        dir = fd;
    }
    Err(())
}

/// Creates `name` in `dir`: a directory, or an empty file, to mount on.
fn create(dir: c_int, name: &CString, as_dir: bool) -> Result<(), ()> {
    if as_dir {
        // SAFETY: `name` is a NUL-terminated string of the program.
        return ok(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o755) });
    }
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is a NUL-terminated string of the program; the mode is a plain integer.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags, 0o644 as libc::c_uint) };
    ok(fd)?;
    close(fd);
    Ok(())
}

/// Makes the mount on `fd` (and, `recursive`, every mount beneath it) read-only, nosuid
/// and (unless `devices`) nodev, with `mount_setattr`, or (`locked`: the flags the kernel
/// keeps) with a remount of that mount alone.
fn read_only(fd: c_int, recursive: bool, devices: bool, locked: c_ulong) -> Result<(), ()> {
    if recursive {
        let nodev = if devices { 0 } else { MOUNT_ATTR_NODEV };
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | nodev,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: the kernel reads one `struct mount_attr` of the size given, on this stack.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                fd,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        return ok(r);
    }
    let nodev = if devices { 0 } else { libc::MS_NODEV };
    let flags =
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | nodev | locked;
    let target = FdPath::new(fd);
    mount(std::ptr::null(), target.as_ptr(), std::ptr::null(), flags, std::ptr::null())
}

/// Fails with `errno` set to `e`.
fn fail(e: c_int) -> Result<(), ()> {
    // SAFETY: __errno_location takes nothing and returns this thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: writes this thread's errno, which the child shares with the parent thread (no
    // CLONE_SETTLS), as every failing system call here does; the parent reads it only when
    // clone itself fails.
    unsafe { *slot = e };
    Err(())
}

/// `fstat` of `fd`: its device and inode.
fn identity(fd: c_int) -> Result<(u64, u64), ()> {
    // SAFETY: stat is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `struct stat` into `st`, on this stack.
    ok(unsafe { libc::fstat(fd, &mut st) })?;
    Ok((st.st_dev, st.st_ino))
}

/// Replaces this child's copy of `src.fd` (the parent's descriptor, whose mount is the
/// host's) by the same object looked up in the run's mount namespace from `root`, one
/// component of `src.path` at a time, never through a link. Fails (`ESTALE`) where the
/// path now leads to another object.
fn adopt(root: c_int, src: &Source) -> Result<(), ()> {
    // SAFETY: dup takes and returns plain integers.
    let mut cur = unsafe { libc::fcntl(root, libc::F_DUPFD_CLOEXEC, 0) };
    ok(cur)?;
    let last = src.path.len().saturating_sub(1);
    for (i, name) in src.path.iter().enumerate() {
        let dir = if i < last || src.dir { libc::O_DIRECTORY } else { 0 };
        let next = open_path(cur, name, dir);
        ok(next)?;
        close(cur);
        cur = next;
    }
    let want = src.fd.as_raw_fd();
    if identity(cur)? != identity(want)? {
        return fail(libc::ESTALE);
    }
    // SAFETY: dup3 takes plain integers; it replaces this child's copy of the parent's
    // descriptor (the child has its own descriptor table).
    ok(unsafe { libc::dup3(cur, want, libc::O_CLOEXEC) })?;
    close(cur);
    Ok(())
}

/// Runs `p` in the child (see the module's documentation). On failure errno says why; the
/// child then exits, and the descriptors it opened close with it.
pub(crate) fn apply(p: &MountProgram) -> Result<(), ()> {
    // SAFETY: umask takes and returns a plain integer: the modes below are exact.
    let umask = unsafe { libc::umask(0) };
    mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    )?;
    // Every object the parent decided on, found again in this namespace, before anything is
    // mounted over the way to it.
    // SAFETY: a static path.
    let root =
        unsafe { libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    ok(root)?;
    adopt(root, &p.base.dir)?;
    for step in &p.steps {
        match &step.op {
            Op::Bind { src, .. } | Op::Proc { host: src } => adopt(root, src)?,
            Op::Cover { .. } | Op::Symlink { .. } => {}
        }
    }
    adopt(root, &p.base.root)?;
    close(root);
    // The run's root: unbindable, so that a recursive bind of a tree holding the base (a
    // grant of `/`) copies the host's directory there, not this tmpfs and what is on it.
    let base = FdPath::new(p.base.dir.fd.as_raw_fd());
    let tmpfs = c"tmpfs".as_ptr();
    let flags = libc::MS_NOSUID | libc::MS_NODEV;
    mount(tmpfs, base.as_ptr(), tmpfs, flags, c"mode=0755,size=1m".as_ptr())?;
    let root = open_base(p)?;
    let at = FdPath::new(root);
    mount(std::ptr::null(), at.as_ptr(), std::ptr::null(), libc::MS_UNBINDABLE, std::ptr::null())?;
    // The staging tmpfs, in a directory of the root, detached once the covers are bound.
    // SAFETY: a static name.
    ok(unsafe { libc::mkdirat(root, STAGING.as_ptr(), 0o700) })?;
    let dir = open_path(root, STAGING, libc::O_DIRECTORY);
    ok(dir)?;
    let at = FdPath::new(dir);
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(tmpfs, at.as_ptr(), tmpfs, flags, c"mode=0700,size=64k".as_ptr())?;
    close(dir);
    let staging = open_path(root, STAGING, libc::O_DIRECTORY);
    ok(staging)?;
    for s in &p.staged {
        if s.dir {
            // SAFETY: `name` is a NUL-terminated string of the program.
            ok(unsafe { libc::mkdirat(staging, s.name.as_ptr(), s.mode) })?;
        } else {
            let f = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC;
            // SAFETY: `name` is a NUL-terminated string of the program; the mode is a plain
            // integer.
            let fd = unsafe { libc::openat(staging, s.name.as_ptr(), f, s.mode as libc::c_uint) };
            ok(fd)?;
            close(fd);
        }
    }
    for step in &p.steps {
        run_step(p, step, staging)?;
    }
    // Both tmpfs read-only, whole (every bind of a staged entry with them); the staging one
    // detached, its directory removed.
    let sealed = libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
    let at = FdPath::new(staging);
    let null = std::ptr::null();
    mount(null, at.as_ptr(), null, sealed | libc::MS_NOEXEC, null)?;
    // SAFETY: the path names this child's own descriptor.
    ok(unsafe { libc::umount2(at.as_ptr(), libc::MNT_DETACH) })?;
    close(staging);
    // SAFETY: a static name.
    ok(unsafe { libc::unlinkat(root, STAGING.as_ptr(), libc::AT_REMOVEDIR) })?;
    let at = FdPath::new(root);
    mount(null, at.as_ptr(), null, sealed, null)?;
    close(root);
    // Into the new root; the old one, stacked on it by pivot_root(".", "."), detached.
    let top = open_base(p)?;
    // SAFETY: fchdir takes a plain integer.
    ok(unsafe { libc::fchdir(top) })?;
    // SAFETY: both paths are static strings.
    ok(unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) })?;
    // SAFETY: a static path.
    ok(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) })?;
    // SAFETY: a static path.
    ok(unsafe { libc::chdir(c"/".as_ptr()) })?;
    close(top);
    // SAFETY: restores the mask read above.
    unsafe { libc::umask(umask) };
    Ok(())
}

/// One step of the program.
fn run_step(p: &MountProgram, step: &Step, staging: c_int) -> Result<(), ()> {
    match &step.op {
        Op::Bind { src, dir, read_only: ro, devices, locked } => {
            let (parent, target) = open_target(p, step, *dir, false)?;
            let from = FdPath::new(src.fd.as_raw_fd());
            let to = FdPath::new(target);
            let rec = if p.recursive { libc::MS_REC } else { 0 };
            mount(
                from.as_ptr(),
                to.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | rec,
                std::ptr::null(),
            )?;
            close(target);
            if *ro {
                // The new mount is found by looking the name up again in its directory.
                let top = reopen(p, step, parent, *dir)?;
                read_only(top, p.recursive, *devices, *locked)?;
                close(top);
            }
            close(parent);
        }
        Op::Cover { staged, dir } => {
            let Some(s) = p.staged.get(*staged) else { return Err(()) };
            let (parent, target) = open_target(p, step, *dir, false)?;
            let src = open_path(staging, &s.name, 0);
            ok(src)?;
            let (from, to) = (FdPath::new(src), FdPath::new(target));
            mount(from.as_ptr(), to.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null())?;
            close(src);
            close(target);
            close(parent);
        }
        Op::Proc { host } => {
            let (parent, target) = open_target(p, step, true, false)?;
            let to = FdPath::new(target);
            let proc_ = c"proc".as_ptr();
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
            if mount(proc_, to.as_ptr(), proc_, flags, std::ptr::null()).is_err() {
                if errno() != libc::EPERM {
                    return Err(());
                }
                // A procfs the kernel will not show here (masked paths of a container's
                // /proc): the host's, read-only.
                let from = FdPath::new(host.fd.as_raw_fd());
                let rec = if p.recursive { libc::MS_REC } else { 0 };
                mount(
                    from.as_ptr(),
                    to.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | rec,
                    std::ptr::null(),
                )?;
                let top = reopen(p, step, parent, true)?;
                read_only(top, p.recursive, false, 0)?;
                close(top);
            }
            close(target);
            close(parent);
        }
        Op::Symlink { text } => {
            let (parent, _) = open_target(p, step, false, true)?;
            let Some(name) = step.target.last() else { return Err(()) };
            // SAFETY: both are NUL-terminated strings of the program.
            ok(unsafe { libc::symlinkat(text.as_ptr(), parent, name.as_ptr()) })?;
            close(parent);
        }
    }
    Ok(())
}

/// The mount just made on `step`'s target: its name looked up again in `parent`, which
/// finds the topmost mount (the base itself, looked up from its parent, for the root).
fn reopen(p: &MountProgram, step: &Step, parent: c_int, dir: bool) -> Result<c_int, ()> {
    let name = step.target.last().unwrap_or(&p.base.name);
    let fd = open_path(parent, name, if dir { libc::O_DIRECTORY } else { 0 });
    ok(fd).map(|()| fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spawn::{spawn, Prepared, Stage};
    use std::io::Read;

    /// A spawn of `sh -c script` in new user, PID and mount namespaces with `mounts`.
    fn prepared(script: &str, mounts: Option<MountProgram>) -> Prepared {
        let c = |s: &str| CString::new(s).unwrap();
        Prepared {
            program: c("/bin/sh"),
            argv: vec![c("/bin/sh"), c("-c"), c(script)],
            envp: vec![c("PATH=/usr/bin:/bin")],
            cwd: c("/"),
            rlimits: Vec::new(),
            cgroup: None,
            drop_caps: true,
            caps_required: false,
            landlock: None,
            seccomp: None,
            namespaces: Some(crate::spawn::own_id_maps()),
            mounts,
            metadata: None,
            stdin_null: false,
            supervisor_fd: None,
            loopback: None,
            passed: Vec::new(),
        }
    }

    /// Starts `p`; returns what it printed and its exit code, or the failed step and errno.
    fn output_of(p: &Prepared) -> Result<(String, i32), (Option<Stage>, Option<i32>)> {
        let null = std::fs::File::open("/dev/null").unwrap();
        let (mut read, write) = std::io::pipe().unwrap();
        let spawned = spawn(p, [null.as_raw_fd(), write.as_raw_fd(), write.as_raw_fd()])
            .map_err(|f| (f.stage, f.error.raw_os_error()))?;
        drop(write);
        let mut out = String::new();
        read.read_to_string(&mut out).unwrap();
        let mut status = 0;
        // SAFETY: reaps the child just started; writes only `status`.
        assert_eq!(unsafe { libc::waitpid(spawned.pid, &mut status, 0) }, spawned.pid);
        assert!(libc::WIFEXITED(status), "{status:#x}: {out}");
        Ok((out, libc::WEXITSTATUS(status)))
    }

    fn reading(dir: &Path) -> Policy {
        let mut p = Policy::strict();
        p.read = vec![dir.to_path_buf()];
        p
    }

    fn world_readable_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    const SCRIPT: &str = "cat \"$0/f\"; echo x > \"$0/new\" 2>/dev/null && echo WROTE; \
                          ls / | tr '\\n' ' '";

    /// The program runs the child in a root of its own: the granted file is read, a write
    /// to the read-only grant fails, and the root holds no more than the plan. Also on the
    /// path for kernels without `mount_setattr` (a bind without submounts, then a remount
    /// keeping the locked flags).
    #[test]
    fn a_program_gives_the_child_a_root_of_its_own_with_and_without_mount_setattr() {
        for recursive in [true, false] {
            let d = world_readable_dir();
            std::fs::write(d.path().join("f"), "granted\n").unwrap();
            let mut program = build(&reading(d.path())).unwrap();
            program.recursive = recursive;
            let script = format!("{SCRIPT}; exit 0");
            let mut p = prepared(&script, Some(program));
            p.argv.push(CString::new(d.path().as_os_str().as_bytes()).unwrap());
            let (out, code) = output_of(&p).unwrap();
            assert_eq!(code, 0, "{out}");
            assert!(out.starts_with("granted\n"), "{recursive}: {out}");
            assert!(!out.contains("WROTE"), "{recursive}: a read-only grant was written: {out}");
            assert!(!d.path().join("new").exists());
            assert!(!out.contains("root") && !out.contains("home"), "{recursive}: {out}");
            assert!(out.contains("usr") && out.contains("tmp"), "{recursive}: {out}");
        }
    }

    /// A step that fails in the child fails the run, with `Stage::Mounts` and the errno: a
    /// target that is not there (in a tree of the host, where nothing may be created), and
    /// a granted directory replaced after the parent decided on it (by another directory,
    /// or by a link to another place): the bind is never redirected.
    #[test]
    fn a_failed_mount_step_fails_the_run_with_its_stage() {
        let d = world_readable_dir();
        std::fs::write(d.path().join("f"), "granted\n").unwrap();
        // Control: the program as built runs.
        let p = prepared("exit 0", Some(build(&reading(d.path())).unwrap()));
        assert_eq!(output_of(&p).unwrap().1, 0);

        let mut program = build(&reading(d.path())).unwrap();
        let src = rustix::fs::open("/usr", OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let target = vec![c"usr".to_owned(), c"no-such-skillbox-target".to_owned()];
        let path = vec![c"usr".to_owned()];
        let bind = Op::Bind {
            src: Source { fd: src, path, dir: true },
            dir: true,
            read_only: true,
            devices: false,
            locked: 0,
        };
        program.steps.push(Step { create_from: target.len(), target, op: bind });
        let p = prepared("exit 0", Some(program));
        assert_eq!(output_of(&p).unwrap_err(), (Some(Stage::Mounts), Some(libc::ENOENT)));

        let elsewhere = world_readable_dir();
        for swap in ["another directory", "a link"] {
            let program = build(&reading(d.path())).unwrap();
            let aside = d.path().with_extension("aside");
            std::fs::rename(d.path(), &aside).unwrap();
            if swap == "a link" {
                std::os::unix::fs::symlink(elsewhere.path(), d.path()).unwrap();
            } else {
                std::fs::create_dir(d.path()).unwrap();
            }
            let p = prepared("exit 0", Some(program));
            let (stage, errno) = output_of(&p).unwrap_err();
            let _ = std::fs::remove_file(d.path()).or_else(|_| std::fs::remove_dir(d.path()));
            std::fs::rename(&aside, d.path()).unwrap();
            assert_eq!(stage, Some(Stage::Mounts), "{swap}");
            let expected = [libc::ESTALE, libc::ENOTDIR, libc::ELOOP];
            assert!(errno.is_some_and(|e| expected.contains(&e)), "{swap}: {errno:?}");
        }
    }

    /// A mount program without a namespace of the run's own is refused before any clone: its
    /// mounts would be the host's.
    #[test]
    fn mounts_are_never_made_outside_the_runs_own_namespace() {
        let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut p = prepared("exit 0", Some(build(&Policy::strict()).unwrap()));
        p.namespaces = None;
        assert_eq!(output_of(&p).unwrap_err(), (Some(Stage::Mounts), Some(libc::EINVAL)));
        assert_eq!(std::fs::read_to_string("/proc/self/mountinfo").unwrap(), before);
        // Control: with its namespaces, the same program runs.
        let p = prepared("exit 0", Some(build(&Policy::strict()).unwrap()));
        assert_eq!(output_of(&p).unwrap().1, 0);
        assert_eq!(std::fs::read_to_string("/proc/self/mountinfo").unwrap(), before);
    }
}
