//! `code_session` skills: a confined interpreter kept alive between calls.
//!
//! A session is ONE sandbox run (`skillbox_sandbox::run`) of the skill's interpreter with a
//! small driver (`driver.py`, shipped in the binary and passed with `-c`), under the skill's
//! grant: its timeout is the session's lifetime, its cgroup and rlimits hold across calls,
//! and dropping it kills every process of the session. Calls are framed messages on two
//! pipes passed as descriptors 3 (code in) and 4 (answers out); the code's own output is
//! captured by the driver per call, so nothing it prints can forge an answer.
//!
//! A call that passes its timeout is interrupted (`SIGINT`: a `KeyboardInterrupt` in
//! Python) and the session goes on; if no answer comes within [`INTERRUPT_GRACE`] after the
//! interrupt, the session is killed. A session ends when it is closed, after its idle
//! timeout, at its lifetime, when its interpreter dies (a limit, an exit), or when its owner
//! (the [`Sessions`] table) is dropped.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use skillbox_audit::AuditLog;
use skillbox_sandbox::{ChildSpec, Guarantee, PassedFd, StartSink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, watch};

use crate::format::{SkillDef, SkillType};
use crate::private_dir::PrivateDir;
use crate::result::{LimitKind, SkillResult, Status};
use crate::security::{EffectiveGrant, SecurityContext, TrustLevel};

/// The Python driver (see the module's documentation).
const DRIVER: &str = include_str!("driver.py");

/// Seconds of inactivity after which a session ends, when the skill sets none.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest a session lives, when the skill sets less; also the most it may set at
/// `untrusted` and `user-verified`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The most a `system-trusted` skill may set as its lifetime.
pub const MAX_TRUSTED_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Live sessions of one skill in one table when the skill sets no `max_sessions`; also the
/// most it may set. Why a bound: every session holds memory up to its limit for as long as
/// it lives, and a model (or a loop) that never passes `session_id` would otherwise start
/// one per call.
pub const MAX_SESSIONS: u32 = 4;

/// How long an interrupted call has to answer before its session is killed.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Largest code of one call, in bytes.
pub(crate) const MAX_CODE_BYTES: usize = 1024 * 1024;

/// Largest answer frame read from a driver (its outputs are capped at 1 MiB each).
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// A call's exception, as the driver describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallError {
    /// The exception's type name (`ZeroDivisionError`, `KeyboardInterrupt`).
    #[serde(rename = "type")]
    pub kind: String,
    /// `str()` of the exception.
    pub message: String,
    /// The traceback, starting at the call's code.
    pub traceback: String,
}

/// The driver's answer to one call.
#[derive(Debug, Clone, Deserialize)]
struct Answer {
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    #[serde(default)]
    stdout_truncated: bool,
    #[serde(default)]
    stderr_truncated: bool,
    value: Option<String>,
    error: Option<CallError>,
    #[serde(default)]
    interrupted: bool,
    #[serde(default)]
    duration_ms: f64,
}

/// What a result of a `code_session` skill says about its session (`session` in the
/// result): which one, what the call's last expression was, its exception, and whether
/// the session ended with it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SessionReport {
    /// The session's id: pass it as `session_id` to run more code in the same interpreter.
    pub session_id: String,
    /// `repr()` of the value of the call's last expression, when it was one and not `None`.
    pub value: Option<String>,
    /// The exception the call raised, with its traceback.
    pub error: Option<CallError>,
    /// The call passed its timeout and was interrupted (`KeyboardInterrupt`).
    pub interrupted: bool,
    /// Time the code ran, in the driver, in milliseconds.
    pub call_ms: f64,
    /// Set when the session ended (with this call or before it): why. The id is then no
    /// longer valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ended {
    /// `closed`, `idle`, `lifetime`, `killed`, `owner-gone`, `exited`, `not-started`, or a
    /// limit's name (`memory`, `cpu`, ...).
    reason: String,
    /// One sentence for a person.
    message: String,
    /// The limit that ended it, if one did.
    limit: Option<LimitKind>,
}

impl Ended {
    fn new(reason: &str, message: String) -> Self {
        Self { reason: reason.to_string(), message, limit: None }
    }
}

/// The sessions of one owner: an MCP connection, an embedding agent, a CLI command. Why a
/// table: a session must end when whoever could call it goes away, and a table dropped is
/// exactly that moment. Dropping it ends every session in it (reason `owner-gone`), which
/// kills their processes.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("live", &self.ids()).finish()
    }
}

impl Sessions {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ids of the sessions still alive.
    pub fn ids(&self) -> Vec<String> {
        self.prune();
        self.map.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }

    /// Ends the session `id` (reason `closed`) and waits until its processes are gone;
    /// false if this table has no live session of that id.
    pub async fn close(&self, id: &str) -> bool {
        let session = self.map.lock().ok().and_then(|mut m| m.remove(id));
        match session {
            Some(s) => {
                s.end(Ended::new("closed", "the session was closed by its owner".into()));
                s.wait_ended(Duration::from_secs(10)).await;
                true
            }
            None => false,
        }
    }

    /// Ends every session (reason `owner-gone`) and waits until their processes are gone.
    /// Why: an owner that goes away (an MCP connection that closed) should not rely on
    /// drops happening while an async runtime is still there to run them.
    pub async fn close_all(&self) {
        let all: Vec<Arc<Session>> =
            self.map.lock().map(|mut m| m.drain().map(|(_, s)| s).collect()).unwrap_or_default();
        for s in &all {
            s.end(Ended::new("owner-gone", "the session's owner went away".into()));
        }
        for s in &all {
            s.wait_ended(Duration::from_secs(10)).await;
        }
    }

    /// Forgets the sessions that ended.
    fn prune(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.retain(|_, s| s.ended.borrow().is_none());
        }
    }

    /// Live sessions of `skill` in this table.
    fn live_of(&self, skill: &str) -> u32 {
        self.prune();
        self.map.lock().map_or(0, |m| m.values().filter(|s| s.skill == skill).count() as u32)
    }

    fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map.lock().ok()?.get(id).cloned()
    }

    fn insert(&self, s: Arc<Session>) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(s.id.clone(), s);
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(id);
        }
    }
}

/// One live session: its pipes, its interpreter's pid, its state.
pub(crate) struct Session {
    id: String,
    skill: String,
    io: tokio::sync::Mutex<Io>,
    /// Where the protocol stands (outside `io`, so that a dropped call can set it).
    io_state: Mutex<IoState>,
    pid: Arc<OnceLock<i32>>,
    ended: watch::Receiver<Option<Ended>>,
    close: Mutex<Option<oneshot::Sender<Ended>>>,
    activity: Arc<Activity>,
    call_timeout: Duration,
    grant: EffectiveGrant,
    trust_level: TrustLevel,
    enforcement: Vec<crate::result::EnforcementEntry>,
    audit: Option<Arc<AuditLog>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.end(Ended::new("owner-gone", "the session's owner went away".into()));
    }
}

/// When the session was last used, and whether a call is running.
struct Activity {
    last: Mutex<Instant>,
    busy: AtomicBool,
}

impl Activity {
    fn touch(&self) {
        if let Ok(mut l) = self.last.lock() {
            *l = Instant::now();
        }
    }
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) {
            return None;
        }
        self.last.lock().ok().map(|l| l.elapsed())
    }
}

/// The session's end of the protocol.
struct Io {
    tx: pipe::Sender,
    rx: pipe::Receiver,
    /// Bytes read and not yet parsed: reads are cancel-safe, so a cancelled call loses
    /// nothing of the stream.
    buf: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IoState {
    /// The next frame is the answer to the next request.
    Ready,
    /// A cancelled call's answer is still owed and must be read first.
    Owed,
    /// A cancelled call left a request half written: the stream cannot be trusted.
    Broken,
}

/// The settings of a session, from the skill within its trust level.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub idle: Duration,
    pub lifetime: Duration,
}

impl Timing {
    /// The skill's `session_config` within what `level` allows: the lifetime at most
    /// [`DEFAULT_LIFETIME`] (or [`MAX_TRUSTED_LIFETIME`] at `system-trusted`), the idle
    /// timeout at most the lifetime.
    pub(crate) fn of(def: &SkillDef, level: TrustLevel) -> Self {
        let cfg = def.session_config.clone().unwrap_or_default();
        let max_life = match level {
            TrustLevel::SystemTrusted => MAX_TRUSTED_LIFETIME,
            _ => DEFAULT_LIFETIME,
        };
        let secs = |v: Option<f64>| {
            v.filter(|s| s.is_finite() && *s > 0.0).map(|s| Duration::from_secs_f64(s.min(1e7)))
        };
        let lifetime = secs(cfg.max_lifetime).unwrap_or(DEFAULT_LIFETIME).min(max_life);
        let idle = secs(cfg.session_timeout).unwrap_or(DEFAULT_IDLE_TIMEOUT).min(lifetime);
        Self { idle, lifetime }
    }
}

/// The skill's `max_sessions`, at most [`MAX_SESSIONS`] (and at least 1).
fn max_sessions(def: &SkillDef) -> u32 {
    let asked = def.session_config.as_ref().and_then(|c| c.max_sessions);
    asked.unwrap_or(MAX_SESSIONS).clamp(1, MAX_SESSIONS)
}

/// The input of a call: `code`, and the session to run it in.
struct CallInput {
    code: String,
    session_id: Option<String>,
}

/// `{"code": ..., "session_id"?: ...}`, nothing else.
fn call_input(params: &Value) -> Result<CallInput, String> {
    let Some(map) = params.as_object() else {
        return Err("the parameters must be a JSON object".into());
    };
    if let Some(k) = map.keys().find(|k| !matches!(k.as_str(), "code" | "session_id")) {
        return Err(format!(
            "a code_session skill takes `code` and `session_id` only, not `{}`",
            crate::name::quote(k)
        ));
    }
    let code = match map.get("code") {
        Some(Value::String(c)) if c.len() <= MAX_CODE_BYTES => c.clone(),
        Some(Value::String(_)) => return Err(format!("`code` is over {MAX_CODE_BYTES} bytes")),
        Some(_) => return Err("`code` must be a string".into()),
        None => return Err("`code` is required".into()),
    };
    let session_id = match map.get("session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("`session_id` must be a string".into()),
    };
    Ok(CallInput { code, session_id })
}

/// The input schema of a `code_session` skill's tool.
pub(crate) fn input_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "code": {"type": "string", "description": "Code to run in the session's interpreter; the value of a last expression is returned"},
            "session_id": {"type": "string", "description": "The session_id of an earlier result, to run in the same interpreter (its variables and imports kept); omit to start a new session"},
        },
        "required": ["code"],
        "additionalProperties": false,
    })
}

/// One call of a `code_session` skill: in the session `params.session_id` of `sessions`,
/// or in a new one (kept in `sessions` when given, else closed after the call).
pub(crate) async fn execute(
    def: &SkillDef,
    params: &Value,
    ctx: &SecurityContext,
    grant: &EffectiveGrant,
    sessions: Option<&Sessions>,
    audit: Option<&Arc<AuditLog>>,
    mut result: SkillResult,
) -> SkillResult {
    let input = match call_input(params) {
        Ok(i) => i,
        Err(why) => {
            result.status = Status::Invalid;
            result.message = Some(format!("invalid parameters: {why}"));
            return result;
        }
    };
    let session = match &input.session_id {
        Some(id) => match sessions.and_then(|t| t.get(id)) {
            Some(s) if s.skill == def.name => s,
            _ => {
                result.status = Status::Invalid;
                result.message = Some(format!(
                    "no live session `{}` of skill `{}` here: it ended, or belongs to another \
                     skill or connection; omit session_id to start a new one",
                    crate::name::quote(id),
                    def.name
                ));
                return result;
            }
        },
        None if sessions.is_some_and(|t| t.live_of(&def.name) >= max_sessions(def)) => {
            result.status = Status::Invalid;
            result.message = Some(format!(
                "skill `{}` has {} live sessions here, its most (max_sessions); pass the \
                 session_id of one, or let one end",
                def.name,
                max_sessions(def)
            ));
            return result;
        }
        None => match start(def, ctx, grant, audit).await {
            Ok(s) => {
                if let Some(t) = sessions {
                    t.insert(s.clone());
                }
                s
            }
            Err(StartError::Message(message)) => {
                result.message = Some(message);
                return result;
            }
            Err(StartError::Sandbox(e)) => {
                // A refusal of the sandbox (a mechanism missing, a grant it cannot take) is
                // reported as a run's would be.
                super::outcome::not_run(&mut result, &e);
                return result;
            }
        },
    };
    result.trust_level = Some(session.trust_level);
    if let Some(e) = session.ended.borrow().clone() {
        // Ended between calls (idle, lifetime, its owner closed it): the id is stale.
        if let Some(t) = sessions {
            t.remove(&session.id);
        }
        result.status = Status::Invalid;
        result.message = Some(format!(
            "session `{}` has ended ({}): {}; omit session_id to start a new one",
            session.id, e.reason, e.message
        ));
        return result;
    }
    let outcome = session.call(&input.code).await;
    let r = session.report(result, outcome, &input.code);
    if sessions.is_none() {
        session.end(Ended::new("closed", "a one-call session ends with its call".into()));
        session.wait_ended(Duration::from_secs(10)).await;
    } else if r.session.as_ref().is_some_and(|s| s.ended.is_some()) {
        if let Some(t) = sessions {
            t.remove(&session.id);
        }
    }
    r
}

/// Why a session did not start.
enum StartError {
    /// The sandbox refused the spec before anything ran.
    Sandbox(skillbox_sandbox::SandboxError),
    /// Anything else, as the message to report.
    Message(String),
}

impl From<String> for StartError {
    fn from(m: String) -> Self {
        Self::Message(m)
    }
}

/// Starts a session of `def` under `grant`: its private directory, environment, policy and
/// the interpreter with the driver, as one sandbox run supervised by a task of its own.
async fn start(
    def: &SkillDef,
    ctx: &SecurityContext,
    grant: &EffectiveGrant,
    audit: Option<&Arc<AuditLog>>,
) -> Result<Arc<Session>, StartError> {
    debug_assert_eq!(def.skill_type, SkillType::CodeSession);
    let timing = Timing::of(def, ctx.trust_level);
    let id = crate::result::new_execution_id();
    let private = PrivateDir::for_run()
        .map_err(|e| format!("cannot create the session's private directory: {e}"))?;
    let mut env = super::environment::environment(ctx, def, &private.home(), &private.tmp());
    let quarantine = ctx.quarantine.as_ref().map(|q| q.join(&id));
    let mut policy = super::policy::policy_for(grant, private.path(), &ctx.workspace, quarantine);
    // The CPU time of the whole session, across calls: at most its lifetime (the CPU share
    // bounds it further).
    policy.rlimits.cpu_seconds = Some(timing.lifetime.as_secs_f64().ceil() as u64);
    let egress = super::egress::route(&policy, &mut env, def, grant);
    let command = def.command.as_deref().unwrap_or_default();
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
    let (program, mut argv) =
        super::lookup::resolve_command(command, &ctx.workspace, path_var.as_deref(), &policy)?;
    let is_python =
        program.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("python"));
    if !is_python || !argv.is_empty() {
        return Err(StartError::Message(format!(
            "skill `{}`: a code_session runs a Python interpreter (`command` such as `python3`, \
             without arguments); `{command}` is not one",
            def.name
        )));
    }
    argv.extend(["-I".to_string(), "-c".to_string(), DRIVER.to_string(), id.clone()]);
    argv.extend(def.args.iter().cloned());

    let (req_r, req_w) =
        std::io::pipe().map_err(|e| format!("cannot make the session's pipes: {e}"))?;
    let (ans_r, ans_w) =
        std::io::pipe().map_err(|e| format!("cannot make the session's pipes: {e}"))?;
    let tx = pipe::Sender::from_owned_fd(req_w.into())
        .map_err(|e| format!("cannot use the session's pipes: {e}"))?;
    let rx = pipe::Receiver::from_owned_fd(ans_r.into())
        .map_err(|e| format!("cannot use the session's pipes: {e}"))?;

    let mut spec = ChildSpec::new(program, &ctx.workspace);
    spec.args = argv.into_iter().map(OsString::from).collect();
    spec.env = env;
    spec.timeout = timing.lifetime;
    spec.output_limit = 64 * 1024;
    spec.policy = policy;
    spec.allow_weaker = ctx.allow_weaker_isolation;
    spec.passed_fds = vec![PassedFd::new(req_r.into()), PassedFd::new(ans_w.into())];
    let pid = Arc::new(OnceLock::new());
    let (started_tx, started_rx) = oneshot::channel();
    let started_tx = Mutex::new(Some(started_tx));
    let slot = pid.clone();
    spec.on_start = Some(StartSink::new(move |p| {
        let _ = slot.set(p);
        if let Some(tx) = started_tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(());
        }
    }));
    let egress = egress.map(|(e, sink)| {
        spec.listener = Some(sink);
        e
    });
    // What this very spec gets enforced (the run's own report comes only at its end).
    let enforcement = skillbox_sandbox::preview(&spec)
        .map(|e| super::policy::enforcement_entries(&e))
        .map_err(StartError::Sandbox)?;

    if let Some(log) = audit {
        let event = crate::audit::session_started(&def.name, ctx, &id, timing);
        if let Some(err) = crate::audit::write(log, &[event]) {
            return Err(StartError::Message(format!(
                "refusing to run: cannot write the audit log: {err}"
            )));
        }
    }
    let activity =
        Arc::new(Activity { last: Mutex::new(Instant::now()), busy: AtomicBool::new(false) });
    let (ended_tx, ended_rx) = watch::channel(None);
    let (close_tx, close_rx) = oneshot::channel();
    let guard = EndGuard {
        ended: ended_tx,
        reason: None,
        audit: audit.cloned(),
        skill: def.name.clone(),
        ctx: ctx.clone(),
        id: id.clone(),
    };
    tracing::debug!(session = id.as_str(), "starting a session");
    tokio::spawn(supervise(spec, private, egress, close_rx, activity.clone(), timing.idle, guard));
    let mut ended = ended_rx.clone();
    tokio::select! {
        _ = started_rx => {}
        _ = ended.wait_for(Option::is_some) => {}
    }
    if let Some(e) = ended_rx.borrow().clone() {
        return Err(StartError::Message(format!("the session could not start: {}", e.message)));
    }
    Ok(Arc::new(Session {
        id,
        skill: def.name.clone(),
        io: tokio::sync::Mutex::new(Io { tx, rx, buf: Vec::new() }),
        io_state: Mutex::new(IoState::Ready),
        pid,
        ended: ended_rx,
        close: Mutex::new(Some(close_tx)),
        activity,
        call_timeout: grant.limits.max_execution_time,
        grant: grant.clone(),
        trust_level: ctx.trust_level,
        enforcement,
        audit: audit.cloned(),
    }))
}

/// Writes the session's end (to its watchers and the audit log) when the supervising task
/// ends, however it ends: `owner-gone` unless a reason was set (an aborted task, a runtime
/// shut down).
struct EndGuard {
    ended: watch::Sender<Option<Ended>>,
    reason: Option<Ended>,
    audit: Option<Arc<AuditLog>>,
    skill: String,
    ctx: SecurityContext,
    id: String,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let ended = self.reason.take().unwrap_or_else(|| {
            Ended::new(
                "owner-gone",
                "the session's owner went away; its processes were killed".into(),
            )
        });
        tracing::debug!(
            session = self.id.as_str(),
            reason = ended.reason.as_str(),
            "session ended"
        );
        if let Some(log) = &self.audit {
            let event = crate::audit::session_ended(
                &self.skill,
                self.ctx.trust_level,
                &self.id,
                &ended.reason,
                &ended.message,
            );
            let _ = crate::audit::write(log, &[event]);
        }
        self.ended.send_replace(Some(ended));
    }
}

/// The session's run, to its end: the interpreter's own end, a close, or the idle timeout.
/// Whatever ends first, the run is dropped here if still going, which kills every process
/// of it; then its private directory goes.
async fn supervise(
    spec: ChildSpec,
    private: PrivateDir,
    egress: Option<super::egress::Egress>,
    close: oneshot::Receiver<Ended>,
    activity: Arc<Activity>,
    idle: Duration,
    mut guard: EndGuard,
) {
    let mut contained = false;
    let ended = {
        let run = skillbox_sandbox::run(&spec);
        tokio::select! {
            outcome = run => {
                contained = outcome.as_ref().is_ok_and(|o| {
                    o.enforcement.is_enforced(Guarantee::TreeKill)
                        && o.enforcement.is_enforced(Guarantee::Filesystem)
                });
                from_outcome(outcome, spec.timeout)
            }
            reason = close => reason.unwrap_or_else(|_| {
                Ended::new("owner-gone", "the session's owner went away".into())
            }),
            () = idle_wait(&activity, idle) => Ended::new(
                "idle",
                format!("the session was idle for {} s, its idle timeout", idle.as_secs_f64()),
            ),
        }
    };
    if let Some(e) = egress {
        // The session's connections through its proxy, recorded at its end under the
        // session's id as the execution id (one event each, as for a run).
        let connections = e.finish().await;
        if let (Some(log), false) = (&guard.audit, connections.is_empty()) {
            let mut r = SkillResult::new(Status::Success, &guard.skill, guard.id.clone());
            r.network = connections;
            let step = super::Step {
                kind: super::StepKind::Attempt,
                number: 1,
                command: guard.skill.clone(),
                result: &r,
                retry: None,
            };
            let events = crate::audit::network(&step, &guard.skill, &guard.ctx, &guard.id);
            let _ = crate::audit::write(log, &events);
        }
    }
    private.finish(contained);
    guard.reason = Some(ended);
}

/// Returns once the session has been idle (no call running) for `idle`.
async fn idle_wait(activity: &Activity, idle: Duration) {
    loop {
        let wait = match activity.idle_for() {
            Some(d) if d >= idle => return,
            Some(d) => idle - d,
            None => idle,
        };
        tokio::time::sleep(wait.max(Duration::from_millis(20))).await;
    }
}

/// The end of a session whose interpreter's run ended by itself.
fn from_outcome(
    outcome: Result<skillbox_sandbox::ChildOutcome, skillbox_sandbox::SandboxError>,
    lifetime: Duration,
) -> Ended {
    let o = match outcome {
        Ok(o) => o,
        Err(e) => return Ended::new("not-started", e.to_string()),
    };
    if let Some(limit) = o.limit {
        let kind = match limit {
            skillbox_sandbox::Limit::Memory => LimitKind::Memory,
            skillbox_sandbox::Limit::Cpu => LimitKind::Cpu,
            skillbox_sandbox::Limit::FileSize => LimitKind::FileSize,
            skillbox_sandbox::Limit::Processes => LimitKind::Processes,
            _ => LimitKind::DiskWrite,
        };
        return Ended {
            reason: kind.as_str().to_string(),
            message: format!("the session was stopped by its {} limit", kind.as_str()),
            limit: Some(kind),
        };
    }
    match o.status {
        skillbox_sandbox::ExitStatus::TimedOut => Ended::new(
            "lifetime",
            format!("the session reached its lifetime of {} s", lifetime.as_secs_f64()),
        ),
        skillbox_sandbox::ExitStatus::Exited(c) => {
            Ended::new("exited", format!("the interpreter exited with code {c}"))
        }
        skillbox_sandbox::ExitStatus::Signaled(s) => {
            Ended::new("killed", format!("the interpreter was killed by signal {s}"))
        }
    }
}

/// What one call gave.
enum CallOutcome {
    /// The driver answered.
    Answered(Answer),
    /// The session ended before or during the call.
    Ended(Ended),
}

impl Session {
    /// Asks the session to end (the first reason given wins).
    fn end(&self, why: Ended) {
        if let Some(tx) = self.close.lock().ok().and_then(|mut c| c.take()) {
            let _ = tx.send(why);
        }
    }

    /// Waits until the session has ended (at most `limit`); its end, if it did.
    async fn wait_ended(&self, limit: Duration) -> Option<Ended> {
        let mut rx = self.ended.clone();
        let _ = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        let e = rx.borrow().clone();
        e
    }

    /// Sends `SIGINT` to the interpreter.
    fn interrupt(&self) {
        if let Some(&pid) = self.pid.get() {
            if self.ended.borrow().is_none() {
                // SAFETY: kill takes plain integers. The pid is the session's first process,
                // which its run does not reap before the session has ended (checked above;
                // a race with its end signals a zombie, which is harmless).
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        }
    }

    /// Runs `code` in the session: one request, one answer; at the call's timeout an
    /// interrupt, and the session's end if no answer follows within [`INTERRUPT_GRACE`].
    async fn call(&self, code: &str) -> CallOutcome {
        if let Some(e) = self.ended.borrow().clone() {
            return CallOutcome::Ended(e);
        }
        let mut io = self.io.lock().await;
        self.activity.busy.store(true, Ordering::Release);
        let mut flight = InFlight { session: self, phase: Phase::Idle };
        let outcome = self.exchange(&mut io, &mut flight, code).await;
        flight.phase = Phase::Idle;
        outcome
    }

    fn state(&self) -> IoState {
        self.io_state.lock().map_or(IoState::Broken, |s| *s)
    }

    fn set_state(&self, state: IoState) {
        if let Ok(mut s) = self.io_state.lock() {
            *s = state;
        }
    }

    /// The session's end, once its task has written it (the interpreter is gone or going).
    async fn ended_now(&self) -> CallOutcome {
        let e = self.wait_ended(Duration::from_secs(10)).await;
        CallOutcome::Ended(
            e.unwrap_or_else(|| Ended::new("killed", "the interpreter stopped answering".into())),
        )
    }

    /// Ends the session as `killed` for `why`, and returns its end.
    async fn kill(&self, why: String) -> CallOutcome {
        self.end(Ended::new("killed", why));
        self.ended_now().await
    }

    async fn exchange(&self, io: &mut Io, flight: &mut InFlight<'_>, code: &str) -> CallOutcome {
        match self.state() {
            IoState::Broken => {
                return self.kill("a cancelled call left the protocol broken".into()).await
            }
            IoState::Owed => {
                // A cancelled call was interrupted: its answer comes first.
                flight.phase = Phase::Waiting;
                match tokio::time::timeout(INTERRUPT_GRACE, read_frame(io)).await {
                    Ok(Ok(Some(_))) => self.set_state(IoState::Ready),
                    _ => {
                        let why = "a cancelled call did not come back from its interrupt";
                        return self.kill(why.into()).await;
                    }
                }
            }
            IoState::Ready => {}
        }
        let body = serde_json::json!({ "code": code }).to_string();
        flight.phase = Phase::Writing;
        match tokio::time::timeout(self.call_timeout, io.tx.write_all(&frame(body.as_bytes())))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                flight.phase = Phase::Idle;
                return self.ended_now().await;
            }
            Err(_) => {
                flight.phase = Phase::Idle;
                return self.kill("the call's code could not be handed over in time".into()).await;
            }
        }
        flight.phase = Phase::Waiting;
        let first = tokio::time::timeout(self.call_timeout, read_frame(io)).await;
        let answer = match first {
            Ok(Ok(Some(body))) => Some(body),
            Ok(Ok(None)) | Ok(Err(_)) => None,
            Err(_) => {
                self.interrupt();
                match tokio::time::timeout(INTERRUPT_GRACE, read_frame(io)).await {
                    Ok(Ok(Some(body))) => {
                        flight.phase = Phase::Idle;
                        return match serde_json::from_slice::<Answer>(&body) {
                            Ok(mut a) => {
                                a.interrupted = true;
                                CallOutcome::Answered(a)
                            }
                            Err(e) => {
                                self.kill(format!("the driver's answer is not valid: {e}")).await
                            }
                        };
                    }
                    Ok(Ok(None)) | Ok(Err(_)) => None,
                    Err(_) => {
                        flight.phase = Phase::Idle;
                        let why = format!(
                            "the call did not come back within {} s of its interrupt",
                            INTERRUPT_GRACE.as_secs_f64()
                        );
                        return self.kill(why).await;
                    }
                }
            }
        };
        flight.phase = Phase::Idle;
        match answer {
            Some(body) => match serde_json::from_slice::<Answer>(&body) {
                Ok(a) => CallOutcome::Answered(a),
                Err(e) => self.kill(format!("the driver's answer is not valid: {e}")).await,
            },
            None => self.ended_now().await,
        }
    }

    /// The result of a call: the answer's outputs and status, or the session's end.
    fn report(&self, mut r: SkillResult, outcome: CallOutcome, code: &str) -> SkillResult {
        r.grant = Some(self.grant.clone());
        r.enforcement.clone_from(&self.enforcement);
        r.attempts = 1;
        let mut report = SessionReport {
            session_id: self.id.clone(),
            value: None,
            error: None,
            interrupted: false,
            call_ms: 0.0,
            ended: None,
        };
        let what = match outcome {
            CallOutcome::Answered(a) => {
                r.stdout = a.stdout;
                r.stderr = a.stderr;
                r.stdout_truncated = a.stdout_truncated;
                r.stderr_truncated = a.stderr_truncated;
                report.call_ms = a.duration_ms;
                report.value = a.value;
                report.interrupted = a.interrupted;
                let what = match (&a.error, a.interrupted) {
                    (_, true) => {
                        r.status = Status::Timeout;
                        r.message = Some(format!(
                            "the call passed its timeout of {} s and was interrupted \
                             (KeyboardInterrupt); session `{}` goes on",
                            self.call_timeout.as_secs_f64(),
                            self.id
                        ));
                        "interrupted"
                    }
                    (Some(e), false) => {
                        r.status = Status::Failed;
                        r.message = Some(format!("the code raised {}: {}", e.kind, e.message));
                        "exception"
                    }
                    (None, false) => {
                        r.status = Status::Success;
                        "ok"
                    }
                };
                report.error = a.error;
                what
            }
            CallOutcome::Ended(e) => {
                r.status = match (&e.limit, e.reason.as_str()) {
                    (Some(_), _) => Status::LimitExceeded,
                    (None, "lifetime" | "idle") => Status::Timeout,
                    (None, "killed" | "exited") => Status::Failed,
                    _ => Status::Error,
                };
                r.limit = e.limit;
                r.message =
                    Some(format!("session `{}` ended ({}): {}", self.id, e.reason, e.message));
                report.ended = Some(e.reason.clone());
                "ended"
            }
        };
        if let Some(log) = &self.audit {
            let event = crate::audit::session_call(
                &self.skill,
                self.trust_level,
                &self.id,
                &r.execution_id,
                &skillbox_audit::digest_hex(code.as_bytes()),
                what,
                report.call_ms,
            );
            r.audit_error = crate::audit::write(log, &[event]);
        }
        r.session = Some(report);
        r
    }
}

/// Where a call is, for its cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Writing,
    Waiting,
}

/// A call in flight: if its future is dropped (an MCP cancellation), the call's code is
/// interrupted and its answer left owed (read and dropped by the next call), or, with a
/// request half written, the session is killed.
struct InFlight<'a> {
    session: &'a Session,
    phase: Phase,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let s = self.session;
        s.activity.touch();
        s.activity.busy.store(false, Ordering::Release);
        match self.phase {
            Phase::Idle => {}
            Phase::Writing => {
                s.set_state(IoState::Broken);
                s.end(Ended::new(
                    "killed",
                    "a cancelled call left its request half written".into(),
                ));
            }
            Phase::Waiting => {
                s.set_state(IoState::Owed);
                s.interrupt();
            }
        }
    }
}

/// A frame: 4 bytes of big-endian length, then the bytes.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// The next frame of `io`'s stream; `Ok(None)` at end-of-file (the interpreter is gone).
/// Cancel-safe: bytes read stay in `io.buf`.
async fn read_frame(io: &mut Io) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        if io.buf.len() >= 4 {
            let len = u32::from_be_bytes([io.buf[0], io.buf[1], io.buf[2], io.buf[3]]) as usize;
            if len > MAX_ANSWER_BYTES {
                return Err(std::io::Error::other(format!("an answer of {len} bytes")));
            }
            if io.buf.len() >= 4 + len {
                let body = io.buf[4..4 + len].to_vec();
                io.buf.drain(..4 + len);
                return Ok(Some(body));
            }
        }
        io.buf.reserve(64 * 1024);
        if io.rx.read_buf(&mut io.buf).await? == 0 {
            return Ok(None);
        }
    }
}
