//! `skillbox-hostsim`: runs a command as if on a host that offers less than this one.
//!
//! ```text
//! skillbox-hostsim PROFILE -- COMMAND [ARGS...]
//! ```
//!
//! The test suite runs its own test binaries (and through them the `skillbox` binary) under
//! each profile, as root and as `nobody`, to check that every guarantee either holds by the
//! best mechanism the simulated host offers, or that a run is refused naming what is
//! missing. Two ways of taking a mechanism away, both inherited by every process the command
//! starts:
//!
//! * a seccomp filter installed here (after `no_new_privs`) before the command is executed:
//!   `clone` and `unshare` with `CLONE_NEWUSER` answer `EPERM` and `clone3` `ENOSYS` (what
//!   Docker's and Podman's default profiles do, and what Ubuntu's AppArmor restriction
//!   amounts to for an unprivileged process), and the Landlock system calls answer `ENOSYS`
//!   (a kernel without Landlock) or `EPERM` (a container profile that refuses them);
//! * `SKILLBOX_TEST_LANDLOCK_ABI`, which skillbox honours only to *lower* the Landlock ABI it
//!   uses (an older kernel: the ABI is a return value, not an error a filter can give), and
//!   reports in every result and audit event.
//!
//! And one way of taking cgroups away (`no-cgroups`, `docker-default`: a container's
//! cgroup tree is mounted read-only): as root, the command runs in a mount namespace of its
//! own in which every `cgroup` and `cgroup2` mount of `/proc/self/mountinfo` is remounted
//! read-only (a bind remount; `/` is made a slave first, so that nothing flows back to the
//! host, while mounts made on the host still reach the command). A non-root user cannot
//! remount anything, and normally has no writable cgroup to take away: there the profile
//! only checks that. Either way hostsim checks, before the command starts, that no cgroup
//! directory of this process is writable (`access(W_OK)`, which is what skillbox asks), and
//! refuses to run the command (exit 125) otherwise: a non-root user with a delegated cgroup
//! subtree cannot be given this profile.
//!
//! The command also gets `SKILLBOX_HOSTSIM_PROFILE=<name>`, so that a test knows which host
//! it is on and can say what to expect there from the facts of that host (the sandbox's
//! tests/hosts module), rather than from what skillbox itself decides. Without that variable
//! a test is on this host as it is (`full`).
//!
//! This is a test tool: it is never installed, and nothing in skillbox depends on it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// What a profile takes away.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Profile {
    /// New user namespaces refused.
    no_userns: bool,
    /// Landlock's system calls answer with this errno.
    landlock_errno: Option<u32>,
    /// The highest Landlock ABI skillbox may use.
    landlock_abi: Option<u32>,
    /// Every cgroup mount read-only: no run gets a cgroup.
    read_only_cgroups: bool,
}

/// The profiles, by name, with the hosts they stand for (docs/security-model.md's support
/// matrix names the same).
fn profile(name: &str) -> Option<Profile> {
    let p = |no_userns, landlock_errno, landlock_abi| Profile {
        no_userns,
        landlock_errno,
        landlock_abi,
        read_only_cgroups: false,
    };
    Some(match name {
        // This host as it is.
        "full" => p(false, None, None),
        // Docker's and Podman's default seccomp profiles; Ubuntu 23.10+ for a normal user.
        "no-userns" => p(true, None, None),
        // A kernel without Landlock, or not in `lsm=`.
        "no-landlock" => p(false, Some(libc::ENOSYS as u32), None),
        // A container profile that refuses Landlock.
        "landlock-eperm" => p(false, Some(libc::EPERM as u32), None),
        // Landlock capped at an older ABI: Ubuntu 22.04 (1), Debian 12 (2), WSL2 6.6 (3),
        // Ubuntu 24.04 (4), Linux 6.10-6.11 (5).
        "landlock-abi-1" => p(false, None, Some(1)),
        "landlock-abi-2" => p(false, None, Some(2)),
        "landlock-abi-3" => p(false, None, Some(3)),
        "landlock-abi-4" => p(false, None, Some(4)),
        "landlock-abi-5" => p(false, None, Some(5)),
        // Combinations real hosts have.
        "ubuntu-24.04" => p(true, None, Some(4)),
        "debian-12" => p(false, None, Some(2)),
        // Docker's default for a container that is not `--privileged`: its seccomp profile
        // refuses user namespaces, and the cgroup tree is mounted read-only.
        "docker-default" => Profile { read_only_cgroups: true, ..p(true, None, None) },
        // Root where the cgroup tree is read-only (a container run with user namespaces
        // allowed, `--security-opt seccomp=unconfined`), or any user without a delegated
        // cgroup: no pids, memory or cpu cgroup for a run.
        "no-cgroups" => Profile { read_only_cgroups: true, ..p(false, None, None) },
        "no-userns-no-landlock" => p(true, Some(libc::ENOSYS as u32), None),
        _ => return None,
    })
}

/// The variable that tells the command which profile it runs under.
const PROFILE_ENV: &str = "SKILLBOX_HOSTSIM_PROFILE";

const PROFILES: &[&str] = &[
    "full",
    "no-userns",
    "no-landlock",
    "landlock-eperm",
    "landlock-abi-1",
    "landlock-abi-2",
    "landlock-abi-3",
    "landlock-abi-4",
    "landlock-abi-5",
    "ubuntu-24.04",
    "debian-12",
    "docker-default",
    "no-userns-no-landlock",
    "no-cgroups",
];

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let usage = || -> ! {
        eprintln!(
            "usage: skillbox-hostsim PROFILE -- COMMAND [ARGS...]\nprofiles: {}",
            PROFILES.join(", ")
        );
        std::process::exit(2)
    };
    let (Some(name), Some(sep)) = (args.first(), args.get(1)) else { usage() };
    if sep != "--" || args.len() < 3 {
        usage();
    }
    let Some(p) = name.to_str().and_then(profile) else { usage() };
    std::env::set_var(PROFILE_ENV, name);
    // The profile says the whole of what is lowered: a cap inherited from around this
    // process would make `full` (or `no-userns`) a host with an older Landlock.
    match p.landlock_abi {
        Some(abi) => std::env::set_var("SKILLBOX_TEST_LANDLOCK_ABI", abi.to_string()),
        None => std::env::remove_var("SKILLBOX_TEST_LANDLOCK_ABI"),
    }
    if p.read_only_cgroups {
        if let Err(e) = read_only_cgroups() {
            eprintln!("skillbox-hostsim: cannot take writable cgroups away: {e}");
            std::process::exit(125);
        }
    }
    if let Err(e) = install(&p) {
        eprintln!("skillbox-hostsim: cannot install the profile's filter: {e}");
        std::process::exit(125);
    }
    let argv: Vec<CString> =
        args[2..].iter().map(|a| CString::new(a.as_bytes()).unwrap_or_else(|_| usage())).collect();
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: `ptrs` is a NULL-terminated array of pointers to NUL-terminated strings that
    // live until execvp returns (it only returns on failure).
    unsafe { libc::execvp(ptrs[0], ptrs.as_ptr()) };
    eprintln!(
        "skillbox-hostsim: cannot execute {:?}: {}",
        args[2],
        std::io::Error::last_os_error()
    );
    std::process::exit(127);
}

/// Installs the profile's filter on this process (inherited by what it executes).
fn install(p: &Profile) -> Result<(), String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut errno_rules: Vec<(i64, Vec<SeccompRule>, u32)> = Vec::new();
    if p.no_userns {
        let newuser = |arg: u8| {
            SeccompCondition::new(
                arg,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(libc::CLONE_NEWUSER as u64),
                libc::CLONE_NEWUSER as u64,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| e.to_string())
        };
        // clone(flags, ...) and unshare(flags): the flags are the first argument.
        errno_rules.push((libc::SYS_clone, vec![newuser(0)?], libc::EPERM as u32));
        errno_rules.push((libc::SYS_unshare, vec![newuser(0)?], libc::EPERM as u32));
        // clone3's flags are behind a pointer a filter cannot read: refused, libc falls back
        // to clone.
        errno_rules.push((libc::SYS_clone3, vec![], libc::ENOSYS as u32));
    }
    if let Some(errno) = p.landlock_errno {
        for nr in [
            libc::SYS_landlock_create_ruleset,
            libc::SYS_landlock_add_rule,
            libc::SYS_landlock_restrict_self,
        ] {
            errno_rules.push((nr, vec![], errno));
        }
    }
    if errno_rules.is_empty() {
        return Ok(());
    }
    // One filter per errno (a filter has one match action); the kernel applies the most
    // restrictive verdict of all installed filters.
    let mut by_errno: BTreeMap<u32, Vec<(i64, Vec<SeccompRule>)>> = BTreeMap::new();
    for (nr, r, errno) in errno_rules {
        by_errno.entry(errno).or_default().push((nr, r));
    }
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes only integers.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    for (errno, list) in by_errno {
        rules.clear();
        for (nr, r) in list {
            rules.insert(nr, r);
        }
        let filter = SeccompFilter::new(
            std::mem::take(&mut rules),
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            std::env::consts::ARCH
                .try_into()
                .map_err(|e: seccompiler::BackendError| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let prog: BpfProgram =
            filter.try_into().map_err(|e: seccompiler::BackendError| e.to_string())?;
        seccompiler::apply_filter(&prog).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A cgroup mount of `/proc/self/mountinfo`.
#[derive(Debug)]
struct CgroupMount {
    /// Where it is mounted.
    point: std::path::PathBuf,
    /// `cgroup2`, or `cgroup` (v1).
    v2: bool,
    /// The mount's own options (`rw,nosuid,...`).
    options: String,
    /// The hierarchy's options (v1: its controllers).
    super_options: String,
}

/// The mountinfo escapes (`\040` for a space, and so on) undone.
fn unescape(field: &str) -> std::path::PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::path::PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(out))
}

/// The cgroup mounts this process sees.
fn cgroup_mounts() -> Result<Vec<CgroupMount>, String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
    let mut found = Vec::new();
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        let (Some(point), Some(options), Some(fstype)) =
            (fields.get(4), fields.get(5), fields.get(sep + 1))
        else {
            continue;
        };
        if *fstype != "cgroup" && *fstype != "cgroup2" {
            continue;
        }
        found.push(CgroupMount {
            point: unescape(point),
            v2: *fstype == "cgroup2",
            options: (*options).to_string(),
            super_options: fields.get(sep + 3).copied().unwrap_or("").to_string(),
        });
    }
    Ok(found)
}

/// A path as a C string.
fn c_path(p: &std::path::Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| format!("{}: a NUL in the path", p.display()))
}

/// `mount(2)` with no source, type or data: what a propagation change and a bind remount
/// take.
fn mount_flags(target: &std::path::Path, flags: libc::c_ulong) -> Result<(), String> {
    let t = c_path(target)?;
    // SAFETY: `t` is a NUL-terminated path that outlives the call; the NULL source, type and
    // data are allowed for a propagation change and a bind remount.
    let r = unsafe {
        libc::mount(std::ptr::null(), t.as_ptr(), std::ptr::null(), flags, std::ptr::null())
    };
    if r != 0 {
        return Err(format!(
            "mount({}, {flags:#x}): {}",
            target.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The per-mount flags a bind remount must give again to keep them (it replaces them all).
fn kept_flags(options: &str) -> libc::c_ulong {
    options
        .split(',')
        .map(|o| match o {
            "nosuid" => libc::MS_NOSUID,
            "nodev" => libc::MS_NODEV,
            "noexec" => libc::MS_NOEXEC,
            "noatime" => libc::MS_NOATIME,
            "nodiratime" => libc::MS_NODIRATIME,
            "relatime" => libc::MS_RELATIME,
            "strictatime" => libc::MS_STRICTATIME,
            _ => 0,
        })
        .fold(0, |a, f| a | f)
}

/// The directories of this process's own cgroups, one per hierarchy, with each mount's root:
/// where skillbox would make a run's groups, and where a delegated subtree would start.
fn own_cgroup_dirs(mounts: &[CgroupMount]) -> Vec<std::path::PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs = Vec::new();
    for m in mounts {
        dirs.push(m.point.clone());
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let ours = if m.v2 {
                controllers.is_empty()
            } else {
                !controllers.is_empty()
                    && controllers.split(',').all(|c| m.super_options.split(',').any(|o| o == c))
            };
            if ours {
                dirs.push(m.point.join(path.trim_start_matches('/')));
            }
        }
    }
    dirs
}

/// Takes writable cgroups away (see the module's documentation), and checks that none is
/// left.
fn read_only_cgroups() -> Result<(), String> {
    let mounts = cgroup_mounts()?;
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } == 0 && !mounts.is_empty() {
        // SAFETY: unshare(2) takes only flags and touches no memory of this process.
        if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
            return Err(format!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error()));
        }
        mount_flags(std::path::Path::new("/"), libc::MS_SLAVE | libc::MS_REC)?;
        for m in &mounts {
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | kept_flags(&m.options);
            mount_flags(&m.point, flags)?;
        }
        for m in cgroup_mounts()? {
            if !m.options.split(',').any(|o| o == "ro") {
                return Err(format!("{} is still mounted {}", m.point.display(), m.options));
            }
        }
    }
    for dir in own_cgroup_dirs(&mounts) {
        let Ok(c) = c_path(&dir) else { continue };
        // SAFETY: `c` is a NUL-terminated path that outlives the call.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 {
            return Err(format!(
                "{} is writable for this process, and only root can remount it read-only",
                dir.display()
            ));
        }
    }
    Ok(())
}
