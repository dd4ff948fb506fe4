//! Rendering of `prompt_inline` and `conversation` skills. skillbox calls no model: the
//! rendered prompt is the result.
//!
//! Context files are read by skillbox itself, so the rule that they come only from paths the
//! skill may read is enforced here, in the reader: symlinks are never followed, and every
//! file must lie under a granted read path.

use std::io::Read;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::format::SkillDef;
use crate::params::{substitute, Params};

const DEFAULT_MAX_FILES: usize = 20;
const DEFAULT_MAX_FILE_KB: u64 = 100;
/// Entries visited while looking for context files, so a huge tree cannot stall a render.
const MAX_WALK_ENTRIES: usize = 100_000;
/// Placeholder in a template that marks where context files go.
pub const CONTEXT_PLACEHOLDER: &str = "{context_files}";

/// Renders the skill's template with `params`, then adds its context files.
pub(crate) fn render(
    skill: &SkillDef,
    params: &Params,
    workspace: &Path,
    readable: &[PathBuf],
) -> Result<String, String> {
    let template = skill.prompt_template.as_deref().unwrap_or("");
    let block = match &skill.context_files {
        Some(cf) if skill.skill_type == crate::format::SkillType::Conversation => {
            Some(context_block(cf, workspace, readable)?)
        }
        _ => None,
    };
    // Split first, so that a parameter value containing the placeholder stays text.
    let parts: Vec<String> =
        template.split(CONTEXT_PLACEHOLDER).map(|p| substitute(p, skill, params)).collect();
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
) -> Result<String, String> {
    let include = globs(&cf.patterns)?;
    let mut excludes = cf.exclude_patterns.clone();
    excludes.push(".git/**".into());
    let exclude = globs(&excludes)?;
    let max_files = cf.max_files.unwrap_or(DEFAULT_MAX_FILES);
    let max_bytes = cf.max_file_size_kb.unwrap_or(DEFAULT_MAX_FILE_KB) * 1024;

    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    let walker = walkdir::WalkDir::new(workspace).follow_links(false).sort_by_file_name();
    for entry in walker.into_iter().take(MAX_WALK_ENTRIES) {
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

    let mut block = String::new();
    for (rel, abs) in found {
        let Some(text) = read_text(&abs, max_bytes) else { continue };
        block.push_str(&format!("--- {} ---\n{}", rel.display(), text));
        if !text.ends_with('\n') {
            block.push('\n');
        }
    }
    Ok(block)
}

/// Reads a regular file of at most `max` bytes as UTF-8, refusing to follow a symlink that
/// replaced it after the walk.
fn read_text(path: &Path, max: u64) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut s = String::new();
    f.take(max).read_to_string(&mut s).ok()?;
    Some(s)
}
