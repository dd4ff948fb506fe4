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
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

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
    may_match(&AC, NAME_TRIGGERS, name) && secret_name().is_match(name)
}

fn has_secret_value(text: &str) -> bool {
    static AC: OnceLock<AhoCorasick> = OnceLock::new();
    may_match(&AC, VALUE_TRIGGERS, text) && secret_values().is_match(text)
}

/// Cuts credential-shaped substrings out of `text`.
pub fn redact_text(text: &str) -> String {
    if !has_secret_value(text) {
        return text.to_string();
    }
    secret_values().replace_all(text, REDACTED).into_owned()
}

/// Whether a field of this name loses its value `val`.
fn hides(name: &str, val: &Value) -> bool {
    !matches!(val, Value::Null | Value::Bool(_)) && is_secret_name(name)
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
                if hides(k, val) {
                    *val = Value::String(REDACTED.to_string());
                } else {
                    redact_value(val);
                }
            }
        }
        _ => {}
    }
}

/// A value serialized as [`redact_value`] would leave it, without copying it first: the
/// log writes every event's details this way, so an append allocates no second tree.
pub(crate) struct Redacted<'a>(pub(crate) &'a Value);

impl Serialize for Redacted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::String(text) if has_secret_value(text) => s.serialize_str(&redact_text(text)),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Redacted(item))?;
                }
                seq.end()
            }
            Value::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, val) in fields {
                    if hides(k, val) {
                        map.serialize_entry(k, REDACTED)?;
                    } else {
                        map.serialize_entry(k, &Redacted(val))?;
                    }
                }
                map.end()
            }
            other => other.serialize(s),
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
}
