//! Confinement of files (threat model 1): a secret outside the grants stays unread, writes
//! outside the write grants leave nothing behind, and no link, `..`, `/proc/self` path,
//! hard link or rename reaches past a grant; a grant through a symbolic link is refused.
//!
//! Most children are a small Python program (the `PRELUDE` of `tests/probe/mod.rs` plus a
//! body) that makes one attempt after another and prints one line per attempt; the test
//! asserts on each attempt by name and, where a secret is involved, that no byte of it
//! reached the output in any form. Every denial is paired with a positive control (the same
//! attempt succeeding where it is granted, or an unconfined run succeeding), so that a
//! broken setup fails loudly instead of passing.
//!
//! The effects are the same whichever mechanism keeps the files; the errno is the
//! mechanism's ([`probe::Probe::denied`]): Landlock answers `EACCES` (`EXDEV` for a link or
//! rename across what it grants), a root of the run's own (no Landlock, user namespaces:
//! `no-landlock`) answers `ENOENT` for what is outside it and `EROFS` in a read-only tree.
//! mount_fallback.rs checks what only that mechanism does.
//!
//! The tests pass as root and as an unprivileged user (`setpriv --reuid=nobody ...`):
//! scratch directories are world-accessible, secrets are world-readable files (so only the
//! sandbox can stand between them and the child), and where behaviour legitimately differs
//! by uid the test branches on `geteuid()`.

mod common;
mod hosts;
mod probe;
use probe::*;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use skillbox_sandbox::{ChildSpec, ExitStatus, Guarantee, Policy, SandboxError, Via};

// ---------------------------------------------------------------------------------------
// files
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

    let Some(p) = probe(reading(&[granted.path()]), granted.path(), body, &args).await else {
        return;
    };
    p.denied("read_secret", &[EACCES], &[ENOENT]);
    p.denied("list_secret_dir", &[EACCES], &[ENOENT]);
    assert_eq!(p.ok("read_plain"), b"plain");
    p.assert_no_leak(&sec.value);

    // Control: granted, the same read returns the secret.
    let Some(p) =
        probe(reading(&[granted.path(), sec.dir.path()]), granted.path(), body, &args).await
    else {
        return;
    };
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
    let Some(p) = probe(strict(), Path::new("/"), body, &[ordinary.to_string()]).await else {
        return;
    };
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
    // Below Landlock ABI 3, which does not see truncation, seccomp denies truncate(2).
    let truncate = match hosts::expect_policy(&writing(&[work.path()]), false)
        .by(Guarantee::Filesystem, Via::Seccomp)
    {
        true => EPERM,
        false => EACCES,
    };
    let Some(p) = probe(writing(&[work.path()]), work.path(), body, &args).await else { return };
    // seccomp answers before the file system is asked; else a read-only mount beside
    // Landlock does.
    match truncate {
        EPERM => p.denied("truncate", &[EPERM], &[ENOENT]),
        _ => p.denied_change("truncate", &[EACCES], &[ENOENT]),
    };
    for name in [
        "create",
        "create_excl",
        "append",
        "truncate_open",
        "mkdir",
        "symlink",
        "mkfifo",
        "unlink",
        "rename",
    ] {
        p.denied_change(name, &[EACCES], &[ENOENT]);
    }
    // In a root of the run's own, /tmp is there where it leads to a grant (a scratch
    // directory under it), as a directory of the read-only root.
    p.denied_change("tmp", &[EACCES], &[ENOENT, EROFS]);
    let exists = tmp_name.exists();
    let _ = fs::remove_file(&tmp_name);
    assert!(!exists, "{} was created outside the grant", tmp_name.display());
    assert_eq!(snapshot(outside.path()), before, "the directory outside the grant changed");

    // Control: the same attempts in the granted directory all succeed.
    let Some(p) =
        probe(writing(&[work.path()]), work.path(), body, &[s(work.path()), s(&tmp_name)]).await
    else {
        return;
    };
    for name in ["create", "create_excl", "mkdir", "symlink", "mkfifo"] {
        p.ok(name);
    }
    assert_eq!(fs::read(work.path().join("new.txt")).unwrap(), b"planted");
    assert!(work.path().join("newdir").is_dir());
    p.denied_change("tmp", &[EACCES], &[ENOENT, EROFS]);
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
    let Some(p) = probe(reading(&[g]), g, body, &[s(g)]).await else { return };
    for name in ["file_link", "dir_link", "rel_link", "dir_link_list"] {
        p.denied(name, &[EACCES], &[ENOENT]);
    }
    assert_eq!(p.ok("plain"), b"plain");
    p.assert_no_leak(&sec.value);

    // Control: with the target granted too, the links lead to the secret.
    let Some(p) = probe(reading(&[g, sec.dir.path()]), g, body, &[s(g)]).await else { return };
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
    let Some(p) = probe(reading(&[&granted]), &granted, body, &[s(&granted)]).await else { return };
    for name in ["absolute", "relative", "deep", "chdir_then_read"] {
        p.denied(name, &[EACCES], &[ENOENT]);
    }
    if p.own_root() {
        // The granted directory's parent is a mount point of the run's root: its names are
        // visible, and it holds the grant alone.
        assert_eq!(p.ok_text("list_parent"), "granted", "{}", p.context());
    } else {
        p.err("list_parent", &[EACCES]);
    }
    p.assert_no_leak(&value);

    // Control: granting the parent makes the same paths readable.
    let Some(p) = probe(reading(&[parent.path()]), &granted, body, &[s(&granted)]).await else {
        return;
    };
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
    let Some(p) = probe(reading(&[g]), g, body, &args).await else { return };
    for name in ["self_root", "thread_self_root", "self_cwd_up"] {
        p.denied(name, &[EACCES], &[ENOENT]);
    }
    // /etc/passwd is covered in a root of the run's own: there, but nobody may read it.
    p.err("self_root_etc", &[EACCES]);
    // Another process's root and cwd links need ptrace access, which the domain lacks;
    // where /proc is the run's PID namespace's (process-visibility, or a root of its own),
    // it has no entry for a pid outside the run.
    let outside_pid: &[i32] = if p.own_proc() { &[ENOENT] } else { &[EACCES, EPERM] };
    p.err("parent_root", outside_pid);
    p.err("parent_cwd", outside_pid);
    // Control: /proc/self/root itself works, for what is granted.
    p.ok("self_root_granted");
    p.assert_no_leak(&sec.value);

    // Control: with the secret granted, /proc/self/root reaches it.
    let Some(p) = probe(reading(&[g, sec.dir.path()]), g, body, &args).await else { return };
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
    let Some(p) = probe(writing(&[w]), w, body, &[s(&sec.file), s(w)]).await else { return };
    p.denied("link_secret", &[EXDEV], &[ENOENT]);
    p.denied("linkat_secret", &[EXDEV], &[ENOENT]);
    // Landlock's REFER right is never granted: links across directories fail even inside
    // the grant; within one directory they work (the control that link() is not broken).
    // A mount is one tree: inside one writable grant the link is made.
    if p.own_root() {
        p.ok("link_across_granted_dirs");
    } else {
        p.err("link_across_granted_dirs", &[EXDEV]);
    }
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
    let Some(p) = probe(writing(&[w]), w, body, &[s(w), s(outside.path())]).await else { return };
    p.denied("rename_out", &[EXDEV, EACCES], &[ENOENT]);
    p.denied("replace_out", &[EXDEV, EACCES], &[ENOENT]);
    p.denied("rename_dir_out", &[EXDEV, EACCES], &[ENOENT]);
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
    let Some(p) = probe(policy.clone(), &work, body, &args).await else { return };
    // The parent is granted for reading: a read-only tree in a root of the run's own.
    for name in ["mkdir_future", "file_future", "file_in_future", "sibling", "nested"] {
        p.denied_change(name, &[EACCES], &[EROFS]);
    }
    let names: Vec<_> =
        fs::read_dir(parent.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![OsString::from("work")], "something was created outside the grant");

    // Control: once it exists, the same grant makes it writable.
    subdir(parent.path(), "future");
    let Some(p) = probe(policy, &work, body, &args).await else { return };
    p.ok("file_in_future");
    assert_eq!(fs::read(future.join("x")).unwrap(), b"planted");
}

// ---------------------------------------------------------------------------------------
// grants through symlinks
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
        let Some(result) = hosts::run(&spec).await else { return };
        match result {
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
    let Some(out) = hosts::run_ok(&spec).await else { return };
    assert_eq!(out.status, ExitStatus::Exited(0), "{}", out.stderr.to_text());
    assert_eq!(fs::read(marker(&real_sub)).unwrap(), b"x\n");
}
