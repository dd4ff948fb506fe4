//! Consent through the agent: a call denied for want of a trust level, asked of the person
//! through the client's elicitation interface (docs/mcp.md, "Consent").
//!
//! The official MCP Python SDK (tests/mcp/consent_client.py, with an elicitation callback
//! playing the person) over stdio and over Streamable HTTP, each on a 2026-07-28 session
//! (`InputRequiredResult`) and a handshake-era one (`elicitation/create`): `once` runs the
//! call and keeps nothing, `always` writes the trust grant `skillbox trust` writes and later
//! calls run without asking, `deny`/decline/cancel leave the denial, a change of the skill's
//! content while the person is asked refuses the run, tool arguments cannot answer, and a
//! client without the capability is never asked. This file then checks from the outside:
//! the files the runs wrote, `skillbox trust --list`, and `skillbox audit verify`.
//!
//! A second client no one here wrote, the MCP TypeScript SDK's (tests/mcp/ts_consent.mjs,
//! on Node 22), answers `elicitation/create` over HTTP the same way.
//!
//! If an SDK is missing its test fails and says how to install it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod support;
use support::{assert_all_ok, bin, node_dir, sdk_python, HttpServer};

/// A workspace whose skills write outside it, and skillbox's home.
struct World {
    _root: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
    home: PathBuf,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        let outside = root.path().join("outside");
        let home = root.path().join("home");
        for d in [&ws, &outside, &home] {
            fs::create_dir_all(d).unwrap();
        }
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o777)).unwrap();
        let dir = ws.join(".skillbox/skills");
        fs::create_dir_all(&dir).unwrap();
        let out = outside.to_str().unwrap();
        for era in ["modern", "legacy"] {
            for kind in ["once", "always", "deny", "pin", "pinalways", "nocap", "late"] {
                let name = format!("{kind}-{era}");
                let skill = json!({
                    "name": name, "description": "Write a file outside the workspace",
                    "type": "command", "command": "sh",
                    "args": ["-c", "echo ran > \"$1/$2.$3\"", "x", out, name, "{n}"],
                    "parameters": [{"name": "n", "type": "string", "required": true, "pattern": "[0-9]+"}],
                    "security": {"permissions": {"file_write": [out], "process_spawn": "limited"}},
                });
                fs::write(
                    dir.join(format!("{name}.json")),
                    serde_json::to_vec_pretty(&skill).unwrap(),
                )
                .unwrap();
            }
        }
        World { _root: root, ws, outside, home }
    }

    fn sb_home(&self) -> PathBuf {
        self.home.join("sb")
    }

    fn audit_log(&self) -> PathBuf {
        self.sb_home().join("logs/security_events.jsonl")
    }

    fn skillbox(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(["--workspace", self.ws.to_str().unwrap()])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("SKILLBOX_HOME", self.sb_home())
            .env("LANG", "C.UTF-8");
        c
    }

    /// Runs the client script with `args` after the transport's own.
    fn client(&self, transport_args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/consent_client.py");
        let trust = self.sb_home().join("trust.json");
        let mut child = Command::new(sdk_python())
            .arg(&script)
            .args(transport_args)
            .args([self.outside.to_str().unwrap(), self.audit_log().to_str().unwrap()])
            .arg(&trust)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("SKILLBOX_HOME", self.sb_home())
            .env("LANG", "C.UTF-8")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(240);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        child.wait_with_output().unwrap()
    }

    /// What the session left, checked from the outside.
    fn check_after(&self) {
        for era in ["modern", "legacy"] {
            for (file, ran) in [
                ("once-{}.1", true),
                ("once-{}.2", false),
                ("once-{}.3", false),
                ("always-{}.1", true),
                ("always-{}.2", true),
                ("deny-{}.1", false),
                ("deny-{}.2", false),
                ("deny-{}.3", false),
                ("pin-{}.1", false),
                ("pinalways-{}.1", false),
                ("nocap-{}.1", false),
                ("late-{}.1", false),
                ("late-{}.2", false),
            ] {
                let path = self.outside.join(file.replace("{}", era));
                assert_eq!(path.exists(), ran, "{}", path.display());
            }
        }
        let out = self.skillbox(&["trust", "--list", "--json"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listed = String::from_utf8_lossy(&out.stdout);
        for era in ["modern", "legacy"] {
            assert!(listed.contains(&format!("\"always-{era}\"")), "{listed}");
            for other in ["once", "deny", "pin", "pinalways", "nocap", "late"] {
                assert!(!listed.contains(&format!("\"{other}-{era}\"")), "{other}: {listed}");
            }
        }
        let out = self.skillbox(&["audit", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "the audit chain does not verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn consent_over_stdio_in_both_eras() {
    let w = World::new();
    let out = w.client(&["stdio", bin().as_str(), w.ws.to_str().unwrap()]);
    assert_all_ok(&out, "the consent session over stdio", "(its stderr is the client's)");
    w.check_after();
}

/// A running `skillbox mcp --http`, killed when dropped.
type Server = HttpServer;

impl Server {
    /// Starts it on the workspace of `w`, on port 0, polling for changes every 200 ms.
    fn start(w: &World) -> Server {
        HttpServer::spawn(w.skillbox(&["mcp", "--http", "127.0.0.1:0", "--poll-ms", "200"]))
    }
}

#[test]
fn consent_over_http_in_both_eras() {
    let w = World::new();
    let server = Server::start(&w);
    let token = w.sb_home().join("mcp-token");
    let out = w.client(&["http", &server.url, token.to_str().unwrap()]);
    assert_all_ok(&out, "the consent session", &server.stderr());
    w.check_after();
}

#[test]
fn consent_with_the_typescript_sdk_over_http() {
    let dir = node_dir();
    let w = World::new();
    let server = Server::start(&w);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/ts_consent.mjs");
    let sdk = dir.join("node_modules/@modelcontextprotocol/sdk");
    let token = w.sb_home().join("mcp-token");
    let out = Command::new(dir.join("node_modules/.bin/node"))
        .arg(&script)
        .args([sdk.to_str().unwrap(), &server.url, token.to_str().unwrap()])
        .arg(&w.outside)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    assert_all_ok(&out, "the consent session", &server.stderr());
    for (file, ran) in [
        ("once-legacy.1", true),
        ("always-legacy.1", true),
        ("always-legacy.2", true),
        ("deny-legacy.1", false),
        ("nocap-legacy.1", false),
    ] {
        assert_eq!(w.outside.join(file).exists(), ran, "{file}");
    }
    let out = w.skillbox(&["trust", "--list", "--json"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("\"always-legacy\"") && !listed.contains("\"once-legacy\""),
        "{listed}"
    );
    let out = w.skillbox(&["audit", "verify"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
