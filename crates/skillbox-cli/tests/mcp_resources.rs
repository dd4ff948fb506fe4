//! Agent Skills' documents as MCP resources (`skill://NAME/PATH`), read by two independent
//! clients over both transports.
//!
//! The skill `docs-skill` references, in its SKILL.md, a guide, a JSON file and a PNG (all
//! served), and hostile entries: `references/leak.md`, a symlink to a secret outside the
//! skill; `references/via/`, a symlink to the directory holding it; `references/big.md`, one
//! byte over the 1 MiB cap. `unreferenced.md` exists but SKILL.md does not name it. The
//! clients (tests/mcp/resources_client.py, the official Python SDK; tests/mcp/ts_resources.mjs,
//! the TypeScript SDK) check the list, the reads, the one-line refusals (and `..`,
//! percent-encoded, absolute, NUL and overlong URIs), that the secret appears in no
//! response, resources/list_changed after a referenced file is added, and (Python SDK, both
//! eras) resources/updated for a subscribed file whose content changed, and none after
//! unsubscribing. Here, from the
//! outside: the refusals are in the audit log, the secret is not, and the chain verifies.
//!
//! A client that is not installed makes its test fail and say how to install it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::{assert_all_ok, bin, node_dir, sdk_python, HttpServer};

const PNG_HEADER: &[u8] = b"\x89PNG\r\n\x1a\n";

/// A workspace holding `docs-skill`, a secret outside it, and skillbox's home.
struct World {
    _root: tempfile::TempDir,
    ws: PathBuf,
    home: PathBuf,
    skill: PathBuf,
    secret: String,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        let home = root.path().join("home");
        let outside = root.path().join("outside");
        let skill = ws.join(".skillbox/skills/docs-skill");
        for d in [&home, &outside, &skill.join("references/deep"), &skill.join("assets")] {
            fs::create_dir_all(d).unwrap();
        }
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let secret = format!("TOPSECRET-{}-{nanos}", std::process::id());
        fs::write(outside.join("secret.txt"), &secret).unwrap();
        fs::write(
            skill.join("SKILL.md"),
            "---\nname: docs-skill\ndescription: A skill with documents\n---\n# Docs\n\n\
             Read [the guide](references/guide.md) and `references/data.json`.\n\
             ![logo](./assets/logo.png)\n\n\
             Hostile: [leak](references/leak.md), [via](references/via/secret.txt),\n\
             [up](../../../../outside/secret.txt), [big](references/big.md).\n\
             Added later: [later](references/later.md), [deeper](references/deep/later2.md).\n\
             [web](https://example.com/guide.md)\n",
        )
        .unwrap();
        fs::write(skill.join("references/guide.md"), "GUIDE-CONTENT\n").unwrap();
        fs::write(skill.join("references/data.json"), "{\"k\": 1}\n").unwrap();
        let mut png = PNG_HEADER.to_vec();
        png.extend(0..=255u8);
        fs::write(skill.join("assets/logo.png"), png).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), skill.join("references/leak.md"))
            .unwrap();
        std::os::unix::fs::symlink(&outside, skill.join("references/via")).unwrap();
        fs::write(skill.join("references/big.md"), vec![b'x'; 1024 * 1024 + 1]).unwrap();
        fs::write(skill.join("unreferenced.md"), "UNREFERENCED\n").unwrap();
        World { _root: root, ws, home, skill, secret }
    }

    fn audit_log(&self) -> PathBuf {
        self.home.join("sb/logs/security_events.jsonl")
    }

    fn env(&self, c: &mut Command) {
        c.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("SKILLBOX_HOME", self.home.join("sb"))
            .env("LANG", "C.UTF-8");
    }

    /// The refusals are in the audit log, the secret is not, and the chain verifies.
    fn check_audit(&self) {
        let log = fs::read_to_string(self.audit_log()).unwrap_or_default();
        let refusals: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("InputValidationFailed") && l.contains("resources/read"))
            .collect();
        assert!(
            refusals.iter().any(|l| l.contains("symlink"))
                && refusals.iter().any(|l| l.contains("larger than")),
            "refused reads are recorded:\n{log}"
        );
        assert!(!log.contains(&self.secret), "the secret reached the audit log");
        let verify = Command::new(bin())
            .args(["audit", "verify", "--log"])
            .arg(self.audit_log())
            .output()
            .unwrap();
        assert!(verify.status.success(), "{verify:?}");
    }
}

/// A running `skillbox mcp --http`, killed when dropped.
type Server = HttpServer;

impl Server {
    /// Starts it on the workspace of `w`, on port 0, polling for changes every 200 ms.
    fn start(w: &World) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(["--workspace", w.ws.to_str().unwrap(), "mcp", "--poll-ms", "200"])
            .args(["--http", "127.0.0.1:0"]);
        w.env(&mut cmd);
        HttpServer::spawn(cmd)
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp").join(name)
}

#[test]
fn python_sdk_reads_skill_documents_over_stdio() {
    let python = sdk_python();
    let w = World::new();
    let mut cmd = Command::new(python);
    cmd.arg(script("resources_client.py")).args(["stdio", &bin(), w.ws.to_str().unwrap()]);
    cmd.args([w.skill.to_str().unwrap(), &w.secret]);
    w.env(&mut cmd);
    let out = cmd.output().unwrap();
    assert_all_ok(&out, "the Python SDK session over stdio", "");
    w.check_audit();
}

#[test]
fn python_sdk_reads_skill_documents_over_http() {
    let python = sdk_python();
    let w = World::new();
    let server = Server::start(&w);
    let token_file = w.home.join("sb/mcp-token");
    let mut cmd = Command::new(python);
    cmd.arg(script("resources_client.py")).args(["http", &server.url]);
    cmd.args([token_file.to_str().unwrap(), w.skill.to_str().unwrap(), &w.secret]);
    w.env(&mut cmd);
    let out = cmd.output().unwrap();
    assert_all_ok(&out, "the Python SDK session over HTTP", &server.stderr());
    assert!(!server.stderr().contains(&w.secret), "the secret reached the server's log");
    drop(server);
    w.check_audit();
}

#[test]
fn typescript_sdk_reads_skill_documents_over_http() {
    let dir = node_dir();
    let w = World::new();
    let server = Server::start(&w);
    let token_file = w.home.join("sb/mcp-token");
    let sdk = dir.join("node_modules/@modelcontextprotocol/sdk");
    let out = Command::new(dir.join("node_modules/.bin/node"))
        .arg(script("ts_resources.mjs"))
        .args([sdk.to_str().unwrap(), &server.url, token_file.to_str().unwrap(), &w.secret])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    assert_all_ok(&out, "the TypeScript SDK session", &server.stderr());
}
