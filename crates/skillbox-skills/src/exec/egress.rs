//! A networked run's one way out: skillbox's egress proxy (`skillbox_egress`), serving the
//! listener the sandbox hands over from inside the run's own network namespace.
//!
//! A grant below `full` network gets [`skillbox_sandbox::NetworkAccess::Loopback`]: the run
//! holds nothing but loopback, where the proxy listens at [`PROXY_PORT`], and its
//! environment names the proxy for the clients that read one (curl, git, pip, npm, Python,
//! Node). Each connection is decided against the skill's `allowed_domains` (or, without a
//! list, any public host) and recorded; a program that ignores the variables reaches nothing.

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use skillbox_egress::{Allowlist, Connection, Resolver, Rules, RunProxy};
use skillbox_sandbox::ListenerSink;

use crate::format::SkillDef;
use crate::security::EffectiveGrant;

/// The proxy's port on `127.0.0.1` inside every networked run's namespace: the one
/// squid made familiar. Fixed, because the namespace is the run's own: nothing else
/// listens there.
pub const PROXY_PORT: u16 = 3128;

/// Whether this host gives networked runs their own network namespace, so that
/// `allowed_domains` is enforced by the proxy; where it does not, such a run is refused
/// unless weaker isolation is asked for, and then gets `https-only` (any host on 443).
pub fn enforced_here() -> bool {
    skillbox_sandbox::host().user_namespaces
}

/// The variables that point clients at the proxy: both spellings, since curl reads only
/// the lowercase `http_proxy` and some tools only the uppercase ones; `NO_PROXY` empty, so
/// that no host is sent around it (nothing around it leads anywhere).
pub(super) fn proxy_env() -> Vec<(OsString, OsString)> {
    let url = format!("http://127.0.0.1:{PROXY_PORT}");
    let mut env = Vec::new();
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"] {
        env.push((name.into(), url.clone().into()));
        env.push((name.to_ascii_lowercase().into(), url.clone().into()));
    }
    env.push(("NO_PROXY".into(), "".into()));
    env.push(("no_proxy".into(), "".into()));
    env
}

/// The proxy of a run of `def` under `policy`, when its network is the run's own namespace,
/// with the sink for the sandbox: the proxy's variables are added to `env`, last, over the
/// host's and the skill's. Where the host gives no such namespace (weaker isolation, as the
/// report says) nothing would serve them: `None`, and `env` is left as it was.
pub(super) fn route(
    policy: &skillbox_sandbox::Policy,
    env: &mut Vec<(OsString, OsString)>,
    def: &SkillDef,
    grant: &EffectiveGrant,
) -> Option<(Egress, ListenerSink)> {
    let proxied = matches!(policy.network, skillbox_sandbox::NetworkAccess::Loopback { .. })
        && enforced_here();
    proxied.then(|| {
        let vars = proxy_env();
        env.retain(|(k, _)| !vars.iter().any(|(v, _)| v == k));
        env.extend(vars);
        Egress::for_run(def, grant)
    })
}

/// The proxy of one run, once the sandbox has handed over the run's listener.
pub(super) struct Egress {
    /// Filled by the sink when the child has started; empty when the run never started.
    serving: Arc<Mutex<Option<RunProxy>>>,
}

impl Egress {
    /// The proxy for a run of `def` under `grant`, and the sink the sandbox hands the
    /// listener to: the proxy starts serving it on the current tokio runtime at once.
    pub(super) fn for_run(def: &SkillDef, grant: &EffectiveGrant) -> (Self, ListenerSink) {
        let rules = Rules {
            list: grant
                .allowed_domains
                .as_ref()
                .map(|l| Allowlist::new(l.iter().cloned(), grant.plain_http)),
            plain_http: grant.plain_http,
            hint: hint(def),
        };
        let serving: Arc<Mutex<Option<RunProxy>>> = Arc::default();
        let slot = serving.clone();
        let resolver = match Resolver::from_env() {
            Ok(r) => r,
            Err(e) => {
                // A test setting only; a broken one must not send names to the real DNS
                // unnoticed, but neither may it leave the run without a proxy.
                tracing::warn!(error = %e, "SKILLBOX_TEST_RESOLVE ignored");
                Resolver::system()
            }
        };
        let sink = ListenerSink::new(move |listener| {
            // Without a proxy (the listener could not be registered), the listener closes
            // and the run reaches nothing: refused, as every connection would be.
            match skillbox_egress::serve(listener, rules.clone(), resolver.clone()) {
                Ok(proxy) => {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(proxy);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the egress proxy could not start"),
            }
        });
        (Self { serving }, sink)
    }

    /// Stops serving (the run's processes are gone) and returns every connection the run
    /// asked for, in order.
    pub(super) async fn finish(self) -> Vec<Connection> {
        let proxy = self.serving.lock().ok().and_then(|mut s| s.take());
        match proxy {
            Some(p) => p.finish().await,
            None => Vec::new(),
        }
    }
}

/// What a refused request's 403 body ends with: how a person allows the host.
fn hint(def: &SkillDef) -> String {
    format!(
        "To allow it, the skill `{}` must list \"{{pattern}}\" in \
         security.permissions.allowed_domains (docs/writing-skills.md); nothing at run time \
         can widen the list.",
        def.name
    )
}
