//! Bounding a tool result to what MCP clients accept in one message.
//!
//! A run keeps up to a megabyte of stdout (and of stderr), and a `tools/call` result carries
//! the output twice: as the text a model reads (`content`) and in the result object
//! (`structuredContent`). Over Streamable HTTP the whole reply is one Server-Sent Event, and
//! the official Python SDK refuses an event over 1 MiB by default: a call whose skill printed
//! more than about half a megabyte would fail on the client's side although the run
//! succeeded (the soak, `scripts/soak.sh`, found this). So the server shortens the output in
//! both places, dropping the middle as the runtime does, until the serialized result fits in
//! [`MAX_REPLY_BYTES`]; the result object says so (`stdout_truncated`, `stderr_truncated`).
//! The size is measured on the JSON that will be sent, so output that JSON escapes heavily
//! (control bytes) is shortened further.

use serde_json::Value;
use skillbox_skills::ToolResult;

/// Largest serialized tool result sent, in bytes: a quarter below the 1 MiB that clients
/// accept by default, leaving room for the JSON-RPC and SSE framing around it.
pub(crate) const MAX_REPLY_BYTES: usize = 768 * 1024;

/// The output kept in each place on the first attempt to shorten; halved until the result fits.
const FIRST_CAP: usize = 256 * 1024;

/// The smallest cap tried; a result that does not fit then is sent as it is (it can only be
/// that large through a skill's name or a message, which are bounded elsewhere).
const LAST_CAP: usize = 1024;

/// Shortens `out` until its serialized size is at most [`MAX_REPLY_BYTES`].
pub(crate) fn fit(out: &mut ToolResult) {
    if size(out) <= MAX_REPLY_BYTES {
        return;
    }
    let text = out.text.clone();
    let field = |name: &str| out.structured.get(name).and_then(Value::as_str).map(str::to_owned);
    let (stdout, stderr) = (field("stdout"), field("stderr"));
    let mut cap = FIRST_CAP;
    loop {
        out.text = shorten(&text, cap);
        for (name, original) in [("stdout", &stdout), ("stderr", &stderr)] {
            let Some(original) = original else { continue };
            let short = shorten(original, cap);
            if short.len() != original.len() {
                if let Some(obj) = out.structured.as_object_mut() {
                    obj.insert(format!("{name}_truncated"), Value::Bool(true));
                    obj.insert(name.to_owned(), Value::String(short));
                }
            }
        }
        if size(out) <= MAX_REPLY_BYTES || cap <= LAST_CAP {
            tracing::debug!(cap, "a tool result was shortened to fit one MCP message");
            return;
        }
        cap /= 2;
    }
}

/// The bytes `out` takes as JSON (its text and its result object), counted without keeping
/// them.
fn size(out: &ToolResult) -> usize {
    let mut counter = Counter(0);
    // Serializing a `String` or a `Value` cannot fail but for the writer, which does not.
    let _ = serde_json::to_writer(&mut counter, &out.text);
    let _ = serde_json::to_writer(&mut counter, &out.structured);
    counter.0
}

/// A writer that only counts.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `s` with its middle replaced by a note when it is longer than `cap` bytes: the first and
/// last `cap / 2` bytes kept, cut at character boundaries.
fn shorten(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_owned();
    }
    let mut head = cap / 2;
    while !s.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = s.len() - cap / 2;
    while !s.is_char_boundary(tail) {
        tail += 1;
    }
    let dropped = tail - head;
    format!(
        "{}\n[... {dropped} bytes dropped here by skillbox: the whole output does not fit in one \
         MCP message ...]\n{}",
        &s[..head],
        &s[tail..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(stdout: &str) -> ToolResult {
        ToolResult {
            is_error: false,
            text: stdout.to_owned(),
            structured: json!({"status": "success", "stdout": stdout, "stderr": "",
                               "stdout_truncated": false}),
        }
    }

    #[test]
    fn a_small_result_is_left_alone() {
        let mut out = result("hello\n");
        fit(&mut out);
        assert_eq!(out.text, "hello\n");
        assert_eq!(out.structured["stdout_truncated"], false);
    }

    #[test]
    fn a_megabyte_of_output_is_shortened_in_both_places_and_marked() {
        let big = "line of output\n".repeat(70_000); // ~1 MiB
        let mut out = result(&big);
        fit(&mut out);
        assert!(size(&out) <= MAX_REPLY_BYTES, "still {} bytes", size(&out));
        assert!(out.text.starts_with("line of output\n") && out.text.ends_with("line of output\n"));
        assert!(out.text.contains("bytes dropped here by skillbox"));
        assert_eq!(out.structured["stdout_truncated"], true);
        assert_eq!(out.structured["stdout"].as_str(), Some(out.text.as_str()));
    }

    #[test]
    fn output_that_json_escapes_heavily_is_shortened_further() {
        // Each control byte takes six bytes as JSON (`\u0001`).
        let big = "\u{1}".repeat(200_000);
        let mut out = result(&big);
        fit(&mut out);
        assert!(size(&out) <= MAX_REPLY_BYTES, "still {} bytes", size(&out));
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        let s = "é".repeat(1000);
        for cap in [1, 2, 3, 7, 100, 1999] {
            let short = shorten(&s, cap);
            assert!(short.contains("bytes dropped"), "{cap}");
        }
        assert_eq!(shorten("abc", 3), "abc");
    }
}
