//! Protected entries in a writable workspace (threat model 7): `.git`, `.q-skills`, shell
//! start-up files and their kin stay unchanged, and cannot be planted where they are
//! missing.
//!
//! Most children are a small Python program (the `PRELUDE` of `tests/probe/mod.rs` plus a
//! body) that makes one attempt after another and prints one line per attempt; the test
//! asserts on each attempt by name and, where a secret is involved, that no byte of it
//! reached the output in any form. Every denial is paired with a positive control (the same
//! attempt succeeding where it is granted, or an unconfined run succeeding), so that a
//! broken setup fails loudly instead of passing.
//!
//! The tests pass as root and as an unprivileged user (`setpriv --reuid=nobody ...`):
//! scratch directories are world-accessible, secrets are world-readable files (so only the
//! sandbox can stand between them and the child), and where behaviour legitimately differs
//! by uid the test branches on `geteuid()`.

mod common;
mod hosts;
mod probe;
use probe::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

// ---------------------------------------------------------------------------------------
// protected entries in a writable workspace
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

    let Some(p) = probe(writing(&[w]), w, PLANT, &[s(w)]).await else { return };
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
    let Some(p) = probe(open, ws2.path(), PLANT, &[s(ws2.path())]).await else { return };
    p.ok("cfg_append");
    p.ok("hook_create");
    p.ok("git_rename");
    assert!(ws2.path().join(".git-old/hooks/post-commit").exists());
}

/// Threat model 7 for a workspace that holds no protected entry yet: a guarded tree is
/// granted entry by entry all the same, so `.git/hooks/`, `.q-skills/`, `.claude/` and shell
/// start-up files cannot be created at its top. (A `.git` planted inside a writable
/// subdirectory cannot be refused by the kernel; it is taken away after the run:
/// tests/planted.rs.)
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
    let Some(p) = probe(policy, w, body, &[s(w)]).await else { return };
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
    let Some(p) = probe(writing(&[w]), w, body, &[s(w)]).await else { return };
    let mode = fs::metadata(&hook).unwrap().permissions().mode() & 0o777;
    let _ = fs::set_permissions(w.join(".bashrc"), fs::Permissions::from_mode(0o666));
    p.failed("chmod_hook");
    p.failed("chmod_rc");
    assert_eq!(mode, 0o644, "the hook was made executable");
}
