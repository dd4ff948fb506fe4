//! Descriptors and secrets (threat model 8): no descriptor of the runtime reaches the
//! program but stdin, stdout and stderr, not even one left without close-on-exec.
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
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

// ---------------------------------------------------------------------------------------
// descriptors
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn descriptors_of_the_runtime_are_not_inherited() {
    let sec = secret();
    let c = CString::new(sec.file.as_os_str().as_bytes()).unwrap();
    // SAFETY: open of a valid NUL-terminated path; the descriptor is closed at the end of
    // this test.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) }; // no O_CLOEXEC, on purpose
    assert!(fd >= 0, "open secret");
    // SAFETY: duplicates the descriptor just opened; closed at the end of this test.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD, 200) }; // F_DUPFD: no FD_CLOEXEC either
    assert!(high >= 200, "dup secret");
    for f in [fd, high] {
        // SAFETY: F_GETFD only reads the flags of a descriptor this test owns.
        let flags = unsafe { libc::fcntl(f, libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, 0, "fd {f} is cloexec");
    }
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
    let Some(p) = probe(strict(), cwd.path(), body, &args).await else { return };

    // Control: an ordinary child of this process does inherit both descriptors.
    let control = std::process::Command::new(PYTHON)
        .args(["-I", "-c", "import os, sys; print(os.pread(int(sys.argv[1]), 4096, 0).decode())"])
        .arg(high.to_string())
        .output()
        .unwrap();
    for f in [fd, high] {
        // SAFETY: closes a descriptor opened above, owned by this test alone.
        unsafe { libc::close(f) };
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
    // Where /proc is the run's PID namespace's (process-visibility, or a root of its own),
    // this process has no entry there.
    p.err("parent_fd", if p.own_proc() { &[ENOENT] } else { &[EACCES, EPERM] });
    p.assert_no_leak(&sec.value);
}
