//! Paths carved out of granted trees, checked by their effects on real children: protected
//! names stay read-only at any depth of a writable tree, hidden paths stay unread and
//! unwritten beneath any tree that contains them (also when reached through a link, and also
//! before they exist), and the way to a carved-out path cannot be renamed aside.
//!
//! Each denial is paired with a control: the same attempt succeeding without the carve, or a
//! neighbouring entry staying usable, so that a broken setup fails loudly.

mod hosts;
mod probe;
use probe::*;

use std::fs;
use std::path::Path;

use skillbox_sandbox::{Policy, ETC_SECRETS};

const NAMES: &[&str] = &[".git", ".claude", ".q-skills"];

fn writing(paths: &[&Path]) -> Policy {
    let mut p = strict();
    p.write = paths.iter().map(|p| p.to_path_buf()).collect();
    p.protected = NAMES.iter().map(|n| n.to_string()).collect();
    p
}

fn reading(paths: &[&Path]) -> Policy {
    let mut p = strict();
    p.read = paths.iter().map(|p| p.to_path_buf()).collect();
    p
}

/// `W/vendor/lib/.git/{config,hooks/pre-commit}`, `W/a/b/c/.claude/settings.json`,
/// `W/x/.GIT/config` (another case), `W/vendor/lib/src/main.c`, `W/other/file`.
fn nested_tree() -> tempfile::TempDir {
    let t = scratch();
    let w = t.path();
    subdir(w, "vendor/lib/.git/hooks");
    subdir(w, "vendor/lib/src");
    subdir(w, "a/b/c/.claude");
    subdir(w, "x/.GIT");
    subdir(w, "other");
    file(&w.join("vendor/lib/.git/config"), b"[core]\n");
    file(&w.join("vendor/lib/.git/hooks/pre-commit"), b"#!/bin/sh\nexit 0\n");
    file(&w.join("a/b/c/.claude/settings.json"), b"{}\n");
    file(&w.join("x/.GIT/config"), b"[core]\n");
    file(&w.join("vendor/lib/src/main.c"), b"int main;\n");
    file(&w.join("other/file"), b"other\n");
    t
}

const NESTED: &str = r##"
w = ARGS[0]
git = w + "/vendor/lib/.git"
attempt("hook_append", lambda: write(git + "/hooks/pre-commit", b"\ntouch /tmp/pwned\n", "ab"))
attempt("hook_create", lambda: write(git + "/hooks/post-commit", b"#!/bin/sh\n", "xb"))
attempt("cfg_replace", lambda: (write(w + "/vendor/lib/src/c"), os.replace(w + "/vendor/lib/src/c", git + "/config"))[1])
attempt("git_rename", lambda: os.rename(git, w + "/vendor/lib/git-old"))
attempt("lib_rename", lambda: os.rename(w + "/vendor/lib", w + "/vendor/lib2"))
attempt("vendor_rename", lambda: os.rename(w + "/vendor", w + "/vendor2"))
attempt("claude_write", lambda: write(w + "/a/b/c/.claude/settings.json", b"{\"hooks\": 1}", "ab"))
attempt("claude_rename", lambda: os.rename(w + "/a/b/c/.claude", w + "/a/b/c/claude"))
attempt("case_write", lambda: write(w + "/x/.GIT/config", b"\n[core]\n\tfsmonitor = x\n", "ab"))
attempt("read_hook", lambda: read(git + "/hooks/pre-commit"))
attempt("src_append", lambda: write(w + "/vendor/lib/src/main.c", b"+", "ab"))
attempt("src_create", lambda: write(w + "/vendor/lib/src/new.c", b"new", "xb"))
attempt("other_create", lambda: write(w + "/other/new", b"new", "xb"))
attempt("split_dir_create", lambda: write(w + "/vendor/lib/new.txt", b"new", "xb"))
"##;

#[tokio::test]
async fn protected_names_stay_read_only_at_any_depth_of_a_writable_tree() {
    let t = nested_tree();
    let w = t.path();
    let before = [
        snapshot(&w.join("vendor/lib/.git")),
        snapshot(&w.join("a/b/c/.claude")),
        snapshot(&w.join("x/.GIT")),
    ];
    let Some(p) = probe(writing(&[w]), w, NESTED, &[s(w)]).await else { return };
    for name in [
        "hook_append",
        "hook_create",
        "cfg_replace",
        "git_rename",
        "lib_rename",
        "vendor_rename",
        "claude_write",
        "claude_rename",
        "case_write",
        // The cost of splitting: no new entry in a directory on the way to a protected one.
        "split_dir_create",
    ] {
        p.failed(name);
    }
    assert_eq!(p.ok("read_hook"), b"#!/bin/sh\nexit 0\n");
    p.ok("src_append");
    p.ok("src_create");
    p.ok("other_create");
    let after = [
        snapshot(&w.join("vendor/lib/.git")),
        snapshot(&w.join("a/b/c/.claude")),
        snapshot(&w.join("x/.GIT")),
    ];
    assert_eq!(before, after, "a protected entry changed");
    assert_eq!(fs::read(w.join("vendor/lib/src/main.c")).unwrap(), b"int main;\n+");

    // Control: without protected names, the same attempts reach the nested repository.
    let t2 = nested_tree();
    let mut open = writing(&[t2.path()]);
    open.protected = Vec::new();
    let Some(p) = probe(open, t2.path(), NESTED, &[s(t2.path())]).await else { return };
    p.ok("hook_append");
    p.ok("case_write");
    p.ok("lib_rename");
}

#[tokio::test]
async fn a_hidden_path_beneath_a_read_tree_stays_unread() {
    let sec = secret();
    let h = scratch();
    subdir(h.path(), ".ssh");
    let key = h.path().join(".ssh/id_rsa");
    fs::copy(&sec.file, &key).unwrap();
    file(&h.path().join("notes.txt"), b"notes");
    let body = r##"
h = ARGS[0]
attempt("key", lambda: read(h + "/.ssh/id_rsa"))
attempt("notes", lambda: read(h + "/notes.txt"))
attempt("list_home", lambda: sorted(os.listdir(h)))
"##;
    let mut policy = reading(&[h.path()]);
    policy.hidden = vec![h.path().join(".ssh")];
    let Some(p) = probe(policy, h.path(), body, &[s(h.path())]).await else { return };
    p.err("key", &[libc::EACCES]);
    assert_eq!(p.ok("notes"), b"notes");
    p.ok("list_home");
    p.assert_no_leak(&sec.value);

    // Control: the same grant without the hidden path reads the key.
    let Some(p) = probe(reading(&[h.path()]), h.path(), body, &[s(h.path())]).await else { return };
    assert_eq!(p.ok("key"), sec.value.as_bytes());
}

/// `~/.config/gh` with the home writable: a hidden path beneath a protected entry stays
/// unread (at its top and deeper), while the rest of the protected entry stays readable and
/// unwritable.
#[tokio::test]
async fn a_hidden_path_beneath_a_protected_entry_of_a_writable_tree_stays_unread() {
    let t = ProtectedOverSecret::new();
    let (w, body) = (t.tree.path(), PROTECTED_OVER_SECRET);
    let Some(p) = probe(t.policy(), w, body, &[s(w)]).await else { return };
    t.check(&p);
    let Some(p) = probe(writing(&[w]), w, body, &[s(w)]).await else { return };
    t.check_control(&p);
}

#[tokio::test]
async fn a_hidden_path_reached_through_a_link_is_hidden_where_it_lives() {
    // A dotfile manager's layout: `~/.aws` is a link into another tree the run may read.
    let sec = secret();
    let home = scratch();
    let store = scratch();
    subdir(store.path(), "aws");
    fs::copy(&sec.file, store.path().join("aws/credentials")).unwrap();
    file(&store.path().join("readme"), b"store");
    std::os::unix::fs::symlink(store.path().join("aws"), home.path().join(".aws")).unwrap();
    let body = r##"
home, store = ARGS[0], ARGS[1]
attempt("through_link", lambda: read(home + "/.aws/credentials"))
attempt("direct", lambda: read(store + "/aws/credentials"))
attempt("readme", lambda: read(store + "/readme"))
"##;
    let mut policy = reading(&[home.path(), store.path()]);
    // Hidden paths are given resolved (the policy's contract): resolving follows the link.
    policy.hidden = vec![skillbox_sandbox::resolve(&home.path().join(".aws"))];
    assert_eq!(policy.hidden[0], skillbox_sandbox::resolve(&store.path().join("aws")));
    let args = [s(home.path()), s(store.path())];
    let Some(p) = probe(policy, home.path(), body, &args).await else { return };
    p.failed("through_link");
    p.err("direct", &[libc::EACCES]);
    assert_eq!(p.ok("readme"), b"store");
    p.assert_no_leak(&sec.value);

    let Some(p) = probe(reading(&[home.path(), store.path()]), home.path(), body, &args).await
    else {
        return;
    };
    assert_eq!(p.ok("direct"), sec.value.as_bytes(), "control: readable without the hidden path");
}

#[tokio::test]
async fn a_hidden_path_that_does_not_exist_yet_cannot_be_created() {
    let w = scratch();
    subdir(w.path(), "work");
    let body = r##"
w = ARGS[0]
attempt("mkdir", lambda: os.mkdir(w + "/.aws"))
attempt("create", lambda: write(w + "/.aws", b"[default]\n", "xb"))
attempt("work", lambda: write(w + "/work/out", b"ok", "xb"))
"##;
    let mut policy = writing(&[w.path()]);
    policy.hidden = vec![w.path().join(".aws/credentials")];
    let Some(p) = probe(policy, w.path(), body, &[s(w.path())]).await else { return };
    p.failed("mkdir");
    p.failed("create");
    p.ok("work");
    assert!(!w.path().join(".aws").exists());

    let Some(p) = probe(writing(&[w.path()]), w.path(), body, &[s(w.path())]).await else { return };
    p.ok("mkdir");
}

#[tokio::test]
async fn the_way_to_a_hidden_path_cannot_be_renamed_aside() {
    let sec = secret();
    let w = scratch();
    subdir(w.path(), "a/b");
    subdir(w.path(), "a/c");
    fs::copy(&sec.file, w.path().join("a/b/key")).unwrap();
    let body = r##"
w = ARGS[0]
attempt("rename_a", lambda: os.rename(w + "/a", w + "/z"))
attempt("rename_b", lambda: os.rename(w + "/a/b", w + "/a/c/b"))
attempt("replace_b", lambda: (os.mkdir(w + "/a/c/fake"), os.rename(w + "/a/c/fake", w + "/a/b"))[1])
attempt("key", lambda: read(w + "/a/b/key"))
attempt("c_write", lambda: write(w + "/a/c/ok", b"ok", "xb"))
"##;
    let mut policy = writing(&[w.path()]);
    policy.hidden = vec![w.path().join("a/b")];
    let Some(p) = probe(policy, w.path(), body, &[s(w.path())]).await else { return };
    for name in ["rename_a", "rename_b", "replace_b", "key"] {
        p.failed(name);
    }
    p.ok("c_write");
    p.assert_no_leak(&sec.value);
    assert_eq!(fs::read_to_string(w.path().join("a/b/key")).unwrap(), sec.value);
}

#[tokio::test]
async fn a_grant_inside_a_hidden_path_is_the_callers_explicit_choice() {
    let h = scratch();
    subdir(h.path(), "granted");
    file(&h.path().join("granted/f"), b"granted");
    file(&h.path().join("other"), b"other");
    let body = r##"
h = ARGS[0]
attempt("granted", lambda: read(h + "/granted/f"))
attempt("other", lambda: read(h + "/other"))
"##;
    let mut policy = reading(&[&h.path().join("granted")]);
    policy.hidden = vec![h.path().to_path_buf()];
    let Some(p) = probe(policy, h.path(), body, &[s(h.path())]).await else { return };
    assert_eq!(p.ok("granted"), b"granted");
    p.err("other", if p.own_root() { &[ENOENT] } else { &[EACCES] });
}

#[tokio::test]
async fn the_secrets_of_etc_stay_hidden_from_a_grant_of_the_whole_disk() {
    let secrets: Vec<String> = ETC_SECRETS
        .iter()
        .map(|s| format!("/etc/{s}"))
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    assert!(!secrets.is_empty(), "this host has none of /etc's secret files to test with");
    let body = r##"
import json
for p in json.loads(ARGS[0]):
    attempt(p, lambda p=p: read(p))
attempt("hostname", lambda: read("/etc/hostname") if os.path.exists("/etc/hostname") else read("/etc/os-release"))
"##;
    let arg =
        format!("[{}]", secrets.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(","));
    let Some(p) = probe(reading(&[Path::new("/")]), Path::new("/"), body, &[arg]).await else {
        return;
    };
    for secret in &secrets {
        p.err(secret, &[libc::EACCES]);
    }
    p.ok("hostname");
}
