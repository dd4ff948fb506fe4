//! Redaction of values that look like secrets, before anything is written.
//!
//! Two rules: a field whose *name* says it holds a secret (`token`, `password`, `api_key`,
//! `AWS_SECRET_ACCESS_KEY`, ...) loses its value; and any string is scanned for the shapes of
//! well-known credentials (private keys, cloud and forge tokens, JWTs, bearer tokens,
//! `password=...` pairs), which are cut out. The aim is no leak of the obvious; it is a
//! filter, not a proof, so callers also log digests instead of raw parameters.

use std::sync::OnceLock;

use regex::Regex;
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

/// Cuts credential-shaped substrings out of `text`.
pub fn redact_text(text: &str) -> String {
    secret_values().replace_all(text, REDACTED).into_owned()
}

/// Redacts `v` in place: values of secret-named fields, and credential shapes in every
/// string. Environment variable *names* that look secret are kept (they are not secrets)
/// but their values are not.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) if secret_values().is_match(s) => *s = redact_text(s),
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if secret_name().is_match(k) && !matches!(val, Value::Null | Value::Bool(_)) {
                    *val = Value::String(REDACTED.to_string());
                } else {
                    redact_value(val);
                }
            }
        }
        _ => {}
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
}
