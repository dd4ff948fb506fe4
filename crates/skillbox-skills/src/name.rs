//! Skill and parameter names.
//!
//! A name reaches us from a model's tool call, a command line or a file, and it is later used
//! to look things up and to label audit events. Checking it first, before any file is touched,
//! means a name like `../x` or one with a NUL byte can never become a path or forge a record.

use std::fmt;

/// Longest accepted skill name. The old format set no bound; 128 leaves room for every
/// realistic name while keeping error messages and log lines short.
pub const MAX_NAME_LEN: usize = 128;

/// Why a string is not a valid skill or parameter name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The empty string.
    #[error("the name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    #[error("the name is {0} bytes long; at most {MAX_NAME_LEN} are allowed")]
    TooLong(usize),
    /// A character outside `[A-Za-z0-9_-]`.
    #[error("the name contains {0}; only letters, digits, '_' and '-' are allowed")]
    BadChar(String),
}

/// Checks that `name` matches `[A-Za-z0-9_-]{1,128}`.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(NameError::BadChar(describe_char(c)));
    }
    Ok(())
}

/// A name that has passed [`check_name`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SkillName(String);

impl SkillName {
    /// Validates and wraps `name`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        check_name(name)?;
        Ok(Self(name.to_string()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SkillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Describes a character for an error message without echoing control characters raw.
pub(crate) fn describe_char(c: char) -> String {
    if c.is_control() || c == '\u{0}' {
        format!("the control character U+{:04X}", c as u32)
    } else {
        format!("'{c}'")
    }
}

/// Quotes a value for a one-line message: control characters escaped, long values cut.
/// Rust's debug escaping (not `skillbox_audit::text`), because inside quotes a `"` or a `\`
/// of the value must be escaped too, or the quoted value could seem to end early.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 60;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().count() > MAX {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// The candidate closest to `word`, if it is close enough to be a typo of it: a
/// Damerau-Levenshtein distance (a swap of neighbours counts one) of at most 2, and at most a
/// third of the word's length, so that `x` suggests nothing. Ties go to the first candidate.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 2);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = strsim::damerau_levenshtein(word, c);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_old_charset() {
        for ok in ["a", "git-status", "Lint_2", &"x".repeat(MAX_NAME_LEN)] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_paths_empty_nul_and_unicode() {
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert!(matches!(check_name("../x"), Err(NameError::BadChar(_))));
        assert!(matches!(check_name("a/b"), Err(NameError::BadChar(_))));
        assert!(matches!(check_name("a\0b"), Err(NameError::BadChar(c)) if c.contains("U+0000")));
        assert!(matches!(check_name("é"), Err(NameError::BadChar(_))));
        assert!(matches!(check_name("a b"), Err(NameError::BadChar(_))));
        assert_eq!(check_name(&"x".repeat(129)), Err(NameError::TooLong(129)));
    }

    #[test]
    fn quote_escapes_newlines_and_cuts() {
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert!(quote(&"y".repeat(100)).ends_with("…\""));
    }
}
