//! docs/troubleshooting.md has an entry for every message skillbox can print about
//! confinement, limits and trust.
//!
//! The messages are read from the sources, not listed here, so a message added to the code
//! without an entry fails this test:
//!
//! 1. every `#[error("...")]` attribute of the scanned files;
//! 2. every string literal in an expression that produces a message: within the same
//!    statement or match arm, before the literal, one of [`SINKS`] appears (`message =
//!    Some(format!(...))`, `refused(..)`, `bad(param, format!(..))`, `Err(..)`,
//!    `reason: ..`, `fix: ..`, `NotEnforced, ".."`, `bail!`, `.context(..)`, ...).
//!
//! Each message is reduced to its *key*: its fixed leading text, with each `{placeholder}` a
//! wildcard, taken up to the first 20 letters of fixed text: `skill `{}` exceeded its
//! {what} limit at trust level {} and was stopped` needs `skill `NAME` exceeded its WHAT
//! limit at trust level` in the doc, with any name and limit there. The doc's whitespace is collapsed before matching, so entries may wrap lines.
//!
//! The scan must find at least [`MIN_MESSAGES`] keys and a few known ones, so that a broken
//! scanner cannot pass by finding nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Identifiers and keywords that mark an expression producing a message.
const SINKS: &[&str] = &[
    "message",
    "refused",
    "bad",
    "problem",
    "reason",
    "fix",
    "granted",
    "Policy",
    "InvalidSpec",
    "Err",
    "context",
    "with_context",
    "bail",
    "msg",
    "NotEnforced",
    "eprintln",
    "writeln",
];

/// Functions whose every string literal is part of a message: the denial
/// (`Denial::message`), the confinement hint of a failed run, the confinement steps.
const MESSAGE_FNS: &[&str] = &["message", "confinement_hint", "describe"];

/// Literals passed to these are matched against text, not printed.
const NOT_MESSAGES: &[&str] =
    &["contains", "starts_with", "ends_with", "strip_prefix", "unwrap_or", "get"];

/// Fewest keys the scan must find (it finds about 120 today).
const MIN_MESSAGES: usize = 60;

/// Source files whose messages are about confinement, limits, trust, lookups, parameters and
/// the audit log. Skill-file load errors (`format.rs`, `registry.rs` diagnostics) are
/// documented in docs/writing-skills.md and are not scanned.
fn sources() -> Vec<PathBuf> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in
        ["skillbox-sandbox/src", "skillbox-audit/src", "skillbox-cli/src", "skillbox-mcp/src"]
    {
        for e in std::fs::read_dir(crates.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    for f in [
        "security.rs",
        "params.rs",
        "pattern.rs",
        "runtime.rs",
        "name.rs",
        "registry.rs",
        "prompt.rs",
        "host.rs",
        "audit.rs",
        "trust.rs",
    ] {
        files.push(crates.join("skillbox-skills/src").join(f));
    }
    // The run of one skill (`exec`), one module per job.
    for dir in ["skillbox-skills/src/exec", "skillbox-skills/src/exec/session"] {
        for e in std::fs::read_dir(crates.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Punct(char),
}

/// A small Rust lexer: enough to find string literals (escapes, `\`-newline continuations,
/// raw and byte strings), words and punctuation, skipping comments and char literals.
fn lex(src: &str) -> Vec<Tok> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if ch == 'r' && matches!(c.get(i + 1), Some('"') | Some('#')) && {
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            c.get(j) == Some(&'"')
        } {
            let mut hashes = 0;
            i += 1;
            while c[i] == '#' {
                hashes += 1;
                i += 1;
            }
            i += 1;
            let start = i;
            loop {
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    break;
                }
                i += 1;
            }
            out.push(Tok::Str(c[start..i].iter().collect()));
            i += 1 + hashes;
        } else if ch == '"' || (ch == 'b' && c.get(i + 1) == Some(&'"')) {
            if ch == 'b' {
                i += 1;
            }
            i += 1;
            let mut s = String::new();
            while c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                    match c[i] {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        '0' => s.push('\0'),
                        '\n' => {
                            while c[i + 1].is_whitespace() {
                                i += 1;
                            }
                        }
                        'u' | 'x' => {
                            // Not used in messages; keep the escape as written.
                            s.push('\\');
                            s.push(c[i]);
                        }
                        other => s.push(other),
                    }
                } else {
                    s.push(c[i]);
                }
                i += 1;
            }
            out.push(Tok::Str(s));
            i += 1;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\'') or a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                i += 2;
                while c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(Tok::Word(c[start..i].iter().collect()));
        } else {
            out.push(Tok::Punct(ch));
            i += 1;
        }
    }
    out
}

/// The messages of one file: `(literal, how it was found)`. Code after `#[cfg(test)]` is
/// not scanned.
fn messages(src: &str) -> Vec<(String, &'static str)> {
    let src = src.split("#[cfg(test)]").next().unwrap_or("");
    let toks = lex(src);
    // Token ranges of the bodies of MESSAGE_FNS.
    let mut bodies = Vec::new();
    for (i, w) in toks.windows(2).enumerate() {
        if let [Tok::Word(f), Tok::Word(name)] = w {
            if f == "fn" && MESSAGE_FNS.contains(&name.as_str()) {
                let Some(open) = toks[i..].iter().position(|t| *t == Tok::Punct('{')) else {
                    continue;
                };
                let mut depth = 0;
                for (j, t) in toks.iter().enumerate().skip(i + open) {
                    match t {
                        Tok::Punct('{') => depth += 1,
                        Tok::Punct('}') => {
                            depth -= 1;
                            if depth == 0 {
                                bodies.push(i + open..j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Tok::Str(s) = t else { continue };
        let before = |k: usize| toks.get(i.wrapping_sub(k));
        let is = |k: usize, want: Tok| before(k) == Some(&want);
        // A key of a JSON object (`json!({"message": ..})`), or text to match against.
        if toks.get(i + 1) == Some(&Tok::Punct(':'))
            || matches!(before(2), Some(Tok::Word(w)) if NOT_MESSAGES.contains(&w.as_str()))
        {
            continue;
        }
        if bodies.iter().any(|b| b.contains(&i)) {
            out.push((s.clone(), "message function"));
            continue;
        }
        if is(1, Tok::Punct('('))
            && is(2, Tok::Word("error".into()))
            && is(3, Tok::Punct('['))
            && is(4, Tok::Punct('#'))
        {
            out.push((s.clone(), "#[error]"));
            continue;
        }
        // Back to the start of the statement or match arm.
        let mut k = i;
        let mut sink = false;
        while k > 0 {
            k -= 1;
            match &toks[k] {
                Tok::Punct(';' | '{' | '}') => break,
                Tok::Punct('>') if k > 0 && toks[k - 1] == Tok::Punct('=') => break,
                Tok::Word(w) if SINKS.contains(&w.as_str()) => {
                    sink = true;
                    break;
                }
                _ => {}
            }
        }
        if sink {
            out.push((s.clone(), "message expression"));
        }
    }
    out
}

/// The key of a message: fixed text fragments up to 20 letters, placeholders as `None`.
/// `None` when the message has too little fixed text to be one (`"{}"`, `"; "`).
fn key(message: &str) -> Option<Vec<Option<String>>> {
    let mut parts: Vec<Option<String>> = Vec::new();
    let mut text = String::new();
    let mut letters = 0;
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                if !text.is_empty() {
                    parts.push(Some(std::mem::take(&mut text)));
                }
                if letters >= 20 {
                    break;
                }
                parts.push(None);
            }
            c => {
                if c.is_alphabetic() {
                    letters += 1;
                }
                text.push(c);
            }
        }
    }
    if !text.is_empty() {
        parts.push(Some(text));
    }
    // Trailing placeholders add nothing to match.
    while parts.last() == Some(&None) {
        parts.pop();
    }
    let fixed: usize =
        parts.iter().flatten().map(|p| p.chars().filter(|c| c.is_alphabetic()).count()).sum();
    (fixed >= 3).then_some(parts)
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A regex for `key`: fixed text as is (whitespace collapsed), each placeholder any text of
/// up to 160 characters.
fn pattern(key: &[Option<String>]) -> regex::Regex {
    let mut re = String::new();
    for (n, p) in key.iter().enumerate() {
        match p {
            Some(text) => {
                let mut t = collapse(text);
                // A fragment's edge spaces meet a placeholder: keep them optional.
                if text.starts_with(char::is_whitespace) && n > 0 {
                    t.insert(0, ' ');
                }
                if text.ends_with(char::is_whitespace) && n + 1 < key.len() {
                    t.push(' ');
                }
                re.push_str(&regex::escape(&t));
            }
            None => re.push_str(".{0,160}?"),
        }
    }
    regex::Regex::new(&re).unwrap()
}

fn display(key: &[Option<String>]) -> String {
    key.iter().map(|p| p.as_deref().unwrap_or("{…}")).collect()
}

fn all_keys() -> BTreeMap<String, (Vec<Option<String>>, Vec<String>)> {
    let mut keys: BTreeMap<String, (Vec<Option<String>>, Vec<String>)> = BTreeMap::new();
    for file in sources() {
        let src = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (msg, how) in messages(&src) {
            if let Some(k) = key(&msg) {
                let shown = collapse(&display(&k));
                keys.entry(shown)
                    .or_insert_with(|| (k, Vec::new()))
                    .1
                    .push(format!("{name} ({how})"));
            }
        }
    }
    keys
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/troubleshooting.md");
    collapse(&std::fs::read_to_string(path).unwrap())
}

#[test]
fn the_scan_finds_the_messages_it_must() {
    let keys = all_keys();
    let listing: Vec<&String> = keys.keys().collect();
    assert!(
        keys.len() >= MIN_MESSAGES,
        "only {} messages found; the scanner is broken: {listing:#?}",
        keys.len()
    );
    for known in [
        "permission denied: skill `",
        "to grant it, if you trust this skill, run `skillbox trust",
        "refusing to run: cannot write the audit log:",
        "confining the child failed while",
        "skill `{…}` exceeded its {…} limit at trust level",
        "skill `{…}` timed out after {…} s (its limit at trust level",
        "no skill named `{…}`;",
        "refusing to run: {…}. Fix:",
        "{…} does not match the pattern",
        "confined: the errors suggest the kernel refused",
    ] {
        assert!(keys.contains_key(known), "{known:?} not found by the scan: {listing:#?}");
    }
}

#[test]
fn every_message_has_an_entry_in_troubleshooting_md() {
    let doc = doc();
    let missing: Vec<String> = all_keys()
        .into_iter()
        .filter(|(_, (k, _))| !pattern(k).is_match(&doc))
        .map(|(shown, (_, files))| format!("{shown:?}  (from {})", files.join(", ")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/troubleshooting.md has no entry for {} message(s):\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn every_mechanism_of_the_enforcement_report_has_an_entry() {
    let doc = doc();
    for g in skillbox_skills::Guarantee::ALL {
        assert!(doc.contains(&format!("`{g}`")), "docs/troubleshooting.md does not name `{g}`");
    }
}

#[test]
fn the_key_of_a_message_is_its_fixed_leading_text() {
    let k = key("skill `{}` exceeded its {what} limit at trust level {} and was stopped").unwrap();
    assert_eq!(display(&k), "skill `{…}` exceeded its {…} limit at trust level ");
    assert!(
        pattern(&k).is_match("x skill `lint` exceeded its memory (64 MiB) limit at trust level")
    );
    assert!(!pattern(&k).is_match("skill `lint` exceeded its limit"));
    assert_eq!(key("{}"), None);
    assert_eq!(key("; "), None);
    let toks = lex(r##"#[error("a \"b\" \
                       c {0}")] let m = r#"raw"#; // "comment"
                       'x'; '\''; fn f<'a>() {}"##);
    assert_eq!(
        toks.iter().filter(|t| matches!(t, Tok::Str(_))).collect::<Vec<_>>(),
        vec![&Tok::Str("a \"b\" c {0}".into()), &Tok::Str("raw".into())]
    );
}
