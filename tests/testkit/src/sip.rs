//! [`SipUa`]: a minimal SIP user agent for tests, on cpim-sip's endpoint.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::addrmap::sip_user_wire;
use cpim_sip::app::digest::{self, Algorithm, Challenge};
use cpim_sip::codec::{new_tag, HeaderName, Method, Request, Response};
use cpim_sip::endpoint::{Endpoint, EndpointConfig, IncomingRequests, Target};
use cpim_sip::transport::Transport;
use tokio::sync::Notify;

use crate::TestkitError;

/// Requests received, and how to answer them.
#[derive(Debug, Default)]
struct Inbox {
    received: Mutex<VecDeque<Request>>,
    arrived: Notify,
    answers: Mutex<HashMap<String, u16>>,
}

/// A SIP dialog created by [`SipUa::subscribe`] (the subscriber's side).
#[derive(Debug, Clone)]
pub struct SipSubscription {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The notifier's tag from the 2xx.
    pub remote_tag: Option<String>,
    /// The presentity's URI (Request-URI of the initial SUBSCRIBE and To).
    pub target: String,
    /// The notifier's Contact (the Request-URI of in-dialog requests).
    pub remote_target: Option<String>,
    /// The event package.
    pub event: String,
}

/// A SIP user agent for one user over one transport, talking to one server (the gateway).
/// See the crate documentation.
#[derive(Debug)]
pub struct SipUa {
    endpoint: Endpoint,
    transport: Transport,
    server: Mutex<SocketAddr>,
    user: String,
    domain: String,
    password: Option<String>,
    cseq: AtomicU32,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SipUa {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sip_err(e: impl std::fmt::Display) -> TestkitError {
    TestkitError::Sip(e.to_string())
}

impl SipUa {
    /// Binds a UA for `user@domain` on an ephemeral loopback port of `transport` (UDP or
    /// TCP), sending to `server`. `password` answers digest challenges.
    pub async fn new(
        user: &str,
        domain: &str,
        password: Option<&str>,
        transport: Transport,
        server: SocketAddr,
    ) -> Result<SipUa, TestkitError> {
        let lo: SocketAddr = ([127, 0, 0, 1], 0).into();
        let cfg = EndpointConfig {
            udp: if transport == Transport::Udp {
                vec![lo]
            } else {
                Vec::new()
            },
            tcp: if transport == Transport::Tcp {
                vec![lo]
            } else {
                Vec::new()
            },
            tls: Vec::new(),
            dns: false,
            // Keep requests over UDP whatever their size (no switch to TCP, RFC 3261
            // s18.1.1: the test decides the transport).
            udp_max_request_bytes: 60_000,
            max_body_bytes: 4 * 1024 * 1024,
            ..EndpointConfig::default()
        };
        let (endpoint, incoming) = Endpoint::bind(cfg).await.map_err(sip_err)?;
        let inbox = Arc::new(Inbox::default());
        let task = tokio::spawn(answer_loop(incoming, inbox.clone()));
        Ok(SipUa {
            endpoint,
            transport,
            server: Mutex::new(server),
            user: user.to_owned(),
            domain: domain.to_owned(),
            password: password.map(str::to_owned),
            cseq: AtomicU32::new(1),
            inbox,
            task,
        })
    }

    /// The server requests go to.
    pub fn server(&self) -> SocketAddr {
        *self.server.lock().unwrap()
    }

    /// Send future requests to `server` (the gateway after a restart).
    pub fn set_server(&self, server: SocketAddr) {
        *self.server.lock().unwrap() = server;
    }

    /// `sip:user@domain`, the user percent-encoded (RFC 3261 s19.1.2: `a@b` is `a%40b`).
    pub fn aor(&self) -> String {
        format!("sip:{}@{}", sip_user_wire(&self.user), self.domain)
    }

    /// The UA's bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint
            .local_addr(self.transport)
            .expect("the UA's transport is bound")
    }

    /// The Contact URI (`sip:user@IP:PORT`, `;transport=tcp` over TCP).
    pub fn contact(&self) -> String {
        let a = self.local_addr();
        match self.transport {
            Transport::Udp => format!("sip:{}@{a}", sip_user_wire(&self.user)),
            _ => format!("sip:{}@{a};transport=tcp", sip_user_wire(&self.user)),
        }
    }

    /// Answer requests of `method` with `code` from now on (default 200).
    pub fn answer_with(&self, method: &str, code: u16) {
        self.inbox
            .answers
            .lock()
            .unwrap()
            .insert(method.to_ascii_uppercase(), code);
    }

    /// Sends a request and returns the final response, answering one 401/407 challenge with
    /// the password. `headers` are added as given; `From` (with a fresh tag), `To` (the
    /// Request-URI), `Call-ID`, `CSeq` and `Max-Forwards` are filled in unless present.
    pub async fn request(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, TestkitError> {
        let method = Method::parse(method);
        let call_id = format!("{}@testkit", new_tag());
        let from_tag = new_tag();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| (*v).to_owned())
        };
        let from = get("From").unwrap_or_else(|| format!("<{}>;tag={from_tag}", self.aor()));
        let to = get("To").unwrap_or_else(|| format!("<{uri}>"));
        let call_id = get("Call-ID").unwrap_or(call_id);
        let others: Vec<(&str, &str)> = headers
            .iter()
            .filter(|(n, _)| {
                !["from", "to", "call-id", "cseq"].contains(&n.to_ascii_lowercase().as_str())
            })
            .copied()
            .collect();
        let build = |auth: Option<(HeaderName, String)>| {
            let seq = self.cseq.fetch_add(1, Ordering::SeqCst);
            let mut b = Request::builder(&method, uri)
                .header(HeaderName::From, &from)
                .header(HeaderName::To, &to)
                .header(HeaderName::CallId, &call_id)
                .header(HeaderName::CSeq, &format!("{seq} {method}"));
            if !others
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("Max-Forwards"))
            {
                b = b.header(HeaderName::MaxForwards, "70");
            }
            for (n, v) in &others {
                b = b.header(*n, v);
            }
            if let Some((n, v)) = &auth {
                b = b.header(*n, v);
            }
            if let Some((ct, bytes)) = body {
                b = b.body(ct, bytes.to_vec());
            }
            b.build_request().map_err(sip_err)
        };
        let resp = self.send(build(None)?).await?;
        let (challenge_hdr, auth_hdr) = match resp.code() {
            401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
            407 => (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            ),
            _ => return Ok(resp),
        };
        let Some(password) = &self.password else {
            return Ok(resp);
        };
        let challenges: Vec<Challenge> = resp
            .header_all(challenge_hdr)
            .filter_map(|h| Challenge::parse(h).ok())
            .collect();
        // The server's preference order, MD5 and SHA-256 both known here.
        let Some(ch) = challenges
            .iter()
            .find(|c| matches!(c.algorithm, Algorithm::Sha256 | Algorithm::Md5))
        else {
            return Ok(resp);
        };
        let cred = digest::respond(
            ch,
            method.as_str(),
            uri,
            &self.user,
            password,
            &new_tag(),
            1,
        );
        self.send(build(Some((auth_hdr, cred.to_header())))?).await
    }

    async fn send(&self, req: Request) -> Result<Response, TestkitError> {
        self.endpoint
            .send_request(req, Target::Addr(self.transport, self.server()))
            .await
            .map_err(|e| TestkitError::Sip(format!("{e} (as status {})", e.status_code())))
    }

    /// REGISTER this UA's contact for `expires` seconds (0 removes it).
    pub async fn register(&self, expires: u32) -> Result<Response, TestkitError> {
        let contact = format!("<{}>", self.contact());
        let aor = self.aor();
        let exp = expires.to_string();
        self.request(
            "REGISTER",
            &format!("sip:{}", self.domain),
            &[
                ("To", &format!("<{aor}>")),
                ("Contact", &contact),
                ("Expires", &exp),
            ],
            None,
        )
        .await
    }

    /// MESSAGE to `to` (a SIP URI) with a body of `content_type`.
    pub async fn message(
        &self,
        to: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Response, TestkitError> {
        self.request("MESSAGE", to, &[], Some((content_type, body)))
            .await
    }

    /// OPTIONS to `uri`.
    pub async fn options(&self, uri: &str) -> Result<Response, TestkitError> {
        self.request("OPTIONS", uri, &[("Accept", "application/sdp")], None)
            .await
    }

    /// SUBSCRIBE to `target`'s `event` package (`presence`) for `expires` seconds: the final
    /// response and, on 2xx, the dialog.
    pub async fn subscribe(
        &self,
        target: &str,
        event: &str,
        expires: u32,
    ) -> Result<(Response, Option<SipSubscription>), TestkitError> {
        let tag = new_tag();
        let call_id = format!("{}@testkit", new_tag());
        let from = format!("<{}>;tag={tag}", self.aor());
        let contact = format!("<{}>", self.contact());
        let exp = expires.to_string();
        let resp = self
            .request(
                "SUBSCRIBE",
                target,
                &[
                    ("From", &from),
                    ("Call-ID", &call_id),
                    ("Event", event),
                    ("Accept", "application/pidf+xml"),
                    ("Contact", &contact),
                    ("Expires", &exp),
                ],
                None,
            )
            .await?;
        let sub = (200..300).contains(&resp.code()).then(|| SipSubscription {
            call_id,
            local_tag: tag,
            remote_tag: resp.to_tag().map(str::to_owned),
            target: target.to_owned(),
            remote_target: resp
                .contacts()
                .next()
                .and_then(Result::ok)
                .map(|c| c.uri.raw.to_string()),
            event: event.to_owned(),
        });
        Ok((resp, sub))
    }

    /// Refreshes (`expires` > 0) or ends (0) a subscription inside its dialog.
    pub async fn resubscribe(
        &self,
        sub: &SipSubscription,
        expires: u32,
    ) -> Result<Response, TestkitError> {
        let from = format!("<{}>;tag={}", self.aor(), sub.local_tag);
        let to = match &sub.remote_tag {
            Some(t) => format!("<{}>;tag={t}", sub.target),
            None => format!("<{}>", sub.target),
        };
        let contact = format!("<{}>", self.contact());
        let exp = expires.to_string();
        let uri = sub.remote_target.as_deref().unwrap_or(&sub.target);
        self.request(
            "SUBSCRIBE",
            uri,
            &[
                ("From", &from),
                ("To", &to),
                ("Call-ID", &sub.call_id),
                ("Event", &sub.event),
                ("Contact", &contact),
                ("Expires", &exp),
            ],
            None,
        )
        .await
    }

    /// PUBLISH a PIDF document for this UA's AOR (`etag`: refresh/modify that publication).
    pub async fn publish(
        &self,
        pidf: Option<&str>,
        expires: u32,
        etag: Option<&str>,
    ) -> Result<Response, TestkitError> {
        let aor = self.aor();
        let exp = expires.to_string();
        let mut headers = vec![("Event", "presence"), ("Expires", exp.as_str())];
        if let Some(e) = etag {
            headers.push(("SIP-If-Match", e));
        }
        self.request(
            "PUBLISH",
            &aor,
            &headers,
            pidf.map(|p| ("application/pidf+xml", p.as_bytes())),
        )
        .await
    }

    /// A PIDF document for this UA's AOR: basic `open` or `closed`, with an optional note.
    pub fn pidf(&self, open: bool, note: Option<&str>) -> String {
        let note = note
            .map(|n| format!("<note>{}</note>", xml_escape(n)))
            .unwrap_or_default();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{}\"><tuple id=\"t1\"><status><basic>{}</basic></status></tuple>{note}</presence>",
            self.aor(),
            if open { "open" } else { "closed" }
        )
    }

    /// The first received request (oldest first) matching `pred`, removed from the inbox;
    /// waits up to `timeout` for one to arrive.
    pub async fn await_request(
        &self,
        pred: impl Fn(&Request) -> bool,
        timeout: Duration,
    ) -> Result<Request, TestkitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inbox.arrived.notified();
            {
                let mut q = self.inbox.received.lock().unwrap();
                if let Some(i) = q.iter().position(&pred) {
                    return Ok(q.remove(i).expect("index from position"));
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let q = self.inbox.received.lock().unwrap();
                let seen: Vec<String> = q.iter().map(describe).collect();
                return Err(TestkitError::Timeout {
                    what: format!("a matching request at {}", self.aor()),
                    timeout,
                    seen: format!("unmatched requests in the inbox: {seen:?}"),
                });
            }
        }
    }

    /// Every received request not yet taken by [`SipUa::await_request`], oldest first.
    pub fn take_received(&self) -> Vec<Request> {
        self.inbox.received.lock().unwrap().drain(..).collect()
    }
}

/// `METHOD uri (Content-Type, body)` for failure messages.
fn describe(r: &Request) -> String {
    format!(
        "{} {} [{}] {}",
        r.method(),
        r.uri_str(),
        r.header(HeaderName::SubscriptionState).unwrap_or(""),
        String::from_utf8_lossy(r.body())
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn answer_loop(mut incoming: IncomingRequests, inbox: Arc<Inbox>) {
    while let Some(inc) = incoming.recv().await {
        let code = inbox
            .answers
            .lock()
            .unwrap()
            .get(inc.request.method().as_str())
            .copied()
            .unwrap_or(200);
        if let Ok(resp) = Response::for_request(&inc.request, code, None).build_response() {
            let _ = inc.respond(resp);
        }
        inbox.received.lock().unwrap().push_back(inc.request);
        inbox.arrived.notify_waiters();
    }
}
