//! Rate limits per source: a token bucket per source address (bare: user@domain), and,
//! for a source in a domain the gateway does not serve, one per source domain with
//! [`DOMAIN_FACTOR`] times the rate and burst. A foreign domain reaches the router only
//! over a link that proved it (an XMPP s2s stream, a trusted SIP peer), so that domain is
//! the network source: a peer that writes a new user name into every request (issue 10:
//! 5,000 subscriptions in 2 s from one socket) still spends one budget. Local domains get
//! no domain bucket (all local users share them); their adapters limit by network source
//! (the SIP adapter per address and /64, `cpim_sip::app::limits`).
//!
//! An empty bucket is answered with 503 Service Unavailable and a reason naming the
//! limit. 503 rather than 429: in SIP, 429 means "Provide Referrer Identity" (RFC 3892),
//! and RFC 7247 s7 maps SIP 503 onto XMPP `<service-unavailable/>` (and back), so the
//! refusal reads the same on both sides. RFC 3261 s21.5.4 makes 503 the overload answer.

use cpim_core::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpim_core::model::Status;

use super::check::Check;
use super::Submission;
use crate::routing::RouteTable;

/// A foreign source domain's bucket is this many times a user's.
pub const DOMAIN_FACTOR: f64 = 10.0;

/// One token bucket: `rate` tokens per second up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(burst: f64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst,
            last: now,
        }
    }

    /// Refills for the time since the last call and takes one token if there is one.
    pub fn try_take(&mut self, rate: f64, burst: f64, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True once the bucket would be full again (and can be forgotten).
    pub fn is_full_at(&self, rate: f64, burst: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * rate >= burst
    }
}

/// The limits: `rate` operations per second per source, bursts up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateConfig {
    /// Sustained operations per second per source.
    pub rate: f64,
    /// Bucket size.
    pub burst: f64,
}

#[derive(Debug)]
struct Buckets {
    map: HashMap<String, TokenBucket>,
    domains: HashMap<String, TokenBucket>,
    last_sweep: Instant,
}

/// The rate rule; clones share the buckets.
#[derive(Clone, Debug)]
pub struct RateLimit {
    cfg: RateConfig,
    buckets: Arc<Mutex<Buckets>>,
    table: Option<Arc<RouteTable>>,
}

impl RateLimit {
    /// Limits each source to `cfg`.
    pub fn new(cfg: RateConfig) -> Self {
        RateLimit {
            cfg,
            buckets: Arc::new(Mutex::new(Buckets {
                map: HashMap::new(),
                domains: HashMap::new(),
                last_sweep: Instant::now(),
            })),
            table: None,
        }
    }

    /// Also limits each foreign source domain (not local in `table`), see the module docs.
    pub fn with_domains(mut self, table: Arc<RouteTable>) -> Self {
        self.table = Some(table);
        self
    }

    fn admit(&self, key: String, domain: Option<&str>, now: Instant) -> bool {
        let RateConfig { rate, burst } = self.cfg;
        let (drate, dburst) = (rate * DOMAIN_FACTOR, burst * DOMAIN_FACTOR);
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        // Forget buckets that have refilled, at most once a second, so idle sources
        // cost nothing.
        if now.saturating_duration_since(b.last_sweep) > Duration::from_secs(1)
            && b.map.len() + b.domains.len() > 1024
        {
            b.map.retain(|_, t| !t.is_full_at(rate, burst, now));
            b.domains.retain(|_, t| !t.is_full_at(drate, dburst, now));
            b.last_sweep = now;
        }
        if let Some(d) = domain {
            let ok = b
                .domains
                .entry(d.to_owned())
                .or_insert_with(|| TokenBucket::full(dburst, now))
                .try_take(drate, dburst, now);
            if !ok {
                return false;
            }
        }
        b.map
            .entry(key)
            .or_insert_with(|| TokenBucket::full(burst, now))
            .try_take(rate, burst, now)
    }
}

impl Check for RateLimit {
    fn check(&self, sub: &mut Submission) -> Result<(), Status> {
        let src = sub.op.source();
        let key = match &src.user {
            Some(u) => format!("{u}@{}", src.domain),
            None => src.domain.clone(),
        };
        let foreign = self
            .table
            .as_ref()
            .is_some_and(|t| !t.is_local(&src.domain))
            .then_some(src.domain.as_str());
        if !self.admit(key, foreign, Instant::now()) {
            return Err(Status::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Rate limit exceeded ({} per second)", self.cfg.rate),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::check::CheckLayer;
    use crate::router::testutil::{msg, Recorder};
    use tower::{Layer, ServiceExt};

    #[test]
    fn bucket_refills_with_time() {
        let t0 = Instant::now();
        let mut b = TokenBucket::full(2.0, t0);
        assert!(b.try_take(1.0, 2.0, t0));
        assert!(b.try_take(1.0, 2.0, t0));
        assert!(!b.try_take(1.0, 2.0, t0));
        assert!(!b.try_take(1.0, 2.0, t0 + Duration::from_millis(500)));
        assert!(b.try_take(1.0, 2.0, t0 + Duration::from_millis(1100)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(100);
        assert!(b.try_take(1.0, 2.0, later));
        assert!(b.try_take(1.0, 2.0, later));
        assert!(!b.try_take(1.0, 2.0, later));
    }

    #[tokio::test]
    async fn empty_bucket_gets_503_per_source() {
        let rec = Recorder::default();
        let layer = CheckLayer::new(RateLimit::new(RateConfig {
            rate: 0.001,
            burst: 2.0,
        }));
        let svc = layer.layer(rec.clone());
        let mut codes = Vec::new();
        for i in 0..3 {
            let op = msg(i, "sip:alice@s.test", "bob@x.test", "hi");
            codes.push(
                svc.clone()
                    .oneshot(Submission::new("sip", op))
                    .await
                    .unwrap()
                    .status
                    .code,
            );
        }
        assert_eq!(codes, [200, 200, 503]);
        // Another source has its own bucket.
        let op = msg(9, "sip:carol@s.test", "bob@x.test", "hi");
        assert_eq!(
            svc.oneshot(Submission::new("sip", op))
                .await
                .unwrap()
                .status
                .code,
            StatusCode::OK
        );
        assert_eq!(rec.count(), 3);
    }

    /// Issue 10: a foreign domain that writes a new user into every request spends one
    /// domain budget; local users (whose adapters limit by network address) do not.
    #[tokio::test]
    async fn a_foreign_domain_rotating_users_spends_one_budget() {
        let table = Arc::new(RouteTable::new(
            [("sip.test", "sip")],
            [("xmpp.test", "xmpp")],
        ));
        let layer = CheckLayer::new(
            RateLimit::new(RateConfig {
                rate: 0.001,
                burst: 2.0,
            })
            .with_domains(table),
        );
        let svc = layer.layer(Recorder::default());
        let mut refused = 0;
        for i in 0..50 {
            let op = msg(i, &format!("u{i}@xmpp.test"), "sip:bob@sip.test", "hi");
            let code = svc
                .clone()
                .oneshot(Submission::new("xmpp", op))
                .await
                .unwrap()
                .status
                .code;
            refused += usize::from(code == 503);
        }
        // 2 x DOMAIN_FACTOR = 20 admitted, whatever the user names.
        assert_eq!(refused, 30);
        let mut refused = 0;
        for i in 0..50 {
            let op = msg(i, &format!("sip:u{i}@sip.test"), "romeo@xmpp.test", "hi");
            let code = svc
                .clone()
                .oneshot(Submission::new("sip", op))
                .await
                .unwrap()
                .status
                .code;
            refused += usize::from(code == 503);
        }
        assert_eq!(
            refused, 0,
            "local users are limited per user and by their adapter"
        );
    }
}
