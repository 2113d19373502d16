//! Harness smoke test for Kamailio as MSRP relay (CPIM_PEER_KAMAILIO_MSRP): two clients AUTH
//! (RFC 4976 s5), then one SENDs (RFC 4975 s7) to the other through the relay.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cpim_interop::require_peers;

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: std::net::SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, frame: &str) {
        self.stream.write_all(frame.as_bytes()).unwrap();
    }

    /// The next complete frame (start line to end-line `-------TID$|+|#`), within 10 s.
    fn frame(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = frame_end(&self.buf) {
                let frame: Vec<u8> = self.buf.drain(..end).collect();
                return String::from_utf8(frame).expect("frame is not UTF-8");
            }
            assert!(
                Instant::now() < deadline,
                "no complete MSRP frame within 10 s; have {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "relay closed the connection; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
}

/// Where the first frame in `buf` ends (after its end-line's CRLF), if it is complete.
fn frame_end(buf: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(buf).ok()?;
    let first = text.split("\r\n").next()?;
    let tid = first.split(' ').nth(1)?;
    for flag in ['$', '+', '#'] {
        let end_line = format!("\r\n-------{tid}{flag}\r\n");
        if let Some(pos) = text.find(&end_line) {
            return Some(pos + end_line.len());
        }
    }
    None
}

fn header<'a>(frame: &'a str, name: &str) -> Option<&'a str> {
    frame
        .split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

fn auth(relay: &str, conn: &mut Conn, me: &str, tid: &str) -> String {
    conn.send(&format!(
        "MSRP {tid} AUTH\r\nTo-Path: {relay}\r\nFrom-Path: {me}\r\n-------{tid}$\r\n"
    ));
    let reply = conn.frame();
    assert!(reply.starts_with(&format!("MSRP {tid} 200")), "{reply}");
    header(&reply, "Use-Path")
        .unwrap_or_else(|| panic!("AUTH 200 without Use-Path: {reply}"))
        .to_owned()
}

#[test]
fn kamailio_relays_an_msrp_send_between_two_authenticated_clients() {
    let peers = require_peers!(Kamailio);
    let addr = peers.kamailio_msrp;
    let relay = format!("msrp://{addr};tcp");
    let pid = std::process::id();
    let alice_url = format!("msrp://127.0.0.1:9001/alice{pid};tcp");
    let bob_url = format!("msrp://127.0.0.1:9002/bob{pid};tcp");

    let mut bob = Conn::open(addr);
    let bob_path = auth(&relay, &mut bob, &bob_url, "authbob1");
    let mut alice = Conn::open(addr);
    let alice_path = auth(&relay, &mut alice, &alice_url, "authali1");

    let body = format!("hello bob over MSRP {pid}");
    alice.send(&format!(
        "MSRP send0001 SEND\r\nTo-Path: {bob_path} {bob_url}\r\nFrom-Path: {alice_path} {alice_url}\r\n\
         Message-ID: m{pid}\r\nByte-Range: 1-{}/{}\r\nContent-Type: text/plain\r\n\r\n{body}\r\n-------send0001$\r\n",
        body.len(),
        body.len()
    ));
    let reply = alice.frame();
    assert!(reply.starts_with("MSRP send0001 200"), "{reply}");

    let got = bob.frame();
    assert!(got.contains(" SEND\r\n"), "{got}");
    assert!(got.contains(&body), "{got}");
    assert_eq!(
        header(&got, "Message-ID"),
        Some(format!("m{pid}").as_str()),
        "{got}"
    );
    let to_path = header(&got, "To-Path").unwrap();
    assert!(to_path.ends_with(&bob_url), "{got}");
}
