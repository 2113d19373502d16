//! Connection accounting for every listener: how many connections one network source
//! holds, and how many are open in total.
//!
//! The threat model lets anyone open many connections slowly. Every listener of the
//! gateway (SIP TCP/TLS, XMPP s2s, JSON TCP/WebSocket, admin HTTP) admits a connection
//! only through a [`ConnGate`]: at most `per_source` open connections per [`SourceKey`]
//! and `total` in all. Past either cap the listener closes the new connection at once.
//!
//! A source is the IPv4 address, or the /64 prefix of an IPv6 address (one subscriber
//! line is usually given a whole /64, so counting single IPv6 addresses would let one
//! host hold 2^64 quotas). An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
//! dual-stack socket reports) counts as its IPv4 address.
//!
//! Sans-IO: the gate is a counter behind a mutex; the [`ConnPermit`] it hands out gives
//! its slot back when dropped, so a connection task that ends in any way (error, panic,
//! abort) releases it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Whom a connection is counted against: an IPv4 address or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKey {
    /// An IPv4 address (also for IPv4-mapped IPv6 addresses).
    V4([u8; 4]),
    /// The upper 64 bits of an IPv6 address.
    V6Prefix64(u64),
}

impl SourceKey {
    /// The key of `ip`: IPv4 as is, IPv6 by its /64.
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4.octets()),
                None => SourceKey::V6Prefix64((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceKey::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(*o)),
            SourceKey::V6Prefix64(p) => {
                write!(f, "{}/64", Ipv6Addr::from(u128::from(*p) << 64))
            }
        }
    }
}

/// The caps of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections per source (IPv4 address or IPv6 /64).
    pub per_source: usize,
    /// Open connections in all.
    pub total: usize,
}

impl Default for ConnLimits {
    /// 32 per source, 1024 in all.
    fn default() -> Self {
        ConnLimits {
            per_source: 32,
            total: 1024,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The source already holds `per_source` connections.
    #[error("too many connections from {0}")]
    PerSource(SourceKey),
    /// The listener already holds `total` connections.
    #[error("too many connections in total")]
    Total,
}

/// The counts behind a [`ConnGate`].
#[derive(Debug, Default)]
struct Counts {
    by_source: HashMap<SourceKey, usize>,
    total: usize,
}

/// Admits connections within [`ConnLimits`]; cheap to clone (one shared count).
#[derive(Clone, Debug)]
pub struct ConnGate {
    limits: ConnLimits,
    counts: Arc<Mutex<Counts>>,
}

impl ConnGate {
    /// A gate with these caps (a cap of 0 is taken as 1: a listener that can never
    /// admit anything is a configuration mistake, not a policy).
    pub fn new(limits: ConnLimits) -> ConnGate {
        ConnGate {
            limits: ConnLimits {
                per_source: limits.per_source.max(1),
                total: limits.total.max(1),
            },
            counts: Arc::default(),
        }
    }

    /// The caps.
    pub fn limits(&self) -> ConnLimits {
        self.limits
    }

    /// Admits a connection from `ip`, or says which cap it is over. The slot is held
    /// until the permit is dropped.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnPermit, Refused> {
        let key = SourceKey::of(ip);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= self.limits.total {
            return Err(Refused::Total);
        }
        let n = c.by_source.entry(key).or_insert(0);
        if *n >= self.limits.per_source {
            return Err(Refused::PerSource(key));
        }
        *n += 1;
        c.total += 1;
        Ok(ConnPermit {
            key,
            counts: self.counts.clone(),
        })
    }

    /// Open connections in all.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Open connections counted against `ip`'s source.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.by_source.get(&SourceKey::of(ip)).copied().unwrap_or(0)
    }
}

/// One admitted connection; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnPermit {
    key: SourceKey,
    counts: Arc<Mutex<Counts>>,
}

impl ConnPermit {
    /// The source this connection is counted against.
    pub fn source(&self) -> SourceKey {
        self.key
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                // no entry stays behind for a source that has left
                c.by_source.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_cap_then_slot_freed_on_drop() {
        let g = ConnGate::new(ConnLimits {
            per_source: 2,
            total: 10,
        });
        let a = g.admit(ip("192.0.2.1")).unwrap();
        let _b = g.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(
            g.admit(ip("192.0.2.1")).unwrap_err(),
            Refused::PerSource(SourceKey::V4([192, 0, 2, 1]))
        );
        // another source is not affected
        let _c = g.admit(ip("192.0.2.2")).unwrap();
        drop(a);
        let _d = g.admit(ip("192.0.2.1")).unwrap();
        assert_eq!(g.open(), 3);
    }

    #[test]
    fn total_cap() {
        let g = ConnGate::new(ConnLimits {
            per_source: 10,
            total: 3,
        });
        let held: Vec<_> = (1..=3)
            .map(|i| g.admit(ip(&format!("198.51.100.{i}"))).unwrap())
            .collect();
        assert_eq!(g.admit(ip("198.51.100.9")).unwrap_err(), Refused::Total);
        drop(held);
        assert_eq!(g.open(), 0);
        assert!(g.counts.lock().unwrap().by_source.is_empty());
    }

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_v4_as_v4() {
        let g = ConnGate::new(ConnLimits {
            per_source: 2,
            total: 100,
        });
        let _a = g.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = g.admit(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")).unwrap();
        // a third address in the same /64 is the same source
        assert!(matches!(
            g.admit(ip("2001:db8:1:2:dead::beef")),
            Err(Refused::PerSource(_))
        ));
        // the next /64 is another source
        assert!(g.admit(ip("2001:db8:1:3::1")).is_ok());
        let _m = g.admit(ip("::ffff:192.0.2.7")).unwrap();
        assert_eq!(g.open_from(ip("192.0.2.7")), 1);
        assert_eq!(
            SourceKey::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }
}
