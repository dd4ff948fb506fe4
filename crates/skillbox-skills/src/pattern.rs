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
//! The parse is regex-syntax's own, in its two steps: the syntax tree (`ast`), then its
//! translation (`hir`). Most patterns are *plain* (literals, classes of literals and ranges,
//! groups, alternatives, repetitions, `^` and `$`, no flags): their syntax tree bounds the
//! size (see `plain_cost`) and they cannot fail to translate, so the translation, which
//! builds every class of the pattern, is skipped for them. The sources this process found
//! valid and deferrable are remembered, and are not parsed again.
//!
//! The bound is deliberately loose (several times the largest size measured per unit, see
//! the tests), so a deferred pattern cannot fail to compile in practice; should it ever, the
//! run that needed it is refused with the reason, and nothing runs unchecked.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, OnceLock};

use regex::Regex;
use regex_syntax::ast::{self, Ast};
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
        if lock(&DEFERRED).contains(&p.source) {
            return Ok(p);
        }
        // The regex crate parses with regex-syntax's default settings (Unicode, UTF-8, a
        // nesting limit of 250): first the syntax tree, then its translation. Both steps are
        // taken here with those settings, so this finds exactly its syntax errors, worded
        // the same.
        let ast = ast::parse::Parser::new().parse(&p.source).map_err(|e| reason(&e.to_string()))?;
        // A plain pattern is bounded from its syntax tree and cannot fail to translate.
        if plain_cost(&ast, 0).is_some_and(fits_cost) {
            remember(&p.source);
            return Ok(p);
        }
        let hir = regex_syntax::hir::translate::Translator::new()
            .translate(&p.source, &ast)
            .map_err(|e| reason(&e.to_string()))?;
        if fits(&hir) {
            remember(&p.source);
        } else {
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

/// Sources (as compiled) of the patterns this process found valid and certain to fit, so
/// compiled on first use: the decision depends on the source alone, and a skill directory
/// repeats its patterns (a path pattern copied from skill to skill, every file read again
/// when a long-lived host reloads), while parsing one costs a few microseconds.
static DEFERRED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// Most sources kept in [`DEFERRED`]; when it is full it starts again, empty.
const DEFERRED_MAX: usize = 4096;

fn remember(source: &str) {
    let mut seen = lock(&DEFERRED);
    if seen.len() >= DEFERRED_MAX {
        seen.clear();
    }
    seen.insert(source.to_string());
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
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

/// Units counted for `.` (any character but `\n`: 15 UTF-8 sequences), rounded up.
const DOT_COST: u64 = 16;

/// Deepest nesting [`plain_cost`] looks into; deeper patterns are translated (regex-syntax
/// allows 250, and its translation is not recursive).
const PLAIN_MAX_DEPTH: u32 = 64;

/// If the pattern whose syntax tree is `ast` is *plain*, an upper bound of its [`cost`]
/// (every node counted with a margin: what its translation can become is never more);
/// `None` if it is not, which says nothing about its validity: the translation then decides.
///
/// Plain: literals (escaped or not); `.`; `^` and `$`; classes `[...]` of literals and ASCII
/// ranges, not negated, without nested classes, named or Perl classes or set operators;
/// groups without flags (capturing, named or `(?:...)`); alternatives; repetitions. None of
/// these can fail to translate without flags (Unicode on, case-sensitive, `.` not matching
/// `\n`), and a pattern that sets a flag is not plain. The tests check the bound and the
/// translation against regex-syntax on random patterns.
fn plain_cost(ast: &Ast, depth: u32) -> Option<u64> {
    if depth > PLAIN_MAX_DEPTH {
        return None;
    }
    let sum = |items: &[Ast]| {
        items
            .iter()
            .try_fold(items.len() as u64, |n, a| Some(n.saturating_add(plain_cost(a, depth + 1)?)))
    };
    match ast {
        Ast::Empty(_) => Some(2),
        Ast::Literal(l) => Some(l.c.len_utf8() as u64 + 1),
        Ast::Dot(_) => Some(DOT_COST + 1),
        Ast::Assertion(a) => match a.kind {
            ast::AssertionKind::StartLine | ast::AssertionKind::EndLine => Some(2),
            _ => None,
        },
        Ast::ClassBracketed(c) if !c.negated => match &c.kind {
            ast::ClassSet::Item(item) => class_items(item).map(|n| n + 2),
            ast::ClassSet::BinaryOp(_) => None,
        },
        Ast::Repetition(r) => {
            let copies = match &r.op.kind {
                ast::RepetitionKind::ZeroOrOne
                | ast::RepetitionKind::ZeroOrMore
                | ast::RepetitionKind::OneOrMore => 1,
                ast::RepetitionKind::Range(
                    ast::RepetitionRange::Exactly(n) | ast::RepetitionRange::AtLeast(n),
                ) => u64::from(*n).max(1),
                ast::RepetitionKind::Range(ast::RepetitionRange::Bounded(_, n)) => {
                    u64::from(*n).max(1)
                }
            };
            Some(plain_cost(&r.ast, depth + 1)?.saturating_mul(copies).saturating_add(2))
        }
        Ast::Group(g) => {
            if let ast::GroupKind::NonCapturing(flags) = &g.kind {
                if !flags.items.is_empty() {
                    return None;
                }
            }
            Some(plain_cost(&g.ast, depth + 1)?.saturating_add(4))
        }
        Ast::Alternation(a) => sum(&a.asts),
        Ast::Concat(c) => sum(&c.asts),
        Ast::Flags(_) | Ast::ClassUnicode(_) | Ast::ClassPerl(_) | Ast::ClassBracketed(_) => None,
    }
}

/// The number of items of a plain class: literals and ASCII ranges (each one UTF-8
/// sequence), or `None`.
fn class_items(item: &ast::ClassSetItem) -> Option<u64> {
    match item {
        ast::ClassSetItem::Literal(_) => Some(1),
        ast::ClassSetItem::Range(r) if r.end.c.is_ascii() => Some(1),
        ast::ClassSetItem::Union(u) => {
            u.items.iter().try_fold(0u64, |n, i| Some(n.saturating_add(class_items(i)?)))
        }
        _ => None,
    }
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
            for src in [format!("^(?:{p})$"), p.clone()] {
                total += 1;
                let Ok(ast) = ast::parse::Parser::new().parse(&src) else { continue };
                let Some(c) = plain_cost(&ast, 0) else { continue };
                plain += 1;
                let hir = regex_syntax::hir::translate::Translator::new().translate(&src, &ast);
                let hir = hir.unwrap_or_else(|e| panic!("{src:?} is plain but invalid: {e}"));
                let parsed = cost(&hir);
                assert!(parsed <= c, "{src:?}: bound {c} below the parsed cost {parsed}");
            }
        }
        assert!(plain > 1000, "{plain} of {total} random patterns are plain");
        let plain_at = |p: &str| {
            let src = format!("^(?:{p})$");
            plain_cost(&ast::parse::Parser::new().parse(&src).unwrap(), 0)
        };
        for p in ["(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*", "[a-z]+", "a|b"] {
            assert!(plain_at(p).is_some(), "{p}");
        }
        for p in [r"\w+", "[^/]+", "(?i)a", "[[:alpha:]]", r"\pL", r"[a&&b]", r"\b"] {
            assert!(plain_at(p).is_none(), "{p} is left to the translation");
        }
    }

    #[test]
    fn a_pattern_checked_again_gets_the_same_decision() {
        for p in ["[a-z]+", r"\w{3}", r"\w{1,64}", "(unclosed", r"(?s).{20000}", r"\d+"] {
            let first = Pattern::check(p, true).map(|x| x.is_compiled());
            let again = Pattern::check(p, true).map(|x| x.is_compiled());
            assert_eq!(first, again, "{p}");
            let remembered = lock(&DEFERRED).contains(&format!("^(?:{p})$"));
            assert_eq!(remembered, first == Ok(false), "only deferred patterns are kept: {p}");
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
