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

/// One line of the enforcement report: a mechanism, its state, and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mechanism {
    /// Short stable identifier, e.g. `environment` or `filesystem`.
    pub name: &'static str,
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
    pub(crate) fn push(
        &mut self,
        name: &'static str,
        state: MechanismState,
        detail: impl Into<String>,
    ) {
        self.mechanisms.push(Mechanism { name, state, detail: detail.into() });
    }

    /// The mechanisms the policy asked for that were not in force.
    pub fn not_enforced(&self) -> impl Iterator<Item = &Mechanism> {
        self.mechanisms.iter().filter(|m| m.state == MechanismState::NotEnforced)
    }

    /// The state of the named mechanism, if it is in the report.
    pub fn state(&self, name: &str) -> Option<MechanismState> {
        self.mechanisms.iter().find(|m| m.name == name).map(|m| m.state)
    }

    /// True when the named mechanism is enforced.
    pub fn is_enforced(&self, name: &str) -> bool {
        self.state(name) == Some(MechanismState::Enforced)
    }
}
