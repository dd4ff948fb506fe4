//! The circuit breaker: after `failure_threshold` failed runs in a row, a skill is refused
//! without running until `recovery_timeout` seconds have passed; then one run is let through
//! (half-open), and its outcome closes or reopens the circuit.
//!
//! The state of each skill is kept where the runtime keeps its own state:
//!
//! * on disk, under skillbox's home (`$SKILLBOX_HOME/state/circuits/NAME.json`): a small
//!   file per skill, shared by every process that runs skills on this machine, and updated
//!   under an `flock`;
//! * in memory, for a runtime without a home directory (one built over a registry of the
//!   embedder's): shared by that runtime and the runtimes reloaded from it, gone with them.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::format::CircuitBreaker;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct State {
    consecutive_failures: u32,
    /// Unix seconds when the circuit opened; 0 when closed.
    opened_at: f64,
}

impl State {
    /// When the circuit is open under `cb`, the time it half-opens.
    fn open_until(&self, cb: &CircuitBreaker) -> Option<SystemTime> {
        if self.opened_at <= 0.0 || self.consecutive_failures < cb.failure_threshold {
            return None;
        }
        let until = self.opened_at + cb.recovery_timeout;
        (now() < until).then(|| UNIX_EPOCH + Duration::from_secs_f64(until))
    }

    /// The state after a run that was let through.
    fn after(mut self, cb: &CircuitBreaker, failed: bool) -> Self {
        if !failed {
            return Self::default();
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= cb.failure_threshold {
            // Opens, or reopens after a failed half-open run.
            self.opened_at = now();
        }
        self
    }
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The state of a skill's circuit could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the circuit-breaker state of `{skill}` ({path}) cannot be {doing}: {source}")]
pub struct CircuitError {
    /// The skill.
    pub skill: String,
    /// The state file.
    pub path: PathBuf,
    /// `read` or `written`.
    pub doing: &'static str,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Where a runtime keeps its circuits (see the module's documentation).
#[derive(Debug)]
pub struct Circuits {
    store: Store,
}

#[derive(Debug)]
enum Store {
    Disk(PathBuf),
    Memory(Mutex<HashMap<String, State>>),
}

impl Circuits {
    /// Circuits kept in files under `dir`, shared by every process using it.
    pub fn on_disk(dir: PathBuf) -> Self {
        Self { store: Store::Disk(dir) }
    }

    /// Circuits kept in this process's memory only.
    pub fn in_memory() -> Self {
        Self { store: Store::Memory(Mutex::new(HashMap::new())) }
    }

    /// The directory of the state files, for circuits kept on disk.
    pub fn dir(&self) -> Option<&Path> {
        match &self.store {
            Store::Disk(d) => Some(d),
            Store::Memory(_) => None,
        }
    }

    /// When the circuit of `skill` is open, the time it closes (half-opens).
    pub fn open_until(
        &self,
        skill: &str,
        cb: &CircuitBreaker,
    ) -> Result<Option<SystemTime>, CircuitError> {
        match &self.store {
            Store::Disk(dir) => {
                let mut f = locked(dir, skill).map_err(|e| error(dir, skill, "read", e))?;
                Ok(read(&mut f).open_until(cb))
            }
            Store::Memory(m) => Ok(lock(m).get(skill).and_then(|s| s.open_until(cb))),
        }
    }

    /// Records the outcome of a run of `skill` that was let through.
    pub fn record(
        &self,
        skill: &str,
        cb: &CircuitBreaker,
        failed: bool,
    ) -> Result<(), CircuitError> {
        match &self.store {
            Store::Disk(dir) => {
                let mut f = locked(dir, skill).map_err(|e| error(dir, skill, "written", e))?;
                let st = read(&mut f).after(cb, failed);
                write(&mut f, &st).map_err(|e| error(dir, skill, "written", e))
            }
            Store::Memory(m) => {
                let mut states = lock(m);
                let st = states.remove(skill).unwrap_or_default().after(cb, failed);
                states.insert(skill.to_string(), st);
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The state file of `skill` in `dir`. Skill names are `[A-Za-z0-9_-]`, so the name is a
/// safe file name.
fn file_of(dir: &Path, skill: &str) -> PathBuf {
    dir.join(format!("{skill}.json"))
}

fn error(dir: &Path, skill: &str, doing: &'static str, source: std::io::Error) -> CircuitError {
    CircuitError { skill: skill.to_string(), path: file_of(dir, skill), doing, source }
}

/// Opens the state file of `skill`, locked.
fn locked(dir: &Path, skill: &str) -> std::io::Result<std::fs::File> {
    std::fs::DirBuilder::new().recursive(true).create(dir)?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(file_of(dir, skill))?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// The state in `f`; a file that is empty or not a state (never written, or cut short)
/// reads as a closed circuit, and is rewritten by the next record.
fn read(f: &mut std::fs::File) -> State {
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    serde_json::from_str(&s).unwrap_or_default()
}

fn write(f: &mut std::fs::File, st: &State) -> std::io::Result<()> {
    let text = serde_json::to_string(st).map_err(std::io::Error::other)?;
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(text.as_bytes())
}
