//! `skillbox mcp --http`: the same [`SkillServer`] over MCP's Streamable HTTP transport.
//!
//! rmcp's [`StreamableHttpService`] speaks the transport, in both protocol eras rmcp
//! supports: the session-based revisions (an `initialize` handshake, then an
//! `Mcp-Session-Id`) and the stateless 2026-07-28 revision (every request carries its own
//! protocol metadata). hyper serves it on a tokio listener. What this module adds is the
//! gate in front of it, because anything on the machine (and a web page in a browser) can
//! connect to a local port:
//!
//! * **Origin.** A request whose `Origin` header is present and is not a loopback origin
//!   (`http(s)://localhost`, `127.0.0.1` or `[::1]`, any port) gets 403: a web page, even
//!   one reached through DNS rebinding, cannot drive the server. rmcp also checks that the
//!   `Host` header names a loopback host when the server listens on one.
//! * **Token.** Every request needs `Authorization: Bearer TOKEN` (401 otherwise), compared
//!   in constant time. The token comes from `SKILLBOX_MCP_TOKEN`, else from
//!   `$SKILLBOX_HOME/mcp-token` (created with 32 random bytes, hex, mode 0600, when absent).
//! * **Loopback by default.** A non-loopback listening address is refused unless the caller
//!   says [`HttpOptions::allow_remote`].
//! * **Bounded input.** A POST body is read whole, up to [`ServeOptions::max_message_bytes`]
//!   (413 beyond), before rmcp sees it; a JSON body that does not parse gets 400 with a
//!   JSON-RPC parse error (-32700), one that parses but is no JSON-RPC message 400 with an
//!   invalid-request error (-32600): rmcp answers both 415, which says the media type was
//!   wrong when it was not. rmcp is handed the very bytes that were checked. A request head
//!   must arrive within ten seconds; at most [`MAX_CONNECTIONS`] connections are served at
//!   once. None of them ends the server.
//!
//! Behind the gate, every request reaches the one [`SkillServer`] the stdio transport uses:
//! the same runtime, trust decisions, confinement and audit log.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

use skillbox_skills::Runtime;

use crate::{ServeOptions, SkillServer};

/// The path the server answers on; every other path gets 404.
pub const MCP_PATH: &str = "/mcp";

/// The token's file name under `$SKILLBOX_HOME`.
pub const TOKEN_FILE: &str = "mcp-token";

/// The environment variable a token may come from instead of the file.
pub const TOKEN_ENV: &str = "SKILLBOX_MCP_TOKEN";

/// Most connections served at once; further ones wait in the kernel's accept queue, so a
/// flood of idle connections cannot exhaust the server's descriptors.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a finished request's stream is kept for a client that reconnects to it with
/// `Last-Event-ID` (rmcp's default is 60 s; see where the session manager is made).
pub const COMPLETED_STREAM_TTL: Duration = Duration::from_secs(5);

/// Shortest token accepted from the environment: a short token can be guessed.
const MIN_TOKEN_LEN: usize = 16;

/// Why the HTTP server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is not a loopback one and the caller did not allow that.
    #[error(
        "refusing to listen on {0}: it is not a loopback address, so other machines could \
         connect; pass --allow-remote to mean it (every request still needs the token)"
    )]
    RemoteNotAllowed(SocketAddr),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// `SKILLBOX_MCP_TOKEN` is set but unusable.
    #[error(
        "SKILLBOX_MCP_TOKEN is not a usable token: it needs at least {MIN_TOKEN_LEN} \
         characters, all printable ASCII without spaces"
    )]
    BadEnvToken,
    /// There is no `$SKILLBOX_HOME` to keep a token in and none in the environment.
    #[error(
        "no place for the MCP token: set SKILLBOX_MCP_TOKEN, or SKILLBOX_HOME (HOME is unset)"
    )]
    NoHome,
    /// The token file exists but others may read it, or it is not a regular file.
    #[error(
        "refusing the MCP token file {0}: it must be a regular file only its owner can read \
         and write (chmod 600), not a symlink"
    )]
    TokenFileUnsafe(PathBuf),
    /// The token file holds no usable token.
    #[error(
        "the MCP token file {0} holds no usable token (at least {MIN_TOKEN_LEN} printable \
         characters); delete it and a new one is made"
    )]
    TokenFileBad(PathBuf),
    /// The token file could not be read or written.
    #[error("cannot use the MCP token file {path}: {source}")]
    TokenFileIo {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The system's random source failed.
    #[error("cannot make an MCP token: the system's random source failed: {0}")]
    Random(String),
    /// Accepting connections failed for good.
    #[error("the MCP HTTP server stopped: {0}")]
    Accept(std::io::Error),
}

/// Where the token came from: printed at start, so that the person knows where to look
/// (the token itself is never printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `SKILLBOX_MCP_TOKEN`.
    Env,
    /// A token file that was already there.
    File(PathBuf),
    /// A token file made now.
    NewFile(PathBuf),
}

/// The bearer token every request must carry.
#[derive(Clone)]
pub struct Token {
    secret: Arc<[u8]>,
    /// Where it came from.
    pub source: TokenSource,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, not even in a debug log.
        f.debug_struct("Token").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Token {
    /// The token from `env_value` (the value of `SKILLBOX_MCP_TOKEN`, if set and not empty),
    /// else from `$SKILLBOX_HOME/mcp-token` under `home`, made there (mode 0600, in a
    /// directory made mode 0700) when absent.
    pub fn resolve(env_value: Option<String>, home: Option<&Path>) -> Result<Token, HttpError> {
        if let Some(value) = env_value.filter(|v| !v.is_empty()) {
            if !usable(&value) {
                return Err(HttpError::BadEnvToken);
            }
            return Ok(Token { secret: value.into_bytes().into(), source: TokenSource::Env });
        }
        let home = home.ok_or(HttpError::NoHome)?;
        let path = home.join(TOKEN_FILE);
        match read_token_file(&path)? {
            Some(secret) => Ok(Token { secret: secret.into(), source: TokenSource::File(path) }),
            None => {
                let secret = create_token_file(home, &path)?;
                Ok(Token { secret: secret.into(), source: TokenSource::NewFile(path) })
            }
        }
    }

    /// Whether an `Authorization` header value carries this token, compared in constant time
    /// (for a given length: the token's length is not secret).
    fn admits(&self, header: Option<&http::HeaderValue>) -> bool {
        let Some(value) = header.map(|h| h.as_bytes()) else { return false };
        // The scheme is case-insensitive (RFC 9110, 11.1); one space after it.
        if value.len() < 7 || !value[..7].eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        constant_time_eq(value[7..].trim_ascii(), &self.secret)
    }
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Whether `token` can be a bearer token: long enough, printable ASCII without spaces.
fn usable(token: &str) -> bool {
    token.len() >= MIN_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic())
}

/// The token in `path`, `None` if there is no such file.
fn read_token_file(path: &Path) -> Result<Option<Vec<u8>>, HttpError> {
    let io = |source| HttpError::TokenFileIo { path: path.to_path_buf(), source };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !meta.file_type().is_file() || meta.mode() & 0o077 != 0 {
        return Err(HttpError::TokenFileUnsafe(path.to_path_buf()));
    }
    let mut text = std::fs::read_to_string(path).map_err(io)?;
    text.truncate(text.trim_end().len());
    if !usable(&text) {
        return Err(HttpError::TokenFileBad(path.to_path_buf()));
    }
    Ok(Some(text.into_bytes()))
}

/// Makes a new random token in `path` (mode 0600; `home` is made mode 0700 if absent).
fn create_token_file(home: &Path, path: &Path) -> Result<Vec<u8>, HttpError> {
    let io = |source| HttpError::TokenFileIo { path: path.to_path_buf(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(home).map_err(io)?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| HttpError::Random(e.to_string()))?;
    let token = hex::encode(raw);
    // create_new: never over a file another process made meanwhile (or a planted symlink).
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(format!("{token}\n").as_bytes()).map_err(io)?;
    Ok(token.into_bytes())
}

/// Whether an `Origin` header value names a loopback origin: `http` or `https`, host
/// `localhost`, `127.0.0.1` or `[::1]`, any port.
fn loopback_origin(origin: &[u8]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else { return false };
    let rest = match origin.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        _ => return false,
    };
    // An origin is scheme://host[:port], nothing after.
    let host = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, port)) if port.is_empty() || valid_port(port) => return ip == "::1",
            _ => return false,
        },
        None => match rest.split_once(':') {
            Some((host, port)) if valid_port(port) => host,
            Some(_) => return false,
            None => rest,
        },
    };
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1"
}

/// `:PORT` (the text after the host, colon included, or without it when already split).
fn valid_port(port: &str) -> bool {
    let digits = port.strip_prefix(':').unwrap_or(port);
    !digits.is_empty() && digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit())
}

type Body = BoxBody<Bytes, Infallible>;

/// A plain-text response with `status`.
fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    response
}

/// How to listen.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Listen on a non-loopback address (other machines can connect; the token still
    /// guards every request). Off by default.
    pub allow_remote: bool,
}

/// A listening socket, bound but not yet serving: the caller can print its address first.
pub struct HttpListener {
    listener: TcpListener,
    options: HttpOptions,
}

impl HttpListener {
    /// Binds `addr` (port 0 picks a free port). A non-loopback address needs
    /// [`HttpOptions::allow_remote`].
    pub async fn bind(addr: SocketAddr, options: HttpOptions) -> Result<Self, HttpError> {
        if !addr.ip().is_loopback() && !options.allow_remote {
            return Err(HttpError::RemoteNotAllowed(addr));
        }
        let listener =
            TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })?;
        Ok(Self { listener, options })
    }

    /// The address it listens on (with the port the kernel picked).
    pub fn local_addr(&self) -> Result<SocketAddr, HttpError> {
        self.listener.local_addr().map_err(HttpError::Accept)
    }

    /// Serves `runtime` at [`MCP_PATH`] until `shutdown` completes (or, with no shutdown,
    /// forever); requests must carry `token`.
    ///
    /// Runs still in flight when it returns are dropped with the runtime, which kills them.
    pub async fn serve(
        self,
        runtime: Runtime,
        options: ServeOptions,
        token: Token,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), HttpError> {
        let server = SkillServer::new(runtime, options.clone());
        let mut config = StreamableHttpServerConfig::default()
            .with_max_request_body_bytes(options.max_message_bytes);
        // Cancelled on the way out: every session and stream ends.
        let stop = config.cancellation_token.clone();
        if self.options.allow_remote {
            // Other machines name this one as they like; the token and the Origin check
            // guard remote requests (rmcp's Host check is a loopback-only defence).
            config = config.disable_allowed_hosts();
        }
        let handler = server.clone();
        let mut sessions = LocalSessionManager::default();
        // rmcp keeps each finished request's stream (the result included) for a client that
        // reconnects with `Last-Event-ID`, 60 s by default: with results of up to 768 KiB and
        // calls every few milliseconds, that is the server's largest use of memory. A client
        // on this machine that lost its stream reconnects at once.
        sessions.session_config.completed_cache_ttl = COMPLETED_STREAM_TTL;
        let service: StreamableHttpService<SkillServer, LocalSessionManager> =
            StreamableHttpService::new(
                // One server per MCP session: its code_session sessions are its own, and
                // end when rmcp drops the session.
                move || Ok(handler.for_connection()),
                Arc::new(sessions),
                config,
            );
        let gate = Gate { token, service, max_body: options.max_message_bytes };
        let watcher = tokio::spawn(server.watch_skills());
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        let result = loop {
            let slot = tokio::select! {
                _ = &mut shutdown => break Ok(()),
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break Ok(()),
                },
            };
            let accepted = tokio::select! {
                _ = &mut shutdown => break Ok(()),
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(c) => c,
                // Out of descriptors or a connection reset before accept: transient.
                Err(e) if transient(&e) => {
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => break Err(HttpError::Accept(e)),
            };
            let gate = gate.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service = hyper::service::service_fn(move |req| {
                    let mut gate = gate.clone();
                    async move { Ok::<_, Infallible>(gate.handle(req).await) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
                if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
            });
        };
        stop.cancel();
        watcher.abort();
        result
    }
}

/// Completes on SIGINT or SIGTERM: the shutdown of a server run from a terminal or by a
/// service manager. (If the handlers cannot be installed, it never completes and the
/// process ends by the signal's default action, which kills its runs just the same.)
pub async fn until_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) =
        (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Whether an accept error passes (the listener is still good).
fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
        || matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) // ENFILE EMFILE ENOBUFS ENOMEM
}

/// The checks in front of rmcp's service.
#[derive(Clone)]
struct Gate {
    token: Token,
    service: StreamableHttpService<SkillServer, LocalSessionManager>,
    /// The largest POST body read ([`ServeOptions::max_message_bytes`]).
    max_body: usize,
}

impl Gate {
    async fn handle(&mut self, req: Request<Incoming>) -> Response<Body> {
        if req.uri().path() != MCP_PATH {
            return plain(StatusCode::NOT_FOUND, "Not Found: the MCP endpoint is /mcp\n");
        }
        // Origin first: a browser page is refused whatever it sends.
        if let Some(origin) = req.headers().get(http::header::ORIGIN) {
            if !loopback_origin(origin.as_bytes()) {
                tracing::warn!(
                    origin = %String::from_utf8_lossy(origin.as_bytes()),
                    "request from a non-loopback Origin refused (403)"
                );
                return plain(
                    StatusCode::FORBIDDEN,
                    "Forbidden: requests from a non-loopback Origin are refused\n",
                );
            }
        }
        if !self.token.admits(req.headers().get(http::header::AUTHORIZATION)) {
            tracing::debug!("request without the right bearer token refused (401)");
            let mut response = plain(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: send Authorization: Bearer TOKEN (the token skillbox mcp --http \
                 printed the place of)\n",
            );
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
            return response;
        }
        if req.method() != http::Method::POST || !json_content(req.headers()) {
            // GET (the listen stream), DELETE, and a POST rmcp refuses for its media type.
            return match self.service.call(req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        let (parts, body) = req.into_parts();
        let bytes = match http_body_util::Limited::new(body, self.max_body).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload Too Large: the request body exceeds the server's limit\n",
                );
            }
            Err(_) => {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "Bad Request: the request body ended early\n",
                );
            }
        };
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            return jsonrpc_error(-32700, &format!("Parse error: the body is not JSON ({e})"));
        }
        let req = Request::from_parts(parts, Full::new(bytes));
        match self.service.call(req).await {
            // With a JSON content type and a body that parses, rmcp's only 415 is a body
            // that is no JSON-RPC message it knows.
            Ok(response) if response.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                jsonrpc_error(-32600, "Invalid Request: the body is not a JSON-RPC message")
            }
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// Whether `headers` say the body is JSON (`application/json`, any parameters), as rmcp
/// requires of a POST.
fn json_content(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(
        |value| {
            let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        },
    )
}

/// 400 with a JSON-RPC error response without an id (the request's could not be read), as
/// the Streamable HTTP transport allows for input the server cannot accept.
fn jsonrpc_error(code: i64, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins() {
        for ok in [
            "http://localhost",
            "http://localhost:6274",
            "https://LOCALHOST:1",
            "http://127.0.0.1:8080",
            "http://[::1]",
            "http://[::1]:3000",
        ] {
            assert!(loopback_origin(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "null",
            "http://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "http://localhost:80/path",
            "http://localhost:",
            "http://[::1]x",
            "http://[::2]",
            "file://localhost",
            "http://localhost@evil.example",
            "http://127.0.0.2",
            "",
        ] {
            assert!(!loopback_origin(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn bearer_tokens() {
        let t = Token { secret: b"0123456789abcdef0123".to_vec().into(), source: TokenSource::Env };
        let h = |s: &str| http::HeaderValue::from_str(s).ok();
        assert!(t.admits(h("Bearer 0123456789abcdef0123").as_ref()));
        assert!(t.admits(h("bearer 0123456789abcdef0123").as_ref()));
        assert!(!t.admits(h("Bearer 0123456789abcdef012").as_ref()));
        assert!(!t.admits(h("Bearer 0123456789abcdef01234").as_ref()));
        assert!(!t.admits(h("Basic 0123456789abcdef0123").as_ref()));
        assert!(!t.admits(h("0123456789abcdef0123").as_ref()));
        assert!(!t.admits(None));
    }

    #[test]
    fn token_file_is_made_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let first = Token::resolve(None, Some(&home)).unwrap();
        let path = home.join(TOKEN_FILE);
        assert_eq!(first.source, TokenSource::NewFile(path.clone()));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(first.secret.len(), 64);
        let again = Token::resolve(None, Some(&home)).unwrap();
        assert_eq!(again.source, TokenSource::File(path.clone()));
        assert_eq!(again.secret, first.secret);
        // Readable by others: refused, not used.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(matches!(Token::resolve(None, Some(&home)), Err(HttpError::TokenFileUnsafe(_))));
        // The environment wins, and must be a real token.
        let env = Token::resolve(Some("x".repeat(20)), Some(&home)).unwrap();
        assert_eq!(env.source, TokenSource::Env);
        assert!(matches!(Token::resolve(Some("short".into()), None), Err(HttpError::BadEnvToken)));
        assert!(matches!(Token::resolve(None, None), Err(HttpError::NoHome)));
    }
}
