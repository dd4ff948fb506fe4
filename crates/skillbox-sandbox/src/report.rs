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
    /// Signals and abstract Unix sockets only within the run.
    Ipc,
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
    pub const ALL: [Guarantee; 17] = [
        Self::NoShell,
        Self::Environment,
        Self::Descriptors,
        Self::ProcessGroup,
        Self::Timeout,
        Self::OutputCap,
        Self::Filesystem,
        Self::Ipc,
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
            Self::Ipc => "ipc",
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
        f.write_str(self.as_str())
    }
}

/// One line of the enforcement report: a guarantee, its state, and how it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// What the line is about.
    pub name: Guarantee,
    /// Whether it was in force.
    pub state: MechanismState,
    /// One sentence a person can read: how it is enforced, or why it is not.
    pub detail: String,
}

/// What was actually enforced for a run, mechanism by mechanism.
///
/// Modelled on rust-landlock's best-effort reporting: callers get the truth about what held,
/// so that they can refuse to run, warn, or record it, instead of assuming.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforcement {
    /// Every mechanism, enforced or not.
    pub mechanisms: Vec<Mechanism>,
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
