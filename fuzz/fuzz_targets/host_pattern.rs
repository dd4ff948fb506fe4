//! The host matcher of `allowed_domains` (`skillbox_egress`): patterns parsed and
//! normalised once when a skill file loads, and a requested host decided against them.
//!
//! Input: patterns, one a line; then optionally a line `==> host <==` and a requested host
//! (its bytes as they are, NUL bytes included; one final newline is dropped).
//!
//! Beyond "no panic": a pattern that parses, displayed, parses to the same pattern, and
//! every refusal is one safe line; a host is decided the same as its ASCII-uppercase
//! spelling and as its spelling with one trailing dot; a host holding a NUL byte is never
//! allowed; an allowed host, written in its normalised form, is allowed again (to the same
//! host); an address is classed the same as its IPv4-mapped IPv6 form.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use skillbox_egress::{AddressClass, Allowlist, Decision, Host, HostPattern};
use skillbox_fuzz::{assert_one_safe_line, file, sections};

/// What must not depend on the spelling of a host: allowed or not, and to which host.
fn outcome(d: &Decision) -> Option<&Host> {
    match d {
        Decision::Allowed { host, .. } => Some(host),
        Decision::Refused(_) => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let files = sections(data, "patterns");
    let Some(patterns) = file(&files, "patterns") else { return };
    let patterns = String::from_utf8_lossy(patterns);
    let mut parsed = Vec::new();
    for line in patterns.split('\n') {
        match HostPattern::parse(line) {
            Ok(p) => {
                let shown = p.to_string();
                assert!(shown.is_ascii(), "{line:?} displays as {shown:?}");
                assert_one_safe_line("a pattern", &shown);
                match HostPattern::parse(&shown) {
                    Ok(again) => assert_eq!(again, p, "{line:?} -> {shown:?}"),
                    Err(e) => panic!("{line:?} displays as {shown:?}, which is refused: {e}"),
                }
                parsed.push(p);
            }
            Err(e) => assert_one_safe_line("a refusal", &e.to_string()),
        }
    }
    let Some(host) = file(&files, "host") else { return };
    let host = host.strip_suffix(b"\n").unwrap_or(host);
    let host = String::from_utf8_lossy(host);
    let ports: Vec<u16> =
        [443, 80].into_iter().chain(parsed.iter().filter_map(|p| p.port())).collect();
    for plain_http in [false, true] {
        let list = Allowlist::new(parsed.iter().cloned(), plain_http);
        for &port in &ports {
            let d = list.decide(&host, port);
            if let Decision::Refused(r) = &d {
                assert_one_safe_line("a refused host", &r.to_string());
            }
            if host.contains('\0') {
                assert!(!d.is_allowed(), "{host:?} holds a NUL byte and was allowed: {d:?}");
            }
            let upper = list.decide(&host.to_ascii_uppercase(), port);
            assert_eq!(outcome(&d), outcome(&upper), "{host:?} vs its uppercase");
            if !host.ends_with('.') {
                let dotted = list.decide(&format!("{host}."), port);
                assert_eq!(outcome(&d), outcome(&dotted), "{host:?} vs a trailing dot");
            }
            if let Decision::Allowed { host: h, .. } = &d {
                let again = list.decide(&h.to_string(), port);
                assert_eq!(outcome(&again), Some(h), "{host:?} normalised to {h}");
                if let Host::Ip(IpAddr::V4(a)) = h {
                    let mapped = IpAddr::V6(a.to_ipv6_mapped());
                    assert_eq!(AddressClass::of(IpAddr::V4(*a)), AddressClass::of(mapped));
                }
            }
        }
    }
});
