//! What a trust grant pins, read once, and the sealed copy a granted run executes.
//!
//! A grant raises a skill's level for the content a person reviewed. Two reads of that
//! content (one to check the digest, one by the interpreter to run it) would let a writer
//! swap the reviewed version for another in between; a digest that covers the skill file but
//! not the script its command runs would let anyone who can write the script change what runs
//! at the granted level. So:
//!
//! * a [`Snapshot`] reads every byte a grant pins exactly once: a JSON skill's file and every
//!   file its command lines name inside the workspace or beside the skill file (the scripts it
//!   runs); an Agent Skill's whole directory. Links are followed only within those places; a
//!   link leading out of them cannot be pinned, and the grant cannot be made or holds no more;
//! * its digest is what a grant is made to and checked against;
//! * a granted run executes a sealed copy written from those same bytes into skillbox's home
//!   (which no run may write), with its definition parsed from the same bytes: there is no
//!   second read, and no stale definition from an earlier load.
//!
//! Not pinned (and said so in docs/security-model.md): programs found on `PATH` and files in
//! system directories (not writable by runs), files named only by a parameter (input, not
//! code), and files a pinned script reads in turn (a module it imports, a file it sources). A
//! sealed script runs from the sealed copy's directory, so a sibling module it would import
//! by its own location is not found there rather than loaded unpinned; put such a skill in an
//! Agent Skill directory, which is pinned and sealed whole.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};

use crate::format::SkillDef;
use crate::registry::LoadedSkill;
use crate::trust::TrustError;

/// Most bytes one snapshot holds (they are held in memory and copied once per content).
pub const MAX_SNAPSHOT_BYTES: u64 = 32 * 1024 * 1024;
/// Most files one snapshot holds.
pub const MAX_SNAPSHOT_FILES: usize = 4096;
/// The prefix of every digest made by this scheme. Grants made before scripts were pinned
/// carry `sha256:` and are reported as made by an older scheme, not as changed content.
pub const DIGEST_PREFIX: &str = "sha256v2:";
/// Where sealed copies are kept under skillbox's home.
const SEALED_DIR: &str = "sealed";

/// Every byte a grant pins, read once, with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `sha256v2:HEX` of the content.
    pub digest: String,
    content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// A JSON skill: its file, and the files its command lines name.
    Json { file: PathBuf, bytes: Vec<u8>, pins: Vec<Pin> },
    /// An Agent Skill: every file of its directory, by path relative to it.
    Dir { dir: PathBuf, files: Vec<Pinned> },
}

/// A file named by a word of a JSON skill's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pin {
    /// The word as written.
    word: String,
    file: Pinned,
}

/// One pinned file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pinned {
    /// Where it goes in the sealed copy, relative to it.
    rel: PathBuf,
    bytes: Vec<u8>,
    executable: bool,
}

/// Bytes and files read so far, against the bounds.
struct Tally {
    bytes: u64,
    files: usize,
    subject: PathBuf,
}

impl Tally {
    fn add(&mut self, len: u64) -> Result<(), TrustError> {
        self.bytes = self.bytes.saturating_add(len);
        self.files += 1;
        if self.bytes > MAX_SNAPSHOT_BYTES || self.files > MAX_SNAPSHOT_FILES {
            return Err(TrustError::Digest {
                path: self.subject.clone(),
                reason: format!(
                    "a grant pins at most {MAX_SNAPSHOT_BYTES} bytes in {MAX_SNAPSHOT_FILES} \
                     files, and this content holds more"
                ),
            });
        }
        Ok(())
    }
}

impl Snapshot {
    /// Reads what a grant to `skill` pins, once. `workspace` is where the skill runs: a JSON
    /// skill's relative command words name files there.
    pub fn take(skill: &LoadedSkill, workspace: &Path) -> Result<Self, TrustError> {
        match &skill.agent {
            Some(agent) => Self::of_dir(&agent.dir),
            None => Self::of_json(&skill.path, workspace),
        }
    }

    /// What a grant to this content is pinned to.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn of_json(file: &Path, workspace: &Path) -> Result<Self, TrustError> {
        let fail = |reason: String| TrustError::Digest { path: file.to_path_buf(), reason };
        let bytes = crate::registry::read_bounded(file).map_err(|d| fail(d.reason))?;
        let def = crate::format::parse_skill(file, &bytes)
            .map_err(|ds| fail(format!("the skill file no longer loads: {}", ds[0])))?;
        let mut tally = Tally { bytes: bytes.len() as u64, files: 1, subject: file.to_path_buf() };
        let workspace = skillbox_sandbox::resolve(workspace);
        let beside = skillbox_sandbox::resolve(file.parent().unwrap_or(Path::new("/")));
        let mut pins: Vec<Pin> = Vec::new();
        for word in command_words(&def) {
            if pins.iter().any(|p| p.word == word) {
                continue;
            }
            let Some((base, rel)) = pinned_place(&word, &workspace, &beside).map_err(fail)? else {
                continue;
            };
            let (data, executable) = read_beneath(&base, &rel, &mut tally)?;
            let name = rel.file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("file"));
            let rel = PathBuf::from("pin").join(pins.len().to_string()).join(name);
            pins.push(Pin { word, file: Pinned { rel, bytes: data, executable } });
        }
        let mut h = Sha256::new();
        h.update(b"skillbox-json/2\0");
        frame(&mut h, b"file", false, &bytes);
        for p in &pins {
            frame(&mut h, p.word.as_bytes(), p.file.executable, &p.file.bytes);
        }
        Ok(Self {
            digest: format!("{DIGEST_PREFIX}{}", hex(&h.finalize())),
            content: Content::Json { file: file.to_path_buf(), bytes, pins },
        })
    }

    fn of_dir(dir: &Path) -> Result<Self, TrustError> {
        let fail = |reason: String| TrustError::Digest { path: dir.to_path_buf(), reason };
        let root = skillbox_sandbox::resolve(dir);
        let mut tally = Tally { bytes: 0, files: 0, subject: dir.to_path_buf() };
        let mut files = Vec::new();
        let walk = walkdir::WalkDir::new(&root).follow_links(false).sort_by_file_name();
        for entry in walk {
            let entry = entry.map_err(|e| fail(e.to_string()))?;
            let Ok(rel) = entry.path().strip_prefix(&root) else { continue };
            let kind = entry.file_type();
            let source = if kind.is_file() {
                rel.to_path_buf()
            } else if kind.is_symlink() {
                // A link is pinned by what it leads to, which must be a file of the directory.
                let target = std::fs::canonicalize(entry.path()).map_err(|e| {
                    fail(format!(
                        "{}: the link leads nowhere: {e}",
                        skillbox_audit::text::path(rel)
                    ))
                })?;
                let inside = target.strip_prefix(&root).map_err(|_| {
                    fail(format!(
                        "{} is a link to {}, outside the skill's directory: a grant cannot pin \
                         what it leads to (copy the file into the directory)",
                        skillbox_audit::text::path(rel),
                        skillbox_audit::text::path(&target)
                    ))
                })?;
                if target.is_dir() {
                    return Err(fail(format!(
                        "{} is a link to a directory: a grant pins files, not links to \
                         directories",
                        skillbox_audit::text::path(rel)
                    )));
                }
                inside.to_path_buf()
            } else {
                // Directories are implied by their files; FIFOs, sockets and devices hold no
                // code and are not read (a FIFO would block).
                continue;
            };
            let (bytes, executable) = read_beneath(&root, &source, &mut tally)?;
            files.push(Pinned { rel: rel.to_path_buf(), bytes, executable });
        }
        let mut h = Sha256::new();
        h.update(b"skillbox-agent/2\0");
        for f in &files {
            frame(&mut h, f.rel.as_os_str().as_encoded_bytes(), f.executable, &f.bytes);
        }
        Ok(Self {
            digest: format!("{DIGEST_PREFIX}{}", hex(&h.finalize())),
            content: Content::Dir { dir: dir.to_path_buf(), files },
        })
    }

    /// The sealed copy of this content under skillbox's `home`: written once per content
    /// (by digest) from this snapshot's bytes, then reused. Files are read-only, and no run
    /// may write skillbox's home. Returned held ([`InUse`]): [`prune`] leaves it alone, in
    /// this process or any other, until the hold is dropped.
    pub fn seal(&self, home: &Path) -> Result<(PathBuf, InUse), TrustError> {
        // A prune may remove the copy between its writing (or finding) and the hold: then
        // it is written again. Twice in a row would take a prune per millisecond.
        for _ in 0..3 {
            let dest = self.seal_unheld(home)?;
            match hold(&dest) {
                Ok(Some(held)) => return Ok((dest, held)),
                Ok(None) => continue,
                Err(source) => return Err(TrustError::Seal { path: dest, source }),
            }
        }
        let path = home.join(SEALED_DIR);
        Err(TrustError::Seal { path, source: std::io::Error::other("removed while being sealed") })
    }

    fn seal_unheld(&self, home: &Path) -> Result<PathBuf, TrustError> {
        let store = home.join(SEALED_DIR);
        let hexdigest = self.digest.strip_prefix(DIGEST_PREFIX).unwrap_or(&self.digest);
        let dest = store.join(hexdigest);
        if dest.is_dir() {
            return Ok(dest);
        }
        let fail = |source: std::io::Error| TrustError::Seal { path: dest.clone(), source };
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&store).map_err(fail)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{}-", std::process::id()))
            .tempdir_in(&store)
            .map_err(fail)?;
        for f in self.files() {
            let path = tmp.path().join(&f.rel);
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(fail)?;
            }
            let mode = if f.executable { 0o500 } else { 0o400 };
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(fail)?;
            out.write_all(&f.bytes).map_err(fail)?;
            out.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(fail)?;
        }
        let tmp = tmp.keep();
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            // Another process sealed the same content meanwhile: theirs is the same bytes.
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dest)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(fail(e))
            }
        }
    }

    fn files(&self) -> Vec<&Pinned> {
        match &self.content {
            Content::Json { pins, .. } => pins.iter().map(|p| &p.file).collect(),
            Content::Dir { files, .. } => files.iter().collect(),
        }
    }

    /// `skill` as the sealed copy at `sealed` defines it: its definition parsed from this
    /// snapshot's bytes, and every pinned file it runs taken from the copy.
    pub fn sealed_skill(
        &self,
        skill: &LoadedSkill,
        sealed: &Path,
    ) -> Result<LoadedSkill, TrustError> {
        let def = match &self.content {
            Content::Json { file, bytes, pins } => {
                let fail = |reason: String| TrustError::Digest { path: file.clone(), reason };
                let mut def = crate::format::parse_skill(file, bytes)
                    .map_err(|ds| fail(format!("the skill file no longer loads: {}", ds[0])))?;
                let sealed_path =
                    |w: &str| pins.iter().find(|p| p.word == w).map(|p| sealed.join(&p.file.rel));
                replace_words(&mut def, |w| {
                    sealed_path(w).map(|p| p.to_string_lossy().into_owned())
                });
                def.own_dir = Some(sealed.to_path_buf());
                def
            }
            Content::Dir { dir, .. } => {
                let (_, defs, _) =
                    crate::agent::load_sealed(sealed, dir, crate::registry::read_bounded).map_err(
                        |ds| TrustError::Digest {
                            path: dir.clone(),
                            reason: format!("the sealed skill does not load: {}", ds[0]),
                        },
                    )?;
                defs.into_iter().find(|d| d.name == skill.def.name).ok_or_else(|| {
                    TrustError::Digest {
                        path: dir.clone(),
                        reason: format!("the sealed skill has no `{}`", skill.def.name),
                    }
                })?
            }
        };
        Ok(LoadedSkill {
            def,
            source: skill.source,
            path: skill.path.clone(),
            agent: skill.agent.clone(),
        })
    }
}

/// A sealed copy in use: a shared `flock` on its directory, held while a run executes from
/// it (and dropped with it). [`prune`] removes a copy only under an exclusive lock it gets
/// without waiting, so revoking a grant (or writing another, which prunes too) in this
/// process or another while a run uses the copy does not pull the files from under it.
#[derive(Debug)]
pub struct InUse {
    _dir: OwnedFd,
}

/// Holds the copy at `dest`; `None` if it was removed meanwhile (a directory a prune
/// removed has no links left once the prune's exclusive lock is released).
fn hold(dest: &Path) -> std::io::Result<Option<InUse>> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::open(dest, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Waits only while a prune removes this very copy (milliseconds).
    rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockShared)?;
    if rustix::fs::fstat(&dir)?.st_nlink == 0 {
        return Ok(None);
    }
    Ok(Some(InUse { _dir: dir }))
}

/// Removes the copy at `path` unless a run holds it ([`InUse`]); the exclusive lock is held
/// while the files go, so a run cannot take hold of a half-removed copy.
fn remove_unless_in_use(path: &Path) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(dir) = rustix::fs::open(path, flags, Mode::empty()) else { return };
    let exclusive = rustix::fs::FlockOperation::NonBlockingLockExclusive;
    if rustix::fs::flock(&dir, exclusive).is_err() {
        tracing::debug!(path = %path.display(), "a sealed copy in use is kept");
        return;
    }
    let _ = std::fs::remove_dir_all(path);
}

/// Removes the sealed copies under `home` whose digest is not in `keep` and that no run
/// holds, and copies a process that is gone left half written.
pub fn prune(home: &Path, keep: &[&str]) {
    let Ok(entries) = std::fs::read_dir(home.join(SEALED_DIR)) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stale = match name.strip_prefix(".tmp-") {
            Some(rest) => {
                rest.split('-').next().and_then(|pid| pid.parse::<u32>().ok()).is_some_and(|pid| {
                    pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()
                })
            }
            None => !keep.iter().any(|d| d.strip_prefix(DIGEST_PREFIX) == Some(name.as_str())),
        };
        if stale {
            remove_unless_in_use(&e.path());
        }
    }
}

/// Every literal word of a skill's command lines: `command` split as a shell would, `args`,
/// and the fallbacks'. Words holding a `{placeholder}` are input, not names of code.
fn command_words(def: &SkillDef) -> Vec<String> {
    let mut out = Vec::new();
    let mut push_line = |program: Option<&str>, args: &[String]| {
        let mut words: Vec<String> = Vec::new();
        if let Some(p) = program {
            words.extend(shell_words::split(p).unwrap_or_default());
        }
        let first = words.first().cloned();
        words.extend(args.iter().cloned());
        for (i, w) in words.into_iter().enumerate() {
            // The program itself names a file only when written as a path; a bare name is
            // looked up on PATH.
            let bare_program = i == 0 && first.is_some() && !w.contains('/');
            if !w.contains('{') && !w.is_empty() && !bare_program {
                out.push(w);
            }
        }
    };
    push_line(def.command.as_deref(), &def.args);
    let r = &def.resilience;
    if let Some(fc) = &r.fallback_command {
        push_line(Some(fc), &[]);
    }
    for f in r.fallback_commands.iter().flatten() {
        push_line(Some(&f.command), &f.args);
    }
    out
}

/// Replaces every literal command word `f` maps, in the command, its arguments and the
/// fallbacks.
fn replace_words(def: &mut SkillDef, f: impl Fn(&str) -> Option<String>) {
    let map_line = |line: &str| -> String {
        match shell_words::split(line) {
            Ok(words) => {
                let words: Vec<String> =
                    words.iter().map(|w| f(w).unwrap_or_else(|| w.clone())).collect();
                shell_words::join(words)
            }
            Err(_) => line.to_string(),
        }
    };
    if let Some(c) = &def.command {
        def.command = Some(map_line(c));
    }
    for a in &mut def.args {
        if let Some(n) = f(a) {
            *a = n;
        }
    }
    if let Some(fc) = &def.resilience.fallback_command {
        def.resilience.fallback_command = Some(map_line(fc));
    }
    for fb in def.resilience.fallback_commands.iter_mut().flatten() {
        fb.command = map_line(&fb.command);
        for a in &mut fb.args {
            if let Some(n) = f(a) {
                *a = n;
            }
        }
    }
}

/// Where the file a command word names is pinned from: `(base, path relative to it)` when
/// the word is, as a whole, the path of an existing regular file inside the workspace or the
/// skill file's directory (relative words are taken from the workspace, where the command
/// runs). `None` for words that name nothing there (options, text, files elsewhere). An
/// error when the word names such a place but a link leads out of it.
fn pinned_place(
    word: &str,
    workspace: &Path,
    beside: &Path,
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    let lexical = skillbox_sandbox::normalize(&workspace.join(word));
    let inside = |p: &Path| [workspace, beside].into_iter().find(|b| p.starts_with(b));
    let Some(base) = inside(&lexical) else { return Ok(None) };
    if !std::fs::metadata(&lexical).is_ok_and(|m| m.is_file()) {
        return Ok(None);
    }
    let target = std::fs::canonicalize(&lexical).map_err(|e| format!("`{word}`: {e}"))?;
    if !target.starts_with(base) {
        return Err(format!(
            "`{word}` is a link to {}, outside {}: a grant cannot pin what it leads to",
            skillbox_audit::text::path(&target),
            skillbox_audit::text::path(base)
        ));
    }
    let rel = target.strip_prefix(base).map(Path::to_path_buf).map_err(|e| e.to_string())?;
    Ok(Some((base.to_path_buf(), rel)))
}

/// The bytes and execute bit of the regular file `rel` beneath `base`, opened without
/// following any link and without leaving `base`, read to its end within the tally's bounds.
fn read_beneath(base: &Path, rel: &Path, tally: &mut Tally) -> Result<(Vec<u8>, bool), TrustError> {
    let path = base.join(rel);
    let fail = |reason: String| TrustError::Digest { path: path.clone(), reason };
    let dir =
        rustix::fs::open(base, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| fail(e.to_string()))?;
    let fd: OwnedFd = rustix::fs::openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| fail(format!("cannot open it without following a link: {e}")))?;
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let room = MAX_SNAPSHOT_BYTES.saturating_sub(tally.bytes);
    let mut bytes = Vec::with_capacity(meta.len().min(room) as usize);
    file.take(room + 1).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()))?;
    tally.add(bytes.len() as u64)?;
    Ok((bytes, meta.permissions().mode() & 0o111 != 0))
}

/// One entry of a digest: its name, its execute bit, its length and its bytes, each closed,
/// so that no two different contents frame to the same stream.
fn frame(h: &mut Sha256, name: &[u8], executable: bool, bytes: &[u8]) {
    h.update(name);
    h.update([0, u8::from(executable), 0]);
    h.update(bytes.len().to_string().as_bytes());
    h.update([0]);
    h.update(bytes);
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}
