//! Rendering of `prompt_inline` and `conversation` skills. skillbox calls no model: the
//! rendered prompt is the result.
//!
//! Context files are read by skillbox itself, so the rule that they come only from paths the
//! skill may read is enforced here, in the reader: every file must lie under a granted read
//! path and outside every hidden one (keys, credentials, skillbox's own files: see
//! `crate::protect`), and each is opened beneath the workspace without following any link
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a directory swapped for a
//! link after the walk leads nowhere.

use std::io::Read;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::format::SkillDef;
use crate::params::{substitute, substituted_len, Params, MAX_RENDERED_BYTES};

const DEFAULT_MAX_FILES: usize = 20;
const DEFAULT_MAX_FILE_KB: u64 = 100;
/// Entries visited while looking for context files, so a huge tree cannot stall a render.
const MAX_WALK_ENTRIES: usize = 100_000;
/// Placeholder in a template that marks where context files go.
pub(crate) const CONTEXT_PLACEHOLDER: &str = "{context_files}";

/// Renders the skill's template with `params`, then adds its context files.
pub(crate) fn render(
    skill: &SkillDef,
    params: &Params,
    workspace: &Path,
    grant: &crate::security::EffectiveGrant,
) -> Result<String, String> {
    let template = skill.prompt_template.as_deref().unwrap_or("");
    let block = match &skill.context_files {
        Some(cf) if skill.skill_type == crate::format::SkillType::Conversation => {
            Some(context_block(cf, workspace, &grant.file_read, &grant.hidden)?)
        }
        _ => None,
    };
    // Split first, so that a parameter value containing the placeholder stays text. The
    // size is known before anything is built: a template that repeats the placeholder
    // would otherwise copy the files that many times into memory.
    let pieces: Vec<&str> = template.split(CONTEXT_PLACEHOLDER).collect();
    let texts: usize = pieces.iter().map(|p| substituted_len(p, skill, params)).sum();
    let copies = match &block {
        Some(b) if pieces.len() > 1 => (pieces.len() - 1).saturating_mul(b.len()),
        Some(b) if !b.is_empty() => b.len() + 2,
        _ => (pieces.len() - 1).saturating_mul(CONTEXT_PLACEHOLDER.len()),
    };
    let total = texts.saturating_add(copies);
    if total > MAX_RENDERED_BYTES {
        return Err(format!(
            "the prompt would be {total} bytes ({} cop{} of {} bytes of context files); at most \
             {MAX_RENDERED_BYTES} bytes",
            pieces.len().saturating_sub(1).max(1),
            if pieces.len() == 2 { "y" } else { "ies" },
            block.as_ref().map_or(0, String::len)
        ));
    }
    let parts: Vec<String> = pieces.iter().map(|p| substitute(p, skill, params)).collect();
    let Some(block) = block else {
        return Ok(parts.join(CONTEXT_PLACEHOLDER));
    };
    if parts.len() > 1 {
        Ok(parts.join(&block))
    } else {
        let mut out = parts.concat();
        if !block.is_empty() {
            out.push_str("\n\n");
            out.push_str(&block);
        }
        Ok(out)
    }
}

fn globs(patterns: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| format!("invalid glob {p:?}: {e}"))?);
    }
    b.build().map_err(|e| e.to_string())
}

fn context_block(
    cf: &crate::format::ContextFiles,
    workspace: &Path,
    readable: &[PathBuf],
    hidden: &[PathBuf],
) -> Result<String, String> {
    let workspace = skillbox_sandbox::resolve(workspace);
    let workspace = workspace.as_path();
    let include = globs(&cf.patterns)?;
    let mut excludes = cf.exclude_patterns.clone();
    excludes.push(".git/**".into());
    let exclude = globs(&excludes)?;
    let max_files = cf.max_files.unwrap_or(DEFAULT_MAX_FILES);
    let max_bytes = cf
        .max_file_size_kb
        .unwrap_or(DEFAULT_MAX_FILE_KB)
        .saturating_mul(1024)
        .min(MAX_RENDERED_BYTES as u64);

    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    let walker = walkdir::WalkDir::new(workspace)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        // A hidden tree is not even listed.
        .filter_entry(|e| !hidden.iter().any(|h| e.path().starts_with(h)));
    for entry in walker.take(MAX_WALK_ENTRIES) {
        let Ok(entry) = entry else { continue };
        // Only regular files: a symlink could point anywhere.
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(workspace) else { continue };
        if !include.is_match(rel) || exclude.is_match(rel) {
            continue;
        }
        if !readable.iter().any(|r| entry.path().starts_with(r)) {
            continue;
        }
        found.push((rel.to_path_buf(), entry.path().to_path_buf()));
        if found.len() == max_files {
            break;
        }
    }

    let Ok(root) = std::fs::File::open(workspace) else { return Ok(String::new()) };
    let mut block = String::new();
    for (rel, _) in found {
        // Whatever the skill sets as its limits, the block stops growing past what a prompt
        // may hold; the render then refuses it.
        if block.len() > MAX_RENDERED_BYTES {
            break;
        }
        let Some(text) = read_text(&root, &rel, max_bytes) else { continue };
        block.push_str(&format!("--- {} ---\n{}", skillbox_audit::text::path(&rel), text));
        if !text.ends_with('\n') {
            block.push('\n');
        }
    }
    Ok(block)
}

/// Reads the regular file `rel` beneath the workspace `root`, of at most `max` bytes, as
/// UTF-8, without following any link on the way (one that replaced a file or a directory
/// after the walk leads nowhere) and without leaving the workspace.
fn read_text(root: &std::fs::File, rel: &Path, max: u64) -> Option<String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let fd = rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
    .ok()?;
    let f = std::fs::File::from(fd);
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut s = String::new();
    f.take(max).read_to_string(&mut s).ok()?;
    Some(s)
}
