//! Appending to the log: one writer at a time across threads and processes, rotation by
//! size, the head kept beside the log.

use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::event::{EventDraft, RiskLevel, UserContext};
use crate::verify::{check_bytes, BadLine, Checked};
use crate::{AuditError, GENESIS};

/// When appended events reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Each event is written with one `write(2)` before `append` returns: it survives the
    /// writing process crashing or being killed, not a crash of the kernel or a power loss
    /// (the page cache is flushed later). The default: appends cost microseconds.
    Write,
    /// Each event is also `fsync`ed before `append` returns: it survives a power loss.
    Fsync,
}

/// How a log is written.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The current log file; rotated files are `<stem>.<N>.jsonl` beside it, the head
    /// `<file>.head`, the lock `<file>.lock`.
    pub path: PathBuf,
    /// Rotate when the current file would grow past this many bytes.
    pub max_bytes: u64,
    /// When events reach the disk.
    pub durability: Durability,
    /// Also print `High` and `Critical` events on stderr as they are written.
    pub echo_high_risk: bool,
}

impl LogConfig {
    /// A log at `path` with 10 MiB files, [`Durability::Write`], no echo.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_bytes: 10 * 1024 * 1024,
            durability: Durability::Write,
            echo_high_risk: false,
        }
    }
}

/// An open audit log. Cheap to share (`Arc<AuditLog>`): appends from many threads and
/// processes are serialized by a mutex and an `flock` on the lock file.
pub struct AuditLog {
    config: LogConfig,
    /// `config.path` for `statx`, which needs a C string: made once, not per append.
    c_path: CString,
    lock: File,
    head: File,
    /// What this process knows between appends; one mutex, taken before the `flock`.
    state: Mutex<State>,
}

/// What an append leaves for the next one, so that the next one can skip reading what it
/// already knows. Only trusted while the log file is still the one this process last wrote
/// (same inode) and has the size that append left it at: then no other writer appended,
/// rotated or tore a line since, and the head file holds the link this process wrote.
struct State {
    /// The current file, kept open between appends, with its inode; reopened when another
    /// process has rotated it.
    current: Option<(File, u64)>,
    /// Size of the current file right after this process's last append (`u64::MAX`: none,
    /// or the last append failed part way).
    last_end: u64,
    /// Sequence number and hash this process's last append wrote to the head.
    last_link: Option<(u64, [u8; 64])>,
    /// Random bytes for event ids, fetched in batches (see [`RandomIds`]).
    ids: RandomIds,
    /// This process's id, remembered until a fork (see [`PidCache`]).
    pid: PidCache,
}

/// Where the head of the chain is kept: fixed-size, rewritten in place.
const HEAD_LEN: usize = 20 + 1 + 64 + 1;

/// How a writer's line ends: `,"hash":"` (9 bytes), the hash (64), `"}` and the newline.
const LINE_END: usize = 9 + 64 + 3;

/// Whether `end` (a file's last bytes) is the end of the line of the event whose hash is
/// `hash`: then the file ends with the event the head names.
fn ends_with_link(end: &[u8], hash: &[u8; 64]) -> bool {
    end.len() == LINE_END
        && end.starts_with(b",\"hash\":\"")
        && end[9..73] == hash[..]
        && end.ends_with(b"\"}\n")
}

impl AuditLog {
    /// Opens (creating if needed) the log described by `config`: its directory (mode 0700),
    /// the log file, and its lock and head files.
    pub fn open(config: LogConfig) -> Result<Self, AuditError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AuditError::Io { path, source }
        };
        if let Some(dir) = config.path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(io(dir))?;
            }
        }
        let lock_path = sibling(&config.path, "lock");
        let head_path = sibling(&config.path, "head");
        let open = |p: &Path| {
            no_atime(|flags| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .custom_flags(flags)
                    .open(p)
            })
        };
        let c_path = CString::new(config.path.as_os_str().as_bytes()).map_err(|_| {
            io(&config.path)(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path holds a NUL byte",
            ))
        })?;
        // The log file is made here, before the head, rather than by the first append: a
        // writer killed in the first append of a new log then leaves an empty log (which
        // verifies: no event, nothing missing), never a head without a log.
        let current = open_current(&config.path)?;
        let (_, ino) = fstat_ino_size(&current).map_err(io(&config.path))?;
        let lock = open(&lock_path).map_err(io(&lock_path))?;
        let head = open(&head_path).map_err(io(&head_path))?;
        let state = State {
            current: Some((current, ino)),
            last_end: u64::MAX,
            last_link: None,
            ids: RandomIds::new(),
            pid: PidCache::new(),
        };
        Ok(Self { config, c_path, lock, head, state: Mutex::new(state) })
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Appends one event and returns its sequence number. The event's details are redacted
    /// first. Safe to call from many threads and processes at once: events never interleave,
    /// and the chain stays valid, also after a writer was killed part way through an append
    /// (the first append that does not know the log's end takes up what it left: see
    /// `reconcile`).
    pub fn append(&self, draft: &EventDraft) -> Result<u64, AuditError> {
        let mut state = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let state = &mut *state;
        let tail = render_tail(draft, &mut state.ids, state.pid.get());
        let _across_processes = Flock::exclusive(&self.lock, &self.config.path)?;
        let path = &self.config.path;
        let io = |source| AuditError::Io { path: path.clone(), source };

        // One stat tells both the size and whether another writer rotated the file.
        let (mut size, ino) = match stat_ino_size(&self.c_path) {
            Ok((size, ino)) => (size, Some(ino)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, None),
            Err(e) => return Err(io(e)),
        };
        let reuse = matches!((&state.current, ino), (Some((_, cached)), Some(i)) if *cached == i);
        // Nobody appended since this process did: the file ends with our newline and the
        // head holds our last link, so neither needs reading.
        let known = match state.last_link {
            Some(link) if reuse && size == state.last_end => Some(link),
            _ => None,
        };
        // Until this append completes, nothing of the above is known any more.
        state.last_end = u64::MAX;
        state.last_link = None;
        if !reuse {
            let f = self.current_file()?;
            let (s, i) = fstat_ino_size(&f).map_err(io)?;
            size = s;
            state.current = Some((f, i));
        }
        let Some((file, _)) = state.current.as_mut() else { unreachable!("set above") };
        let (last_seq, last_hash) = match known {
            Some((seq, hash)) => (seq, hash),
            None => {
                let head = self.read_head()?;
                // The end of the last line: its newline, and the hash the head should name.
                let mut end = [0u8; LINE_END];
                let got = size.min(LINE_END as u64);
                let end = &mut end[..got as usize];
                file.read_exact_at(end, size - got).map_err(io)?;
                // A line torn by a crash stays a line of its own (verify reports it as a
                // crash artefact); the chain continues after it.
                if end.last().is_some_and(|&b| b != b'\n') {
                    file.write_all(b"\n").map_err(io)?;
                    size += 1;
                }
                match head {
                    // The file ends with the event the head names: the usual case when
                    // another writer appended since this process did.
                    Some((seq, hash)) if ends_with_link(end, &hash) => (seq, hash),
                    _ => self.reconcile(head, file, size)?,
                }
            }
        };

        let seq = last_seq + 1;
        let line = render(seq, &last_hash, tail);
        if size > 0 && size + line.len() as u64 > self.config.max_bytes {
            self.rotate()?;
            size = 0;
            let f = self.current_file()?;
            let (_, i) = fstat_ino_size(&f).map_err(io)?;
            state.current = Some((f, i));
        }
        let Some((file, _)) = state.current.as_mut() else { unreachable!("set above") };
        file.write_all(line.bytes()).map_err(io)?;
        if self.config.durability == Durability::Fsync {
            file.sync_data().map_err(io)?;
        }
        self.write_head(seq, &line.hash)?;
        state.last_end = size + line.len() as u64;
        state.last_link = Some((seq, line.hash));
        if self.config.echo_high_risk && draft.risk_level >= RiskLevel::High {
            // A pointer to the record, not a copy of it: the caller reports the details.
            eprintln!(
                "skillbox: audit: recorded {:?} ({:?} risk) for skill `{}` as event {seq} in {}",
                draft.event_type,
                draft.risk_level,
                one_line(&draft.skill_name),
                crate::text::path(&self.config.path)
            );
        }
        Ok(seq)
    }

    fn current_file(&self) -> Result<File, AuditError> {
        open_current(&self.config.path)
    }

    /// Renames the current file to the next free `<stem>.<N>.jsonl`.
    fn rotate(&self) -> Result<(), AuditError> {
        let next = rotated_files(&self.config.path).last().map_or(1, |(n, _)| n + 1);
        let target = rotated_name(&self.config.path, next);
        std::fs::rename(&self.config.path, &target)
            .map_err(|source| AuditError::Io { path: target, source })
    }

    /// The head: `None` when the file is empty (a new log, or a head lost).
    fn read_head(&self) -> Result<Option<(u64, [u8; 64])>, AuditError> {
        let head_path = sibling(&self.config.path, "head");
        let mut buf = [0u8; HEAD_LEN];
        let n = self
            .head
            .read_at(&mut buf, 0)
            .map_err(|source| AuditError::Io { path: head_path.clone(), source })?;
        if n == 0 {
            return Ok(None);
        }
        let (seq, hash) =
            parse_head(&buf[..n]).ok_or_else(|| AuditError::Head(head_path.clone()))?;
        // `parse_head` checked for 64 hex digits.
        let hash: [u8; 64] = hash.as_bytes().try_into().map_err(|_| AuditError::Head(head_path))?;
        Ok(Some((seq, hash)))
    }

    /// Where the chain continues when the log's last line is not the event the head names.
    /// The log is the truth and the head a check: the events are what was recorded, the
    /// head only guards the end against removal. So:
    ///
    /// - no head (a new log, or the head file lost): the last event that verifies;
    /// - the head names an event and the log goes on after it with complete events, each
    ///   chained to the one before, the first to the head: a writer stopped between writing
    ///   an event and updating the head (a crash, or an error writing the head). The head is
    ///   brought up to the log's last event, on disk at once, so that a rotation by this
    ///   append cannot strand the event in a file the next writer does not read;
    /// - anything else (the head ahead of the log, or naming an event the log does not hold
    ///   at the end): not repaired. The chain continues from the head, so the disagreement
    ///   stays in the log for `verify` to report, as it would report it now.
    ///
    /// Lines a writer did not finish are stepped over; a line that does not verify for any
    /// other reason (an edit) stops the search, and the head is kept. Reads the log from its
    /// end backwards, line by line, only as far as the head's event: with the order of an
    /// append (the event, then the head), a killed writer leaves at most one event after it.
    fn reconcile(
        &self,
        head: Option<(u64, [u8; 64])>,
        file: &File,
        size: u64,
    ) -> Result<(u64, [u8; 64]), AuditError> {
        let mut lines = LogTail::new(&self.config.path, file, size);
        let Some((hseq, hhash)) = head else {
            // As before: continue from the last line that verifies on its own.
            while let Some(line) = lines.prev_line()? {
                if let Ok(c) = check_bytes(&line) {
                    return Ok((c.seq, c.hash));
                }
            }
            let mut genesis = [0u8; 64];
            genesis.copy_from_slice(GENESIS.as_bytes());
            return Ok((0, genesis));
        };
        let kept = Ok((hseq, hhash));
        let Some(last) = lines.prev_event()? else { return kept };
        if last.seq <= hseq {
            // The head's own event (the usual case when the file ends with a torn line), or
            // a head ahead of the log or at odds with it: nothing a crash leaves to repair.
            return kept;
        }
        let (mut seq, mut prev) = (last.seq, last.prev);
        while seq != hseq + 1 {
            let Some(older) = lines.prev_event()? else { return kept };
            if older.seq.checked_add(1) != Some(seq) || older.hash[..] != *prev.bytes() {
                return kept;
            }
            (seq, prev) = (older.seq, older.prev);
        }
        if prev.bytes() != hhash {
            return kept;
        }
        self.write_head(last.seq, &last.hash)?;
        Ok((last.seq, last.hash))
    }

    fn write_head(&self, seq: u64, hash: &[u8; 64]) -> Result<(), AuditError> {
        // `{seq:020} {hash}\n`, built on the stack: this runs on every append.
        let mut text = [0u8; HEAD_LEN];
        let mut digits = seq;
        for b in text[..20].iter_mut().rev() {
            *b = b'0' + (digits % 10) as u8;
            digits /= 10;
        }
        text[20] = b' ';
        text[21..85].copy_from_slice(hash);
        text[85] = b'\n';
        self.head
            .write_all_at(&text, 0)
            .map_err(|source| AuditError::Io { path: sibling(&self.config.path, "head"), source })
    }
}

/// Opens (creating if needed) the current log file for appending, and for reading its end.
fn open_current(path: &Path) -> Result<File, AuditError> {
    no_atime(|flags| {
        OpenOptions::new()
            .append(true)
            .create(true)
            .read(true)
            .mode(0o600)
            .custom_flags(flags)
            .open(path)
    })
    .map_err(|source| AuditError::Io { path: path.to_path_buf(), source })
}

/// Opens with `O_NOATIME` where allowed (files this user owns), else without. Appends read
/// the head and the log's last byte when another writer went first; with access times
/// on, each of those reads would also dirty and journal the inode, since the file was
/// written after it was last read.
fn no_atime(open: impl Fn(i32) -> std::io::Result<File>) -> std::io::Result<File> {
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        other => other,
    }
}

/// Parses a head file's bytes: `SEQ HASH\n`.
pub(crate) fn parse_head(buf: &[u8]) -> Option<(u64, String)> {
    let text = std::str::from_utf8(buf).ok()?.trim_end();
    let (seq, hash) = text.split_once(' ')?;
    let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| Some((seq.parse().ok()?, hash.to_string())))?
}

/// The log's lines from its end backwards: the current file's, then each rotated file's,
/// newest first. Used only when a writer does not know the log's end (see
/// [`AuditLog::reconcile`]), and only as far as it needs: a line at a time, read in chunks
/// from the end, never the whole log unless every line has to be stepped over.
struct LogTail<'a> {
    path: &'a Path,
    file: FileTail<'a>,
    /// Rotated files not yet read, oldest first; listed when the current file runs out.
    rotated: Option<Vec<(u64, PathBuf)>>,
}

impl<'a> LogTail<'a> {
    fn new(path: &'a Path, current: &'a File, size: u64) -> Self {
        Self { path, file: FileTail::new(FileRef::Borrowed(current), size), rotated: None }
    }

    /// The line before the ones returned so far (without its newline); `None` at the start
    /// of the log, or where a rotated file cannot be opened.
    fn prev_line(&mut self) -> Result<Option<Vec<u8>>, AuditError> {
        loop {
            match self.file.prev_line() {
                Ok(Some(line)) => return Ok(Some(line)),
                Ok(None) => {}
                Err(source) if self.rotated.is_none() => {
                    return Err(AuditError::Io { path: self.path.to_path_buf(), source })
                }
                // A rotated file that cannot be read: the search ends there (the head is
                // kept).
                Err(_) => return Ok(None),
            }
            let rotated = self.rotated.get_or_insert_with(|| rotated_files(self.path));
            let Some((_, path)) = rotated.pop() else { return Ok(None) };
            let opened =
                no_atime(|flags| OpenOptions::new().read(true).custom_flags(flags).open(&path))
                    .and_then(|f| Ok((f.metadata()?.len(), f)));
            // A rotated file removed or unreadable: the search ends there (the head is kept).
            let Ok((size, f)) = opened else { return Ok(None) };
            self.file = FileTail::new(FileRef::Owned(f), size);
        }
    }

    /// The last event before the lines returned so far that verifies on its own, stepping
    /// over lines a writer did not finish; `None` at the start of the log or at a line that
    /// does not verify for another reason.
    fn prev_event(&mut self) -> Result<Option<Checked>, AuditError> {
        while let Some(line) = self.prev_line()? {
            match check_bytes(&line) {
                Ok(c) => return Ok(Some(c)),
                Err(BadLine::Incomplete { .. }) => {}
                Err(BadLine::Invalid(_)) => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// The current file (the writer's own descriptor) or a rotated one opened for the search.
enum FileRef<'a> {
    Borrowed(&'a File),
    Owned(File),
}

/// One file's lines from its end backwards.
struct FileTail<'a> {
    file: FileRef<'a>,
    /// The file's bytes from `start` to the end of the lines not yet returned.
    window: Vec<u8>,
    start: u64,
}

/// How much is read at a time when looking for the start of a line (lines of the usual
/// events are about a kilobyte); doubled while a line is longer.
const TAIL_CHUNK: u64 = 8 << 10;

impl<'a> FileTail<'a> {
    fn new(file: FileRef<'a>, size: u64) -> Self {
        Self { file, window: Vec::new(), start: size }
    }

    /// The line before the ones returned so far, without its newline.
    fn prev_line(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        loop {
            // The window ends with the newline of the line to return (or, in a file that
            // does not end with one, with the end of its unfinished line).
            let body = match self.window.last() {
                Some(b'\n') => self.window.len() - 1,
                _ => self.window.len(),
            };
            if let Some(nl) = memchr::memrchr(b'\n', &self.window[..body]) {
                let line = self.window[nl + 1..body].to_vec();
                self.window.truncate(nl + 1);
                return Ok(Some(line));
            }
            if self.start == 0 {
                if self.window.is_empty() {
                    return Ok(None);
                }
                let line = self.window[..body].to_vec();
                self.window.clear();
                return Ok(Some(line));
            }
            let n = (self.window.len() as u64).max(TAIL_CHUNK).min(self.start);
            let mut more = vec![0u8; n as usize];
            let file = match &self.file {
                FileRef::Borrowed(f) => f,
                FileRef::Owned(f) => f,
            };
            file.read_exact_at(&mut more, self.start - n)?;
            more.extend_from_slice(&self.window);
            self.window = more;
            self.start -= n;
        }
    }
}

/// `<path>.<ext>`: the head and lock files.
pub(crate) fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// `<stem>.<NNNNNN>.jsonl` beside `path`.
pub(crate) fn rotated_name(path: &Path, n: u64) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}.{n:06}.jsonl"))
}

/// Rotated files of the log at `path`, oldest first.
pub(crate) fn rotated_files(path: &Path) -> Vec<(u64, PathBuf)> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut out: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix(&format!("{stem}."))?.strip_suffix(".jsonl")?;
            (n.len() == 6).then(|| n.parse().ok().map(|n| (n, e.path())))?
        })
        .collect();
    out.sort();
    out
}

/// A rendered line: `text[start..]`, with its hash.
struct Line {
    text: Vec<u8>,
    start: usize,
    hash: [u8; 64],
}

impl Line {
    fn bytes(&self) -> &[u8] {
        &self.text[self.start..]
    }

    fn len(&self) -> usize {
        self.text.len() - self.start
    }
}

/// Room left at the front of a tail's buffer for the line's start (`{"seq":N,"prev_hash":
/// "H","timestamp":"T"`, at most 7 + 20 + 14 + 64 + 15 + 42 = 162 bytes), so that the line
/// is finished in the tail's own buffer rather than copied into a new one.
const HEAD_ROOM: usize = 168;

/// The part of an event's line after its time: everything that does not depend on the
/// chain, written before the lock is taken so that other writers wait less. Starts with
/// [`HEAD_ROOM`] unused bytes.
fn render_tail(d: &EventDraft, ids: &mut RandomIds, pid: u32) -> Vec<u8> {
    let id: [u8; 32] = hex_lower(&ids.next(pid));
    // SAFETY: getuid has no failure mode and no memory effects.
    let user = UserContext { uid: unsafe { libc::getuid() }, pid };
    // Lowercase hex digits: ASCII.
    tail_at(d, std::str::from_utf8(&id).unwrap_or(""), user)
}

/// The whole line, from its link to the chain, the time (taken now, under the lock, so that
/// times follow sequence numbers) and the tail.
fn render(seq: u64, prev_hash: &[u8; 64], tail: Vec<u8>) -> Line {
    let mut stamp = [0u8; 40];
    let stamp = format_on_stack(&mut stamp, humantime::format_rfc3339_micros(SystemTime::now()));
    finish(seq, prev_hash, stamp, tail)
}

/// [`render_tail`] with the id and writer given: `,"event_id":...,"details":{...}}`. The
/// fields of the hashed part, in line order, as `serde_json` wrote them from a struct
/// before (a test compares).
fn tail_at(d: &EventDraft, event_id: &str, user_context: UserContext) -> Vec<u8> {
    use crate::redact::json::{write_str, write_u64};
    let mut text = Vec::with_capacity(1280);
    text.resize(HEAD_ROOM, 0);
    let opt_str = |out: &mut Vec<u8>, v: &Option<String>| match v {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    };
    let name = |out: &mut Vec<u8>, name: &str| {
        // Variant names are ASCII letters: nothing to escape.
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    };
    text.extend_from_slice(b",\"event_id\":");
    write_str(&mut text, event_id);
    text.extend_from_slice(b",\"event_type\":");
    name(&mut text, d.event_type.as_str());
    text.extend_from_slice(b",\"skill_name\":");
    write_str(&mut text, &d.skill_name);
    text.extend_from_slice(b",\"skill_trust_level\":");
    opt_str(&mut text, &d.skill_trust_level);
    text.extend_from_slice(b",\"user_context\":{\"uid\":");
    write_u64(&mut text, user_context.uid.into());
    text.extend_from_slice(b",\"pid\":");
    write_u64(&mut text, user_context.pid.into());
    text.extend_from_slice(b"},\"risk_level\":");
    name(&mut text, d.risk_level.as_str());
    text.extend_from_slice(b",\"action_taken\":");
    name(&mut text, d.action_taken.as_str());
    text.extend_from_slice(b",\"execution_id\":");
    opt_str(&mut text, &d.execution_id);
    text.extend_from_slice(b",\"attempt\":");
    match d.attempt {
        Some(n) => write_u64(&mut text, n.into()),
        None => text.extend_from_slice(b"null"),
    }
    text.extend_from_slice(b",\"details\":");
    // Redacted while it is written: no copy of the details is made.
    crate::redact::write_redacted(&mut text, &d.details);
    text.push(b'}');
    text
}

/// `{"seq":N,"prev_hash":"H","timestamp":"T"` written into the room at the front of `tail`,
/// hashed with the tail, and the hash spliced in before the closing brace.
fn finish(seq: u64, prev_hash: &[u8; 64], timestamp: &str, mut tail: Vec<u8>) -> Line {
    let mut head = Vec::with_capacity(HEAD_ROOM);
    head.extend_from_slice(b"{\"seq\":");
    crate::redact::json::write_u64(&mut head, seq);
    head.extend_from_slice(b",\"prev_hash\":\"");
    // Lowercase hex digits (from the head or a verified line): nothing to escape.
    head.extend_from_slice(prev_hash);
    head.extend_from_slice(b"\",\"timestamp\":");
    crate::redact::json::write_str(&mut head, timestamp);
    let start = match HEAD_ROOM.checked_sub(head.len()) {
        Some(start) => {
            tail[start..HEAD_ROOM].copy_from_slice(&head);
            start
        }
        // A timestamp longer than any RFC 3339 time: splice it in the slow way.
        None => {
            tail.splice(..HEAD_ROOM, head);
            0
        }
    };
    let hash = hex_lower(&Sha256::digest(&tail[start..]).into());
    tail.pop();
    tail.extend_from_slice(b",\"hash\":\"");
    tail.extend_from_slice(&hash);
    tail.extend_from_slice(b"\"}\n");
    Line { text: tail, start, hash }
}

/// Writes `value` into `buf` and returns it as text; what does not fit is cut (a timestamp
/// always fits).
fn format_on_stack(buf: &mut [u8], value: impl std::fmt::Display) -> &str {
    let mut cursor = std::io::Cursor::new(&mut *buf);
    let _ = write!(cursor, "{value}");
    let n = cursor.position() as usize;
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}

/// Lowercase hex of `N` bytes into `2 * N` bytes (`M`), without allocating (the append path
/// formats two of these per event).
pub(crate) fn hex_lower<const N: usize, const M: usize>(bytes: &[u8; N]) -> [u8; M] {
    const { assert!(M == 2 * N) };
    let mut out = [0u8; M];
    // Cannot fail: `out` is exactly twice as long as `bytes` (checked at compile time above).
    let _ = hex::encode_to_slice(bytes, &mut out);
    out
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let hex: [u8; 64] = hex_lower(&Sha256::digest(bytes).into());
    hex.iter().map(|&b| b as char).collect()
}

/// Random event ids. `getrandom(2)` is called for 32 ids at a time rather than once per
/// event (it was a tenth of an append's syscalls); the bytes are the same kernel randomness.
/// A child made by `fork` would share the unused bytes, so they are dropped when the process
/// id changes.
struct RandomIds {
    bytes: [u8; 512],
    used: usize,
    pid: u32,
}

impl RandomIds {
    fn new() -> Self {
        Self { bytes: [0; 512], used: 512, pid: 0 }
    }

    /// The next id, for process `pid` (the caller's `getpid`, which it records anyway).
    fn next(&mut self, pid: u32) -> [u8; 16] {
        if self.used + 16 > self.bytes.len() || pid != self.pid {
            self.refill();
            self.pid = pid;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&self.bytes[self.used..self.used + 16]);
        self.used += 16;
        id
    }

    fn refill(&mut self) {
        if getrandom::fill(&mut self.bytes).is_err() {
            // As before: time and pid when the kernel has no randomness to give.
            for (i, chunk) in self.bytes.chunks_exact_mut(16).enumerate() {
                let t = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                let b = (t.wrapping_add(i as u128) ^ u128::from(std::process::id()) << 64)
                    .to_le_bytes();
                chunk.copy_from_slice(&b);
            }
        }
        self.used = 0;
    }
}

/// This process's id without a system call per event (`getpid` was one of the seven an
/// append made). The id is kept in a page of its own marked `MADV_WIPEONFORK`: the kernel
/// hands a child made by `fork` that page zeroed, and zero means "ask again". So a forked
/// child records its own id, and [`RandomIds`], which compares ids, draws new bytes rather
/// than reuse its parent's. Where the kernel refuses the advice (before Linux 4.14), every
/// call asks the kernel, as before.
struct PidCache {
    /// The page, whose first four bytes hold the id (0: not known).
    page: Option<std::ptr::NonNull<std::sync::atomic::AtomicU32>>,
}

/// Bytes mapped for the id: the kernel rounds up to its page size.
const PID_PAGE: usize = 4096;

// SAFETY: the page belongs to this value alone (mapped in `new`, unmapped in `drop`) and is
// only read and written through an atomic, so moving the value to another thread is sound.
unsafe impl Send for PidCache {}

impl PidCache {
    fn new() -> Self {
        use std::ptr::null_mut;
        // SAFETY: a new private anonymous mapping at an address of the kernel's choosing;
        // no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                null_mut(),
                PID_PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Self { page: None };
        }
        // SAFETY: `p` is the mapping just made, `PID_PAGE` bytes long.
        if unsafe { libc::madvise(p, PID_PAGE, libc::MADV_WIPEONFORK) } != 0 {
            // SAFETY: unmaps the mapping made above, which nothing else refers to.
            unsafe { libc::munmap(p, PID_PAGE) };
            return Self { page: None };
        }
        Self { page: std::ptr::NonNull::new(p.cast()) }
    }

    /// The id of the calling process.
    fn get(&self) -> u32 {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(page) = self.page else { return std::process::id() };
        // SAFETY: the page is mapped, readable and writable while `self` lives, page-aligned
        // (so aligned for an `AtomicU32`), and zero-filled or holding an id: any bits are a
        // valid `AtomicU32`.
        let cached = unsafe { page.as_ref() };
        match cached.load(Relaxed) {
            0 => {
                let pid = std::process::id();
                cached.store(pid, Relaxed);
                pid
            }
            pid => pid,
        }
    }
}

impl Drop for PidCache {
    fn drop(&mut self) {
        if let Some(page) = self.page {
            // SAFETY: unmaps the page mapped in `new`; `self` is its only user and is going.
            unsafe { libc::munmap(page.as_ptr().cast(), PID_PAGE) };
        }
    }
}

/// Size and inode of the file at `path`. `statx` asks for those two only: asking for the
/// times too (as `std::fs::metadata` does) makes the kernel (6.13+, multigrain timestamps)
/// give the next `write` a fine-grained time update and journal the inode, on every append.
fn stat_ino_size(path: &CStr) -> std::io::Result<(u64, u64)> {
    statx_ino_size(path, 0, None)
}

/// [`stat_ino_size`] of an open file.
fn fstat_ino_size(file: &File) -> std::io::Result<(u64, u64)> {
    statx_ino_size(c"", libc::AT_EMPTY_PATH, Some(file))
}

fn statx_ino_size(path: &CStr, flags: i32, file: Option<&File>) -> std::io::Result<(u64, u64)> {
    use std::os::fd::AsRawFd;
    let dirfd = file.map_or(libc::AT_FDCWD, |f| f.as_raw_fd());
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `path` is NUL-terminated, `dirfd` is AT_FDCWD or a descriptor borrowed for the
    // call, and `buf` is a properly sized, writable statx buffer.
    let r = unsafe {
        libc::statx(
            dirfd,
            path.as_ptr(),
            flags,
            libc::STATX_INO | libc::STATX_SIZE,
            buf.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: zero-initialized above and filled by a successful statx; every field is plain
    // data, valid for any bits.
    let st = unsafe { buf.assume_init() };
    Ok((st.stx_size, st.stx_ino))
}

/// Control characters escaped, everything else as is: a stderr line stays one line and
/// cannot drive the terminal.
fn one_line(s: &str) -> String {
    crate::text::escape_controls(s, crate::text::Lines::Escape)
}

/// An exclusive `flock`, released on drop.
struct Flock<'a>(&'a File);

impl<'a> Flock<'a> {
    fn exclusive(file: &'a File, path: &Path) -> Result<Self, AuditError> {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(Self(file));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(AuditError::Io { path: sibling(path, "lock"), source: e });
            }
        }
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocks the descriptor locked in `exclusive`.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActionTaken, EventType};
    use serde::Serialize;
    use serde_json::{json, Value};

    /// The line as appends wrote it before they serialized in place: the details cloned and
    /// redacted, the body serialized to a string, hashed, and the hash spliced in.
    fn reference_line(
        seq: u64,
        prev_hash: &str,
        d: &EventDraft,
        stamp: &str,
        id: &str,
        user: UserContext,
    ) -> String {
        #[derive(Serialize)]
        struct OldBody<'a> {
            seq: u64,
            prev_hash: &'a str,
            timestamp: String,
            event_id: String,
            event_type: crate::EventType,
            skill_name: &'a str,
            skill_trust_level: &'a Option<String>,
            user_context: UserContext,
            risk_level: RiskLevel,
            action_taken: crate::ActionTaken,
            execution_id: &'a Option<String>,
            attempt: Option<u32>,
            details: Value,
        }
        let mut details = d.details.clone();
        crate::redact_value(&mut details);
        let body = OldBody {
            seq,
            prev_hash,
            timestamp: stamp.to_string(),
            event_id: id.to_string(),
            event_type: d.event_type,
            skill_name: &d.skill_name,
            skill_trust_level: &d.skill_trust_level,
            user_context: user,
            risk_level: d.risk_level,
            action_taken: d.action_taken,
            execution_id: &d.execution_id,
            attempt: d.attempt,
            details,
        };
        let body = serde_json::to_string(&body).unwrap();
        let hash = sha256_hex(body.as_bytes());
        format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1])
    }

    fn draft(skill: &str, trust: Option<&str>, details: Value) -> EventDraft {
        EventDraft {
            event_type: EventType::SkillExecutionCompleted,
            skill_name: skill.into(),
            skill_trust_level: trust.map(str::to_string),
            risk_level: RiskLevel::Low,
            action_taken: ActionTaken::Allowed,
            execution_id: Some("0b5c7f1e".into()),
            attempt: Some(1),
            details,
        }
    }

    #[test]
    fn lines_are_byte_for_byte_what_the_old_writer_made() {
        let hostile = "a\nb\r\t\u{0}\u{1f}\u{7f}\"\\\u{2028}é😀 },\"hash\":\"00\"}";
        let drafts = [
            draft(
                "count-lines",
                Some("user-verified"),
                json!({"status": "success", "exit_code": 0,
                "usage": {"wall_ms": 3, "cpu_ms": 1.5, "max_rss_kib": 2048},
                "grant": {"file_read": ["/home/user/project"], "network": "none"},
                "denial": null, "problems": [], "ok": true, "n": -7, "big": 18446744073709551615u64}),
            ),
            draft(
                hostile,
                Some(hostile),
                json!({"message": hostile, hostile: hostile, "list": [hostile, 1, null]}),
            ),
            draft(
                "s",
                None,
                json!({
                    "GITHUB_TOKEN": "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
                    "password": 42, "api_key": null, "auth": false, "cookie": ["a", "b"],
                    "nested": {"session_id": {"x": 1}, "list": ["AKIAIOSFODNN7EXAMPLE ok", "Bearer abcdefghijklmnopqrstuvwxyz012345"]},
                    "paſſword": "unicode-folded name", "toKen": "kelvin sign name",
                    "message": "auth failed for AKIAIOSFODNN7EXAMPLE with password=hunter2; PaSsWoRd: x; ſecret=y",
                    "stderr": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\n-----END PRIVATE KEY-----",
                    "plain": "nothing secret here, just high throughput thoughts",
                }),
            ),
            draft("", None, json!("top-level string with token=abc")),
            draft("", None, Value::Null),
        ];
        let prev = [b'a'; 64];
        let user = UserContext { uid: 1000, pid: 4242 };
        for (i, d) in drafts.iter().enumerate() {
            let seq = i as u64 + 1;
            let stamp = "2026-11-28T09:00:00.123456Z";
            let id = "00112233445566778899aabbccddeeff";
            let line = finish(seq, &prev, stamp, tail_at(d, id, user.clone()));
            let want = reference_line(seq, "a".repeat(64).as_str(), d, stamp, id, user.clone());
            assert_eq!(String::from_utf8(line.bytes().to_vec()).unwrap(), want, "draft {i}");
            assert!(want
                .contains(&format!("\"hash\":\"{}\"", std::str::from_utf8(&line.hash).unwrap())));
        }
        // The secrets above really were cut (the reference is not vacuous).
        let third = String::from_utf8(
            finish(3, &prev, "t", tail_at(&drafts[2], "i", user)).bytes().to_vec(),
        )
        .unwrap();
        for leaked in
            ["ghp_0123", "AKIAIOSFODNN7", "hunter2", "MIIEvQ", "unicode-folded", "kelvin sign"]
        {
            assert!(!third.contains(leaked), "{leaked} leaked: {third}");
        }
    }

    #[test]
    fn event_ids_differ_and_digests_are_lowercase_hex() {
        let mut ids = RandomIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(ids.next(7)), "an event id repeated");
        }
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
