//! Agent Skills' documents as MCP resources: `skill://NAME/SKILL.md` and every file that
//! `SKILL.md` references inside the skill's directory, read-only.
//!
//! An Agent Skill is written for a model to read: its instructions, and the reference
//! documents, templates and examples they point to (`[forms](references/forms.md)`). A
//! client that shows resources lets the person (or the model) open them without a run.
//!
//! What is served, and why it is safe to serve:
//!
//! * **Only what `SKILL.md` names.** `resources/list` holds `SKILL.md` and each relative
//!   Markdown link target (`[text](path)`, `![alt](path)`, `[id]: path`) and each inline
//!   code span that looks like a relative path (`` `references/api.md` ``), when the file
//!   passes the checks below. `resources/read` serves the same set and nothing else: a URI
//!   that `SKILL.md` does not reference is an unknown resource (-32002), even when the file
//!   exists. No resource template is offered: a template would advertise every path.
//! * **Confinement decided by the kernel.** Each file is opened with `openat2` from a
//!   descriptor of the skill's directory, with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_MAGICLINKS`: a path that leaves the directory or passes through any symlink
//!   (inside it or not) is refused by the kernel while it resolves the path, so there is no
//!   check-then-open race. The opened descriptor is `fstat`ed (a regular file, one link) and
//!   read, at most [`MAX_RESOURCE_BYTES`] + 1 bytes, from that same descriptor.
//! * **Size-capped.** A file over [`MAX_RESOURCE_BYTES`] (1 MiB) is neither listed nor read.
//! * **Hostile URIs refused before any file is touched**: percent-encoding, `..`, `.`,
//!   empty components, absolute paths, backslashes, control characters (NUL among them) and
//!   URIs over [`MAX_URI_BYTES`].
//!
//! * **Changes seen on the opened file.** The watcher polls [`versions`]: the size, identity
//!   and times `fstat` gives of each file opened as a read would open it, so a change is
//!   announced (`list_changed`, and `updated` to subscribers, see `subscriptions.rs`) by the
//!   same checks that decide what is served.
//! * **Off the async workers.** The server calls [`list`], [`read`] and [`versions`] on
//!   tokio's blocking pool: a slow file system (NFS, FUSE) delays that request, not every
//!   other request of every session.
//!
//! A read is not a run: nothing executes and nothing is granted, so a successful read is not
//! an audit event (it is traced at debug level). Every refused read is recorded like a
//! refused tool or prompt name, through [`Runtime::refuse`] (an `InputValidationFailed`
//! event, at a bounded rate), so that a model probing for files leaves a trace.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rmcp::model::{ErrorData, ReadResourceResult, Resource, ResourceContents};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use serde_json::json;
use skillbox_skills::agent::{AgentSkill, SKILL_FILE};
use skillbox_skills::Runtime;

/// The URI scheme of an Agent Skill's files: `skill://NAME/PATH`.
pub(crate) const SCHEME: &str = "skill://";
/// Largest file served, in bytes (1 MiB): skill documents are text for a model's context,
/// and a larger file is more likely a mistake (or a planted one) than a document.
pub(crate) const MAX_RESOURCE_BYTES: u64 = 1024 * 1024;
/// Longest URI accepted.
pub(crate) const MAX_URI_BYTES: usize = 1024;
/// Most files listed per skill (`SKILL.md` included).
const MAX_PER_SKILL: usize = 256;
/// Most path components of a referenced file.
const MAX_DEPTH: usize = 16;

/// Why a file is not served; each says so in one line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Not a `skill://` URI of a loaded Agent Skill's `SKILL.md` or a file it references.
    #[error("unknown resource: {0}")]
    Unknown(String),
    /// The URI itself is malformed or hostile.
    #[error("refused URI: {0}")]
    Hostile(&'static str),
    /// The path resolves outside the skill's directory.
    #[error("refused: the path leads outside the skill's directory")]
    Outside,
    /// A component of the path is a symlink.
    #[error("refused: the path passes through a symlink (not followed for resources)")]
    Symlink,
    /// The file does not exist (any more).
    #[error("unknown resource: the skill references it but there is no such file")]
    Missing,
    /// Not a regular file (a directory, a FIFO, a device, a socket).
    #[error("refused: not a regular file")]
    NotRegular,
    /// The file has other hard links, which may be outside the skill's directory.
    #[error("refused: the file has {0} hard links; one may be outside the skill's directory")]
    HardLinked(u64),
    /// Over [`MAX_RESOURCE_BYTES`].
    #[error("refused: the file is larger than the {MAX_RESOURCE_BYTES}-byte limit for resources")]
    TooLarge,
    /// Any other error of the system.
    #[error("the file could not be read: {0}")]
    Io(String),
}

impl Refusal {
    /// The JSON-RPC error: -32002 (resource not found) for what is not a resource, -32602
    /// (invalid params) for a URI or file that is refused.
    fn to_error(&self, uri: &str) -> ErrorData {
        let message = format!("{}: {self}", printable(uri));
        match self {
            Self::Unknown(_) | Self::Missing => {
                ErrorData::resource_not_found(message, Some(json!({ "uri": printable(uri) })))
            }
            Self::Io(_) => ErrorData::internal_error(message, None),
            _ => ErrorData::invalid_params(message, Some(json!({ "uri": printable(uri) }))),
        }
    }
}

/// `s` with control characters escaped and cut, for messages that quote client input.
fn printable(s: &str) -> String {
    skillbox_skills::audit_log::text::one_line(s, 200)
}

/// The loaded Agent Skills: the registry entry named as the skill is its instructions entry
/// (scripts are `NAME--SCRIPT`), so each skill is taken once, as the registry resolved it.
fn agent_skills(rt: &Runtime) -> impl Iterator<Item = &AgentSkill> {
    rt.registry().skills().filter_map(|s| s.agent.as_deref().filter(|a| a.name == s.def.name))
}

/// The agent skill named `name`, if loaded.
fn agent_skill<'a>(rt: &'a Runtime, name: &str) -> Option<&'a AgentSkill> {
    agent_skills(rt).find(|a| a.name == name)
}

/// Every resource: for each Agent Skill, `SKILL.md` and the files it references that pass
/// the confinement checks.
pub(crate) fn list(rt: &Runtime) -> Vec<Resource> {
    let mut out = Vec::new();
    for agent in agent_skills(rt) {
        let Ok(dir) = open_dir(&agent.dir) else { continue };
        for path in candidates(agent) {
            let Ok((_, size)) = open_checked(&dir, &path) else { continue };
            let uri = format!("{SCHEME}{}/{path}", agent.name);
            let mut r = Resource::new(uri, format!("{}/{path}", agent.name))
                .with_size(size)
                .with_title(if path == SKILL_FILE {
                    format!("{}: instructions (SKILL.md)", agent.name)
                } else {
                    format!("{}: {path}", agent.name)
                })
                .with_description(if path == SKILL_FILE {
                    agent.description.clone()
                } else {
                    format!("Referenced by the SKILL.md of the Agent Skill `{}`", agent.name)
                });
            if let Some(mime) = mime_of(&path) {
                r = r.with_mime_type(mime);
            }
            out.push(r);
        }
    }
    out
}

/// What the poll compares of one resource, read from the opened file (not its path): its
/// size, which file it is (device and inode: a file replaced by a rename is a new one), and
/// when its content and its inode last changed. Any write moves the modification time (to
/// the nanosecond on the file systems skills live on); one that also restores it, with
/// `utimensat`, still moves the status-change time, which no call can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Version {
    size: u64,
    file: (u64, u64),
    modified: (i64, i64),
    changed: (i64, i64),
}

/// Every resource's URI with its [`Version`]: the state the watcher compares between polls.
/// Polled with the skill directories: the skills' own fingerprint does not look into every
/// directory `SKILL.md` may reference.
pub(crate) type Versions = BTreeMap<String, Version>;

/// The resources as they are now (the same files, checked the same way, as [`list`]).
pub(crate) fn versions(rt: &Runtime) -> Versions {
    let mut out = Versions::new();
    for agent in agent_skills(rt) {
        let Ok(dir) = open_dir(&agent.dir) else { continue };
        for path in candidates(agent) {
            if let Ok((_, _, version)) = open_checked_stat(&dir, &path) {
                out.insert(format!("{SCHEME}{}/{path}", agent.name), version);
            }
        }
    }
    out
}

/// What changed from `before` to `now`: whether the list changed (a resource added,
/// removed or resized, which `resources/list` shows), and every URI whose resource was
/// added, removed or changed in any way (for `notifications/resources/updated`).
pub(crate) fn changes(before: &Versions, now: &Versions) -> (bool, BTreeSet<String>) {
    let mut updated = BTreeSet::new();
    let mut listed = false;
    for (uri, version) in now {
        match before.get(uri) {
            Some(old) if old == version => {}
            Some(old) => {
                listed |= old.size != version.size;
                updated.insert(uri.clone());
            }
            None => {
                listed = true;
                updated.insert(uri.clone());
            }
        }
    }
    for uri in before.keys().filter(|uri| !now.contains_key(*uri)) {
        listed = true;
        updated.insert(uri.clone());
    }
    (listed, updated)
}

/// Reads `uri`, or says why not; every refusal is recorded through [`Runtime::refuse`].
pub(crate) fn read(rt: &Runtime, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    match read_checked(rt, uri) {
        Ok(r) => {
            tracing::debug!(uri = printable(uri), "resources/read served");
            Ok(r)
        }
        Err(refusal) => {
            let error = refusal.to_error(uri);
            tracing::debug!(error = error.message.as_ref(), "resources/read refused");
            rt.refuse(
                uri,
                skillbox_skills::Status::Invalid,
                format!("resources/read {}", error.message),
                &json!({ "uri": uri }),
            );
            Err(error)
        }
    }
}

fn read_checked(rt: &Runtime, uri: &str) -> Result<ReadResourceResult, Refusal> {
    let (name, path) = parse_uri(uri)?;
    let agent = agent_skill(rt, name)
        .ok_or_else(|| Refusal::Unknown(format!("no Agent Skill named `{}`", printable(name))))?;
    if !candidates(agent).contains(path) {
        return Err(Refusal::Unknown(format!(
            "not SKILL.md nor a file the SKILL.md of `{name}` references"
        )));
    }
    let dir = open_dir(&agent.dir)?;
    let (file, _) = open_checked(&dir, path)?;
    // At most one byte more than the cap, from the descriptor that was checked: a file that
    // grew since the fstat is still refused, and never read whole.
    let mut bytes = Vec::new();
    std::fs::File::from(file)
        .take(MAX_RESOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Refusal::Io(e.to_string()))?;
    if bytes.len() as u64 > MAX_RESOURCE_BYTES {
        return Err(Refusal::TooLarge);
    }
    let declared = mime_of(path);
    let textual = declared.is_none_or(is_textual);
    let contents = match String::from_utf8(bytes) {
        Ok(text) if textual => ResourceContents::TextResourceContents {
            uri: uri.to_string(),
            mime_type: Some(declared.unwrap_or("text/plain").to_string()),
            text,
            meta: None,
        },
        Ok(text) => blob(uri, declared, text.as_bytes()),
        Err(e) => blob(uri, declared, e.as_bytes()),
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

fn blob(uri: &str, mime: Option<&str>, bytes: &[u8]) -> ResourceContents {
    ResourceContents::BlobResourceContents {
        uri: uri.to_string(),
        mime_type: Some(mime.unwrap_or("application/octet-stream").to_string()),
        blob: base64(bytes),
        meta: None,
    }
}

/// Splits `skill://NAME/PATH`, refusing anything but plain relative paths.
fn parse_uri(uri: &str) -> Result<(&str, &str), Refusal> {
    if uri.len() > MAX_URI_BYTES {
        return Err(Refusal::Hostile("longer than 1024 bytes"));
    }
    if uri.chars().any(char::is_control) {
        return Err(Refusal::Hostile("control characters (NUL among them) are not allowed"));
    }
    if uri.contains('%') {
        return Err(Refusal::Hostile("percent-encoding is not accepted"));
    }
    if uri.contains('\\') {
        return Err(Refusal::Hostile("backslashes are not accepted"));
    }
    let Some(rest) = uri.strip_prefix(SCHEME) else {
        return Err(Refusal::Unknown(format!("not a {SCHEME}NAME/PATH URI")));
    };
    if rest.contains(['?', '#']) {
        return Err(Refusal::Hostile("queries and fragments are not accepted"));
    }
    let Some((name, path)) = rest.split_once('/') else {
        return Err(Refusal::Unknown(format!("not a {SCHEME}NAME/PATH URI")));
    };
    if name.is_empty() {
        return Err(Refusal::Unknown("no skill name".into()));
    }
    match clean_relative(path) {
        Some(clean) if clean == path => Ok((name, path)),
        _ => Err(Refusal::Hostile(
            "the path must be relative, without `..`, `.` or empty components",
        )),
    }
}

/// `target` as a normalised relative path inside the directory (`./a/b` is `a/b`), or
/// `None` when it is absolute, climbs (`..`), or is empty.
fn clean_relative(target: &str) -> Option<String> {
    if target.is_empty() || target.starts_with('/') || target.len() > MAX_URI_BYTES {
        return None;
    }
    let mut parts = Vec::new();
    for c in target.split('/') {
        match c {
            "" | "." => continue,
            ".." => return None,
            c if c.chars().any(|ch| ch.is_control() || ch == '\\') => return None,
            c => parts.push(c),
        }
    }
    (!parts.is_empty() && parts.len() <= MAX_DEPTH).then(|| parts.join("/"))
}

/// `SKILL.md`, then every relative path its body references (normalised, deduplicated).
fn candidates(agent: &AgentSkill) -> BTreeSet<String> {
    let mut out = BTreeSet::from([SKILL_FILE.to_string()]);
    for target in references(&agent.instructions) {
        if out.len() >= MAX_PER_SKILL {
            break;
        }
        if let Some(p) = link_path(&target) {
            out.insert(p);
        }
    }
    out
}

/// The relative file a link target names: without a `#fragment` or `?query`, not a URL
/// (`scheme:`), not percent-encoded (taken literally would name another file), normalised.
fn link_path(target: &str) -> Option<String> {
    let target = target.trim().trim_start_matches('<').trim_end_matches('>');
    let target = target.split(['#', '?']).next().unwrap_or_default();
    let scheme = target.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
    });
    if scheme || target.contains('%') || target.chars().any(char::is_whitespace) {
        return None;
    }
    clean_relative(target)
}

/// The link targets of a Markdown text: inline links and images `[..](target "title")`,
/// reference definitions `[id]: target`, and inline code spans that look like a path
/// (`` `references/x.md` ``: no spaces, and a `/` or a file extension).
fn references(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    // Inline links and images.
    let mut rest = md;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let inner = after[..end].trim();
        // `(target "title")`: the target is the first word.
        if let Some(t) = inner.split_whitespace().next() {
            out.push(t.to_string());
        }
        rest = &after[end..];
    }
    for line in md.lines() {
        // Reference definitions: `[id]: target`.
        let l = line.trim_start();
        if let Some(after) = l.strip_prefix('[').and_then(|r| r.split_once("]:")) {
            if let Some(t) = after.1.split_whitespace().next() {
                out.push(t.to_string());
            }
        }
        // Inline code spans.
        for (k, span) in line.split('`').enumerate() {
            let looks_like_path = !span.is_empty()
                && !span.contains(char::is_whitespace)
                && (span.contains('/')
                    || Path::new(span).extension().is_some_and(|e| e.len() <= 8));
            if k % 2 == 1 && looks_like_path {
                out.push(span.to_string());
            }
        }
    }
    out
}

/// The skill's directory, as a descriptor to resolve its files from. Opened `O_PATH`
/// (no read right needed) and `O_NOFOLLOW`: the directory was resolved when the skill was
/// loaded, and a symlink put in its place since is not followed.
fn open_dir(dir: &Path) -> Result<OwnedFd, Refusal> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::open(dir, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => Refusal::Symlink,
        Errno::NOENT => Refusal::Missing,
        e => Refusal::Io(format!("the skill's directory: {e}")),
    })
}

/// Opens `rel` beneath `dir` for reading, confined by the kernel (see the module's
/// documentation), and checks the opened file: a regular file, with one link, at most
/// [`MAX_RESOURCE_BYTES`]. Returns it and its size.
fn open_checked(dir: &OwnedFd, rel: &str) -> Result<(OwnedFd, u64), Refusal> {
    open_checked_stat(dir, rel).map(|(fd, size, _)| (fd, size))
}

/// [`open_checked`], with the version of the opened file (see [`Version`]).
fn open_checked_stat(dir: &OwnedFd, rel: &str) -> Result<(OwnedFd, u64, Version), Refusal> {
    let fd = open_beneath(dir, rel)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Refusal::Io(e.to_string()))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Refusal::NotRegular);
    }
    // A hard link is a second name of the same file, and the other may be anywhere on the
    // file system (a secret linked into a skill's directory); no path check can tell.
    #[allow(clippy::useless_conversion)] // nlink is u32 on some targets
    let links = u64::from(st.st_nlink);
    if links > 1 {
        return Err(Refusal::HardLinked(links));
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    if size > MAX_RESOURCE_BYTES {
        return Err(Refusal::TooLarge);
    }
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths differ by target
    let version = Version {
        size,
        file: (st.st_dev as u64, st.st_ino as u64),
        modified: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        changed: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    };
    Ok((fd, size, version))
}

/// Flags every open of a resource uses: read only; `O_NONBLOCK` so that a FIFO planted
/// under a referenced name cannot hang the server in `open` (it is then refused as not a
/// regular file); `O_NOFOLLOW` on the last component too.
fn read_flags() -> OFlags {
    OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::NOFOLLOW
}

/// `openat2(dir, rel, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`: the
/// kernel refuses a path that leaves `dir` (`EXDEV`) or meets a symlink (`ELOOP`).
fn open_beneath(dir: &OwnedFd, rel: &str) -> Result<OwnedFd, Refusal> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(dir, rel, read_flags(), Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        // Kernels before 5.6 have no openat2: walk the path one component at a time instead.
        Err(Errno::NOSYS) => open_walk(dir, rel),
        Err(e) => Err(refusal_of(e)),
    }
}

/// The fallback for kernels without `openat2` (before 5.6): each component is opened with
/// `openat(.., O_NOFOLLOW)` from the descriptor of the one before, directories with
/// `O_DIRECTORY`, so no symlink is followed anywhere; `rel` has no `..` and no empty
/// components ([`clean_relative`]), so the walk cannot climb out of `dir`.
fn open_walk(dir: &OwnedFd, rel: &str) -> Result<OwnedFd, Refusal> {
    let parts: Vec<&str> = rel.split('/').collect();
    let Some((last, dirs)) = parts.split_last() else {
        return Err(Refusal::Hostile("empty path"));
    };
    if parts.iter().any(|p| p.is_empty() || *p == "." || *p == "..") {
        return Err(Refusal::Outside);
    }
    let step = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut cur: Option<OwnedFd> = None;
    for d in dirs {
        let next = match &cur {
            Some(c) => rustix::fs::openat(c, *d, step, Mode::empty()),
            None => rustix::fs::openat(dir, *d, step, Mode::empty()),
        };
        // O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR (or ELOOP).
        cur = Some(next.map_err(|e| match e {
            Errno::NOTDIR => Refusal::Symlink,
            e => refusal_of(e),
        })?);
    }
    let opened = match &cur {
        Some(c) => rustix::fs::openat(c, *last, read_flags(), Mode::empty()),
        None => rustix::fs::openat(dir, *last, read_flags(), Mode::empty()),
    };
    opened.map_err(refusal_of)
}

fn refusal_of(e: Errno) -> Refusal {
    match e {
        Errno::XDEV => Refusal::Outside,
        Errno::LOOP => Refusal::Symlink,
        Errno::NOENT | Errno::NOTDIR => Refusal::Missing,
        e => Refusal::Io(e.to_string()),
    }
}

/// The MIME type a file's extension names, if known.
fn mime_of(path: &str) -> Option<&'static str> {
    let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "md" | "markdown" => "text/markdown",
        "txt" | "text" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "py" => "text/x-python",
        "sh" | "bash" => "text/x-shellscript",
        "js" | "mjs" => "text/javascript",
        "ts" => "text/x-typescript",
        "rb" => "text/x-ruby",
        "pl" => "text/x-perl",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "toml" => "application/toml",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => return None,
    })
}

/// Whether a MIME type is text (served as `text` when the bytes are UTF-8; otherwise, and for
/// every other type, as a base64 `blob`).
fn is_textual(mime: &str) -> bool {
    mime.starts_with("text/")
        || matches!(
            mime,
            "application/json"
                | "application/yaml"
                | "application/toml"
                | "application/xml"
                | "image/svg+xml"
        )
}

/// Standard base64 with padding, as `blob` contents are (the `base64` crate).
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_between_polls() {
        let v = |size, mtime| Version { size, file: (1, 2), modified: (mtime, 0), changed: (0, 0) };
        let before = Versions::from([("a".to_string(), v(10, 1)), ("b".to_string(), v(5, 1))]);
        assert_eq!(changes(&before, &before), (false, BTreeSet::new()));
        // The content alone: an update, not a change of the list.
        let now = Versions::from([("a".to_string(), v(10, 2)), ("b".to_string(), v(5, 1))]);
        assert_eq!(changes(&before, &now), (false, BTreeSet::from(["a".to_string()])));
        // Resized: both.
        let now = Versions::from([("a".to_string(), v(11, 1)), ("b".to_string(), v(5, 1))]);
        assert_eq!(changes(&before, &now), (true, BTreeSet::from(["a".to_string()])));
        // Removed and added: both, for each.
        let now = Versions::from([("a".to_string(), v(10, 1)), ("c".to_string(), v(5, 1))]);
        let both = BTreeSet::from(["b".to_string(), "c".to_string()]);
        assert_eq!(changes(&before, &now), (true, both));
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn references_are_links_definitions_and_path_like_code() {
        let md = "See [forms](references/forms.md \"Forms\") and ![logo](./assets/logo.png).\n\
                  [api]: references/api.md#top\n\
                  Run `scripts/fill.py` with `--flag`; read `notes.txt`, not `two words`.\n\
                  [web](https://example.com/x.md) [mail](mailto:a@b) [up](../secret) \
                  [abs](/etc/passwd) [enc](%2e%2e/x) [frag](#section)\n";
        let got: BTreeSet<String> = references(md).iter().filter_map(|t| link_path(t)).collect();
        let want: BTreeSet<String> = [
            "references/forms.md",
            "assets/logo.png",
            "references/api.md",
            "scripts/fill.py",
            "notes.txt",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn hostile_uris_are_refused_before_any_file_is_touched() {
        for uri in [
            "skill://s/../x",
            "skill://s/a/../../x",
            "skill://s/%2e%2e/x",
            "skill://s//etc/passwd",
            "skill://s/./SKILL.md",
            "skill://s/a//b",
            "skill://s/a\0b",
            "skill://s/a\\..\\b",
            "skill://s/SKILL.md?x=1",
        ] {
            assert!(matches!(parse_uri(uri), Err(Refusal::Hostile(_))), "{uri:?}");
        }
        let long = format!("skill://s/{}", "a/".repeat(600));
        assert!(matches!(parse_uri(&long), Err(Refusal::Hostile(_))));
        for uri in ["file:///etc/passwd", "skill://", "skill://s", "skill:///SKILL.md"] {
            assert!(matches!(parse_uri(uri), Err(Refusal::Unknown(_))), "{uri:?}");
        }
        assert_eq!(parse_uri("skill://s/references/a.md").ok(), Some(("s", "references/a.md")));
    }

    #[test]
    fn the_kernel_refuses_symlinks_and_escapes_in_both_open_paths() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("skill");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(root.path().join("secret"), "SECRET").unwrap();
        std::fs::write(dir.join("sub/ok.md"), "fine").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), dir.join("out.md")).unwrap();
        std::os::unix::fs::symlink("sub", dir.join("via")).unwrap();
        std::fs::hard_link(root.path().join("secret"), dir.join("hard.md")).unwrap();
        let fd = open_dir(&dir).unwrap();
        for open in [open_beneath, open_walk] {
            assert!(open(&fd, "sub/ok.md").is_ok());
            assert!(matches!(open(&fd, "out.md"), Err(Refusal::Symlink)));
            assert!(matches!(open(&fd, "via/ok.md"), Err(Refusal::Symlink)));
            assert!(matches!(open(&fd, "nothing.md"), Err(Refusal::Missing)));
        }
        assert!(matches!(open_beneath(&fd, "../secret"), Err(Refusal::Outside)));
        assert!(matches!(open_walk(&fd, "../secret"), Err(Refusal::Outside)));
        assert!(matches!(open_checked(&fd, "hard.md"), Err(Refusal::HardLinked(2))));
        assert!(matches!(open_checked(&fd, "sub"), Err(Refusal::NotRegular)));
    }
}
