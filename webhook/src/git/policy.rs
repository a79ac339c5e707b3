//! What a fetch may do: the addresses it may connect to, how long it may take, how much it may
//! download, and the one URL its credentials may be sent to.
//!
//! A pull request names its submodules' URLs, so without these checks anyone could make the
//! server fetch from its own loopback services, the private network around it or a cloud
//! machine's metadata service, or hold a worker forever with a server that trickles bytes.

use ipnet::IpNet;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The limits and the address allow-list every fetch of the server follows (`[git]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Longest one fetch (a mirror's, or one submodule's) may take.
    pub timeout: Duration,
    /// Most bytes one fetch may download.
    pub max_bytes: u64,
    /// Hosts and networks fetched from even though their addresses are refused by default.
    pub allow: Vec<Allowed>,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            timeout: Duration::from_secs(600),
            max_bytes: 2048 * 1024 * 1024,
            allow: Vec::new(),
        }
    }
}

/// One `[git] allow` entry: an address, a network (`10.1.0.0/16`) or a host name as URLs
/// write it (`git.internal.example`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Allowed {
    /// An address or network (a single address is a /32 or /128).
    Net(IpNet),
    /// A host name, compared case-insensitively with the URL's host.
    Host(String),
}

impl FromStr for Allowed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = IpNet::from_str(s) {
            return Ok(Allowed::Net(net));
        }
        if let Ok(ip) = IpAddr::from_str(s.trim_start_matches('[').trim_end_matches(']')) {
            return Ok(Allowed::Net(IpNet::from(ip)));
        }
        let host_like = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if host_like && !s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Ok(Allowed::Host(s.to_ascii_lowercase()));
        }
        Err(format!(
            "`{s}` is not an address (127.0.0.1), a network (10.0.0.0/8) or a host name (git.example.com)"
        ))
    }
}

impl TryFrom<String> for Allowed {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FetchPolicy {
    /// Whether `host` (as the URL writes it) or its address `ip` is in the allow-list.
    pub fn allows(&self, host: &str, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.allow.iter().any(|a| match a {
            Allowed::Net(net) => net.contains(&ip),
            Allowed::Host(h) => *h == host,
        })
    }

    /// Why connecting to `ip` for `host` is refused, or `None` when it is allowed.
    pub fn refusal(&self, host: &str, ip: IpAddr) -> Option<&'static str> {
        if self.allows(host, ip) {
            return None;
        }
        refused_kind(ip)
    }
}

/// The kind of address `ip` is when fetching from it is refused by default: loopback, private,
/// link-local (where cloud metadata services answer) and the like, or one of this machine's own.
pub fn refused_kind(ip: IpAddr) -> Option<&'static str> {
    let ip = canonical(ip);
    let kind = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("an unspecified address")
            } else if v4.is_private() {
                Some("a private address")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("a shared (carrier-grade NAT) address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("a multicast or reserved address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if (first & 0xfe00) == 0xfc00 {
                Some("a private address")
            } else if (first & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if v6.is_multicast() {
                Some("a multicast or reserved address")
            } else {
                None
            }
        }
    };
    kind.or_else(|| is_own(ip).then_some("one of this server's own addresses"))
}

/// IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`) are the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Whether `ip` is assigned to one of this machine's interfaces: binding a socket to an address
/// succeeds only then, so no interface listing (and no `unsafe`) is needed.
fn is_own(ip: IpAddr) -> bool {
    std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// One fetch under a [`FetchPolicy`]: its deadline, the bytes it received, its cancellation
/// and the one URL its token may be sent to. The transports check it on every read and write.
pub struct Scope {
    /// The policy the fetch follows.
    pub policy: FetchPolicy,
    deadline: Instant,
    cancel: CancellationToken,
    received: AtomicU64,
    credential: Option<(String, String)>,
    stopped: Mutex<Option<String>>,
}

impl std::fmt::Debug for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("policy", &self.policy)
            .field("deadline", &self.deadline)
            .field("credential_url", &self.credential.as_ref().map(|c| &c.0))
            .finish_non_exhaustive()
    }
}

impl Scope {
    /// A fetch starting now; `credential` is the URL its token belongs to and the token.
    pub fn new(
        policy: &FetchPolicy,
        cancel: &CancellationToken,
        credential: Option<(&str, &str)>,
    ) -> Scope {
        Scope {
            policy: policy.clone(),
            deadline: Instant::now() + policy.timeout,
            cancel: cancel.clone(),
            received: AtomicU64::new(0),
            credential: credential.map(|(u, t)| (u.to_string(), t.to_string())),
            stopped: Mutex::new(None),
        }
    }

    /// Fails once the fetch was canceled or ran out of time. Called at least every 200 ms while
    /// a transport waits.
    pub fn check(&self) -> std::io::Result<()> {
        if self.cancel.is_cancelled() {
            return Err(self.stop("the fetch was canceled".into()));
        }
        if Instant::now() >= self.deadline {
            return Err(self.stop(format!(
                "the fetch took longer than {} s ([git] fetch_timeout_seconds)",
                self.policy.timeout.as_secs()
            )));
        }
        Ok(())
    }

    /// The time left, never zero while [`Scope::check`] passes.
    pub fn remaining(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    }

    /// Counts `n` more bytes received; fails past the size limit.
    pub fn received(&self, n: u64) -> std::io::Result<()> {
        let total = self.received.fetch_add(n, Ordering::Relaxed) + n;
        self.total_is(total)
    }

    /// Fails when `total` bytes are past the size limit (the local transport reports totals).
    pub fn total_is(&self, total: u64) -> std::io::Result<()> {
        if total > self.policy.max_bytes {
            return Err(self.stop(format!(
                "the fetch downloaded more than {} MB ([git] max_fetch_mb)",
                self.policy.max_bytes / (1024 * 1024)
            )));
        }
        Ok(())
    }

    /// The token for `url`: only when `url` is exactly the URL the token was given for.
    pub fn token_for(&self, url: &str) -> Option<&str> {
        self.credential
            .as_ref()
            .filter(|(u, _)| same_url(u, url))
            .map(|(_, t)| t.as_str())
    }

    /// Records why the fetch stopped (the first reason wins) and returns it as an error.
    pub fn stop(&self, why: String) -> std::io::Error {
        let mut stopped = self.stopped.lock().expect("fetch scope");
        stopped.get_or_insert_with(|| why.clone());
        std::io::Error::other(why)
    }

    /// Why the fetch was stopped by a limit or a cancel, if it was.
    pub fn stopped(&self) -> Option<String> {
        self.stopped.lock().expect("fetch scope").clone()
    }
}

/// Whether two URLs name the same repository: scheme and host compared case-insensitively,
/// user names, a trailing `/` and `.git` ignored. Anything else (path, port) must be equal.
pub fn same_url(a: &str, b: &str) -> bool {
    fn key(u: &str) -> Option<(String, String, String)> {
        let (scheme, rest) = u.split_once("://")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = authority.rsplit('@').next()?;
        let path = path.trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path);
        Some((
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase(),
            path.to_string(),
        ))
    }
    matches!((key(a), key(b)), (Some(x), Some(y)) if x == y)
}

/// Whether two URLs share scheme, host and port (a redirect within one origin keeps the token).
pub fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            a.scheme() == b.scheme()
                && a.host_str() == b.host_str()
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_private_link_local_and_shared_addresses_are_refused_by_default() {
        for (addr, kind) in [
            ("127.0.0.1", "a loopback address"),
            ("127.8.9.10", "a loopback address"),
            ("::1", "a loopback address"),
            ("::ffff:127.0.0.1", "a loopback address"),
            ("0.0.0.0", "an unspecified address"),
            ("10.1.2.3", "a private address"),
            ("172.16.0.1", "a private address"),
            ("192.168.1.1", "a private address"),
            ("fd00::1", "a private address"),
            ("169.254.169.254", "a link-local address"),
            ("fe80::1", "a link-local address"),
            ("100.64.0.1", "a shared (carrier-grade NAT) address"),
            ("224.0.0.1", "a multicast or reserved address"),
        ] {
            assert_eq!(refused_kind(ip(addr)), Some(kind), "{addr}");
        }
        for public in ["140.82.112.3", "8.8.8.8", "2606:4700::1111"] {
            assert_eq!(refused_kind(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_allow_list_takes_addresses_networks_and_host_names() {
        let policy = FetchPolicy {
            allow: ["127.0.0.1", "10.1.0.0/16", "Git.Internal.Example", "[::1]"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            ..FetchPolicy::default()
        };
        assert_eq!(policy.refusal("127.0.0.1", ip("127.0.0.1")), None);
        assert_eq!(policy.refusal("localhost", ip("::ffff:127.0.0.1")), None);
        assert_eq!(
            policy.refusal("127.0.0.2", ip("127.0.0.2")),
            Some("a loopback address")
        );
        assert_eq!(policy.refusal("x", ip("10.1.200.3")), None);
        assert_eq!(
            policy.refusal("x", ip("10.2.0.1")),
            Some("a private address")
        );
        assert_eq!(policy.refusal("git.internal.example", ip("10.9.9.9")), None);
        assert_eq!(policy.refusal("[::1]", ip("::1")), None);
        for bad in ["", "10.0.0.0/40", "http://x", "a b", "1.2.3"] {
            assert!(bad.parse::<Allowed>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_token_goes_only_to_its_exact_url() {
        let cancel = CancellationToken::new();
        let scope = Scope::new(
            &FetchPolicy::default(),
            &cancel,
            Some(("https://github.com/acme/app.git", "t")),
        );
        assert_eq!(scope.token_for("https://GitHub.com/acme/app"), Some("t"));
        assert_eq!(
            scope.token_for("https://x-access-token@github.com/acme/app.git/"),
            Some("t")
        );
        for other in [
            "https://github.com/acme/private.git",
            "https://github.com/acme/app.git/sub",
            "http://github.com/acme/app.git",
            "https://github.com:8443/acme/app.git",
            "https://github.com.evil.example/acme/app.git",
            "git@github.com:acme/app.git",
        ] {
            assert_eq!(scope.token_for(other), None, "{other}");
        }
    }

    #[test]
    fn a_canceled_or_late_or_large_fetch_stops_with_the_reason() {
        let cancel = CancellationToken::new();
        let policy = FetchPolicy {
            timeout: Duration::from_millis(50),
            max_bytes: 10,
            allow: vec![],
        };
        let scope = Scope::new(&policy, &cancel, None);
        assert!(scope.check().is_ok());
        assert!(scope.received(10).is_ok());
        let e = scope.received(1).unwrap_err().to_string();
        assert!(e.contains("[git] max_fetch_mb"), "{e}");
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            scope
                .check()
                .unwrap_err()
                .to_string()
                .contains("longer than")
        );
        assert!(scope.stopped().unwrap().contains("max_fetch_mb"));
        let scope = Scope::new(&FetchPolicy::default(), &cancel, None);
        cancel.cancel();
        assert!(scope.check().unwrap_err().to_string().contains("canceled"));
    }
}
