/// Whether a confinement mechanism was in force for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechanismState {
    /// The kernel enforces it for the child and every descendant.
    Enforced,
    /// Not applied. What the caller declared for this area is a declaration, not a control.
    NotEnforced,
}

/// One line of the enforcement report: a mechanism, its state, and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// Short stable identifier, e.g. `environment` or `filesystem`.
    pub name: &'static str,
    /// Whether it was in force.
    pub state: MechanismState,
    /// One sentence a person can read: how it is enforced, or why it is not.
    pub detail: &'static str,
}

/// What this crate actually enforced for a run, mechanism by mechanism.
///
/// Modelled on rust-landlock's best-effort reporting: callers get the truth about what held,
/// so that they can refuse to run, warn, or record it, instead of assuming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    /// Every mechanism this crate knows about, enforced or not.
    pub mechanisms: Vec<Mechanism>,
}

impl Enforcement {
    /// The report for children started by this build.
    pub fn current() -> Self {
        use MechanismState::*;
        let m = |name, state, detail| Mechanism { name, state, detail };
        Self {
            mechanisms: vec![
                m("no-shell", Enforced, "the program is executed directly; arguments never pass through a shell"),
                m("environment", Enforced, "the environment is cleared; only the variables given are set"),
                m("process-group", Enforced, "the child leads a new process group, killed with SIGKILL on timeout, exit or drop"),
                m("output-cap", Enforced, "stdout and stderr are captured within a fixed budget (head and tail kept)"),
                m("timeout", Enforced, "wall-clock timeout; processes that leave the group (setsid) are not yet reached"),
                m("filesystem", NotEnforced, "no Landlock ruleset yet: file permissions are declarations only"),
                m("network", NotEnforced, "no seccomp or Landlock network rules yet: network permission is a declaration only"),
                m("privileges", NotEnforced, "no_new_privs and capability dropping are not applied yet"),
                m("resource-limits", NotEnforced, "memory, CPU, process and file limits are not applied yet"),
                m("descriptors", NotEnforced, "descriptors the embedding process opened without O_CLOEXEC are inherited"),
            ],
        }
    }

    /// The mechanisms that are not in force.
    pub fn not_enforced(&self) -> impl Iterator<Item = &Mechanism> {
        self.mechanisms.iter().filter(|m| m.state == MechanismState::NotEnforced)
    }

    /// True when the named mechanism is enforced.
    pub fn is_enforced(&self, name: &str) -> bool {
        self.mechanisms.iter().any(|m| m.name == name && m.state == MechanismState::Enforced)
    }
}
