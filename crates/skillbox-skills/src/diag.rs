//! Problems found while loading skill files.

use std::fmt;

use skillbox_audit::text;
use std::path::{Path, PathBuf};

/// One problem with one skill file: which file, which field, and why.
///
/// Rendered as a single line, `FILE: field `F`: REASON`, so that a person can fix it without
/// reading the source, and a script can grep for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file that holds the problem (`builtin:NAME` for built-in skills).
    pub path: PathBuf,
    /// The field, as a dotted path such as `parameters[1].pattern`; `None` for the whole file.
    pub field: Option<String>,
    /// Why the value is refused, as a sentence fragment without a trailing period.
    pub reason: String,
}

impl Diagnostic {
    /// A problem with the file as a whole (unreadable, too large, not JSON).
    pub fn file(path: &Path, reason: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), field: None, reason: reason.into() }
    }

    /// A problem with one field.
    pub fn field(path: &Path, field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { path: path.to_path_buf(), field: Some(field.into()), reason: reason.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Reasons may quote file content, and file names may hold newlines (legal on
        // Linux) or terminal escapes; keep the line a line, escaped as everywhere else.
        let escape = |s: &str| text::escape_controls(s, text::Lines::Escape);
        let reason = escape(&self.reason);
        let path = escape(skillbox_audit::text::path(&self.path).as_ref());
        match &self.field {
            Some(field) => write!(f, "{path}: field `{field}`: {reason}"),
            None => write!(f, "{path}: {reason}"),
        }
    }
}
