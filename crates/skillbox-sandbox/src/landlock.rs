//! The Landlock ruleset of a run, built in the parent.
//!
//! Landlock can only grant, never deny a subpath of a granted tree. So secrets inside
//! readable trees (`/etc/shadow`) and protected entries inside writable trees (`.git`) are
//! handled by granting the surrounding directory entry by entry, skipping or downgrading the
//! entries that must stay out of reach.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};

use crate::policy::{NetworkAccess, Policy, DEVICES, ETC_SECRETS, SYSTEM_READ};

/// Lowest Landlock ABI that provides everything this sandbox relies on: TCP rules (4),
/// device ioctl control (5), and scoping of signals and abstract Unix sockets (6).
pub const REQUIRED_ABI: i32 = 6;

/// Errors building the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// A granted path goes through a symbolic link. Grants name real directories; following
    /// a link planted in a workspace could grant something else entirely.
    #[error("granted path {0} goes through a symbolic link; grant the real path instead")]
    Symlink(PathBuf),
    /// The kernel's Landlock is older than [`REQUIRED_ABI`] or absent.
    #[error("Landlock ABI {found} is available, {REQUIRED_ABI} or later is needed")]
    Unsupported {
        /// What the kernel offers (0: none).
        found: i32,
    },
    /// The landlock crate or the kernel refused a rule.
    #[error("building the Landlock ruleset failed: {0}")]
    Ruleset(#[from] landlock::RulesetError),
}

/// Asks the kernel for its Landlock ABI version; 0 when Landlock is absent or disabled.
pub fn kernel_abi() -> i32 {
    static ABI_FOUND: OnceLock<i32> = OnceLock::new();
    *ABI_FOUND.get_or_init(probe_abi)
}

fn probe_abi() -> i32 {
    // SAFETY: landlock_create_ruleset with a NULL attribute, size 0 and the VERSION flag only
    // returns a number; it reads and writes no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, /* LANDLOCK_CREATE_RULESET_VERSION */
        )
    };
    if v < 0 {
        0
    } else {
        v as i32
    }
}

/// Builds the ruleset for `policy` and returns its descriptor, ready for
/// `landlock_restrict_self` in the child.
///
/// Every access right is requested as a hard requirement for the ABI the kernel reports, so
/// that nothing is silently dropped: either the ruleset is what the policy says, or this
/// fails.
pub fn build(policy: &Policy) -> Result<OwnedFd, LandlockError> {
    let found = kernel_abi();
    if found < REQUIRED_ABI {
        return Err(LandlockError::Unsupported { found });
    }
    let abi = ABI::V6;
    let shape = Shape {
        confine_files: policy.confine_files,
        confine_tcp: policy.network != NetworkAccess::Full,
    };
    let mut created = match take_ahead(shape) {
        Some(r) => r,
        None => base(shape)?.0,
    };
    build_ahead(shape);

    if policy.confine_files {
        let read = AccessFs::from_read(abi);
        let write = AccessFs::from_all(abi) & !AccessFs::Refer & !AccessFs::IoctlDev;
        let file_write =
            AccessFs::ReadFile | AccessFs::Execute | AccessFs::WriteFile | AccessFs::Truncate;
        for p in &policy.read {
            created = add_exact(created, p, read)?;
        }
        for p in &policy.write {
            let guarded = policy.guarded.iter().any(|g| g == p);
            created = grant_write(created, p, guarded, &policy.protected, read, write, file_write)?;
        }
    }
    if policy.network == NetworkAccess::HttpsOnly {
        created = created.add_rule(NetPort::new(443, AccessNet::ConnectTcp))?;
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or(LandlockError::Unsupported { found })
}

/// What the part of a ruleset that is the same for every run depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    /// Files are confined: every file right is handled, and the system rules are in.
    confine_files: bool,
    /// TCP bind and connect are handled.
    confine_tcp: bool,
}

/// The part of every ruleset that does not depend on the run: the handled rights, the
/// scopes, and (when files are confined) the system rules. Returned with the modification
/// time of `/etc` the system rules were read at.
fn base(shape: Shape) -> Result<(landlock::RulesetCreated, Option<SystemTime>), LandlockError> {
    let abi = ABI::V6;
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if shape.confine_files {
        ruleset = ruleset.handle_access(AccessFs::from_all(abi))?;
    }
    if shape.confine_tcp {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    let mut created = ruleset.create()?;
    let mut etc = None;
    if shape.confine_files {
        let (mtime, system) = system_rules();
        for (fd, access) in system.iter() {
            created = created.add_rule(PathBeneath::new(fd.as_fd(), *access))?;
        }
        etc = mtime;
    }
    Ok((created, etc))
}

/// A base ruleset built ahead of the run that will use it. Adding the ~150 system rules
/// takes longer than the rest of preparing a run, so after each run one base of its shape
/// is built on tokio's blocking pool, for the next run. Each base serves exactly one run,
/// and one built before `/etc` changed is thrown away.
struct Ahead {
    shape: Shape,
    etc: Option<SystemTime>,
    ruleset: landlock::RulesetCreated,
}

static AHEAD: Mutex<Vec<Ahead>> = Mutex::new(Vec::new());

fn lock_ahead() -> std::sync::MutexGuard<'static, Vec<Ahead>> {
    match AHEAD.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn etc_mtime() -> Option<SystemTime> {
    std::fs::metadata("/etc").and_then(|m| m.modified()).ok()
}

/// Takes the base built ahead for `shape`, if there is one and `/etc` has not changed since.
fn take_ahead(shape: Shape) -> Option<landlock::RulesetCreated> {
    let ahead = {
        let mut list = lock_ahead();
        let i = list.iter().position(|a| a.shape == shape)?;
        list.swap_remove(i)
    };
    if shape.confine_files && (ahead.etc.is_none() || ahead.etc != etc_mtime()) {
        return None;
    }
    Some(ahead.ruleset)
}

/// Builds one base of `shape` on tokio's blocking pool, unless one is being built already,
/// there is no runtime (a preview), or this is the process's first ruleset (a `skillbox
/// run` process builds one and exits). Failures are dropped: the next run then builds its
/// base itself and reports the error.
fn build_ahead(shape: Shape) {
    static GATE: crate::AheadGate = crate::AheadGate::new();
    GATE.spawn(move || {
        if let Ok((ruleset, etc)) = base(shape) {
            let mut list = lock_ahead();
            list.retain(|a| a.shape != shape);
            list.push(Ahead { shape, etc, ruleset });
        }
    });
}

/// Grants write access to the tree `root`. When the tree is guarded (a workspace) or its top
/// holds a protected entry (`.git`), the tree is granted entry by entry instead: its own directory
/// readable, each other existing entry writable, the protected ones read-only (through the
/// read grants). New entries cannot then be created at the top of that tree: the right to
/// create there would extend to the protected entries beneath. Links among the entries are
/// not granted.
fn grant_write(
    mut ruleset: landlock::RulesetCreated,
    root: &Path,
    guarded: bool,
    protected: &[String],
    read: BitFlags<AccessFs>,
    write: BitFlags<AccessFs>,
    file_write: BitFlags<AccessFs>,
) -> Result<landlock::RulesetCreated, LandlockError> {
    let Ok(entries) = std::fs::read_dir(root) else {
        // A file, or a path that does not exist (which grants nothing).
        return add_exact(ruleset, root, file_write);
    };
    let entries: Vec<std::fs::DirEntry> = entries.flatten().collect();
    let is_protected =
        |e: &std::fs::DirEntry| protected.iter().any(|x| e.file_name().to_str() == Some(x));
    if !guarded && !entries.iter().any(is_protected) {
        return add_exact(ruleset, root, write);
    }
    ruleset = add_exact(ruleset, root, read)?;
    for e in entries.iter().filter(|e| !is_protected(e)) {
        let Ok(t) = e.file_type() else { continue };
        if t.is_symlink() {
            continue;
        }
        ruleset = add_exact(ruleset, &e.path(), if t.is_dir() { write } else { file_write })?;
    }
    Ok(ruleset)
}

/// Rules for the system part of every ruleset: directories every program needs, `/proc`, the
/// harmless devices, and `/etc` without its secrets. Opening ~150 paths costs more than the
/// rest of a spawn, so the descriptors are opened once and kept, and opened again only when
/// `/etc` changes (its modification time moves when an entry is added or removed).
type SystemRules = Vec<(OwnedFd, BitFlags<AccessFs>)>;

fn system_rules() -> (Option<SystemTime>, Arc<SystemRules>) {
    static CACHE: OnceLock<Mutex<(Option<SystemTime>, Arc<SystemRules>)>> = OnceLock::new();
    let etc_mtime = std::fs::metadata("/etc").and_then(|m| m.modified()).ok();
    let cache = CACHE.get_or_init(|| Mutex::new((None, Arc::new(Vec::new()))));
    let mut guard = match cache.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if guard.0.is_none() || guard.0 != etc_mtime {
        let read = AccessFs::from_read(ABI::V6);
        let mut rules = Vec::new();
        for dir in SYSTEM_READ {
            add(&mut rules, Path::new(dir), read);
        }
        add(&mut rules, Path::new("/proc"), read);
        for dev in DEVICES {
            add(&mut rules, Path::new(dev), AccessFs::ReadFile | AccessFs::WriteFile);
        }
        grant_excluding(&mut rules, Path::new("/etc"), "", read, ETC_SECRETS);
        *guard = (etc_mtime, Arc::new(rules));
    }
    (guard.0, guard.1.clone())
}

/// Adds a rule for a system path if it exists. Missing system directories (`/lib32` on most
/// hosts) are not an error; access to them is simply not granted. System paths are owned by
/// root and may be links (`/bin -> usr/bin`), so links are followed here, and only here.
fn add(rules: &mut SystemRules, path: &Path, access: BitFlags<AccessFs>) {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
    else {
        return;
    };
    let fd = OwnedFd::from(file);
    // A rule on a file may carry only file rights.
    let access = if is_dir(&fd) { access } else { access & AccessFs::from_file(ABI::V6) };
    rules.push((fd, access));
}

/// Adds a rule for a path a policy grants (a workspace, a declared path). No component may
/// be a symbolic link (`openat2` with `RESOLVE_NO_SYMLINKS`), so that a link planted in a
/// cloned repository cannot turn a grant of `docs/` into a grant of `~/.ssh`. A path that
/// does not exist grants nothing.
fn add_exact(
    ruleset: landlock::RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<landlock::RulesetCreated, LandlockError> {
    let fd = match open_no_symlinks(path) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(LandlockError::Symlink(path.to_path_buf()))
        }
        Err(_) => return Ok(ruleset),
    };
    let is_dir = is_dir(&fd);
    let access = if is_dir { access } else { access & AccessFs::from_file(ABI::V6) };
    Ok(ruleset.add_rule(PathBeneath::new(fd, access))?)
}

/// Whether `fd` (an `O_PATH` descriptor) is a directory: `fstat` on the descriptor itself,
/// not a lookup of `/proc/self/fd/N`, which costs a path walk through procfs per rule.
fn is_dir(fd: &OwnedFd) -> bool {
    // SAFETY: stat is plain data, for which all zeroes is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes only to `st`, for a descriptor we own.
    let r = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// `openat2(path, O_PATH | O_CLOEXEC, RESOLVE_NO_SYMLINKS)`.
fn open_no_symlinks(path: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: open_how is plain data; zero is a valid value for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: `c` is a valid NUL-terminated string and `how` a valid open_how whose size is
    // passed; both outlive the call. The returned descriptor is owned by us alone.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Grants `dir` with `access`, except the relative paths in `secrets`: a directory holding a
/// secret is granted entry by entry, a secret itself is skipped.
fn grant_excluding(
    rules: &mut SystemRules,
    dir: &Path,
    rel: &str,
    access: BitFlags<AccessFs>,
    secrets: &[&str],
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    // The directory itself may be listed; its entries are granted one by one.
    add(rules, dir, AccessFs::ReadDir.into());
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        if secrets.contains(&r.as_str()) {
            continue;
        }
        let path: PathBuf = e.path();
        let holds_secret = secrets.iter().any(|s| s.starts_with(&format!("{r}/")));
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if holds_secret && is_dir {
            grant_excluding(rules, &path, &r, access, secrets);
        } else {
            add(rules, &path, access);
        }
    }
}
