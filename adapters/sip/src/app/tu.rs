//! The transaction user: the dispatcher between the transaction layer and the method
//! handlers. It holds the sans-IO state machines of this module's siblings behind one
//! mutex (never held across an await), reads each incoming request once into an
//! `Incoming` and hands it to the handler of its method (`method`); core
//! operations go out through `deliver`. It talks to the transaction layer
//! through [`Wire`].
//!
//! The adapter translates and does not police: hop count (Max-Forwards <-> `hops_left`),
//! size, rate and the operation timeout of what reaches the core are the router's.

use cpim_core::StatusCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use cpim_core::adapter::{BoxFuture, Ingress};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Operation, Outcome, TransId};
use rand::Rng;
use tokio::sync::mpsc;

use crate::codec::{HeaderName, Method, Request, Response};

use super::config::SipConfig;
use super::digest::DigestServer;
use super::incoming::Incoming;
use super::outbox::Out;
use super::presence::notifier::Notifier;
use super::presence::publish::Publications;
use super::presence::subscriber::Subscriber;
use super::registrar::Registrar;
use super::store::SipStore;

/// The adapter name.
pub const ADAPTER_NAME: &str = "sip";

/// Methods the gateway answers (Allow).
pub const ALLOW: &str = "REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH, OPTIONS";

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub use super::identity::Source;

/// Where to send a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// Resolve this URI (RFC 3263) and send there.
    Uri(String),
    /// Send over this flow (`udp:192.0.2.1:5060`, as [`Source::flow`] wrote it), e.g. to
    /// a registered UA behind NAT.
    Flow(String),
}

/// Why a request got no final response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Timer F / B fired.
    #[error("request timed out")]
    Timeout,
    /// The transport failed or the destination could not be resolved.
    #[error("transport error: {0}")]
    Transport(String),
}

/// What the TU needs from the transaction layer.
pub trait Wire: Send + Sync + 'static {
    /// Sends `req` (the Via is added below) and resolves with its final response.
    fn send_request(
        &self,
        req: Request,
        hop: NextHop,
    ) -> BoxFuture<'_, Result<Response, WireError>>;
    /// The `host[:port]` to write in the gateway's Contact and URIs.
    fn local_hostport(&self) -> String;
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) registrar: Registrar,
    pub(super) digest: DigestServer,
    pub(super) notifier: Notifier,
    pub(super) subscriber: Subscriber,
    pub(super) publications: Publications,
    pub(super) limits: super::limits::SourceLimits,
}

/// The transaction user.
pub struct Tu {
    pub(crate) config: SipConfig,
    pub(super) ingress: Arc<dyn Ingress>,
    pub(super) store: Arc<dyn SipStore>,
    pub(super) wire: Arc<dyn Wire>,
    state: Mutex<State>,
    next_trans: AtomicU64,
    cseq: AtomicU64,
    pub(super) outbox: mpsc::UnboundedSender<Out>,
    pub(super) outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<Out>>>,
}

impl std::fmt::Debug for Tu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tu")
            .field("domains", &self.config.domains)
            .finish()
    }
}

/// A response under construction.
pub(super) type Reply = crate::codec::MessageBuilder;

/// A response to `req` with `code` and, if given, `reason`.
pub(super) fn reply(req: &Request, code: u16, reason: Option<&str>) -> Reply {
    Response::for_request(req, code, reason)
}

/// The address of a URI as the core knows it (no instance for SIP AORs beyond `gr`).
pub(super) fn uri_address(uri: &str) -> Option<Address> {
    Address::parse(uri).ok()
}

/// The canonical AOR string of an address (`sip:user@domain`).
pub fn aor_of(a: &Address) -> String {
    let mut b = a.bare();
    if b.scheme != Scheme::Sips {
        b.scheme = Scheme::Sip;
    }
    b.to_string()
}

/// The SIP final response for a core outcome: its code and reason (2xx as given: 200 or
/// 202). The one place a core [`StatusCode`] becomes a SIP response code; a code outside
/// the final range (RFC 3261 s7.2) is answered with 500.
pub(super) fn outcome_reply(req: &Request, o: &Outcome) -> Reply {
    let status = o.status.code;
    let code = if status.is_final() {
        status
    } else {
        StatusCode::SERVER_INTERNAL_ERROR
    }
    .as_u16();
    let reason = if o.status.reason.is_empty() {
        None
    } else {
        Some(o.status.reason.as_str())
    };
    reply(req, code, reason)
}

impl Tu {
    /// A TU over `wire`.
    pub fn new(
        config: SipConfig,
        ingress: Arc<dyn Ingress>,
        store: Arc<dyn SipStore>,
        wire: Arc<dyn Wire>,
    ) -> Tu {
        let opaque = hex::encode(rand::thread_rng().gen::<[u8; 8]>());
        let state = State {
            registrar: Registrar::new(config.registrar.clone()),
            digest: DigestServer::new(
                config.realm(),
                &config.auth_algorithms,
                config.nonce_lifetime,
                opaque,
            ),
            notifier: Notifier::new(config.subscription.clone(), config.fetch_wait)
                .with_min_interval(config.notify_min_interval),
            subscriber: Subscriber::new(),
            publications: Publications::new(config.publication.clone()),
            limits: super::limits::SourceLimits::new(config.limits.clone()),
        };
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        Tu {
            config,
            ingress,
            store,
            wire,
            state: Mutex::new(state),
            next_trans: AtomicU64::new(1),
            cseq: AtomicU64::new(1),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn trans_id(&self) -> TransId {
        TransId(self.next_trans.fetch_add(1, Ordering::Relaxed))
    }

    pub(super) fn next_cseq(&self) -> u32 {
        (self.cseq.fetch_add(1, Ordering::Relaxed) % 0x7fff_ffff) as u32 + 1
    }

    /// Loads the persisted state.
    pub async fn restore(&self) -> Result<(), super::store::StoreError> {
        let bindings = self.store.load_bindings().await?;
        let dialogs = self.store.load_dialogs().await?;
        let pubs = self.store.load_publications().await?;
        let now = now_secs();
        let mut st = self.lock();
        st.registrar.restore(bindings, now);
        st.notifier.restore(dialogs.clone(), now);
        st.subscriber.restore(dialogs, now);
        st.publications.restore(pubs, now);
        Ok(())
    }

    /// The earliest time (seconds) [`Tu::tick`] has work.
    pub fn next_deadline(&self) -> Option<u64> {
        let st = self.lock();
        [
            st.registrar.next_expiry(),
            st.notifier.poll_timeout(),
            st.subscriber.poll_timeout(),
            st.publications.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances time: expiries and refreshes.
    pub async fn tick(self: &Arc<Self>) {
        let now = now_secs();
        let (gone_bindings, gone_pubs) = {
            let mut st = self.lock();
            st.notifier.handle_timeout(now);
            st.subscriber.handle_timeout(now);
            st.digest.purge(now);
            (st.registrar.expire(now), st.publications.expire(now))
        };
        for (aor, left) in gone_bindings {
            self.persist_bindings(&aor, &left).await;
        }
        let mut aors: Vec<String> = Vec::new();
        for p in gone_pubs {
            self.remove_publication(&p.etag).await;
            if !aors.contains(&p.aor) {
                aors.push(p.aor);
            }
        }
        for aor in aors {
            self.submit_composed_publish(&aor, now).await;
        }
        self.winfo_poll(now);
        self.drain_outputs();
    }

    /// Handles one incoming request (not ACK/CANCEL) and returns the final response
    /// (`None` only if no response could be built, which is logged). Outputs the request
    /// caused (the first NOTIFY of a subscription) go out after it returns.
    pub async fn handle_request(self: &Arc<Self>, req: Request, src: Source) -> Option<Response> {
        let mut out = None;
        self.handle_request_with(req, src, |r| out = Some(r)).await;
        out
    }

    /// Like [`Tu::handle_request`], handing the response to `respond` before anything the
    /// request caused is sent (so a SUBSCRIBE's 200 leaves before its first NOTIFY).
    pub async fn handle_request_with(
        self: &Arc<Self>,
        req: Request,
        src: Source,
        respond: impl FnOnce(Response),
    ) {
        if let Some(r) = self.answer(&req, &src).await {
            respond(r);
        }
        self.drain_outputs();
    }

    /// The dispatch: the source limit, then the handler of the request's method with the
    /// request read once.
    async fn answer(self: &Arc<Self>, req: &Request, src: &Source) -> Option<Response> {
        if let Some(r) = self.over_source_limit(req, src) {
            return r.build_response().ok();
        }
        let inc = Incoming::read(req, src);
        let resp = match req.method() {
            Method::Register => self.on_register(&inc).await,
            Method::Message => self.on_message(&inc).await,
            Method::Subscribe => self.on_subscribe(&inc).await,
            Method::Publish => self.on_publish(&inc).await,
            Method::Notify => self.on_notify(&inc),
            Method::Options => Response::for_request(req, 200, None)
                .header(HeaderName::Allow, ALLOW)
                .header(
                    HeaderName::Accept,
                    "application/pidf+xml, text/plain, message/cpim",
                ),
            _ => Response::for_request(req, 405, None).header(HeaderName::Allow, ALLOW),
        };
        match resp.build_response() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "could not build a response; answering 500");
                Response::for_request(req, 500, None).build_response().ok()
            }
        }
    }

    /// Submits to the core. The router answers every submission, with 408 after its
    /// operation timeout at the latest (`[limits] timeout_ms`): the adapter sets no timer
    /// of its own around it.
    pub(super) async fn submit(&self, op: Operation) -> Outcome {
        self.ingress.submit(ADAPTER_NAME, op).await
    }

    /// True for a user-less SIP URI naming one of the gateway's domains or its own
    /// advertised host.
    pub(super) fn names_gateway(&self, uri: &str) -> bool {
        let Ok(a) = Address::parse(uri) else {
            return false;
        };
        if a.user.is_some() || !matches!(a.scheme, Scheme::Sip | Scheme::Sips) {
            return false;
        }
        let hp = self.hostport();
        let host = hp
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(hp.as_str(), |(h, _)| h);
        self.config.is_local_domain(&a.domain) || a.domain.eq_ignore_ascii_case(host)
    }

    /// The gateway's Contact header value.
    pub(super) fn contact_header(&self) -> String {
        format!("<sip:gateway@{}>", self.hostport())
    }

    fn hostport(&self) -> String {
        self.wire.local_hostport()
    }

    /// (notifier subscriptions, gateway subscriptions): for metrics and tests.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.notifier.len(), st.subscriber.len())
    }
}
