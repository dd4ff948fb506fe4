//! The probe harness the sandbox's confinement tests share: a small Python program makes one
//! attempt after another under a policy and prints one line per attempt, which the test then
//! asserts on by name (see `PRELUDE`); and helpers for world-accessible scratch trees, so
//! that only the sandbox stands between a child and what the test put there.
//!
//! Every run goes through the host model (`tests/hosts`): where the support matrix says a
//! policy is refused on this host, [`probe`] and [`probe_run`] check that it is, exactly,
//! and return `None`, and the test skips the rest of that check (`let Some(p) = ... else {
//! return };`); where it runs, they return what it did, its report checked against the
//! matrix.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skillbox_sandbox::{ChildOutcome, ChildSpec, ExitStatus, Policy};

pub(crate) const PYTHON: &str = "/usr/bin/python3";
pub(crate) const SH: &str = "/bin/sh";
pub(crate) const PATH_VALUE: &str = "/usr/local/bin:/usr/bin:/bin";

pub(crate) const EACCES: i32 = libc::EACCES;
pub(crate) const EPERM: i32 = libc::EPERM;
pub(crate) const ENOENT: i32 = libc::ENOENT;
pub(crate) const EXDEV: i32 = libc::EXDEV;
pub(crate) const EROFS: i32 = libc::EROFS;
/// From linux/capability.h.
pub(crate) const CAP_SYS_RESOURCE: u32 = 24;

pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub(crate) fn is_root() -> bool {
    euid() == 0
}

/// Whether this (test) process holds capability `cap` in its effective set.
pub(crate) fn has_capability(cap: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:\t")).unwrap();
    u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << cap) != 0
}

/// The strict policy (asking for a PID namespace where `SKILLBOX_TEST_PID_NAMESPACE=1`:
/// see `hosts::strict`).
pub(crate) fn strict() -> Policy {
    crate::hosts::strict()
}

/// The protected names the confinement tests give the sandbox: which names are protected is
/// the caller's policy (skillbox's list is in the skills crate); the sandbox enforces any
/// list.
pub(crate) const NAMES: &[&str] = &[".git", ".q-skills", ".claude", ".bashrc", ".profile"];

/// The strict policy, with `paths` readable.
pub(crate) fn reading(paths: &[&Path]) -> Policy {
    let mut p = strict();
    p.read = paths.iter().map(|p| p.to_path_buf()).collect();
    p
}

/// The strict policy, with `paths` writable and [`NAMES`] protected in them.
pub(crate) fn writing(paths: &[&Path]) -> Policy {
    let mut p = strict();
    p.write = paths.iter().map(|p| p.to_path_buf()).collect();
    p.protected = NAMES.iter().map(|n| n.to_string()).collect();
    p
}

/// A fresh directory any user can write to.
pub(crate) fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
    dir
}

/// A world-accessible directory `name` inside `parent`.
pub(crate) fn subdir(parent: &Path, name: &str) -> PathBuf {
    let p = parent.join(name);
    fs::create_dir_all(&p).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
    p
}

/// A world-readable (and writable) file: only the sandbox may stand in the child's way.
pub(crate) fn file(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).unwrap();
}

/// A value no file on the machine holds by chance.
pub(crate) fn unique_secret(what: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("SKILLBOX-{what}-{}-{nanos}", std::process::id())
}

/// A directory holding `secret.txt`, readable by everyone, granted to nobody.
pub(crate) struct Secret {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) file: PathBuf,
    pub(crate) value: String,
}

pub(crate) fn secret() -> Secret {
    let dir = scratch();
    let value = unique_secret("SECRET");
    let file_path = dir.path().join("secret.txt");
    file(&file_path, value.as_bytes());
    Secret { dir, file: file_path, value }
}

pub(crate) fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

pub(crate) fn hex_decode(h: &str) -> Vec<u8> {
    assert!(h.len().is_multiple_of(2), "odd hex: {h}");
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}

pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The Python every probe starts with: `attempt(name, fn)` runs `fn` and prints one line.
pub(crate) const PRELUDE: &str = r##"
import ctypes, os, socket, sys
ARGS = sys.argv[1:]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r
def attempt(name, fn):
    try:
        r = fn()
    except OSError as e:
        print(f"{name}\tERR\t{e.errno}", flush=True)
        return
    except BaseException as e:
        msg = f"{type(e).__name__}: {e}".replace("\n", " ").replace("\t", " ")
        print(f"{name}\tEXC\t{msg}", flush=True)
        return
    if r is None:
        r = b""
    elif isinstance(r, str):
        r = r.encode()
    elif not isinstance(r, bytes):
        r = repr(r).encode()
    print(f"{name}\tOK\t{r.hex()}", flush=True)
def read(p):
    with open(p, "rb") as f:
        return f.read()
def write(p, data=b"planted", mode="wb"):
    with open(p, mode) as f:
        f.write(data)
"##;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    Ok(Vec<u8>),
    Err(i32),
    Exc(String),
}

/// What a probe child did, attempt by attempt.
pub(crate) struct Probe {
    pub(crate) outcome: ChildOutcome,
    pub(crate) attempts: BTreeMap<String, Attempt>,
}

impl Probe {
    /// Whether the run's files were confined by a mount namespace of its own (its
    /// `filesystem` line names `mount-namespace`): a path outside what its root holds does
    /// not exist for it (`ENOENT`, where Landlock answers `EACCES`), and its `/proc` is its
    /// PID namespace's, where no process outside the run has an entry.
    pub(crate) fn own_root(&self) -> bool {
        self.outcome
            .enforcement
            .line(skillbox_sandbox::Guarantee::Filesystem)
            .is_some_and(|l| l.via == [skillbox_sandbox::Via::MountNamespace])
    }

    /// Whether read-only mounts stand beside Landlock (the run's `file-metadata` line names
    /// `mount-namespace` while Landlock keeps its files): a change outside the writable
    /// trees then answers `EROFS`, the read-only mount being asked before Landlock.
    pub(crate) fn read_only_beside(&self) -> bool {
        !self.own_root()
            && self
                .outcome
                .enforcement
                .line(skillbox_sandbox::Guarantee::FileMetadata)
                .is_some_and(|l| l.via == [skillbox_sandbox::Via::MountNamespace])
    }

    /// Whether the run's `/proc` is its PID namespace's (`process-visibility` enforced, or
    /// a root of its own): a pid outside the run has no entry there (`ENOENT`).
    pub(crate) fn own_proc(&self) -> bool {
        self.own_root()
            || self.outcome.enforcement.state(skillbox_sandbox::Guarantee::ProcessVisibility)
                == Some(skillbox_sandbox::MechanismState::Enforced)
    }

    pub(crate) fn context(&self) -> String {
        format!(
            "status {:?}\nstdout:\n{}\nstderr:\n{}",
            self.outcome.status,
            self.outcome.stdout.to_text(),
            self.outcome.stderr.to_text()
        )
    }

    pub(crate) fn get(&self, name: &str) -> &Attempt {
        self.attempts
            .get(name)
            .unwrap_or_else(|| panic!("attempt {name} never reported\n{}", self.context()))
    }

    /// The attempt succeeded; its result.
    pub(crate) fn ok(&self, name: &str) -> Vec<u8> {
        match self.get(name) {
            Attempt::Ok(v) => v.clone(),
            other => panic!("{name}: expected success, got {other:?}\n{}", self.context()),
        }
    }

    pub(crate) fn ok_text(&self, name: &str) -> String {
        String::from_utf8(self.ok(name)).expect("utf-8 result")
    }

    /// The attempt failed with one of `errnos`.
    pub(crate) fn err(&self, name: &str, errnos: &[i32]) -> i32 {
        match self.get(name) {
            Attempt::Err(e) if errnos.contains(e) => *e,
            other => panic!(
                "{name}: expected failure with errno in {errnos:?}, got {other:?}\n{}",
                self.context()
            ),
        }
    }

    /// The attempt was denied by the mechanism the run's report names: with one of
    /// `landlock`'s errnos, or of `own_root`'s where a root of the run's own keeps its files
    /// ([`Probe::own_root`]: a path outside it does not exist, `ENOENT`; a read-only tree
    /// answers `EROFS`).
    pub(crate) fn denied(&self, name: &str, landlock: &[i32], own_root: &[i32]) -> i32 {
        self.err(name, if self.own_root() { own_root } else { landlock })
    }

    /// A change (a file or directory created, written, removed or renamed) denied by the
    /// mechanism the run's report names: as [`Probe::denied`], but `EROFS` where read-only
    /// mounts stand beside Landlock ([`Probe::read_only_beside`]).
    pub(crate) fn denied_change(&self, name: &str, landlock: &[i32], own_root: &[i32]) -> i32 {
        match self.read_only_beside() {
            true => self.err(name, &[EROFS]),
            false => self.denied(name, landlock, own_root),
        }
    }

    /// The attempt failed in any way.
    pub(crate) fn failed(&self, name: &str) {
        if let Attempt::Ok(v) = self.get(name) {
            panic!(
                "{name}: expected a failure, but it succeeded with {:?}\n{}",
                String::from_utf8_lossy(v),
                self.context()
            );
        }
    }

    /// No trace of `secret` anywhere in what the child produced: raw streams, decoded
    /// results, or hex-encoded.
    pub(crate) fn assert_no_leak(&self, secret: &str) {
        let raw = [&self.outcome.stdout.head[..], &self.outcome.stdout.tail[..]].concat();
        let raw_err = [&self.outcome.stderr.head[..], &self.outcome.stderr.tail[..]].concat();
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        for stream in [&raw, &raw_err] {
            assert!(!contains(stream, secret.as_bytes()), "secret leaked:\n{}", self.context());
            assert!(!contains(stream, hex.as_bytes()), "secret leaked:\n{}", self.context());
        }
        for (name, a) in &self.attempts {
            if let Attempt::Ok(v) = a {
                assert!(!contains(v, secret.as_bytes()), "{name} returned the secret");
            }
        }
    }
}

pub(crate) fn probe_spec(policy: Policy, cwd: &Path, body: &str, args: &[String]) -> ChildSpec {
    let mut spec = ChildSpec::new(PYTHON, cwd);
    let script = format!("{PRELUDE}\n{body}");
    spec.args = vec!["-I".into(), "-c".into(), script.into()];
    spec.args.extend(args.iter().map(OsString::from));
    spec.policy = policy;
    spec.timeout = Duration::from_secs(30);
    spec
}

pub(crate) fn parse(outcome: ChildOutcome) -> Probe {
    assert!(!outcome.stdout.truncated(), "probe output truncated");
    let text = String::from_utf8(outcome.stdout.head.clone()).expect("utf-8 probe output");
    let mut attempts = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.splitn(3, '\t');
        let (Some(name), Some(kind), rest) = (f.next(), f.next(), f.next()) else { continue };
        let a = match (kind, rest) {
            ("OK", Some(h)) => Attempt::Ok(hex_decode(h)),
            ("ERR", Some(e)) => Attempt::Err(e.parse().expect("errno")),
            ("EXC", Some(m)) => Attempt::Exc(m.to_string()),
            _ => continue,
        };
        assert!(attempts.insert(name.to_string(), a).is_none(), "attempt {name} reported twice");
    }
    Probe { outcome, attempts }
}

/// What a test that needs its run says when the matrix refuses it (`probe(..).expect(RUNS)`):
/// the tests that pick their own simulated host (mechanisms.rs, mount_fallback.rs) pick one
/// where the run is kept, so a refusal there is a failure.
pub(crate) const RUNS: &str =
    "the support matrix refuses this run here, but this test picked a host where it runs";

/// Runs a probe to its end; it must exit 0 (every attempt reported). `None` when the
/// matrix says the policy is refused on this host and it was, exactly.
pub(crate) async fn probe_run(spec: &ChildSpec) -> Option<Probe> {
    let out = crate::hosts::run_ok(spec).await?;
    let p = parse(out);
    assert_eq!(p.outcome.status, ExitStatus::Exited(0), "probe did not finish\n{}", p.context());
    Some(p)
}

pub(crate) async fn probe(
    policy: Policy,
    cwd: &Path,
    body: &str,
    args: &[String],
) -> Option<Probe> {
    probe_run(&probe_spec(policy, cwd, body, args)).await
}

/// Names of the entries of `dir`, sorted, recursively, with file contents: a snapshot that
/// changes if anything in the tree is created, removed, renamed or rewritten.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let t = e.file_type().unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if t.is_dir() {
                stack.push(p);
                out.insert(rel, None);
            } else if t.is_symlink() {
                out.insert(rel, Some(fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()));
            } else {
                out.insert(rel, Some(fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out
}

/// `~/.config/gh` with the home writable, as a scenario both Landlock (tests/carve.rs) and
/// the mount namespace (tests/mount_fallback.rs) must hold: a writable tree with a secret
/// beneath a protected entry at its top (`.claude/gh/hosts.yml`) and one deeper
/// (`p/.git/deep/er/token`), a readable file beside each, and a free directory.
pub(crate) struct ProtectedOverSecret {
    pub(crate) tree: tempfile::TempDir,
    pub(crate) sec: Secret,
}

/// The attempts of [`ProtectedOverSecret`]: `ARGS[0]` is the tree.
pub(crate) const PROTECTED_OVER_SECRET: &str = r##"
w = ARGS[0]
attempt("top", lambda: read(w + "/.claude/gh/hosts.yml"))
attempt("deep", lambda: read(w + "/p/.git/deep/er/token"))
attempt("settings", lambda: read(w + "/.claude/settings.json"))
attempt("note", lambda: read(w + "/p/.git/deep/note"))
attempt("settings_write", lambda: write(w + "/.claude/settings.json", b"x", "ab"))
attempt("note_write", lambda: write(w + "/p/.git/deep/note", b"x", "ab"))
attempt("claude_create", lambda: write(w + "/.claude/new", b"x", "xb"))
attempt("deep_create", lambda: write(w + "/p/.git/deep/new", b"x", "xb"))
attempt("gh_rename", lambda: os.rename(w + "/.claude/gh", w + "/.claude/gh2"))
attempt("free_create", lambda: write(w + "/free/new", b"x", "xb"))
"##;

impl ProtectedOverSecret {
    pub(crate) fn new() -> Self {
        let sec = secret();
        let tree = scratch();
        let w = tree.path();
        subdir(w, ".claude/gh");
        subdir(w, "p/.git/deep/er");
        subdir(w, "free");
        fs::copy(&sec.file, w.join(".claude/gh/hosts.yml")).unwrap();
        fs::copy(&sec.file, w.join("p/.git/deep/er/token")).unwrap();
        file(&w.join(".claude/settings.json"), b"{}\n");
        file(&w.join("p/.git/deep/note"), b"note");
        ProtectedOverSecret { tree, sec }
    }

    /// The tree writable, its protected names protected and its two secrets hidden.
    pub(crate) fn policy(&self) -> Policy {
        let w = self.tree.path();
        let mut p = writing(&[w]);
        p.hidden = vec![w.join(".claude/gh"), w.join("p/.git/deep/er/token")];
        p
    }

    /// What the run of [`Self::policy`] must have done: neither secret read, the protected
    /// entries readable and unchanged, the free directory writable.
    pub(crate) fn check(&self, p: &Probe) {
        let w = self.tree.path();
        p.err("top", &[EACCES]);
        p.err("deep", &[EACCES]);
        assert_eq!(p.ok("settings"), b"{}\n");
        assert_eq!(p.ok("note"), b"note");
        for name in ["settings_write", "note_write", "claude_create", "deep_create", "gh_rename"] {
            p.failed(name);
        }
        p.ok("free_create");
        p.assert_no_leak(&self.sec.value);
        assert!(!w.join(".claude/new").exists() && !w.join("p/.git/deep/new").exists());
        assert_eq!(fs::read(w.join(".claude/settings.json")).unwrap(), b"{}\n");
    }

    /// The control: the same grant without the hidden paths reads both secrets.
    pub(crate) fn check_control(&self, p: &Probe) {
        assert_eq!(p.ok("top"), self.sec.value.as_bytes());
        assert_eq!(p.ok("deep"), self.sec.value.as_bytes());
    }
}
