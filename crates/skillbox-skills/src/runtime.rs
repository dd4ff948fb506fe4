//! The entry point an agent embeds: a registry for one workspace, and the one path every run
//! takes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tracing::Instrument;

use skillbox_audit::{AuditLog, LogConfig};

use crate::circuit::Circuits;
use crate::registry::{LoadedSkill, Locations, LookupError, Registry};
use crate::result::{SkillResult, Status};
use crate::security::{SecurityContext, TrustLevel};
use crate::tool::SkillTool;

/// Why a runtime could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The audit log cannot be opened; skillbox runs nothing it cannot record.
    #[error(transparent)]
    Audit(#[from] skillbox_audit::AuditError),
    /// There is no place for the audit log.
    #[error("no place for the audit log: set SKILLBOX_HOME or SKILLBOX_AUDIT_LOG (HOME is unset)")]
    NoAuditLocation,
    /// The workspace does not exist or cannot be resolved.
    #[error("workspace {path}: {source}")]
    Workspace {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
}

/// Choices a person makes for one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run at this level instead of the skill's default.
    pub trust: Option<TrustLevel>,
    /// Run even where the host lacks Landlock or seccomp (see
    /// [`SecurityContext::allow_weaker_isolation`]).
    pub allow_weaker_isolation: bool,
    /// Base delay of the retry backoff; `None`: one second.
    pub retry_base_delay: Option<std::time::Duration>,
    /// Sees the output of the run's processes as it is read, every attempt and fallback
    /// (a CLI at a terminal prints it as it comes); the result holds it all the same.
    pub on_output: Option<skillbox_sandbox::OutputObserver>,
    /// The caller's sessions, for `code_session` skills: a call with a `session_id` runs in
    /// that session of this table, one without starts a session kept here. `None`: each
    /// call runs in a fresh session that ends with it (`skillbox run`).
    pub sessions: Option<Arc<crate::exec::Sessions>>,
    /// Run at the level a person allowed through a consent question, executing the sealed
    /// copy of the content they were shown; refused if the skill's content changed since.
    /// Takes precedence over [`Self::trust`]. Set it only from the person's answer (see
    /// [`Runtime::consent_question`]), never from a model's tool arguments.
    pub consent: Option<crate::consent::Consent>,
}

/// Skills for one workspace, and the single execution path used by the CLI, the MCP server
/// and [`SkillTool`].
pub struct Runtime {
    registry: Registry,
    workspace: PathBuf,
    audit: Option<Arc<AuditLog>>,
    /// Where the registry was loaded from, when it was (not for [`Runtime::with_registry`]).
    locations: Option<Locations>,
    /// skillbox's home directory, which holds the trust store and the policy file; `None`:
    /// no grants and the plan's defaults.
    home: Option<PathBuf>,
    /// Home directories whose keys and credentials no run reaches (see
    /// [`SecurityContext::homes`]).
    homes: crate::protect::Homes,
    /// Refusals before a skill is looked up, recorded at a bounded rate; shared with the
    /// runtimes reloaded from this one. `None` without an audit log.
    refusals: Option<Arc<crate::refusals::Refusals>>,
    /// The circuit breakers: on disk under the home directory when there is one, else in
    /// memory; shared with the runtimes reloaded from this one.
    circuits: Arc<Circuits>,
}

/// Why a trust grant could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The name does not resolve to a skill.
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// The store, the policy or the skill's content could not be used.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// This runtime has no home directory to keep grants in.
    #[error("no place for the trust store: set SKILLBOX_HOME (HOME is unset)")]
    NoHome,
    /// No grant exists for the name.
    #[error("`{0}` has no trust grant; `skillbox trust --list` shows the grants")]
    NoGrant(String),
    /// The grant was made but the audit log refused the event.
    #[error("the grant was saved, but the audit log could not record it: {0}")]
    Audit(String),
    /// The skill's content is no longer the content the person was shown: nothing granted.
    #[error(
        "the content of `{subject}` changed since the person was asked (they were shown {shown}, \
         it is now {now}); nothing was granted"
    )]
    Changed {
        /// The name the grant would be kept under.
        subject: String,
        /// The digest shown.
        shown: String,
        /// The digest now, or why it cannot be computed.
        now: String,
    },
}

/// The level a run gets, and why.
#[derive(Debug, Clone)]
pub struct TrustDecision {
    /// The level.
    pub level: TrustLevel,
    /// Where the level came from (see [`SkillResult::trust_origin`]).
    pub origin: crate::result::TrustOrigin,
    /// A grant that lapsed, with the content's digest now.
    pub lapsed: Option<(crate::trust::Grant, String)>,
    /// With a grant that holds: the content it was checked against, read once. A run at the
    /// granted level executes the sealed copy of exactly these bytes.
    pub snapshot: Option<std::sync::Arc<crate::seal::Snapshot>>,
}

/// The trust policy and store as read at one moment (see [`Runtime::trust_view`]).
#[derive(Debug, Clone)]
pub struct TrustView {
    policy: crate::trust::TrustPolicy,
    /// `None`: the runtime has no home directory, so no grants.
    store: Option<crate::trust::TrustStore>,
    /// Where skills run: a JSON skill's grant pins the scripts its command names there.
    workspace: PathBuf,
}

impl TrustView {
    /// The level `skill` runs at without `--trust`, and why: a grant whose digest still
    /// matches, else the policy's default for its source, else the plan's default.
    pub fn decision(&self, skill: &LoadedSkill) -> TrustDecision {
        let default = self.policy.default_for(skill.source);
        let origin = if self.policy.default_trust.contains_key(&skill.source) {
            crate::result::TrustOrigin::Policy
        } else {
            crate::result::TrustOrigin::Default
        };
        let fallback = TrustDecision { level: default, origin, lapsed: None, snapshot: None };
        let Some(store) = &self.store else { return fallback };
        match store.standing(skill, &self.workspace) {
            crate::trust::Standing::NoGrant => fallback,
            crate::trust::Standing::Granted(g, snapshot) => TrustDecision {
                level: g.level,
                origin: crate::result::TrustOrigin::Grant,
                lapsed: None,
                snapshot: Some(snapshot),
            },
            crate::trust::Standing::Lapsed { grant, now } => {
                TrustDecision { lapsed: Some((grant, now)), ..fallback }
            }
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workspace", &self.workspace)
            .field("skills", &self.registry.len())
            .field("audit", &self.audit.as_ref().map(|a| a.config().path.clone()))
            .finish()
    }
}

impl Runtime {
    /// Opens `workspace` with the standard skill locations, reading `HOME`, `SKILLBOX_HOME`
    /// and `XDG_CONFIG_HOME` from this process's environment.
    /// The audit log goes to [`default_audit_path`](crate::default_audit_path).
    pub fn open(workspace: &Path) -> Result<Self, OpenError> {
        Self::open_in(workspace, None, |k| std::env::var_os(k))
    }

    /// Like [`Runtime::open`], with the audit log configured by the caller.
    pub fn open_with_audit(workspace: &Path, audit: LogConfig) -> Result<Self, OpenError> {
        Self::open_in(workspace, Some(audit), |k| std::env::var_os(k))
    }

    /// [`Runtime::open`] (`audit` `None`) or [`Runtime::open_with_audit`] in the
    /// environment `vars` describes.
    fn open_in(
        workspace: &Path,
        audit: Option<LogConfig>,
        vars: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, OpenError> {
        let audit = match audit {
            Some(a) => a,
            None => LogConfig::new(
                crate::audit::default_audit_path(&vars).ok_or(OpenError::NoAuditLocation)?,
            ),
        };
        let workspace = canonical(workspace)?;
        let locations = Locations::standard(&workspace, &vars);
        let log = Arc::new(AuditLog::open(audit)?);
        let home = crate::registry::skillbox_home(&vars);
        let registry = Registry::load(&locations);
        report_load(&registry);
        Ok(Self {
            registry,
            workspace,
            refusals: Some(Arc::new(crate::refusals::Refusals::new(log.clone()))),
            audit: Some(log),
            locations: Some(locations),
            circuits: Arc::new(circuits_for(home.as_deref())),
            home,
            homes: crate::protect::homes(&vars),
        })
    }

    /// A runtime over an already loaded registry, without an audit log (add one with
    /// [`Runtime::with_audit`]).
    pub fn with_registry(registry: Registry, workspace: &Path) -> Result<Self, OpenError> {
        Ok(Self {
            registry,
            workspace: canonical(workspace)?,
            audit: None,
            refusals: None,
            locations: None,
            circuits: Arc::new(Circuits::in_memory()),
            home: None,
            homes: crate::protect::homes(|k| std::env::var_os(k)),
        })
    }

    /// Records every run of this runtime in `log`, and reserves the log's directory: no run
    /// is granted writes to it.
    pub fn with_audit(mut self, log: Arc<AuditLog>) -> Self {
        self.refusals = Some(Arc::new(crate::refusals::Refusals::new(log.clone())));
        self.audit = Some(log);
        self
    }

    /// Refuses a call before any skill is looked up (a name that is not a skill's, a
    /// parameter text that is not a JSON object): records it in the audit log as
    /// `InputValidationFailed` (at most `refusals::BURST` events per `refusals::WINDOW`;
    /// the ones beyond are counted, see docs/audit-log.md) and returns the result to
    /// report. Every such refusal of the CLI and the MCP server comes through here.
    pub fn refuse(
        &self,
        name: &str,
        status: Status,
        message: String,
        params: &Value,
    ) -> SkillResult {
        let shown = crate::refusals::result_name(name);
        tracing::debug!(name = shown, status = status.as_str(), "refused before lookup");
        let mut r = SkillResult::refused(status, shown, message.clone());
        if let Some(refusals) = &self.refusals {
            r.audit_error = refusals.record(name, &message, params);
        }
        r
    }

    /// skillbox's own paths that no run may write (and none reaches by containing them):
    /// the home directory (trust store, policy, global skills, the log when it is kept
    /// there), and the audit log's files when it is kept elsewhere (listed at each run, so
    /// that a rotation since the last one is covered). Resolved where they are compared
    /// (see [`SecurityContext::reserved`]).
    pub fn reserved(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self.home.iter().cloned().collect();
        if let Some(log) = &self.audit {
            let path = &log.config().path;
            let dir = path.parent().unwrap_or(Path::new("."));
            let in_home = self.home.as_ref().is_some_and(|h| {
                skillbox_sandbox::resolve(dir).starts_with(skillbox_sandbox::resolve(h))
            });
            if !in_home {
                out.extend(skillbox_audit::files_of(path));
            }
        }
        out
    }

    /// A context for `level` in this runtime's workspace, with its reserved paths and homes.
    fn context(&self, level: TrustLevel) -> SecurityContext {
        let mut ctx = SecurityContext::for_trust_level(level, &self.workspace);
        ctx.reserved = self.reserved();
        ctx.homes = self.homes.clone();
        ctx.quarantine = self.home.as_ref().map(|h| h.join("quarantine"));
        ctx
    }

    /// The audit log, if any.
    pub fn audit(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    /// A fingerprint of the skill directories this runtime loaded from (see
    /// [`Locations::fingerprint`]); `None` for a runtime built over a given registry.
    pub fn skills_fingerprint(&self) -> Option<u64> {
        self.locations.as_ref().map(Locations::fingerprint)
    }

    /// The same runtime (workspace, audit log, reserved paths, home, circuit breakers) with
    /// its skills read again from disk; `None` for a runtime built over a given registry,
    /// which has nothing to re-read.
    ///
    /// Why an embedder needs it: an agent session or an MCP server lives longer than the
    /// skill files it loaded. A person adds a skill, edits one, or pulls a repository with
    /// new ones; without a reload the agent keeps offering what was there at start, and a
    /// skill deleted on disk stays callable. Poll [`Runtime::skills_fingerprint`] (cheap: a
    /// few directory listings) and, when it changes, swap in the reloaded runtime (hold it
    /// in an `Arc`, so that runs in flight finish on the definitions they started with).
    /// The reload reports what loading met as `tracing` warnings.
    pub fn reloaded(&self) -> Option<Self> {
        let locations = self.locations.clone()?;
        let registry = Registry::load(&locations);
        report_load(&registry);
        Some(Self {
            registry,
            workspace: self.workspace.clone(),
            audit: self.audit.clone(),
            refusals: self.refusals.clone(),
            circuits: self.circuits.clone(),
            locations: Some(locations),
            home: self.home.clone(),
            homes: self.homes.clone(),
        })
    }

    /// The skills.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The workspace (canonical: symlinks resolved).
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Keeps trust grants (and the sealed copies of granted content), the policy file and
    /// the circuit-breaker state in `home` (a runtime opened with [`Runtime::open`] uses
    /// skillbox's home directory already).
    ///
    /// Why an embedder needs it: a runtime built over its own registry
    /// ([`Runtime::with_registry`]) has no home, so [`Runtime::grant`] fails with
    /// [`GrantError::NoHome`] (an "always allow" has nowhere to be kept), every skill runs
    /// at its source's default level, and circuit breakers are kept in memory only. Give it
    /// the agent's own state directory, or skillbox's, to have grants that outlive the
    /// process and circuits shared with every process using that home. Pass a directory no
    /// skill is granted writes to: it is reserved for the runtime's own files.
    pub fn with_home(mut self, home: &Path) -> Self {
        let home = skillbox_sandbox::resolve(home);
        self.circuits = Arc::new(circuits_for(Some(&home)));
        self.home = Some(home);
        self
    }

    /// The trust store, read now; empty when this runtime has no home directory.
    pub fn trust_store(&self) -> Result<crate::trust::TrustStore, GrantError> {
        let home = self.home.as_ref().ok_or(GrantError::NoHome)?;
        Ok(crate::trust::TrustStore::load(&home.join(crate::trust::STORE_FILE))?)
    }

    /// The policy file, read now; the plan's defaults without a home directory or file.
    pub fn trust_policy(&self) -> Result<crate::trust::TrustPolicy, crate::trust::TrustError> {
        match &self.home {
            Some(h) => crate::trust::TrustPolicy::load(&h.join(crate::trust::POLICY_FILE)),
            None => Ok(crate::trust::TrustPolicy::default()),
        }
    }

    /// The level `skill` runs at without `--trust`, and why: a grant whose digest still
    /// matches, else the policy's default for its source, else the plan's default.
    ///
    /// Fails when the store or policy cannot be read: running at a guessed level could
    /// raise a skill a person had lowered.
    pub fn trust_decision(
        &self,
        skill: &LoadedSkill,
        flag: Option<TrustLevel>,
    ) -> Result<TrustDecision, crate::trust::TrustError> {
        if let Some(level) = flag {
            return Ok(TrustDecision {
                level,
                origin: crate::result::TrustOrigin::Flag,
                lapsed: None,
                snapshot: None,
            });
        }
        Ok(self.trust_view()?.decision(skill))
    }

    /// The policy and the trust store, read once, to decide the levels of many skills
    /// (`skillbox list`) without reading both files again for each. Fails as
    /// [`Runtime::trust_decision`] does.
    pub fn trust_view(&self) -> Result<TrustView, crate::trust::TrustError> {
        let policy = self.trust_policy()?;
        let store = match &self.home {
            Some(home) => {
                Some(crate::trust::TrustStore::load(&home.join(crate::trust::STORE_FILE))?)
            }
            None => None,
        };
        Ok(TrustView { policy, store, workspace: self.workspace.clone() })
    }

    /// The lowest level at which `skill`'s declaration is granted, if any.
    pub fn lowest_sufficient_level(&self, skill: &LoadedSkill) -> Option<TrustLevel> {
        [TrustLevel::Untrusted, TrustLevel::UserVerified, TrustLevel::SystemTrusted]
            .into_iter()
            .find(|l| self.context(*l).validate_execution(&skill.def).is_ok())
    }

    /// The question to ask the person about `denied`, a run refused for want of a trust
    /// level: the level that grants what the skill declares, what that level lets it do, and
    /// the digest of the content that would run. `None` when the result is not such a denial
    /// (another status, a denial no level lifts, a built-in skill, content that cannot be
    /// pinned): then there is nothing a person could allow.
    ///
    /// Why an embedder needs it: an agent's interface can ask at the moment it matters,
    /// instead of sending the person to a terminal. Show [`crate::ConsentQuestion::message`],
    /// record the question ([`Runtime::record_consent_asked`]) before asking and the answer
    /// ([`Runtime::record_consent_answer`]) after; on `once` run again with
    /// [`RunOptions::consent`], on `always` call [`Runtime::grant_consented`] first. The
    /// answer must come from the person, never from the model's tool arguments.
    pub fn consent_question(
        &self,
        denied: &SkillResult,
    ) -> Option<crate::consent::ConsentQuestion> {
        if denied.status != Status::Denied {
            return None;
        }
        let denial = denied.denial.as_ref()?;
        let level = denial.fix?;
        let skill = self.registry.get(&denied.skill).ok()?;
        if skill.source == crate::registry::SourceKind::Builtin {
            return None;
        }
        let snapshot = crate::seal::Snapshot::take(skill, &self.workspace).ok()?;
        // What the level would enforce, for the definition of the bytes that would run.
        let (sealed, _held) = self.seal(skill, &snapshot).ok()?;
        let grant = self.context(level).validate_execution(&sealed.def).ok()?;
        let (subject, path) = skill.trust_subject();
        Some(crate::consent::ConsentQuestion {
            skill: skill.def.name.clone(),
            subject: subject.to_string(),
            path: path.to_path_buf(),
            source: skill.source,
            level_now: denial.trust_level,
            level,
            denial: denial.clone(),
            grant,
            digest: snapshot.digest,
        })
    }

    /// Records that `question` is being asked, `via` what (`elicitation/create`,
    /// `input_required`); `Err` with the audit log's error when it cannot be recorded, and
    /// then the question must not be asked: nothing is granted that is not recorded.
    pub fn record_consent_asked(
        &self,
        question: &crate::consent::ConsentQuestion,
        via: &str,
    ) -> Result<(), GrantError> {
        self.record(&[crate::audit::consent_requested(question, via)])
    }

    /// Records the person's `answer` to `question`; `Err` when it cannot be recorded, and
    /// then the answer must not be acted on.
    pub fn record_consent_answer(
        &self,
        question: &crate::consent::ConsentQuestion,
        answer: crate::consent::ConsentAnswer,
        via: &str,
    ) -> Result<(), GrantError> {
        self.record(&[crate::audit::consent_answered(question, answer, via)])
    }

    /// The "always" of a consent question: the grant `skillbox trust` writes (recorded as
    /// `TrustGranted`), at `question.level`, pinned to the digest the person was shown.
    /// Fails with [`GrantError::Changed`], granting nothing, if the content changed since.
    pub fn grant_consented(
        &self,
        question: &crate::consent::ConsentQuestion,
    ) -> Result<(String, crate::trust::Grant), GrantError> {
        let skill = self.registry.get(&question.skill)?;
        let subject = skill.trust_subject().0.to_string();
        let changed = |now: String| GrantError::Changed {
            subject: subject.clone(),
            shown: question.digest.clone(),
            now,
        };
        let snapshot = crate::seal::Snapshot::take(skill, &self.workspace)
            .map_err(|e| changed(e.to_string()))?;
        if snapshot.digest != question.digest {
            return Err(changed(snapshot.digest));
        }
        let mut store = self.trust_store()?;
        let grant = store.grant_snapshot(skill, question.level, &snapshot)?;
        self.prune_sealed(&store);
        self.record(&[crate::audit::trust_changed(&subject, &grant, false)])?;
        Ok((subject, grant))
    }

    /// The decision for a run a person allowed through a consent question: its level, and
    /// the snapshot of the content now, which must be the content they were shown. `Err`:
    /// the refusal's message.
    fn consented(
        &self,
        skill: &LoadedSkill,
        consent: &crate::consent::Consent,
    ) -> Result<TrustDecision, String> {
        let subject = skill.trust_subject().0;
        let now = match crate::seal::Snapshot::take(skill, &self.workspace) {
            Ok(s) => s,
            Err(e) => {
                return Err(format!(
                    "refusing to run: the content of `{subject}` cannot be read as it was when the \
                     person allowed it: {e}"
                ))
            }
        };
        if now.digest != consent.digest {
            return Err(format!(
                "refusing to run: the content of `{subject}` changed since the person allowed it \
                 (they were shown {}, it is now {}); ask again",
                consent.digest, now.digest
            ));
        }
        Ok(TrustDecision {
            level: consent.level,
            origin: crate::result::TrustOrigin::Consent,
            lapsed: None,
            snapshot: Some(Arc::new(now)),
        })
    }

    /// Grants the skill `name` (for an Agent Skill: the whole skill, all of its scripts)
    /// `level`, or the lowest level its declaration needs, pinned to its content now; records
    /// a `TrustGranted` event. Returns the name the grant is kept under and the grant.
    ///
    /// Why an embedder needs it: this is an agent's "always allow" button. When a run is
    /// `denied`, show the person the denial; if they trust the skill, grant it the level
    /// `denial.fix` names, and later runs get it without `--trust` and without asking again.
    /// The grant holds only while the skill's content is the one granted: any change lapses
    /// it, and the skill runs at its default level with a notice until the person grants it
    /// again. The level comes from the person, never from the model. Needs a home directory
    /// ([`Runtime::with_home`]).
    pub fn grant(
        &self,
        name: &str,
        level: Option<TrustLevel>,
    ) -> Result<(String, crate::trust::Grant), GrantError> {
        let skill = self.registry.get(name)?;
        let mut store = self.trust_store()?;
        let level = level
            .or_else(|| self.lowest_sufficient_level(skill))
            .unwrap_or(TrustLevel::SystemTrusted);
        let grant = store.grant(skill, level, &self.workspace)?;
        let subject = skill.trust_subject().0.to_string();
        self.prune_sealed(&store);
        self.record(&[crate::audit::trust_changed(&subject, &grant, false)])?;
        Ok((subject, grant))
    }

    /// Removes the grant of `name` (a skill, a script of an Agent Skill, or the name a grant
    /// is kept under); records a `TrustRevoked` event.
    ///
    /// Why an embedder needs it: the way back from "always allow". An agent that offers
    /// grants lists them ([`Runtime::trust_store`]) and lets the person withdraw one; the
    /// skill's next run is at its default level again. It also removes the sealed copy no
    /// other grant needs.
    pub fn revoke(&self, name: &str) -> Result<(String, crate::trust::Grant), GrantError> {
        let mut store = self.trust_store()?;
        let subject = match self.registry.get(name) {
            Ok(skill) => skill.trust_subject().0.to_string(),
            Err(_) => name.to_string(),
        };
        let grant = store.revoke(&subject)?.ok_or_else(|| GrantError::NoGrant(subject.clone()))?;
        self.prune_sealed(&store);
        self.record(&[crate::audit::trust_changed(&subject, &grant, true)])?;
        Ok((subject, grant))
    }

    /// `skill` as the sealed copy of `snapshot` defines it, sealed under the home now if it
    /// was not before; with the hold that keeps the copy from being pruned while it is used.
    fn seal(
        &self,
        skill: &LoadedSkill,
        snapshot: &crate::seal::Snapshot,
    ) -> Result<(LoadedSkill, crate::seal::InUse), crate::trust::TrustError> {
        // A snapshot comes from a grant, and grants live in the home: there is one.
        let home = self.home.as_deref().unwrap_or(Path::new("/nonexistent"));
        let (dir, held) = snapshot.seal(home)?;
        Ok((snapshot.sealed_skill(skill, &dir)?, held))
    }

    /// Removes the sealed copies no grant of `store` pins any more.
    fn prune_sealed(&self, store: &crate::trust::TrustStore) {
        if let Some(home) = &self.home {
            let keep: Vec<&str> = store.grants().map(|(_, g)| g.digest.as_str()).collect();
            crate::seal::prune(home, &keep);
        }
    }

    fn record(&self, events: &[skillbox_audit::EventDraft]) -> Result<(), GrantError> {
        match &self.audit {
            Some(log) => match crate::audit::write(log, events) {
                Some(e) => Err(GrantError::Audit(e)),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// The context a skill named `name` runs with: its level without `--trust` (see
    /// [`Runtime::trust_decision`]), or `trust`; `untrusted` when the trust store or policy
    /// cannot be read.
    pub fn context_for(
        &self,
        name: &str,
        trust: Option<TrustLevel>,
    ) -> Result<SecurityContext, LookupError> {
        let skill = self.registry.get(name)?;
        // An unreadable store or policy is not guessed around: the most restrictive level
        // (a run itself is refused in that case; see `run_with`).
        let level = match self.trust_decision(skill, trust) {
            Ok(d) => d.level,
            Err(_) => TrustLevel::Untrusted,
        };
        Ok(self.context(level))
    }

    /// Runs the skill `name` (or alias) with `params`, at its default trust level or at
    /// `trust`.
    pub async fn run(&self, name: &str, params: &Value, trust: Option<TrustLevel>) -> SkillResult {
        self.run_with(name, params, &RunOptions { trust, ..RunOptions::default() }).await
    }

    /// Runs `code` in a session of the `code_session` skill `name`: in the session
    /// `session_id` of `sessions`, or, without one, in a new session kept there (its id is
    /// the result's `session.session_id`). The same path as [`Runtime::run_with`] with
    /// `{"code", "session_id"}` as parameters and `sessions` in the options.
    ///
    /// Why an embedder needs it: an agent that offers a notebook-like tool keeps one
    /// [`crate::Sessions`] per conversation; dropping it (or [`crate::Sessions::close`])
    /// ends the sessions and kills their processes.
    pub async fn call_session(
        &self,
        sessions: &Arc<crate::exec::Sessions>,
        name: &str,
        code: &str,
        session_id: Option<&str>,
        trust: Option<TrustLevel>,
    ) -> SkillResult {
        let mut params = serde_json::json!({ "code": code });
        if let Some(id) = session_id {
            params["session_id"] = Value::String(id.to_string());
        }
        let options =
            RunOptions { trust, sessions: Some(sessions.clone()), ..RunOptions::default() };
        self.run_with(name, &params, &options).await
    }

    /// Runs the skill `name` (or alias) with `params` and per-run `options`. Every run in
    /// skillbox goes through here.
    ///
    /// In order: the skill is looked up, its level decided (a grant, the policy, the
    /// default, or `options.trust`) and, for a grant, its content sealed; the run is
    /// recorded as started, the circuit breaker consulted, the skill executed
    /// (`execute_with_security`), and the outcome recorded. A step that refuses returns the
    /// refusal as the result, recorded in the audit log like any run.
    ///
    /// Each run is a `tracing` span, `skill_run` (fields `skill`, `execution_id`,
    /// `trust_level`), with debug events at its decision, spawn, wait and audit steps.
    pub async fn run_with(&self, name: &str, params: &Value, options: &RunOptions) -> SkillResult {
        let span = tracing::info_span!(
            "skill_run",
            skill = tracing::field::Empty,
            execution_id = tracing::field::Empty,
            trust_level = tracing::field::Empty,
        );
        self.run_in_span(&span, name, params, options).instrument(span.clone()).await
    }

    /// [`Runtime::run_with`], inside the run's `span`.
    async fn run_in_span(
        &self,
        span: &tracing::Span,
        name: &str,
        params: &Value,
        options: &RunOptions,
    ) -> SkillResult {
        let skill = match self.registry.get(name) {
            Ok(s) => s,
            Err(e) => {
                let r = self.refuse(name, Status::Invalid, e.to_string(), params);
                span.record("execution_id", r.execution_id.as_str());
                return r;
            }
        };
        span.record("skill", skill.def.name.as_str());
        let decision = match &options.consent {
            Some(consent) => match self.consented(skill, consent) {
                Ok(d) => Ok(d),
                Err(message) => return self.refuse_early(span, &skill.def.name, message, params),
            },
            None => self.trust_decision(skill, options.trust),
        };
        let decision = match decision {
            Ok(d) => d,
            Err(e) => {
                let message = format!(
                    "refusing to run: {e}; fix or remove the file (`skillbox trust --list` reads it)"
                );
                return self.refuse_early(span, &skill.def.name, message, params);
            }
        };
        span.record("trust_level", decision.level.as_str());
        tracing::debug!(origin = decision.origin.as_str(), "trust level decided");
        // A level a grant gave runs the sealed copy of the very bytes its digest was checked
        // against (see `crate::seal`), never the files as they are now.
        // The hold lives as long as the run: no prune removes the copy under it.
        let (sealed, _held);
        let skill = match &decision.snapshot {
            None => skill,
            Some(snapshot) => match self.seal(skill, snapshot) {
                Ok((s, held)) => {
                    tracing::debug!("the granted content runs from its sealed copy");
                    (sealed, _held) = (s, held);
                    &sealed
                }
                Err(e) => {
                    let message = format!(
                        "refusing to run: the content granted to `{}` cannot be sealed for the \
                         run: {e}",
                        skill.trust_subject().0
                    );
                    return self.refuse_early(span, &skill.def.name, message, params);
                }
            },
        };
        let mut ctx = self.context(decision.level);
        ctx.allow_weaker_isolation = options.allow_weaker_isolation;
        ctx.output_observer = options.on_output.clone();
        self.run_decided(span, skill, params, &ctx, &decision, options).await
    }

    /// The run of `skill` at the level decided in `ctx`: recorded as started (with a lapsed
    /// grant first), refused while its circuit is open, executed, and recorded as ended.
    /// Nothing runs that cannot be recorded.
    async fn run_decided(
        &self,
        span: &tracing::Span,
        skill: &LoadedSkill,
        params: &Value,
        ctx: &SecurityContext,
        decision: &TrustDecision,
        options: &RunOptions,
    ) -> SkillResult {
        let name = &skill.def.name;
        let notice = lapse_notice(skill, decision);
        if let Some(notice) = &notice {
            tracing::warn!(notice = notice.as_str(), "trust grant lapsed");
        }
        if let (Some(log), Some((grant, now)), Some(message)) =
            (&self.audit, &decision.lapsed, &notice)
        {
            let event = crate::audit::trust_lapsed(name, grant, now, ctx, message);
            if let Some(err) = crate::audit::write(log, &[event]) {
                return unrecordable(span, name, err, None);
            }
        }
        let execution_id = crate::result::new_execution_id();
        span.record("execution_id", execution_id.as_str());
        if let Some(log) = &self.audit {
            let start = crate::audit::started(name, &skill.path, ctx, &execution_id, params);
            if let Some(err) = crate::audit::write(log, &[start]) {
                return unrecordable(span, name, err, Some(execution_id));
            }
        }
        if let Some(mut r) = self.circuit_check(skill, &execution_id) {
            tracing::debug!("circuit open: refused without running");
            r.trust_level = Some(ctx.trust_level);
            let events = crate::audit::finished(&r, ctx);
            return self.refuse_and_record(r, &events);
        }
        let (mut result, mut audit_errors) =
            self.execute(skill, params, ctx, &execution_id, options).await;
        result.trust_origin = Some(decision.origin);
        result.notice = notice;
        self.circuit_record(skill, &result);
        if let Some(log) = &self.audit {
            audit_errors.extend(crate::audit::write(log, &crate::audit::finished(&result, ctx)));
            result.audit_error = audit_errors.into_iter().next();
        }
        result
    }

    /// Executes `skill` (`execute_with_security`) under `execution_id`; with an audit log,
    /// each retry and fallback is recorded as it happens and a run its caller abandons is
    /// recorded as cancelled. Returns the result and the audit errors met on the way.
    async fn execute(
        &self,
        skill: &LoadedSkill,
        params: &Value,
        ctx: &SecurityContext,
        execution_id: &str,
        options: &RunOptions,
    ) -> (SkillResult, Vec<String>) {
        let retry_base_delay =
            options.retry_base_delay.unwrap_or(std::time::Duration::from_secs(1));
        let Some(log) = &self.audit else {
            let exec = crate::exec::ExecOptions {
                retry_base_delay,
                observer: None,
                sessions: options.sessions.as_deref(),
                audit: None,
            };
            let r = skill.execute_with_security(params, ctx, &exec, execution_id.into()).await;
            return (r, Vec::new());
        };
        // If the caller drops this future before the run ends (an MCP cancellation), the
        // run's processes are killed as the inner future drops, and then this guard records
        // the cancellation: the log never shows a run that started and never ended.
        let mut cancel_guard = CancelGuard {
            log,
            skill: &skill.def.name,
            ctx,
            execution_id,
            started: std::time::Instant::now(),
            armed: true,
        };
        let audit_errors = std::sync::Mutex::new(Vec::<String>::new());
        let observer = |step: &crate::exec::Step<'_>| {
            let mut events = crate::audit::network(step, &skill.def.name, ctx, execution_id);
            events.extend(crate::audit::planted(step, &skill.def.name, ctx, execution_id));
            events.extend(crate::audit::step(step, &skill.def.name, ctx, execution_id));
            if let Some(e) = crate::audit::write(log, &events) {
                if let Ok(mut v) = audit_errors.lock() {
                    v.push(e);
                }
            }
        };
        let exec = crate::exec::ExecOptions {
            retry_base_delay,
            observer: Some(&observer),
            sessions: options.sessions.as_deref(),
            audit: Some(log),
        };
        let result = skill.execute_with_security(params, ctx, &exec, execution_id.into()).await;
        cancel_guard.armed = false;
        (result, audit_errors.into_inner().unwrap_or_default())
    }

    /// Refuses `skill` before its context could be made (the trust store or policy cannot be
    /// read, the granted content cannot be sealed): `error`, recorded.
    fn refuse_early(
        &self,
        span: &tracing::Span,
        skill: &str,
        message: String,
        params: &Value,
    ) -> SkillResult {
        let event = crate::audit::refused_early(skill, &message, params);
        let r = SkillResult::refused(Status::Error, skill, message);
        span.record("execution_id", r.execution_id.as_str());
        let refusal = r.message.as_deref();
        tracing::debug!(refusal, "refused before running");
        self.refuse_and_record(r, &[event])
    }

    /// Returns `r`, a run refused before anything started, after writing `events` for it to
    /// the audit log (when this runtime has one); a write that fails is the result's
    /// `audit_error`.
    fn refuse_and_record(
        &self,
        mut r: SkillResult,
        events: &[skillbox_audit::EventDraft],
    ) -> SkillResult {
        if let Some(log) = &self.audit {
            r.audit_error = crate::audit::write(log, events);
        }
        r
    }

    /// Refuses fast when the skill's circuit is open (see [`crate::circuit`]). A state
    /// that cannot be read is a warning, and the run goes ahead: the breaker spares a
    /// failing service, it confines nothing.
    fn circuit_check(&self, skill: &LoadedSkill, id: &str) -> Option<SkillResult> {
        let cb = skill.def.resilience.circuit_breaker.as_ref()?;
        let until = match self.circuits.open_until(&skill.def.name, cb) {
            Ok(until) => until?,
            Err(e) => {
                tracing::warn!(error = %e, "circuit breaker not consulted");
                return None;
            }
        };
        let mut r = SkillResult::refused(
            Status::Error,
            &skill.def.name,
            format!(
                "circuit open: skill `{}` failed {} times in a row; refused without running \
                 until {} (recovery_timeout {} s)",
                skill.def.name,
                cb.failure_threshold,
                rfc3339_seconds(until),
                cb.recovery_timeout
            ),
        );
        r.execution_id = id.to_string();
        Some(r)
    }

    /// Counts the outcome of a run that was let through; a state that cannot be written is
    /// a warning (the circuit then does not count this run).
    fn circuit_record(&self, skill: &LoadedSkill, r: &SkillResult) {
        let Some(cb) = skill.def.resilience.circuit_breaker.as_ref() else { return };
        let failed = matches!(
            r.status,
            Status::Failed | Status::Error | Status::Timeout | Status::LimitExceeded
        );
        if let Err(e) = self.circuits.record(&skill.def.name, cb, failed) {
            tracing::warn!(error = %e, "circuit breaker not updated");
        }
    }

    /// Every skill as a tool, at its default trust level.
    pub fn tools(self: &Arc<Self>) -> Vec<SkillTool> {
        self.registry
            .skills()
            .filter_map(|s| SkillTool::new(self.clone(), &s.def.name, None))
            .collect()
    }
}

/// Writes the cancellation event of a run whose future was dropped before it ended.
struct CancelGuard<'a> {
    log: &'a AuditLog,
    skill: &'a str,
    ctx: &'a SecurityContext,
    execution_id: &'a str,
    started: std::time::Instant,
    armed: bool,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let event = crate::audit::cancelled(
                self.skill,
                self.ctx,
                self.execution_id,
                self.started.elapsed(),
            );
            // Nowhere to report a failure to: the caller has gone. The chain stays valid
            // either way; a missing close is what `audit show` would then display.
            let _ = crate::audit::write(self.log, &[event]);
        }
    }
}

fn canonical(p: &Path) -> Result<PathBuf, OpenError> {
    let c = p
        .canonicalize()
        .map_err(|source| OpenError::Workspace { path: p.to_path_buf(), source })?;
    if !c.is_dir() {
        return Err(OpenError::Workspace {
            path: p.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
        });
    }
    Ok(c)
}

/// A run refused because its audit event cannot be written: nothing runs that cannot be
/// recorded. Under the run's `execution_id` once it has one.
fn unrecordable(
    span: &tracing::Span,
    skill: &str,
    err: String,
    execution_id: Option<String>,
) -> SkillResult {
    let message = format!("refusing to run: cannot write the audit log: {err}");
    let mut r = SkillResult::refused(Status::Error, skill, message);
    if let Some(id) = execution_id {
        r.execution_id = id;
    }
    span.record("execution_id", r.execution_id.as_str());
    r.audit_error = Some(err);
    r
}

/// The notice of a run whose grant lapsed: what was granted, that the content changed, the
/// level it runs at instead, and how to grant it again.
fn lapse_notice(skill: &LoadedSkill, decision: &TrustDecision) -> Option<String> {
    let (grant, now) = decision.lapsed.as_ref()?;
    let (subject, _) = skill.trust_subject();
    Some(format!(
        "trust grant lapsed: `{subject}` was granted {} on {} for content {}, but its content is \
         now {now}; it runs at its default level {} instead. Review the change, then grant it \
         again with `skillbox trust {subject} --level {}`",
        grant.level,
        grant.granted_at,
        short(&grant.digest),
        decision.level,
        grant.level
    ))
}

/// Reports, as `tracing` warnings, what loading the skills met: files that could not be
/// loaded (or only in part), and skills shadowed by one of the same name.
fn report_load(registry: &Registry) {
    for d in registry.problems() {
        tracing::warn!(file_problem = %d, "skill file problem; the other skills load");
    }
    for s in registry.shadowed() {
        tracing::warn!(
            skill = s.name.as_str(),
            winner = ?s.winner,
            hidden = ?s.hidden,
            "skill shadowed by one of the same name"
        );
    }
}

/// The circuits of a runtime whose home directory is `home`: on disk under it, else in
/// memory.
fn circuits_for(home: Option<&Path>) -> Circuits {
    match home {
        Some(h) => Circuits::on_disk(h.join("state").join("circuits")),
        None => Circuits::in_memory(),
    }
}

/// `sha256:` and the first 16 hex digits, for messages.
fn short(digest: &str) -> &str {
    digest.get(..23).unwrap_or(digest)
}

fn rfc3339_seconds(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;
    use skillbox_audit::read_events;

    use super::*;

    /// A directory the run (and `nobody`, in CI) can use.
    fn scratch() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        d
    }

    /// A workspace whose `.q-skills` holds `skills`.
    fn workspace(skills: &[Value]) -> tempfile::TempDir {
        let ws = scratch();
        let dir = ws.path().join(".q-skills");
        std::fs::create_dir(&dir).expect("mkdir");
        for s in skills {
            let name = s["name"].as_str().expect("name");
            std::fs::write(dir.join(format!("{name}.json")), s.to_string()).expect("write");
        }
        ws
    }

    /// An environment with only `pairs`.
    fn vars(pairs: Vec<(&'static str, PathBuf)>) -> impl Fn(&str) -> Option<OsString> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone().into_os_string())
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        rt.expect("tokio").block_on(f)
    }

    /// The events of the log at `path`: type and details.
    fn events(path: &Path) -> Vec<(String, Value)> {
        let lines = read_events(path).expect("read the log");
        lines
            .into_iter()
            .filter_map(|(_, _, e)| e.ok())
            .map(|e| (e.event_type, e.details))
            .collect()
    }

    /// A command skill that fails, with a circuit breaker that opens at the first failure.
    fn brittle() -> Value {
        json!({
            "name": "brittle", "type": "command", "command": "false",
            "circuit_breaker": {"failure_threshold": 1, "recovery_timeout": 600},
        })
    }

    #[test]
    fn circuits_live_under_the_home_wherever_the_audit_log_is() {
        let ws = workspace(&[brittle()]);
        let (home, elsewhere) = (scratch(), scratch());
        let log = elsewhere.path().join("logs").join("a.jsonl");
        let env = vars(vec![
            ("HOME", home.path().to_path_buf()),
            ("SKILLBOX_HOME", home.path().to_path_buf()),
            ("SKILLBOX_AUDIT_LOG", log.clone()),
        ]);
        let rt = Runtime::open_in(ws.path(), None, env).expect("runtime");
        assert_eq!(rt.audit().map(|l| l.config().path.clone()), Some(log));
        let state = home.path().join("state").join("circuits");
        assert_eq!(rt.circuits.dir(), Some(state.as_path()));

        let r = block_on(rt.run("brittle", &json!({}), None));
        assert_eq!(r.status, Status::Failed, "{r:?}");
        assert!(state.join("brittle.json").is_file(), "the state is under the home");
        assert!(!elsewhere.path().join("state").exists(), "nothing beside the audit log");
        let r = block_on(rt.run("brittle", &json!({}), None));
        assert!(r.message.as_deref().is_some_and(|m| m.starts_with("circuit open")), "{r:?}");
    }

    #[test]
    fn circuits_are_in_memory_without_a_home_and_on_disk_with_one() {
        let ws = workspace(&[brittle()]);
        let rt = Runtime::with_registry(Registry::default(), ws.path()).expect("runtime");
        assert_eq!(rt.circuits.dir(), None);
        let home = scratch();
        let rt = rt.with_home(home.path());
        let resolved = skillbox_sandbox::resolve(home.path());
        assert_eq!(rt.circuits.dir(), Some(resolved.join("state").join("circuits").as_path()));
        let reloaded = Runtime::open_in(
            ws.path(),
            Some(LogConfig::new(home.path().join("log.jsonl"))),
            vars(vec![("SKILLBOX_HOME", home.path().to_path_buf())]),
        )
        .expect("runtime");
        let again = reloaded.reloaded().expect("reloaded");
        assert!(Arc::ptr_eq(&reloaded.circuits, &again.circuits), "shared with a reload");
    }

    #[test]
    fn a_refusal_before_the_context_is_recorded_with_one_event() {
        let ws = workspace(&[json!({"name": "s", "type": "command", "command": "true"})]);
        let (home, logs) = (scratch(), scratch());
        let path = logs.path().join("events.jsonl");
        let log = Arc::new(AuditLog::open(LogConfig::new(path.clone())).expect("log"));
        let registry = Registry::load_paths(&[ws.path().join(".q-skills")]);
        let rt = Runtime::with_registry(registry, ws.path()).expect("runtime");
        let rt = rt.with_audit(log).with_home(home.path());
        // A trust store that cannot be read: the level cannot be decided.
        std::fs::write(home.path().join(crate::trust::STORE_FILE), "not json").expect("write");

        let r = block_on(rt.run("s", &json!({"x": 1}), None));
        assert_eq!(r.status, Status::Error, "{r:?}");
        let message = r.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("refusing to run: ") && message.contains("trust.json"),
            "{r:?}"
        );
        assert_eq!(r.audit_error, None);
        assert_eq!(r.attempts, 0, "nothing ran");
        let events = events(&path);
        assert_eq!(events.len(), 1, "{events:?}");
        let (kind, details) = &events[0];
        assert_eq!(kind, "SkillExecutionFailed");
        assert_eq!(details["message"], json!(message));
        assert_eq!(details["params_digest"], json!(crate::audit::params_digest(&json!({"x": 1}))));
    }

    #[test]
    fn consent_is_asked_only_for_a_denial_a_level_lifts_and_pins_the_content_shown() {
        let out = scratch();
        let target = out.path().to_str().expect("utf-8").to_string();
        let writer = json!({"name": "w", "type": "command", "command": "true",
            "security": {"permissions": {"file_write": [target]}}});
        let ws = workspace(&[writer, json!({"name": "ok", "type": "command", "command": "true"})]);
        let (home, logs) = (scratch(), scratch());
        let path = logs.path().join("events.jsonl");
        let log = Arc::new(AuditLog::open(LogConfig::new(path.clone())).expect("log"));
        let registry = Registry::load_paths(&[ws.path().join(".q-skills")]);
        let rt = Runtime::with_registry(registry, ws.path()).expect("runtime");
        let rt = rt.with_audit(log).with_home(home.path());

        let ran = block_on(rt.run("ok", &json!({}), None));
        assert!(rt.consent_question(&ran).is_none(), "nothing to allow: {ran:?}");
        let denied = block_on(rt.run("w", &json!({}), None));
        assert_eq!(denied.status, Status::Denied, "{denied:?}");
        let q = rt.consent_question(&denied).expect("a level lifts this denial");
        assert_eq!((q.level_now, q.level), (TrustLevel::UserVerified, TrustLevel::SystemTrusted));
        assert!(q.digest.starts_with(crate::seal::DIGEST_PREFIX), "{}", q.digest);
        assert!(
            q.message().contains(&q.digest) && q.message().contains(&target),
            "{}",
            q.message()
        );

        let once = RunOptions {
            consent: Some(crate::consent::Consent::from(&q)),
            ..RunOptions::default()
        };
        let r = block_on(rt.run_with("w", &json!({}), &once));
        assert_eq!(r.status, Status::Success, "{r:?}");
        assert_eq!(r.trust_origin, Some(crate::result::TrustOrigin::Consent));

        // The content changes after the question: neither answer runs or grants anything.
        let file = ws.path().join(".q-skills/w.json");
        let mut changed: Value =
            serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        changed["description"] = json!("changed");
        std::fs::write(&file, changed.to_string()).expect("write");
        let r = block_on(rt.run_with("w", &json!({}), &once));
        assert_eq!(r.status, Status::Error, "{r:?}");
        assert!(r.message.as_deref().is_some_and(|m| m.contains("changed since")), "{r:?}");
        assert!(matches!(rt.grant_consented(&q), Err(GrantError::Changed { .. })));
        assert_eq!(rt.trust_store().expect("store").grants().count(), 0);

        // Asked again about the content now: `always` pins it.
        let q = rt.consent_question(&block_on(rt.run("w", &json!({}), None))).expect("asked");
        let (_, grant) = rt.grant_consented(&q).expect("granted");
        assert_eq!((grant.level, grant.digest.as_str()), (q.level, q.digest.as_str()));
        let r = block_on(rt.run("w", &json!({}), None));
        assert_eq!(r.trust_origin, Some(crate::result::TrustOrigin::Grant), "{r:?}");
        let kinds: Vec<String> = events(&path).into_iter().map(|(k, _)| k).collect();
        assert!(kinds.contains(&"TrustGranted".to_string()), "{kinds:?}");
    }

    #[test]
    fn refuse_and_record_writes_only_where_there_is_a_log() {
        let ws = workspace(&[]);
        let rt = Runtime::with_registry(Registry::default(), ws.path()).expect("runtime");
        let event = crate::audit::refused_early("s", "no", &json!({}));
        let r = SkillResult::refused(Status::Error, "s", "no".into());
        let id = r.execution_id.clone();
        let r = rt.refuse_and_record(r, std::slice::from_ref(&event));
        assert_eq!((r.execution_id.as_str(), r.audit_error.as_deref()), (id.as_str(), None));

        let logs = scratch();
        let path = logs.path().join("events.jsonl");
        let log = Arc::new(AuditLog::open(LogConfig::new(path.clone())).expect("log"));
        let rt = rt.with_audit(log);
        let r =
            rt.refuse_and_record(SkillResult::refused(Status::Error, "s", "no".into()), &[event]);
        assert_eq!(r.audit_error, None);
        assert_eq!(events(&path).len(), 1);
    }
}
