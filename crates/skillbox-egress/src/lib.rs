//! Network egress by name: skillbox's egress proxy and the policy it enforces.
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
//! # The proxy
//!
//! [`serve`] runs the proxy of one run on a listening socket the caller made (inside the
//! run's network namespace), in the caller's tokio runtime; [`RunProxy::finish`] ends it
//! and returns one [`Connection`] record per connection attempt. Each connection sends one
//! request head, decided by [`decide_request`] (a pure function, fuzzed):
//!
//! - `CONNECT host:port`, or plain HTTP in absolute form (`GET http://host/path`) whose
//!   `Host` header names the same host and port; anything else gets a 400.
//! - The host and port by name ([`Rules`]: a list, or any name on 443); refused: a 403 that
//!   names the host, the reason and the caller's hint.
//! - The name is resolved once ([`Resolver`]) and the connection made to an address that
//!   was checked, never looked up again (no DNS rebinding). An address that is not public
//!   ([`AddressClass`]), or is one of this host's own, is refused unless the list holds
//!   that exact address and port as an IP literal.
//!
//! What it does not cover: what a skill sends to a host it may reach; TLS is not inspected
//! (the CONNECT target is the name checked; the SNI inside the tunnel is not compared);
//! keeping a run's programs from going around the proxy is the sandbox's job.
//!
//! [`Resolver::from_env`] reads a **test-only** override (`SKILLBOX_TEST_RESOLVE`) that
//! points names at local addresses; real runs use [`Resolver::system`].
//!
//! The policy half is pure and total (no panics on any input), which the fuzz targets
//! `host_pattern` and `proxy_request` check. The crate knows nothing of skills or files.

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
