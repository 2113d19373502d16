//! The harness of the transaction-user suites (`app_tu*.rs`): requests built with the
//! codec go into `Tu::handle_request`, a fake transaction layer records what the TU sends
//! and answers it, a fake `Ingress` plays the core. No sockets, no sleeps beyond letting
//! spawned tasks run.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{BoxFuture, Ingress};
use cpim_core::model::{Operation, Outcome};
use cpim_sip::app::config::{SipConfig, SipUser};
use cpim_sip::app::digest::{self, Challenge};
use cpim_sip::app::store::MemoryStore;
use cpim_sip::app::tu::{NextHop, Source, Tu, Wire, WireError};
use cpim_sip::codec::{HeaderName, Method, Request, Response};
use cpim_sip::transport::Transport;

#[derive(Default)]
pub struct FakeIngress {
    pub ops: Mutex<Vec<Operation>>,
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

pub type Responder = Box<dyn Fn(&Request) -> (u16, Vec<(HeaderName, String)>) + Send + Sync>;

pub struct FakeWire {
    pub sent: Mutex<Vec<(Request, NextHop)>>,
    pub answer: Mutex<VecDeque<Responder>>,
}

impl FakeWire {
    pub fn new() -> Arc<FakeWire> {
        Arc::new(FakeWire {
            sent: Mutex::new(Vec::new()),
            answer: Mutex::new(VecDeque::new()),
        })
    }
    pub fn sent(&self) -> Vec<(Request, NextHop)> {
        self.sent.lock().unwrap().clone()
    }
    /// Answers the next request sent with `f` (then 200, or the next queued answer).
    pub fn answer_next(
        &self,
        f: impl Fn(&Request) -> (u16, Vec<(HeaderName, String)>) + Send + Sync + 'static,
    ) {
        self.answer.lock().unwrap().push_back(Box::new(f));
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

pub fn config() -> SipConfig {
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

pub struct Harness {
    pub tu: Arc<Tu>,
    pub ingress: Arc<FakeIngress>,
    pub wire: Arc<FakeWire>,
    pub store: Arc<MemoryStore>,
}

pub fn harness_with(config: SipConfig, store: Arc<MemoryStore>) -> Harness {
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

pub fn harness() -> Harness {
    harness_with(config(), Arc::new(MemoryStore::new()))
}

pub fn src(port: u16) -> Source {
    Source {
        transport: Transport::Udp,
        remote: SocketAddr::from(([127, 0, 0, 1], port)),
        verified_names: Vec::new(),
        connection: None,
    }
}

/// The same over TCP (a connection the peer completed a handshake on; one connection
/// per port here).
pub fn tcp(port: u16) -> Source {
    Source {
        transport: Transport::Tcp,
        connection: Some(u64::from(port)),
        ..src(port)
    }
}

/// The trusted peer (`trusted_peers` in [`config`]) that speaks for `other.test`.
pub fn peer(port: u16) -> Source {
    Source {
        remote: SocketAddr::from(([127, 0, 0, 9], port)),
        ..src(port)
    }
}

pub struct Req {
    pub method: Method,
    pub ruri: String,
    pub from: String,
    pub to: String,
    pub call_id: String,
    pub cseq: u32,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Option<(String, Vec<u8>)>,
}

impl Req {
    pub fn new(method: Method, ruri: &str, from: &str, to: &str) -> Req {
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
    pub fn h(mut self, n: HeaderName, v: &str) -> Req {
        self.headers.push((n, v.into()));
        self
    }
    pub fn body(mut self, ct: &str, b: &[u8]) -> Req {
        self.body = Some((ct.into(), b.to_vec()));
        self
    }
    pub fn build(&self) -> Request {
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
pub async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Sends `r`; if challenged, answers with `user`/`password` and sends again.
pub async fn with_auth(h: &Harness, r: Req, user: &str, password: &str, port: u16) -> Response {
    with_auth_from(h, r, user, password, src(port)).await
}

pub async fn with_auth_from(
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

pub fn register(contact: &str, expires: &str) -> Req {
    Req::new(
        Method::Register,
        "sip:sip.test",
        "sip:alice@sip.test",
        "sip:alice@sip.test",
    )
    .h(HeaderName::Contact, contact)
    .h(HeaderName::Expires, expires)
}

/// The code of the TU's answer to `r` from `from`, without answering a challenge.
pub async fn code(h: &Harness, r: &Req, from: Source) -> u16 {
    h.tu.handle_request(r.build(), from).await.unwrap().code()
}

/// A request of `method` to `ruri` from and to `aor` (a PUBLISH or REGISTER of its own).
pub fn own(method: Method, ruri: &str, aor: &str) -> Req {
    Req::new(method, ruri, aor, aor)
}

pub fn pidf(entity: &str, basic: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{entity}\"><tuple id=\"t1\"><status><basic>{basic}</basic></status></tuple></presence>"
    )
    .into_bytes()
}

pub trait NowOrNever: std::future::Future + Sized {
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
