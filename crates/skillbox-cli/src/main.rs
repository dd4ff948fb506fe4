//! `skillbox`: list, inspect, validate and run skills. This binary only parses arguments and
//! prints; everything else lives in `skillbox-skills`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use skillbox_skills::{
    LoadedSkill, Registry, Runtime, SecurityContext, SkillResult, Status, TrustLevel,
};

mod audit;
mod output;
mod repl;
mod trust;

use output::{print_problems, terminal_safe};
use skillbox_skills::audit_log::text::path as path_text;

/// Exit codes, one per run status. Documented in README.md and `skillbox run --help`.
fn exit_code(status: Status) -> u8 {
    match status {
        Status::Success => 0,
        Status::Failed => 1,
        Status::Denied => 3,
        Status::Invalid => 4,
        Status::Timeout => 5,
        Status::LimitExceeded => 6,
        Status::Error => 7,
    }
}

#[derive(Parser)]
#[command(
    name = "skillbox",
    version,
    about = "Run agent skills with exactly the rights their trust level and declaration allow",
    after_help = "Exit codes of `run`: 0 success, 1 failed, 2 usage error, 3 denied, 4 invalid, \
                  5 timeout, 6 limit_exceeded, 7 error.\nOther commands: 0 ok, 1 problems found, \
                  2 usage error, 4 invalid or unknown skill name, 7 error.\n\nEnvironment: \
                  SKILLBOX_HOME (default $XDG_CONFIG_HOME/skillbox or ~/.config/skillbox) holds \
                  global skills in skills/ and the audit log in logs/; SKILLBOX_AUDIT_LOG moves \
                  the log; SKILLBOX_RETRY_BASE_MS sets the retry backoff's base delay (default \
                  1000).\nDocs: docs/README.md (the guide, in reading order); an error message \
                  is explained in docs/troubleshooting.md"
)]
struct Cli {
    /// Workspace whose skills are used and in which commands run [default: current directory]
    #[arg(long, global = true, value_name = "DIR")]
    workspace: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the skills found (workspace, global, built-in), and name the files that failed
    #[command(after_help = "Skills are found in, highest precedence first: \
                      <workspace>/.skillbox/skills/*.json, <workspace>/.q-skills/*.json, \
                      $SKILLBOX_HOME/skills/*.json, ~/.q-skills/*.json, then the built-ins. A \
                      skill shadowed by one of the same name is named in a warning.\nWorkspace \
                      and global skills run at user-verified, built-ins at system-trusted \
                      (docs/configuration.md).")]
    List {
        /// Print one JSON object instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a skill, and its effective permissions and limits at its trust level
    Info {
        /// Skill name or alias
        name: String,
        /// Show the grant at this level (untrusted, user-verified or system-trusted) instead
        /// of the skill's default level
        #[arg(long, value_name = "LEVEL")]
        trust: Option<TrustLevel>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
        /// Print an Agent Skill's instructions (the body of its SKILL.md) instead
        #[arg(long)]
        instructions: bool,
    },
    /// Grant a skill a trust level, pinned to its content; or list the grants
    #[command(
        after_help = "A grant lasts until the skill's content changes: one byte of its file, or \
                      of any file of an Agent Skill's directory. Then it lapses, the skill runs \
                      at its default level, and the run says why. A grant to an Agent Skill \
                      covers all of its scripts. Grants are kept in $SKILLBOX_HOME/trust.json \
                      and recorded in the audit log. Default levels per source: \
                      $SKILLBOX_HOME/policy.json (docs/configuration.md)."
    )]
    Trust {
        /// Skill name or alias (a script of an Agent Skill grants the whole Agent Skill)
        #[arg(required_unless_present = "list")]
        name: Option<String>,
        /// The level: untrusted, user-verified or system-trusted [default: the lowest level
        /// that grants what the skill declares]
        #[arg(long, value_name = "LEVEL")]
        level: Option<TrustLevel>,
        /// List the grants and whether each still matches its skill
        #[arg(long, conflicts_with_all = ["name", "level"])]
        list: bool,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Remove a skill's trust grant
    Untrust {
        /// Skill name, alias, or the name a grant is kept under
        name: String,
    },
    /// Check skill files; with no PATH, every skill location of the workspace
    Validate {
        /// Skill files or directories to check
        paths: Vec<PathBuf>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Run a skill under its security context and report the result
    #[command(
        after_help = "The skill's stdout and stderr are captured and printed after it ends, with \
                      terminal control characters escaped; --raw prints them unchanged. Then one \
                      status line on stderr: `skillbox: NAME: STATUS at LEVEL: MESSAGE \
                      (execution ID)`.\nA denial names the permission, the field of the skill \
                      file and the --trust level that would grant it; every message is explained \
                      in docs/troubleshooting.md.\nExit codes: 0 success, 1 failed, 2 usage \
                      error, 3 denied, 4 invalid, 5 timeout, 6 limit_exceeded, 7 error."
    )]
    Run {
        /// Skill name or alias
        name: String,
        /// Parameters as a JSON object, e.g. '{"path": "src"}'
        #[arg(long, value_name = "JSON_OBJECT")]
        params: Option<String>,
        /// One parameter, typed as the skill declares it (a number, true/false, or a
        /// string); repeatable, e.g. -p path=src -p count=3; wins over the same key in
        /// --params
        #[arg(short = 'p', long = "param", value_name = "KEY=VALUE", value_parser = key_value)]
        param: Vec<(String, String)>,
        /// Run at this trust level: untrusted, user-verified or system-trusted [default: the
        /// skill's own: user-verified for workspace and global skills, system-trusted for
        /// built-ins]
        #[arg(long, value_name = "LEVEL")]
        trust: Option<TrustLevel>,
        /// Print the result as one JSON object
        #[arg(long)]
        json: bool,
        /// Print the skill's output bytes unchanged (terminal control characters included)
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        /// Run even if a guarantee the skill's grant needs has no mechanism on this host (no
        /// Landlock, no user namespaces where signals need them, ...); the result lists what
        /// was not enforced and the audit log records it. Without it, such a run is refused
        #[arg(long)]
        allow_weaker_isolation: bool,
    },
    /// Run a `code_session` skill interactively: each input is one call in the same
    /// confined Python session
    #[command(after_help = "A line is one call; a line ending in ':' or '\\' continues until \
                      an empty line. The output of each call is printed, then the value of its \
                      last expression; tracebacks go to stderr. The session is confined as \
                      `skillbox run` would run the skill, and ends at the end of input \
                      (Ctrl-D). See docs/writing-skills.md, section Sessions.")]
    Repl {
        /// A `code_session` skill
        name: String,
        /// Run at this trust level (see `skillbox run --help`)
        #[arg(long, value_name = "LEVEL")]
        trust: Option<TrustLevel>,
        /// Run even if a guarantee the skill's grant needs has no mechanism on this host
        #[arg(long)]
        allow_weaker_isolation: bool,
    },
    /// Read and verify the security audit log
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Serve the skills to an agent over the Model Context Protocol (stdio, or HTTP)
    #[command(after_help = "Speaks JSON-RPC on stdin/stdout; messages and the audit notices of \
                      High-risk events go to stderr. With --http ADDR:PORT, serves Streamable \
                      HTTP at http://ADDR:PORT/mcp instead: every request needs \
                      `Authorization: Bearer TOKEN`, the token from $SKILLBOX_MCP_TOKEN or the \
                      file $SKILLBOX_HOME/mcp-token (made when absent; its path is printed, \
                      never the token), requests from a non-loopback Origin get 403, and a \
                      non-loopback ADDR needs --allow-remote. Each runnable skill is a tool; a call runs \
                      through the same security context, confinement, limits and audit log as \
                      `skillbox run`, at the skill's default trust level. Denials, invalid \
                      parameters, timeouts and limits are tool errors (isError) with the same \
                      message as `skillbox run`. Setup for Claude Code, Codex and the Q \
                      Developer CLI: docs/mcp.md")]
    Mcp {
        /// Most skill runs in flight at once; further calls wait for a slot
        #[arg(long, value_name = "N", default_value_t = 16)]
        max_concurrent: usize,
        /// How often to look for added, changed or removed skill files, in milliseconds
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        poll_ms: u64,
        /// How long a consent question (a call denied for want of a trust level, asked of
        /// the person through the client) waits for the answer, in seconds; then it counts
        /// as unanswered and the call stays denied
        #[arg(long, value_name = "SECS", default_value_t = 600,
              value_parser = clap::value_parser!(u64).range(1..=86400))]
        consent_timeout: u64,
        /// Run skills even where this host has no mechanism for a guarantee their grant
        /// needs; each such run says what was not enforced and is recorded
        /// (IsolationWeakened). Without it, such a call is a tool error naming what is missing
        #[arg(long)]
        allow_weaker_isolation: bool,
        /// Serve MCP's Streamable HTTP transport at http://ADDR:PORT/mcp instead of stdio
        /// (port 0 picks a free port; the address is printed on stderr)
        #[arg(long, value_name = "ADDR:PORT")]
        http: Option<std::net::SocketAddr>,
        /// With --http: allow a non-loopback ADDR, so that other machines can connect
        /// (every request still needs the token)
        #[arg(long, requires = "http")]
        allow_remote: bool,
    },
    /// Make a new skill that validates and runs, declaring the least it can
    #[command(
        after_help = "A JSON command skill goes to <workspace>/.skillbox/skills/NAME.json; \
                      with --agent-skill, an Agent Skill to <workspace>/.agents/skills/NAME/ \
                      (SKILL.md and scripts/main.py). Both declare no file access beyond the \
                      system directories, no writes, no network, no new processes and small \
                      limits: add what the skill needs (docs/writing-skills.md). Never writes \
                      over an existing file. Exit code 1 when it cannot (the reason on one \
                      line)."
    )]
    Init {
        /// The new skill's name: lowercase letters, digits and single '-', at most 49
        /// characters (so that agents' MCP tool names fit)
        name: String,
        /// Make an Agent Skill (SKILL.md directory) instead of a JSON skill
        #[arg(long)]
        agent_skill: bool,
    },
    /// Print the shell completion script for SHELL
    #[command(after_help = "bash: skillbox completions bash > \
                      ~/.local/share/bash-completion/completions/skillbox\nzsh: skillbox \
                      completions zsh > ~/.zfunc/_skillbox (with ~/.zfunc in $fpath)\nfish: \
                      skillbox completions fish > ~/.config/fish/completions/skillbox.fish\n\
                      scripts/install.sh puts them in place under --prefix.")]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into DIR
    #[command(after_help = "man <(skillbox man) reads it without installing; \
                      scripts/install.sh installs the pages under --prefix.")]
    Man {
        /// Write skillbox.1 and skillbox-COMMAND.1 for each command into this directory
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Report the confinement mechanisms this host offers and what each trust level gets
    #[command(
        after_help = "Tries each mechanism once (Landlock's ABI, a user namespace, cgroups) and \
                      names the kind of host it recognises. Exit code 0 when every trust \
                      level's guarantees have a mechanism here, 1 when a level is REFUSED: \
                      `run` then refuses such a skill unless --allow-weaker-isolation is given. \
                      Each missing mechanism is printed with what it costs and its fix \
                      (docs/security-model.md, the support matrix)."
    )]
    Doctor {
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Show events, oldest first, as a table (or JSON Lines with --json)
    #[command(after_help = "Exit code 1 when a line of the log cannot be read (each is named on \
                      stderr); run `skillbox audit verify` to check the whole chain. The events \
                      and their fields are described in docs/audit-log.md.")]
    Show {
        /// Only events of this skill
        #[arg(long)]
        skill: Option<String>,
        /// Only events of this type, e.g. PermissionDenied
        #[arg(long = "event-type", value_name = "TYPE", value_parser = audit::parse_event_type)]
        event_type: Option<String>,
        /// Only events at or above this risk: Low, Medium, High, Critical
        #[arg(long, value_name = "RISK", value_parser = audit::risk_rank)]
        risk: Option<u8>,
        /// Only events at or after this time (RFC 3339, e.g. 2026-11-25T10:00:00Z) or this
        /// long ago (e.g. 1h, 30m, 2days)
        #[arg(long, value_name = "WHEN", value_parser = audit::parse_since)]
        since: Option<std::time::SystemTime>,
        /// Print the events as JSON Lines, as stored
        #[arg(long)]
        json: bool,
        /// The log [default: $SKILLBOX_AUDIT_LOG or $SKILLBOX_HOME/logs/security_events.jsonl]
        #[arg(long, value_name = "PATH")]
        log: Option<PathBuf>,
    },
    /// Check the whole log, across rotations: exit 1 and name the first bad line on any problem
    Verify {
        /// The log [default: $SKILLBOX_AUDIT_LOG or $SKILLBOX_HOME/logs/security_events.jsonl]
        #[arg(long, value_name = "PATH")]
        log: Option<PathBuf>,
        /// Print one JSON object
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    exit_when_stdout_is_closed();
    init_diagnostics();
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("skillbox: error: {}", one_line(&format!("{e:#}")));
            ExitCode::from(7)
        }
    }
}

/// The library's diagnostics (a span per run, its decisions, warnings such as a lapsed grant)
/// on stderr, when `SKILLBOX_LOG` asks for them, with the filter syntax of `RUST_LOG`
/// (`debug`, `skillbox_skills=debug,warn`). Off by default: the command already prints what
/// a person needs (problems, status lines), and the same warnings would show twice.
fn init_diagnostics() {
    let Some(filter) = std::env::var("SKILLBOX_LOG").ok().filter(|v| !v.is_empty()) else {
        return;
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("skillbox: warning: SKILLBOX_LOG={filter:?} is not a filter ({e}); ignored");
            return;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

/// `println!` panics when stdout cannot be written, e.g. a pipe whose reader has gone
/// (`skillbox list | head -1`). End with exit code 7 instead of a panic and a backtrace:
/// silently for a closed pipe, as a Unix filter would, with one line otherwise.
fn exit_when_stdout_is_closed() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") {
            if !msg.contains("os error 32") {
                eprintln!("skillbox: error: {}", one_line(msg));
            }
            std::process::exit(7);
        }
        default_hook(info);
    }));
}

/// `skillbox init`: makes the skill, prints what it wrote and how to run it.
fn init(workspace: &Path, name: &str, agent_skill: bool) -> u8 {
    use skillbox_skills::scaffold::{scaffold, ScaffoldKind};
    let kind = if agent_skill { ScaffoldKind::AgentSkill } else { ScaffoldKind::Json };
    match scaffold(workspace, name, kind) {
        Ok(made) => {
            for f in &made.files {
                println!("created {}", path_text(f));
            }
            let params = made.example_params.to_string().replace('\'', "'\\''");
            println!("try it:  skillbox run {} --params '{params}'", made.run_name);
            println!("inspect: skillbox info {}", made.run_name);
            0
        }
        Err(e) => {
            eprintln!("skillbox: init: {}", one_line(&e.to_string()));
            1
        }
    }
}

/// `skillbox man`: the page of `skillbox` on stdout, or, with a directory, that page and one
/// per command (`skillbox-run.1`, `skillbox-audit-verify.1`), made from the same clap
/// definitions as `--help`, so that the pages cannot drift from the command.
fn man(dir: Option<&Path>) -> anyhow::Result<u8> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        return print_bytes(&page);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", path_text(dir)))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write the pages into {}", path_text(dir)))?;
    Ok(0)
}

/// Writes `bytes` to stdout: exit 0, or 7 when stdout is closed (silently for a closed pipe,
/// as `println!`'s failures are handled by `exit_when_stdout_is_closed`).
fn print_bytes(bytes: &[u8]) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(7),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// A message on one line: control characters escaped (see `output::one_line_safe`).
fn one_line(s: &str) -> String {
    output::one_line_safe(s)
}

fn real_main(cli: Cli) -> anyhow::Result<u8> {
    let workspace = match cli.workspace {
        Some(w) => w,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    match cli.command {
        Command::Validate { paths, json } => Ok(validate(&workspace, &paths, json)),
        Command::List { json } => {
            let rt = Runtime::open(&workspace)?;
            Ok(list(&rt, json))
        }
        Command::Info { name, trust, json, instructions } => {
            let rt = Runtime::open(&workspace)?;
            if instructions {
                return Ok(print_instructions(&rt, &name));
            }
            Ok(info(&rt, &name, trust, json))
        }
        Command::Trust { name, level, list, json } => {
            let rt = open_recorded(&workspace)?;
            match name {
                Some(name) if !list => Ok(trust::grant(&rt, &name, level, json)),
                _ => Ok(trust::list(&rt, json)),
            }
        }
        Command::Untrust { name } => {
            let rt = open_recorded(&workspace)?;
            Ok(trust::revoke(&rt, &name))
        }
        Command::Doctor { json } => Ok(doctor(&workspace, json)),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_complete::generate(shell, &mut cmd, "skillbox", &mut page);
            print_bytes(&page)
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Init { name, agent_skill } => Ok(init(&workspace, &name, agent_skill)),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Mcp {
            max_concurrent,
            poll_ms,
            consent_timeout,
            allow_weaker_isolation,
            http,
            allow_remote,
        } => {
            let flags =
                McpFlags { max_concurrent, poll_ms, consent_timeout, allow_weaker_isolation };
            mcp(&workspace, flags, http.map(|addr| (addr, allow_remote)))
        }
        Command::Repl { name, trust, allow_weaker_isolation } => {
            repl::repl(&workspace, &name, trust, allow_weaker_isolation)
        }
        Command::Run { name, params, param, trust, json, raw, allow_weaker_isolation } => {
            let options = RunFlags { trust, json, raw, allow_weaker_isolation };
            run(&workspace, &name, params.as_deref(), &param, options)
        }
    }
}

/// The flags of `skillbox mcp` both transports share.
struct McpFlags {
    max_concurrent: usize,
    poll_ms: u64,
    consent_timeout: u64,
    allow_weaker_isolation: bool,
}

/// `skillbox mcp`: serves the workspace's skills on stdin and stdout, or over HTTP at
/// `http` (the address, and whether a non-loopback one is allowed).
fn mcp(
    workspace: &Path,
    flags: McpFlags,
    http: Option<(std::net::SocketAddr, bool)>,
) -> anyhow::Result<u8> {
    let McpFlags { max_concurrent, poll_ms, consent_timeout, allow_weaker_isolation } = flags;
    let mut log = skillbox_skills::audit_log::LogConfig::new(audit::default_path()?);
    log.echo_high_risk = true;
    let rt = Runtime::open_with_audit(workspace, log)?;
    // Problems with skill files go to stderr, which MCP clients show as server logs.
    print_problems(rt.registry(), false);
    output::warn_long_tool_names(rt.registry());
    let options = skillbox_mcp::ServeOptions {
        max_concurrent_runs: max_concurrent.max(1),
        poll_interval: std::time::Duration::from_millis(poll_ms.max(50)),
        allow_weaker_isolation,
        consent_timeout: std::time::Duration::from_secs(consent_timeout),
        ..skillbox_mcp::ServeOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match http {
        None => runtime.block_on(skillbox_mcp::serve_stdio(rt, options))?,
        Some((addr, allow_remote)) => {
            runtime.block_on(mcp_http(rt, options, addr, allow_remote))?
        }
    }
    // Runs still in flight are dropped with the runtime, which kills them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(0)
}

/// `skillbox mcp --http`: binds, says where (and where the token is, never the token), and
/// serves until SIGINT or SIGTERM.
async fn mcp_http(
    rt: Runtime,
    options: skillbox_mcp::ServeOptions,
    addr: std::net::SocketAddr,
    allow_remote: bool,
) -> anyhow::Result<()> {
    use skillbox_mcp::http::{HttpListener, HttpOptions, Token, TokenSource, TOKEN_ENV};
    let env_token = std::env::var(TOKEN_ENV).ok();
    let home = skillbox_skills::registry::skillbox_home(|k| std::env::var_os(k));
    let token = Token::resolve(env_token, home.as_deref())?;
    let listener = HttpListener::bind(addr, HttpOptions { allow_remote }).await?;
    let bound = listener.local_addr()?;
    let host = match bound {
        std::net::SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        std::net::SocketAddr::V4(a) => a.to_string(),
    };
    let from = match &token.source {
        TokenSource::Env => format!("the bearer token is ${TOKEN_ENV}'s value"),
        TokenSource::File(p) => format!("the bearer token is in {}", p.display()),
        TokenSource::NewFile(p) => {
            format!("the bearer token is in {} (made now, mode 0600)", p.display())
        }
    };
    eprintln!("skillbox mcp: serving MCP over HTTP at http://{host}/mcp; {from}");
    listener.serve(rt, options, token, skillbox_mcp::http::until_signal()).await?;
    eprintln!("skillbox mcp: stopped");
    Ok(())
}

/// `-p KEY=VALUE`: split at the first `=`. A clap value parser: no `=` is a usage error.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE (e.g. -p path=src)")),
    }
}

/// The flags of `skillbox run` besides the name and the parameters.
struct RunFlags {
    trust: Option<TrustLevel>,
    json: bool,
    raw: bool,
    allow_weaker_isolation: bool,
}

/// `skillbox run NAME`: refuses a name or parameters that cannot be a run's (recorded), runs
/// the skill, asks a person at a terminal after a denial, and prints the result.
fn run(
    workspace: &Path,
    name: &str,
    params: Option<&str>,
    pairs: &[(String, String)],
    f: RunFlags,
) -> anyhow::Result<u8> {
    let RunFlags { trust, json, raw, allow_weaker_isolation } = f;
    let mut log = skillbox_skills::audit_log::LogConfig::new(audit::default_path()?);
    log.echo_high_risk = true;
    // A name that could never be a skill's is refused before the workspace is looked at,
    // and recorded.
    if let Err(e) = skillbox_skills::name::check_name(name) {
        let msg = format!("{} is not a valid skill name: {e}", one_line(&format!("{name:?}")));
        let log = skillbox_skills::audit_log::AuditLog::open(log)?;
        let r =
            skillbox_skills::refused_before_lookup(&log, name, Status::Invalid, msg, &Value::Null);
        return Ok(report_run(&r, json, raw));
    }
    let rt = Arc::new(Runtime::open_with_audit(workspace, log)?);
    // A refusal is recorded like any other (a name that is not a skill's is refused by the
    // run itself, before any skill is looked up).
    let mut params: Value = match params.map(serde_json::from_str) {
        None => json!({}),
        Some(Ok(v @ Value::Object(_))) => v,
        Some(Ok(_)) => {
            let msg = "--params: must be a JSON object such as '{\"name\": \"value\"}'";
            let r = rt.refuse(name, Status::Invalid, msg.into(), &Value::Null);
            return Ok(report_run(&r, json, raw));
        }
        Some(Err(e)) => {
            let msg = format!("--params: not valid JSON: {e}");
            let r = rt.refuse(name, Status::Invalid, msg, &Value::Null);
            return Ok(report_run(&r, json, raw));
        }
    };
    if let (Some(obj), Ok(skill)) = (params.as_object_mut(), rt.registry().get(name)) {
        for (k, v) in pairs {
            obj.insert(k.clone(), skillbox_skills::params::typed_value(&skill.def, k, v));
        }
    } else if let Some(obj) = params.as_object_mut() {
        // An unknown skill: the run refuses it by name; the values go as strings.
        for (k, v) in pairs {
            obj.insert(k.clone(), Value::String(v.clone()));
        }
    }
    print_problems(rt.registry(), false);
    if let Ok(skill) = rt.registry().get(name) {
        output::warn_typos(skill);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // SKILLBOX_RETRY_BASE_MS sets the backoff's base delay (tests use milliseconds).
    let retry_base_delay = std::env::var("SKILLBOX_RETRY_BASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis);
    // At a terminal the output is shown as it comes; anywhere else (a pipe, an agent, `--json`)
    // once, from the result.
    let live = (!json && std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .then(|| output::LiveOutput::new(raw));
    let options = skillbox_skills::RunOptions {
        trust,
        allow_weaker_isolation,
        retry_base_delay,
        on_output: live.as_ref().map(output::LiveOutput::observer),
        // A `code_session` skill runs its code in a fresh session that ends with the call.
        sessions: None,
        consent: None,
    };
    let mut result = runtime.block_on(rt.run_with(name, &params, &options));
    // A person at a terminal is asked; anyone else (an agent, CI) gets the refusal with the
    // exact command that would grant it. Nothing is granted silently.
    if !json && trust::at_terminal() {
        if let Some(again) = trust::ask_after_denial(&rt, &result) {
            let options = skillbox_skills::RunOptions { trust: again, ..options };
            result = runtime.block_on(rt.run_with(name, &params, &options));
        }
    }
    let streamed = live.is_some_and(|l| l.finish());
    let code = report_run_shown(&result, json, raw, streamed);
    // The async runtime is dropped first, and waits: it finishes the blocking tasks that
    // remove the run's private directory and cgroups. The skills runtime (the registry of
    // every skill, the audit log's open files) is then not dropped: the process exits, which
    // frees its memory and closes the files at once, and it holds nothing else to flush
    // (each audit event is written when it happens). Handlers registered with `atexit`
    // (what was prepared ahead) still run.
    drop(runtime);
    std::mem::forget(rt);
    Ok(code)
}

fn report_run(result: &SkillResult, json: bool, raw: bool) -> u8 {
    report_run_shown(result, json, raw, false)
}

/// [`report_run`], where `streamed` says the output was already shown as it came.
fn report_run_shown(result: &SkillResult, json: bool, raw: bool, streamed: bool) -> u8 {
    if json {
        match serde_json::to_string(result) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("skillbox: error: cannot encode the result: {e}"),
        }
        return exit_code(result.status);
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    if streamed {
        // Shown as it came (by `output::LiveOutput`, which ended each stream on a new line).
    } else if raw {
        let _ = out.write_all(result.stdout.as_bytes());
        let _ = err.write_all(result.stderr.as_bytes());
    } else {
        let _ = out.write_all(terminal_safe(&result.stdout).as_bytes());
        let _ = err.write_all(terminal_safe(&result.stderr).as_bytes());
        // Keep the status line on its own line.
        if !result.stdout.is_empty() && !result.stdout.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
        if !result.stderr.is_empty() && !result.stderr.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
    }
    // A session's call: the value of its last expression, as a REPL shows it, and its
    // traceback.
    if let Some(session) = &result.session {
        if let Some(value) = &session.value {
            let shown = if raw { value.clone() } else { terminal_safe(value) };
            let _ = writeln!(out, "{shown}");
        }
        if let Some(e) = &session.error {
            let shown = if raw { e.traceback.clone() } else { terminal_safe(&e.traceback) };
            let _ = err.write_all(shown.as_bytes());
        }
    }
    let _ = out.flush();
    let colour = output::colour_on_stderr();
    let warning = output::paint(colour, output::Colour::Yellow, "warning:");
    let not_enforced = result.not_enforced();
    if !not_enforced.is_empty() {
        let _ = writeln!(
            err,
            "skillbox: {warning} not enforced for this run: {} (see `skillbox info {}` and \
             docs/security-model.md)",
            not_enforced.join(", "),
            result.skill
        );
    }
    if let Some(hint) = &result.confinement {
        let _ = writeln!(err, "skillbox: {}", one_line(hint));
    }
    if let Some(notice) = &result.notice {
        let _ = writeln!(err, "skillbox: {warning} {}", one_line(notice));
    }
    if let Some(planted) = &result.planted {
        let _ = writeln!(err, "skillbox: {warning} {}", one_line(&planted.message));
    }
    let level = result.trust_level.map(|l| format!(" at {l}")).unwrap_or_default();
    let what = if result.skill.is_empty() { String::new() } else { format!("{}: ", result.skill) };
    match (&result.message, result.status) {
        (_, Status::Success) => {
            let how = match (&result.fallback, result.attempts) {
                (Some(f), _) => format!(" by fallback `{}`", one_line(f)),
                (None, n) if n > 1 => format!(" on attempt {n}"),
                _ => String::new(),
            };
            let _ = writeln!(
                err,
                "skillbox: {what}{}{level}{how} in {} ms (execution {})",
                output::paint(colour, output::Colour::Green, "success"),
                result.duration_ms,
                result.execution_id
            );
        }
        (msg, status) => {
            // A refusal the caller may opt out of names the flag, on the same one line.
            let opt_out = if result.unsupported.is_empty() {
                String::new()
            } else {
                " [--allow-weaker-isolation runs it anyway]".to_string()
            };
            let _ = writeln!(
                err,
                "skillbox: {what}{}{level}: {}{opt_out} (execution {})",
                output::paint(colour, output::Colour::Red, status.as_str()),
                one_line(msg.as_deref().unwrap_or("")),
                result.execution_id
            );
        }
    }
    exit_code(result.status)
}

/// One skill for `list --json` and `validate --json`, at the level it runs at without
/// `--trust` (a grant or the policy when a runtime knows them, else its source's default).
/// `trust`: the trust policy and store read once for all skills listed; `None` (not
/// read, or unreadable): each skill's default level.
fn skill_summary(s: &LoadedSkill, trust: Option<&skillbox_skills::TrustView>) -> Value {
    let (level, origin) = match trust.map(|t| t.decision(s)) {
        Some(d) => (d.level, d.origin),
        None => (s.source.default_trust(), skillbox_skills::TrustOrigin::Default),
    };
    json!({
        "name": s.def.name,
        "type": s.def.skill_type.as_str(),
        "description": s.def.description,
        "version": s.def.version,
        "source": s.source.as_str(),
        "path": path_text(&s.path),
        "trust_level": level,
        "trust_origin": origin.as_str(),
        "aliases": s.def.aliases,
    })
}

fn list(rt: &Runtime, json: bool) -> u8 {
    let reg = rt.registry();
    // Read once, not once per skill; unreadable: every skill shows its default level.
    let trust = rt.trust_view().ok();
    if json {
        let v = json!({
            "workspace": path_text(rt.workspace()),
            "skills": reg.skills().map(|s| skill_summary(s, trust.as_ref())).collect::<Vec<_>>(),
            "problems": reg.problems().iter().map(|d| json!({
                "path": path_text(&d.path), "field": d.field, "reason": d.reason, "message": d.to_string(),
            })).collect::<Vec<_>>(),
            "shadowed": reg.shadowed(),
        });
        println!("{v}");
    } else {
        let rows: Vec<[String; 5]> = reg
            .skills()
            .map(|s| {
                [
                    s.def.name.clone(),
                    s.def.skill_type.as_str().to_string(),
                    s.source.as_str().to_string(),
                    skill_summary(s, trust.as_ref())["trust_level"]
                        .as_str()
                        .unwrap_or("?")
                        .to_string(),
                    terminal_safe(&s.def.description).replace('\n', " "),
                ]
            })
            .collect();
        output::table(&["NAME", "TYPE", "SOURCE", "TRUST", "DESCRIPTION"], &rows);
        print_problems(reg, true);
    }
    u8::from(!reg.problems().is_empty())
}

fn info(rt: &Runtime, name: &str, trust: Option<TrustLevel>, json: bool) -> u8 {
    let skill = match rt.registry().get(name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skillbox: {}", one_line(&e.to_string()));
            return 4;
        }
    };
    let (level, origin, lapsed) = match rt.trust_decision(skill, trust) {
        Ok(d) => {
            (d.level, d.origin, d.lapsed.map(|(g, now)| json!({"grant": g, "digest_now": now})))
        }
        Err(e) => {
            eprintln!("skillbox: error: {}", one_line(&e.to_string()));
            return 7;
        }
    };
    let ctx = SecurityContext::for_trust_level(level, rt.workspace());
    let grant = ctx.validate_execution(&skill.def);
    let enforcement = skill.preview_enforcement(&ctx);
    let d = &skill.def;
    let parameters: Vec<Value> =
        d.parameters.iter().map(|p| serde_json::to_value(&p.spec).unwrap_or(Value::Null)).collect();
    let v = json!({
        "name": d.name,
        "type": d.skill_type.as_str(),
        "description": d.description,
        "version": d.version,
        "source": skill.source.as_str(),
        "path": path_text(&skill.path),
        "aliases": d.aliases,
        "command": d.command,
        "args": d.args,
        "prompt_template": d.prompt_template,
        "parameters": parameters,
        "input_schema": skillbox_skills::input_schema(d),
        "declared": {
            "permissions": d.permissions,
            "resource_limits": d.limits,
            "environment": d.environment.keys().collect::<Vec<_>>(),
        },
        "resilience": d.resilience,
        "metadata": d.metadata,
        "extra": d.extra,
        "trust_level": level,
        "trust_origin": origin,
        "trust_lapsed": lapsed,
        "agent_skill": skill.agent.as_deref(),
        "context": ctx,
        "grant": grant.as_ref().ok(),
        "denial": grant.as_ref().err(),
        "enforcement": enforcement.as_ref().ok(),
        "enforcement_error": enforcement.as_ref().err(),
    });
    if json {
        println!("{v}");
        return 0;
    }
    output::info_text(&v, grant.as_ref().err().map(|d| d.message()));
    0
}

/// `info --instructions`: the body of an Agent Skill's SKILL.md, as written.
fn print_instructions(rt: &Runtime, name: &str) -> u8 {
    let skill = match rt.registry().get(name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skillbox: {}", one_line(&e.to_string()));
            return 4;
        }
    };
    match &skill.agent {
        Some(a) => {
            print!("{}", terminal_safe(&a.instructions));
            0
        }
        None => {
            eprintln!(
                "skillbox: `{}` is not an Agent Skill (it has no SKILL.md); `skillbox info {}` \
                 shows its definition",
                skill.def.name, skill.def.name
            );
            1
        }
    }
}

/// A runtime whose audit log echoes High-risk events, for commands that record decisions.
fn open_recorded(workspace: &std::path::Path) -> anyhow::Result<Runtime> {
    let mut log = skillbox_skills::audit_log::LogConfig::new(audit::default_path()?);
    log.echo_high_risk = true;
    Ok(Runtime::open_with_audit(workspace, log)?)
}

fn validate(workspace: &std::path::Path, paths: &[PathBuf], json: bool) -> u8 {
    let reg = if paths.is_empty() {
        match Runtime::open(workspace) {
            Ok(rt) => rt.registry().clone(),
            Err(e) => {
                eprintln!("skillbox: error: {}", one_line(&e.to_string()));
                return 7;
            }
        }
    } else {
        Registry::load_paths(paths)
    };
    if json {
        let v = json!({
            "valid": reg.skills().map(|s| skill_summary(s, None)).collect::<Vec<_>>(),
            "problems": reg.problems().iter().map(|d| json!({
                "path": path_text(&d.path), "field": d.field, "reason": d.reason, "message": d.to_string(),
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
    } else {
        for s in reg.skills() {
            let path = output::one_line_safe(path_text(&s.path).as_ref());
            println!("ok: {} ({path})", s.def.name);
        }
        print_problems(&reg, true);
        if reg.problems().is_empty() {
            println!("{} skill(s) valid", reg.len());
        } else {
            println!("{} skill(s) valid, {} problem(s)", reg.len(), reg.problems().len());
        }
    }
    u8::from(!reg.problems().is_empty())
}

fn doctor(workspace: &std::path::Path, json: bool) -> u8 {
    let ws = workspace.canonicalize().unwrap_or_else(|_| workspace.to_path_buf());
    let report = skillbox_skills::host_report(&ws);
    let egress = declared_egress(&ws);
    if json {
        match serde_json::to_value(&report) {
            Ok(mut v) => {
                v["declared_egress"] = json!(egress);
                println!("{v}");
            }
            Err(e) => eprintln!("skillbox: error: {e}"),
        }
    } else {
        output::doctor_text(&report);
        output::egress_text(&egress);
    }
    u8::from(!report.ready())
}

/// The skills of `workspace` that declare `allowed_domains`, for `doctor`: which hosts each
/// may reach, and whether this host enforces the lists (the egress proxy needs each run's
/// own network namespace). The skill files are read where
/// every command finds them, without opening the audit log (doctor records nothing); a file
/// that does not load is not listed (`skillbox validate` names its problems).
fn declared_egress(workspace: &std::path::Path) -> Vec<Value> {
    let locations = skillbox_skills::Locations::standard(workspace, |k| std::env::var_os(k));
    Registry::load(&locations)
        .skills()
        .filter_map(|s| {
            let list = s.def.permissions.allowed_domains.as_ref()?;
            Some(json!({
                "skill": s.def.name,
                "allowed_domains": list,
                "plain_http": s.def.permissions.plain_http,
                "enforced": skillbox_skills::egress_enforced(),
            }))
        })
        .collect()
}
