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
}

/// The profiles, by name, with the hosts they stand for (docs/security-model.md's support
/// matrix names the same).
fn profile(name: &str) -> Option<Profile> {
    let p = |no_userns, landlock_errno, landlock_abi| Profile {
        no_userns,
        landlock_errno,
        landlock_abi,
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
        "docker-default" => p(true, None, None),
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
