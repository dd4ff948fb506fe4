//! What the skills crate's test files share: directories the runs (and `nobody`, in CI) can
//! use, files written with their parents, a tree copied, a key read from a skill's output,
//! the events of an audit log, and a `tracing` subscriber that keeps what it is sent.
//!
//! Each test file uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A temporary directory anyone may enter and write: the tests also run as `nobody`, and
/// skills run as the user running the test.
pub(crate) fn scratch() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    d
}

/// Writes `text` to `path`, creating its parent directories.
pub(crate) fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    fs::write(path, text).expect("write");
}

/// Copies the tree `from` into `to` (which exists), directories made world-writable.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).expect("read_dir").flatten() {
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            fs::create_dir_all(&target).expect("mkdir");
            fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).expect("chmod");
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// The value of the first `KEY=value` line of a skill's output.
pub(crate) fn field(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

/// The events of the audit log at `log` for the run `execution_id`: type and details.
pub(crate) fn events(log: &Path, execution_id: &str) -> Vec<(String, Value)> {
    skillbox_skills::audit_log::read_events(log)
        .expect("read the audit log")
        .into_iter()
        .filter_map(|(_, _, e)| e.ok())
        .filter(|e| e.execution_id.as_deref() == Some(execution_id))
        .map(|e| (e.event_type, e.details))
        .collect()
}

/// One span a [`Capture`] was told about: its name and fields.
#[derive(Debug, Clone)]
pub(crate) struct SpanSeen {
    pub name: &'static str,
    pub fields: BTreeMap<String, String>,
}

/// One event a [`Capture`] was sent: its level, message, fields, and the span it was in.
#[derive(Debug, Clone)]
pub(crate) struct EventSeen {
    pub level: tracing::Level,
    pub message: String,
    pub fields: BTreeMap<String, String>,
    /// Index in [`Captured::spans`] of the innermost span entered, if any.
    pub span: Option<usize>,
}

/// What a [`Capture`] kept.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub spans: Vec<SpanSeen>,
    pub events: Vec<EventSeen>,
    entered: Vec<usize>,
}

impl Captured {
    /// The events at `level` whose message contains `text`.
    pub(crate) fn find(&self, level: tracing::Level, text: &str) -> Vec<&EventSeen> {
        self.events.iter().filter(|e| e.level == level && e.message.contains(text)).collect()
    }
}

/// A `tracing` subscriber that keeps every span and event, at every level, for the thread
/// it is the default of (see [`Capture::during`]).
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Captured>>);

impl Capture {
    /// Runs `f` with this subscriber as the thread's default, and returns what it kept.
    pub(crate) fn during<T>(f: impl FnOnce() -> T) -> (T, Captured) {
        let capture = Capture::default();
        let out = tracing::subscriber::with_default(capture.clone(), f);
        let kept = std::mem::take(&mut *capture.0.lock().expect("lock"));
        (out, kept)
    }
}

/// Collects the fields of a span or event as text; the message as `message`.
struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        let mut c = self.0.lock().expect("lock");
        c.spans.push(SpanSeen { name: span.metadata().name(), fields });
        tracing::span::Id::from_u64(c.spans.len() as u64)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut c = self.0.lock().expect("lock");
        let i = span.into_u64() as usize - 1;
        values.record(&mut Fields(&mut c.spans[i].fields));
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let mut c = self.0.lock().expect("lock");
        let span = c.entered.last().copied();
        c.events.push(EventSeen { level: *event.metadata().level(), message, fields, span });
    }

    fn enter(&self, span: &tracing::span::Id) {
        self.0.lock().expect("lock").entered.push(span.into_u64() as usize - 1);
    }

    fn exit(&self, _: &tracing::span::Id) {
        self.0.lock().expect("lock").entered.pop();
    }
}
