use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kinds of event. The names of the old security log are kept, so existing readers work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A run was accepted and is about to start.
    SkillExecutionStarted,
    /// A run ended with success.
    SkillExecutionCompleted,
    /// A run ended with a failure of the program or of skillbox.
    SkillExecutionFailed,
    /// A run was refused: it asks for more than its trust level grants.
    PermissionDenied,
    /// A run was refused: its input (parameters, skill name) is invalid.
    InputValidationFailed,
    /// A run was killed at its time limit.
    SkillExecutionTimedOut,
    /// A run was stopped by a resource limit.
    ResourceLimitExceeded,
    /// A person granted a skill a trust level, pinned to its content.
    TrustGranted,
    /// A person removed a grant.
    TrustRevoked,
    /// A run was denied for want of a trust level, and the person was asked, through the
    /// agent's interface (MCP elicitation), whether to allow it: what was shown (the level,
    /// what it allows, the content's digest).
    ConsentRequested,
    /// The person's answer to a [`EventType::ConsentRequested`] question: `once`, `always`,
    /// `deny`, or no answer (`declined`, `cancelled`, `unanswered`).
    ConsentAnswered,
    /// A grant no longer applied because the skill's content changed since; the skill ran
    /// at its default level.
    TrustGrantLapsed,
    /// A run was abandoned by its caller (an MCP cancellation, a dropped future); its
    /// processes were killed.
    SkillExecutionCancelled,
    /// The kernel refused an action of a run (detected from its errors or its death).
    SandboxViolation,
    /// A run was started with weaker isolation than its trust level promises, by an
    /// explicit opt-in.
    IsolationWeakened,
    /// Another attempt of a run after a retryable failure.
    RetryAttempt,
    /// A fallback command ran after the skill's attempts failed.
    FallbackExecuted,
    /// A connection a run asked skillbox's egress proxy for: allowed (with the address
    /// dialed and the bytes each way) or refused (with the reason).
    NetworkConnection,
    /// A `code_session` skill's interpreter started, under the run's grant; `session_id`
    /// names it in the events that follow.
    SessionStarted,
    /// One call of code in a session: a digest of the code (never the code), how it ended.
    SessionCall,
    /// A session ended, with the reason (`closed`, `idle`, `lifetime`, `killed`,
    /// `owner-gone`, `exited`, a limit).
    SessionEnded,
    /// Old vocabulary, kept for readers: a blocked security violation.
    SecurityViolationBlocked,
    /// Old vocabulary: suspicious activity.
    SuspiciousActivity,
    /// Old vocabulary: output failed validation.
    OutputValidationFailed,
    /// Old vocabulary: a file outside the grant.
    UnauthorizedFileAccess,
    /// Old vocabulary: network outside the grant.
    UnauthorizedNetworkAccess,
    /// Old vocabulary: an attempt to gain privileges.
    PrivilegeEscalationAttempt,
}

impl EventType {
    /// Every variant, in declaration order; keep it complete when adding one (a test
    /// checks each listed name against serde's).
    pub const ALL: [Self; 27] = [
        Self::SkillExecutionStarted,
        Self::SkillExecutionCompleted,
        Self::SkillExecutionFailed,
        Self::PermissionDenied,
        Self::InputValidationFailed,
        Self::SkillExecutionTimedOut,
        Self::ResourceLimitExceeded,
        Self::TrustGranted,
        Self::TrustRevoked,
        Self::ConsentRequested,
        Self::ConsentAnswered,
        Self::TrustGrantLapsed,
        Self::SkillExecutionCancelled,
        Self::SandboxViolation,
        Self::IsolationWeakened,
        Self::RetryAttempt,
        Self::FallbackExecuted,
        Self::NetworkConnection,
        Self::SessionStarted,
        Self::SessionCall,
        Self::SessionEnded,
        Self::SecurityViolationBlocked,
        Self::SuspiciousActivity,
        Self::OutputValidationFailed,
        Self::UnauthorizedFileAccess,
        Self::UnauthorizedNetworkAccess,
        Self::PrivilegeEscalationAttempt,
    ];

    /// The name as the log writes it (serde's name for the variant), without serde's
    /// machinery: it is written on every append.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SkillExecutionStarted => "SkillExecutionStarted",
            Self::SkillExecutionCompleted => "SkillExecutionCompleted",
            Self::SkillExecutionFailed => "SkillExecutionFailed",
            Self::PermissionDenied => "PermissionDenied",
            Self::InputValidationFailed => "InputValidationFailed",
            Self::SkillExecutionTimedOut => "SkillExecutionTimedOut",
            Self::ResourceLimitExceeded => "ResourceLimitExceeded",
            Self::TrustGranted => "TrustGranted",
            Self::TrustRevoked => "TrustRevoked",
            Self::ConsentRequested => "ConsentRequested",
            Self::ConsentAnswered => "ConsentAnswered",
            Self::TrustGrantLapsed => "TrustGrantLapsed",
            Self::SkillExecutionCancelled => "SkillExecutionCancelled",
            Self::SandboxViolation => "SandboxViolation",
            Self::IsolationWeakened => "IsolationWeakened",
            Self::RetryAttempt => "RetryAttempt",
            Self::FallbackExecuted => "FallbackExecuted",
            Self::NetworkConnection => "NetworkConnection",
            Self::SessionStarted => "SessionStarted",
            Self::SessionCall => "SessionCall",
            Self::SessionEnded => "SessionEnded",
            Self::SecurityViolationBlocked => "SecurityViolationBlocked",
            Self::SuspiciousActivity => "SuspiciousActivity",
            Self::OutputValidationFailed => "OutputValidationFailed",
            Self::UnauthorizedFileAccess => "UnauthorizedFileAccess",
            Self::UnauthorizedNetworkAccess => "UnauthorizedNetworkAccess",
            Self::PrivilegeEscalationAttempt => "PrivilegeEscalationAttempt",
        }
    }
}

/// How serious an event is. `High` and `Critical` are also reported on stderr when the log
/// is configured to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RiskLevel {
    /// Routine.
    Low,
    /// A refusal or a limit: worth a look.
    Medium,
    /// Isolation weakened or a confinement violation.
    High,
    /// Reserved for events that need immediate attention.
    Critical,
}

impl RiskLevel {
    /// Every variant, in declaration order; keep it complete when adding one (a test
    /// checks each listed name against serde's).
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    /// The name as the log writes it (serde's name for the variant), without serde's
    /// machinery: it is written on every append.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }
}

/// What skillbox did about the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionTaken {
    /// Let it happen.
    Allowed,
    /// Refused it.
    Blocked,
    /// Changed it (redacted, truncated) and let it through.
    Sanitized,
    /// Killed the run.
    Terminated,
    /// Kept the skill from running again.
    Quarantined,
}

impl ActionTaken {
    /// Every variant, in declaration order; keep it complete when adding one (a test
    /// checks each listed name against serde's).
    pub const ALL: [Self; 5] =
        [Self::Allowed, Self::Blocked, Self::Sanitized, Self::Terminated, Self::Quarantined];

    /// The name as the log writes it (serde's name for the variant), without serde's
    /// machinery: it is written on every append.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "Allowed",
            Self::Blocked => "Blocked",
            Self::Sanitized => "Sanitized",
            Self::Terminated => "Terminated",
            Self::Quarantined => "Quarantined",
        }
    }
}

/// What a caller records; the log adds sequence, time, ids and hashes.
#[derive(Debug, Clone, Serialize)]
pub struct EventDraft {
    /// Kind.
    pub event_type: EventType,
    /// The skill concerned (may be empty when the name itself was invalid).
    pub skill_name: String,
    /// Its trust level for this run, when one was chosen.
    pub skill_trust_level: Option<String>,
    /// Seriousness.
    pub risk_level: RiskLevel,
    /// What was done.
    pub action_taken: ActionTaken,
    /// The run this belongs to.
    pub execution_id: Option<String>,
    /// Attempt number within the run (1 for the first).
    pub attempt: Option<u32>,
    /// Everything else: permissions, limits, usage, parameter digest, messages. Secrets are
    /// redacted before writing.
    pub details: Value,
}

/// Who caused the event, as far as the log can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserContext {
    /// Real user id of the writing process.
    pub uid: u32,
    /// Process id of the writer.
    pub pid: u32,
}

/// An event as written: what [`EventDraft`] holds plus the fields the log adds, in the order
/// they appear on the line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the chain, from 1, never reused across rotations.
    pub seq: u64,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// RFC 3339 time, UTC, microseconds.
    pub timestamp: String,
    /// Random id of this event.
    pub event_id: String,
    /// Kind (a string when read, so that unknown kinds from newer writers still parse).
    pub event_type: String,
    /// The skill concerned.
    pub skill_name: String,
    /// Its trust level.
    pub skill_trust_level: Option<String>,
    /// The writing process.
    pub user_context: UserContext,
    /// Seriousness.
    pub risk_level: String,
    /// What was done.
    pub action_taken: String,
    /// The run.
    pub execution_id: Option<String>,
    /// Attempt within the run.
    pub attempt: Option<u32>,
    /// Everything else.
    pub details: Value,
    /// This event's hash (absent from the hashed part of the line).
    #[serde(default)]
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` is what serde writes and reads, for every variant listed in `ALL`, each
    /// listed once. (The compiler makes `as_str` cover every variant; a variant added
    /// without its place in `ALL` goes unchecked here, hence the note on `ALL`.)
    #[test]
    fn names_are_serdes() {
        fn check<T>(all: &[T], name: fn(T) -> &'static str)
        where
            T: Copy + serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let mut seen = std::collections::HashSet::new();
            for &v in all {
                let json = serde_json::to_string(&v).unwrap();
                assert_eq!(json, format!("\"{}\"", name(v)));
                assert_eq!(serde_json::from_str::<T>(&json).unwrap(), v);
                assert!(seen.insert(name(v)), "{v:?} listed twice");
            }
        }
        check(&EventType::ALL, EventType::as_str);
        check(&RiskLevel::ALL, RiskLevel::as_str);
        check(&ActionTaken::ALL, ActionTaken::as_str);
    }
}
