//! A toy agent that embeds skillbox.
//!
//! A real agent shows its model the tools (name, description, input schema), and runs the
//! tool calls the model answers with. This one has no model: it plays a fixed script of
//! calls, the kind a model makes, including one a prompt-injected model would make and one
//! to a skill from a source it does not trust. Every call goes through `SkillTool`, so
//! through the skill's security context, and the agent gets a structured result back.
//!
//! Usage: `toy-agent [WORKSPACE]` (default `examples/workspace`). It prints one JSON object
//! per line: `{"event": "tools", ...}`, then one `{"event": "call", ...}` per call, then
//! `{"event": "audit", ...}`. The skills run for real: `format-json` writes
//! `WORKSPACE/out/formatted/`, and every run is recorded in the audit log
//! (`$SKILLBOX_AUDIT_LOG`, else `$SKILLBOX_HOME/logs/security_events.jsonl`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};
use skillbox_skills::{audit_log, Runtime, SkillTool, Tool, ToolResult, TrustLevel};

/// Prints one event as a line of JSON.
fn emit(event: Value) {
    println!("{event}");
}

/// Calls `tool` with `input` and reports what a program and a model would see.
async fn call(tool: &SkillTool, input: Value, why: &str) -> ToolResult {
    let result = tool.invoke(input.clone()).await;
    let s = &result.structured;
    emit(json!({
        "event": "call",
        "tool": tool.name(),
        "why": why,
        "input": input,
        // What the model reads: the output, or the one-line reason it failed.
        "is_error": result.is_error,
        "text": result.text,
        // What the program reads: the same object as `skillbox run --json`.
        "status": s["status"],
        "stdout": s["stdout"],
        "trust_level": s["trust_level"],
        "execution_id": s["execution_id"],
        "denial": s.get("denial"),
        "problems": s.get("problems"),
        "grant": s.get("grant"),
    }));
    result
}

/// The tool named `name` at its default trust level, or at `trust`.
fn tool(
    runtime: &Arc<Runtime>,
    name: &str,
    trust: Option<TrustLevel>,
) -> anyhow::Result<SkillTool> {
    SkillTool::new(runtime.clone(), name, trust)
        .with_context(|| format!("the workspace has no skill named `{name}`"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let workspace = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("examples/workspace"), PathBuf::from);
    // Loads the workspace's, the user's and the built-in skills, and opens the audit log.
    let runtime = Arc::new(
        Runtime::open(&workspace)
            .with_context(|| format!("cannot open the workspace {}", workspace.display()))?,
    );

    // 1. What the model is shown: every skill as a tool.
    let tools: Vec<Value> = runtime
        .tools()
        .iter()
        .map(|t| json!({"name": t.name(), "description": t.description(), "input_schema": t.input_schema()}))
        .collect();
    let problems: Vec<String> =
        runtime.registry().problems().iter().map(|d| d.to_string()).collect();
    emit(
        json!({"event": "tools", "workspace": runtime.workspace(), "tools": tools, "problems": problems}),
    );

    // 2. The calls a model might make.
    let count = tool(&runtime, "count-lines", None)?;
    call(&count, json!({"path": "src/app.py"}), "how long is the main module?").await;
    call(&tool(&runtime, "lint", None)?, json!({"max_line": 72}), "lint before committing").await;
    call(&tool(&runtime, "format-json", None)?, json!({}), "tidy the data files").await;
    call(
        &tool(&runtime, "commit-message", None)?,
        json!({"kind": "fix", "summary": "wrap a long line in src/app.py"}),
        "draft a commit message",
    )
    .await;

    // A skill from a source the agent does not trust runs at `untrusted`: it declares
    // network access, so it is refused before it starts, with the fix in the message.
    let fetch = tool(&runtime, "https-get", Some(TrustLevel::Untrusted))?;
    let denied = call(&fetch, json!({"url": "https://example.com/"}), "fetch a page").await;
    // The agent asks the built-in `explain-denial` for words to show its user.
    let message = denied.structured["message"].as_str().unwrap_or_default().to_string();
    call(&tool(&runtime, "explain-denial", None)?, json!({"message": message}), "explain it").await;

    // What a prompt-injected model might send: refused, nothing runs.
    call(&count, json!({"path": "../../etc/passwd"}), "injected: read a file outside").await;

    // 3. The record of all of it.
    let log = runtime.audit().context("the runtime has no audit log")?;
    let report = audit_log::verify(&log.config().path)?;
    emit(json!({
        "event": "audit",
        "log": log.config().path,
        "events": report.events,
        "intact": report.ok(),
    }));
    Ok(())
}
