//! This host's own interface addresses: a name resolving to one of them would reach a
//! service on the host (bound to its LAN address, say) from inside the run.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address of every interface of this host (network namespace of the caller), as
/// `getifaddrs(3)` lists them, IPv4-mapped IPv6 addresses turned into IPv4.
pub(crate) fn interface_addresses() -> io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success getifaddrs stores a list that is
    // freed below with freeifaddrs, once.
    let rc = unsafe { libc::getifaddrs(&mut head) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a non-null node of the list getifaddrs returned, not yet freed.
        let node = unsafe { &*cur };
        if let Some(a) = address(node.ifa_addr) {
            out.push(a.to_canonical());
        }
        cur = node.ifa_next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed only here; no reference
    // into the list outlives this point (addresses were copied out).
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IP address in a `sockaddr` of an interface, if it is IPv4 or IPv6.
fn address(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: getifaddrs gives a valid sockaddr or null (checked above), alive until freed.
    let family = i32::from(unsafe { (*sa).sa_family });
    match family {
        libc::AF_INET => {
            // SAFETY: family AF_INET: the kernel stored a sockaddr_in here; read unaligned
            // since the struct behind the pointer is only guaranteed sockaddr's alignment.
            let sin = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>()) };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: family AF_INET6: a sockaddr_in6 is stored here (read unaligned, as above).
            let sin6 = unsafe { std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>()) };
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_among_this_hosts_addresses() {
        let addrs = match interface_addresses() {
            Ok(a) => a,
            Err(e) => panic!("getifaddrs: {e}"),
        };
        assert!(addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)), "{addrs:?}");
    }
}
