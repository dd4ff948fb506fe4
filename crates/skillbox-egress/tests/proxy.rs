//! The egress proxy with real sockets: an origin listener, the proxy on another listener, and
//! a client speaking raw CONNECT and absolute-form HTTP. Effects are checked on the origin's
//! side: what it received, or that it accepted no connection at all.

use std::net::SocketAddr;
use std::time::Duration;

use skillbox_egress::{serve, Allowlist, Connection, HostPattern, Resolver, Rules, RunProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const NAME: &str = "pkgs.skillbox.test";
const HINT: &str = "add {pattern} to allowed_domains";
/// How long the origin waits for a connection that must not come.
const NO_CONNECTION: Duration = Duration::from_millis(500);
const T: Duration = Duration::from_secs(10);

fn rules(patterns: &[String], plain_http: bool) -> Rules {
    let list = Allowlist::new(
        patterns.iter().map(|p| match HostPattern::parse(p) {
            Ok(p) => p,
            Err(e) => panic!("{p}: {e}"),
        }),
        plain_http,
    );
    Rules { list: Some(list), plain_http, hint: HINT.into() }
}

fn resolver(spec: &str) -> Resolver {
    match Resolver::with_overrides(spec) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

async fn origin_on(ip: &str) -> (TcpListener, u16) {
    let l = match TcpListener::bind(format!("{ip}:0")).await {
        Ok(l) => l,
        Err(e) => panic!("bind {ip}: {e}"),
    };
    let port = l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    (l, port)
}

fn start(rules: Rules, resolver: Resolver) -> (RunProxy, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    match serve(l, rules, resolver) {
        Ok(p) => (p, addr),
        Err(e) => panic!("serve: {e}"),
    }
}

async fn connect(proxy: SocketAddr) -> TcpStream {
    match TcpStream::connect(proxy).await {
        Ok(s) => s,
        Err(e) => panic!("connect to the proxy: {e}"),
    }
}

/// Sends `request` and reads the whole response (the proxy closes after an error).
async fn exchange(proxy: SocketAddr, request: &[u8]) -> String {
    let mut c = connect(proxy).await;
    c.write_all(request).await.unwrap_or_else(|e| panic!("write: {e}"));
    let mut out = Vec::new();
    match timeout(T, c.read_to_end(&mut out)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("read: {e}"),
        Err(_) => panic!("no response within {T:?}; got {:?}", String::from_utf8_lossy(&out)),
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The origin accepted no connection.
async fn assert_no_connection(origin: &TcpListener, what: &str) {
    if let Ok(Ok((_, from))) = timeout(NO_CONNECTION, origin.accept()).await {
        panic!("{what}: the origin accepted a connection from {from}");
    }
}

async fn accept(origin: &TcpListener) -> TcpStream {
    match timeout(T, origin.accept()).await {
        Ok(Ok((s, _))) => s,
        Ok(Err(e)) => panic!("accept: {e}"),
        Err(_) => panic!("the origin got no connection"),
    }
}

async fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    match timeout(T, s.read_exact(&mut b)).await {
        Ok(Ok(_)) => b,
        Ok(Err(e)) => panic!("read {n}: {e}"),
        Err(_) => panic!("read {n}: timed out"),
    }
}

const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnels_bytes_both_ways_and_keeps_early_bytes() {
    let (origin, port) = origin_on("127.0.0.1").await;
    let (proxy, paddr) = start(
        rules(&[format!("{NAME}:{port}"), format!("127.0.0.1:{port}")], false),
        resolver(&format!("{NAME}=127.0.0.1")),
    );
    let mut c = connect(paddr).await;
    // The head and the first tunnel bytes in one write: they must not be lost.
    let head =
        format!("CONNECT PKGS.skillbox.test.:{port} HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n");
    c.write_all(format!("{head}early").as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    let mut o = accept(&origin).await;
    assert_eq!(read_exact(&mut c, ESTABLISHED.len()).await, ESTABLISHED);
    c.write_all(b"-more").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_exact(&mut o, 10).await, b"early-more");
    o.write_all(b"reply!").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read_exact(&mut c, 6).await, b"reply!");
    // While open, the record shows the bytes so far.
    let now = proxy.connections_so_far();
    assert_eq!((now.len(), now[0].bytes_up, now[0].bytes_down), (1, 10, 6), "{now:?}");
    drop(c);
    drop(o);
    let recs = proxy.finish().await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    let r = &recs[0];
    assert_eq!((r.host.as_str(), r.port, r.method.as_str()), (NAME, port, "CONNECT"));
    assert_eq!(r.address, Some(SocketAddr::from(([127, 0, 0, 1], port))));
    assert!(r.allowed, "{r:?}");
    assert_eq!((r.bytes_up, r.bytes_down), (10, 6), "{r:?}");
    let json = serde_json::to_value(r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["address"], format!("127.0.0.1:{port}"));
    assert_eq!(json["bytes_up"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_is_forwarded_in_origin_form() {
    let (origin, port) = origin_on("127.0.0.1").await;
    let (proxy, paddr) = start(
        rules(&[format!("{NAME}:{port}"), format!("127.0.0.1:{port}")], true),
        resolver(&format!("{NAME}=127.0.0.1")),
    );
    let req = format!(
        "POST http://{NAME}:{port}/up?x=1 HTTP/1.1\r\nHost: {NAME}:{port}\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\nProxy-Connection: keep-alive\r\n\
         Content-Length: 4\r\n\r\nbody"
    );
    let client = tokio::spawn(async move { exchange(paddr, req.as_bytes()).await });
    let mut o = accept(&origin).await;
    let want = format!(
        "POST /up?x=1 HTTP/1.1\r\nHost: {NAME}:{port}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
    );
    let got = read_exact(&mut o, want.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), want);
    let resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    o.write_all(resp.as_bytes()).await.unwrap_or_else(|e| panic!("{e}"));
    drop(o);
    assert_eq!(client.await.unwrap_or_else(|e| panic!("{e}")), resp);
    let recs = proxy.finish().await;
    assert_eq!(recs.len(), 1);
    assert!(recs[0].allowed && recs[0].reason.is_none(), "{recs:?}");
    assert_eq!(recs[0].method, "POST");
    assert_eq!((recs[0].bytes_up, recs[0].bytes_down), (want.len() as u64, resp.len() as u64));
}

/// Every refused request: the client gets `status` naming `named`, the origin no connection.
async fn refused(
    origin: &TcpListener,
    rules: Rules,
    resolver: Resolver,
    request: &[u8],
    status: &str,
    named: &[&str],
) -> Vec<Connection> {
    let (proxy, paddr) = start(rules, resolver);
    let resp = exchange(paddr, request).await;
    let what: String = String::from_utf8_lossy(request).chars().take(100).collect();
    assert!(resp.starts_with(&format!("HTTP/1.1 {status} ")), "{what:?}: {resp}");
    for n in named {
        assert!(resp.contains(n), "{what:?}: {n:?} not in {resp}");
    }
    assert_no_connection(origin, &what).await;
    let recs = proxy.finish().await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(!recs[0].allowed && recs[0].reason.is_some() && recs[0].address.is_none(), "{recs:?}");
    assert_eq!((recs[0].bytes_up, recs[0].bytes_down), (0, 0));
    recs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_name_reaches_nothing() {
    let (origin, port) = origin_on("127.0.0.1").await;
    let req = format!("CONNECT other.skillbox.test:{port} HTTP/1.1\r\n\r\n");
    let recs = refused(
        &origin,
        rules(&[format!("{NAME}:{port}"), format!("127.0.0.1:{port}")], false),
        resolver(&format!("{NAME}=127.0.0.1,other.skillbox.test=127.0.0.1")),
        req.as_bytes(),
        "403",
        &[
            &format!("other.skillbox.test:{port}"),
            &format!("add other.skillbox.test:{port} to allowed_domains"),
        ],
    )
    .await;
    assert_eq!(recs[0].host, "other.skillbox.test");
    // An unlisted port of a listed name, too.
    let req = format!("CONNECT {NAME}:443 HTTP/1.1\r\n\r\n");
    refused(
        &origin,
        rules(&[format!("{NAME}:{port}")], false),
        resolver(&format!("{NAME}=127.0.0.1")),
        req.as_bytes(),
        "403",
        &[NAME],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_name_resolving_to_a_non_public_address_reaches_nothing() {
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let (origin, port) = origin_on(ip).await;
        let req = format!("CONNECT {NAME}:{port} HTTP/1.1\r\n\r\n");
        let recs = refused(
            &origin,
            rules(&[format!("{NAME}:{port}")], false),
            resolver(&format!("{NAME}={ip}")),
            req.as_bytes(),
            "403",
            &[&format!("{NAME}:{port}"), &format!("resolves to {ip} (loopback)")],
        )
        .await;
        assert_eq!(recs[0].host, NAME);
        // Listing a different address, or the same address on another port, is no grant.
        let other = if ip == "127.0.0.1" { "127.0.0.2" } else { "127.0.0.1" };
        refused(
            &origin,
            rules(&[format!("{NAME}:{port}"), format!("{other}:{port}"), format!("{ip}:1")], false),
            resolver(&format!("{NAME}={ip}")),
            req.as_bytes(),
            "403",
            &["(loopback)"],
        )
        .await;
    }
    // A private address: refused before any connection is tried.
    let (origin, port) = origin_on("127.0.0.1").await;
    let req = format!("CONNECT {NAME}:{port} HTTP/1.1\r\n\r\n");
    refused(
        &origin,
        rules(&[format!("{NAME}:{port}")], false),
        resolver(&format!("{NAME}=10.0.0.5,{NAME}=169.254.169.254")),
        req.as_bytes(),
        "403",
        &["resolves to 10.0.0.5 (private)", "169.254.169.254 (cloud-metadata)"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_literals_reach_nothing_unless_listed() {
    let (origin, port) = origin_on("127.0.0.1").await;
    let req = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n");
    refused(
        &origin,
        rules(&[format!("{NAME}:{port}")], false),
        resolver(&format!("{NAME}=127.0.0.1")),
        req.as_bytes(),
        "403",
        &[&format!("127.0.0.1:{port}")],
    )
    .await;
    let any = Rules { list: None, plain_http: true, hint: HINT.into() };
    let req = "CONNECT 127.0.0.1:443 HTTP/1.1\r\n\r\n".to_string();
    refused(
        &origin,
        any.clone(),
        Resolver::system(),
        req.as_bytes(),
        "403",
        &["127.0.0.1:443", "IP address"],
    )
    .await;
    // Any public host: a name pointed at loopback is refused by its address.
    let req = format!("CONNECT {NAME}:443 HTTP/1.1\r\n\r\n");
    refused(
        &origin,
        any,
        resolver(&format!("{NAME}=127.0.0.1")),
        req.as_bytes(),
        "403",
        &["(loopback)"],
    )
    .await;
    // Listed: reached.
    let (proxy, paddr) = start(rules(&[format!("127.0.0.1:{port}")], false), Resolver::system());
    let mut c = connect(paddr).await;
    c.write_all(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _o = accept(&origin).await;
    assert_eq!(read_exact(&mut c, ESTABLISHED.len()).await, ESTABLISHED);
    drop(c);
    assert!(proxy.finish().await[0].allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_host_reaches_nothing() {
    let (origin, port) = origin_on("127.0.0.1").await;
    // A resolver stopping at the NUL would look up `a.test`, which leads to the origin.
    let req = format!("CONNECT a.test\0.evil:{port} HTTP/1.1\r\n\r\n");
    let recs = refused(
        &origin,
        rules(
            &[
                "a.test".into(),
                "*.evil.example".into(),
                format!("a.test:{port}"),
                format!("127.0.0.1:{port}"),
            ],
            false,
        ),
        resolver("a.test=127.0.0.1"),
        req.as_bytes(),
        "400",
        &["a.test\\0.evil"],
    )
    .await;
    assert_eq!(recs[0].method, "CONNECT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_to_the_proxy_itself_is_refused() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let paddr = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let pport = paddr.port();
    // Even listed, by name and as a literal.
    let proxy = serve(
        l,
        rules(&[format!("{NAME}:{pport}"), format!("127.0.0.1:{pport}")], false),
        resolver(&format!("{NAME}=127.0.0.1")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for target in [format!("127.0.0.1:{pport}"), format!("{NAME}:{pport}")] {
        let resp = exchange(paddr, format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes()).await;
        assert!(resp.starts_with("HTTP/1.1 403 "), "{resp}");
        assert!(resp.contains("this proxy itself") && resp.contains(&target), "{resp}");
    }
    let recs = proxy.finish().await;
    // Two attempts, and no third connection (the proxy never dialed itself).
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(recs.iter().all(|r| !r.allowed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mismatched_requests_get_400() {
    let (origin, port) = origin_on("127.0.0.1").await;
    let r = || rules(&[format!("{NAME}:{port}"), format!("127.0.0.1:{port}"), NAME.into()], true);
    let res = || resolver(&format!("{NAME}=127.0.0.1,evil.skillbox.test=127.0.0.1"));
    for (req, named) in [
        (
            format!(
                "GET http://{NAME}:{port}/ HTTP/1.1\r\nHost: evil.skillbox.test:{port}\r\n\r\n"
            ),
            "evil.skillbox.test",
        ),
        (format!("GET http://{NAME}:{port}/ HTTP/1.1\r\n\r\n"), "Host"),
        (format!("GET / HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n"), "not absolute"),
        (format!("GET https://{NAME}:{port}/ HTTP/1.1\r\nHost: {NAME}:{port}\r\n\r\n"), "CONNECT"),
        (format!("CONNECT {NAME} HTTP/1.1\r\n\r\n"), NAME),
        ("\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n".to_string(), "malformed"),
    ] {
        refused(&origin, r(), res(), req.as_bytes(), "400", &[named]).await;
    }
    let mut big = format!("CONNECT {NAME}:{port} HTTP/1.1\r\n").into_bytes();
    while big.len() < 70 * 1024 {
        big.extend_from_slice(format!("X-Pad: {}\r\n", "a".repeat(1000)).as_bytes());
    }
    refused(&origin, r(), res(), &big, "400", &["64 KiB"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_host_that_refuses_gets_502() {
    let (origin, port) = origin_on("127.0.0.1").await;
    drop(origin);
    let (proxy, paddr) = start(
        rules(&[format!("{NAME}:{port}"), format!("127.0.0.1:{port}")], false),
        resolver(&format!("{NAME}=127.0.0.1")),
    );
    let resp = exchange(paddr, format!("CONNECT {NAME}:{port} HTTP/1.1\r\n\r\n").as_bytes()).await;
    assert!(resp.starts_with("HTTP/1.1 502 ") && resp.contains(NAME), "{resp}");
    let recs = proxy.finish().await;
    assert!(!recs[0].allowed && recs[0].address.is_some(), "{recs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tunnels_at_once() {
    let (origin, port) = origin_on("127.0.0.1").await;
    let (proxy, paddr) = start(
        rules(&[format!("{NAME}:{port}"), format!("127.0.0.1:{port}")], false),
        resolver(&format!("{NAME}=127.0.0.1")),
    );
    const N: usize = 16;
    const LEN: usize = 256 * 1024;
    // The origin echoes each connection, concurrently.
    let echo = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..N {
            let (mut s, _) = origin.accept().await.unwrap_or_else(|e| panic!("{e}"));
            tasks.push(tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let mut clients = Vec::new();
    for i in 0..N {
        clients.push(tokio::spawn(async move {
            let mut c = connect(paddr).await;
            c.write_all(format!("CONNECT {NAME}:{port} HTTP/1.1\r\n\r\n").as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(read_exact(&mut c, ESTABLISHED.len()).await, ESTABLISHED);
            let data: Vec<u8> = (0..LEN).map(|j| (i * 7 + j) as u8).collect();
            let (mut r, mut w) = c.into_split();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                w.write_all(&sent).await.unwrap_or_else(|e| panic!("{e}"));
                w.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
            });
            let mut back = Vec::new();
            timeout(T, r.read_to_end(&mut back))
                .await
                .unwrap_or_else(|_| panic!("echo timed out"))
                .unwrap_or_else(|e| panic!("{e}"));
            let _ = writer.await;
            assert!(back == data, "tunnel {i}: {} bytes back of {LEN}", back.len());
        }));
    }
    for c in clients {
        c.await.unwrap_or_else(|e| panic!("{e}"));
    }
    let _ = echo.await;
    let recs = proxy.finish().await;
    assert_eq!(recs.len(), N);
    for r in &recs {
        assert!(r.allowed && r.reason.is_none(), "{r:?}");
        assert_eq!((r.bytes_up, r.bytes_down), (LEN as u64, LEN as u64), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_closes_what_is_still_open() {
    let (origin, port) = origin_on("127.0.0.1").await;
    let (proxy, paddr) = start(
        rules(&[format!("{NAME}:{port}"), format!("127.0.0.1:{port}")], false),
        resolver(&format!("{NAME}=127.0.0.1")),
    );
    // One client sends nothing; one holds a tunnel open.
    let _idle = connect(paddr).await;
    let mut c = connect(paddr).await;
    c.write_all(format!("CONNECT {NAME}:{port} HTTP/1.1\r\n\r\nabc").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut o = accept(&origin).await;
    assert_eq!(read_exact(&mut o, 3).await, b"abc");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = std::time::Instant::now();
    let recs = proxy.finish().await;
    assert!(t0.elapsed() < Duration::from_secs(3), "finish took {:?}", t0.elapsed());
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(
        recs.iter().all(|r| r.reason.as_deref().is_some_and(|w| w.contains("still open"))),
        "{recs:?}"
    );
    assert_eq!(recs[1].bytes_up, 3);
    // The tunnel is closed: the origin sees the end.
    let mut rest = Vec::new();
    let n =
        timeout(T, o.read_to_end(&mut rest)).await.unwrap_or_else(|_| panic!("tunnel left open"));
    assert!(n.is_ok_and(|n| n == 0) || rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_is_refused_by_name_and_as_an_unlisted_literal() {
    let (origin, port) = origin_on("[::1]").await;
    let req = format!("CONNECT {NAME}:{port} HTTP/1.1\r\n\r\n");
    refused(
        &origin,
        rules(&[format!("{NAME}:{port}")], false),
        resolver(&format!("{NAME}=::1")),
        req.as_bytes(),
        "403",
        &["resolves to ::1 (loopback)"],
    )
    .await;
    let req = format!("CONNECT [::1]:{port} HTTP/1.1\r\n\r\n");
    refused(
        &origin,
        rules(&[format!("{NAME}:{port}")], false),
        Resolver::system(),
        req.as_bytes(),
        "403",
        &[&format!("[::1]:{port}")],
    )
    .await;
    // Listed as a literal (in another spelling): reached.
    let (proxy, paddr) = start(rules(&[format!("[0:0::1]:{port}")], false), Resolver::system());
    let mut c = connect(paddr).await;
    c.write_all(format!("CONNECT [::1]:{port} HTTP/1.1\r\n\r\nv6").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut o = accept(&origin).await;
    assert_eq!(read_exact(&mut c, ESTABLISHED.len()).await, ESTABLISHED);
    assert_eq!(read_exact(&mut o, 2).await, b"v6");
    drop(c);
    drop(o);
    let recs = proxy.finish().await;
    assert_eq!(recs[0].address, Some(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))));
    assert_eq!(recs[0].host, "[::1]");
}
