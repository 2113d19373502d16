//! Outcomes bound to their link in component mode (XEP-0114, RFC 6120 s8.3.1): over
//! the component link, anyone on the XMPP network can address a stanza to the component.
//! An error, barrier answer or receipt carrying the id of a message the gateway sent to
//! `bob@xmpp.test` changes nothing unless it comes from `xmpp.test`; and the ids are 128
//! random bits, so they cannot be guessed in the first place.
//!
//! Driven from outside: a fake XMPP server written for the test, over a real socket.

use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Message, Operation, Outcome, TransId};
use cpim_xmpp::{start, Mode, XmppConfig};
use sha1::Digest as _;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

mod common;
use common::{attr_of, wait_for};

struct NoIngress;

impl Ingress for NoIngress {
    fn submit(&self, _: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let t = op.trans_id();
        Box::pin(async move { Outcome::ok(t) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_from_another_domain_is_ignored_on_the_component_link() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = XmppConfig {
        mode: Mode::Component {
            server: addr.to_string(),
            domain: "c.fake.test".into(),
            secret: "secret".into(),
        },
        delivery_timeout_secs: 30,
        grace_ms: 50,
        ..XmppConfig::default()
    };
    let h = start(cfg, Arc::new(NoIngress)).await.unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    let mut seen = String::new();
    wait_for(&mut s, &mut seen, "<stream:stream").await;
    s.write_all(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='c.fake.test' id='id1'>").await.unwrap();
    wait_for(&mut s, &mut seen, "</handshake>").await;
    assert!(seen.contains(&hex::encode(sha1::Sha1::digest(b"id1secret"))));
    s.write_all(b"<handshake/>").await.unwrap();

    let a = h.adapter();
    let mut delivery = tokio::spawn(async move {
        a.deliver(Operation::Message(Message::new(
            TransId(1),
            Address::new(Scheme::Sip, Some("alice"), "sip.test"),
            Address::new(Scheme::Xmpp, Some("bob"), "xmpp.test"),
            "text/plain",
            "hello bob",
        )))
        .await
    });
    wait_for(&mut s, &mut seen, "urn:xmpp:ping").await;
    wait_for(&mut s, &mut seen, "</iq>").await;
    let msg_id = attr_of(&seen, "<message", "id");
    let ping_id = attr_of(&seen, "<iq", "id");
    for id in [&msg_id, &ping_id] {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    // Another domain's user, routed by the server to the component, with the real ids.
    let to = attr_of(&seen, "<message", "from");
    let forged = format!(
        "<message type='error' from='mallory@evil.test' to='{to}' id='{msg_id}'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>\
         <iq type='result' from='evil.test' to='c.fake.test' id='{ping_id}'/>\
         <message from='mallory@evil.test/x' to='{to}' id='r1'><received xmlns='urn:xmpp:receipts' id='{msg_id}'/></message>\
         <iq type='get' from='evil.test' to='c.fake.test' id='sync-after-forgery'><ping xmlns='urn:xmpp:ping'/></iq>"
    );
    s.write_all(forged.as_bytes()).await.unwrap();
    // The component answers the ping after handling the forged stanzas (in order).
    wait_for(&mut s, &mut seen, "sync-after-forgery").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !delivery.is_finished(),
        "a forged outcome from evil.test resolved the delivery to xmpp.test: {:?}",
        (&mut delivery).await
    );
    // The real answer to the barrier: success.
    s.write_all(
        format!("<iq type='result' from='xmpp.test' to='c.fake.test' id='{ping_id}'/>").as_bytes(),
    )
    .await
    .unwrap();
    let o = tokio::time::timeout(Duration::from_secs(10), delivery)
        .await
        .expect("outcome after the barrier")
        .unwrap();
    assert!(o.status.is_success(), "{o:?}");
    h.shutdown().await;
}
