//! Network egress by name: the policy side of skillbox's egress proxy.
//!
//! A skill may declare the hosts it reaches (`allowed_domains`). This crate turns each
//! written pattern into a [`HostPattern`] once, when the skill file loads, and decides a
//! requested `(host, port)` against the list with [`Allowlist::decide`], normalising the
//! requested host the same way. [`AddressClass`] tells which addresses a name may resolve
//! to before a connection is made (loopback, private, cloud metadata...).
//!
//! Why one normaliser for both sides: every published bypass of an egress allowlist is a
//! disagreement between the spelling that was checked and the one that was dialed (case,
//! a trailing dot, a NUL byte ending the name early for the resolver, percent-encoding,
//! userinfo, a Unicode spelling of an ASCII name, `127.1` for `127.0.0.1`). Here a host is
//! either refused or reduced to one canonical form, and only canonical forms are compared.
//!
//! This crate knows nothing of skills, files or the proxy: it is pure and total (no panics
//! on any input), which is what its fuzz target (`fuzz/fuzz_targets/host_pattern.rs`) checks.

mod address;
mod host;
mod local;
mod pattern;
mod proxy;
mod record;
mod request;
mod resolve;

pub use address::AddressClass;
pub use host::{Host, HostError, Reason};
pub use pattern::{Allowlist, Decision, HostPattern, Refused};
pub use proxy::{serve, RunProxy};
pub use record::Connection;
pub use request::{decide_request, Outcome, RequestDecision, Rules, MAX_HEAD};
pub use resolve::{OverrideError, Resolver, TEST_RESOLVE_VAR};

/// The port a pattern without `:port` allows: HTTPS.
pub const HTTPS_PORT: u16 = 443;
/// The port a pattern without `:port` also allows when the skill declares plain HTTP.
pub const HTTP_PORT: u16 = 80;
