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
