//! Integration tests for confinement: real children started by `skillbox_sandbox::run` under
//! a confining [`Policy`], checked by their effects, one guarantee of the threat model
//! (`shared/reference/threat-model.md`) per test.
//!
//! Most children are a small Python program (`PRELUDE` plus a body) that makes one attempt
//! after another and prints one line per attempt: `name\tOK\t<hex of the result>`,
//! `name\tERR\t<errno>` or `name\tEXC\t<exception>`. The test then asserts on each attempt by
//! name, and, where a secret is involved, that no byte of it reached the output in any form.
//! Every denial is paired with a positive control (the same attempt succeeding where it is
//! granted, or an unconfined run succeeding), so that a broken setup fails loudly instead of
//! passing.
//!
//! The tests pass as root and as an unprivileged user (`setpriv --reuid=nobody ...`): scratch
//! directories are world-accessible, secrets are world-readable files (so only the sandbox
//! can stand between them and the child), and where behaviour legitimately differs by uid
//! (the capability bounding set, binding port 443) the test branches on `geteuid()`.

mod common;
mod probe;
use common::{is_running, wait_until_dead};
use probe::*;
use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use skillbox_sandbox::{
    run, ChildSpec, ExitStatus, Guarantee, MechanismState, NetworkAccess, Policy, ProcessAccess,
    SandboxError,
};

const SH: &str = "/bin/sh";
const PATH_VALUE: &str = "/usr/local/bin:/usr/bin:/bin";

// ---------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------

fn euid() -> u32 {
    // SAFETY: geteuid has no failure mode and touches no memory.
    unsafe { libc::geteuid() }
}

fn is_root() -> bool {
    euid() == 0
}

/// Whether this (test) process holds capability `cap` in its effective set.
fn has_capability(cap: u32) -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:\t")).unwrap();
    u64::from_str_radix(eff.trim(), 16).unwrap() & (1 << cap) != 0
}

/// Waits (at most 10 s) for a complete `pid\n` file and returns the pid.
async fn wait_for_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim().parse().expect("a pid");
            }
        }
        assert!(Instant::now() < deadline, "{} was never written", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn strict() -> Policy {
    Policy::strict()
}

/// The protected names these tests give the sandbox: which names are protected is the
/// caller's policy (skillbox's list is in the skills crate); the sandbox enforces any list.
const NAMES: &[&str] = &[".git", ".q-skills", ".claude", ".bashrc", ".profile"];

fn reading(paths: &[&Path]) -> Policy {
    let mut p = Policy::strict();
    p.read = paths.iter().map(|p| p.to_path_buf()).collect();
    p
}

fn writing(paths: &[&Path]) -> Policy {
    let mut p = Policy::strict();
    p.write = paths.iter().map(|p| p.to_path_buf()).collect();
    p.protected = NAMES.iter().map(|n| n.to_string()).collect();
    p
}

const EACCES: i32 = libc::EACCES;
const EPERM: i32 = libc::EPERM;
const EXDEV: i32 = libc::EXDEV;
/// From linux/capability.h.
const CAP_SYS_RESOURCE: u32 = 24;

// ---------------------------------------------------------------------------------------
// 1. files
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_secret_outside_the_grants_stays_unread() {
    let sec = secret();
    let granted = scratch();
    file(&granted.path().join("plain.txt"), b"plain");
    let body = r##"
attempt("read_secret", lambda: read(ARGS[0]))
attempt("list_secret_dir", lambda: "\n".join(os.listdir(ARGS[1])))
attempt("read_plain", lambda: read(ARGS[2]))
"##;
    let args = [s(&sec.file), s(sec.dir.path()), s(&granted.path().join("plain.txt"))];

    let p = probe(reading(&[granted.path()]), granted.path(), body, &args).await;
    p.err("read_secret", &[EACCES]);
    p.err("list_secret_dir", &[EACCES]);
    assert_eq!(p.ok("read_plain"), b"plain");
    p.assert_no_leak(&sec.value);

    // Control: granted, the same read returns the secret.
    let p = probe(reading(&[granted.path(), sec.dir.path()]), granted.path(), body, &args).await;
    assert_eq!(p.ok_text("read_secret"), sec.value);
    assert!(p.ok_text("list_secret_dir").contains("secret.txt"));
}

#[tokio::test]
async fn etc_secrets_are_hidden_and_ordinary_etc_files_readable() {
    let ordinary = ["/etc/hostname", "/etc/os-release", "/etc/debian_version", "/etc/hosts"]
        .into_iter()
        .find(|p| fs::read(p).is_ok_and(|c| !c.is_empty()))
        .expect("no ordinary, non-empty /etc file on this host");
    let passwd = fs::read("/etc/passwd").expect("the test can read /etc/passwd");
    assert!(contains(&passwd, b"root:"), "control: /etc/passwd names root");
    let body = r##"
for name, path in [("shadow", "/etc/shadow"), ("passwd", "/etc/passwd"),
                   ("gshadow", "/etc/gshadow"), ("ordinary", ARGS[0])]:
    attempt(name, lambda: read(path))
attempt("list_etc", lambda: "\n".join(os.listdir("/etc")))
"##;
    let p = probe(strict(), Path::new("/"), body, &[ordinary.to_string()]).await;
    p.err("passwd", &[EACCES]);
    // Absent on some hosts; never readable.
    p.err("shadow", &[EACCES, libc::ENOENT]);
    p.err("gshadow", &[EACCES, libc::ENOENT]);
    assert_eq!(p.ok("ordinary"), fs::read(ordinary).unwrap());
    // The directory itself can be listed (names only).
    assert!(p.ok_text("list_etc").lines().any(|l| l == "passwd"));
    let all = p.outcome.stdout.to_text();
    assert!(!all.contains("root:"), "account data leaked: {all}");
    let passwd_hex: String = passwd.iter().take(16).map(|b| format!("{b:02x}")).collect();
    assert!(!all.contains(&passwd_hex), "account data leaked: {all}");
    if is_root() {
        // Control: as root the test itself reads /etc/shadow, so the denial is the sandbox's.
        if Path::new("/etc/shadow").exists() {
            assert!(fs::read("/etc/shadow").is_ok(), "control: root reads /etc/shadow");
        }
    }
}

#[tokio::test]
async fn writes_outside_the_write_grant_leave_no_file_behind() {
    let outside = scratch();
    file(&outside.path().join("existing.txt"), b"original");
    let before = snapshot(outside.path());
    let work = scratch();
    let tmp_name = PathBuf::from(format!("/tmp/{}", unique_secret("planted")));
    let body = r##"
d = ARGS[0]
attempt("create", lambda: write(d + "/new.txt"))
attempt("create_excl", lambda: write(d + "/excl.txt", mode="xb"))
attempt("append", lambda: write(d + "/existing.txt", b"more", "ab"))
attempt("truncate_open", lambda: write(d + "/existing.txt", b"", "wb"))
attempt("truncate", lambda: os.truncate(d + "/existing.txt", 0))
attempt("mkdir", lambda: os.mkdir(d + "/newdir"))
attempt("symlink", lambda: os.symlink("/etc/hostname", d + "/link"))
attempt("mkfifo", lambda: os.mkfifo(d + "/fifo"))
attempt("unlink", lambda: os.unlink(d + "/existing.txt"))
attempt("rename", lambda: os.rename(d + "/existing.txt", d + "/renamed.txt"))
attempt("tmp", lambda: write(ARGS[1]))
"##;
    let args = [s(outside.path()), s(&tmp_name)];
    let p = probe(writing(&[work.path()]), work.path(), body, &args).await;
    for name in [
        "create",
        "create_excl",
        "append",
        "truncate_open",
        "truncate",
        "mkdir",
        "symlink",
        "mkfifo",
        "unlink",
        "rename",
        "tmp",
    ] {
        p.err(name, &[EACCES]);
    }
    let exists = tmp_name.exists();
    let _ = fs::remove_file(&tmp_name);
    assert!(!exists, "{} was created outside the grant", tmp_name.display());
    assert_eq!(snapshot(outside.path()), before, "the directory outside the grant changed");

    // Control: the same attempts in the granted directory all succeed.
    let p =
        probe(writing(&[work.path()]), work.path(), body, &[s(work.path()), s(&tmp_name)]).await;
    for name in ["create", "create_excl", "mkdir", "symlink", "mkfifo"] {
        p.ok(name);
    }
    assert_eq!(fs::read(work.path().join("new.txt")).unwrap(), b"planted");
    assert!(work.path().join("newdir").is_dir());
    p.err("tmp", &[EACCES]);
    assert!(!tmp_name.exists());
}

#[tokio::test]
async fn a_symlink_in_a_granted_dir_does_not_reach_the_secret() {
    let sec = secret();
    let granted = scratch();
    let g = granted.path();
    file(&g.join("plain.txt"), b"plain");
    std::os::unix::fs::symlink(&sec.file, g.join("file-link")).unwrap();
    std::os::unix::fs::symlink(sec.dir.path(), g.join("dir-link")).unwrap();
    // A relative link, as a cloned repository would carry.
    let rel = PathBuf::from(format!(
        "../{}/secret.txt",
        sec.dir.path().file_name().unwrap().to_str().unwrap()
    ));
    std::os::unix::fs::symlink(&rel, g.join("rel-link")).unwrap();
    assert_eq!(fs::read_to_string(g.join("rel-link")).unwrap(), sec.value, "control: link works");
    let body = r##"
g = ARGS[0]
attempt("file_link", lambda: read(g + "/file-link"))
attempt("dir_link", lambda: read(g + "/dir-link/secret.txt"))
attempt("rel_link", lambda: read(g + "/rel-link"))
attempt("dir_link_list", lambda: "\n".join(os.listdir(g + "/dir-link")))
attempt("plain", lambda: read(g + "/plain.txt"))
"##;
    let p = probe(reading(&[g]), g, body, &[s(g)]).await;
    for name in ["file_link", "dir_link", "rel_link", "dir_link_list"] {
        p.err(name, &[EACCES]);
    }
    assert_eq!(p.ok("plain"), b"plain");
    p.assert_no_leak(&sec.value);

    // Control: with the target granted too, the links lead to the secret.
    let p = probe(reading(&[g, sec.dir.path()]), g, body, &[s(g)]).await;
    assert_eq!(p.ok_text("file_link"), sec.value);
    assert_eq!(p.ok_text("rel_link"), sec.value);
}

#[tokio::test]
async fn dot_dot_from_a_granted_dir_does_not_reach_the_secret() {
    let parent = scratch();
    let granted = subdir(parent.path(), "granted");
    let secret_dir = subdir(parent.path(), "secret");
    let value = unique_secret("DOTDOT");
    file(&secret_dir.join("secret.txt"), value.as_bytes());
    let body = r##"
g = ARGS[0]
attempt("absolute", lambda: read(g + "/../secret/secret.txt"))
attempt("relative", lambda: read("../secret/secret.txt"))
attempt("deep", lambda: read(g + "/./../granted/../secret/./secret.txt"))
attempt("list_parent", lambda: "\n".join(os.listdir("..")))
attempt("chdir_then_read", lambda: (os.chdir(".."), read("secret/secret.txt"))[1])
"##;
    let p = probe(reading(&[&granted]), &granted, body, &[s(&granted)]).await;
    for name in ["absolute", "relative", "deep", "list_parent", "chdir_then_read"] {
        p.err(name, &[EACCES]);
    }
    p.assert_no_leak(&value);

    // Control: granting the parent makes the same paths readable.
    let p = probe(reading(&[parent.path()]), &granted, body, &[s(&granted)]).await;
    assert_eq!(p.ok_text("relative"), value);
    assert_eq!(p.ok_text("deep"), value);
}

#[tokio::test]
async fn proc_self_root_and_cwd_do_not_reach_the_secret() {
    let sec = secret();
    let granted = scratch();
    let g = granted.path();
    let body = r##"
secret, parent_pid = ARGS[0], ARGS[1]
attempt("self_root", lambda: read("/proc/self/root" + secret))
attempt("thread_self_root", lambda: read("/proc/thread-self/root" + secret))
attempt("self_cwd_up", lambda: read("/proc/self/cwd/../" + os.path.basename(os.path.dirname(secret)) + "/secret.txt"))
attempt("parent_root", lambda: read("/proc/" + parent_pid + "/root" + secret))
attempt("parent_cwd", lambda: os.listdir("/proc/" + parent_pid + "/cwd"))
attempt("self_root_etc", lambda: read("/proc/self/root/etc/passwd"))
attempt("self_root_granted", lambda: os.listdir("/proc/self/root" + os.getcwd()))
"##;
    let args = [s(&sec.file), std::process::id().to_string()];
    let p = probe(reading(&[g]), g, body, &args).await;
    for name in ["self_root", "thread_self_root", "self_cwd_up", "self_root_etc"] {
        p.err(name, &[EACCES]);
    }
    // Another process's root and cwd links need ptrace access, which the domain lacks.
    p.err("parent_root", &[EACCES, EPERM]);
    p.err("parent_cwd", &[EACCES, EPERM]);
    // Control: /proc/self/root itself works, for what is granted.
    p.ok("self_root_granted");
    p.assert_no_leak(&sec.value);

    // Control: with the secret granted, /proc/self/root reaches it.
    let p = probe(reading(&[g, sec.dir.path()]), g, body, &args).await;
    assert_eq!(p.ok_text("self_root"), sec.value);
}

#[tokio::test]
async fn a_hard_link_of_the_secret_into_a_writable_dir_fails() {
    let sec = secret();
    let work = scratch();
    let w = work.path();
    file(&w.join("own.txt"), b"own");
    subdir(w, "sub");
    let body = r##"
secret, w = ARGS[0], ARGS[1]
attempt("link_secret", lambda: os.link(secret, w + "/stolen"))
attempt("linkat_secret", lambda: os.link(secret, w + "/stolen2", follow_symlinks=False))
attempt("link_same_dir", lambda: os.link(w + "/own.txt", w + "/own-link"))
attempt("link_across_granted_dirs", lambda: os.link(w + "/own.txt", w + "/sub/own-link"))
"##;
    let p = probe(writing(&[w]), w, body, &[s(&sec.file), s(w)]).await;
    p.err("link_secret", &[EXDEV]);
    p.err("linkat_secret", &[EXDEV]);
    // Landlock's REFER right is never granted: links across directories fail even inside
    // the grant; within one directory they work (the control that link() is not broken).
    p.err("link_across_granted_dirs", &[EXDEV]);
    p.ok("link_same_dir");
    assert!(w.join("own-link").exists());
    assert!(!w.join("stolen").exists(), "a hard link to the secret exists");
    assert!(!w.join("stolen2").exists(), "a hard link to the secret exists");
    p.assert_no_leak(&sec.value);
}

#[tokio::test]
async fn a_granted_file_cannot_be_renamed_to_outside() {
    let outside = scratch();
    let work = scratch();
    let w = work.path();
    file(&w.join("data.txt"), b"data");
    let before = snapshot(outside.path());
    let body = r##"
w, out = ARGS[0], ARGS[1]
attempt("rename_out", lambda: os.rename(w + "/data.txt", out + "/data.txt"))
attempt("replace_out", lambda: os.replace(w + "/data.txt", out + "/data.txt"))
attempt("rename_dir_out", lambda: os.rename(w + "/d", out + "/d"))
attempt("rename_in", lambda: os.rename(w + "/data.txt", w + "/moved.txt"))
"##;
    subdir(w, "d");
    let p = probe(writing(&[w]), w, body, &[s(w), s(outside.path())]).await;
    p.err("rename_out", &[EXDEV, EACCES]);
    p.err("replace_out", &[EXDEV, EACCES]);
    p.err("rename_dir_out", &[EXDEV, EACCES]);
    // Control: a rename inside the granted directory works.
    p.ok("rename_in");
    assert_eq!(fs::read(w.join("moved.txt")).unwrap(), b"data");
    assert!(w.join("d").is_dir());
    assert_eq!(snapshot(outside.path()), before, "something was moved outside the grant");
}

#[tokio::test]
async fn a_path_that_does_not_exist_yet_cannot_be_created_outside_the_grant() {
    let parent = scratch();
    let work = subdir(parent.path(), "work");
    // Granted, but absent when the run starts: a grant names an object, so this grants
    // nothing.
    let future = parent.path().join("future");
    let body = r##"
p, f = ARGS[0], ARGS[1]
attempt("mkdir_future", lambda: os.mkdir(f))
attempt("file_future", lambda: write(f, mode="xb"))
attempt("file_in_future", lambda: (os.makedirs(f, exist_ok=True), write(f + "/x"))[1])
attempt("sibling", lambda: write(p + "/sibling.txt", mode="xb"))
attempt("nested", lambda: os.makedirs(p + "/a/b/c"))
"##;
    let mut policy = writing(&[&work, &future]);
    policy.read = vec![parent.path().to_path_buf()];
    let args = [s(parent.path()), s(&future)];
    let p = probe(policy.clone(), &work, body, &args).await;
    for name in ["mkdir_future", "file_future", "file_in_future", "sibling", "nested"] {
        p.err(name, &[EACCES]);
    }
    let names: Vec<_> =
        fs::read_dir(parent.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![OsString::from("work")], "something was created outside the grant");

    // Control: once it exists, the same grant makes it writable.
    subdir(parent.path(), "future");
    let p = probe(policy, &work, body, &args).await;
    p.ok("file_in_future");
    assert_eq!(fs::read(future.join("x")).unwrap(), b"planted");
}

// ---------------------------------------------------------------------------------------
// 2. protected entries in a writable workspace
// ---------------------------------------------------------------------------------------

/// A workspace holding `.git/config`, `.git/hooks/`, `.q-skills/x.json`, `.bashrc` and `src/`.
fn workspace() -> tempfile::TempDir {
    let ws = scratch();
    let w = ws.path();
    subdir(w, ".git/hooks");
    subdir(w, ".q-skills");
    subdir(w, "src");
    file(&w.join(".git/config"), b"[core]\n\trepositoryformatversion = 0\n");
    file(&w.join(".git/hooks/pre-commit.sample"), b"#!/bin/sh\nexit 0\n");
    file(&w.join(".q-skills/x.json"), b"{\"name\": \"x\"}\n");
    file(&w.join(".bashrc"), b"# rc\n");
    file(&w.join("src/main.txt"), b"main");
    ws
}

const PLANT: &str = r##"
w = ARGS[0]
cfg, skill, rc, hooks = w + "/.git/config", w + "/.q-skills/x.json", w + "/.bashrc", w + "/.git/hooks"
for name, path in [("cfg", cfg), ("skill", skill), ("rc", rc)]:
    attempt(name + "_append", lambda: write(path, b"\n[core]\n\tfsmonitor = touch /tmp/pwned\n", "ab"))
    attempt(name + "_truncate_open", lambda: write(path, b"", "wb"))
    attempt(name + "_truncate", lambda: os.truncate(path, 0))
    attempt(name + "_unlink", lambda: os.unlink(path))
    attempt(name + "_rename_away", lambda: os.rename(path, w + "/src/moved"))
    attempt(name + "_replace_from_src", lambda: (write(w + "/src/repl"), os.replace(w + "/src/repl", path))[1])
    attempt(name + "_replace_sibling", lambda: (write(path + ".new"), os.replace(path + ".new", path))[1])
attempt("hook_create", lambda: write(hooks + "/post-commit", b"#!/bin/sh\ntouch /tmp/pwned\n", "xb"))
attempt("hook_activate_sample", lambda: os.replace(hooks + "/pre-commit.sample", hooks + "/pre-commit"))
attempt("skill_create", lambda: write(w + "/.q-skills/evil.json", b"{}", "xb"))
attempt("git_rename", lambda: os.rename(w + "/.git", w + "/.git-old"))
attempt("git_rmtree", lambda: os.rmdir(hooks))
attempt("hardlink_in_src", lambda: (os.link(cfg, w + "/src/cfg-hard"), write(w + "/src/cfg-hard", b"x", "ab"))[1])
attempt("symlink_in_src", lambda: (os.symlink("../.git/config", w + "/src/cfg-link"), write(w + "/src/cfg-link", b"x", "ab"))[1])
attempt("top_level_new", lambda: write(w + "/.profile", b"touch /tmp/pwned\n", "xb"))
attempt("src_write", lambda: write(w + "/src/new.txt", b"new", "xb"))
attempt("src_mkdir", lambda: os.mkdir(w + "/src/pkg"))
attempt("src_append", lambda: write(w + "/src/main.txt", b"+", "ab"))
attempt("read_cfg", lambda: read(cfg))
"##;

#[tokio::test]
async fn protected_entries_stay_unchanged_in_a_writable_workspace() {
    let ws = workspace();
    let w = ws.path();
    let protected = || -> Vec<String> {
        [".git", ".q-skills", ".bashrc"]
            .iter()
            .map(|e| {
                let p = w.join(e);
                if p.is_dir() {
                    format!("{:?}", snapshot(&p))
                } else {
                    format!("{:?}", fs::read(&p).unwrap())
                }
            })
            .collect()
    };
    let protected_before = protected();

    let p = probe(writing(&[w]), w, PLANT, &[s(w)]).await;
    for name in ["cfg", "skill", "rc"] {
        for how in [
            "append",
            "truncate_open",
            "truncate",
            "unlink",
            "rename_away",
            "replace_from_src",
            "replace_sibling",
        ] {
            p.failed(&format!("{name}_{how}"));
        }
    }
    for name in [
        "hook_create",
        "hook_activate_sample",
        "skill_create",
        "git_rename",
        "git_rmtree",
        "hardlink_in_src",
        "symlink_in_src",
        "top_level_new",
    ] {
        p.failed(name);
    }
    // Controls: src/ is writable, the protected entries are readable.
    p.ok("src_write");
    p.ok("src_mkdir");
    p.ok("src_append");
    assert_eq!(p.ok("read_cfg"), fs::read(w.join(".git/config")).unwrap());
    assert_eq!(fs::read(w.join("src/new.txt")).unwrap(), b"new");
    assert_eq!(fs::read(w.join("src/main.txt")).unwrap(), b"main+");

    assert_eq!(protected(), protected_before, "a protected entry changed");
    assert_eq!(
        fs::read(w.join(".git/config")).unwrap(),
        b"[core]\n\trepositoryformatversion = 0\n"
    );
    assert_eq!(fs::read(w.join(".bashrc")).unwrap(), b"# rc\n");
    assert_eq!(fs::read(w.join(".q-skills/x.json")).unwrap(), b"{\"name\": \"x\"}\n");
    assert!(!w.join(".git/hooks/post-commit").exists());
    assert!(!w.join(".profile").exists());

    // Control: without protection, the same attempts do change the entries.
    let ws2 = workspace();
    let mut open = writing(&[ws2.path()]);
    open.protected = Vec::new();
    let p = probe(open, ws2.path(), PLANT, &[s(ws2.path())]).await;
    p.ok("cfg_append");
    p.ok("hook_create");
    p.ok("git_rename");
    assert!(ws2.path().join(".git-old/hooks/post-commit").exists());
}

/// Threat model 7 for a workspace that holds no protected entry yet: a guarded tree is
/// granted entry by entry all the same, so `.git/hooks/`, `.q-skills/`, `.claude/` and shell
/// start-up files cannot be created at its top. (A `.git` planted inside a writable
/// subdirectory is not prevented: see the security model's gaps.)
#[tokio::test]
async fn protected_entries_cannot_be_planted_in_a_workspace_that_lacks_them() {
    let ws = scratch();
    let w = ws.path();
    subdir(w, "src");
    let body = r##"
w = ARGS[0]
attempt("git_hook", lambda: (os.makedirs(w + "/.git/hooks"), write(w + "/.git/hooks/post-commit", mode="xb"))[1])
attempt("skill", lambda: (os.makedirs(w + "/.q-skills/evil"), write(w + "/.q-skills/evil/skill.json", mode="xb"))[1])
attempt("bashrc", lambda: write(w + "/.bashrc", mode="xb"))
attempt("claude", lambda: (os.makedirs(w + "/.claude"), write(w + "/.claude/settings.json", mode="xb"))[1])
attempt("src", lambda: write(w + "/src/ok.txt", mode="xb"))
"##;
    // The workspace is guarded: granted entry by entry although it holds no protected entry.
    let mut policy = writing(&[w]);
    policy.guarded = vec![w.to_path_buf()];
    let p = probe(policy, w, body, &[s(w)]).await;
    p.ok("src");
    for name in ["git_hook", "skill", "bashrc", "claude"] {
        p.failed(name);
    }
}

/// Threat model 7: Landlock does not mediate `chmod`, `utime` or extended attributes, so a
/// hook the user disabled by clearing its execute bit can be re-enabled from inside the run,
/// and git runs it at the next commit.
#[tokio::test]
#[ignore = "GAP: chmod/utime/setxattr on protected entries are not mediated (Landlock has no such right)"]
async fn a_disabled_hook_cannot_be_re_enabled() {
    let ws = workspace();
    let w = ws.path();
    let hook = w.join(".git/hooks/post-commit");
    file(&hook, b"#!/bin/sh\necho hook\n");
    fs::set_permissions(&hook, fs::Permissions::from_mode(0o644)).unwrap();
    let body = r##"
w = ARGS[0]
attempt("chmod_hook", lambda: os.chmod(w + "/.git/hooks/post-commit", 0o755))
attempt("chmod_rc", lambda: os.chmod(w + "/.bashrc", 0o000))
"##;
    let p = probe(writing(&[w]), w, body, &[s(w)]).await;
    let mode = fs::metadata(&hook).unwrap().permissions().mode() & 0o777;
    let _ = fs::set_permissions(w.join(".bashrc"), fs::Permissions::from_mode(0o666));
    p.failed("chmod_hook");
    p.failed("chmod_rc");
    assert_eq!(mode, 0o644, "the hook was made executable");
}

// ---------------------------------------------------------------------------------------
// 3. grants through symlinks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_granted_path_through_a_symlink_is_refused() {
    let sec = secret();
    let ws = scratch();
    let w = ws.path();
    std::os::unix::fs::symlink(sec.dir.path(), w.join("link")).unwrap();
    let real_sub = subdir(w, "real");
    std::os::unix::fs::symlink(&real_sub, w.join("real-link")).unwrap();
    let before = snapshot(sec.dir.path());
    let marker = |d: &Path| d.join("planted.txt");

    let cases: Vec<(&str, Policy)> = vec![
        ("write through a link", writing(&[&w.join("link")])),
        ("write beneath a link", writing(&[&w.join("link").join(".")])),
        ("read through a link", reading(&[&w.join("link")])),
        ("read of a file through a linked dir", reading(&[&w.join("link/secret.txt")])),
        ("write through a link to a granted-looking dir", writing(&[&w.join("real-link")])),
    ];
    for (what, policy) in cases {
        let mut spec = ChildSpec::new(SH, w);
        spec.args = vec!["-c".into(), "echo x > \"$1\"".into(), "sh".into()];
        spec.args.push(marker(sec.dir.path()).into());
        spec.policy = policy;
        match run(&spec).await {
            Err(SandboxError::Policy(msg)) => {
                assert!(msg.contains("symbolic link"), "{what}: {msg}")
            }
            other => panic!("{what}: expected SandboxError::Policy, got {other:?}"),
        }
    }
    assert_eq!(snapshot(sec.dir.path()), before, "the secret directory changed");

    // Control: the real path is accepted and is writable.
    let mut spec = ChildSpec::new(SH, w);
    spec.args = vec!["-c".into(), "echo x > \"$1\"".into(), "sh".into()];
    spec.args.push(marker(&real_sub).into());
    spec.policy = writing(&[&real_sub]);
    let out = run(&spec).await.expect("the real path is a valid grant");
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr.to_text());
    assert_eq!(fs::read(marker(&real_sub)).unwrap(), b"x\n");
}

// ---------------------------------------------------------------------------------------
// 4. network
// ---------------------------------------------------------------------------------------

/// Services on this machine the child must not reach, each recording what reached it.
struct Listeners {
    tcp4: TcpListener,
    udp4: UdpSocket,
    tcp6: Option<TcpListener>,
    unix_path: UnixListener,
    unix_abstract: UnixListener,
    _dir: tempfile::TempDir,
    socket_path: PathBuf,
    abstract_name: String,
}

impl Listeners {
    fn new() -> Self {
        let tcp4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp6 = match TcpListener::bind("[::1]:0") {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("!!! no IPv6 loopback on this host ({e}); IPv6 is not checked");
                None
            }
        };
        let dir = scratch();
        let socket_path = dir.path().join("service.sock");
        let unix_path = UnixListener::bind(&socket_path).unwrap();
        fs::set_permissions(&socket_path, fs::Permissions::from_mode(0o777)).unwrap();
        let abstract_name = unique_secret("abstract");
        let addr = SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let unix_abstract = UnixListener::bind_addr(&addr).unwrap();
        for l in [&unix_path, &unix_abstract] {
            l.set_nonblocking(true).unwrap();
        }
        tcp4.set_nonblocking(true).unwrap();
        udp4.set_nonblocking(true).unwrap();
        if let Some(l) = &tcp6 {
            l.set_nonblocking(true).unwrap();
        }
        Self { tcp4, udp4, tcp6, unix_path, unix_abstract, _dir: dir, socket_path, abstract_name }
    }

    /// Arguments for [`NET_BODY`]: tcp4 port, udp4 port, tcp6 port (0: none), socket path,
    /// abstract name.
    fn args(&self) -> Vec<String> {
        vec![
            self.tcp4.local_addr().unwrap().port().to_string(),
            self.udp4.local_addr().unwrap().port().to_string(),
            self.tcp6.as_ref().map_or(0, |l| l.local_addr().unwrap().port()).to_string(),
            s(&self.socket_path),
            self.abstract_name.clone(),
        ]
    }

    /// How many connections or datagrams each service received since the last call.
    fn received(&self) -> BTreeMap<&'static str, usize> {
        fn count<T>(mut f: impl FnMut() -> std::io::Result<T>) -> usize {
            let mut n = 0;
            loop {
                match f() {
                    Ok(_) => n += 1,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return n,
                    Err(e) => panic!("listener failed: {e}"),
                }
            }
        }
        let mut buf = [0u8; 64];
        let mut m = BTreeMap::new();
        m.insert("tcp4", count(|| self.tcp4.accept()));
        m.insert("udp4", count(|| self.udp4.recv_from(&mut buf)));
        if let Some(l) = &self.tcp6 {
            m.insert("tcp6", count(|| l.accept()));
        }
        m.insert("unix_path", count(|| self.unix_path.accept()));
        m.insert("unix_abstract", count(|| self.unix_abstract.accept()));
        m
    }
}

const NET_BODY: &str = r##"
import struct
tcp4, udp4, tcp6, upath, aname = int(ARGS[0]), int(ARGS[1]), int(ARGS[2]), ARGS[3], ARGS[4]
def tcp(fam, addr, proto=0):
    s = socket.socket(fam, socket.SOCK_STREAM, proto)
    s.settimeout(5)
    try:
        s.connect(addr)
        return b"connected"
    finally:
        s.close()
def udp(fam, addr, proto=0):
    s = socket.socket(fam, socket.SOCK_DGRAM, proto)
    try:
        return str(s.sendto(b"ping", addr))
    finally:
        s.close()
def unix(addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(addr)
        return b"connected"
    finally:
        s.close()
def fastopen(addr):
    # Blocking, so that the call completes the handshake (or fails) before returning.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        return str(s.sendto(b"x", socket.MSG_FASTOPEN, addr))
    finally:
        s.close()
def bind_tcp():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen()
        return str(s.getsockname())
    finally:
        s.close()
attempt("tcp4", lambda: tcp(socket.AF_INET, ("127.0.0.1", tcp4)))
attempt("tcp4_mapped", lambda: tcp(socket.AF_INET6, ("::ffff:127.0.0.1", tcp4)))
attempt("tcp4_fastopen", lambda: fastopen(("127.0.0.1", tcp4)))
attempt("tcp4_mptcp", lambda: tcp(socket.AF_INET, ("127.0.0.1", tcp4), 262))
attempt("tcp4_sctp", lambda: tcp(socket.AF_INET, ("127.0.0.1", tcp4), 132))
attempt("tcp4_smc", lambda: tcp(socket.AF_INET, ("127.0.0.1", tcp4), 256))
attempt("ping", lambda: udp(socket.AF_INET, ("127.0.0.1", udp4), socket.IPPROTO_ICMP))
attempt("udp4", lambda: udp(socket.AF_INET, ("127.0.0.1", udp4)))
if tcp6:
    attempt("tcp6", lambda: tcp(socket.AF_INET6, ("::1", tcp6)))
    attempt("tcp6_mptcp", lambda: tcp(socket.AF_INET6, ("::1", tcp6), 262))
attempt("unix_path", lambda: unix(upath))
attempt("unix_abstract", lambda: unix("\0" + aname))
attempt("unix_dgram", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"x", upath))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
def netlink_links(proto):
    # What getaddrinfo's AI_ADDRCONFIG does (glibc opens the same socket): a route netlink
    # socket, RTM_GETLINK dump (type 18, NLM_F_REQUEST | NLM_F_DUMP), the first reply.
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, proto)
    try:
        s.bind((0, 0))
        s.send(struct.pack("=IHHII", 32, 18, 0x301, 1, 0) + bytes(16))
        return s.recv(65536)
    finally:
        s.close()
attempt("netlink", lambda: netlink_links(socket.NETLINK_ROUTE))
attempt("netlink_diag", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4).close())
attempt("bind_tcp", bind_tcp)
def listen_autobind():
    # listen() without bind() picks an ephemeral port: a server reachable from outside.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.listen()
        return str(s.getsockname())
    finally:
        s.close()
attempt("listen_autobind", listen_autobind)
attempt("socketpair", lambda: [s.close() for s in socket.socketpair()] and b"pair")
if len(ARGS) > 5:
    attempt("tcp443", lambda: tcp(socket.AF_INET, ("127.0.0.1", int(ARGS[5]))))
"##;

fn net_policy(network: NetworkAccess) -> Policy {
    let mut p = Policy::strict();
    p.network = network;
    p
}

/// The TCP attempts of [`NET_BODY`] that aim at the IPv4 and the IPv6 listener.
const TCP4_ATTEMPTS: [&str; 6] =
    ["tcp4", "tcp4_mapped", "tcp4_fastopen", "tcp4_mptcp", "tcp4_sctp", "tcp4_smc"];
const TCP6_ATTEMPTS: [&str; 2] = ["tcp6", "tcp6_mptcp"];

#[tokio::test]
async fn network_none_reaches_no_socket_of_any_kind() {
    let l = Listeners::new();
    let cwd = scratch();
    let p = probe(net_policy(NetworkAccess::None), cwd.path(), NET_BODY, &l.args()).await;
    let got = l.received();
    assert!(got.values().all(|n| *n == 0), "a service was reached: {got:?}\n{}", p.context());
    let mut denied: Vec<&str> = TCP4_ATTEMPTS.to_vec();
    denied.extend([
        "ping",
        "udp4",
        "unix_path",
        "unix_abstract",
        "unix_dgram",
        "raw",
        "packet",
        "netlink",
        "netlink_diag",
        "bind_tcp",
        "listen_autobind",
    ]);
    if l.tcp6.is_some() {
        denied.extend(TCP6_ATTEMPTS);
    }
    for name in denied {
        p.err(name, &[EPERM]);
    }
    // socketpair is the one socket call left: it reaches nothing outside.
    p.ok("socketpair");

    // Control: with full network the same attempts do reach the services, so the test can
    // see a connection when there is one. Abstract sockets of processes outside the run stay
    // out of reach even then (Landlock scope).
    let p = probe(net_policy(NetworkAccess::Full), cwd.path(), NET_BODY, &l.args()).await;
    let got = l.received();
    let succeeded =
        |names: &[&str]| names.iter().filter(|n| matches!(p.get(n), Attempt::Ok(_))).count();
    for name in ["tcp4", "tcp4_fastopen", "tcp4_mptcp", "udp4", "unix_path", "listen_autobind"] {
        p.ok(name);
    }
    assert!(contains(&p.ok("netlink"), b"lo\0"), "control: no loopback link listed");
    p.err("unix_abstract", &[EPERM]);
    assert_eq!(got["tcp4"], succeeded(&TCP4_ATTEMPTS), "control: TCP connects: {got:?}");
    assert_eq!(got["udp4"], 1, "control: UDP datagram not seen: {got:?}");
    assert_eq!(got["unix_path"], 1, "control: Unix connect not seen: {got:?}");
    assert_eq!(got["unix_abstract"], 0, "an outside abstract socket was reached: {got:?}");
    if l.tcp6.is_some() {
        p.ok("tcp6");
        assert_eq!(got["tcp6"], succeeded(&TCP6_ATTEMPTS), "control: IPv6 connects: {got:?}");
    }
}

#[tokio::test]
async fn network_https_only_reaches_tcp_443_only() {
    let l = Listeners::new();
    let cwd = scratch();
    let mut args = l.args();
    let https = match TcpListener::bind("127.0.0.1:443") {
        Ok(h) => {
            h.set_nonblocking(true).unwrap();
            args.push("443".into());
            Some(h)
        }
        Err(e) if is_root() => panic!("as root, binding 127.0.0.1:443 must work: {e}"),
        Err(e) => {
            eprintln!(
                "!!! POSITIVE CONTROL SKIPPED: binding 127.0.0.1:443 needs root ({e}); \
                 only the denials of https-only are checked in this run"
            );
            None
        }
    };

    let p = probe(net_policy(NetworkAccess::HttpsOnly), cwd.path(), NET_BODY, &args).await;
    let got = l.received();
    for name in ["tcp4", "tcp6", "unix_path", "unix_abstract"] {
        let n = got.get(name).copied().unwrap_or(0);
        assert_eq!(n, 0, "{name} was reached: {got:?}\n{}", p.context());
    }
    // UDP destinations are not restricted at https-only (docs/security-model.md, "Not
    // covered"): whether udp4 arrived is deliberately not asserted here.

    // Plain TCP to another port: Landlock.
    p.err("tcp4", &[EACCES]);
    p.err("tcp4_mapped", &[EACCES]);
    p.err("bind_tcp", &[EACCES]);
    // What Landlock's TCP rules do not see: TCP Fast Open (connects from sendto), and
    // MPTCP, SCTP and SMC sockets. seccomp refuses them.
    // listen() without bind() (an ephemeral port) is refused outright.
    for name in ["tcp4_fastopen", "tcp4_mptcp", "tcp4_sctp", "tcp4_smc", "ping", "listen_autobind"]
    {
        p.err(name, &[EPERM]);
    }
    if l.tcp6.is_some() {
        p.err("tcp6", &[EACCES]);
        p.err("tcp6_mptcp", &[EPERM]);
    }
    for name in ["unix_path", "unix_abstract", "unix_dgram", "raw", "packet", "netlink_diag"] {
        p.err(name, &[EPERM]);
    }
    // Route netlink sockets are allowed (docs/security-model.md): getaddrinfo's AI_ADDRCONFIG
    // asks them which address families have an address. They are raw sockets by type, which
    // the raw-socket rule must not catch. The dump lists the host's links, loopback included.
    let links = p.ok("netlink");
    assert!(contains(&links, b"lo\0"), "the route dump lists no loopback link: {links:x?}");
    if let Some(h) = https {
        p.ok("tcp443");
        assert!(h.accept().is_ok(), "control: the connection to 443 did not arrive");
    }
}

// ---------------------------------------------------------------------------------------
// 5. other processes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn signals_ptrace_and_memory_of_an_outside_process_are_out_of_reach() {
    let outside_secret = unique_secret("OUTSIDE-ENV");
    let mut outside = std::process::Command::new("/bin/sleep")
        .arg("30")
        .env_clear()
        .env("SKILLBOX_OUTSIDE_SECRET", &outside_secret)
        .spawn()
        .expect("start /bin/sleep");
    let pid = outside.id() as i32;
    let cwd = scratch();
    let body = r##"
import signal, subprocess
pid = int(ARGS[0])
attempt("kill_term", lambda: os.kill(pid, signal.SIGTERM))
attempt("kill_kill", lambda: os.kill(pid, signal.SIGKILL))
attempt("kill_stop", lambda: os.kill(pid, signal.SIGSTOP))
# SIGWINCH: harmless to the test's own group should the denial ever fail.
attempt("killpg", lambda: os.killpg(os.getpgid(pid), signal.SIGWINCH))
def pidfd_kill():
    fd = sc(434, pid, 0)
    return sc(424, fd, signal.SIGKILL, 0, 0)
attempt("pidfd_send_signal", pidfd_kill)
attempt("pidfd_getfd", lambda: sc(438, sc(434, pid, 0), 0, 0))
attempt("ptrace_attach", lambda: sc(101, 16, pid, 0, 0))
attempt("ptrace_seize", lambda: sc(101, 0x4206, pid, 0, 0))
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(64)
local = iovec(ctypes.addressof(buf), 64)
remote = iovec(0x400000, 64)
attempt("process_vm_readv", lambda: sc(310, pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0))
attempt("process_vm_writev", lambda: sc(311, pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0))
attempt("proc_mem", lambda: read(f"/proc/{pid}/mem"))
attempt("proc_environ", lambda: read(f"/proc/{pid}/environ"))
attempt("proc_fd", lambda: os.readlink(f"/proc/{pid}/fd/0"))
attempt("proc_maps", lambda: read(f"/proc/{pid}/maps"))
# Control: the same calls on a process of the run's own tree work.
own = subprocess.Popen(["/bin/sleep", "30"], env={"SKILLBOX_OWN": "1"})
def own_environ():
    # Until the exec, the child still has the probe's (empty) environment.
    import time
    for _ in range(500):
        e = read(f"/proc/{own.pid}/environ")
        if e:
            return e
        time.sleep(0.01)
    return e
attempt("own_environ", own_environ)
attempt("own_kill", lambda: os.kill(own.pid, signal.SIGTERM))
attempt("own_wait", lambda: str(own.wait()))
"##;
    let mut policy = Policy::strict();
    // The most permissive process setting: signals stay scoped whatever it says.
    policy.processes = ProcessAccess::Full;
    let p = probe(policy, cwd.path(), body, &[pid.to_string()]).await;

    let alive = is_running(pid);
    let _ = outside.kill();
    let _ = outside.wait();
    assert!(alive, "the outside process was killed by the confined child\n{}", p.context());
    for name in ["kill_term", "kill_kill", "kill_stop", "killpg", "pidfd_send_signal"] {
        p.err(name, &[EPERM]);
    }
    for name in
        ["pidfd_getfd", "ptrace_attach", "ptrace_seize", "process_vm_readv", "process_vm_writev"]
    {
        p.err(name, &[EPERM]);
    }
    // (Listing /proc/PID/fd shows descriptor numbers to the same user; what they point to
    // needs ptrace access.)
    for name in ["proc_mem", "proc_environ", "proc_fd", "proc_maps"] {
        p.err(name, &[EACCES, EPERM]);
    }
    p.assert_no_leak(&outside_secret);
    // Controls.
    assert!(contains(&p.ok("own_environ"), b"SKILLBOX_OWN=1"));
    p.ok("own_kill");
    assert_eq!(p.ok_text("own_wait"), format!("-{}", libc::SIGTERM));
    assert!(!is_running(pid), "control: the test could not kill the outside process");
}

/// Threat model 3 and 8: System V IPC is neither path-based (Landlock) nor denied (seccomp),
/// so a run attaches to the shared memory of another process of the same user and reads it.
#[tokio::test]
async fn system_v_shared_memory_of_another_process_is_out_of_reach() {
    let secret = unique_secret("SHM");
    // SAFETY: a private 4 KiB segment, attached, written within bounds, detached; removed
    // at the end of the test.
    let id = unsafe {
        let id = libc::shmget(libc::IPC_PRIVATE, 4096, 0o600 | libc::IPC_CREAT);
        assert!(id >= 0, "shmget");
        let p = libc::shmat(id, std::ptr::null(), 0) as *mut u8;
        assert!(p as isize != -1, "shmat");
        std::ptr::copy_nonoverlapping(secret.as_ptr(), p, secret.len());
        libc::shmdt(p as *const libc::c_void);
        id
    };
    let cwd = scratch();
    let body = r##"
libc.shmat.restype = ctypes.c_void_p
def shm():
    p = libc.shmat(int(ARGS[0]), None, 0o10000)  # SHM_RDONLY
    if p is None or p == ctypes.c_void_p(-1).value:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ctypes.string_at(p, 128).rstrip(b"\0")
attempt("shm", shm)
"##;
    let p = probe(strict(), cwd.path(), body, &[id.to_string()]).await;
    // SAFETY: removes the segment created above.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    p.failed("shm");
    p.assert_no_leak(&secret);
}

// ---------------------------------------------------------------------------------------
// 6. privileges and limits
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn no_new_privs_is_set_and_every_capability_dropped() {
    let cwd = scratch();
    let body = r##"
status = dict(l.split(":\t", 1) for l in read("/proc/self/status").decode().splitlines() if ":\t" in l)
for k in ["NoNewPrivs", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Uid", "Seccomp"]:
    attempt(k, lambda: status[k].strip())
attempt("setuid0", lambda: os.setuid(0))
"##;
    let p = probe(strict(), cwd.path(), body, &[]).await;
    assert_eq!(p.ok_text("NoNewPrivs"), "1");
    assert_eq!(p.ok_text("Seccomp"), "2", "no seccomp filter in force");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        assert_eq!(p.ok_text(cap), "0000000000000000", "{cap}");
    }
    let euid = euid();
    let uid_line = p.ok_text("Uid");
    assert_eq!(uid_line.split_whitespace().nth(1), Some(euid.to_string().as_str()));
    let own = fs::read_to_string("/proc/self/status").unwrap();
    let own_bnd = own.lines().find_map(|l| l.strip_prefix("CapBnd:\t")).unwrap().to_string();
    if is_root() {
        // Control: the test itself holds capabilities, so the child's empty sets are the
        // sandbox's doing.
        let own_eff = own.lines().find_map(|l| l.strip_prefix("CapEff:\t")).unwrap();
        assert_ne!(own_eff, "0000000000000000", "control: root test process has no caps");
        assert_eq!(p.ok_text("CapBnd"), "0000000000000000", "root child keeps a bounding set");
        // Root without CAP_SETUID: setuid(0) is a no-op that succeeds; the check that
        // matters is that no capability is left to use.
    } else {
        // Unprivileged, the bounding set cannot be changed (no CAP_SETPCAP) and cannot
        // matter under no_new_privs; it is whatever the test process has.
        assert_eq!(p.ok_text("CapBnd"), own_bnd);
        eprintln!("note: unprivileged run; child CapBnd {own_bnd} is inherited, not dropped");
        p.err("setuid0", &[EPERM]);
    }
}

#[tokio::test]
async fn hard_rlimits_cannot_be_raised_from_inside() {
    let cwd = scratch();
    let body = r##"
import resource
N = resource.RLIMIT_NOFILE
class rlimit(ctypes.Structure):
    _fields_ = [("cur", ctypes.c_ulong), ("max", ctypes.c_ulong)]
attempt("nofile", lambda: repr(resource.getrlimit(N)))
attempt("core", lambda: repr(resource.getrlimit(resource.RLIMIT_CORE)))
attempt("raise_hard", lambda: resource.setrlimit(N, (64, 4096)))
# Kept in variables: ctypes.addressof of a temporary would point at freed memory.
hard, both, core, back = rlimit(64, 4096), rlimit(4096, 4096), rlimit(1 << 20, 1 << 20), rlimit(64, 64)
attempt("raise_hard_syscall", lambda: sc(160, N, ctypes.addressof(hard)))
attempt("raise_prlimit", lambda: sc(302, 0, N, ctypes.addressof(both), 0))
attempt("raise_core", lambda: sc(160, resource.RLIMIT_CORE, ctypes.addressof(core)))
attempt("lower", lambda: resource.setrlimit(N, (32, 48)))
attempt("after", lambda: repr(resource.getrlimit(N)))
attempt("raise_back", lambda: sc(160, N, ctypes.addressof(back)))
"##;
    let mut policy = Policy::strict();
    policy.rlimits.open_files = Some(64);
    let p = probe(policy, cwd.path(), body, &[]).await;
    assert_eq!(p.ok_text("nofile"), "(64, 64)");
    assert_eq!(p.ok_text("core"), "(0, 0)");
    match p.get("raise_hard") {
        Attempt::Exc(m) if m.contains("not allowed to raise") => {}
        Attempt::Err(e) if *e == EPERM => {}
        other => panic!("raise_hard: expected a refusal, got {other:?}\n{}", p.context()),
    }
    for name in ["raise_hard_syscall", "raise_prlimit", "raise_core", "raise_back"] {
        p.err(name, &[EPERM]);
    }
    // Control: lowering works, so setrlimit itself is not what fails.
    p.ok("lower");
    assert_eq!(p.ok_text("after"), "(32, 48)");

    // Control: the same raise outside the sandbox succeeds for root (it holds
    // CAP_SYS_RESOURCE), so the refusal above is the dropped capability's doing.
    let control = std::process::Command::new(PYTHON)
        .args([
            "-I",
            "-c",
            "import resource as r; N = r.RLIMIT_NOFILE\n\
             r.setrlimit(N, (64, 64))\n\
             try:\n    r.setrlimit(N, (64, 4096)); print('raised')\n\
             except ValueError: print('refused')",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&control.stdout).trim().to_string();
    if has_capability(CAP_SYS_RESOURCE) {
        assert_eq!(said, "raised", "unconfined control: CAP_SYS_RESOURCE raises hard limits");
    } else {
        assert_eq!(said, "refused", "unconfined control");
        eprintln!(
            "note: this test process lacks CAP_SYS_RESOURCE (euid {}), so the unconfined \
             control cannot show a successful raise",
            euid()
        );
    }
}

// ---------------------------------------------------------------------------------------
// 7. kernel side doors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn kernel_side_doors_are_shut() {
    let cwd = scratch();
    let body = r##"
import fcntl, termios
attempt("getpid_control", lambda: str(sc(39) == os.getpid()))
attempt("io_uring_setup", lambda: sc(425, 1, 0))
attempt("io_uring_enter", lambda: sc(426, 0, 0, 0, 0, 0, 0))
attempt("io_uring_register", lambda: sc(427, 0, 0, 0, 0))
attempt("tiocsti", lambda: fcntl.ioctl(0, termios.TIOCSTI, b"x"))
attempt("tiocsti_stdout", lambda: fcntl.ioctl(1, termios.TIOCSTI, b"x"))
attempt("tioclinux", lambda: fcntl.ioctl(0, 0x541C, b"\x02"))
attempt("tiocgwinsz_control", lambda: fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
attempt("dev_tty", lambda: open("/dev/tty", "rb"))
attempt("keyctl", lambda: sc(250, 0, -3, 0))
attempt("add_key", lambda: sc(248, 0, 0, 0, 0, 0))
attempt("request_key", lambda: sc(249, 0, 0, 0, 0))
attempt("bpf", lambda: sc(321, 0, 0, 0))
attempt("perf_event_open", lambda: sc(298, 0, 0, -1, -1, 0))
attempt("userfaultfd", lambda: sc(323, 0))
attempt("unshare_user", lambda: sc(272, 0x10000000))
attempt("unshare_ns", lambda: sc(272, 0x00020000))
attempt("setns", lambda: sc(308, 0, 0))
attempt("mount", lambda: sc(165, 0, 0, 0, 0, 0))
attempt("umount", lambda: sc(166, 0, 0))
attempt("fsopen", lambda: sc(430, 0, 0))
attempt("open_tree", lambda: sc(428, -100, 0, 0))
attempt("chroot", lambda: sc(161, 0))
attempt("pivot_root", lambda: sc(155, 0, 0))
def clone_newuser():
    r = sc(56, 0x10000000 | 17, 0, 0, 0, 0)
    if r == 0:
        os._exit(0)
    os.waitpid(r, 0)
    return b"cloned"
attempt("clone_newuser", clone_newuser)
attempt("clone3", lambda: sc(435, 0, 0))
attempt("x32_getpid", lambda: sc(0x40000000 | 39))
attempt("x32_io_uring", lambda: sc(0x40000000 | 425, 1, 0))
attempt("personality_exec", lambda: sc(135, 0x0400000))
attempt("personality_query", lambda: sc(135, 0xffffffff))
attempt("open_by_handle_at", lambda: sc(304, 0, 0, 0))
attempt("iopl", lambda: sc(172, 3))
attempt("init_module", lambda: sc(175, 0, 0, 0))
attempt("kexec_load", lambda: sc(246, 0, 0, 0, 0))
"##;
    let p = probe(strict(), cwd.path(), body, &[]).await;
    // Controls: the raw syscall path works, and an ioctl on stdin is answered by the
    // driver (ENOTTY: /dev/null is no terminal), so EPERM below is the filter's answer.
    assert_eq!(p.ok_text("getpid_control"), "True");
    p.err("tiocgwinsz_control", &[libc::ENOTTY]);
    p.ok("personality_query");
    for name in [
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "tiocsti",
        "tiocsti_stdout",
        "tioclinux",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "unshare_user",
        "unshare_ns",
        "setns",
        "mount",
        "umount",
        "fsopen",
        "open_tree",
        "chroot",
        "pivot_root",
        "clone_newuser",
        "personality_exec",
        "open_by_handle_at",
        "iopl",
        "init_module",
        "kexec_load",
    ] {
        p.err(name, &[EPERM]);
    }
    p.err("clone3", &[libc::ENOSYS]);
    p.err("x32_getpid", &[EPERM, libc::ENOSYS]);
    p.err("x32_io_uring", &[EPERM, libc::ENOSYS]);
    // No controlling terminal (new session) and no grant for it.
    p.failed("dev_tty");
}

/// `mov eax, 20 (i386 getpid); int 0x80; ret`, called through ctypes from executable memory.
const INT80: &str = r##"
import ctypes, mmap, os
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])
m = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print("mapped", flush=True)
r = f()
print("int80-getpid", r, os.getpid(), flush=True)
"##;

#[cfg(target_arch = "x86_64")]
#[tokio::test]
async fn a_32_bit_int80_syscall_kills_the_process() {
    // Control: unconfined, the same code makes a working 32-bit call. Hosts without IA-32
    // emulation fault instead; there is nothing to shut there.
    let control = std::process::Command::new(PYTHON).args(["-I", "-c", INT80]).output().unwrap();
    let said = String::from_utf8_lossy(&control.stdout);
    let works = control.status.success()
        && said.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 3 && f[0] == "int80-getpid" && f[1] == f[2]
        });
    if !works {
        eprintln!(
            "!!! SKIPPED: int 0x80 does not work unconfined on this host (no IA-32 emulation?): \
             {:?} {said}",
            control.status
        );
        return;
    }
    let cwd = scratch();
    let mut spec = ChildSpec::new(PYTHON, cwd.path());
    spec.args = vec!["-I".into(), "-c".into(), INT80.into()];
    let out = run(&spec).await.unwrap();
    let text = out.stdout.to_text();
    assert!(text.contains("mapped"), "the probe did not get to the call: {text}");
    assert!(!text.contains("int80-getpid"), "a 32-bit syscall returned: {text}");
    assert_eq!(out.status, ExitStatus::Signaled(libc::SIGSYS), "{text}");
}

// ---------------------------------------------------------------------------------------
// 8. process creation
// ---------------------------------------------------------------------------------------

const PROC_BODY: &str = r##"
import subprocess, threading
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return str(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
def raw(nr, *a):
    r = sc(nr, *a)
    if r == 0:
        os._exit(7)
    return str(os.waitstatus_to_exitcode(os.waitpid(r, 0)[1]))
def thread():
    box = []
    t = threading.Thread(target=lambda: box.append(sum(range(1000))))
    t.start()
    t.join()
    return str(box[0])
attempt("fork", fork)
attempt("raw_fork", lambda: raw(57))
attempt("raw_clone", lambda: raw(56, 17, 0, 0, 0, 0))
attempt("subprocess", lambda: str(subprocess.run(["/bin/true"]).returncode))
attempt("posix_spawn", lambda: str(os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], {}), 0)[1]))
attempt("thread", thread)
"##;

#[tokio::test]
async fn process_access_none_denies_processes_but_not_threads() {
    let cwd = scratch();
    let p = probe(strict(), cwd.path(), PROC_BODY, &[]).await;
    for name in ["fork", "raw_fork", "raw_clone", "subprocess", "posix_spawn"] {
        p.err(name, &[EPERM]);
    }
    assert_eq!(p.ok_text("thread"), "499500");

    // Control: with process creation granted, the same calls work.
    let mut full = Policy::strict();
    full.processes = ProcessAccess::Full;
    let p = probe(full, cwd.path(), PROC_BODY, &[]).await;
    assert_eq!(p.ok_text("fork"), "7");
    assert_eq!(p.ok_text("raw_fork"), "7");
    assert_eq!(p.ok_text("raw_clone"), "7");
    assert_eq!(p.ok_text("subprocess"), "0");
    assert_eq!(p.ok_text("posix_spawn"), "0");
    assert_eq!(p.ok_text("thread"), "499500");
}

// ---------------------------------------------------------------------------------------
// 9. the whole tree ends with the run
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_double_forked_daemon_dies_with_the_run_and_cannot_leave_the_group() {
    let work = scratch();
    let w = work.path();
    let heartbeat = w.join("heartbeat");
    let pid_file = w.join("daemon.pid");
    let body = r##"
import time
hb, pidfile = ARGS[0], ARGS[1]
attempt("setsid", lambda: os.setsid())
attempt("setpgid", lambda: os.setpgid(0, 0))
attempt("setpgid_other", lambda: os.setpgid(0, 1))
pid = os.fork()
if pid == 0:
    if os.fork() == 0:
        # The daemon: tries to leave the group, then beats until killed.
        for f in (lambda: os.setsid(), lambda: os.setpgid(0, 0)):
            try:
                f()
            except OSError:
                pass
        with open(pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {os.getpgrp()} {os.getsid(0)}\n")
        os.rename(pidfile + ".tmp", pidfile)
        os.close(1)
        os.close(2)
        while True:
            with open(hb, "a") as f:
                f.write(".")
            time.sleep(0.05)
    os._exit(0)
os.waitpid(pid, 0)
deadline = time.time() + 10
while time.time() < deadline and (not os.path.exists(hb) or os.path.getsize(hb) < 4):
    time.sleep(0.05)
attempt("heartbeat_seen", lambda: str(os.path.getsize(hb)))
attempt("own_group", lambda: f"{os.getpgrp()} {os.getsid(0)}")
"##;
    let mut policy = writing(&[w]);
    policy.processes = ProcessAccess::Full;
    let mut spec = probe_spec(policy, w, body, &[s(&heartbeat), s(&pid_file)]);
    spec.timeout = Duration::from_secs(60);
    let p = probe_run(&spec).await;

    p.err("setsid", &[EPERM]);
    p.err("setpgid", &[EPERM]);
    p.err("setpgid_other", &[EPERM]);
    // Control: the daemon was alive and beating while the run lasted.
    let beats: u64 = p.ok_text("heartbeat_seen").parse().unwrap();
    assert!(beats >= 4, "the daemon never beat");
    let line = fs::read_to_string(&pid_file).expect("the daemon wrote its pid");
    let f: Vec<&str> = line.split_whitespace().collect();
    let daemon: i32 = f[0].parse().unwrap();
    // Still in the run's group and session.
    assert_eq!(format!("{} {}", f[1], f[2]), p.ok_text("own_group"), "the daemon left the group");

    assert!(wait_until_dead(daemon).await, "daemon {daemon} outlived the run");
    let first = fs::metadata(&heartbeat).unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = fs::metadata(&heartbeat).unwrap().len();
    assert_eq!(first, second, "the heartbeat still grows after the run ended");
}

/// Threat model 5, "the runtime itself being killed": with `pid_namespace`, the run's first
/// process dies with the thread that started it, and the kernel then kills the rest of its
/// namespace. Runs `run()` in a helper process (this test binary again), kills that helper
/// with SIGKILL, and checks the run's processes.
#[tokio::test]
async fn nothing_of_the_run_survives_the_runtime_being_killed() {
    let dir = scratch();
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "runtime_killed_helper", "--ignored", "--nocapture"])
        .env(HELPER_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let leader = wait_for_pid(&dir.path().join("leader.pid")).await;
    let background = wait_for_pid(&dir.path().join("bg.pid")).await;
    let _ = helper.kill();
    let _ = helper.wait();
    let leader_dead = wait_until_dead(leader).await;
    let background_dead = wait_until_dead(background).await;
    for pid in [leader, background] {
        if is_running(pid) {
            // SAFETY: kill takes plain integers; these are processes this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    assert!(leader_dead, "the run's leader {leader} survived the runtime");
    assert!(background_dead, "the run's background process {background} survived the runtime");
}

const HELPER_ENV: &str = "SKILLBOX_CONFINE_HELPER_DIR";

#[tokio::test]
#[ignore = "helper of nothing_of_the_run_survives_the_runtime_being_killed; does nothing alone"]
async fn runtime_killed_helper() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else { return };
    let dir = PathBuf::from(dir);
    let mut spec = ChildSpec::new(SH, &dir);
    // Inside a PID namespace `$$` and `$!` are namespace pids; /proc/self/stat (of the
    // host's /proc) gives the pids the test can see.
    spec.args = vec![
        "-c".into(),
        "read -r p _ < /proc/self/stat; echo $p > leader.pid; \
         /bin/sh -c 'read -r p _ < /proc/self/stat; echo $p > bg.pid; exec /bin/sleep 30' & wait"
            .into(),
    ];
    let mut policy = writing(&[&dir]);
    policy.processes = ProcessAccess::Full;
    policy.pid_namespace = true;
    spec.policy = policy;
    spec.timeout = Duration::from_secs(60);
    let _ = run(&spec).await;
}

// ---------------------------------------------------------------------------------------
// 10. descriptors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn descriptors_of_the_runtime_are_not_inherited() {
    let sec = secret();
    let c = CString::new(sec.file.as_os_str().as_bytes()).unwrap();
    // SAFETY: open and fcntl on a valid path and on the descriptor just returned; both
    // descriptors are closed at the end of this test.
    let (fd, high) = unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDONLY); // no O_CLOEXEC, on purpose
        assert!(fd >= 0, "open secret");
        let high = libc::fcntl(fd, libc::F_DUPFD, 200); // F_DUPFD: no FD_CLOEXEC either
        assert!(high >= 200, "dup secret");
        for f in [fd, high] {
            assert_eq!(libc::fcntl(f, libc::F_GETFD) & libc::FD_CLOEXEC, 0, "fd {f} is cloexec");
        }
        (fd, high)
    };
    let cwd = scratch();
    let body = r##"
fd, high, parent = int(ARGS[0]), int(ARGS[1]), ARGS[2]
attempt("fds", lambda: " ".join(sorted(os.listdir("/proc/self/fd"), key=int)))
leaks = []
for n in range(3, 4096):
    try:
        leaks.append(os.pread(n, 4096, 0))
    except OSError:
        pass
attempt("scan", lambda: b"|".join(leaks))
attempt("fd", lambda: os.pread(fd, 4096, 0))
attempt("high", lambda: os.pread(high, 4096, 0))
attempt("proc_self_fd", lambda: read(f"/proc/self/fd/{high}"))
attempt("parent_fd", lambda: read(f"/proc/{parent}/fd/{high}"))
"##;
    let args = [fd.to_string(), high.to_string(), std::process::id().to_string()];
    let p = probe(strict(), cwd.path(), body, &args).await;

    // Control: an ordinary child of this process does inherit both descriptors.
    let control = std::process::Command::new(PYTHON)
        .args(["-I", "-c", "import os, sys; print(os.pread(int(sys.argv[1]), 4096, 0).decode())"])
        .arg(high.to_string())
        .output()
        .unwrap();
    // SAFETY: closes the two descriptors opened above, owned by this test alone.
    unsafe {
        libc::close(fd);
        libc::close(high);
    }
    assert_eq!(String::from_utf8_lossy(&control.stdout).trim(), sec.value, "control");

    let fds = p.ok_text("fds");
    let listed: Vec<&str> = fds.split(' ').collect();
    assert_eq!(listed.len(), 4, "only 0, 1, 2 and the listing's own: {fds}");
    assert_eq!(&listed[..3], ["0", "1", "2"], "{fds}");
    assert_eq!(p.ok("scan"), b"", "an inherited descriptor was readable");
    p.err("fd", &[libc::EBADF]);
    p.err("high", &[libc::EBADF]);
    p.err("proc_self_fd", &[libc::ENOENT]);
    p.err("parent_fd", &[EACCES, EPERM]);
    p.assert_no_leak(&sec.value);
}

// ---------------------------------------------------------------------------------------
// 12. legitimate work still works
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn python_computes_under_the_strict_policy() {
    let cwd = scratch();
    let mut spec = ChildSpec::new(PYTHON, cwd.path());
    spec.args = vec![
        "-c".into(),
        "import json, hashlib\n\
         print(sum(i * i for i in range(1000)), hashlib.sha256(b'abc').hexdigest()[:8], \
         json.dumps({'a': [1, 2]}))"
            .into(),
    ];
    spec.policy = Policy::strict();
    let out = run(&spec).await.unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr.to_text());
    assert_eq!(out.stdout.to_text(), "332833500 ba7816bf {\"a\": [1, 2]}\n");
}

#[tokio::test]
async fn a_shell_script_in_a_readable_dir_runs() {
    let dir = scratch();
    let d = dir.path();
    let script = d.join("script.sh");
    file(&script, b"#!/bin/sh\nread line < \"$1\"\necho \"got $line\"\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    file(&d.join("data.txt"), b"hello\n");
    let data = d.join("data.txt");
    for program in [script.clone(), PathBuf::from(SH)] {
        let mut spec = ChildSpec::new(&program, d);
        if program == Path::new(SH) {
            spec.args.push(script.clone().into());
        }
        spec.args.push(data.clone().into());
        spec.policy = reading(&[d]);
        let out = run(&spec).await.unwrap();
        assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr.to_text());
        assert_eq!(out.stdout.to_text(), "got hello\n", "{}", program.display());
    }
    // Control: without the read grant the same script is refused.
    let mut spec = ChildSpec::new(SH, d);
    spec.args = vec![script.clone().into(), data.into()];
    spec.policy = strict();
    let out = run(&spec).await.unwrap();
    assert_ne!(out.status, ExitStatus::Exited(0));
    assert!(!out.stdout.to_text().contains("got hello"));
}

#[tokio::test]
async fn git_init_and_status_work_in_a_writable_dir() {
    let Some(git) = ["/usr/bin/git", "/usr/local/bin/git", "/bin/git"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("!!! SKIPPED: git is not installed");
        return;
    };
    let work = scratch();
    let w = work.path();
    let home = subdir(w, "home");
    let repo = w.join("repo");
    let mut policy = writing(&[w]);
    policy.processes = ProcessAccess::Full;
    let run_git = |args: &[&str], cwd: &Path| {
        let mut spec = ChildSpec::new(git, cwd);
        spec.args = args.iter().map(OsString::from).collect();
        spec.env = vec![
            ("HOME".into(), home.clone().into()),
            ("PATH".into(), PATH_VALUE.into()),
            ("LANG".into(), "C".into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ];
        spec.policy = policy.clone();
        spec.timeout = Duration::from_secs(60);
        spec
    };
    let out = run(&run_git(&["--version"], w)).await.unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr.to_text());
    assert!(out.stdout.to_text().starts_with("git version "));

    let out = run(&run_git(&["init", "-q", &s(&repo)], w)).await.unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr.to_text());
    assert!(repo.join(".git/HEAD").is_file());
    file(&repo.join("hello.txt"), b"hi\n");

    let out = run(&run_git(&["status", "--porcelain=v1", "--branch"], &repo)).await.unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr.to_text());
    let text = out.stdout.to_text();
    assert!(text.contains("No commits yet"), "{text}");
    assert!(text.contains("?? hello.txt"), "{text}");
}

// ---------------------------------------------------------------------------------------
// the enforcement report
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_report_of_a_strict_run_lists_every_confinement_as_enforced() {
    let cwd = scratch();
    let out = run(&ChildSpec::new("/bin/true", cwd.path())).await.unwrap();
    assert_eq!(out.status, ExitStatus::Exited(0));
    let report = &out.enforcement;
    for name in [
        Guarantee::Filesystem,
        Guarantee::Network,
        Guarantee::Processes,
        Guarantee::SideDoors,
        Guarantee::Privileges,
        Guarantee::Ipc,
    ] {
        assert_eq!(
            report.state(name),
            Some(MechanismState::Enforced),
            "{name}: {:?}",
            report.line(name)
        );
    }
    assert!(report.not_enforced().next().is_none(), "{report:?}");

    // Control: granting an area shows in the report.
    let mut spec = ChildSpec::new("/bin/true", cwd.path());
    spec.policy.network = NetworkAccess::Full;
    spec.policy.processes = ProcessAccess::Full;
    let report = run(&spec).await.unwrap().enforcement;
    assert_eq!(report.state(Guarantee::Network), Some(MechanismState::Unrestricted));
    assert_eq!(report.state(Guarantee::Processes), Some(MechanismState::Unrestricted));
    assert!(report.is_enforced(Guarantee::Filesystem));
}
