//! The run's private directory (`HOME`, `TMPDIR`): each run gets one to itself, prepared
//! ahead on tokio's blocking pool (or kept from an earlier run that left it exactly as it
//! was made: tests/private_dir_reuse.rs). Nothing one run writes there is seen by the next,
//! each is mode 0700, owned by the user, and removed after a run that wrote to it, and one
//! prepared but never used is removed when the process exits.
//!
//! These run as root in CI and again as `nobody` (scripts/test.sh).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use skillbox_skills::{Registry, Runtime, Status, TrustLevel};

/// The `exit_helper` test of this binary, in a process of its own, with `HELPER_ENV` set to
/// `mode` and `tmp` as its temp directory.
fn helper(mode: &str, tmp: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", "exit_helper", "--ignored", "--nocapture"])
        .env(HELPER_ENV, mode)
        .env("TMPDIR", tmp);
    c
}

fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

/// A workspace with a shell skill that reports its `HOME`, what is in it, and the mode of
/// the private directory, then leaves a file in `HOME` and in `TMPDIR`.
fn workspace() -> tempfile::TempDir {
    let ws = scratch();
    let skill = json!({
        "name": "probe",
        "type": "command",
        "command": "/bin/sh",
        "args": ["-c", "echo \"HOME=$HOME\"; echo \"TMPDIR=$TMPDIR\"; \
                        for f in \"$HOME\"/* \"$HOME\"/.* \"$TMPDIR\"/* \"$TMPDIR\"/.*; do \
                          case \"${f##*/}\" in .|..|'*'|'.*') ;; *) echo \"FOUND=$f\";; esac; \
                        done; \
                        echo left > \"$HOME/.left-behind\"; echo left > \"$TMPDIR/left\""],
        "security": {"permissions": {}},
    });
    let dir = ws.path().join(".q-skills");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("probe.json"), skill.to_string()).expect("write");
    ws
}

fn field(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// Runs the probe `n` times in one runtime, pausing between runs so that the next run's
/// directory is prepared ahead; returns each run's private directory.
async fn runs(ws: &Path, n: usize) -> Vec<PathBuf> {
    let rt =
        Runtime::with_registry(Registry::load_paths(&[ws.join(".q-skills")]), ws).expect("runtime");
    let mut dirs = Vec::new();
    for i in 0..n {
        let r = rt.run("probe", &json!({}), Some(TrustLevel::Untrusted)).await;
        assert_eq!(r.status, Status::Success, "run {i}: {r:?}");
        assert_eq!(field(&r.stdout, "FOUND"), None, "run {i} found files: {}", r.stdout);
        let home = PathBuf::from(field(&r.stdout, "HOME").expect("HOME"));
        let private = home.parent().expect("private dir").to_path_buf();
        assert_eq!(PathBuf::from(field(&r.stdout, "TMPDIR").expect("TMPDIR")), private.join("tmp"));
        dirs.push(private);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    dirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_gets_a_fresh_private_dir_and_it_goes_away() {
    let ws = workspace();
    let dirs = runs(ws.path(), 5).await;
    let distinct: std::collections::BTreeSet<&PathBuf> = dirs.iter().collect();
    assert_eq!(distinct.len(), dirs.len(), "a private dir served two runs: {dirs:?}");
    // Removed after each run (off the path of the result: allow it a moment).
    let deadline = Instant::now() + Duration::from_secs(5);
    while dirs.iter().any(|d| d.exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "private dirs left behind: {left:?}");
}

fn private_dirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("skillbox-run-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

const HELPER_ENV: &str = "SKILLBOX_PRIVATE_DIR_HELPER";

/// A process that made several runs (so the next run's directory is prepared when it
/// ends) leaves no private directory behind when it exits. The helper is this test binary
/// again, with a temp directory of its own.
#[test]
fn a_prepared_dir_is_removed_when_the_process_exits() {
    let tmp = scratch();
    let out = helper("1", tmp.path()).output().expect("helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let waiting: usize = field(&stdout, "WAITING").and_then(|n| n.parse().ok()).expect("WAITING");
    assert!(waiting >= 1, "no directory was prepared ahead: {stdout}");
    // While it waited, the prepared directory was this user's and closed to others.
    // SAFETY: geteuid has no failure mode and no memory effects.
    let uid = unsafe { libc::geteuid() };
    let modes: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("MODE=")).collect();
    assert_eq!(modes.len(), 3 * waiting, "{stdout}");
    for m in modes {
        assert!(m.ends_with(&format!(" 700 {uid}")), "{m}");
    }
    assert_eq!(private_dirs(tmp.path()), Vec::<PathBuf>::new(), "left after exit");
}

/// A process killed by a signal runs no exit handler: the directory it prepared stays, and
/// the next process that prepares one removes it.
#[test]
fn a_prepared_dir_left_by_a_killed_process_is_swept_by_the_next() {
    let tmp = scratch();
    let mut held =
        helper("hold", tmp.path()).stdout(std::process::Stdio::null()).spawn().expect("helper");
    let killed = held.id();
    let ready = tmp.path().join("ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ready.exists(), "the helper never got ready");
    let _ = held.kill();
    let _ = held.wait();
    let of_killed = |dir: &Path| -> Vec<PathBuf> {
        let prefix = format!("skillbox-run-{killed}-");
        private_dirs(dir)
            .into_iter()
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix))
            })
            .collect()
    };
    assert!(!of_killed(tmp.path()).is_empty(), "the killed helper had prepared nothing");
    let out = helper("1", tmp.path()).output().expect("helper");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(of_killed(tmp.path()), Vec::<PathBuf>::new(), "not swept");
    assert_eq!(private_dirs(tmp.path()), Vec::<PathBuf>::new(), "left after exit");
}

#[test]
#[ignore = "helper of the tests above; does nothing alone"]
fn exit_helper() {
    let Some(mode) = std::env::var_os(HELPER_ENV) else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ws = workspace();
    rt.block_on(runs(ws.path(), 3));
    // Let the used directories' removal finish; the prepared one stays.
    std::thread::sleep(Duration::from_millis(300));
    if mode == "hold" {
        fs::write(std::env::temp_dir().join("ready"), "").expect("ready");
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    drop(rt);
    let waiting = private_dirs(&std::env::temp_dir());
    println!("WAITING={}", waiting.len());
    for d in waiting {
        use std::os::unix::fs::MetadataExt;
        for p in [d.clone(), d.join("home"), d.join("tmp")] {
            let m = fs::metadata(&p).expect("a prepared directory");
            println!("MODE={} {:o} {}", p.display(), m.mode() & 0o777, m.uid());
        }
    }
}
