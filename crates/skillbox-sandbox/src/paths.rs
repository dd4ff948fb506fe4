//! Paths as the kernel will see them.
//!
//! Every comparison of paths that protects something (is this grant inside a secret? does
//! this tree hold skillbox's own files?) is made on resolved paths: symbolic links followed,
//! `.` and `..` gone. A comparison of paths as written is defeated by one link (a
//! `SKILLBOX_HOME` that is a link into the workspace, say); Landlock itself works on the
//! objects, so the decision must too.

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
    resolve_beneath(Path::new("/"), &normalize(&absolute))
}

/// [`resolve`] for `rel` beneath `base`, which must already be resolved: only the components
/// of `rel` are looked at, one `lstat` each (a link among them is followed with
/// `canonicalize`), and the first that does not exist ends the look-up. Cheaper than
/// resolving `base.join(rel)` whole when many paths share a resolved base (a home's secrets).
pub fn resolve_beneath(base: &Path, rel: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    let mut rest = rel.components().filter(|c| matches!(c, Component::Normal(_)));
    while let Some(c) = rest.next() {
        out.push(c);
        match std::fs::symlink_metadata(&out) {
            Ok(m) if m.file_type().is_symlink() => {
                // A dangling link stays as written: what it names does not exist.
                if let Ok(target) = std::fs::canonicalize(&out) {
                    out = target;
                }
            }
            Ok(_) => {}
            Err(_) => {
                out.extend(rest);
                return out;
            }
        }
    }
    out
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
        // Beneath a resolved base: only the rest is looked at, links in it followed.
        assert_eq!(resolve_beneath(&real, Path::new("link/x")), real.join("target/x"));
        assert_eq!(resolve_beneath(&real, Path::new("nope/link")), real.join("nope/link"));
        std::os::unix::fs::symlink(real.join("gone"), real.join("dangling")).unwrap();
        assert_eq!(resolve(&real.join("dangling")), real.join("dangling"));
        assert_eq!(resolve(Path::new("/../..")), PathBuf::from("/"));
    }
}
