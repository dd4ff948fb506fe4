//! The environment a run gets: clean below `system-trusted`, the host's at it, and what the
//! skill declares on top.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::format::SkillDef;
use crate::security::{EnvPolicy, SecurityContext};

/// `PATH` given to skills that do not inherit the host environment.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The child's whole environment; `home` and `tmp` are the run's private `HOME` and
/// `TMPDIR`.
///
/// Clean (untrusted, user-verified): `PATH`, `HOME` and `TMPDIR` in the private directory,
/// `LANG`, and what the skill declares. Inherit (system-trusted): the host's environment, then
/// what the skill declares.
pub(super) fn environment(
    ctx: &SecurityContext,
    def: &SkillDef,
    home: &Path,
    tmp: &Path,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = match ctx.environment {
        EnvPolicy::Inherit => std::env::vars_os().collect(),
        EnvPolicy::Clean => vec![
            ("PATH".into(), DEFAULT_PATH.into()),
            ("HOME".into(), home.into()),
            ("TMPDIR".into(), tmp.into()),
            ("LANG".into(), clean_lang(std::env::var("LANG").ok()).into()),
        ],
    };
    for (k, v) in &def.environment {
        env.retain(|(ek, _)| ek != OsStr::new(k));
        env.push((k.into(), v.into()));
    }
    env
}

/// `LANG` for a clean environment: the host's when it is a plain locale name (letters,
/// digits, `_.@-`), else `C.UTF-8`.
pub(super) fn clean_lang(host: Option<String>) -> String {
    host.filter(|l| {
        !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
    })
    .unwrap_or_else(|| "C.UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::exec::testing::def;
    use crate::security::TrustLevel;

    fn as_map(env: Vec<(OsString, OsString)>) -> BTreeMap<OsString, OsString> {
        let n = env.len();
        let map: BTreeMap<_, _> = env.into_iter().collect();
        assert_eq!(map.len(), n, "each variable once");
        map
    }

    fn skill() -> SkillDef {
        def(json!({"name": "s", "type": "command", "command": "true",
                   "environment": {"FOO": "bar", "PATH": "/opt/tool/bin"}}))
    }

    #[test]
    fn below_system_trusted_the_environment_is_clean_plus_what_the_skill_declares() {
        let (home, tmp) = (Path::new("/p/home"), Path::new("/p/tmp"));
        for level in [TrustLevel::Untrusted, TrustLevel::UserVerified] {
            let ctx = SecurityContext::for_trust_level(level, "/w");
            let env = as_map(environment(&ctx, &skill(), home, tmp));
            let lang = clean_lang(std::env::var("LANG").ok());
            let want: BTreeMap<OsString, OsString> = [
                ("PATH", "/opt/tool/bin"),
                ("HOME", "/p/home"),
                ("TMPDIR", "/p/tmp"),
                ("LANG", lang.as_str()),
                ("FOO", "bar"),
            ]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
            assert_eq!(env, want, "{level}");
        }
        let plain = def(json!({"name": "s", "type": "command", "command": "true"}));
        let ctx = SecurityContext::for_trust_level(TrustLevel::Untrusted, "/w");
        let env = as_map(environment(&ctx, &plain, home, tmp));
        assert_eq!(env.get(OsStr::new("PATH")), Some(&OsString::from(DEFAULT_PATH)));
    }

    #[test]
    fn system_trusted_inherits_the_host_environment_then_what_the_skill_declares() {
        let ctx = SecurityContext::for_trust_level(TrustLevel::SystemTrusted, "/w");
        let env = as_map(environment(&ctx, &skill(), Path::new("/h"), Path::new("/t")));
        let mut want: BTreeMap<OsString, OsString> = std::env::vars_os().collect();
        want.insert("FOO".into(), "bar".into());
        want.insert("PATH".into(), "/opt/tool/bin".into());
        assert_eq!(env, want);
    }

    #[test]
    fn lang_is_passed_only_as_a_plain_locale_name() {
        assert_eq!(clean_lang(Some("en_US.UTF-8".into())), "en_US.UTF-8");
        assert_eq!(clean_lang(Some("de_DE@euro".into())), "de_DE@euro");
        for bad in ["", "en_US.UTF-8; rm -rf /", "../../x", "a b", "x\n"] {
            assert_eq!(clean_lang(Some(bad.into())), "C.UTF-8", "{bad:?}");
        }
        assert_eq!(clean_lang(None), "C.UTF-8");
    }
}
