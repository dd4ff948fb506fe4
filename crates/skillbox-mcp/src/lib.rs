//! The Model Context Protocol server of skillbox.
//!
//! Agent CLIs that speak MCP (Claude Code, Codex, Goose, the Q Developer CLI, ...) connect
//! to `skillbox mcp` over stdio and see every runnable skill as a tool. A `tools/call` runs
//! through [`SkillTool`], that is through [`Runtime::run`]: the same security context,
//! kernel confinement, limits, retries and audit events as `skillbox run`. Nothing here
//! decides what a skill may do; this crate only translates between MCP and the runtime.
//!
//! What the server adds around the runtime, and why:
//!
//! * **Cancellation.** `notifications/cancelled` drops the run's future, which kills the
//!   run's whole process group (and its PID namespace); the runtime then records a
//!   `SkillExecutionCancelled` event.
//! * **Concurrency.** Every call runs in its own task with its own sandbox. At most
//!   [`ServeOptions::max_concurrent_runs`] run at once; later calls wait for a slot (and can
//!   be cancelled while they wait), so a flood of calls cannot fork the machine to death.
//! * **Change notifications.** The skill directories are polled; when a file is added,
//!   changed or removed the skills are reloaded and clients are told: with
//!   `notifications/tools/list_changed` on handshake-era sessions, and on their
//!   `subscriptions/listen` stream on 2026-07-28 sessions.
//! * **Resources.** Each Agent Skill's `SKILL.md` and the files it references are served
//!   read-only as `skill://NAME/PATH`, opened confined to the skill's directory by the kernel
//!   (see `resources.rs`); `notifications/resources/list_changed` announces changes, and
//!   `notifications/resources/updated` a change of a resource a client subscribed to (see
//!   `subscriptions.rs`).
//! * **Progress.** A call whose request carries a progress token gets a progress
//!   notification every [`ServeOptions::progress_interval`] while its skill runs.
//! * **Hostile input.** The framing layer (see `frame.rs`) answers lines that are not JSON
//!   and oversized lines with JSON-RPC errors instead of ignoring them; the SDK answers
//!   malformed requests and unknown methods.

#![warn(missing_docs)]

mod consent;
mod fit;
mod frame;
pub mod http;
mod resources;
mod subscriptions;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, ErrorCode, ErrorData, GetPromptRequestParams, GetPromptResponse,
    GetPromptResult, Implementation, ListPromptsResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, Prompt, PromptArgument,
    PromptListChangedNotification, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    Reference, ResourceListChangedNotification, ResourceUpdatedNotification,
    ResourceUpdatedNotificationParam, Role, ServerCapabilities, ServerConfig, ServerNotification,
    SubscribeRequestParams, SubscriptionFilter, Tool, ToolAnnotations, ToolListChangedNotification,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{Peer, RoleServer, ServerHandler, ServiceExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, watch, Semaphore};

use skillbox_skills::{to_tool_result, Runtime, SkillTool, SkillType};

/// How the server behaves; the defaults suit an agent on a workstation.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How often the skill directories are checked for changes.
    pub poll_interval: Duration,
    /// Most skill runs in flight at once; further calls wait for a slot.
    pub max_concurrent_runs: usize,
    /// Longest accepted JSON-RPC message, in bytes; longer lines are discarded and answered
    /// with an error.
    pub max_message_bytes: usize,
    /// How often a call that asked for progress gets a notification.
    pub progress_interval: Duration,
    /// Run skills even where the host has no mechanism for a guarantee their grant needs
    /// (each such run is reported and recorded as weakened); off by default, when such a
    /// call is a tool error naming what is missing.
    pub allow_weaker_isolation: bool,
    /// How long a consent question waits for the person's answer (see `consent.rs`): an
    /// `elicitation/create` request's timeout, and how long a 2026-07-28 question stays
    /// answerable by its retry. A question not answered in time is recorded `unanswered`.
    pub consent_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            max_concurrent_runs: 16,
            max_message_bytes: 4 * 1024 * 1024,
            progress_interval: Duration::from_secs(1),
            allow_weaker_isolation: false,
            consent_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a session could not start or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The MCP session could not be established (the client closed the stream or sent
    /// no valid opening).
    #[error("MCP session could not start: {0}")]
    Start(String),
    /// The session ended with a transport or protocol failure.
    #[error("MCP session ended with an error: {0}")]
    Session(String),
}

/// The MCP handler: every runnable skill of a [`Runtime`] as a tool.
///
/// Cloning is cheap and clones share state, as the SDK requires of handlers.
#[derive(Clone)]
pub struct SkillServer {
    shared: Arc<Shared>,
    /// The `code_session` sessions of this server's connection: they end when it closes
    /// (see [`serve`]), or when the last clone of this connection's server is dropped. Each
    /// connection has its own ([`SkillServer::for_connection`]): a session of one client is
    /// never reachable from another.
    sessions: Arc<skillbox_skills::Sessions>,
    /// The resources this connection subscribed to with `resources/subscribe` (handshake
    /// era); its own, like its sessions.
    subscriptions: Arc<subscriptions::Subscriptions>,
}

struct Shared {
    /// The current skills; replaced whole when the skill files change, so a run in flight
    /// keeps the definition it started with.
    runtime: RwLock<Arc<Runtime>>,
    /// Bumped on every reload; `subscriptions/listen` streams wait on it.
    generation: watch::Sender<u64>,
    /// Bumped when the resources change without a reload (a referenced file added, removed
    /// or resized); `subscriptions/listen` streams wait on it too.
    resources_generation: watch::Sender<u64>,
    /// The URIs of the resources that changed at each poll that saw a change;
    /// `subscriptions/listen` streams with resource subscriptions receive them.
    updated: broadcast::Sender<Arc<BTreeSet<String>>>,
    /// Handshake-era connections that subscribed to resources: their peer, and their
    /// subscriptions while the connection lives.
    subscribers: Mutex<Vec<(Peer<RoleServer>, Weak<subscriptions::Subscriptions>)>>,
    /// Handshake-era clients, which are sent `notifications/tools/list_changed` and
    /// `notifications/resources/list_changed` directly.
    legacy_peers: Mutex<Vec<Peer<RoleServer>>>,
    runs: Arc<Semaphore>,
    options: ServeOptions,
    /// Consent questions of 2026-07-28 sessions waiting for their answer (see `consent.rs`).
    consent: consent::Pending,
}

impl SkillServer {
    /// A server over `runtime`.
    pub fn new(runtime: Runtime, options: ServeOptions) -> Self {
        let (generation, _) = watch::channel(0);
        let (resources_generation, _) = watch::channel(0);
        // A stream that falls this many polls behind is sent every URI it watches.
        let (updated, _) = broadcast::channel(16);
        let runs = Arc::new(Semaphore::new(options.max_concurrent_runs.max(1)));
        Self {
            shared: Arc::new(Shared {
                runtime: RwLock::new(Arc::new(runtime)),
                generation,
                resources_generation,
                updated,
                subscribers: Mutex::new(Vec::new()),
                legacy_peers: Mutex::new(Vec::new()),
                runs,
                options,
                consent: consent::Pending::default(),
            }),
            sessions: Arc::default(),
            subscriptions: Arc::default(),
        }
    }

    /// The server for another connection: the same skills, runs and options, and a table of
    /// `code_session` sessions of its own, which ends with it (the HTTP transport makes one
    /// per MCP session).
    pub fn for_connection(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            sessions: Arc::default(),
            subscriptions: Arc::default(),
        }
    }

    /// The runtime calls run on now.
    pub fn runtime(&self) -> Arc<Runtime> {
        match self.shared.runtime.read() {
            Ok(g) => g.clone(),
            // A panic while swapping cannot leave a half-written Arc; keep serving.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The tools clients see: every skill, with its description and the JSON Schema of its
    /// parameters (for a `code_session` skill: `code` and `session_id`).
    pub fn tools(&self) -> Vec<Tool> {
        let rt = self.runtime();
        rt.registry()
            .skills()
            .filter_map(|s| tool_for(&rt, s, self.shared.options.allow_weaker_isolation))
            .collect()
    }
    /// Reloads the skills if their files changed since the last look; returns whether they
    /// did, after telling every client.
    pub async fn refresh(&self, last: &mut Option<u64>) -> bool {
        let rt = self.runtime();
        let now = rt.skills_fingerprint();
        if now == *last {
            return false;
        }
        *last = now;
        let Some(fresh) = rt.reloaded() else { return false };
        match self.shared.runtime.write() {
            Ok(mut g) => *g = Arc::new(fresh),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(fresh),
        }
        self.shared.generation.send_modify(|g| *g += 1);
        tracing::info!(
            generation = *self.shared.generation.borrow(),
            "skill files changed: skills reloaded"
        );
        let peers = self.live_legacy_peers();
        for peer in peers {
            // Every reload is announced as a change of each list: a reload is rare (a person
            // edited a skill file) and a client re-lists cheaply.
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "a client was not told that the tools changed");
            }
            if let Err(e) = peer.notify_prompt_list_changed().await {
                tracing::debug!(error = %e, "a client was not told that the prompts changed");
            }
            // The skills' documents are resources: a reload may change them too.
            if let Err(e) = peer.notify_resource_list_changed().await {
                tracing::debug!(error = %e, "a client was not told that the resources changed");
            }
        }
        true
    }

    /// The handshake-era peers whose connection is still open (the closed ones are
    /// dropped): those told of list changes by notification.
    fn live_legacy_peers(&self) -> Vec<Peer<RoleServer>> {
        match self.shared.legacy_peers.lock() {
            Ok(mut peers) => {
                peers.retain(|p| !p.is_transport_closed());
                peers.clone()
            }
            Err(_) => Vec::new(),
        }
    }

    /// Tells every client that the resources changed, when the files `SKILL.md` references
    /// changed without a reload of the skills.
    async fn resources_changed(&self) {
        self.shared.resources_generation.send_modify(|g| *g += 1);
        tracing::info!("files referenced by Agent Skills changed: resources announced");
        let peers = self.live_legacy_peers();
        for peer in peers {
            if let Err(e) = peer.notify_resource_list_changed().await {
                tracing::debug!(error = %e, "a client was not told that the resources changed");
            }
        }
    }

    /// Tells the subscribers of each URI in `updated` that its resource changed: the
    /// handshake-era connections that subscribed to it, and the listen streams.
    async fn resources_updated(&self, updated: BTreeSet<String>) {
        tracing::debug!(count = updated.len(), "subscribed resources may have changed");
        let subscribers: Vec<(Peer<RoleServer>, Arc<subscriptions::Subscriptions>)> =
            match self.shared.subscribers.lock() {
                Ok(mut all) => {
                    all.retain(|(peer, subs)| {
                        !peer.is_transport_closed() && subs.strong_count() > 0
                    });
                    all.iter()
                        .filter_map(|(peer, subs)| Some((peer.clone(), subs.upgrade()?)))
                        .collect()
                }
                Err(_) => Vec::new(),
            };
        for (peer, subs) in subscribers {
            for uri in subs.among(&updated) {
                let note = ResourceUpdatedNotificationParam::new(uri);
                if let Err(e) = peer.notify_resource_updated(note).await {
                    tracing::debug!(error = %e, "a client was not told that a resource changed");
                }
            }
        }
        // No listen stream with subscriptions is no error.
        let _ = self.shared.updated.send(Arc::new(updated));
    }

    /// The resources' versions now (see [`resources::versions`]); `None` if the work could
    /// not run (the poll is then skipped).
    async fn resource_versions(&self) -> Option<resources::Versions> {
        let rt = self.runtime();
        on_blocking_pool(move || resources::versions(&rt)).await.ok()
    }

    /// Polls the skill directories until the session ends (and, at each poll, records the
    /// consent questions whose time ran out).
    async fn watch_skills(self) {
        let mut last = self.runtime().skills_fingerprint();
        let mut last_resources = self.resource_versions().await.unwrap_or_default();
        loop {
            tokio::time::sleep(self.shared.options.poll_interval).await;
            consent::expire(&self);
            let reloaded = self.refresh(&mut last).await;
            // Referenced files may change below what the skills' fingerprint looks at.
            let Some(now) = self.resource_versions().await else { continue };
            let (listed, updated) = resources::changes(&last_resources, &now);
            last_resources = now;
            if listed && !reloaded {
                self.resources_changed().await;
            }
            if !updated.is_empty() {
                self.resources_updated(updated).await;
            }
        }
    }

    /// Runs one call to its end, or until the client cancels it; with `consent`, as the
    /// person allowed it (see `consent.rs`). Returns the run's result and the reply.
    async fn call(
        &self,
        request: CallToolRequestParams,
        consent: Option<skillbox_skills::Consent>,
        context: &RequestContext<RoleServer>,
    ) -> Result<(skillbox_skills::SkillResult, CallToolResult), ErrorData> {
        let rt = self.runtime();
        let name = request.name.to_string();
        let input = Value::Object(request.arguments.unwrap_or_default());
        // A `code_session` call runs in this connection's sessions: a cancelled call drops
        // its future, which interrupts its code only; the session goes on.
        let tool = match SkillTool::new(rt.clone(), &name, None) {
            Some(t) => t
                .allow_weaker_isolation(self.shared.options.allow_weaker_isolation)
                .with_sessions(self.sessions.clone())
                .with_consent(consent),
            _ => {
                let message =
                    format!("unknown tool `{}`: no runnable skill has that name", printable(&name));
                // Recorded like every refusal: a model probing for tools leaves a trace.
                tracing::debug!("tools/call of an unknown tool: refused");
                rt.refuse(&name, skillbox_skills::Status::Invalid, message.clone(), &input);
                return Err(ErrorData::invalid_params(message, None));
            }
        };

        let _slot = tokio::select! {
            slot = self.shared.runs.clone().acquire_owned() => slot.map_err(|_| {
                ErrorData::internal_error("the server is shutting down", None)
            })?,
            _ = context.ct.cancelled() => {
                tracing::debug!(tool = name.as_str(), "cancelled while waiting for a slot");
                return Err(cancelled());
            }
        };

        let progress = context.meta.get_progress_token();
        let started = Instant::now();
        let run = tool.execute(&input);
        tokio::pin!(run);
        let mut tick = tokio::time::interval(self.shared.options.progress_interval);
        tick.tick().await;
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                // Dropping `run` (by returning) kills the run's processes; the runtime
                // records the cancellation in the audit log.
                _ = context.ct.cancelled() => {
                    tracing::debug!(tool = name.as_str(), "cancelled by the client: run stopped");
                    return Err(cancelled());
                }
                _ = tick.tick(), if progress.is_some() => {
                    if let Some(token) = &progress {
                        let secs = started.elapsed().as_secs_f64();
                        let note = ProgressNotificationParam::new(token.clone(), secs)
                            .with_message(format!("skill `{name}` running for {secs:.0} s"));
                        let _ = context.peer.notify_progress(note).await;
                    }
                }
            }
        };
        let mut out = to_tool_result(&result);
        if !result.unsupported.is_empty() {
            // The opt-out is this server's to give: name it for the person.
            out.text.push_str(
                " (the person can start this server as `skillbox mcp --allow-weaker-isolation`)",
            );
        }
        fit::fit(&mut out);
        let mut reply = if out.is_error {
            CallToolResult::error(vec![ContentBlock::text(out.text)])
        } else {
            CallToolResult::success(vec![ContentBlock::text(out.text)])
        };
        reply.structured_content = Some(out.structured);
        Ok((result, reply))
    }
}

/// Whether `skill` renders a prompt (`prompt_inline`, `conversation`): served as an MCP prompt
/// as well as a tool.
fn is_prompt(skill: &skillbox_skills::LoadedSkill) -> bool {
    matches!(skill.def.skill_type, SkillType::PromptInline | SkillType::Conversation)
}

/// The values `completion/complete` offers for argument `name` of prompt skill `skill`,
/// given what the person typed so far (`typed`): the declared `enum` values that start with
/// it, in declaration order. An argument of another type has no finite set of values, so
/// none are offered (an empty list, as the protocol allows).
fn completions(skill: &skillbox_skills::LoadedSkill, name: &str, typed: &str) -> Vec<String> {
    let declared = skill.def.parameters.iter().find(|p| p.spec.name == name);
    let values = declared.and_then(|p| p.spec.values.as_ref());
    values.into_iter().flatten().filter(|v| v.starts_with(typed)).cloned().collect()
}

/// `skill` as an MCP prompt (its parameters as the prompt's arguments), if it renders one.
fn prompt_for(skill: &skillbox_skills::LoadedSkill) -> Option<Prompt> {
    if !is_prompt(skill) {
        return None;
    }
    let arguments: Vec<PromptArgument> = skill
        .def
        .parameters
        .iter()
        .map(|p| {
            let mut a = PromptArgument::new(p.spec.name.clone()).with_required(p.spec.required);
            if let Some(d) = &p.spec.description {
                a = a.with_description(d.clone());
            }
            a
        })
        .collect();
    let description = (!skill.def.description.is_empty()).then(|| skill.def.description.clone());
    Some(Prompt::new(skill.def.name.clone(), description, Some(arguments)))
}

/// `skill` as an MCP tool.
fn tool_for(
    rt: &Arc<Runtime>,
    s: &skillbox_skills::LoadedSkill,
    allow_weaker_isolation: bool,
) -> Option<Tool> {
    let tool = SkillTool::new(rt.clone(), &s.def.name, None)?;
    let Value::Object(schema) = skillbox_skills::Tool::input_schema(&tool) else {
        return None;
    };
    // The level a call runs at (a grant or the policy may change the default).
    let level = match rt.trust_decision(s, None) {
        Ok(d) => d.level,
        Err(_) => s.source.default_trust(),
    };
    // The hosts it may reach, so that a client (and the model) sees where the skill
    // connects; skillbox's egress proxy refuses every other host.
    let hosts = match &s.def.permissions.allowed_domains {
        Some(list) => format!(
            "; it may reach only the network hosts {}",
            list.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ),
        None => String::new(),
    };
    let session = match s.def.skill_type {
        SkillType::CodeSession => {
            "; a Python session: the result's structuredContent.session.session_id, passed \
             back as `session_id`, runs more code in the same interpreter"
        }
        _ => "",
    };
    let description = format!(
        "{} (runs confined by skillbox at trust level `{level}`{hosts}{session})",
        skillbox_skills::Tool::description(&tool)
    );
    let hints = skillbox_skills::tool_hints(rt, s, allow_weaker_isolation);
    let annotations = ToolAnnotations::with_title(s.def.name.clone())
        .read_only(hints.read_only)
        .destructive(hints.destructive)
        .idempotent(hints.idempotent)
        .open_world(hints.open_world);
    let Value::Object(output) = skillbox_skills::output_schema() else { return None };
    Some(
        Tool::new(s.def.name.clone(), description, Arc::new(schema))
            .with_title(s.def.name.clone())
            .with_annotations(annotations)
            .with_raw_output_schema(Arc::new(output)),
    )
}

fn cancelled() -> ErrorData {
    ErrorData::new(ErrorCode::INTERNAL_ERROR, "request cancelled; the run was killed", None)
}

/// `s` with control characters escaped, for messages that quote client input.
fn printable(s: &str) -> String {
    skillbox_skills::audit_log::text::one_line(s, 200)
}

/// Runs `work` on tokio's blocking pool: opening, checking and reading resource files is
/// file system work, which on a slow file system (NFS, FUSE) would otherwise hold a worker
/// thread every other request of every session needs.
async fn on_blocking_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ErrorData> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::warn!(error = %e, "resource work on the blocking pool failed");
        ErrorData::internal_error("the resources could not be read", None)
    })
}

impl ServerHandler for SkillServer {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_completions()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .build(),
        )
        .with_instructions(
            "Each tool is a skill run by skillbox: confined by the kernel (files, network, \
             processes) to what its trust level and its own declaration allow, limited in \
             time and resources, and recorded in an audit log. A refusal or a limit comes \
             back as a tool error whose text says what was refused and how a person can \
             grant it.",
        );
        info.server_info = Implementation::new("skillbox", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let rt = self.runtime();
        let prompts = rt.registry().skills().filter_map(prompt_for).collect();
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let rt = self.runtime();
        let skill = rt.registry().get(&request.name).ok().filter(|s| is_prompt(s));
        let Some(skill) = skill else {
            let message = format!(
                "unknown prompt `{}`: no prompt skill has that name",
                printable(&request.name)
            );
            let input = Value::Object(request.arguments.unwrap_or_default());
            rt.refuse(&request.name, skillbox_skills::Status::Invalid, message.clone(), &input);
            return Err(ErrorData::invalid_params(message, None));
        };
        // Prompt arguments are strings; each is typed as the skill declares its parameter.
        let mut params = serde_json::Map::new();
        for (k, v) in request.arguments.unwrap_or_default() {
            let v = match v {
                Value::String(text) => skillbox_skills::params::typed_value(&skill.def, &k, &text),
                other => other,
            };
            params.insert(k, v);
        }
        // Rendered by the same run path as `tools/call` and `skillbox run`: the trust level,
        // the parameter checks, context files under the grant, the audit log.
        let options = skillbox_skills::RunOptions {
            allow_weaker_isolation: self.shared.options.allow_weaker_isolation,
            ..skillbox_skills::RunOptions::default()
        };
        let result = rt.run_with(&skill.def.name, &Value::Object(params), &options).await;
        if result.status != skillbox_skills::Status::Success {
            let out = to_tool_result(&result);
            return Err(ErrorData::invalid_params(out.text, Some(out.structured)));
        }
        let message = PromptMessage::new_text(Role::User, result.stdout);
        let mut reply = GetPromptResult::new(vec![message]);
        if !skill.def.description.is_empty() {
            reply = reply.with_description(skill.def.description.clone());
        }
        Ok(reply.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let values = match &request.r#ref {
            Reference::Prompt(prompt) => {
                let rt = self.runtime();
                let skill = rt.registry().get(&prompt.name).ok().filter(|s| is_prompt(s));
                let Some(skill) = skill else {
                    return Err(ErrorData::invalid_params(
                        format!(
                            "unknown prompt `{}`: no prompt skill has that name",
                            printable(&prompt.name)
                        ),
                        None,
                    ));
                };
                completions(skill, &request.argument.name, &request.argument.value)
            }
            // No resource template takes arguments a skill declares (nor does any kind of
            // reference a later protocol adds).
            _ => Vec::new(),
        };
        let total = values.len();
        let shown: Vec<String> = values.into_iter().take(CompletionInfo::MAX_VALUES).collect();
        let mut info = CompletionInfo::default();
        info.has_more = Some(total > shown.len());
        info.total = u32::try_from(total).ok();
        info.values = shown;
        Ok(CompleteResult::new(info))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let rt = self.runtime();
        let list = on_blocking_pool(move || resources::list(&rt)).await?;
        Ok(ListResourcesResult::with_all_items(list))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let rt = self.runtime();
        on_blocking_pool(move || resources::read(&rt, &request.uri)).await?.map(Into::into)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        let rt = self.runtime();
        let skill = rt.registry().get(name).ok()?;
        // An alias resolves to its skill, whose tool has the skill's name.
        tool_for(&rt, skill, self.shared.options.allow_weaker_isolation).filter(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // A panic while serving one call (a bug) ends that call with an error the client
        // can read, not the task silently; the run's future is dropped with it, which kills
        // its processes, and the server goes on.
        let call = std::panic::AssertUnwindSafe(consent::call(self, request, context));
        match futures_util::FutureExt::catch_unwind(call).await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!("a tools/call panicked (a bug); its run was stopped");
                Err(ErrorData::internal_error(
                    "skillbox failed internally on this call (a bug; its run was stopped); the \
                 server goes on",
                    None,
                ))
            }
        }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if let Ok(mut peers) = self.shared.legacy_peers.lock() {
            // Pruned here as well as on a reload: over HTTP every handshake-era session adds
            // a peer, and a server whose skills never change would otherwise keep them all.
            peers.retain(|p| !p.is_transport_closed());
            peers.push(context.peer);
        }
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = requested.tools_list_changed;
        accepted.prompts_list_changed = requested.prompts_list_changed;
        accepted.resources_list_changed = requested.resources_list_changed;
        accepted.resource_subscriptions = requested
            .resource_subscriptions
            .as_deref()
            .map(subscriptions::accepted)
            .filter(|uris| !uris.is_empty());
        Some(accepted)
    }

    #[allow(deprecated)] // handshake-era only, as rmcp marks it; served for those clients
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if self.subscriptions.add(&request.uri)? {
            if let Ok(mut all) = self.shared.subscribers.lock() {
                all.retain(|(peer, subs)| !peer.is_transport_closed() && subs.strong_count() > 0);
                all.push((context.peer, Arc::downgrade(&self.subscriptions)));
            }
        }
        Ok(())
    }

    #[allow(deprecated)] // as `subscribe`
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.remove(&request.uri);
        Ok(())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let mut changes = self.shared.generation.subscribe();
        let mut resource_changes = self.shared.resources_generation.subscribe();
        // Only what the stream accepted is sent: the sink refuses the rest with an error,
        // which must not end the stream.
        let tools = context.accepted().tools_list_changed == Some(true);
        let prompts = context.accepted().prompts_list_changed == Some(true);
        let resources = context.accepted().resources_list_changed == Some(true);
        let watched: BTreeSet<String> =
            context.accepted().resource_subscriptions.iter().flatten().cloned().collect();
        let mut updates = self.shared.updated.subscribe();
        loop {
            let mut notes = Vec::new();
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if tools {
                        notes.push(ServerNotification::ToolListChangedNotification(
                            ToolListChangedNotification::default(),
                        ));
                    }
                    if prompts {
                        notes.push(ServerNotification::PromptListChangedNotification(
                            PromptListChangedNotification::default(),
                        ));
                    }
                    if resources {
                        notes.push(ServerNotification::ResourceListChangedNotification(
                            ResourceListChangedNotification::default(),
                        ));
                    }
                }
                changed = resource_changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    if resources {
                        notes.push(ServerNotification::ResourceListChangedNotification(
                            ResourceListChangedNotification::default(),
                        ));
                    }
                }
                update = updates.recv(), if !watched.is_empty() => {
                    let uris: Vec<&String> = match &update {
                        Ok(updated) => watched.intersection(updated).collect(),
                        // Behind by more polls than are kept: any of them may have changed.
                        Err(broadcast::error::RecvError::Lagged(_)) => watched.iter().collect(),
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    };
                    for uri in uris {
                        notes.push(ServerNotification::ResourceUpdatedNotification(
                            ResourceUpdatedNotification::new(
                                ResourceUpdatedNotificationParam::new(uri.clone()),
                            ),
                        ));
                    }
                }
            }
            for note in notes {
                if context.sink().send(note).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Serves `runtime` over `input`/`output` (newline-delimited JSON-RPC, as on stdio) until
/// the client closes `input`.
///
/// Runs still in flight when the session ends are dropped, which kills their processes.
pub async fn serve<R, W>(
    runtime: Runtime,
    input: R,
    output: W,
    options: ServeOptions,
) -> Result<(), ServeError>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let server = SkillServer::new(runtime, options.clone());
    let sdk = frame::start(input, output, options.max_message_bytes);
    let running = server.clone().serve(sdk).await.map_err(|e| ServeError::Start(e.to_string()))?;
    tracing::debug!("MCP session started");
    let watcher = tokio::spawn(server.clone().watch_skills());
    let ended = running.waiting().await;
    watcher.abort();
    // The connection is gone: so are its sessions, and their processes.
    server.sessions.close_all().await;
    tracing::debug!(ok = ended.is_ok(), "MCP session ended");
    ended.map(|_| ()).map_err(|e| ServeError::Session(e.to_string()))
}

/// [`serve`] on this process's stdin and stdout: what `skillbox mcp` runs.
pub async fn serve_stdio(runtime: Runtime, options: ServeOptions) -> Result<(), ServeError> {
    serve(runtime, tokio::io::stdin(), tokio::io::stdout(), options).await
}
