//! Kernel side doors (threat model 11): io_uring, terminal injection, keyrings, bpf,
//! namespaces, mounts, modules, the x32 ABI and 32-bit system calls are shut.
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

use skillbox_sandbox::{ChildSpec, ExitStatus};

// ---------------------------------------------------------------------------------------
// kernel side doors
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
    let Some(p) = probe(strict(), cwd.path(), body, &[]).await else { return };
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
    spec.policy = strict();
    let Some(out) = hosts::run_ok(&spec).await else { return };
    let text = out.stdout.to_text();
    assert!(text.contains("mapped"), "the probe did not get to the call: {text}");
    assert!(!text.contains("int80-getpid"), "a 32-bit syscall returned: {text}");
    assert_eq!(out.status, ExitStatus::Signaled(libc::SIGSYS), "{text}");
}
