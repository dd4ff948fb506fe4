//! The structured result of a skill run, the same object for the library, `run --json` and
//! MCP.

use std::path::PathBuf;

use serde::Serialize;

use crate::params::ParamProblem;
use crate::security::{Denial, EffectiveGrant, TrustLevel};

/// How a run ended. Every run ends in exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The skill ran and exited 0, or its prompt rendered.
    Success,
    /// The skill ran and failed (non-zero exit, or killed by a signal).
    Failed,
    /// Refused before running: it asks for more than its trust level grants.
    Denied,
    /// Refused before running: bad parameters, or an unknown or invalid skill name.
    Invalid,
    /// Killed at its time limit.
    Timeout,
    /// Stopped by a resource limit.
    LimitExceeded,
    /// skillbox could not run it (program missing, unsupported type, OS error).
    Error,
}

impl Status {
    /// The spelling used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Denied => "denied",
            Self::Invalid => "invalid",
            Self::Timeout => "timeout",
            Self::LimitExceeded => "limit_exceeded",
            Self::Error => "error",
        }
    }
}

/// One line of the enforcement report, as it appears in results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnforcementEntry {
    /// What the line is about (`filesystem`, `network`, ... in JSON).
    #[serde(serialize_with = "as_str_of_guarantee")]
    pub mechanism: skillbox_sandbox::Guarantee,
    /// Whether the kernel (or the supervisor) enforced it for this run.
    pub enforced: bool,
    /// `enforced`, `unrestricted` (the grant allows everything here) or `not-enforced` in
    /// JSON.
    #[serde(serialize_with = "as_str_of_state")]
    pub state: skillbox_sandbox::MechanismState,
    /// The mechanisms that kept it on this host, `+`-joined, strongest first
    /// (`landlock-abi-6`, `pid-namespace`, `supervisor+seccomp`), or `none`.
    pub via: String,
    /// How, or why not.
    pub detail: String,
}

fn as_str_of_guarantee<S: serde::Serializer>(
    g: &skillbox_sandbox::Guarantee,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(g.as_str())
}

fn as_str_of_state<S: serde::Serializer>(
    m: &skillbox_sandbox::MechanismState,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// Where the trust level of a run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TrustOrigin {
    /// `--trust LEVEL` (or its equivalent) for this run.
    Flag,
    /// A grant a person made with `skillbox trust`, still matching the content.
    Grant,
    /// The person's answer, through the agent's interface, to a question asked when this
    /// call was denied (MCP elicitation; see [`crate::ConsentQuestion`]): for this call,
    /// pinned to the content they were shown.
    Consent,
    /// The policy file's default for the skill's source.
    Policy,
    /// The default of the skill's source.
    Default,
}

impl TrustOrigin {
    /// The spelling used in output and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flag => "flag",
            Self::Grant => "grant",
            Self::Consent => "consent",
            Self::Policy => "policy",
            Self::Default => "default",
        }
    }
}

/// The limit that stopped a run, as results report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LimitKind {
    /// Memory of the run.
    Memory,
    /// CPU time.
    Cpu,
    /// The largest file.
    FileSize,
    /// Total bytes written (also when they could not be counted).
    DiskWrite,
    /// Processes at once, where the watchdog counted them (no pids cgroup).
    Processes,
}

impl LimitKind {
    /// The spelling used in output and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Cpu => "cpu",
            Self::FileSize => "file-size",
            Self::DiskWrite => "disk-write",
            Self::Processes => "processes",
        }
    }
}

/// What a run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Wall-clock milliseconds of the process.
    pub wall_ms: u64,
    /// User plus system CPU milliseconds of the process and the descendants it waited for.
    pub cpu_ms: u64,
    /// Peak memory, KiB: of the whole run where a memory cgroup measured it, else of the
    /// largest process the run's first process waited for.
    pub max_rss_kib: u64,
    /// Most processes of the run alive at once, where a pids cgroup counted them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes_peak: Option<u64>,
    /// Bytes the run wrote to disk, from the kernel's `write_bytes` counters: bytes dirtied
    /// in files of block-backed filesystems (whole pages) plus direct I/O, by every process
    /// of the run; not tmpfs, not stdout or stderr, not pipes or sockets. What
    /// `max_disk_io_mb` limits in total.
    pub bytes_written: u64,
}

/// Entries the run left under a protected name (`.git`, `.vscode`, a shell start-up file,
/// ...) in a writable tree, which skillbox took away after it: a tool or agent would act on
/// them later with the user's rights (threat model 7). Over every attempt and fallback of
/// the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlantedReport {
    /// How many were found.
    pub count: u64,
    /// Each one found (at most `skillbox_sandbox::MAX_PLANTED_LISTED` per attempt), in the
    /// order found.
    pub entries: Vec<PlantedItem>,
    /// Set when the sweep could not look everywhere or could not take an entry away, with
    /// why: a planted entry may remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// One line for people.
    pub message: String,
}

/// One entry a run planted, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlantedItem {
    /// Where the run left it.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::one")]
    pub path: PathBuf,
    /// `quarantined`, `removed`, or `left` (it could not be taken away).
    pub action: &'static str,
    /// Where it was moved, when quarantined.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "skillbox_audit::text::serde_path::maybe"
    )]
    pub to: Option<PathBuf>,
    /// Why it could not be taken away, when left.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PlantedReport {
    /// The report of what the sandbox's sweep found after one run of `skill`; `None` when
    /// nothing was planted and the sweep was complete.
    pub(crate) fn of(p: &skillbox_sandbox::Planted, skill: &str) -> Option<Self> {
        use skillbox_sandbox::PlantedFate;
        if p.is_clean() {
            return None;
        }
        let entries = p
            .entries
            .iter()
            .map(|e| {
                let (action, to, error) = match &e.fate {
                    PlantedFate::Quarantined(to) => ("quarantined", Some(to.clone()), None),
                    PlantedFate::Removed => ("removed", None, None),
                    PlantedFate::Left(why) => ("left", None, Some(why.clone())),
                    _ => ("left", None, Some("unknown".to_string())),
                };
                PlantedItem { path: e.path.clone(), action, to, error }
            })
            .collect();
        let mut r = Self {
            count: p.count,
            entries,
            incomplete: p.incomplete.clone(),
            message: String::new(),
        };
        r.describe(skill);
        Some(r)
    }

    /// Adds what an earlier attempt of the same run found (listed first).
    pub(crate) fn after(&mut self, earlier: &PlantedReport, skill: &str) {
        self.count += earlier.count;
        let mut entries = earlier.entries.clone();
        entries.append(&mut self.entries);
        self.entries = entries;
        if self.incomplete.is_none() {
            self.incomplete = earlier.incomplete.clone();
        }
        self.describe(skill);
    }

    /// Sets the message from the entries.
    fn describe(&mut self, skill: &str) {
        let shown: Vec<String> = self
            .entries
            .iter()
            .take(5)
            .map(|e| skillbox_audit::text::path(&e.path).into_owned())
            .collect();
        let more = match self.count.saturating_sub(shown.len() as u64) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let all = |a: &str| self.entries.iter().all(|e| e.action == a);
        let them = if self.count == 1 { "it" } else { "them" };
        let fate = if all("quarantined") {
            let dir = self.entries.first().and_then(|e| e.to.as_ref()).and_then(|t| t.parent());
            match dir {
                Some(d) => format!("moved {them} to {}", skillbox_audit::text::path(d)),
                None => format!("moved {them} to the quarantine"),
            }
        } else if all("removed") {
            format!("removed {them}")
        } else {
            format!("took {them} away where it could (see `planted` in the JSON result)")
        };
        self.message = if self.count == 0 {
            String::new()
        } else {
            format!(
                "skill `{skill}` planted {} protected entr{} that a tool could run code from                  later ({}{more}); skillbox {fate}",
                self.count,
                if self.count == 1 { "y" } else { "ies" },
                shown.join(", ")
            )
        };
        if let Some(why) = &self.incomplete {
            let sep = if self.message.is_empty() { "" } else { "; " };
            self.message = format!(
                "{}{sep}the check for planted protected entries after skill `{skill}` was                  incomplete, so one may remain in a writable tree: {why}",
                self.message
            );
        }
    }
}

/// Everything known about one run.
#[derive(Debug, Clone, Serialize)]
pub struct SkillResult {
    /// How it ended.
    pub status: Status,
    /// The skill's name as resolved (an alias resolves to the skill's own name).
    pub skill: String,
    /// Unique id of this run, for matching with logs.
    pub execution_id: String,
    /// The trust level it ran at (absent when it failed before a level was chosen).
    pub trust_level: Option<TrustLevel>,
    /// Why the run had that level: `flag` (chosen for this run), `grant` (a person's
    /// pinned grant), `policy` (the policy file's default for the source) or `default`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_origin: Option<TrustOrigin>,
    /// Something a person should know about this run's trust, such as a grant that lapsed
    /// because the skill changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    /// Exit code of the program, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that killed it, when one did.
    pub signal: Option<i32>,
    /// Captured standard output; for prompt skills, the rendered prompt.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
    /// Whether the middle of stdout was dropped to stay within the output budget.
    pub stdout_truncated: bool,
    /// Whether the middle of stderr was dropped.
    pub stderr_truncated: bool,
    /// Wall-clock milliseconds, from the start of validation to the end of the run.
    pub duration_ms: u64,
    /// One line for people when the status is not `success`.
    pub message: Option<String>,
    /// Parameter problems, when the status is `invalid`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ParamProblem>,
    /// The refusal, when the status is `denied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<Denial>,
    /// What the run was granted, once the declaration was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant: Option<EffectiveGrant>,
    /// When a run failed and its errors look like the kernel refused something: which
    /// confinement rule was most likely involved, and what the run was granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confinement: Option<String>,
    /// Attempts of the skill's own command (retries included), 0 when nothing ran.
    pub attempts: u32,
    /// The fallback command line that produced this result, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Every connection the run asked skillbox's egress proxy for, allowed or refused, in
    /// order (attempts and fallbacks included).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub network: Vec<skillbox_egress::Connection>,
    /// Entries the run planted under a protected name, which skillbox took away after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planted: Option<PlantedReport>,
    /// The limit that stopped the run (`memory`, `cpu`, `file-size`, `disk-write`), with status
    /// `limit_exceeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<LimitKind>,
    /// What the run used, when a process ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Set when an audit event of this run could not be written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_error: Option<String>,
    /// The guarantees this host has no mechanism for, when the run was refused for them
    /// (status `error`): a caller that accepts weaker isolation can opt in
    /// ([`crate::RunOptions::allow_weaker_isolation`]) and the run is recorded as weakened.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
    /// What was enforced during the run, mechanism by mechanism.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enforcement: Vec<EnforcementEntry>,
    /// Set when a test setting lowered what skillbox uses on this host
    /// (`SKILLBOX_TEST_LANDLOCK_ABI`): the result is that of a simulated host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated_host: Option<String>,
    /// For a `code_session` skill: the session the call ran in, the value of its last
    /// expression, its exception, and whether the session ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<crate::exec::SessionReport>,
}

impl SkillResult {
    /// A result with nothing run yet.
    pub(crate) fn new(status: Status, skill: &str, execution_id: String) -> Self {
        Self {
            status,
            skill: skill.to_string(),
            execution_id,
            trust_level: None,
            trust_origin: None,
            notice: None,
            exit_code: None,
            signal: None,
            stdout: String::new(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration_ms: 0,
            message: None,
            problems: Vec::new(),
            denial: None,
            grant: None,
            confinement: None,
            attempts: 0,
            fallback: None,
            network: Vec::new(),
            planted: None,
            limit: None,
            usage: None,
            audit_error: None,
            unsupported: Vec::new(),
            enforcement: Vec::new(),
            simulated_host: skillbox_sandbox::simulated_host(),
            session: None,
        }
    }

    /// A run that was refused or failed before anything started.
    pub(crate) fn refused(status: Status, skill: &str, message: String) -> Self {
        let mut r = Self::new(status, skill, new_execution_id());
        r.message = Some(message);
        r
    }

    /// What the run's grant asked for that was not enforced.
    pub fn not_enforced(&self) -> Vec<&'static str> {
        self.enforcement
            .iter()
            .filter(|e| e.state == skillbox_sandbox::MechanismState::NotEnforced)
            .map(|e| e.mechanism.as_str())
            .collect()
    }

    /// True for `success`.
    pub fn is_success(&self) -> bool {
        self.status == Status::Success
    }
}

/// A random 128-bit id, formatted like a UUID v4.
pub fn new_execution_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No entropy source: fall back to time and pid. Ids must only be unique, not secret.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b[..16].copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    }
    // The version (4) and variant bits are set by the builder.
    uuid::Builder::from_random_bytes(b).into_uuid().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id as the per-byte `format!` wrote it before.
    #[test]
    fn execution_ids_are_version_4_uuids() {
        let id = new_execution_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "version nibble");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "variant bits: {id}");
    }
}
