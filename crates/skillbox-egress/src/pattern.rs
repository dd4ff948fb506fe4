//! Host patterns (`allowed_domains` entries) and the decision on a requested host.

use std::fmt;
use std::str::FromStr;

use crate::host::{normalize, screen, Host, HostError, Reason, MAX_NAME};
use crate::{HTTPS_PORT, HTTP_PORT};

/// Which hosts a pattern names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Hosts {
    /// Exactly this host (a name, or an IP literal that matches only itself).
    Exact(Host),
    /// `*.suffix`: every name with one or more labels before `suffix`, not `suffix` itself.
    Under(String),
}

/// One entry of an `allowed_domains` list, parsed and normalised once.
///
/// Spellings: `host`, `*.suffix`, either with `:port`; an IP address is written as such
/// (`192.0.2.1`, `[2001:db8::1]:8443`) and matches only that address, never a name that
/// resolves to it.
///
/// `*.example.com` matches `a.example.com` and `a.b.example.com` (one *or more* labels
/// before the suffix: a service's hosts are rarely one level deep, and a skill that trusts
/// a domain's owner for one level gains nothing by distrusting deeper ones, which the same
/// owner controls). It does not match `example.com` itself: list that too if it is needed.
/// The suffix must have two labels or more (`*.com` is refused).
///
/// Without a port the pattern allows 443, and 80 as well in an [`Allowlist`] that declares
/// plain HTTP. `Display` writes the canonical form, which parses back to the same pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPattern {
    hosts: Hosts,
    port: Option<u16>,
}

impl HostPattern {
    /// Parses and normalises one written pattern, or says why it is refused.
    pub fn parse(written: &str) -> Result<Self, HostError> {
        Self::parse_reason(written).map_err(|r| HostError::new(written, r))
    }

    fn parse_reason(written: &str) -> Result<Self, Reason> {
        screen(written)?;
        let (host, port) = split_port(written)?;
        let hosts = match host.strip_prefix("*.") {
            Some(suffix) => {
                if suffix.is_empty() || suffix == "." {
                    return Err(Reason::BareWildcard);
                }
                if suffix.contains('*') {
                    return Err(Reason::MisplacedWildcard);
                }
                match normalize(suffix, false)? {
                    Host::Ip(_) => return Err(Reason::WildcardOnAddress),
                    // `x.` + suffix must still be a name DNS can hold.
                    Host::Name(s) if s.len() + 2 > MAX_NAME => return Err(Reason::NameTooLong),
                    Host::Name(s) if !s.contains('.') => return Err(Reason::WildcardTooBroad),
                    Host::Name(s) => Hosts::Under(s),
                }
            }
            None if host == "*" || host == "*." => return Err(Reason::BareWildcard),
            None if host.contains('*') => return Err(Reason::MisplacedWildcard),
            None => Hosts::Exact(normalize(host, false)?),
        };
        Ok(Self { hosts, port })
    }

    /// The port written, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether `host` (already normalised) is one this pattern names, port aside.
    pub fn matches_host(&self, host: &Host) -> bool {
        match (&self.hosts, host) {
            (Hosts::Exact(want), got) => want == got,
            (Hosts::Under(suffix), Host::Name(name)) => name
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty()),
            (Hosts::Under(_), Host::Ip(_)) => false,
        }
    }

    /// Whether `port` is one this pattern allows: the one written, else 443 (and 80 when
    /// `plain_http`).
    pub fn allows_port(&self, port: u16, plain_http: bool) -> bool {
        match self.port {
            Some(p) => p == port,
            None => port == HTTPS_PORT || (plain_http && port == HTTP_PORT),
        }
    }
}

/// Splits `host[:port]`; an IPv6 address must be in brackets for a port to follow it.
fn split_port(written: &str) -> Result<(&str, Option<u16>), Reason> {
    let (host, port) = if written.starts_with('[') {
        match written.find(']') {
            Some(end) => {
                let (h, rest) = written.split_at(end + 1);
                match rest.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None if rest.is_empty() => (h, None),
                    None => return Err(Reason::BadIpv6),
                }
            }
            None => return Err(Reason::BadIpv6),
        }
    } else {
        match written.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err(Reason::UnbracketedIpv6),
            Some((h, p)) => (h, Some(p)),
            None => (written, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or(Reason::BadPort)?),
    };
    if host.is_empty() {
        return Err(Reason::Empty);
    }
    Ok((host, port))
}

/// 1-65535 in decimal, without sign or leading zeros (so the written form is canonical).
fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || p.starts_with('0') || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&n| n != 0)
}

impl FromStr for HostPattern {
    type Err = HostError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for HostPattern {
    /// The canonical form: parsing it gives back an equal pattern.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.hosts {
            Hosts::Exact(h) => write!(f, "{h}")?,
            Hosts::Under(s) => write!(f, "*.{s}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

impl serde::Serialize for HostPattern {
    /// As its canonical string, the form `info --json` and the audit log show.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A skill's list of host patterns, and whether plain HTTP (port 80) is declared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    patterns: Vec<HostPattern>,
    plain_http: bool,
}

/// Why a requested `(host, port)` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The host cannot be normalised (NUL byte, percent-encoding, ...): it names no host
    /// that could be checked, so it is never allowed.
    #[error("{0}")]
    BadHost(HostError),
    /// A valid host and port that no pattern lists.
    #[error("{host} port {port} is not in the skill's allowed_domains")]
    NotListed {
        /// The host, normalised.
        host: Host,
        /// The port asked for.
        port: u16,
    },
}

/// The outcome of [`Allowlist::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: the normalised host (what the proxy resolves and dials) and the pattern
    /// that allowed it (what the audit log names).
    Allowed {
        /// The host, normalised.
        host: Host,
        /// The first pattern that matched.
        pattern: HostPattern,
    },
    /// Refused, and why.
    Refused(Refused),
}

impl Decision {
    /// Whether the connection may be made.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

impl Allowlist {
    /// The list a skill declared. Duplicates (after normalisation) are kept once, in the
    /// order first written.
    pub fn new(patterns: impl IntoIterator<Item = HostPattern>, plain_http: bool) -> Self {
        let mut out: Vec<HostPattern> = Vec::new();
        for p in patterns {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Self { patterns: out, plain_http }
    }

    /// The patterns, normalised, in the order written.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    /// Whether port 80 is allowed for patterns without a port.
    pub fn plain_http(&self) -> bool {
        self.plain_http
    }

    /// Decides a requested host (as a client sent it: a CONNECT target's host, or a URI's)
    /// and port. The host is normalised exactly as patterns are; one that cannot be (a NUL
    /// byte, percent-encoding, userinfo...) is refused, never repaired or truncated. An IPv6
    /// address may come with or without brackets.
    pub fn decide(&self, host: &str, port: u16) -> Decision {
        let host = match normalize(host, true) {
            Ok(h) => h,
            Err(r) => return Decision::Refused(Refused::BadHost(HostError::new(host, r))),
        };
        match self
            .patterns
            .iter()
            .find(|p| p.matches_host(&host) && p.allows_port(port, self.plain_http))
        {
            Some(p) => Decision::Allowed { host, pattern: p.clone() },
            None => Decision::Refused(Refused::NotListed { host, port }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        match HostPattern::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{s:?}: {e}"),
        }
    }

    fn refused(s: &str) -> Reason {
        match HostPattern::parse(s) {
            Ok(p) => panic!("{s:?} parsed as {p}"),
            Err(e) => e.reason,
        }
    }

    fn list(ps: &[&str], http: bool) -> Allowlist {
        Allowlist::new(ps.iter().map(|s| p(s)), http)
    }

    #[test]
    fn patterns_display_canonically_and_round_trip() {
        for (w, shown) in [
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("*.Example.com:8443", "*.example.com:8443"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("*.bücher.example.", "*.xn--bcher-kva.example"),
            ("192.0.2.1:80", "192.0.2.1:80"),
            ("[2001:DB8::1]:443", "[2001:db8::1]:443"),
            ("[::ffff:192.0.2.1]", "192.0.2.1"),
            ("_dmarc-like_.example.com", "_dmarc-like_.example.com"),
        ] {
            let pat = p(w);
            assert_eq!(pat.to_string(), shown, "{w}");
            assert_eq!(p(shown), pat, "{w} round trip");
        }
    }

    #[test]
    fn refusals_name_their_reason() {
        for (w, r) in [
            ("*", Reason::BareWildcard),
            ("*.", Reason::BareWildcard),
            ("*:443", Reason::BareWildcard),
            ("a.*.example.com", Reason::MisplacedWildcard),
            ("*a.example.com", Reason::MisplacedWildcard),
            ("**.example.com", Reason::MisplacedWildcard),
            ("*.*.example.com", Reason::MisplacedWildcard),
            ("example.*", Reason::MisplacedWildcard),
            ("*.com", Reason::WildcardTooBroad),
            ("*.192.0.2.1", Reason::WildcardOnAddress),
            ("example.com:0", Reason::BadPort),
            ("example.com:65536", Reason::BadPort),
            ("example.com:0443", Reason::BadPort),
            ("example.com:+443", Reason::BadPort),
            ("example.com:", Reason::BadPort),
            ("example.com:https", Reason::BadPort),
            ("::1", Reason::UnbracketedIpv6),
            ("2001:db8::1:443", Reason::UnbracketedIpv6),
            ("[::1]443", Reason::BadIpv6),
            (":443", Reason::Empty),
            ("user@example.com", Reason::Userinfo),
            ("https://example.com", Reason::Forbidden('/')),
            ("example.com%00", Reason::Percent),
            ("evil.com\0.example.com", Reason::Nul),
            ("a..example.com", Reason::EmptyLabel),
        ] {
            assert_eq!(refused(w), r, "{w:?}");
        }
        let e = HostPattern::parse("evil.com\0.example.com").map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            e,
            "\"evil.com\\0.example.com\" refused: contains a NUL byte (a resolver would see only \
             the part before it)"
        );
    }

    #[test]
    fn wildcard_matches_one_or_more_leftmost_labels_not_the_suffix() {
        let l = list(&["*.example.com"], false);
        assert!(l.decide("a.example.com", 443).is_allowed());
        assert!(l.decide("a.b.example.com", 443).is_allowed());
        assert!(!l.decide("example.com", 443).is_allowed());
        assert!(!l.decide("badexample.com", 443).is_allowed());
        assert!(!l.decide("a.example.com.evil.net", 443).is_allowed());
        assert!(!l.decide("example.com.", 443).is_allowed());
    }

    #[test]
    fn ports_default_to_443_and_80_only_for_plain_http() {
        let https = list(&["example.com", "alt.example.com:8443"], false);
        assert!(https.decide("example.com", 443).is_allowed());
        assert!(!https.decide("example.com", 80).is_allowed());
        assert!(!https.decide("example.com", 8443).is_allowed());
        assert!(https.decide("alt.example.com", 8443).is_allowed());
        assert!(!https.decide("alt.example.com", 443).is_allowed());
        let http = list(&["example.com", "alt.example.com:8443"], true);
        assert!(http.decide("example.com", 80).is_allowed());
        assert!(
            !http.decide("alt.example.com", 80).is_allowed(),
            "an explicit port is the only one"
        );
    }

    #[test]
    fn requested_hosts_normalise_like_patterns() {
        let l = list(&["bücher.example", "api.example.com", "192.0.2.1", "[2001:db8::1]"], false);
        for h in [
            "xn--bcher-kva.example",
            "BÜCHER.example",
            "bücher.example.",
            "API.Example.COM",
            "api.example.com.",
            "192.0.2.1",
            "192.0.2.1.",
            "[::ffff:192.0.2.1]",
            "::ffff:192.0.2.1",
            "2001:db8::1",
            "[2001:DB8:0::1]",
        ] {
            assert!(l.decide(h, 443).is_allowed(), "{h}");
        }
        for h in [
            "api.example.com\0",
            "api.example.com\0.evil.net",
            "evil.net\0api.example.com",
            "api.example.com%00",
            "user@api.example.com",
            "api.example.com..",
            "API.EXAMPLE.COM:443",
            "3221225985",
            "192.0.2.01",
            "0xc0.0.2.1",
            "api.example.co",
        ] {
            let d = l.decide(h, 443);
            assert!(!d.is_allowed(), "{h:?}: {d:?}");
        }
        assert!(matches!(
            l.decide("a\0b", 443),
            Decision::Refused(Refused::BadHost(HostError { reason: Reason::Nul, .. }))
        ));
    }

    #[test]
    fn ip_literal_patterns_match_only_that_literal_and_names_never_match_addresses() {
        let l = list(&["192.0.2.1"], false);
        assert!(!l.decide("192.0.2.2", 443).is_allowed());
        assert!(!l.decide("one.example", 443).is_allowed());
        let names = list(&["*.example.com", "localhost"], false);
        assert!(!names.decide("127.0.0.1", 443).is_allowed());
        assert!(!names.decide("[::1]", 443).is_allowed());
    }

    #[test]
    fn duplicates_after_normalisation_are_kept_once() {
        let l = list(&["Example.com", "example.com.", "example.com:443", "example.com"], false);
        let shown: Vec<String> = l.patterns().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["example.com", "example.com:443"]);
    }
}
