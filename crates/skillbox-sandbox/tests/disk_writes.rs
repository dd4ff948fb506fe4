//! The total disk-write limit (`Rlimits::disk_write_bytes`) and the bytes-written count,
//! checked by what ends up on disk.
//!
//! The limit is enforced by supervision on the kernel's `write_bytes` counters, which do not
//! count tmpfs. So every test first checks that its scratch directory is on a filesystem the
//! counters see, and fails loudly when it is not (set `TMPDIR` to a disk-backed directory).
//!
//! No assertion depends on timing: a writer stopped at the limit may overshoot it by what
//! it writes in one poll interval, so the bound checked is generous (a quarter of what the
//! writer would write unchecked: 1 GiB), and the counts are compared with the bytes the
//! tests themselves wrote.

mod hosts;

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use skillbox_sandbox::{
    ChildOutcome, ChildSpec, ExitStatus, Guarantee, Limit, MechanismState, Policy, ProcessAccess,
};

const SH: &str = "/bin/sh";
const PYTHON: &str = "/usr/bin/python3";
const PATH_VALUE: &str = "/usr/local/bin:/usr/bin:/bin";
const MIB: u64 = 1 << 20;

/// True when the kernel keeps per-process I/O counters. Without them the limit cannot be
/// enforced, the report must say `not-enforced`, and the effect tests have nothing to check.
fn counters() -> bool {
    let ok = fs::read_to_string("/proc/self/io").is_ok_and(|s| s.contains("write_bytes:"));
    if !ok {
        eprintln!(
            "!!! this kernel keeps no per-process I/O counters (/proc/PID/io): the disk-write \
             total is not enforced here, and only its not-enforced report is tested"
        );
    }
    ok
}

/// A fresh directory any user can write to, on a filesystem whose writes the kernel counts.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).expect("chmod temp dir");
    assert!(
        !is_tmpfs(dir.path()),
        "{} is on tmpfs, whose writes the kernel's write_bytes counter does not see, so the \
         disk-write limit cannot be tested here: set TMPDIR to a directory on a disk",
        dir.path().display()
    );
    dir
}

fn is_tmpfs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: statfs is plain old data, for which all zero bytes are a valid value.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs writes only into `s`; `c` is a valid NUL-terminated path.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    r == 0 && s.f_type == libc::TMPFS_MAGIC
}

/// A confined child that may write only `dir`, with `per_file` as the largest file and
/// `total` as the run's total.
fn writer(program: &str, args: &[&str], dir: &Path, per_file: u64, total: u64) -> ChildSpec {
    let mut spec = ChildSpec::new(program, dir);
    spec.args = args.iter().map(OsString::from).collect();
    spec.env = vec![("PATH".into(), PATH_VALUE.into())];
    spec.timeout = Duration::from_secs(120);
    let mut policy = Policy::strict();
    policy.write = vec![dir.to_path_buf()];
    policy.processes = ProcessAccess::Full;
    policy.pid_namespace = true;
    policy.rlimits.file_size = Some(per_file);
    policy.rlimits.disk_write_bytes = Some(total);
    spec.policy = policy;
    spec
}

/// Runs `spec`, which must run unless the support matrix says it is refused on this host
/// (`None`: the caller skips the rest of that check). See `tests/hosts`.
async fn run_ok(spec: &ChildSpec) -> Option<ChildOutcome> {
    hosts::run_ok(spec).await
}

/// Bytes in the regular files directly inside `dir`, and the largest of them.
fn on_disk(dir: &Path) -> (u64, u64) {
    let mut total = 0;
    let mut largest = 0;
    for e in fs::read_dir(dir).expect("read scratch dir").flatten() {
        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
        total += len;
        largest = largest.max(len);
    }
    (total, largest)
}

/// 4096 files of 1 MiB (4 GiB unchecked), each under the 2 MiB per-file limit, against a
/// total of 8 MiB.
const FILES: u64 = 4096;
const TOTAL: u64 = 8 * MIB;

fn check_stopped_at_the_total(out: &ChildOutcome, dir: &Path, what: &str) {
    assert_eq!(out.limit, Some(Limit::DiskWrite), "{what}: {out:?}");
    assert_eq!(out.status, ExitStatus::Signaled(libc::SIGKILL), "{what}: the run is killed");
    let (total, largest) = on_disk(dir);
    eprintln!("{what}: stopped with {total} bytes on disk, {} counted", out.bytes_written);
    assert!(largest <= MIB, "{what}: every file stays within the per-file limit: {largest}");
    // Not stopped before the limit. The count can hold a few KiB more than the files' data
    // (8 MiB + 4 KiB seen as nobody), so a watchdog that looks right after the eighth file
    // ends the run with exactly the total on disk.
    assert!(total >= TOTAL, "{what}: the writer got to the limit before being stopped: {total}");
    // One poll interval of writes past the limit (about 100 MiB measured here, for a Python
    // writer); a quarter of the unchecked 4 GiB is a bound no page cache reaches in 50 ms.
    assert!(
        total < FILES * MIB / 4,
        "{what}: {total} bytes on disk, far past the {TOTAL}-byte total: not stopped"
    );
    // Stopped by the count, not because a counter could not be read.
    assert!(
        out.bytes_written > TOTAL,
        "{what}: stopped with only {} bytes counted",
        out.bytes_written
    );
}

#[tokio::test]
async fn one_process_writing_many_small_files_is_stopped_at_the_total() {
    if !counters() {
        return;
    }
    for pid_namespace in [true, false] {
        let dir = scratch();
        let script = format!(
            "for i in range({FILES}):\n    with open(f'f{{i}}', 'wb') as f:\n        f.write(b'x' * {MIB})\n"
        );
        let mut spec = writer(PYTHON, &["-B", "-c", &script], dir.path(), 2 * MIB, TOTAL);
        spec.policy.pid_namespace = pid_namespace;
        let Some(out) = run_ok(&spec).await else { continue };
        check_stopped_at_the_total(&out, dir.path(), &format!("pid_namespace {pid_namespace}"));
    }
}

#[tokio::test]
async fn many_short_lived_writer_processes_are_counted_together() {
    if !counters() {
        return;
    }
    // Each file is written by its own `head`, which the shell waits for: the kernel adds
    // each reaped writer's count to the shell's.
    let dir = scratch();
    let script = format!(
        "i=0; while [ $i -lt {FILES} ]; do head -c {MIB} /dev/zero > f$i; i=$((i+1)); done"
    );
    let spec = writer(SH, &["-c", &script], dir.path(), 2 * MIB, TOTAL);
    let Some(out) = run_ok(&spec).await else { return };
    check_stopped_at_the_total(&out, dir.path(), "shell and head");
}

#[tokio::test]
async fn background_writers_are_counted_while_they_run() {
    if !counters() {
        return;
    }
    // Four writers in the background, the shell waiting for none of them until the end.
    let dir = scratch();
    let one = format!(
        "j=0; while [ $j -lt {} ]; do head -c {MIB} /dev/zero > f$1-$j; j=$((j+1)); done",
        FILES / 4
    );
    let script = format!("for w in 1 2 3 4; do {SH} -c '{one}' writer $w & done; wait");
    let spec = writer(SH, &["-c", &script], dir.path(), 2 * MIB, TOTAL);
    let Some(out) = run_ok(&spec).await else { return };
    check_stopped_at_the_total(&out, dir.path(), "four background writers");

    // With a memory limit, root gets a cgroup for the run, and the processes are found in
    // it instead of by walking /proc: the same must hold.
    let dir = scratch();
    let script = format!("for w in 1 2 3 4; do {SH} -c '{one}' writer $w & done; wait");
    let mut spec = writer(SH, &["-c", &script], dir.path(), 2 * MIB, TOTAL);
    spec.policy.rlimits.memory = Some(1 << 30);
    let Some(out) = run_ok(&spec).await else { return };
    check_stopped_at_the_total(&out, dir.path(), "four background writers, memory limit");
}

#[tokio::test]
async fn a_run_that_exceeds_the_total_and_exits_at_once_is_reported() {
    if !counters() {
        return;
    }
    // Whether or not a sample falls inside this short run, the count at its end is over.
    let dir = scratch();
    let spec = writer(
        SH,
        &["-c", &format!("head -c {MIB} /dev/zero > a; head -c {MIB} /dev/zero > b")],
        dir.path(),
        2 * MIB,
        MIB,
    );
    let Some(out) = run_ok(&spec).await else { return };
    assert_eq!(out.limit, Some(Limit::DiskWrite), "{out:?}");
    assert!(out.bytes_written >= 2 * MIB, "{out:?}");
}

#[tokio::test]
async fn a_run_under_the_total_reports_what_it_wrote() {
    if !counters() {
        return;
    }
    for pid_namespace in [true, false] {
        let dir = scratch();
        // Three files by three processes the shell waits for, one by the shell itself.
        let script = format!(
            "for n in 1 2 3; do head -c {MIB} /dev/zero > f$n; done; \
             printf '%0{MIB}d' 0 > f4"
        );
        let mut spec = writer(SH, &["-c", &script], dir.path(), 2 * MIB, 64 * MIB);
        spec.policy.pid_namespace = pid_namespace;
        let Some(out) = run_ok(&spec).await else { continue };
        assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
        assert_eq!(out.limit, None, "{out:?}");
        let (total, _) = on_disk(dir.path());
        assert_eq!(total, 4 * MIB, "the files were written");
        // Page-granular counts of fresh, page-aligned files; metadata blocks the writers
        // dirtied may add a few pages.
        assert!(
            out.bytes_written >= 4 * MIB && out.bytes_written <= 5 * MIB,
            "pid_namespace {pid_namespace}: {} bytes counted for {total} written",
            out.bytes_written
        );
    }
}

#[tokio::test]
async fn output_to_the_pipes_is_not_a_disk_write() {
    if !counters() {
        return;
    }
    let dir = scratch();
    let spec =
        writer(SH, &["-c", &format!("head -c {} /dev/zero", 16 * MIB)], dir.path(), MIB, MIB);
    let Some(out) = run_ok(&spec).await else { return };
    assert_eq!(out.status, ExitStatus::Exited(0), "{out:?}");
    assert_eq!(out.limit, None);
    assert_eq!(out.stdout.total_bytes, 16 * MIB);
    assert!(out.bytes_written < MIB, "{}", out.bytes_written);
}

#[tokio::test]
async fn the_report_says_how_the_total_is_enforced() {
    let dir = scratch();
    let Some(out) = run_ok(&writer(SH, &["-c", "true"], dir.path(), MIB, 4 * MIB)).await else {
        return;
    };
    if !counters() {
        assert_eq!(out.enforcement.state(Guarantee::DiskWrites), Some(MechanismState::NotEnforced));
        return;
    }
    let line = out
        .enforcement
        .mechanisms
        .iter()
        .find(|m| m.name == Guarantee::DiskWrites)
        .expect("a disk-writes line");
    assert_eq!(line.state, MechanismState::Enforced);
    for words in
        ["supervision", "not a kernel quota", "write_bytes", "overshoot", "RLIMIT_FSIZE", "tmpfs"]
    {
        assert!(line.detail.contains(words), "{words:?} missing from {:?}", line.detail);
    }

    let mut spec = writer(SH, &["-c", "true"], dir.path(), MIB, 4 * MIB);
    spec.policy.rlimits.disk_write_bytes = None;
    let Some(out) = run_ok(&spec).await else { return };
    assert_eq!(out.enforcement.state(Guarantee::DiskWrites), Some(MechanismState::Unrestricted));
}
