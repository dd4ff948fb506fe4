//! Read-only in every respect, and a `/proc` of the run's own: the mount namespace a run gets
//! beside Landlock.
//!
//! Landlock decides reads and writes of file content and of directory entries, but not
//! `chmod`, `chown`, `utimensat` or `setxattr`: under Landlock alone a run could make a
//! disabled `.git/hooks/pre-commit` executable again, or change the mode of a file outside
//! its grants that it can name. And `/proc` is the host's, where every process's command
//! line can be read. Where the run has its own user and PID namespaces, a mount namespace in
//! them costs little and closes both: the host's tree, seen read-only (`EROFS` for every
//! change of metadata) but for the trees the run may write, and a fresh procfs of the run's
//! PID namespace on `/proc`.
//!
//! Landlock still confines reads and writes; this program only has to make read-only what
//! Landlock already keeps from being written, so it is much lighter than the root of the
//! run's own that stands in for Landlock where it is missing (`crate::mountns`: a new root
//! of binds, one per grant and system directory). The parent decides, from the same walk of
//! the granted trees that builds the Landlock ruleset (so both decide alike), a short list
//! of paths, each with the device and inode the parent saw ([`build`]). The child, in its new
//! user, PID and mount namespaces, between clone and exec, with system calls only ([`apply`]):
//!
//! 1. makes every mount private, so that nothing propagates to the host;
//! 2. clones each writable tree (`open_tree(OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached
//!    copy with the host's flags);
//! 3. makes every mount of its tree read-only (`mount_setattr(AT_RECURSIVE,
//!    MOUNT_ATTR_RDONLY)`; a mount the kernel locked may be made more restrictive, never
//!    less), devices included (a device node opens for writing on a read-only mount);
//! 4. in path order, parents first: moves each writable clone back onto its path, and binds
//!    each protected entry and each hidden path beneath a writable tree read-only onto
//!    itself (clone, `mount_setattr`, move), after checking that the path, looked up without
//!    following any link, is still the object the parent saw (device and inode; `ESTALE`
//!    otherwise);
//! 5. mounts a procfs of its PID namespace on `/proc` and, under Landlock, grants the run's
//!    usual read access to it (a rule on an inode the parent could not name: Landlock's rule
//!    on the host's `/proc` does not reach a new procfs).
//!
//! A step that fails fails the run (`Stage::Mounts` and its errno): never a run with less.
//!
//! What stays writable: the writable trees as a whole, the directories on the way to a
//! protected entry included (Landlock keeps entries from being created, removed or renamed
//! there; their own mode, times and attributes are the tree's). Making those read-only too
//! would need a mount for every other entry of each such directory.
//!
//! The namespace is torn down when its last process exits, and the kernel waits for an RCU
//! grace period there (0.2 to 0.6 ms on these machines), which would delay the run's end
//! as skillbox sees it; the parent therefore holds a reference to the namespace
//! ([`hold`]) and drops it after the result, off its path.

use std::ffi::{c_int, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::grants::{GrantError, Grants, Level};

/// `MOUNT_ATTR_RDONLY` of linux/mount.h.
const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOVE_MOUNT_F_EMPTY_PATH` and `MOVE_MOUNT_T_EMPTY_PATH` of linux/mount.h.
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
/// `RESOLVE_NO_SYMLINKS` of linux/openat2.h.
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `PIDFD_GET_MNT_NAMESPACE` of linux/pidfd.h (`_IO(0xFF, 3)`, Linux 6.11).
const PIDFD_GET_MNT_NAMESPACE: libc::c_ulong = 0xFF03;
/// `LANDLOCK_RULE_PATH_BENEATH` of linux/landlock.h.
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;

/// `struct mount_attr` of linux/mount.h (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `struct open_how` of linux/openat2.h.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `struct landlock_path_beneath_attr` of linux/landlock.h (packed).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The device and inode of an object, as `fstat` gives them: what the child checks a path
/// against before it mounts anything there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
}

fn identity_of(fd: BorrowedFd<'_>) -> Option<Identity> {
    let st = rustix::fs::fstat(fd).ok()?;
    Some(Identity { dev: st.st_dev, ino: st.st_ino })
}

/// What the walk of the writable trees found for the program: the trees that write, and the
/// protected entries and hidden paths beneath them, which stay read-only.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    writable: Vec<(PathBuf, Identity)>,
    read_only: Vec<(PathBuf, Identity)>,
}

/// The sink that records [`Marks`] while one granted tree is walked (beside the Landlock
/// rules, see `crate::landlock::grant`).
pub(crate) struct Marker<'a> {
    marks: &'a mut Marks,
    root: PathBuf,
    /// The tree writes: only then does anything need a mount.
    writes: bool,
    /// The root's identity, once the walk has granted it anything.
    root_id: Option<Identity>,
    /// Something in the tree got the tree's rights (otherwise nothing in it writes: a root
    /// that could not be examined is granted read-only).
    writable: bool,
}

impl<'a> Marker<'a> {
    /// Records into `marks` what the walk of the tree at `root` decides.
    pub(crate) fn new(marks: &'a mut Marks, root: &Path, writes: bool) -> Self {
        Self { marks, root: root.to_path_buf(), writes, root_id: None, writable: false }
    }

    /// Adds the tree itself to the writable ones, when the walk left anything in it
    /// writable.
    pub(crate) fn finish(self) {
        if let (true, true, Some(id)) = (self.writes, self.writable, self.root_id) {
            self.marks.writable.push((self.root, id));
        }
    }
}

impl Grants for Marker<'_> {
    fn grant(
        &mut self,
        fd: BorrowedFd<'_>,
        path: &Path,
        level: Level,
        _dir: bool,
    ) -> Result<(), GrantError> {
        if path == self.root {
            self.root_id = identity_of(fd);
        }
        self.writable |= level == Level::Whole;
        Ok(())
    }

    fn read_only(&mut self, fd: BorrowedFd<'_>, path: &Path, _dir: bool) -> Result<(), GrantError> {
        if let (true, Some(id)) = (self.writes, identity_of(fd)) {
            self.marks.read_only.push((path.to_path_buf(), id));
        }
        Ok(())
    }

    fn hide(&mut self, path: &Path, _dir: bool) -> Result<(), GrantError> {
        if !self.writes {
            // Beneath a tree the run only reads: read-only with everything else.
            return Ok(());
        }
        // Not opened by the walk (Landlock needs nothing for a hidden path): opened here
        // without following a link. Gone meanwhile, or a link: nothing to mount on.
        let opened = rustix::fs::openat2(
            rustix::fs::CWD,
            path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::NO_SYMLINKS,
        );
        if let Some(id) = opened.ok().and_then(|fd| identity_of(fd.as_fd())) {
            self.marks.read_only.push((path.to_path_buf(), id));
        }
        Ok(())
    }
}

/// What the child does at one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Moves the writable clone in this slot back onto the path.
    Attach { slot: usize },
    /// Binds the path read-only onto itself.
    ReadOnly,
}

/// One mount of the program.
struct Step {
    path: CString,
    id: Identity,
    kind: Kind,
}

/// The mount program of one run beside Landlock, prepared in the parent: paths as C
/// strings, identities, decisions as plain data. [`apply`] runs it in the child.
pub(crate) struct MetadataProgram {
    /// In path order, parents first.
    steps: Vec<Step>,
    /// One per [`Kind::Attach`] step: the clone the child takes before the tree is made
    /// read-only (written by the child, which shares this memory until exec).
    slots: Vec<AtomicI32>,
    /// Make the whole tree read-only (files are confined; a writable tree of `/` itself
    /// leaves the rest as it is).
    read_only: bool,
    /// Mount a procfs of the run's PID namespace on `/proc`.
    proc_: bool,
    /// The Landlock rights the new `/proc` gets in the run's ruleset (0: none, no ruleset
    /// confines files).
    proc_access: u64,
}

/// Lays out the program from `marks` (see the module's documentation): `read_only` makes
/// the host's tree read-only but for the writable trees, `proc_` mounts a procfs of the
/// run's own, and `proc_access` are the Landlock rights it gets.
pub(crate) fn build(
    marks: Marks,
    read_only: bool,
    proc_: bool,
    proc_access: u64,
) -> MetadataProgram {
    use std::collections::BTreeMap;
    // One decision per path: writable wins (Landlock's rights add up).
    let mut by_path: BTreeMap<PathBuf, (Identity, bool)> = BTreeMap::new();
    if read_only {
        for (p, id) in marks.read_only {
            by_path.entry(p).or_insert((id, false));
        }
        for (p, id) in marks.writable {
            by_path.insert(p, (id, true));
        }
    }
    // A writable tree of `/` leaves the whole tree writable: only what is read-only
    // beneath it needs a mount (a mount on top of the root would not be seen).
    let global_ro = read_only && !by_path.get(Path::new("/")).is_some_and(|(_, w)| *w);
    let mut steps = Vec::new();
    let mut kept: Vec<(PathBuf, bool)> = Vec::new();
    let mut slots = 0;
    for (path, (id, writable)) in by_path {
        // The state `path` has without a mount of its own: its nearest kept ancestor's.
        while kept.last().is_some_and(|(k, _)| !path.starts_with(k)) {
            kept.pop();
        }
        let inherited = kept.last().map_or(!global_ro, |(_, w)| *w);
        if inherited == writable || path == Path::new("/") {
            continue;
        }
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { continue };
        let kind = if writable {
            slots += 1;
            Kind::Attach { slot: slots - 1 }
        } else {
            Kind::ReadOnly
        };
        steps.push(Step { path: c, id, kind });
        kept.push((path, writable));
    }
    MetadataProgram {
        steps,
        slots: (0..slots).map(|_| AtomicI32::new(-1)).collect(),
        read_only: global_ro,
        proc_,
        proc_access,
    }
}

impl MetadataProgram {
    /// How many mounts the program makes beside the procfs (for tests and the report).
    #[cfg(test)]
    fn mounts(&self) -> usize {
        self.steps.len()
    }
}

/// A reference to `pid`'s mount namespace (its pidfd `pidfd`), held by the parent so that
/// the namespace is torn down when this descriptor is closed, off the path of the result,
/// rather than when the run's last process exits. `None` when the process is already gone
/// (a short program), or the kernel gives no such reference.
pub(crate) fn hold(pidfd: BorrowedFd<'_>, pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: an ioctl without an argument on a pidfd we own; it returns a new descriptor
    // or fails (ENOTTY before Linux 6.11).
    let fd = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_MNT_NAMESPACE, 0) };
    if fd >= 0 {
        // SAFETY: the kernel just made this descriptor, owned by nobody else.
        return Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let path = format!("/proc/{pid}/ns/mnt");
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

// ---------------------------------------------------------------------------------------
// The child's part: system calls only, on the program the parent prepared.
// ---------------------------------------------------------------------------------------

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

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

/// Fails with `errno` set to `e`.
fn fail(e: c_int) -> Result<(), ()> {
    // SAFETY: __errno_location takes nothing and returns this thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: writes this thread's errno, as a failing system call would.
    unsafe { *slot = e };
    Err(())
}

/// `open_tree(fd, "", AT_EMPTY_PATH | OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC)`:
/// a detached copy of the mount tree at `fd`.
fn clone_tree(fd: c_int) -> Result<c_int, ()> {
    let flags = libc::AT_EMPTY_PATH as u32
        | libc::OPEN_TREE_CLONE
        | libc::AT_RECURSIVE as u32
        | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: an empty static path and plain integers.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, fd, c"".as_ptr(), flags) };
    ok(r).map(|()| r as c_int)
}

/// `mount_setattr` read-only on the mount at `fd` (`AT_EMPTY_PATH`) or at `path` from
/// `dirfd`, and every mount beneath it.
fn set_read_only(dirfd: c_int, path: &std::ffi::CStr, flags: c_int) -> Result<(), ()> {
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: the kernel reads one `struct mount_attr` of the size given, on this stack;
    // `path` is a NUL-terminated static string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    ok(r)
}

/// `move_mount` of the detached tree `from` onto the object `to` (both descriptors).
fn move_onto(from: c_int, to: c_int) -> Result<(), ()> {
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: empty static paths and plain integers.
    let r =
        unsafe { libc::syscall(libc::SYS_move_mount, from, c"".as_ptr(), to, c"".as_ptr(), flags) };
    ok(r)
}

/// Opens `step`'s path (`O_PATH`, without following any link) and checks it is the object
/// the parent saw.
fn resolve(step: &Step) -> Result<c_int, ()> {
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS,
    };
    // SAFETY: the path is a NUL-terminated string of the program, alive until exec; the
    // kernel reads one `struct open_how` of the size given, on this stack.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            step.path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    ok(fd)?;
    let fd = fd as c_int;
    // SAFETY: stat is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `struct stat` into `st`, on this stack.
    ok(unsafe { libc::fstat(fd, &mut st) })?;
    if st.st_dev != step.id.dev || st.st_ino != step.id.ino {
        close(fd);
        return fail(libc::ESTALE).map(|()| -1);
    }
    Ok(fd)
}

/// Runs `p` in the child (see the module's documentation), with the run's Landlock ruleset
/// `landlock_fd` (-1: none) not yet applied. On failure errno says why; the child then exits,
/// and the descriptors it opened close with it.
pub(crate) fn apply(p: &MetadataProgram, landlock_fd: c_int) -> Result<(), ()> {
    let (null, no_data) = (std::ptr::null(), std::ptr::null());
    let private = libc::MS_REC | libc::MS_PRIVATE;
    // SAFETY: a static path and no data: changes propagation only, in this child's own
    // mount namespace.
    ok(unsafe { libc::mount(null, c"/".as_ptr(), null, private, no_data) })?;
    if !p.steps.is_empty() || p.read_only {
        for step in &p.steps {
            if let Kind::Attach { slot } = step.kind {
                let fd = resolve(step)?;
                let copy = clone_tree(fd)?;
                close(fd);
                match p.slots.get(slot) {
                    Some(s) => s.store(copy, Ordering::Relaxed),
                    None => return fail(libc::EINVAL),
                }
            }
        }
        if p.read_only {
            set_read_only(libc::AT_FDCWD, c"/", 0)?;
        }
        for step in &p.steps {
            let fd = resolve(step)?;
            match step.kind {
                Kind::Attach { slot } => {
                    let Some(copy) = p.slots.get(slot).map(|s| s.load(Ordering::Relaxed)) else {
                        return fail(libc::EINVAL);
                    };
                    move_onto(copy, fd)?;
                    close(copy);
                }
                Kind::ReadOnly => {
                    let copy = clone_tree(fd)?;
                    set_read_only(copy, c"", libc::AT_EMPTY_PATH)?;
                    move_onto(copy, fd)?;
                    close(copy);
                }
            }
            close(fd);
        }
    }
    if p.proc_ {
        let proc_ = c"proc".as_ptr();
        let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
        // SAFETY: static strings and no data.
        ok(unsafe { libc::mount(proc_, c"/proc".as_ptr(), proc_, flags, no_data) })?;
        if p.proc_access != 0 && landlock_fd >= 0 {
            // SAFETY: a static path.
            let fd = unsafe {
                libc::open(c"/proc".as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            };
            ok(fd)?;
            let attr = PathBeneathAttr { allowed_access: p.proc_access, parent_fd: fd };
            // SAFETY: the kernel reads one landlock_path_beneath_attr from `attr`, on this
            // stack; both descriptors are open. The ruleset serves this run only.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    landlock_fd,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &attr as *const PathBeneathAttr,
                    0u32,
                )
            };
            ok(r)?;
            close(fd);
        }
    }
    Ok(())
}

/// What a trial of the program's system calls found in a fresh mount namespace (see
/// `crate::spawn::try_namespaces`): the errno of mounting a procfs of the namespace's own
/// on `/proc`, and of cloning, making read-only and moving a mount (0: it worked).
pub(crate) fn trial() -> (c_int, c_int) {
    let proc_ = c"proc".as_ptr();
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RDONLY;
    let no_data = std::ptr::null();
    // SAFETY: static strings and no data; the mount namespace is the trial child's own.
    let proc_errno =
        match ok(unsafe { libc::mount(proc_, c"/proc".as_ptr(), proc_, flags, no_data) }) {
            Ok(()) => 0,
            Err(()) => errno().max(1),
        };
    let api = (|| {
        // SAFETY: a static path.
        let fd = unsafe { libc::open(c"/proc".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        ok(fd)?;
        let copy = clone_tree(fd)?;
        set_read_only(copy, c"", libc::AT_EMPTY_PATH)?;
        move_onto(copy, fd)
    })();
    let api_errno = match api {
        Ok(()) => 0,
        Err(()) => errno().max(1),
    };
    (proc_errno, api_errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> Identity {
        Identity { dev: 1, ino: n }
    }

    fn paths(p: &MetadataProgram) -> Vec<(String, Kind)> {
        p.steps.iter().map(|s| (s.path.to_string_lossy().into_owned(), s.kind)).collect()
    }

    /// The program mounts only where a path's state differs from its parent's: a writable
    /// tree inside another is already writable, a read-only entry inside a read-only one is
    /// already read-only; a writable tree beneath a read-only entry is moved back on top.
    #[test]
    fn a_mount_is_made_only_where_the_state_changes() {
        let marks = Marks {
            writable: vec![
                ("/w".into(), id(1)),
                ("/w/sub".into(), id(2)),
                ("/w/.git/x".into(), id(3)),
                ("/other".into(), id(4)),
            ],
            read_only: vec![
                ("/w/.git".into(), id(5)),
                ("/w/.git/hooks".into(), id(6)),
                ("/r/.git".into(), id(7)),
                ("/other".into(), id(8)),
            ],
        };
        let p = build(marks, true, true, 0);
        assert_eq!(
            paths(&p),
            vec![
                ("/other".into(), Kind::Attach { slot: 0 }),
                ("/w".into(), Kind::Attach { slot: 1 }),
                ("/w/.git".into(), Kind::ReadOnly),
                ("/w/.git/x".into(), Kind::Attach { slot: 2 }),
            ]
        );
        assert_eq!(p.slots.len(), 3);
        assert!(p.read_only);
        assert_eq!(p.mounts(), 4);
    }

    /// Starts `sh -c script` in new user, PID and mount namespaces with `program`; returns
    /// its exit code, or the failed step and errno.
    fn run_with(
        script: &str,
        program: MetadataProgram,
    ) -> Result<i32, (Option<crate::spawn::Stage>, Option<i32>)> {
        use crate::spawn::{spawn, Prepared};
        let c = |s: &str| CString::new(s).unwrap();
        let p = Prepared {
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
            mounts: None,
            metadata: Some(program),
            stdin_null: true,
            supervisor_fd: None,
            loopback: None,
            passed: Vec::new(),
        };
        let null = std::fs::File::open("/dev/null").unwrap();
        let spawned = spawn(&p, [null.as_raw_fd(), null.as_raw_fd(), null.as_raw_fd()])
            .map_err(|f| (f.stage, f.error.raw_os_error()))?;
        let mut status = 0;
        // SAFETY: reaps the child just started; writes only `status`.
        assert_eq!(unsafe { libc::waitpid(spawned.pid, &mut status, 0) }, spawned.pid);
        Ok(libc::WEXITSTATUS(status))
    }

    /// The marks of a writable tree `w` holding a read-only entry `w/ro`.
    fn marks_of(w: &Path) -> Marks {
        let id = |p: &Path| identity_of(std::fs::File::open(p).unwrap().as_fd()).unwrap();
        Marks {
            writable: vec![(w.to_path_buf(), id(w))],
            read_only: vec![(w.join("ro"), id(&w.join("ro")))],
        }
    }

    /// The child writes where the program leaves the tree writable and nowhere else; a
    /// path replaced (by another directory, or by a link to one) after the parent saw it
    /// fails the run with `ESTALE` or `ELOOP`: no mount is put on another object.
    #[test]
    fn a_path_replaced_after_the_parent_saw_it_fails_the_run() {
        let t = tempfile::tempdir().unwrap();
        let w = t.path().join("w");
        std::fs::create_dir_all(w.join("ro")).unwrap();
        let script = format!(
            "touch {0}/ok && ! touch {0}/ro/no 2>/dev/null && ! touch {1}/no 2>/dev/null",
            w.display(),
            t.path().display()
        );
        // Control: as built, the program runs and the script's writes land as planned.
        assert_eq!(run_with(&script, build(marks_of(&w), true, true, 0)), Ok(0));
        assert!(w.join("ok").exists() && !w.join("ro/no").exists());
        assert!(!t.path().join("no").exists());
        for swap in ["another directory", "a link"] {
            let program = build(marks_of(&w), true, true, 0);
            let aside = t.path().join("aside");
            std::fs::rename(w.join("ro"), &aside).unwrap();
            if swap == "a link" {
                std::os::unix::fs::symlink(&aside, w.join("ro")).unwrap();
            } else {
                std::fs::create_dir(w.join("ro")).unwrap();
            }
            let got = run_with("exit 0", program);
            let _ =
                std::fs::remove_file(w.join("ro")).or_else(|_| std::fs::remove_dir(w.join("ro")));
            std::fs::rename(&aside, w.join("ro")).unwrap();
            let (stage, errno) = got.unwrap_err();
            assert_eq!(stage, Some(crate::spawn::Stage::Mounts), "{swap}");
            assert!(matches!(errno, Some(libc::ESTALE | libc::ELOOP)), "{swap}: {errno:?}");
        }
    }

    /// A writable tree of `/` leaves the tree as it is, but for what is read-only beneath
    /// it; without file confinement nothing is mounted but the procfs.
    #[test]
    fn a_writable_root_and_unconfined_files_mount_little() {
        let marks = Marks {
            writable: vec![("/".into(), id(1))],
            read_only: vec![("/home/u/.git".into(), id(2))],
        };
        let p = build(marks, true, true, 0);
        assert!(!p.read_only);
        assert_eq!(paths(&p), vec![("/home/u/.git".into(), Kind::ReadOnly)]);
        let marks = Marks { writable: vec![("/w".into(), id(1))], read_only: vec![] };
        let p = build(marks, false, true, 0);
        assert!(!p.read_only);
        assert!(p.steps.is_empty());
    }
}
