//! `code_session` sessions belong to the MCP connection: when the client closes it, `serve`
//! ends every session before it returns, in this same process (a `skillbox mcp` process
//! that exits would take them with it anyway; a server serving many connections must not
//! rely on that). Passes as root and as `nobody`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skillbox_skills::audit_log::{AuditLog, LogConfig};
use skillbox_skills::{Registry, Runtime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Pids of live processes whose command line holds `marker`.
fn marked(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmd).contains(marker) {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_connection_ends_its_sessions_in_process() {
    let ws = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(ws.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let marker = format!("skillbox-mcp-session-test-{}", std::process::id());
    let dir = ws.path().join(".q-skills");
    fs::create_dir(&dir).expect("mkdir");
    let skill = json!({"name": "py", "type": "code_session", "command": "python3",
                       "args": [marker], "security": {"permissions": {"file_read": ["."]}}});
    fs::write(dir.join("py.json"), skill.to_string()).expect("write");
    let logs = tempfile::tempdir().expect("tempdir");
    let log = AuditLog::open(LogConfig::new(logs.path().join("events.jsonl"))).expect("log");
    let rt = Runtime::with_registry(Registry::load_paths(&[dir]), ws.path())
        .expect("runtime")
        .with_audit(Arc::new(log));

    let (client, server_io) = tokio::io::duplex(1 << 20);
    let (server_r, server_w) = tokio::io::split(server_io);
    let serving = tokio::spawn(skillbox_mcp::serve(rt, server_r, server_w, Default::default()));
    let (client_r, mut client_w) = tokio::io::split(client);
    let mut lines = BufReader::new(client_r).lines();
    let send = |v: Value| {
        let mut line = v.to_string();
        line.push('\n');
        line
    };
    let reply = async |id: i64, lines: &mut tokio::io::Lines<_>| -> Value {
        loop {
            let line: String = lines.next_line().await.expect("read").expect("a reply");
            let v: Value = serde_json::from_str(&line).expect("json");
            if v["id"] == json!(id) {
                return v;
            }
        }
    };
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    client_w.write_all(send(init).as_bytes()).await.expect("write");
    reply(1, &mut lines).await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    client_w.write_all(send(note).as_bytes()).await.expect("write");
    let call = |id: i64, args: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "py", "arguments": args}})
    };
    client_w.write_all(send(call(2, json!({"code": "x = 20"}))).as_bytes()).await.expect("write");
    let v = reply(2, &mut lines).await;
    let sid = v["result"]["structuredContent"]["session"]["session_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no session id: {v}"))
        .to_string();
    let again = call(3, json!({"code": "x * 2 + 2", "session_id": sid}));
    client_w.write_all(send(again).as_bytes()).await.expect("write");
    let v = reply(3, &mut lines).await;
    assert_eq!(v["result"]["structuredContent"]["session"]["value"], json!("42"), "{v}");
    assert!(!marked(&marker).is_empty(), "control: the interpreter lives between calls");

    // The client closes the connection: serve returns with the session gone.
    drop(client_w);
    drop(lines);
    let served = tokio::time::timeout(Duration::from_secs(20), serving).await;
    assert!(served.is_ok(), "serve did not return after the connection closed");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !marked(&marker).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(marked(&marker), Vec::<i32>::new(), "an interpreter outlived its connection");
}
