//! One record per connection the proxy accepted: what the audit log and `run --json` show.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What happened to one connection attempt through the proxy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Connection {
    /// The host asked for: normalised when it is a valid host, else as written with control
    /// characters and non-UTF-8 escaped; empty when the request could not be read at all.
    pub host: String,
    /// The port asked for; 0 when none could be read.
    pub port: u16,
    /// The address dialed, when one was (the one checked: never looked up twice).
    pub address: Option<SocketAddr>,
    /// Whether bytes could flow to the origin (allowed by name and address, and connected).
    pub allowed: bool,
    /// Why it was refused or failed, one line; `None` for a connection that was made and
    /// ended normally.
    pub reason: Option<String>,
    /// `CONNECT` or the HTTP method of a plain HTTP request (empty if none was read).
    pub method: String,
    /// Bytes sent to the origin (for plain HTTP, the rewritten head included).
    pub bytes_up: u64,
    /// Bytes received from the origin and passed to the client.
    pub bytes_down: u64,
    /// From accepting the connection to closing it, in milliseconds.
    pub duration_ms: f64,
}

/// A connection being served: its record so far, and live byte counters.
struct Slot {
    rec: Connection,
    start: Instant,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
    done: bool,
}

/// The records of one run's proxy, in order of arrival.
#[derive(Default)]
pub(crate) struct Log {
    slots: Mutex<Vec<Slot>>,
}

/// A connection's handle on its record.
pub(crate) struct Entry {
    log: Arc<Log>,
    index: usize,
    pub(crate) up: Arc<AtomicU64>,
    pub(crate) down: Arc<AtomicU64>,
}

impl Log {
    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new record, for a connection just accepted.
    pub(crate) fn open(self: &Arc<Self>) -> Entry {
        let up = Arc::new(AtomicU64::new(0));
        let down = Arc::new(AtomicU64::new(0));
        let mut slots = self.slots();
        slots.push(Slot {
            rec: Connection {
                host: String::new(),
                port: 0,
                address: None,
                allowed: false,
                reason: None,
                method: String::new(),
                bytes_up: 0,
                bytes_down: 0,
                duration_ms: 0.0,
            },
            start: Instant::now(),
            up: up.clone(),
            down: down.clone(),
            done: false,
        });
        Entry { log: self.clone(), index: slots.len() - 1, up, down }
    }

    /// The records so far; a connection still open is shown as it is now, and, when
    /// `ending`, marked as cut short.
    pub(crate) fn snapshot(&self, ending: bool) -> Vec<Connection> {
        let now = Instant::now();
        self.slots()
            .iter()
            .map(|s| {
                let mut c = s.rec.clone();
                c.bytes_up = s.up.load(Ordering::Relaxed);
                c.bytes_down = s.down.load(Ordering::Relaxed);
                if !s.done {
                    c.duration_ms = ms(now - s.start);
                    if ending && c.reason.is_none() {
                        c.reason =
                            Some("still open when the run ended; closed by the proxy".into());
                    }
                }
                c
            })
            .collect()
    }
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Entry {
    /// Changes the record.
    pub(crate) fn update(&self, f: impl FnOnce(&mut Connection)) {
        if let Some(s) = self.log.slots().get_mut(self.index) {
            f(&mut s.rec);
        }
    }

    /// The connection is closed: its duration is final.
    pub(crate) fn close(&self) {
        if let Some(s) = self.log.slots().get_mut(self.index) {
            s.rec.duration_ms = ms(s.start.elapsed());
            s.done = true;
        }
    }
}

/// A stream to the origin that counts the bytes written to it (up) and read from it (down)
/// as they pass, so that a record is right even for a tunnel cut short.
pub(crate) struct Counted<S> {
    pub(crate) inner: S,
    pub(crate) up: Arc<AtomicU64>,
    pub(crate) down: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        self.down.fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.up.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
