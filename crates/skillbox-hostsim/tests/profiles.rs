//! The simulated hosts take away what they say, and nothing is left to chance about which
//! one a command is on: each profile exports its name, refuses new user namespaces or
//! answers Landlock's calls with its errno, caps the ABI skillbox uses, or mounts the cgroup
//! tree read-only. Checked by doing (an `unshare -U`, a Landlock version query, a `mkdir`
//! under each cgroup mount) under each profile, with `full` as the control that the same
//! attempts work on this host.
//!
//! Also the reason this crate has a test at all: `cargo test --workspace` then builds the
//! `skillbox-hostsim` binary that scripts/test.sh and the CLI's tests/hosts.rs run.

use std::process::{Command, Output};

const HOSTSIM: &str = env!("CARGO_BIN_EXE_skillbox-hostsim");
const PYTHON: &str = "/usr/bin/python3";
const UNSHARE: &str = "/usr/bin/unshare";

fn under(profile: &str, cmd: &[&str]) -> Output {
    Command::new(HOSTSIM)
        .arg(profile)
        .arg("--")
        .args(cmd)
        .env("SKILLBOX_TEST_LANDLOCK_ABI", "1")
        .output()
        .unwrap()
}

/// The profiles, as the usage message lists them.
fn profiles() -> Vec<String> {
    let out = Command::new(HOSTSIM).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stderr).unwrap();
    let list = text.lines().find_map(|l| l.strip_prefix("profiles: ")).expect("a profile list");
    list.split(", ").map(str::to_string).collect()
}

/// What the Landlock version query answers: `Ok(abi)` or `Err(errno)`.
fn landlock_under(profile: &str) -> Result<i64, i32> {
    let script = "import ctypes\n\
                  libc = ctypes.CDLL(None, use_errno=True)\n\
                  libc.syscall.restype = ctypes.c_long\n\
                  r = libc.syscall(ctypes.c_long(444), None, ctypes.c_long(0), ctypes.c_long(1))\n\
                  print(r, ctypes.get_errno())";
    let out = under(profile, &[PYTHON, "-I", "-c", script]);
    assert!(out.status.success(), "{profile}: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut f = text.split_whitespace().map(|x| x.parse::<i64>().unwrap());
    let (r, errno) = (f.next().unwrap(), f.next().unwrap());
    if r < 0 {
        Err(errno as i32)
    } else {
        Ok(r)
    }
}

#[test]
fn each_profile_names_itself_and_says_its_abi_cap() {
    let all = profiles();
    assert!(all.len() >= 13, "{all:?}");
    for p in &all {
        let out = under(p, &["/usr/bin/env"]);
        assert!(out.status.success(), "{p}: {out:?}");
        let env = String::from_utf8(out.stdout).unwrap();
        assert!(env.lines().any(|l| l == format!("SKILLBOX_HOSTSIM_PROFILE={p}")), "{p}: {env}");
        let cap = env.lines().find_map(|l| l.strip_prefix("SKILLBOX_TEST_LANDLOCK_ABI="));
        // The cap around hostsim (1, set by `under`) never leaks through: a profile sets
        // its own or none.
        let want = match p.as_str() {
            "ubuntu-24.04" => Some("4"),
            "debian-12" => Some("2"),
            other => other.strip_prefix("landlock-abi-"),
        };
        assert_eq!(cap, want, "{p}");
    }
    assert_eq!(under("no-such-host", &["/bin/true"]).status.code(), Some(2));
}

#[test]
fn user_namespaces_are_refused_where_the_profile_says() {
    for p in profiles() {
        let refused = p.contains("no-userns") || p == "ubuntu-24.04" || p == "docker-default";
        let out = under(&p, &[UNSHARE, "--user", "/bin/true"]);
        assert_eq!(!out.status.success(), refused, "{p}: {out:?}");
        if refused {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("Operation not permitted"), "{p}: {err}");
        }
    }
}

#[test]
fn landlock_answers_what_the_profile_says() {
    let real = landlock_under("full").expect("control: this host has Landlock");
    assert!(real >= 6, "this host's Landlock ABI is {real}");
    for p in profiles() {
        let want = match p.as_str() {
            "no-landlock" | "no-userns-no-landlock" => Err(libc::ENOSYS),
            "landlock-eperm" => Err(libc::EPERM),
            // A cap is skillbox's to honour: the kernel still answers with its own ABI.
            _ => Ok(real),
        };
        assert_eq!(landlock_under(&p), want, "{p}");
    }
}

/// Makes (and removes) a group named `name` under each cgroup mount the command sees:
/// `(mount point, 0 or the errno)` for each.
fn cgroup_mkdir_under(profile: &str, name: &str) -> Result<Vec<(String, i32)>, Output> {
    let script = "import os, sys\n\
                  for line in open('/proc/self/mountinfo'):\n\
                  \x20   f = line.split()\n\
                  \x20   t = f[f.index('-') + 1]\n\
                  \x20   if t not in ('cgroup', 'cgroup2'):\n\
                  \x20       continue\n\
                  \x20   d = os.path.join(f[4], sys.argv[1])\n\
                  \x20   try:\n\
                  \x20       os.mkdir(d)\n\
                  \x20       os.rmdir(d)\n\
                  \x20       print(f[4], 0)\n\
                  \x20   except OSError as e:\n\
                  \x20       print(f[4], e.errno)";
    let out = under(profile, &[PYTHON, "-I", "-c", script, name]);
    if !out.status.success() {
        return Err(out);
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(text
        .lines()
        .map(|l| {
            let (point, errno) = l.rsplit_once(' ').unwrap();
            (point.to_string(), errno.parse().unwrap())
        })
        .collect())
}

#[test]
fn cgroups_are_read_only_where_the_profile_says() {
    let name = format!("skillbox-hostsim-test-{}", std::process::id());
    let root = euid() == 0;
    let control = cgroup_mkdir_under("full", &name).expect("control: full runs");
    assert!(!control.is_empty(), "this host mounts no cgroup: nothing for the profiles to take");
    let writable_here = control.iter().any(|(_, e)| *e == 0);
    if root {
        // Control: root makes a group under every cgroup mount of this host.
        assert!(control.iter().all(|(_, e)| *e == 0), "control, as root: {control:?}");
    } else {
        eprintln!(
            "!!! not root: no cgroup can be remounted read-only; the profiles only check that \
             none is writable (here: {control:?}). The root pass checks the remount."
        );
    }
    for p in profiles() {
        let read_only = p == "no-cgroups" || p == "docker-default";
        let seen = cgroup_mkdir_under(&p, &name);
        match (read_only, seen) {
            (false, Ok(seen)) => assert_eq!(seen, control, "{p} leaves the cgroups as they are"),
            (true, Ok(seen)) => {
                // Root: the remount; anyone else: no permission (or a tree this host
                // mounts read-only already).
                let want: &[i32] = if root { &[libc::EROFS] } else { &[libc::EACCES, libc::EROFS] };
                assert_eq!(seen.len(), control.len(), "{p}: {seen:?}");
                assert!(seen.iter().all(|(_, e)| want.contains(e)), "{p}: {seen:?}");
            }
            // A non-root user with a writable (delegated) cgroup: the profile cannot take it
            // away, and says so rather than run the command on the wrong host.
            (true, Err(out)) if !root && writable_here => {
                assert_eq!(out.status.code(), Some(125), "{p}: {out:?}");
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(err.contains("only root can remount it read-only"), "{p}: {err}");
            }
            (_, Err(out)) => panic!("{p}: {out:?}"),
        }
    }
    // The remount stayed in the command's mount namespace: this host's cgroups are as before.
    assert_eq!(cgroup_mkdir_under("full", &name).unwrap(), control, "after the profiles ran");
}

/// This process's effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid has no arguments and cannot fail.
    unsafe { libc::geteuid() }
}
