//! The `Tool` trait agent CLIs implement their tools with, and `SkillTool`, which exposes one
//! skill as a tool that always runs through its security context.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::format::{ParamType, SkillDef};
use crate::result::{SkillResult, Status};
use crate::runtime::Runtime;
use crate::security::TrustLevel;

/// What a tool call returns: text for the model, a structured object for programs.
#[derive(Debug, Clone)]
pub struct ToolResult {
    /// True when the call did not succeed (refused, invalid, failed, timed out, ...).
    pub is_error: bool,
    /// What a model reads: the output on success, the one-line reason otherwise.
    pub text: String,
    /// The full result object (for skills: the same object as `skillbox run --json`).
    pub structured: Value,
}

/// A tool an agent can call: a name, a description, a JSON Schema of its input, and an
/// asynchronous invocation.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Name the model calls the tool by.
    fn name(&self) -> &str;
    /// What the tool does, for the model.
    fn description(&self) -> &str;
    /// JSON Schema (draft 2020-12 subset) of the input object.
    fn input_schema(&self) -> Value;
    /// Runs the tool with `input`.
    async fn invoke(&self, input: Value) -> ToolResult;
}

/// One skill as a [`Tool`]. Every invocation goes through [`Runtime::run`], and so through
/// the skill's security context: there is no way to call the skill around it.
#[derive(Clone)]
pub struct SkillTool {
    runtime: Arc<Runtime>,
    name: String,
    description: String,
    schema: Value,
    trust: Option<TrustLevel>,
    allow_weaker_isolation: bool,
    /// The sessions of a `code_session` skill's tool: they belong to the tool (and its
    /// clones), and end when the last of them is dropped.
    sessions: Arc<crate::exec::Sessions>,
    /// A person's consent for this tool's calls, if any (see [`SkillTool::with_consent`]).
    consent: Option<crate::consent::Consent>,
}

impl SkillTool {
    /// A tool for the skill `name` of `runtime`, run at the skill's default trust level, or
    /// at `trust` when given. Returns `None` if the runtime has no such skill.
    pub fn new(runtime: Arc<Runtime>, name: &str, trust: Option<TrustLevel>) -> Option<Self> {
        let skill = runtime.registry().get(name).ok()?;
        let description = if skill.def.description.is_empty() {
            format!("Run the skill `{}`", skill.def.name)
        } else {
            skill.def.description.clone()
        };
        let schema = input_schema(&skill.def);
        let name = skill.def.name.clone();
        Some(Self {
            runtime,
            name,
            description,
            schema,
            trust,
            allow_weaker_isolation: false,
            sessions: Arc::default(),
            consent: None,
        })
    }

    /// Lets this tool's runs go on where the host has no mechanism for a guarantee their
    /// grant needs (reported `not-enforced` in the result, recorded as `IsolationWeakened`),
    /// instead of being refused. The choice of whoever runs skillbox, never of the model:
    /// off by default.
    pub fn allow_weaker_isolation(mut self, allow: bool) -> Self {
        self.allow_weaker_isolation = allow;
        self
    }

    /// Runs `code_session` calls in `sessions` instead of this tool's own table. Why: a
    /// server makes a tool per call, and the sessions must belong to the connection (MCP)
    /// or the agent, whatever tool object carries the call.
    pub fn with_sessions(mut self, sessions: Arc<crate::exec::Sessions>) -> Self {
        self.sessions = sessions;
        self
    }

    /// Runs this tool's calls as a person allowed through a consent question (see
    /// [`crate::RunOptions::consent`]). Why: a server that asked the person runs the call
    /// again with their answer; the answer never comes from the tool's input.
    pub fn with_consent(mut self, consent: Option<crate::consent::Consent>) -> Self {
        self.consent = consent;
        self
    }

    /// Runs the skill and returns the full result.
    pub async fn execute(&self, input: &Value) -> SkillResult {
        let options = crate::RunOptions {
            consent: self.consent.clone(),
            trust: self.trust,
            allow_weaker_isolation: self.allow_weaker_isolation,
            sessions: Some(self.sessions.clone()),
            ..crate::RunOptions::default()
        };
        self.runtime.run_with(&self.name, input, &options).await
    }
}

#[async_trait]
impl Tool for SkillTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn input_schema(&self) -> Value {
        self.schema.clone()
    }

    async fn invoke(&self, input: Value) -> ToolResult {
        let result = self.execute(&input).await;
        into_tool_result(result)
    }
}

/// [`to_tool_result`] of a result the caller no longer needs: the text takes the output (or
/// the reason) instead of a copy of it, which matters for outputs of up to a megabyte.
fn into_tool_result(mut result: SkillResult) -> ToolResult {
    let structured =
        serde_json::to_value(&result).unwrap_or_else(|e| json!({"error": e.to_string()}));
    let is_error = result.status != Status::Success;
    let text = if is_error {
        let reason = match (&result.denial, result.unsupported.is_empty()) {
            // Worded for the model, which cannot pass `--trust` or opt into weaker isolation.
            (Some(d), _) => d.message_for_model(),
            (None, false) => format!(
                "skill `{}` was not run: this computer cannot enforce {} for it ({}). You \
                 cannot change this: tell the person. They can fix the host (`skillbox \
                 doctor` names the fix) or let skillbox run skills with weaker isolation, \
                 which the audit log records",
                result.skill,
                result.unsupported.join(", "),
                result.message.take().unwrap_or_default()
            ),
            (None, true) => result.message.take().unwrap_or_else(|| result.status.as_str().into()),
        };
        if result.stderr.is_empty() {
            reason
        } else {
            format!("{reason}\nstderr:\n{}", result.stderr)
        }
    } else if result.stdout.is_empty() {
        // An empty text leaves a model guessing whether anything happened.
        let mut said = format!(
            "skill `{}` succeeded (exit code {}) and printed nothing",
            result.skill,
            result.exit_code.unwrap_or(0)
        );
        if !result.stderr.is_empty() {
            said.push_str(&format!("; stderr:\n{}", result.stderr));
        }
        said
    } else {
        std::mem::take(&mut result.stdout)
    };
    ToolResult { is_error, text, structured }
}

/// Converts a [`SkillResult`] into what a model and a program see.
pub fn to_tool_result(result: &SkillResult) -> ToolResult {
    into_tool_result(result.clone())
}

/// The JSON Schema of a skill's parameters, as an object schema that forbids undeclared keys
/// (the same rule the validator applies).
pub fn input_schema(def: &SkillDef) -> Value {
    if def.skill_type == crate::format::SkillType::CodeSession {
        return crate::exec::session::input_schema();
    }
    let mut props = Map::new();
    let mut required = Vec::new();
    for p in &def.parameters {
        let mut s = Map::new();
        match p.spec.param_type {
            ParamType::String => {
                s.insert("type".into(), json!("string"));
                if let Some(pat) = &p.spec.pattern {
                    s.insert("pattern".into(), json!(format!("^(?:{pat})$")));
                }
            }
            ParamType::Number => {
                s.insert("type".into(), json!("number"));
            }
            ParamType::Boolean => {
                s.insert("type".into(), json!("boolean"));
            }
            ParamType::Enum => {
                s.insert("type".into(), json!("string"));
                s.insert("enum".into(), json!(p.spec.values.clone().unwrap_or_default()));
            }
        }
        if let Some(d) = &p.spec.description {
            s.insert("description".into(), json!(d));
        }
        props.insert(p.spec.name.clone(), Value::Object(s));
        if p.spec.required {
            required.push(json!(p.spec.name));
        }
    }
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// What a call of a skill can do to the world, as hints for an agent deciding whether to ask
/// the person first (MCP's tool annotations). Computed from the grant the kernel enforces at
/// the level the call runs at, not from what the skill says of itself, so an agent that
/// auto-approves a read-only, offline tool is right to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ToolHints {
    /// Nothing is written beyond the run's private temporary directory (no writable path is
    /// granted), or nothing runs at all (a prompt skill, a call that will be denied).
    pub read_only: bool,
    /// It may overwrite or remove what is in its writable paths: skillbox cannot tell an
    /// additive write from a destructive one, so any writable path makes this true.
    pub destructive: bool,
    /// Calling it again with the same arguments has no further effect: true when it is read
    /// only and offline.
    pub idempotent: bool,
    /// It may reach hosts beyond this computer (any network granted).
    pub open_world: bool,
}

impl ToolHints {
    /// Hints for a call that changes nothing and reaches nothing.
    const INERT: ToolHints =
        ToolHints { read_only: true, destructive: false, idempotent: true, open_world: false };
}

/// The [`ToolHints`] of `skill` as `runtime` would run it now, at its default level (a grant
/// or the policy may set it). `allow_weaker_isolation`: the caller runs skills even where the
/// host cannot keep a guarantee; where it cannot keep `file-metadata` (no mount namespace per
/// run, or no mount API), a run could then change the modes and times of files it may only
/// read, so no run that starts a process is read-only there.
pub fn tool_hints(
    runtime: &crate::Runtime,
    skill: &crate::LoadedSkill,
    allow_weaker_isolation: bool,
) -> ToolHints {
    use crate::format::{NetworkLevel, SkillType};
    if matches!(skill.def.skill_type, SkillType::PromptInline | SkillType::Conversation) {
        // Rendered by skillbox; no process runs.
        return ToolHints::INERT;
    }
    let level = match runtime.trust_decision(skill, None) {
        Ok(d) => d.level,
        Err(_) => skill.source.default_trust(),
    };
    let ctx = crate::SecurityContext::for_trust_level(level, runtime.workspace());
    match ctx.validate_execution(&skill.def) {
        // Denied before anything runs.
        Err(_) => ToolHints::INERT,
        Ok(g) => {
            let host = skillbox_sandbox::host();
            let metadata_kept = host.mount_namespaces && host.mount_api;
            let read_only = g.file_write.is_empty() && (metadata_kept || !allow_weaker_isolation);
            let open_world = g.network != NetworkLevel::None;
            ToolHints {
                read_only,
                destructive: !read_only,
                idempotent: read_only && !open_world,
                open_world,
            }
        }
    }
}

/// The JSON Schema of a tool call's structured result (the object `skillbox run --json`
/// prints): the fields a program relies on, typed; others may be added.
pub fn output_schema() -> Value {
    let statuses: Vec<&str> = [
        Status::Success,
        Status::Failed,
        Status::Denied,
        Status::Invalid,
        Status::Timeout,
        Status::LimitExceeded,
        Status::Error,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": statuses},
            "skill": {"type": "string"},
            "execution_id": {"type": "string"},
            "trust_level": {"type": ["string", "null"]},
            "exit_code": {"type": ["integer", "null"]},
            "signal": {"type": ["integer", "null"]},
            "stdout": {"type": "string"},
            "stderr": {"type": "string"},
            "stdout_truncated": {"type": "boolean"},
            "stderr_truncated": {"type": "boolean"},
            "duration_ms": {"type": "integer", "minimum": 0},
            "message": {"type": ["string", "null"]},
            "attempts": {"type": "integer", "minimum": 0},
            "unsupported": {"type": "array", "items": {"type": "string"}},
            "enforcement": {"type": "array", "items": {"type": "object"}},
            "session": {
                "type": "object",
                "description": "code_session skills: session_id (pass it back to continue), value (repr of the last expression), error (type, message, traceback), interrupted, call_ms, ended",
                "properties": {"session_id": {"type": "string"}, "value": {"type": ["string", "null"]}},
                "required": ["session_id"]
            }
        },
        "required": ["status", "skill", "execution_id", "stdout", "stderr", "duration_ms", "attempts"],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_output_or_the_reason_with_stderr() {
        let mut ok = SkillResult::new(Status::Success, "s", "id".into());
        ok.stdout = "out\n".into();
        ok.stderr = "warn\n".into();
        let mut failed = SkillResult::new(Status::Failed, "s", "id".into());
        failed.message = Some("skill `s` exited with code 1".into());
        failed.stderr = "boom\n".into();
        let mut quiet = SkillResult::new(Status::Timeout, "s", "id".into());
        quiet.stdout = "partial".into();
        let bare = SkillResult::new(Status::Error, "s", "id".into());
        let cases = [
            (ok, false, "out\n"),
            (failed, true, "skill `s` exited with code 1\nstderr:\nboom\n"),
            (quiet, true, Status::Timeout.as_str()),
            (bare, true, Status::Error.as_str()),
        ];
        for (r, is_error, text) in cases {
            let structured = serde_json::to_value(&r).unwrap();
            let t = to_tool_result(&r);
            assert_eq!((t.is_error, t.text.as_str()), (is_error, text));
            assert_eq!(t.structured, structured, "the whole result, output included");
        }
    }
}
