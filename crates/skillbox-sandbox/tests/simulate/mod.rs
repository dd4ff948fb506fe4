//! Running one test of this binary again under a simulated host (`skillbox-hostsim
//! PROFILE`, which refuses user namespaces or takes Landlock away for everything it starts):
//! the outer test asserts that the inner one ran there and passed. A test that cannot get
//! the simulated host fails; it never skips.

#![allow(dead_code)]

use std::path::PathBuf;

/// Set in the environment of a test run under a simulated host: the profile's name.
const PROFILE: &str = "SKILLBOX_SIMULATED_PROFILE";

/// The hostsim binary the workspace builds (`cargo build -p skillbox-hostsim`), beside this
/// test binary's directory.
pub(crate) fn hostsim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("skillbox-hostsim");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p skillbox-hostsim`)",
        path.display()
    );
    path
}

/// Runs the (ignored) test `name` of this binary under `profile`, and fails unless it ran
/// and passed there.
pub(crate) fn under(profile: &str, name: &str) {
    let out = std::process::Command::new(hostsim())
        .arg(profile)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(PROFILE, profile)
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} under {profile} failed:\n{text}");
    assert!(text.contains("1 passed"), "{name} did not run under {profile}:\n{text}");
}

/// The profile this process was started under by [`under`], if it was: an ignored helper
/// test run on its own does nothing.
pub(crate) fn profile() -> Option<String> {
    std::env::var(PROFILE).ok()
}

/// Whether `profile` gives runs user namespaces (and with them a mount namespace of their
/// own), as `skillbox-hostsim` simulates it.
pub(crate) fn has_user_namespaces(profile: &str) -> bool {
    !matches!(profile, "no-userns" | "ubuntu-24.04" | "docker-default" | "no-userns-no-landlock")
}

/// Whether `profile` takes Landlock away (files then confined by the run's own root).
pub(crate) fn without_landlock(profile: &str) -> bool {
    matches!(profile, "no-landlock" | "landlock-eperm" | "no-userns-no-landlock")
}

/// The profiles the tests of guarantees kept by the run's mount namespace run under: hosts
/// with user namespaces at every Landlock ABI and without Landlock, and hosts without user
/// namespaces, where those guarantees are not kept and runs are refused.
pub(crate) const PROFILES: &[&str] = &[
    "full",
    "landlock-abi-1",
    "debian-12",
    "landlock-abi-4",
    "no-landlock",
    "no-userns",
    "ubuntu-24.04",
];
