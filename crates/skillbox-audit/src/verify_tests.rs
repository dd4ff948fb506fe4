//! `verify` reads files in chunks and hashes lines on several threads. These tests compare
//! every answer with the verifier before that change (kept below as the reference): breaks
//! in a later chunk, at a chunk or thread boundary, in the last line, torn and non-UTF-8
//! lines. Chunks of 16 KiB split across 3 threads make a log of a few hundred KB cross
//! every kind of boundary many times.

use std::fs;
use std::path::{Path, PathBuf};

use super::{verify_with, Sizes};
use crate::{ActionTaken, AuditLog, EventDraft, EventType, LogConfig, RiskLevel};
use serde_json::json;
use sha2::{Digest, Sha256};

const SIZES: Sizes = Sizes { chunk: 16 << 10, min_per_worker: 2 << 10, workers: 3 };

fn verify(path: &Path) -> Result<crate::VerifyReport, crate::AuditError> {
    verify_with(path, &SIZES)
}

/// The old verifier, kept as written (whole files read, converted lossily, split on
/// newlines, checked one by one), minus the head check, which did not change.
mod reference {
    use super::*;

    fn check_line(line: &str) -> Result<(u64, String, String), String> {
        const KEY: &str = ",\"hash\":\"";
        let at = line.rfind(KEY).ok_or("not a complete event: no hash (torn by a crash?)")?;
        let tail = &line[at + KEY.len()..];
        let ok = tail.len() == 66
            && tail.ends_with("\"}")
            && tail[..64].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err("not a complete event: malformed hash (torn by a crash?)".into());
        }
        let hash = &tail[..64];
        let mut hasher = Sha256::new();
        hasher.update(&line.as_bytes()[..at]);
        hasher.update(b"}");
        let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if digest != hash {
            return Err("the event was edited: its hash does not match its contents".into());
        }
        #[derive(serde::Deserialize)]
        struct Link {
            seq: u64,
            prev_hash: String,
        }
        let mut body = String::with_capacity(at + 1);
        body.push_str(&line[..at]);
        body.push('}');
        let link: Link = serde_json::from_str(&body)
            .map_err(|e| format!("hash matches but the event does not parse: {e}"))?;
        Ok((link.seq, link.prev_hash, hash.to_string()))
    }

    /// (file, line, message) of every problem in the files, in order; events; last seq.
    pub(super) fn verify(files: &[PathBuf]) -> (Vec<(PathBuf, usize, String)>, u64, u64) {
        let genesis = "0".repeat(64);
        let mut problems = Vec::new();
        let mut events = 0;
        let mut last: Option<(u64, String)> = None;
        // Lines since `last` that did not verify: the next good event is expected that many
        // places further on, its prev_hash not compared.
        let mut skipped = 0u64;
        for file in files {
            let data = fs::read(file).unwrap();
            let mut problem = |line: usize, message: String| {
                problems.push((file.clone(), line, message));
            };
            let text = String::from_utf8_lossy(&data);
            let mut pieces: Vec<&str> = text.split('\n').collect();
            let torn_tail = pieces.pop().filter(|p| !p.is_empty());
            for (i, line) in pieces.iter().enumerate() {
                let n = i + 1;
                let (seq, prev, hash) = match check_line(line) {
                    Ok(x) => x,
                    Err(e) => {
                        problem(n, e);
                        skipped += 1;
                        continue;
                    }
                };
                let bad = std::mem::take(&mut skipped);
                match &last {
                    None if seq == 1 && prev != genesis => {
                        problem(n, "the first event does not start the chain".into())
                    }
                    None if seq != 1 + bad => {
                        let after = if bad > 0 { " (or did not verify)" } else { "" };
                        problem(
                            n,
                            format!(
                                "the log starts at event {seq}: events 1 to {} are missing{after}",
                                seq.saturating_sub(1)
                            ),
                        )
                    }
                    Some((lseq, _)) if bad > 0 && seq != lseq + 1 + bad => problem(
                        n,
                        format!(
                            "event {seq} follows event {lseq} and {bad} line(s) that do not \
                             verify: an event was also removed, inserted or reordered"
                        ),
                    ),
                    Some(_) if bad > 0 => {}
                    Some((lseq, lhash)) => {
                        if seq != lseq + 1 {
                            problem(
                                n,
                                format!(
                                    "event {seq} follows event {lseq}: an event was removed, \
                                     inserted or reordered"
                                ),
                            );
                        } else if &prev != lhash {
                            problem(
                                n,
                                "its prev_hash does not match the event before it: an event \
                                 was replaced or reordered"
                                    .into(),
                            );
                        }
                    }
                    None => {}
                }
                events += 1;
                last = Some((seq, hash));
            }
            if torn_tail.is_some() {
                problem(
                    pieces.len() + 1,
                    "torn last line (no newline): a writer stopped in the middle of an event"
                        .into(),
                );
            }
        }
        (problems, events, last.map_or(0, |(s, _)| s))
    }
}

/// A log of about 1 KB lines, `n` of them, in one file.
fn big_log(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("big.jsonl");
    let mut c = LogConfig::new(&path);
    c.max_bytes = u64::MAX;
    let log = AuditLog::open(c).unwrap();
    for i in 0..n {
        let d = EventDraft {
            event_type: EventType::SkillExecutionCompleted,
            skill_name: "count-lines".into(),
            skill_trust_level: Some("user-verified".into()),
            risk_level: RiskLevel::Low,
            action_taken: ActionTaken::Allowed,
            execution_id: Some(format!("exec-{i}")),
            attempt: Some(1),
            details: json!({"i": i, "pad": "x".repeat(800 + i % 97), "message": "é ok"}),
        };
        log.append(&d).unwrap();
    }
    path
}

/// Compares `verify` with the reference on the log as it is now; returns the problems. The
/// reference knew no crash artefacts: it reported them as problems, with the same messages,
/// so both lists are compared with its one.
fn same_as_reference(path: &Path, what: &str) -> Vec<(PathBuf, usize, String)> {
    let new = verify(path).unwrap();
    let (problems, events, last_seq) = reference::verify(&new.files);
    let head = path.with_extension("jsonl.head");
    let mut got: Vec<(PathBuf, usize, String)> = new
        .problems
        .iter()
        .chain(&new.crash_artefacts)
        .filter(|p| p.file != head)
        .map(|p| (p.file.clone(), p.line, p.message.clone()))
        .collect();
    let file_index = |f: &PathBuf| new.files.iter().position(|x| x == f);
    got.sort_by_key(|(f, line, _)| (file_index(f), *line));
    assert_eq!(got, problems, "{what}: problems differ");
    assert_eq!((new.events, new.last_seq), (events, last_seq), "{what}: counts differ");
    problems
}

/// The line (from 1) holding byte `offset`, and the byte ranges of all lines.
fn lines_of(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    out
}

#[test]
fn every_break_is_reported_as_before_wherever_it_falls() {
    let d = tempfile::tempdir().unwrap();
    let path = big_log(d.path(), 300);
    let orig = fs::read(&path).unwrap();
    assert!(orig.len() > 10 * SIZES.chunk, "the log is too small: {}", orig.len());
    assert!(same_as_reference(&path, "intact").is_empty());
    let lines = lines_of(&orig);
    let line_at = |offset: usize| lines.iter().position(|r| r.contains(&offset)).unwrap();
    let chunk = SIZES.chunk;
    let mut targets = vec![0, 1, lines.len() / 2, lines.len() - 2, lines.len() - 1];
    for off in [chunk / 2, chunk - 1, chunk, chunk + 1, chunk + chunk / 2, 2 * chunk, 2 * chunk + 1]
    {
        let l = line_at(off);
        targets.extend([l.saturating_sub(1), l, l + 1]);
    }
    targets.sort();
    targets.dedup();
    for &t in &targets {
        let r = lines[t].clone();
        // An edit inside the line.
        let mut data = orig.clone();
        let at = r.start + (r.end - r.start) / 2;
        data[at] = if data[at] == b'x' { b'y' } else { b'x' };
        fs::write(&path, &data).unwrap();
        let p = same_as_reference(&path, &format!("edit line {}", t + 1));
        assert_eq!(p.first().map(|p| p.1), Some(t + 1), "edit line {}", t + 1);
        // The line removed.
        let data = [&orig[..r.start], &orig[r.end..]].concat();
        fs::write(&path, &data).unwrap();
        let p = same_as_reference(&path, &format!("remove line {}", t + 1));
        if t + 1 < lines.len() {
            assert_eq!(p.first().map(|p| p.1), Some(t + 1), "remove line {}", t + 1);
        }
        // The line duplicated (an insertion).
        let data = [&orig[..r.end], &orig[r.start..]].concat();
        fs::write(&path, &data).unwrap();
        let p = same_as_reference(&path, &format!("duplicate line {}", t + 1));
        assert_eq!(p.first().map(|p| p.1), Some(t + 2), "duplicate line {}", t + 1);
        // Its newline removed: two lines become one.
        let mut data = orig.clone();
        data.remove(r.end - 1);
        fs::write(&path, &data).unwrap();
        assert!(!same_as_reference(&path, &format!("join line {}", t + 1)).is_empty());
        // A byte that is not UTF-8.
        let mut data = orig.clone();
        data[at] = 0xff;
        fs::write(&path, &data).unwrap();
        let p = same_as_reference(&path, &format!("non-UTF-8 in line {}", t + 1));
        assert_eq!(p.first().map(|p| p.1), Some(t + 1));
    }
    // Truncated inside the last line: torn.
    let data = &orig[..orig.len() - 40];
    fs::write(&path, data).unwrap();
    let p = same_as_reference(&path, "truncated last line");
    assert_eq!(p.len(), 1);
    assert!(p[0].1 == lines.len() && p[0].2.contains("torn"), "{p:?}");
    // Truncated right at a chunk boundary, and with an empty line inside.
    fs::write(&path, &orig[..chunk]).unwrap();
    same_as_reference(&path, "truncated at the chunk size");
    let r = lines[line_at(chunk)].clone();
    let data = [&orig[..r.start], b"\n", &orig[r.start..]].concat();
    fs::write(&path, &data).unwrap();
    let p = same_as_reference(&path, "empty line at the chunk boundary");
    assert_eq!(p.first().map(|p| p.1), Some(line_at(chunk) + 1));
    // Two lines swapped across the chunk boundary.
    let (a, b) = (lines[line_at(chunk)].clone(), lines[line_at(chunk) + 1].clone());
    let data = [&orig[..a.start], &orig[b.clone()], &orig[a.clone()], &orig[b.end..]].concat();
    fs::write(&path, &data).unwrap();
    let p = same_as_reference(&path, "swap at the chunk boundary");
    assert_eq!(p.first().map(|p| p.1), Some(line_at(chunk) + 1));
}

#[test]
fn a_line_longer_than_a_chunk_verifies() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("long.jsonl");
    let log = AuditLog::open(LogConfig::new(&path)).unwrap();
    for size in [10, 3 * SIZES.chunk, 10] {
        let d = EventDraft {
            event_type: EventType::SkillExecutionCompleted,
            skill_name: "s".into(),
            skill_trust_level: None,
            risk_level: RiskLevel::Low,
            action_taken: ActionTaken::Allowed,
            execution_id: None,
            attempt: None,
            details: json!({"pad": "y".repeat(size)}),
        };
        log.append(&d).unwrap();
    }
    let r = verify(&path).unwrap();
    assert!(r.ok() && r.events == 3, "{:?}", r.problems);
    let mut data = fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] = b'z';
    fs::write(&path, &data).unwrap();
    assert_eq!(
        same_as_reference(&path, "edit in a line of three chunks").first().map(|p| p.1),
        Some(2)
    );
}
