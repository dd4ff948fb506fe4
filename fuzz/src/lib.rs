//! What the fuzz targets share: reading several files out of one input, a scratch directory,
//! and the checks every message shown to a person must pass.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use skillbox_audit::text::{escape_controls, Lines};

/// The files of one input, in order: `(name, bytes)`.
///
/// An input holds several files one after the other, each started by a line
/// `==> NAME <==` (as `head` prints several files); the bytes before the first such line
/// are the file `first`. Corpus files stay readable and editable, and the fuzzer can move
/// bytes between the files. A marker line is not part of any file; the newline before it
/// belongs to the file it ends.
pub fn sections<'a>(data: &'a [u8], first: &'a str) -> Vec<(&'a [u8], &'a [u8])> {
    let mut out = Vec::new();
    let mut name: &[u8] = first.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    while pos < data.len() {
        let end = data[pos..].iter().position(|&b| b == b'\n').map_or(data.len(), |i| pos + i);
        let line = &data[pos..end];
        if let Some(n) = line.strip_prefix(b"==> ").and_then(|l| l.strip_suffix(b" <==")) {
            out.push((name, &data[start..pos]));
            name = n;
            start = (end + 1).min(data.len());
        }
        pos = end + 1;
    }
    out.push((name, &data[start.min(data.len())..]));
    out
}

/// The bytes of the file `name` in `sections`, if the input has one (the first if several).
pub fn file<'a>(sections: &[(&[u8], &'a [u8])], name: &str) -> Option<&'a [u8]> {
    sections.iter().find(|(n, _)| *n == name.as_bytes()).map(|(_, b)| *b)
}

/// A directory of this process's own, for the files a target reads back. Never removed by
/// the process (libFuzzer ends it with `exit`, or a crash does): it is made in
/// `$SKILLBOX_FUZZ_SCRATCH`, which `scripts/fuzz.sh` removes afterwards, or else in the
/// temporary directory.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let parent = std::env::var_os("SKILLBOX_FUZZ_SCRATCH")
            .map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = tempfile::Builder::new()
            .prefix("skillbox-fuzz-")
            .tempdir_in(parent)
            .expect("a temporary directory");
        dir.keep()
    })
}

/// Writes `bytes` to `path`, or removes `path` when `bytes` is `None`.
pub fn put(path: &Path, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => std::fs::write(path, b).expect("the scratch directory is writable"),
        None => match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {}: {e}", path.display()),
        },
    }
}

/// Asserts that `shown` (a message for a person) is one line without raw control
/// characters: what escaping it would change, it must not hold.
pub fn assert_one_safe_line(what: &str, shown: &str) {
    assert!(!shown.contains(['\n', '\r']), "{what} is not one line: {shown:?}");
    assert_eq!(
        escape_controls(shown, Lines::Escape),
        shown,
        "{what} holds control characters that are not escaped: {shown:?}"
    );
}

/// `path` as messages show it: its bytes that are not UTF-8 as `\xNN`, control characters
/// escaped.
pub fn shown_path(path: &Path) -> String {
    escape_controls(&skillbox_audit::text::path(path), Lines::Escape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_split_at_marker_lines() {
        let s = sections(b"a\nb\n==> x <==\nc\n==> y <==\n", "first");
        let s: Vec<(&[u8], &[u8])> = s.into_iter().collect();
        assert_eq!(s, vec![(&b"first"[..], &b"a\nb\n"[..]), (b"x", b"c\n"), (b"y", b"")]);
        let s = sections(b"==> x <==", "first");
        assert_eq!(s, vec![(&b"first"[..], &b""[..]), (b"x", b"")]);
        let s = sections(b"plain", "first");
        assert_eq!(s, vec![(&b"first"[..], &b"plain"[..])]);
    }
}
