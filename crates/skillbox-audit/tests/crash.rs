//! A writer killed at any point of an append never makes the log look tampered with: the
//! next writer continues the one chain, and `verify` passes, before and after it. Real
//! tampering is still reported.
//!
//! The crash states are made two ways: by killing real writer processes with SIGKILL at
//! moments they are seen writing, many times over, and by writing the files as a crash at a
//! given point leaves them (every byte of a torn event, the event without its head, a
//! rotation without its first event).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;
use skillbox_audit::{
    read_events, verify, ActionTaken, AuditLog, EventDraft, EventType, LogConfig, RiskLevel,
    VerifyReport,
};

fn draft(pad: usize) -> EventDraft {
    EventDraft {
        event_type: EventType::SkillExecutionCompleted,
        skill_name: "s".into(),
        skill_trust_level: Some("user-verified".into()),
        risk_level: RiskLevel::Low,
        action_taken: ActionTaken::Allowed,
        execution_id: Some("e".into()),
        attempt: Some(1),
        details: json!({"pad": "p".repeat(pad)}),
    }
}

fn config(path: &Path, max_bytes: u64) -> LogConfig {
    let mut c = LogConfig::new(path);
    c.max_bytes = max_bytes;
    c
}

fn head_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.head", path.display()))
}

/// A log of `n` events at `dir/log.jsonl`, written by a writer that is then dropped.
fn log_of(dir: &Path, n: usize, max_bytes: u64) -> PathBuf {
    let path = dir.join("log.jsonl");
    let log = AuditLog::open(config(&path, max_bytes)).unwrap();
    for i in 0..n {
        log.append(&draft(i % 7)).unwrap();
    }
    path
}

/// `verify` finds nothing wrong (so every event from 1 to the last, once each).
fn assert_verifies(path: &Path, what: &str) -> VerifyReport {
    let r = verify(path).unwrap();
    assert!(r.ok(), "{what}: a crash was reported as tampering: {:?}", r.problems);
    assert_eq!(r.events, r.last_seq, "{what}: events missing or repeated");
    r
}

/// [`assert_verifies`], and the events read back one by one are numbered 1, 2, 3, ...:
/// no number twice. (A whole event still missing its newline is read back but not counted
/// by `verify`, which reports it as torn.)
fn assert_intact(path: &Path, what: &str) -> VerifyReport {
    let r = assert_verifies(path, what);
    let seqs: Vec<u64> = read_events(path)
        .unwrap()
        .into_iter()
        .filter_map(|(_, _, e)| e.ok())
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{what}: the chain forked");
    assert!(seqs.len() as u64 - r.last_seq <= 1, "{what}: {} events read back", seqs.len());
    r
}

/// A new writer (a process that knows nothing of the log yet) appends one event; the log
/// must then be intact with that event last and the head up to date.
fn next_writer_appends(path: &Path, max_bytes: u64, what: &str) -> u64 {
    let before = verify(path).unwrap();
    let seq = AuditLog::open(config(path, max_bytes)).unwrap().append(&draft(3)).unwrap();
    // One more than the last event `verify` counted, or two when the log ended with a whole
    // event missing only its newline (`verify` calls it torn; the writer finishes it).
    let whole_but_newline = before.crash_artefacts.iter().any(|a| a.message.contains("no newline"));
    assert!(
        seq == before.last_seq + 1 || whole_but_newline && seq == before.last_seq + 2,
        "{what}: event {seq} after event {}",
        before.last_seq
    );
    let after = assert_intact(path, what);
    assert_eq!(after.last_seq, seq, "{what}");
    assert!(
        after.crash_artefacts.iter().all(|a| !a.message.contains("head")),
        "{what}: the head was not brought up to date: {:?}",
        after.crash_artefacts
    );
    seq
}

#[test]
fn an_event_written_without_its_head_is_taken_up_by_the_next_writer() {
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 3, u64::MAX);
    let head3 = fs::read(head_of(&path)).unwrap();
    AuditLog::open(config(&path, u64::MAX)).unwrap().append(&draft(1)).unwrap();
    // Killed after the event's write, before the head's: event 4 is there, the head says 3.
    fs::write(head_of(&path), &head3).unwrap();

    let r = assert_intact(&path, "before the next writer");
    assert_eq!(r.last_seq, 4);
    assert!(
        r.crash_artefacts.len() == 1
            && r.crash_artefacts[0].message.contains("head records event 3"),
        "the lagging head is reported as a crash artefact: {:?}",
        r.crash_artefacts
    );
    assert_eq!(next_writer_appends(&path, u64::MAX, "after"), 5);
}

#[test]
fn a_writer_killed_in_the_first_append_of_a_log_leaves_an_empty_head_that_is_not_a_problem() {
    // Opening a log makes its files, the log first: killed in its first append before the
    // event's write, a writer leaves an empty log and an empty head.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("log.jsonl");
    drop(AuditLog::open(config(&path, u64::MAX)).unwrap());
    let r = assert_intact(&path, "opened, no event");
    assert!(r.events == 0 && r.files == [path.clone()], "{r:?}");
    assert_eq!(next_writer_appends(&path, u64::MAX, "opened, no event"), 1);

    // Killed after the first event's write, it leaves the head empty beside event 1.
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 1, u64::MAX);
    fs::write(head_of(&path), b"").unwrap();
    let r = assert_intact(&path, "event 1, head empty");
    assert!(
        r.crash_artefacts.len() == 1 && r.crash_artefacts[0].message.contains("head is empty"),
        "{:?}",
        r.crash_artefacts
    );
    assert_eq!(next_writer_appends(&path, u64::MAX, "event 1, head empty"), 2);

    // Not so with more events, or with the head file gone: the head was removed.
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 3, u64::MAX);
    fs::write(head_of(&path), b"").unwrap();
    let r = verify(&path).unwrap();
    assert!(r.problems.iter().any(|p| p.message.contains("head file is missing")), "{r:?}");
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 1, u64::MAX);
    fs::remove_file(head_of(&path)).unwrap();
    let r = verify(&path).unwrap();
    assert!(r.problems.iter().any(|p| p.message.contains("head file is missing")), "{r:?}");
}

#[test]
fn a_crash_at_every_byte_of_an_event_leaves_a_log_that_verifies_and_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 3, u64::MAX);
    let head3 = fs::read(head_of(&path)).unwrap();
    let base = fs::read(&path).unwrap();
    AuditLog::open(config(&path, u64::MAX)).unwrap().append(&draft(40)).unwrap();
    let event4 = fs::read(&path).unwrap()[base.len()..].to_vec();
    // The write of event 4 stopped after `k` of its bytes (all of them: the head's write
    // did not happen), as SIGKILL can stop a write at a page boundary.
    for k in 1..=event4.len() {
        let what = format!("{k} of the {} bytes of event 4 written", event4.len());
        fs::write(&path, [&base[..], &event4[..k]].concat()).unwrap();
        fs::write(head_of(&path), &head3).unwrap();
        let r = assert_intact(&path, &what);
        // Whole but for its newline, the event is torn as far as `verify` can tell.
        let whole = k == event4.len();
        assert_eq!(r.last_seq, if whole { 4 } else { 3 }, "{what}");
        assert_eq!(r.crash_artefacts.len(), 1, "{what}: {:?}", r.crash_artefacts);
        // The next writer finishes the line: a whole event (the newline was all that was
        // missing) is taken up, a piece of one stays a line of its own.
        let next = next_writer_appends(&path, u64::MAX, &what);
        assert_eq!(next, if k + 1 >= event4.len() { 5 } else { 4 }, "{what}");
        // And the writer after it, which trusts nothing either.
        next_writer_appends(&path, u64::MAX, &what);
    }
}

#[test]
fn a_crash_around_a_rotation_leaves_one_chain() {
    let max = 2048;
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 5, max);
    let current_lines = |p: &Path| fs::read_to_string(p).map_or(0, |t| t.lines().count());
    // Append until an append rotates; keep the head from before it.
    let log = AuditLog::open(config(&path, max)).unwrap();
    let head_before = loop {
        let head = fs::read(head_of(&path)).unwrap();
        log.append(&draft(100)).unwrap();
        if current_lines(&path) == 1 {
            break head;
        }
    };
    drop(log);
    let after_rotation = fs::read(&path).unwrap();
    let snapshot: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let b = fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    let restore = || {
        for e in fs::read_dir(d.path()).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        for (p, b) in &snapshot {
            fs::write(p, b).unwrap();
        }
    };

    // Killed after the first event of the new file, before the head's write.
    fs::write(head_of(&path), &head_before).unwrap();
    assert_intact(&path, "first event after a rotation, head not written");
    next_writer_appends(&path, max, "first event after a rotation, head not written");

    // Killed after the rename, before the new file was made, or before its first event.
    for leave_empty in [false, true] {
        restore();
        fs::write(head_of(&path), &head_before).unwrap();
        if leave_empty {
            fs::write(&path, b"").unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
        let what = format!("rotated, no event yet (empty file: {leave_empty})");
        assert_intact(&path, &what);
        next_writer_appends(&path, max, &what);
    }

    // Killed part way through the first event of the new file.
    restore();
    fs::write(head_of(&path), &head_before).unwrap();
    fs::write(&path, &after_rotation[..after_rotation.len() / 2]).unwrap();
    assert_intact(&path, "first event after a rotation torn");
    next_writer_appends(&path, max, "first event after a rotation torn");
}

#[test]
fn a_head_lost_or_behind_by_several_events_is_rebuilt_from_the_log() {
    // A head behind by several events is what a power loss leaves with `Durability::Fsync`
    // (each event is on disk before its head is written, the head is not synced); it names
    // an event the log holds, and every event after it is there.
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 2, 1024);
    let head2 = fs::read(head_of(&path)).unwrap();
    let log = AuditLog::open(config(&path, 1024)).unwrap();
    for _ in 0..8 {
        log.append(&draft(300)).unwrap();
    }
    drop(log);
    assert!(verify(&path).unwrap().files.len() > 3, "the events after the head span rotations");
    fs::write(head_of(&path), &head2).unwrap();
    assert_intact(&path, "head 8 events behind");
    assert_eq!(next_writer_appends(&path, 1024, "head 8 events behind"), 11);

    fs::remove_file(head_of(&path)).unwrap();
    assert!(!verify(&path).unwrap().ok(), "a missing head is reported");
    assert_eq!(next_writer_appends(&path, 1024, "head lost"), 12);
}

/// `verify` reports a problem saying `before`, and after a new writer appends, one saying
/// `after`: tampering stays reported, a new writer does not paper over it.
fn reported_before_and_after_an_append(path: &Path, what: &str, before: &str, after: &str) {
    let has = |expect: &str, when: &str| {
        let r = verify(path).unwrap();
        assert!(
            r.problems.iter().any(|p| p.message.contains(expect)),
            "{what}, {when} an append: want a problem with {expect:?}, got {:?}",
            r.problems
        );
    };
    has(before, "before");
    AuditLog::open(config(path, u64::MAX)).unwrap().append(&draft(2)).unwrap();
    has(after, "after");
}

#[test]
fn tampering_is_still_reported_and_survives_the_next_writer() {
    let fresh = |d: &Path| {
        let path = log_of(d, 6, u64::MAX);
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<String> = text.lines().map(|l| format!("{l}\n")).collect();
        (path, lines)
    };
    let edit = |l: &str| l.replacen("\"pad\":\"", "\"pad\":\"x", 1);

    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    let mut l = lines.clone();
    l[2] = edit(&l[2]);
    fs::write(&path, l.concat()).unwrap();
    reported_before_and_after_an_append(&path, "a middle event edited", "edited", "edited");

    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    let mut l = lines.clone();
    l[5] = edit(&l[5]);
    fs::write(&path, l.concat()).unwrap();
    reported_before_and_after_an_append(&path, "the last event edited", "edited", "edited");

    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    fs::write(&path, lines[..5].concat()).unwrap();
    reported_before_and_after_an_append(&path, "the last event removed", "removed", "removed");

    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    fs::write(&path, [&lines[..3], &lines[4..]].concat().concat()).unwrap();
    reported_before_and_after_an_append(&path, "a middle event removed", "removed", "removed");

    // The head set back by hand to a link that is not in the log (event 4's number with
    // event 3's hash): not what a crash leaves, so not repaired; the next event continues
    // from it and the fork is there to see.
    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    let hash3: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    let forged = format!("{:020} {}\n", 4, hash3["hash"].as_str().unwrap());
    fs::write(head_of(&path), forged).unwrap();
    reported_before_and_after_an_append(
        &path,
        "the head rewound to a false link",
        "the head does not match",
        "event 5 follows event 6",
    );

    // The head set ahead of the log.
    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    let last: serde_json::Value = serde_json::from_str(&lines[5]).unwrap();
    fs::write(head_of(&path), format!("{:020} {}\n", 9, last["hash"].as_str().unwrap())).unwrap();
    reported_before_and_after_an_append(&path, "the head set ahead", "removed", "removed");

    // A fork made by hand: a second event 6 after the first, the head naming the second.
    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    let other = d.path().join("other.jsonl");
    fs::write(&other, lines[..5].concat()).unwrap();
    let fifth: serde_json::Value = serde_json::from_str(&lines[4]).unwrap();
    fs::write(head_of(&other), format!("{:020} {}\n", 5, fifth["hash"].as_str().unwrap())).unwrap();
    AuditLog::open(config(&other, u64::MAX)).unwrap().append(&draft(5)).unwrap();
    let sixth_b = fs::read_to_string(&other).unwrap().lines().nth(5).unwrap().to_string();
    fs::write(&path, format!("{}{sixth_b}\n", lines.concat())).unwrap();
    fs::copy(head_of(&other), head_of(&path)).unwrap();
    reported_before_and_after_an_append(&path, "a fork made by hand", "follows", "follows");

    // A line without a hash that is not the start of the event expected next: not a torn
    // write of this chain.
    let d = tempfile::tempdir().unwrap();
    let (path, lines) = fresh(d.path());
    let l =
        [&lines[..3], &["{\"seq\":99,\"note\":\"inserted\"}\n".to_string()], &lines[3..]].concat();
    fs::write(&path, l.concat()).unwrap();
    let msg = "not a complete event";
    reported_before_and_after_an_append(&path, "a line inserted", msg, msg);
}

#[test]
fn a_head_set_back_to_an_earlier_event_of_the_log_hides_nothing_and_is_brought_forward() {
    // What the head guards is the end of the log: a head that names an event still in the
    // log, with every event after it chained to it, is a head that was not updated, as a
    // crash leaves it. Nothing is missing; the next writer brings it forward.
    let d = tempfile::tempdir().unwrap();
    let path = log_of(d.path(), 6, u64::MAX);
    let lines: Vec<String> =
        fs::read_to_string(&path).unwrap().lines().map(str::to_string).collect();
    let third: serde_json::Value = serde_json::from_str(&lines[2]).unwrap();
    fs::write(head_of(&path), format!("{:020} {}\n", 3, third["hash"].as_str().unwrap())).unwrap();
    let r = assert_intact(&path, "head set back to event 3");
    assert!(r.crash_artefacts.iter().any(|a| a.message.contains("head records event 3")));
    assert_eq!(next_writer_appends(&path, u64::MAX, "head set back to event 3"), 7);
}

const KILL_ENV: &str = "SKILLBOX_AUDIT_TEST_KILLED_WRITER";

/// Rotation size of the logs the killed writers append to: a rotation every few events.
const KILLED_MAX_BYTES: u64 = 64 << 10;

/// Not a test on its own: the body of the writer processes that the test below kills.
/// Appends events of mixed sizes (a quarter of them several pages long, whose write a kill
/// can cut) until killed.
#[test]
fn killed_writer() {
    let Some(path) = std::env::var_os(KILL_ENV) else { return };
    let log = AuditLog::open(config(Path::new(&path), KILLED_MAX_BYTES)).unwrap();
    let mut x = u64::from(std::process::id()) | 1;
    loop {
        x = xorshift(x);
        let pad = (x >> 8) as usize % if x % 4 == 0 { 24 << 10 } else { 1500 };
        log.append(&draft(pad)).unwrap();
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[test]
fn writers_killed_at_random_moments_never_fork_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let (rounds, mut lagging, mut torn) = (150, 0, 0);
    for round in 0..rounds {
        // Ten writers killed in turn on each log: long enough to rotate, short enough to
        // verify after every kill.
        let path = d.path().join(format!("log{}.jsonl", round / 10));
        let mut child = Command::new(&exe)
            .args(["--exact", "killed_writer", "--test-threads=1"])
            .env(KILL_ENV, &path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Killed right after it is seen to write for the n-th time (1 to 20): the kill lands
        // in whatever the writer is doing then, often just after a write(2), sometimes in
        // the middle of one.
        x = xorshift(x);
        let writes = 1 + x % 20;
        let mut seen = 0;
        let mut size = fs::metadata(&path).map_or(0, |m| m.len());
        while seen < writes {
            let now = fs::metadata(&path).map_or(0, |m| m.len());
            if now != size {
                seen += 1;
                size = now;
            } else if let Some(status) = child.try_wait().unwrap() {
                panic!("round {round}: the writer died on its own: {status}");
            } else {
                std::thread::yield_now();
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let what = format!("round {round}, killed after {writes} writes");
        let r = assert_verifies(&path, &what);
        lagging += r.crash_artefacts.iter().filter(|a| a.message.contains("head records")).count();
        next_writer_appends(&path, KILLED_MAX_BYTES, &what);
        if round % 10 == 9 {
            torn += assert_intact(&path, &what).crash_artefacts.len();
        }
    }
    eprintln!(
        "{rounds} writers killed: {lagging} left the head behind their last event, {torn} a \
         torn line"
    );
    // The moment that forked the chain was hit, not only kills between appends.
    assert!(lagging > 0, "no kill landed between an event's write and its head's");
}
