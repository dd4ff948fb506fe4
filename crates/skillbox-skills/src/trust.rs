//! Trust that a person grants once, pinned to what they looked at.
//!
//! The plan hard-codes one level per source. Here a person can raise (or lower) one skill's
//! level with `skillbox trust NAME --level LEVEL`. The grant records a SHA-256 digest of the
//! skill's content: the skill file and the scripts its command names, or every file of an
//! Agent Skill's directory (see [`crate::seal`], which reads them once, and seals the copy a
//! granted run executes). When the content changes, even by one byte, the grant *lapses*:
//! the skill runs at its default level again and the result says why, because what was
//! trusted is no longer what would run.
//!
//! Defaults per source come from a policy file; without one, the plan's defaults apply.
//!
//! Both files live in skillbox's home directory (`$SKILLBOX_HOME`), which no run is ever
//! granted write access to, so a skill cannot grant itself anything.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::registry::{LoadedSkill, SourceKind};
use crate::seal::Snapshot;
use crate::security::TrustLevel;

/// The trust store's file name in skillbox's home directory.
pub const STORE_FILE: &str = "trust.json";
/// The policy file's name in skillbox's home directory.
pub const POLICY_FILE: &str = "policy.json";
/// Largest store or policy file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why the trust store or policy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file exists but cannot be read.
    #[error("trust file {}: cannot read: {source}", shown(.path))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what skillbox writes.
    #[error("trust file {}: {}", shown(.path), escaped(.reason))]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The store cannot be written.
    #[error("trust store {}: cannot write: {source}", shown(.path))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The sealed copy a granted run executes cannot be written.
    #[error("cannot write the sealed copy {}: {source}", shown(.path))]
    Seal {
        /// The copy's directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The skill's content cannot be hashed.
    #[error("cannot hash the content of {}: {}", shown(.path), escaped(.reason))]
    Digest {
        /// The skill file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Built-in skills are part of skillbox; there is nothing to pin.
    #[error(
        "`{}` is a built-in skill; built-ins run at their own level and cannot be granted",
        escaped(.0)
    )]
    Builtin(String),
}

/// A path in an error: bytes that are not UTF-8 as `\xNN`, control characters escaped, so
/// that a file name holding a newline or a terminal escape cannot forge or hide a line.
fn shown(path: &Path) -> String {
    escaped(&skillbox_audit::text::path(path))
}

/// Text in an error that may quote a file's content (serde_json's errors quote unknown
/// fields and variants as written), with its control characters escaped: the message stays
/// one line, whatever bytes the file holds.
fn escaped(text: &str) -> String {
    skillbox_audit::text::escape_controls(text, skillbox_audit::text::Lines::Escape)
}

/// One grant: a level, pinned to a digest of the content it was granted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The level the skill runs at while the grant holds.
    pub level: TrustLevel,
    /// `sha256v2:HEX` of what the grant pins (see [`crate::seal::Snapshot`]). A `sha256:`
    /// digest was made by a skillbox that did not pin scripts yet: it never holds.
    pub digest: String,
    /// The file or directory it was granted for.
    #[serde(serialize_with = "skillbox_audit::text::serde_path::one")]
    pub path: PathBuf,
    /// When (RFC 3339, UTC).
    pub granted_at: String,
}

/// Where a skill stands with the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No grant: the skill runs at its default level.
    NoGrant,
    /// A grant whose digest matches the content: the skill runs at its level, from the
    /// sealed copy of the snapshot the digest was taken from.
    Granted(Grant, Arc<Snapshot>),
    /// A grant made for other content. The skill runs at its default level.
    Lapsed {
        /// The grant as made.
        grant: Grant,
        /// The digest of the content now (or why it could not be computed).
        now: String,
    },
}

/// The grants, by the name of what they were made to (a skill, or an Agent Skill for all
/// of its scripts).
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
    grants: BTreeMap<String, Grant>,
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    grants: BTreeMap<String, Grant>,
}

impl TrustStore {
    /// Reads the store at `path`; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let grants = match read_small(path)? {
            None => BTreeMap::new(),
            Some(bytes) => {
                let f: StoreFile = serde_json::from_slice(&bytes).map_err(|e| {
                    TrustError::Parse { path: path.to_path_buf(), reason: e.to_string() }
                })?;
                if f.version != 1 {
                    return Err(TrustError::Parse {
                        path: path.to_path_buf(),
                        reason: format!("version {} is not supported (1 is)", f.version),
                    });
                }
                f.grants
            }
        };
        Ok(Self { path: path.to_path_buf(), grants })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every grant, by name.
    pub fn grants(&self) -> impl Iterator<Item = (&str, &Grant)> {
        self.grants.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Where `skill`, run in `workspace`, stands: reads what a grant pins (once) when it
    /// has a grant.
    pub fn standing(&self, skill: &LoadedSkill, workspace: &Path) -> Standing {
        let (name, _) = skill.trust_subject();
        let Some(grant) = self.grants.get(name) else { return Standing::NoGrant };
        if !grant.digest.starts_with(crate::seal::DIGEST_PREFIX) {
            return Standing::Lapsed {
                grant: grant.clone(),
                now: "(the grant was made by an older skillbox that did not pin the scripts a \
                      skill runs; review the skill and grant it again)"
                    .into(),
            };
        }
        match Snapshot::take(skill, workspace) {
            Ok(now) if now.digest == grant.digest => {
                Standing::Granted(grant.clone(), Arc::new(now))
            }
            Ok(now) => Standing::Lapsed { grant: grant.clone(), now: now.digest },
            Err(e) => Standing::Lapsed { grant: grant.clone(), now: e.to_string() },
        }
    }

    /// Grants `skill` (or the Agent Skill it belongs to), run in `workspace`, `level`, pinned
    /// to its content now, and saves the store. Replaces an earlier grant to the same name.
    pub fn grant(
        &mut self,
        skill: &LoadedSkill,
        level: TrustLevel,
        workspace: &Path,
    ) -> Result<Grant, TrustError> {
        if skill.source == SourceKind::Builtin {
            return Err(TrustError::Builtin(skill.def.name.clone()));
        }
        let snapshot = Snapshot::take(skill, workspace)?;
        self.grant_snapshot(skill, level, &snapshot)
    }

    /// Grants `skill` (or the Agent Skill it belongs to) `level`, pinned to `snapshot`, a
    /// snapshot of its content the caller took (and showed the person), and saves the store.
    pub fn grant_snapshot(
        &mut self,
        skill: &LoadedSkill,
        level: TrustLevel,
        snapshot: &Snapshot,
    ) -> Result<Grant, TrustError> {
        if skill.source == SourceKind::Builtin {
            return Err(TrustError::Builtin(skill.def.name.clone()));
        }
        let (name, path) = skill.trust_subject();
        let digest = snapshot.digest.clone();
        let grant = Grant {
            level,
            digest,
            path: path.to_path_buf(),
            granted_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        let name = name.to_string();
        let before = self.grants.insert(name.clone(), grant.clone());
        if let Err(e) = self.save() {
            match before {
                Some(b) => self.grants.insert(name, b),
                None => self.grants.remove(&name),
            };
            return Err(e);
        }
        Ok(grant)
    }

    /// Removes the grant made to `name` (a skill, or an Agent Skill), and saves the store.
    pub fn revoke(&mut self, name: &str) -> Result<Option<Grant>, TrustError> {
        let Some(old) = self.grants.remove(name) else { return Ok(None) };
        if let Err(e) = self.save() {
            self.grants.insert(name.to_string(), old);
            return Err(e);
        }
        Ok(Some(old))
    }

    /// Writes the store whole: to a temporary file beside it, synced, then renamed over it,
    /// so a crash leaves the old store or the new one, never half of one.
    fn save(&self) -> Result<(), TrustError> {
        let err = |source| TrustError::Write { path: self.path.clone(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let body = StoreFile { version: 1, grants: self.grants.clone() };
        let mut bytes = serde_json::to_vec_pretty(&body)
            .map_err(|e| err(std::io::Error::other(e.to_string())))?;
        bytes.push(b'\n');
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
        tmp.write_all(&bytes).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&self.path).map_err(|e| err(e.error))?;
        Ok(())
    }
}

/// Default trust levels per source, from the policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    /// Level per source: `builtin`, `global`, `workspace`, `agents`. A source that is not
    /// named keeps the plan's default.
    #[serde(default)]
    pub default_trust: BTreeMap<SourceKind, TrustLevel>,
}

impl TrustPolicy {
    /// Reads the policy at `path`; a missing file is the plan's defaults.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        match read_small(path)? {
            None => Ok(Self::default()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TrustError::Parse { path: path.to_path_buf(), reason: e.to_string() }),
        }
    }

    /// The level a skill from `source` runs at without a grant.
    pub fn default_for(&self, source: SourceKind) -> TrustLevel {
        self.default_trust.get(&source).copied().unwrap_or_else(|| source.default_trust())
    }
}

/// The bytes of a small file, `None` if it does not exist.
fn read_small(path: &Path) -> Result<Option<Vec<u8>>, TrustError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TrustError::Read { path: path.to_path_buf(), source }),
    };
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| TrustError::Read { path: path.to_path_buf(), source })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(TrustError::Parse {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What escaping would change: a message that holds none of it is one safe line.
    fn assert_one_safe_line(shown: &str) {
        let escaped =
            skillbox_audit::text::escape_controls(shown, skillbox_audit::text::Lines::Escape);
        assert_eq!(shown, escaped, "raw control characters in {shown:?}");
    }

    // Found by the fuzz targets `trust_policy` and `trust_store` (fuzz/): serde_json quotes
    // an unknown field or variant as the file writes it, DEL and terminal escapes included.
    #[test]
    fn a_policy_or_store_that_quotes_control_characters_is_refused_on_one_safe_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy = dir.path().join(POLICY_FILE);
        std::fs::write(&policy, b"{\"default_trus\x7f\": {}, \"\x1b]0;owned\x07\n\": 1}")
            .expect("write");
        let e = TrustPolicy::load(&policy).expect_err("an unknown field");
        let shown = e.to_string();
        assert_one_safe_line(&shown);
        assert!(shown.contains("default_trus\\u{7f}"), "{shown}");

        let store = dir.path().join(STORE_FILE);
        let grant = r#"{"level": "\u001b[2Juser-verified", "digest": "d", "path": "/p",
            "granted_at": "t"}"#;
        std::fs::write(&store, format!(r#"{{"version": 1, "grants": {{"x": {grant}}}}}"#))
            .expect("write");
        let e = TrustStore::load(&store).expect_err("an unknown level");
        let shown = e.to_string();
        assert_one_safe_line(&shown);
        assert!(shown.contains("\\u{1b}[2Juser-verified"), "{shown}");
    }

    #[test]
    fn a_trust_file_under_a_hostile_directory_name_is_named_escaped() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join(std::ffi::OsStr::from_bytes(b"h\nome\xff\x1b[1m"));
        std::fs::create_dir(&home).expect("mkdir");
        std::fs::write(home.join(POLICY_FILE), b"\"x\"").expect("write");
        let shown = TrustPolicy::load(&home.join(POLICY_FILE)).expect_err("a string").to_string();
        assert_one_safe_line(&shown);
        assert!(shown.contains("h\\nome\\xFF\\u{1b}[1m/policy.json: "), "{shown}");
    }
}
