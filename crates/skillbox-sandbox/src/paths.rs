//! Paths as the kernel will see them.
//!
//! Every comparison of paths that protects something (is this grant inside a secret? does
//! this tree hold skillbox's own files?) is made on resolved paths: symbolic links followed,
//! `.` and `..` gone. A comparison of paths as written is defeated by one link (a
//! `SKILLBOX_HOME` that is a link into the workspace, say); Landlock itself works on the
//! objects, so the decision must too.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// `p` resolved: the canonical form (links followed) of its longest prefix that exists,
/// followed by the rest of its components as written. `.` and `..` are removed lexically
/// first, as the skill file's paths are read; a relative `p` is taken from the current
/// directory.
///
/// A path that does not exist yet still resolves, so that a grant can be compared with a
/// secret before either is created.
pub fn resolve(p: &Path) -> PathBuf {
    let absolute = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")).join(p)
    };
    let lexical = normalize(&absolute);
    let mut existing = lexical.as_path();
    let mut rest: Vec<OsString> = Vec::new();
    loop {
        if let Ok(mut canonical) = std::fs::canonicalize(existing) {
            for name in rest.iter().rev() {
                canonical.push(name);
            }
            return canonical;
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            // Only `/` has no parent, and `/` always resolves.
            _ => return lexical,
        }
    }
}

/// `p` with `.` removed and `..` applied to the components before it, without touching the
/// disk. `..` above the root stays at the root.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_followed_and_missing_tails_kept() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().canonicalize().unwrap();
        std::fs::create_dir(real.join("target")).unwrap();
        std::os::unix::fs::symlink(real.join("target"), real.join("link")).unwrap();
        assert_eq!(resolve(&real.join("link")), real.join("target"));
        assert_eq!(resolve(&real.join("link/not/yet")), real.join("target/not/yet"));
        assert_eq!(resolve(&real.join("a/../link/./x")), real.join("target/x"));
        assert_eq!(resolve(Path::new("/")), PathBuf::from("/"));
        assert_eq!(resolve(Path::new("/../..")), PathBuf::from("/"));
    }
}
