//! `skillbox mcp --http` driven over real sockets by raw requests and by two independent
//! clients.
//!
//! * `the_gate_refuses_and_the_server_survives_garbage`: no token, a wrong token, a hostile
//!   Origin or Host, other paths and garbage bodies get 4xx, and after each the server still
//!   answers an `initialize`; the token is never printed and its file is mode 0600.
//! * `official_python_sdk_over_http_in_both_eras`: the official MCP Python SDK's Streamable
//!   HTTP client (tests/mcp/http_client.py) on a 2026-07-28 session and a handshake-era one.
//! * `typescript_sdk_over_http` and `typescript_sdk_over_stdio`: the MCP TypeScript SDK's
//!   client (tests/mcp/ts_client.mjs) on the Node 22 that scripts/install-test-deps.sh
//!   installs.
//! * `a_remote_address_needs_the_flag`, `a_token_from_the_environment`,
//!   `sigterm_stops_the_server`.
//!
//! A client that is not installed makes its test fail and say how to install it: no test
//! passes without having run.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod support;
use support::{assert_all_ok, bin, node_dir, sdk_python, HttpServer};

/// A workspace with the skills the clients use, and skillbox's home.
struct World {
    _root: tempfile::TempDir,
    ws: PathBuf,
    home: PathBuf,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        let home = root.path().join("home");
        let outside = root.path().join("outside");
        for d in [&ws.join("run"), &home, &outside] {
            fs::create_dir_all(d).unwrap();
        }
        // nobody's runs write into run/.
        fs::set_permissions(ws.join("run"), fs::Permissions::from_mode(0o777)).unwrap();
        let dir = ws.join(".skillbox/skills");
        fs::create_dir_all(&dir).unwrap();
        let out = outside.to_str().unwrap();
        let skills = [
            json!({"name": "echo-back", "description": "Print the text", "type": "command",
                   "command": "echo", "args": ["{text}"],
                   "parameters": [{"name": "text", "type": "string", "required": true}]}),
            json!({"name": "stamp", "description": "Write run/stamp.WORD", "type": "command",
                   "command": "sh", "args": ["-c", "echo stamped > run/stamp.$1", "stamp", "{word}"],
                   "parameters": [{"name": "word", "type": "string", "required": true}],
                   "security": {"permissions": {"process_spawn": "limited", "file_write": ["run"]}}}),
            json!({"name": "escape-declared", "description": "Declare a write outside", "type": "command",
                   "command": "sh", "args": ["-c", "echo pwned > \"$1\"/declared", "x", out],
                   "security": {"permissions": {"file_write": [out], "process_spawn": "limited"}}}),
            json!({"name": "big-output", "description": "Print 2 MiB", "type": "command",
                   "command": "python3", "args": ["-c", "print('0123456789abcdef' * 131072)"]}),
            json!({"name": "greet-prompt", "description": "A greeting prompt", "type": "prompt_inline",
                   "prompt_template": "Greet {who} {n} times.",
                   "parameters": [{"name": "who", "type": "string", "required": true, "description": "Whom"},
                                  {"name": "n", "type": "number", "required": true}]}),
        ];
        for s in skills {
            let name = s["name"].as_str().unwrap().to_string();
            fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(&s).unwrap())
                .unwrap();
        }
        World { _root: root, ws, home }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(["--workspace", self.ws.to_str().unwrap(), "mcp"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("SKILLBOX_HOME", self.home.join("sb"))
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    fn token_file(&self) -> PathBuf {
        self.home.join("sb/mcp-token")
    }

    fn token(&self) -> String {
        fs::read_to_string(self.token_file()).unwrap().trim().to_string()
    }
}

/// A running `skillbox mcp --http`, killed when dropped.
type Server = HttpServer;

impl Server {
    /// Starts it on the workspace of `w`, on port 0, with `extra` arguments and `env`.
    fn start(w: &World, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args = vec!["--http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = w.command(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        HttpServer::spawn(cmd)
    }
}

/// Sends `request` (raw bytes) and returns the status code (0 if the server closed the
/// connection without one) and the response text.
fn raw(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The server may answer and close before reading all of an oversized body. (No
    // half-close: hyper ends a connection whose client stops sending.)
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A POST to `path` with `headers` (each a full line) and `body`.
fn post(port: u16, path: &str, headers: &[String], body: &[u8]) -> (u16, String) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    raw(port, &bytes)
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

fn mcp_headers(token: &str) -> Vec<String> {
    vec![
        format!("Authorization: Bearer {token}"),
        "Content-Type: application/json".into(),
        "Accept: application/json, text/event-stream".into(),
    ]
}

/// Asserts that an authorized `initialize` is answered: the server is up and serving.
fn assert_serves(server: &mut Server, token: &str, after: &str) {
    let (status, text) = post(server.port, "/mcp", &mcp_headers(token), INIT.as_bytes());
    assert_eq!(status, 200, "after {after}, initialize was not served: {text}");
    assert!(text.contains(r#""serverInfo":{"name":"skillbox""#), "after {after}: {text}");
    assert!(server.alive(), "the server died after {after}: {}", server.stderr());
}

#[test]
fn the_gate_refuses_and_the_server_survives_garbage() {
    let w = World::new();
    let mut server = Server::start(&w, &[], &[]);
    let token = w.token();
    assert_eq!(token.len(), 64, "a generated token is 32 random bytes in hex");
    let mode = fs::metadata(w.token_file()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is private");
    assert_serves(&mut server, &token, "start");
    let port = server.port;
    let json = [
        "Content-Type: application/json".to_string(),
        "Accept: application/json, text/event-stream".to_string(),
    ];
    let with = |extra: &[&str]| {
        let mut h: Vec<String> = json.to_vec();
        h.extend(extra.iter().map(|s| s.to_string()));
        h
    };

    // The token.
    let wrong = "0".repeat(64);
    for (what, headers) in [
        ("no Authorization", with(&[])),
        ("a wrong token", with(&[&format!("Authorization: Bearer {wrong}")])),
        ("a prefix of the token", with(&[&format!("Authorization: Bearer {}", &token[..63])])),
        ("the token as Basic", with(&[&format!("Authorization: Basic {token}")])),
        ("the bare token", with(&[&format!("Authorization: {token}")])),
    ] {
        let (status, text) = post(port, "/mcp", &headers, INIT.as_bytes());
        assert_eq!(status, 401, "{what}: {text}");
        assert!(text.to_ascii_lowercase().contains("www-authenticate: bearer"), "{what}: {text}");
        assert!(!text.contains("serverInfo"), "{what} was served: {text}");
        assert_serves(&mut server, &token, what);
    }

    // Origin (DNS rebinding, web pages) and Host.
    let auth = format!("Authorization: Bearer {token}");
    for origin in
        ["http://evil.example", "null", "http://localhost.evil.example", "https://127.0.0.1.nip.io"]
    {
        let (status, text) =
            post(port, "/mcp", &with(&[&auth, &format!("Origin: {origin}")]), INIT.as_bytes());
        assert_eq!(status, 403, "Origin {origin}: {text}");
        assert_serves(&mut server, &token, origin);
    }
    for origin in ["http://localhost:6274", "http://127.0.0.1", "http://[::1]:3000"] {
        let (status, text) =
            post(port, "/mcp", &with(&[&auth, &format!("Origin: {origin}")]), INIT.as_bytes());
        assert_eq!(status, 200, "a loopback Origin {origin} is served: {text}");
    }
    let rebound = format!(
        "POST /mcp HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n{auth}\r\n{}\r\n{}\r\nContent-Length: {}\r\n\r\n{INIT}",
        json[0], json[1], INIT.len()
    );
    let (status, text) = raw(port, rebound.as_bytes());
    assert_eq!(status, 403, "a foreign Host header: {text}");

    // Other paths, methods and garbage bodies: 4xx, and the server goes on.
    let (status, _) = post(port, "/", &with(&[&auth]), INIT.as_bytes());
    assert_eq!(status, 404, "only /mcp is served");
    let big = vec![b'x'; 5 * 1024 * 1024];
    let bodies: Vec<(&str, Vec<String>, Vec<u8>)> = vec![
        ("not JSON", with(&[&auth]), b"garbage".to_vec()),
        ("invalid UTF-8", with(&[&auth]), b"\xff\xfe\x00{".to_vec()),
        ("an empty object", with(&[&auth]), b"{}".to_vec()),
        ("an empty batch", with(&[&auth]), b"[]".to_vec()),
        (
            "a wrong-shaped request",
            with(&[&auth]),
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#.to_vec(),
        ),
        (
            "a request without a session",
            with(&[&auth]),
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
        ),
        (
            "an unknown session",
            with(&[&auth, "Mcp-Session-Id: nope"]),
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec(),
        ),
        (
            "an unknown protocol version",
            with(&[&auth, "MCP-Protocol-Version: 1999-01-01"]),
            INIT.as_bytes().to_vec(),
        ),
        (
            "text/plain",
            vec![
                auth.clone(),
                "Content-Type: text/plain".into(),
                "Accept: application/json, text/event-stream".into(),
            ],
            INIT.as_bytes().to_vec(),
        ),
        (
            "no Accept",
            vec![auth.clone(), "Content-Type: application/json".into()],
            INIT.as_bytes().to_vec(),
        ),
        ("5 MiB", with(&[&auth]), big),
    ];
    for (what, headers, body) in bodies {
        let (status, text) = post(port, "/mcp", &headers, &body);
        assert!((400..500).contains(&status), "{what}: expected 4xx, got {status}: {text:.300}");
        assert_serves(&mut server, &token, what);
    }
    // A JSON body that is not JSON, or not JSON-RPC, is a bad request with the JSON-RPC
    // error that says which (not rmcp's 415, which blames the media type); a body over the
    // limit is 413; a body of another media type keeps 415.
    for (what, body, code) in [
        ("not JSON", &b"garbage"[..], -32700),
        ("truncated JSON", &br#"{"jsonrpc":"2.0","id":1,"#[..], -32700),
        ("an empty object", &b"{}"[..], -32600),
        ("an empty batch", &b"[]"[..], -32600),
    ] {
        let (status, text) = post(port, "/mcp", &with(&[&auth]), body);
        assert_eq!(status, 400, "{what}: {text:.300}");
        let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let answer: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{what}: the answer is not JSON ({e}): {text:.300}"));
        assert_eq!(answer["error"]["code"], code, "{what}: {answer}");
        assert!(answer["id"].is_null(), "{what}: {answer}");
        assert_serves(&mut server, &token, what);
    }
    let (status, text) = post(port, "/mcp", &with(&[&auth]), &vec![b' '; 5 * 1024 * 1024]);
    assert_eq!(status, 413, "5 MiB of spaces: {text:.300}");
    let plain_text = vec![
        auth.clone(),
        "Content-Type: text/plain".into(),
        "Accept: application/json, text/event-stream".into(),
    ];
    let (status, text) = post(port, "/mcp", &plain_text, INIT.as_bytes());
    assert_eq!(status, 415, "text/plain: {text:.300}");
    for (what, request) in [
        ("bytes that are not HTTP", b"\x00\x01\x02 hello\r\n\r\n".to_vec()),
        ("a truncated body", format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"jsonrpc\"").into_bytes()),
        ("a DELETE without a session", format!(
            "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nConnection: close\r\n\r\n").into_bytes()),
        ("a GET without a session", format!(
            "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n").into_bytes()),
    ] {
        let (status, text) = raw(port, &request);
        assert!(status == 0 || (400..500).contains(&status), "{what}: got {status}: {text:.300}");
        assert_serves(&mut server, &token, what);
    }

    let err = server.stderr();
    assert!(!err.contains(&token), "the token was printed: {err}");
    assert!(err.contains(w.token_file().to_str().unwrap()), "the token's file is named: {err}");
}

#[test]
fn official_python_sdk_over_http_in_both_eras() {
    let python = sdk_python();
    let w = World::new();
    let server = Server::start(&w, &[], &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/http_client.py");
    let out = Command::new(python)
        .arg(&script)
        .args([&server.url, w.token_file().to_str().unwrap()])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    assert_all_ok(&out, "the Python SDK session", &server.stderr());
    // The runs happened, seen from outside: each era's call wrote its stamp.
    for word in ["modern-stamp", "legacy-stamp"] {
        let stamp = w.ws.join(format!("run/stamp.{word}"));
        assert_eq!(fs::read_to_string(&stamp).unwrap_or_default(), "stamped\n", "{word}");
    }
    // The call outside the grant wrote nothing.
    assert!(!w.ws.parent().unwrap().join("outside/declared").exists(), "a denied call wrote");
}

#[test]
fn typescript_sdk_over_http() {
    let dir = node_dir();
    let w = World::new();
    let server = Server::start(&w, &[], &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/ts_client.mjs");
    let sdk = dir.join("node_modules/@modelcontextprotocol/sdk");
    let out = Command::new(dir.join("node_modules/.bin/node"))
        .arg(&script)
        .args([sdk.to_str().unwrap(), &server.url, w.token_file().to_str().unwrap()])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    assert_all_ok(&out, "the TypeScript SDK session", &server.stderr());
    let stamp = w.ws.join("run/stamp.ts-stamp");
    assert_eq!(fs::read_to_string(&stamp).unwrap_or_default(), "stamped\n");
}

/// The same TypeScript client over stdio: the SDK's `StdioClientTransport` starts
/// `skillbox mcp` itself, so the second transport is checked by a second implementation too.
#[test]
fn typescript_sdk_over_stdio() {
    let dir = node_dir();
    let w = World::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/ts_client.mjs");
    let sdk = dir.join("node_modules/@modelcontextprotocol/sdk");
    let out = Command::new(dir.join("node_modules/.bin/node"))
        .arg(&script)
        .args([sdk.to_str().unwrap(), "stdio", bin().as_str(), w.ws.to_str().unwrap()])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &w.home)
        .env("SKILLBOX_HOME", w.home.join("sb"))
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    assert_all_ok(&out, "the TypeScript SDK session over stdio", "");
    let stamp = w.ws.join("run/stamp.ts-stamp");
    assert_eq!(fs::read_to_string(&stamp).unwrap_or_default(), "stamped\n");
}

#[test]
fn a_remote_address_needs_the_flag() {
    let w = World::new();
    let out = w.command(&["--http", "0.0.0.0:0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("not a loopback address") && err.contains("--allow-remote"), "{err}");
    assert!(!w.token_file().exists() || w.token().len() == 64);

    let out = w.command(&["--allow-remote"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--allow-remote needs --http");

    // With the flag it serves, still behind the token.
    let mut child = w.command(&["--http", "0.0.0.0:0", "--allow-remote"]).spawn().unwrap();
    let mut pipe = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    pipe.read_line(&mut line).unwrap();
    let port: u16 = regex::Regex::new(r"0\.0\.0\.0:(\d+)/mcp")
        .unwrap()
        .captures(&line)
        .unwrap_or_else(|| panic!("no address: {line}"))[1]
        .parse()
        .unwrap();
    let (status, _) = post(port, "/mcp", &[], INIT.as_bytes());
    assert_eq!(status, 401, "a remote-enabled server still needs the token");
    let token = w.token();
    let (status, text) = post(port, "/mcp", &mcp_headers(&token), INIT.as_bytes());
    assert_eq!(status, 200, "{text}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_token_from_the_environment() {
    let w = World::new();
    let out =
        w.command(&["--http", "127.0.0.1:0"]).env("SKILLBOX_MCP_TOKEN", "short").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(err.contains("SKILLBOX_MCP_TOKEN is not a usable token"), "{err}");

    let secret = "env-token-0123456789-abcdef";
    let mut server = Server::start(&w, &[], &[("SKILLBOX_MCP_TOKEN", secret)]);
    assert!(!w.token_file().exists(), "no file is made when the environment has the token");
    assert_serves(&mut server, secret, "start with an environment token");
    let (status, _) =
        post(server.port, "/mcp", &mcp_headers(&"x".repeat(secret.len())), INIT.as_bytes());
    assert_eq!(status, 401);
    assert!(!server.stderr().contains(secret), "the token was printed");
}

#[test]
fn sigterm_stops_the_server() {
    let w = World::new();
    let mut server = Server::start(&w, &[], &[]);
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}: {}", server.stderr());
    std::thread::sleep(Duration::from_millis(100));
    assert!(server.stderr().contains("stopped"), "{}", server.stderr());
}
