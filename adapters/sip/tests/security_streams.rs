//! Issue 10, SIP side over stream transports, driven from outside with raw TCP sockets
//! and a TLS client written for the test, against the real adapter (a fake core records
//! what would be relayed):
//!
//! - RFC 5922 s7.1: a From in a domain the gateway does not serve is accepted over TLS
//!   when the client certificate, validated against `tls_ca`, names that domain; without
//!   a certificate, with one naming another domain, or with one no trusted CA signed:
//!   403.
//! - RFC 5626 s3: flow trust belongs to the connection a user registered on, not to its
//!   address and port: a new connection from the same port inherits nothing.

mod common;

use cpim_core::StatusCode;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use cpim_sip::app::digest::{self, Challenge};
use cpim_sip::transport::Transport;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `req` on `s` and reads until the final response for `call_id` (bounded wait).
async fn stream_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    req: &str,
    call_id: &str,
) -> Resp {
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf: Vec<u8> = Vec::new();
    let read = async {
        loop {
            // frame every complete message in the buffer (RFC 3261 s18.3)
            while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.trim()
                            .eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if buf.len() < end + 4 + len {
                    break;
                }
                let msg: Vec<u8> = buf.drain(..end + 4 + len).collect();
                if let Some(r) = Resp::parse(&msg) {
                    if r.code >= 200 && r.is_for(call_id) {
                        return r;
                    }
                }
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the response to {call_id}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or_else(|_| panic!("no response to {call_id}"))
}

/// `request` as sent over a stream transport.
#[allow(clippy::too_many_arguments)]
fn stream_request(
    transport: &str,
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
    request(method, ruri, from, to, me, call_id, cseq, extra, body).replacen(
        "SIP/2.0/UDP",
        &format!("SIP/2.0/{transport}"),
        1,
    )
}

fn listener(h: &cpim_sip::app::SipHandle, t: Transport) -> SocketAddr {
    h.local_addrs()
        .iter()
        .find(|(x, _)| *x == t)
        .map(|(_, a)| *a)
        .unwrap()
}

/// A PEM certificate chain and its PEM key.
type Pem = (String, String);

/// A test CA and certificates it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A certificate with `sans` (PEM chain, PEM key), signed by this CA.
    fn issue(&self, sans: Vec<rcgen::SanType>) -> Pem {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn dns(name: &str) -> rcgen::SanType {
    rcgen::SanType::DnsName(name.try_into().unwrap())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cpim-sip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write(dir: &Path, name: &str, data: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .unwrap()
        .unwrap()
}

/// A TLS connection to `addr` trusting `ca`, presenting `client` (PEM chain, PEM key).
async fn tls_connect(
    addr: SocketAddr,
    ca: &Ca,
    client: Option<&Pem>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match client {
        Some((c, k)) => b.with_client_auth_cert(certs(c), key(k)).unwrap(),
        None => b.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .expect("TLS handshake")
}

/// RFC 5922 s7.1 (and s7: the server asks for a client certificate): `bob@peer.test`
/// over TLS is relayed only when the client certificate, validated against the
/// configured `tls_ca`, names `peer.test` (as a DNS name or a `sip:` URI); no
/// certificate, one for another domain, or one for `peer.test` that no trusted CA signed
/// gets `403 Foreign Domain Not Trusted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_certificate_proves_a_foreign_domain_rfc5922_s7_1() {
    let dir = temp_dir("rfc5922");
    let ca = Ca::new();
    let (gw_cert, gw_key) = ca.issue(vec![
        rcgen::SanType::IpAddress([127, 0, 0, 1].into()),
        dns("sip.test"),
    ]);
    let mut config = base_config();
    config.endpoint.tls = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    config.endpoint.tls_cert = Some(write(&dir, "gw.pem", &gw_cert));
    config.endpoint.tls_key = Some(write(&dir, "gw.key", &gw_key));
    config.endpoint.tls_ca = Some(write(&dir, "ca.pem", &ca.cert.pem()));
    let (h, core, _) = gateway(config).await;
    let addr = listener(&h, Transport::Tls);

    let peer_dns = ca.issue(vec![dns("peer.test")]);
    let peer_uri = ca.issue(vec![rcgen::SanType::URI(
        "sip:peer.test".try_into().unwrap(),
    )]);
    let other = ca.issue(vec![dns("other.test")]);
    let rogue = Ca::new().issue(vec![dns("peer.test")]);
    let cases: [(&str, Option<&Pem>, u16); 5] = [
        ("dns", Some(&peer_dns), 200),
        ("uri", Some(&peer_uri), 200),
        ("none", None, 403),
        ("other", Some(&other), 403),
        ("rogue", Some(&rogue), 403),
    ];
    for (name, client, want) in cases {
        let mut s = tls_connect(addr, &ca, client).await;
        let me = s.get_ref().0.local_addr().unwrap();
        let cid = format!("tls-{name}");
        let req = stream_request(
            "TLS",
            "MESSAGE",
            "sip:romeo@xmpp.test",
            "sip:bob@peer.test",
            "sip:romeo@xmpp.test",
            me,
            &cid,
            1,
            "Content-Type: text/plain\r\n",
            "certified",
        );
        let r = stream_exchange(&mut s, &req, &cid).await;
        assert_eq!(r.code, want, "{name}: {}", r.text);
        if want == 403 {
            assert_eq!(r.reason, "Foreign Domain Not Trusted", "{name}");
        }
    }
    assert_eq!(core.relayed(), 2, "only the certified requests are relayed");
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A TCP connection from `local` (bound with SO_REUSEADDR, so the port can be used
/// again right after the previous connection from it was reset).
async fn tcp_from(local: SocketAddr, to: SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&local.into()).unwrap();
    s.set_nonblocking(true).unwrap();
    let s = tokio::net::TcpSocket::from_std_stream(s.into());
    s.connect(to).await.unwrap()
}

/// RFC 5626 s3 (the flow is the connection) with `trust_registered_flows` on: alice
/// registers with digest on a TCP connection and may then send without credentials on
/// it; the connection is reset, a new one comes from the very same address and port, and
/// a MESSAGE as alice without credentials on it is challenged (401), not relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_trust_dies_with_its_connection_rfc5626_s3() {
    let config = base_config();
    assert!(config.trust_registered_flows);
    let (h, core, _) = gateway(config).await;
    let gw = listener(&h, Transport::Tcp);
    // a free local port
    let local = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let message = |me, cid: &str| {
        stream_request(
            "TCP",
            "MESSAGE",
            "sip:romeo@xmpp.test",
            "sip:alice@sip.test",
            "sip:romeo@xmpp.test",
            me,
            cid,
            1,
            "Content-Type: text/plain\r\n",
            "hello",
        )
    };

    let mut s = tcp_from(local, gw).await;
    let reg = |cseq, auth: &str| {
        stream_request(
            "TCP",
            "REGISTER",
            "sip:sip.test",
            "sip:alice@sip.test",
            "sip:alice@sip.test",
            local,
            "reg-tcp",
            cseq,
            &format!("Contact: <sip:alice@{local};transport=tcp>\r\nExpires: 600\r\n{auth}"),
            "",
        )
    };
    let r = stream_exchange(&mut s, &reg(1, ""), "reg-tcp").await;
    assert_eq!(r.code, StatusCode::UNAUTHORIZED);
    let ch = Challenge::parse(r.header("WWW-Authenticate").unwrap()).unwrap();
    let creds = digest::respond(
        &ch,
        "REGISTER",
        "sip:sip.test",
        "alice",
        "wonderland",
        "c",
        1,
    );
    let auth = format!("Authorization: {}\r\n", creds.to_header());
    let r = stream_exchange(&mut s, &reg(2, &auth), "reg-tcp").await;
    assert_eq!(r.code, StatusCode::OK, "{}", r.text);
    // on the connection she registered on, alice needs no credentials
    let r = stream_exchange(&mut s, &message(local, "same-conn"), "same-conn").await;
    assert_eq!(r.code, StatusCode::OK, "{}", r.text);
    assert_eq!(core.relayed(), 1);

    // reset the connection (SO_LINGER 0: no TIME_WAIT) and come back from the same port
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
    let mut s = tcp_from(local, gw).await;
    assert_eq!(s.local_addr().unwrap(), local);
    let r = stream_exchange(&mut s, &message(local, "new-conn"), "new-conn").await;
    assert_eq!(
        r.code,
        StatusCode::UNAUTHORIZED,
        "a new connection inherited alice's flow: {}",
        r.text
    );
    assert_eq!(
        core.relayed(),
        1,
        "the MESSAGE on the new connection was relayed"
    );
    h.shutdown().await;
}

/// An endpoint with a TLS listener whose certificate (signed by `ca`) names `domain`,
/// trusting `ca` (`tls_ca`).
fn tls_endpoint_config(dir: &Path, ca: &Ca, domain: &str) -> cpim_sip::endpoint::EndpointConfig {
    let (c, k) = ca.issue(vec![
        rcgen::SanType::IpAddress([127, 0, 0, 1].into()),
        dns(domain),
    ]);
    cpim_sip::endpoint::EndpointConfig {
        udp: Vec::new(),
        tcp: Vec::new(),
        tls: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
        tls_cert: Some(write(dir, &format!("{domain}.pem"), &c)),
        tls_key: Some(write(dir, &format!("{domain}.key"), &k)),
        tls_ca: Some(write(dir, "ca.pem", &ca.cert.pem())),
        dns: false,
        ..Default::default()
    }
}

/// RFC 5922 s7 (mutual TLS between SIP domains): an outgoing TLS connection presents
/// the listener's certificate as client certificate, so the receiving side proves the
/// sender's domain from it; the receiver sees it on the request's connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_tls_presents_the_listener_certificate_rfc5922_s7() {
    use cpim_sip::codec::{HeaderName, Method, Request, Response};
    use cpim_sip::endpoint::{Endpoint, Target};
    let dir = temp_dir("rfc5922-out");
    let ca = Ca::new();
    let (a, _a_in) = Endpoint::bind(tls_endpoint_config(&dir, &ca, "a.test"))
        .await
        .unwrap();
    let (b, mut b_in) = Endpoint::bind(tls_endpoint_config(&dir, &ca, "b.test"))
        .await
        .unwrap();
    let seen = tokio::spawn(async move {
        let r = b_in.recv().await.unwrap();
        let resp = Response::for_request(&r.request, 200, None)
            .build_response()
            .unwrap();
        r.respond(resp).unwrap();
        (r.transport, r.connection)
    });
    let req = Request::builder(&Method::Message, "sip:bob@b.test")
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:alice@a.test>;tag=t1")
        .header(HeaderName::To, "<sip:bob@b.test>")
        .header(HeaderName::CallId, "mutual-tls")
        .header(HeaderName::CSeq, "1 MESSAGE")
        .body("text/plain", b"hi".to_vec())
        .build_request()
        .unwrap();
    let resp = a
        .send_request(
            req,
            Target::Addr(Transport::Tls, b.local_addr(Transport::Tls).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(resp.code(), 200);
    let (transport, conn) = seen.await.unwrap();
    assert_eq!(transport, Transport::Tls);
    let conn = conn.expect("a stream connection");
    assert_eq!(conn.verified_names, vec!["a.test".to_owned()]);
    let _ = std::fs::remove_dir_all(&dir);
}
