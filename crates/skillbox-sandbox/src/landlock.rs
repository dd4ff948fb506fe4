//! The Landlock ruleset of a run, built in the parent.
//!
//! Landlock can only grant, never deny a subpath of a granted tree. So secrets inside
//! readable trees (`/etc/shadow`) and protected entries inside writable trees (`.git`) are
//! handled by granting the surrounding directory entry by entry, skipping or downgrading the
//! entries that must stay out of reach.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr,
    RulesetCreatedAttr, Scope, ABI,
};

use crate::grants::{grant_tree, Budget, Carve, Carved, GrantError, Grants, Level, Tee};
use crate::policy::{NetworkAccess, Policy, DEVICES, ETC_SECRETS, SYSTEM_READ};

/// The Landlock ABI from which Landlock gives this crate everything it uses from it: TCP
/// rules (4), device ioctl control (5), and scoping of signals and abstract Unix sockets (6).
/// Older ABIs serve what they can, and the plan takes the rest from other mechanisms (see
/// the `plan` module).
pub const FULL_ABI: i32 = 6;

/// Most directory entries one ruleset may list while carving protected entries and hidden
/// paths out of its trees (see the `grants` module): a writable tree larger than this is
/// refused rather than granted unexamined.
pub const MAX_GRANT_ENTRIES: usize = 250_000;

/// Errors building the ruleset.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LandlockError {
    /// A granted path could not be granted as the policy says: it goes through a symbolic
    /// link (grants name real directories; following a link planted in a workspace could
    /// grant something else entirely), a writable tree is too large to examine, or it changed
    /// while being examined.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// The kernel offers no Landlock (or this process is refused it).
    #[error("no Landlock ABI is available (found {found})")]
    Unsupported {
        /// What the kernel offers (0: none).
        found: i32,
    },
    /// The landlock crate or the kernel refused a rule.
    #[error("building the Landlock ruleset failed: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    /// The kernel refused a system rule added directly, or the ruleset's descriptor could
    /// not be duplicated to add them (see [`base`]).
    #[error("building the Landlock ruleset failed: {0}")]
    System(std::io::Error),
}

/// The Landlock ABI this process uses: the kernel's, lowered by `SKILLBOX_TEST_LANDLOCK_ABI`
/// when that is set (a test setting that simulates an older kernel; it can only lower, never
/// raise, and the enforcement report says when it is in force); 0 when Landlock is absent,
/// disabled, or refused.
pub fn kernel_abi() -> i32 {
    static ABI_FOUND: OnceLock<i32> = OnceLock::new();
    *ABI_FOUND.get_or_init(|| {
        let found = probe_abi().unwrap_or(0);
        match test_cap() {
            Some(cap) => found.min(cap),
            None => found,
        }
    })
}

/// The cap `SKILLBOX_TEST_LANDLOCK_ABI` sets on the ABI used, when it is set to a number.
pub(crate) fn test_cap() -> Option<i32> {
    static CAP: OnceLock<Option<i32>> = OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("SKILLBOX_TEST_LANDLOCK_ABI")
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
            .map(|n| n.max(0))
    })
}

/// Why the kernel gives no Landlock ABI: the errno of asking it (`ENOSYS`: not built in;
/// `EOPNOTSUPP`: built in but not enabled at boot; `EPERM` and others: refused by a filter
/// of the process around skillbox, as a container's profile does). `None` when it answers.
pub(crate) fn absence() -> Option<i32> {
    static WHY: OnceLock<Option<i32>> = OnceLock::new();
    *WHY.get_or_init(|| probe_abi().err())
}

/// [`kernel_abi`] as the landlock crate's ABI, capped at the highest this crate builds
/// rulesets for (6: scopes; nothing later is used).
pub(crate) fn abi() -> ABI {
    ABI::from(kernel_abi().min(6))
}

/// `LANDLOCK_CREATE_RULESET_VERSION` of linux/landlock.h: `landlock_create_ruleset` then
/// returns the ABI version instead of creating a ruleset. (libc has no Landlock constants.)
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;

/// `LANDLOCK_RULE_PATH_BENEATH` of linux/landlock.h: a rule on a file hierarchy.
const LANDLOCK_RULE_PATH_BENEATH: u32 = 1;

fn probe_abi() -> Result<i32, i32> {
    // SAFETY: landlock_create_ruleset with a NULL attribute, size 0 and the VERSION flag only
    // returns a number; it reads and writes no memory. (rustix has no Landlock calls; the
    // landlock crate asks the same way but keeps its answer to itself.)
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOSYS))
    } else {
        Ok(v as i32)
    }
}

/// Builds the ruleset for `policy` and returns its descriptor, ready for
/// `landlock_restrict_self` in the child. Takes the base built ahead for a run of this shape
/// when there is one, and has the next one built ahead (see [`build_ahead`]).
///
/// Every access right is requested as a hard requirement for the ABI the kernel reports, so
/// that nothing is silently dropped: either the ruleset is what the policy says, or this
/// fails. What the walk kept out of the writable trees is added to `census`.
///
/// With `marks`, the same walk of the granted trees also records what the run's mount
/// namespace beside Landlock needs (`crate::metadata`).
pub(crate) fn build(
    policy: &Policy,
    census: &mut crate::planted::Census,
    marks: Option<&mut crate::metadata::Marks>,
) -> Result<OwnedFd, LandlockError> {
    let shape = shape(policy)?;
    let base = match take_ahead(shape) {
        Some(r) => r,
        None => base(shape)?.0,
    };
    build_ahead(shape);
    grant(policy, base, census, marks)
}

/// The Landlock rights every run has on `/proc` (and on the procfs of its own, see
/// `crate::metadata`), as the kernel's bits.
pub(crate) fn proc_access() -> u64 {
    AccessFs::from_read(abi()).bits()
}

/// Builds the ruleset for `policy` as [`build`] does, and closes it: fails where a run of
/// `policy` would, and leaves nothing behind (no base is taken from or built for the runs
/// that follow).
pub(crate) fn check(policy: &Policy) -> Result<(), LandlockError> {
    let shape = shape(policy)?;
    grant(policy, base(shape)?.0, &mut Default::default(), None).map(drop)
}

/// The shape of `policy`'s ruleset, once the kernel is known to offer Landlock at all. TCP
/// is handled from ABI 4 on (the plan reports what an older ABI leaves to other mechanisms).
fn shape(policy: &Policy) -> Result<Shape, LandlockError> {
    let found = kernel_abi();
    if found < 1 {
        return Err(LandlockError::Unsupported { found });
    }
    Ok(Shape {
        confine_files: policy.confine_files,
        confine_tcp: policy.network != NetworkAccess::Full && found >= 4,
    })
}

/// Adds `policy`'s grants and port rule to `created`, a base of its shape, and returns the
/// ruleset's descriptor; the walk's census of the writable trees goes to `census` and, with
/// `marks`, what the run's mount namespace needs from the same walk.
fn grant(
    policy: &Policy,
    mut created: landlock::RulesetCreated,
    census: &mut crate::planted::Census,
    mut marks: Option<&mut crate::metadata::Marks>,
) -> Result<OwnedFd, LandlockError> {
    let abi = abi();
    let found = kernel_abi();
    if policy.confine_files {
        let read = AccessFs::from_read(abi);
        let write = AccessFs::from_all(abi) & !AccessFs::Refer & !AccessFs::IoctlDev;
        let carved_paths = carved_paths(policy);
        let carved = Carved::new(&carved_paths, &policy.protected);
        // The grants go straight to the kernel through a second descriptor of the ruleset,
        // like the system rules (see `base`): their kinds are already known from the walk.
        let dup: Option<OwnedFd> = created.try_clone().map_err(LandlockError::System)?.into();
        let dup = dup.ok_or(LandlockError::Unsupported { found })?;
        let mut budget = Budget::new(MAX_GRANT_ENTRIES);
        for p in &policy.read {
            let root = crate::paths::normalize(p);
            grant_tree(&mut Rules::new(&dup, read), &root, false, false, &carved, &mut budget)?;
        }
        // The writable trees, walked once for both the rules and the marks.
        let mut writable = |root: &Path, guarded: bool, carved: &Carved<'_>| {
            let mut rules = Rules::new(&dup, write);
            match marks.as_deref_mut() {
                Some(m) => {
                    let mut marker = crate::metadata::Marker::new(m, root, true);
                    let mut both = Tee(&mut rules, &mut marker);
                    grant_tree(&mut both, root, true, guarded, carved, &mut budget)?;
                    marker.finish();
                    Ok::<(), GrantError>(())
                }
                None => grant_tree(&mut rules, root, true, guarded, carved, &mut budget),
            }
        };
        for p in &policy.write {
            let root = crate::paths::normalize(p);
            let guarded = policy.guarded.iter().any(|g| crate::paths::normalize(g) == root);
            writable(&root, guarded, &carved)?;
        }
        let unnamed = Carved::new(&carved_paths, &[]);
        for p in &policy.scratch {
            let root = crate::paths::normalize(p);
            writable(&root, false, &unnamed)?;
        }
        census.absorb(budget.into_census());
    }
    // Below ABI 4 the ruleset handles no TCP right: the plan says what holds instead.
    match policy.network {
        _ if found < 4 => {}
        NetworkAccess::HttpsOnly => {
            created = created.add_rule(NetPort::new(443, AccessNet::ConnectTcp))?;
        }
        NetworkAccess::Loopback { port } => {
            created = created.add_rule(NetPort::new(port, AccessNet::ConnectTcp))?;
        }
        NetworkAccess::None | NetworkAccess::Full => {}
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or(LandlockError::Unsupported { found })
}

/// The rules one granted tree comes to: the walk's decisions (see the `grants` module) as
/// Landlock rights, added straight to the ruleset.
pub(crate) struct Rules<'a> {
    ruleset: &'a OwnedFd,
    /// The tree's rights.
    access: BitFlags<AccessFs>,
}

impl<'a> Rules<'a> {
    /// The rules of a tree granted `access`, added to `ruleset`.
    pub(crate) fn new(ruleset: &'a OwnedFd, access: BitFlags<AccessFs>) -> Self {
        Self { ruleset, access }
    }
}

impl Grants for Rules<'_> {
    fn grant(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        path: &Path,
        level: Level,
        dir: bool,
    ) -> Result<(), GrantError> {
        let abi = abi();
        let rights = match level {
            Level::Whole => self.access,
            Level::Read => self.access & AccessFs::from_read(abi),
            Level::List => self.access & AccessFs::ReadDir,
        };
        // A rule on a file may carry only file rights.
        let rights = if dir { rights } else { rights & AccessFs::from_file(abi) };
        if rights.is_empty() {
            return Ok(());
        }
        raw_add_rule(self.ruleset, fd, rights).map_err(|e| GrantError::Rule(path.to_path_buf(), e))
    }
}

/// The paths carved out of every tree of `policy`'s ruleset: its hidden paths (resolved by
/// the caller) and the secrets of `/etc` (resolved once per process).
pub(crate) fn carved_paths(policy: &Policy) -> Vec<(PathBuf, Carve)> {
    static ETC: OnceLock<Vec<PathBuf>> = OnceLock::new();
    let etc = ETC.get_or_init(|| {
        ETC_SECRETS.iter().map(|s| crate::paths::resolve(&Path::new("/etc").join(s))).collect()
    });
    let mut out: Vec<(PathBuf, Carve)> =
        policy.hidden.iter().chain(etc).map(|p| (p.clone(), Carve::Hidden)).collect();
    out.sort();
    out.dedup();
    out
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
    let abi = abi();
    let mut ruleset = Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    if shape.confine_files {
        ruleset = ruleset.handle_access(AccessFs::from_all(abi))?;
    }
    if shape.confine_tcp {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    if kernel_abi() >= 6 {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    }
    let created = ruleset.create()?;
    let mut etc = None;
    if shape.confine_files {
        let (mtime, system) = system_rules();
        // The ~150 system rules go straight to the kernel through a second descriptor of the
        // same ruleset: the landlock crate's `add_rule` makes an `fstat` per rule to check
        // that a file gets only file rights, which `add` has already decided, and which the
        // kernel checks anyway (EINVAL). Rules added through the duplicate are the ruleset's.
        let dup: Option<OwnedFd> = created.try_clone().map_err(LandlockError::System)?.into();
        let dup = dup.ok_or(LandlockError::Unsupported { found: kernel_abi() })?;
        for (fd, access) in system.iter() {
            add_system_rule(&dup, fd, *access)?;
        }
        etc = mtime;
    }
    Ok((created, etc))
}

/// `landlock_add_rule(LANDLOCK_RULE_PATH_BENEATH)` for one system rule. When the kernel
/// refuses the rights as meant for a directory (EINVAL: the entry `readdir` listed as a
/// directory was replaced by a file before it was opened), the descriptor's own type decides
/// (`fstat`) and a file gets only its file rights, as [`add`] gives it.
fn add_system_rule(
    ruleset: &OwnedFd,
    fd: &OwnedFd,
    access: BitFlags<AccessFs>,
) -> Result<(), LandlockError> {
    let file_access = access & AccessFs::from_file(abi());
    match raw_add_rule(ruleset, fd, access) {
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL) && file_access != access && !is_dir(fd) =>
        {
            if file_access.is_empty() {
                // Only directory rights were meant: a file gets none of them.
                return Ok(());
            }
            raw_add_rule(ruleset, fd, file_access)
        }
        r => r,
    }
    .map_err(LandlockError::System)
}

/// `struct landlock_path_beneath_attr` of the kernel's UAPI (packed).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// `landlock_add_rule` for a path-beneath rule, straight to the kernel: the grants and the
/// system rules are decided already (a file gets only file rights), so the landlock crate's
/// checks, an `fstat` per rule, would only repeat them.
pub(crate) fn raw_add_rule(
    ruleset: &OwnedFd,
    fd: impl std::os::fd::AsFd,
    access: BitFlags<AccessFs>,
) -> std::io::Result<()> {
    let fd = fd.as_fd();
    let attr = PathBeneathAttr { allowed_access: access.bits(), parent_fd: fd.as_raw_fd() };
    // SAFETY: landlock_add_rule reads one landlock_path_beneath_attr from `attr`, which lives
    // across the call and has the UAPI's layout; both descriptors are open and ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
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
        let read = AccessFs::from_read(abi());
        let mut rules = Vec::new();
        for dir in SYSTEM_READ {
            add(&mut rules, Path::new(dir), read, Kind::Unknown);
        }
        add(&mut rules, Path::new("/proc"), read, Kind::Unknown);
        for dev in DEVICES {
            add(
                &mut rules,
                Path::new(dev),
                AccessFs::ReadFile | AccessFs::WriteFile,
                Kind::Unknown,
            );
        }
        grant_excluding(&mut rules, Path::new("/etc"), "", read, ETC_SECRETS);
        *guard = (etc_mtime, Arc::new(rules));
    }
    (guard.0, guard.1.clone())
}

/// Adds a rule for a system path if it exists. Missing system directories (`/lib32` on most
/// hosts) are not an error; access to them is simply not granted. System paths are owned by
/// root and may be links (`/bin -> usr/bin`), so links are followed here, and only here.
///
/// `kind` is what `readdir` said the entry is, when it said: it saves an `fstat` per entry
/// of `/etc`. A link (followed here) or an unknown type is asked of the descriptor. An entry
/// replaced between `readdir` and the open is caught either way: a directory that became a
/// file is refused by the kernel and retried with the file's rights ([`add_system_rule`]); a
/// file that became a directory gets only file rights, less than it would have had; and
/// either replacement moves the modification time of `/etc`, so the rules are read again.
fn add(rules: &mut SystemRules, path: &Path, access: BitFlags<AccessFs>, kind: Kind) {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
    else {
        return;
    };
    let fd = OwnedFd::from(file);
    let dir = match kind {
        Kind::Dir => true,
        Kind::NotDir => false,
        Kind::Unknown => is_dir(&fd),
    };
    // A rule on a file may carry only file rights.
    let access = if dir { access } else { access & AccessFs::from_file(abi()) };
    rules.push((fd, access));
}

/// What a directory entry is, as far as `readdir` tells without a system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A directory.
    Dir,
    /// Anything that is neither a directory nor a symbolic link.
    NotDir,
    /// A symbolic link (its target decides), or a type `readdir` did not give.
    Unknown,
}

impl Kind {
    fn of(entry: &std::fs::DirEntry) -> Self {
        // `DirEntry::file_type` is the entry's `d_type` when the file system fills it in,
        // else an `lstat`.
        match entry.file_type() {
            Ok(t) if t.is_symlink() => Kind::Unknown,
            Ok(t) if t.is_dir() => Kind::Dir,
            Ok(_) => Kind::NotDir,
            Err(_) => Kind::Unknown,
        }
    }
}

/// Whether `fd` (an `O_PATH` descriptor) is a directory: `fstat` on the descriptor itself,
/// not a lookup of `/proc/self/fd/N`, which costs a path walk through procfs per rule.
fn is_dir(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
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
    add(rules, dir, AccessFs::ReadDir.into(), Kind::Unknown);
    for e in entries.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
        let r = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        if secrets.contains(&r.as_str()) {
            continue;
        }
        let path: PathBuf = e.path();
        // Some secret is `r/...` (checked without building `r/` for every entry).
        let holds_secret = secrets.iter().any(|s| {
            s.len() > r.len() && s.starts_with(r.as_str()) && s.as_bytes()[r.len()] == b'/'
        });
        let kind = Kind::of(&e);
        if holds_secret && kind == Kind::Dir {
            grant_excluding(rules, &path, &r, access, secrets);
        } else {
            add(rules, &path, access, kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// (device, inode) of what a rule's descriptor names, and the rule's rights.
    fn identify(rules: &SystemRules) -> Vec<((u64, u64), u64)> {
        let mut out: Vec<_> = rules
            .iter()
            .map(|(fd, access)| {
                let f = std::fs::File::from(fd.try_clone().unwrap());
                let m = f.metadata().unwrap();
                ((m.dev(), m.ino()), access.bits())
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The system rules as they were built before `readdir`'s type was used: an `fstat` of
    /// every opened entry decides directory or not.
    fn reference_rules() -> SystemRules {
        fn add_ref(rules: &mut SystemRules, path: &Path, access: BitFlags<AccessFs>) {
            let Ok(file) = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(path)
            else {
                return;
            };
            let fd = OwnedFd::from(file);
            let access = if is_dir(&fd) { access } else { access & AccessFs::from_file(abi()) };
            rules.push((fd, access));
        }
        fn excluding_ref(
            rules: &mut SystemRules,
            dir: &Path,
            rel: &str,
            access: BitFlags<AccessFs>,
            secrets: &[&str],
        ) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            add_ref(rules, dir, AccessFs::ReadDir.into());
            for e in entries.flatten() {
                let Some(name) = e.file_name().to_str().map(str::to_string) else { continue };
                let r = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
                if secrets.contains(&r.as_str()) {
                    continue;
                }
                let holds_secret = secrets.iter().any(|s| s.starts_with(&format!("{r}/")));
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                if holds_secret && is_dir {
                    excluding_ref(rules, &e.path(), &r, access, secrets);
                } else {
                    add_ref(rules, &e.path(), access);
                }
            }
        }
        let read = AccessFs::from_read(ABI::V6);
        let mut rules = Vec::new();
        for dir in SYSTEM_READ {
            add_ref(&mut rules, Path::new(dir), read);
        }
        add_ref(&mut rules, Path::new("/proc"), read);
        for dev in DEVICES {
            add_ref(&mut rules, Path::new(dev), AccessFs::ReadFile | AccessFs::WriteFile);
        }
        excluding_ref(&mut rules, Path::new("/etc"), "", read, ETC_SECRETS);
        rules
    }

    #[test]
    fn system_rules_are_the_ones_an_fstat_of_every_entry_gives() {
        let (_, rules) = system_rules();
        let now = identify(&rules);
        assert!(now.len() > 20, "expected /etc entries among the rules, got {}", now.len());
        assert_eq!(now, identify(&reference_rules()));
        // The secrets stay out: no rule names /etc/shadow or /etc/passwd.
        for secret in ["/etc/shadow", "/etc/passwd", "/etc/gshadow"] {
            if let Ok(m) = std::fs::metadata(secret) {
                assert!(!now.iter().any(|(id, _)| *id == (m.dev(), m.ino())), "{secret} granted");
            }
        }
    }

    #[test]
    fn a_file_given_directory_rights_gets_its_file_rights() {
        if kernel_abi() < FULL_ABI {
            return;
        }
        let (created, _) = base(Shape { confine_files: true, confine_tcp: true }).unwrap();
        let dup: Option<OwnedFd> = created.try_clone().unwrap().into();
        let dup = dup.unwrap();
        let file = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open("/etc/hostname")
                .or_else(|_| std::fs::File::open("/dev/null"))
                .unwrap(),
        );
        let read = AccessFs::from_read(ABI::V6);
        // What `readdir` said a directory, now a file: the kernel refuses, the retry fits.
        let e = raw_add_rule(&dup, &file, read).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        add_system_rule(&dup, &file, read).unwrap();
        // Only directory rights: nothing is granted, and that is not an error.
        add_system_rule(&dup, &file, AccessFs::ReadDir.into()).unwrap();
        // A directory refused for another reason (a right the ruleset does not handle) is
        // an error, not retried.
        let dir = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open("/usr")
                .unwrap(),
        );
        let (no_files, _) = base(Shape { confine_files: false, confine_tcp: true }).unwrap();
        let no_files: Option<OwnedFd> = no_files.into();
        assert!(add_system_rule(&no_files.unwrap(), &dir, read).is_err());
    }
}
