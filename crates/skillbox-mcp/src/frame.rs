//! The newline-delimited JSON framing of the stdio transport, with the protocol errors the
//! SDK's own transport does not send.
//!
//! rmcp's stdio transport ignores a line that is not JSON and drops an oversized line with
//! only a log entry, so a client that sends either waits forever for an answer. JSON-RPC 2.0
//! says the server answers both: `-32700 Parse error` and `-32600 Invalid Request`, with a
//! null id. This module sits between the real stdin/stdout and the SDK: it passes every
//! line that is JSON through unchanged, answers the others itself, and merges its answers
//! with the SDK's output one whole line at a time, so the two never interleave mid-line.
//! Nothing here parses more than "is this JSON": the SDK still validates every message.
//!
//! The SDK answers JSON of the wrong shape itself (`-32600`), but without an `id` member
//! (the MCP 2026-07-28 text lets a server omit it; JSON-RPC 2.0, which every MCP version
//! builds on, says it MUST be null, and clients of older versions look for it). Its error
//! lines without an `id` get `"id": null` on their way out (see [`with_null_id`]).

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// Size of the in-process pipes between this layer and the SDK.
const PIPE_BYTES: usize = 256 * 1024;

/// The SDK's side of the framing: what it reads and where it writes.
pub(crate) type SdkSide = (tokio::io::DuplexStream, tokio::io::DuplexStream);

/// Starts the framing tasks between `input`/`output` and the SDK. Returns the SDK's side.
///
/// The tasks end when `input` reaches end of file (the SDK then sees end of file too and
/// the session ends) or when `output` fails (the client is gone).
pub(crate) fn start<R, W>(input: R, output: W, max_line: usize) -> SdkSide
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (sdk_in, mut to_sdk) = tokio::io::duplex(PIPE_BYTES);
    let (from_sdk, sdk_out) = tokio::io::duplex(PIPE_BYTES);
    let (err_tx, err_rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(async move {
        let mut input = BufReader::new(input);
        let mut line = Vec::new();
        loop {
            line.clear();
            let outcome = read_bounded_line(&mut input, &mut line, max_line).await;
            let answer = match outcome {
                Ok(Line::Eof) | Err(_) => break,
                Ok(Line::TooLong(n)) => Some(error_line(
                    -32600,
                    &format!(
                        "Invalid Request: message of {n} bytes or more exceeds the limit of \
                         {max_line} bytes; it was discarded"
                    ),
                )),
                Ok(Line::Complete) => {
                    let text = trim_line(&line);
                    if text.iter().all(u8::is_ascii_whitespace) {
                        None
                    } else if serde_json::from_slice::<serde_json::Value>(text).is_err() {
                        // A full parse, not `IgnoredAny`: skipping is iterative and accepts
                        // any depth, which the SDK's own parse then drops without an answer.
                        // `Value` stops at serde_json's nesting limit (128).
                        Some(error_line(-32700, "Parse error: the message is not valid JSON"))
                    } else {
                        let mut framed = text.to_vec();
                        framed.push(b'\n');
                        if to_sdk.write_all(&framed).await.is_err() {
                            break;
                        }
                        None
                    }
                }
            };
            if let Some(answer) = answer {
                if err_tx.send(answer).await.is_err() {
                    break;
                }
            }
        }
        // End of input: the SDK sees end of file and closes the session.
        let _ = to_sdk.shutdown().await;
    });
    tokio::spawn(merge_output(from_sdk, err_rx, output));
    (sdk_in, sdk_out)
}

/// Copies the SDK's lines and this layer's error lines to `output`, whole lines only.
async fn merge_output<W>(
    from_sdk: tokio::io::DuplexStream,
    mut errors: mpsc::Receiver<Vec<u8>>,
    mut output: W,
) where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut sdk = BufReader::new(from_sdk);
    let mut line = Vec::new();
    let mut errors_open = true;
    loop {
        tokio::select! {
            read = sdk.read_until(b'\n', &mut line) => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let fixed = with_null_id(&line);
                        let out = fixed.as_deref().unwrap_or(&line);
                        if output.write_all(out).await.is_err() || output.flush().await.is_err() {
                            break;
                        }
                        line.clear();
                    }
                }
            }
            answer = errors.recv(), if errors_open => {
                match answer {
                    Some(answer) => {
                        if output.write_all(&answer).await.is_err() || output.flush().await.is_err() {
                            break;
                        }
                    }
                    None => errors_open = false,
                }
            }
        }
    }
}

/// What one read gave.
enum Line {
    /// A whole line (without its newline) is in the buffer.
    Complete,
    /// The line was longer than the limit: at least this many bytes, all discarded.
    TooLong(usize),
    /// End of input.
    Eof,
}

/// Reads one line into `buf` without letting it grow past `max` bytes; a longer line is
/// consumed to its end and discarded. `read_until` cannot be bounded (it buffers the whole
/// line before returning), hence this loop over `fill_buf`.
async fn read_bounded_line<R: AsyncRead + Unpin>(
    input: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    let mut seen = 0usize;
    let mut discarding = false;
    loop {
        let chunk = input.fill_buf().await?;
        if chunk.is_empty() {
            // `max + 1` bytes are kept so that a line of `max` bytes fits with its newline;
            // a last line without one is held to `max` too.
            return Ok(if discarding || buf.len() > max {
                Line::TooLong(seen)
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        seen = seen.saturating_add(take);
        if !discarding && buf.len() + take > max.saturating_add(1) {
            discarding = true;
            buf.clear();
        }
        if !discarding {
            buf.extend_from_slice(&chunk[..take]);
        }
        input.consume(take);
        if done {
            return Ok(if discarding { Line::TooLong(seen) } else { Line::Complete });
        }
    }
}

/// The line without its trailing `\n` or `\r\n`.
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The SDK's line `line` with `"id": null` added, when it is an error response without an
/// `id`; `None` for every other line, which is passed on as it is.
///
/// Only lines that could be one are parsed: the SDK writes `jsonrpc` first and then `id`
/// in every response, and `method` in every request and notification, so a line that
/// starts like either is passed on unread (a tool result may be megabytes long).
fn with_null_id(line: &[u8]) -> Option<Vec<u8>> {
    const HAS_ID: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
    const HAS_METHOD: &[u8] = br#"{"jsonrpc":"2.0","method":"#;
    if line.starts_with(HAS_ID) || line.starts_with(HAS_METHOD) {
        return None;
    }
    let serde_json::Value::Object(mut msg) = serde_json::from_slice(line).ok()? else {
        return None;
    };
    if msg.contains_key("id") || !msg.contains_key("error") {
        return None;
    }
    msg.insert("id".into(), serde_json::Value::Null);
    let mut fixed = serde_json::to_vec(&msg).ok()?;
    fixed.push(b'\n');
    Some(fixed)
}

/// A JSON-RPC error response with a null id, as one line.
fn error_line(code: i64, message: &str) -> Vec<u8> {
    let mut v = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
        .to_string()
        .into_bytes();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<String> {
        let mut r = BufReader::new(input);
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            match read_bounded_line(&mut r, &mut buf, max).await.unwrap() {
                Line::Eof => break,
                Line::TooLong(n) => out.push(format!("too long: {n}")),
                Line::Complete => out.push(String::from_utf8_lossy(trim_line(&buf)).into()),
            }
        }
        out
    }

    #[tokio::test]
    async fn lines_up_to_the_limit_pass_and_longer_ones_are_discarded_whole() {
        let input = b"{\"a\":1}\r\n0123456789ABCDEF\nshort\nno newline at end";
        let got = lines(input, 10).await;
        assert_eq!(
            got,
            vec!["{\"a\":1}", "too long: 17", "short", "too long: 17"],
            "a line longer than the limit is reported with its size, and the next line is \
             read intact"
        );
    }

    // Found by the fuzz target `mcp_framing` (fuzz/): a last line without a newline passed
    // with one byte more than the limit, the byte its newline would have taken.
    #[tokio::test]
    async fn a_last_line_without_a_newline_is_held_to_the_same_limit() {
        assert_eq!(lines(b"0123456789", 10).await, vec!["0123456789"]);
        assert_eq!(lines(b"0123456789\n", 10).await, vec!["0123456789"]);
        assert_eq!(lines(b"0123456789A", 10).await, vec!["too long: 11"]);
        assert_eq!(lines(b"0123456789A\nok", 10).await, vec!["too long: 12", "ok"]);
    }

    #[test]
    fn only_error_responses_without_an_id_get_a_null_one() {
        let fixed = with_null_id(
            b"{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"Invalid request\"}}\n",
        )
        .expect("an error without an id is completed");
        let v: serde_json::Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(v.get("id"), Some(&serde_json::Value::Null), "{v}");
        assert_eq!(v["error"]["code"], -32600);
        assert!(fixed.ends_with(b"}\n"), "one whole line");
        for other in [
            &b"{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32601,\"message\":\"x\"}}\n"[..],
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n",
            b"{\"error\":{},\"id\":7,\"jsonrpc\":\"2.0\"}\n",
        ] {
            assert_eq!(with_null_id(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    #[tokio::test]
    async fn error_lines_are_json_rpc_errors_with_a_null_id() {
        let v: serde_json::Value = serde_json::from_slice(&error_line(-32700, "x")).unwrap();
        assert_eq!(v["id"], serde_json::Value::Null);
        assert_eq!(v["error"]["code"], -32700);
        assert_eq!(v["jsonrpc"], "2.0");
    }
}
