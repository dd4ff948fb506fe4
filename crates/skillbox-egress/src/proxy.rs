//! The egress proxy of one run: accepts on the run's listener, decides each connection,
//! and pipes the allowed ones to the address it checked.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{timeout, Instant};

use crate::address::AddressClass;
use crate::host::Host;
use crate::record::{Connection, Counted, Entry, Log};
use crate::request::{decide_request, Outcome, Rules, MAX_HEAD};
use crate::resolve::Resolver;

/// Time a client has to send its whole request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a name has to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time an origin has to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time [`RunProxy::finish`] waits for open connections before closing them.
const FINISH_GRACE: Duration = Duration::from_secs(1);
/// Buffer of each direction of a tunnel (so 512 KiB per open tunnel). Measured with
/// `examples/throughput.rs` (1 GiB from a loopback server, 2 busy cores, 5 runs each):
/// tokio's default 8 KiB proxied about 0.6 GiB/s (about a third of direct), 64 KiB the
/// same, 128 KiB about 1.0, 256 KiB about 1.1 GiB/s (half of direct or better, noisy).
const PIPE_BUF: usize = 256 * 1024;
/// Time an error response has to be written, and the client to close after it.
const ERROR_LINGER: Duration = Duration::from_secs(1);

/// The proxy serving one run; [`RunProxy::finish`] ends it and returns its records.
/// Dropping it without `finish` also stops it (accepting and every connection).
pub struct RunProxy {
    stop: oneshot::Sender<()>,
    accept: JoinHandle<JoinSet<()>>,
    log: Arc<Log>,
}

/// What every connection task of one proxy shares.
struct Shared {
    rules: Rules,
    resolver: Resolver,
    /// The proxy's own listening address: never dialed, whatever the list says.
    own: Option<SocketAddr>,
}

/// Starts the proxy on `listener` (the run's 127.0.0.1:3128, or any listening socket).
///
/// Must be called inside a tokio runtime: one task accepts, one task per connection serves
/// it (no thread per connection). Fails only if the listener cannot be made non-blocking or
/// registered with the runtime.
pub fn serve(
    listener: std::net::TcpListener,
    rules: Rules,
    resolver: Resolver,
) -> io::Result<RunProxy> {
    listener.set_nonblocking(true)?;
    let own = listener.local_addr().ok();
    let listener = TcpListener::from_std(listener)?;
    let log = Arc::new(Log::default());
    let shared = Arc::new(Shared { rules, resolver, own });
    let (stop, stopped) = oneshot::channel();
    let accept = tokio::spawn(accept_loop(listener, shared, log.clone(), stopped));
    Ok(RunProxy { stop, accept, log })
}

impl RunProxy {
    /// Stops accepting, gives open connections up to a second to end (the run's processes
    /// are gone by then, so their sockets are closed), closes the rest, and returns one
    /// record per connection accepted, in order of arrival.
    pub async fn finish(self) -> Vec<Connection> {
        let _ = self.stop.send(());
        let mut tasks = self.accept.await.unwrap_or_default();
        let _ = timeout(FINISH_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        self.log.snapshot(true)
    }

    /// The records so far, connections still open included (with their bytes so far).
    pub fn connections_so_far(&self) -> Vec<Connection> {
        self.log.snapshot(false)
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    log: Arc<Log>,
    mut stopped: oneshot::Receiver<()>,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            // A send or a dropped RunProxy: stop either way.
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let entry = log.open();
                    let shared = shared.clone();
                    tasks.spawn(async move {
                        serve_one(stream, &shared, &entry).await;
                        entry.close();
                    });
                }
                // Out of descriptors or a connection reset before accept: not fatal.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks
}

/// Serves one connection, recording what happens in `entry`.
async fn serve_one(mut client: TcpStream, shared: &Shared, entry: &Entry) {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let decision = loop {
        let d = decide_request(&buf, &shared.rules);
        if d.outcome != Outcome::Incomplete {
            break d;
        }
        let mut chunk = [0u8; 8192];
        let want = chunk.len().min(MAX_HEAD + 1 - buf.len());
        match tokio::time::timeout_at(deadline, client.read(&mut chunk[..want])).await {
            Ok(Ok(0)) => {
                entry.update(|c| {
                    c.reason = Some("closed before sending a complete request head".into())
                });
                return;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => {
                entry.update(|c| c.reason = Some(format!("reading the request head: {e}")));
                return;
            }
            Err(_) => {
                let why = format!("no complete request head within {} s", HEAD_TIMEOUT.as_secs());
                entry.update(|c| c.reason = Some(why.clone()));
                respond(
                    &mut client,
                    408,
                    "Request Timeout",
                    &format!("skillbox egress proxy: {why}\n"),
                )
                .await;
                return;
            }
        }
    };
    entry.update(|c| {
        c.method = decision.method.clone();
        c.host = decision.host.clone();
        c.port = decision.port;
    });
    let target = format!("{}:{}", decision.host, decision.port);
    let (host, head_len, forward) = match decision.outcome {
        Outcome::Incomplete => return,
        Outcome::BadRequest(why) => {
            entry.update(|c| c.reason = Some(why.clone()));
            respond(
                &mut client,
                400,
                "Bad Request",
                &format!("skillbox egress proxy: bad request: {why}\n"),
            )
            .await;
            return;
        }
        Outcome::Refused(why) => {
            refuse(&mut client, shared, entry, &decision.host, decision.port, why).await;
            return;
        }
        Outcome::Tunnel { host, head_len } => (host, head_len, None),
        Outcome::Forward { host, head_len, head } => (host, head_len, Some(head)),
    };
    let port = decision.port;
    let addrs = match timeout(RESOLVE_TIMEOUT, shared.resolver.resolve(&host, port)).await {
        Ok(Ok(a)) if !a.is_empty() => a,
        Ok(Ok(_)) => {
            return fail(&mut client, entry, &target, "the name has no address".into()).await
        }
        Ok(Err(e)) => {
            return fail(&mut client, entry, &target, format!("could not resolve the name: {e}"))
                .await
        }
        Err(_) => {
            return fail(&mut client, entry, &target, "the name did not resolve within 10 s".into())
                .await
        }
    };
    let allowed = match allowed_addresses(
        &addrs,
        &host,
        &shared.rules,
        shared.own,
        crate::local::interface_addresses,
    ) {
        Ok(a) => a,
        Err(why) => return refuse(&mut client, shared, entry, &decision.host, port, why).await,
    };
    let mut upstream = None;
    let mut last_err = String::new();
    for addr in allowed {
        entry.update(|c| c.address = Some(addr));
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                upstream = Some(s);
                break;
            }
            Ok(Err(e)) => last_err = format!("could not connect to {addr}: {e}"),
            Err(_) => last_err = format!("could not connect to {addr} within 10 s"),
        }
    }
    let Some(upstream) = upstream else {
        return fail(&mut client, entry, &target, last_err).await;
    };
    entry.update(|c| c.allowed = true);
    let _ = upstream.set_nodelay(true);
    let mut upstream = Counted { inner: upstream, up: entry.up.clone(), down: entry.down.clone() };
    let rest = buf.get(head_len..).unwrap_or_default();
    let started = match &forward {
        None => match client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await {
            Ok(()) => upstream.write_all(rest).await,
            Err(e) => Err(e),
        },
        Some(head) => match upstream.write_all(head).await {
            Ok(()) => upstream.write_all(rest).await,
            Err(e) => Err(e),
        },
    };
    let ended = match started {
        Ok(()) => {
            tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, PIPE_BUF, PIPE_BUF)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = ended {
        entry.update(|c| c.reason = Some(format!("ended with an error: {e}")));
    }
}

/// The resolved addresses that may be dialed, in the resolver's order; or, when none, why
/// (naming each refused address and its class). `own` is the proxy's listening address;
/// `interfaces` lists this host's addresses (asked at most once, and only for a public
/// address).
fn allowed_addresses(
    addrs: &[SocketAddr],
    host: &Host,
    rules: &Rules,
    own: Option<SocketAddr>,
    interfaces: impl FnOnce() -> io::Result<Vec<IpAddr>>,
) -> Result<Vec<SocketAddr>, String> {
    let mut interfaces = Some(interfaces);
    let mut locals: Option<Vec<IpAddr>> = None;
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for &addr in addrs {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let own = own.is_some_and(|o| SocketAddr::new(o.ip().to_canonical(), o.port()) == addr);
        if own {
            refused.push(format!("{addr} (this proxy itself)"));
            continue;
        }
        if rules.lists_address(addr) {
            ok.push(addr);
            continue;
        }
        let class = AddressClass::of(addr.ip());
        if !class.is_public() {
            refused.push(format!("{} ({})", addr.ip(), class.as_str()));
            continue;
        }
        let locals = match &locals {
            Some(l) => l,
            None => match interfaces.take().map_or_else(|| Ok(Vec::new()), |f| f()) {
                Ok(l) => locals.insert(l),
                Err(e) => {
                    refused.push(format!(
                        "{} (this host's addresses could not be listed: {e})",
                        addr.ip()
                    ));
                    continue;
                }
            },
        };
        if locals.contains(&addr.ip()) {
            refused.push(format!("{} (an address of this host)", addr.ip()));
            continue;
        }
        ok.push(addr);
    }
    if ok.is_empty() {
        let what = if matches!(host, Host::Ip(_)) { "is" } else { "resolves to" };
        let shown: Vec<String> = refused.into_iter().take(4).collect();
        return Err(format!(
            "{host} {what} {}, which is not reachable unless that address is listed as an IP literal",
            shown.join(", ")
        ));
    }
    Ok(ok)
}

/// A refusal: 403 naming the host and port, why, and the rules' hint.
async fn refuse(
    client: &mut TcpStream,
    shared: &Shared,
    entry: &Entry,
    host: &str,
    port: u16,
    why: String,
) {
    entry.update(|c| {
        c.allowed = false;
        c.reason = Some(why.clone());
    });
    let hint = shared.rules.hint_for(host, port);
    let mut body = format!("skillbox egress proxy: refused {host}:{port}: {why}\n");
    if !hint.is_empty() {
        body.push_str(&hint);
        body.push('\n');
    }
    respond(client, 403, "Forbidden", &body).await;
}

/// An allowed host that could not be reached: 502.
async fn fail(client: &mut TcpStream, entry: &Entry, target: &str, why: String) {
    entry.update(|c| {
        c.allowed = false;
        c.reason = Some(why.clone());
    });
    respond(client, 502, "Bad Gateway", &format!("skillbox egress proxy: {target}: {why}\n")).await;
}

/// Writes a short text response and closes, reading what the client still sends for a
/// moment so that the close does not reset the connection before the response is read.
async fn respond(client: &mut TcpStream, code: u16, text: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {code} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = timeout(ERROR_LINGER, async {
        client.write_all(msg.as_bytes()).await?;
        client.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = MAX_HEAD;
        while left > 0 {
            let n = client.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<(), io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Allowlist, HostPattern};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn rules(ps: &[&str]) -> Rules {
        let list = Allowlist::new(ps.iter().filter_map(|p| HostPattern::parse(p).ok()), false);
        Rules { list: Some(list), plain_http: false, hint: String::new() }
    }

    fn name() -> Host {
        Host::Name("a.example".into())
    }

    #[test]
    fn this_hosts_public_addresses_are_refused_unless_listed() {
        // The test machine has no public interface address, so one is made up: 8.8.8.8.
        let local = || Ok(vec![IpAddr::from([8, 8, 8, 8])]);
        let addrs = [sa("8.8.8.8:443"), sa("1.1.1.1:443")];
        assert_eq!(
            allowed_addresses(&addrs, &name(), &rules(&["a.example"]), None, local),
            Ok(vec![sa("1.1.1.1:443")])
        );
        let only = allowed_addresses(&addrs[..1], &name(), &rules(&["a.example"]), None, local);
        assert!(
            only.as_ref().is_err_and(|e| e.contains("8.8.8.8 (an address of this host)")),
            "{only:?}"
        );
        let listed = rules(&["a.example", "8.8.8.8"]);
        assert_eq!(
            allowed_addresses(&addrs[..1], &name(), &listed, None, local),
            Ok(vec![sa("8.8.8.8:443")])
        );
        // Failing to list them refuses rather than allows.
        let broken = || Err(io::Error::other("no netlink"));
        assert!(
            allowed_addresses(&addrs[..1], &name(), &rules(&["a.example"]), None, broken).is_err()
        );
    }

    #[test]
    fn non_public_classes_and_the_proxy_itself() {
        let none = || Ok(Vec::new());
        let r = rules(&["a.example:3128", "127.0.0.1:3128"]);
        let e = allowed_addresses(&[sa("10.0.0.5:443")], &name(), &r, None, none);
        assert!(e.as_ref().is_err_and(|e| e.contains("resolves to 10.0.0.5 (private)")), "{e:?}");
        let e = allowed_addresses(&[sa("[::ffff:169.254.169.254]:443")], &name(), &r, None, none);
        assert!(e.as_ref().is_err_and(|e| e.contains("169.254.169.254 (cloud-metadata)")), "{e:?}");
        assert_eq!(
            allowed_addresses(&[sa("127.0.0.1:3128")], &name(), &r, None, none),
            Ok(vec![sa("127.0.0.1:3128")])
        );
        let e = allowed_addresses(
            &[sa("127.0.0.1:3128")],
            &name(),
            &r,
            Some(sa("127.0.0.1:3128")),
            none,
        );
        assert!(e.as_ref().is_err_and(|e| e.contains("this proxy itself")), "{e:?}");
    }
}
