//! Text from outside, made safe to show: the one function every layer uses before it prints
//! or records something a skill, a file name or a caller controls.
//!
//! A skill's output, a parameter, a file name or an MCP tool name can hold terminal escape
//! sequences (move the cursor, retitle the terminal, hide a line), newlines (forge a second
//! line of a message or a log), or Unicode controls that reorder what is shown (a right-to-
//! left override makes `exe.txt` read as `txt.exe`). Escaping is done in one place so that
//! every layer escapes the same characters.

/// Whether newlines and tabs are kept (a program's output, shown as it is laid out) or
/// escaped too (a name or a value that must stay on one line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// `\n` and `\t` are kept; every other control character is escaped.
    Keep,
    /// Every control character, `\n` and `\t` included, is escaped.
    Escape,
}

/// `s` with its control characters escaped (as Rust's `char::escape_default` writes them:
/// `\n`, `\r`, `\u{1b}`): C0 and C1 controls and DEL, and the Unicode characters that reorder
/// or hide text (bidirectional embeddings, overrides, isolates and marks, U+200B to U+200F,
/// U+202A to U+202E, U+2060 to U+2069, U+061C, U+FEFF). Newlines and tabs as `lines` says.
pub fn escape_controls(s: &str, lines: Lines) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if lines == Lines::Keep => out.push(c),
            c if hides_or_controls(c) => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// [`escape_controls`] on one line, cut to `max` characters (with `…` when cut).
pub fn one_line(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    let mut out = escape_controls(&cut, Lines::Escape);
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// A path as text that can always be shown and serialized: its UTF-8 parts as they are, each
/// byte that is not UTF-8 as `\xNN` (as Rust's `Debug` of an `OsStr` writes it).
///
/// serde's own `Serialize` for `Path` fails on such a path (Linux allows any byte but `/` and
/// NUL in a name), and `serde_json::json!` turns that failure into a panic: a workspace or a
/// skill file under a directory named in Latin-1 took every command down. Every path that
/// skillbox prints or records goes through this (or [`serde_path`]). Borrowed when the path is
/// UTF-8, which is nearly always.
pub fn path(p: &std::path::Path) -> std::borrow::Cow<'_, str> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = p.as_os_str().as_bytes();
    if let Ok(s) = std::str::from_utf8(bytes) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `#[serde(serialize_with = ...)]` helpers that write paths as [`path`] does, so that a
/// struct holding paths serializes whatever bytes its paths hold.
pub mod serde_path {
    use std::path::{Path, PathBuf};

    /// One path.
    pub fn one<S: serde::Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::path(p))
    }

    /// A list of paths.
    pub fn many<S: serde::Serializer>(ps: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ps.iter().map(|p| super::path(p)))
    }

    /// A path that may be absent.
    pub fn maybe<S: serde::Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_some(&super::path(p)),
            None => s.serialize_none(),
        }
    }
}

fn hides_or_controls(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_newlines_and_reordering_are_escaped() {
        assert_eq!(escape_controls("a\x1b[2Jb", Lines::Keep), "a\\u{1b}[2Jb");
        assert_eq!(escape_controls("x\ny\tz\r", Lines::Keep), "x\ny\tz\\r");
        assert_eq!(escape_controls("x\ny", Lines::Escape), "x\\ny");
        assert_eq!(escape_controls("exe\u{202E}txt", Lines::Escape), "exe\\u{202e}txt");
        assert_eq!(escape_controls("\u{85}\u{7f}", Lines::Keep), "\\u{85}\\u{7f}");
        // Printable text of any script is left alone.
        assert_eq!(escape_controls("héllo 世界 ✓", Lines::Escape), "héllo 世界 ✓");
    }

    #[test]
    fn a_path_that_is_not_utf8_is_shown_with_its_bytes_escaped() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let p = std::path::Path::new(OsStr::from_bytes(b"/w/ws\xff/caf\xc3\xa9/\xe9t\xe9"));
        assert_eq!(path(p), "/w/ws\\xFF/café/\\xE9t\\xE9");
        // The same as Rust's own Debug of the OsStr, without its quotes.
        assert_eq!(format!("{:?}", p.as_os_str()), format!("\"{}\"", path(p)));
        assert!(matches!(path(std::path::Path::new("/a/b")), std::borrow::Cow::Borrowed("/a/b")));
        let v = serde_json::json!({ "p": path(p) });
        assert_eq!(v["p"], "/w/ws\\xFF/café/\\xE9t\\xE9");
    }

    #[test]
    fn one_line_cuts_and_marks_the_cut() {
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("abc", 3), "abc");
        assert_eq!(one_line("a\nb", 10), "a\\nb");
    }
}
