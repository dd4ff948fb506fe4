use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Most descriptors a spec may pass to its program (see [`ChildSpec::passed_fds`]).
pub const MAX_PASSED_FDS: usize = 4;

/// A descriptor to pass to a run's program (see [`ChildSpec::passed_fds`]). The run takes
/// it when it starts, and closes its copy in this process once the child has exec'd: the
/// program then holds the only copy of that end, so that its caller sees end-of-file on the
/// other end when the program is gone. A spec whose descriptors were taken cannot start
/// again.
#[derive(Clone)]
pub struct PassedFd(Arc<std::sync::Mutex<Option<OwnedFd>>>);

impl PassedFd {
    /// Wraps `fd`, which must not be 0, 1 or 2.
    pub fn new(fd: OwnedFd) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(fd))))
    }

    /// The descriptor, taken out; `None` if a run took it already.
    pub(crate) fn take(&self) -> Option<OwnedFd> {
        self.0.lock().ok()?.take()
    }
}

impl std::fmt::Debug for PassedFd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassedFd")
    }
}

/// Receives the pid of a run's first process (see [`ChildSpec::on_start`]). Called once per
/// run on the task that started it, right after the child exec'd and the run's reaper is
/// set; it must not block.
#[derive(Clone)]
pub struct StartSink(Arc<dyn Fn(i32) + Send + Sync>);

impl StartSink {
    /// A sink calling `f` with the pid, as this process's PID namespace numbers it.
    pub fn new(f: impl Fn(i32) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// Hands `pid` to the sink.
    pub(crate) fn take(&self, pid: i32) {
        (self.0)(pid)
    }
}

impl std::fmt::Debug for StartSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StartSink")
    }
}

/// Everything needed to start one confined child.
///
/// The spec is plain data so that it can be built, inspected and logged before anything is
/// started. `program` must be an absolute path: resolving a bare name against `PATH` is the
/// caller's decision, made where the caller can explain it, not a side effect of exec.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Absolute path of the program to execute.
    pub program: PathBuf,
    /// Arguments after `argv[0]`. Passed verbatim: no shell ever sees them.
    pub args: Vec<OsString>,
    /// The complete environment of the child. Nothing else is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory of the child.
    pub cwd: PathBuf,
    /// Wall-clock limit. When it passes, the child's whole process group is killed.
    pub timeout: Duration,
    /// Maximum bytes kept of each of stdout and stderr (split between head and tail).
    pub output_limit: usize,
    /// What the kernel allows the child and its descendants.
    pub policy: crate::Policy,
    /// Run even when the host lacks a mechanism the policy needs (Landlock, seccomp). The
    /// outcome's report then says what was not enforced. Off by default: a run never gets
    /// less isolation than asked for without someone saying so.
    pub allow_weaker: bool,
    /// Sees the child's output as it is read (see [`crate::OutputObserver`]); `None`: the
    /// output is only captured.
    pub observer: Option<crate::OutputObserver>,
    /// With [`crate::NetworkAccess::Loopback`]: receives the listener bound inside the
    /// run's network namespace, once the child has started and before it can connect.
    /// Without one, the listener is closed and the run's namespace has no open door.
    pub listener: Option<crate::ListenerSink>,
    /// Descriptors the program gets as 3, 4, ... in this order (at most
    /// [`MAX_PASSED_FDS`]), without close-on-exec; every other descriptor above 2 is still
    /// closed. Why: a long-lived program (an interpreter session) speaks a protocol with
    /// its caller on pipes of their own, apart from its stdout and stderr, which whatever
    /// it runs may write to. The caller keeps its own ends; the run takes these (see
    /// [`PassedFd`]) and closes them in the parent once the child has exec'd.
    pub passed_fds: Vec<PassedFd>,
    /// Receives the pid of the run's first process once it has started. Why: a caller that
    /// must signal the program while it runs (`SIGINT` to interrupt a call of an
    /// interpreter session) needs its pid; killing is still the run's own business, and a
    /// dropped run kills every process whatever the caller does with the pid.
    pub on_start: Option<StartSink>,
}

impl ChildSpec {
    /// A spec with an empty environment, a 10 s timeout, 1 MiB of output per stream, and the
    /// strict policy ([`crate::Policy::strict`]).
    pub fn new(program: impl Into<PathBuf>, cwd: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: cwd.into(),
            timeout: Duration::from_secs(10),
            output_limit: 1024 * 1024,
            policy: crate::Policy::strict(),
            allow_weaker: false,
            observer: None,
            listener: None,
            passed_fds: Vec::new(),
            on_start: None,
        }
    }

    /// Checks the spec for values the kernel cannot take, before anything is started.
    pub(crate) fn check(&self) -> Result<(), crate::SandboxError> {
        use std::os::unix::ffi::OsStrExt;
        let bad = |what: &str| Err(crate::SandboxError::InvalidSpec(what.to_string()));
        if !self.program.is_absolute() {
            return bad("program must be an absolute path");
        }
        if self.program.as_os_str().as_bytes().contains(&0) {
            return bad("program contains a NUL byte");
        }
        if self.args.iter().any(|a| a.as_bytes().contains(&0)) {
            return bad("an argument contains a NUL byte");
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.as_bytes().contains(&b'=') || k.as_bytes().contains(&0) {
                return bad("an environment variable name is empty or contains '=' or NUL");
            }
            if v.as_bytes().contains(&0) {
                return bad("an environment variable value contains a NUL byte");
            }
        }
        if !self.cwd.is_absolute() {
            return bad("cwd must be an absolute path");
        }
        if self.passed_fds.len() > MAX_PASSED_FDS {
            return bad("more passed descriptors than MAX_PASSED_FDS");
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive");
        }
        Ok(())
    }

    /// The passed descriptors, taken out of the spec for one run.
    pub(crate) fn take_passed(&self) -> Result<Vec<OwnedFd>, crate::SandboxError> {
        let bad = |what: &str| Err(crate::SandboxError::InvalidSpec(what.to_string()));
        let mut out = Vec::with_capacity(self.passed_fds.len());
        for p in &self.passed_fds {
            match p.take() {
                Some(fd) if fd.as_raw_fd() < 3 => {
                    return bad(
                        "a passed descriptor is 0, 1 or 2, which the child's stdio replaces",
                    )
                }
                Some(fd) => out.push(fd),
                None => return bad("a passed descriptor was taken by an earlier run"),
            }
        }
        Ok(out)
    }
}
