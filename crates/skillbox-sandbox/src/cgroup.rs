//! A pids cgroup per run, where this process may create one (root, or a delegated subtree):
//! the kernel then bounds the number of processes of the whole run, which `RLIMIT_NPROC`
//! cannot do (it counts every process of the user, and root ignores it).
//!
//! The child joins the group itself, between clone and exec, by writing `0` to the
//! `cgroup.procs` descriptor opened here, so every process it creates is counted from the
//! start.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// A cgroup created for one run, removed when dropped.
pub struct RunCgroup {
    dir: PathBuf,
    /// `cgroup.procs` of the group, open for writing; the child writes `0` to join.
    pub procs: OwnedFd,
}

/// Where this process's pids cgroup lives, if it can create groups beneath it.
fn pids_parent() -> Option<&'static PathBuf> {
    static PARENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    PARENT.get_or_init(find_pids_parent).as_ref()
}

fn find_pids_parent() -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // cgroup v1: a hierarchy whose options include `pids`.
    let v1_rel = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrl.split(',').any(|c| c == "pids").then(|| path.to_string())
    });
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        let (mount_point, fstype, opts) =
            (fields.get(4)?, fields.get(sep + 1)?, fields.get(sep + 3).unwrap_or(&""));
        let dir = match (*fstype, &v1_rel) {
            ("cgroup", Some(rel)) if opts.split(',').any(|o| o == "pids") => {
                Path::new(mount_point).join(rel.trim_start_matches('/'))
            }
            ("cgroup2", _) => {
                let rel = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
                let dir = Path::new(mount_point).join(rel.trim_start_matches('/'));
                let ctrls = std::fs::read_to_string(dir.join("cgroup.subtree_control")).ok()?;
                if !ctrls.split_whitespace().any(|c| c == "pids") {
                    continue;
                }
                dir
            }
            _ => continue,
        };
        if writable(&dir) {
            return Some(dir);
        }
    }
    None
}

fn writable(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return false };
    // SAFETY: access() only reads the NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// True when runs can be given a pids cgroup on this host.
pub fn available() -> bool {
    pids_parent().is_some()
}

impl RunCgroup {
    /// Creates a group that allows at most `max` processes at once.
    pub fn with_pids_max(max: u64) -> std::io::Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let parent = pids_parent().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::Unsupported, "no writable pids cgroup")
        })?;
        let dir = parent.join(format!(
            "skillbox-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir)?;
        let made = Self::open(dir.clone(), max);
        if made.is_err() {
            let _ = std::fs::remove_dir(&dir);
        }
        made
    }

    fn open(dir: PathBuf, max: u64) -> std::io::Result<Self> {
        std::fs::write(dir.join("pids.max"), max.to_string())?;
        let procs = std::fs::OpenOptions::new().write(true).open(dir.join("cgroup.procs"))?;
        Ok(Self { dir, procs: OwnedFd::from(procs) })
    }
}

impl RunCgroup {
    /// Removes the group once its processes (already killed) have left it, waiting at most
    /// about a second. A group that cannot be removed is left behind, empty or not; it holds
    /// no process of a finished run that is still running.
    pub async fn remove(self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        // Best effort for a run that was cancelled: the group is usually empty by now.
        let _ = std::fs::remove_dir(&self.dir);
    }
}
