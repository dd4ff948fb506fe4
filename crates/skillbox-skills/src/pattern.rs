//! Regexes from skill files: checked when the file loads, compiled when first used.
//!
//! Compiling a regex with the full engine costs tens of microseconds, and a process that
//! loads every skill file (a cold `skillbox run`, `skillbox list`) uses one skill's patterns
//! at most. So loading only *parses* a pattern (with `regex-syntax`, the parser the regex
//! crate itself uses, with the same settings), which finds every syntax error with the same
//! message, and bounds the compiled size from the parse. A pattern whose bound could exceed
//! [`REGEX_SIZE_LIMIT`] is compiled at load as before, so a pattern that is too big is
//! still reported at load, naming the file and the field. Every other pattern is compiled on
//! first use and kept.
//!
//! The bound is deliberately loose (several times the largest size measured per unit, see
//! the tests), so a deferred pattern cannot fail to compile in practice; should it ever, the
//! run that needed it is refused with the reason, and nothing runs unchecked.

use std::sync::OnceLock;

use regex::Regex;
use regex_syntax::hir::{Class, Hir, HirKind};

/// Compiled-size bound for parameter and classification regexes, in bytes.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Bytes of compiled regex counted per unit of [`cost`]. The largest ratio measured over
/// Unicode classes, `.`, repetitions and literals is about 107 bytes per unit (tests below).
const BYTES_PER_UNIT: u64 = 256;

/// Fixed bytes counted for every pattern: an empty or one-literal pattern measures about
/// 300 to 1,200 bytes (the unanchored prefix, the reverse program, the capture states).
const FIXED_BYTES: u64 = 16 * 1024;

/// A regex from a skill file, checked at load and compiled on first use.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// What is compiled: for a parameter, `^(?:pattern)$`.
    source: String,
    /// The compiled regex, once needed (or at load, for a pattern that might be too big).
    regex: OnceLock<Regex>,
}

/// A pattern that passed the load-time checks but could not be compiled when first used
/// (only possible if the size bound of this module were wrong).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot be checked: the skill's `pattern` is unusable: {0}")]
pub struct PatternError(String);

impl Pattern {
    /// Checks `pattern` as skill files give it; `anchor` makes it match whole values only.
    /// The error is the one-line reason used in diagnostics (`invalid regex: ...`), the same
    /// text as compiling it would give.
    pub(crate) fn check(pattern: &str, anchor: bool) -> Result<Self, String> {
        let source = if anchor { format!("^(?:{pattern})$") } else { pattern.to_string() };
        let p = Self { source, regex: OnceLock::new() };
        // Most patterns are plain (literals, ASCII classes, groups, counted repetitions):
        // those are recognised in one pass, an order of magnitude faster than a full parse.
        if plain_cost(pattern).is_some_and(|c| fits_cost(c.saturating_add(WRAP_COST))) {
            return Ok(p);
        }
        // The regex crate parses with regex-syntax's default settings (Unicode, UTF-8, a
        // nesting limit of 250), so this finds exactly its syntax errors, worded the same.
        let hir =
            regex_syntax::Parser::new().parse(&p.source).map_err(|e| reason(&e.to_string()))?;
        if !fits(&hir) {
            // Possibly too big: compile now, so that the exact answer is given at load.
            let re = p.build()?;
            let _ = p.regex.set(re);
        }
        Ok(p)
    }

    /// The regex source compiled (anchored for a parameter).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The compiled regex, compiled now if this is its first use.
    pub fn regex(&self) -> Result<&Regex, PatternError> {
        if let Some(re) = self.regex.get() {
            return Ok(re);
        }
        let re = self.build().map_err(PatternError)?;
        // Another thread may have compiled it meanwhile; either copy is the same regex.
        Ok(self.regex.get_or_init(|| re))
    }

    /// Whether `text` matches, compiling the regex on first use.
    pub fn is_match(&self, text: &str) -> Result<bool, PatternError> {
        Ok(self.regex()?.is_match(text))
    }

    /// True once the regex has been compiled (for tests and measurements).
    pub fn is_compiled(&self) -> bool {
        self.regex.get().is_some()
    }

    fn build(&self) -> Result<Regex, String> {
        regex::RegexBuilder::new(&self.source)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| reason(&e.to_string()))
    }
}

/// The one-line reason of a regex error: its last line (the multi-line form quotes the
/// pattern and points at the column).
fn reason(message: &str) -> String {
    format!("invalid regex: {}", message.lines().last().unwrap_or(""))
}

/// Whether the compiled regex is certain to stay within [`REGEX_SIZE_LIMIT`].
fn fits(hir: &Hir) -> bool {
    fits_cost(cost(hir))
}

fn fits_cost(units: u64) -> bool {
    units.saturating_mul(BYTES_PER_UNIT).saturating_add(FIXED_BYTES) <= REGEX_SIZE_LIMIT as u64
}

/// Units counted for the anchors and group around a parameter's pattern.
const WRAP_COST: u64 = 8;

/// Units counted for `.` (any character but `\n`: 15 UTF-8 sequences), rounded up.
const DOT_COST: u64 = 16;

/// Deepest group nesting the quick check accepts (regex-syntax allows 250).
const PLAIN_MAX_DEPTH: usize = 32;

/// Largest repetition count the quick check accepts.
const PLAIN_MAX_COUNT: u32 = 1000;

/// If `pattern` is *plain*, an upper bound of its [`cost`] (every atom and quantifier is
/// counted with a margin); `None` if it is not, which
/// says nothing about its validity: the full parser then decides.
///
/// Plain: ASCII only; literals; `\` before a metacharacter; `.`, `^`, `$`; classes `[...]`
/// of ASCII characters and ascending ranges, not negated, without escapes, nested classes
/// or set operators (a `-` only first or last); groups `(...)` and `(?:...)`, none empty;
/// alternatives, none empty; one quantifier (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}` with
/// n <= m <= 1000, optionally followed by `?`) after a literal, class, `.` or group. Every
/// such pattern is valid (the tests check this against regex-syntax on random patterns).
fn plain_cost(pattern: &str) -> Option<u64> {
    /// One level of group nesting: the cost of the finished alternatives, of the current
    /// alternative, and of its last atom (which a quantifier multiplies).
    struct Level {
        done: u64,
        current: u64,
        last: Option<u64>,
        empty: bool,
    }
    let b = pattern.as_bytes();
    if b.is_empty() || !pattern.is_ascii() {
        return None;
    }
    let meta = |c: u8| b"\\.+*?()|[]{}^$".contains(&c);
    let mut stack = vec![Level { done: 0, current: 0, last: None, empty: true }];
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let top = stack.last_mut()?;
        match c {
            b'*' | b'+' | b'?' | b'{' => {
                let atom = top.last.take()?;
                let copies: u64 = if c == b'{' {
                    let end = i + b[i..].iter().position(|&x| x == b'}')?;
                    let inner = std::str::from_utf8(&b[i + 1..end]).ok()?;
                    let (lo, hi) = match inner.split_once(',') {
                        None => (inner, Some(inner)),
                        Some((lo, "")) => (lo, None),
                        Some((lo, hi)) => (lo, Some(hi)),
                    };
                    let num = |s: &str| -> Option<u32> {
                        if s.is_empty() || !s.bytes().all(|d| d.is_ascii_digit()) {
                            return None;
                        }
                        s.parse().ok().filter(|n| *n <= PLAIN_MAX_COUNT)
                    };
                    let lo = num(lo)?;
                    let hi = match hi {
                        Some(h) => Some(num(h)?),
                        None => None,
                    };
                    if hi.is_some_and(|h| h < lo) {
                        return None;
                    }
                    i = end;
                    u64::from(hi.unwrap_or(lo).max(1))
                } else {
                    1
                };
                if b.get(i + 1) == Some(&b'?') {
                    i += 1;
                }
                // A second quantifier (`a**`, `a{2}{3}`) is left to the full parser.
                if b.get(i + 1).is_some_and(|&n| matches!(n, b'*' | b'+' | b'?' | b'{')) {
                    return None;
                }
                top.current = top.current.saturating_add(atom.saturating_mul(copies) + 2);
                i += 1;
                continue;
            }
            b'|' => {
                if top.empty {
                    return None;
                }
                top.done = top.done.saturating_add(top.current).saturating_add(1);
                top.current = 0;
                top.last = None;
                top.empty = true;
            }
            b'(' => {
                if b.get(i + 1) == Some(&b'?') {
                    if b.get(i + 2) != Some(&b':') {
                        return None;
                    }
                    i += 2;
                }
                if stack.len() > PLAIN_MAX_DEPTH {
                    return None;
                }
                stack.push(Level { done: 0, current: 0, last: None, empty: true });
            }
            b')' => {
                let inner = stack.pop()?;
                if inner.empty {
                    return None;
                }
                let group = inner.done.saturating_add(inner.current).saturating_add(4);
                let top = stack.last_mut()?;
                top.current = top.current.saturating_add(group);
                top.last = Some(group);
                top.empty = false;
            }
            b'[' => {
                let start = i + 1;
                let end = start + b[start..].iter().position(|&x| x == b']')?;
                let items = &b[start..end];
                if items.is_empty() || items[0] == b'^' {
                    return None;
                }
                let mut k = 0;
                let mut ranges = 0u64;
                while k < items.len() {
                    let x = items[k];
                    if matches!(x, b'[' | b'\\' | b'&' | b'~' | b'^') || !x.is_ascii_graphic() {
                        return None;
                    }
                    if x == b'-'
                        && (k != 0 && k != items.len() - 1 || items.get(k + 1) == Some(&b'-'))
                    {
                        return None;
                    }
                    if items.get(k + 1) == Some(&b'-') && k + 2 < items.len() {
                        let y = items[k + 2];
                        if y < x || matches!(y, b'[' | b'\\' | b'&' | b'~' | b'^' | b'-') {
                            return None;
                        }
                        k += 3;
                    } else {
                        k += 1;
                    }
                    ranges += 1;
                }
                top.current = top.current.saturating_add(ranges + 2);
                top.last = Some(ranges + 2);
                top.empty = false;
                i = end;
            }
            b'\\' => {
                let n = *b.get(i + 1)?;
                if !meta(n) {
                    return None;
                }
                top.current = top.current.saturating_add(2);
                top.last = Some(2);
                top.empty = false;
                i += 1;
            }
            b'^' | b'$' => {
                top.current = top.current.saturating_add(2);
                top.last = None;
                top.empty = false;
            }
            b'.' => {
                top.current = top.current.saturating_add(DOT_COST + 1);
                top.last = Some(DOT_COST + 1);
                top.empty = false;
            }
            b']' | b'}' => return None,
            _ if c.is_ascii_graphic() || c == b' ' => {
                top.current = top.current.saturating_add(2);
                top.last = Some(2);
                top.empty = false;
            }
            _ => return None,
        }
        i += 1;
    }
    if stack.len() != 1 {
        return None;
    }
    let top = stack.pop()?;
    if top.empty {
        return None;
    }
    Some(top.done.saturating_add(top.current))
}

/// An upper bound of the states of the compiled program, in units: one per literal byte,
/// one per UTF-8 byte-range sequence of a class, repetitions counted as their copies.
fn cost(hir: &Hir) -> u64 {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => 1,
        HirKind::Literal(l) => (l.0.len() as u64).max(1),
        HirKind::Class(Class::Unicode(c)) => c
            .ranges()
            .iter()
            .map(|r| regex_syntax::utf8::Utf8Sequences::new(r.start(), r.end()).count() as u64)
            .fold(1, u64::saturating_add),
        HirKind::Class(Class::Bytes(c)) => (c.ranges().len() as u64).max(1),
        HirKind::Repetition(r) => {
            let copies = u64::from(r.max.unwrap_or(r.min).max(1));
            cost(&r.sub).saturating_mul(copies).saturating_add(1)
        }
        HirKind::Capture(c) => cost(&c.sub).saturating_add(2),
        HirKind::Concat(v) | HirKind::Alternation(v) => {
            v.iter().map(cost).fold(v.len() as u64, u64::saturating_add)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The behaviour before patterns were deferred: compile at load.
    fn compile_now(pattern: &str, anchor: bool) -> Result<Regex, String> {
        let source = if anchor { format!("^(?:{pattern})$") } else { pattern.to_string() };
        regex::RegexBuilder::new(&source)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("invalid regex: {}", e.to_string().lines().last().unwrap_or("")))
    }

    /// Patterns of every shape the bound treats differently, from tiny to far too big.
    fn corpus() -> Vec<String> {
        let mut v: Vec<String> = [
            "(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*",
            "[a-z]+",
            r"\w+",
            r"\w",
            r"\W",
            r"\S+",
            r"\b\w+\b",
            r"[0-9]{1,5}",
            r"(?i)hello|world",
            r"[^a]",
            r".",
            r"(?s).",
            r"[\p{Greek}\p{Han}]+",
            r"(a|b|c|d){3,9}",
            r"((a{10}){10}){10}",
            r"\d{4}-\d{2}-\d{2}",
            r"[\u{80}-\u{10FFFF}]",
            r"(?-u:\w){100}",
            r"(?-u)[\x00-\xFF]{50}",
            r"(?u:[^\n])*",
            r"[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}",
            r"(?:foo|bar|baz|qux){2,40}",
            r"(?i)[a-z]{100}",
            r"(?i)\w{2}\pL{2}",
            r"^$",
            "",
            r"\b",
            r"(?m)^a$",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [1, 2, 3, 4, 5, 8, 12, 16, 20, 21, 22, 23, 24, 30, 64] {
            v.push(format!(r"\w{{{n}}}"));
            v.push(format!(r"\w{{1,{n}}}"));
            v.push(format!(r"(?i)\pL{{{n}}}"));
            v.push(format!(r"\p{{Any}}{{{}}}", n * 50));
            v.push(format!(r".{{{}}}", n * 100));
            v.push(format!(r"(?s).{{{}}}", n * 100));
            v.push(format!(r"[^a]{{{}}}", n * 100));
            v.push(format!(r"a{{{}}}", n * 1000));
            v.push(format!(r"(?:ab|cd){{{}}}", n * 500));
        }
        v
    }

    #[test]
    fn a_deferred_pattern_always_compiles_within_the_limit() {
        let mut deferred = 0;
        for p in corpus() {
            let checked = Pattern::check(&p, true);
            let now = compile_now(&p, true);
            match (&checked, &now) {
                (Ok(c), Ok(_)) => {
                    if !c.is_compiled() {
                        deferred += 1;
                    }
                    assert!(c.regex().is_ok(), "{p}");
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{p}"),
                _ => panic!("{p}: checked {:?}, compiled {:?}", checked.err(), now.err()),
            }
        }
        assert!(deferred > 20, "most patterns are deferred ({deferred})");
    }

    #[test]
    fn the_bound_is_above_every_measured_size() {
        // The smallest size limit each pattern compiles under, against its bound.
        for p in corpus() {
            let src = format!("^(?:{p})$");
            let Ok(hir) = regex_syntax::Parser::new().parse(&src) else { continue };
            let bound = cost(&hir).saturating_mul(BYTES_PER_UNIT).saturating_add(FIXED_BYTES);
            if bound > 8 * REGEX_SIZE_LIMIT as u64 {
                continue;
            }
            let limit = usize::try_from(bound).unwrap_or(usize::MAX);
            assert!(
                regex::RegexBuilder::new(&src).size_limit(limit).build().is_ok(),
                "{p}: compiled size above its bound of {bound} bytes"
            );
        }
    }

    #[test]
    fn syntax_errors_read_as_before() {
        for p in [
            "(unclosed",
            "a)",
            "[z-a]",
            r"\p{NotAClass}",
            "a{5,2}",
            "*",
            r"(?-u)\xFF",
            r"\1",
            "(?P<n>a)(?P<n>b)",
            &"(".repeat(300),
            &format!("{}a{}", "(".repeat(260), ")".repeat(260)),
        ] {
            let a = Pattern::check(p, true).err();
            let b = compile_now(p, true).err();
            assert!(a.is_some(), "{p} is refused");
            assert_eq!(a, b, "{p}");
            assert_eq!(Pattern::check(p, false).err(), compile_now(p, false).err(), "{p}");
        }
    }

    #[test]
    fn a_pattern_too_big_is_refused_at_load_with_the_same_reason() {
        for p in [r"\w{1,64}", r"\w{30}", "a{1000}{1000}", r"(?s).{20000}"] {
            let a = Pattern::check(p, true).err();
            assert!(a.as_deref().is_some_and(|r| r.contains("exceeds size limit")), "{p}: {a:?}");
            assert_eq!(a, compile_now(p, true).err(), "{p}");
        }
    }

    /// A small deterministic generator (no dependency for one test).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn a_plain_pattern_is_valid_and_within_its_bound() {
        let alphabet: &[&str] = &[
            "a",
            "b",
            "Z",
            "0",
            "_",
            "-",
            "/",
            ".",
            " ",
            ",",
            ":",
            "(",
            "(?:",
            "(?i)",
            ")",
            "[",
            "]",
            "[a-z]",
            "[A-Za-z0-9_.-]",
            "[-a]",
            "[a-]",
            "[z-a]",
            "[^a]",
            "{",
            "}",
            "{2}",
            "{1,3}",
            "{2,}",
            "{3,1}",
            "{1000}",
            "*",
            "+",
            "?",
            "|",
            "^",
            "$",
            "\\",
            "\\.",
            "\\d",
            "\\(",
            "\\w",
            "é",
            "#",
            "&",
            "~",
        ];
        let mut rng = Lcg(7);
        let (mut plain, mut total) = (0, 0);
        for _ in 0..200_000 {
            let len = 1 + rng.next() % 12;
            let p: String =
                (0..len).map(|_| alphabet[(rng.next() as usize) % alphabet.len()]).collect();
            total += 1;
            let Some(c) = plain_cost(&p) else { continue };
            plain += 1;
            let src = format!("^(?:{p})$");
            let hir = regex_syntax::Parser::new().parse(&src);
            let hir = hir.unwrap_or_else(|e| panic!("{p:?} is plain but invalid: {e}"));
            let parsed = cost(&hir);
            assert!(parsed <= c + WRAP_COST, "{p:?}: bound {c} below the parsed cost {parsed}");
        }
        assert!(plain > 1000, "{plain} of {total} random patterns are plain");
        for p in ["(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*", "[a-z]+", "a|b"] {
            assert!(plain_cost(p).is_some(), "{p}");
        }
        for p in [r"\w+", "[^/]+", "(?i)a", "a**", "", "a|", "()", "(?P<n>a)", "[[:alpha:]]"] {
            assert!(plain_cost(p).is_none(), "{p} is left to the full parser");
        }
    }

    #[test]
    fn compiled_on_first_use_and_anchored() {
        let p = Pattern::check("[a-z]+", true).unwrap();
        assert!(!p.is_compiled());
        assert_eq!(p.as_str(), "^(?:[a-z]+)$");
        assert_eq!(p.is_match("abc"), Ok(true));
        assert!(p.is_compiled());
        assert_eq!(p.is_match("abc;rm"), Ok(false));
        let q = Pattern::check("a|b", true).unwrap();
        assert_eq!(q.is_match("ab"), Ok(false), "the anchor covers the alternation");
        assert!(p.clone().is_match("xyz").unwrap(), "a clone keeps working");
    }
}
