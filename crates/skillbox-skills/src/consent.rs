//! Consent asked of the person when a run is denied for want of a trust level.
//!
//! `skillbox trust` is how a person raises a skill's level at a terminal. An agent's
//! interface can ask the same question at the moment it matters: the call was denied, the
//! skill would run at a higher level, here is what that level allows it and the digest of
//! the content it would run; allow once, always, or not. This module is the question and
//! the answer, for any embedder (the MCP server asks it through elicitation); it knows
//! nothing of how they travel.
//!
//! Both answers that allow are pinned to the content shown: the run executes the sealed
//! copy of exactly the bytes whose digest the person saw ([`crate::seal`]), and refuses if
//! the content changed since the question. `always` also writes the grant `skillbox trust`
//! writes, to that same digest. Question and answer are recorded in the audit log
//! (`ConsentRequested`, `ConsentAnswered`), and an `always` as `TrustGranted`.

use std::path::PathBuf;

use serde::Serialize;

use crate::registry::SourceKind;
use crate::security::{Denial, EffectiveGrant, TrustLevel};

/// What a person is asked when a run was denied for want of a trust level: made by
/// [`crate::Runtime::consent_question`] from the denied result.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentQuestion {
    /// The skill called.
    pub skill: String,
    /// The name a grant is kept under (the skill, or the Agent Skill it belongs to).
    pub subject: String,
    /// The skill's file, or its Agent Skill's directory.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::one")]
    pub path: PathBuf,
    /// Where the skill comes from.
    pub source: SourceKind,
    /// The level it was denied at.
    pub level_now: TrustLevel,
    /// The level that grants what it declares: the one asked for.
    pub level: TrustLevel,
    /// The denial, as the run reported it.
    pub denial: Denial,
    /// What the skill may do at [`Self::level`]: its declaration intersected with the
    /// level, the grant the kernel would enforce.
    pub grant: EffectiveGrant,
    /// The digest of the content that would run (`sha256v2:HEX`, see [`crate::seal`]).
    pub digest: String,
}

impl ConsentQuestion {
    /// The question in words, for the person: the skill, its source and file, what was
    /// denied, the level asked for and what that level lets it do, and the content's digest.
    pub fn message(&self) -> String {
        let g = &self.grant;
        let paths = |v: &[PathBuf]| {
            if v.is_empty() {
                "nothing".to_string()
            } else {
                v.iter()
                    .map(|p| skillbox_audit::text::path(p).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let network = match (&g.allowed_domains, g.network.as_str()) {
            (_, "none") => "no network".to_string(),
            (Some(hosts), level) => format!(
                "network ({level}) to {} only",
                hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
            (None, level) => format!("network ({level})"),
        };
        format!(
            "skillbox denied the skill `{skill}` ({source} skill, {path}): it declares {what}, \
             which its trust level {now} does not grant. Allow it to run at trust level {level}? \
             At {level} it may write {writes}; read {reads}; {network}; start processes: {spawn}; \
             for at most {secs} s and {mem} MiB. Content digest {digest}. \
             \"once\" runs this call only; \"always\" keeps a trust grant pinned to this content \
             (as `skillbox trust {subject} --level {level}` would; revoke it with `skillbox \
             trust --revoke {subject}`); \"deny\" leaves it denied.",
            skill = self.skill,
            source = source_name(self.source),
            path = skillbox_audit::text::path(&self.path),
            what = self.denial_what(),
            now = self.level_now,
            level = self.level,
            writes = paths(&g.file_write),
            reads = paths(&g.file_read),
            spawn = g.process_spawn.as_str(),
            secs = g.limits.max_execution_time.as_secs(),
            mem = g.limits.max_memory_mb,
            digest = self.digest,
            subject = self.subject,
        )
    }

    /// What the denied skill asked for, in words.
    fn denial_what(&self) -> String {
        use crate::security::Permission;
        let d = &self.denial;
        match d.permission {
            Permission::FileRead => format!("read access to {}", d.asked),
            Permission::FileWrite => format!("write access to {}", d.asked),
            Permission::Network => format!("network access ({})", d.asked),
            Permission::ProcessSpawn => format!("process creation ({})", d.asked),
        }
    }
}

/// The source's name, as `skillbox list` shows it.
fn source_name(source: SourceKind) -> &'static str {
    match source {
        SourceKind::Builtin => "built-in",
        SourceKind::Global => "global",
        SourceKind::Workspace => "workspace",
        SourceKind::AgentDir => "agents",
    }
}

/// The person's answer to a [`ConsentQuestion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAnswer {
    /// Run this call at the level asked for; nothing is kept.
    Once,
    /// Keep a trust grant for the content shown, and run this call.
    Always,
    /// Chose to leave it denied.
    Deny,
    /// The interface reported that the person declined to answer.
    Declined,
    /// The interface reported that the person dismissed the question.
    Cancelled,
    /// No usable answer: none in time, the request failed, or the answer was not one of
    /// the choices.
    Unanswered,
}

impl ConsentAnswer {
    /// The spelling used in the audit log and the form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Always => "always",
            Self::Deny => "deny",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
            Self::Unanswered => "unanswered",
        }
    }

    /// The choice a form's value names: `once`, `always` or `deny`; anything else is none.
    pub fn from_choice(choice: &str) -> Self {
        match choice {
            "once" => Self::Once,
            "always" => Self::Always,
            "deny" => Self::Deny,
            _ => Self::Unanswered,
        }
    }

    /// Whether the call runs.
    pub fn allows(self) -> bool {
        matches!(self, Self::Once | Self::Always)
    }
}

/// A run the person allowed through a [`ConsentQuestion`]: at `level`, and only if the
/// skill's content still has `digest` (see [`crate::RunOptions::consent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The level the person allowed.
    pub level: TrustLevel,
    /// The digest of the content they were shown.
    pub digest: String,
}

impl From<&ConsentQuestion> for Consent {
    fn from(q: &ConsentQuestion) -> Self {
        Self { level: q.level, digest: q.digest.clone() }
    }
}
