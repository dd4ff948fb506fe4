//! Appending to the log: one writer at a time across threads and processes, rotation by
//! size, the head kept beside the log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::event::{EventDraft, RiskLevel, UserContext};
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
    lock: File,
    head: File,
    /// The current file, kept open between appends with its inode; reopened when another
    /// process has rotated it.
    current: Mutex<Option<(File, u64)>>,
    /// Size of the current file right after this process's last append: when it is
    /// unchanged, the file ends with our newline and need not be read.
    last_end: Mutex<u64>,
}

/// Where the head of the chain is kept: fixed-size, rewritten in place.
const HEAD_LEN: usize = 20 + 1 + 64 + 1;

impl AuditLog {
    /// Opens (creating if needed) the log described by `config`. The directory is created
    /// with mode 0700.
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
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(p)
        };
        let lock = open(&lock_path).map_err(io(&lock_path))?;
        let head = open(&head_path).map_err(io(&head_path))?;
        Ok(Self { config, lock, head, current: Mutex::new(None), last_end: Mutex::new(u64::MAX) })
    }

    /// The configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Appends one event and returns its sequence number. The event's details are redacted
    /// first. Safe to call from many threads and processes at once: events never interleave,
    /// and the chain stays valid.
    pub fn append(&self, draft: &EventDraft) -> Result<u64, AuditError> {
        let mut current = match self.current.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let _across_processes = Flock::exclusive(&self.lock, &self.config.path)?;
        let path = &self.config.path;
        let io = |source| AuditError::Io { path: path.clone(), source };

        let (last_seq, last_hash) = self.read_head()?;
        // One stat tells both the size and whether another writer rotated the file.
        let (mut size, ino) = match std::fs::metadata(path) {
            Ok(m) => (m.len(), Some(std::os::unix::fs::MetadataExt::ino(&m))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, None),
            Err(e) => return Err(io(e)),
        };
        let reuse = matches!((&*current, ino), (Some((_, cached)), Some(i)) if *cached == i);
        if !reuse {
            let f = self.current_file()?;
            let i = std::os::unix::fs::MetadataExt::ino(&f.metadata().map_err(io)?);
            size = f.metadata().map_err(io)?.len();
            *current = Some((f, i));
        }
        let Some((file, _)) = current.as_mut() else { unreachable!("set above") };
        // A line torn by a crash stays a line of its own (verify reports it); the chain
        // continues from the head, which was not advanced for the torn event.
        let mut last_end = match self.last_end.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if size > 0 && size != *last_end {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, size - 1).map_err(io)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(io)?;
                size += 1;
            }
        }

        let seq = last_seq + 1;
        let line = render(seq, &last_hash, draft);
        if size > 0 && size + line.text.len() as u64 > self.config.max_bytes {
            self.rotate()?;
            size = 0;
            let f = self.current_file()?;
            let i = std::os::unix::fs::MetadataExt::ino(&f.metadata().map_err(io)?);
            *current = Some((f, i));
        }
        let Some((file, _)) = current.as_mut() else { unreachable!("set above") };
        file.write_all(line.text.as_bytes()).map_err(io)?;
        *last_end = size + line.text.len() as u64;
        if self.config.durability == Durability::Fsync {
            file.sync_data().map_err(io)?;
        }
        self.write_head(seq, &line.hash)?;
        if self.config.echo_high_risk && draft.risk_level >= RiskLevel::High {
            // A pointer to the record, not a copy of it: the caller reports the details.
            eprintln!(
                "skillbox: audit: recorded {:?} ({:?} risk) for skill `{}` as event {seq} in {}",
                draft.event_type,
                draft.risk_level,
                one_line(&draft.skill_name),
                self.config.path.display()
            );
        }
        Ok(seq)
    }

    fn current_file(&self) -> Result<File, AuditError> {
        OpenOptions::new()
            .append(true)
            .create(true)
            .read(true)
            .mode(0o600)
            .open(&self.config.path)
            .map_err(|source| AuditError::Io { path: self.config.path.clone(), source })
    }

    /// Renames the current file to the next free `<stem>.<N>.jsonl`.
    fn rotate(&self) -> Result<(), AuditError> {
        let next = rotated_files(&self.config.path).last().map_or(1, |(n, _)| n + 1);
        let target = rotated_name(&self.config.path, next);
        std::fs::rename(&self.config.path, &target)
            .map_err(|source| AuditError::Io { path: target, source })
    }

    fn read_head(&self) -> Result<(u64, String), AuditError> {
        let head_path = sibling(&self.config.path, "head");
        let mut buf = [0u8; HEAD_LEN];
        let n = self
            .head
            .read_at(&mut buf, 0)
            .map_err(|source| AuditError::Io { path: head_path.clone(), source })?;
        if n == 0 {
            // A new log, or a head lost: continue from the last complete line.
            return Ok(
                crate::verify::last_link(&self.config.path).unwrap_or((0, GENESIS.to_string()))
            );
        }
        parse_head(&buf[..n]).ok_or(AuditError::Head(head_path))
    }

    fn write_head(&self, seq: u64, hash: &str) -> Result<(), AuditError> {
        let text = format!("{seq:020} {hash}\n");
        self.head
            .write_all_at(text.as_bytes(), 0)
            .map_err(|source| AuditError::Io { path: sibling(&self.config.path, "head"), source })
    }
}

/// Parses a head file's bytes: `SEQ HASH\n`.
pub(crate) fn parse_head(buf: &[u8]) -> Option<(u64, String)> {
    let text = std::str::from_utf8(buf).ok()?.trim_end();
    let (seq, hash) = text.split_once(' ')?;
    let ok = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| Some((seq.parse().ok()?, hash.to_string())))?
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

struct Line {
    text: String,
    hash: String,
}

/// The fields of the hashed part, in line order.
#[derive(Serialize)]
struct Body<'a> {
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

fn render(seq: u64, prev_hash: &str, d: &EventDraft) -> Line {
    let mut details = d.details.clone();
    crate::redact_value(&mut details);
    let body = Body {
        seq,
        prev_hash,
        timestamp: humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        event_id: random_id(),
        event_type: d.event_type,
        skill_name: &d.skill_name,
        skill_trust_level: &d.skill_trust_level,
        // SAFETY: getuid has no failure mode and no memory effects.
        user_context: UserContext { uid: unsafe { libc::getuid() }, pid: std::process::id() },
        risk_level: d.risk_level,
        action_taken: d.action_taken,
        execution_id: &d.execution_id,
        attempt: d.attempt,
        details,
    };
    // Serializing a struct of strings, numbers and a Value cannot fail.
    let body = serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"));
    let hash = sha256_hex(body.as_bytes());
    let mut text = String::with_capacity(body.len() + 80);
    text.push_str(&body[..body.len() - 1]);
    text.push_str(",\"hash\":\"");
    text.push_str(&hash);
    text.push_str("\"}\n");
    Line { text, hash }
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest.iter() {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    // SAFETY: getrandom writes at most `b.len()` bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        let t =
            SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        b = (t ^ u128::from(std::process::id()) << 64).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Control characters escaped, everything else as is: a stderr line stays one line and
/// cannot drive the terminal.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] })
        .collect()
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
