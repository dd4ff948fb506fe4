//! Protected names planted where the kernel cannot refuse them (threat model 7, issue 21):
//! Landlock grants a writable directory whole, so a run can make `src/.git` in a `src/`
//! that held no protected entry, or anything in a directory it made. Before `run` returns,
//! every such entry is gone: moved to the policy's quarantine (or removed), and reported in
//! the outcome; what existed before the run (a nested repository) stays byte for byte.
//!
//! Each check is by effect: the planted entries are gone from the tree and found in the
//! quarantine, and `git status` in `src/` afterwards does not run the planted
//! `core.fsmonitor` (a control shows that this host's git runs it when the repository is
//! there). Runs that time out, are killed, or leave a process planting again until the end
//! are swept too, after every process is gone. The main case runs again under simulated
//! hosts: without user namespaces (the supervisor and process group hold the run) and
//! without Landlock (the run's own mount namespace).
//!
//! The tests pass as root and as `nobody`.

mod common;
mod hosts;
mod probe;
use probe::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use skillbox_sandbox::{
    run, ChildOutcome, ChildSpec, ExitStatus, Guarantee, PlantedFate, Policy, ProcessAccess,
};

/// Set in a helper test's environment when it runs under a simulated host.
const INNER: &str = "SKILLBOX_PLANTED_INNER";

/// A workspace: `src/` with a file, `docs/a/b/`, and `vendor/lib/` holding a repository of
/// its own (a submodule's `.git`), all world-writable so that only the sandbox stands in
/// the way.
fn workspace() -> tempfile::TempDir {
    let ws = scratch();
    let w = ws.path();
    subdir(w, "src");
    subdir(w, "docs/a/b");
    subdir(w, "vendor/lib/.git/refs/heads");
    subdir(w, "vendor/lib/.git/objects");
    file(&w.join("src/main.txt"), b"main");
    file(&w.join("vendor/lib/.git/HEAD"), b"ref: refs/heads/main\n");
    file(&w.join("vendor/lib/.git/config"), b"[core]\n\trepositoryformatversion = 0\n");
    ws
}

/// The policy of a run writing the workspace `w`, protecting [`NAMES`], with its
/// quarantine in `q`.
fn policy(w: &Path, q: &Path, pid_namespace: bool) -> Policy {
    let mut p = writing(&[w]);
    p.guarded = vec![w.to_path_buf()];
    p.quarantine = Some(q.to_path_buf());
    p.processes = ProcessAccess::Full;
    p.pid_namespace = pid_namespace;
    p
}

/// A shell run of `script` in `w` with `args` (`$1`...).
fn sh(policy: Policy, w: &Path, script: &str, args: &[&str], timeout: Duration) -> ChildSpec {
    let mut spec = ChildSpec::new(SH, w);
    spec.args = ["-c", script, "sh"].iter().chain(args).map(Into::into).collect();
    spec.env = vec![("PATH".into(), PATH_VALUE.into())];
    spec.policy = policy;
    spec.timeout = timeout;
    spec
}

/// What a run plants: a repository in `src/` with a `core.fsmonitor` that touches `$2`,
/// entries under protected names at depths 2 to 4 of the workspace (a case variant and a
/// link among them), one in directories the run makes, and one at the top, which the
/// kernel refuses. It also writes ordinary output, and tries to change the nested
/// repository (refused).
const PLANT: &str = r#"
cd "$1"
mkdir src/.git src/.git/objects src/.git/refs
printf 'ref: refs/heads/main\n' > src/.git/HEAD
printf '[core]\n\trepositoryformatversion = 0\n\tfsmonitor = touch %s\n' "$2" > src/.git/config
mkdir docs/a/.claude && echo '{}' > docs/a/.claude/settings.json
echo "touch $2" > docs/a/b/.bashrc
mkdir docs/.GIT
ln -s /etc docs/.profile
mkdir -p src/made/by/run/.q-skills/evil && echo '{}' > src/made/by/run/.q-skills/evil/skill.json
echo out > src/out.txt
echo "touch $2" > .bashrc 2>/dev/null && echo top-planted
echo pwned >> vendor/lib/.git/config 2>/dev/null && echo vendor-changed
exit 0
"#;

/// The planted entries [`PLANT`] makes, relative to the workspace.
const PLANTED: &[&str] = &[
    "docs/.GIT",
    "docs/.profile",
    "docs/a/.claude",
    "docs/a/b/.bashrc",
    "src/made/by/run/.q-skills",
    "src/.git",
];

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// `git status` in `dir` with no configuration but the repository's own (HOME a fresh
/// directory, no system or global file), not looking above `ceiling`.
fn git_status(dir: &Path, ceiling: &Path) {
    let home = scratch();
    let status = Command::new("git")
        .arg("status")
        .current_dir(dir)
        .env_clear()
        .env("PATH", PATH_VALUE)
        .env("HOME", home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CEILING_DIRECTORIES", ceiling)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    assert!(status.is_ok(), "git is needed for this test: {status:?}");
}

/// Control: this host's git runs a repository's `core.fsmonitor` at `git status`, so that
/// a marker left absent after the sweep means something.
fn git_runs_fsmonitor_here() {
    let d = scratch();
    let repo = subdir(d.path(), "repo");
    let marker = d.path().join("marker");
    let init = Command::new("git").args(["init", "-q"]).current_dir(&repo).status().unwrap();
    assert!(init.success());
    let set = format!("touch {}", marker.display());
    let ok = Command::new("git")
        .args(["config", "core.fsmonitor", &set])
        .current_dir(&repo)
        .status()
        .unwrap();
    assert!(ok.success());
    git_status(&repo, d.path());
    assert!(exists(&marker), "control: git did not run core.fsmonitor on this host");
}

/// Asserts that the run's planted entries are gone, each found in the quarantine `q` as
/// the outcome says, and that nothing else changed but what the run was allowed to write.
fn assert_swept(o: &ChildOutcome, w: &Path, q: &Path, want: &[&str]) {
    let p = &o.planted;
    assert_eq!(p.incomplete, None, "{p:?}");
    let mut found: Vec<PathBuf> = p.entries.iter().map(|e| e.path.clone()).collect();
    found.sort();
    let mut want: Vec<PathBuf> = want.iter().map(|r| w.join(r)).collect();
    want.sort();
    assert_eq!(found, want, "{p:?}");
    assert_eq!(p.count, want.len() as u64);
    for e in &p.entries {
        assert!(!exists(&e.path), "{} is still there after the run", e.path.display());
        match &e.fate {
            PlantedFate::Quarantined(to) => {
                assert!(to.parent() == Some(q) && exists(to), "{e:?}")
            }
            other => panic!("{}: {other:?}, expected the quarantine", e.path.display()),
        }
    }
}

async fn plant_and_check(pid_namespace: bool) {
    git_runs_fsmonitor_here();
    let ws = workspace();
    let w = ws.path();
    let home = scratch();
    let q = home.path().join("quarantine/run-1");
    let marker = home.path().join("fsmonitor-ran");
    let vendor = snapshot(&w.join("vendor"));

    let spec =
        sh(policy(w, &q, pid_namespace), w, PLANT, &[&s(w), &s(&marker)], Duration::from_secs(20));
    let o = run(&spec).await.expect("run");
    let out = o.stdout.to_text();
    assert_eq!(o.status, ExitStatus::Exited(0), "{out}{}", o.stderr.to_text());
    assert!(!out.contains("top-planted"), "a protected name was created at the top: {out}");
    assert!(!out.contains("vendor-changed"), "the nested repository was written: {out}");
    assert_swept(&o, w, &q, PLANTED);

    // What existed stays, byte for byte; what the run may write, it wrote.
    assert_eq!(snapshot(&w.join("vendor")), vendor, "the nested repository changed");
    assert_eq!(fs::read(w.join("src/main.txt")).unwrap(), b"main");
    assert_eq!(fs::read(w.join("src/out.txt")).unwrap(), b"out\n");
    assert!(w.join("src/made/by/run").is_dir(), "the rest of what the run made stays");
    assert!(!exists(&w.join(".bashrc")));
    // The quarantined repository is the one the run wrote.
    let git = o.planted.entries.iter().find(|e| e.path.ends_with("src/.git")).unwrap();
    let PlantedFate::Quarantined(to) = &git.fate else { unreachable!() };
    assert!(fs::read_to_string(to.join("config")).unwrap().contains("fsmonitor"));

    // The effect that matters: git run in src/ afterwards finds no planted repository.
    git_status(&w.join("src"), w);
    assert!(!exists(&marker), "the planted core.fsmonitor ran");
}

#[tokio::test]
async fn planted_protected_names_are_gone_and_what_existed_stays() {
    plant_and_check(true).await;
}

#[tokio::test]
async fn planted_protected_names_are_gone_without_a_pid_namespace() {
    plant_and_check(false).await;
}

/// A run that plants and then times out, or is killed by a signal, is swept all the same.
#[tokio::test]
async fn a_run_that_times_out_or_is_killed_is_swept_too() {
    for (pid_namespace, script, timeout, status) in [
        (true, "mkdir src/.git && sleep 30", Duration::from_millis(700), ExitStatus::TimedOut),
        (
            false,
            "mkdir src/.git && { sleep 30 & } && kill -KILL $$",
            Duration::from_secs(20),
            ExitStatus::Signaled(libc::SIGKILL),
        ),
    ] {
        let ws = workspace();
        let w = ws.path();
        let home = scratch();
        let q = home.path().join("q");
        let o = run(&sh(policy(w, &q, pid_namespace), w, script, &[], timeout)).await.unwrap();
        assert_eq!(o.status, status, "{}", o.stderr.to_text());
        assert_swept(&o, w, &q, &["src/.git"]);
    }
}

/// A process of the run that keeps planting after its first process has exited is killed
/// with the run, and the sweep comes after it is gone: the entry does not come back.
#[tokio::test]
async fn the_sweep_comes_after_every_process_of_the_run_is_gone() {
    let script = r#"
( while :; do mkdir src/.git 2>/dev/null; mkdir -p docs/x/.claude 2>/dev/null; done ) &
sleep 0.3
exit 0
"#;
    for pid_namespace in [true, false] {
        let ws = workspace();
        let w = ws.path();
        let home = scratch();
        let q = home.path().join("q");
        let spec = sh(policy(w, &q, pid_namespace), w, script, &[], Duration::from_secs(20));
        let o = run(&spec).await.unwrap();
        assert_eq!(o.status, ExitStatus::Exited(0), "{}", o.stderr.to_text());
        assert_swept(&o, w, &q, &["docs/x/.claude", "src/.git"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!exists(&w.join("src/.git")), "planted again after the sweep");
        assert!(!exists(&w.join("docs/x/.claude")), "planted again after the sweep");
    }
}

/// A run its caller drops before its end (an MCP cancellation) is killed, and what it
/// planted is taken away all the same, off the caller's path (nothing is reported: the
/// quarantine holds it).
#[tokio::test]
async fn a_run_dropped_before_its_end_is_swept_too() {
    for pid_namespace in [true, false] {
        let ws = workspace();
        let w = ws.path();
        let home = scratch();
        let q = home.path().join("q");
        let script = "mkdir src/.git && touch src/ready && sleep 30";
        let spec = sh(policy(w, &q, pid_namespace), w, script, &[], Duration::from_secs(60));
        let ready = w.join("src/ready");
        let running = run(&spec);
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while !ready.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        tokio::select! {
            r = running => panic!("the run ended by itself: {r:?}"),
            w = waited => w.expect("the run never planted"),
        }
        // The run's future is dropped here.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while exists(&w.join("src/.git")) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!exists(&w.join("src/.git")), "src/.git stayed after the run was dropped");
        assert!(exists(&q.join("1-.git")), "not in the quarantine");
    }
}

// ---------------------------------------------------------------------------------------
// simulated hosts
// ---------------------------------------------------------------------------------------

/// The hostsim binary the workspace builds (`cargo build -p skillbox-hostsim`), next to
/// this test binary's directory.
fn hostsim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("skillbox-hostsim");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p skillbox-hostsim`)",
        path.display()
    );
    path
}

/// Runs the helper test `name` of this binary under `profile`, and fails unless it ran and
/// passed there.
fn under(profile: &str, name: &str) {
    let out = Command::new(hostsim())
        .arg(profile)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(INNER, profile)
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} under {profile} failed:\n{text}");
    assert!(text.contains("1 passed"), "{name} did not run under {profile}:\n{text}");
}

/// Without user namespaces the run is held by its process group and the supervisor (and,
/// with no mount namespace for `file-metadata` and `process-visibility`, runs only with
/// weaker isolation asked for); without Landlock, by a mount namespace of its own. Either
/// way, planted names are gone.
#[test]
fn planted_protected_names_are_gone_on_simulated_hosts() {
    for profile in ["no-userns", "no-landlock"] {
        under(profile, "helper_plant_under_a_simulated_host");
    }
}

#[tokio::test]
#[ignore = "helper: run by planted_protected_names_are_gone_on_simulated_hosts"]
async fn helper_plant_under_a_simulated_host() {
    let Ok(profile) = std::env::var(INNER) else { return };
    let ws = workspace();
    let w = ws.path();
    let home = scratch();
    let q = home.path().join("q");
    let marker = home.path().join("fsmonitor-ran");
    let mut spec =
        sh(policy(w, &q, true), w, PLANT, &[&s(w), &s(&marker)], Duration::from_secs(20));
    if profile == "no-userns" {
        // No mount namespace keeps `file-metadata` or `process-visibility` here: the run is
        // refused, as the support matrix says, naming exactly those; the sweep needs neither,
        // so it is checked with weaker isolation asked for.
        let missing = hosts::expect(&spec).missing();
        assert_eq!(missing, [Guarantee::FileMetadata, Guarantee::ProcessVisibility]);
        hosts::assert_refused(&spec).await;
        spec.allow_weaker = true;
    }
    let o = run(&spec).await.expect("run");
    let fs_via = o.enforcement.line(skillbox_sandbox::Guarantee::Filesystem).unwrap().via_str();
    let kill_via = o.enforcement.line(skillbox_sandbox::Guarantee::TreeKill).unwrap().via_str();
    eprintln!("{profile}: filesystem via {fs_via}, tree-kill via {kill_via}");
    match profile.as_str() {
        "no-userns" => assert!(kill_via.contains("supervisor"), "{kill_via}"),
        "no-landlock" => assert!(fs_via.contains("mount-namespace"), "{fs_via}"),
        other => panic!("unexpected profile {other}"),
    }
    assert_eq!(o.status, ExitStatus::Exited(0), "{}", o.stderr.to_text());
    assert!(!o.stdout.to_text().contains("top-planted"));
    assert_swept(&o, w, &q, PLANTED);
    git_status(&w.join("src"), w);
    assert!(!exists(&marker), "the planted core.fsmonitor ran");
}
