//! Harness smoke test, SIP side: real SIPp sends a pager-mode MESSAGE (RFC 3428) over UDP to a
//! socket of this test, which answers like a UAS (RFC 3261 s8.2.6: Via, From, Call-ID, CSeq
//! copied, To copied with a tag added).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use cpim_interop::{require_peers, Sipp};

/// A received request: request line, headers in order, body.
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn parse(datagram: &[u8]) -> Request {
        let split = datagram
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("no blank line after the headers");
        let head = std::str::from_utf8(&datagram[..split]).expect("headers are not UTF-8");
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap().to_owned();
        let headers = lines
            .map(|l| {
                let (name, value) = l.split_once(':').expect("header without colon");
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        Request {
            line,
            headers,
            body: datagram[split + 4..].to_vec(),
        }
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> + '_ {
        let name = name.to_owned();
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
            .map(|(_, v)| v.as_str())
    }

    fn one(&self, name: &str) -> &str {
        let mut values = self.all(name);
        let v = values.next().unwrap_or_else(|| panic!("no {name} header"));
        assert!(values.next().is_none(), "more than one {name} header");
        v
    }

    /// A response built from this request (RFC 3261 s8.2.6.2).
    fn response(&self, code: u16, reason: &str) -> String {
        let mut r = format!("SIP/2.0 {code} {reason}\r\n");
        for via in self.all("Via") {
            r.push_str(&format!("Via: {via}\r\n"));
        }
        r.push_str(&format!("From: {}\r\n", self.one("From")));
        let to = self.one("To");
        if to.contains(";tag=") {
            r.push_str(&format!("To: {to}\r\n"));
        } else {
            r.push_str(&format!("To: {to};tag=interop1\r\n"));
        }
        r.push_str(&format!("Call-ID: {}\r\n", self.one("Call-ID")));
        r.push_str(&format!("CSeq: {}\r\n", self.one("CSeq")));
        r.push_str("Content-Length: 0\r\n\r\n");
        r
    }
}

fn listener() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let addr = sock.local_addr().unwrap();
    (sock, addr)
}

fn receive(sock: &UdpSocket) -> (Request, SocketAddr) {
    let mut buf = vec![0u8; 65_535];
    let (n, from) = sock
        .recv_from(&mut buf)
        .expect("no MESSAGE from SIPp within 15 s");
    (Request::parse(&buf[..n]), from)
}

#[test]
fn sipp_message_over_udp_gets_our_200() {
    let peers = require_peers!(Sipp);
    let (sock, addr) = listener();
    let body = format!("hello from sipp {}", std::process::id());
    let run = Sipp::new("message_uac.xml", addr)
        .service("bob")
        .key("body", &body)
        .timeout(Duration::from_secs(15))
        .spawn(&peers)
        .unwrap();

    let (req, from) = receive(&sock);
    assert_eq!(req.line, format!("MESSAGE sip:bob@{addr} SIP/2.0"));
    assert_eq!(from, SocketAddr::from(([127, 0, 0, 1], run.local_port())));
    assert_eq!(req.one("CSeq"), "1 MESSAGE");
    assert!(req.one("Content-Type").starts_with("text/plain"));
    let length: usize = req.one("Content-Length").parse().unwrap();
    assert_eq!(length, req.body.len());
    assert_eq!(std::str::from_utf8(&req.body).unwrap().trim_end(), body);
    let via = req.one("Via");
    assert!(
        via.starts_with(&format!("SIP/2.0/UDP 127.0.0.1:{}", run.local_port())),
        "{via}"
    );
    assert!(via.contains(";branch=z9hG4bK"), "{via}");

    sock.send_to(req.response(200, "OK").as_bytes(), from)
        .unwrap();
    let out = run.finish().unwrap();
    assert!(out.success(), "SIPp did not accept our 200 OK: {out}");
}

/// SIPp's exit status is meaningful: a refusal makes the run fail.
#[test]
fn sipp_reports_a_486_as_a_failed_call() {
    let peers = require_peers!(Sipp);
    let (sock, addr) = listener();
    let run = Sipp::new("message_uac.xml", addr)
        .service("carol")
        .key("body", "you will refuse this")
        .timeout(Duration::from_secs(10))
        .spawn(&peers)
        .unwrap();
    let (req, from) = receive(&sock);
    assert!(req.line.starts_with("MESSAGE sip:carol@"), "{}", req.line);
    sock.send_to(req.response(486, "Busy Here").as_bytes(), from)
        .unwrap();
    let out = run.finish().unwrap();
    assert!(!out.success(), "SIPp should fail the call on 486: {out}");
}
