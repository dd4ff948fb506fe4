//! skillbox's skills layer: skill files, the registry, security contexts, parameter checks,
//! and the `Tool`/`SkillTool` integration for agent CLIs.
//!
//! This crate knows nothing of the command line or of MCP; both sit on top of it. It knows
//! nothing of *how* a child is confined either: that is `skillbox-sandbox`, which this crate
//! asks to run a fully specified child and which reports what it enforced.
//!
//! # Embedding
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use skillbox_skills::{Runtime, Tool};
//!
//! let runtime = Arc::new(Runtime::open(std::path::Path::new("."))?);
//! for tool in runtime.tools() {
//!     println!("{}: {}", tool.name(), tool.description());
//! }
//! let result = runtime.run("echo", &serde_json::json!({"text": "hi"}), None).await;
//! println!("{}", serde_json::to_string(&result)?);
//! # Ok(()) }
//! ```

//!
//! # Sessions
//!
//! A `code_session` skill keeps a confined Python interpreter between calls; the sessions
//! belong to a [`Sessions`] table, and dropping it ends them:
//!
//! ```no_run
//! # async fn demo(runtime: std::sync::Arc<skillbox_skills::Runtime>) {
//! let sessions = std::sync::Arc::new(skillbox_skills::Sessions::new());
//! let r = runtime.call_session(&sessions, "python-repl", "x = 41", None, None).await;
//! let id = r.session.map(|s| s.session_id);
//! let r = runtime.call_session(&sessions, "python-repl", "x + 1", id.as_deref(), None).await;
//! assert_eq!(r.session.and_then(|s| s.value).as_deref(), Some("42"));
//! # }
//! ```
//!
//! # One run path
//!
//! Every run goes through [`Runtime::run_with`] (which [`Runtime::run`], [`SkillTool`], the
//! CLI and the MCP server call): it decides the trust level, records the run in the audit
//! log, keeps the circuit breaker and seals granted content. Nothing outside this crate can
//! start a skill's process another way; the plan's `execute_with_security` is the name of the
//! step inside that path, and calling it from outside does not compile:
//!
//! ```compile_fail
//! # async fn f(skill: &skillbox_skills::LoadedSkill, ctx: &skillbox_skills::SecurityContext) {
//! let params = serde_json::json!({});
//! let _ = skill.execute_with_security(&params, ctx, &Default::default(), String::new()).await;
//! # }
//! ```

#![warn(missing_docs)]

pub mod agent;
mod audit;
pub mod circuit;
pub mod consent;
mod diag;
mod exec;
pub mod format;
mod host;
pub mod name;
pub mod params;
pub mod pattern;
mod private_dir;
mod prompt;
pub mod protect;
mod refusals;
pub mod registry;
pub mod resilience;
mod result;
mod runtime;
pub mod scaffold;
pub mod seal;
pub mod security;
mod tool;
pub mod trust;

pub use audit::{default_audit_path, params_digest};
pub use consent::{Consent, ConsentAnswer, ConsentQuestion};
pub use diag::Diagnostic;
pub use exec::egress::{enforced_here as egress_enforced, PROXY_PORT as EGRESS_PROXY_PORT};
pub use exec::{enforcement_entries, DEFAULT_PATH, OUTPUT_LIMIT};
pub use exec::{
    CallError, SessionReport, Sessions, DEFAULT_IDLE_TIMEOUT, DEFAULT_LIFETIME, INTERRUPT_GRACE,
    MAX_SESSIONS, MAX_TRUSTED_LIFETIME,
};
pub use format::{parse_skill, SkillDef, SkillType};
pub use host::{host_report, HostFinding, HostMechanism, HostReport, LevelReport};
pub use refusals::refused_before_lookup;
pub use registry::{LoadedSkill, Locations, LookupError, Registry, SourceKind};
pub use result::{
    new_execution_id, EnforcementEntry, LimitKind, PlantedItem, PlantedReport, SkillResult, Status,
    TrustOrigin, Usage,
};
pub use runtime::{GrantError, OpenError, RunOptions, Runtime, TrustDecision, TrustView};
pub use security::{
    Denial, EffectiveGrant, PermissionSet, ResourceLimits, SecurityContext, TrustLevel,
};
pub use tool::{
    input_schema, output_schema, to_tool_result, tool_hints, SkillTool, Tool, ToolHints, ToolResult,
};

/// Re-exported so that embedders can configure and read the audit log without depending on
/// the audit crate directly.
pub use skillbox_audit as audit_log;
/// Re-exported so that embedders can show what is enforced without depending on the
/// sandbox crate directly.
pub use skillbox_sandbox::{Enforcement, Guarantee, MechanismState};
pub use skillbox_sandbox::{OutputObserver, Stream as OutputStream};
