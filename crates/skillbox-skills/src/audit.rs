//! Audit events of a run: what the skills layer records in the security log, and where the
//! log lives.

use std::path::PathBuf;

use serde_json::{json, Value};
use skillbox_audit::text::path as path_text;
use skillbox_audit::{ActionTaken, AuditLog, EventDraft, EventType, RiskLevel};

use crate::exec::StepKind;
use crate::result::{SkillResult, Status};
use crate::security::SecurityContext;

/// `$SKILLBOX_AUDIT_LOG`, else `<skillbox home>/logs/security_events.jsonl`.
pub fn default_audit_path(vars: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    if let Some(p) = vars("SKILLBOX_AUDIT_LOG").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    crate::registry::skillbox_home(vars).map(|h| h.join("logs").join("security_events.jsonl"))
}

/// A digest of the parameters: recorded instead of their values, which may hold secrets.
pub fn params_digest(params: &Value) -> String {
    // serde_json's map is ordered by key, so equal parameters give equal digests.
    skillbox_audit::digest_hex(params.to_string().as_bytes())
}

fn draft(
    event_type: EventType,
    risk: RiskLevel,
    action: ActionTaken,
    skill: &str,
    ctx: Option<&SecurityContext>,
    execution_id: Option<&str>,
    mut details: Value,
) -> EventDraft {
    // Every event of a process on a simulated host says so (a test setting; see
    // skillbox_sandbox::simulated_host).
    if let (Some(sim), Some(map)) = (skillbox_sandbox::simulated_host(), details.as_object_mut()) {
        map.insert("simulated_host".into(), Value::String(sim));
    }
    EventDraft {
        event_type,
        skill_name: skill.to_string(),
        skill_trust_level: ctx.map(|c| c.trust_level.as_str().to_string()),
        risk_level: risk,
        action_taken: action,
        execution_id: execution_id.map(str::to_string),
        attempt: execution_id.map(|_| 1),
        details,
    }
}

/// The event that opens a run, written before anything runs.
pub(crate) fn started(
    skill: &str,
    source: &std::path::Path,
    ctx: &SecurityContext,
    execution_id: &str,
    params: &Value,
) -> EventDraft {
    draft(
        EventType::SkillExecutionStarted,
        RiskLevel::Low,
        ActionTaken::Allowed,
        skill,
        Some(ctx),
        Some(execution_id),
        json!({
            "skill_file": path_text(source),
            "workspace": path_text(&ctx.workspace),
            "params_digest": params_digest(params),
            "trust_level_limits": ctx.resource_limits,
            "allow_weaker_isolation": ctx.allow_weaker_isolation,
        }),
    )
}

/// A run refused before a skill was even found (bad or unknown name).
pub(crate) fn lookup_failed(name: &str, message: &str, params: &Value) -> EventDraft {
    draft(
        EventType::InputValidationFailed,
        RiskLevel::Medium,
        ActionTaken::Blocked,
        name,
        None,
        None,
        json!({"message": message, "params_digest": params_digest(params)}),
    )
}

/// How many refusals of names the rate limit kept out of the log since the last one
/// written (see `crate::refusals`), written when the runtime goes away.
pub(crate) fn refusals_suppressed(count: u64) -> EventDraft {
    draft(
        EventType::InputValidationFailed,
        RiskLevel::Medium,
        ActionTaken::Blocked,
        "*",
        None,
        None,
        json!({
            "message": format!(
                "{count} more refusal(s) of bad or unknown skill names were counted, not \
                 recorded one by one (at most {} are recorded per {} s)",
                crate::refusals::BURST,
                crate::refusals::WINDOW.as_secs()
            ),
            "suppressed": count,
        }),
    )
}

/// The event that closes a run its caller abandoned before it ended (an MCP
/// `notifications/cancelled`, a dropped future). Its processes are gone by then: dropping
/// the run kills its whole process group (and PID namespace).
pub(crate) fn cancelled(
    skill: &str,
    ctx: &SecurityContext,
    execution_id: &str,
    elapsed: std::time::Duration,
) -> EventDraft {
    draft(
        EventType::SkillExecutionCancelled,
        RiskLevel::Low,
        ActionTaken::Terminated,
        skill,
        Some(ctx),
        Some(execution_id),
        json!({
            "status": "cancelled",
            "message": format!("skill `{skill}` was cancelled by its caller after {} ms; all its processes were killed", elapsed.as_millis()),
            "duration_ms": elapsed.as_millis() as u64,
        }),
    )
}

/// A grant made (`revoked` false) or removed (`revoked` true) by a person.
pub(crate) fn trust_changed(
    subject: &str,
    grant: &crate::trust::Grant,
    revoked: bool,
) -> EventDraft {
    let (kind, verb) = if revoked {
        (EventType::TrustRevoked, "revoked from")
    } else {
        (EventType::TrustGranted, "granted to")
    };
    let mut d = draft(
        kind,
        RiskLevel::Medium,
        ActionTaken::Allowed,
        subject,
        None,
        None,
        json!({
            "message": format!("trust level {} {verb} `{subject}`", grant.level),
            "level": grant.level,
            "digest": grant.digest,
            "path": path_text(&grant.path),
            "granted_at": grant.granted_at,
        }),
    );
    d.skill_trust_level = Some(grant.level.as_str().to_string());
    d
}

/// A run refused before its context could be made: the trust store or the policy file cannot
/// be read, or the content a grant holds for cannot be sealed.
pub(crate) fn refused_early(skill: &str, message: &str, params: &Value) -> EventDraft {
    draft(
        EventType::SkillExecutionFailed,
        RiskLevel::Medium,
        ActionTaken::Blocked,
        skill,
        None,
        None,
        json!({"message": message, "params_digest": params_digest(params)}),
    )
}

/// A grant that no longer matches the skill's content.
pub(crate) fn trust_lapsed(
    skill: &str,
    grant: &crate::trust::Grant,
    now: &str,
    ctx: &SecurityContext,
    message: &str,
) -> EventDraft {
    draft(
        EventType::TrustGrantLapsed,
        RiskLevel::Medium,
        // The grant is not applied; the run goes on at the skill's default level.
        ActionTaken::Allowed,
        skill,
        Some(ctx),
        None,
        json!({
            "message": message,
            "granted_level": grant.level,
            "granted_digest": grant.digest,
            "granted_at": grant.granted_at,
            "digest_now": now,
            "path": path_text(&grant.path),
        }),
    )
}

/// The events that close a run: its outcome, then a confinement violation and weakened
/// isolation when they apply.
pub(crate) fn finished(r: &SkillResult, ctx: &SecurityContext) -> Vec<EventDraft> {
    let (kind, risk, action) = match r.status {
        Status::Success => {
            (EventType::SkillExecutionCompleted, RiskLevel::Low, ActionTaken::Allowed)
        }
        Status::Failed => (EventType::SkillExecutionFailed, RiskLevel::Low, ActionTaken::Allowed),
        Status::Error => (EventType::SkillExecutionFailed, RiskLevel::Medium, ActionTaken::Blocked),
        Status::Denied => (EventType::PermissionDenied, RiskLevel::Medium, ActionTaken::Blocked),
        Status::Invalid => {
            (EventType::InputValidationFailed, RiskLevel::Medium, ActionTaken::Blocked)
        }
        Status::Timeout => {
            (EventType::SkillExecutionTimedOut, RiskLevel::Medium, ActionTaken::Terminated)
        }
        Status::LimitExceeded => {
            (EventType::ResourceLimitExceeded, RiskLevel::Medium, ActionTaken::Terminated)
        }
    };
    let not_enforced = r.not_enforced();
    let id = Some(r.execution_id.as_str());
    let mut out = vec![draft(
        kind,
        risk,
        action,
        &r.skill,
        Some(ctx),
        id,
        json!({
            "status": r.status.as_str(),
            "message": r.message,
            "attempts": r.attempts,
            "fallback": r.fallback,
            "limit": r.limit,
            "exit_code": r.exit_code,
            "signal": r.signal,
            "duration_ms": r.duration_ms,
            "usage": r.usage,
            "grant": r.grant,
            "denial": r.denial,
            "problems": r.problems,
            "stdout_bytes": r.stdout.len(),
            "stderr_bytes": r.stderr.len(),
            "not_enforced": not_enforced,
        }),
    )];
    if let Some(hint) = &r.confinement {
        out.push(draft(
            EventType::SandboxViolation,
            RiskLevel::High,
            ActionTaken::Blocked,
            &r.skill,
            Some(ctx),
            id,
            json!({"message": hint}),
        ));
    }
    if ctx.allow_weaker_isolation && !not_enforced.is_empty() {
        out.push(draft(
            EventType::IsolationWeakened,
            RiskLevel::High,
            ActionTaken::Allowed,
            &r.skill,
            Some(ctx),
            id,
            json!({
                "message": format!("run with weaker isolation by explicit opt-in; not enforced: {}", not_enforced.join(", ")),
                "not_enforced": not_enforced,
            }),
        ));
    }
    out
}

/// The event for a retry or a fallback.
pub(crate) fn step(
    step: &crate::exec::Step<'_>,
    skill: &str,
    ctx: &SecurityContext,
    execution_id: &str,
) -> Option<EventDraft> {
    let r = step.result;
    let mut d = match (step.kind, &step.retry) {
        (StepKind::Attempt, Some((delay, why))) => draft(
            EventType::RetryAttempt,
            RiskLevel::Low,
            ActionTaken::Allowed,
            skill,
            Some(ctx),
            Some(execution_id),
            json!({
                "message": format!("attempt {} failed ({}); retrying in {} ms: {why}", step.number, r.status.as_str(), delay.as_millis()),
                "failed_attempt": step.number,
                "status": r.status.as_str(),
                "exit_code": r.exit_code,
                "delay_ms": delay.as_millis() as u64,
                "reason": why,
            }),
        ),
        (StepKind::Fallback, _) => draft(
            EventType::FallbackExecuted,
            RiskLevel::Low,
            ActionTaken::Allowed,
            skill,
            Some(ctx),
            Some(execution_id),
            json!({
                "message": format!("fallback {} ran: {}", step.number, r.status.as_str()),
                "fallback": step.number,
                "command": step.command,
                "status": r.status.as_str(),
                "exit_code": r.exit_code,
            }),
        ),
        _ => return None,
    };
    d.attempt = Some(if step.kind == StepKind::Attempt { step.number + 1 } else { step.number });
    Some(d)
}

/// Most `NetworkConnection` events recorded for one attempt or fallback, one per
/// connection; the rest are counted in one more event (a run that opens thousands of
/// connections must not flood the log, but its count and its refusals stay visible there).
pub(crate) const MAX_NETWORK_EVENTS: usize = 100;

/// The `NetworkConnection` events of the connections one attempt or fallback asked the
/// egress proxy for (its result's `network`, before earlier steps' are added): one per
/// connection, allowed (`Allowed`, low risk) or refused (`Blocked`, medium), at most
/// [`MAX_NETWORK_EVENTS`], then one that counts the rest and their refusals.
pub(crate) fn network(
    step: &crate::exec::Step<'_>,
    skill: &str,
    ctx: &SecurityContext,
    execution_id: &str,
) -> Vec<EventDraft> {
    let all = &step.result.network;
    let fallback = (step.kind == StepKind::Fallback).then_some(step.number);
    let event = |risk, action, details: Value| {
        let mut d = draft(
            EventType::NetworkConnection,
            risk,
            action,
            skill,
            Some(ctx),
            Some(execution_id),
            details,
        );
        d.attempt = Some(step.number);
        d
    };
    let mut out: Vec<EventDraft> = all
        .iter()
        .take(MAX_NETWORK_EVENTS)
        .map(|c| {
            let (risk, action, message) = match (c.allowed, &c.reason) {
                (true, _) => (
                    RiskLevel::Low,
                    ActionTaken::Allowed,
                    format!("the run reached {}:{}", c.host, c.port),
                ),
                (false, why) => (
                    RiskLevel::Medium,
                    ActionTaken::Blocked,
                    format!(
                        "the run was refused {}:{}: {}",
                        c.host,
                        c.port,
                        why.as_deref().unwrap_or("refused")
                    ),
                ),
            };
            let mut details = json!({"message": message, "fallback": fallback});
            if let (Value::Object(m), Ok(Value::Object(c))) =
                (&mut details, serde_json::to_value(c))
            {
                m.extend(c);
            }
            event(risk, action, details)
        })
        .collect();
    if all.len() > MAX_NETWORK_EVENTS {
        let rest = &all[MAX_NETWORK_EVENTS..];
        let refused = rest.iter().filter(|c| !c.allowed).count();
        out.push(event(
            RiskLevel::Medium,
            ActionTaken::Allowed,
            json!({
                "message": format!(
                    "the run asked for {} more connections, not recorded one by one (at most \
                     {MAX_NETWORK_EVENTS} are), {refused} of them refused",
                    rest.len()
                ),
                "more": rest.len(),
                "refused": refused,
                "fallback": fallback,
            }),
        ));
    }
    out
}

/// Most `SandboxViolation` events recorded for what one attempt or fallback planted, one
/// per entry; the rest are counted in one more event.
pub(crate) const MAX_PLANTED_EVENTS: usize = 20;

/// The `violation` detail of an event about a planted entry.
const PLANTED: &str = "planted-protected-entry";

/// The `violation` detail of an event about an incomplete check for planted entries.
const PLANTED_UNCHECKED: &str = "planted-check-incomplete";

/// The `SandboxViolation` events of what the run of one attempt or fallback planted under a
/// protected name (its result's `planted`, before earlier steps' are added): one per entry
/// (at most [`MAX_PLANTED_EVENTS`], then one counting the rest), and one when the sweep was
/// incomplete.
pub(crate) fn planted(
    step: &crate::exec::Step<'_>,
    skill: &str,
    ctx: &SecurityContext,
    execution_id: &str,
) -> Vec<EventDraft> {
    let Some(p) = &step.result.planted else { return Vec::new() };
    let event = |details: Value| {
        let mut d = draft(
            EventType::SandboxViolation,
            RiskLevel::High,
            ActionTaken::Blocked,
            skill,
            Some(ctx),
            Some(execution_id),
            details,
        );
        d.attempt = Some(step.number);
        d
    };
    let fallback = (step.kind == StepKind::Fallback).then_some(step.number);
    let mut out: Vec<EventDraft> = p
        .entries
        .iter()
        .take(MAX_PLANTED_EVENTS)
        .map(|e| {
            let path = path_text(&e.path);
            let message = match (&e.to, &e.error) {
                (Some(to), _) => format!(
                    "the run planted the protected entry {path}; skillbox moved it to {}",
                    path_text(to)
                ),
                (None, Some(why)) => format!(
                    "the run planted the protected entry {path}; skillbox could not take it \
                     away: {why}"
                ),
                (None, None) => {
                    format!("the run planted the protected entry {path}; skillbox removed it")
                }
            };
            event(json!({
                "message": message,
                "violation": PLANTED,
                "path": path,
                "action": e.action,
                "quarantined_to": e.to.as_deref().map(path_text),
                "error": e.error,
                "fallback": fallback,
            }))
        })
        .collect();
    let listed = out.len() as u64;
    if p.count > listed {
        let more = p.count - listed;
        out.push(event(json!({
            "message": format!(
                "the run planted {more} more protected entries, not recorded one by one (at \
                 most {MAX_PLANTED_EVENTS} are); skillbox took them away as it did the others"
            ),
            "violation": PLANTED,
            "more": more,
            "fallback": fallback,
        })));
    }
    if let Some(why) = &p.incomplete {
        out.push(event(json!({
            "message": format!(
                "the check for planted protected entries was incomplete, so one may remain in \
                 a writable tree: {why}"
            ),
            "violation": PLANTED_UNCHECKED,
            "reason": why,
            "fallback": fallback,
        })));
    }
    out
}

/// Appends `events`; the first failure is returned as text for the result (and reported as
/// a `tracing` warning).
pub(crate) fn write(log: &AuditLog, events: &[EventDraft]) -> Option<String> {
    let failed = events.iter().find_map(|e| log.append(e).err().map(|err| err.to_string()));
    match &failed {
        None => tracing::debug!(
            events = ?events.iter().map(|e| e.event_type).collect::<Vec<_>>(),
            "audit: recorded"
        ),
        Some(e) => tracing::warn!(error = e.as_str(), "audit: an event could not be written"),
    }
    failed
}

/// A session of `skill` started (see `crate::exec::session`).
pub(crate) fn session_started(
    skill: &str,
    ctx: &SecurityContext,
    session_id: &str,
    timing: crate::exec::session::Timing,
) -> EventDraft {
    draft(
        EventType::SessionStarted,
        RiskLevel::Low,
        ActionTaken::Allowed,
        skill,
        Some(ctx),
        None,
        json!({
            "interpreter_id": session_id,
            "workspace": path_text(&ctx.workspace),
            "idle_timeout_s": timing.idle.as_secs_f64(),
            "lifetime_s": timing.lifetime.as_secs_f64(),
            "allow_weaker_isolation": ctx.allow_weaker_isolation,
        }),
    )
}

/// One call in a session: a digest of its code, never the code.
pub(crate) fn session_call(
    skill: &str,
    level: crate::security::TrustLevel,
    session_id: &str,
    execution_id: &str,
    code_sha256: &str,
    outcome: &str,
    call_ms: f64,
) -> EventDraft {
    let mut d = draft(
        EventType::SessionCall,
        RiskLevel::Low,
        ActionTaken::Allowed,
        skill,
        None,
        Some(execution_id),
        json!({
            "interpreter_id": session_id,
            "code_sha256": code_sha256,
            "outcome": outcome,
            "duration_ms": call_ms,
        }),
    );
    d.skill_trust_level = Some(level.as_str().to_string());
    d
}

/// A session ended, and why; its processes are gone.
pub(crate) fn session_ended(
    skill: &str,
    level: crate::security::TrustLevel,
    session_id: &str,
    reason: &str,
    message: &str,
) -> EventDraft {
    let risk = match reason {
        "closed" | "idle" | "owner-gone" | "lifetime" | "exited" => RiskLevel::Low,
        _ => RiskLevel::Medium,
    };
    let mut d = draft(
        EventType::SessionEnded,
        risk,
        ActionTaken::Terminated,
        skill,
        None,
        None,
        json!({"interpreter_id": session_id, "reason": reason, "message": message}),
    );
    d.skill_trust_level = Some(level.as_str().to_string());
    d
}

/// A person is asked whether to allow a run that was denied for want of a trust level:
/// what they are shown.
pub(crate) fn consent_requested(q: &crate::consent::ConsentQuestion, via: &str) -> EventDraft {
    let mut d = draft(
        EventType::ConsentRequested,
        RiskLevel::Medium,
        ActionTaken::Blocked,
        &q.skill,
        None,
        None,
        json!({
            "message": format!(
                "asked the person whether `{}` may run at trust level {}", q.skill, q.level
            ),
            "via": via,
            "subject": q.subject,
            "path": path_text(&q.path),
            "level": q.level,
            "denied_at": q.level_now,
            "digest": q.digest,
            "denial": q.denial,
            "grant": q.grant,
        }),
    );
    d.skill_trust_level = Some(q.level_now.as_str().to_string());
    d
}

/// The person's answer to a consent question.
pub(crate) fn consent_answered(
    q: &crate::consent::ConsentQuestion,
    answer: crate::consent::ConsentAnswer,
    via: &str,
) -> EventDraft {
    let action = if answer.allows() { ActionTaken::Allowed } else { ActionTaken::Blocked };
    let mut d = draft(
        EventType::ConsentAnswered,
        RiskLevel::Medium,
        action,
        &q.skill,
        None,
        None,
        json!({
            "message": format!(
                "the person answered `{}` to running `{}` at trust level {}",
                answer.as_str(), q.skill, q.level
            ),
            "answer": answer.as_str(),
            "via": via,
            "subject": q.subject,
            "level": q.level,
            "digest": q.digest,
        }),
    );
    d.skill_trust_level = Some(q.level_now.as_str().to_string());
    d
}
