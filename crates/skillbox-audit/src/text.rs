//! Text from outside, made safe to show: the one function every layer uses before it prints
//! or records something a skill, a file name or a caller controls.
//!
//! A skill's output, a parameter, a file name or an MCP tool name can hold terminal escape
//! sequences (move the cursor, retitle the terminal, hide a line), newlines (forge a second
//! line of a message or a log), or Unicode controls that reorder what is shown (a right-to-
//! left override makes `exe.txt` read as `txt.exe`). Escaping is done in one place so that
//! every layer escapes the same characters.

/// Whether newlines and tabs are kept (a program's output, shown as it is laid out) or
/// escaped too (a name or a value that must stay on one line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// `\n` and `\t` are kept; every other control character is escaped.
    Keep,
    /// Every control character, `\n` and `\t` included, is escaped.
    Escape,
}

/// `s` with its control characters escaped (as Rust's `char::escape_default` writes them:
/// `\n`, `\r`, `\u{1b}`): C0 and C1 controls and DEL, and the Unicode characters that reorder
/// or hide text (bidirectional embeddings, overrides, isolates and marks, U+200B to U+200F,
/// U+202A to U+202E, U+2060 to U+2069, U+061C, U+FEFF). Newlines and tabs as `lines` says.
pub fn escape_controls(s: &str, lines: Lines) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' | '\t' if lines == Lines::Keep => out.push(c),
            c if hides_or_controls(c) => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// [`escape_controls`] on one line, cut to `max` characters (with `…` when cut).
pub fn one_line(s: &str, max: usize) -> String {
    let cut: String = s.chars().take(max).collect();
    let mut out = escape_controls(&cut, Lines::Escape);
    if s.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

fn hides_or_controls(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_newlines_and_reordering_are_escaped() {
        assert_eq!(escape_controls("a\x1b[2Jb", Lines::Keep), "a\\u{1b}[2Jb");
        assert_eq!(escape_controls("x\ny\tz\r", Lines::Keep), "x\ny\tz\\r");
        assert_eq!(escape_controls("x\ny", Lines::Escape), "x\\ny");
        assert_eq!(escape_controls("exe\u{202E}txt", Lines::Escape), "exe\\u{202e}txt");
        assert_eq!(escape_controls("\u{85}\u{7f}", Lines::Keep), "\\u{85}\\u{7f}");
        // Printable text of any script is left alone.
        assert_eq!(escape_controls("héllo 世界 ✓", Lines::Escape), "héllo 世界 ✓");
    }

    #[test]
    fn one_line_cuts_and_marks_the_cut() {
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("abc", 3), "abc");
        assert_eq!(one_line("a\nb", 10), "a\\nb");
    }
}
