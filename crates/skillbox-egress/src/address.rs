//! What kind of address a name resolved to, so that a listed name cannot be pointed at the
//! host itself, its network or the cloud's metadata service (DNS rebinding, a hostile
//! record, a typo'd internal name).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an IP address, as far as egress is concerned.
///
/// Only [`AddressClass::Public`] is reachable through a name; every other class is reached
/// only when the grant lists that address (or, later, that name explicitly). An IPv6
/// address that carries an IPv4 address (IPv4-mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96`, 6to4 `2002::/16`) is classed by that IPv4 address, since a connection
/// to it reaches (or is translated to) the IPv4 host; a NAT64 or 6to4 address carrying a
/// public IPv4 address is public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressClass {
    /// Routable on the internet.
    Public,
    /// `127.0.0.0/8`, `::1`: this host.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// RFC 4193 unique local `fc00::/7`, and deprecated site-local `fec0::/10`.
    UniqueLocal,
    /// `169.254/16`, `fe80::/10`, except the metadata address.
    LinkLocal,
    /// Cloud instance metadata: `169.254.169.254`, `fd00:ec2::254` (credentials live there).
    CloudMetadata,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `0.0.0.0/8` ("this network"; `0.0.0.0` reaches this host on Linux), `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// RFC 6598 shared address space `100.64/10` (carrier-grade NAT; also used for
    /// provider-internal services).
    SharedCgnat,
    /// Documentation ranges: `192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
    /// `2001:db8::/32`, `3fff::/20`: never real hosts.
    Documentation,
    /// Benchmarking: `198.18/15`, `2001:2::/48`.
    Benchmarking,
    /// Reserved or protocol-specific: `192.0.0/24`, `240/4`, `100::/64` (discard), IPv4-
    /// compatible `::/96`, and other special-purpose ranges.
    Reserved,
}

impl AddressClass {
    /// Classifies `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(a) => v4(a),
            IpAddr::V6(a) => v6(a),
        }
    }

    /// Whether a name may lead here without the address being listed.
    pub fn is_public(self) -> bool {
        self == Self::Public
    }

    /// The spelling used in messages and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::UniqueLocal => "unique-local",
            Self::LinkLocal => "link-local",
            Self::CloudMetadata => "cloud-metadata",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::SharedCgnat => "shared-cgnat",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Reserved => "reserved",
        }
    }
}

fn v4(a: Ipv4Addr) -> AddressClass {
    use AddressClass::*;
    let [o0, o1, o2, _] = a.octets();
    match (o0, o1, o2) {
        _ if a == Ipv4Addr::new(169, 254, 169, 254) => CloudMetadata,
        _ if a == Ipv4Addr::BROADCAST => Broadcast,
        (0, _, _) => Unspecified,
        (127, _, _) => Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (169, 254, _) => LinkLocal,
        (100, 64..=127, _) => SharedCgnat,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (192, 0, 0) => Reserved,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => Public,
    }
}

fn v6(a: Ipv6Addr) -> AddressClass {
    use AddressClass::*;
    if let Some(v4addr) = a.to_ipv4_mapped() {
        return v4(v4addr);
    }
    let s = a.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if a == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return CloudMetadata;
    }
    match s {
        _ if a.is_unspecified() => Unspecified,
        _ if a.is_loopback() => Loopback,
        // NAT64 well-known prefix: the last 32 bits are the IPv4 host.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => v4(embedded(hi, lo)),
        // 6to4: bits 16-47 are the IPv4 address of the relay's far end.
        [0x2002, hi, lo, ..] => v4(embedded(hi, lo)),
        // Deprecated IPv4-compatible addresses, and the rest of ::/96.
        [0, 0, 0, 0, 0, 0, _, _] => Reserved,
        [0x100, 0, 0, 0, ..] => Reserved,
        [0x2001, 0xdb8, ..] => Documentation,
        [0x3fff, x, ..] if x < 0x1000 => Documentation,
        [0x2001, 2, 0, ..] => Benchmarking,
        [x, ..] if x & 0xfe00 == 0xfc00 => UniqueLocal,
        [x, ..] if x & 0xffc0 == 0xfec0 => UniqueLocal,
        [x, ..] if x & 0xffc0 == 0xfe80 => LinkLocal,
        [x, ..] if x & 0xff00 == 0xff00 => Multicast,
        _ => Public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AddressClass::*;

    fn c(s: &str) -> AddressClass {
        match s.parse::<IpAddr>() {
            Ok(a) => AddressClass::of(a),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn classes() {
        for (a, want) in [
            ("1.1.1.1", Public),
            ("8.8.8.8", Public),
            ("2606:4700:4700::1111", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("::1", Loopback),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("fd12:3456::1", UniqueLocal),
            ("fc00::1", UniqueLocal),
            ("fec0::1", UniqueLocal),
            ("169.254.1.1", LinkLocal),
            ("fe80::1", LinkLocal),
            ("169.254.169.254", CloudMetadata),
            ("fd00:ec2::254", CloudMetadata),
            ("::ffff:169.254.169.254", CloudMetadata),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("ff02::1", Multicast),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("::", Unspecified),
            ("255.255.255.255", Broadcast),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("100.128.0.1", Public),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("198.18.0.1", Benchmarking),
            ("2001:2::1", Benchmarking),
            ("192.0.0.8", Reserved),
            ("240.0.0.1", Reserved),
            ("100::1", Reserved),
            ("::7f00:1", Reserved),
            // IPv6 carrying IPv4: classed by the IPv4 address.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.0.0.1", Private),
            ("::ffff:8.8.8.8", Public),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", CloudMetadata),
            ("64:ff9b::808:808", Public),
            ("2002:7f00:1::1", Loopback),
            ("2002:0808:0808::1", Public),
        ] {
            assert_eq!(c(a), want, "{a}");
            assert_eq!(c(a).is_public(), want == Public, "{a}");
        }
    }
}
