//! Trust levels, what each grants, and the check of a skill's declaration against a grant.
//!
//! The vocabulary is the plan's: [`TrustLevel`], [`PermissionSet`], [`ResourceLimits`] and
//! [`SecurityContext::for_trust_level`], with the defaults of the old trust table.
//!
//! [`SecurityContext::validate_execution`] is a *decision*, made before anything runs: a
//! skill that asks for more than its context grants is refused. It is not a confinement.
//! What the kernel enforces during the run is reported separately (see
//! `skillbox_sandbox::Enforcement`), and the two are never confused in output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use crate::format::{NetworkLevel, ProcessSpawn, SkillDef};

/// How far a skill is trusted. Ordered: `Untrusted < UserVerified < SystemTrusted`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TrustLevel {
    /// External content: a download, a cloned repository's skill run with no grant.
    Untrusted,
    /// Created or accepted by the user. The default for workspace and global skills.
    UserVerified,
    /// Shipped with skillbox (built-ins), or explicitly raised by the user.
    SystemTrusted,
}

impl TrustLevel {
    /// All levels, lowest first.
    pub const ALL: [TrustLevel; 3] = [Self::Untrusted, Self::UserVerified, Self::SystemTrusted];

    /// The spelling used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::UserVerified => "user-verified",
            Self::SystemTrusted => "system-trusted",
        }
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string is not a trust level.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown trust level {0:?}; use untrusted, user-verified or system-trusted")]
pub struct ParseTrustLevelError(String);

impl FromStr for TrustLevel {
    type Err = ParseTrustLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "untrusted" => Ok(Self::Untrusted),
            "user-verified" | "userverified" => Ok(Self::UserVerified),
            "system-trusted" | "systemtrusted" => Ok(Self::SystemTrusted),
            _ => Err(ParseTrustLevelError(s.to_string())),
        }
    }
}

/// A place a trust level lets a skill read or write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileScope {
    /// The workspace the skill runs in, and everything under it.
    Workspace,
    /// A temporary directory private to the run, removed afterwards (also `HOME`).
    PrivateTemp,
    /// Every path the user can access.
    Everything,
}

/// The file, network and process rights a context grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionSet {
    /// Where reads are allowed (system directories a program needs are readable in any case).
    pub file_read: Vec<FileScope>,
    /// Where writes are allowed.
    pub file_write: Vec<FileScope>,
    /// Network granted.
    pub network_access: NetworkLevel,
    /// Process creation granted.
    pub process_spawn: ProcessSpawn,
}

/// Limits a context imposes on a run. A skill may ask for less, never for more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceLimits {
    /// Wall-clock limit.
    #[serde(serialize_with = "secs")]
    pub max_execution_time: Duration,
    /// Memory of the process tree, MiB.
    pub max_memory_mb: u64,
    /// Share of one CPU, percent.
    pub max_cpu_percent: u32,
    /// Bytes written, MiB.
    pub max_disk_io_mb: u64,
    /// Processes at once.
    pub max_processes: u64,
    /// Open file descriptors.
    pub max_open_files: u64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Whether the run sees the host's environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvPolicy {
    /// Only a small safe set, plus what the skill declares.
    Clean,
    /// The host's environment, plus what the skill declares.
    Inherit,
}

/// Everything a run is allowed: the plan's `SecurityContext`.
///
/// There is no public way to execute a skill without one: every entry point that runs a
/// skill takes a `&SecurityContext`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecurityContext {
    /// The level the rights come from.
    pub trust_level: TrustLevel,
    /// Files, network, processes.
    pub permissions: PermissionSet,
    /// Time, memory, CPU, disk, processes, files.
    pub resource_limits: ResourceLimits,
    /// Environment inheritance.
    pub environment: EnvPolicy,
    /// The workspace that relative paths resolve against and that commands run in.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::one")]
    pub workspace: PathBuf,
    /// Run even where the host lacks a mechanism the grant needs (Landlock, seccomp). Off
    /// unless a person asks for it for one run; the result then lists what was not enforced.
    pub allow_weaker_isolation: bool,
    /// Sees the output of the run's processes as it comes (a terminal showing it); not part
    /// of what the run is granted.
    #[serde(skip)]
    pub output_observer: Option<skillbox_sandbox::OutputObserver>,
    /// skillbox's own paths (its home with the trust store, policy and global skills; the
    /// audit log's files): no level grants writes to them, and no grant reaches them by
    /// containing them, since a run could then rewrite its own record, grant itself a level
    /// or plant skills that run later. `system-trusted` may read them by naming them.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::many")]
    pub reserved: Vec<PathBuf>,
    /// Home directories whose keys and credentials ([`crate::protect::HOME_SECRETS`]) no
    /// grant reaches below `system-trusted`, and no grant reaches by containing them at any
    /// level. [`SecurityContext::for_trust_level`] fills in `HOME` and this user's home
    /// from `/etc/passwd` (every user's, as root).
    pub homes: crate::protect::Homes,
    /// Where entries a run plants under a protected name in a writable tree are moved
    /// after it, one directory per run (named by its execution id) inside:
    /// `$SKILLBOX_HOME/quarantine` for a runtime with a home; without one (`None`) they are
    /// removed. No run can write there (skillbox's home is reserved).
    #[serde(serialize_with = "skillbox_audit::text::serde_path::maybe")]
    pub quarantine: Option<PathBuf>,
}

impl SecurityContext {
    /// The default context of `level` for a run in `workspace`, with the old trust table's
    /// values.
    pub fn for_trust_level(level: TrustLevel, workspace: impl Into<PathBuf>) -> Self {
        use FileScope::*;
        let (read, write, net, spawn, limits, env) = match level {
            TrustLevel::Untrusted => (
                vec![Workspace, PrivateTemp],
                vec![PrivateTemp],
                NetworkLevel::None,
                ProcessSpawn::None,
                (10, 64, 25, 10, 1, 10),
                EnvPolicy::Clean,
            ),
            TrustLevel::UserVerified => (
                vec![Workspace, PrivateTemp],
                vec![Workspace, PrivateTemp],
                NetworkLevel::HttpsOnly,
                ProcessSpawn::Limited,
                (60, 256, 50, 100, 5, 50),
                EnvPolicy::Clean,
            ),
            TrustLevel::SystemTrusted => (
                vec![Everything],
                vec![Everything],
                NetworkLevel::Full,
                ProcessSpawn::Full,
                (300, 1024, 80, 1000, 100, 1000),
                EnvPolicy::Inherit,
            ),
        };
        Self {
            trust_level: level,
            permissions: PermissionSet {
                file_read: read,
                file_write: write,
                network_access: net,
                process_spawn: spawn,
            },
            resource_limits: ResourceLimits {
                max_execution_time: Duration::from_secs(limits.0),
                max_memory_mb: limits.1,
                max_cpu_percent: limits.2,
                max_disk_io_mb: limits.3,
                max_processes: limits.4,
                max_open_files: limits.5,
            },
            environment: env,
            workspace: workspace.into(),
            allow_weaker_isolation: false,
            output_observer: None,
            reserved: Vec::new(),
            homes: crate::protect::homes(|k| std::env::var_os(k)),
            quarantine: None,
        }
    }

    /// Compares what `skill` declares with what this context grants.
    ///
    /// Returns the effective grant (the intersection) when the declaration fits, or a
    /// [`Denial`] naming the first permission that does not. Nothing has run at this point.
    pub fn validate_execution(&self, skill: &SkillDef) -> Result<EffectiveGrant, Denial> {
        let declared = &skill.permissions;
        // Decided on resolved paths: what the kernel will see (see `protect`).
        let workspace = skillbox_sandbox::resolve(&self.workspace);

        // Files. A skill that declares no reads gets the workspace, as old skills expect.
        let mut reads: Vec<(PathBuf, &str)> = Vec::new();
        match &declared.file_read {
            Some(list) => {
                for written in list {
                    let path = self.declared(skill, Permission::FileRead, &workspace, written)?;
                    if !self.covers(&self.permissions.file_read, &path, &workspace) {
                        return Err(self.deny(skill, Permission::FileRead, written, &path));
                    }
                    reads.push((path, written));
                }
            }
            None => reads.push((workspace.clone(), ".")),
        }
        let mut writes: Vec<(PathBuf, &str)> = Vec::new();
        for written in &declared.file_write {
            let path = self.declared(skill, Permission::FileWrite, &workspace, written)?;
            if !self.covers(&self.permissions.file_write, &path, &workspace) {
                return Err(self.deny(skill, Permission::FileWrite, written, &path));
            }
            writes.push((path, written));
        }
        let roots: Vec<PathBuf> = reads.iter().chain(&writes).map(|(p, _)| p.clone()).collect();
        let hidden = crate::protect::hidden(&self.reserved, &self.homes, &roots);
        for (path, written) in &reads {
            self.refuse_hidden(skill, Permission::FileRead, written, path, &hidden)?;
        }
        for (path, written) in &writes {
            self.refuse_hidden(skill, Permission::FileWrite, written, path, &hidden)?;
            if let Some(entry) = crate::protect::protected_component(path, &workspace) {
                return Err(Denial {
                    skill: skill.name.clone(),
                    trust_level: self.trust_level,
                    permission: Permission::FileWrite,
                    asked: shown(written, path),
                    granted: format!(
                        "no write access to protected entries such as `{}` (version control, \
                         skill and agent configuration, start-up files; docs/security-model.md) \
                         at any level",
                        entry.to_string_lossy()
                    ),
                    fix: None,
                });
            }
        }
        let mut reads: Vec<PathBuf> = reads.into_iter().map(|(p, _)| p).collect();
        let writes: Vec<PathBuf> = writes.into_iter().map(|(p, _)| p).collect();
        // An Agent Skill's script may always read its own skill's directory, wherever it
        // is installed: its interpreter has to open the script, and scripts read their
        // `references/` and `assets/`. Read only; writes are granted as declared.
        if let Some(own) = &skill.own_dir {
            reads.push(skillbox_sandbox::resolve(own));
        }

        // Network: undeclared means none.
        let asked_net = declared.network.unwrap_or(NetworkLevel::None);
        if asked_net > self.permissions.network_access {
            return Err(Denial {
                skill: skill.name.clone(),
                trust_level: self.trust_level,
                permission: Permission::Network,
                asked: asked_net.as_str().to_string(),
                granted: self.permissions.network_access.as_str().to_string(),
                fix: fix_for(self.trust_level, |l| {
                    SecurityContext::for_trust_level(l, PathBuf::new()).permissions.network_access
                        >= asked_net
                }),
            });
        }

        // Processes: undeclared keeps what the level allows (the old format had no field).
        let spawn = match declared.process_spawn {
            Some(asked) if asked > self.permissions.process_spawn => {
                return Err(Denial {
                    skill: skill.name.clone(),
                    trust_level: self.trust_level,
                    permission: Permission::ProcessSpawn,
                    asked: asked.as_str().to_string(),
                    granted: self.permissions.process_spawn.as_str().to_string(),
                    fix: fix_for(self.trust_level, |l| {
                        SecurityContext::for_trust_level(l, PathBuf::new())
                            .permissions
                            .process_spawn
                            >= asked
                    }),
                })
            }
            Some(asked) => asked,
            None => self.permissions.process_spawn,
        };

        Ok(EffectiveGrant {
            file_read: reads,
            file_write: writes,
            network: asked_net,
            process_spawn: spawn,
            allowed_domains: declared.allowed_domains.clone(),
            plain_http: declared.plain_http,
            limits: self.effective_limits(skill),
            hidden: hidden.into_iter().map(|h| h.path).collect(),
        })
    }

    /// A declared path, resolved against the workspace. One that goes through a symbolic
    /// link is refused: the grant would follow the link somewhere the declaration does not
    /// say (the kernel grant refuses it too).
    fn declared(
        &self,
        skill: &SkillDef,
        permission: Permission,
        workspace: &Path,
        written: &str,
    ) -> Result<PathBuf, Denial> {
        let lexical = skillbox_sandbox::normalize(&workspace.join(written));
        // The workspace is resolved already: only what lies below it is looked at.
        let resolved = match lexical.strip_prefix(workspace) {
            Ok(rel) => skillbox_sandbox::resolve_beneath(workspace, rel),
            Err(_) => skillbox_sandbox::resolve(&lexical),
        };
        if resolved != lexical {
            return Err(Denial {
                skill: skill.name.clone(),
                trust_level: self.trust_level,
                permission,
                asked: format!("{written} (= {})", skillbox_audit::text::path(&lexical)),
                granted: format!(
                    "no grant through a symbolic link ({} leads to {}); declare the real path",
                    skillbox_audit::text::path(&lexical),
                    skillbox_audit::text::path(&resolved)
                ),
                fix: None,
            });
        }
        Ok(resolved)
    }

    /// Refuses a declared path inside a secret below `system-trusted`, and a write inside
    /// skillbox's own files at any level (see [`crate::protect`]).
    fn refuse_hidden(
        &self,
        skill: &SkillDef,
        permission: Permission,
        written: &str,
        path: &Path,
        hidden: &[crate::protect::Hidden],
    ) -> Result<(), Denial> {
        use crate::protect::HiddenKind;
        let Some(h) = hidden.iter().find(|h| path.starts_with(&h.path)) else { return Ok(()) };
        let system = self.trust_level == TrustLevel::SystemTrusted;
        let (granted, fix) = match (h.kind, permission) {
            (HiddenKind::Skillbox, Permission::FileWrite) => (
                format!(
                    "no write access to skillbox's own files ({}) at any level",
                    skillbox_audit::text::path(&h.path)
                ),
                None,
            ),
            _ if system => return Ok(()),
            (HiddenKind::Skillbox, _) => (
                format!(
                    "no access to skillbox's own files ({}) below system-trusted",
                    skillbox_audit::text::path(&h.path)
                ),
                Some(TrustLevel::SystemTrusted),
            ),
            (HiddenKind::Secret, _) => (
                format!(
                    "no access to keys and credentials ({}) below system-trusted",
                    skillbox_audit::text::path(&h.path)
                ),
                Some(TrustLevel::SystemTrusted),
            ),
        };
        Err(Denial {
            skill: skill.name.clone(),
            trust_level: self.trust_level,
            permission,
            asked: shown(written, path),
            granted,
            fix,
        })
    }

    /// The limits for `skill`: what it asks for, capped by this context.
    pub fn effective_limits(&self, skill: &SkillDef) -> ResourceLimits {
        let cap = &self.resource_limits;
        let l = &skill.limits;
        ResourceLimits {
            max_execution_time: skill
                .timeout
                .map_or(cap.max_execution_time, |t| t.min(cap.max_execution_time)),
            max_memory_mb: l.max_memory_mb.map_or(cap.max_memory_mb, |v| v.min(cap.max_memory_mb)),
            max_cpu_percent: l
                .max_cpu_percent
                .map_or(cap.max_cpu_percent, |v| v.min(cap.max_cpu_percent)),
            max_disk_io_mb: l
                .max_disk_io_mb
                .map_or(cap.max_disk_io_mb, |v| v.min(cap.max_disk_io_mb)),
            max_processes: l.max_processes.map_or(cap.max_processes, |v| v.min(cap.max_processes)),
            max_open_files: l
                .max_open_files
                .map_or(cap.max_open_files, |v| v.min(cap.max_open_files)),
        }
    }

    /// Whether `scopes` cover `path`; both `path` and `workspace` resolved.
    fn covers(&self, scopes: &[FileScope], path: &Path, workspace: &Path) -> bool {
        scopes.iter().any(|s| match s {
            FileScope::Everything => true,
            FileScope::Workspace => path.starts_with(workspace),
            // The private directory is created per run; no declared path can name it.
            FileScope::PrivateTemp => false,
        })
    }

    fn deny(&self, skill: &SkillDef, permission: Permission, written: &str, path: &Path) -> Denial {
        let path_buf = path.to_path_buf();
        let wants_write = permission == Permission::FileWrite;
        let workspace = skillbox_sandbox::resolve(&self.workspace);
        Denial {
            skill: skill.name.clone(),
            trust_level: self.trust_level,
            permission,
            asked: shown(written, path),
            granted: describe_scopes(if wants_write {
                &self.permissions.file_write
            } else {
                &self.permissions.file_read
            }),
            fix: fix_for(self.trust_level, |l| {
                let c = SecurityContext::for_trust_level(l, workspace.clone());
                let scopes =
                    if wants_write { &c.permissions.file_write } else { &c.permissions.file_read };
                c.covers(scopes, &path_buf, &workspace)
            }),
        }
    }
}

/// A declared path as written, with what it resolves to when that differs.
fn shown(written: &str, path: &Path) -> String {
    if written == path.to_string_lossy() {
        written.to_string()
    } else {
        format!("{written} (= {})", skillbox_audit::text::path(path))
    }
}

fn describe_scopes(scopes: &[FileScope]) -> String {
    let parts: Vec<&str> = scopes
        .iter()
        .map(|s| match s {
            FileScope::Workspace => "the workspace",
            FileScope::PrivateTemp => "a private temporary directory",
            FileScope::Everything => "everything",
        })
        .collect();
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(" and ")
    }
}

/// The lowest level above `current` that satisfies `ok`.
fn fix_for(current: TrustLevel, ok: impl Fn(TrustLevel) -> bool) -> Option<TrustLevel> {
    TrustLevel::ALL.into_iter().find(|l| *l > current && ok(*l))
}

/// What a run actually gets: the declaration intersected with the context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveGrant {
    /// Absolute paths readable (besides system directories and the private temp dir).
    #[serde(serialize_with = "skillbox_audit::text::serde_path::many")]
    pub file_read: Vec<PathBuf>,
    /// Absolute paths writable (besides the private temp dir).
    #[serde(serialize_with = "skillbox_audit::text::serde_path::many")]
    pub file_write: Vec<PathBuf>,
    /// Network.
    pub network: NetworkLevel,
    /// Process creation.
    pub process_spawn: ProcessSpawn,
    /// The hosts the run may reach through skillbox's egress proxy (`allowed_domains`),
    /// normalised. `None` with a network below `full`: any public host, on 443 (and 80 with
    /// [`Self::plain_http`]). Enforced where the run gets its own network namespace
    /// (docs/security-model.md, "Network egress").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<skillbox_egress::HostPattern>>,
    /// Port 80 as well as 443 for hosts listed without a port (`network_access: "http"`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
    /// Limits.
    pub limits: ResourceLimits,
    /// Paths no tree of this grant reaches by containing them (keys and credentials,
    /// skillbox's own files), resolved: the sandbox carves them out of every granted tree.
    #[serde(skip)]
    pub hidden: Vec<PathBuf>,
}

/// The kinds of permission a skill can be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// `security.permissions.file_read`.
    FileRead,
    /// `security.permissions.file_write`.
    FileWrite,
    /// `security.permissions.network_access`.
    Network,
    /// `security.permissions.process_spawn`.
    ProcessSpawn,
}

impl Permission {
    /// The field of the skill file that declares it.
    pub fn field(self) -> &'static str {
        match self {
            Self::FileRead => "security.permissions.file_read",
            Self::FileWrite => "security.permissions.file_write",
            Self::Network => "security.permissions.network_access",
            Self::ProcessSpawn => "security.permissions.process_spawn",
        }
    }
}

/// A refusal before anything runs: the skill declares more than its context grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.message())]
pub struct Denial {
    /// The skill refused.
    pub skill: String,
    /// The level it was to run at.
    pub trust_level: TrustLevel,
    /// The permission that does not fit.
    pub permission: Permission,
    /// What the skill asked for.
    pub asked: String,
    /// What the level grants.
    pub granted: String,
    /// The lowest trust level that would grant it, if any.
    pub fix: Option<TrustLevel>,
}

impl Denial {
    /// What the skill asked for, in words (`write access to /p/out`).
    fn what(&self) -> String {
        match self.permission {
            Permission::FileRead => format!("read access to {}", self.asked),
            Permission::FileWrite => format!("write access to {}", self.asked),
            Permission::Network => format!("network access ({})", self.asked),
            Permission::ProcessSpawn => format!("process creation ({})", self.asked),
        }
    }

    /// One line: what was refused, why, and how to grant it.
    pub fn message(&self) -> String {
        let what = self.what();
        let fix = match self.fix {
            Some(level) => format!(
                "to grant it, if you trust this skill, run `skillbox trust {} --level {level}` \
                 (kept until the skill's content changes) or add `--trust {level}` to one run; \
                 or remove the request from the skill file",
                self.skill
            ),
            None => "no trust level grants it; remove the request from the skill file".into(),
        };
        format!(
            "permission denied: skill `{}` declares {} ({}), but trust level {} grants {}; {}",
            self.skill,
            what,
            self.permission.field(),
            self.trust_level,
            self.granted,
            fix
        )
    }
}

impl Denial {
    /// The refusal worded for a model that called the skill as a tool: what was refused and
    /// why, and that only the person can grant it, since a model cannot pass `--trust` or
    /// run `skillbox trust` on the person's behalf.
    pub fn message_for_model(&self) -> String {
        let what = self.what();
        let fix = match self.fix {
            Some(level) => format!(
                "you cannot grant this yourself. If the task needs it, tell the person that \
                 skill `{0}` was refused {what} and ask whether they trust it; if they do, they \
                 can run `skillbox trust {0} --level {level}` in a terminal, and then you can \
                 call this tool again. Do not retry it before that",
                self.skill
            ),
            None => "no trust level grants it, so the skill cannot run as written; tell the \
                     person, and do not retry"
                .into(),
        };
        format!(
            "permission denied: skill `{}` declares {what} ({}), but it runs at trust level {}, \
             which grants {}; {fix}",
            self.skill,
            self.permission.field(),
            self.trust_level,
            self.granted,
        )
    }
}

/// Lexically normalizes `p`: removes `.`, resolves `..` without touching the disk (see
/// [`skillbox_sandbox::normalize`]). Decisions are made on the resolved path
/// ([`skillbox_sandbox::resolve`]); this is the form a declared path is shown in.
pub fn normalize(p: &Path) -> PathBuf {
    skillbox_sandbox::normalize(p)
}

/// A declared path against the workspace, lexically: absolute paths stay, `~/` is not
/// expanded (it would depend on who runs the skill), relative ones join the workspace.
pub fn resolve(workspace: &Path, declared: &str) -> PathBuf {
    normalize(&workspace.join(declared))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_parse() {
        assert!(TrustLevel::Untrusted < TrustLevel::UserVerified);
        assert!(TrustLevel::UserVerified < TrustLevel::SystemTrusted);
        for l in TrustLevel::ALL {
            assert_eq!(l.as_str().parse::<TrustLevel>().ok(), Some(l));
        }
        assert_eq!("UserVerified".parse::<TrustLevel>().ok(), Some(TrustLevel::UserVerified));
        assert!("root".parse::<TrustLevel>().is_err());
    }

    #[test]
    fn defaults_follow_the_trust_table() {
        let u = SecurityContext::for_trust_level(TrustLevel::Untrusted, "/w");
        assert_eq!(u.resource_limits.max_execution_time, Duration::from_secs(10));
        assert_eq!(u.resource_limits.max_memory_mb, 64);
        assert_eq!(u.permissions.network_access, NetworkLevel::None);
        assert_eq!(u.environment, EnvPolicy::Clean);
        let v = SecurityContext::for_trust_level(TrustLevel::UserVerified, "/w");
        assert_eq!(v.resource_limits.max_processes, 5);
        assert_eq!(v.permissions.network_access, NetworkLevel::HttpsOnly);
        let s = SecurityContext::for_trust_level(TrustLevel::SystemTrusted, "/w");
        assert_eq!(s.resource_limits.max_open_files, 1000);
        assert_eq!(s.environment, EnvPolicy::Inherit);
    }

    #[test]
    fn dotdot_cannot_escape_the_workspace_lexically() {
        assert_eq!(resolve(Path::new("/w"), "../etc/passwd"), PathBuf::from("/etc/passwd"));
        assert_eq!(resolve(Path::new("/w"), "a/./b/../c"), PathBuf::from("/w/a/c"));
        assert_eq!(resolve(Path::new("/w"), "/etc"), PathBuf::from("/etc"));
    }
}
