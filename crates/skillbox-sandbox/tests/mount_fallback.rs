//! Files confined by the run's own mount namespace, on a host without Landlock (issue 20):
//! the effects `files.rs`, `protected.rs` and `carve.rs` check under Landlock, checked again
//! where the kernel answers Landlock's system calls with `ENOSYS` and the run has user, PID and
//! mount namespaces. A secret outside the grants stays unread, writes outside the write
//! grants leave nothing, `/etc`'s secrets and hidden paths stay unread, protected entries stay
//! read-only at any depth, and no link, `..`, `/proc/self/root`, rename or hard link reaches
//! past a grant.
//!
//! The host is simulated by `skillbox-hostsim no-landlock` (a seccomp filter around the
//! process): each test runs itself again under it (the same test binary, the same test, an
//! environment variable saying so) and passes only if that run passed. A test that cannot get
//! a host without Landlock fails; it never skips. Every probe also checks that its run's
//! `filesystem` line names `mount-namespace`, so no test can pass on another mechanism.
//!
//! Under the mount namespace a path outside the grants does not exist in the run's tree
//! (`ENOENT`), a read-only tree answers writes with `EROFS`, and a covered secret is an empty
//! entry nobody may read (`EACCES`); each denial is paired with a control that succeeds.
//!
//! Runs as root and as an unprivileged user (`setpriv --reuid=nobody ...`), like the rest.

mod hosts;
mod probe;
use probe::*;

use std::fs;
use std::path::{Path, PathBuf};

use skillbox_sandbox::{ChildSpec, Guarantee, MechanismState, Policy, SandboxError, Via};

const ENOENT: i32 = libc::ENOENT;

/// Set in the run of a test under `skillbox-hostsim`.
const SIMULATED: &str = "SKILLBOX_TEST_MOUNT_FALLBACK";

/// Whether this process is the run of test `name` on a host without Landlock, and should do
/// its work. Otherwise runs it so, under `skillbox-hostsim no-landlock` (built beside this
/// test binary: `cargo build -p skillbox-hostsim`), asserts that it passed, and returns false.
fn without_landlock(name: &str) -> bool {
    if std::env::var_os(SIMULATED).is_some() {
        let h = skillbox_sandbox::host();
        assert_eq!(h.landlock_abi, 0, "skillbox-hostsim did not take Landlock away");
        assert_eq!(h.landlock_absence, Some(libc::ENOSYS));
        assert!(h.mount_namespaces, "this host makes no mount namespace: {h:?}");
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let hostsim = exe.parent().and_then(Path::parent).map(|d| d.join("skillbox-hostsim"));
    let hostsim = hostsim.filter(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "skillbox-hostsim is not built beside {}: run `cargo build -p skillbox-hostsim` \
             (cargo test --workspace builds it)",
            exe.display()
        )
    });
    let out = std::process::Command::new(&hostsim)
        .arg("no-landlock")
        .arg("--")
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(SIMULATED, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed without Landlock:\n{text}");
    assert!(text.contains("test result: ok. 1 passed"), "{name} did not run:\n{text}");
    false
}

/// The run's own PID namespace: the mount namespace is made in it.
fn ns(mut p: Policy) -> Policy {
    p.pid_namespace = true;
    p
}

/// Runs a probe and checks that its files were confined by the mount namespace.
async fn mounted(policy: Policy, cwd: &Path, body: &str, args: &[String]) -> Probe {
    let p = probe(ns(policy), cwd, body, args).await.expect(RUNS);
    let line = p.outcome.enforcement.line(Guarantee::Filesystem).unwrap();
    assert_eq!(line.state, MechanismState::Enforced, "{line:?}");
    assert_eq!(line.via, vec![Via::MountNamespace], "{line:?}");
    p
}

// ---------------------------------------------------------------------------------------
// what the run sees
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_run_sees_only_what_is_granted_and_a_proc_of_its_own() {
    if !without_landlock("the_run_sees_only_what_is_granted_and_a_proc_of_its_own") {
        return;
    }
    let granted = scratch();
    let g = granted.path();
    let body = r##"
attempt("root", lambda: "\n".join(sorted(os.listdir("/"))))
attempt("proc_pids", lambda: "\n".join(sorted(e for e in os.listdir("/proc") if e.isdigit())))
attempt("proc_1", lambda: read("/proc/1/cmdline"))
attempt("own_pid", lambda: str(os.getpid()))
attempt("dev", lambda: "\n".join(sorted(os.listdir("/dev"))))
attempt("dev_null", lambda: write("/dev/null", b"x"))
attempt("dev_stdout", lambda: os.readlink("/dev/stdout"))
# A chmod to the mode the file has: harmless to the host should it ever succeed.
same_mode = lambda p: os.chmod(p, os.stat(p).st_mode & 0o7777)
attempt("root_write", lambda: os.mkdir("/planted"))
attempt("usr_write", lambda: write(ARGS[0], mode="xb"))
attempt("chmod_etc", lambda: same_mode("/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/os-release"))
"##;
    let planted = PathBuf::from(format!("/usr/{}", unique_secret("planted")));
    let p = mounted(reading(&[g]), g, body, &[s(&planted)]).await;
    let written = planted.exists();
    let _ = fs::remove_file(&planted);
    assert!(!written, "{} was created", planted.display());
    let root = p.ok_text("root");
    let allowed = [
        "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "run", "sbin",
        "tmp", "usr",
    ];
    for e in root.lines() {
        assert!(allowed.contains(&e), "the run's root holds {e}: {root}");
    }
    // Control: the host's root holds more than that.
    let host_root: Vec<String> = fs::read_dir("/")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(host_root.iter().any(|e| !allowed.contains(&e.as_str())), "{host_root:?}");
    // The run's /proc is its PID namespace's: it is PID 1, and the test's process is not
    // there.
    assert_eq!(p.ok_text("own_pid"), "1");
    assert!(p.ok("proc_1").starts_with(PYTHON.as_bytes()), "{:?}", p.ok_text("proc_1"));
    let pids = p.ok_text("proc_pids");
    assert!(!pids.lines().any(|l| l == std::process::id().to_string()), "{pids}");
    assert!(pids.lines().all(|l| l.parse::<u32>().unwrap() < 100), "{pids}");
    let dev = p.ok_text("dev");
    for d in ["null", "zero", "urandom", "stdout"] {
        assert!(dev.lines().any(|l| l == d), "{dev}");
    }
    assert!(!dev.lines().any(|l| l == "sda" || l == "vda" || l == "mem"), "{dev}");
    p.ok("dev_null");
    assert_eq!(p.ok_text("dev_stdout"), "/proc/self/fd/1");
    p.err("root_write", &[EROFS]);
    p.err("usr_write", &[EROFS]);
    p.err("chmod_etc", &[EROFS]);
}

// ---------------------------------------------------------------------------------------
// files (tests/files.rs)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_secret_outside_the_grants_stays_unread() {
    if !without_landlock("a_secret_outside_the_grants_stays_unread") {
        return;
    }
    let sec = secret();
    let granted = scratch();
    file(&granted.path().join("plain.txt"), b"plain");
    let body = r##"
attempt("read_secret", lambda: read(ARGS[0]))
attempt("list_secret_dir", lambda: "\n".join(os.listdir(ARGS[1])))
attempt("read_plain", lambda: read(ARGS[2]))
"##;
    let args = [s(&sec.file), s(sec.dir.path()), s(&granted.path().join("plain.txt"))];
    let p = mounted(reading(&[granted.path()]), granted.path(), body, &args).await;
    p.err("read_secret", &[ENOENT]);
    p.err("list_secret_dir", &[ENOENT]);
    assert_eq!(p.ok("read_plain"), b"plain");
    p.assert_no_leak(&sec.value);

    // Control: granted, the same read returns the secret.
    let policy = reading(&[granted.path(), sec.dir.path()]);
    let p = mounted(policy, granted.path(), body, &args).await;
    assert_eq!(p.ok_text("read_secret"), sec.value);
    assert!(p.ok_text("list_secret_dir").contains("secret.txt"));
}

#[tokio::test]
async fn writes_outside_the_write_grant_leave_no_file_behind() {
    if !without_landlock("writes_outside_the_write_grant_leave_no_file_behind") {
        return;
    }
    // One directory the run cannot see, one it may only read.
    let hidden = scratch();
    let readable = scratch();
    for d in [hidden.path(), readable.path()] {
        file(&d.join("existing.txt"), b"original");
    }
    let before = (snapshot(hidden.path()), snapshot(readable.path()));
    let work = scratch();
    let tmp_name = PathBuf::from(format!("/tmp/{}", unique_secret("planted")));
    let body = r##"
t = ARGS[1]
for d, tag in [(ARGS[0], "hidden"), (ARGS[2], "readable")]:
    attempt(tag + "_create", lambda: write(d + "/new.txt"))
    attempt(tag + "_append", lambda: write(d + "/existing.txt", b"more", "ab"))
    attempt(tag + "_truncate_open", lambda: write(d + "/existing.txt", b"", "wb"))
    attempt(tag + "_truncate", lambda: os.truncate(d + "/existing.txt", 0))
    attempt(tag + "_mkdir", lambda: os.mkdir(d + "/newdir"))
    attempt(tag + "_symlink", lambda: os.symlink("/etc/hostname", d + "/link"))
    attempt(tag + "_mkfifo", lambda: os.mkfifo(d + "/fifo"))
    attempt(tag + "_unlink", lambda: os.unlink(d + "/existing.txt"))
    attempt(tag + "_rename", lambda: os.rename(d + "/existing.txt", d + "/renamed.txt"))
    attempt(tag + "_chmod", lambda: os.chmod(d + "/existing.txt", 0o600))
attempt("tmp", lambda: write(t))
attempt("read_readable", lambda: read(ARGS[2] + "/existing.txt"))
"##;
    let mut policy = writing(&[work.path()]);
    policy.read = vec![readable.path().to_path_buf()];
    let args = [s(hidden.path()), s(&tmp_name), s(readable.path())];
    let p = mounted(policy.clone(), work.path(), body, &args).await;
    for what in [
        "create",
        "append",
        "truncate_open",
        "truncate",
        "mkdir",
        "symlink",
        "mkfifo",
        "unlink",
        "rename",
        "chmod",
    ] {
        p.err(&format!("hidden_{what}"), &[ENOENT]);
        p.err(&format!("readable_{what}"), &[EROFS]);
    }
    // /tmp holds only the granted directories, read-only.
    p.err("tmp", &[EROFS, ENOENT]);
    assert_eq!(p.ok("read_readable"), b"original");
    let exists = tmp_name.exists();
    let _ = fs::remove_file(&tmp_name);
    assert!(!exists, "{} was created outside the grant", tmp_name.display());
    let after = (snapshot(hidden.path()), snapshot(readable.path()));
    assert_eq!(after, before, "a directory outside the write grant changed");

    // Control: the same attempts in the granted directory succeed.
    let args = [s(work.path()), s(&tmp_name), s(work.path())];
    let p = mounted(policy, work.path(), body, &args).await;
    for what in ["create", "mkdir", "symlink", "mkfifo"] {
        p.ok(&format!("hidden_{what}"));
    }
    assert_eq!(fs::read(work.path().join("new.txt")).unwrap(), b"planted");
    assert!(work.path().join("newdir").is_dir());
    assert!(!tmp_name.exists());
}

#[tokio::test]
async fn etc_secrets_are_hidden_and_ordinary_etc_files_readable() {
    if !without_landlock("etc_secrets_are_hidden_and_ordinary_etc_files_readable") {
        return;
    }
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
attempt("passwd_chmod", lambda: os.chmod("/etc/passwd", os.stat("/etc/passwd").st_mode & 0o7777))
"##;
    let p = mounted(strict(), Path::new("/"), body, &[ordinary.to_string()]).await;
    p.err("passwd", &[EACCES]);
    p.err("shadow", &[EACCES, ENOENT]);
    p.err("gshadow", &[EACCES, ENOENT]);
    p.err("passwd_chmod", &[EROFS]);
    assert_eq!(p.ok("ordinary"), fs::read(ordinary).unwrap());
    assert!(p.ok_text("list_etc").lines().any(|l| l == "passwd"));
    let all = p.outcome.stdout.to_text();
    assert!(!all.contains("root:"), "account data leaked: {all}");
    let passwd_hex: String = passwd.iter().take(16).map(|b| format!("{b:02x}")).collect();
    assert!(!all.contains(&passwd_hex), "account data leaked: {all}");
}

#[tokio::test]
async fn the_secrets_of_etc_stay_hidden_from_a_grant_of_the_whole_disk() {
    if !without_landlock("the_secrets_of_etc_stay_hidden_from_a_grant_of_the_whole_disk") {
        return;
    }
    let secrets: Vec<String> = skillbox_sandbox::ETC_SECRETS
        .iter()
        .map(|s| format!("/etc/{s}"))
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    assert!(!secrets.is_empty(), "this host has none of /etc's secret files to test with");
    let sec = secret();
    let body = r##"
import json
for p in json.loads(ARGS[0]):
    attempt(p, lambda p=p: read(p))
attempt("hostname", lambda: read("/etc/hostname") if os.path.exists("/etc/hostname") else read("/etc/os-release"))
attempt("granted_secret", lambda: read(ARGS[1]))
attempt("write_secret", lambda: write(ARGS[1], b"x", "ab"))
"##;
    let arg =
        format!("[{}]", secrets.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(","));
    let args = [arg, s(&sec.file)];
    let p = mounted(reading(&[Path::new("/")]), Path::new("/"), body, &args).await;
    for secret in &secrets {
        p.err(secret, &[EACCES]);
    }
    p.ok("hostname");
    // Control: the whole disk is readable, not writable.
    assert_eq!(p.ok_text("granted_secret"), sec.value);
    p.err("write_secret", &[EROFS]);
    assert_eq!(fs::read_to_string(&sec.file).unwrap(), sec.value);
}

#[tokio::test]
async fn a_symlink_in_a_granted_dir_does_not_reach_the_secret() {
    if !without_landlock("a_symlink_in_a_granted_dir_does_not_reach_the_secret") {
        return;
    }
    let sec = secret();
    let granted = scratch();
    let g = granted.path();
    file(&g.join("plain.txt"), b"plain");
    std::os::unix::fs::symlink(&sec.file, g.join("file-link")).unwrap();
    std::os::unix::fs::symlink(sec.dir.path(), g.join("dir-link")).unwrap();
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
    let p = mounted(reading(&[g]), g, body, &[s(g)]).await;
    for name in ["file_link", "dir_link", "rel_link", "dir_link_list"] {
        p.err(name, &[ENOENT]);
    }
    assert_eq!(p.ok("plain"), b"plain");
    p.assert_no_leak(&sec.value);

    // Control: with the target granted too, the links lead to the secret.
    let p = mounted(reading(&[g, sec.dir.path()]), g, body, &[s(g)]).await;
    assert_eq!(p.ok_text("file_link"), sec.value);
    assert_eq!(p.ok_text("rel_link"), sec.value);
}

#[tokio::test]
async fn dot_dot_and_proc_self_root_do_not_reach_the_secret() {
    if !without_landlock("dot_dot_and_proc_self_root_do_not_reach_the_secret") {
        return;
    }
    let parent = scratch();
    let granted = subdir(parent.path(), "granted");
    let secret_dir = subdir(parent.path(), "secret");
    let value = unique_secret("DOTDOT");
    let secret_file = secret_dir.join("secret.txt");
    file(&secret_file, value.as_bytes());
    let body = r##"
g, secret, parent_pid = ARGS[0], ARGS[1], ARGS[2]
attempt("absolute", lambda: read(g + "/../secret/secret.txt"))
attempt("relative", lambda: read("../secret/secret.txt"))
attempt("deep", lambda: read(g + "/./../granted/../secret/./secret.txt"))
attempt("list_parent", lambda: "\n".join(os.listdir("..")))
attempt("chdir_then_read", lambda: (os.chdir(".."), read("secret/secret.txt"))[1])
attempt("self_root", lambda: read("/proc/self/root" + secret))
attempt("thread_self_root", lambda: read("/proc/thread-self/root" + secret))
attempt("self_cwd_up", lambda: read("/proc/self/cwd/../secret/secret.txt"))
attempt("parent_root", lambda: read("/proc/" + parent_pid + "/root" + secret))
attempt("one_root", lambda: read("/proc/1/root" + secret))
attempt("self_root_granted", lambda: os.listdir("/proc/self/root" + g))
"##;
    let args = [s(&granted), s(&secret_file), std::process::id().to_string()];
    let p = mounted(reading(&[&granted]), &granted, body, &args).await;
    for name in [
        "absolute",
        "relative",
        "deep",
        "chdir_then_read",
        "self_root",
        "thread_self_root",
        "self_cwd_up",
        "parent_root",
        "one_root",
    ] {
        p.err(name, &[ENOENT]);
    }
    // `..` of the granted directory is the run's own (empty, read-only) directory.
    assert_eq!(p.ok_text("list_parent"), "granted");
    p.ok("self_root_granted");
    p.assert_no_leak(&value);

    // Control: granting the parent makes the same paths readable.
    let p = mounted(reading(&[parent.path()]), &granted, body, &args).await;
    assert_eq!(p.ok_text("relative"), value);
    assert_eq!(p.ok_text("deep"), value);
    assert_eq!(p.ok_text("self_root"), value);
}

#[tokio::test]
async fn a_granted_file_cannot_be_renamed_or_linked_out_of_its_grant() {
    if !without_landlock("a_granted_file_cannot_be_renamed_or_linked_out_of_its_grant") {
        return;
    }
    let sec = secret();
    let outside = scratch();
    let work = scratch();
    let w = work.path();
    file(&w.join("data.txt"), b"data");
    subdir(w, "d");
    let before = (snapshot(outside.path()), snapshot(sec.dir.path()));
    let body = r##"
w, out, secret = ARGS[0], ARGS[1], ARGS[2]
attempt("rename_out", lambda: os.rename(w + "/data.txt", out + "/data.txt"))
attempt("replace_out", lambda: os.replace(w + "/data.txt", out + "/data.txt"))
attempt("rename_dir_out", lambda: os.rename(w + "/d", out + "/d"))
attempt("link_out", lambda: os.link(w + "/data.txt", out + "/data-link"))
attempt("link_secret_in", lambda: os.link(secret, w + "/stolen"))
attempt("rename_secret_in", lambda: os.rename(secret, w + "/stolen2"))
attempt("rename_in", lambda: os.rename(w + "/data.txt", w + "/d/moved.txt"))
"##;
    // The outside directory is visible (read-only), so the attempts reach the kernel's
    // checks across mounts; the secret's is not visible at all.
    let mut policy = writing(&[w]);
    policy.read = vec![outside.path().to_path_buf()];
    let args = [s(w), s(outside.path()), s(&sec.file)];
    let p = mounted(policy, w, body, &args).await;
    for name in ["rename_out", "replace_out", "rename_dir_out", "link_out"] {
        p.err(name, &[libc::EXDEV, EROFS]);
    }
    p.err("link_secret_in", &[ENOENT]);
    p.err("rename_secret_in", &[ENOENT]);
    // Control: a rename inside the granted tree works.
    p.ok("rename_in");
    assert_eq!(fs::read(w.join("d/moved.txt")).unwrap(), b"data");
    assert!(!w.join("stolen").exists() && !w.join("stolen2").exists());
    assert_eq!((snapshot(outside.path()), snapshot(sec.dir.path())), before);
    p.assert_no_leak(&sec.value);
}

#[tokio::test]
async fn a_granted_path_through_a_symlink_is_refused() {
    if !without_landlock("a_granted_path_through_a_symlink_is_refused") {
        return;
    }
    let sec = secret();
    let ws = scratch();
    let w = ws.path();
    std::os::unix::fs::symlink(sec.dir.path(), w.join("link")).unwrap();
    let real_sub = subdir(w, "real");
    let marker = |d: &Path| d.join("planted.txt");
    for (what, policy) in [
        ("write through a link", writing(&[&w.join("link")])),
        ("read through a link", reading(&[&w.join("link")])),
        ("read of a file through a linked dir", reading(&[&w.join("link/secret.txt")])),
    ] {
        let mut spec = ChildSpec::new(SH, w);
        spec.args = vec!["-c".into(), "echo x > \"$1\"".into(), "sh".into()];
        spec.args.push(marker(sec.dir.path()).into());
        spec.policy = ns(policy);
        match skillbox_sandbox::run(&spec).await {
            Err(SandboxError::Policy(msg)) => {
                assert!(msg.contains("symbolic link"), "{what}: {msg}")
            }
            other => panic!("{what}: expected SandboxError::Policy, got {other:?}"),
        }
    }
    assert!(!marker(sec.dir.path()).exists());

    // Control: the real path is accepted and is writable.
    let mut spec = ChildSpec::new(SH, w);
    spec.args = vec!["-c".into(), "echo x > \"$1\"".into(), "sh".into()];
    spec.args.push(marker(&real_sub).into());
    spec.policy = ns(writing(&[&real_sub]));
    let out = skillbox_sandbox::run(&spec).await.expect("the real path is a valid grant");
    assert_eq!(out.status, skillbox_sandbox::ExitStatus::Exited(0), "{}", out.stderr.to_text());
    assert_eq!(fs::read(marker(&real_sub)).unwrap(), b"x\n");
}

// ---------------------------------------------------------------------------------------
// hidden paths (tests/carve.rs)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn hidden_paths_stay_unread_beneath_read_and_write_trees() {
    if !without_landlock("hidden_paths_stay_unread_beneath_read_and_write_trees") {
        return;
    }
    let sec = secret();
    let h = scratch();
    subdir(h.path(), ".ssh");
    subdir(h.path(), "ws/deep/er");
    subdir(h.path(), "ws/other");
    fs::copy(&sec.file, h.path().join(".ssh/id_rsa")).unwrap();
    fs::copy(&sec.file, h.path().join("ws/deep/er/token")).unwrap();
    file(&h.path().join("notes.txt"), b"notes");
    let body = r##"
h = ARGS[0]
attempt("key", lambda: read(h + "/.ssh/id_rsa"))
attempt("list_ssh", lambda: os.listdir(h + "/.ssh"))
attempt("token", lambda: read(h + "/ws/deep/er/token"))
attempt("token_write", lambda: write(h + "/ws/deep/er/token", b"x", "ab"))
attempt("er_rename", lambda: os.rename(h + "/ws/deep/er", h + "/ws/er2"))
attempt("deep_rename", lambda: os.rename(h + "/ws/deep", h + "/ws/deep2"))
attempt("notes", lambda: read(h + "/notes.txt"))
attempt("ws_create", lambda: write(h + "/ws/other/new.txt", b"new", "xb"))
attempt("ws_top_create", lambda: write(h + "/ws/new.txt", b"new", "xb"))
"##;
    let mut policy = reading(&[h.path()]);
    policy.write = vec![h.path().join("ws")];
    policy.hidden = vec![h.path().join(".ssh"), h.path().join("ws/deep/er/token")];
    let p = mounted(policy.clone(), h.path(), body, &[s(h.path())]).await;
    p.err("key", &[EACCES]);
    p.err("list_ssh", &[EACCES]);
    p.err("token", &[EACCES]);
    p.failed("token_write");
    // The way to a hidden path cannot be renamed aside (a split directory is read-only).
    p.failed("er_rename");
    p.failed("deep_rename");
    assert_eq!(p.ok("notes"), b"notes");
    p.ok("ws_create");
    // The cost of splitting, as under Landlock: no new entry on the way to a hidden path.
    p.err("ws_top_create", &[EROFS]);
    p.assert_no_leak(&sec.value);
    assert_eq!(fs::read_to_string(h.path().join("ws/deep/er/token")).unwrap(), sec.value);
    assert!(h.path().join("ws/deep/er").is_dir());

    // Control: the same grants without the hidden paths read both.
    policy.hidden = Vec::new();
    let p = mounted(policy, h.path(), body, &[s(h.path())]).await;
    assert_eq!(p.ok("key"), sec.value.as_bytes());
    assert_eq!(p.ok("token"), sec.value.as_bytes());
}

/// `~/.config/gh` with the home writable: the hidden path beneath a protected entry is
/// covered, the rest of the protected entry stays readable and read-only.
#[tokio::test]
async fn a_hidden_path_beneath_a_protected_entry_of_a_writable_tree_stays_unread() {
    if !without_landlock("a_hidden_path_beneath_a_protected_entry_of_a_writable_tree_stays_unread")
    {
        return;
    }
    let t = ProtectedOverSecret::new();
    let (w, body) = (t.tree.path(), PROTECTED_OVER_SECRET);
    t.check(&mounted(t.policy(), w, body, &[s(w)]).await);
    t.check_control(&mounted(writing(&[w]), w, body, &[s(w)]).await);
}

#[tokio::test]
async fn a_hidden_path_that_does_not_exist_yet_cannot_be_created() {
    if !without_landlock("a_hidden_path_that_does_not_exist_yet_cannot_be_created") {
        return;
    }
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
    let p = mounted(policy, w.path(), body, &[s(w.path())]).await;
    p.err("mkdir", &[EROFS]);
    p.err("create", &[EROFS]);
    p.ok("work");
    assert!(!w.path().join(".aws").exists());

    // Control: without the hidden path, it can be created.
    let p = mounted(writing(&[w.path()]), w.path(), body, &[s(w.path())]).await;
    p.ok("mkdir");
}

#[tokio::test]
async fn a_grant_inside_a_hidden_path_is_the_callers_explicit_choice() {
    if !without_landlock("a_grant_inside_a_hidden_path_is_the_callers_explicit_choice") {
        return;
    }
    let outer = scratch();
    let h = subdir(outer.path(), "hidden");
    subdir(&h, "granted/inner");
    file(&h.join("granted/inner/f"), b"granted");
    file(&h.join("other"), b"other");
    let body = r##"
h = ARGS[0]
attempt("granted", lambda: read(h + "/granted/inner/f"))
attempt("other", lambda: read(h + "/other"))
attempt("list", lambda: os.listdir(h))
"##;
    // The hidden directory lies in a read tree, and a tree inside it is granted.
    let mut policy = reading(&[outer.path(), &h.join("granted/inner")]);
    policy.hidden = vec![h.clone()];
    let p = mounted(policy, outer.path(), body, &[s(&h)]).await;
    assert_eq!(p.ok("granted"), b"granted");
    p.err("other", &[ENOENT, EACCES]);
    p.err("list", &[EACCES]);
}

// ---------------------------------------------------------------------------------------
// protected entries (tests/protected.rs, tests/carve.rs)
// ---------------------------------------------------------------------------------------

/// A workspace holding `.git/config`, `.git/hooks/`, `.q-skills/x.json`, `.bashrc`, `src/`
/// and, deeper, `vendor/lib/.git/config`.
fn workspace() -> tempfile::TempDir {
    let ws = scratch();
    let w = ws.path();
    subdir(w, ".git/hooks");
    subdir(w, ".q-skills");
    subdir(w, "src");
    subdir(w, "vendor/lib/.git/hooks");
    file(&w.join(".git/config"), b"[core]\n\trepositoryformatversion = 0\n");
    file(&w.join(".git/hooks/pre-commit.sample"), b"#!/bin/sh\nexit 0\n");
    file(&w.join(".q-skills/x.json"), b"{\"name\": \"x\"}\n");
    file(&w.join(".bashrc"), b"# rc\n");
    file(&w.join("src/main.txt"), b"main");
    file(&w.join("vendor/lib/.git/config"), b"[core]\n");
    file(&w.join("vendor/lib/main.c"), b"int main;\n");
    ws
}

const PLANT: &str = r##"
w = ARGS[0]
cfg, skill, rc, hooks = w + "/.git/config", w + "/.q-skills/x.json", w + "/.bashrc", w + "/.git/hooks"
deep = w + "/vendor/lib/.git"
for name, path in [("cfg", cfg), ("skill", skill), ("rc", rc), ("deep", deep + "/config")]:
    attempt(name + "_append", lambda: write(path, b"\n[core]\n\tfsmonitor = touch /tmp/pwned\n", "ab"))
    attempt(name + "_truncate_open", lambda: write(path, b"", "wb"))
    attempt(name + "_truncate", lambda: os.truncate(path, 0))
    attempt(name + "_unlink", lambda: os.unlink(path))
    attempt(name + "_rename_away", lambda: os.rename(path, w + "/src/moved"))
    attempt(name + "_replace_from_src", lambda: (write(w + "/src/repl"), os.replace(w + "/src/repl", path))[1])
    attempt(name + "_chmod", lambda: os.chmod(path, 0o777))
attempt("hook_create", lambda: write(hooks + "/post-commit", b"#!/bin/sh\ntouch /tmp/pwned\n", "xb"))
attempt("deep_hook_create", lambda: write(deep + "/hooks/post-commit", b"#!/bin/sh\n", "xb"))
attempt("hook_activate_sample", lambda: os.replace(hooks + "/pre-commit.sample", hooks + "/pre-commit"))
attempt("skill_create", lambda: write(w + "/.q-skills/evil.json", b"{}", "xb"))
attempt("git_rename", lambda: os.rename(w + "/.git", w + "/.git-old"))
attempt("lib_rename", lambda: os.rename(w + "/vendor/lib", w + "/vendor/lib2"))
attempt("git_rmtree", lambda: os.rmdir(hooks))
attempt("hardlink_in_src", lambda: (os.link(cfg, w + "/src/cfg-hard"), write(w + "/src/cfg-hard", b"x", "ab"))[1])
attempt("symlink_in_src", lambda: (os.symlink("../.git/config", w + "/src/cfg-link"), write(w + "/src/cfg-link", b"x", "ab"))[1])
attempt("top_level_new", lambda: write(w + "/.profile", b"touch /tmp/pwned\n", "xb"))
attempt("lib_new", lambda: write(w + "/vendor/lib/new.c", b"new", "xb"))
attempt("src_write", lambda: write(w + "/src/new.txt", b"new", "xb"))
attempt("src_mkdir", lambda: os.mkdir(w + "/src/pkg"))
attempt("src_append", lambda: write(w + "/src/main.txt", b"+", "ab"))
attempt("lib_append", lambda: write(w + "/vendor/lib/main.c", b"+", "ab"))
attempt("read_cfg", lambda: read(cfg))
"##;

#[tokio::test]
async fn protected_entries_stay_unchanged_at_any_depth_of_a_writable_workspace() {
    if !without_landlock("protected_entries_stay_unchanged_at_any_depth_of_a_writable_workspace") {
        return;
    }
    let ws = workspace();
    let w = ws.path();
    let protected = || -> Vec<String> {
        [".git", ".q-skills", ".bashrc", "vendor/lib/.git"]
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
    let modes = || -> Vec<u32> {
        use std::os::unix::fs::PermissionsExt;
        [".git/config", ".bashrc", "vendor/lib/.git/config"]
            .iter()
            .map(|e| fs::metadata(w.join(e)).unwrap().permissions().mode())
            .collect()
    };
    let (protected_before, modes_before) = (protected(), modes());

    let p = mounted(writing(&[w]), w, PLANT, &[s(w)]).await;
    for name in ["cfg", "skill", "rc", "deep"] {
        for how in [
            "append",
            "truncate_open",
            "truncate",
            "unlink",
            "rename_away",
            "replace_from_src",
            "chmod",
        ] {
            p.failed(&format!("{name}_{how}"));
        }
    }
    for name in [
        "hook_create",
        "deep_hook_create",
        "hook_activate_sample",
        "skill_create",
        "git_rename",
        "lib_rename",
        "git_rmtree",
        "hardlink_in_src",
        "symlink_in_src",
        "top_level_new",
        // The cost of splitting: no new entry in a directory on the way to a protected one.
        "lib_new",
    ] {
        p.failed(name);
    }
    // Controls: src/ and the rest of vendor/lib are writable, the protected entries readable.
    p.ok("src_write");
    p.ok("src_mkdir");
    p.ok("src_append");
    p.ok("lib_append");
    assert_eq!(p.ok("read_cfg"), fs::read(w.join(".git/config")).unwrap());
    assert_eq!(fs::read(w.join("src/main.txt")).unwrap(), b"main+");
    assert_eq!(fs::read(w.join("vendor/lib/main.c")).unwrap(), b"int main;\n+");

    assert_eq!(protected(), protected_before, "a protected entry changed");
    assert_eq!(modes(), modes_before, "a protected entry's mode changed");
    assert!(!w.join(".git/hooks/post-commit").exists());
    assert!(!w.join("vendor/lib/.git/hooks/post-commit").exists());
    assert!(!w.join(".profile").exists());

    // Control: without protection, the same attempts do change the entries.
    let ws2 = workspace();
    let mut open = writing(&[ws2.path()]);
    open.protected = Vec::new();
    let p = mounted(open, ws2.path(), PLANT, &[s(ws2.path())]).await;
    p.ok("cfg_append");
    p.ok("deep_append");
    p.ok("hook_create");
    p.ok("git_rename");
    assert!(ws2.path().join(".git-old/hooks/post-commit").exists());
}

#[tokio::test]
async fn protected_entries_cannot_be_planted_in_a_guarded_workspace_that_lacks_them() {
    if !without_landlock(
        "protected_entries_cannot_be_planted_in_a_guarded_workspace_that_lacks_them",
    ) {
        return;
    }
    let ws = scratch();
    let w = ws.path();
    subdir(w, "src");
    file(&w.join("README"), b"readme");
    let body = r##"
w = ARGS[0]
attempt("git_hook", lambda: (os.makedirs(w + "/.git/hooks"), write(w + "/.git/hooks/post-commit", mode="xb"))[1])
attempt("skill", lambda: (os.makedirs(w + "/.q-skills/evil"), write(w + "/.q-skills/evil/skill.json", mode="xb"))[1])
attempt("bashrc", lambda: write(w + "/.bashrc", mode="xb"))
attempt("claude", lambda: (os.makedirs(w + "/.claude"), write(w + "/.claude/settings.json", mode="xb"))[1])
attempt("src", lambda: write(w + "/src/ok.txt", mode="xb"))
attempt("readme", lambda: write(w + "/README", b"+", "ab"))
"##;
    let mut policy = writing(&[w]);
    policy.guarded = vec![w.to_path_buf()];
    let p = mounted(policy.clone(), w, body, &[s(w)]).await;
    p.ok("src");
    p.ok("readme");
    for name in ["git_hook", "skill", "bashrc", "claude"] {
        p.err(name, &[EROFS]);
    }
    assert!(!w.join(".git").exists() && !w.join(".bashrc").exists());

    // Control: not guarded, the top of the workspace is writable.
    policy.guarded = Vec::new();
    let p = mounted(policy, w, body, &[s(w)]).await;
    p.ok("bashrc");
}
