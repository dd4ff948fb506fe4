//! Confinement of one child process.
//!
//! This crate starts a single program with an explicit argv, environment and working
//! directory, captures its output within fixed bounds, enforces a wall-clock timeout, and
//! reports which confinement mechanisms were actually in force for the run.
//!
//! It deliberately knows nothing about skills, trust levels or agents: callers hand it a
//! [`ChildSpec`] and get a [`ChildOutcome`] back. Keeping that boundary small is what lets
//! the confinement code be read and reviewed on its own.
//!
//! # What is enforced today
//!
//! The report in [`Enforcement`] is the source of truth, and every caller should surface it.
//! At this stage the crate enforces, for every child:
//!
//! * no shell: the program is executed directly with the argv given;
//! * a cleared environment: only the variables in the spec reach the child;
//! * stdin is `/dev/null`; stdout and stderr are pipes read by the supervisor;
//! * a new process group, killed as a whole with `SIGKILL` on timeout or drop;
//! * bounded capture of stdout and stderr (head and tail kept, the middle counted).
//!
//! Kernel confinement of files, network and privileges (Landlock, seccomp, namespaces,
//! rlimits) is **not** applied yet; [`Enforcement::current`] lists those mechanisms as
//! not enforced so that nobody mistakes a declaration for a control.

mod output;
mod report;
mod run;
mod spec;

pub use output::CapturedOutput;
pub use report::{Enforcement, Mechanism, MechanismState};
pub use run::{run, ChildOutcome, ExitStatus};
pub use spec::ChildSpec;

/// Errors from starting or supervising a child.
///
/// These are failures of the runtime, not of the program: a program that exits non-zero or
/// is killed on timeout is a successful supervision and is reported in [`ChildOutcome`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The spec itself cannot be executed (empty program, NUL byte in an argument, ...).
    #[error("invalid child spec: {0}")]
    InvalidSpec(String),
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
