//! What the CLI's test files share.

#![allow(dead_code)] // each test binary uses some of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `skillbox` binary under test: the one cargo built for these tests, or the one
/// `SKILLBOX_TEST_BIN` names. `scripts/test.sh` runs these tests a second time that way,
/// against the static build of `scripts/build-static.sh`, so that the binary the benchmarks
/// time is also the one the tests check.
pub(crate) fn bin() -> String {
    match std::env::var("SKILLBOX_TEST_BIN") {
        Ok(path) if !path.is_empty() => path,
        _ => env!("CARGO_BIN_EXE_skillbox").to_string(),
    }
}

/// The Python interpreter that has the official MCP SDK: `SKILLBOX_TEST_PYTHON`, else the
/// virtual environment scripts/install-test-deps.sh creates.
pub(crate) fn sdk_python() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SKILLBOX_TEST_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push("/opt/skillbox-test-venv/bin/python".into());
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/skillbox-test-venv/bin/python"));
    }
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-c", "import mcp, anyio"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return c.clone();
        }
    }
    panic!(
        "THE OFFICIAL MCP PYTHON SDK IS NOT INSTALLED, so the MCP client tests cannot run. \
         Run scripts/install-test-deps.sh (it creates /opt/skillbox-test-venv as root, or \
         ~/.cache/skillbox-test-venv otherwise), or point SKILLBOX_TEST_PYTHON at a Python \
         with `pip install mcp==2.3.0`. Looked in: {candidates:?}"
    );
}

/// The directory scripts/install-test-deps.sh installs Node 22 and the MCP TypeScript SDK
/// into (`SKILLBOX_TEST_NODE_DIR`, else `/opt/skillbox-test-node`, else
/// `~/.cache/skillbox-test-node`), or a failure that says how to get it: the second
/// independent client is never skipped quietly.
pub(crate) fn node_dir() -> PathBuf {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("SKILLBOX_TEST_NODE_DIR") {
        candidates.push(p.into());
    }
    candidates.push("/opt/skillbox-test-node".into());
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(Path::new(&home).join(".cache/skillbox-test-node"));
    }
    for c in &candidates {
        let ok = c.join("node_modules/@modelcontextprotocol/sdk/package.json").is_file()
            && Command::new(c.join("node_modules/.bin/node"))
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"v22."));
        if ok {
            return c.clone();
        }
    }
    panic!(
        "NODE 22 AND THE MCP TYPESCRIPT SDK ARE NOT INSTALLED, so the TypeScript client test \
         cannot run. Run scripts/install-test-deps.sh (it installs them with npm into \
         /opt/skillbox-test-node as root, or ~/.cache/skillbox-test-node otherwise), or point \
         SKILLBOX_TEST_NODE_DIR at such a directory. Looked in: {candidates:?}"
    );
}

/// A running `skillbox mcp --http`, killed when dropped.
pub(crate) struct HttpServer {
    pub(crate) child: Child,
    /// The port it listens on (the command asks for port 0).
    pub(crate) port: u16,
    /// `http://127.0.0.1:PORT/mcp`, as it printed.
    pub(crate) url: String,
    stderr: Arc<Mutex<String>>,
}

impl HttpServer {
    /// Spawns `cmd`, a `skillbox ... mcp --http 127.0.0.1:0 ...` command, with its standard
    /// error collected, and waits up to 20 s for the address it prints.
    pub(crate) fn spawn(mut cmd: Command) -> HttpServer {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let re = regex::Regex::new(r"http://127\.0\.0\.1:(\d+)/mcp").unwrap();
        loop {
            let text = stderr.lock().unwrap().clone();
            if let Some(c) = re.captures(&text) {
                let port: u16 = c[1].parse().unwrap();
                let url = c[0].to_string();
                return HttpServer { child, port, url, stderr };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("skillbox mcp --http exited ({status}): {text}");
            }
            assert!(Instant::now() < deadline, "no address printed: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it still runs.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it wrote on standard error so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails unless a client script (the Python or TypeScript SDK) exited 0 with `ALL OK` as its
/// last line, showing its output and `server`'s standard error: every check of a script
/// raises, so anything else is a failed check, a crash, or a script cut short.
pub(crate) fn assert_all_ok(out: &std::process::Output, what: &str, server: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().last() == Some("ALL OK"),
        "{what} failed:\n{stdout}\n{stderr}\nserver:\n{server}"
    );
}
