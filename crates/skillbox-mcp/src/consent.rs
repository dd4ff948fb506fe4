//! Consent through the agent: when a call is denied for want of a trust level, the person
//! is asked, through the client's elicitation interface, whether to allow it once, always,
//! or not (see [`skillbox_skills::consent`] for the question and what each answer does).
//!
//! How the question travels depends on the session:
//!
//! * **handshake-era** sessions (before 2026-07-28), whose client declared the
//!   `elicitation` capability (form mode) at `initialize`: an `elicitation/create` request,
//!   while the `tools/call` waits (at most [`ServeOptions::consent_timeout`]; a cancelled
//!   call stops
//!   waiting);
//! * **2026-07-28** sessions, whose request declares the capability in its `_meta`: the
//!   `tools/call` returns an `InputRequiredResult` holding the `elicitation/create` request
//!   and an opaque `requestState`; the client asks the person and retries the call with the
//!   answer in `inputResponses`. The state is a random handle to a question kept here (at
//!   most [`MAX_PENDING`], for [`ServeOptions::consent_timeout`]), used once, and valid only
//!   for a retry of
//!   the same tool with the same arguments. A question let go without its answer (timed
//!   out, dropped for room, or spent by a retry of another call) is recorded `unanswered`.
//!
//! A client that did not declare the capability is never asked: the call returns the denial.
//! The answer is read only from the elicitation response, never from tool arguments (which
//! the skill's input schema refuses anyway: undeclared keys are invalid).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientResult, ElicitRequest,
    ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema, EnumSchema, ErrorData,
    InputRequest, InputRequests, InputRequiredResult, ProtocolVersion, ServerRequest,
};
use rmcp::service::{PeerRequestOptions, RequestContext};
use rmcp::RoleServer;
use serde_json::Value;

use skillbox_skills::{Consent, ConsentAnswer, ConsentQuestion};

use crate::SkillServer;

/// Most questions of 2026-07-28 sessions kept waiting for their retry at once (the oldest
/// is dropped beyond): a client cannot grow the server's memory by never answering.
pub(crate) const MAX_PENDING: usize = 256;
/// The key of skillbox's question in an `InputRequiredResult`'s `inputRequests`.
const INPUT_KEY: &str = "skillbox_consent";
/// The form's one field.
const FIELD: &str = "decision";

/// Questions of 2026-07-28 sessions, waiting for the retry that carries their answer; shared
/// by every connection of a server (a stateless HTTP client may retry on another one).
#[derive(Default)]
pub(crate) struct Pending {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    question: ConsentQuestion,
    /// The call asked about: its tool and a digest of its arguments.
    tool: String,
    arguments: String,
    /// The denial to return when the answer does not allow the call.
    denied: CallToolResult,
    asked: Instant,
}

impl Pending {
    /// Keeps `entry` under `handle`. Returns the questions it displaced: those whose time ran
    /// out, and the oldest beyond [`MAX_PENDING`]; the caller records them as unanswered.
    fn insert(&self, handle: String, entry: Entry, timeout: Duration) -> Vec<Entry> {
        let mut dropped = self.expire(timeout);
        let Ok(mut map) = self.entries.lock() else { return dropped };
        while map.len() >= MAX_PENDING {
            let oldest = map.iter().min_by_key(|(_, e)| e.asked).map(|(k, _)| k.clone());
            match oldest.and_then(|k| map.remove(&k)) {
                Some(e) => dropped.push(e),
                None => break,
            };
        }
        map.insert(handle, entry);
        dropped
    }

    /// The questions whose time (`timeout`) ran out, removed.
    fn expire(&self, timeout: Duration) -> Vec<Entry> {
        let Ok(mut map) = self.entries.lock() else { return Vec::new() };
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, e)| e.asked.elapsed() >= timeout)
            .map(|(k, _)| k.clone())
            .collect();
        expired.iter().filter_map(|k| map.remove(k)).collect()
    }

    /// The question `handle` names, removed: each is answered at most once. `Err`: its time
    /// had run out (the caller records it as unanswered).
    fn take(&self, handle: &str, timeout: Duration) -> Option<Result<Entry, Entry>> {
        let mut map = self.entries.lock().ok()?;
        let entry = map.remove(handle)?;
        Some(if entry.asked.elapsed() < timeout { Ok(entry) } else { Err(entry) })
    }
}

/// Records each of `entries`, questions of 2026-07-28 sessions that no retry answered in
/// time, as `unanswered`: every question in the audit log has its answer event.
fn record_unanswered(server: &SkillServer, entries: Vec<Entry>) {
    if entries.is_empty() {
        return;
    }
    let rt = server.runtime();
    for e in entries {
        let answer = ConsentAnswer::Unanswered;
        if let Err(err) =
            rt.record_consent_answer(&e.question, answer, Channel::InputRequired.as_str())
        {
            tracing::warn!(error = %err, "an unanswered consent question could not be recorded");
        }
    }
}

/// Records the questions whose time ran out since the last look (the server's watcher calls
/// this at every poll), so that a question no retry answers gets its `unanswered` event
/// within a poll of its timeout.
pub(crate) fn expire(server: &SkillServer) {
    record_unanswered(server, server.shared.consent.expire(server.shared.options.consent_timeout));
}

/// How the person can be asked in this call's session, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// `elicitation/create`, sent while the call waits.
    Request,
    /// An `InputRequiredResult`, answered by the call's retry.
    InputRequired,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Request => "elicitation/create",
            Self::InputRequired => "input_required",
        }
    }
}

/// The channel to ask through: `None` unless the client declared form elicitation (for
/// this request, or at `initialize` on a handshake-era session).
fn channel(context: &RequestContext<RoleServer>) -> Option<Channel> {
    let caps = context.client_capabilities()?;
    let e = caps.elicitation.as_ref()?;
    // Declaring neither mode means form (the 2025-06-18 shape); URL only cannot show a form.
    if e.form.is_none() && e.url.is_some() {
        return None;
    }
    let modern = context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
    Some(if modern { Channel::InputRequired } else { Channel::Request })
}

/// A `tools/call`, with the person asked when it is denied for want of a trust level and
/// the client can ask them.
pub(crate) async fn call(
    server: &SkillServer,
    mut request: CallToolRequestParams,
    context: RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    // A retry carrying the answer to a question asked on a 2026-07-28 session.
    let state = request.request_state.take();
    let responses = request.input_responses.take();
    if let Some(handle) = state {
        match server.shared.consent.take(&handle, server.shared.options.consent_timeout) {
            Some(Ok(entry)) => {
                if entry.tool == request.name && entry.arguments == arguments_digest(&request) {
                    let answer = answer_of(responses.as_ref().and_then(|r| r.get(INPUT_KEY)));
                    return answered(
                        server,
                        &request,
                        &context,
                        entry,
                        answer,
                        Channel::InputRequired,
                    )
                    .await;
                }
                // The question stays unanswered: it was asked about another call.
                tracing::debug!("a consent answer for another call: ignored");
                record_unanswered(server, vec![entry]);
            }
            Some(Err(expired)) => record_unanswered(server, vec![expired]),
            None => {}
        }
        // An unknown, expired or mismatched state answers nothing: the call runs afresh.
    }

    let (result, reply) = server.call(request.clone(), None, &context).await?;
    let Some(channel) = channel(&context) else { return Ok(reply.into()) };
    let rt = server.runtime();
    let Some(question) = rt.consent_question(&result) else { return Ok(reply.into()) };
    // The handle a 2026-07-28 retry names the question by; none without randomness, and then
    // nothing is asked (a guessable handle would let another client answer).
    let handle = match channel {
        Channel::InputRequired => match new_handle() {
            Some(h) => Some(h),
            None => return Ok(reply.into()),
        },
        Channel::Request => None,
    };
    // Nothing is asked that cannot be recorded.
    if let Err(e) = rt.record_consent_asked(&question, channel.as_str()) {
        tracing::warn!(error = %e, "consent not asked: the audit log cannot record it");
        return Ok(reply.into());
    }
    tracing::debug!(skill = question.skill.as_str(), via = channel.as_str(), "asking consent");
    let elicit = elicit_request(&question);
    match handle {
        Some(handle) => {
            let mut requests = InputRequests::new();
            requests.insert(INPUT_KEY.to_string(), InputRequest::Elicitation(elicit));
            let dropped = server.shared.consent.insert(
                handle.clone(),
                Entry {
                    question,
                    tool: request.name.to_string(),
                    arguments: arguments_digest(&request),
                    denied: reply,
                    asked: Instant::now(),
                },
                server.shared.options.consent_timeout,
            );
            record_unanswered(server, dropped);
            Ok(InputRequiredResult::new(Some(requests), Some(handle)).into())
        }
        None => {
            let answer = ask(&context, elicit, server.shared.options.consent_timeout).await;
            let entry = Entry {
                question,
                tool: request.name.to_string(),
                arguments: String::new(),
                denied: reply,
                asked: Instant::now(),
            };
            answered(server, &request, &context, entry, answer, Channel::Request).await
        }
    }
}

/// Acts on `answer` to `entry`'s question: records it, then runs the call (`once`,
/// `always` after writing the grant) or returns the denial.
async fn answered(
    server: &SkillServer,
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
    entry: Entry,
    answer: ConsentAnswer,
    channel: Channel,
) -> Result<CallToolResponse, ErrorData> {
    let rt = server.runtime();
    let q = &entry.question;
    if let Err(e) = rt.record_consent_answer(q, answer, channel.as_str()) {
        tracing::warn!(error = %e, "consent answer not acted on: the audit log cannot record it");
        return Ok(entry.denied.into());
    }
    tracing::debug!(skill = q.skill.as_str(), answer = answer.as_str(), "consent answered");
    match answer {
        ConsentAnswer::Once => {}
        ConsentAnswer::Always => {
            if let Err(e) = rt.grant_consented(q) {
                let text = format!("skill `{}` was not run: {e}", q.skill);
                return Ok(
                    CallToolResult::error(vec![rmcp::model::ContentBlock::text(text)]).into()
                );
            }
        }
        _ => return Ok(entry.denied.into()),
    }
    let (_, reply) = server.call(request.clone(), Some(Consent::from(q)), context).await?;
    Ok(reply.into())
}

/// Sends `elicit` and waits for the answer (or the call's cancellation, or the timeout).
async fn ask(
    context: &RequestContext<RoleServer>,
    elicit: ElicitRequest,
    timeout: Duration,
) -> ConsentAnswer {
    let request = ServerRequest::ElicitRequest(elicit);
    let options = PeerRequestOptions::with_timeout(timeout);
    let sent = match context.peer.send_request_with_option(request, options).await {
        Ok(handle) => handle,
        Err(e) => {
            tracing::debug!(error = %e, "elicitation/create could not be sent");
            return ConsentAnswer::Unanswered;
        }
    };
    tokio::select! {
        response = sent.await_response() => match response {
            Ok(ClientResult::ElicitResult(r)) => answer_of_result(&r),
            Ok(_) => ConsentAnswer::Unanswered,
            Err(e) => {
                tracing::debug!(error = %e, "elicitation/create failed");
                ConsentAnswer::Unanswered
            }
        },
        _ = context.ct.cancelled() => ConsentAnswer::Cancelled,
    }
}

/// The answer an `inputResponses` value holds (an `ElicitResult`); none is `unanswered`.
fn answer_of(response: Option<&Value>) -> ConsentAnswer {
    match response.map(|v| serde_json::from_value::<ElicitResult>(v.clone())) {
        Some(Ok(r)) => answer_of_result(&r),
        _ => ConsentAnswer::Unanswered,
    }
}

fn answer_of_result(r: &ElicitResult) -> ConsentAnswer {
    match r.action {
        ElicitationAction::Accept => {
            let choice = r.content.as_ref().and_then(|c| c.get(FIELD)).and_then(Value::as_str);
            choice.map_or(ConsentAnswer::Unanswered, ConsentAnswer::from_choice)
        }
        ElicitationAction::Decline => ConsentAnswer::Declined,
        ElicitationAction::Cancel => ConsentAnswer::Cancelled,
        _ => ConsentAnswer::Unanswered,
    }
}

/// The form: the question in words, and one choice of `once`, `always`, `deny`.
fn elicit_request(q: &ConsentQuestion) -> ElicitRequest {
    let values = vec!["once".to_string(), "always".to_string(), "deny".to_string()];
    let titles = vec![
        "Allow once (this call only)".to_string(),
        format!("Always (a trust grant pinned to content {})", q.digest),
        "Deny".to_string(),
    ];
    let title = format!("Allow `{}` to run at trust level {}?", q.skill, q.level);
    let choice = EnumSchema::builder(values.clone());
    let choice = match choice.enum_titles(titles) {
        Ok(titled) => titled.title(title).build(),
        // The counts match; should the SDK refuse them, the untitled choices carry the same.
        Err(_) => EnumSchema::builder(values).title(title).build(),
    };
    let requested_schema =
        ElicitationSchema::builder().required_enum_schema(FIELD, choice).build_unchecked();
    ElicitRequest::new(ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: q.message(),
        requested_schema,
    })
}

/// The tool call's arguments, digested as the audit log digests parameters.
fn arguments_digest(request: &CallToolRequestParams) -> String {
    let args = Value::Object(request.arguments.clone().unwrap_or_default());
    skillbox_skills::params_digest(&args)
}

/// 128 random bits, hex: a handle no other client can guess; `None` without randomness.
fn new_handle() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_listed_choice_accepted_allows() {
        let r = |action: &str, content: Value| json!({"action": action, "content": content});
        assert_eq!(answer_of(Some(&r("accept", json!({FIELD: "once"})))), ConsentAnswer::Once);
        assert_eq!(answer_of(Some(&r("accept", json!({FIELD: "always"})))), ConsentAnswer::Always);
        assert_eq!(answer_of(Some(&r("accept", json!({FIELD: "deny"})))), ConsentAnswer::Deny);
        assert_eq!(
            answer_of(Some(&r("accept", json!({FIELD: "yes please"})))),
            ConsentAnswer::Unanswered
        );
        assert_eq!(answer_of(Some(&r("accept", json!({})))), ConsentAnswer::Unanswered);
        assert_eq!(answer_of(Some(&r("decline", json!(null)))), ConsentAnswer::Declined);
        assert_eq!(answer_of(Some(&r("cancel", json!(null)))), ConsentAnswer::Cancelled);
        assert_eq!(answer_of(Some(&json!("always"))), ConsentAnswer::Unanswered);
        assert_eq!(answer_of(None), ConsentAnswer::Unanswered);
    }

    #[test]
    fn handles_are_random_and_unknown_ones_name_nothing() {
        let pending = Pending::default();
        assert!(pending.take("nothing", Duration::from_secs(600)).is_none());
        assert_eq!(new_handle().map(|h| h.len()), Some(32));
        assert_ne!(new_handle(), new_handle());
    }
}
