//! Harness smoke test for ngIRCd (CPIM_PEER_NGIRCD): two clients register (RFC 2812 s3.1) and
//! exchange a PRIVMSG (RFC 2812 s3.3.1).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cpim_interop::require_peers;

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn register(addr: std::net::SocketAddr, nick: &str) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        c.send(&format!("NICK {nick}"));
        c.send(&format!("USER {nick} 0 * :interop test"));
        c.wait_for(|l| l.split(' ').nth(1) == Some("001"));
        c
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    /// Read lines (answering PINGs) until one matches; at most 10 s.
    fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "no matching line within 10 s; saw:\n{seen}"
            );
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .unwrap_or_else(|e| panic!("read: {e}; saw:\n{seen}"));
            assert!(n > 0, "server closed the connection; saw:\n{seen}");
            let line = line.trim_end().to_owned();
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}"));
            }
            if pred(&line) {
                return line;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
    }
}

#[test]
fn ngircd_delivers_a_privmsg_between_two_clients() {
    let peers = require_peers!(Ngircd);
    let pid = std::process::id();
    let (a, b) = (format!("ia{pid}"), format!("ib{pid}"));
    let mut alice = Client::register(peers.ngircd.addr, &a);
    let mut bob = Client::register(peers.ngircd.addr, &b);
    let text = format!("hello over IRC {pid}");
    alice.send(&format!("PRIVMSG {b} :{text}"));
    let line = bob.wait_for(|l| l.contains(" PRIVMSG "));
    assert!(line.starts_with(&format!(":{a}!")), "{line}");
    assert!(line.ends_with(&format!("PRIVMSG {b} :{text}")), "{line}");
    alice.send("QUIT :done");
    bob.send("QUIT :done");
}
