//! A private directory (`HOME`, `TMPDIR`) that its run left exactly as it was made serves
//! the next run of the process; one the run changed in any way the next could notice (a
//! file, a mode, an extended attribute) never does. A test binary of its own: the directory
//! kept is the process's, and tests running beside it in one process would take it.
//!
//! These run as root in CI and again as `nobody` (scripts/test.sh).

mod support;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use skillbox_skills::{Registry, Runtime, Status, TrustLevel};
use support::{field, scratch};

/// A workspace with a Python skill that reports its `HOME`, `TMPDIR`, the modes of the
/// private directory and of both, their extended attributes and entries, then does `act`
/// (`none`, `chmod` of `HOME`, `chmodtop` of the private directory above it, `xattr` on
/// `TMPDIR`, a `file` left in `TMPDIR`, or `iflags`: inode flags `FS_NOATIME_FL` and
/// `FS_SYNC_FL` set on `HOME` with `FS_IOC_SETFLAGS`) and says it did. It also prints the
/// inode flags of the three directories (`IFLAGS=`).
fn changer_workspace() -> tempfile::TempDir {
    let ws = scratch();
    let script = r#"
import os, sys
h, t = os.environ["HOME"], os.environ["TMPDIR"]
print("HOME=" + h)
print("TMPDIR=" + t)
print("MODES=" + " ".join("%o" % (os.lstat(p).st_mode & 0o7777) for p in (os.path.dirname(h), h, t)))
print("XATTRS=%d" % sum(len(os.listxattr(p)) for p in (h, t)))
print("ENTRIES=%d" % (len(os.listdir(h)) + len(os.listdir(t))))
import fcntl, struct
GETFLAGS, SETFLAGS = 0x80086601, 0x40086602
NOATIME, SYNC, APPEND = 0x80, 0x8, 0x20
def getflags(p):
    fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, GETFLAGS, b"\0" * 4))[0]
    except OSError:
        return None
    finally:
        os.close(fd)
def setflags(p, f):
    fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, SETFLAGS, struct.pack("i", f))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
flags = [getflags(p) for p in (os.path.dirname(h), h, t)]
print("IFLAGS=" + " ".join("unsupported" if f is None else "%x" % f for f in flags))
act = sys.argv[1]
if act == "chmod":
    os.chmod(h, 0o755)
elif act == "chmodtop":
    os.chmod(os.path.dirname(h), 0o755)
elif act == "xattr":
    os.setxattr(t, "user.skillbox-test", b"1")
elif act == "file":
    open(os.path.join(t, "left"), "w").write("x")
elif act == "iflags":
    # What `chattr +AS` does; tmpfs takes no FS_SYNC_FL, so then FS_NOATIME_FL alone.
    if flags[1] is None:
        act = "iflags-unsupported"
    elif not setflags(h, flags[1] | NOATIME | SYNC) and not setflags(h, flags[1] | NOATIME):
        act = "iflags-refused"
    elif getflags(h) == flags[1]:
        act = "iflags-unchanged"
    # Append-only (and immutable) need CAP_LINUX_IMMUTABLE, which the run never has.
    print("APPEND=" + ("set" if setflags(t, (flags[2] or 0) | APPEND) else "refused"))
print("DID=" + act)
"#;
    let skill = json!({
        "name": "changer",
        "type": "command",
        "command": "/usr/bin/python3",
        "args": ["-I", "-c", script, "{act}"],
        "parameters": [{"name": "act", "type": "enum",
                        "values": ["none", "chmod", "chmodtop", "xattr", "file", "iflags"], "required": true}],
        "security": {"permissions": {}},
    });
    let dir = ws.path().join(".q-skills");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("changer.json"), skill.to_string()).expect("write");
    ws
}

/// A run that leaves its directory as it was made hands it to the next run; a run that
/// changes it in any way the next could notice (a file, a mode, an extended attribute, an
/// inode flag) does not: the next run gets another directory, which it finds empty, 0700,
/// without attributes and with the inode flags of a new one, and the changed one is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_dir_left_as_made_serves_the_next_run() {
    let ws = changer_workspace();
    let rt =
        Runtime::with_registry(Registry::load_paths(&[ws.path().join(".q-skills")]), ws.path())
            .expect("runtime");
    let mut dirs: Vec<PathBuf> = Vec::new();
    // The first run of a process keeps nothing (a `skillbox run` process makes one run);
    // after that, each `none` run keeps its directory, each other act spoils it.
    let acts = [
        "none", "none", "none", "chmod", "none", "chmodtop", "none", "xattr", "none", "file",
        "none", "iflags", "none", "none",
    ];
    let mut fresh_flags = None;
    for (i, act) in acts.iter().enumerate() {
        let r = rt.run("changer", &json!({"act": act}), Some(TrustLevel::Untrusted)).await;
        assert_eq!(r.status, Status::Success, "run {i} ({act}): {r:?}");
        let f = |k: &str| field(&r.stdout, k).unwrap_or_else(|| panic!("{k} in {}", r.stdout));
        if *act == "iflags" && f("DID") == "iflags-unsupported" {
            // A file system without inode flags: the run cannot set any either.
            eprintln!("note: the temp directory's file system has no inode flags");
        } else {
            assert_eq!(f("DID"), *act, "run {i} did not do its act: {}", r.stdout);
        }
        if *act == "iflags" {
            assert_eq!(f("APPEND"), "refused", "run {i}: the run set FS_APPEND_FL");
        }
        // Every run finds the inode flags of a directory as made, whoever ran before.
        let flags = f("IFLAGS");
        assert_eq!(*fresh_flags.get_or_insert_with(|| flags.clone()), flags, "run {i} ({act})");
        assert_eq!(f("MODES"), "700 700 700", "run {i} ({act})");
        assert_eq!(f("XATTRS"), "0", "run {i} ({act})");
        assert_eq!(f("ENTRIES"), "0", "run {i} ({act})");
        dirs.push(PathBuf::from(f("HOME")).parent().expect("private dir").to_path_buf());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 1..acts.len() {
        let previous = acts[i - 1];
        if i == 1 {
            assert_ne!(dirs[1], dirs[0], "the first run of the process kept its directory");
        } else if previous == "none" {
            assert_eq!(
                dirs[i],
                dirs[i - 1],
                "run {i}: the clean directory of run {} was not kept",
                i - 1
            );
        } else {
            assert_ne!(
                dirs[i],
                dirs[i - 1],
                "run {i} got the directory run {} changed ({previous})",
                i - 1
            );
        }
    }
    // The changed ones are removed (off the path of the result: allow it a moment).
    let spoiled: Vec<&PathBuf> =
        acts.iter().zip(&dirs).filter(|(a, _)| **a != "none").map(|(_, d)| d).collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while spoiled.iter().any(|d| d.exists()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<&&PathBuf> = spoiled.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "changed private dirs left behind: {left:?}");
}
