//! One confined process of a run: its private directory, its environment and policy, the
//! program found, the spec handed to the sandbox, and the outcome put into the result.

use std::ffi::OsString;

use skillbox_sandbox::{ChildSpec, Guarantee};

use crate::format::SkillDef;
use crate::params::{build_args, Params};
use crate::private_dir::PrivateDir;
use crate::result::SkillResult;
use crate::security::{EffectiveGrant, SecurityContext};

/// Output kept per stream (head and tail), in bytes.
pub const OUTPUT_LIMIT: usize = 1024 * 1024;

/// Runs `command` with `args` (the skill's own, or a fallback's) once under `grant`, and
/// fills `result` with what happened. A failure to start leaves the status as it was
/// (`error`) with the reason as the message.
pub(super) async fn run(
    def: &SkillDef,
    params: &Params,
    ctx: &SecurityContext,
    grant: &EffectiveGrant,
    (command, args): (&str, &[String]),
    result: &mut SkillResult,
) {
    let private = match PrivateDir::for_run() {
        Ok(p) => p,
        Err(e) => {
            result.message = Some(format!("cannot create the run's private directory: {e}"));
            return;
        }
    };
    let mut env = super::environment::environment(ctx, def, &private.home(), &private.tmp());
    // What the run plants under a protected name goes to a directory of this execution.
    let quarantine = ctx.quarantine.as_ref().map(|q| q.join(&result.execution_id));
    let policy = super::policy::policy_for(grant, private.path(), &ctx.workspace, quarantine);
    let egress = super::egress::route(&policy, &mut env, def, grant);
    let path_var = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone());
    let (program, mut argv) =
        match super::lookup::resolve_command(command, &ctx.workspace, path_var.as_deref(), &policy)
        {
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
    spec.observer = ctx.output_observer.clone();
    let egress = egress.map(|(e, sink)| {
        spec.listener = Some(sink);
        e
    });

    tracing::debug!(program = ?spec.program, args = spec.args.len(), "spawning");
    let outcome = skillbox_sandbox::run(&spec).await;
    if let Some(e) = egress {
        result.network = e.finish().await;
    }
    // Every process of the run is gone when the kernel killed the whole tree (a PID
    // namespace) and Landlock kept the run inside `home/` and `tmp/`: only then may the
    // directory serve another run, and only if it is still as it was made. Otherwise it is
    // removed, off the path of the result.
    let contained = outcome.as_ref().is_ok_and(|o| {
        o.enforcement.is_enforced(Guarantee::TreeKill)
            && o.enforcement.is_enforced(Guarantee::Filesystem)
    });
    private.finish(contained);
    match outcome {
        Ok(o) => {
            tracing::debug!(
                status = ?o.status,
                limit = ?o.limit,
                wall_ms = o.wall_time.as_millis() as u64,
                "child ended"
            );
            super::outcome::apply(result, &o, &def.name, grant, ctx.trust_level)
        }
        Err(e) => {
            tracing::debug!(error = %e, "not run");
            super::outcome::not_run(result, &e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::exec::testing::{def, granted, workspace};
    use crate::result::Status;
    use crate::security::TrustLevel;

    /// Runs `program` with `args` once, as `user-verified` grants, within `timeout` when
    /// given.
    async fn once(program: &str, args: &[&str], timeout: Option<Duration>) -> SkillResult {
        let (_d, ws) = workspace();
        let d = def(json!({"name": "s", "type": "command", "command": program, "args": args}));
        let (ctx, mut grant) = granted(TrustLevel::UserVerified, &ws, &d);
        if let Some(t) = timeout {
            grant.limits.max_execution_time = t;
        }
        let params = crate::params::validate(&d, &json!({})).expect("params");
        let mut r = SkillResult::new(Status::Error, "s", "id".into());
        run(&d, &params, &ctx, &grant, (program, &d.args), &mut r).await;
        r
    }

    async fn sh(script: &str, timeout: Option<Duration>) -> SkillResult {
        once("sh", &["-c", script], timeout).await
    }

    #[tokio::test]
    async fn a_real_exit_is_mapped_with_its_output_usage_and_report() {
        let r = sh("echo out; echo err >&2; exit 3", None).await;
        assert_eq!(r.status, Status::Failed, "{r:?}");
        assert_eq!((r.exit_code, r.signal), (Some(3), None));
        assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));
        assert_eq!(r.message.as_deref(), Some("skill `s` exited with code 3"));
        assert!(r.usage.is_some(), "{r:?}");
        assert!(
            r.enforcement.iter().any(|e| e.mechanism == Guarantee::Filesystem && e.enforced),
            "{:?}",
            r.enforcement
        );
        let ok = sh("exit 0", None).await;
        assert_eq!((ok.status, ok.exit_code, ok.message), (Status::Success, Some(0), None));
    }

    #[tokio::test]
    async fn a_real_kill_and_a_real_timeout_are_mapped() {
        // The run's first process is PID 1 of its namespace, which ignores the signals it
        // sends itself: a fault the kernel signals kills it.
        let r = once("python3", &["-I", "-c", "import ctypes; ctypes.string_at(0)"], None).await;
        assert_eq!((r.status, r.exit_code, r.signal), (Status::Failed, None, Some(11)), "{r:?}");
        assert_eq!(r.message.as_deref(), Some("skill `s` was killed by signal 11"));
        let r = sh("sleep 30", Some(Duration::from_millis(300))).await;
        assert_eq!(r.status, Status::Timeout, "{r:?}");
        assert!(r.message.as_deref().is_some_and(|m| m.contains("timed out after 0.3 s")), "{r:?}");
    }

    #[tokio::test]
    async fn a_program_that_cannot_be_found_is_an_error_before_anything_runs() {
        let (_d, ws) = workspace();
        let d = def(json!({"name": "s", "type": "command", "command": "no-such-program-here"}));
        let (ctx, grant) = granted(TrustLevel::UserVerified, &ws, &d);
        let params = crate::params::validate(&d, &json!({})).expect("params");
        let mut r = SkillResult::new(Status::Error, "s", "id".into());
        run(&d, &params, &ctx, &grant, ("no-such-program-here", &[]), &mut r).await;
        assert_eq!(r.status, Status::Error);
        assert!(r.message.as_deref().is_some_and(|m| m.contains("was not found in PATH")));
        assert!(r.usage.is_none() && r.enforcement.is_empty(), "nothing ran: {r:?}");
    }
}
