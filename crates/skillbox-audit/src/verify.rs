//! Checking a whole log, across rotations, and reading it back.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use sha2::{Digest, Sha256};

use crate::log::{parse_head, rotated_files, sibling};
use crate::{AuditError, Event, GENESIS};

/// One thing wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Its line, from 1 (0: the file as a whole, or the head).
    pub line: usize,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

/// The result of [`verify`].
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Files read, oldest first.
    pub files: Vec<PathBuf>,
    /// Events that verified.
    pub events: u64,
    /// Sequence number of the last good event.
    pub last_seq: u64,
    /// Everything wrong, in file order. Empty means the log is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Deserialize)]
struct Link {
    seq: u64,
    prev_hash: String,
}

/// Checks one line: its hash over its own bytes, and that it parses. Returns the sequence
/// number, previous hash and own hash.
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
    if hex(&hasher.finalize()) != hash {
        return Err("the event was edited: its hash does not match its contents".into());
    }
    // The writer puts `seq` and `prev_hash` first; read them without parsing the whole
    // event, and fall back to a full parse for lines written otherwise.
    if let Some(link) = fast_link(line) {
        return Ok((link.0, link.1.to_string(), hash.to_string()));
    }
    let mut body = String::with_capacity(at + 1);
    body.push_str(&line[..at]);
    body.push('}');
    let link: Link = serde_json::from_str(&body)
        .map_err(|e| format!("hash matches but the event does not parse: {e}"))?;
    Ok((link.seq, link.prev_hash, hash.to_string()))
}

/// `{"seq":N,"prev_hash":"H",` at the start of a line.
fn fast_link(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix("{\"seq\":")?;
    let end = rest.find(',')?;
    let seq = rest[..end].parse().ok()?;
    let rest = rest[end..].strip_prefix(",\"prev_hash\":\"")?;
    let prev = rest.get(..64)?;
    rest[64..].starts_with("\",").then_some((seq, prev))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The log's files, oldest first: rotated ones, then the current one if it exists.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rotated_files(path).into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Verifies the log at `path` and its rotated predecessors, and compares its end with the
/// head file. Finds edited, removed, inserted, reordered and torn events; the first problem
/// names the first bad line.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport { files: files(path), ..Default::default() };
    if report.files.is_empty() {
        report.problems.push(Problem {
            file: path.to_path_buf(),
            line: 0,
            message: "no audit log here (nothing was recorded, or the log was removed)".into(),
        });
        return Ok(report);
    }
    let mut last: Option<(u64, String)> = None;
    for file in report.files.clone() {
        let data =
            std::fs::read(&file).map_err(|source| AuditError::Io { path: file.clone(), source })?;
        let mut problem = |line: usize, message: String| {
            report.problems.push(Problem { file: file.clone(), line, message })
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
                    continue;
                }
            };
            match &last {
                None if seq == 1 && prev != GENESIS => {
                    problem(n, "the first event does not start the chain".into())
                }
                None if seq != 1 => problem(
                    n,
                    format!("the log starts at event {seq}: events 1 to {} are missing", seq - 1),
                ),
                Some((lseq, lhash)) => {
                    if seq != lseq + 1 {
                        problem(
                            n,
                            format!(
                                "event {seq} follows event {lseq}: an event was removed, inserted \
                                 or reordered"
                            ),
                        );
                    } else if &prev != lhash {
                        problem(
                            n,
                            "its prev_hash does not match the event before it: an event was \
                             replaced or reordered"
                                .into(),
                        );
                    }
                }
                None => {}
            }
            report.events += 1;
            last = Some((seq, hash));
        }
        if torn_tail.is_some() {
            problem(
                pieces.len() + 1,
                "torn last line (no newline): a writer stopped in the middle of an event".into(),
            );
        }
    }
    report.last_seq = last.as_ref().map_or(0, |(s, _)| *s);

    let head_path = sibling(path, "head");
    match std::fs::read(&head_path) {
        Ok(b) if !b.is_empty() => match (parse_head(&b), &last) {
            (None, _) => report.problems.push(Problem {
                file: head_path,
                line: 0,
                message: "the head file is unreadable".into(),
            }),
            (Some((hseq, hhash)), Some((lseq, lhash))) if (hseq, &hhash) != (*lseq, lhash) => {
                let message = if hseq > *lseq {
                    format!(
                        "the log ends at event {lseq} but its head records event {hseq}: the last \
                         {} event(s) were removed",
                        hseq - lseq
                    )
                } else {
                    "the head does not match the last event".into()
                };
                report.problems.push(Problem { file: head_path, line: 0, message });
            }
            (Some((hseq, _)), None) => report.problems.push(Problem {
                file: head_path,
                line: 0,
                message: format!("the head records event {hseq} but the log holds no event"),
            }),
            _ => {}
        },
        _ if last.is_some() => report.problems.push(Problem {
            file: head_path,
            line: 0,
            message: "the head file is missing: removal of the last events cannot be detected"
                .into(),
        }),
        _ => {}
    }
    Ok(report)
}

/// One line of the log as read back: its file, its line number, and the event or why it
/// does not verify.
pub type ReadLine = (PathBuf, usize, Result<Event, String>);

/// Every event of the log, oldest first, with its file and line. Lines that do not verify
/// are returned as errors, so that a reader shows them instead of skipping them.
pub fn read_events(path: &Path) -> Result<Vec<ReadLine>, AuditError> {
    let mut out = Vec::new();
    for file in files(path) {
        let data =
            std::fs::read(&file).map_err(|source| AuditError::Io { path: file.clone(), source })?;
        for (i, line) in String::from_utf8_lossy(&data).lines().enumerate() {
            let ev = check_line(line).and_then(|_| {
                serde_json::from_str::<Event>(line).map_err(|e| format!("does not parse: {e}"))
            });
            out.push((file.clone(), i + 1, ev));
        }
    }
    Ok(out)
}

/// The sequence number and hash of the last complete, valid event, for continuing a chain
/// whose head file was lost.
pub(crate) fn last_link(path: &Path) -> Option<(u64, String)> {
    for file in files(path).iter().rev() {
        let data = std::fs::read(file).ok()?;
        let text = String::from_utf8_lossy(&data);
        if let Some((seq, _, hash)) = text.lines().rev().find_map(|l| check_line(l).ok()) {
            return Some((seq, hash));
        }
    }
    None
}
