//! The `skillbox` binary on hosts that offer less than this one (issue 20), simulated by
//! `skillbox-hostsim` (crates/skillbox-hostsim, built beside this test binary): a container
//! whose seccomp profile refuses user namespaces (`no-userns`), and Ubuntu 24.04 for a normal
//! user (`ubuntu-24.04`: no user namespaces, Landlock ABI 4).
//!
//! On each, `skillbox doctor` names the host it recognises, the missing mechanisms and the
//! fix, and says whether a run would be refused. `skillbox run` of the example skill
//! `format-json` (examples/workspace, copied) either runs, with the mechanisms `--json` names
//! and its formatted files written, or is refused with exit code 7 and one line naming each
//! guarantee the host cannot keep and a fix, having written nothing. With
//! `--allow-weaker-isolation` the refused run goes ahead, warns what it lacks, and the audit
//! log holds one `IsolationWeakened` event for it, naming the same guarantees. A skill of
//! the test's own that writes one granted file and tries two it may not shows that files stay
//! confined on the weaker host.
//!
//! What to expect is worked out here from the host's facts (the profile, and the Landlock ABI
//! the kernel answers), not asked of skillbox: the run's `ipc` guarantee needs Landlock's
//! scopes (ABI 6) or a PID namespace (user namespaces); `tree-kill` a PID namespace, or the
//! supervisor where `ipc` holds; `file-metadata` and `process-visibility` a mount namespace
//! in the run's user namespace, which neither profile has, so that every skill's run (its
//! policy asks for a PID namespace) is refused on both unless weaker isolation is asked for.
//!
//! Every command gets `HOME`, `SKILLBOX_HOME` and `XDG_CONFIG_HOME` in the test's temporary
//! directory and an otherwise empty environment. The tests pass as root and as `nobody`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

mod support;
use support::bin;

/// `skillbox-hostsim`, which `cargo build -p skillbox-hostsim` (and scripts/test.sh) puts in
/// the directory above this test binary's.
fn hostsim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("skillbox-hostsim");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p skillbox-hostsim`; scripts/test.sh does)",
        path.display()
    );
    path
}

/// The Landlock ABI this kernel answers (0: none).
fn kernel_landlock_abi() -> u32 {
    // SAFETY: with a NULL attribute, size 0 and LANDLOCK_CREATE_RULESET_VERSION (1), the call
    // reads nothing and only returns the ABI version.
    let r = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u8>(), 0usize, 1u32)
    };
    r.max(0) as u32
}

/// A simulated host, and what it takes away.
struct Host {
    /// The profile's name for skillbox-hostsim.
    profile: &'static str,
    /// The Landlock ABI the profile caps at, if it does.
    cap: Option<u32>,
}

const NO_USERNS: Host = Host { profile: "no-userns", cap: None };
const UBUNTU_24_04: Host = Host { profile: "ubuntu-24.04", cap: Some(4) };

impl Host {
    /// The Landlock ABI a run gets here.
    fn abi(&self) -> u32 {
        let real = kernel_landlock_abi();
        self.cap.map_or(real, |c| c.min(real))
    }

    /// The guarantees the writer skill's run lacks here, in the report's order. Neither
    /// profile has user namespaces, so no run has a PID namespace or a mount namespace:
    /// `file-metadata` and `process-visibility` are never kept, `ipc` holds only by
    /// Landlock's scopes, and `tree-kill` by the supervisor, which needs `ipc`.
    fn missing(&self) -> Vec<&'static str> {
        if self.abi() >= 6 {
            vec!["file-metadata", "process-visibility"]
        } else {
            vec!["file-metadata", "ipc", "process-visibility", "tree-kill"]
        }
    }
}

/// A private world for one test: `home/`, `sb/` (`SKILLBOX_HOME`), `xdg/`, and the
/// workspace `ws/`: a copy of examples/workspace, with the writer skill added.
struct World {
    dir: tempfile::TempDir,
}

/// The writer skill: writes `out/ok.txt` (granted), then tries `data/forbidden.txt`
/// (read-only grant) and `../outside.txt` (outside the workspace); prints what happened to
/// each.
const WRITER: &str = "
for p in ['out/ok.txt', 'data/forbidden.txt', '../outside.txt']:
    try:
        open(p, 'w').write('written by the skill')
        print(p + ' written')
    except OSError as e:
        print(p + ' denied ' + str(e.errno))
";

/// The example skill the run tests use, and the files it writes.
const EXAMPLE: &str = "format-json";
const FORMATTED: [&str; 2] = ["project.json", "settings.json"];

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

impl World {
    fn new() -> Self {
        let dir =
            tempfile::Builder::new().prefix("skillbox-hosts-test-").tempdir_in("/tmp").unwrap();
        let w = World { dir };
        for sub in ["home", "xdg"] {
            fs::create_dir_all(w.root().join(sub)).unwrap();
        }
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
        copy_tree(&examples, &w.ws());
        let skill = json!({
            "name": "writer",
            "description": "Writes one granted file and tries two it may not write",
            "version": "1.0.0",
            "type": "command",
            "command": "python3",
            "args": ["-I", "-c", WRITER],
            "timeout": 20,
            "security": {
                "permissions": {
                    "file_read": ["data", "out"],
                    "file_write": ["out"],
                    "network_access": false,
                    "process_spawn": "none"
                },
                "resource_limits": {"max_memory_mb": 128}
            }
        });
        fs::write(w.ws().join(".q-skills/writer.json"), skill.to_string()).unwrap();
        w
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }
    fn ws(&self) -> PathBuf {
        self.root().join("ws")
    }

    /// `skillbox ARGS` under skillbox-hostsim `host`, in the workspace: exit code, stdout,
    /// stderr.
    fn skillbox(&self, host: &Host, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(hostsim())
            .arg(host.profile)
            .arg("--")
            .arg(bin())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.root().join("home"))
            .env("SKILLBOX_HOME", self.root().join("sb"))
            .env("XDG_CONFIG_HOME", self.root().join("xdg"))
            .current_dir(self.ws())
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("panicked"), "skillbox panicked:\n{stderr}");
        (out.status.code(), text(&out.stdout), stderr)
    }

    /// The events of the audit log, in order.
    fn audit_events(&self) -> Vec<Value> {
        let log = self.root().join("sb/logs/security_events.jsonl");
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Whether `path` (relative to the workspace) exists.
    fn exists(&self, path: &str) -> bool {
        self.ws().join(path).exists()
    }

    /// The example's sources, to check that nothing changes them.
    fn sources(&self) -> Vec<Vec<u8>> {
        FORMATTED.iter().map(|f| fs::read(self.ws().join("data").join(f)).unwrap()).collect()
    }
}

/// The enforcement line of `guarantee` in `run --json` output: `(state, via)`.
fn line(v: &Value, guarantee: &str) -> (String, String) {
    let l = v["enforcement"]
        .as_array()
        .unwrap_or_else(|| panic!("no enforcement report: {v}"))
        .iter()
        .find(|l| l["mechanism"] == guarantee)
        .unwrap_or_else(|| panic!("no {guarantee} line: {v}"));
    (l["state"].as_str().unwrap().to_string(), l["via"].as_str().unwrap().to_string())
}

/// The guarantees a run's report says are not enforced.
fn not_enforced(v: &Value) -> Vec<String> {
    v["enforcement"]
        .as_array()
        .unwrap_or_else(|| panic!("no enforcement report: {v}"))
        .iter()
        .filter(|l| l["state"] == "not-enforced")
        .map(|l| l["mechanism"].as_str().unwrap().to_string())
        .collect()
}

/// Checks the effects of a run of the example that went ahead: each data file formatted
/// into `out/formatted/` (the same JSON, sorted keys and two-space indentation), the sources
/// as they were.
fn assert_formatted(w: &World, sources: &[Vec<u8>]) {
    assert_eq!(&w.sources(), sources, "the example changed its sources");
    for (f, src) in FORMATTED.iter().zip(sources) {
        let out = w.ws().join("out/formatted").join(f);
        let text = fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("{}: the example did not write it: {e}", out.display()));
        let want: Value = serde_json::from_slice(src).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), want, "{f}: {text}");
        assert!(text.starts_with("{\n  \"") && text.ends_with("}\n"), "{f} not formatted: {text}");
    }
}

/// Whether the human form's line (`prefix` + `message`) holds the JSON form's message.
fn stderr_line_holds(prefix: &str, message: &str, json_message: &str) -> bool {
    format!("{prefix}{message}").contains(json_message)
}

/// Runs the writer (with `extra` arguments) and checks its effects: the granted file is
/// written, the two others are not, and the skill saw them denied.
fn assert_writer_confined(w: &World, host: &Host, extra: &[&str]) {
    let mut args = vec!["run", "writer", "--json"];
    args.extend_from_slice(extra);
    let (code, stdout, stderr) = w.skillbox(host, &args);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(code, Some(0), "{v}\n{stderr}");
    let abi = format!("landlock-abi-{}", host.abi());
    assert_eq!(line(&v, "filesystem"), ("enforced".into(), abi), "{v}");
    let out = v["stdout"].as_str().unwrap();
    assert!(out.contains("out/ok.txt written"), "control: the granted write: {out}");
    assert_eq!(fs::read_to_string(w.ws().join("out/ok.txt")).unwrap(), "written by the skill");
    for p in ["data/forbidden.txt", "../outside.txt"] {
        assert!(out.contains(&format!("{p} denied ")), "{p}: {out}");
        assert!(!w.exists(p), "{p} was written");
    }
}

/// `doctor` names the host it recognises, each mechanism the profile takes away with the
/// fix, and, where a run would be refused, that it is and why.
fn doctor_names(host: &Host) {
    let w = World::new();
    let missing = host.missing();
    // doctor exits 1 where a run would be refused (docs/getting-started.md).
    let ready = if missing.is_empty() { 0 } else { 1 };
    let (code, stdout, stderr) = w.skillbox(host, &["doctor", "--json"]);
    assert_eq!(code, Some(ready), "{stdout}\n{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v["profile"].as_str().is_some_and(|p| !p.is_empty()), "the host's profile: {v}");
    let simulated = host.cap.map(|c| format!("SKILLBOX_TEST_LANDLOCK_ABI={c}"));
    assert_eq!(v["simulated_host"].as_str().map(str::to_string), simulated, "{v}");
    let findings: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["fix"].as_str().is_some_and(|s| !s.is_empty()), "a finding's fix: {f}");
            f["mechanism"].as_str().unwrap()
        })
        .collect();
    assert!(findings.contains(&"user-namespaces"), "{findings:?}");
    let userns = v["mechanisms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "user-namespaces")
        .unwrap();
    assert_eq!(userns["available"], false, "{userns}");
    assert_eq!(findings.contains(&"landlock"), host.abi() < 6, "ABI {}: {v}", host.abi());

    // The human form says the same: the mechanism absent, its finding with a fix, that the
    // host is simulated where skillbox can see it, and each trust level refused naming the
    // missing guarantees, or kept.
    let (code, text, _) = w.skillbox(host, &["doctor"]);
    assert_eq!(code, Some(ready));
    assert!(text.contains("absent  user-namespaces"), "{text}");
    let finding = text
        .split("\n\n")
        .find(|b| b.starts_with("user-namespaces here: "))
        .unwrap_or_else(|| panic!("no user-namespaces finding: {text}"));
    assert!(finding.contains("\n  fix:   ") && finding.contains("user namespaces"), "{finding}");
    assert_eq!(text.contains("SIMULATED HOST"), host.cap.is_some(), "{text}");
    if host.abi() < 6 {
        let ll = text.split("\n\n").find(|b| b.starts_with("landlock here: ABI ")).unwrap();
        assert!(ll.contains(&format!("ABI {}, capped", host.abi())), "{ll}");
        assert!(ll.contains("\n  fix:   boot Linux 6.12"), "{ll}");
    }
    for level in ["untrusted", "user-verified", "system-trusted"] {
        let block = text
            .split("\n\n")
            .find(|b| b.starts_with(&format!("{level}:\n")))
            .unwrap_or_else(|| panic!("no {level} block: {text}"));
        let refused = block.contains("REFUSED: refusing to run: ");
        assert_eq!(refused, !missing.is_empty(), "{block}");
        for g in &missing {
            assert!(block.contains(&format!("; {g}: ")) || block.contains(&format!(": {g}: ")));
        }
    }
}

/// `run` of the example: refused naming what is missing (exit code 7, one line, nothing
/// written); with `--allow-weaker-isolation` it runs, with the mechanisms named for what the
/// host keeps, warns what it lacks, writes its files, and the audit log records that.
fn run_or_refuse(host: &Host) {
    let w = World::new();
    let missing = host.missing();
    let sources = w.sources();
    // Without user namespaces no run has a mount namespace: every skill's run lacks
    // `file-metadata` and `process-visibility` there.
    assert!(!missing.is_empty(), "no host without user namespaces keeps file-metadata");

    // Refused: exit code 7, one line on stderr naming each missing guarantee and a fix,
    // nothing on stdout, and nothing ran.
    let (code, stdout, stderr) = w.skillbox(host, &["run", EXAMPLE]);
    assert_eq!(code, Some(7), "{stdout}\n{stderr}");
    assert_eq!(stdout, "", "a refused run printed: {stdout}");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr}");
    let prefix = format!("skillbox: {EXAMPLE}: error at user-verified: refusing to run: ");
    let message = stderr.strip_prefix(&prefix).unwrap_or_else(|| panic!("{stderr}"));
    for g in &missing {
        assert!(message.contains(&format!("{g}: ")), "{g} not named: {message}");
    }
    assert!(message.contains(" Fix: "), "no fix: {message}");
    assert!(message.contains("opt into weaker isolation for this run"), "{message}");
    assert!(message.contains("[--allow-weaker-isolation runs it anyway]"), "{message}");
    assert!(!w.exists("out/formatted"), "the refused run ran");
    // The same refusal as JSON.
    let (code, stdout, stderr) = w.skillbox(host, &["run", EXAMPLE, "--json"]);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(code, Some(7), "{v}\n{stderr}");
    assert_eq!(v["status"], "error", "{v}");
    let json_message = v["message"].as_str().unwrap();
    assert!(json_message.starts_with("refusing to run: "), "{json_message}");
    assert!(stderr_line_holds(&prefix, message, json_message), "{json_message}\n{message}");
    assert!(v["enforcement"].is_null(), "{v}");
    assert!(!w.exists("out/formatted"), "the refused run ran");
    let refused_events = w.audit_events();
    assert!(!refused_events.is_empty(), "the refusals were not logged");
    assert!(refused_events.iter().all(|e| e["event_type"] != "IsolationWeakened"));

    // Opted into weaker isolation: it runs, says what it lacks, writes its files.
    let (code, stdout, stderr) =
        w.skillbox(host, &["run", EXAMPLE, "--json", "--allow-weaker-isolation"]);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(code, Some(0), "{v}\n{stderr}");
    assert_eq!(v["status"], "success", "{v}");
    for g in &missing {
        assert_eq!(line(&v, g), ("not-enforced".into(), "none".into()), "{g}: {v}");
    }
    let abi = format!("landlock-abi-{}", host.abi());
    assert_eq!(line(&v, "filesystem"), ("enforced".into(), abi.clone()), "{v}");
    if host.abi() >= 6 {
        assert_eq!(line(&v, "ipc"), ("enforced".into(), format!("{abi}+seccomp")), "{v}");
        // No PID namespace: the supervisor ends the run if skillbox dies, and the group
        // holds every process (seccomp denies setsid and setpgid).
        assert_eq!(line(&v, "tree-kill"), ("enforced".into(), "supervisor+seccomp".into()));
    }
    assert_eq!(line(&v, "process-group"), ("enforced".into(), "session+seccomp".into()));
    assert_formatted(&w, &sources);
    let report_missing = not_enforced(&v);
    let noted = format!("audit: recorded IsolationWeakened (High risk) for skill `{EXAMPLE}`");
    assert!(stderr.contains(&noted), "{stderr}");
    // Every line the report says is not enforced: the missing guarantees, and a declaration
    // where this user can make no cgroup (the CPU share, as nobody).
    assert!(missing.iter().all(|g| report_missing.iter().any(|r| r == g)), "{report_missing:?}");
    assert!(
        report_missing.iter().all(|g| missing.contains(&g.as_str()) || g == "cpu-share"),
        "{report_missing:?}"
    );
    // The audit log: one IsolationWeakened event, for this run, naming what was missing.
    let events = w.audit_events();
    let weakened: Vec<&Value> =
        events.iter().filter(|e| e["event_type"] == "IsolationWeakened").collect();
    assert_eq!(weakened.len(), 1, "{events:?}");
    let e = weakened[0];
    assert_eq!(e["skill_name"], EXAMPLE, "{e}");
    assert_eq!(e["execution_id"], v["execution_id"], "{e}");
    assert_eq!(e["risk_level"], "High", "{e}");
    assert_eq!(e["action_taken"], "Allowed", "{e}");
    assert_eq!(e["details"]["not_enforced"], json!(report_missing), "{e}");
    let simulated = host.cap.map(|c| format!("SKILLBOX_TEST_LANDLOCK_ABI={c}"));
    assert_eq!(e["details"]["simulated_host"].as_str().map(str::to_string), simulated, "{e}");
    // The human form warns, in one line, and records the event again.
    let (code, _, stderr) = w.skillbox(host, &["run", EXAMPLE, "--allow-weaker-isolation"]);
    assert_eq!(code, Some(0), "{stderr}");
    let warning =
        format!("skillbox: warning: not enforced for this run: {}", report_missing.join(", "));
    assert_eq!(stderr.lines().filter(|l| l.starts_with(&warning)).count(), 1, "{stderr}");
    let events = w.audit_events();
    assert_eq!(events.iter().filter(|e| e["event_type"] == "IsolationWeakened").count(), 2);
    // The log still verifies.
    let (code, _, stderr) = w.skillbox(host, &["audit", "verify"]);
    assert_eq!(code, Some(0), "audit verify: {stderr}");
    // And files stay confined by Landlock on this host.
    assert_writer_confined(&w, host, &["--allow-weaker-isolation"]);
}

#[test]
fn doctor_names_a_host_without_user_namespaces() {
    doctor_names(&NO_USERNS);
}

#[test]
fn doctor_names_ubuntu_24_04() {
    assert!(!UBUNTU_24_04.missing().is_empty(), "Landlock ABI 4 has no scopes");
    doctor_names(&UBUNTU_24_04);
}

#[test]
fn a_run_without_user_namespaces_is_refused_unless_weaker_isolation_is_asked_for() {
    run_or_refuse(&NO_USERNS);
}

#[test]
fn a_run_on_ubuntu_24_04_is_refused_unless_weaker_isolation_is_asked_for() {
    assert!(!UBUNTU_24_04.missing().is_empty(), "Landlock ABI 4 has no scopes");
    run_or_refuse(&UBUNTU_24_04);
}
