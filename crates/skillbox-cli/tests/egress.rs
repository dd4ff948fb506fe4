//! Network egress by name (issue 22), end to end through the real `skillbox` binary with
//! real clients and real servers, each checked on the listener's side.
//!
//! A networked skill below full trust runs in a network namespace of its own holding only
//! loopback, where skillbox's egress proxy listens at 127.0.0.1:3128; its one way out is
//! that proxy, which decides each connection against `allowed_domains`. Here a local HTTPS
//! server (Python, threaded, with a certificate for `pkgs.skillbox.test` from a test CA made
//! with the `openssl` CLI at test time) records every TCP connection it accepts and every
//! request it reads. The names reach it through `SKILLBOX_TEST_RESOLVE`, the proxy's
//! test-only resolver override; the skill trusts the CA through the variables it declares.
//!
//! * Allowed, by name: curl, Python's urllib, `git ls-remote` (dumb HTTP) and
//!   `pip download` (a PEP 503 index with a wheel made here) each succeed, the server saw
//!   their requests, and the run's `network` list and the audit log's `NetworkConnection`
//!   events name the host, allowed, with bytes both ways.
//! * Refused: an unlisted name, a listed name resolving to loopback not listed as a literal,
//!   an IP literal not listed, a NUL byte in the host, the proxy itself: the client gets the
//!   proxy's refusal naming the host, the run's list and the audit log say refused with a
//!   reason, and the server accepted no connection (then a control connection from the test
//!   shows it was listening and recording). UDP and DNS from the skill reach no host
//!   listener; a direct connection to a host port (443 when the test may bind it) reaches
//!   nothing.
//!
//! curl, git, openssl and pip (the test venv of scripts/install-test-deps.sh) must be
//! present: a missing one fails the test, it is not skipped. Every test also runs as
//! `nobody`.

use std::fs;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::bin;

const HOST: &str = "pkgs.skillbox.test";
const OTHER: &str = "other.skillbox.test";

/// Runs `program args` on the host side (setting up the world), failing loudly.
fn host_cmd(program: &str, args: &[&str], cwd: &Path) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "`{program}` could not run ({e}): the egress tests need curl, git, openssl and \
                 python3; scripts/install-test-deps.sh installs them"
            )
        });
    assert!(
        out.status.success(),
        "`{program} {args:?}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails loudly unless `program` runs here.
fn require(program: &str) {
    let version = if program == "openssl" { "version" } else { "--version" };
    host_cmd(program, &[version], Path::new("/"));
}

/// A scratch world: skillbox's home, a workspace holding the CA the skills trust, and a
/// server tree outside the workspace.
struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("skillbox-egress-e2e-").tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        for d in ["ws/.skillbox/skills", "ws/ca", "ws/bin", "ws/dl", "home", "sb", "pki", "www"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let w = World { _dir: dir, root };
        w.make_pki();
        fs::write(w.ws().join("bin/probe.py"), PROBE).unwrap();
        // Whoever runs the test owns all of it; world-readable so nothing but the sandbox
        // stands between the run and what it is granted.
        let _ = Command::new("chmod").args(["-R", "a+rwX"]).arg(&w.root).status();
        w
    }

    fn ws(&self) -> PathBuf {
        self.root.join("ws")
    }

    fn ca(&self) -> PathBuf {
        self.ws().join("ca/ca.pem")
    }

    /// A CA, and a certificate it signs for `pkgs.skillbox.test`, `*.skillbox.test` and
    /// 127.0.0.1 (so that only the proxy, never TLS, stands between a refused client and
    /// the server).
    fn make_pki(&self) {
        require("openssl");
        let pki = self.root.join("pki");
        let ca = self.ca();
        let ca = ca.to_str().unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let mut a = vec!["req", "-x509"];
        a.extend(ec);
        a.extend([
            "-keyout",
            "ca.key",
            "-out",
            ca,
            "-days",
            "2",
            "-subj",
            "/CN=skillbox egress test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        host_cmd("openssl", &a, &pki);
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=pkgs.skillbox.test",
        ]);
        host_cmd("openssl", &a, &pki);
        fs::write(
            pki.join("ext.cnf"),
            "subjectAltName=DNS:pkgs.skillbox.test,DNS:other.skillbox.test,DNS:*.skillbox.test,IP:127.0.0.1\n\
             basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        host_cmd(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                ca,
                "-CAkey",
                "ca.key",
                "-set_serial",
                "4242",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.pem",
            ],
            &pki,
        );
    }

    /// Writes the JSON skill `name`: `body` (command, args, ...) with `permissions`, and the
    /// variables that make every client trust the test CA.
    fn skill(&self, name: &str, body: Value, permissions: Value) {
        let ca = self.ca().to_str().unwrap().to_string();
        let mut def = json!({
            "name": name, "type": "command", "description": format!("The {name} skill."),
            "environment": {
                "SSL_CERT_FILE": ca, "CURL_CA_BUNDLE": ca, "GIT_SSL_CAINFO": ca,
                "PIP_CERT": ca, "REQUESTS_CA_BUNDLE": ca,
            },
            "security": {
                "permissions": permissions,
                "resource_limits": {"max_processes": 20, "max_execution_time": 30},
            },
        });
        if let (Value::Object(d), Value::Object(b)) = (&mut def, body) {
            d.extend(b);
        }
        let path = self.ws().join(format!(".skillbox/skills/{name}.json"));
        fs::write(&path, serde_json::to_vec_pretty(&def).unwrap()).unwrap();
    }

    /// `skillbox run NAME --json` with `SKILLBOX_TEST_RESOLVE=resolve`: exit code and result.
    fn run(&self, name: &str, resolve: &str) -> (i32, Value) {
        let out = Command::new(bin())
            .args(["run", name, "--json"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.root.join("home"))
            .env("SKILLBOX_HOME", self.root.join("sb"))
            .env("LANG", "C.UTF-8")
            .env("SKILLBOX_TEST_RESOLVE", resolve)
            .current_dir(self.ws())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!("not JSON ({e}): {stdout}\n{}", String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code().unwrap_or(-1), v)
    }

    /// The audit log's `NetworkConnection` events, oldest first.
    fn network_events(&self) -> Vec<Value> {
        let log =
            fs::read_to_string(self.root.join("sb/logs/security_events.jsonl")).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event_type"] == "NetworkConnection")
            .collect()
    }
}

/// The skill-side raw client: sends `CONNECT target` (Python escapes such as `\x00` read) to
/// the proxy and prints the status and the body on one line each.
const PROBE: &str = r#"import socket, sys
target = sys.argv[1].encode().decode('unicode_escape').encode('latin-1')
s = socket.create_connection(('127.0.0.1', 3128), timeout=10)
s.sendall(b'CONNECT ' + target + b' HTTP/1.1\r\nHost: ' + target + b'\r\n\r\n')
data = b''
while True:
    try:
        chunk = s.recv(65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
    if b'\r\n\r\n' in data and not data.startswith(b'HTTP/1.1 4') and not data.startswith(b'HTTP/1.1 5'):
        break
head, _, body = data.partition(b'\r\n\r\n')
line = head.split(b'\r\n')[0].decode('latin-1')
print('PROBE', sys.argv[1], 'STATUS', line.split(' ')[1] if ' ' in line else '-')
print('PROBE', sys.argv[1], 'BODY', body.decode('utf-8', 'replace').replace('\n', ' | '))
"#;

/// The HTTPS server: one line per TCP connection accepted (before any TLS) and per request
/// read, to a log the test reads; prints its port once listening.
const SERVER: &str = r#"import http.server, ssl, sys, threading
root, cert, key, logpath = sys.argv[1:]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
lock = threading.Lock()
log = open(logpath, 'a')
def note(s):
    with lock:
        log.write(s + '\n')
        log.flush()
class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def log_message(self, *a):
        pass
    def parse_request(self):
        ok = super().parse_request()
        note('REQUEST %s %s host=%s' % (self.command, self.path, self.headers.get('Host') if ok else '-'))
        return ok
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def verify_request(self, request, client_address):
        note('ACCEPT %s:%d' % client_address[:2])
        return True
    def finish_request(self, request, client_address):
        try:
            tls = ctx.wrap_socket(request, server_side=True)
        except Exception as e:
            note('TLS-FAILED %r' % e)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()
srv = Server(('127.0.0.1', 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// The HTTPS server process; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn start(w: &World) -> Self {
        let script = w.root.join("server.py");
        fs::write(&script, SERVER).unwrap();
        let log = w.root.join("server.log");
        fs::write(&log, "").unwrap();
        let pki = w.root.join("pki");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(w.root.join("www"))
            .arg(pki.join("server.pem"))
            .arg(pki.join("server.key"))
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the test's HTTPS server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("server said {line:?}"));
        Server { child, port, log }
    }

    fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log).unwrap().lines().map(str::to_string).collect()
    }

    fn accepts(&self) -> usize {
        self.lines().iter().filter(|l| l.starts_with("ACCEPT")).count()
    }

    /// The paths of the requests it read, with their `Host`.
    fn requests(&self) -> Vec<String> {
        self.lines().into_iter().filter(|l| l.starts_with("REQUEST ")).collect()
    }

    /// The control after a refusal: nothing reached the server, and it was listening and
    /// recording all along (a connection from the test itself is seen).
    fn assert_untouched_yet_live(&self) {
        let lines = self.lines();
        assert!(lines.is_empty(), "something reached the server: {lines:?}");
        drop(TcpStream::connect(("127.0.0.1", self.port)).unwrap());
        let start = Instant::now();
        while self.accepts() == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "the server records nothing");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `{HOST}={addr}` and `{OTHER}={addr}`.
fn resolve_to(addr: &str) -> String {
    format!("{HOST}={addr},{OTHER}={addr}")
}

/// The permissions of a skill that lists `domains`, reads the CA and its probe, and may
/// write `dl`.
fn perms(domains: &[String]) -> Value {
    json!({
        "network_access": true,
        "allowed_domains": domains,
        "file_read": ["ca", "bin"],
        "file_write": ["dl"],
    })
}

/// The listed name and its address as a literal: what reaching a loopback server by name
/// takes.
fn listed(port: u16) -> Vec<String> {
    vec![format!("{HOST}:{port}"), format!("127.0.0.1:{port}")]
}

fn sh(script: &str) -> Value {
    json!({"command": "sh", "args": ["-c", script]})
}

/// The run's one `network` record for `host:port`.
fn record<'a>(v: &'a Value, host: &str, port: u16) -> &'a Value {
    let all = v["network"].as_array().unwrap_or_else(|| panic!("no network list: {v}"));
    let mine: Vec<&Value> = all.iter().filter(|c| c["host"] == host && c["port"] == port).collect();
    assert!(!mine.is_empty(), "no record of {host}:{port} in {all:?}");
    mine[0]
}

/// Every record of the run and audit event says allowed, with bytes both ways, to the
/// server's address; the audit log has one allowed event per record.
fn assert_allowed(w: &World, v: &Value, port: u16, method: &str) {
    let all = v["network"].as_array().unwrap();
    assert!(!all.is_empty(), "{v}");
    for c in all {
        assert_eq!(c["host"], HOST, "{c}");
        assert_eq!(c["port"], port, "{c}");
        assert_eq!(c["allowed"], true, "{c}");
        assert_eq!(c["address"], format!("127.0.0.1:{port}"), "{c}");
        assert_eq!(c["method"], method, "{c}");
        assert!(c["bytes_up"].as_u64().unwrap() > 0, "{c}");
        assert!(c["bytes_down"].as_u64().unwrap() > 0, "{c}");
    }
    let events = w.network_events();
    assert_eq!(events.len(), all.len(), "one event per connection: {events:?}");
    for e in &events {
        assert_eq!(e["action_taken"], "Allowed", "{e}");
        assert_eq!(e["details"]["host"], HOST, "{e}");
        assert_eq!(e["details"]["allowed"], true, "{e}");
        assert!(e["details"]["bytes_down"].as_u64().unwrap() > 0, "{e}");
    }
}

/// The run's record for `host:port` and its audit event say refused, with `why` in the
/// reason.
fn assert_refused(w: &World, v: &Value, host: &str, port: u16, why: &str) {
    let c = record(v, host, port);
    assert_eq!(c["allowed"], false, "{c}");
    assert_eq!(c["bytes_up"], 0, "{c}");
    let reason = c["reason"].as_str().unwrap_or_else(|| panic!("no reason: {c}"));
    assert!(reason.contains(why), "{reason}");
    let events = w.network_events();
    let e = events
        .iter()
        .find(|e| e["details"]["host"] == host && e["details"]["port"] == port)
        .unwrap_or_else(|| panic!("no audit event for {host}:{port}: {events:?}"));
    assert_eq!(e["action_taken"], "Blocked", "{e}");
    assert!(e["details"]["reason"].as_str().unwrap().contains(why), "{e}");
    assert!(events.iter().all(|e| e["action_taken"] == "Blocked"), "{events:?}");
}

// ---- allowed, by name --------------------------------------------------------------------

#[test]
fn curl_fetches_by_name_over_https_through_the_proxy() {
    require("curl");
    let w = World::new();
    fs::write(w.root.join("www/hello.txt"), "hello from the test server\n").unwrap();
    let s = Server::start(&w);
    w.skill(
        "get",
        json!({"command": "curl", "args": ["-sS", "--fail", format!("https://{HOST}:{}/hello.txt", s.port)]}),
        perms(&listed(s.port)),
    );
    let (code, v) = w.run("get", &resolve_to("127.0.0.1"));
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["stdout"], "hello from the test server\n", "{v}");
    assert_eq!(s.requests(), [format!("REQUEST GET /hello.txt host={HOST}:{}", s.port)]);
    assert_allowed(&w, &v, s.port, "CONNECT");
}

#[test]
fn python_urllib_fetches_by_name_over_https_through_the_proxy() {
    let w = World::new();
    fs::write(w.root.join("www/data.json"), "{\"ok\": true}\n").unwrap();
    let s = Server::start(&w);
    let code = format!(
        "import urllib.request; print(urllib.request.urlopen('https://{HOST}:{}/data.json', \
         timeout=20).read().decode(), end='')",
        s.port
    );
    w.skill(
        "urllib",
        json!({"command": "python3", "args": ["-I", "-c", code]}),
        perms(&listed(s.port)),
    );
    let (rc, v) = w.run("urllib", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    assert_eq!(v["stdout"], "{\"ok\": true}\n", "{v}");
    assert_eq!(s.requests(), [format!("REQUEST GET /data.json host={HOST}:{}", s.port)]);
    assert_allowed(&w, &v, s.port, "CONNECT");
}

#[test]
fn git_ls_remote_lists_a_repository_by_name_over_https() {
    require("git");
    let w = World::new();
    // A bare repository with one commit, served over the dumb HTTP protocol.
    let work = w.root.join("pki/work");
    fs::create_dir_all(&work).unwrap();
    let g = |args: &[&str], cwd: &Path| host_cmd("git", args, cwd);
    g(&["init", "-q", "-b", "main"], &work);
    g(
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "one",
        ],
        &work,
    );
    let commit = g(&["rev-parse", "HEAD"], &work).trim().to_string();
    let repo = w.root.join("www/repo.git");
    g(&["clone", "-q", "--bare", work.to_str().unwrap(), repo.to_str().unwrap()], &w.root);
    g(&["update-server-info"], &repo);
    let _ = Command::new("chmod").args(["-R", "a+rwX"]).arg(&repo).status();
    let s = Server::start(&w);
    w.skill(
        "lsremote",
        json!({"command": "git", "args": ["ls-remote", format!("https://{HOST}:{}/repo.git", s.port)]}),
        perms(&listed(s.port)),
    );
    let (rc, v) = w.run("lsremote", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    let out = v["stdout"].as_str().unwrap();
    assert!(out.contains(&format!("{commit}\trefs/heads/main")), "{v}");
    let reqs = s.requests();
    assert!(
        reqs.iter().any(|r| r.starts_with("REQUEST GET /repo.git/info/refs")),
        "the server did not see git's request: {reqs:?}"
    );
    assert_allowed(&w, &v, s.port, "CONNECT");
}

/// The Python with pip that scripts/install-test-deps.sh provides (its venv), world-readable
/// so that a run as `nobody` can use it.
fn pip_python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = vec!["/opt/skillbox-test-venv/bin/python".into()];
    if let Some(p) = std::env::var_os("SKILLBOX_TEST_PYTHON") {
        candidates.insert(0, p.into());
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/skillbox-test-venv/bin/python"));
    }
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-m", "pip", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return c.clone();
        }
    }
    panic!(
        "NO PYTHON WITH PIP: the pip client test cannot run. Run scripts/install-test-deps.sh \
         (its venv has pip) or set SKILLBOX_TEST_PYTHON. Looked in: {candidates:?}"
    );
}

const WHEEL: &str = "demo_pkg-1.0-py3-none-any.whl";

#[test]
fn pip_downloads_from_an_index_by_name_over_https() {
    let python = pip_python();
    let w = World::new();
    // A PEP 503 index with one hand-made wheel.
    let www = w.root.join("www");
    fs::create_dir_all(www.join("packages")).unwrap();
    fs::create_dir_all(www.join("simple/demo-pkg")).unwrap();
    let make = "import zipfile, hashlib, sys\n\
         p = sys.argv[1]\n\
         with zipfile.ZipFile(p, 'w') as z:\n\
         \x20   z.writestr('demo_pkg/__init__.py', '')\n\
         \x20   z.writestr('demo_pkg-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: demo-pkg\\nVersion: 1.0\\n')\n\
         \x20   z.writestr('demo_pkg-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: skillbox-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
         \x20   z.writestr('demo_pkg-1.0.dist-info/RECORD', 'demo_pkg/__init__.py,,\\ndemo_pkg-1.0.dist-info/METADATA,,\\ndemo_pkg-1.0.dist-info/WHEEL,,\\ndemo_pkg-1.0.dist-info/RECORD,,\\n')\n\
         print(hashlib.sha256(open(p, 'rb').read()).hexdigest())\n";
    let wheel = www.join("packages").join(WHEEL);
    let sha = host_cmd("python3", &["-c", make, wheel.to_str().unwrap()], &w.root);
    fs::write(
        www.join("simple/index.html"),
        "<!DOCTYPE html><html><body><a href=\"demo-pkg/\">demo-pkg</a></body></html>\n",
    )
    .unwrap();
    fs::write(
        www.join("simple/demo-pkg/index.html"),
        format!(
            "<!DOCTYPE html><html><body><a href=\"../../packages/{WHEEL}#sha256={}\">{WHEEL}</a></body></html>\n",
            sha.trim()
        ),
    )
    .unwrap();
    let _ = Command::new("chmod").args(["-R", "a+rwX"]).arg(&www).status();
    let s = Server::start(&w);
    let dl = w.ws().join("dl");
    w.skill(
        "pipdl",
        json!({"command": python, "args": [
            "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
            "--index-url", format!("https://{HOST}:{}/simple/", s.port), "-d", dl, "demo-pkg",
        ]}),
        perms(&listed(s.port)),
    );
    let (rc, v) = w.run("pipdl", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    assert_eq!(fs::read(dl.join(WHEEL)).unwrap(), fs::read(&wheel).unwrap(), "{v}");
    let reqs = s.requests();
    assert!(reqs.iter().any(|r| r.starts_with("REQUEST GET /simple/demo-pkg/ ")), "{reqs:?}");
    assert!(
        reqs.iter().any(|r| r.starts_with(&format!("REQUEST GET /packages/{WHEEL} "))),
        "{reqs:?}"
    );
    assert_allowed(&w, &v, s.port, "CONNECT");
}

// ---- refused -----------------------------------------------------------------------------

/// A skill that asks for `target` (`host:port`) with curl and with the raw probe, then
/// prints both outcomes; it always exits 0, so a refusal is told by its output.
fn refused_skill(w: &World, target: &str, domains: &[String]) {
    require("curl");
    let probe = w.ws().join("bin/probe.py");
    w.skill(
        "refused",
        sh(&format!(
            "curl -sS -o /dev/null -w 'CURL connect=%{{http_connect}} code=%{{http_code}}\\n' \
             https://{target}/secret; echo \"CURL exit=$?\"; python3 -I {} '{target}'; true",
            probe.display()
        )),
        perms(domains),
    );
}

/// What the probe printed for `target`: status and body.
fn probe_result(v: &Value, target: &str) -> (String, String) {
    let out = v["stdout"].as_str().unwrap();
    let find = |what: &str| {
        let prefix = format!("PROBE {target} {what} ");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no probe {what} for {target}: {v}"))
            .to_string()
    };
    (find("STATUS"), find("BODY"))
}

/// Refused through the proxy: curl's CONNECT got 403, the probe's too with a body naming
/// `host:port`; the run records it, the audit log too; the server saw nothing.
fn assert_refused_by_proxy(w: &World, s: &Server, v: &Value, host: &str, why: &str) {
    let target = format!("{host}:{}", s.port);
    let out = v["stdout"].as_str().unwrap();
    assert!(out.contains("CURL connect=403"), "{v}");
    assert!(!out.contains("CURL exit=0"), "{v}");
    let (status, body) = probe_result(v, &target);
    assert_eq!(status, "403", "{body}");
    assert!(body.contains(&format!("refused {target}")), "{body}");
    assert!(body.contains(why), "{body}");
    assert_refused(w, v, host, s.port, why);
    s.assert_untouched_yet_live();
}

#[test]
fn an_unlisted_name_is_refused_and_reaches_nothing() {
    let w = World::new();
    let s = Server::start(&w);
    refused_skill(&w, &format!("{OTHER}:{}", s.port), &listed(s.port));
    let (rc, v) = w.run("refused", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    assert_refused_by_proxy(&w, &s, &v, OTHER, "not in");
}

#[test]
fn a_listed_name_resolving_to_loopback_is_refused_without_the_literal() {
    let w = World::new();
    let s = Server::start(&w);
    refused_skill(&w, &format!("{HOST}:{}", s.port), &[format!("{HOST}:{}", s.port)]);
    let (rc, v) = w.run("refused", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    assert_refused_by_proxy(&w, &s, &v, HOST, "resolves to 127.0.0.1 (loopback)");

    // The same for a private and the cloud metadata address (nothing listens there: the
    // refusal is the proxy's, before any dialing).
    for (addr, class) in [("10.1.2.3", "private"), ("169.254.169.254", "cloud-metadata")] {
        let w = World::new();
        refused_skill(&w, &format!("{HOST}:{}", s.port), &[format!("{HOST}:{}", s.port)]);
        let (rc, v) = w.run("refused", &resolve_to(addr));
        assert_eq!(rc, 0, "{v}");
        let why = format!("resolves to {addr} ({class})");
        let (status, body) = probe_result(&v, &format!("{HOST}:{}", s.port));
        assert_eq!(status, "403", "{body}");
        assert!(body.contains(&why), "{body}");
        assert_refused(&w, &v, HOST, s.port, &why);
        assert_eq!(record(&v, HOST, s.port)["address"], Value::Null, "nothing dialed: {v}");
    }
}

#[test]
fn an_ip_literal_not_listed_is_refused_though_its_name_is() {
    let w = World::new();
    let s = Server::start(&w);
    refused_skill(&w, &format!("127.0.0.1:{}", s.port), &[format!("{HOST}:{}", s.port)]);
    let (rc, v) = w.run("refused", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    assert_refused_by_proxy(&w, &s, &v, "127.0.0.1", "not in");
}

#[test]
fn a_nul_byte_in_the_host_is_refused_and_reaches_nothing() {
    let w = World::new();
    let s = Server::start(&w);
    let target = format!("{HOST}\\x00.evil:{}", s.port);
    let probe = w.ws().join("bin/probe.py");
    w.skill(
        "nul",
        json!({"command": "python3", "args": ["-I", probe, target]}),
        perms(&listed(s.port)),
    );
    let (rc, v) = w.run("nul", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    let (status, body) = probe_result(&v, &target);
    // A bad request (400) naming what was asked, the NUL escaped: never cut at it.
    assert_eq!(status, "400", "{body}");
    let named = |t: &str| t.contains(&format!("{HOST}\\0.evil:{}", s.port));
    assert!(body.contains("bad request") && named(&body), "{body}");
    let all = v["network"].as_array().unwrap();
    assert_eq!(all.len(), 1, "{v}");
    let c = &all[0];
    assert_eq!(c["allowed"], false, "{c}");
    assert_eq!(c["address"], Value::Null, "nothing was dialed: {c}");
    assert!(named(c["reason"].as_str().unwrap()), "{c}");
    let events = w.network_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["action_taken"], "Blocked", "{events:?}");
    assert!(named(events[0]["details"]["reason"].as_str().unwrap()), "{events:?}");
    s.assert_untouched_yet_live();
}

#[test]
fn a_connect_to_the_proxy_itself_is_refused_even_when_listed() {
    let w = World::new();
    let s = Server::start(&w);
    let probe = w.ws().join("bin/probe.py");
    // Listed as a literal, the proxy's own address is still never dialed; unlisted, the
    // list refuses it first.
    let mut domains = listed(s.port);
    domains.push("127.0.0.1:3128".into());
    w.skill(
        "own",
        json!({"command": "python3", "args": ["-I", probe, "127.0.0.1:3128"]}),
        perms(&domains),
    );
    w.skill(
        "own2",
        json!({"command": "python3", "args": ["-I", probe, "localhost.skillbox.test:3128"]}),
        perms(&listed(s.port)),
    );
    let (rc, v) = w.run("own", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    let (status, body) = probe_result(&v, "127.0.0.1:3128");
    assert_eq!(status, "403", "{body}");
    assert!(body.contains("refused 127.0.0.1:3128"), "{body}");
    assert_refused(&w, &v, "127.0.0.1", 3128, "this proxy itself");
    let (rc, v) = w.run("own2", "localhost.skillbox.test=127.0.0.1");
    assert_eq!(rc, 0, "{v}");
    let (status, _) = probe_result(&v, "localhost.skillbox.test:3128");
    assert_eq!(status, "403", "{v}");
    assert_eq!(record(&v, "localhost.skillbox.test", 3128)["allowed"], false, "{v}");
    s.assert_untouched_yet_live();
}

// ---- around the proxy --------------------------------------------------------------------

/// Whether the run asked the proxy for nothing (`network` is left out when empty).
fn no_connections(v: &Value) -> bool {
    v.get("network").is_none_or(|n| n.is_null() || n.as_array().is_some_and(Vec::is_empty))
}

fn is_root() -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The label of the skill's DNS query: what tells it from other traffic a shared port 53
/// may get.
const PROBE_LABEL: &[u8] = b"skillbox-egress-probe";

/// Drains `sock` (non-blocking): what it received that holds `marker`.
fn received(sock: &UdpSocket, marker: &[u8]) -> Vec<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if buf[..n].windows(marker.len()).any(|w| w == marker) => {
                got.push(format!("{n} bytes from {from}"))
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return got,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn udp_and_dns_from_the_skill_reach_no_host_listener() {
    let w = World::new();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let port = udp.local_addr().unwrap().port();
    // Port 53 on the host's loopback, when this test may bind it: a DNS query sent there
    // from the skill must not arrive either.
    let dns = if is_root() {
        match UdpSocket::bind("127.0.0.1:53") {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("!!! UDP 127.0.0.1:53 is taken here ({e}); DNS is checked against 8.8.8.8 and the high port only");
                None
            }
        }
    } else {
        eprintln!("!!! not root, so no listener on UDP 127.0.0.1:53; DNS is checked against 8.8.8.8 and the high port only");
        None
    };
    if let Some(d) = &dns {
        d.set_nonblocking(true).unwrap();
    }
    let script = format!(
        "import socket\n\
         q = b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x15skillbox-egress-probe\\x07invalid\\x00\\x00\\x01\\x00\\x01'\n\
         for addr in [('127.0.0.1', {port}), ('127.0.0.1', 53), ('8.8.8.8', 53)]:\n\
         \x20   s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         \x20   s.settimeout(1)\n\
         \x20   try:\n\
         \x20       s.sendto(q, addr)\n\
         \x20       s.recvfrom(512)\n\
         \x20       print('ANSWER', addr)\n\
         \x20   except OSError as e:\n\
         \x20       print('NOANSWER', addr, type(e).__name__)\n\
         try:\n\
         \x20   print('RESOLVED', socket.getaddrinfo('example.com', 443))\n\
         except OSError as e:\n\
         \x20   print('UNRESOLVED', e)\n"
    );
    w.skill(
        "udp",
        json!({"command": "python3", "args": ["-I", "-c", script]}),
        json!({"network_access": true, "allowed_domains": ["example.com"]}),
    );
    let (rc, v) = w.run("udp", "");
    assert_eq!(rc, 0, "{v}");
    let out = v["stdout"].as_str().unwrap();
    assert!(!out.lines().any(|l| l.starts_with("ANSWER")), "{out}");
    assert_eq!(out.matches("NOANSWER").count(), 3, "{out}");
    assert!(out.contains("UNRESOLVED"), "a name resolved inside the run: {out}");
    assert_eq!(received(&udp, PROBE_LABEL), Vec::<String>::new(), "{out}");
    if let Some(d) = &dns {
        assert_eq!(received(d, PROBE_LABEL), Vec::<String>::new(), "{out}");
    }
    assert!(no_connections(&v), "UDP never goes through the proxy: {v}");
    // Control: the listener does receive what the test itself sends.
    UdpSocket::bind("127.0.0.1:0").unwrap().send_to(b"control", ("127.0.0.1", port)).unwrap();
    let start = Instant::now();
    while received(&udp, b"control").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "the UDP listener receives nothing");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This host's addresses other than loopback (`hostname -I`), possibly none.
fn host_addresses() -> Vec<String> {
    Command::new("hostname")
        .arg("-I")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_string).collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_direct_connection_ignoring_the_proxy_reaches_no_host_port() {
    let w = World::new();
    // Port 443 on every host address when this test may bind it: what a skill with
    // `network_access: true` was allowed before the proxy.
    let listener = if is_root() { TcpListener::bind("0.0.0.0:443").ok() } else { None }
        .unwrap_or_else(|| {
            eprintln!(
                "!!! port 443 cannot be bound here (not root, or taken); the direct connection \
             is tried against a listener on a high port instead"
            );
            TcpListener::bind("0.0.0.0:0").unwrap()
        });
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut targets = vec!["127.0.0.1".to_string()];
    targets.extend(host_addresses().into_iter().filter(|a| !a.contains(':')));
    let script = format!(
        "import socket\n\
         for a in {targets:?}:\n\
         \x20   try:\n\
         \x20       socket.create_connection((a, {port}), timeout=2).close()\n\
         \x20       print('CONNECTED', a)\n\
         \x20   except OSError as e:\n\
         \x20       print('UNREACHED', a, type(e).__name__)\n"
    );
    w.skill(
        "direct",
        json!({"command": "python3", "args": ["-I", "-c", script]}),
        json!({"network_access": true, "allowed_domains": [format!("127.0.0.1:{port}"), format!("{HOST}:{port}")]}),
    );
    let (rc, v) = w.run("direct", &resolve_to("127.0.0.1"));
    assert_eq!(rc, 0, "{v}");
    let out = v["stdout"].as_str().unwrap();
    assert!(!out.contains("CONNECTED"), "{out}");
    assert_eq!(out.matches("UNREACHED").count(), targets.len(), "{out}");
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the host listener got a connection: {accepted:?}\n{out}"
    );
    assert!(no_connections(&v), "nothing went through the proxy: {v}");
    // Control: the listener accepts what the test itself opens.
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"x").unwrap();
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((mut s, _)) => {
                let mut b = [0u8; 1];
                s.set_nonblocking(false).unwrap();
                s.read_exact(&mut b).unwrap();
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed() < Duration::from_secs(10), "the listener accepts nothing");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}
