//! `skillbox repl NAME`: a `code_session` skill at a terminal. Each input is one call in the
//! same session; the session ends with the command (end of input, Ctrl-D) or when it ends
//! by itself, and the next input then starts a new one, said on stderr.
//!
//! Input: a line is a call; a line ending in `:` (a block opens) or `\` continues until an
//! empty line, as Python's own prompt does. The output of a call is printed, then the value
//! of its last expression; a traceback goes to stderr.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use skillbox_skills::{RunOptions, Runtime, Sessions, SkillType, Status, TrustLevel};

use crate::output::terminal_safe;

/// Runs the REPL; the exit code is 0 at the end of input, 4 for a skill that is not a
/// session's.
pub(crate) fn repl(
    workspace: &Path,
    name: &str,
    trust: Option<TrustLevel>,
    allow_weaker_isolation: bool,
) -> anyhow::Result<u8> {
    let mut log = skillbox_skills::audit_log::LogConfig::new(crate::audit::default_path()?);
    log.echo_high_risk = true;
    let rt = Arc::new(Runtime::open_with_audit(workspace, log)?);
    let skill = rt.registry().get(name)?;
    if skill.def.skill_type != SkillType::CodeSession {
        eprintln!(
            "skillbox: `{}` is a `{}` skill; `skillbox repl` runs `code_session` skills (use \
             `skillbox run`)",
            skill.def.name,
            skill.def.skill_type.as_str()
        );
        return Ok(4);
    }
    let skill_name = skill.def.name.clone();
    // Worker threads keep serving the session (its output pipes, its timers) while this
    // thread waits for input.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let sessions = Arc::new(Sessions::new());
    let options = RunOptions {
        trust,
        allow_weaker_isolation,
        sessions: Some(sessions.clone()),
        ..RunOptions::default()
    };
    let tty = std::io::stdin().is_terminal();
    if tty {
        eprintln!(
            "skillbox: a `{skill_name}` session, confined as `skillbox run` would run it; \
             Ctrl-D ends it"
        );
    }
    let mut input = std::io::stdin().lock();
    let mut session: Option<String> = None;
    while let Some(code) = read_input(&mut input, tty)? {
        if code.trim().is_empty() {
            continue;
        }
        let mut params = json!({ "code": code });
        if let Some(id) = &session {
            params["session_id"] = json!(id);
        }
        let r = runtime.block_on(rt.run_with(&skill_name, &params, &options));
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        let _ = out.write_all(terminal_safe(&r.stdout).as_bytes());
        let _ = err.write_all(terminal_safe(&r.stderr).as_bytes());
        let report = r.session.as_ref();
        if let Some(v) = report.and_then(|s| s.value.as_ref()) {
            let _ = writeln!(out, "{}", terminal_safe(v));
        }
        if let Some(e) = report.and_then(|s| s.error.as_ref()) {
            let _ = err.write_all(terminal_safe(&e.traceback).as_bytes());
        } else if r.status != Status::Success {
            let why = r.message.as_deref().unwrap_or(r.status.as_str());
            let _ = writeln!(err, "skillbox: {}: {}", r.status.as_str(), terminal_safe(why));
        }
        let _ = out.flush();
        session = match report {
            Some(s) if s.ended.is_none() => Some(s.session_id.clone()),
            Some(_) => {
                let _ =
                    writeln!(err, "skillbox: the session ended; the next input starts a new one");
                None
            }
            None => None,
        };
    }
    runtime.block_on(sessions.close_all());
    Ok(0)
}

/// One input: a line, or lines up to an empty one after a line that opens a block (`:`) or
/// continues (`\`). `None` at the end of input.
fn read_input(input: &mut impl BufRead, tty: bool) -> anyhow::Result<Option<String>> {
    let mut code = String::new();
    let mut continued = false;
    loop {
        if tty {
            eprint!("{}", if continued { "... " } else { ">>> " });
        }
        let mut line = String::new();
        if input.read_line(&mut line).context("cannot read the input")? == 0 {
            return Ok((!code.is_empty()).then_some(code));
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if continued && text.trim().is_empty() {
            return Ok(Some(code));
        }
        code.push_str(text);
        code.push('\n');
        let opens = text.trim_end().ends_with(':') || text.ends_with('\\');
        continued = continued || opens;
        if !continued {
            return Ok(Some(code));
        }
    }
}
