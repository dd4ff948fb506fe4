//! The proxy's first decision on a connection: what its request head asks for, and
//! whether the rules allow that host and port by name. Pure, so that it can be fuzzed.
//!
//! The head is parsed by `httparse`, the CONNECT target by `http::uri::Authority` and an
//! absolute URI by `http::Uri`; only their results are looked at here, never raw bytes.

use std::str::FromStr;

use http::uri::{Authority, Uri};

use crate::host::{normalize, Host, HostError};
use crate::pattern::{Allowlist, Decision};
use crate::{HTTPS_PORT, HTTP_PORT};

/// The longest request head read: past it, the request is refused as too large.
pub const MAX_HEAD: usize = 64 * 1024;
/// Headers a request may carry; more is refused.
const MAX_HEADERS: usize = 100;
/// Characters of a client's text quoted in a record or message.
const QUOTED: usize = 200;

/// What one run may reach through the proxy.
///
/// Built by the caller from whatever declared it (for skillbox, a skill's
/// `allowed_domains` and `network_access`); this crate does not know where it came from.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// The hosts allowed, by name or IP literal. `None`: any host whose name resolves to a
    /// public address, on 443 (and 80 when `plain_http`); an IP literal is then refused,
    /// since literals are allowed only when listed. With a list, the list's own
    /// [`Allowlist::plain_http`] decides port 80 for patterns without a port.
    pub list: Option<Allowlist>,
    /// Whether plain HTTP on port 80 is allowed when `list` is `None`.
    pub plain_http: bool,
    /// Advice the body of a 403 ends with, e.g. how to add the host to the caller's
    /// configuration. `{host}` is replaced by the refused host, `{port}` by its port and
    /// `{pattern}` by the pattern that would allow it (`host`, or `host:port` for a port a
    /// bare pattern does not allow).
    pub hint: String,
}

impl Rules {
    /// `hint` with its placeholders filled in for `host` and `port`.
    pub fn hint_for(&self, host: &str, port: u16) -> String {
        let plain =
            self.list.as_ref().map_or(self.plain_http, Allowlist::plain_http) && port == HTTP_PORT;
        let pattern =
            if port == HTTPS_PORT || plain { host.to_string() } else { format!("{host}:{port}") };
        self.hint
            .replace("{pattern}", &pattern)
            .replace("{host}", host)
            .replace("{port}", &port.to_string())
    }

    /// Decides a normalised host and port by name (before any resolution).
    fn decide_name(&self, written: &str, host: &Host, port: u16) -> Result<(), String> {
        match &self.list {
            Some(list) => match list.decide(written, port) {
                Decision::Allowed { .. } => Ok(()),
                Decision::Refused(r) => Err(r.to_string()),
            },
            None => {
                if let Host::Ip(_) = host {
                    return Err(format!(
                        "{host} is an IP address; without a list of hosts only names are \
                         allowed, and an address only when listed"
                    ));
                }
                if port == HTTPS_PORT || (self.plain_http && port == HTTP_PORT) {
                    Ok(())
                } else {
                    Err(format!(
                        "{host} port {port}: only port 443{} is allowed without a list of hosts",
                        if self.plain_http { " and 80" } else { "" }
                    ))
                }
            }
        }
    }

    /// Whether the list names this exact address and port as an IP literal: the only way
    /// a non-public address, or one of this host's own, is reached.
    pub fn lists_address(&self, addr: std::net::SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        self.list.as_ref().is_some_and(|l| match l.decide(&Host::Ip(ip).to_string(), addr.port()) {
            Decision::Allowed { host, .. } => host == Host::Ip(ip),
            Decision::Refused(_) => false,
        })
    }
}

/// The proxy's decision on a request head, before the host is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDecision {
    /// The method (`CONNECT`, `GET`...), escaped; empty when none could be read.
    pub method: String,
    /// The requested host: normalised when it is a valid host, else as written, escaped;
    /// empty when none could be read.
    pub host: String,
    /// The requested port; 0 when none could be read.
    pub port: u16,
    /// What to do.
    pub outcome: Outcome,
}

/// What the proxy does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The head is not complete yet: read more (up to [`MAX_HEAD`]).
    Incomplete,
    /// Malformed or not what a proxy serves: answer 400 with this one-line reason.
    BadRequest(String),
    /// A host or port the rules do not allow by name: answer 403 with this reason.
    Refused(String),
    /// `CONNECT`: allowed by name; resolve `host`, check the address, answer 200 and tunnel.
    /// The client's bytes after the first `head_len` belong to the tunnel.
    Tunnel {
        /// The host to resolve, normalised.
        host: Host,
        /// Length of the request head in the bytes decided.
        head_len: usize,
    },
    /// Plain HTTP in absolute form: allowed by name; resolve `host`, check the address,
    /// send `head` (origin-form, hop-by-hop headers removed, `Connection: close`) and then
    /// the client's bytes after `head_len`.
    Forward {
        /// The host to resolve, normalised.
        host: Host,
        /// Length of the request head in the bytes decided.
        head_len: usize,
        /// The head to send to the origin instead.
        head: Vec<u8>,
    },
}

/// Headers that concern one hop, never forwarded (RFC 9110 §7.6.1), besides any `Proxy-*`
/// and those a `Connection` header names.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"];
/// Headers kept even when `Connection` names them: they frame the body, which is passed on
/// as the client sent it, or name the host checked.
const KEPT: &[&str] = &["host", "content-length", "transfer-encoding"];

/// `s` escaped for a one-line record or message (control characters, quotes and
/// backslashes escaped), cut to a short length.
pub(crate) fn escape(s: &str) -> String {
    let e: String = s.chars().take(QUOTED).flat_map(char::escape_debug).collect();
    if s.chars().nth(QUOTED).is_some() {
        format!("{e}...")
    } else {
        e
    }
}

/// The first line of what the client sent, escaped: named in a 400 so that the client sees
/// what was refused even when it could not be parsed.
fn first_line(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = &line[..line.len().min(QUOTED)];
    escape(&String::from_utf8_lossy(line))
}

/// Decides a request head: `bytes` is what the client has sent so far (a complete head is
/// followed by any bytes sent after it). Never panics; the same input always gives the
/// same decision.
pub fn decide_request(bytes: &[u8], rules: &Rules) -> RequestDecision {
    let cut = &bytes[..bytes.len().min(MAX_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(cut);
    let method = req.method.map(escape).unwrap_or_default();
    let bad = |method: String, reason: String| RequestDecision {
        method,
        host: String::new(),
        port: 0,
        outcome: Outcome::BadRequest(reason),
    };
    let head_len = match parsed {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if cut.len() >= MAX_HEAD => {
            return bad(method, format!("request head longer than {} KiB", MAX_HEAD / 1024));
        }
        Ok(httparse::Status::Partial) => {
            return RequestDecision {
                method,
                host: String::new(),
                port: 0,
                outcome: Outcome::Incomplete,
            };
        }
        Err(e) => {
            return bad(
                method,
                format!("malformed request head ({e}) in \"{}\"", first_line(bytes)),
            );
        }
    };
    if cut[..head_len].contains(&0) {
        return bad(method, format!("NUL byte in the request head \"{}\"", first_line(bytes)));
    }
    let (Some(m), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return bad(method, "incomplete request line".into());
    };
    if m == "CONNECT" {
        connect(m, target, head_len, rules)
    } else {
        absolute(m, target, version, req.headers, head_len, rules)
    }
}

/// A `CONNECT host:port` request.
fn connect(method: &str, target: &str, head_len: usize, rules: &Rules) -> RequestDecision {
    let mut d = RequestDecision {
        method: method.into(),
        host: escape(target),
        port: 0,
        outcome: Outcome::Incomplete,
    };
    let authority = match Authority::from_str(target) {
        Ok(a) => a,
        Err(_) => {
            d.outcome = Outcome::BadRequest(format!(
                "CONNECT target \"{}\" is not host:port",
                escape(target)
            ));
            return d;
        }
    };
    let (host, port) = match split(&authority) {
        Ok(hp) => hp,
        Err(why) => {
            d.outcome = Outcome::BadRequest(format!("CONNECT target \"{}\" {why}", escape(target)));
            return d;
        }
    };
    d.host = escape(host);
    d.port = port;
    d.outcome = match by_name(host, port, rules, &mut d.host) {
        Ok(h) => Outcome::Tunnel { host: h, head_len },
        Err(o) => o,
    };
    d
}

/// The host and port of an authority, refusing userinfo and a missing or zero port.
fn split(a: &Authority) -> Result<(&str, u16), &'static str> {
    if a.as_str().contains('@') {
        return Err("holds userinfo (user@host)");
    }
    match port_of(a)? {
        Some(p) => Ok((a.host(), p)),
        None => Err("has no port"),
    }
}

/// The port written in an authority (without userinfo), if any: 1-65535 in decimal.
///
/// `Authority::port_u16` alone gives `None` both for no port and for a port that is not a
/// number (`host:80=1`), which must not be read as "the default port" (found by the
/// `proxy_request` fuzz target's differential against the `url` crate).
fn port_of(a: &Authority) -> Result<Option<u16>, &'static str> {
    let Some(after) = a.as_str().strip_prefix(a.host()) else {
        return Err("is not host[:port]");
    };
    let Some(digits) = after.strip_prefix(':') else {
        return if after.is_empty() { Ok(None) } else { Err("is not host[:port]") };
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("has a port that is not a number");
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err("has a port that is not from 1 to 65535"),
        Ok(p) => Ok(Some(p)),
    }
}

/// Normalises and decides `host` by name; on success, `shown` becomes its normalised form.
fn by_name(host: &str, port: u16, rules: &Rules, shown: &mut String) -> Result<Host, Outcome> {
    let normal = match normalize(host, true) {
        Ok(h) => h,
        Err(r) => return Err(Outcome::Refused(HostError::new(host, r).to_string())),
    };
    *shown = normal.to_string();
    match rules.decide_name(host, &normal, port) {
        Ok(()) => Ok(normal),
        Err(why) => Err(Outcome::Refused(why)),
    }
}

/// A request in absolute form (`GET http://host/path HTTP/1.1`).
fn absolute(
    method: &str,
    target: &str,
    version: u8,
    headers: &[httparse::Header<'_>],
    head_len: usize,
    rules: &Rules,
) -> RequestDecision {
    let mut d = RequestDecision {
        method: escape(method),
        host: String::new(),
        port: 0,
        outcome: Outcome::Incomplete,
    };
    let bad = |mut d: RequestDecision, why: String| {
        d.outcome = Outcome::BadRequest(why);
        d
    };
    let uri = match Uri::from_str(target) {
        Ok(u) => u,
        Err(_) => return bad(d, format!("request target \"{}\" is not a URI", escape(target))),
    };
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => {}
        Some(s) if s.eq_ignore_ascii_case("https") => {
            return bad(
                d,
                "an https:// URI is reached with CONNECT host:443, not sent to the proxy".into(),
            );
        }
        Some(s) => return bad(d, format!("scheme \"{}\" is not served (http only)", escape(s))),
        None => {
            return bad(
                d,
                format!(
                    "request target \"{}\" is not absolute: this is a proxy; send \
                     `{method} http://host/path` or CONNECT host:port",
                    escape(target)
                ),
            );
        }
    }
    let Some(authority) = uri.authority() else {
        return bad(d, format!("URI \"{}\" has no host", escape(target)));
    };
    if authority.as_str().contains('@') {
        return bad(d, format!("URI \"{}\" holds userinfo (user@host)", escape(target)));
    }
    let host = authority.host();
    d.host = escape(host);
    let port = match port_of(authority) {
        Ok(p) => p.unwrap_or(HTTP_PORT),
        Err(why) => return bad(d, format!("URI \"{}\" {why}", escape(target))),
    };
    d.port = port;
    let normal = match by_name(host, port, rules, &mut d.host) {
        Ok(h) => h,
        Err(o) => {
            d.outcome = o;
            return d;
        }
    };
    if let Err(why) = host_header_agrees(headers, &normal, port) {
        return bad(d, why);
    }
    // Origin-form is an absolute path and an optional query: `http://h?q` is `/?q` (found
    // by the proxy_request fuzz target: the query alone is no request target).
    let path = match (uri.path(), uri.query()) {
        ("", q) => format!("/{}", q.map(|q| format!("?{q}")).unwrap_or_default()),
        (p, Some(q)) => format!("{p}?{q}"),
        (p, None) => p.to_string(),
    };
    d.outcome = Outcome::Forward {
        host: normal,
        head_len,
        head: origin_head(method, &path, version, headers),
    };
    d
}

/// The request must carry exactly one `Host` header naming the URI's host and port.
fn host_header_agrees(
    headers: &[httparse::Header<'_>],
    host: &Host,
    port: u16,
) -> Result<(), String> {
    let mut hosts = headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host"));
    let (Some(h), None) = (hosts.next(), hosts.next()) else {
        return Err("the request needs exactly one Host header".into());
    };
    let value = String::from_utf8_lossy(h.value);
    let shown = escape(&value);
    let authority = Authority::from_str(value.trim())
        .map_err(|_| format!("Host header \"{shown}\" is not host[:port]"))?;
    if authority.as_str().contains('@') {
        return Err(format!("Host header \"{shown}\" holds userinfo"));
    }
    let hport = port_of(&authority)
        .map_err(|why| format!("Host header \"{shown}\" {why}"))?
        .unwrap_or(HTTP_PORT);
    let hhost = normalize(authority.host(), true)
        .map_err(|r| format!("Host header {}", HostError::new(&value, r)))?;
    if hhost != *host || hport != port {
        return Err(format!("Host header \"{shown}\" does not name the URI's host {host}:{port}"));
    }
    Ok(())
}

/// The head sent to the origin: origin-form, without hop-by-hop or `Proxy-*` headers, with
/// `Connection: close` (one request per connection).
fn origin_head(method: &str, path: &str, version: u8, headers: &[httparse::Header<'_>]) -> Vec<u8> {
    let named: Vec<String> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(h.value)
                .split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|t| !KEPT.contains(&t.as_str()))
        .collect();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(if version == 0 { b" HTTP/1.0\r\n" } else { b" HTTP/1.1\r\n" });
    for h in headers {
        let name = h.name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&name.as_str())
            || name.starts_with("proxy-")
            || named.contains(&name)
        {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HostPattern;

    fn rules(ps: &[&str], plain_http: bool) -> Rules {
        let list = Allowlist::new(ps.iter().filter_map(|p| HostPattern::parse(p).ok()), plain_http);
        Rules { list: Some(list), plain_http, hint: "add {pattern} to the list".into() }
    }

    fn any(plain_http: bool) -> Rules {
        Rules { list: None, plain_http, hint: String::new() }
    }

    #[test]
    fn connect_allowed_and_refused() {
        let r = rules(&["api.example.com", "alt.example.com:8443"], false);
        let d =
            decide_request(b"CONNECT API.example.com.:443 HTTP/1.1\r\nHost: x\r\n\r\nhello", &r);
        assert_eq!(d.host, "api.example.com");
        assert_eq!(d.port, 443);
        assert!(matches!(d.outcome, Outcome::Tunnel { head_len: 50, .. }), "{d:?}");
        let d = decide_request(b"CONNECT other.example.com:443 HTTP/1.1\r\n\r\n", &r);
        assert!(matches!(d.outcome, Outcome::Refused(_)), "{d:?}");
        let d = decide_request(b"CONNECT alt.example.com:443 HTTP/1.1\r\n\r\n", &r);
        assert!(matches!(d.outcome, Outcome::Refused(_)), "{d:?}");
        let d = decide_request(b"CONNECT alt.example.com:8443 HTTP/1.1\r\n\r\n", &r);
        assert!(matches!(d.outcome, Outcome::Tunnel { .. }), "{d:?}");
        for bad in [
            &b"CONNECT api.example.com HTTP/1.1\r\n\r\n"[..],
            b"CONNECT user@api.example.com:443 HTTP/1.1\r\n\r\n",
            b"CONNECT api.example.com:0 HTTP/1.1\r\n\r\n",
            b"CONNECT api.example.com:443x HTTP/1.1\r\n\r\n",
            b"CONNECT api.example.com:4430000 HTTP/1.1\r\n\r\n",
            b"CONNECT api.example.com: HTTP/1.1\r\n\r\n",
            b"CONNECT api.example.com\0.evil:443 HTTP/1.1\r\n\r\n",
            b"CONNECT api.example.com:443 HTTP/1.1\r\nX: a\0b\r\n\r\n",
            b"GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            b"\x16\x03\x01garbage\r\n\r\n",
        ] {
            let d = decide_request(bad, &r);
            assert!(matches!(d.outcome, Outcome::BadRequest(_)), "{bad:?}: {d:?}");
        }
        let d = decide_request(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n", &r);
        assert_eq!(d.host, "[::1]");
        assert!(matches!(d.outcome, Outcome::Refused(_)));
    }

    #[test]
    fn incomplete_and_too_large() {
        let r = any(false);
        assert_eq!(
            decide_request(b"CONNECT a.example:443 HTTP/1.1\r\n", &r).outcome,
            Outcome::Incomplete
        );
        let mut big = b"CONNECT a.example:443 HTTP/1.1\r\n".to_vec();
        while big.len() < MAX_HEAD + 10 {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert!(matches!(decide_request(&big, &r).outcome, Outcome::BadRequest(_)));
    }

    #[test]
    fn any_public_refuses_literals_and_other_ports() {
        let r = any(false);
        assert!(matches!(
            decide_request(b"CONNECT a.example:443 HTTP/1.1\r\n\r\n", &r).outcome,
            Outcome::Tunnel { .. }
        ));
        for t in ["1.2.3.4:443", "[2001:4860::1]:443", "a.example:80", "a.example:22"] {
            let req = format!("CONNECT {t} HTTP/1.1\r\n\r\n");
            assert!(
                matches!(decide_request(req.as_bytes(), &r).outcome, Outcome::Refused(_)),
                "{t}"
            );
        }
        let http = any(true);
        assert!(matches!(
            decide_request(b"CONNECT a.example:80 HTTP/1.1\r\n\r\n", &http).outcome,
            Outcome::Tunnel { .. }
        ));
    }

    #[test]
    fn absolute_form_is_rewritten_and_host_must_agree() {
        let r = rules(&["api.example.com"], true);
        let req = b"POST http://API.example.com/a?b=1 HTTP/1.1\r\nHost: api.example.com.:80\r\n\
                    Proxy-Authorization: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n\
                    Content-Length: 2\r\n\r\nhi";
        let d = decide_request(req, &r);
        let Outcome::Forward { head, head_len, .. } = &d.outcome else { panic!("{d:?}") };
        assert_eq!(&req[*head_len..], b"hi");
        assert_eq!(
            String::from_utf8_lossy(head),
            "POST /a?b=1 HTTP/1.1\r\nHost: api.example.com.:80\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
        for bad in [
            &b"GET http://api.example.com/ HTTP/1.1\r\nHost: evil.example\r\n\r\n"[..],
            b"GET http://api.example.com/ HTTP/1.1\r\nHost: api.example.com:8080\r\n\r\n",
            b"GET http://api.example.com/ HTTP/1.1\r\n\r\n",
            b"GET http://api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\nHost: api.example.com\r\n\r\n",
            b"GET https://api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            b"GET ftp://api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            b"GET http://u@api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            // Found by the proxy_request fuzz target: a port that is not a number was read
            // as no port, so as the default 80, in the URI and in Host.
            b"GET http://api.example.com:80=1/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            b"GET http://api.example.com/ HTTP/1.1\r\nHost: api.example.com:655.8\r\n\r\n",
            b"GET http://api.example.com:/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            b"GET http://api.example.com:0080x/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
        ] {
            let d = decide_request(bad, &r);
            assert!(matches!(d.outcome, Outcome::BadRequest(_)), "{:?}: {d:?}", String::from_utf8_lossy(bad));
        }
        let no_http = rules(&["api.example.com"], false);
        let d = decide_request(
            b"GET http://api.example.com/ HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
            &no_http,
        );
        assert!(matches!(d.outcome, Outcome::Refused(_)), "{d:?}");
    }

    #[test]
    fn origin_form_is_an_absolute_path() {
        let r = rules(&["api.example.com"], true);
        for (uri, want) in [
            ("http://api.example.com", "/"),
            ("http://api.example.com?x=1", "/?x=1"),
            ("http://api.example.com/?x=1", "/?x=1"),
            ("http://api.example.com/a/b?", "/a/b?"),
            ("http://api.example.com/a#frag", "/a"),
        ] {
            let req = format!("GET {uri} HTTP/1.1\r\nHost: api.example.com\r\n\r\n");
            let d = decide_request(req.as_bytes(), &r);
            let Outcome::Forward { head, .. } = &d.outcome else {
                // A fragment is not a URI character httparse or http accept: refused is fine.
                assert!(matches!(d.outcome, Outcome::BadRequest(_)), "{uri}: {d:?}");
                continue;
            };
            let line = String::from_utf8_lossy(head).lines().next().map(str::to_string);
            assert_eq!(line.as_deref(), Some(format!("GET {want} HTTP/1.1").as_str()), "{uri}");
        }
    }

    #[test]
    fn hint_placeholders() {
        let r = rules(&[], false);
        assert_eq!(r.hint_for("a.example", 443), "add a.example to the list");
        assert_eq!(r.hint_for("a.example", 8443), "add a.example:8443 to the list");
    }
}
