//! Limits keyed by the network source and caps on standing state (issue 10: "every
//! standing state an outsider can create has a cap"). Sans-IO: time is passed in, in
//! milliseconds.
//!
//! - **Per source** ([`SourceLimits`]): a token bucket per source address (an IPv4 address,
//!   or the /64 of an IPv6 address, since one host gets a whole /64) for every request,
//!   and a stricter one for requests that create standing state (a REGISTER, an initial
//!   SUBSCRIBE, an initial PUBLISH). Trusted peers (`trusted_peers`: a proxy carrying
//!   many users) are exempt. The number of tracked sources is bounded: idle buckets are
//!   forgotten, and past [`LimitsConfig::max_tracked_sources`] the table starts afresh.
//! - **Caps** on SIP watcher subscriptions (in total, per presentity, per source),
//!   publications (in total, per presentity) and registrar bindings (in total; per AOR
//!   is `registrar.max_bindings`).
//!
//! Past a limit the answer is 503 with `Retry-After` (RFC 3261 s21.5.4, s20.33): the
//! request may succeed later, and 503 maps onto XMPP `<service-unavailable/>` (RFC 7247
//! s7). Unauthenticated requests never reach these counters' growth: they are challenged
//! or refused before any state exists (see [`super::identity`]).

use std::collections::HashMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `[sip.limits]`. Memory each cap costs, roughly: a SIP watcher subscription about
/// 22 KB of RSS in the adapter while its NOTIFY transactions are outstanding (measured:
/// 5,000 subscriptions from a trusted peer whose Contact never answers grew the process
/// from 12 to 124 MB), about 38 KB in the whole gateway with its presence-engine entry
/// and store row (`tests/interop/tests/security_flood.rs`: 500 -> +19 MB), so the
/// default `max_subscriptions` of 5,000 bounds them at about 190 MB;
/// a publication its PIDF document (up to `max_message_size`) plus about 1 KB; a binding
/// about 1 KB; a tracked source about 100 bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per second per source address (IPv6: per /64), sustained.
    pub requests_per_source: f64,
    /// Burst of requests per source.
    pub requests_burst: f64,
    /// Requests that create standing state (REGISTER, initial SUBSCRIBE or PUBLISH) per
    /// second per source, sustained.
    pub creations_per_source: f64,
    /// Burst of such requests per source.
    pub creations_burst: f64,
    /// Sources tracked at once (bounds the buckets' memory).
    pub max_tracked_sources: usize,
    /// SIP watcher subscriptions in total.
    pub max_subscriptions: usize,
    /// SIP watcher subscriptions per presentity.
    pub max_subscriptions_per_presentity: usize,
    /// SIP watcher subscriptions per source address (IPv6: per /64).
    pub max_subscriptions_per_source: usize,
    /// Publications in total.
    pub max_publications: usize,
    /// Publications per presentity.
    pub max_publications_per_presentity: usize,
    /// Registrar bindings in total.
    pub max_bindings_total: usize,
    /// Seconds in the `Retry-After` of a 503.
    pub retry_after: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            requests_per_source: 100.0,
            requests_burst: 400.0,
            creations_per_source: 10.0,
            creations_burst: 50.0,
            max_tracked_sources: 65_536,
            max_subscriptions: 5_000,
            max_subscriptions_per_presentity: 200,
            max_subscriptions_per_source: 500,
            max_publications: 10_000,
            max_publications_per_presentity: 16,
            max_bindings_total: 10_000,
            retry_after: 30,
        }
    }
}

impl LimitsConfig {
    /// Checks the values a config file can get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.requests_per_source > 0.0
            && self.creations_per_source > 0.0
            && self.requests_burst >= 1.0
            && self.creations_burst >= 1.0)
        {
            return Err("[sip.limits]: rates must be > 0 and bursts >= 1".into());
        }
        if self.max_tracked_sources == 0 {
            return Err("[sip.limits]: max_tracked_sources must be > 0".into());
        }
        Ok(())
    }
}

/// The key of a source: an IPv4 address, or the /64 of an IPv6 address (an IPv4-mapped
/// IPv6 address is its IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// One IPv4 address.
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6Net(u64),
}

impl SourceKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(u32::from(v4)),
                None => SourceKey::V6Net((u128::from(v6) >> 64) as u64),
            },
        }
    }

    /// The key of a persisted flow ([`crate::transport::Flow`] as text, e.g.
    /// `udp:192.0.2.1:5060`); `None` if it does not parse.
    pub fn of_flow(flow: &str) -> Option<SourceKey> {
        flow.parse::<crate::transport::Flow>()
            .ok()
            .map(|f| SourceKey::of(f.remote.ip()))
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last_ms: u64,
}

impl Bucket {
    fn take(&mut self, rate: f64, burst: f64, now_ms: u64) -> bool {
        let dt = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn full_at(&self, rate: f64, burst: f64, now_ms: u64) -> bool {
        self.tokens + now_ms.saturating_sub(self.last_ms) as f64 / 1000.0 * rate >= burst
    }
}

/// What a request costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Any request.
    Request,
    /// A request that creates standing state (also counts as a request).
    Creation,
}

/// Token buckets per source (see the module docs).
#[derive(Debug)]
pub struct SourceLimits {
    cfg: LimitsConfig,
    requests: HashMap<SourceKey, Bucket>,
    creations: HashMap<SourceKey, Bucket>,
    last_sweep_ms: u64,
}

impl SourceLimits {
    /// Empty buckets with these limits.
    pub fn new(cfg: LimitsConfig) -> SourceLimits {
        SourceLimits {
            cfg,
            requests: HashMap::new(),
            creations: HashMap::new(),
            last_sweep_ms: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LimitsConfig {
        &self.cfg
    }

    /// Takes a token for a request of `cost` from `ip`; false means refuse (503).
    pub fn admit(&mut self, ip: IpAddr, cost: Cost, now_ms: u64) -> bool {
        let key = SourceKey::of(ip);
        self.sweep(now_ms);
        let c = &self.cfg;
        let (rate, burst) = (c.requests_per_source, c.requests_burst);
        let ok = self
            .requests
            .entry(key)
            .or_insert(Bucket {
                tokens: burst,
                last_ms: now_ms,
            })
            .take(rate, burst, now_ms);
        if !ok || cost == Cost::Request {
            return ok;
        }
        let (rate, burst) = (c.creations_per_source, c.creations_burst);
        self.creations
            .entry(key)
            .or_insert(Bucket {
                tokens: burst,
                last_ms: now_ms,
            })
            .take(rate, burst, now_ms)
    }

    /// Sources tracked now (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.requests.len() + self.creations.len()
    }

    fn sweep(&mut self, now_ms: u64) {
        let max = self.cfg.max_tracked_sources;
        let due = now_ms.saturating_sub(self.last_sweep_ms) >= 1000;
        if !(due || self.requests.len() >= max || self.creations.len() >= max) {
            return;
        }
        self.last_sweep_ms = now_ms;
        let c = &self.cfg;
        let (r, b) = (c.requests_per_source, c.requests_burst);
        self.requests.retain(|_, k| !k.full_at(r, b, now_ms));
        let (r, b) = (c.creations_per_source, c.creations_burst);
        self.creations.retain(|_, k| !k.full_at(r, b, now_ms));
        // Still full (a flood from more sources than the table holds): start afresh
        // rather than grow; each source then gets at most one more burst.
        if self.requests.len() >= max {
            self.requests.clear();
        }
        if self.creations.len() >= max {
            self.creations.clear();
        }
    }
}

/// The cap a new watcher subscription would exceed, as the reason phrase of the 503:
/// given the subscriptions there are in total, for its presentity and from its source.
pub fn subscription_cap(
    cfg: &LimitsConfig,
    total: usize,
    for_presentity: usize,
    for_source: usize,
) -> Option<&'static str> {
    if total >= cfg.max_subscriptions {
        Some("Too Many Subscriptions")
    } else if for_presentity >= cfg.max_subscriptions_per_presentity {
        Some("Too Many Watchers Of This Presentity")
    } else if for_source >= cfg.max_subscriptions_per_source {
        Some("Too Many Subscriptions From This Source")
    } else {
        None
    }
}

/// The cap a new publication would exceed (see [`subscription_cap`]).
pub fn publication_cap(
    cfg: &LimitsConfig,
    total: usize,
    for_presentity: usize,
) -> Option<&'static str> {
    if total >= cfg.max_publications {
        Some("Too Many Publications")
    } else if for_presentity >= cfg.max_publications_per_presentity {
        Some("Too Many Publications For This Presentity")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LimitsConfig {
        LimitsConfig {
            requests_per_source: 1.0,
            requests_burst: 3.0,
            creations_per_source: 1.0,
            creations_burst: 2.0,
            max_tracked_sources: 4,
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn buckets_are_per_source_and_refill() {
        let mut l = SourceLimits::new(LimitsConfig {
            requests_burst: 5.0,
            ..cfg()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.admit(a, Cost::Creation, 0));
        assert!(l.admit(a, Cost::Creation, 0));
        assert!(!l.admit(a, Cost::Creation, 0), "creation burst spent");
        // Every creation is also a request: 3 of 5 spent.
        assert!(
            l.admit(a, Cost::Request, 0),
            "plain requests have their own budget"
        );
        assert!(l.admit(a, Cost::Request, 0));
        assert!(!l.admit(a, Cost::Request, 0));
        assert!(l.admit(b, Cost::Creation, 0), "another source");
        assert!(l.admit(a, Cost::Creation, 1000), "refilled after a second");
    }

    /// One host owns a /64: its addresses share a bucket.
    #[test]
    fn ipv6_is_keyed_by_its_64() {
        let mut l = SourceLimits::new(cfg());
        for i in 1..=3 {
            let ip: IpAddr = format!("2001:db8:0:1::{i}").parse().unwrap();
            assert!(l.admit(ip, Cost::Request, 0));
        }
        assert!(!l.admit("2001:db8:0:1::99".parse().unwrap(), Cost::Request, 0));
        assert!(l.admit("2001:db8:0:2::1".parse().unwrap(), Cost::Request, 0));
        assert_eq!(
            SourceKey::of("::ffff:192.0.2.1".parse().unwrap()),
            SourceKey::of("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            SourceKey::of_flow("udp:[2001:db8:0:1::7]:5060"),
            Some(SourceKey::of("2001:db8:0:1::1".parse().unwrap()))
        );
    }

    #[test]
    fn tracked_sources_stay_bounded() {
        let mut l = SourceLimits::new(cfg());
        for i in 0..10_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.admit(ip, Cost::Creation, 0);
            assert!(l.tracked() <= 2 * 4, "{}", l.tracked());
        }
    }
}

/// The TU's side: the checks [`super::tu::Tu`] makes before a request may create state.
mod tu_checks {
    use cpim_core::address::Address;

    use super::super::identity;
    use super::super::tu::{Source, Tu};
    use super::{Cost, SourceKey};
    use crate::codec::{HeaderName, MessageBuilder, Method, Request, Response};

    fn unavailable(tu: &Tu, req: &Request, reason: &str) -> MessageBuilder {
        tracing::info!(reason, method = %req.method().as_str(), "503: limit reached");
        let retry = tu.config.limits.retry_after.to_string();
        Response::for_request(req, 503, Some(reason)).header(HeaderName::RetryAfter, &retry)
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// How much standing state the adapter holds (what the caps bound).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct StandingState {
        /// SIP watcher subscriptions (notifier dialogs).
        pub subscriptions: usize,
        /// The gateway's own subscriptions toward SIP presence agents.
        pub outgoing_subscriptions: usize,
        /// Publications.
        pub publications: usize,
        /// Registrar bindings.
        pub bindings: usize,
        /// Sources with a token bucket.
        pub tracked_sources: usize,
    }

    impl Tu {
        /// The standing state now.
        pub fn standing_state(&self) -> StandingState {
            let st = self.lock();
            StandingState {
                subscriptions: st.notifier.len(),
                outgoing_subscriptions: st.subscriber.len(),
                publications: st.publications.len(),
                bindings: st.registrar.binding_count(),
                tracked_sources: st.limits.tracked(),
            }
        }

        /// 503 if `src` has spent its request budget (or, for a request that creates
        /// state, its creation budget). Trusted peers are exempt.
        pub(in crate::app) fn over_source_limit(
            &self,
            req: &Request,
            src: &Source,
        ) -> Option<MessageBuilder> {
            if identity::is_trusted(&self.config.trusted_peers, src.remote.ip()) {
                return None;
            }
            let creates = match req.method() {
                Method::Register => true,
                Method::Subscribe => req.to_tag().is_none(),
                Method::Publish => req.header(HeaderName::SipIfMatch).is_none(),
                _ => false,
            };
            let cost = if creates {
                Cost::Creation
            } else {
                Cost::Request
            };
            let ok = self.lock().limits.admit(src.remote.ip(), cost, now_ms());
            (!ok).then(|| unavailable(self, req, "Rate Limit Exceeded For This Source"))
        }

        /// 503 if a new watcher subscription to `presentity` from `src` would exceed a cap.
        pub(in crate::app) fn over_subscription_cap(
            &self,
            req: &Request,
            presentity: &Address,
            src: &Source,
        ) -> Option<MessageBuilder> {
            let key = SourceKey::of(src.remote.ip());
            let reason = {
                let st = self.lock();
                let (mut for_p, mut for_src) = (0, 0);
                for (p, flow) in st.notifier.presentities_and_flows() {
                    for_p += usize::from(p.same_user(presentity));
                    for_src += usize::from(flow.and_then(SourceKey::of_flow) == Some(key));
                }
                let cfg = &self.config.limits;
                let trusted = identity::is_trusted(&self.config.trusted_peers, src.remote.ip());
                let for_src = if trusted { 0 } else { for_src };
                super::subscription_cap(cfg, st.notifier.len(), for_p, for_src)
            };
            reason.map(|r| unavailable(self, req, r))
        }

        /// 503 if a new publication of `aor` would exceed a cap.
        pub(in crate::app) fn over_publication_cap(
            &self,
            req: &Request,
            aor: &str,
        ) -> Option<MessageBuilder> {
            let reason = {
                let st = self.lock();
                super::publication_cap(
                    &self.config.limits,
                    st.publications.len(),
                    st.publications.count_for(aor),
                )
            };
            reason.map(|r| unavailable(self, req, r))
        }

        /// 503 if the registrar holds `max_bindings_total` bindings and `aor` has none
        /// yet (refreshes of AORs already bound stay possible; each AOR is capped by
        /// `registrar.max_bindings`).
        pub(in crate::app) fn over_binding_cap(
            &self,
            req: &Request,
            aor: &str,
        ) -> Option<MessageBuilder> {
            let full = {
                let st = self.lock();
                st.registrar.binding_count() >= self.config.limits.max_bindings_total
                    && !st.registrar.has_bindings(aor)
            };
            full.then(|| unavailable(self, req, "Too Many Registrations"))
        }
    }
}

pub use tu_checks::StandingState;
