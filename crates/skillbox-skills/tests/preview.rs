//! `skillbox info` (a runtime, the trust decision, `LoadedSkill::preview_enforcement`) and
//! `skillbox doctor` (`host_report`) only look: they create nothing in the temp directory,
//! not even a private directory that they would remove again.
//!
//! The library calls run in a process of their own (this test binary again, as
//! `preview_helper`) whose `TMPDIR` is a fresh directory watched with inotify, so that an
//! entry created and removed during the previews is seen too.
//!
//! These run as root in CI and again as `nobody` (scripts/test.sh).

use std::mem::MaybeUninit;
use std::path::Path;

use rustix::fs::inotify;
use skillbox_skills::{host_report, Runtime, TrustLevel};

const HELPER_ENV: &str = "SKILLBOX_PREVIEW_HELPER";

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace")
}

#[test]
fn info_and_doctor_create_nothing_in_the_temp_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tempfile::tempdir().expect("tempdir");
    let watch = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .expect("inotify");
    inotify::add_watch(
        &watch,
        tmp.path(),
        inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
    )
    .expect("watch");

    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "preview_helper", "--ignored", "--nocapture"])
        .env(HELPER_ENV, "1")
        .env("TMPDIR", tmp.path())
        .env("SKILLBOX_HOME", home.path())
        .env_remove("SKILLBOX_AUDIT_LOG")
        .output()
        .expect("helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("PREVIEWED"), "the helper previewed: {stdout}");

    let mut created = Vec::new();
    let mut buf = [MaybeUninit::uninit(); 4096];
    let mut events = inotify::Reader::new(&watch, &mut buf);
    loop {
        match events.next() {
            Ok(e) => created.push(format!("{:?}", e.file_name())),
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => panic!("inotify: {e}"),
        }
    }
    assert!(created.is_empty(), "entries created in the temp dir: {created:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("read tmp").flatten().collect();
    assert!(left.is_empty(), "left in the temp dir: {left:?}");
}

/// What `skillbox info` does for every skill of the examples at every level, then what
/// `skillbox doctor` does; prints `PREVIEWED` when at least one preview reported
/// enforcement.
#[test]
#[ignore = "run by info_and_doctor_create_nothing_in_the_temp_dir in a process of its own"]
fn preview_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let ws = examples();
    let rt = Runtime::open(&ws).expect("runtime");
    let mut reported = 0;
    for skill in rt.registry().skills() {
        for level in TrustLevel::ALL {
            let ctx = rt.context_for(&skill.def.name, Some(level)).expect("context");
            assert!(rt.trust_decision(skill, None).is_ok());
            if skill.preview_enforcement(&ctx).is_ok_and(|e| !e.is_empty()) {
                reported += 1;
            }
        }
    }
    let report = host_report(&ws);
    let levels = report.levels.iter().filter(|l| l.enforcement.is_ok()).count();
    assert!(reported > 0 && levels == 3, "{reported} previews, {levels} levels: {report:?}");
    println!("PREVIEWED");
}
