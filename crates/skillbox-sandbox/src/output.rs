use std::sync::Arc;

/// Which output stream of a child a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Sees each chunk of a child's output as it is read, before it is captured: so that a
/// person at a terminal sees a long run's output as it comes, not when it ends. It is
/// called on the task that reads the pipe, so it must not block for long (a terminal write
/// is fine); the capture, and so the result, is the same with or without one.
#[derive(Clone)]
pub struct OutputObserver(Arc<SeeChunk>);

/// What an [`OutputObserver`] calls with each chunk.
type SeeChunk = dyn Fn(Stream, &[u8]) + Send + Sync;

impl OutputObserver {
    /// An observer calling `f` with each chunk.
    pub fn new(f: impl Fn(Stream, &[u8]) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands `chunk` of `stream` to the observer.
    pub(crate) fn see(&self, stream: Stream, chunk: &[u8]) {
        (self.0)(stream, chunk)
    }
}

impl std::fmt::Debug for OutputObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputObserver")
    }
}

/// Two observers are the same when they are one closure (a context holding one compares
/// equal to its clone).
impl PartialEq for OutputObserver {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OutputObserver {}

/// Output of one stream, captured within a fixed memory bound.
///
/// A child that writes gigabytes must not grow the supervisor's memory, yet the start of the
/// output (usage lines, the first error) and its end (the final error) are what people need.
/// So the first half of the budget keeps the head, the second half keeps a rolling tail, and
/// everything between is only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedOutput {
    /// The bytes kept: the head, then (if truncated) the tail.
    pub head: Vec<u8>,
    /// The last bytes written, kept only once the head is full.
    pub tail: Vec<u8>,
    /// Total bytes the child wrote to the stream.
    pub total_bytes: u64,
}

impl CapturedOutput {
    /// True when bytes between head and tail were dropped.
    pub fn truncated(&self) -> bool {
        self.total_bytes > (self.head.len() + self.tail.len()) as u64
    }

    /// The kept output as text, with a marker where bytes were dropped.
    /// Invalid UTF-8 is replaced, never rejected: output is data, not a contract.
    pub fn to_text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.head).into_owned();
        if self.truncated() {
            let dropped = self.total_bytes - (self.head.len() + self.tail.len()) as u64;
            s.push_str(&format!("\n[... skillbox: {dropped} bytes of output omitted ...]\n"));
        }
        s.push_str(&String::from_utf8_lossy(&self.tail));
        s
    }
}

/// Accumulates a stream into a [`CapturedOutput`] without exceeding `limit` bytes.
pub(crate) struct Capture {
    out: CapturedOutput,
    head_limit: usize,
    tail_limit: usize,
}

impl Capture {
    /// A capture keeping at most `limit` bytes: half from the start, half from the end,
    /// because the start says what a program did and the end how it stopped.
    pub(crate) fn new(limit: usize) -> Self {
        let head_limit = limit / 2;
        Self { out: CapturedOutput::default(), head_limit, tail_limit: limit - head_limit }
    }

    /// Takes the next chunk read from the stream: the head fills first, then the tail rolls,
    /// and every byte is counted, so a truncated capture still says how much there was.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) {
        self.out.total_bytes += chunk.len() as u64;
        let room = self.head_limit.saturating_sub(self.out.head.len());
        if room > 0 {
            let n = room.min(chunk.len());
            self.out.head.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
        }
        if chunk.is_empty() || self.tail_limit == 0 {
            return;
        }
        if chunk.len() >= self.tail_limit {
            self.out.tail.clear();
            self.out.tail.extend_from_slice(&chunk[chunk.len() - self.tail_limit..]);
        } else {
            let overflow = (self.out.tail.len() + chunk.len()).saturating_sub(self.tail_limit);
            self.out.tail.drain(..overflow);
            self.out.tail.extend_from_slice(chunk);
        }
    }

    /// What was kept, once the stream has ended.
    pub(crate) fn finish(self) -> CapturedOutput {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut c = Capture::new(16);
        c.push(b"hello");
        let out = c.finish();
        assert_eq!(out.to_text(), "hello");
        assert!(!out.truncated());
    }

    #[test]
    fn large_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut c = Capture::new(8);
        for chunk in [&b"abcdef"[..], b"ghijkl", b"mnopqrstuvwxyz"] {
            c.push(chunk);
        }
        let out = c.finish();
        assert_eq!(out.head, b"abcd");
        assert_eq!(out.tail, b"wxyz");
        assert_eq!(out.total_bytes, 26);
        assert!(out.truncated());
        assert!(out.to_text().contains("18 bytes of output omitted"));
    }

    #[test]
    fn tail_rolls_across_small_chunks() {
        let mut c = Capture::new(4);
        for b in b"0123456789" {
            c.push(std::slice::from_ref(b));
        }
        let out = c.finish();
        assert_eq!(out.head, b"01");
        assert_eq!(out.tail, b"89");
    }
}
