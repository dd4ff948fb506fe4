//! The egress proxy's request decision (`skillbox_egress::decide_request`): a client's
//! request head (httparse, then `http::uri::Authority` / `http::Uri`) decided against a
//! fixed allowlist, and against "any public host".
//!
//! Input: the bytes a client sent, as they are.
//!
//! Beyond "no panic", a differential: whenever the proxy allows a request, an independent
//! parse must name the same target. The request line is split here by hand (method, target,
//! version) and the target parsed by the `url` crate (WHATWG URL: `http://` + the CONNECT
//! authority, or the absolute URI); url's host and port (default 80) must be the proxy's
//! normalised host and port. For plain HTTP, the head sent to the origin must parse again
//! (httparse) in origin form, with one `Host` header that `url` reads as the same host and
//! port, `Connection: close` and no `Proxy-*` header. Also: every reason is one safe line,
//! and nothing holding a NUL byte in its head is allowed.

#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use skillbox_egress::{decide_request, Allowlist, Host, HostPattern, Outcome, Rules};
use skillbox_fuzz::assert_one_safe_line;

const PATTERNS: &[&str] = &[
    "*.example.com",
    "api.example.org:8080",
    "xn--bcher-kva.example",
    "192.0.2.1",
    "[2001:db8::1]:8443",
    "127.0.0.1:3128",
];

fn rule_sets() -> Vec<Rules> {
    let list = |plain_http| {
        Allowlist::new(PATTERNS.iter().filter_map(|p| HostPattern::parse(p).ok()), plain_http)
    };
    let hint = "add {pattern} ({host} port {port})".to_string();
    vec![
        Rules { list: Some(list(false)), plain_http: false, hint: hint.clone() },
        Rules { list: Some(list(true)), plain_http: true, hint: hint.clone() },
        Rules { list: None, plain_http: false, hint: hint.clone() },
        Rules { list: None, plain_http: true, hint },
    ]
}

/// The host and port `url` reads in `text`, in the proxy's normal form.
fn url_target(text: &str) -> Option<(Host, u16)> {
    let u = url::Url::parse(text).ok()?;
    let host = match u.host()? {
        url::Host::Domain(d) => Host::Name(d.strip_suffix('.').unwrap_or(d).to_string()),
        url::Host::Ipv4(a) => Host::Ip(IpAddr::V4(a)),
        url::Host::Ipv6(a) => Host::Ip(IpAddr::V6(a).to_canonical()),
    };
    Some((host, u.port_or_known_default()?))
}

/// The request line, split by hand: `METHOD TARGET VERSION`, after any empty lines.
fn request_line(data: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(data).ok().or_else(|| {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        std::str::from_utf8(&data[..end]).ok()
    })?;
    let text = text.trim_start_matches(['\r', '\n']);
    let line = text.split('\n').next()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let (m, t, _v, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    Some((m, t))
}

fuzz_target!(|data: &[u8]| {
    for rules in rule_sets() {
        let d = decide_request(data, &rules);
        assert_eq!(d, decide_request(data, &rules), "not deterministic");
        assert_one_safe_line("a method", &d.method);
        assert_one_safe_line("a host", &d.host);
        let (host, head_len) = match &d.outcome {
            Outcome::Incomplete => continue,
            Outcome::BadRequest(why) | Outcome::Refused(why) => {
                assert_one_safe_line("a reason", why);
                assert_one_safe_line("a hint", &rules.hint_for(&d.host, d.port));
                continue;
            }
            Outcome::Tunnel { host, head_len } | Outcome::Forward { host, head_len, .. } => {
                (host, *head_len)
            }
        };
        assert!(head_len <= data.len(), "head_len {head_len} > {}", data.len());
        assert!(!data[..head_len].contains(&0), "allowed with a NUL byte in the head: {d:?}");
        assert_eq!(host.to_string(), d.host, "record host");
        assert_ne!(d.port, 0);
        let Some((method, target)) = request_line(&data[..head_len]) else {
            panic!("allowed, but the request line does not split in three: {d:?}");
        };
        assert_eq!(method, d.method);
        let url_text = match &d.outcome {
            Outcome::Tunnel { .. } => format!("http://{target}/"),
            _ => target.to_string(),
        };
        match url_target(&url_text) {
            Some(theirs) => {
                assert_eq!(
                    (host, d.port),
                    (&theirs.0, theirs.1),
                    "url reads {url_text:?} otherwise"
                )
            }
            None => panic!("url refuses {url_text:?}, which the proxy allowed: {d:?}"),
        }
        if let Outcome::Forward { head, .. } = &d.outcome {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(head) {
                Ok(httparse::Status::Complete(n)) => assert_eq!(n, head.len()),
                other => panic!("the forwarded head does not parse: {other:?} {head:?}"),
            }
            assert_eq!(req.method, Some(method));
            assert!(
                req.path.is_some_and(|p| p.starts_with('/')),
                "not origin-form: {:?}",
                req.path
            );
            let hosts: Vec<&[u8]> = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| h.value)
                .collect();
            assert_eq!(hosts.len(), 1, "Host headers forwarded: {hosts:?}");
            let value = String::from_utf8_lossy(hosts[0]);
            if let Some(theirs) = url_target(&format!("http://{}/", value.trim())) {
                assert_eq!((host, d.port), (&theirs.0, theirs.1), "Host {value:?}");
            }
            assert!(req.headers.iter().all(|h| !h.name.to_ascii_lowercase().starts_with("proxy-")));
            let conns: Vec<&[u8]> = req
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("connection"))
                .map(|h| h.value)
                .collect();
            assert_eq!(conns, [b"close"], "Connection headers forwarded");
        }
    }
});
