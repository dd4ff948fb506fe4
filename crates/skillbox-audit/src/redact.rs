//! Redaction of values that look like secrets, before anything is written.
//!
//! Two rules: a field whose *name* says it holds a secret (`token`, `password`, `api_key`,
//! `AWS_SECRET_ACCESS_KEY`, ...) loses its value; and any string is scanned for the shapes of
//! well-known credentials (private keys, cloud and forge tokens, JWTs, bearer tokens,
//! `password=...` pairs), which are cut out. The aim is no leak of the obvious; it is a
//! filter, not a proof, so callers also log digests instead of raw parameters.

use std::sync::OnceLock;

use aho_corasick::AhoCorasick;
use regex::Regex;
use serde_json::Value;

/// What replaces a secret.
pub(crate) const REDACTED: &str = "[REDACTED]";

fn secret_name() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth(orization)?|cookie|session[_-]?id|signature)",
        )
        // A constant pattern, covered by the tests below: no input reaches this.
        .expect("constant regex")
    })
}

fn secret_values() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)",
            r"|\b(AKIA|ASIA)[0-9A-Z]{16}\b",
            r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b",
            r"|\bgithub_pat_[A-Za-z0-9_]{30,}\b",
            r"|\bglpat-[A-Za-z0-9_-]{20,}\b",
            r"|\bxox[abposr]-[A-Za-z0-9-]{10,}\b",
            r"|\bsk-[A-Za-z0-9_-]{20,}\b",
            r"|\bAIza[0-9A-Za-z_-]{35}\b",
            r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
            r"|(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{16,}",
            r#"|(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*[^\s"',;&]+"#,
        ))
        // A constant pattern, covered by the tests below: no input reaches this.
        .expect("constant regex")
    })
}

/// Literals one of which every match of [`secret_name`] contains, ASCII case aside.
const NAME_TRIGGERS: &[&str] = &[
    "pass",
    "secret",
    "token",
    "api",
    "access",
    "private",
    "credential",
    "auth",
    "cookie",
    "session",
    "signature",
];

/// Literals one of which every match of [`secret_values`] contains, ASCII case aside (one
/// per alternative of the pattern, in its order).
const VALUE_TRIGGERS: &[&str] = &[
    "-----begin ",
    "akia",
    "asia",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xox",
    "sk-",
    "aiza",
    "eyj",
    "bearer",
    "pass",
    "pwd",
    "secret",
    "token",
    "api",
];

/// A cheap test that rules most text out before a pattern runs: an event has dozens of
/// names and strings, and running both patterns on each was a tenth of an append. An
/// Aho-Corasick scan for the literals the pattern cannot match without, ASCII
/// case-insensitively. Text with any non-ASCII byte always goes to the pattern: under `(?i)`
/// the pattern also matches Unicode case variants (`ſ` for `s`, the Kelvin sign for `k`),
/// which an ASCII scan would miss. So the prefilter only skips text the pattern would not
/// match, and every output is the same as without it.
fn may_match(triggers: &'static OnceLock<AhoCorasick>, literals: &[&str], text: &str) -> bool {
    let ac = triggers.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(literals)
            // Constant literals, covered by the tests below: no input reaches this.
            .expect("constant literals")
    });
    !text.is_ascii() || ac.is_match(text)
}

fn is_secret_name(name: &str) -> bool {
    static AC: OnceLock<AhoCorasick> = OnceLock::new();
    static MASKS: OnceLock<Vec<u32>> = OnceLock::new();
    // Cheaper still, for the many short names of an event: a name holding a trigger holds
    // all its letters, so a name missing at least one letter of every trigger is ruled out
    // by comparing bit sets of letters, without a search.
    if name.is_ascii() && !may_hold_letters_of(&MASKS, NAME_TRIGGERS, name) {
        return false;
    }
    may_match(&AC, NAME_TRIGGERS, name) && secret_name().is_match(name)
}

/// Whether ASCII `text` holds every letter of at least one of `literals` (whose letter sets
/// `masks` caches). Text that holds none of the literals' letter sets cannot hold a literal.
fn may_hold_letters_of(masks: &'static OnceLock<Vec<u32>>, literals: &[&str], text: &str) -> bool {
    let masks = masks.get_or_init(|| literals.iter().map(|t| letters(t)).collect());
    let have = letters(text);
    masks.iter().any(|m| have & m == *m)
}

/// The set of ASCII letters in `s`, case aside, as bits (`a` = bit 0). `b | 0x20` lowers an
/// ASCII capital and leaves every byte that is not a letter outside `a..=z`.
fn letters(s: &str) -> u32 {
    s.bytes().fold(0, |m, b| {
        let i = (b | 0x20).wrapping_sub(b'a');
        if i < 26 {
            m | 1 << i
        } else {
            m
        }
    })
}

/// Strings up to this long are first ruled out by their letters (as names are): most
/// strings of an event are short words and paths. Longer text goes to the scan directly.
const SHORT_TEXT: usize = 64;

fn has_secret_value(text: &str) -> bool {
    static AC: OnceLock<AhoCorasick> = OnceLock::new();
    static MASKS: OnceLock<Vec<u32>> = OnceLock::new();
    if text.len() <= SHORT_TEXT
        && text.is_ascii()
        && !may_hold_letters_of(&MASKS, VALUE_TRIGGERS, text)
    {
        return false;
    }
    may_match(&AC, VALUE_TRIGGERS, text) && secret_values().is_match(text)
}

/// Cuts credential-shaped substrings out of `text`.
pub fn redact_text(text: &str) -> String {
    if !has_secret_value(text) {
        return text.to_string();
    }
    secret_values().replace_all(text, REDACTED).into_owned()
}

/// Redacts `v` in place: values of secret-named fields, and credential shapes in every
/// string. Environment variable *names* that look secret are kept (they are not secrets)
/// but their values are not.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) if has_secret_value(s) => *s = redact_text(s),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if !matches!(val, Value::Null | Value::Bool(_)) && is_secret_name(k) {
                    *val = Value::String(REDACTED.to_string());
                } else {
                    redact_value(val);
                }
            }
        }
        _ => {}
    }
}

/// Appends `v` to `out` as JSON, redacted as [`redact_value`] would leave it, without
/// copying it first; byte for byte what `serde_json` writes for the redacted copy.
pub(crate) fn write_redacted(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(text) if has_secret_value(text) => json::write_str(out, &redact_text(text)),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_redacted(out, item);
            }
            out.push(b']');
        }
        Value::Object(fields) => {
            out.push(b'{');
            for (i, (k, val)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json::write_str(out, k);
                out.push(b':');
                if !matches!(val, Value::Null | Value::Bool(_)) && is_secret_name(k) {
                    json::write_str(out, REDACTED);
                } else {
                    write_redacted(out, val);
                }
            }
            out.push(b'}');
        }
        other => json::write_plain(out, other),
    }
}

/// The JSON writing the log needs, hand-written because `serde_json` spent a tenth of an
/// append escaping strings through `io::Write`; the output is the same (tests compare).
pub(crate) mod json {
    use serde_json::Value;

    /// What `serde_json` writes after a backslash for each byte (`u`: `\u00XX`; 0: as is).
    const ESCAPE: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 0x20 {
            t[i] = b'u';
            i += 1;
        }
        t[0x08] = b'b';
        t[0x09] = b't';
        t[0x0a] = b'n';
        t[0x0c] = b'f';
        t[0x0d] = b'r';
        t[b'"' as usize] = b'"';
        t[b'\\' as usize] = b'\\';
        t
    };

    /// `s` as a JSON string.
    pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = s.as_bytes();
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        let mut start = 0;
        // Skip 8 bytes at a time while none needs escaping (hand-written: a word test for a
        // byte below 0x20, a quote or a backslash; exact, as the tests check every byte).
        let mut clean = 0;
        while let Some(word) = bytes.get(clean..clean + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            let x = u64::from_le_bytes(w);
            const ONES: u64 = 0x0101_0101_0101_0101;
            const HIGH: u64 = 0x8080_8080_8080_8080;
            let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
            let below_space = x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0;
            if below_space
                || zero_byte(x ^ (ONES * b'"' as u64))
                || zero_byte(x ^ (ONES * b'\\' as u64))
            {
                break;
            }
            clean += 8;
        }
        for (i, &b) in bytes.iter().enumerate().skip(clean) {
            let esc = ESCAPE[b as usize];
            if esc == 0 {
                continue;
            }
            out.extend_from_slice(&bytes[start..i]);
            if esc == b'u' {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            } else {
                out.extend_from_slice(&[b'\\', esc]);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
        out.push(b'"');
    }

    /// `n` in decimal.
    pub(crate) fn write_u64(out: &mut Vec<u8>, n: u64) {
        let mut buf = itoa::Buffer::new();
        out.extend_from_slice(buf.format(n).as_bytes());
    }

    /// A null, a boolean, a number or a string (arrays and objects are walked by callers).
    pub(crate) fn write_plain(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::Null => out.extend_from_slice(b"null"),
            Value::Bool(true) => out.extend_from_slice(b"true"),
            Value::Bool(false) => out.extend_from_slice(b"false"),
            Value::String(s) => write_str(out, s),
            // Integers as serde_json writes them (it uses `itoa` too), without its
            // serializer machinery; floats through serde_json's own formatting.
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    write_u64(out, u);
                } else if let Some(i) = n.as_i64() {
                    let mut buf = itoa::Buffer::new();
                    out.extend_from_slice(buf.format(i).as_bytes());
                } else {
                    // Writing to memory cannot fail.
                    let _ = serde_json::to_writer(&mut *out, n);
                }
            }
            Value::Array(_) | Value::Object(_) => {
                // Walked by callers; written whole if one is passed here anyway.
                let _ = serde_json::to_writer(&mut *out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_names_lose_their_values() {
        let mut v = json!({"GITHUB_TOKEN": "abc", "password": 42, "path": "src", "nested": {"api_key": "k"}});
        redact_value(&mut v);
        assert_eq!(v["GITHUB_TOKEN"], REDACTED);
        assert_eq!(v["password"], REDACTED);
        assert_eq!(v["nested"]["api_key"], REDACTED);
        assert_eq!(v["path"], "src");
    }

    #[test]
    fn credential_shapes_are_cut_from_any_text() {
        for secret in [
            "AKIAABCDEFGHIJKLMNOP",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "sk-proj-abcdefghijklmnopqrstuvwx",
            "Bearer abcdefghijklmnopqrstuvwxyz012345",
            "password=hunter2",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----",
        ] {
            let out = redact_text(&format!("error: {secret} rejected"));
            assert!(out.contains(REDACTED), "{secret}: {out}");
            assert!(!out.contains(&secret[secret.len() - 6..]), "{secret} leaked: {out}");
        }
        assert_eq!(redact_text("plain text, nothing secret"), "plain text, nothing secret");
    }

    /// The prefilter decides nothing on its own: for every name and text, a pattern with
    /// the prefilter in front answers as the pattern alone.
    #[test]
    fn the_prefilter_never_changes_an_answer() {
        let mut corpus: Vec<String> = [
            "",
            "path",
            "exit_code",
            "usage",
            "max_rss_kib",
            "GITHUB_TOKEN",
            "Password",
            "PASSWD",
            "passphrase",
            "api-key",
            "ApiKey",
            "access_key",
            "PRIVATE-KEY",
            "credentials",
            "Authorization",
            "cookie",
            "session_id",
            "signature",
            "paſſword",
            "toKen",
            "ſecret",
            "apiKey\u{212a}",
            "token\u{0}",
            "high throughput",
            "ghp_x",
            "gh_p",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let secrets = [
            "AKIAABCDEFGHIJKLMNOP",
            "ASIAABCDEFGHIJKLMNOP",
            "akiaabcdefghijklmnop",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
            "GHP_0123456789abcdefghijklmnopqrstuvwxyz",
            "gho_0123456789abcdefghijklmnopqrstuvwxyz",
            "github_pat_0123456789abcdefghijklmnopqrstuvwxyz",
            "glpat-0123456789abcdefghij",
            "xoxb-0123456789",
            "sk-proj-abcdefghijklmnopqrstuvwx",
            "AIzaSyA0123456789abcdefghijklmnopqrstu",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijk",
            "Bearer abcdefghijklmnopqrstuvwxyz012345",
            "bEaReR abcdefghijklmnopqrstuvwxyz012345",
            "password=hunter2",
            "PWD: x",
            "Secret = y",
            "TOKEN=z",
            "api_key=k",
            "apikey:k",
            "ſecret=y",
            "to\u{212a}en=z",
            "-----BEGIN RSA PRIVATE KEY-----\nabc",
            "-----begin private key-----",
            "Bearer\u{a0}abcdefghijklmnopqrstuvwxyz012345",
        ];
        // Long names, and the names of a run's closing event, which the letter sets rule
        // out or let through.
        corpus.push(format!("{}_token", "x".repeat(70)));
        corpus.push(format!("{}_status", "x".repeat(70)));
        corpus.extend(
            ["attempts", "processes_peak", "max_open_files", "max_execution_time", "sessions"]
                .map(String::from),
        );
        for s in secrets {
            for (pre, post) in [("", ""), ("error: ", " rejected"), ("x", "y"), ("é ", " 😀")] {
                corpus.push(format!("{pre}{s}{post}"));
            }
        }
        for c in &corpus {
            assert_eq!(is_secret_name(c), secret_name().is_match(c), "name {c:?}");
            assert_eq!(has_secret_value(c), secret_values().is_match(c), "value {c:?}");
            let direct = secret_values().replace_all(c, REDACTED).into_owned();
            assert_eq!(redact_text(c), direct, "text {c:?}");
        }
        // Both answers occur: the comparison above is not vacuous.
        assert!(corpus.iter().any(|c| has_secret_value(c)));
        assert!(corpus.iter().any(|c| !has_secret_value(c) && !c.is_ascii()));
        assert!(corpus.iter().any(|c| is_secret_name(c) && !c.is_ascii()));
    }

    /// Short random text made of the triggers' letters, cut and joined: the letter sets and
    /// the scan never answer differently from the patterns alone.
    #[test]
    fn the_prefilter_never_changes_an_answer_on_random_text() {
        let pieces: Vec<&str> =
            NAME_TRIGGERS.iter().chain(VALUE_TRIGGERS).copied().collect::<Vec<_>>();
        let extra = [
            "-",
            "_",
            "=",
            ": ",
            " ",
            ".",
            "0",
            "K",
            "E",
            "Y",
            "é",
            "\u{212a}",
            "=hunter2",
            "ABCDEFGHIJKLMNOP",
            "abcdefghijklmnopqrstuvwxyz0123",
            "-----",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let (mut names, mut values) = (0, 0);
        for _ in 0..50_000 {
            let mut t = String::new();
            for _ in 0..next(5) {
                if next(3) == 0 {
                    t.push_str(extra[next(extra.len())]);
                } else {
                    let p = pieces[next(pieces.len())];
                    let (a, b) = (next(p.len() + 1), next(p.len() + 1));
                    let (a, b) = (a.min(b), a.max(b));
                    // Cut at char boundaries only (the pieces are ASCII).
                    t.push_str(if next(2) == 0 { p } else { &p[a..b] });
                }
            }
            if next(2) == 0 {
                t = t.to_uppercase();
            }
            let name = is_secret_name(&t);
            assert_eq!(name, secret_name().is_match(&t), "name {t:?}");
            let value = has_secret_value(&t);
            assert_eq!(value, secret_values().is_match(&t), "value {t:?}");
            names += usize::from(name);
            values += usize::from(value);
        }
        assert!(names > 1000 && values > 100, "{names} {values}: too few matches to compare");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: Vec<String> =
            (0u32..0x80).filter_map(char::from_u32).map(String::from).collect();
        all.extend(
            ["", "plain", "a\"b\\c\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}", "é😀\u{2028}\u{2029}x"]
                .map(String::from),
        );
        all.push(all.concat());
        for s in &all {
            let mut out = Vec::new();
            json::write_str(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        for v in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-17),
            json!(u64::MAX),
            json!(1.5),
            json!(1e300),
            json!(-0.0),
        ] {
            let mut out = Vec::new();
            json::write_plain(&mut out, &v);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&v).unwrap());
        }
    }

    #[test]
    fn written_details_are_the_redacted_copy_serialized() {
        let v = json!({"GITHUB_TOKEN": "abc", "password": 42, "auth": null, "cookie": true,
            "nested": {"api_key": ["k"], "list": ["ok", "Bearer abcdefghijklmnopqrstuvwxyz012345", {"token": {}}]},
            "paſſword": "x", "message": "with password=hunter2 inside", "n": 1.25, "e": [], "o": {}});
        let mut out = Vec::new();
        write_redacted(&mut out, &v);
        let mut copy = v.clone();
        redact_value(&mut copy);
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&copy).unwrap());
    }
}
