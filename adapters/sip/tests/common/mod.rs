//! Helpers shared by the SIP adapter's adversarial suites (`security.rs`, over UDP, and
//! `security_streams.rs`, over TCP and TLS): the real adapter in front of a fake core that
//! records what would be relayed, and requests written as a UA writes them.
#![allow(dead_code)]

pub mod tu;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{BoxFuture, Ingress};
use cpim_core::model::{Operation, Outcome};
use cpim_core::StatusCode;
use cpim_sip::app::config::{SipConfig, SipUser};
use cpim_sip::app::digest::{self, Algorithm, Challenge};
use cpim_sip::app::{start, MemoryStore, SipHandle};
use cpim_sip::endpoint::EndpointConfig;
use cpim_sip::transport::Transport;

#[derive(Default)]
pub struct Core {
    pub ops: Mutex<Vec<Operation>>,
}

impl Core {
    pub fn relayed(&self) -> usize {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .filter(|o| !matches!(o, Operation::Publish(_)))
            .count()
    }
}

impl Ingress for Core {
    fn submit(&self, _adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let tid = op.trans_id();
        self.ops.lock().unwrap().push(op);
        Box::pin(async move { Outcome::ok(tid) })
    }
}

pub fn base_config() -> SipConfig {
    SipConfig {
        endpoint: EndpointConfig {
            udp: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            tcp: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            tls: Vec::new(),
            dns: false,
            ..Default::default()
        },
        domains: vec!["sip.test".into()],
        users: vec![SipUser {
            username: "alice".into(),
            password: Some("wonderland".into()),
            ..Default::default()
        }],
        auth_algorithms: vec![Algorithm::Md5],
        ..Default::default()
    }
}

pub async fn gateway(config: SipConfig) -> (SipHandle, Arc<Core>, SocketAddr) {
    let core = Arc::new(Core::default());
    let (h, udp) = gateway_with(config, core.clone()).await;
    (h, core, udp)
}

/// The adapter in front of `core`, and its UDP address.
pub async fn gateway_with(config: SipConfig, core: Arc<dyn Ingress>) -> (SipHandle, SocketAddr) {
    let h = start(config, core, Arc::new(MemoryStore::new()))
        .await
        .expect("start the SIP adapter");
    let udp = h
        .local_addrs()
        .iter()
        .find(|(t, _)| *t == Transport::Udp)
        .map(|(_, a)| *a)
        .unwrap();
    (h, udp)
}

/// One SIP request as a UA writes it.
#[allow(clippy::too_many_arguments)]
pub fn request(
    method: &str,
    ruri: &str,
    from: &str,
    to: &str,
    me: SocketAddr,
    call_id: &str,
    cseq: u32,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call_id}-{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <{from}>;tag=f{cseq}\r\nTo: <{to}>\r\nCall-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A received response: status code, reason, the raw text.
pub struct Resp {
    pub code: u16,
    pub reason: String,
    pub text: String,
}

impl Resp {
    /// A response, if `data` is one.
    pub fn parse(data: &[u8]) -> Option<Resp> {
        let text = String::from_utf8_lossy(data).into_owned();
        let rest = text.strip_prefix("SIP/2.0 ")?;
        let code: u16 = rest.get(..3)?.parse().ok()?;
        let reason = rest
            .get(4..)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("")
            .to_owned();
        Some(Resp { code, reason, text })
    }

    /// True if it answers the request with `call_id`.
    pub fn is_for(&self, call_id: &str) -> bool {
        self.text
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("call-id:") && l.contains(call_id))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Reads packets until a final response with `call_id` arrives or `wait` passes; returns
/// it and the total bytes of every packet read.
pub fn final_response(s: &UdpSocket, call_id: &str, wait: Duration) -> (Option<Resp>, usize) {
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = vec![0u8; 65536];
    let mut bytes = 0;
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        let Ok((n, _)) = s.recv_from(&mut buf) else {
            continue;
        };
        bytes += n;
        let Some(r) = Resp::parse(&buf[..n]) else {
            continue;
        };
        if r.code >= 200 && r.is_for(call_id) {
            return (Some(r), bytes);
        }
    }
    (None, bytes)
}

/// Sends and waits for the final response.
pub fn exchange(s: &UdpSocket, to: SocketAddr, req: &str, call_id: &str) -> Resp {
    s.send_to(req.as_bytes(), to).unwrap();
    final_response(s, call_id, Duration::from_secs(5))
        .0
        .unwrap_or_else(|| panic!("no response to {call_id}"))
}

/// Sends the request `make(cseq, extra_headers)` builds; on a 401 answers the MD5 challenge
/// as `user` and sends it again.
pub fn with_digest(
    s: &UdpSocket,
    gw: SocketAddr,
    (user, password): (&str, &str),
    (method, uri, cid): (&str, &str, &str),
    make: impl Fn(u32, &str) -> String,
) -> Resp {
    let r = exchange(s, gw, &make(1, ""), cid);
    if r.code != StatusCode::UNAUTHORIZED {
        return r;
    }
    exchange(
        s,
        gw,
        &make(2, &authorization(&r, (user, password), method, uri)),
        cid,
    )
}

/// The `Authorization` header line (with its CRLF) answering the MD5 challenge of the 401
/// `challenge` as `user`.
pub fn authorization(
    challenge: &Resp,
    (user, password): (&str, &str),
    method: &str,
    uri: &str,
) -> String {
    let ch = Challenge::parse(challenge.header("WWW-Authenticate").unwrap()).unwrap();
    let creds = digest::respond(&ch, method, uri, user, password, "c", 1);
    format!("Authorization: {}\r\n", creds.to_header())
}
