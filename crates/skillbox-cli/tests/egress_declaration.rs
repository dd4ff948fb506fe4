//! `allowed_domains` (issue 22), the declaration, through the real `skillbox` binary: a valid
//! list is normalised once and shown by `info`, `doctor`, MCP's tool description and the
//! run's recorded grant; every refused entry names its file, field and reason on one line while
//! the other skills still load; and a listed address is reached only through the egress
//! proxy, never directly (checked on a listener). What the proxy lets through and refuses,
//! with real clients, is tests/egress.rs. Nothing needs root; every test also runs as
//! `nobody`.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod support;
use support::bin;

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("skillbox-egress-").tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in ["ws/.skillbox/skills", "home", "sb"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        World { _dir: dir, root }
    }

    fn ws(&self) -> PathBuf {
        self.root.join("ws")
    }

    /// Writes the JSON skill `name` with `permissions` as its `security.permissions`.
    fn skill(&self, name: &str, permissions: Value) -> PathBuf {
        self.skill_with(name, json!({"command": "true"}), permissions)
    }

    fn skill_with(&self, name: &str, body: Value, permissions: Value) -> PathBuf {
        let mut def = json!({
            "name": name, "type": "command", "description": format!("The {name} skill."),
            "security": {"permissions": permissions},
        });
        if let (Value::Object(d), Value::Object(b)) = (&mut def, body) {
            d.extend(b);
        }
        let path = self.ws().join(format!(".skillbox/skills/{name}.json"));
        fs::write(&path, serde_json::to_vec_pretty(&def).unwrap()).unwrap();
        path
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.root.join("home"))
            .env("SKILLBOX_HOME", self.root.join("sb"))
            .current_dir(self.ws())
            .stdin(Stdio::null());
        c
    }

    /// Exit code, stdout, stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> (i32, Value) {
        let (code, out, err) = self.run(args);
        let v = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}\nstderr: {err}"));
        (code, v)
    }
}

const LIST: &[&str] =
    &["API.Example.com.", "*.Bücher.example:8443", "api.example.com", "[2001:DB8::1]"];
const SHOWN: &[&str] = &["api.example.com", "*.xn--bcher-kva.example:8443", "[2001:db8::1]"];

#[test]
fn info_shows_a_valid_list_normalised_once() {
    let w = World::new();
    w.skill("fetch", json!({"network_access": "http", "allowed_domains": LIST}));

    let (code, out, err) = w.run(&["info", "fetch"]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out.lines().find(|l| l.trim_start().starts_with("domains:")).unwrap_or_else(|| {
        panic!("no domains line in:\n{out}");
    });
    assert!(line.contains(&SHOWN.join(", ")), "{line}");
    assert!(line.contains("443 and 80"), "\"http\" declares port 80 too: {line}");
    assert!(line.contains("egress proxy"), "the list is what the proxy enforces: {line}");
    assert!(out.contains("network:     https-only"), "the grant is unchanged:\n{out}");

    let (code, v) = w.json(&["info", "fetch", "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["declared"]["permissions"]["allowed_domains"], json!(SHOWN), "{v}");
    assert_eq!(v["declared"]["permissions"]["plain_http"], true, "{v}");
    assert_eq!(v["declared"]["permissions"]["network"], "https-only", "{v}");
    assert_eq!(v["grant"]["network"], "https-only", "{v}");
    assert_eq!(v["grant"]["allowed_domains"], json!(SHOWN), "{v}");
    assert_eq!(v["grant"]["plain_http"], true, "{v}");

    // `true` declares HTTPS only: no port 80 in what is shown.
    w.skill("fetch", json!({"network_access": true, "allowed_domains": ["example.org"]}));
    let (_, out, _) = w.run(&["info", "fetch"]);
    assert!(out.contains("domains:     example.org (ports: 443 unless written;"), "{out}");
}

#[test]
fn an_agent_skill_declares_the_list_in_its_skillbox_block() {
    let w = World::new();
    let dir = w.ws().join(".agents/skills/weather");
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::write(
        dir.join("SKILL.md"),
        "---\nname: weather\ndescription: Reads the forecast. Use for weather.\nskillbox:\n  \
         permissions:\n    network_access: true\n    allowed_domains: [\"API.Weather.example\", \
         \"*.tiles.weather.example\"]\n---\n\nRun weather--get.\n",
    )
    .unwrap();
    fs::write(dir.join("scripts/get.sh"), "echo forecast\n").unwrap();
    let (code, v) = w.json(&["info", "weather--get", "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["declared"]["permissions"]["allowed_domains"],
        json!(["api.weather.example", "*.tiles.weather.example"]),
        "{v}"
    );
}

#[test]
fn each_refusal_names_the_file_the_field_and_the_reason_and_the_rest_still_load() {
    let w = World::new();
    w.skill("good", json!({"network_access": true, "allowed_domains": ["example.org"]}));
    let cases: &[(&str, Value, &str, &str)] = &[
        (
            "nul",
            json!({"network_access": true, "allowed_domains": ["ok.example", "evil.com\u{0}.example.com"]}),
            "security.permissions.allowed_domains[1]",
            "NUL byte",
        ),
        (
            "percent",
            json!({"network_access": true, "allowed_domains": ["example%2ecom"]}),
            "security.permissions.allowed_domains[0]",
            "percent-encoding",
        ),
        (
            "userinfo",
            json!({"network_access": true, "allowed_domains": ["user@example.com"]}),
            "security.permissions.allowed_domains[0]",
            "userinfo",
        ),
        (
            "emptylabel",
            json!({"network_access": true, "allowed_domains": ["a..example.com"]}),
            "security.permissions.allowed_domains[0]",
            "empty label",
        ),
        (
            "bare",
            json!({"network_access": true, "allowed_domains": ["*"]}),
            "security.permissions.allowed_domains[0]",
            "bare `*`",
        ),
        (
            "midstar",
            json!({"network_access": true, "allowed_domains": ["api.*.example.com"]}),
            "security.permissions.allowed_domains[0]",
            "leftmost label",
        ),
        (
            "longlabel",
            json!({"network_access": true, "allowed_domains": [format!("{}.example", "a".repeat(64))]}),
            "security.permissions.allowed_domains[0]",
            "longer than 63",
        ),
        (
            "badport",
            json!({"network_access": true, "allowed_domains": ["example.com:99999"]}),
            "security.permissions.allowed_domains[0]",
            "port",
        ),
        (
            "control",
            json!({"network_access": true, "allowed_domains": ["exa\u{1b}[31mmple.com"]}),
            "security.permissions.allowed_domains[0]",
            "control character",
        ),
        (
            "nonet",
            json!({"allowed_domains": ["example.com"]}),
            "security.permissions.allowed_domains",
            "network_access is not declared",
        ),
        (
            "netfalse",
            json!({"network_access": false, "allowed_domains": ["example.com"]}),
            "security.permissions.allowed_domains",
            "network_access is false",
        ),
        (
            "netfull",
            json!({"network_access": "full", "allowed_domains": ["example.com"]}),
            "security.permissions.allowed_domains",
            "\"full\"",
        ),
        (
            "empty",
            json!({"network_access": true, "allowed_domains": []}),
            "security.permissions.allowed_domains",
            "empty",
        ),
        (
            "notalist",
            json!({"network_access": true, "allowed_domains": "example.com"}),
            "security.permissions.allowed_domains",
            "sequence",
        ),
        (
            "badnet",
            json!({"network_access": "lan"}),
            "security.permissions.network_access",
            "\"http\"",
        ),
    ];
    let mut files = Vec::new();
    for (name, perms, _, _) in cases {
        files.push(w.skill(name, perms.clone()));
    }
    let (code, v) = w.json(&["validate", "--json"]);
    assert_eq!(code, 1, "{v}");
    let valid: Vec<&str> =
        v["valid"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(valid.contains(&"good"), "the other skills still load: {valid:?}");
    let problems = v["problems"].as_array().unwrap();
    for ((name, _, field, why), file) in cases.iter().zip(&files) {
        assert!(!valid.contains(name), "{name} loaded: {v}");
        let mine: Vec<&Value> =
            problems.iter().filter(|p| p["path"] == file.to_str().unwrap()).collect();
        assert_eq!(mine.len(), 1, "{name}: {mine:?}");
        let p = mine[0];
        assert_eq!(p["field"], *field, "{name}: {p}");
        let message = p["message"].as_str().unwrap();
        assert!(message.contains(why), "{name}: {message}");
        assert!(message.starts_with(file.to_str().unwrap()), "{name}: {message}");
        assert!(!message.contains('\n') && !message.contains('\0') && !message.contains('\u{1b}'));
    }

    // The same lines, human-readable, on stderr of a command that loads the registry.
    let (_, _, err) = w.run(&["list"]);
    let nul = err.lines().find(|l| l.contains("nul.json")).unwrap_or_else(|| panic!("{err}"));
    assert!(
        nul.contains("field `security.permissions.allowed_domains[1]`: \"evil.com\\0.example.com\" refused: contains a NUL byte"),
        "{nul}"
    );
}

#[test]
fn an_agent_skill_refusal_names_its_skillbox_field() {
    let w = World::new();
    let dir = w.ws().join(".agents/skills/leaky");
    // A script: the `skillbox` block is the permissions of the skill's scripts.
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::write(dir.join("scripts/send.sh"), "echo sent\n").unwrap();
    fs::write(
        dir.join("SKILL.md"),
        "---\nname: leaky\ndescription: Leaks. Use never.\nskillbox:\n  permissions:\n    \
         network_access: true\n    allowed_domains: [\"user@example.com\"]\n---\n\nBody.\n",
    )
    .unwrap();
    let (_, v) = w.json(&["validate", "--json"]);
    let p = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"].as_str().is_some_and(|f| f.ends_with("leaky/SKILL.md")));
    let p = p.unwrap_or_else(|| panic!("no problem for leaky: {v}"));
    assert_eq!(p["field"], "skillbox.permissions.allowed_domains[0]", "{p}");
    assert!(p["reason"].as_str().unwrap().contains("userinfo"), "{p}");
}

#[test]
fn mcp_tool_description_shows_the_list() {
    let w = World::new();
    w.skill("fetch", json!({"network_access": true, "allowed_domains": LIST}));
    w.skill("quiet", json!({}));
    let mut child = w
        .cmd(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut send = |v: Value| {
        input.write_all(format!("{v}\n").as_bytes()).unwrap();
        input.flush().unwrap();
    };
    let mut recv_id = |id: i64| loop {
        let mut line = String::new();
        assert!(output.read_line(&mut line).unwrap() > 0, "the server closed its output");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == id {
            return v;
        }
    };
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "egress-test", "version": "1"}}}));
    recv_id(1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let v = recv_id(2);
    let _ = child.kill();
    let _ = child.wait();
    let tools = v["result"]["tools"].as_array().unwrap();
    let desc = |name: &str| {
        tools.iter().find(|t| t["name"] == name).unwrap()["description"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let fetch = desc("fetch");
    let hosts = format!("may reach only the network hosts {}", SHOWN.join(", "));
    assert!(fetch.contains(&hosts), "{fetch}");
    assert!(!desc("quiet").contains("network hosts"), "{}", desc("quiet"));
}

/// A listed address is reached through the proxy or not at all: a program that ignores the
/// proxy variables and connects straight to the listed loopback address and port reaches
/// nothing (the run's own network namespace has nothing there, and Landlock allows only
/// the proxy's port). The run's recorded grant names the list.
#[test]
fn a_listed_address_is_not_reached_around_the_proxy() {
    let w = World::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let listed = format!("127.0.0.1:{port}");
    let script = format!(
        "import socket\n\
         try:\n\
         \x20   socket.create_connection(('127.0.0.1', {port}), timeout=2)\n\
         \x20   print('CONNECTED')\n\
         except OSError as e:\n\
         \x20   print('refused network', e.errno)\n"
    );
    w.skill_with(
        "probe",
        json!({"type": "code_inline", "command": "python3", "args": ["-c", script]}),
        json!({"network_access": true, "allowed_domains": [listed]}),
    );
    let (code, v) = w.json(&["run", "probe", "--json"]);
    assert_eq!(code, 0, "{v}");
    let out = v["stdout"].as_str().unwrap();
    assert!(out.contains("refused network"), "{out}");
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(listener.accept().is_err(), "the listener got a connection from a listed port");
    assert_eq!(v["grant"]["network"], "https-only", "{v}");
    assert_eq!(v["grant"]["allowed_domains"], json!([listed]), "{v}");
    assert_eq!(v["network"], Value::Null, "nothing went through the proxy: {v}");
    // Recorded: the audit log's entry for the run carries the list.
    let log = fs::read_to_string(w.root.join("sb/logs/security_events.jsonl")).unwrap();
    assert!(log.lines().any(|l| l.contains("\"allowed_domains\"") && l.contains(&listed)), "{log}");
}

#[test]
fn doctor_lists_the_hosts_and_whether_this_host_enforces_them() {
    let w = World::new();
    w.skill("fetch", json!({"network_access": "http", "allowed_domains": LIST}));
    w.skill("quiet", json!({"network_access": true}));
    // Its exit code says whether the host keeps every guarantee: not what is checked here.
    let (_, out, err) = w.run(&["doctor"]);
    let at = out.find("Network hosts of skills").unwrap_or_else(|| panic!("{out}{err}"));
    let section = &out[at..];
    // Enforced exactly where runs get a network namespace of their own: where this host
    // gives user namespaces (doctor's own finding, by trying).
    let (_, v) = w.json(&["doctor", "--json"]);
    let userns = v["mechanisms"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["name"] == "user-namespaces"))
        .map(|m| m["available"] == true)
        .unwrap_or_else(|| panic!("doctor names no user-namespaces line: {v}"));
    assert_eq!(section.contains("NOT enforced"), !userns, "{section}");
    assert!(section.contains(&format!("fetch (http): {}", SHOWN.join(", "))), "{section}");
    assert!(!section.contains("quiet"), "{section}");
    assert_eq!(
        v["declared_egress"],
        json!([{"skill": "fetch", "allowed_domains": SHOWN, "plain_http": true, "enforced": userns}]),
        "{v}"
    );
    // No list anywhere: nothing said about it.
    let w = World::new();
    w.skill("quiet", json!({"network_access": true}));
    let (_, out, _) = w.run(&["doctor"]);
    assert!(!out.contains("Network hosts of skills"), "{out}");
}
