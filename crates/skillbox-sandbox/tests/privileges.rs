//! Privileges and limits (threat model 6): `no_new_privs`, every capability dropped, and
//! rlimits that cannot be raised from inside.
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

// ---------------------------------------------------------------------------------------
// privileges and limits
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
    // In the run's own user namespace (with its PID namespace), the kernel gives the first
    // process every capability of that namespace, whoever starts it: all must be dropped.
    let own_namespace = hosts::expect_policy(&strict(), false).pid_namespace;
    let Some(p) = probe(strict(), cwd.path(), body, &[]).await else { return };
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
    } else if own_namespace {
        assert_eq!(p.ok_text("CapBnd"), "0000000000000000", "the namespace's set is kept");
        // Only this user's id is mapped in the run's namespace: uid 0 does not exist there.
        p.err("setuid0", &[libc::EINVAL]);
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
    let mut policy = strict();
    policy.rlimits.open_files = Some(64);
    let Some(p) = probe(policy, cwd.path(), body, &[]).await else { return };
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
