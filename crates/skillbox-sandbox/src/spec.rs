use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

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
        if self.timeout.is_zero() {
            return bad("timeout must be positive");
        }
        Ok(())
    }
}
