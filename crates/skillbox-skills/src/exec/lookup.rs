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
                skillbox_audit::text::path(&p)
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::exec::testing::{def, granted, workspace};
    use crate::security::TrustLevel;

    /// A directory outside every system directory holding an executable `tool`, and the
    /// policy of a user-verified run in `ws`, which cannot read that directory.
    fn setup(ws: &Path) -> (tempfile::TempDir, PathBuf, Policy) {
        let bin = tempfile::tempdir().expect("tempdir");
        let dir = bin.path().canonicalize().expect("canonical");
        std::fs::write(dir.join("tool"), "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(dir.join("tool"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let d = def(json!({"name": "s", "type": "command", "command": "tool"}));
        let (_, grant) = granted(TrustLevel::UserVerified, ws, &d);
        let policy = crate::exec::policy::policy_for(&grant, Path::new("/nonexistent"), ws, None);
        (bin, dir, policy)
    }

    #[test]
    fn a_path_directory_the_run_cannot_read_is_not_searched() {
        let (_w, ws) = workspace();
        let (_bin, dir, mut policy) = setup(&ws);
        assert!(!policy.read.iter().any(|r| dir.starts_with(r)), "the run cannot read it");
        let path = std::env::join_paths([&dir]).expect("PATH");
        let err = resolve_command("tool", &ws, Some(&path), &policy).unwrap_err();
        assert_eq!(
            err,
            format!("command `tool` was not found in PATH ({})", skillbox_audit::text::path(&dir))
        );

        // Readable by the run: found there, with the command's own arguments.
        policy.read.push(dir.clone());
        let found = resolve_command("tool --flag 'a b'", &ws, Some(&path), &policy);
        assert_eq!(found, Ok((dir.join("tool"), vec!["--flag".to_string(), "a b".to_string()])));
        // Files not confined: any directory.
        policy.read.pop();
        policy.confine_files = false;
        assert_eq!(
            resolve_command("tool", &ws, Some(&path), &policy).map(|x| x.0),
            Ok(dir.join("tool"))
        );
    }

    #[test]
    fn relative_and_system_programs_and_bad_commands() {
        let (_w, ws) = workspace();
        let (_bin, _dir, policy) = setup(&ws);
        // A bare name without PATH: the default PATH, system directories.
        let (p, _) = resolve_command("sh", &ws, None, &policy).expect("sh is found");
        assert!(p.ends_with("sh") && (p.starts_with("/usr/bin") || p.starts_with("/bin")), "{p:?}");
        // A relative PATH entry is never searched.
        let rel = OsStr::new("bin:.");
        assert!(resolve_command("sh", &ws, Some(rel), &policy).is_err());
        // A path with a slash is the workspace's, and must be executable.
        std::fs::write(ws.join("script"), "echo").expect("write");
        let err = resolve_command("./script", &ws, None, &policy).unwrap_err();
        let shown = ws.join("./script");
        assert_eq!(
            err,
            format!(
                "command `./script` is not an executable file (looked at {})",
                skillbox_audit::text::path(&shown)
            )
        );
        assert_eq!(resolve_command("", &ws, None, &policy).unwrap_err(), "the command is empty");
        let err = resolve_command("a \"b", &ws, None, &policy).unwrap_err();
        assert!(err.starts_with("cannot split command"), "{err}");
    }
}
