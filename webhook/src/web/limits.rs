//! Per-address limits of the front door: attempts per minute (sign-in, wrong tokens) and open
//! live-log streams.

use crate::config::HttpSettings;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What is counted per address and minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Starting a sign-in (with GitHub or with a token).
    SignIn,
    /// A request whose API token was unknown.
    FailedToken,
}

/// Addresses tracked before the oldest windows are dropped.
const MAX_ADDRESSES: usize = 100_000;

/// The counters.
#[derive(Debug)]
pub struct Limits {
    settings: HttpSettings,
    windows: Mutex<HashMap<(Kind, IpAddr), (Instant, u32)>>,
    streams: Arc<Mutex<Streams>>,
}

#[derive(Debug, Default)]
struct Streams {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One open live-log stream; dropping it frees its place.
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<Mutex<Streams>>,
    addr: IpAddr,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut s = self.streams.lock().expect("streams");
        s.total -= 1;
        if let Some(n) = s.per_address.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                s.per_address.remove(&self.addr);
            }
        }
    }
}

impl Limits {
    /// Limits from the settings.
    pub fn new(settings: HttpSettings) -> Limits {
        Limits {
            settings,
            windows: Mutex::default(),
            streams: Arc::default(),
        }
    }

    fn allowed(&self, kind: Kind) -> u32 {
        match kind {
            Kind::SignIn => self.settings.sign_ins_per_minute,
            Kind::FailedToken => self.settings.failed_tokens_per_minute,
        }
    }

    /// True when `addr` used up this minute's attempts of `kind`.
    pub fn blocked(&self, kind: Kind, addr: IpAddr) -> bool {
        let windows = self.windows.lock().expect("limits");
        windows.get(&(kind, addr)).is_some_and(|(start, n)| {
            start.elapsed() < Duration::from_secs(60) && *n >= self.allowed(kind)
        })
    }

    /// Counts one attempt of `kind` from `addr`.
    pub fn hit(&self, kind: Kind, addr: IpAddr) {
        let mut windows = self.windows.lock().expect("limits");
        if windows.len() > MAX_ADDRESSES {
            windows.retain(|_, (start, _)| start.elapsed() < Duration::from_secs(60));
        }
        let w = windows.entry((kind, addr)).or_insert((Instant::now(), 0));
        if w.0.elapsed() >= Duration::from_secs(60) {
            *w = (Instant::now(), 0);
        }
        w.1 += 1;
    }

    /// Counts an attempt and says whether it may proceed.
    pub fn attempt(&self, kind: Kind, addr: IpAddr) -> bool {
        if self.blocked(kind, addr) {
            return false;
        }
        self.hit(kind, addr);
        true
    }

    /// A place for one more live-log stream from `addr`, unless the caps are reached.
    pub fn stream(&self, addr: IpAddr) -> Option<StreamSlot> {
        let mut s = self.streams.lock().expect("streams");
        let mine = s.per_address.get(&addr).copied().unwrap_or(0);
        if s.total >= self.settings.max_streams || mine >= self.settings.max_streams_per_address {
            return None;
        }
        s.total += 1;
        *s.per_address.entry(addr).or_insert(0) += 1;
        Some(StreamSlot {
            streams: self.streams.clone(),
            addr,
        })
    }

    /// Live-log streams open now.
    pub fn open_streams(&self) -> usize {
        self.streams.lock().expect("streams").total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(HttpSettings {
            max_streams: 3,
            max_streams_per_address: 2,
            failed_tokens_per_minute: 2,
            ..HttpSettings::default()
        })
    }

    #[test]
    fn an_address_is_blocked_after_its_attempts_and_others_are_not() {
        let l = limits();
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        assert!(l.attempt(Kind::FailedToken, a));
        assert!(l.attempt(Kind::FailedToken, a));
        assert!(!l.attempt(Kind::FailedToken, a));
        assert!(l.blocked(Kind::FailedToken, a));
        assert!(!l.blocked(Kind::SignIn, a));
        assert!(l.attempt(Kind::FailedToken, b));
    }

    #[test]
    fn streams_are_capped_per_address_and_in_total_and_freed_on_drop() {
        let l = limits();
        let (a, b) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        let s1 = l.stream(a).unwrap();
        let _s2 = l.stream(a).unwrap();
        assert!(l.stream(a).is_none(), "two per address");
        let _s3 = l.stream(b).unwrap();
        assert!(l.stream(b).is_none(), "three in total");
        drop(s1);
        let _s4 = l.stream(a).unwrap();
        assert_eq!(l.open_streams(), 3);
    }
}
