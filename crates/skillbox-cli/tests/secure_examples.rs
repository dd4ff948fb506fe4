//! The realistic example skills of `examples/workspace/.skillbox/skills` (a linter, a
//! formatter, an HTTPS fetcher, a prompt with context files), run by the real `skillbox`
//! binary on a copy of the workspace, with their effects on the files checked.
//!
//! Nothing here needs root or the internet: the fetcher is checked for being refused, for
//! what it declares, and for what its grant lets it reach (TCP 443 on loopback, where
//! nothing listens), never for a real download.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

mod support;
use support::bin;

struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("skillbox-examples-").tempdir().unwrap();
        fs::create_dir(dir.path().join("ws")).unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
        copy_tree(&src, &dir.path().join("ws"));
        World { dir }
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap().join("ws")
    }

    /// `skillbox --json ARGS` in an empty environment of the test's own; the JSON object
    /// printed and the exit code.
    fn run(&self, args: &[&str]) -> (i32, Value) {
        let out = Command::new(bin())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.dir.path().join("home"))
            .env("SKILLBOX_HOME", self.dir.path().join("sb"))
            .env("SKILLBOX_RETRY_BASE_MS", "10")
            .current_dir(self.ws())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("not one JSON object ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code().unwrap_or(-1), v)
    }
}

fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file and directory under `root`, with its contents (directories: empty).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
                out.insert(rel, Vec::new());
            } else if meta.file_type().is_symlink() {
                out.insert(rel, fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes());
            } else {
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The paths added, removed or changed between two snapshots.
fn changes(a: &BTreeMap<PathBuf, Vec<u8>>, b: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> =
        a.iter().filter(|(k, v)| b.get(*k) != Some(v)).map(|(k, _)| k.clone()).collect();
    out.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    out.sort();
    out
}

#[test]
fn lint_reports_what_it_finds_and_changes_nothing() {
    let w = World::new();
    let before = snapshot(&w.ws());

    let (code, clean) = w.run(&["run", "lint", "--json"]);
    assert_eq!((code, clean["status"].as_str()), (0, Some("success")), "{clean}");
    assert_eq!(clean["stdout"], "", "{clean}");
    assert!(clean["stderr"].as_str().unwrap().contains("0 problem(s)"), "{clean}");

    let (code, strict) = w.run(&["run", "lint", "--json", "--params", r#"{"max_line": 72}"#]);
    assert_eq!((code, strict["status"].as_str()), (1, Some("failed")), "{strict}");
    assert_eq!(
        strict["stdout"], "src/app.py:12: E501 line too long (74 > 72 characters)\n",
        "{strict}"
    );
    assert!(strict["confinement"].is_null(), "a clean failure, not a refusal: {strict}");

    // A file with problems of every kind the linter knows.
    fs::write(w.ws().join("src/messy.py"), "import os\nimport sys\n\nprint(sys.argv)  \n").unwrap();
    let (_, messy) = w.run(&["run", "lint", "--json"]);
    assert_eq!(
        messy["stdout"],
        "src/messy.py:1: F401 'os' imported but unused\nsrc/messy.py:4: W291 trailing whitespace\n",
        "{messy}"
    );
    fs::remove_file(w.ws().join("src/messy.py")).unwrap();

    assert_eq!(changes(&before, &snapshot(&w.ws())), Vec::<PathBuf>::new());

    // What it was granted: reads of src and scripts only, no network, no new process.
    let g = &strict["grant"];
    assert_eq!(g["file_read"], serde_json::json!([w.ws().join("src"), w.ws().join("scripts")]));
    assert_eq!(g["file_write"], serde_json::json!([]));
    assert_eq!((g["network"].as_str(), g["process_spawn"].as_str()), (Some("none"), Some("none")));
    assert_eq!(g["limits"]["max_memory_mb"], 128);
}

#[test]
fn format_json_writes_its_output_and_nothing_else() {
    let w = World::new();
    let before = snapshot(&w.ws());
    let (code, r) = w.run(&["run", "format-json", "--json"]);
    assert_eq!((code, r["status"].as_str()), (0, Some("success")), "{r}");

    let changed = changes(&before, &snapshot(&w.ws()));
    assert_eq!(
        changed,
        ["out/formatted", "out/formatted/project.json", "out/formatted/settings.json"]
            .map(PathBuf::from)
            .to_vec(),
        "only its output may change"
    );
    for name in ["settings.json", "project.json"] {
        let source: Value =
            serde_json::from_slice(&fs::read(w.ws().join("data").join(name)).unwrap()).unwrap();
        let formatted = fs::read_to_string(w.ws().join("out/formatted").join(name)).unwrap();
        let mut expected = serde_json::to_string_pretty(&source).unwrap();
        expected.push('\n');
        // serde_json's map is sorted by key, like `sort_keys=True`.
        assert_eq!(formatted, expected, "{name}");
    }
    assert!(fs::read_to_string(w.ws().join("out/formatted/settings.json"))
        .unwrap()
        .starts_with("{\n  \"debug\": false,\n"));
}

#[test]
fn format_json_pointed_at_its_sources_is_stopped_by_the_kernel() {
    let w = World::new();
    // The same skill, edited to write over its own sources (a bug, or a hostile edit),
    // without declaring it: the grant still says `out` only.
    let path = w.ws().join(".skillbox/skills/format-json.json");
    let mut def: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    def["args"] = serde_json::json!(["-I", "scripts/format_json.py", "data", "data"]);
    fs::write(&path, def.to_string()).unwrap();
    let before = snapshot(&w.ws());

    let (code, r) = w.run(&["run", "format-json", "--json"]);
    assert_eq!((code, r["status"].as_str()), (1, Some("failed")), "{r}");
    // What the run may only read is a read-only mount in its namespace.
    assert!(r["stderr"].as_str().unwrap().contains("Read-only file system"), "{r}");
    let hint = r["confinement"].as_str().unwrap_or_default();
    assert!(hint.contains("file access outside the grant"), "{r}");
    assert_eq!(changes(&before, &snapshot(&w.ws())), Vec::<PathBuf>::new());
}

#[test]
fn https_get_is_refused_untrusted_and_shows_what_it_declares() {
    let w = World::new();
    let (code, r) = w.run(&[
        "run",
        "https-get",
        "--json",
        "--trust",
        "untrusted",
        "--params",
        r#"{"url": "https://example.com/"}"#,
    ]);
    assert_eq!((code, r["status"].as_str()), (3, Some("denied")), "{r}");
    assert_eq!(r["attempts"], 0, "nothing ran: {r}");
    assert_eq!(r["denial"]["permission"], "network", "{r}");
    assert_eq!(r["denial"]["asked"], "https-only", "{r}");
    assert_eq!(r["denial"]["fix"], "user-verified", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("(security.permissions.network_access)"), "{msg}");
    assert!(msg.contains("skillbox trust https-get --level user-verified"), "{msg}");

    let (code, info) = w.run(&["info", "https-get", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(info["declared"]["permissions"]["network"], "https-only", "{info}");
    assert_eq!(info["declared"]["permissions"]["file_read"], serde_json::json!([]), "{info}");
    assert_eq!(info["grant"]["network"], "https-only", "{info}");
    let net = info["enforcement"].as_array().unwrap().iter().find(|e| e["mechanism"] == "network");
    let net = net.expect("a network entry");
    assert_eq!(net["state"], "enforced", "{net}");
    // Its own network namespace, whose one way out is the egress proxy.
    let detail = net["detail"].as_str().unwrap();
    assert!(detail.contains("network namespace") && detail.contains("127.0.0.1:3128"), "{net}");

    // A plain-HTTP URL never reaches the program.
    let (code, r) =
        w.run(&["run", "https-get", "--json", "--params", r#"{"url": "http://example.com/"}"#]);
    assert_eq!((code, r["status"].as_str()), (4, Some("invalid")), "{r}");
    assert_eq!(r["problems"][0]["parameter"], "url", "{r}");
}

#[test]
fn https_get_at_user_verified_goes_through_the_egress_proxy() {
    let w = World::new();
    // `https-get` declares no list: any public host on 443, never an IP literal, never this
    // host. urllib sends the request to the proxy (HTTPS_PROXY), which refuses it with a 403
    // and records it; a listener on this host's 443 (root only) gets nothing.
    let local = std::net::TcpListener::bind("127.0.0.1:443").ok();
    if let Some(l) = &local {
        l.set_nonblocking(true).unwrap();
    } else {
        eprintln!("!!! not root: 127.0.0.1:443 cannot be bound, so its listener is not checked");
    }
    let (code, r) =
        w.run(&["run", "https-get", "--json", "--params", r#"{"url": "https://127.0.0.1/"}"#]);
    let stderr = r["stderr"].as_str().unwrap_or_default();
    assert_eq!((code, r["status"].as_str()), (1, Some("failed")), "{r}");
    assert!(stderr.contains("403"), "urllib reports the proxy's refusal: {r}");
    let net = r["network"].as_array().unwrap_or_else(|| panic!("no network list: {r}"));
    assert!(!net.is_empty(), "{r}");
    for c in net {
        assert_eq!((c["host"].as_str(), c["port"].as_u64()), (Some("127.0.0.1"), Some(443)), "{c}");
        assert_eq!(c["allowed"], false, "{c}");
        assert_eq!(c["address"], Value::Null, "nothing was dialed: {c}");
    }
    if let Some(l) = local {
        assert!(l.accept().is_err(), "this host's 443 was reached: {r}");
    }
}

#[test]
fn write_tests_attaches_the_sources_and_the_readme_and_nothing_else() {
    let w = World::new();
    // Planted: a link to a file outside the workspace, a file over the size limit, a test
    // file the skill excludes, and a file outside the granted paths.
    let secret = w.dir.path().join("secret.txt");
    fs::write(&secret, "SECRET-TOKEN-123").unwrap();
    std::os::unix::fs::symlink(&secret, w.ws().join("src/leak.py")).unwrap();
    fs::write(w.ws().join("src/big.py"), format!("# {}\n", "x".repeat(40 * 1024))).unwrap();
    fs::write(w.ws().join("src/test_app.py"), "def test_x():\n    pass\n").unwrap();

    let (code, r) =
        w.run(&["run", "write-tests", "--json", "--params", r#"{"focus": "edge cases"}"#]);
    assert_eq!((code, r["status"].as_str()), (0, Some("success")), "{r}");
    let text = r["stdout"].as_str().unwrap();
    assert!(
        text.starts_with("Write pytest unit tests for the Python code below. Cover edge cases.")
    );
    let attached: Vec<&str> =
        text.lines().filter_map(|l| l.strip_prefix("--- ")?.strip_suffix(" ---")).collect();
    assert_eq!(attached, ["README.md", "src/app.py", "src/util.py"], "{text}");
    assert!(text.contains(&fs::read_to_string(w.ws().join("src/util.py")).unwrap()));
    assert!(!text.contains("SECRET-TOKEN-123"), "{text}");
    assert!(text.trim_end().ends_with("End of files."), "{text}");
}
