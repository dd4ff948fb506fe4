//! Read-only means read-only, in every respect (issue 21): what a run may only read keeps
//! its mode, owner, timestamps and extended attributes. Landlock does not mediate `chmod`,
//! `chown`, `utimensat` or `setxattr`; the run's own mount namespace shows everything but
//! its writable trees read-only (`EROFS`), and protected entries and hidden paths beneath
//! those too.
//!
//! An attack program tries each change on: a file and a directory the run may only read (a
//! workspace at `untrusted`), a protected entry of a writable workspace
//! (`.git/hooks/pre-commit`, and `.git` itself), a hidden path beneath it, a file outside
//! every grant that it can name, a system file, and `/dev/null` through its stdin. Each is
//! checked by its effect: the host sees the same mode, owner, times (`ctime` moves with any
//! change of metadata) and extended attributes after the run as before. Controls: the same
//! changes succeed in the writable tree and in the run's private directory, and the devices
//! still work.
//!
//! The body runs on this host, and again under each simulated host of
//! [`simulate::PROFILES`]: where the run has user namespaces (at every Landlock ABI, and
//! without Landlock, where the run's own root keeps files) every change fails; without them
//! `file-metadata` is `not-enforced`, the run is refused, and run anyway (weaker isolation
//! asked for) the changes go through, as the report says.
//!
//! Runs as root and as `nobody`: every file is the test user's, so that without the mount
//! namespace each change would succeed.

mod hosts;
mod probe;
mod simulate;
use probe::*;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use skillbox_sandbox::{Guarantee, MechanismState, Policy, Via};

const EROFS: i32 = libc::EROFS;
const ENOENT: i32 = libc::ENOENT;

/// What the host sees of a file's metadata.
#[derive(Debug, PartialEq, Eq)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
    xattrs: Vec<(String, Vec<u8>)>,
}

fn meta(p: &Path) -> Meta {
    let m = fs::symlink_metadata(p).unwrap();
    Meta {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        xattrs: xattrs(p),
    }
}

/// The `user.` extended attributes of `p`, with their values.
fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let c = std::ffi::CString::new(s(p)).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: llistxattr writes at most `names.len()` bytes into `names`.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0, "llistxattr {}: {}", p.display(), std::io::Error::last_os_error());
    let mut out = Vec::new();
    for name in names[..n as usize].split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        let cname = std::ffi::CString::new(name).unwrap();
        let mut value = vec![0u8; 4096];
        // SAFETY: lgetxattr writes at most `value.len()` bytes into `value`.
        let v = unsafe {
            libc::lgetxattr(c.as_ptr(), cname.as_ptr(), value.as_mut_ptr().cast(), value.len())
        };
        assert!(v >= 0);
        value.truncate(v as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    out
}

/// Sets `user.kept` on `p`, so that removing an attribute is among the attacks.
fn keep_xattr(p: &Path) {
    let c = std::ffi::CString::new(s(p)).unwrap();
    // SAFETY: reads the NUL-terminated name and the 4 bytes of the value.
    let r = unsafe {
        libc::lsetxattr(c.as_ptr(), c"user.kept".as_ptr(), b"kept".as_ptr().cast(), 4, 0)
    };
    assert_eq!(r, 0, "user xattrs on {}: {}", p.display(), std::io::Error::last_os_error());
}

/// The attacks: for each `tag=path` argument, every change of metadata by path, and by a
/// descriptor where `tag` ends in `+fd` (a file the run may open: its mode, and its inode
/// flags as `chattr` sets them); `/dev/null` through its
/// stdin (to its own mode: harmless should it ever succeed); a system file to its own mode;
/// and the devices a program needs.
const ATTACKS: &str = r##"
import stat
for arg in ARGS:
    tag, p = arg.split("=", 1)
    by_fd = tag.endswith("+fd")
    tag = tag.removesuffix("+fd")
    attempt(tag + "_chmod", lambda: os.chmod(p, 0o755))
    attempt(tag + "_chown", lambda: os.chown(p, os.getuid(), os.getgid()))
    attempt(tag + "_utime", lambda: os.utime(p, (1, 1)))
    attempt(tag + "_touch", lambda: os.utime(p, None))
    attempt(tag + "_setxattr", lambda: os.setxattr(p, "user.planted", b"x"))
    attempt(tag + "_removexattr", lambda: os.removexattr(p, "user.kept"))
    if by_fd:
        def fchmod(p=p):
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fchmod(fd, 0o755)
            finally:
                os.close(fd)
        attempt(tag + "_fchmod", fchmod)
        def chattr(p=p):
            # The inode flags (`chattr`), set to what they are: FS_IOC_GETFLAGS, SETFLAGS.
            import array, fcntl
            fd = os.open(p, os.O_RDONLY)
            try:
                flags = array.array("l", [0])
                fcntl.ioctl(fd, 0x80086601, flags, True)
                fcntl.ioctl(fd, 0x40086602, flags, True)
            finally:
                os.close(fd)
        attempt(tag + "_chattr", chattr)
attempt("stdin_fchmod", lambda: os.fchmod(0, stat.S_IMODE(os.fstat(0).st_mode)))
etc = "/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/os-release"
attempt("system_chmod", lambda: os.chmod(etc, stat.S_IMODE(os.stat(etc).st_mode)))
attempt("dev_null", lambda: write("/dev/null", b"x"))
attempt("dev_zero", lambda: read_n("/dev/zero"))
attempt("dev_urandom", lambda: str(len(read_n("/dev/urandom"))))
"##;

const READ_N: &str = r##"
def read_n(p):
    with open(p, "rb") as f:
        return f.read(16)
"##;

/// The trees of the attack: a workspace the run may only read, a writable workspace with a
/// protected entry and a hidden path, a directory outside every grant, and the run's private
/// directory.
struct Trees {
    readonly: tempfile::TempDir,
    workspace: tempfile::TempDir,
    outside: tempfile::TempDir,
    private: tempfile::TempDir,
}

impl Trees {
    fn new() -> Self {
        let t = Trees {
            readonly: scratch(),
            workspace: scratch(),
            outside: scratch(),
            private: scratch(),
        };
        file(&t.readonly.path().join("notes.txt"), b"read only");
        let w = t.workspace.path();
        subdir(w, ".git/hooks");
        // A hook the user disabled (not executable): the attack makes it executable again.
        file(&w.join(".git/hooks/pre-commit"), b"#!/bin/sh\necho planted\n");
        subdir(w, "src");
        file(&w.join("src/main.c"), b"int main;");
        subdir(w, "keys");
        file(&w.join("keys/id.key"), b"secret");
        file(&t.outside.path().join("elsewhere.txt"), b"outside");
        file(&t.private.path().join("scratch.txt"), b"private");
        for p in t.targets().iter().chain(t.controls().iter()).map(|(_, p)| p) {
            keep_xattr(p);
        }
        t
    }

    /// What the run may not change: `(tag, path)`; a tag ending in `+fd` is also attacked
    /// through a descriptor.
    fn targets(&self) -> Vec<(&'static str, PathBuf)> {
        let w = self.workspace.path();
        vec![
            ("readonly+fd", self.readonly.path().join("notes.txt")),
            ("readonly_dir+fd", self.readonly.path().to_path_buf()),
            ("hook+fd", w.join(".git/hooks/pre-commit")),
            ("git_dir+fd", w.join(".git")),
            ("hidden", w.join("keys/id.key")),
            ("outside", self.outside.path().join("elsewhere.txt")),
        ]
    }

    /// What the run may change: the writable tree and its private directory.
    fn controls(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            ("writable+fd", self.workspace.path().join("src/main.c")),
            ("private+fd", self.private.path().join("scratch.txt")),
        ]
    }

    /// The run's policy: the read-only workspace readable, the other writable (and guarded,
    /// as a workspace is), `keys/` hidden, the private directory scratch.
    fn policy(&self) -> Policy {
        let mut p = writing(&[self.workspace.path()]);
        p.read = vec![self.readonly.path().to_path_buf()];
        p.guarded = vec![self.workspace.path().to_path_buf()];
        p.hidden = vec![self.workspace.path().join("keys")];
        p.scratch = vec![self.private.path().to_path_buf()];
        p.pid_namespace = true;
        p
    }

    fn args(&self) -> Vec<String> {
        self.targets()
            .iter()
            .chain(self.controls().iter())
            .map(|(tag, p)| format!("{tag}={}", s(p)))
            .collect()
    }
}

fn tag(t: &str) -> &str {
    t.trim_end_matches("+fd")
}

const BY_PATH: [&str; 6] = ["chmod", "chown", "utime", "touch", "setxattr", "removexattr"];

/// The attack, on the host this process runs on (`profile`: the simulated one, or `full`).
async fn attack(profile: &str) {
    let t = Trees::new();
    let before: Vec<Meta> = t.targets().iter().map(|(_, p)| meta(p)).collect();
    let body = format!("{READ_N}{ATTACKS}");
    let mut spec = probe_spec(t.policy(), t.workspace.path(), &body, &t.args());
    let kept = simulate::has_user_namespaces(profile);
    if !kept {
        // No mount namespace here: the run is refused, naming the guarantee ...
        // (the refusal is judged against the support matrix: it names exactly what the
        // matrix says is missing here, `file-metadata` among it)
        let missing = hosts::expect(&spec).missing();
        assert!(missing.contains(&Guarantee::FileMetadata), "{profile}: {missing:?}");
        hosts::assert_refused(&spec).await;
        spec.allow_weaker = true;
    }
    let p = probe_run(&spec).await.expect(RUNS);
    let line = p.outcome.enforcement.line(Guarantee::FileMetadata).unwrap().clone();
    if !kept {
        assert_eq!(line.state, MechanismState::NotEnforced, "{profile}: {line:?}");
        p.ok("hook_chmod");
        assert_ne!(meta(&t.workspace.path().join(".git/hooks/pre-commit")), before[2]);
        return;
    }
    assert_eq!(line.state, MechanismState::Enforced, "{profile}: {line:?}");
    assert_eq!(line.via, vec![Via::MountNamespace], "{profile}: {line:?}");
    let own_root = simulate::without_landlock(profile);
    for (t_, _) in t.targets() {
        let name = tag(t_);
        // Under the run's own root (no Landlock), what is outside the grants is not there,
        // and a hidden path is covered by an empty directory nobody may search.
        let errno = match name {
            "outside" if own_root => ENOENT,
            "hidden" if own_root => EACCES,
            _ => EROFS,
        };
        for what in BY_PATH {
            p.err(&format!("{name}_{what}"), &[errno]);
        }
        if t_.ends_with("+fd") {
            p.err(&format!("{name}_fchmod"), &[EROFS]);
            p.err(&format!("{name}_chattr"), &[EROFS]);
        }
    }
    p.err("stdin_fchmod", &[EROFS]);
    p.err("system_chmod", &[EROFS]);
    // The host sees every target as it was.
    for ((name, path), was) in t.targets().iter().zip(&before) {
        assert_eq!(&meta(path), was, "{profile}: {name} ({}) changed", path.display());
    }
    // Controls: the writable tree and the private directory take every change.
    for (t_, path) in t.controls() {
        let name = tag(t_);
        for what in BY_PATH.iter().chain(["fchmod", "chattr"].iter()) {
            p.ok(&format!("{name}_{what}"));
        }
        let m = meta(&path);
        assert_eq!(m.mode & 0o7777, 0o755, "{profile}: {name}");
        assert!(m.xattrs.iter().any(|(n, _)| n == "user.planted"), "{profile}: {name}");
        assert!(!m.xattrs.iter().any(|(n, _)| n == "user.kept"), "{profile}: {name}");
    }
    p.ok("dev_null");
    assert_eq!(p.ok("dev_zero"), vec![0u8; 16]);
    assert_eq!(p.ok_text("dev_urandom"), "16");
}

/// On this host and on every simulated one: what the run may only read keeps its metadata
/// where the run has a mount namespace of its own, and the run is refused where it cannot.
#[tokio::test]
async fn what_a_run_may_only_read_keeps_its_mode_owner_times_and_attributes() {
    attack("full").await;
    for profile in simulate::PROFILES {
        simulate::under(profile, "helper_attack_under_a_simulated_host");
    }
}

#[tokio::test]
#[ignore = "helper of what_a_run_may_only_read_keeps_its_mode_owner_times_and_attributes"]
async fn helper_attack_under_a_simulated_host() {
    let Some(profile) = simulate::profile() else { return };
    attack(&profile).await;
}
