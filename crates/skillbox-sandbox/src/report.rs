/// Whether a confinement mechanism was in force for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechanismState {
    /// The kernel (or the supervisor, where the detail says so) enforces it for the child and
    /// every descendant.
    Enforced,
    /// Not restricted, because the policy grants everything in this area (a system-trusted
    /// run's network, for instance).
    Unrestricted,
    /// Not applied although the policy asks for it: the host lacks the mechanism and the run
    /// was allowed by an explicit opt-in, or it is not implemented. What the policy says for
    /// this area is a declaration, not a control.
    NotEnforced,
}

impl MechanismState {
    /// The spelling used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforced => "enforced",
            Self::Unrestricted => "unrestricted",
            Self::NotEnforced => "not-enforced",
        }
    }
}

/// What one line of the enforcement report is about: a guarantee of the threat model (or a
/// part of one) that a run may or may not get. Its spelling in reports and JSON is
/// [`Guarantee::as_str`]; everywhere else it is this type, so a misspelt name does not
/// compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Guarantee {
    /// The program is executed directly; no shell sees its arguments.
    NoShell,
    /// The environment is the one given, nothing inherited.
    Environment,
    /// Only stdin, stdout and stderr reach the program.
    Descriptors,
    /// Every descendant stays in the process group killed at the end.
    ProcessGroup,
    /// The wall-clock limit.
    Timeout,
    /// Output is captured within a fixed budget.
    OutputCap,
    /// Files: reads and writes only where granted.
    Filesystem,
    /// What the run may only read keeps its mode, owner, timestamps and extended
    /// attributes: Landlock does not mediate those changes, so read-only means read-only
    /// only where the run's own mount namespace shows it read-only.
    FileMetadata,
    /// Signals and abstract Unix sockets only within the run.
    Ipc,
    /// The run sees only its own processes: `/proc` is a procfs of its PID namespace, so
    /// other processes' command lines, environments and existence are hidden.
    ProcessVisibility,
    /// Kernel side doors (io_uring, TIOCSTI, bpf, namespaces, ...) are shut.
    SideDoors,
    /// Network only as granted.
    Network,
    /// Process creation only as granted.
    Processes,
    /// No privilege gain.
    Privileges,
    /// Memory of the run.
    Memory,
    /// Share of one CPU.
    CpuShare,
    /// The rlimits set on the run.
    ResourceLimits,
    /// Nothing of the run outlives it, even if the supervisor dies.
    TreeKill,
    /// Total bytes written to disk.
    DiskWrites,
}

impl Guarantee {
    /// Every guarantee, in report order.
    pub const ALL: [Guarantee; 19] = [
        Self::NoShell,
        Self::Environment,
        Self::Descriptors,
        Self::ProcessGroup,
        Self::Timeout,
        Self::OutputCap,
        Self::Filesystem,
        Self::FileMetadata,
        Self::Ipc,
        Self::ProcessVisibility,
        Self::SideDoors,
        Self::Network,
        Self::Processes,
        Self::Privileges,
        Self::Memory,
        Self::CpuShare,
        Self::ResourceLimits,
        Self::TreeKill,
        Self::DiskWrites,
    ];

    /// The stable spelling used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoShell => "no-shell",
            Self::Environment => "environment",
            Self::Descriptors => "descriptors",
            Self::ProcessGroup => "process-group",
            Self::Timeout => "timeout",
            Self::OutputCap => "output-cap",
            Self::Filesystem => "filesystem",
            Self::FileMetadata => "file-metadata",
            Self::Ipc => "ipc",
            Self::ProcessVisibility => "process-visibility",
            Self::SideDoors => "side-doors",
            Self::Network => "network",
            Self::Processes => "processes",
            Self::Privileges => "privileges",
            Self::Memory => "memory",
            Self::CpuShare => "cpu-share",
            Self::ResourceLimits => "resource-limits",
            Self::TreeKill => "tree-kill",
            Self::DiskWrites => "disk-writes",
        }
    }
}

impl std::fmt::Display for Guarantee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that a width in a format string (`{:<16}`) lines columns up.
        f.pad(self.as_str())
    }
}

/// A mechanism that keeps (a part of) a guarantee: what the enforcement report names in
/// each line's `via`, so that a reader sees *how* a guarantee holds on this host, not only
/// that it does. Its spelling is [`Via`]'s `Display` (`landlock-abi-4`, `pid-namespace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Via {
    /// `execve` of the program itself, with the environment given.
    Execve,
    /// `close_range` in the child.
    CloseRange,
    /// A new session and process group for the run.
    Session,
    /// Pipes read within a fixed budget.
    Pipes,
    /// skillbox's own supervision of the run while it lives (its timer, or samples of the
    /// kernel's counters).
    Watchdog,
    /// Landlock at this ABI version.
    Landlock(u8),
    /// A mount namespace of the run's own: a new root of read-only binds where Landlock is
    /// missing; beside Landlock, the host's tree read-only but for the writable grants, with
    /// a procfs of the run's PID namespace.
    MountNamespace,
    /// The run's seccomp filter.
    Seccomp,
    /// A PID namespace whose first process is the run's.
    PidNamespace,
    /// A network namespace of the run's own, holding only loopback.
    NetNamespace,
    /// The supervisor process that kills the run's process groups when skillbox dies.
    Supervisor,
    /// A pids cgroup.
    PidsCgroup,
    /// A memory cgroup.
    MemoryCgroup,
    /// A cpu cgroup.
    CpuCgroup,
    /// `setrlimit` in the child.
    Rlimits,
    /// `no_new_privs`.
    NoNewPrivs,
    /// Every capability dropped.
    Capabilities,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Self::Landlock(abi) => return write!(f, "landlock-abi-{abi}"),
            Self::Execve => "execve",
            Self::CloseRange => "close-range",
            Self::Session => "session",
            Self::Pipes => "pipes",
            Self::Watchdog => "watchdog",
            Self::MountNamespace => "mount-namespace",
            Self::Seccomp => "seccomp",
            Self::PidNamespace => "pid-namespace",
            Self::NetNamespace => "net-namespace",
            Self::Supervisor => "supervisor",
            Self::PidsCgroup => "pids-cgroup",
            Self::MemoryCgroup => "memory-cgroup",
            Self::CpuCgroup => "cpu-cgroup",
            Self::Rlimits => "rlimits",
            Self::NoNewPrivs => "no-new-privs",
            Self::Capabilities => "capabilities",
        };
        f.write_str(name)
    }
}

/// One line of the enforcement report: a guarantee, its state, the mechanisms that keep it,
/// and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// What the line is about.
    pub name: Guarantee,
    /// Whether it was in force.
    pub state: MechanismState,
    /// The mechanisms that keep it on this host, strongest first; empty when it is not in
    /// force.
    pub via: Vec<Via>,
    /// One sentence a person can read: how it is enforced, or why it is not (and then how to
    /// get it).
    pub detail: String,
}

impl Mechanism {
    /// `via` as the report spells it: the mechanisms joined by `+`, or `none`.
    pub fn via_str(&self) -> String {
        if self.via.is_empty() {
            return "none".into();
        }
        self.via.iter().map(Via::to_string).collect::<Vec<_>>().join("+")
    }
}

/// What was actually enforced for a run, mechanism by mechanism.
///
/// Modelled on rust-landlock's best-effort reporting: callers get the truth about what held,
/// so that they can refuse to run, warn, or record it, instead of assuming.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// Every mechanism, enforced or not.
    pub mechanisms: Vec<Mechanism>,
    /// When a test setting lowered what this process uses (`SKILLBOX_TEST_LANDLOCK_ABI`),
    /// what it is: such a report describes a simulated host, not this one.
    pub simulated: Option<String>,
}

impl Enforcement {
    /// The mechanisms the policy asked for that were not in force.
    pub fn not_enforced(&self) -> impl Iterator<Item = &Mechanism> {
        self.mechanisms.iter().filter(|m| m.state == MechanismState::NotEnforced)
    }

    /// The state of `name`, if it is in the report.
    pub fn state(&self, name: Guarantee) -> Option<MechanismState> {
        self.mechanisms.iter().find(|m| m.name == name).map(|m| m.state)
    }

    /// The line about `name`, if it is in the report.
    pub fn line(&self, name: Guarantee) -> Option<&Mechanism> {
        self.mechanisms.iter().find(|m| m.name == name)
    }

    /// True when `name` is enforced.
    pub fn is_enforced(&self, name: Guarantee) -> bool {
        self.state(name) == Some(MechanismState::Enforced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guarantee_has_its_own_spelling() {
        let mut names: Vec<&str> = Guarantee::ALL.iter().map(|g| g.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Guarantee::ALL.len());
    }
}
