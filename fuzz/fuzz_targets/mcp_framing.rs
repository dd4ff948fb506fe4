//! The MCP server's stdio framing, fed any bytes through the public entry `serve` (the
//! framing layer itself is private): a whole session over an in-memory input, with a
//! runtime that has no skills (so no call starts a process).
//!
//! Beyond "no panic" and "the session ends when the input does" (a hang is a libFuzzer
//! timeout): everything written back is whole lines, each a JSON-RPC 2.0 object, and every
//! error response has an `id` (null when the request had none). When no line of the input
//! is JSON (so the SDK reads nothing and cannot end the session early), every line that is
//! not JSON gets exactly one `-32700` answer and every line over the limit exactly one
//! `-32600` answer: a client is never left waiting.

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use skillbox_fuzz::scratch;
use skillbox_mcp::{serve, ServeOptions};
use skillbox_skills::{Registry, Runtime};
use tokio::io::AsyncReadExt;

/// Longest message accepted: small, so that the fuzzer makes lines over it.
const MAX_LINE: usize = 256;

fn options() -> ServeOptions {
    ServeOptions {
        poll_interval: Duration::from_secs(3600),
        max_concurrent_runs: 1,
        max_message_bytes: MAX_LINE,
        progress_interval: Duration::from_secs(3600),
        ..ServeOptions::default()
    }
}

/// What the framing must answer for `input`: lines that are not JSON, lines over the limit
/// (`MAX_LINE` bytes before the newline, or before the end of the input for a last line
/// without one), and whether any line is JSON.
struct Expected {
    not_json: usize,
    too_long: usize,
    any_json: bool,
}

fn expected(input: &[u8]) -> Expected {
    let mut e = Expected { not_json: 0, too_long: 0, any_json: false };
    let mut rest = input;
    while !rest.is_empty() {
        let (line, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], true),
            None => (rest, false),
        };
        rest = &rest[(line.len() + usize::from(terminated)).min(rest.len())..];
        if line.len() > MAX_LINE {
            e.too_long += 1;
            continue;
        }
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if serde_json::from_slice::<Value>(text).is_ok() {
            e.any_json = true;
        } else {
            e.not_json += 1;
        }
    }
    e
}

fn workspace() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("workspace");
        std::fs::create_dir_all(&dir).expect("scratch is writable");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let output = rt.block_on(async {
        let runtime = Runtime::with_registry(Registry::default(), workspace())
            .expect("a runtime without skills");
        let (writer, mut reader) = tokio::io::duplex(1 << 20);
        let collect = tokio::spawn(async move {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).await.expect("an in-memory pipe reads");
            out
        });
        let input = std::io::Cursor::new(data.to_vec());
        // A session that cannot start (no `initialize`) is an error, not a failure here.
        let _ = serve(runtime, input, writer, options()).await;
        collect.await.expect("the reader task ends")
    });

    assert!(output.is_empty() || output.ends_with(b"\n"), "a partial line was written");
    let (mut parse_errors, mut too_long) = (0, 0);
    for line in output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let msg: Value = serde_json::from_slice(line)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)));
        assert_eq!(msg["jsonrpc"], "2.0", "{msg}");
        if let Some(err) = msg.get("error") {
            assert!(msg.get("id").is_some(), "an error response without an id: {msg}");
            match err["code"].as_i64() {
                Some(-32700) => parse_errors += 1,
                Some(-32600)
                    if err["message"].as_str().is_some_and(|m| m.contains("exceeds the limit")) =>
                {
                    too_long += 1
                }
                _ => {}
            }
        }
    }
    let e = expected(data);
    if e.any_json {
        // The SDK may end the session at a JSON line (a second `initialize`, a message that
        // is not JSON-RPC), and lines after it are not read: at most one answer each.
        assert!(parse_errors <= e.not_json, "{parse_errors} parse errors for {} lines", e.not_json);
        assert!(too_long <= e.too_long, "{too_long} answers to {} long lines", e.too_long);
    } else {
        assert_eq!(parse_errors, e.not_json, "answers to lines that are not JSON");
        assert_eq!(too_long, e.too_long, "answers to lines over the limit");
    }
});
