//! Name resolution for the proxy: the system resolver, and a test-only override.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::host::{normalize, Host};

/// The environment variable of the test-only resolver override; see [`Resolver::from_env`].
pub const TEST_RESOLVE_VAR: &str = "SKILLBOX_TEST_RESOLVE";

/// Turns a host into the addresses the proxy may dial. The proxy resolves each name once and
/// dials an address from that answer, the one it checked: a second lookup could answer
/// differently (DNS rebinding).
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Test-only answers by normalised name; a name here is never sent to the system.
    overrides: HashMap<String, Vec<IpAddr>>,
}

/// A test resolver override that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{TEST_RESOLVE_VAR}: entry {entry:?} {why} (expected name=address, comma-separated)")]
pub struct OverrideError {
    /// The entry, escaped.
    pub entry: String,
    /// What is wrong with it.
    pub why: String,
}

impl Resolver {
    /// The system's resolver (`getaddrinfo` through `tokio::net::lookup_host`): what every
    /// real run uses.
    pub fn system() -> Self {
        Self::default()
    }

    /// **TEST ONLY.** The system's resolver, except for the names listed in the environment
    /// variable `SKILLBOX_TEST_RESOLVE` (`name=address,name2=address2`; a name given twice
    /// resolves to all its addresses, in order). A listed name resolves only through the
    /// override, never through DNS; other names go to the system resolver. Names are
    /// normalised as hosts are (case, trailing dot, IDNA).
    ///
    /// This exists so that tests can reach a local server by a name without editing
    /// `/etc/hosts` or running a DNS server. It changes what the proxy connects to, so a
    /// deployment must never set it: whoever sets the variable for skillbox decides where
    /// allowed names lead (the address checks still apply: a name pointed at loopback is
    /// refused unless the address is listed too). Unset or empty: [`Resolver::system`].
    pub fn from_env() -> Result<Self, OverrideError> {
        match std::env::var(TEST_RESOLVE_VAR) {
            Ok(spec) => Self::with_overrides(&spec),
            Err(_) => Ok(Self::system()),
        }
    }

    /// **TEST ONLY.** The override of [`Resolver::from_env`], given as a string.
    pub fn with_overrides(spec: &str) -> Result<Self, OverrideError> {
        let mut overrides: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let err =
                |why: &str| OverrideError { entry: crate::request::escape(entry), why: why.into() };
            let (name, addr) = entry.split_once('=').ok_or_else(|| err("has no `=`"))?;
            let name = match normalize(name.trim(), false) {
                Ok(Host::Name(n)) => n,
                Ok(Host::Ip(_)) => return Err(err("names an IP address, not a name")),
                Err(r) => return Err(err(&format!("has a name that {r}"))),
            };
            let addr = addr.trim();
            let addr = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(addr);
            let addr: IpAddr = addr.parse().map_err(|_| err("has no IP address after `=`"))?;
            overrides.entry(name).or_default().push(addr.to_canonical());
        }
        Ok(Self { overrides })
    }

    /// Whether a test override is in force (worth a warning wherever it is used).
    pub fn is_overridden(&self) -> bool {
        !self.overrides.is_empty()
    }

    /// The addresses of `host` on `port`, in the resolver's order: an IP literal is its own
    /// answer; a name in the override has only the override's answer.
    pub async fn resolve(&self, host: &Host, port: u16) -> io::Result<Vec<SocketAddr>> {
        match host {
            Host::Ip(a) => Ok(vec![SocketAddr::new(*a, port)]),
            Host::Name(n) => match self.overrides.get(n) {
                Some(addrs) => Ok(addrs.iter().map(|a| SocketAddr::new(*a, port)).collect()),
                None => Ok(tokio::net::lookup_host((n.as_str(), port))
                    .await?
                    .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
                    .collect()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_parse_and_normalise() {
        let r = match Resolver::with_overrides(
            "Pkgs.Skillbox.TEST.=127.0.0.1, a.test=[::1],a.test=10.0.0.5",
        ) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(
            r.overrides["pkgs.skillbox.test"],
            ["127.0.0.1".parse::<IpAddr>().unwrap_or(IpAddr::from([0; 4]))]
        );
        assert_eq!(r.overrides["a.test"].len(), 2);
        for bad in ["a.test", "a.test=x", "1.2.3.4=1.2.3.4", "a\0b=1.2.3.4", "a..b=1.2.3.4"] {
            assert!(Resolver::with_overrides(bad).is_err(), "{bad:?}");
        }
        assert!(!Resolver::with_overrides(" , ").map(|r| r.is_overridden()).unwrap_or(true));
    }
}
