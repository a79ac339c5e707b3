//! Slipway's own git transports for `http://`, `https://` and `git://`, registered with libgit2
//! in place of its built-in ones, so every network fetch of the process (a mirror's and every
//! submodule's) is checked in one place:
//!
//! - the address is checked when connecting, on the address actually connected to (a name that
//!   resolves differently later cannot slip through): loopback, private, link-local and the
//!   server's own addresses are refused unless `[git] allow` names them;
//! - every read and write waits at most 200 ms before checking the fetch's cancellation and
//!   deadline, and every byte received counts against the size limit;
//! - a token is sent only to the exact URL it was given for (see [`Scope::token_for`]).
//!
//! The limits of a fetch travel in a thread-local [`Scope`]: libgit2 fetches on the calling
//! thread, so the transports it creates while [`with_scope`] runs find it. A transport created
//! outside a scope refuses to connect.

use super::http::{self, HttpStream};
use super::policy::Scope;
use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use rustls::pki_types::ServerName;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// How long one blocking wait (a read, a write, one connect attempt) lasts before the fetch's
/// cancellation and deadline are checked again.
pub(super) const TICK: Duration = Duration::from_millis(200);

thread_local! {
    static SCOPE: RefCell<Option<Arc<Scope>>> = const { RefCell::new(None) };
}

/// Runs `fetch` with `scope` governing every transport libgit2 opens on this thread meanwhile.
pub(super) fn with_scope<T>(
    scope: &Arc<Scope>,
    fetch: impl FnOnce() -> Result<T, git2::Error>,
) -> Result<T, git2::Error> {
    register()?;
    struct Restore(Option<Arc<Scope>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCOPE.with(|s| *s.borrow_mut() = previous);
        }
    }
    let _restore = Restore(SCOPE.with(|s| s.borrow_mut().replace(scope.clone())));
    fetch()
}

/// Registers the transports once per process.
fn register() -> Result<(), git2::Error> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            for scheme in [Scheme::Http, Scheme::Https, Scheme::Git] {
                let factory = move |remote: &git2::Remote<'_>| {
                    let scope = SCOPE.with(|s| s.borrow().clone()).ok_or_else(|| {
                        git2::Error::from_str("network fetches must run under a fetch scope")
                    })?;
                    let sub = Subtransport {
                        scheme,
                        scope,
                        base: Mutex::new(None),
                    };
                    // HTTP is stateless (one request per round); git:// keeps one connection.
                    Transport::smart(remote, scheme != Scheme::Git, sub)
                };
                // SAFETY: git2 asks that registering be synchronised with the creation of other
                // transports. This runs once, inside `OnceLock::get_or_init` (concurrent callers
                // wait for it), and every fetch of this crate calls it before libgit2 creates
                // a transport; nothing else in the process fetches with libgit2.
                #[allow(unsafe_code)]
                unsafe { git2::transport::register(scheme.prefix(), factory) }
                    .map_err(|e| e.message().to_string())?;
            }
            Ok(())
        })
        .clone()
        .map_err(|e| git2::Error::from_str(&format!("registering git transports: {e}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
    Git,
}

impl Scheme {
    fn prefix(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Git => "git",
        }
    }
}

struct Subtransport {
    scheme: Scheme,
    scope: Arc<Scope>,
    /// Where `info/refs` was redirected to, for the requests that follow it, and whether the
    /// token may still be sent there (same origin).
    base: Mutex<Option<(String, bool)>>,
}

impl SmartSubtransport for Subtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let err = |e: io::Error| git2::Error::from_str(&format!("{url}: {e}"));
        if !matches!(action, Service::UploadPackLs | Service::UploadPack) {
            return Err(git2::Error::from_str(
                "the server only fetches; it never pushes",
            ));
        }
        match self.scheme {
            Scheme::Git => Ok(Box::new(git_daemon(&self.scope, url).map_err(err)?)),
            Scheme::Http | Scheme::Https => {
                // The token is decided on the repository's URL as libgit2 names it; a redirect
                // to another origin drops it.
                let token = self.scope.token_for(url);
                let moved = self.base.lock().expect("base").clone();
                let stream = match (action, moved) {
                    (Service::UploadPackLs, _) => {
                        let (stream, moved) =
                            http::advertisement(&self.scope, url, token).map_err(err)?;
                        *self.base.lock().expect("base") = moved;
                        stream
                    }
                    (_, Some((base, keeps_token))) => {
                        HttpStream::upload_pack(&self.scope, &base, token.filter(|_| keeps_token))
                    }
                    (_, None) => HttpStream::upload_pack(&self.scope, url, token),
                };
                Ok(Box::new(stream))
            }
        }
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// `git://host[:port]/path`: one TCP connection carries both the advertisement and the pack.
fn git_daemon(scope: &Arc<Scope>, url: &str) -> io::Result<Checked> {
    let parsed = url::Url::parse(url).map_err(|e| io::Error::other(format!("bad URL: {e}")))?;
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port().unwrap_or(9418);
    let mut conn = connect(scope, &host, port)?;
    let path = parsed.path();
    let request = format!("git-upload-pack {path}\0host={host}\0");
    let line = format!("{:04x}{request}", request.len() + 4);
    conn.write_all(line.as_bytes())?;
    Ok(conn)
}

/// Resolves `host` and connects to the first address the policy allows, checking each address
/// connected to. A host whose every address is refused fails naming the address and why.
pub(super) fn connect(scope: &Arc<Scope>, host: &str, port: u16) -> io::Result<Checked> {
    let addrs = resolve(scope, host, port)?;
    let mut refused = None;
    let mut last_err = None;
    for addr in addrs {
        if let Some(kind) = scope.policy.refusal(host, addr.ip()) {
            refused.get_or_insert((addr.ip(), kind));
            continue;
        }
        loop {
            scope.check()?;
            match TcpStream::connect_timeout(&addr, scope.remaining().min(TICK * 5)) {
                Ok(tcp) => {
                    tcp.set_read_timeout(Some(TICK))?;
                    tcp.set_write_timeout(Some(TICK))?;
                    tcp.set_nodelay(true)?;
                    return Ok(Checked {
                        tcp,
                        scope: scope.clone(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => continue,
                Err(e) => {
                    last_err = Some(e);
                    break;
                }
            }
        }
    }
    match (refused, last_err) {
        (_, Some(e)) => Err(e),
        // Recorded as the reason the fetch stopped: no other address or second try helps.
        (Some((ip, kind)), None) => Err(scope.stop(format!(
            "refused to connect to {host} ({ip}): it is {kind}; list it in [git] allow to fetch from it"
        ))),
        (None, None) => Err(io::Error::other(format!("{host} has no address"))),
    }
}

/// Name resolution on a helper thread, so a resolver that hangs cannot outlast the fetch.
fn resolve(scope: &Arc<Scope>, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let name = bare.to_string();
    std::thread::spawn(move || {
        let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
    });
    loop {
        scope.check()?;
        match rx.recv_timeout(TICK) {
            Ok(result) => return result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(e) => return Err(io::Error::other(format!("resolving {host}: {e}"))),
        }
    }
}

/// A TCP connection whose every read and write checks its fetch's scope: waits end within
/// [`TICK`] to look at the cancellation and the deadline, and received bytes are counted.
pub(super) struct Checked {
    tcp: TcpStream,
    scope: Arc<Scope>,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.scope.check()?;
            match self.tcp.read(buf) {
                Ok(n) => {
                    self.scope.received(n as u64)?;
                    return Ok(n);
                }
                Err(e) if is_wait(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Checked {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            self.scope.check()?;
            match self.tcp.write(buf) {
                Err(e) if is_wait(&e) => continue,
                other => return other,
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A connection, plain or TLS.
pub(super) enum Conn {
    Plain(Checked),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, Checked>>),
}

impl Conn {
    /// Connects to `host:port`, with TLS (verified against the system's roots) when `tls`.
    pub(super) fn open(scope: &Arc<Scope>, host: &str, port: u16, tls: bool) -> io::Result<Conn> {
        let tcp = connect(scope, host, port)?;
        if !tls {
            return Ok(Conn::Plain(tcp));
        }
        let name = ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|e| io::Error::other(format!("{host}: {e}")))?;
        let conn = rustls::ClientConnection::new(tls_config()?, name)
            .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
        Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, tcp))))
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(c) => c.read(buf),
            Conn::Tls(c) => c.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(c) => c.write(buf),
            Conn::Tls(c) => c.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(c) => c.flush(),
            Conn::Tls(c) => c.flush(),
        }
    }
}

/// The TLS client configuration: the system's root certificates (`SSL_CERT_FILE` and
/// `SSL_CERT_DIR` are honoured), loaded once.
fn tls_config() -> io::Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err("no root certificates found on this machine".to_string());
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|e| io::Error::other(format!("TLS: {e}")))
}
