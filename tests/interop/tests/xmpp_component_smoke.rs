//! Harness smoke test for the XEP-0114 component listeners of Prosody and ejabberd: the
//! handshake (hex SHA-1 of stream id + secret, XEP-0114 s3) succeeds with the exported secret
//! and fails with another one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cpim_interop::{require_peers, Component};
use sha1::{Digest, Sha1};

/// Read until `done(text)` holds; at most 10 s.
fn read_until(conn: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "waited 10 s; have {text:?}");
        match conn.read(&mut chunk) {
            Ok(0) => return text,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read: {e}; have {text:?}"),
        }
    }
}

/// Open a component stream and hand in `secret`; returns what the server answered.
fn handshake(component: &Component, secret: &str) -> String {
    let mut conn = TcpStream::connect_timeout(&component.addr, Duration::from_secs(5)).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    write!(
        conn,
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}'>",
        component.domain
    )
    .unwrap();
    let header = read_until(&mut conn, |t| {
        t.contains("<stream:stream") && t[t.find("<stream:stream").unwrap()..].contains('>')
    });
    let start = header.find("<stream:stream").expect("no stream header");
    let tag = &header[start..start + header[start..].find('>').unwrap()];
    let id = [" id='", " id=\""]
        .iter()
        .find_map(|p| {
            let rest = &tag[tag.find(p)? + p.len()..];
            Some(&rest[..rest.find(['\'', '"'])?])
        })
        .unwrap_or_else(|| panic!("no id in {tag}"));
    let digest = hex::encode(Sha1::digest(format!("{id}{secret}").as_bytes()));
    write!(conn, "<handshake>{digest}</handshake>").unwrap();
    let reply = read_until(&mut conn, |t| {
        t.contains("<handshake") || t.contains("stream:error") || t.contains("</stream:stream>")
    });
    let _ = conn.write_all(b"</stream:stream>");
    reply
}

fn check(component: &Component) {
    let ok = handshake(component, &component.secret);
    assert!(ok.contains("<handshake"), "{}: {ok}", component.domain);
    assert!(!ok.contains("stream:error"), "{}: {ok}", component.domain);

    let refused = handshake(component, "not-the-secret");
    assert!(
        !refused.contains("<handshake"),
        "{}: {refused}",
        component.domain
    );
    assert!(
        refused.contains("not-authorized"),
        "{}: {refused}",
        component.domain
    );
}

#[test]
fn prosody_component_handshake_accepts_only_the_secret() {
    let peers = require_peers!(Prosody);
    check(peers.prosody.component.as_ref().unwrap());
}

#[test]
fn ejabberd_component_handshake_accepts_only_the_secret() {
    let peers = require_peers!(Ejabberd);
    check(peers.ejabberd.component.as_ref().unwrap());
}
