//! The transaction user driven in process (harness in `common/tu.rs`): REGISTER and digest
//! authentication (RFC 3261 s22, RFC 7616, RFC 8760), persistence across a restart, and
//! robustness against the RFC 4475 torture messages.

mod common;

use cpim_core::StatusCode;
use std::sync::Arc;
use std::time::Duration;

use common::tu::*;
use cpim_core::address::Address;
use cpim_core::model::{Message, Notify, Operation, SubscriptionState, TransId};
use cpim_sip::app::digest::{self, Challenge};
use cpim_sip::app::store::{MemoryStore, SipStore};
use cpim_sip::codec::{HeaderName, Method};

/// RFC 3261 s22 / RFC 8760: REGISTER is challenged (SHA-256 first, then MD5), then
/// accepted; the 200 lists the binding; the store holds it.
#[tokio::test]
async fn register_challenge_then_accept_and_persist() {
    let h = harness();
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    let first = h.tu.handle_request(r.build(), src(5070)).await.unwrap();
    assert_eq!(first.code(), 401);
    let algs: Vec<String> = first
        .header_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap().algorithm.as_str().to_owned())
        .collect();
    assert_eq!(algs, vec!["SHA-256", "MD5"]);
    let ok = with_auth(&h, r, "alice", "wonderland", 5070).await;
    assert_eq!(ok.code(), 200);
    let contact = ok.header(HeaderName::Contact).unwrap();
    assert!(
        contact.contains("sip:alice@127.0.0.1:5070") && contact.contains("expires=600"),
        "{contact}"
    );
    let stored = h.store.load_bindings().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].authenticated_user.as_deref(), Some("alice"));
    // Wrong password: challenged again, nothing stored for bob.
    let r = own(Method::Register, "sip:sip.test", "sip:bob@sip.test")
        .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    let resp = with_auth(&h, r, "bob", "wrong", 5080).await;
    assert_eq!(resp.code(), 401);
    // Bob's HA1 (MD5) works when he answers the MD5 challenge.
    let r = own(Method::Register, "sip:sip.test", "sip:bob@sip.test")
        .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    let first = h.tu.handle_request(r.build(), src(5080)).await.unwrap();
    let md5 = first
        .header_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .find(|c| c.algorithm == digest::Algorithm::Md5)
        .unwrap();
    let creds = digest::respond(&md5, "REGISTER", "sip:sip.test", "bob", "builder", "x", 1);
    let mut r = r;
    r.cseq = 2;
    let r = r.h(HeaderName::Authorization, &creds.to_header());
    assert_eq!(code(&h, &r, src(5080)).await, 200);
}

/// Alice authenticated as alice cannot register bob's AOR (403), and 423 carries
/// Min-Expires.
#[tokio::test]
async fn register_identity_and_min_expires() {
    let h = harness();
    let r = own(Method::Register, "sip:sip.test", "sip:bob@sip.test")
        .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    assert_eq!(
        with_auth(&h, r, "alice", "wonderland", 5070).await.code(),
        403
    );
    let r = register("<sip:alice@127.0.0.1:5070>", "5");
    let resp = with_auth(&h, r, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 423);
    assert_eq!(resp.header(HeaderName::MinExpires), Some("60"));
}

/// RFC 7616 s3.4.6: credentials computed for another Request-URI are refused (400), and
/// a replayed Authorization (same nonce count) is challenged again.
#[tokio::test]
async fn digest_uri_mismatch_and_replay() {
    let h = harness();
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    let first = h.tu.handle_request(r.build(), src(5070)).await.unwrap();
    let ch = first
        .header_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v).unwrap())
        .next()
        .unwrap();
    // (CSeq, the digest-uri the credentials were computed for, the answer): another
    // Request-URI, the right one, the right one replayed.
    for (cseq, uri, want) in [
        (2, "sip:other.test", 400),
        (3, "sip:sip.test", 200),
        (4, "sip:sip.test", 401),
    ] {
        let creds = digest::respond(&ch, "REGISTER", uri, "alice", "wonderland", "c", 1);
        let mut r = register("<sip:alice@127.0.0.1:5070>", "600");
        r.cseq = cseq;
        let r = r.h(HeaderName::Authorization, &creds.to_header());
        assert_eq!(code(&h, &r, src(5070)).await, want, "CSeq {cseq}, {uri}");
    }
}

/// Registrations and subscription dialogs survive a restart through the store.
#[tokio::test]
async fn restart_restores_bindings_and_dialogs() {
    let store = Arc::new(MemoryStore::new());
    let h = harness_with(config(), store.clone());
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(
        with_auth(&h, r, "alice", "wonderland", 5070).await.code(),
        200
    );
    let s = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    assert_eq!(code(&h, &s, peer(6000)).await, 200);
    settle().await;
    drop(h);
    let h2 = harness_with(config(), store);
    h2.tu.restore().await.unwrap();
    // Alice's flow is still trusted, and a MESSAGE to her is forked to her binding.
    let m = Message::new(
        TransId(1),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:alice@sip.test").unwrap(),
        "text/plain",
        b"still there?".to_vec(),
    );
    assert_eq!(
        h2.tu.deliver(Operation::Message(m)).await.status.code,
        StatusCode::OK
    );
    let n = Notify {
        trans_id: TransId(2),
        watcher: Address::parse("sip:carol@other.test").unwrap(),
        target: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
        state: SubscriptionState::Active { expires: 100 },
        presence: None,
    };
    assert_eq!(
        h2.tu.deliver(Operation::Notify(n)).await.status.code,
        StatusCode::OK
    );
    settle().await;
    let sent = h2.wire.sent();
    let notify = sent
        .iter()
        .find(|(r, _)| r.method() == &Method::Notify)
        .unwrap();
    assert_eq!(notify.0.cseq().seq, 2, "CSeq continues after the restart");
}

/// Robustness: every RFC 4475 torture message that parses as a request, with its method
/// turned into each method the TU handles, gets a final response from the TU (no panic,
/// no hang). Skips when the shared corpus is absent.
#[tokio::test]
async fn rfc4475_messages_as_every_method_get_an_answer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpora/rfc4475-sip-torture/messages");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("SKIPPED: {} not found", dir.display());
        return;
    };
    let h = harness();
    let mut answered = 0;
    for e in entries.flatten() {
        let raw = std::fs::read(e.path()).unwrap();
        for method in [
            "MESSAGE",
            "REGISTER",
            "SUBSCRIBE",
            "PUBLISH",
            "NOTIFY",
            "OPTIONS",
        ] {
            let text = String::from_utf8_lossy(&raw).replace("INVITE", method);
            let Ok(cpim_sip::codec::SipMessage::Request(req)) =
                cpim_sip::codec::SipMessage::parse(bytes::Bytes::from(text.into_bytes()))
            else {
                continue;
            };
            let resp =
                tokio::time::timeout(Duration::from_secs(5), h.tu.handle_request(req, src(5999)))
                    .await
                    .expect("the TU answers in time")
                    .expect("the TU answers");
            assert!(
                (200..700).contains(&resp.code()),
                "{:?}: {}",
                e.path(),
                resp.code()
            );
            answered += 1;
        }
    }
    settle().await;
    assert!(answered > 50, "only {answered} requests were tried");
}
