//! The security audit log: one JSON object per line, each chained to the one before by a
//! SHA-256 hash, so that an edited, removed, inserted or reordered event is detected.
//!
//! This crate knows the record format, not what produces the records: callers hand it an
//! [`EventDraft`] and it adds the sequence number, time, ids and hashes. What it knows of
//! skills is the vocabulary of the log it continues (the plan's `SecurityLogger`): the event
//! types are named after what happens to a skill run (`SkillExecutionStarted`,
//! `PermissionDenied`, ...), and every event carries a `skill_name` and a
//! `skill_trust_level`, as text. It knows nothing of how a skill is found, decided or run,
//! and depends on no other skillbox crate.
//!
//! # Format
//!
//! Each line is `{"seq":N,"prev_hash":H,...,"hash":X}` where `X = sha256(L)` and `L` is the
//! line up to (without) `,"hash":...`, closed by `}`. `H` is the previous event's `X` (64
//! zeros for the first). Verifying a line needs only its own bytes and the previous hash.
//!
//! The chain's head (last sequence number and hash) is also kept in a small file beside the
//! log, so that removing the *last* events is detected too.
//!
//! # What this protects against
//!
//! Edits by anyone who does not rewrite the whole chain after the edit, and the head file
//! with it: accidental corruption, a crash, a careless edit, a partial cleanup. It is not a
//! signature: someone with write access to the log directory can recompute every hash. The
//! log directory is therefore never granted to skills (see the skills crate).

mod event;
mod log;
mod redact;
pub mod text;
mod verify;

pub use event::{ActionTaken, Event, EventDraft, EventType, RiskLevel};
pub use log::{AuditLog, Durability, LogConfig};
pub use redact::{redact_text, redact_value};
pub use verify::{read_events, verify, Problem, ReadLine, VerifyReport};

/// Errors writing or reading the log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation on the log failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The head file holds something that is not a head.
    #[error("audit log head {0}: unreadable contents")]
    Head(std::path::PathBuf),
}

/// Lowercase hex SHA-256 of `bytes`: the digest used for chain links, and by callers for
/// parameter digests.
pub fn digest_hex(bytes: &[u8]) -> String {
    log::sha256_hex(bytes)
}

/// Every file the log at `path` is kept in, as they are now: the current file, its rotated
/// files, the head and the lock. A program that confines others keeps these out of their
/// reach when the log has no directory of its own (its directory is otherwise the thing to
/// keep out of reach: it is where the next rotation goes).
pub fn files_of(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![path.to_path_buf(), log::sibling(path, "head"), log::sibling(path, "lock")];
    out.extend(log::rotated_files(path).into_iter().map(|(_, p)| p));
    out
}

/// Hash of the first event's predecessor.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
