//! The simulated hosts take away what they say, and nothing is left to chance about which
//! one a command is on: each profile exports its name, refuses new user namespaces or
//! answers Landlock's calls with its errno, and caps the ABI skillbox uses. Checked by doing
//! (an `unshare -U`, a Landlock version query) under each profile, with `full` as the
//! control that the same attempts work on this host.
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
