//! The transaction user of the SIP adapter driven in process: requests built with the
//! codec go into `Tu::handle_request`, a fake transaction layer records what the TU sends
//! and answers it, a fake `Ingress` plays the core. No sockets, no sleeps beyond letting
//! spawned tasks run.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{BoxFuture, Ingress};
use cpim_core::address::Address;
use cpim_core::model::{
    Message, Notify, Operation, Outcome, Subscribe, SubscriptionState, TransId,
};
use cpim_core::presence::{Basic, Presence, Tuple};
use cpim_sip::app::config::{ClientCredential, SipConfig, SipUser};
use cpim_sip::app::digest::{self, Challenge};
use cpim_sip::app::store::{MemoryStore, SipStore};
use cpim_sip::app::tu::{NextHop, Source, Tu, Wire, WireError};
use cpim_sip::codec::{HeaderName, Method, Request, Response};

#[derive(Default)]
struct FakeIngress {
    ops: Mutex<Vec<Operation>>,
}

/// Plays the core: 404 for user `nobody`, and, as the router does, 483 for a message
/// with no hops left (the adapter only translates Max-Forwards).
impl Ingress for FakeIngress {
    fn submit(&self, _adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let tid = op.trans_id();
        let (code, reason) = match (&op, op.destination()) {
            (Operation::Message(m), _) if m.hops_left == 0 => (483, "Too Many Hops"),
            (_, Some(d)) if d.user.as_deref() == Some("nobody") => (404, "Not Found"),
            _ => (200, "OK"),
        };
        self.ops.lock().unwrap().push(op);
        Box::pin(async move {
            if code == 200 {
                Outcome::ok(tid)
            } else {
                Outcome::failure(tid, code, reason)
            }
        })
    }
}

type Responder = Box<dyn Fn(&Request) -> (u16, Vec<(HeaderName, String)>) + Send + Sync>;

struct FakeWire {
    sent: Mutex<Vec<(Request, NextHop)>>,
    answer: Mutex<VecDeque<Responder>>,
}

impl FakeWire {
    fn new() -> Arc<FakeWire> {
        Arc::new(FakeWire {
            sent: Mutex::new(Vec::new()),
            answer: Mutex::new(VecDeque::new()),
        })
    }
    fn sent(&self) -> Vec<(Request, NextHop)> {
        self.sent.lock().unwrap().clone()
    }
}

impl Wire for FakeWire {
    fn send_request(
        &self,
        req: Request,
        hop: NextHop,
    ) -> BoxFuture<'_, Result<Response, WireError>> {
        let responder = self.answer.lock().unwrap().pop_front();
        let (code, headers) = match &responder {
            Some(f) => f(&req),
            None => (200, Vec::new()),
        };
        self.sent.lock().unwrap().push((req.clone(), hop));
        Box::pin(async move {
            if code == 408 {
                return Err(WireError::Timeout);
            }
            let mut b = Response::for_request_tagged(&req, code, None, Some("remote1"));
            for (n, v) in headers {
                b = b.header(n, &v);
            }
            Ok(b.build_response().unwrap())
        })
    }

    fn local_hostport(&self) -> String {
        "127.0.0.1:5060".into()
    }
}

fn config() -> SipConfig {
    SipConfig {
        domains: vec!["sip.test".into()],
        trusted_peers: vec!["127.0.0.9".parse().unwrap()],
        users: vec![
            SipUser {
                username: "alice".into(),
                password: Some("wonderland".into()),
                ..Default::default()
            },
            SipUser {
                username: "bob".into(),
                ha1: Some(digest::ha1(
                    digest::Algorithm::Md5,
                    "bob",
                    "sip.test",
                    "builder",
                )),
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

struct Harness {
    tu: Arc<Tu>,
    ingress: Arc<FakeIngress>,
    wire: Arc<FakeWire>,
    store: Arc<MemoryStore>,
}

fn harness_with(config: SipConfig, store: Arc<MemoryStore>) -> Harness {
    let ingress = Arc::new(FakeIngress::default());
    let wire = FakeWire::new();
    let tu = Arc::new(Tu::new(
        config,
        ingress.clone(),
        store.clone(),
        wire.clone(),
    ));
    Harness {
        tu,
        ingress,
        wire,
        store,
    }
}

fn harness() -> Harness {
    harness_with(config(), Arc::new(MemoryStore::new()))
}

fn src(port: u16) -> Source {
    Source {
        transport: "udp".into(),
        remote: SocketAddr::from(([127, 0, 0, 1], port)),
        verified_names: Vec::new(),
        connection: None,
    }
}

/// The same over TCP (a connection the peer completed a handshake on; one connection
/// per port here).
fn tcp(port: u16) -> Source {
    Source {
        transport: "tcp".into(),
        connection: Some(u64::from(port)),
        ..src(port)
    }
}

/// The trusted peer (`trusted_peers` in [`config`]) that speaks for `other.test`.
fn peer(port: u16) -> Source {
    Source {
        remote: SocketAddr::from(([127, 0, 0, 9], port)),
        ..src(port)
    }
}

struct Req {
    method: Method,
    ruri: String,
    from: String,
    to: String,
    call_id: String,
    cseq: u32,
    headers: Vec<(HeaderName, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl Req {
    fn new(method: Method, ruri: &str, from: &str, to: &str) -> Req {
        Req {
            method,
            ruri: ruri.into(),
            from: format!("<{from}>;tag=ft1"),
            to: format!("<{to}>"),
            call_id: "call-1".into(),
            cseq: 1,
            headers: Vec::new(),
            body: None,
        }
    }
    fn h(mut self, n: HeaderName, v: &str) -> Req {
        self.headers.push((n, v.into()));
        self
    }
    fn body(mut self, ct: &str, b: &[u8]) -> Req {
        self.body = Some((ct.into(), b.to_vec()));
        self
    }
    fn build(&self) -> Request {
        let mut b = Request::builder(&self.method, &self.ruri)
            .header(
                HeaderName::Via,
                "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKtest",
            )
            .header(HeaderName::MaxForwards, "70")
            .header(HeaderName::From, &self.from)
            .header(HeaderName::To, &self.to)
            .header(HeaderName::CallId, &self.call_id)
            .header(
                HeaderName::CSeq,
                &format!("{} {}", self.cseq, self.method.as_str()),
            );
        for (n, v) in &self.headers {
            b = b.header(*n, v);
        }
        if let Some((ct, body)) = &self.body {
            b = b.body(ct, body.clone());
        }
        b.build_request().unwrap()
    }
}

/// Lets spawned output tasks run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Sends `r`; if challenged, answers with `user`/`password` and sends again.
async fn with_auth(h: &Harness, r: Req, user: &str, password: &str, port: u16) -> Response {
    with_auth_from(h, r, user, password, src(port)).await
}

async fn with_auth_from(
    h: &Harness,
    mut r: Req,
    user: &str,
    password: &str,
    from: Source,
) -> Response {
    let resp = h.tu.handle_request(r.build(), from.clone()).await.unwrap();
    if resp.code() != 401 {
        return resp;
    }
    // Bob's secret is an MD5 HA1: he answers the MD5 challenge (RFC 8760 s2.4: the UA
    // uses the first algorithm it supports).
    let want = if user == "bob" { "MD5" } else { "SHA-256" };
    let ch = resp
        .header_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .find(|c| c.algorithm.as_str() == want)
        .unwrap();
    let creds = digest::respond(&ch, r.method.as_str(), &r.ruri, user, password, "cn0nce", 1);
    r.cseq += 1;
    r = r.h(HeaderName::Authorization, &creds.to_header());
    h.tu.handle_request(r.build(), from).await.unwrap()
}

fn register(contact: &str, expires: &str) -> Req {
    Req::new(
        Method::Register,
        "sip:sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Contact, contact)
    .h(HeaderName::Expires, expires)
}

/// RFC 3261 s22 / RFC 8760: REGISTER is challenged (SHA-256 first, then MD5), then
/// accepted; the 200 lists the binding; the store holds it.
#[tokio::test]
async fn register_challenge_then_accept_and_persist() {
    let h = harness();
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    let first = h.tu.handle_request(r.build(), src(5070)).await.unwrap();
    assert_eq!(first.code(), 401);
    let algs: Vec<String> = first
        .header_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap().algorithm.as_str().to_owned())
        .collect();
    assert_eq!(algs, vec!["SHA-256", "MD5"]);
    let ok = with_auth(&h, r, "alice", "wonderland", 5070).await;
    assert_eq!(ok.code(), 200);
    let contact = ok.header(HeaderName::Contact).unwrap();
    assert!(
        contact.contains("sip:alice@127.0.0.1:5070") && contact.contains("expires=600"),
        "{contact}"
    );
    let stored = h.store.load_bindings().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].authenticated_user.as_deref(), Some("alice"));
    // Wrong password: challenged again, nothing stored for bob.
    let r = Req::new(
        Method::Register,
        "sip:sip.test",
        "sip:bob@sip.test",
        "sip:bob@sip.test",
    )
    .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    let resp = with_auth(&h, r, "bob", "wrong", 5080).await;
    assert_eq!(resp.code(), 401);
    // Bob's HA1 (MD5) works when he answers the MD5 challenge.
    let r = Req::new(
        Method::Register,
        "sip:sip.test",
        "sip:bob@sip.test",
        "sip:bob@sip.test",
    )
    .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    let first = h.tu.handle_request(r.build(), src(5080)).await.unwrap();
    let md5 = first
        .header_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .find(|c| c.algorithm == digest::Algorithm::Md5)
        .unwrap();
    let creds = digest::respond(&md5, "REGISTER", "sip:sip.test", "bob", "builder", "x", 1);
    let mut r = r;
    r.cseq = 2;
    let r = r.h(HeaderName::Authorization, &creds.to_header());
    assert_eq!(
        h.tu.handle_request(r.build(), src(5080))
            .await
            .unwrap()
            .code(),
        200
    );
}

/// Alice authenticated as alice cannot register bob's AOR (403), and 423 carries
/// Min-Expires.
#[tokio::test]
async fn register_identity_and_min_expires() {
    let h = harness();
    let r = Req::new(
        Method::Register,
        "sip:sip.test",
        "sip:bob@sip.test",
        "sip:bob@sip.test",
    )
    .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    assert_eq!(
        with_auth(&h, r, "alice", "wonderland", 5070).await.code(),
        403
    );
    let r = register("<sip:alice@127.0.0.1:5070>", "5");
    let resp = with_auth(&h, r, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 423);
    assert_eq!(resp.header(HeaderName::MinExpires), Some("60"));
}

/// RFC 3428 + RFC 7572: MESSAGE from a local user needs authentication; once
/// authenticated the core gets the mapped message, and its outcome becomes the answer.
#[tokio::test]
async fn message_in_authenticated_mapped_and_outcome_mapped() {
    let h = harness();
    let m = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:alice@sip.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Subject, "greeting")
    .body("text/plain;charset=UTF-8", b"Hello Romeo");
    let resp = with_auth(&h, m, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 200);
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Operation::Message(msg) = &ops[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(msg.source.to_string(), "sip:alice@sip.test");
        assert_eq!(msg.destination.to_string(), "sip:romeo@xmpp.test");
        assert_eq!(msg.body, b"Hello Romeo");
        assert_eq!(msg.subject.as_deref(), Some("greeting"));
        // Max-Forwards 70 as it came: the router counts the hop.
        assert_eq!(msg.hops_left, 70);
    }
    // The core says 404: so does the SIP answer.
    let m = Req::new(
        Method::Message,
        "sip:nobody@xmpp.test",
        "sip:alice@sip.test",
        "sip:nobody@xmpp.test",
    )
    .body("text/plain", b"anyone?");
    assert_eq!(
        with_auth(&h, m, "alice", "wonderland", 5070).await.code(),
        404
    );
    // Max-Forwards 0 from the trusted peer: hops_left 0 for the core, whose 483 is the
    // answer.
    let req = Request::builder(&Method::Message, "sip:romeo@xmpp.test")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKmf0",
        )
        .header(HeaderName::MaxForwards, "0")
        .header(HeaderName::From, "<sip:carol@other.test>;tag=a")
        .header(HeaderName::To, "<sip:romeo@xmpp.test>")
        .header(HeaderName::CallId, "mf0")
        .header(HeaderName::CSeq, "1 MESSAGE")
        .body("text/plain", &b"loop"[..])
        .build_request()
        .unwrap();
    assert_eq!(
        h.tu.handle_request(req, peer(5090)).await.unwrap().code(),
        483
    );
    let ops = h.ingress.ops.lock().unwrap();
    assert!(
        matches!(ops.last(), Some(Operation::Message(m)) if m.hops_left == 0),
        "{ops:?}"
    );
}

/// No forging: a MESSAGE claiming a local user is challenged; authenticating as another
/// user gets 403; a TCP flow the same user registered on is trusted without digest, a UDP
/// one never (issue 10: a UDP source address is no identity).
#[tokio::test]
async fn message_forging_refused_and_registered_flow_trusted() {
    let h = harness();
    let m = || {
        Req::new(
            Method::Message,
            "sip:romeo@xmpp.test",
            "sip:alice@sip.test",
            "sip:romeo@xmpp.test",
        )
        .body("text/plain", b"hi")
    };
    assert_eq!(
        h.tu.handle_request(m().build(), src(5070))
            .await
            .unwrap()
            .code(),
        401
    );
    let r = Req::new(
        Method::Register,
        "sip:sip.test",
        "sip:bob@sip.test",
        "sip:bob@sip.test",
    )
    .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    assert_eq!(with_auth(&h, r, "bob", "builder", 5080).await.code(), 200);
    // Bob authenticates but claims to be alice.
    assert_eq!(with_auth(&h, m(), "bob", "builder", 5080).await.code(), 403);
    // Alice registers from UDP 5070: her MESSAGE from that address and port is still
    // challenged (anyone can send from it) and reaches no one.
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(
        with_auth(&h, r, "alice", "wonderland", 5070).await.code(),
        200
    );
    let before = h.ingress.ops.lock().unwrap().len();
    assert_eq!(
        h.tu.handle_request(m().build(), src(5070))
            .await
            .unwrap()
            .code(),
        401
    );
    assert_eq!(
        h.ingress.ops.lock().unwrap().len(),
        before,
        "nothing relayed"
    );
    // Over a TCP connection she registered on with digest, no digest is needed.
    let mut r = register("<sip:alice@127.0.0.1:5072;transport=tcp>", "600");
    r.call_id = "reg-tcp".into();
    assert_eq!(
        with_auth_from(&h, r, "alice", "wonderland", tcp(5072))
            .await
            .code(),
        200
    );
    assert_eq!(
        h.tu.handle_request(m().build(), tcp(5072))
            .await
            .unwrap()
            .code(),
        200
    );
    // The same claim from another port, or over UDP from that port, is challenged.
    assert_eq!(
        h.tu.handle_request(m().build(), tcp(5071))
            .await
            .unwrap()
            .code(),
        401
    );
    assert_eq!(
        h.tu.handle_request(m().build(), src(5072))
            .await
            .unwrap()
            .code(),
        401
    );
    // A user of another domain is not challenged when a trusted peer speaks for it (the
    // router checks cross-domain forging); from anyone else, 403 (RFC 5922).
    let other = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .body("text/plain", b"hi");
    let r = h.tu.handle_request(other.build(), src(6000)).await.unwrap();
    assert_eq!((r.code(), r.reason()), (403, "Foreign Domain Not Trusted"));
    assert_eq!(
        h.tu.handle_request(other.build(), peer(6000))
            .await
            .unwrap()
            .code(),
        200
    );
}

/// deliver(Message) to a local user forks to its bindings; the first 2xx wins.
#[tokio::test]
async fn deliver_message_forks_to_bindings() {
    let h = harness();
    for (i, port) in [5070u16, 5071].iter().enumerate() {
        let mut r = register(&format!("<sip:alice@127.0.0.1:{port}>"), "600");
        r.call_id = format!("reg-{i}");
        assert_eq!(
            with_auth(&h, r, "alice", "wonderland", *port).await.code(),
            200
        );
    }
    h.wire
        .answer
        .lock()
        .unwrap()
        .push_back(Box::new(|_| (480, vec![])));
    h.wire
        .answer
        .lock()
        .unwrap()
        .push_back(Box::new(|_| (200, vec![])));
    let mut m = Message::new(
        TransId(9),
        Address::parse("romeo@xmpp.test/balcony").unwrap(),
        Address::parse("sip:alice@sip.test").unwrap(),
        "message/cpim",
        b"From: <im:romeo@xmpp.test>\r\n\r\nContent-Type: text/plain\r\n\r\nhi".to_vec(),
    );
    m.subject = Some("s".into());
    let out = h.tu.deliver(Operation::Message(m)).await;
    assert_eq!(out.status.code, 200, "{out:?}");
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 2);
    for (req, hop) in &sent {
        assert_eq!(req.method(), &Method::Message);
        assert!(matches!(hop, NextHop::Flow(f) if f.starts_with("udp:127.0.0.1:507")));
        assert_eq!(req.content_type(), Some("message/cpim"));
        assert!(req.body().starts_with(b"From: <im:romeo@xmpp.test>"));
        assert!(req
            .header(HeaderName::From)
            .unwrap()
            .contains("sip:romeo@xmpp.test;gr=balcony"));
    }
    // No binding: 480.
    let m = Message::new(
        TransId(10),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:bob@sip.test").unwrap(),
        "text/plain",
        b"x".to_vec(),
    );
    assert_eq!(h.tu.deliver(Operation::Message(m)).await.status.code, 480);
}

/// Out of domain: through the proxy; a 407 is answered with configured credentials; a
/// timeout becomes 408.
#[tokio::test]
async fn deliver_message_remote_with_proxy_auth_and_timeout() {
    let mut c = config();
    c.remote_domains = vec!["kamailio.test".into()];
    c.outbound_proxy = Some(cpim_sip::app::config::OutboundProxy {
        address: "127.0.0.1:5090".into(),
        transport: Some("udp".into()),
    });
    c.credentials = vec![ClientCredential {
        realm: Some("kamailio.test".into()),
        username: "gw".into(),
        password: "secret".into(),
    }];
    let h = harness_with(c, Arc::new(MemoryStore::new()));
    h.wire.answer.lock().unwrap().push_back(Box::new(|_| {
        (
            407,
            vec![(
                HeaderName::ProxyAuthenticate,
                "Digest realm=\"kamailio.test\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256"
                    .into(),
            )],
        )
    }));
    h.wire
        .answer
        .lock()
        .unwrap()
        .push_back(Box::new(|req: &Request| {
            let v = req.header(HeaderName::ProxyAuthorization).unwrap_or("");
            let c = digest::Credentials::parse(v).unwrap();
            let expected = digest::response(
                c.algorithm,
                &digest::ha1(c.algorithm, "gw", "kamailio.test", "secret"),
                "abc",
                Some((c.nc.as_deref().unwrap(), c.cnonce.as_deref().unwrap())),
                "MESSAGE",
                &c.uri,
            );
            (if expected == c.response { 202 } else { 403 }, vec![])
        }));
    let m = Message::new(
        TransId(1),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:carol@kamailio.test").unwrap(),
        "text/plain",
        b"hi".to_vec(),
    );
    let out = h.tu.deliver(Operation::Message(m.clone())).await;
    assert_eq!(out.status.code, 202);
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].1,
        NextHop::Uri("sip:127.0.0.1:5090;transport=udp;lr".into())
    );
    assert_eq!(sent[0].0.uri_str(), "sip:carol@kamailio.test");
    assert!(sent[1].0.cseq().seq > sent[0].0.cseq().seq);
    h.wire
        .answer
        .lock()
        .unwrap()
        .push_back(Box::new(|_| (408, vec![])));
    assert_eq!(h.tu.deliver(Operation::Message(m)).await.status.code, 408);
}

fn pidf(entity: &str, basic: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\"><tuple id=\"t1\"><status><basic>{basic}</basic></status></tuple></presence>"
    )
    .into_bytes()
}

/// RFC 3903: initial PUBLISH gets an ETag, refresh with SIP-If-Match and no body gets a
/// new one, an unknown ETag gets 412, removal with Expires: 0; each reaches the core as
/// a Publish.
#[tokio::test]
async fn publish_etag_lifecycle() {
    let h = harness();
    let p = Req::new(
        Method::Publish,
        "sip:alice@sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Expires, "600")
    .body("application/pidf+xml", &pidf("pres:alice@sip.test", "open"));
    let resp = with_auth(&h, p, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 200);
    let etag = resp.header(HeaderName::SipEtag).unwrap().to_owned();
    assert_eq!(resp.expires(), Some(600));
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Operation::Publish(p) = ops.last().unwrap() else {
            panic!()
        };
        assert!(p.presence.is_available());
        assert_eq!(p.expires, 600);
    }
    let refresh = Req::new(
        Method::Publish,
        "sip:alice@sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::SipIfMatch, &etag)
    .h(HeaderName::Expires, "600");
    let resp = with_auth(&h, refresh, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 200);
    let etag2 = resp.header(HeaderName::SipEtag).unwrap().to_owned();
    assert_ne!(etag, etag2);
    let stale = Req::new(
        Method::Publish,
        "sip:alice@sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::SipIfMatch, &etag);
    assert_eq!(
        with_auth(&h, stale, "alice", "wonderland", 5070)
            .await
            .code(),
        412
    );
    let remove = Req::new(
        Method::Publish,
        "sip:alice@sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::SipIfMatch, &etag2)
    .h(HeaderName::Expires, "0");
    assert_eq!(
        with_auth(&h, remove, "alice", "wonderland", 5070)
            .await
            .code(),
        200
    );
    let ops = h.ingress.ops.lock().unwrap();
    let Operation::Publish(p) = ops.last().unwrap() else {
        panic!()
    };
    assert!(p.presence.tuples.is_empty());
    assert_eq!(p.expires, 0);
    assert!(h
        .store
        .load_publications()
        .now_or_never()
        .unwrap()
        .unwrap()
        .is_empty());
}

trait NowOrNever: std::future::Future + Sized {
    fn now_or_never(self) -> Option<Self::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(self);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
impl<F: std::future::Future> NowOrNever for F {}

/// PUBLISH with another event package: 489; for another user: 403; short: 423.
#[tokio::test]
async fn publish_refusals() {
    let h = harness();
    let p = Req::new(
        Method::Publish,
        "sip:alice@sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Event, "dialog")
    .body("application/pidf+xml", &pidf("pres:alice@sip.test", "open"));
    assert_eq!(
        h.tu.handle_request(p.build(), src(5070))
            .await
            .unwrap()
            .code(),
        489
    );
    let p = Req::new(
        Method::Publish,
        "sip:alice@sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Expires, "1")
    .body("application/pidf+xml", &pidf("pres:alice@sip.test", "open"));
    let r = with_auth(&h, p, "alice", "wonderland", 5070).await;
    assert_eq!(r.code(), 423);
    assert_eq!(r.header(HeaderName::MinExpires), Some("60"));
    let p = Req::new(
        Method::Publish,
        "sip:alice@sip.test",
        "sip:bob@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Event, "presence")
    .body("application/pidf+xml", &pidf("pres:alice@sip.test", "open"));
    assert_eq!(with_auth(&h, p, "bob", "builder", 5080).await.code(), 403);
}

/// RFC 6665 / RFC 3856 notifier: SUBSCRIBE creates a dialog, the core gets Subscribe,
/// 200 with To-tag, immediate NOTIFY; a core Notify becomes a NOTIFY with a PIDF body;
/// unsubscribe ends it and tells the core; unknown event: 489.
#[tokio::test]
async fn subscribe_notify_unsubscribe() {
    let h = harness();
    let bad = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "dialog")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    assert_eq!(
        h.tu.handle_request(bad.build(), peer(6000))
            .await
            .unwrap()
            .code(),
        489
    );
    let s = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Expires, "600")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    let resp = h.tu.handle_request(s.build(), peer(6000)).await.unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(resp.expires(), Some(600));
    let tag = resp.to_tag().unwrap().to_owned();
    settle().await;
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Operation::Subscribe(sub) = &ops[0] else {
            panic!()
        };
        assert_eq!(sub.duration, 600);
        assert_eq!(sub.target.to_string(), "sip:romeo@xmpp.test");
    }
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 1, "immediate NOTIFY");
    let n = &sent[0].0;
    assert_eq!(n.method(), &Method::Notify);
    assert_eq!(n.uri_str(), "sip:carol@127.0.0.1:6000");
    assert_eq!(n.from_tag(), Some(tag.as_str()));
    assert_eq!(
        n.header(HeaderName::SubscriptionState),
        Some("active;expires=600")
    );
    // The core sends presence.
    let notify = Notify {
        trans_id: TransId(5),
        watcher: Address::parse("sip:carol@other.test").unwrap(),
        target: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
        state: SubscriptionState::Active { expires: 600 },
        presence: Some(Presence {
            tuples: vec![Tuple {
                id: "r1".into(),
                basic: Some(Basic::Open),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    assert_eq!(
        h.tu.deliver(Operation::Notify(notify.clone()))
            .await
            .status
            .code,
        200
    );
    settle().await;
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 2);
    let n = &sent[1].0;
    assert_eq!(n.cseq().seq, 2);
    assert_eq!(n.content_type(), Some("application/pidf+xml"));
    let body = std::str::from_utf8(n.body()).unwrap();
    assert!(body.contains("<basic>open</basic>"), "{body}");
    assert!(body.contains("entity=\"pres:romeo@xmpp.test\""), "{body}");
    // Unsubscribe in dialog.
    let mut u = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Expires, "0")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    u.to = format!("<sip:romeo@xmpp.test>;tag={tag}");
    u.cseq = 2;
    let resp = h.tu.handle_request(u.build(), peer(6000)).await.unwrap();
    assert_eq!(resp.code(), 200);
    settle().await;
    let sent = h.wire.sent();
    assert!(sent[2]
        .0
        .header(HeaderName::SubscriptionState)
        .unwrap()
        .starts_with("terminated"));
    assert!(matches!(
        h.ingress.ops.lock().unwrap().last(),
        Some(Operation::Unsubscribe(_))
    ));
    // A Notify for the ended subscription reaches nobody.
    assert_eq!(
        h.tu.deliver(Operation::Notify(notify)).await.status.code,
        481
    );
}

/// Subscriber side: deliver(Subscribe) for a SIP presentity sends SUBSCRIBE; the
/// NOTIFY that comes back reaches the core as a Notify with the decoded PIDF;
/// deliver(Unsubscribe) sends Expires: 0 in the dialog.
#[tokio::test]
async fn subscriber_toward_sip_presence_agent() {
    let mut c = config();
    c.remote_domains = vec!["kamailio.test".into()];
    let h = harness_with(c, Arc::new(MemoryStore::new()));
    h.wire.answer.lock().unwrap().push_back(Box::new(|_| {
        (
            200,
            vec![
                (HeaderName::Expires, "300".into()),
                (HeaderName::Contact, "<sip:carol@127.0.0.1:7000>".into()),
            ],
        )
    }));
    let s = Subscribe {
        trans_id: TransId(1),
        watcher: Address::parse("juliet@xmpp.test").unwrap(),
        target: Address::parse("sip:carol@kamailio.test").unwrap(),
        duration: 3600,
    };
    let out = h.tu.deliver(Operation::Subscribe(s.clone())).await;
    assert_eq!(out.status.code, 200);
    let sent = h.wire.sent();
    let sub = &sent[0].0;
    assert_eq!(sub.method(), &Method::Subscribe);
    assert_eq!(sub.header(HeaderName::Event), Some("presence"));
    assert_eq!(sub.expires(), Some(3600));
    let call_id = sub.call_id().to_owned();
    let local_tag = sub.from_tag().unwrap().to_owned();
    // The presence agent's NOTIFY: we built its To from our From.
    let n = Request::builder(&Method::Notify, "sip:gateway@127.0.0.1:5060")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bKn1",
        )
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:carol@kamailio.test>;tag=remote1")
        .header(
            HeaderName::To,
            &format!("<sip:juliet@xmpp.test>;tag={local_tag}"),
        )
        .header(HeaderName::CallId, &call_id)
        .header(HeaderName::CSeq, "1 NOTIFY")
        .header(HeaderName::Event, "presence")
        .header(HeaderName::SubscriptionState, "active;expires=300")
        .body(
            "application/pidf+xml",
            pidf("pres:carol@kamailio.test", "closed"),
        )
        .build_request()
        .unwrap();
    assert_eq!(h.tu.handle_request(n, src(7000)).await.unwrap().code(), 200);
    settle().await;
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Some(Operation::Notify(n)) = ops.last() else {
            panic!("{ops:?}")
        };
        assert_eq!(n.state, SubscriptionState::Active { expires: 300 });
        assert_eq!(n.watcher.to_string(), "juliet@xmpp.test");
        let p = n.presence.as_ref().unwrap();
        assert_eq!(p.tuples[0].basic, Some(Basic::Closed));
    }
    // Unknown dialog: 481.
    let bogus = Request::builder(&Method::Notify, "sip:gateway@127.0.0.1:5060")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bKn2",
        )
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:carol@kamailio.test>;tag=remote1")
        .header(HeaderName::To, "<sip:juliet@xmpp.test>;tag=nope")
        .header(HeaderName::CallId, "other")
        .header(HeaderName::CSeq, "1 NOTIFY")
        .header(HeaderName::Event, "presence")
        .header(HeaderName::SubscriptionState, "active")
        .build_request()
        .unwrap();
    assert_eq!(
        h.tu.handle_request(bogus, src(7000)).await.unwrap().code(),
        481
    );
    // Unsubscribe.
    assert_eq!(
        h.tu.deliver(Operation::Unsubscribe(s)).await.status.code,
        200
    );
    settle().await;
    let sent = h.wire.sent();
    let last = &sent.last().unwrap().0;
    assert_eq!(last.expires(), Some(0));
    assert_eq!(last.uri_str(), "sip:carol@127.0.0.1:7000");
    assert_eq!(last.to_tag(), Some("remote1"));
    assert_eq!(last.call_id(), call_id);
}

/// Registrations and subscription dialogs survive a restart through the store.
#[tokio::test]
async fn restart_restores_bindings_and_dialogs() {
    let store = Arc::new(MemoryStore::new());
    let h = harness_with(config(), store.clone());
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(
        with_auth(&h, r, "alice", "wonderland", 5070).await.code(),
        200
    );
    let s = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    assert_eq!(
        h.tu.handle_request(s.build(), peer(6000))
            .await
            .unwrap()
            .code(),
        200
    );
    settle().await;
    drop(h);
    let h2 = harness_with(config(), store);
    h2.tu.restore().await.unwrap();
    // Alice's flow is still trusted, and a MESSAGE to her is forked to her binding.
    let m = Message::new(
        TransId(1),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:alice@sip.test").unwrap(),
        "text/plain",
        b"still there?".to_vec(),
    );
    assert_eq!(h2.tu.deliver(Operation::Message(m)).await.status.code, 200);
    let n = Notify {
        trans_id: TransId(2),
        watcher: Address::parse("sip:carol@other.test").unwrap(),
        target: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
        state: SubscriptionState::Active { expires: 100 },
        presence: None,
    };
    assert_eq!(h2.tu.deliver(Operation::Notify(n)).await.status.code, 200);
    settle().await;
    let sent = h2.wire.sent();
    let notify = sent
        .iter()
        .find(|(r, _)| r.method() == &Method::Notify)
        .unwrap();
    assert_eq!(notify.0.cseq().seq, 2, "CSeq continues after the restart");
}

/// Robustness: every RFC 4475 torture message that parses as a request, with its method
/// turned into each method the TU handles, gets a final response from the TU (no panic,
/// no hang). Skips when the shared corpus is absent.
#[tokio::test]
async fn rfc4475_messages_as_every_method_get_an_answer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpora/rfc4475-sip-torture/messages");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("SKIPPED: {} not found", dir.display());
        return;
    };
    let h = harness();
    let mut answered = 0;
    for e in entries.flatten() {
        let raw = std::fs::read(e.path()).unwrap();
        for method in [
            "MESSAGE",
            "REGISTER",
            "SUBSCRIBE",
            "PUBLISH",
            "NOTIFY",
            "OPTIONS",
        ] {
            let text = String::from_utf8_lossy(&raw).replace("INVITE", method);
            let Ok(cpim_sip::codec::SipMessage::Request(req)) =
                cpim_sip::codec::SipMessage::parse(bytes::Bytes::from(text.into_bytes()))
            else {
                continue;
            };
            let resp =
                tokio::time::timeout(Duration::from_secs(5), h.tu.handle_request(req, src(5999)))
                    .await
                    .expect("the TU answers in time")
                    .expect("the TU answers");
            assert!(
                (200..700).contains(&resp.code()),
                "{:?}: {}",
                e.path(),
                resp.code()
            );
            answered += 1;
        }
    }
    settle().await;
    assert!(answered > 50, "only {answered} requests were tried");
}

/// RFC 7616 s3.4.6: credentials computed for another Request-URI are refused (400), and
/// a replayed Authorization (same nonce count) is challenged again.
#[tokio::test]
async fn digest_uri_mismatch_and_replay() {
    let h = harness();
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    let first = h.tu.handle_request(r.build(), src(5070)).await.unwrap();
    let ch = first
        .header_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .next()
        .unwrap();
    let wrong = digest::respond(
        &ch,
        "REGISTER",
        "sip:other.test",
        "alice",
        "wonderland",
        "c",
        1,
    );
    let mut bad = register("<sip:alice@127.0.0.1:5070>", "600");
    bad.cseq = 2;
    let bad = bad.h(HeaderName::Authorization, &wrong.to_header());
    assert_eq!(
        h.tu.handle_request(bad.build(), src(5070))
            .await
            .unwrap()
            .code(),
        400
    );
    let right = digest::respond(
        &ch,
        "REGISTER",
        "sip:sip.test",
        "alice",
        "wonderland",
        "c",
        1,
    );
    let mut ok = register("<sip:alice@127.0.0.1:5070>", "600");
    ok.cseq = 3;
    let ok = ok.h(HeaderName::Authorization, &right.to_header());
    assert_eq!(
        h.tu.handle_request(ok.build(), src(5070))
            .await
            .unwrap()
            .code(),
        200
    );
    let mut replay = register("<sip:alice@127.0.0.1:5070>", "600");
    replay.cseq = 4;
    let replay = replay.h(HeaderName::Authorization, &right.to_header());
    assert_eq!(
        h.tu.handle_request(replay.build(), src(5070))
            .await
            .unwrap()
            .code(),
        401
    );
}

/// Outbound-proxy mode: the proxy owns the users, so REGISTER is refused; requests from
/// a trusted peer (the proxy) need no digest; a MESSAGE to a user of the gateway's
/// domain goes to the proxy with the AOR as Request-URI.
#[tokio::test]
async fn outbound_proxy_mode() {
    let mut c = config();
    c.outbound_proxy = Some(cpim_sip::app::config::OutboundProxy {
        address: "127.0.0.1:5064".into(),
        transport: None,
    });
    c.trusted_peers = vec!["127.0.0.2".parse().unwrap()];
    let h = harness_with(c, Arc::new(MemoryStore::new()));
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(
        h.tu.handle_request(r.build(), src(5070))
            .await
            .unwrap()
            .code(),
        403
    );
    let m = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:alice@sip.test",
        "sip:romeo@xmpp.test",
    )
    .body("text/plain", b"via the proxy");
    let from_proxy = Source {
        transport: "udp".into(),
        remote: SocketAddr::from(([127, 0, 0, 2], 5064)),
        verified_names: Vec::new(),
        connection: None,
    };
    assert_eq!(
        h.tu.handle_request(m.build(), from_proxy)
            .await
            .unwrap()
            .code(),
        200
    );
    // The same request from elsewhere is challenged.
    assert_eq!(
        h.tu.handle_request(m.build(), src(5070))
            .await
            .unwrap()
            .code(),
        401
    );
    let out = Message::new(
        TransId(1),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:alice@sip.test").unwrap(),
        "text/plain",
        b"hi".to_vec(),
    );
    assert_eq!(h.tu.deliver(Operation::Message(out)).await.status.code, 200);
    let sent = h.wire.sent();
    assert_eq!(sent[0].0.uri_str(), "sip:alice@sip.test");
    assert_eq!(
        sent[0].1,
        NextHop::Uri("sip:127.0.0.1:5064;transport=udp;lr".into())
    );
}
