//! Finding the program of a command line, the way the run itself could.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use skillbox_sandbox::Policy;

use super::environment::DEFAULT_PATH;

/// Splits `command` into a program and leading arguments (without a shell) and finds the
/// program: a path with a `/` is taken relative to the workspace, a bare name is searched in
/// the child's `PATH`, among the directories the policy lets the child read (an inherited
/// `PATH` may name a directory under a home the child cannot see).
pub(super) fn resolve_command(
    command: &str,
    workspace: &Path,
    path_var: Option<&OsStr>,
    policy: &Policy,
) -> Result<(PathBuf, Vec<String>), String> {
    let mut words = shell_words::split(command)
        .map_err(|e| format!("cannot split command {command:?}: {e}"))?
        .into_iter();
    let program = words.next().ok_or_else(|| "the command is empty".to_string())?;
    let rest: Vec<String> = words.collect();
    if program.contains('/') {
        let p = workspace.join(&program);
        return if is_executable(&p) {
            Ok((p, rest))
        } else {
            Err(format!(
                "command `{program}` is not an executable file (looked at {})",
                p.display()
            ))
        };
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let readable = |d: &Path| {
        !policy.confine_files
            || skillbox_sandbox::SYSTEM_READ.iter().any(|s| d.starts_with(s))
            || policy.read.iter().chain(&policy.write).any(|r| d.starts_with(r))
    };
    for dir in std::env::split_paths(path_var) {
        if !dir.is_absolute() || !readable(&dir) {
            continue;
        }
        let p = dir.join(&program);
        if is_executable(&p) {
            return Ok((p, rest));
        }
    }
    Err(format!("command `{program}` was not found in PATH ({})", path_var.to_string_lossy()))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
