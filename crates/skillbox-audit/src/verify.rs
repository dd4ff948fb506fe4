//! Checking a whole log, across rotations, and reading it back.

use std::io::Read;
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
            write!(f, "{}: {}", crate::text::path(&self.file), self.message)
        } else {
            write!(f, "{}:{}: {}", crate::text::path(&self.file), self.line, self.message)
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
    /// Everything wrong that a crash cannot explain, in file order. Empty means the log is
    /// intact.
    pub problems: Vec<Problem>,
    /// What a writer that crashed part way through an append leaves, in file order: a line it
    /// did not finish (the start of the event the chain expected next, cut short), or a head
    /// that lags the log's last events. Reported so that a reader knows, not counted against
    /// the log: nothing the chain covers is missing or changed (see "What a crash can and
    /// cannot do to the chain" in docs/audit-log.md).
    pub crash_artefacts: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong (crash artefacts do not count).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

#[derive(Deserialize)]
struct Link {
    seq: u64,
    prev_hash: String,
}

/// The `prev_hash` a line names: 64 bytes when the writer's layout was read directly, or
/// whatever a full parse found (any length) for lines written otherwise.
#[derive(Debug)]
pub(crate) enum Prev {
    Hex([u8; 64]),
    Other(String),
}

impl Prev {
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Prev::Hex(h) => h,
            Prev::Other(s) => s.as_bytes(),
        }
    }
}

/// What [`check_line`] found in a line that verifies on its own.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) seq: u64,
    pub(crate) prev: Prev,
    pub(crate) hash: [u8; 64],
}

/// Why a line is not an event.
#[derive(Debug)]
pub(crate) enum BadLine {
    /// The line stops before its hash is whole: what a writer that stopped in the middle of
    /// a write leaves. `start` holds its first bytes (at most [`FRAGMENT_START`]), to tell
    /// whether it is the start of the event the chain expected next.
    Incomplete { message: &'static str, start: Vec<u8> },
    /// Anything else: an edit, or bytes no writer wrote.
    Invalid(String),
}

impl BadLine {
    /// The sentence a report gives for the line.
    pub(crate) fn message(&self) -> &str {
        match self {
            BadLine::Incomplete { message, .. } => message,
            BadLine::Invalid(m) => m,
        }
    }
}

/// Bytes of an unfinished line kept to compare with the start of the event expected next:
/// more than `{"seq":N,"prev_hash":"H",` can take (7 + 20 + 14 + 64 + 2 = 107 bytes).
const FRAGMENT_START: usize = 128;

fn incomplete(message: &'static str, line: &[u8]) -> BadLine {
    BadLine::Incomplete { message, start: line[..line.len().min(FRAGMENT_START)].to_vec() }
}

/// Whether `start`, the first bytes of a line that stops before its hash, is how the event
/// after `last` begins as a writer writes it (`{"seq":N,"prev_hash":"H",`), as far as either
/// goes. A writer that continues the chain after `last` and stops part way leaves exactly
/// that; a line that begins otherwise was not left by a writer of this chain.
fn starts_next_event(start: &[u8], last: &Option<(u64, [u8; 64])>) -> bool {
    let (seq, prev) = match last {
        Some((seq, hash)) => (seq.wrapping_add(1), &hash[..]),
        None => (1, GENESIS.as_bytes()),
    };
    let mut want = Vec::with_capacity(FRAGMENT_START);
    want.extend_from_slice(b"{\"seq\":");
    want.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    want.extend_from_slice(b",\"prev_hash\":\"");
    want.extend_from_slice(prev);
    want.extend_from_slice(b"\",");
    !start.is_empty() && (start.starts_with(&want) || want.starts_with(start))
}

/// Checks one line: its hash over its own bytes, and that it parses. Returns the sequence
/// number, previous hash and own hash. Allocates only for lines that do not verify or that
/// are not laid out as the writer lays them out.
fn check_line(line: &str) -> Result<Checked, BadLine> {
    const KEY: &str = ",\"hash\":\"";
    // Where the writer puts the key, 66 bytes before the end; else the last one anywhere.
    // When the key is at the writer's place and the 66 bytes after it are a valid tail
    // (hex digits, `"}`: no comma), no later key can exist, so both give the same place.
    let at = match line.len().checked_sub(KEY.len() + 66) {
        Some(at) if line.as_bytes()[at..].starts_with(KEY.as_bytes()) => at,
        _ => line.rfind(KEY).ok_or_else(|| {
            incomplete("not a complete event: no hash (torn by a crash?)", line.as_bytes())
        })?,
    };
    let tail = &line.as_bytes()[at + KEY.len()..];
    let ok = tail.len() == 66
        && tail.ends_with(b"\"}")
        && tail[..64].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    if !ok {
        return Err(incomplete(
            "not a complete event: malformed hash (torn by a crash?)",
            line.as_bytes(),
        ));
    }
    let mut hash = [0u8; 64];
    hash.copy_from_slice(&tail[..64]);
    let mut hasher = Sha256::new();
    hasher.update(&line.as_bytes()[..at]);
    hasher.update(b"}");
    if hex(&hasher.finalize().into()) != hash {
        return Err(BadLine::Invalid(
            "the event was edited: its hash does not match its contents".into(),
        ));
    }
    // The writer puts `seq` and `prev_hash` first; read them without parsing the whole
    // event, and fall back to a full parse for lines written otherwise.
    if let Some((seq, prev)) = fast_link(line) {
        let mut p = [0u8; 64];
        p.copy_from_slice(prev.as_bytes());
        return Ok(Checked { seq, prev: Prev::Hex(p), hash });
    }
    let mut body = String::with_capacity(at + 1);
    body.push_str(&line[..at]);
    body.push('}');
    let link: Link = serde_json::from_str(&body)
        .map_err(|e| BadLine::Invalid(format!("hash matches but the event does not parse: {e}")))?;
    Ok(Checked { seq: link.seq, prev: Prev::Other(link.prev_hash), hash })
}

/// [`check_line`] of a line's raw bytes. The log is read as bytes; a line that is not
/// UTF-8 is checked as the text a lossy conversion makes of it, as when whole files were
/// converted (a newline is never part of an invalid sequence, so converting line by line
/// gives the same text).
pub(crate) fn check_bytes(line: &[u8]) -> Result<Checked, BadLine> {
    match std::str::from_utf8(line) {
        Ok(text) => check_line(text),
        Err(_) => check_line(&String::from_utf8_lossy(line)),
    }
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

fn hex(bytes: &[u8; 32]) -> [u8; 64] {
    crate::log::hex_lower(bytes)
}

/// Checks every line of `data` (whole lines, each ending with a newline) and returns the
/// results in line order, running `meanwhile` (the next read) on this thread at the same
/// time. Hashing is most of a verification and each line's hash depends on nothing else, so
/// large inputs are cut at newlines into pieces that `sizes.workers` threads take in turn
/// (this one after `meanwhile`, so no thread idles while the file is read); the chain between
/// lines is checked afterwards, in order, by the caller.
fn check_lines<R>(
    data: &[u8],
    sizes: &Sizes,
    meanwhile: impl FnOnce() -> R,
) -> (R, Vec<Result<Checked, BadLine>>) {
    let check_all = |part: &[u8], out: &mut Vec<Result<Checked, BadLine>>| {
        // memchr finds newlines a vector at a time; a byte-by-byte split was a third of the
        // time of a verification.
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', part) {
            out.push(check_bytes(&part[start..end]));
            start = end + 1;
        }
    };
    let workers = sizes.workers.clamp(1, (data.len() / sizes.min_per_worker).max(1));
    if workers == 1 {
        let r = meanwhile();
        let mut out = Vec::new();
        check_all(data, &mut out);
        return (r, out);
    }
    // Four pieces a thread: enough for the threads to even out, few enough to be cheap.
    let mut pieces = Vec::new();
    let mut rest = data;
    let target = data.len() / (workers * 4) + 1;
    while !rest.is_empty() {
        let cut = memchr::memchr(b'\n', &rest[(target - 1).min(rest.len() - 1)..])
            .map_or(rest.len(), |n| (target - 1).min(rest.len() - 1) + n + 1);
        let (piece, tail) = rest.split_at(cut);
        pieces.push(piece);
        rest = tail;
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(piece) = pieces.get(i) else { break done };
            let mut out = Vec::new();
            check_all(piece, &mut out);
            done.push((i, out));
        }
    };
    let (r, mut done) = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..workers).map(|_| scope.spawn(work)).collect();
        let r = meanwhile();
        let mut done = work();
        for h in helpers {
            match h.join() {
                Ok(v) => done.extend(v),
                // check_line does not panic; if it ever did, say so where it happened.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (r, done)
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    (r, done.into_iter().flat_map(|(_, v)| v).collect())
}

/// The log's files, oldest first: rotated ones, then the current one if it exists.
fn files(path: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = rotated_files(path).into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// How a verification splits its work. Fixed in [`verify`]; tests use small sizes so that
/// small logs cross chunk and thread boundaries.
struct Sizes {
    /// How much of a file is read and checked at a time.
    chunk: usize,
    /// Below this much per thread, starting a thread costs more than it saves.
    min_per_worker: usize,
    /// Threads hashing at once.
    workers: usize,
}

/// Reads into `buf` until it is full or the file ends; returns the bytes read.
fn read_some(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Links line `n` of `file`, checked on its own as `result`, to the event before it
/// (`last`), and records what is wrong. A line that stops short and begins as the event the
/// chain expects next is a crash artefact: a writer stopped while writing it, and the next
/// writer continued the chain after it.
///
/// `unverified` counts the lines since `last` that failed their own check (each already
/// reported, for its own cause). The next good event is expected that many places further
/// on, and its `prev_hash` is not compared (it names the event as it was before the edit):
/// one edited line is one problem, not also "an event was removed".
fn chain(
    last: &mut Option<(u64, [u8; 64])>,
    unverified: &mut u64,
    report: &mut VerifyReport,
    file: &Path,
    n: usize,
    result: Result<Checked, BadLine>,
) {
    let at = |message: String| Problem { file: file.to_path_buf(), line: n, message };
    let Checked { seq, prev, hash } = match result {
        Ok(c) => c,
        Err(BadLine::Incomplete { message, start }) if starts_next_event(&start, last) => {
            return report.crash_artefacts.push(at(message.into()));
        }
        Err(e) => {
            *unverified += 1;
            return report.problems.push(at(e.message().into()));
        }
    };
    let skipped = std::mem::take(unverified);
    let mut problem = |message: String| report.problems.push(at(message));
    match last {
        None if seq == 1 && prev.bytes() != GENESIS.as_bytes() => {
            problem("the first event does not start the chain".into())
        }
        None if seq != 1 + skipped => {
            let after = if skipped > 0 { " (or did not verify)" } else { "" };
            problem(format!(
                "the log starts at event {seq}: events 1 to {} are missing{after}",
                seq.saturating_sub(1)
            ))
        }
        Some((lseq, _)) if skipped > 0 && seq != lseq.saturating_add(1 + skipped) => {
            problem(format!(
                "event {seq} follows event {lseq} and {skipped} line(s) that do not verify: an \
                 event was also removed, inserted or reordered"
            ))
        }
        // The lines that did not verify stand where the events between were expected.
        Some(_) if skipped > 0 => {}
        Some((lseq, lhash)) => {
            if seq != *lseq + 1 {
                problem(format!(
                    "event {seq} follows event {lseq}: an event was removed, inserted or reordered"
                ));
            } else if prev.bytes() != &lhash[..] {
                problem(
                    "its prev_hash does not match the event before it: an event was replaced or \
                     reordered"
                        .into(),
                );
            }
        }
        None => {}
    }
    report.events += 1;
    *last = Some((seq, hash));
}

/// Verifies the log at `path` and its rotated predecessors, and compares its end with the
/// head file. Finds edited, removed, inserted and reordered events; the first problem names
/// the first bad line. What a writer killed part way through an append leaves (a line cut
/// short, a head behind the log) is listed in [`VerifyReport::crash_artefacts`] instead.
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    verify_with(path, &Sizes { chunk: 4 << 20, min_per_worker: 256 << 10, workers })
}

fn verify_with(path: &Path, sizes: &Sizes) -> Result<VerifyReport, AuditError> {
    let mut report = VerifyReport { files: files(path), ..Default::default() };
    if report.files.is_empty() {
        report.problems.push(Problem {
            file: path.to_path_buf(),
            line: 0,
            message: "no audit log here (nothing was recorded, or the log was removed)".into(),
        });
        return Ok(report);
    }
    // The head is read first, so that the walk can note whether the event it names is in
    // the chain (a head that lags the log is what a crash leaves).
    let head = Head::read(sibling(path, "head"));
    let mut walk = Walk {
        last: None,
        unverified: 0,
        head_link: head.link(),
        head_in_chain: false,
        // Two buffers: lines in one are checked while the file is read into the other.
        cur: vec![0u8; sizes.chunk],
        next: vec![0u8; sizes.chunk],
    };
    for file in report.files.clone() {
        walk.file(&file, sizes, &mut report)?;
    }
    report.last_seq = walk.last.as_ref().map_or(0, |(s, _)| *s);
    head.judge(&walk, &mut report);
    Ok(report)
}

/// The head file, as read before the walk.
struct Head {
    path: PathBuf,
    /// `None`: missing or empty; `Some(None)`: unreadable; else its sequence and hash.
    parsed: Option<Option<(u64, String)>>,
    /// The file exists and is empty.
    empty: bool,
}

impl Head {
    fn read(path: PathBuf) -> Self {
        let (parsed, empty) = match std::fs::read(&path) {
            Ok(b) if !b.is_empty() => (Some(parse_head(&b)), false),
            Ok(_) => (None, true),
            Err(_) => (None, false),
        };
        Head { path, parsed, empty }
    }

    /// The link (sequence and hash) the head names, when it names one.
    fn link(&self) -> Option<(u64, [u8; 64])> {
        let (seq, hash) = self.parsed.as_ref()?.as_ref()?;
        Some((*seq, <[u8; 64]>::try_from(hash.as_bytes()).ok()?))
    }

    /// Compares the head with the chain's last event (`walk`), and adds what it finds to
    /// `report`: a problem, or a crash artefact the next append repairs.
    fn judge(self, walk: &Walk, report: &mut VerifyReport) {
        let head_path = self.path;
        let last = &walk.last;
        match self.parsed {
            Some(head) => match (head, last) {
                (None, _) => report.problems.push(Problem {
                    file: head_path,
                    line: 0,
                    message: "the head file is unreadable".into(),
                }),
                (Some((hseq, hhash)), Some((lseq, lhash)))
                    if (hseq, hhash.as_bytes()) != (*lseq, &lhash[..]) =>
                {
                    report_head_mismatch(report, head_path, hseq, *lseq, walk.head_in_chain)
                }
                (Some((hseq, _)), None) => report.problems.push(Problem {
                    file: head_path,
                    line: 0,
                    message: format!("the head records event {hseq} but the log holds no event"),
                }),
                _ => {}
            },
            // The head file is made, empty, when a writer opens the log, and holds a head
            // from the end of its first append on. Empty beside a log of one event: the
            // first writer stopped between writing that event and writing the head.
            None if self.empty && report.events == 1 && report.last_seq == 1 => {
                report.crash_artefacts.push(Problem {
                    file: head_path,
                    line: 0,
                    message: "the head is empty and the log holds its first event only: the \
                              first writer stopped between writing it and writing the head (a \
                              crash); the next append writes the head"
                        .into(),
                })
            }
            None if last.is_some() => report.problems.push(Problem {
                file: head_path,
                line: 0,
                message: "the head file is missing: removal of the last events cannot be \
                          detected"
                    .into(),
            }),
            _ => {}
        }
    }
}

/// A head naming event `hseq` where the chain ends at `lseq`.
fn report_head_mismatch(
    report: &mut VerifyReport,
    head_path: PathBuf,
    hseq: u64,
    lseq: u64,
    head_in_chain: bool,
) {
    if hseq < lseq && head_in_chain {
        // The event the head names is in the chain and the chain goes on after it: a
        // writer stopped between writing an event and recording it in the head. The next
        // append brings the head up to date; nothing is missing.
        report.crash_artefacts.push(Problem {
            file: head_path,
            line: 0,
            message: format!(
                "the head records event {hseq}, which the log holds, but the log goes on to \
                 event {lseq}: a writer stopped between writing an event and recording it in \
                 the head (a crash); the next append brings the head up to date"
            ),
        });
        return;
    }
    let message = if hseq > lseq {
        format!(
            "the log ends at event {lseq} but its head records event {hseq}: the last {} \
             event(s) were removed",
            hseq - lseq
        )
    } else {
        "the head does not match the last event".into()
    };
    report.problems.push(Problem { file: head_path, line: 0, message });
}

/// The state of the walk over the chain, across files.
struct Walk {
    /// The last event linked into the chain: its sequence and hash.
    last: Option<(u64, [u8; 64])>,
    /// Lines since `last` that failed their own check (see [`chain`]).
    unverified: u64,
    /// What the head names, to be found in the chain.
    head_link: Option<(u64, [u8; 64])>,
    /// The head's event was seen in the chain.
    head_in_chain: bool,
    /// The buffer being checked, and the one the file is read into meanwhile.
    cur: Vec<u8>,
    next: Vec<u8>,
}

impl Walk {
    /// Checks every line of `file` and links it into the chain, adding what it finds to
    /// `report`.
    fn file(
        &mut self,
        file: &Path,
        sizes: &Sizes,
        report: &mut VerifyReport,
    ) -> Result<(), AuditError> {
        let io = |source| AuditError::Io { path: file.to_path_buf(), source };
        let mut f = std::fs::File::open(file).map_err(io)?;
        // `cur[..filled]` holds bytes read and not yet checked, from the start of a line.
        let mut filled = read_some(&mut f, &mut self.cur).map_err(io)?;
        // `read_some` stops short of a full buffer only at the end of the file.
        let mut eof = filled < self.cur.len();
        let mut lines = 0;
        loop {
            let whole = memchr::memrchr(b'\n', &self.cur[..filled]).map_or(0, |i| i + 1);
            if whole == 0 && !eof {
                // One line longer than the buffer: make room for it.
                self.cur.resize(self.cur.len() * 2, 0);
                let n = read_some(&mut f, &mut self.cur[filled..]).map_err(io)?;
                filled += n;
                eof = filled < self.cur.len();
                continue;
            }
            // The unfinished line moves to the other buffer, the file's next bytes after it.
            let rest = filled - whole;
            if self.next.len() < self.cur.len() {
                self.next.resize(self.cur.len(), 0);
            }
            self.next[..rest].copy_from_slice(&self.cur[whole..filled]);
            let next = &mut self.next;
            let (n, checked) = check_lines(&self.cur[..whole], sizes, || {
                if eof {
                    Ok(0)
                } else {
                    read_some(&mut f, &mut next[rest..])
                }
            });
            for result in checked {
                lines += 1;
                chain(&mut self.last, &mut self.unverified, report, file, lines, result);
                self.head_in_chain |= self.head_link.is_some() && self.last == self.head_link;
            }
            let n = n.map_err(io)?;
            std::mem::swap(&mut self.cur, &mut self.next);
            filled = rest + n;
            if eof {
                break;
            }
            eof = filled < self.cur.len();
        }
        if filled > 0 {
            self.torn_line(file, lines + 1, filled, report);
        }
        Ok(())
    }

    /// The unfinished last line of a file (`filled` bytes at the start of `cur`): a crash
    /// artefact if it begins as the event expected next, else a problem.
    fn torn_line(&self, file: &Path, line: usize, filled: usize, report: &mut VerifyReport) {
        let torn = Problem {
            file: file.to_path_buf(),
            line,
            message: "torn last line (no newline): a writer stopped in the middle of an event"
                .into(),
        };
        let start = &self.cur[..filled.min(FRAGMENT_START)];
        if starts_next_event(start, &self.last) {
            report.crash_artefacts.push(torn);
        } else {
            report.problems.push(torn);
        }
    }
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
            let ev = check_line(line).map_err(|e| e.message().to_string()).and_then(|_| {
                serde_json::from_str::<Event>(line).map_err(|e| format!("does not parse: {e}"))
            });
            out.push((file.clone(), i + 1, ev));
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
