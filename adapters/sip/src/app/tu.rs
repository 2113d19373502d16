//! The transaction user: turns incoming requests into answers and core operations, and
//! core operations into outgoing requests. Holds the sans-IO state machines of this
//! module's siblings behind one mutex (never held across an await) and talks to the
//! transaction layer through [`Wire`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cpim_core::adapter::{BoxFuture, Ingress};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{
    Notify, Operation, Outcome, Publish, Subscribe, SubscriptionState, TransId,
};
use cpim_core::pidf;
use cpim_core::presence::Presence;
use rand::Rng;
use tokio::sync::mpsc;

use crate::codec::{new_tag, HeaderName, Method, Request, Response};

use super::config::SipConfig;
use super::digest::{self, Challenge, DigestServer};
use super::identity::{self, Authn};
use super::message::{self, InboundMessage, Refusal};
use super::presence::notifier::{
    Notifier, NotifierOutput, OutgoingNotify, SubscribeDecision, SubscribeRequest,
};
use super::presence::publish::{Publications, PublishKind, PublishRequest};
use super::presence::subscriber::{
    IncomingNotify, OutgoingSubscribe, Subscriber, SubscriberOutput,
};
use super::registrar::{self, RegisterRequest, Registrar};
use super::store::{BindingRecord, SipStore};

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
    /// The host[:port] to write in the gateway's Contact and URIs.
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
    ingress: Arc<dyn Ingress>,
    store: Arc<dyn SipStore>,
    wire: Arc<dyn Wire>,
    state: Mutex<State>,
    next_trans: AtomicU64,
    cseq: AtomicU64,
    outbox: mpsc::UnboundedSender<Out>,
    outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<Out>>>,
}

/// One output of the sans-IO machines, on its way to the outbox worker.
#[derive(Debug)]
enum Out {
    N(NotifierOutput),
    S(SubscriberOutput),
}

/// One step of a notifier dialog's lane, in the order the notifier produced it.
#[allow(clippy::large_enum_variant)] // transient, moved through a channel once
#[derive(Debug)]
enum LaneItem {
    Persist(super::store::DialogRecord),
    Notify(OutgoingNotify),
    Forget(String),
}

/// Runs outputs in order. Everything of one notifier dialog (its store writes and its
/// NOTIFYs) runs in sequence on that dialog's lane: a NOTIFY waits for the write before it
/// (its CSeq is durable before it is sent) and for the previous NOTIFY's answer (RFC 6665
/// s4.2.2), without holding up other dialogs, so the writes of many dialogs share the
/// store's group commit instead of one fsync after the other on this worker. Subscriber
/// store writes run in sequence here, operations for the core in sequence on one lane,
/// SUBSCRIBE refreshes each on its own task. Holds only a weak reference: it ends when
/// the TU is dropped.
async fn outbox_worker(tu: std::sync::Weak<Tu>, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut lanes: HashMap<String, mpsc::UnboundedSender<LaneItem>> = HashMap::new();
    let (core_tx, mut core_rx) = mpsc::unbounded_channel::<Operation>();
    let weak = tu.clone();
    tokio::spawn(async move {
        while let Some(op) = core_rx.recv().await {
            let Some(tu) = weak.upgrade() else { break };
            let _ = tu.submit_bounded(op).await;
        }
    });
    let lane_for = |lanes: &mut HashMap<String, mpsc::UnboundedSender<LaneItem>>, key: String| {
        lanes
            .entry(key)
            .or_insert_with(|| {
                let (tx, mut lrx) = mpsc::unbounded_channel::<LaneItem>();
                let weak = tu.clone();
                tokio::spawn(async move {
                    while let Some(item) = lrx.recv().await {
                        let Some(tu) = weak.upgrade() else { break };
                        match item {
                            LaneItem::Persist(rec) => tu.persist_dialog(&rec).await,
                            LaneItem::Forget(key) => tu.forget_dialog(&key).await,
                            LaneItem::Notify(n) => {
                                let key = n.dialog.key();
                                let code = tu.send_notify(n).await;
                                tu.lock().notifier.notify_answered(&key, code);
                                tu.drain_outputs();
                            }
                        }
                    }
                });
                tx
            })
            .clone()
    };
    while let Some(o) = rx.recv().await {
        let Some(this) = tu.upgrade() else { break };
        match o {
            Out::N(NotifierOutput::Notify(n)) => {
                let _ = lane_for(&mut lanes, n.dialog.key()).send(LaneItem::Notify(n));
            }
            Out::N(NotifierOutput::Persist(rec)) => {
                let _ = lane_for(&mut lanes, rec.key()).send(LaneItem::Persist(rec));
            }
            Out::N(NotifierOutput::Forget(key)) => {
                // Dropping the lane's sender lets it finish what is queued (the final
                // NOTIFY, then the removal) and end.
                let _ = lane_for(&mut lanes, key.clone()).send(LaneItem::Forget(key.clone()));
                lanes.remove(&key);
            }
            Out::S(SubscriberOutput::Persist(rec)) => {
                this.persist_dialog(&rec).await;
            }
            Out::S(SubscriberOutput::Forget(key)) => {
                this.forget_dialog(&key).await;
            }
            Out::N(NotifierOutput::Unsubscribe {
                watcher,
                presentity,
            }) => {
                let _ = core_tx.send(Operation::Unsubscribe(Subscribe {
                    trans_id: this.trans_id(),
                    watcher,
                    target: presentity,
                    duration: 0,
                }));
            }
            Out::S(SubscriberOutput::Notify {
                watcher,
                presentity,
                state,
                presence,
            }) => {
                let _ = core_tx.send(Operation::Notify(Notify {
                    trans_id: this.trans_id(),
                    watcher,
                    target: presentity,
                    state,
                    presence,
                }));
            }
            Out::S(SubscriberOutput::Subscribe(s)) => {
                // Refreshes and re-subscriptions (initial ones are sent by deliver()).
                let t = Arc::clone(&this);
                tokio::spawn(async move {
                    t.send_subscribe(s).await;
                    t.drain_outputs();
                });
            }
        }
    }
}

impl std::fmt::Debug for Tu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tu")
            .field("domains", &self.config.domains)
            .finish()
    }
}

type Reply = crate::codec::MessageBuilder;

fn reply(req: &Request, code: u16, reason: Option<&str>) -> Reply {
    Response::for_request(req, code, reason)
}

fn build(b: Reply) -> Reply {
    b
}

/// The address of a URI as the core knows it (no instance for SIP AORs beyond `gr`).
fn uri_address(uri: &str) -> Option<Address> {
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

    fn trans_id(&self) -> TransId {
        TransId(self.next_trans.fetch_add(1, Ordering::Relaxed))
    }

    fn next_cseq(&self) -> u32 {
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
            if let Err(e) = self.store.remove_publication(&p.etag).await {
                tracing::warn!(error = %e, "store");
            }
            if !aors.contains(&p.aor) {
                aors.push(p.aor);
            }
        }
        for aor in aors {
            self.submit_composed_publish(&aor, now).await;
        }
        self.drain_outputs();
    }

    async fn persist_bindings(&self, aor: &str, bindings: &[BindingRecord]) {
        if let Err(e) = self.store.put_bindings(aor, bindings).await {
            tracing::warn!(error = %e, aor, "could not persist bindings");
        }
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
        if let Some(r) = self.answer(req, src).await {
            respond(r);
        }
        self.drain_outputs();
    }

    async fn answer(self: &Arc<Self>, req: Request, src: Source) -> Option<Response> {
        if let Some(r) = self.over_source_limit(&req, &src) {
            return r.build_response().ok();
        }
        let resp = match req.method() {
            Method::Register => self.on_register(&req, &src).await,
            Method::Message => self.on_message(&req, &src).await,
            Method::Subscribe => self.on_subscribe(&req, &src).await,
            Method::Publish => self.on_publish(&req, &src).await,
            Method::Notify => self.on_notify(&req),
            Method::Options => build(
                Response::for_request(&req, 200, None)
                    .header(HeaderName::Allow, ALLOW)
                    .header(
                        HeaderName::Accept,
                        "application/pidf+xml, text/plain, message/cpim",
                    ),
            ),
            _ => build(Response::for_request(&req, 405, None).header(HeaderName::Allow, ALLOW)),
        };
        match resp.build_response() {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!(error = %e, "could not build a response; answering 500");
                Response::for_request(&req, 500, None).build_response().ok()
            }
        }
    }

    fn from_address(req: &Request) -> Result<Address, Reply> {
        req.from()
            .ok()
            .and_then(|f| uri_address(f.uri.raw))
            .ok_or_else(|| reply(req, 400, Some("Bad From URI")))
    }

    fn to_address(req: &Request) -> Result<Address, Reply> {
        req.to()
            .ok()
            .and_then(|f| uri_address(f.uri.raw))
            .ok_or_else(|| reply(req, 400, Some("Bad To URI")))
    }

    async fn on_register(self: &Arc<Self>, req: &Request, src: &Source) -> Reply {
        if self.config.proxy_mode() {
            return reply(req, 403, Some("Registration Handled By The Proxy"));
        }
        let now = now_secs();
        let aor_addr = match Self::to_address(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if aor_addr.user.is_none() {
            return reply(req, 404, Some("Not Found"));
        }
        let user = match self.authenticate(req, src, &aor_addr, true, now) {
            Authn::Respond(r) => return r,
            Authn::User(u) => Some(u),
            Authn::Trusted => None,
        };
        if let Some(r) = self.over_binding_cap(req, &aor_of(&aor_addr)) {
            return r;
        }
        let contact_values: Vec<&str> = req.header_all(HeaderName::Contact).collect();
        let Some(contacts) = registrar::parse_contacts(contact_values) else {
            return reply(req, 400, Some("Bad Contact"));
        };
        let aor = aor_of(&aor_addr);
        let rreq = RegisterRequest {
            aor: aor.clone(),
            contacts,
            expires: req.expires(),
            call_id: req.call_id().to_owned(),
            cseq: req.cseq().seq,
            flow: Some(src.flow()),
            connection: src.connection,
            authenticated_user: user,
        };
        let result = self.lock().registrar.handle_register(&rreq, now);
        match result {
            Ok(out) => {
                if out.changed {
                    let recs: Vec<BindingRecord> =
                        out.bindings.iter().map(|(b, _)| b.clone()).collect();
                    self.persist_bindings(&aor, &recs).await;
                }
                let mut b = Response::for_request(req, 200, None);
                for (binding, left) in &out.bindings {
                    b = b.header(
                        HeaderName::Contact,
                        &format!("<{}>;expires={left}", binding.contact),
                    );
                }
                build(b)
            }
            Err(e) => {
                let (code, reason) = e.status();
                let mut b = Response::for_request(req, code, Some(reason));
                if let registrar::RegisterError::IntervalTooBrief(min) = e {
                    b = b.header(HeaderName::MinExpires, &min.to_string());
                }
                build(b)
            }
        }
    }

    async fn on_message(self: &Arc<Self>, req: &Request, src: &Source) -> Reply {
        let now = now_secs();
        if req.max_forwards() == Some(0) {
            return reply(req, 483, None);
        }
        let from = match Self::from_address(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if let Authn::Respond(r) = self.authenticate(req, src, &from, false, now) {
            return r;
        }
        let Ok(from_na) = req.from() else {
            return reply(req, 400, Some("Bad From"));
        };
        let Ok(to_na) = req.to() else {
            return reply(req, 400, Some("Bad To"));
        };
        let inbound = InboundMessage {
            request_uri: req.uri_str(),
            from: from_na.uri.raw,
            to: to_na.uri.raw,
            call_id: req.call_id(),
            cseq: req.cseq().seq,
            max_forwards: req.max_forwards(),
            subject: req.header(HeaderName::Subject),
            content_language: req.header_str("Content-Language"),
            content_type: req.content_type(),
            body: req.body(),
        };
        let msg = match message::inbound(&inbound, self.trans_id(), self.config.max_message_size) {
            Ok(m) => m,
            Err(Refusal { code, reason }) => return reply(req, code, Some(&reason)),
        };
        let outcome = self.submit_bounded(Operation::Message(msg)).await;
        outcome_reply(req, &outcome)
    }

    async fn on_subscribe(self: &Arc<Self>, req: &Request, src: &Source) -> Reply {
        let now = now_secs();
        let from = match Self::from_address(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        let to = match Self::to_address(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if let Authn::Respond(r) = self.authenticate(req, src, &from, false, now) {
            return r;
        }
        let (Ok(from_na), Ok(to_na)) = (req.from(), req.to()) else {
            return reply(req, 400, None);
        };
        let Some(from_tag) = from_na.tag() else {
            return reply(req, 400, Some("Missing From Tag"));
        };
        let contact = req
            .contacts()
            .next()
            .and_then(Result::ok)
            .map(|c| c.uri.raw.to_owned());
        // The presentity: the Request-URI names it (To may be the same).
        let presentity = uri_address(req.uri_str())
            .filter(|a| a.user.is_some())
            .unwrap_or(to);
        if to_na.tag().is_none() && req.expires() != Some(0) {
            if let Some(r) = self.over_subscription_cap(req, &presentity, src) {
                return r;
            }
        }
        let sreq = SubscribeRequest {
            call_id: req.call_id().to_owned(),
            from_uri: from_na.uri.raw.to_owned(),
            from_tag: from_tag.to_owned(),
            to_uri: to_na.uri.raw.to_owned(),
            to_tag: to_na.tag().map(str::to_owned),
            event: req.header(HeaderName::Event).map(str::to_owned),
            expires: req.expires(),
            cseq: req.cseq().seq,
            contact,
            record_route: req
                .header_all(HeaderName::RecordRoute)
                .flat_map(crate::codec::split_list)
                .map(str::to_owned)
                .collect(),
            flow: Some(src.flow()),
            watcher: from.bare(),
            presentity: presentity.bare(),
        };
        let watcher = sreq.watcher.clone();
        let target = sreq.presentity.clone();
        let local_tag = new_tag();
        let decision = self.lock().notifier.handle_subscribe(sreq, &local_tag, now);
        match decision {
            SubscribeDecision::Reject {
                code,
                reason,
                min_expires,
            } => {
                let mut b = Response::for_request(req, code, Some(reason));
                if let Some(m) = min_expires {
                    b = b.header(HeaderName::MinExpires, &m.to_string());
                }
                if code == 489 {
                    b = b.header(HeaderName::AllowEvents, "presence");
                }
                build(b)
            }
            SubscribeDecision::Answer { expires } => self.subscribe_ok(req, 200, expires, None),
            SubscribeDecision::Submit { key, duration } => {
                let op = Operation::Subscribe(Subscribe {
                    trans_id: self.trans_id(),
                    watcher,
                    target,
                    duration,
                });
                let outcome = self.submit_bounded(op).await;
                let answered =
                    self.lock()
                        .notifier
                        .core_answered(&key, outcome.status.code, now_secs());
                match answered {
                    Some((code, expires)) if (200..300).contains(&code) => {
                        self.subscribe_ok(req, code, expires, Some(&local_tag))
                    }
                    _ => outcome_reply(req, &outcome),
                }
            }
        }
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

    fn contact_header(&self) -> String {
        format!("<sip:gateway@{}>", self.hostport())
    }

    fn hostport(&self) -> String {
        self.wire.local_hostport()
    }

    fn subscribe_ok(&self, req: &Request, code: u16, expires: u32, tag: Option<&str>) -> Reply {
        build(
            Response::for_request_tagged(req, code, None, tag)
                .header(HeaderName::Expires, &expires.to_string())
                .header(HeaderName::Contact, &self.contact_header()),
        )
    }

    async fn on_publish(self: &Arc<Self>, req: &Request, src: &Source) -> Reply {
        let now = now_secs();
        let event = req.header(HeaderName::Event).map(|e| {
            e.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        if event.as_deref() != Some("presence") {
            return build(
                Response::for_request(req, 489, None).header(HeaderName::AllowEvents, "presence"),
            );
        }
        let presentity = match uri_address(req.uri_str()).filter(|a| a.user.is_some()) {
            Some(a) => a,
            None => match Self::to_address(req) {
                Ok(a) => a,
                Err(r) => return r,
            },
        };
        if !self.config.is_local_domain(&presentity.domain) {
            return reply(req, 403, Some("Not A Local Presentity"));
        }
        // PUBLISH always needs a local identity: the presentity's own user.
        match self.authenticate(req, src, &presentity, false, now) {
            Authn::Respond(r) => return r,
            Authn::User(_) | Authn::Trusted => {}
        }
        let from = match Self::from_address(req) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !identity::is_trusted(&self.config.trusted_peers, src.remote.ip())
            && !from.same_user(&presentity)
        {
            return reply(req, 403, Some("Publishing For Another User"));
        }
        let body = if req.body().is_empty() {
            None
        } else {
            let ct = req.content_type().unwrap_or("");
            if cpim_core::model::mime_essence(ct) != "application/pidf+xml" {
                return build(
                    Response::for_request(req, 415, None)
                        .header(HeaderName::Accept, "application/pidf+xml"),
                );
            }
            if let Err(e) = pidf::parse(req.body()) {
                return reply(req, 400, Some(&format!("Bad PIDF: {e}")));
            }
            Some((ct.to_owned(), req.body().to_vec()))
        };
        let aor = aor_of(&presentity);
        if req.header(HeaderName::SipIfMatch).is_none() {
            if let Some(r) = self.over_publication_cap(req, &aor) {
                return r;
            }
        }
        let preq = PublishRequest {
            aor: aor.clone(),
            if_match: req
                .header(HeaderName::SipIfMatch)
                .map(|s| s.trim().to_owned()),
            expires: req.expires(),
            body,
        };
        let result = self.lock().publications.handle_publish(preq, now, || {
            hex::encode(rand::thread_rng().gen::<[u8; 10]>())
        });
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                let (code, reason) = e.status();
                let mut b = Response::for_request(req, code, Some(reason));
                if let super::presence::publish::PublishError::IntervalTooBrief(m) = e {
                    b = b.header(HeaderName::MinExpires, &m.to_string());
                }
                return build(b);
            }
        };
        match &out.record {
            Some(rec) => {
                if let Err(e) = self
                    .store
                    .put_publication(out.replaced.as_deref(), rec)
                    .await
                {
                    tracing::warn!(error = %e, "could not persist publication");
                }
            }
            None => {
                if let Err(e) = self.store.remove_publication(&out.etag).await {
                    tracing::warn!(error = %e, "could not remove publication");
                }
            }
        }
        let outcome = self.submit_composed_publish(&aor, now).await;
        if !outcome.status.is_success() {
            if out.kind == PublishKind::Initial {
                // The core refused the state: do not keep it.
                self.lock().publications.remove(&out.etag);
                if let Err(e) = self.store.remove_publication(&out.etag).await {
                    tracing::warn!(error = %e, "could not remove publication");
                }
            }
            return outcome_reply(req, &outcome);
        }
        build(
            Response::for_request(req, 200, None)
                .header(HeaderName::SipEtag, &out.etag)
                .header(HeaderName::Expires, &out.expires.to_string()),
        )
    }

    /// Composes the live publications of `aor` into one presence and submits it.
    async fn submit_composed_publish(self: &Arc<Self>, aor: &str, now: u64) -> Outcome {
        let (presence, expires) = {
            let st = self.lock();
            compose(&st.publications.documents(aor, now))
        };
        let Some(presentity) = uri_address(aor) else {
            return Outcome::failure(TransId(0), 400, "bad AOR");
        };
        let op = Operation::Publish(Publish {
            trans_id: self.trans_id(),
            presentity,
            presence,
            expires,
        });
        self.submit_bounded(op).await
    }

    /// Submits to the core and waits at most `request_timeout` seconds (the SIP client
    /// gives up at Timer F anyway): a core that never answers becomes a 408, never a
    /// transaction left hanging.
    async fn submit_bounded(&self, op: Operation) -> Outcome {
        let tid = op.trans_id();
        let wait = std::time::Duration::from_secs(u64::from(self.config.request_timeout.max(1)));
        match tokio::time::timeout(wait, self.ingress.submit(ADAPTER_NAME, op)).await {
            Ok(o) => o,
            Err(_) => Outcome::failure(tid, 408, "Request Timeout"),
        }
    }

    fn on_notify(self: &Arc<Self>, req: &Request) -> Reply {
        let (Some(to_tag), Some(from_tag)) = (req.to_tag(), req.from_tag()) else {
            return reply(req, 481, Some("Subscription Does Not Exist"));
        };
        let presence = if req.body().is_empty() {
            None
        } else {
            match pidf::parse(req.body()) {
                Ok(p) => Some(p),
                Err(e) => return reply(req, 400, Some(&format!("Bad PIDF: {e}"))),
            }
        };
        let n = IncomingNotify {
            call_id: req.call_id().to_owned(),
            to_tag: to_tag.to_owned(),
            from_tag: from_tag.to_owned(),
            cseq: req.cseq().seq,
            event: req.header(HeaderName::Event).map(str::to_owned),
            subscription_state: req.header(HeaderName::SubscriptionState).map(str::to_owned),
            contact: req
                .contacts()
                .next()
                .and_then(Result::ok)
                .map(|c| c.uri.raw.to_owned()),
            presence,
        };
        let (code, reason) = self.lock().subscriber.handle_notify(n, now_secs());
        reply(req, code, Some(reason))
    }

    /// Hands the queued outputs of the notifier and subscriber, in order, to the outbox
    /// worker (see [`outbox_worker`]).
    pub fn drain_outputs(self: &Arc<Self>) {
        let rx = self
            .outbox_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            tokio::spawn(outbox_worker(Arc::downgrade(self), rx));
        }
        // Queue while holding the state lock, so concurrent drains keep the order in
        // which the machines produced their outputs (the send never blocks).
        let mut st = self.lock();
        while let Some(o) = st.notifier.poll_output() {
            let _ = self.outbox.send(Out::N(o));
        }
        while let Some(o) = st.subscriber.poll_output() {
            let _ = self.outbox.send(Out::S(o));
        }
    }

    async fn persist_dialog(&self, rec: &super::store::DialogRecord) {
        if let Err(e) = self.store.put_dialog(rec).await {
            tracing::warn!(error = %e, "could not persist dialog");
        }
    }

    async fn forget_dialog(&self, key: &str) {
        if let Err(e) = self.store.remove_dialog(key).await {
            tracing::warn!(error = %e, "could not remove dialog");
        }
    }

    async fn send_notify(&self, n: OutgoingNotify) -> u16 {
        let d = &n.dialog;
        let mut b = Request::builder(&Method::Notify, &d.remote_target)
            .header(HeaderName::MaxForwards, "70")
            .header(
                HeaderName::From,
                &format!("<{}>;tag={}", d.local_uri, d.local_tag),
            )
            .header(
                HeaderName::To,
                &format!(
                    "<{}>;tag={}",
                    d.remote_uri,
                    d.remote_tag.as_deref().unwrap_or("")
                ),
            )
            .header(HeaderName::CallId, &d.call_id)
            .header(HeaderName::CSeq, &format!("{} NOTIFY", d.local_cseq))
            .header(HeaderName::Contact, &self.contact_header())
            .header(HeaderName::Event, "presence")
            .header(HeaderName::SubscriptionState, &n.subscription_state);
        for r in &d.route_set {
            b = b.header(HeaderName::Route, r);
        }
        if let Some(mut p) = n.presence {
            if p.entity.is_none() {
                p.entity = Address::parse(&d.presentity)
                    .ok()
                    .map(|a| a.bare().with_scheme(Scheme::Pres));
            }
            match pidf::encode(&p) {
                Ok(xml) => b = b.body("application/pidf+xml", Bytes::from(xml)),
                Err(e) => tracing::warn!(error = %e, "PIDF encoding failed; NOTIFY without body"),
            }
        }
        let req = match b.build_request() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not build NOTIFY");
                return 500;
            }
        };
        let hop = match &d.flow {
            Some(f) if d.route_set.is_empty() => NextHop::Flow(f.clone()),
            _ => NextHop::Uri(first_hop(&d.route_set, &d.remote_target)),
        };
        match self.wire.send_request(req, hop).await {
            Ok(r) => r.code(),
            Err(WireError::Timeout) => 408,
            Err(_) => 503,
        }
    }

    /// Sends a SUBSCRIBE of the subscriber and feeds its response back; returns the code.
    async fn send_subscribe(&self, s: OutgoingSubscribe) -> u16 {
        let d = &s.dialog;
        let key = d.key();
        let mut to = format!("<{}>", d.remote_uri);
        if let Some(t) = &d.remote_tag {
            to.push_str(";tag=");
            to.push_str(t);
        }
        let mut out = OutRequest {
            method: Method::Subscribe,
            ruri: d.remote_target.clone(),
            from: format!("<{}>;tag={}", d.local_uri, d.local_tag),
            to,
            call_id: d.call_id.clone(),
            cseq: d.local_cseq,
            routes: d.route_set.clone(),
            headers: vec![
                (HeaderName::Event, "presence".into()),
                (HeaderName::Expires, s.expires.to_string()),
                (HeaderName::Accept, "application/pidf+xml".into()),
                (HeaderName::Contact, self.contact_header()),
            ],
            max_forwards: 70,
            body: None,
        };
        let hop = self.hop_for(&out.ruri, &d.route_set);
        let resp = self.send_authenticated(&mut out, hop).await;
        let now = now_secs();
        let (code, to_tag, contact, rr, expires) = match &resp {
            Ok(r) => (
                r.code(),
                r.to_tag().map(str::to_owned),
                r.contacts()
                    .next()
                    .and_then(Result::ok)
                    .map(|c| c.uri.raw.to_owned()),
                r.header_all(HeaderName::RecordRoute)
                    .flat_map(crate::codec::split_list)
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
                r.expires(),
            ),
            Err(WireError::Timeout) => (408, None, None, Vec::new(), None),
            Err(_) => (503, None, None, Vec::new(), None),
        };
        if out.cseq != d.local_cseq {
            // An authenticated retry used more CSeq numbers: keep the dialog in step.
            let mut st = self.lock();
            st.subscriber.bump_cseq(&key, out.cseq);
        }
        self.lock().subscriber.handle_response(
            &key,
            code,
            to_tag.as_deref(),
            contact.as_deref(),
            &rr,
            expires,
            now,
        )
    }

    fn hop_for(&self, ruri: &str, routes: &[String]) -> NextHop {
        if let Some(p) = &self.config.outbound_proxy {
            if routes.is_empty() {
                let t = p.transport.as_deref().unwrap_or("udp");
                return NextHop::Uri(format!("sip:{};transport={t};lr", p.address));
            }
        }
        NextHop::Uri(first_hop(routes, ruri))
    }

    /// Sends `out`; on 401/407 answers the challenge once with configured credentials.
    async fn send_authenticated(
        &self,
        out: &mut OutRequest,
        hop: NextHop,
    ) -> Result<Response, WireError> {
        let req = out
            .build(None)
            .map_err(|e| WireError::Transport(e.to_string()))?;
        let resp = self.wire.send_request(req, hop.clone()).await?;
        let (hdr_in, hdr_out) = match resp.code() {
            401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
            407 => (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            ),
            _ => return Ok(resp),
        };
        let challenge = resp
            .header_all(hdr_in)
            .filter_map(|h| Challenge::parse(h).ok())
            .find(|c| self.credential_for(&c.realm).is_some());
        let Some(challenge) = challenge else {
            return Ok(resp);
        };
        let Some(cred) = self.credential_for(&challenge.realm) else {
            return Ok(resp);
        };
        // Each challenge brings a fresh nonce; this is its first use.
        let nc = 1;
        let cnonce = hex::encode(rand::thread_rng().gen::<[u8; 8]>());
        let creds = digest::respond(
            &challenge,
            out.method.as_str(),
            &out.ruri,
            &cred.username,
            &cred.password,
            &cnonce,
            nc,
        );
        out.cseq += 1;
        let req = out
            .build(Some((hdr_out, creds.to_header())))
            .map_err(|e| WireError::Transport(e.to_string()))?;
        self.wire.send_request(req, hop).await
    }

    fn credential_for(&self, realm: &str) -> Option<&super::config::ClientCredential> {
        self.config
            .credentials
            .iter()
            .find(|c| c.realm.as_deref() == Some(realm))
            .or_else(|| self.config.credentials.iter().find(|c| c.realm.is_none()))
    }

    // ----- deliver -----

    /// Delivers a core operation to the SIP side.
    pub async fn deliver(self: &Arc<Self>, op: Operation) -> Outcome {
        let tid = op.trans_id();
        let out = match op {
            Operation::Message(m) => self.deliver_message(m).await,
            Operation::Subscribe(s) => self.deliver_subscribe(s).await,
            Operation::Unsubscribe(s) => self.deliver_unsubscribe(s).await,
            Operation::Notify(n) => {
                let reached = self.lock().notifier.handle_core_notify(&n, now_secs());
                if reached == 0 {
                    Outcome::failure(tid, 481, "Subscription Does Not Exist")
                } else {
                    Outcome::ok(tid)
                }
            }
            Operation::Publish(_) => Outcome::failure(tid, 501, "Publish is not delivered to SIP"),
            _ => Outcome::failure(tid, 501, "Not Implemented"),
        };
        self.drain_outputs();
        out
    }

    async fn deliver_message(self: &Arc<Self>, m: cpim_core::model::Message) -> Outcome {
        let tid = m.trans_id;
        let o = match message::outbound(&m, self.config.max_message_size) {
            Ok(o) => o,
            Err(r) => return Outcome::failure(tid, r.code, r.reason),
        };
        let call_id = o
            .call_id
            .clone()
            .unwrap_or_else(|| format!("{}@cpim", new_tag()));
        let from = format!("<{}>;tag={}", o.from, new_tag());
        let mut headers = vec![];
        if let Some(s) = &o.subject {
            headers.push((HeaderName::Subject, s.clone()));
        }
        let body = Some((o.content_type.clone(), Bytes::from(m.body.clone())));
        let make = |ruri: String| {
            OutRequest {
                method: Method::Message,
                ruri,
                from: from.clone(),
                to: format!("<{}>", o.to),
                call_id: call_id.clone(),
                cseq: self.next_cseq(),
                routes: Vec::new(),
                headers: headers.clone(),
                max_forwards: o.max_forwards,
                body: body.clone(),
            }
            .with_language(o.content_language.as_deref())
        };
        let dest = &m.destination;
        if self.config.is_local_domain(&dest.domain) && !self.config.proxy_mode() {
            // A user the configured user list does not have is not "temporarily"
            // unavailable: 404 (RFC 3261 s21.4.5), so nothing queues for it.
            if !self
                .config
                .user_exists(dest.user.as_deref().unwrap_or(""), &dest.domain)
            {
                return Outcome::failure(tid, 404, "Not Found");
            }
            let aor = aor_of(dest);
            let targets: Vec<(String, Option<String>)> = self
                .lock()
                .registrar
                .lookup(&aor, now_secs())
                .into_iter()
                .map(|b| (b.contact.clone(), b.flow.clone()))
                .collect();
            if targets.is_empty() {
                return Outcome::failure(tid, 480, "Temporarily Unavailable");
            }
            // Fork to every binding; the first 2xx wins (RFC 3261 s16.7 simplified:
            // otherwise the lowest failure code, a 6xx first).
            let mut set = tokio::task::JoinSet::new();
            for (contact, flow) in targets {
                let this = Arc::clone(self);
                let mut req = make(contact.clone());
                set.spawn(async move {
                    let hop = match flow {
                        Some(f) => NextHop::Flow(f),
                        None => NextHop::Uri(contact),
                    };
                    this.send_authenticated(&mut req, hop).await
                });
            }
            let mut best: Option<(u16, String)> = None;
            while let Some(res) = set.join_next().await {
                let (code, reason) = match res {
                    Ok(Ok(r)) => (r.code(), r.reason().to_owned()),
                    Ok(Err(WireError::Timeout)) => (408, "Request Timeout".to_owned()),
                    Ok(Err(e)) => (503, e.to_string()),
                    Err(_) => (500, "Server Internal Error".to_owned()),
                };
                if (200..300).contains(&code) {
                    set.abort_all();
                    return Outcome {
                        trans_id: tid,
                        status: cpim_core::model::Status::new(code, reason),
                    };
                }
                let better = match &best {
                    None => true,
                    Some((b, _)) => {
                        (code >= 600 && *b < 600) || (code < *b && (*b < 600 || code >= 600))
                    }
                };
                if better {
                    best = Some((code, reason));
                }
            }
            let (code, reason) = best.unwrap_or((480, "Temporarily Unavailable".into()));
            return Outcome::failure(tid, code, reason);
        }
        let mut req = make(o.to.clone());
        let hop = self.hop_for(&o.to, &[]);
        match self.send_authenticated(&mut req, hop).await {
            Ok(r) => Outcome {
                trans_id: tid,
                status: cpim_core::model::Status::new(r.code(), r.reason()),
            },
            Err(WireError::Timeout) => Outcome::failure(tid, 408, "Request Timeout"),
            Err(e) => Outcome::failure(tid, 503, e.to_string()),
        }
    }

    async fn deliver_subscribe(self: &Arc<Self>, s: Subscribe) -> Outcome {
        let tid = s.trans_id;
        let now = now_secs();
        if self.config.is_local_domain(&s.target.domain) && !self.config.proxy_mode() {
            // A presentity of our own domain: its state is what it PUBLISHed here.
            let (presence, _) = {
                let st = self.lock();
                compose(&st.publications.documents(&aor_of(&s.target), now))
            };
            let this = Arc::clone(self);
            let n = Notify {
                trans_id: self.trans_id(),
                watcher: s.watcher.clone(),
                target: s.target.clone(),
                state: SubscriptionState::Active {
                    expires: s.duration,
                },
                presence: Some(presence),
            };
            tokio::spawn(async move {
                let _ = this.submit_bounded(Operation::Notify(n)).await;
            });
            return Outcome::ok(tid);
        }
        let limits = &self.config.subscription;
        let duration = if s.duration == 0 {
            0
        } else {
            s.duration.clamp(limits.min, limits.max)
        };
        let local_uri = message::sip_uri(&s.watcher.bare());
        let target_uri = message::sip_uri(&s.target.bare());
        let key = self.lock().subscriber.subscribe(
            s.watcher,
            s.target,
            local_uri,
            target_uri,
            duration,
            format!("{}@cpim", new_tag()),
            new_tag(),
            now,
        );
        // The SUBSCRIBE just queued: send it here so the outcome is its response.
        let first = self.take_subscribe(&key);
        let code = match first {
            Some(sub) => self.send_subscribe(sub).await,
            None => 500,
        };
        self.drain_outputs();
        if (200..300).contains(&code) {
            Outcome::ok(tid)
        } else {
            Outcome::failure(tid, code, crate::codec::reason_phrase(code))
        }
    }

    /// Takes the queued SUBSCRIBE of dialog `key` out of the subscriber's output queue,
    /// leaving the other outputs in order.
    fn take_subscribe(&self, key: &str) -> Option<OutgoingSubscribe> {
        let mut st = self.lock();
        let all: Vec<SubscriberOutput> =
            std::iter::from_fn(|| st.subscriber.poll_output()).collect();
        let mut found = None;
        for o in all {
            match o {
                SubscriberOutput::Subscribe(s) if found.is_none() && s.dialog.key() == key => {
                    found = Some(s);
                }
                other => st.subscriber.requeue(other),
            }
        }
        found
    }

    async fn deliver_unsubscribe(self: &Arc<Self>, s: Subscribe) -> Outcome {
        let tid = s.trans_id;
        // Without a subscription there is nothing to end: still a success (the
        // watcher's wish is fulfilled), as RFC 8048 s5 unsubscribe handling expects.
        let _found = self.lock().subscriber.unsubscribe(&s.watcher, &s.target);
        self.drain_outputs();
        Outcome::ok(tid)
    }

    /// (notifier subscriptions, gateway subscriptions): for metrics and tests.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.notifier.len(), st.subscriber.len())
    }
}

/// The first hop of a request: the first Route if any (loose routing), else the target.
fn first_hop(routes: &[String], target: &str) -> String {
    routes
        .first()
        .map(|r| {
            r.trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| target.to_owned())
}

/// Merges the documents of a presentity: tuples of all, the first person, all notes.
///
/// Tuple ids stay unique (PIDF's `id` is an `xs:ID`, RFC 3863 s4.1.2): when two
/// publications carry a tuple with the same id, the one of the publication refreshed or
/// modified last (latest expiry) wins. baresip 1.0, for one, sends two initial PUBLISHes
/// at start-up and then modifies only one of them, so without this its "closed" sat next
/// to a stale "open" under the same id.
fn compose(docs: &[(&super::store::PublicationRecord, u32)]) -> (Presence, u32) {
    let mut out = Presence::default();
    let mut expires = 0;
    let mut docs: Vec<_> = docs.iter().collect();
    docs.sort_by_key(|(rec, _)| rec.expires_at);
    for (rec, left) in docs {
        expires = expires.max(*left);
        let Ok(p) = pidf::parse(&rec.body) else {
            continue;
        };
        if out.entity.is_none() {
            out.entity = p.entity;
        }
        for t in p.tuples {
            match out.tuples.iter_mut().find(|o| o.id == t.id) {
                Some(old) => *old = t,
                None => out.tuples.push(t),
            }
        }
        if out.person.is_none() {
            out.person = p.person;
        }
        out.notes.extend(p.notes);
        out.extensions.extend(p.extensions);
    }
    (out, expires)
}

/// The SIP final response for a core outcome: its code and reason (2xx as given: 200 or
/// 202).
fn outcome_reply(req: &Request, o: &Outcome) -> Reply {
    let code = if (200..700).contains(&o.status.code) {
        o.status.code
    } else {
        500
    };
    let reason = if o.status.reason.is_empty() {
        None
    } else {
        Some(o.status.reason.as_str())
    };
    reply(req, code, reason)
}

/// An outgoing request, kept in parts so a challenged one can be rebuilt.
#[derive(Clone, Debug)]
struct OutRequest {
    method: Method,
    ruri: String,
    from: String,
    to: String,
    call_id: String,
    cseq: u32,
    routes: Vec<String>,
    headers: Vec<(HeaderName, String)>,
    max_forwards: u8,
    body: Option<(String, Bytes)>,
}

impl OutRequest {
    fn with_language(mut self, lang: Option<&str>) -> Self {
        if let Some(l) = lang {
            self.headers.push((HeaderName::Other, l.to_owned()));
        }
        self
    }

    fn build(
        &self,
        auth: Option<(HeaderName, String)>,
    ) -> Result<Request, crate::codec::ParseError> {
        let mut b = Request::builder(&self.method, &self.ruri)
            .header(HeaderName::MaxForwards, &self.max_forwards.to_string())
            .header(HeaderName::From, &self.from)
            .header(HeaderName::To, &self.to)
            .header(HeaderName::CallId, &self.call_id)
            .header(
                HeaderName::CSeq,
                &format!("{} {}", self.cseq, self.method.as_str()),
            );
        for r in &self.routes {
            b = b.header(HeaderName::Route, r);
        }
        for (n, v) in &self.headers {
            b = match n {
                HeaderName::Other => b.header("Content-Language", v),
                n => b.header(*n, v),
            };
        }
        if let Some((n, v)) = auth {
            b = b.header(n, &v);
        }
        if let Some((ct, body)) = &self.body {
            b = b.body(ct, body.clone());
        }
        b.build_request()
    }
}

#[cfg(test)]
mod compose_tests {
    use super::compose;
    use crate::app::store::PublicationRecord;
    use cpim_core::presence::Basic;

    fn rec(etag: &str, expires_at: u64, basic: &str, tuple: &str) -> PublicationRecord {
        PublicationRecord {
            etag: etag.into(),
            aor: "sip:alice@sip.test".into(),
            expires_at,
            content_type: "application/pidf+xml".into(),
            body: format!(
                "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:alice@sip.test\">\
                 <tuple id=\"{tuple}\"><status><basic>{basic}</basic></status></tuple></presence>"
            )
            .into_bytes(),
        }
    }

    /// Two publications with the same tuple id: one tuple in the result, from the
    /// publication modified last, whatever the order of the entity tags.
    #[test]
    fn same_tuple_id_keeps_the_latest_publication() {
        let stale = rec("zz-first", 100, "open", "t1");
        let fresh = rec("aa-second", 160, "closed", "t1");
        for docs in [
            vec![(&stale, 40), (&fresh, 100)],
            vec![(&fresh, 100), (&stale, 40)],
        ] {
            let (p, expires) = compose(&docs);
            assert_eq!(p.tuples.len(), 1, "{p:?}");
            assert_eq!(p.tuples[0].basic, Some(Basic::Closed));
            assert_eq!(expires, 100);
        }
        // Different ids are all kept.
        let other = rec("mm", 120, "open", "t2");
        let (p, _) = compose(&[(&stale, 40), (&other, 60)]);
        assert_eq!(p.tuples.len(), 2);
    }
}
