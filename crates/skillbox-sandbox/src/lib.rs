//! Confinement of one child process.
//!
//! This crate starts a single program with an explicit argv, environment, working directory
//! and [`Policy`], confines it and all its descendants with the kernel's own mechanisms,
//! captures its output within fixed bounds, enforces a wall-clock timeout, and reports which
//! mechanisms were actually in force ([`Enforcement`]).
//!
//! It deliberately knows nothing about skills, trust levels or agents: callers hand it a
//! [`ChildSpec`] and get a [`ChildOutcome`] back. Keeping that boundary small is what lets
//! the confinement code be read and reviewed on its own.
//!
//! # Mechanisms
//!
//! | what | how |
//! |---|---|
//! | files | Landlock allow-list built in the parent (`landlock` module); where it is missing, a root of the run's own (`mountns` module) |
//! | file metadata (mode, owner, times, attributes) | read-only mounts in the run's own mount namespace beside Landlock (`metadata` module) |
//! | other processes hidden | a procfs of the run's PID namespace on `/proc` (`metadata` module) |
//! | TCP | Landlock network rules |
//! | the one way out of a networked run | a network namespace of its own holding only loopback, with a listener passed back to the caller (`netns` module) |
//! | signals, abstract Unix sockets | Landlock scopes (ABI 6) |
//! | socket families, io_uring, namespaces, TIOCSTI, keyctl, bpf, ptrace, x32 | seccomp deny-list (`seccomp` module) |
//! | privileges | `no_new_privs`, all capabilities dropped |
//! | descriptors | `close_range` in the child, above stdio and the spec's passed descriptors |
//! | the whole tree | a new session, `setsid`/`setpgid` denied, the group killed at the end |
//! | limits | rlimits, hard = soft |
//! | total disk writes | supervision: the kernel's per-process write counters sampled every 50 ms (`diskio` module) |
//! | protected names planted where no grant can refuse them | taken away after the run, once its processes are gone (`planted` module) |
//!
//! The child is created with `clone(CLONE_VM | CLONE_VFORK)` (`spawn` module), never by
//! forking the embedding process, so the cost does not grow with the parent's memory.
//!
//! Where the host lacks Landlock (ABI 6) or seccomp, [`run()`] refuses with
//! [`SandboxError::Unsupported`], unless the spec sets [`ChildSpec::allow_weaker`].

mod ahead;
mod cgroup;
mod diagnose;
mod diskio;
mod grants;
mod landlock;
mod members;
mod metadata;
mod mountns;
mod netns;
mod output;
mod paths;
mod plan;
mod planted;
mod policy;
mod probe;
mod remove;
mod report;
mod run;
mod seccomp;
mod spawn;
mod spec;
mod supervisor;

pub use ahead::AheadGate;
pub use cgroup::sweep_stale_groups;
pub use landlock::MAX_GRANT_ENTRIES;
pub use landlock::{kernel_abi as landlock_abi, FULL_ABI as LANDLOCK_FULL_ABI};

/// What a test setting lowered in this process, when one did (`SKILLBOX_TEST_LANDLOCK_ABI`,
/// which may only lower the Landlock ABI used): every result and audit event of such a
/// process says so, since it describes a simulated host rather than this one.
pub fn simulated_host() -> Option<String> {
    landlock::test_cap().map(|cap| format!("SKILLBOX_TEST_LANDLOCK_ABI={cap}"))
}
pub use diagnose::{profile as host_profile, Finding, HostProfile, APPARMOR_INSTALL};
pub use netns::ListenerSink;
pub use output::{CapturedOutput, OutputObserver, Stream};
pub use paths::{normalize, resolve, resolve_beneath};
pub use plan::DECLARATIONS;
pub use planted::{Planted, PlantedEntry, PlantedFate, MAX_PLANTED_LISTED, MAX_SWEEP_ENTRIES};
pub use policy::{
    NetworkAccess, Policy, ProcessAccess, Rlimits, DEVICES, ETC_SECRETS, SYSTEM_READ,
};
pub use probe::{HostSupport, Refusal};
pub use remove::{remove_tree, Identity, RemoveError};
pub use report::{Enforcement, Guarantee, Mechanism, MechanismState, Via};
pub use run::{host, preview, run, ChildOutcome, ExitStatus, Limit};
pub use spec::{ChildSpec, PassedFd, StartSink, MAX_PASSED_FDS};

/// Errors from starting or supervising a child.
///
/// These are failures of the runtime, not of the program: a program that exits non-zero or
/// is killed on timeout is a successful supervision and is reported in [`ChildOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec itself cannot be executed (relative program, NUL byte in an argument, ...).
    #[error("invalid child spec: {0}")]
    InvalidSpec(String),
    /// The policy cannot be expressed (a granted path through a symlink, ...).
    #[error("cannot confine the child: {0}")]
    Policy(String),
    /// The host lacks a mechanism the policy needs, and the spec did not opt into weaker
    /// isolation.
    #[error("refusing to run: {reason}. Fix: {fix}")]
    Unsupported {
        /// The guarantees no mechanism keeps here.
        missing: Vec<Guarantee>,
        /// What is missing.
        reason: String,
        /// How to get it, or how to opt out.
        fix: String,
    },
    /// A confinement step in the child failed; the program was not started.
    #[error("confining the child failed while {step}: {source}")]
    Confine {
        /// The step that failed.
        step: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused to start the program.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program that was to be started.
        program: String,
        /// The underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the child or reading its output failed.
    #[error("supervising the child failed: {0}")]
    Supervise(#[source] std::io::Error),
}
