//! The run's private directory (`HOME`, `TMPDIR`): each run gets one to itself, prepared
//! ahead on tokio's blocking pool (or kept from an earlier run that left it exactly as it
//! was made: tests/private_dir_reuse.rs). Nothing one run writes there is seen by the next,
//! each is mode 0700, owned by the user, and removed after a run that wrote to it, and one
//! prepared but never used is removed when the process exits.
//!
//! These run as root in CI and again as `nobody` (scripts/test.sh).

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use skillbox_skills::{Registry, Runtime, Status, TrustLevel};
use support::{field, scratch};

/// The `exit_helper` test of this binary, in a process of its own, with `HELPER_ENV` set to
/// `mode` and `tmp` as its temp directory.
fn helper(mode: &str, tmp: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", "exit_helper", "--ignored", "--nocapture"])
        .env(HELPER_ENV, mode)
        .env("TMPDIR", tmp);
    c
}

/// A [`scratch`] directory that may hold what a failed test left (a tree too deep for the
/// recursion of `TempDir`'s removal, directories mode 000): removed with `chmod -R` and
/// `rm -rf`, which walk iteratively.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        Self(scratch().keep())
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chmod").arg("-R").arg("u+rwx").arg(&self.0).status();
        let _ = std::process::Command::new("rm").arg("-rf").arg(&self.0).status();
    }
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
    let attack = json!({
        "name": "attack",
        "type": "command",
        "command": "/usr/bin/python3",
        "args": ["-I", "-c", ATTACK, "{act}"],
        "parameters": [{"name": "act", "type": "enum", "values": ATTACKS, "required": true}],
        "security": {"permissions": {}},
    });
    fs::write(dir.join("attack.json"), attack.to_string()).expect("write");
    ws
}

/// What the `attack` skill leaves in its private directory, by `act`:
/// - `deep`: 20,000 nested directories in `TMPDIR`, a file and a FIFO at the bottom;
/// - `deep-locked`: 5,000 such with every 1000th level mode 000 and the bottom one mode
///   500;
/// - `locked`: `a/b/data` and a FIFO in `TMPDIR`, then `chmod 500 a/b` and `chmod 000 a`;
/// - `locked-all`: that, plus a directory 000 in `HOME`, `HOME` and `TMPDIR` mode 000 and
///   the private directory above them mode 500.
///
/// It prints `DID=<act>` once all is in place. The same script (as `python3 -c ATTACK act
/// dir depth`) builds these trees by hand in `dir`, as a killed skillbox process would have
/// left them. (Under Landlock each access walks up the path, so a run takes time quadratic
/// in the depth: about 25 s for 20,000 levels.)
const ATTACK: &str = r#"
import os, sys
act = sys.argv[1]
home = os.environ.get("HOME")
tmp = sys.argv[2] if len(sys.argv) > 2 else os.environ["TMPDIR"]
depth = int(sys.argv[3]) if len(sys.argv) > 3 else 20000 if act == "deep" else 5000
def deep(root, n, lock):
    os.chdir(root)
    for i in range(n):
        os.mkdir("d")
        os.chdir("d")
        if lock and i % 1000 == 999:
            os.chmod("..", 0)
    open("data", "w").write("x")
    os.mkfifo("fifo")
    if lock:
        os.chmod(".", 0o500)
def locked(root):
    os.makedirs(os.path.join(root, "a", "b"))
    open(os.path.join(root, "a", "b", "data"), "w").write("x")
    os.mkfifo(os.path.join(root, "fifo"))
    os.mkfifo(os.path.join(root, "a", "b", "fifo"))
    os.chmod(os.path.join(root, "a", "b"), 0o500)
    os.chmod(os.path.join(root, "a"), 0)
if act == "deep":
    deep(tmp, depth, False)
elif act == "deep-locked":
    deep(tmp, depth, True)
elif act == "locked":
    locked(tmp)
elif act == "locked-all":
    locked(tmp)
    os.makedirs(os.path.join(home, "x", "y"))
    os.chmod(os.path.join(home, "x"), 0)
    for p in (home, tmp):
        os.chmod(p, 0)
    os.chmod(os.path.dirname(home), 0o500)
print("DID=" + act)
"#;

/// The acts of [`ATTACK`].
const ATTACKS: [&str; 4] = ["deep", "deep-locked", "locked", "locked-all"];

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

/// Runs the attack `act` twice (the first run of a process and a later one, whose
/// directories take different paths after the run; once for the slow `deep`), then the
/// probe: prints each attack's `STATUS=` and `DID=`.
async fn attack_runs(ws: &Path, act: &str) {
    let rt =
        Runtime::with_registry(Registry::load_paths(&[ws.join(".q-skills")]), ws).expect("runtime");
    for _ in 0..attack_count(act) {
        // At `user-verified`: 20,000 directories dirty 80 MB of an ext4 disk, over the
        // 10 MiB of disk writes `untrusted` allows.
        let r = rt.run("attack", &json!({"act": act}), Some(TrustLevel::UserVerified)).await;
        println!("STATUS={}", r.status.as_str());
        println!("DID={}", field(&r.stdout, "DID").unwrap_or_default());
        println!("RUN_MS={}", r.duration_ms);
        if r.status != Status::Success {
            println!("RESULT={r:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runs(ws, 1).await;
}

/// A run leaves `act` of [`ATTACK`] in its private directory, in a process of its own
/// (the helper, which ends without waiting for its blocking pool): every result comes
/// back, the process ends normally, and nothing of any run is left in its temp directory.
/// Removing a tree by recursion overflowed the stack of the thread removing it (exit 134)
/// on `deep`, and left `locked` as `nobody`; a process that ended without waiting left
/// the removal of `deep` unfinished.
fn attack(act: &str) {
    let tmp = Scratch::new();
    let out = helper(&format!("attack:{act}"), tmp.path()).output().expect("helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{act}: the process ended with {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("STATUS=")).collect();
    assert_eq!(statuses, vec!["success"; attack_count(act)], "{act}: {stdout}");
    let did: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("DID=")).collect();
    assert_eq!(did, vec![act; attack_count(act)], "{act}: the skill did not do its act: {stdout}");
    assert_eq!(private_dirs(tmp.path()), Vec::<PathBuf>::new(), "{act}: left in the temp dir");
}

#[test]
fn a_run_that_nests_20000_directories_ends_and_leaves_nothing() {
    attack("deep");
}

#[test]
fn a_deep_tree_with_locked_levels_is_removed() {
    attack("deep-locked");
}

#[test]
fn locked_directories_and_fifos_left_by_a_run_are_removed() {
    attack("locked");
    attack("locked-all");
}

/// How many runs of `act` the helper makes.
fn attack_count(act: &str) -> usize {
    if act == "deep" {
        1
    } else {
        2
    }
}

/// A pid no process has now (one that just ended).
fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("/bin/true").spawn().expect("true");
    let pid = c.id();
    c.wait().expect("wait");
    pid
}

/// Builds `act` of [`ATTACK`] by hand in `<tmp>/skillbox-run-<pid>-<act>/tmp`, as a
/// skillbox process killed after its run would have left it; returns the directory.
fn leftover(tmp: &Path, pid: u32, act: &str) -> PathBuf {
    let dir = tmp.join(format!("skillbox-run-{pid}-{act}"));
    fs::create_dir_all(dir.join("home")).expect("mkdir");
    fs::create_dir_all(dir.join("tmp")).expect("mkdir");
    let st = std::process::Command::new("/usr/bin/python3")
        .args(["-I", "-c", ATTACK, act])
        .arg(dir.join("tmp"))
        .arg("20000")
        .status()
        .expect("python3");
    assert!(st.success(), "building {act} by hand");
    dir
}

/// What killed processes left, however deep or locked, is removed by the next process
/// that sweeps (one making several runs) without crashing it; and the sweep stays within
/// its bounds: a live process's directory, a link named like a leftover and what it
/// points to, and (as root) another user's directory are left alone.
#[test]
fn leftovers_of_killed_processes_are_swept_however_deep_or_locked() {
    use std::os::unix::fs::MetadataExt;
    let tmp = Scratch::new();
    let dead = dead_pid();
    let gone: Vec<PathBuf> =
        ["deep", "deep-locked", "locked"].iter().map(|a| leftover(tmp.path(), dead, a)).collect();
    let live = tmp.path().join(format!("skillbox-run-{}-live", std::process::id()));
    fs::create_dir_all(live.join("tmp")).expect("mkdir");
    fs::write(live.join("tmp/keep"), "x").expect("write");
    let outside = scratch();
    fs::create_dir(outside.path().join("sub")).expect("mkdir");
    fs::write(outside.path().join("sub/keep"), "x").expect("write");
    let link = tmp.path().join(format!("skillbox-run-{dead}-link"));
    std::os::unix::fs::symlink(outside.path(), &link).expect("symlink");
    // SAFETY: geteuid has no failure mode and no memory effects.
    let root = unsafe { libc::geteuid() } == 0;
    let other = tmp.path().join(format!("skillbox-run-{dead}-other"));
    if root {
        fs::create_dir_all(other.join("tmp")).expect("mkdir");
        std::os::unix::fs::chown(&other, Some(65534), Some(65534)).expect("chown");
        assert_eq!(fs::metadata(&other).expect("other").uid(), 65534);
    }

    let out = helper("1", tmp.path()).output().expect("helper");
    assert!(
        out.status.success(),
        "the sweeping process ended with {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for d in &gone {
        assert!(!d.exists(), "not swept: {}", d.display());
    }
    assert!(live.join("tmp/keep").exists(), "a live process's directory was swept");
    assert!(fs::symlink_metadata(&link).is_ok(), "the link was removed");
    assert!(outside.path().join("sub/keep").exists(), "the sweep followed a link");
    if root {
        assert!(other.join("tmp").exists(), "another user's directory was swept");
        fs::remove_dir_all(&other).expect("cleanup");
    }
    fs::remove_dir_all(&live).expect("cleanup");
    fs::remove_file(&link).expect("cleanup");
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
    if let Some(act) = mode.to_str().and_then(|m| m.strip_prefix("attack:")) {
        rt.block_on(attack_runs(ws.path(), act));
        // Without waiting for the blocking pool, as `skillbox mcp` ends (it waits 2 s): the
        // process's exit waits for the removals under way.
        rt.shutdown_timeout(Duration::ZERO);
        return;
    }
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
    // This process's: the temp directory may hold others' (a test's leftovers to sweep).
    let own = format!("skillbox-run-{}-", std::process::id());
    let waiting: Vec<PathBuf> = private_dirs(&std::env::temp_dir())
        .into_iter()
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&own)))
        .collect();
    println!("WAITING={}", waiting.len());
    for d in waiting {
        use std::os::unix::fs::MetadataExt;
        for p in [d.clone(), d.join("home"), d.join("tmp")] {
            let m = fs::metadata(&p).expect("a prepared directory");
            println!("MODE={} {:o} {}", p.display(), m.mode() & 0o777, m.uid());
        }
    }
}
