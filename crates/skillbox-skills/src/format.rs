//! The JSON skill file format that existing skills use, loaded unchanged.
//!
//! Every field and spelling of the old chat-CLI format is accepted (see
//! `docs/writing-skills.md`). Parsing happens in three steps so that errors are precise:
//!
//! 1. bytes to JSON, with the file size bounded and UTF-8 checked first;
//! 2. JSON to typed sections, where a type error names the field path;
//! 3. semantic checks (required fields per type, regexes, names), which collect *every*
//!    problem instead of stopping at the first.
//!
//! Unknown keys are kept: the old loader kept them, and metadata tools rely on that.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diag::Diagnostic;
use crate::name::{check_name, quote};
use crate::pattern::Pattern;

/// Largest skill file accepted. Real skill files are a few KiB; a bound keeps a hostile or
/// accidental huge file (a log renamed `.json`) from costing memory or time.
pub const MAX_SKILL_FILE_BYTES: u64 = 1024 * 1024;

/// Longest accepted timeout, in seconds (one day). Trust levels cap it far lower.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// The five kinds of skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkillType {
    /// Runs a program with arguments.
    Command,
    /// Runs a short program given inline (an interpreter and its code), like `command`.
    CodeInline,
    /// A long-lived interpreter session (Python), kept alive between calls (see
    /// `docs/writing-skills.md`).
    CodeSession,
    /// Renders a prompt, with context files from the workspace.
    Conversation,
    /// Renders a prompt template.
    PromptInline,
}

impl SkillType {
    /// The spelling used in skill files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::CodeInline => "code_inline",
            Self::CodeSession => "code_session",
            Self::Conversation => "conversation",
            Self::PromptInline => "prompt_inline",
        }
    }

    /// True for the types that start a process.
    pub fn runs_process(self) -> bool {
        matches!(self, Self::Command | Self::CodeInline | Self::CodeSession)
    }
}

/// Type of a declared parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    /// A JSON string, optionally constrained by `pattern`.
    String,
    /// A JSON number.
    Number,
    /// A JSON boolean.
    Boolean,
    /// A JSON string that must be one of `values`.
    Enum,
}

/// One declared parameter, as written in the file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ParameterSpec {
    /// Parameter name, `[A-Za-z0-9_-]+`.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub param_type: ParamType,
    /// Whether the caller must supply it.
    #[serde(default)]
    pub required: bool,
    /// Allowed values of an `enum` parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    /// Regex the whole value of a `string` parameter must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Shown to people and models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How much network a skill asks for, or a context grants. Ordered from least to most.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkLevel {
    /// No network at all, loopback included.
    None,
    /// TCP to port 443 and DNS to the resolver.
    HttpsOnly,
    /// Any network the host has.
    Full,
}

impl NetworkLevel {
    /// The spelling used in files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::HttpsOnly => "https-only",
            Self::Full => "full",
        }
    }
}

/// `network_access` as written: a level, and whether plain HTTP (port 80) was asked for
/// (`"http"`, which is the `https-only` level plus port 80 for the hosts of
/// `allowed_domains`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkAccess {
    /// The level asked for.
    pub level: NetworkLevel,
    /// `"http"` was written: hosts listed without a port may also be reached on port 80
    /// once egress goes through skillbox's proxy. Until then runs get `level` only.
    pub plain_http: bool,
}

impl Serialize for NetworkAccess {
    /// As written: `"http"`, or the level's name.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.plain_http { "http" } else { self.level.as_str() })
    }
}

/// How many processes a skill may create. Ordered from least to most.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessSpawn {
    /// The command itself only; it cannot create processes.
    None,
    /// A bounded number of processes at once.
    Limited,
    /// No bound beyond the host's.
    Full,
}

impl ProcessSpawn {
    /// The spelling used in files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Limited => "limited",
            Self::Full => "full",
        }
    }
}

/// `security.permissions`, or the design-doc `sandbox` object: both spellings are read.
///
/// An unknown key here is an error, not a key kept for other tools: a typo (`file_wirte`)
/// would silently change what the skill may do.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionsSection {
    /// Paths the skill reads, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_read: Option<Vec<String>>,
    /// Paths the skill writes, relative to the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_write: Option<Vec<String>>,
    /// `true`/`false`, `"http"`, or a level: `"none"`, `"https-only"`, `"full"`.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "network_decl")]
    #[schemars(schema_with = "network_decl_schema")]
    pub network_access: Option<NetworkAccess>,
    /// Host patterns the skill reaches (`host`, `*.suffix`, either with `:port`), as
    /// written; checked into [`DeclaredPermissions::allowed_domains`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// Older spelling of `network_access: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_network: Option<bool>,
    /// Older spelling: `allowed_paths` are also writable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_file_write: Option<bool>,
    /// Older spelling of `file_read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_paths: Option<Vec<String>>,
    /// skillbox extension: `"none"`, `"limited"` or `"full"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_spawn: Option<ProcessSpawn>,
}

/// `security.resource_limits`. An unknown key is an error, as in [`PermissionsSection`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Memory of the whole process tree, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u64>,
    /// Wall-clock seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_execution_time: Option<f64>,
    /// Share of one CPU, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_percent: Option<u32>,
    /// Processes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_processes: Option<u64>,
    /// Open file descriptors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_open_files: Option<u64>,
    /// Bytes written to disk, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk_io_mb: Option<u64>,
}

/// The `security` object. An unknown key is an error, as in [`PermissionsSection`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecuritySection {
    /// What the skill asks to access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<PermissionsSection>,
    /// What the skill asks to be limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_limits: Option<LimitsSection>,
}

/// One entry of `fallback_commands`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FallbackCommand {
    /// Program to run.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
}

/// `error_classification`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorClassification {
    /// Regexes over stderr or the error text that mark a failure as worth retrying.
    #[serde(default)]
    pub transient_patterns: Vec<String>,
    /// Regexes that mark a failure as permanent: never retried.
    #[serde(default)]
    pub permanent_patterns: Vec<String>,
}

/// `retry_config` (the global form of retry settings).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RetryConfig {
    /// Attempts after the first; same meaning as `retry_attempts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// `exponential` (the only strategy the old format defined), `linear` or `fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_strategy: Option<String>,
    /// Failure classes to retry: `timeout`, `resource_limit`, `network_error`.
    #[serde(default)]
    pub retry_on: Vec<String>,
}

/// `circuit_breaker`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CircuitBreaker {
    /// Consecutive failures that open the circuit.
    pub failure_threshold: u32,
    /// Seconds the circuit stays open.
    pub recovery_timeout: f64,
}

/// The `resilience` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResilienceSection {
    /// Attempts after the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_attempts: Option<u32>,
    /// Seconds; another spelling of the skill timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// One fallback, a command line split into argv without a shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_command: Option<String>,
    /// Fallbacks tried in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_commands: Option<Vec<FallbackCommand>>,
    /// Which failures are transient or permanent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_classification: Option<ErrorClassification>,
    /// Retry settings in the global spelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
    /// Circuit breaker settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// `session_config`, for `code_session` skills.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionConfig {
    /// Seconds of inactivity before a session ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout: Option<f64>,
    /// Live sessions of this skill at once per owner (at most 4, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
    /// Seconds a session may live at most, idle or not (skillbox's own field; capped by the
    /// trust level, see `docs/writing-skills.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<f64>,
    /// Whether to remove session state on exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_on_exit: Option<bool>,
}

/// `context_files`, for `conversation` skills.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ContextFiles {
    /// Glob patterns relative to the workspace.
    #[serde(default)]
    pub patterns: Vec<String>,
    /// At most this many files (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<usize>,
    /// Files larger than this are skipped (default 100 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_size_kb: Option<u64>,
    /// Glob patterns to leave out.
    #[serde(default)]
    pub exclude_patterns: Vec<String>,
}

/// The typed view of a skill file. Private: [`SkillDef`] is what the rest of the crate uses.
#[derive(Deserialize, schemars::JsonSchema)]
struct RawSkill {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(rename = "type")]
    skill_type: SkillType,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    timeout: Option<f64>,
    #[serde(default)]
    prompt_template: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    parameters: Vec<ParameterSpec>,
    #[serde(default)]
    security: Option<SecuritySection>,
    #[serde(default)]
    sandbox: Option<PermissionsSection>,
    #[serde(default)]
    resilience: Option<ResilienceSection>,
    #[serde(default)]
    retry_config: Option<RetryConfig>,
    #[serde(default)]
    circuit_breaker: Option<CircuitBreaker>,
    #[serde(default)]
    session_config: Option<SessionConfig>,
    #[serde(default)]
    context_files: Option<ContextFiles>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    requires_worktree: Option<bool>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    license: Option<String>,
    #[serde(default)]
    homepage: Option<String>,
    #[serde(default)]
    dependencies: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    scope: Option<String>,
}

/// Top-level keys the format defines. Anything else is kept in [`SkillDef::extra`].
const KNOWN_KEYS: &[&str] = &[
    "name",
    "description",
    "version",
    "type",
    "command",
    "args",
    "timeout",
    "prompt_template",
    "prompt",
    "parameters",
    "security",
    "sandbox",
    "resilience",
    "retry_config",
    "circuit_breaker",
    "session_config",
    "context_files",
    "environment",
    "aliases",
    "requires_worktree",
    "author",
    "license",
    "homepage",
    "dependencies",
    "metadata",
    "scope",
];

/// A declared parameter, with its pattern checked.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// The declaration as written.
    pub spec: ParameterSpec,
    /// `pattern`, anchored to match the whole value: checked when the file loaded, compiled
    /// on first use (see [`Pattern`]).
    pub pattern: Option<Pattern>,
}

/// What a skill declares it needs, with every spelling folded into one view.
///
/// `None` means "not declared", which is different from "declared as nothing": an old skill
/// file that says nothing about the network gets none, while one that says nothing about
/// process creation keeps what its trust level allows (the old format had no such field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeclaredPermissions {
    /// Paths to read, relative to the workspace, as written. `None`: not declared.
    pub file_read: Option<Vec<String>>,
    /// Paths to write, relative to the workspace, as written.
    pub file_write: Vec<String>,
    /// Network asked for. `None`: not declared, which means none.
    pub network: Option<NetworkLevel>,
    /// `network_access: "http"` was declared: port 80 as well as 443 for the hosts of
    /// `allowed_domains` listed without a port (or for any public host without a list),
    /// through skillbox's egress proxy (docs/security-model.md).
    pub plain_http: bool,
    /// The hosts the skill says it reaches, normalised (lowercase, punycode, no trailing
    /// dot), duplicates removed. `None`: not declared. Only allowed with `network_access`
    /// `true` or `"http"`. The only hosts a run reaches, through skillbox's egress proxy,
    /// where the host gives each run its own network namespace (docs/security-model.md).
    pub allowed_domains: Option<Vec<skillbox_egress::HostPattern>>,
    /// Process creation asked for. `None`: not declared.
    pub process_spawn: Option<ProcessSpawn>,
}

/// A loaded, validated skill.
#[derive(Debug, Clone)]
pub struct SkillDef {
    /// Unique name.
    pub name: String,
    /// What it does, for people and models.
    pub description: String,
    /// Dotted integers, if given.
    pub version: Option<String>,
    /// Kind of skill.
    pub skill_type: SkillType,
    /// Program (for process types).
    pub command: Option<String>,
    /// argv after the command, with `{param}` placeholders.
    pub args: Vec<String>,
    /// Template (for prompt types), from `prompt_template` or `prompt`.
    pub prompt_template: Option<String>,
    /// Declared parameters.
    pub parameters: Vec<Parameter>,
    /// Declared permissions, all spellings merged.
    pub permissions: DeclaredPermissions,
    /// Declared resource limits.
    pub limits: LimitsSection,
    /// Timeout asked for: `timeout`, else `resource_limits.max_execution_time`, else
    /// `resilience.timeout`.
    pub timeout: Option<Duration>,
    /// Retry, fallback and circuit-breaker settings, all spellings merged.
    pub resilience: ResilienceSection,
    /// `code_session` settings.
    pub session_config: Option<SessionConfig>,
    /// `conversation` context files.
    pub context_files: Option<ContextFiles>,
    /// Extra environment variables for the command.
    pub environment: BTreeMap<String, String>,
    /// Other names that resolve to this skill.
    pub aliases: Vec<String>,
    /// Metadata fields (`author`, `license`, `homepage`, `scope`, `requires_worktree`,
    /// `dependencies`, `metadata`) as written.
    pub metadata: BTreeMap<String, Value>,
    /// Top-level keys the format does not define, kept as written.
    pub extra: BTreeMap<String, Value>,
    /// The whole file as parsed, for tools that need nested unknown keys.
    pub raw: Value,
    /// The directory of an Agent Skill this definition comes from: its scripts may always
    /// read it (their interpreter has to open them). `None` for JSON skill files.
    pub own_dir: Option<std::path::PathBuf>,
}

impl SkillDef {
    /// Keys of the file that the format does not define but that are close to one it does
    /// (`paramters`, `requried` in a parameter): each is kept and ignored, as other tools'
    /// keys are, and named here with the key it is probably a typo of. One line each, the
    /// key escaped.
    pub fn typo_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let Some(top) = self.raw.as_object() else { return out };
        for key in top.keys().filter(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            if let Some(c) = crate::name::closest(key, KNOWN_KEYS.iter().copied()) {
                out.push(format!(
                    "key {} is not part of the skill format and is ignored; did you mean `{c}`?",
                    crate::name::quote(key)
                ));
            }
        }
        let params = top.get("parameters").and_then(Value::as_array);
        for (i, p) in params.into_iter().flatten().enumerate() {
            let Some(p) = p.as_object() else { continue };
            for key in p.keys().filter(|k| !PARAMETER_KEYS.contains(&k.as_str())) {
                if let Some(c) = crate::name::closest(key, PARAMETER_KEYS.iter().copied()) {
                    out.push(format!(
                        "parameters[{i}]: key {} is not part of a parameter and is ignored; did \
                         you mean `{c}`?",
                        crate::name::quote(key)
                    ));
                }
            }
        }
        out
    }

    /// The declared parameter named `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.spec.name == name)
    }
}

/// Parses a skill file's bytes. `path` is used only to label problems.
///
/// Returns every problem found; an `Err` never holds an empty list.
pub fn parse_skill(path: &Path, bytes: &[u8]) -> Result<SkillDef, Vec<Diagnostic>> {
    if bytes.len() as u64 > MAX_SKILL_FILE_BYTES {
        return Err(vec![too_large(path, bytes.len() as u64)]);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        vec![Diagnostic::file(
            path,
            format!("not valid UTF-8 (first bad byte at offset {})", e.valid_up_to()),
        )]
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| vec![Diagnostic::file(path, format!("not valid JSON: {e}"))])?;
    let Value::Object(map) = &value else {
        return Err(vec![Diagnostic::file(path, "a skill file must hold one JSON object")]);
    };
    let extra: BTreeMap<String, Value> = map
        .iter()
        .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Tracking the field path costs time on every field; a file that deserializes without
    // it needs no path, and one that does not is deserialized again with it, which fails
    // with the same error and names the field.
    let raw: RawSkill = match RawSkill::deserialize(&value) {
        Ok(raw) => raw,
        Err(_) => serde_path_to_error::deserialize(&value).map_err(|e| {
            let field = one_line(&e.path().to_string());
            let reason = with_suggestion(&e.inner().to_string());
            vec![if field == "." {
                Diagnostic::file(path, reason)
            } else {
                Diagnostic::field(path, field, reason)
            }]
        })?,
    };
    check(path, raw, extra, value)
}

/// serde's "unknown field `X`, expected one of `a`, `b`" with "; did you mean `b`?" when one
/// of the expected names is close to `X`.
fn with_suggestion(reason: &str) -> String {
    let Some(rest) = reason.strip_prefix("unknown field `") else { return reason.to_string() };
    let Some((word, expected)) = rest.split_once('`') else { return reason.to_string() };
    let candidates = expected.split('`').skip(1).step_by(2);
    match crate::name::closest(word, candidates) {
        Some(c) => format!("{reason}; did you mean `{c}`?"),
        None => reason.to_string(),
    }
}

/// The keys of a parameter declaration.
const PARAMETER_KEYS: &[&str] = &["name", "type", "required", "values", "pattern", "description"];

/// The message for a file over [`MAX_SKILL_FILE_BYTES`].
pub(crate) fn too_large(path: &Path, size: u64) -> Diagnostic {
    Diagnostic::file(
        path,
        format!("file is {size} bytes; skill files are limited to {MAX_SKILL_FILE_BYTES} bytes"),
    )
}

/// A field path for a diagnostic: map keys come from the file, so control characters in
/// them are escaped to keep the diagnostic one line.
fn one_line(field: &str) -> String {
    skillbox_audit::text::escape_controls(field, skillbox_audit::text::Lines::Escape)
}

fn seconds(v: f64) -> Result<Duration, String> {
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("must be a positive number of seconds, not {v}"));
    }
    if v > MAX_TIMEOUT_SECS {
        return Err(format!("{v} s is more than the maximum of {MAX_TIMEOUT_SECS} s"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// The problems found in one file, each naming its field: what every section's checker
/// adds to.
struct Problems<'a> {
    path: &'a Path,
    list: Vec<Diagnostic>,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.list.push(Diagnostic::field(self.path, one_line(field), reason));
    }
}

/// Semantic checks. Collects every problem, section by section, in the order of the
/// sections in the file format.
fn check(
    path: &Path,
    mut raw: RawSkill,
    extra: BTreeMap<String, Value>,
    value: Value,
) -> Result<SkillDef, Vec<Diagnostic>> {
    let mut p = Problems { path, list: Vec::new() };
    check_identity(&raw, &mut p);
    let template = template_of(raw.prompt_template.take(), raw.prompt.take(), &mut p);
    check_type_fields(&raw, template.is_some(), &mut p);
    let parameters = parameters_of(std::mem::take(&mut raw.parameters), &mut p);
    let security = raw.security.take().unwrap_or_default();
    let permissions = permissions_of(&security, raw.sandbox.as_ref(), &mut p);
    let limits = security.resource_limits.unwrap_or_default();
    check_limits(&limits, &mut p);
    let resilience = raw.resilience.take().unwrap_or_default();
    let timeout = timeout_of(raw.timeout, &limits, &resilience, &mut p);
    let resilience =
        resilience_of(resilience, raw.retry_config.take(), raw.circuit_breaker.take(), &mut p);
    check_context_files(raw.context_files.as_ref(), &mut p);
    check_environment(&raw.environment, &mut p);
    check_aliases(&raw.aliases, &raw.name, &mut p);
    if !p.list.is_empty() {
        return Err(p.list);
    }
    let metadata = metadata_of(&mut raw);
    Ok(SkillDef {
        name: raw.name,
        description: raw.description.unwrap_or_default(),
        version: raw.version,
        skill_type: raw.skill_type,
        command: raw.command,
        args: raw.args,
        prompt_template: template,
        parameters,
        permissions,
        limits,
        timeout,
        resilience,
        session_config: raw.session_config,
        context_files: raw.context_files,
        environment: raw.environment,
        aliases: raw.aliases,
        metadata,
        extra,
        raw: value,
        own_dir: None,
    })
}

/// `name` and `version`.
fn check_identity(raw: &RawSkill, p: &mut Problems<'_>) {
    if let Err(e) = check_name(&raw.name) {
        p.add("name", format!("{} is not a valid skill name: {e}", quote(&raw.name)));
    }
    if let Some(v) = &raw.version {
        let ok = !v.is_empty()
            && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            p.add("version", format!("{} is not dotted integers such as 1.0.0", quote(v)));
        }
    }
}

/// The prompt template, from `prompt_template` or its alias `prompt` (not both).
fn template_of(
    prompt_template: Option<String>,
    prompt: Option<String>,
    p: &mut Problems<'_>,
) -> Option<String> {
    match (prompt_template, prompt) {
        (Some(t), Some(_)) => {
            p.add("prompt", "`prompt` and `prompt_template` are the same field; give one");
            // Keep one, so the file is not also told that its template is missing.
            Some(t)
        }
        (a, b) => a.or(b),
    }
}

/// The fields each type requires (`command` for process types, a template for prompt
/// types), and `args`.
fn check_type_fields(raw: &RawSkill, has_template: bool, p: &mut Problems<'_>) {
    match raw.skill_type {
        SkillType::Command | SkillType::CodeInline | SkillType::CodeSession => {
            match raw.command.as_deref() {
                None => {
                    p.add("command", format!("required for a `{}` skill", raw.skill_type.as_str()))
                }
                Some(c) if c.trim().is_empty() => p.add("command", "must not be empty"),
                Some(c) if c.contains('\0') => p.add("command", "contains a NUL byte"),
                Some(c) => {
                    if let Err(e) = shell_words::split(c) {
                        p.add("command", format!("cannot be split into words: {e}"));
                    }
                }
            }
        }
        SkillType::Conversation | SkillType::PromptInline => {
            if !has_template {
                p.add(
                    "prompt_template",
                    format!(
                        "required for a `{}` skill (or its alias `prompt`)",
                        raw.skill_type.as_str()
                    ),
                );
            }
        }
    }
    for (i, a) in raw.args.iter().enumerate() {
        if a.contains('\0') {
            p.add(&format!("args[{i}]"), "contains a NUL byte");
        }
    }
}

/// The declared parameters: names unique and valid, `values` only and always for `enum`,
/// `pattern` only for `string` and a valid regex.
fn parameters_of(specs: Vec<ParameterSpec>, p: &mut Problems<'_>) -> Vec<Parameter> {
    let mut parameters = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let at = |f: &str| format!("parameters[{i}].{f}");
        if let Err(e) = check_name(&spec.name) {
            p.add(&at("name"), format!("{} is not a valid parameter name: {e}", quote(&spec.name)));
        } else if !seen.insert(spec.name.clone()) {
            p.add(&at("name"), format!("parameter `{}` is declared twice", spec.name));
        }
        match (spec.param_type, &spec.values) {
            (ParamType::Enum, None) => p.add(&at("values"), "an `enum` parameter needs `values`"),
            (ParamType::Enum, Some(v)) if v.is_empty() => {
                p.add(&at("values"), "must list at least one value")
            }
            (ParamType::Enum, Some(_)) | (_, None) => {}
            (t, Some(_)) => p.add(
                &at("values"),
                format!("only `enum` parameters take `values`, this one is `{t:?}`").to_lowercase(),
            ),
        }
        let mut pattern = None;
        if let Some(pat) = &spec.pattern {
            if spec.param_type != ParamType::String {
                p.add(&at("pattern"), "only `string` parameters take a `pattern`");
            }
            match Pattern::check(pat, true) {
                Ok(re) => pattern = Some(re),
                Err(e) => p.add(&at("pattern"), e),
            }
        }
        parameters.push(Parameter { spec, pattern });
    }
    parameters
}

/// The permissions: `security.permissions` and `sandbox` merged (a skill asking in both
/// places asks for the union), with usable paths.
fn permissions_of(
    security: &SecuritySection,
    sandbox: Option<&PermissionsSection>,
    p: &mut Problems<'_>,
) -> DeclaredPermissions {
    let mut permissions = DeclaredPermissions::default();
    for section in [security.permissions.as_ref(), sandbox].into_iter().flatten() {
        merge_permissions(&mut permissions, section);
    }
    let sections = [("security.permissions", security.permissions.as_ref()), ("sandbox", sandbox)];
    permissions.allowed_domains = allowed_domains_of(&sections, permissions.network, p);
    for (field, list) in [
        ("security.permissions.file_read", permissions.file_read.as_deref().unwrap_or(&[])),
        ("security.permissions.file_write", &permissions.file_write[..]),
    ] {
        for path in list {
            if path.is_empty() || path.contains('\0') {
                p.add(field, format!("{} is not a usable path", quote(path)));
            }
        }
    }
    permissions
}

/// `security.resource_limits`: none of the counts may be 0 (`max_disk_io_mb` may).
fn check_limits(limits: &LimitsSection, p: &mut Problems<'_>) {
    if limits.max_cpu_percent == Some(0) {
        p.add("security.resource_limits.max_cpu_percent", "must be at least 1");
    }
    for (f, v) in [
        ("max_memory_mb", limits.max_memory_mb),
        ("max_processes", limits.max_processes),
        ("max_open_files", limits.max_open_files),
    ] {
        if v == Some(0) {
            p.add(&format!("security.resource_limits.{f}"), "must be at least 1");
        }
    }
}

/// The timeout: `timeout`, else `max_execution_time`, else `resilience.timeout`; each given
/// must be a valid number of seconds.
fn timeout_of(
    timeout: Option<f64>,
    limits: &LimitsSection,
    resilience: &ResilienceSection,
    p: &mut Problems<'_>,
) -> Option<Duration> {
    let mut chosen = None;
    for (field, v) in [
        ("timeout", timeout),
        ("security.resource_limits.max_execution_time", limits.max_execution_time),
        ("resilience.timeout", resilience.timeout),
    ] {
        if let Some(v) = v {
            match seconds(v) {
                Ok(d) => chosen = chosen.or(Some(d)),
                Err(e) => p.add(field, e),
            }
        }
    }
    chosen
}

/// The `resilience` section with the top-level global forms (`retry_config`,
/// `circuit_breaker`) folded in, checked.
fn resilience_of(
    mut resilience: ResilienceSection,
    retry_config: Option<RetryConfig>,
    circuit_breaker: Option<CircuitBreaker>,
    p: &mut Problems<'_>,
) -> ResilienceSection {
    if resilience.retry_config.is_none() {
        resilience.retry_config = retry_config;
    }
    if resilience.circuit_breaker.is_none() {
        resilience.circuit_breaker = circuit_breaker;
    }
    if let Some(n) = resilience.retry_attempts {
        if n > 100 {
            p.add("resilience.retry_attempts", format!("{n} is more than the maximum of 100"));
        }
    }
    if let Some(rc) = &resilience.retry_config {
        check_retry_config(rc, p);
    }
    if let Some(cb) = &resilience.circuit_breaker {
        if cb.failure_threshold == 0 {
            p.add("circuit_breaker.failure_threshold", "must be at least 1");
        }
        if let Err(e) = seconds(cb.recovery_timeout) {
            p.add("circuit_breaker.recovery_timeout", e);
        }
    }
    check_fallbacks(&resilience, p);
    if let Some(ec) = &resilience.error_classification {
        for (kind, list) in [
            ("transient_patterns", &ec.transient_patterns),
            ("permanent_patterns", &ec.permanent_patterns),
        ] {
            for (i, pat) in list.iter().enumerate() {
                if let Err(e) = Pattern::check(pat, false) {
                    p.add(&format!("resilience.error_classification.{kind}[{i}]"), e);
                }
            }
        }
    }
    resilience
}

/// `retry_config`: a known strategy, known failure classes, at most 100 attempts.
fn check_retry_config(rc: &RetryConfig, p: &mut Problems<'_>) {
    if let Some(s) = &rc.backoff_strategy {
        if !["exponential", "linear", "fixed"].contains(&s.as_str()) {
            p.add(
                "retry_config.backoff_strategy",
                format!("{} is not one of exponential, linear, fixed", quote(s)),
            );
        }
    }
    for (i, r) in rc.retry_on.iter().enumerate() {
        if !["timeout", "resource_limit", "network_error"].contains(&r.as_str()) {
            p.add(
                &format!("retry_config.retry_on[{i}]"),
                format!("{} is not one of timeout, resource_limit, network_error", quote(r)),
            );
        }
    }
    if rc.max_attempts.is_some_and(|n| n > 100) {
        p.add("retry_config.max_attempts", "more than the maximum of 100");
    }
}

/// `fallback_command` splits into words; no `fallback_commands` entry is empty.
fn check_fallbacks(resilience: &ResilienceSection, p: &mut Problems<'_>) {
    if let Some(fc) = &resilience.fallback_command {
        match shell_words::split(fc) {
            Ok(words) if words.is_empty() => {
                p.add("resilience.fallback_command", "must not be empty")
            }
            Ok(_) => {}
            Err(e) => p.add("resilience.fallback_command", format!("cannot be split: {e}")),
        }
    }
    for (i, fc) in resilience.fallback_commands.iter().flatten().enumerate() {
        if fc.command.trim().is_empty() {
            p.add(&format!("resilience.fallback_commands[{i}].command"), "must not be empty");
        }
    }
}

/// `context_files`: every pattern a valid glob.
fn check_context_files(cf: Option<&ContextFiles>, p: &mut Problems<'_>) {
    let Some(cf) = cf else { return };
    for (kind, list) in [("patterns", &cf.patterns), ("exclude_patterns", &cf.exclude_patterns)] {
        for (i, pat) in list.iter().enumerate() {
            if let Err(e) = globset::Glob::new(pat) {
                p.add(&format!("context_files.{kind}[{i}]"), format!("invalid glob: {e}"));
            }
        }
    }
}

/// `environment`: variable names, and values without NUL.
fn check_environment(environment: &BTreeMap<String, String>, p: &mut Problems<'_>) {
    for (k, v) in environment {
        let ok = k.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            p.add("environment", format!("{} is not a valid variable name", quote(k)));
        }
        if v.contains('\0') {
            p.add(&format!("environment.{k}"), "contains a NUL byte");
        }
    }
}

/// `aliases`: valid names, none the skill's own.
fn check_aliases(aliases: &[String], name: &str, p: &mut Problems<'_>) {
    for (i, a) in aliases.iter().enumerate() {
        if let Err(e) = check_name(a) {
            p.add(&format!("aliases[{i}]"), format!("{} is not a valid name: {e}", quote(a)));
        } else if a == name {
            p.add(&format!("aliases[{i}]"), "an alias must differ from the skill's name");
        }
    }
}

/// The metadata fields, as written, taken out of `raw`.
fn metadata_of(raw: &mut RawSkill) -> BTreeMap<String, Value> {
    let mut metadata = BTreeMap::new();
    for (k, v) in [
        ("author", raw.author.take().map(Value::String)),
        ("license", raw.license.take().map(Value::String)),
        ("homepage", raw.homepage.take().map(Value::String)),
        ("scope", raw.scope.take().map(Value::String)),
        ("requires_worktree", raw.requires_worktree.map(Value::Bool)),
        ("dependencies", raw.dependencies.take()),
        ("metadata", raw.metadata.take()),
    ] {
        if let Some(v) = v {
            metadata.insert(k.to_string(), v);
        }
    }
    metadata
}

fn merge_permissions(into: &mut DeclaredPermissions, s: &PermissionsSection) {
    let mut read: Vec<String> = Vec::new();
    read.extend(s.file_read.iter().flatten().cloned());
    read.extend(s.allowed_paths.iter().flatten().cloned());
    if s.file_read.is_some() || s.allowed_paths.is_some() {
        into.file_read.get_or_insert_with(Vec::new).extend(read);
    }
    into.file_write.extend(s.file_write.iter().flatten().cloned());
    if s.allow_file_write == Some(true) {
        into.file_write.extend(s.allowed_paths.iter().flatten().cloned());
    }
    let net = match (s.network_access, s.allow_network) {
        (Some(access), _) => {
            into.plain_http |= access.plain_http;
            Some(access.level)
        }
        (None, Some(true)) => Some(NetworkLevel::HttpsOnly),
        (None, Some(false)) => Some(NetworkLevel::None),
        (None, None) => None,
    };
    into.network = into.network.max(net);
    into.process_spawn = into.process_spawn.max(s.process_spawn);
}

/// Reads `network_access` as a boolean (`true` asks for the least network that works:
/// HTTPS), as `"http"` (HTTPS, and plain HTTP for the listed hosts), or as a level name.
/// The JSON Schema of what [`network_decl`] reads.
fn network_decl_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "true (= \"https-only\"), false (= \"none\"), or a level",
        "oneOf": [
            {"type": "boolean"},
            {"type": "string", "enum": ["none", "https-only", "https", "http", "full"]}
        ]
    })
}

/// The JSON Schema of a skill file, generated from the types the parser reads it into (so
/// that it cannot drift from them): what editors complete and check. Keys it does not name
/// are allowed at the top level and in parameters (other tools' keys), and refused inside
/// `security` and `sandbox`, as the parser does. `docs/skill.schema.json` holds it; a test
/// checks that the file is current.
pub fn skill_file_schema() -> Value {
    let mut schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<RawSkill>();
    schema.insert("title".into(), "skillbox skill file".into());
    schema.insert(
        "description".into(),
        "A skill file as skillbox reads it (the chat CLI's format, unchanged); \
         docs/writing-skills.md describes each key."
            .into(),
    );
    schema.insert("$id".into(), "https://example.invalid/skillbox/skill.schema.json".into());
    schema.to_value()
}

fn network_decl<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NetworkAccess>, D::Error> {
    use serde::de::Error;
    let level = |level| Ok(Some(NetworkAccess { level, plain_http: false }));
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(true)) => level(NetworkLevel::HttpsOnly),
        Some(Value::Bool(false)) => level(NetworkLevel::None),
        Some(Value::String(s)) => match s.as_str() {
            "none" => level(NetworkLevel::None),
            "https-only" | "https" => level(NetworkLevel::HttpsOnly),
            "http" => Ok(Some(NetworkAccess { level: NetworkLevel::HttpsOnly, plain_http: true })),
            "full" => level(NetworkLevel::Full),
            _ => Err(D::Error::custom(format!(
                "{} is not a network level; use true, false, \"http\", \"none\", \
                 \"https-only\" or \"full\"",
                quote(&s)
            ))),
        },
        Some(_) => Err(D::Error::custom(
            "expected true, false, \"http\", \"none\", \"https-only\" or \"full\"",
        )),
    }
}

/// `allowed_domains` of each section that has it, every entry parsed and normalised
/// ([`skillbox_egress::HostPattern`]), the union in the order written.
///
/// The list needs `network_access` `true` or `"http"`: it names the hosts of the network a
/// skill asks for, and never asks for network itself, so a skill that adds a list never
/// gets more network than the same skill without it. With no network, `false` or `"full"`
/// (which reaches any host, so a list would not narrow it) the list is refused.
fn allowed_domains_of(
    sections: &[(&str, Option<&PermissionsSection>)],
    network: Option<NetworkLevel>,
    p: &mut Problems<'_>,
) -> Option<Vec<skillbox_egress::HostPattern>> {
    let mut all: Option<Vec<skillbox_egress::HostPattern>> = None;
    let mut first_field = None;
    for (prefix, section) in sections {
        let Some(list) = section.and_then(|s| s.allowed_domains.as_ref()) else { continue };
        let field = format!("{prefix}.allowed_domains");
        if list.is_empty() {
            p.add(
                &field,
                "is empty, which would allow no host; list the hosts the skill reaches, or \
                 remove the field",
            );
        }
        let into = all.get_or_insert_with(Vec::new);
        for (i, written) in list.iter().enumerate() {
            match skillbox_egress::HostPattern::parse(written) {
                Ok(pat) if into.contains(&pat) => {}
                Ok(pat) => into.push(pat),
                Err(e) => p.add(&format!("{field}[{i}]"), e.to_string()),
            }
        }
        first_field.get_or_insert(field);
    }
    let field = first_field?;
    let fix = "declare \"network_access\": true (HTTPS, port 443) or \"http\" (ports 443 and 80) \
               with it";
    match network {
        None => p.add(&field, format!("lists hosts, but network_access is not declared; {fix}")),
        Some(NetworkLevel::None) => {
            p.add(&field, format!("lists hosts, but network_access is false (none); {fix}"))
        }
        Some(NetworkLevel::Full) => p.add(
            &field,
            format!(
                "lists hosts, but network_access is \"full\", which reaches any host and port, \
                 so the list would not narrow it; {fix}"
            ),
        ),
        Some(NetworkLevel::HttpsOnly) => {}
    }
    all
}
