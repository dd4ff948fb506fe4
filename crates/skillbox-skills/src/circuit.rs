//! The circuit breaker: after `failure_threshold` failed runs in a row, a skill is refused
//! without running until `recovery_timeout` seconds have passed; then one run is let through
//! (half-open), and its outcome closes or reopens the circuit.
//!
//! The state is a small file per skill, shared by every process that runs skills on this
//! machine, and updated under an `flock`.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::format::CircuitBreaker;

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    consecutive_failures: u32,
    /// Unix seconds when the circuit opened; 0 when closed.
    opened_at: f64,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Opens the state file of `skill`, locked. Skill names are `[A-Za-z0-9_-]`, so the name is
/// a safe file name.
fn locked(dir: &Path, skill: &str) -> Option<std::fs::File> {
    std::fs::DirBuilder::new().recursive(true).create(dir).ok()?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(format!("{skill}.json")))
        .ok()?;
    // SAFETY: flock on a descriptor we own; released when the file is closed.
    (unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0).then_some(f)
}

fn read(f: &mut std::fs::File) -> State {
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    serde_json::from_str(&s).unwrap_or_default()
}

fn write(f: &mut std::fs::File, st: &State) {
    let _ = f.set_len(0);
    let _ = f.rewind();
    let _ = f.write_all(serde_json::to_string(st).unwrap_or_default().as_bytes());
}

/// When the circuit of `skill` is open, the time it closes (half-opens).
pub fn open_until(dir: &Path, skill: &str, cb: &CircuitBreaker) -> Option<SystemTime> {
    let mut f = locked(dir, skill)?;
    let st = read(&mut f);
    if st.opened_at <= 0.0 || st.consecutive_failures < cb.failure_threshold {
        return None;
    }
    let until = st.opened_at + cb.recovery_timeout;
    (now() < until).then(|| UNIX_EPOCH + Duration::from_secs_f64(until))
}

/// Records the outcome of a run that was let through.
pub fn record(dir: &Path, skill: &str, cb: &CircuitBreaker, failed: bool) {
    let Some(mut f) = locked(dir, skill) else { return };
    let mut st = read(&mut f);
    if failed {
        st.consecutive_failures = st.consecutive_failures.saturating_add(1);
        if st.consecutive_failures >= cb.failure_threshold {
            // Opens, or reopens after a failed half-open run.
            st.opened_at = now();
        }
    } else {
        st = State::default();
    }
    write(&mut f, &st);
}
