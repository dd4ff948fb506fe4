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
    let env = super::environment::environment(ctx, def, &private.home(), &private.tmp());
    let policy = super::policy::policy_for(grant, private.path(), &ctx.workspace);
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

    tracing::debug!(program = ?spec.program, args = spec.args.len(), "spawning");
    let outcome = skillbox_sandbox::run(&spec).await;
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
