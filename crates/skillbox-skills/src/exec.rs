//! Running one skill under a [`SecurityContext`]: the plan's `execute_with_security`.
//!
//! Order: parameters are validated, the declaration is checked against the context, and only
//! then is anything started. A refusal at either step returns a result without running.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use skillbox_sandbox::{
    ChildSpec, Enforcement, ExitStatus, Guarantee, Limit, MechanismState, NetworkAccess, Policy,
    ProcessAccess, Rlimits, SandboxError,
};

use crate::format::{NetworkLevel, ProcessSpawn, SkillType};
use crate::params::{self, build_args, Params};
use crate::private_dir::PrivateDir;
use crate::registry::LoadedSkill;
use crate::result::{EnforcementEntry, LimitKind, SkillResult, Status};
use crate::security::{EffectiveGrant, EnvPolicy, SecurityContext};

/// `PATH` given to skills that do not inherit the host environment.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Output kept per stream (head and tail), in bytes.
pub const OUTPUT_LIMIT: usize = 1024 * 1024;

impl LoadedSkill {
    /// Runs this skill with `params` under `ctx` (the plan's `execute_with_security`), under
    /// the execution id the caller made and recorded in the run's opening audit event, with
    /// retry timing and an observer of each attempt and fallback (the audit log's hook).
    ///
    /// Only [`crate::Runtime::run_with`] calls this: it is the one path that decides the
    /// level, records the run and keeps the circuit breaker, and nothing outside this crate
    /// can start a skill's process without it. The result is always a [`SkillResult`];
    /// refusals and failures are statuses, not `Err`s.
    pub(crate) async fn execute_with_security(
        &self,
        params: &Value,
        ctx: &SecurityContext,
        options: &ExecOptions<'_>,
        execution_id: String,
    ) -> SkillResult {
        let started = Instant::now();
        let def = &self.def;
        let mut result = SkillResult::new(Status::Error, &def.name, execution_id);
        result.trust_level = Some(ctx.trust_level);

        let params = match params::validate(def, params) {
            Ok(p) => p,
            Err(problems) => {
                result.status = Status::Invalid;
                let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                result.message = Some(format!("invalid parameters: {}", list.join("; ")));
                result.problems = problems;
                return finish(result, started);
            }
        };
        if let Err(why) = params::check_expansion(def, &params) {
            result.status = Status::Invalid;
            result.message = Some(format!("invalid parameters: {why}"));
            return finish(result, started);
        }
        let grant = match ctx.validate_execution(def) {
            Ok(g) => g,
            Err(denial) => {
                result.status = Status::Denied;
                result.message = Some(denial.message());
                result.denial = Some(denial);
                return finish(result, started);
            }
        };

        match def.skill_type {
            SkillType::Command | SkillType::CodeInline => {
                result = self.run_resilient(&params, ctx, &grant, result, options).await;
            }
            SkillType::CodeSession => {
                result.status = Status::Error;
                result.message = Some(format!(
                    "skill `{}` is a code_session skill; skillbox loads and validates these, but \
                     cannot run them yet",
                    def.name
                ));
            }
            SkillType::PromptInline | SkillType::Conversation => {
                match crate::prompt::render(def, &params, &ctx.workspace, &grant) {
                    Ok(text) => {
                        result.status = Status::Success;
                        result.stdout = text;
                    }
                    Err(e) => {
                        result.status = Status::Error;
                        result.message = Some(format!("cannot render the prompt: {e}"));
                    }
                }
            }
        }
        result.grant = Some(grant);
        finish(result, started)
    }

    /// What a run of this skill under `ctx` would have enforced, without running it: the
    /// report `skillbox info` shows. Empty for prompt skills, which start no process. An
    /// `Err` is the message a run would fail with (a denial, or a missing mechanism).
    pub fn preview_enforcement(
        &self,
        ctx: &SecurityContext,
    ) -> Result<Vec<EnforcementEntry>, String> {
        let grant = ctx.validate_execution(&self.def).map_err(|d| d.message())?;
        if !self.def.skill_type.runs_process() {
            return Ok(Vec::new());
        }
        let private = PrivateDir::create().map_err(|e| e.to_string())?;
        let mut spec = ChildSpec::new("/bin/true", &ctx.workspace);
        spec.policy = policy_for(&grant, &private, &ctx.workspace);
        spec.allow_weaker = ctx.allow_weaker_isolation;
        skillbox_sandbox::preview(&spec).map(|e| enforcement_entries(&e)).map_err(|e| e.to_string())
    }

    async fn run_process(
        &self,
        params: &Params,
        ctx: &SecurityContext,
        grant: &EffectiveGrant,
        (command, args): (&str, &[String]),
        result: &mut SkillResult,
    ) {
        let def = &self.def;
        let private = match PrivateDir::for_run() {
            Ok(p) => p,
            Err(e) => {
                result.message = Some(format!("cannot create the run's private directory: {e}"));
                return;
            }
        };
        let env = environment(ctx, def, &private);
        let policy = policy_for(grant, &private, &ctx.workspace);
        let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
        let (program, mut argv) =
            match resolve_command(command, &ctx.workspace, path_var.as_deref(), &policy) {
                Ok(x) => x,
                Err(e) => {
                    result.message = Some(e);
                    return;
                }
            };
        argv.extend(build_args(args, def, params));

        let mut spec = ChildSpec::new(program, &ctx.workspace);
        spec.args = argv.into_iter().map(OsString::from).collect();
        spec.env = env;
        spec.timeout = grant.limits.max_execution_time;
        spec.output_limit = OUTPUT_LIMIT;
        spec.policy = policy;
        spec.allow_weaker = ctx.allow_weaker_isolation;

        let outcome = skillbox_sandbox::run(&spec).await;
        // Every process of the run is gone when the kernel killed the whole tree (a PID
        // namespace) and Landlock kept the run inside `home/` and `tmp/`: only then may the
        // directory serve another run, and only if it is still as it was made. Otherwise it
        // is removed, off the path of the result.
        let contained = outcome.as_ref().is_ok_and(|o| {
            o.enforcement.is_enforced(Guarantee::TreeKill)
                && o.enforcement.is_enforced(Guarantee::Filesystem)
        });
        private.finish(contained);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e @ SandboxError::Policy(_)) => {
                result.status = Status::Denied;
                result.message = Some(e.to_string());
                return;
            }
            Err(e) => {
                result.message = Some(e.to_string());
                return;
            }
        };
        result.enforcement = enforcement_entries(&outcome.enforcement);
        result.usage = Some(crate::result::Usage {
            wall_ms: outcome.wall_time.as_millis().try_into().unwrap_or(u64::MAX),
            cpu_ms: outcome.cpu_time.as_millis().try_into().unwrap_or(u64::MAX),
            max_rss_kib: outcome.max_rss_kib,
            processes_peak: outcome.processes_peak,
            bytes_written: outcome.bytes_written,
        });
        result.confinement = confinement_hint(&outcome, grant);
        result.stdout = outcome.stdout.to_text();
        result.stderr = outcome.stderr.to_text();
        result.stdout_truncated = outcome.stdout.truncated();
        result.stderr_truncated = outcome.stderr.truncated();
        let limit = outcome.limit.or_else(|| memory_error(&outcome));
        if let Some(which) = limit {
            result.status = Status::LimitExceeded;
            result.exit_code = match outcome.status {
                ExitStatus::Exited(c) => Some(c),
                _ => None,
            };
            result.signal = match outcome.status {
                ExitStatus::Signaled(s) => Some(s),
                _ => None,
            };
            let l = &grant.limits;
            let (kind, what) = match which {
                Limit::Memory => (LimitKind::Memory, format!("memory ({} MiB)", l.max_memory_mb)),
                Limit::Cpu => {
                    (LimitKind::Cpu, format!("CPU time ({} s)", l.max_execution_time.as_secs()))
                }
                Limit::FileSize => {
                    (LimitKind::FileSize, format!("file size ({} MiB)", l.max_disk_io_mb))
                }
                other => (
                    LimitKind::DiskWrite,
                    if other == Limit::DiskWrite {
                        format!("total disk writes ({} MiB)", l.max_disk_io_mb)
                    } else {
                        other.as_str().to_string()
                    },
                ),
            };
            result.limit = Some(kind);
            if which == Limit::DiskWriteUnreadable {
                // Stopped by the watchdog without the total being over: a process of the run
                // whose counters could not be read (see skillbox_sandbox's disk-writes).
                result.message = Some(format!(
                    "skill `{}` was stopped because skillbox could not read the write counters \
                     of one of its processes, so its total disk writes limit ({} MiB) could \
                     not be enforced",
                    def.name, l.max_disk_io_mb
                ));
            } else {
                result.message = Some(format!(
                    "skill `{}` exceeded its {what} limit at trust level {} and was stopped",
                    def.name, ctx.trust_level
                ));
            }
            return;
        }
        match outcome.status {
            ExitStatus::Exited(0) => {
                result.status = Status::Success;
                result.exit_code = Some(0);
            }
            ExitStatus::Exited(code) => {
                result.status = Status::Failed;
                result.exit_code = Some(code);
                result.message = Some(format!("skill `{}` exited with code {code}", def.name));
            }
            ExitStatus::Signaled(sig) => {
                result.status = Status::Failed;
                result.signal = Some(sig);
                result.message = Some(format!("skill `{}` was killed by signal {sig}", def.name));
            }
            ExitStatus::TimedOut => {
                result.status = Status::Timeout;
                result.message = Some(format!(
                    "skill `{}` timed out after {:.1} s (its limit at trust level {}); all its \
                     processes were killed",
                    def.name,
                    grant.limits.max_execution_time.as_secs_f64(),
                    ctx.trust_level
                ));
            }
        }
    }
}

/// What a [`Step`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepKind {
    /// The first run, or a retry of it.
    Attempt,
    /// A fallback command after the attempts failed.
    Fallback,
}

/// One attempt or fallback of a run, as reported to [`ExecOptions::observer`].
#[derive(Debug)]
pub struct Step<'a> {
    /// An attempt or a fallback.
    pub kind: StepKind,
    /// Attempt number (1 for the first), or fallback number (1 for the first).
    pub number: u32,
    /// The command line that ran.
    pub command: String,
    /// What it gave.
    pub result: &'a SkillResult,
    /// When another attempt follows: after how long, and why the failure was retryable.
    pub retry: Option<(std::time::Duration, String)>,
}

/// Options of one execution.
#[derive(Clone, Copy)]
pub struct ExecOptions<'a> {
    /// Base delay of the retry backoff (the first retry waits about this long).
    pub retry_base_delay: std::time::Duration,
    /// Called after each attempt and each fallback.
    pub observer: Option<&'a (dyn Fn(&Step<'_>) + Sync)>,
}

impl Default for ExecOptions<'_> {
    fn default() -> Self {
        Self { retry_base_delay: std::time::Duration::from_secs(1), observer: None }
    }
}

impl LoadedSkill {
    /// Attempts, retries with backoff, then fallbacks, each a fresh, fully confined run
    /// under the same context and grant.
    async fn run_resilient(
        &self,
        params: &Params,
        ctx: &SecurityContext,
        grant: &EffectiveGrant,
        template: SkillResult,
        options: &ExecOptions<'_>,
    ) -> SkillResult {
        let def = &self.def;
        let plan = crate::resilience::Plan::of(def);
        let command = def.command.as_deref().unwrap_or_default();
        let observe = |step: &Step<'_>| {
            if let Some(o) = options.observer {
                o(step)
            }
        };
        let mut number = 1;
        let last = loop {
            let mut r = template.clone();
            self.run_process(params, ctx, grant, (command, &def.args), &mut r).await;
            r.attempts = number;
            let verdict = plan.classify(&r);
            let retry = match &verdict {
                crate::resilience::Verdict::Retry(why) if number <= plan.max_retries => {
                    Some((plan.delay(number, options.retry_base_delay), why.clone()))
                }
                _ => None,
            };
            observe(&Step {
                kind: StepKind::Attempt,
                number,
                command: command.to_string(),
                result: &r,
                retry: retry.clone(),
            });
            match retry {
                Some((delay, _)) => {
                    tokio::time::sleep(delay).await;
                    number += 1;
                }
                None if r.status == Status::Success || verdict.is_final() => return r,
                None => break r,
            }
        };
        let fallbacks = plan.fallbacks(def);
        if fallbacks.is_empty() {
            return last;
        }
        let mut result = last;
        for (i, (fcommand, fargs)) in fallbacks.iter().enumerate() {
            let mut r = template.clone();
            self.run_process(params, ctx, grant, (fcommand, fargs), &mut r).await;
            r.attempts = number;
            let line = std::iter::once(fcommand.clone())
                .chain(fargs.iter().cloned())
                .collect::<Vec<_>>()
                .join(" ");
            r.fallback = Some(line.clone());
            observe(&Step {
                kind: StepKind::Fallback,
                number: i as u32 + 1,
                command: line,
                result: &r,
                retry: None,
            });
            if r.status == Status::Success {
                return r;
            }
            result = r;
        }
        result.message = Some(format!(
            "skill `{}` failed after {} attempt(s) and {} fallback(s); last: {}",
            def.name,
            number,
            fallbacks.len(),
            result.message.as_deref().unwrap_or("failed")
        ));
        result
    }
}

/// Explains a failure that looks like a confinement refusal. The kernel does not tell the
/// supervisor which rule refused what (Landlock's audit records need root and auditd), so
/// this reads the errors the program printed: `EACCES` on a path is Landlock's answer,
/// `EPERM` on a socket, fork or other system call is seccomp's, `SIGSYS` is seccomp killing
/// a foreign-architecture call.
fn confinement_hint(
    outcome: &skillbox_sandbox::ChildOutcome,
    grant: &EffectiveGrant,
) -> Option<String> {
    // Formatted only for a hint: most runs (every successful one) get none.
    let granted = || {
        format!(
            "this run was granted reads of {}, writes to {} (plus a private temp dir), network \
             {}, process creation {}",
            paths(&grant.file_read),
            paths(&grant.file_write),
            grant.network.as_str(),
            grant.process_spawn.as_str()
        )
    };
    if outcome.status == ExitStatus::Signaled(libc::SIGSYS) {
        return Some(format!(
            "confined: killed by the seccomp filter (a 32-bit or foreign-architecture system \
             call); {}",
            granted()
        ));
    }
    if !matches!(outcome.status, ExitStatus::Exited(c) if c != 0) {
        return None;
    }
    let err = outcome.stderr.to_text().to_lowercase();
    let files = err.contains("permission denied") || err.contains("eacces");
    let calls = err.contains("operation not permitted") || err.contains("eperm");
    let what = match (files, calls) {
        (true, true) => {
            "file access outside the grant (Landlock: \"Permission denied\") and a \
                         denied system call (seccomp: \"Operation not permitted\", e.g. a socket \
                         or a new process)"
        }
        (true, false) => {
            "file access outside the grant (Landlock answers \"Permission \
                          denied\")"
        }
        (false, true) => {
            "a denied system call (seccomp answers \"Operation not permitted\": a \
                          socket the network grant excludes, a new process, or a side door \
                          such as io_uring)"
        }
        (false, false) => return None,
    };
    let granted = granted();
    Some(format!(
        "confined: the errors suggest the kernel refused {what}; {granted}. To allow more, \
         declare it in the skill's security.permissions and run at a trust level that grants \
         it (see docs/security-model.md)"
    ))
}

/// Under `RLIMIT_AS` (no memory cgroup), an allocation beyond the limit fails inside the
/// program instead of a kill: recognise the usual messages of a failed allocation.
fn memory_error(outcome: &skillbox_sandbox::ChildOutcome) -> Option<Limit> {
    let by_rlimit = outcome
        .enforcement
        .line(Guarantee::Memory)
        .is_some_and(|m| m.detail.starts_with("RLIMIT_AS"));
    if !by_rlimit || matches!(outcome.status, ExitStatus::Exited(0)) {
        return None;
    }
    let err = outcome.stderr.to_text();
    ["MemoryError", "Cannot allocate memory", "out of memory", "bad_alloc", "failed to allocate"]
        .iter()
        .any(|p| err.contains(p))
        .then_some(Limit::Memory)
}

fn paths(p: &[PathBuf]) -> String {
    if p.is_empty() {
        "nothing".into()
    } else {
        p.iter().map(|x| x.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

fn finish(mut result: SkillResult, started: Instant) -> SkillResult {
    result.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    result
}

/// Converts the sandbox report into result entries.
pub fn enforcement_entries(e: &Enforcement) -> Vec<EnforcementEntry> {
    e.mechanisms
        .iter()
        .map(|m| EnforcementEntry {
            mechanism: m.name,
            enforced: m.state == MechanismState::Enforced,
            state: m.state,
            detail: m.detail.clone(),
        })
        .collect()
}

/// The kernel policy for a grant: the grant's paths, the run's private directory, the
/// protected entries, network and process rights, and rlimits from the limits.
///
/// Memory is a memory cgroup where the sandbox can create one, else `RLIMIT_AS` (see
/// `skillbox_sandbox::Rlimits::memory`).
pub fn policy_for(grant: &EffectiveGrant, private: &PrivateDir, workspace: &Path) -> Policy {
    let write = grant.file_write.clone();
    let read = grant.file_read.clone();
    let limits = &grant.limits;
    Policy {
        confine_files: true,
        read,
        write,
        protected: crate::protect::protected_names(),
        hidden: grant.hidden.clone(),
        scratch: vec![private.path().to_path_buf()],
        guarded: vec![workspace.to_path_buf()],
        pid_namespace: true,
        network: match grant.network {
            NetworkLevel::None => NetworkAccess::None,
            NetworkLevel::HttpsOnly => NetworkAccess::HttpsOnly,
            NetworkLevel::Full => NetworkAccess::Full,
        },
        processes: match grant.process_spawn {
            ProcessSpawn::None => ProcessAccess::None,
            ProcessSpawn::Limited => ProcessAccess::Limited,
            ProcessSpawn::Full => ProcessAccess::Full,
        },
        rlimits: Rlimits {
            open_files: Some(limits.max_open_files),
            file_size: Some(limits.max_disk_io_mb.saturating_mul(1024 * 1024)),
            disk_write_bytes: Some(limits.max_disk_io_mb.saturating_mul(1024 * 1024)),
            cpu_seconds: Some(limits.max_execution_time.as_secs_f64().ceil() as u64),
            processes: Some(limits.max_processes),
            address_space: None,
            memory: Some(limits.max_memory_mb.saturating_mul(1024 * 1024)),
            cpu_percent: Some(limits.max_cpu_percent),
        },
    }
}

/// The child's whole environment.
///
/// Clean (untrusted, user-verified): `PATH`, `HOME` and `TMPDIR` in the private directory,
/// `LANG`, and what the skill declares. Inherit (system-trusted): the host's environment, then
/// what the skill declares.
fn environment(
    ctx: &SecurityContext,
    def: &crate::format::SkillDef,
    private: &PrivateDir,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = match ctx.environment {
        EnvPolicy::Inherit => std::env::vars_os().collect(),
        EnvPolicy::Clean => {
            let lang = std::env::var("LANG")
                .ok()
                .filter(|l| {
                    !l.is_empty()
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
                })
                .unwrap_or_else(|| "C.UTF-8".to_string());
            vec![
                ("PATH".into(), DEFAULT_PATH.into()),
                ("HOME".into(), private.home().into()),
                ("TMPDIR".into(), private.tmp().into()),
                ("LANG".into(), lang.into()),
            ]
        }
    };
    for (k, v) in &def.environment {
        env.retain(|(ek, _)| ek != OsStr::new(k));
        env.push((k.into(), v.into()));
    }
    env
}

/// Splits `command` into a program and leading arguments (without a shell) and finds the
/// program: a path with a `/` is taken relative to the workspace, a bare name is searched in
/// the child's `PATH`, among the directories the policy lets the child read (an inherited
/// `PATH` may name a directory under a home the child cannot see).
fn resolve_command(
    command: &str,
    workspace: &Path,
    path_var: Option<&OsStr>,
    policy: &Policy,
) -> Result<(PathBuf, Vec<String>), String> {
    let mut words = shell_words::split(command)
        .map_err(|e| format!("cannot split command {command:?}: {e}"))?
        .into_iter();
    let program = words.next().ok_or_else(|| "the command is empty".to_string())?;
    let rest: Vec<String> = words.collect();
    if program.contains('/') {
        let p = workspace.join(&program);
        return if is_executable(&p) {
            Ok((p, rest))
        } else {
            Err(format!(
                "command `{program}` is not an executable file (looked at {})",
                p.display()
            ))
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let readable = |d: &Path| {
        !policy.confine_files
            || skillbox_sandbox::SYSTEM_READ.iter().any(|s| d.starts_with(s))
            || policy.read.iter().chain(&policy.write).any(|r| d.starts_with(r))
    };
    for dir in std::env::split_paths(path_var) {
        if !dir.is_absolute() || !readable(&dir) {
            continue;
        }
        let p = dir.join(&program);
        if is_executable(&p) {
            return Ok((p, rest));
        }
    }
    Err(format!("command `{program}` was not found in PATH ({})", path_var.to_string_lossy()))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
