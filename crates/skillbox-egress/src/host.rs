//! One host, normalised: a lowercase ASCII (punycode) DNS name or an IP address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Longest DNS name, in octets, without the trailing dot (RFC 1035 §2.3.4: 255 on the wire).
pub(crate) const MAX_NAME: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
pub(crate) const MAX_LABEL: usize = 63;
/// Longest input looked at: far above any valid name even in Unicode, so that IDNA
/// processing of a hostile megabyte is never attempted.
const MAX_INPUT: usize = 1024;
/// Characters of a refused value quoted in an error, so that a message stays one short line.
const QUOTED: usize = 120;

/// A host in its one canonical form: what patterns and requests are compared as.
///
/// A name is lowercase ASCII, punycode for Unicode labels, without a trailing dot. An
/// address is an [`IpAddr`] with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into
/// its IPv4 address, since a connection to either reaches the same host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// A DNS name, e.g. `xn--bcher-kva.example`.
    Name(String),
    /// An IP literal, written as such (`192.0.2.1`, `[2001:db8::1]`).
    Ip(IpAddr),
}

impl fmt::Display for Host {
    /// The canonical spelling, IPv6 in brackets so that a `:port` can follow.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => f.write_str(n),
            Self::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            Self::Ip(IpAddr::V6(a)) => write!(f, "[{a}]"),
        }
    }
}

/// Why a host or pattern was refused. Each is a short phrase completing "refused: ...".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// Nothing was written.
    #[error("empty")]
    Empty,
    /// Longer than any valid host name could be.
    #[error("longer than {MAX_INPUT} bytes")]
    InputTooLong,
    /// A NUL byte: a C resolver would stop at it and look up only the part before.
    #[error("contains a NUL byte (a resolver would see only the part before it)")]
    Nul,
    /// A control character (C0, DEL or C1).
    #[error("contains a control character")]
    Control,
    /// Whitespace inside a host.
    #[error("contains whitespace")]
    Whitespace,
    /// `%`: a host is matched as written, never percent-decoded.
    #[error("contains `%` (percent-encoding is not decoded in a host; write the name itself)")]
    Percent,
    /// `@`: userinfo belongs to a URL, not to a host.
    #[error("contains `@` (userinfo such as user@host is not a host)")]
    Userinfo,
    /// A character that delimits parts of a URL (`/ \ ? #`) or is otherwise not part of a
    /// host name.
    #[error("contains {0:?}, which is not part of a host name")]
    Forbidden(char),
    /// `a..b`, a leading dot, or more than one trailing dot.
    #[error("has an empty label (`..`, a leading dot, or more than one trailing dot)")]
    EmptyLabel,
    /// A label over 63 bytes once in punycode.
    #[error("has a label longer than {MAX_LABEL} bytes")]
    LabelTooLong,
    /// A name over 253 bytes once in punycode.
    #[error("is longer than {MAX_NAME} bytes")]
    NameTooLong,
    /// UTS 46 (IDNA) processing refused the name.
    #[error("is not a valid internationalised domain name (IDNA)")]
    Idna,
    /// A name whose last label is a number: resolvers read `127.1`, `0x7f.1` or
    /// `2130706433` as IPv4 addresses.
    #[error(
        "ends in a numeric label, which resolvers read as an IPv4 address; write an IP \
         address as a.b.c.d"
    )]
    NumericName,
    /// `[...]` that does not hold one IPv6 address.
    #[error("is not an IPv6 address in brackets such as [2001:db8::1]")]
    BadIpv6,
    /// An IPv6 address without brackets, in a pattern where `:` starts the port.
    #[error("looks like an IPv6 address; write it in brackets, e.g. [2001:db8::1]:443")]
    UnbracketedIpv6,
    /// `:port` that is not 1-65535 in decimal without leading zeros.
    #[error("has a port that is not a number from 1 to 65535 (without leading zeros)")]
    BadPort,
    /// `*` alone (or `*.`): every host.
    #[error("is a bare `*`; list the hosts, or use `*.example.com` for the names under one")]
    BareWildcard,
    /// `*` anywhere but as the whole leftmost label.
    #[error("has `*` other than as the whole leftmost label, as in `*.example.com`")]
    MisplacedWildcard,
    /// `*.com`: a wildcard over a whole top-level domain.
    #[error("is a wildcard over a top-level domain; name at least two labels after `*.`")]
    WildcardTooBroad,
    /// `*.192.0.2.1`: a wildcard over an address.
    #[error("puts a wildcard on an IP address; list the address itself")]
    WildcardOnAddress,
}

/// A host or host pattern that was refused, with the value as written (escaped, shortened).
///
/// The message is one line: `"value" refused: reason`, whatever bytes the value holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} refused: {reason}")]
pub struct HostError {
    /// The refused value, quoted with control characters escaped, cut to a short length.
    pub value: String,
    /// Why.
    pub reason: Reason,
}

impl HostError {
    pub(crate) fn new(written: &str, reason: Reason) -> Self {
        Self { value: quote(written), reason }
    }
}

/// `s` quoted and escaped for a one-line message (`{:?}` escapes control characters,
/// quotes and backslashes), cut to [`QUOTED`] characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTED) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Refuses what is never part of a host, before any other processing: so that no later
/// step (IDNA mapping, an IP parser) sees or reinterprets it.
pub(crate) fn screen(written: &str) -> Result<(), Reason> {
    if written.is_empty() {
        return Err(Reason::Empty);
    }
    if written.len() > MAX_INPUT {
        return Err(Reason::InputTooLong);
    }
    for c in written.chars() {
        match c {
            '\0' => return Err(Reason::Nul),
            c if c.is_control() => return Err(Reason::Control),
            c if c.is_whitespace() => return Err(Reason::Whitespace),
            '%' => return Err(Reason::Percent),
            '@' => return Err(Reason::Userinfo),
            '/' | '\\' | '?' | '#' => return Err(Reason::Forbidden(c)),
            _ => {}
        }
    }
    Ok(())
}

/// Normalises one host without a port: `[v6]`, `a.b.c.d`, or a name. One trailing dot is
/// removed (`example.com.` is `example.com`). `bare_v6` also accepts an IPv6 address
/// without brackets (a requested host is given apart from its port; a pattern is not).
pub(crate) fn normalize(written: &str, bare_v6: bool) -> Result<Host, Reason> {
    // The dot first, so that `host` and `host.` are screened alike (length included).
    let one = written.strip_suffix('.').unwrap_or(written);
    screen(one)?;
    if let Some(inner) = one.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(Reason::BadIpv6)?;
        let addr: Ipv6Addr = inner.parse().map_err(|_| Reason::BadIpv6)?;
        return Ok(Host::Ip(IpAddr::V6(addr).to_canonical()));
    }
    if let Ok(addr) = one.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(addr)));
    }
    if one.contains(':') {
        return match one.parse::<Ipv6Addr>() {
            Ok(addr) if bare_v6 => Ok(Host::Ip(IpAddr::V6(addr).to_canonical())),
            Ok(_) => Err(Reason::UnbracketedIpv6),
            Err(_) => Err(Reason::Forbidden(':')),
        };
    }
    name(one).map(Host::Name)
}

/// A name to its canonical ASCII form: UTS 46 (lowercase, Unicode mapping, punycode), then
/// checked label by label. `written` has had its one trailing dot removed.
fn name(written: &str) -> Result<String, Reason> {
    if written.is_empty() || written.starts_with('.') || written.contains("..") {
        return Err(Reason::EmptyLabel);
    }
    // The URL deny list refuses the ASCII a URL host cannot hold; length is checked below,
    // on the result. Hyphen positions are not checked: real names break those rules.
    let ascii = Uts46::new()
        .to_ascii(written.as_bytes(), AsciiDenyList::URL, Hyphens::Allow, DnsLength::Ignore)
        .map_err(|_| Reason::Idna)?;
    // The mapping may have made new dots (U+3002 is a full stop) or ASCII punctuation from
    // fullwidth forms: the result is checked as if it had been written.
    let labels: Vec<&str> = ascii.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(Reason::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(Reason::LabelTooLong);
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(match c {
                '%' => Reason::Percent,
                '@' => Reason::Userinfo,
                '*' => Reason::MisplacedWildcard,
                c => Reason::Forbidden(c),
            });
        }
    }
    if ascii.len() > MAX_NAME {
        return Err(Reason::NameTooLong);
    }
    if labels.last().is_some_and(|l| numeric(l)) {
        return Err(Reason::NumericName);
    }
    Ok(ascii.into_owned())
}

/// Whether a label is what the WHATWG URL host parser (and `inet_aton`) reads as a number:
/// decimal digits, or `0x` followed by hex digits (or nothing).
fn numeric(label: &str) -> bool {
    if let Some(hex) = label.strip_prefix("0x") {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    label.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, Reason> {
        match normalize(s, true)? {
            Host::Name(n) => Ok(n),
            Host::Ip(a) => Ok(format!("ip:{a}")),
        }
    }

    #[test]
    fn idna_matches_known_punycode() {
        // Vectors from RFC 3492 usage and registries' own examples.
        for (unicode, ascii) in [
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("münchen.de", "xn--mnchen-3ya.de"),
            ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
            ("пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            // U+3002 (ideographic full stop) is a dot under UTS 46.
            ("bücher\u{3002}example", "xn--bcher-kva.example"),
        ] {
            assert_eq!(n(unicode).as_deref(), Ok(ascii), "{unicode}");
        }
    }

    #[test]
    fn case_and_one_trailing_dot_are_the_same_name() {
        for s in ["Example.COM", "example.com.", "EXAMPLE.com.", "example.com"] {
            assert_eq!(n(s).as_deref(), Ok("example.com"), "{s}");
        }
        assert_eq!(n("example.com.."), Err(Reason::EmptyLabel));
        // At the input bound: characters IDNA ignores (U+FE0F) make a long spelling of a short
        // name; its trailing-dot spelling is one byte longer and must not be refused for it.
        let long = format!("ab{}.example", "\u{fe0f}".repeat(338));
        assert_eq!(long.len(), MAX_INPUT);
        assert_eq!(n(&long).as_deref(), Ok("ab.example"));
        assert_eq!(n(&format!("{long}.")).as_deref(), Ok("ab.example"));
        assert_eq!(n("1.2.3.4."), Ok("ip:1.2.3.4".into()));
    }

    #[test]
    fn hostile_names_are_refused_with_their_reason() {
        for (s, r) in [
            ("", Reason::Empty),
            ("evil.com\0.example.com", Reason::Nul),
            ("example.com\0", Reason::Nul),
            ("exa\nmple.com", Reason::Control),
            ("exa\u{85}mple.com", Reason::Control),
            ("exa mple.com", Reason::Whitespace),
            ("example%2ecom", Reason::Percent),
            ("user@example.com", Reason::Userinfo),
            ("example.com/x", Reason::Forbidden('/')),
            ("example.com\\x", Reason::Forbidden('\\')),
            ("a..b", Reason::EmptyLabel),
            (".example.com", Reason::EmptyLabel),
            ("127.1", Reason::NumericName),
            ("0x7f.0x1", Reason::NumericName),
            ("2130706433", Reason::NumericName),
            ("1.2.3.08", Reason::NumericName),
            ("[::1", Reason::BadIpv6),
            ("[example.com]", Reason::BadIpv6),
            // Fullwidth `%`, `@`, `:` map to ASCII under UTS 46; the result is checked.
            ("example\u{FF05}2ecom", Reason::Idna),
        ] {
            let got = n(s);
            // The fullwidth forms are refused by IDNA itself or by the check after it;
            // either way they never become a name.
            if r == Reason::Idna {
                assert!(got.is_err(), "{s:?}: {got:?}");
            } else {
                assert_eq!(got, Err(r), "{s:?}");
            }
        }
        assert_eq!(n(&"a".repeat(64)), Err(Reason::LabelTooLong));
        assert_eq!(
            n(&format!("{}.com", vec!["a".repeat(60); 5].join("."))),
            Err(Reason::NameTooLong)
        );
        assert_eq!(n(&"a".repeat(2000)), Err(Reason::InputTooLong));
        assert!(n(&format!("{}.com", "a".repeat(63))).is_ok());
    }

    #[test]
    fn ip_literals_are_canonical() {
        assert_eq!(n("[::FFFF:1.2.3.4]"), Ok("ip:1.2.3.4".into()));
        assert_eq!(n("::1"), Ok("ip:::1".into()));
        assert_eq!(normalize("::1", false), Err(Reason::UnbracketedIpv6));
        assert_eq!(n("[2001:DB8::1]"), Ok("ip:2001:db8::1".into()));
        // Leading zeros are octal to inet_aton: never read as decimal here.
        assert_eq!(n("010.0.0.1"), Err(Reason::NumericName));
    }

    #[test]
    fn errors_are_one_line_and_escape_the_value() {
        let e = HostError::new("a\nb\u{202e}\0", Reason::Nul).to_string();
        assert!(!e.contains('\n') && !e.contains('\0') && !e.contains('\u{202e}'), "{e}");
        assert!(e.contains("NUL"), "{e}");
        let long = HostError::new(&"x".repeat(5000), Reason::InputTooLong).to_string();
        assert!(long.len() < 300, "{long}");
    }
}
