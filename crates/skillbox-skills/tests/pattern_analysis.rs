//! The pattern checker's analysis (regex-syntax's syntax tree, translated only when the tree
//! does not bound the compiled size) against the one it replaced: a hand-written one-pass
//! scanner of "plain" patterns, then regex-syntax's full parse. The old analysis is kept
//! here verbatim as the reference. On every pattern of `examples/`, every pattern written
//! in the workspace's tests and in `pattern.rs`, and 20,000 random ones, both decide the
//! same: the same error, or accepted and compiled at load (a pattern that might be too big),
//! or accepted and compiled on first use.
//!
//! The new decision is read through the public API: a skill file with the pattern as a
//! parameter's (anchored) and as a transient pattern of its error classification
//! (unanchored; only whether it is accepted, and why not, is kept of those).

use std::path::{Path, PathBuf};

use regex_syntax::hir::{Class, Hir, HirKind};
use serde_json::{json, Value};

/// What the checker decided about one pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Refused, with this reason.
    Invalid(String),
    /// Accepted; compiled at load, since it might exceed the size limit.
    CompiledAtLoad,
    /// Accepted; compiled on first use.
    Deferred,
}

/// The analysis before regex-syntax's syntax tree replaced the scanner, as it was.
mod reference {
    use super::*;

    pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
    const BYTES_PER_UNIT: u64 = 256;
    const FIXED_BYTES: u64 = 16 * 1024;
    const WRAP_COST: u64 = 8;
    const DOT_COST: u64 = 16;

    /// `Pattern::check` as it was: the quick check, then the full parse; `anchor` as a
    /// parameter's pattern.
    pub(crate) fn check(pattern: &str, anchor: bool) -> Decision {
        let source = if anchor { format!("^(?:{pattern})$") } else { pattern.to_string() };
        if plain_cost(pattern).is_some_and(|c| fits_cost(c.saturating_add(WRAP_COST))) {
            return Decision::Deferred;
        }
        let hir = match regex_syntax::Parser::new().parse(&source) {
            Ok(h) => h,
            Err(e) => return Decision::Invalid(reason(&e.to_string())),
        };
        if fits_cost(cost(&hir)) {
            return Decision::Deferred;
        }
        match regex::RegexBuilder::new(&source).size_limit(REGEX_SIZE_LIMIT).build() {
            Ok(_) => Decision::CompiledAtLoad,
            Err(e) => Decision::Invalid(reason(&e.to_string())),
        }
    }

    fn reason(message: &str) -> String {
        format!("invalid regex: {}", message.lines().last().unwrap_or(""))
    }

    fn fits_cost(units: u64) -> bool {
        units.saturating_mul(BYTES_PER_UNIT).saturating_add(FIXED_BYTES) <= REGEX_SIZE_LIMIT as u64
    }

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
}

/// The decisions of the checker now, through two skill files: the pattern as a
/// parameter's (anchored), and whether it is accepted as a transient pattern (unanchored).
fn decide_now(pattern: &str) -> (Decision, Result<(), String>) {
    let parse = |skill: Value| {
        let bytes = serde_json::to_vec(&skill).unwrap();
        skillbox_skills::parse_skill(Path::new("t.json"), &bytes)
    };
    let only = |problems: Vec<skillbox_skills::Diagnostic>| {
        assert_eq!(problems.len(), 1, "{pattern:?}: {problems:?}");
        problems[0].reason.clone()
    };
    let anchored = match parse(json!({
        "name": "t", "type": "command", "command": "true",
        "parameters": [{"name": "p", "type": "string", "pattern": pattern}],
    })) {
        Ok(def) => match &def.parameters[0].pattern {
            Some(p) if p.is_compiled() => Decision::CompiledAtLoad,
            Some(_) => Decision::Deferred,
            None => panic!("{pattern:?}: no pattern kept"),
        },
        Err(problems) => Decision::Invalid(only(problems)),
    };
    let unanchored = parse(json!({
        "name": "t", "type": "command", "command": "true",
        "resilience": {"error_classification": {"transient_patterns": [pattern]}},
    }))
    .map(|_| ())
    .map_err(only);
    (anchored, unanchored)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every file under `dir` whose name ends with one of `exts`.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            if p.file_name().is_some_and(|n| n != "target") {
                files(&p, exts, out);
            }
        } else if exts.iter().any(|x| p.to_string_lossy().ends_with(x)) {
            out.push(p);
        }
    }
}

/// The patterns of a skill file (`pattern`, `transient_patterns`, `permanent_patterns`
/// at any depth).
fn json_patterns(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("pattern", Value::String(s)) => out.push(s.clone()),
                    ("transient_patterns" | "permanent_patterns", Value::Array(a)) => {
                        out.extend(a.iter().filter_map(|s| s.as_str().map(str::to_string)))
                    }
                    _ => json_patterns(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| json_patterns(v, out)),
        _ => {}
    }
}

/// The string literals of Rust source `src` (plain, with the escapes patterns use, and
/// raw), unescaped.
fn rust_strings(src: &str) -> Vec<String> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == 'r' && matches!(c.get(i + 1), Some('"' | '#')) {
            let mut hashes = 0;
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                i += 1;
                continue;
            }
            let close: String =
                std::iter::once('"').chain(std::iter::repeat_n('#', hashes)).collect();
            let rest: String = c[j + 1..].iter().collect();
            let Some(end) = rest.find(&close) else { break };
            out.push(rest[..end].to_string());
            i = j + 1 + rest[..end].chars().count() + close.len();
        } else if c[i] == '\'' {
            // A char literal or a lifetime: skip what could hide a quote.
            i += if c.get(i + 1) == Some(&'\\') { 4 } else { 1 };
        } else if c[i] == '"' {
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                    match c.get(i) {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('\n') => {
                            while c.get(i + 1).is_some_and(|x| x.is_whitespace()) {
                                i += 1;
                            }
                        }
                        Some(&x) => s.push(x),
                        None => {}
                    }
                } else {
                    s.push(c[i]);
                }
                i += 1;
            }
            out.push(s);
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Every pattern of `examples/` (skill files), every string of the tests of the workspace
/// that follows `"pattern"` or sits in a list of patterns, and every string literal of
/// `pattern.rs` (its tests' corpora).
fn corpus() -> Vec<String> {
    let root = repo();
    let mut out = Vec::new();
    let mut json = Vec::new();
    files(&root.join("examples"), &[".json"], &mut json);
    for f in json {
        if let Ok(v) = serde_json::from_slice::<Value>(&std::fs::read(&f).unwrap()) {
            json_patterns(&v, &mut out);
        }
    }
    let mut sources = Vec::new();
    for dir in std::fs::read_dir(root.join("crates")).unwrap().flatten() {
        files(&dir.path().join("tests"), &[".rs"], &mut sources);
    }
    for f in sources {
        let src = std::fs::read_to_string(&f).unwrap();
        let strings = rust_strings(&src);
        for (k, s) in strings.iter().enumerate() {
            let after_key = k > 0 && strings[k - 1].ends_with("pattern");
            let listed = k > 0 && strings[k - 1].ends_with("_patterns");
            if after_key || listed || s.contains("(?") || s.contains('[') {
                out.push(s.clone());
            }
        }
    }
    let own = std::fs::read_to_string(root.join("crates/skillbox-skills/src/pattern.rs")).unwrap();
    out.extend(rust_strings(&own));
    out.sort();
    out.dedup();
    out
}

/// Random patterns over the pieces the old scanner treated differently.
fn random(n: usize) -> Vec<String> {
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
        "(?P<n>",
        ")",
        "[",
        "]",
        "[a-z]",
        "[A-Za-z0-9_.-]",
        "[-a]",
        "[a-]",
        "[z-a]",
        "[^a]",
        "[\\.]",
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
        "\\b",
        "é",
        "#",
        "&",
        "~",
        "\\n",
        "\\x41",
    ];
    let mut state: u64 = 7;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 12;
            (0..len).map(|_| alphabet[next() % alphabet.len()]).collect()
        })
        .collect()
}

#[test]
fn the_new_analysis_decides_as_the_old_on_every_pattern() {
    let corpus = corpus();
    assert!(corpus.len() > 100, "the corpus is too small: {corpus:?}");
    for needed in ["(?:[A-Za-z0-9_][A-Za-z0-9_.-]*/)*[A-Za-z0-9_][A-Za-z0-9_.-]*", "(unclosed"] {
        assert!(corpus.iter().any(|p| p == needed), "{needed} is in examples/");
    }
    let mut counts = std::collections::BTreeMap::new();
    for p in corpus.iter().chain(&random(20_000)) {
        let (anchored, unanchored) = decide_now(p);
        assert_eq!(anchored, reference::check(p, true), "{p:?} as a parameter's pattern");
        let before = match reference::check(p, false) {
            Decision::Invalid(r) => Err(r),
            _ => Ok(()),
        };
        assert_eq!(unanchored, before, "{p:?} as a transient pattern");
        let kind = match anchored {
            Decision::Invalid(_) => "invalid",
            Decision::CompiledAtLoad => "compiled at load",
            Decision::Deferred => "deferred",
        };
        *counts.entry(kind).or_insert(0) += 1;
    }
    // Checked again (a process remembers the patterns it found deferrable): the same.
    for p in &corpus {
        assert_eq!(decide_now(p).0, reference::check(p, true), "{p:?} checked again");
    }
    // Every kind of decision was compared.
    assert_eq!(counts.len(), 3, "{counts:?}");
}
