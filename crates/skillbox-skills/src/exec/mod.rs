//! Running one skill under a [`SecurityContext`]: the plan's `execute_with_security`.
//!
//! Order: parameters are validated, the declaration is checked against the context, and only
//! then is anything started. A refusal at either step returns a result without running.
//!
//! One job per module:
//!
//! * `attempts`: the first attempt, retries with backoff, then fallbacks, each reported to
//!   an observer (the audit log's hook);
//! * `process`: one confined process: its private directory, its spec, the sandbox run;
//! * `outcome`: what a finished child means as a result (status, limit, message);
//! * `policy`: the kernel policy for a grant, the report's entries, and the preview;
//! * `environment`: the environment a run gets at its level;
//! * `lookup`: finding the program of a command line;
//! * `hint`: the confinement hint for a failure that looks like a kernel refusal.

mod attempts;
pub(crate) mod egress;
mod environment;
mod hint;
mod lookup;
mod outcome;
mod policy;
mod process;
pub(crate) mod session;

use std::time::Instant;

use serde_json::Value;

use crate::format::SkillType;
use crate::params;
use crate::registry::LoadedSkill;
use crate::result::{EnforcementEntry, SkillResult, Status};
use crate::security::SecurityContext;

pub(crate) use attempts::{ExecOptions, Step, StepKind};
pub use environment::DEFAULT_PATH;
pub use policy::enforcement_entries;
pub(crate) use policy::preview;
pub use process::OUTPUT_LIMIT;
pub use session::{
    CallError, SessionReport, Sessions, DEFAULT_IDLE_TIMEOUT, DEFAULT_LIFETIME, INTERRUPT_GRACE,
    MAX_SESSIONS, MAX_TRUSTED_LIFETIME,
};

impl LoadedSkill {
    /// Runs this skill with `params` under `ctx` (the plan's `execute_with_security`), under
    /// the execution id the caller made and recorded in the run's opening audit event, with
    /// retry timing and an observer of each attempt and fallback (the audit log's hook).
    ///
    /// Only [`crate::Runtime::run_with`] calls this: it is the one path that decides the
    /// level, records the run and keeps the circuit breaker, and nothing outside this crate
    /// can start a skill's process without it. The result is always a [`SkillResult`];
    /// refusals and failures are statuses, not `Err`s.
    pub(crate) async fn execute_with_security(
        &self,
        params: &Value,
        ctx: &SecurityContext,
        options: &ExecOptions<'_>,
        execution_id: String,
    ) -> SkillResult {
        let started = Instant::now();
        let def = &self.def;
        let mut result = SkillResult::new(Status::Error, &def.name, execution_id);
        result.trust_level = Some(ctx.trust_level);

        if def.skill_type == SkillType::CodeSession {
            // A session's input is its code (and session id), not declared parameters.
            let grant = match ctx.validate_execution(def) {
                Ok(g) => g,
                Err(denial) => {
                    result.status = Status::Denied;
                    result.message = Some(denial.message());
                    result.denial = Some(denial);
                    return finish(result, started);
                }
            };
            result =
                session::execute(def, params, ctx, &grant, options.sessions, options.audit, result)
                    .await;
            result.grant = Some(grant);
            return finish(result, started);
        }
        let params = match params::validate(def, params) {
            Ok(p) => p,
            Err(problems) => {
                tracing::debug!(problems = problems.len(), "invalid parameters: refused");
                result.status = Status::Invalid;
                let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                result.message = Some(format!("invalid parameters: {}", list.join("; ")));
                result.problems = problems;
                return finish(result, started);
            }
        };
        if let Err(why) = params::check_expansion(def, &params) {
            tracing::debug!("invalid parameters: refused");
            result.status = Status::Invalid;
            result.message = Some(format!("invalid parameters: {why}"));
            return finish(result, started);
        }
        let grant = match ctx.validate_execution(def) {
            Ok(g) => g,
            Err(denial) => {
                tracing::debug!(permission = ?denial.permission, "declaration denied");
                result.status = Status::Denied;
                result.message = Some(denial.message());
                result.denial = Some(denial);
                return finish(result, started);
            }
        };
        tracing::debug!(
            network = grant.network.as_str(),
            process_spawn = grant.process_spawn.as_str(),
            "declaration granted"
        );

        match def.skill_type {
            SkillType::Command | SkillType::CodeInline => {
                result = attempts::run_resilient(def, &params, ctx, &grant, result, options).await;
            }
            // Returned above, before the parameters are validated.
            SkillType::CodeSession => {}
            SkillType::PromptInline | SkillType::Conversation => {
                match crate::prompt::render(def, &params, &ctx.workspace, &grant) {
                    Ok(text) => {
                        result.status = Status::Success;
                        result.stdout = text;
                    }
                    Err(e) => {
                        result.status = Status::Error;
                        result.message = Some(format!("cannot render the prompt: {e}"));
                    }
                }
            }
        }
        result.grant = Some(grant);
        finish(result, started)
    }

    /// What a run of this skill under `ctx` would have enforced, without running it: the
    /// report `skillbox info` shows. Empty for prompt skills, which start no process. An
    /// `Err` is the message a run would fail with (a denial, or a missing mechanism).
    pub fn preview_enforcement(
        &self,
        ctx: &SecurityContext,
    ) -> Result<Vec<EnforcementEntry>, String> {
        let grant = ctx.validate_execution(&self.def).map_err(|d| d.message())?;
        if !self.def.skill_type.runs_process() {
            return Ok(Vec::new());
        }
        preview(&grant, &ctx.workspace, ctx.allow_weaker_isolation)
    }
}

fn finish(mut result: SkillResult, started: Instant) -> SkillResult {
    result.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    result
}

/// What the tests of the modules share: a skill definition, a workspace and a context.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use crate::format::SkillDef;
    use crate::security::{EffectiveGrant, SecurityContext, TrustLevel};

    /// `v` parsed as a skill file; panics on a problem.
    pub(crate) fn def(v: Value) -> SkillDef {
        let bytes = serde_json::to_vec(&v).expect("json");
        crate::format::parse_skill(Path::new("t.json"), &bytes).expect("a valid skill")
    }

    /// A workspace directory, canonical, that anyone may enter (the tests also run as
    /// `nobody`).
    pub(crate) fn workspace() -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let canonical = d.path().canonicalize().expect("canonical");
        (d, canonical)
    }

    /// The context of `level` in `ws`, and what it grants `def`.
    pub(crate) fn granted(
        level: TrustLevel,
        ws: &Path,
        def: &SkillDef,
    ) -> (SecurityContext, EffectiveGrant) {
        let ctx = SecurityContext::for_trust_level(level, ws);
        let grant = ctx.validate_execution(def).expect("granted");
        (ctx, grant)
    }
}
