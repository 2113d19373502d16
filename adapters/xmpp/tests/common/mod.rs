//! Helpers shared by the s2s tests that play a peer over raw TCP.
#![allow(dead_code)]

pub mod prosody;

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::{BoxFuture, Ingress};
use cpim_core::model::{Operation, Outcome};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// An ingress that records every operation and accepts it.
pub struct Rec(pub mpsc::UnboundedSender<Operation>);

impl Ingress for Rec {
    fn submit(&self, _: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let t = op.trans_id();
        let _ = self.0.send(op);
        Box::pin(async move { Outcome::ok(t) })
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "cpim_xmpp=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Reads into `seen` until it contains `needle` (or EOF / 10 s of silence).
pub async fn read_until(s: &mut TcpStream, seen: &mut String, needle: &str) -> bool {
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        if n == 0 {
            return seen.contains(needle);
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    true
}

/// The value of attribute `name` (either quote) in the first tag of `s` that starts
/// with `tag`.
pub fn attr<'a>(s: &'a str, tag: &str, name: &str) -> Option<&'a str> {
    let t = &s[s.find(tag)?..];
    let t = &t[..t.find('>')?];
    let v = &t[t
        .find(&format!(" {name}='"))
        .or_else(|| t.find(&format!(" {name}=\"")))?
        + name.len()
        + 3..];
    Some(&v[..v.find(['\'', '"'])?])
}

/// [`attr`], which must be there.
pub fn attr_of(s: &str, tag: &str, name: &str) -> String {
    attr(s, tag, name)
        .unwrap_or_else(|| panic!("no {name} in {tag} of {s}"))
        .to_owned()
}

/// [`read_until`], which must find `needle`.
pub async fn wait_for(s: &mut TcpStream, seen: &mut String, needle: &str) {
    assert!(
        read_until(s, seen, needle).await,
        "no {needle:?} (closed or 10 s of silence) in {seen}"
    );
}

/// A self-signed certificate for `domains` and its key, written to `dir/name.crt` and
/// `dir/name.key`; returns the two paths.
pub fn write_cert_pair(dir: &std::path::Path, name: &str, domains: &[&str]) -> (String, String) {
    let d: Vec<String> = domains.iter().map(|s| s.to_string()).collect();
    let (c, k) = cpim_xmpp::tls::self_signed(&d).unwrap();
    let (cp, kp) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cp, c).unwrap();
    std::fs::write(&kp, k).unwrap();
    (
        cp.to_string_lossy().into_owned(),
        kp.to_string_lossy().into_owned(),
    )
}

/// The s2s mode of a gateway for `gw.test` listening on `listen`, dialback allowed without
/// TLS (the fake peers of the tests speak plaintext), with static routes `routes`
/// (domain, `host:port`).
pub fn plain_s2s(listen: impl Into<String>, routes: &[(&str, &str)]) -> cpim_xmpp::Mode {
    cpim_xmpp::Mode::S2s {
        domains: vec!["gw.test".into()],
        listen: listen.into(),
        cert: None,
        key: None,
        dialback_secret: "a-secret-of-the-gateway-only".into(),
        srv_overrides: routes
            .iter()
            .map(|(d, a)| (d.to_string(), a.to_string()))
            .collect(),
        trust_roots: vec![],
        require_tls: false,
        allow_dialback_without_tls: true,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub const HDR: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'";

/// A fake authoritative server: accepts the gateway's outgoing stream, offers only
/// dialback, and hands each connection to `script`.
pub async fn fake_server<F, Fut>(script: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(script(s));
        }
    });
    addr
}
