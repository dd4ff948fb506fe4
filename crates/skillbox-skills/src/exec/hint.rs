//! The confinement hint: an explanation for a failure that looks like the kernel refused
//! something, with what the run was granted.

use std::path::PathBuf;

use skillbox_sandbox::ExitStatus;

use crate::security::EffectiveGrant;

/// Explains a failure that looks like a confinement refusal. The kernel does not tell the
/// supervisor which rule refused what (Landlock's audit records need root and auditd), so
/// this reads the errors the program printed (`stderr`): `EACCES` on a path is Landlock's
/// answer, `EROFS` the run's mount namespace's (a write or a change of metadata where the
/// run may only read), `EPERM` on a socket, fork or other system call is seccomp's,
/// `SIGSYS` is seccomp killing a foreign-architecture call.
pub(super) fn confinement_hint(
    status: ExitStatus,
    stderr: &str,
    grant: &EffectiveGrant,
) -> Option<String> {
    // Formatted only for a hint: most runs (every successful one) get none.
    let granted = || {
        format!(
            "this run was granted reads of {}, writes to {} (plus a private temp dir), network \
             {}, process creation {}",
            paths(&grant.file_read),
            paths(&grant.file_write),
            grant.network.as_str(),
            grant.process_spawn.as_str()
        )
    };
    if status == ExitStatus::Signaled(libc::SIGSYS) {
        return Some(format!(
            "confined: killed by the seccomp filter (a 32-bit or foreign-architecture system \
             call); {}",
            granted()
        ));
    }
    if !matches!(status, ExitStatus::Exited(c) if c != 0) {
        return None;
    }
    let err = stderr.to_lowercase();
    let files = err.contains("permission denied")
        || err.contains("eacces")
        || err.contains("read-only file system")
        || err.contains("erofs");
    let calls = err.contains("operation not permitted") || err.contains("eperm");
    let what = match (files, calls) {
        (true, true) => {
            "file access outside the grant (Landlock: \"Permission denied\"; a write \
                         where the run may only read: \"Read-only file system\") and a \
                         denied system call (seccomp: \"Operation not permitted\", e.g. a socket \
                         or a new process)"
        }
        (true, false) => {
            "file access outside the grant (Landlock answers \"Permission \
                          denied\"; a write or a change of mode, owner, times or attributes \
                          where the run may only read gets \"Read-only file system\")"
        }
        (false, true) => {
            "a denied system call (seccomp answers \"Operation not permitted\": a \
                          socket the network grant excludes, a new process, or a side door \
                          such as io_uring)"
        }
        (false, false) => return None,
    };
    let granted = granted();
    Some(format!(
        "confined: the errors suggest the kernel refused {what}; {granted}. To allow more, \
         declare it in the skill's security.permissions and run at a trust level that grants \
         it (see docs/security-model.md)"
    ))
}

fn paths(p: &[PathBuf]) -> String {
    if p.is_empty() {
        "nothing".into()
    } else {
        p.iter().map(|x| skillbox_audit::text::path(x).to_string()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::exec::testing::{def, granted, workspace};
    use crate::security::TrustLevel;

    #[test]
    fn a_hint_only_for_failures_that_look_like_a_kernel_refusal() {
        let (_w, ws) = workspace();
        let d = def(json!({"name": "s", "type": "command", "command": "true"}));
        let (_, grant) = granted(TrustLevel::Untrusted, &ws, &d);
        let failed = ExitStatus::Exited(1);
        let files = confinement_hint(failed, "open: Permission denied", &grant).expect("hint");
        assert!(files.contains("file access outside the grant"), "{files}");
        assert!(
            files.contains(&format!("reads of {}", skillbox_audit::text::path(&ws))),
            "{files}"
        );
        assert!(files.contains("writes to nothing") && files.contains("network none"), "{files}");
        let ro = confinement_hint(failed, "chmod: Read-only file system", &grant);
        assert!(ro.is_some_and(|h| h.contains("file access outside the grant")));
        let calls = confinement_hint(failed, "socket: Operation not permitted", &grant);
        assert!(calls.is_some_and(|h| h.contains("a denied system call")));
        let both = confinement_hint(failed, "EACCES and EPERM", &grant);
        assert!(both.is_some_and(|h| h.contains("and a denied system call")));
        let sigsys = confinement_hint(ExitStatus::Signaled(libc::SIGSYS), "", &grant);
        assert!(sigsys.is_some_and(|h| h.contains("killed by the seccomp filter")));
        // No hint: success, an unrelated failure, another signal, a timeout.
        assert_eq!(confinement_hint(ExitStatus::Exited(0), "Permission denied", &grant), None);
        assert_eq!(confinement_hint(failed, "No such file or directory", &grant), None);
        assert_eq!(confinement_hint(ExitStatus::Signaled(9), "Permission denied", &grant), None);
        assert_eq!(confinement_hint(ExitStatus::TimedOut, "Permission denied", &grant), None);
    }
}
