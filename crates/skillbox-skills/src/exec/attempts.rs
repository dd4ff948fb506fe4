//! Attempts, retries with backoff, then fallbacks: each a fresh, fully confined run under the
//! same context and grant, each reported to the caller's observer.

use std::time::Duration;

use crate::format::SkillDef;
use crate::params::Params;
use crate::resilience::{Plan, Verdict};
use crate::result::{PlantedReport, SkillResult, Status};
use crate::security::{EffectiveGrant, SecurityContext};

/// What a [`Step`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum StepKind {
    /// The first run, or a retry of it.
    Attempt,
    /// A fallback command after the attempts failed.
    Fallback,
}

/// One attempt or fallback of a run, as reported to [`ExecOptions::observer`].
#[derive(Debug)]
pub(crate) struct Step<'a> {
    /// An attempt or a fallback.
    pub kind: StepKind,
    /// Attempt number (1 for the first), or fallback number (1 for the first).
    pub number: u32,
    /// The command line that ran.
    pub command: String,
    /// What it gave.
    pub result: &'a SkillResult,
    /// When another attempt follows: after how long, and why the failure was retryable.
    pub retry: Option<(Duration, String)>,
}

/// Options of one execution.
#[derive(Clone, Copy)]
pub(crate) struct ExecOptions<'a> {
    /// Base delay of the retry backoff (the first retry waits about this long).
    pub retry_base_delay: Duration,
    /// Called after each attempt and each fallback.
    pub observer: Option<&'a (dyn Fn(&Step<'_>) + Sync)>,
    /// The owner's sessions, for `code_session` skills; `None`: a call runs in a new
    /// session that ends with it.
    pub sessions: Option<&'a super::session::Sessions>,
    /// The audit log, for the session events.
    pub audit: Option<&'a std::sync::Arc<skillbox_audit::AuditLog>>,
}

impl Default for ExecOptions<'_> {
    fn default() -> Self {
        Self {
            retry_base_delay: Duration::from_secs(1),
            observer: None,
            sessions: None,
            audit: None,
        }
    }
}

impl ExecOptions<'_> {
    fn observe(&self, step: &Step<'_>) {
        if let Some(o) = self.observer {
            o(step)
        }
    }
}

/// Runs `def`'s command until it succeeds, fails for good or spends its retries, then its
/// fallbacks in order until one succeeds. `template` is the result each run starts from.
pub(super) async fn run_resilient(
    def: &SkillDef,
    params: &Params,
    ctx: &SecurityContext,
    grant: &EffectiveGrant,
    template: SkillResult,
    options: &ExecOptions<'_>,
) -> SkillResult {
    let plan = Plan::of(def);
    let (last, attempts) = match attempts(def, &plan, params, ctx, grant, &template, options).await
    {
        Ok(done) => return done,
        Err(last) => last,
    };
    let fallbacks = plan.fallbacks(def);
    if fallbacks.is_empty() {
        return last;
    }
    let mut planted = last.planted.clone();
    let mut network = last.network.clone();
    let mut result = last;
    for (i, (fcommand, fargs)) in fallbacks.iter().enumerate() {
        tracing::debug!(fallback = i + 1, "running a fallback");
        let mut r = template.clone();
        super::process::run(def, params, ctx, grant, (fcommand, fargs), &mut r).await;
        r.attempts = attempts;
        let line = std::iter::once(fcommand.clone())
            .chain(fargs.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        r.fallback = Some(line.clone());
        options.observe(&Step {
            kind: StepKind::Fallback,
            number: i as u32 + 1,
            command: line,
            result: &r,
            retry: None,
        });
        carry_planted(&mut planted, &mut r, &def.name);
        carry_network(&mut network, &mut r);
        if r.status == Status::Success {
            return r;
        }
        result = r;
    }
    result.message = Some(format!(
        "skill `{}` failed after {} attempt(s) and {} fallback(s); last: {}",
        def.name,
        attempts,
        fallbacks.len(),
        result.message.as_deref().unwrap_or("failed")
    ));
    result
}

/// The skill's own command, retried as its plan says. `Ok` with the result when it is
/// final (a success, or a failure no fallback may follow); `Err` with the last failure and
/// the number of attempts made when the fallbacks may run.
async fn attempts(
    def: &SkillDef,
    plan: &Plan,
    params: &Params,
    ctx: &SecurityContext,
    grant: &EffectiveGrant,
    template: &SkillResult,
    options: &ExecOptions<'_>,
) -> Result<SkillResult, (SkillResult, u32)> {
    let command = def.command.as_deref().unwrap_or_default();
    let mut number = 1;
    let mut planted = None;
    let mut network = Vec::new();
    loop {
        let mut r = template.clone();
        super::process::run(def, params, ctx, grant, (command, &def.args), &mut r).await;
        r.attempts = number;
        let verdict = plan.classify(&r);
        let retry = match &verdict {
            Verdict::Retry(why) if number <= plan.max_retries => {
                Some((plan.delay(number, options.retry_base_delay), why.clone()))
            }
            _ => None,
        };
        options.observe(&Step {
            kind: StepKind::Attempt,
            number,
            command: command.to_string(),
            result: &r,
            retry: retry.clone(),
        });
        carry_planted(&mut planted, &mut r, &def.name);
        carry_network(&mut network, &mut r);
        match retry {
            Some((delay, why)) => {
                let delay_ms = delay.as_millis() as u64;
                tracing::debug!(attempt = number, delay_ms, why = why.as_str(), "retrying");
                tokio::time::sleep(delay).await;
                number += 1;
            }
            None if r.status == Status::Success || verdict.is_final() => return Ok(r),
            None => return Err((r, number)),
        }
    }
}

/// Adds what earlier runs of this execution planted (`earlier`) to the result of the one
/// that just ended, `r`, after its step was observed (each step's audit events name only
/// what its own run planted); `earlier` then holds everything so far. The result of the
/// execution lists everything its attempts and fallbacks planted.
fn carry_planted(earlier: &mut Option<PlantedReport>, r: &mut SkillResult, skill: &str) {
    match (earlier.as_ref(), r.planted.as_mut()) {
        (Some(e), Some(now)) => now.after(e, skill),
        (Some(e), None) => r.planted = Some(e.clone()),
        (None, _) => {}
    }
    earlier.clone_from(&r.planted);
}

/// Puts the connections of earlier runs of this execution (`earlier`) before those of the
/// one that just ended, after its step was observed (each step's audit events name only its
/// own run's connections); `earlier` then holds all so far.
fn carry_network(earlier: &mut Vec<skillbox_egress::Connection>, r: &mut SkillResult) {
    let own = std::mem::take(&mut r.network);
    earlier.extend(own);
    r.network.clone_from(earlier);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::exec::testing::{def, granted, workspace};
    use crate::security::TrustLevel;

    /// Runs `d` through `run_resilient` with a short backoff; returns the result and the
    /// steps observed: kind, number, command, status, whether a retry followed.
    async fn run(d: &SkillDef) -> (SkillResult, Vec<(StepKind, u32, String, Status, bool)>) {
        let (_w, ws) = workspace();
        let (ctx, grant) = granted(TrustLevel::UserVerified, &ws, d);
        let params = crate::params::validate(d, &json!({})).expect("params");
        let steps = Mutex::new(Vec::new());
        let observer = |s: &Step<'_>| {
            let seen = (s.kind, s.number, s.command.clone(), s.result.status, s.retry.is_some());
            steps.lock().expect("lock").push(seen);
        };
        let options = ExecOptions {
            retry_base_delay: Duration::from_millis(1),
            observer: Some(&observer),
            ..ExecOptions::default()
        };
        let template = SkillResult::new(Status::Error, &d.name, "id".into());
        let r = run_resilient(d, &params, &ctx, &grant, template, &options).await;
        (r, steps.into_inner().expect("lock"))
    }

    #[tokio::test]
    async fn retries_then_a_fallback_each_observed() {
        let d = def(json!({"name": "s", "type": "command", "command": "false",
            "resilience": {"retry_attempts": 2, "fallback_command": "echo fell back"}}));
        let (r, steps) = run(&d).await;
        assert_eq!(r.status, Status::Success, "{r:?}");
        assert_eq!((r.attempts, r.fallback.as_deref()), (3, Some("echo fell back")));
        assert_eq!(r.stdout, "fell back\n");
        let attempt = |n, retry| (StepKind::Attempt, n, "false".to_string(), Status::Failed, retry);
        assert_eq!(
            steps,
            vec![
                attempt(1, true),
                attempt(2, true),
                attempt(3, false),
                (StepKind::Fallback, 1, "echo fell back".into(), Status::Success, false),
            ]
        );
    }

    #[tokio::test]
    async fn the_last_failure_names_the_attempts_and_fallbacks() {
        let d = def(json!({"name": "s", "type": "command", "command": "false",
            "resilience": {"fallback_commands": [{"command": "false"}]}}));
        let (r, steps) = run(&d).await;
        assert_eq!((r.status, r.attempts, steps.len()), (Status::Failed, 1, 2), "{r:?}");
        assert_eq!(
            r.message.as_deref(),
            Some(
                "skill `s` failed after 1 attempt(s) and 1 fallback(s); last: skill `s` exited \
                 with code 1"
            )
        );
        // A permanent failure ends the run: no retry, no fallback.
        let d = def(json!({"name": "s", "type": "command", "command": "false",
            "resilience": {"retry_attempts": 3, "fallback_command": "true",
                "error_classification": {"permanent_patterns": ["exited with code 1"]}}}));
        let (r, steps) = run(&d).await;
        assert_eq!((r.status, r.attempts, r.fallback, steps.len()), (Status::Failed, 1, None, 1));
    }
}
