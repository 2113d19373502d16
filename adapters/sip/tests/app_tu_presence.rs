//! The transaction user driven in process (harness in `common/tu.rs`): PUBLISH (RFC 3903), the
//! notifier for SIP watchers and the subscriber toward SIP presence agents (RFC 6665,
//! RFC 3856).

mod common;

use cpim_core::StatusCode;
use std::sync::Arc;

use common::tu::*;
use cpim_core::address::Address;
use cpim_core::model::{Notify, Operation, Subscribe, SubscriptionState, TransId};
use cpim_core::presence::{Basic, Presence, Tuple};
use cpim_sip::app::store::{MemoryStore, SipStore};
use cpim_sip::codec::{HeaderName, Method, Request};

/// RFC 3903: initial PUBLISH gets an ETag, refresh with SIP-If-Match and no body gets a
/// new one, an unknown ETag gets 412, removal with Expires: 0; each reaches the core as
/// a Publish.
#[tokio::test]
async fn publish_etag_lifecycle() {
    let h = harness();
    let p = own(Method::Publish, "sip:alice@sip.test", "sip:alice@sip.test")
        .h(HeaderName::Event, "presence")
        .h(HeaderName::Expires, "600")
        .body("application/pidf+xml", &pidf("pres:alice@sip.test", "open"));
    let resp = with_auth(&h, p, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 200);
    let etag = resp.header(HeaderName::SipEtag).unwrap().to_owned();
    assert_eq!(resp.expires(), Some(600));
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Operation::Publish(p) = ops.last().unwrap() else {
            panic!()
        };
        assert!(p.presence.is_available());
        assert_eq!(p.expires, 600);
    }
    let refresh = own(Method::Publish, "sip:alice@sip.test", "sip:alice@sip.test")
        .h(HeaderName::Event, "presence")
        .h(HeaderName::SipIfMatch, &etag)
        .h(HeaderName::Expires, "600");
    let resp = with_auth(&h, refresh, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 200);
    let etag2 = resp.header(HeaderName::SipEtag).unwrap().to_owned();
    assert_ne!(etag, etag2);
    let stale = own(Method::Publish, "sip:alice@sip.test", "sip:alice@sip.test")
        .h(HeaderName::Event, "presence")
        .h(HeaderName::SipIfMatch, &etag);
    assert_eq!(
        with_auth(&h, stale, "alice", "wonderland", 5070)
            .await
            .code(),
        412
    );
    let remove = own(Method::Publish, "sip:alice@sip.test", "sip:alice@sip.test")
        .h(HeaderName::Event, "presence")
        .h(HeaderName::SipIfMatch, &etag2)
        .h(HeaderName::Expires, "0");
    assert_eq!(
        with_auth(&h, remove, "alice", "wonderland", 5070)
            .await
            .code(),
        200
    );
    let ops = h.ingress.ops.lock().unwrap();
    let Operation::Publish(p) = ops.last().unwrap() else {
        panic!()
    };
    assert!(p.presence.tuples.is_empty());
    assert_eq!(p.expires, 0);
    assert!(h
        .store
        .load_publications()
        .now_or_never()
        .unwrap()
        .unwrap()
        .is_empty());
}

/// PUBLISH with another event package: 489; for another user: 403; short: 423.
#[tokio::test]
async fn publish_refusals() {
    let h = harness();
    let pidf = pidf("pres:alice@sip.test", "open");
    // (From, Event, Expires, who answers a challenge, the answer, its Min-Expires).
    let cases = [
        ("alice", "dialog", None, None, 489, None),
        (
            "alice",
            "presence",
            Some("1"),
            Some(("alice", "wonderland", 5070)),
            423,
            Some("60"),
        ),
        (
            "bob",
            "presence",
            None,
            Some(("bob", "builder", 5080)),
            403,
            None,
        ),
    ];
    for (from, event, expires, auth, want, min_expires) in cases {
        let mut p = Req::new(
            Method::Publish,
            "sip:alice@sip.test",
            &format!("sip:{from}@sip.test"),
            "sip:alice@sip.test",
        )
        .h(HeaderName::Event, event);
        if let Some(e) = expires {
            p = p.h(HeaderName::Expires, e);
        }
        let p = p.body("application/pidf+xml", &pidf);
        let r = match auth {
            Some((user, pw, port)) => with_auth(&h, p, user, pw, port).await,
            None => h.tu.handle_request(p.build(), src(5070)).await.unwrap(),
        };
        assert_eq!(r.code(), want, "{from} {event}");
        assert_eq!(
            r.header(HeaderName::MinExpires),
            min_expires,
            "{from} {event}"
        );
    }
}

/// RFC 6665 / RFC 3856 notifier: SUBSCRIBE creates a dialog, the core gets Subscribe,
/// 200 with To-tag, immediate NOTIFY; a core Notify becomes a NOTIFY with a PIDF body;
/// unsubscribe ends it and tells the core; unknown event: 489.
#[tokio::test]
async fn subscribe_notify_unsubscribe() {
    let h = harness();
    let bad = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "dialog")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    assert_eq!(code(&h, &bad, peer(6000)).await, 489);
    let s = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Expires, "600")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    let resp = h.tu.handle_request(s.build(), peer(6000)).await.unwrap();
    assert_eq!(resp.code(), 200);
    assert_eq!(resp.expires(), Some(600));
    let tag = resp.to_tag().unwrap().to_owned();
    settle().await;
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Operation::Subscribe(sub) = &ops[0] else {
            panic!()
        };
        assert_eq!(sub.duration, 600);
        assert_eq!(sub.target.to_string(), "sip:romeo@xmpp.test");
    }
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 1, "immediate NOTIFY");
    let n = &sent[0].0;
    assert_eq!(n.method(), &Method::Notify);
    assert_eq!(n.uri_str(), "sip:carol@127.0.0.1:6000");
    assert_eq!(n.from_tag(), Some(tag.as_str()));
    assert_eq!(
        n.header(HeaderName::SubscriptionState),
        Some("active;expires=600")
    );
    // The core sends presence.
    let notify = Notify {
        trans_id: TransId(5),
        watcher: Address::parse("sip:carol@other.test").unwrap(),
        target: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
        state: SubscriptionState::Active { expires: 600 },
        presence: Some(Presence {
            tuples: vec![Tuple {
                id: "r1".into(),
                basic: Some(Basic::Open),
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    assert_eq!(
        h.tu.deliver(Operation::Notify(notify.clone()))
            .await
            .status
            .code,
        StatusCode::OK
    );
    settle().await;
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 2);
    let n = &sent[1].0;
    assert_eq!(n.cseq().seq, 2);
    assert_eq!(n.content_type(), Some("application/pidf+xml"));
    let body = std::str::from_utf8(n.body()).unwrap();
    assert!(body.contains("<basic>open</basic>"), "{body}");
    assert!(body.contains("entity=\"pres:romeo@xmpp.test\""), "{body}");
    // Unsubscribe in dialog.
    let mut u = Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Expires, "0")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>");
    u.to = format!("<sip:romeo@xmpp.test>;tag={tag}");
    u.cseq = 2;
    let resp = h.tu.handle_request(u.build(), peer(6000)).await.unwrap();
    assert_eq!(resp.code(), 200);
    settle().await;
    let sent = h.wire.sent();
    assert!(sent[2]
        .0
        .header(HeaderName::SubscriptionState)
        .unwrap()
        .starts_with("terminated"));
    assert!(matches!(
        h.ingress.ops.lock().unwrap().last(),
        Some(Operation::Unsubscribe(_))
    ));
    // A Notify for the ended subscription reaches nobody.
    assert_eq!(
        h.tu.deliver(Operation::Notify(notify)).await.status.code,
        StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST
    );
}

/// Subscriber side: deliver(Subscribe) for a SIP presentity sends SUBSCRIBE; the
/// NOTIFY that comes back reaches the core as a Notify with the decoded PIDF;
/// deliver(Unsubscribe) sends Expires: 0 in the dialog.
#[tokio::test]
async fn subscriber_toward_sip_presence_agent() {
    let mut c = config();
    c.remote_domains = vec!["kamailio.test".into()];
    let h = harness_with(c, Arc::new(MemoryStore::new()));
    h.wire.answer_next(|_| {
        (
            200,
            vec![
                (HeaderName::Expires, "300".into()),
                (HeaderName::Contact, "<sip:carol@127.0.0.1:7000>".into()),
            ],
        )
    });
    let s = Subscribe {
        trans_id: TransId(1),
        watcher: Address::parse("juliet@xmpp.test").unwrap(),
        target: Address::parse("sip:carol@kamailio.test").unwrap(),
        duration: 3600,
    };
    let out = h.tu.deliver(Operation::Subscribe(s.clone())).await;
    assert_eq!(out.status.code, StatusCode::OK);
    let sent = h.wire.sent();
    let sub = &sent[0].0;
    assert_eq!(sub.method(), &Method::Subscribe);
    assert_eq!(sub.header(HeaderName::Event), Some("presence"));
    assert_eq!(sub.expires(), Some(3600));
    let call_id = sub.call_id().to_owned();
    let local_tag = sub.from_tag().unwrap().to_owned();
    // The presence agent's NOTIFY: we built its To from our From.
    let n = Request::builder(&Method::Notify, "sip:gateway@127.0.0.1:5060")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bKn1",
        )
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:carol@kamailio.test>;tag=remote1")
        .header(
            HeaderName::To,
            &format!("<sip:juliet@xmpp.test>;tag={local_tag}"),
        )
        .header(HeaderName::CallId, &call_id)
        .header(HeaderName::CSeq, "1 NOTIFY")
        .header(HeaderName::Event, "presence")
        .header(HeaderName::SubscriptionState, "active;expires=300")
        .body(
            "application/pidf+xml",
            pidf("pres:carol@kamailio.test", "closed"),
        )
        .build_request()
        .unwrap();
    assert_eq!(h.tu.handle_request(n, src(7000)).await.unwrap().code(), 200);
    settle().await;
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Some(Operation::Notify(n)) = ops.last() else {
            panic!("{ops:?}")
        };
        assert_eq!(n.state, SubscriptionState::Active { expires: 300 });
        assert_eq!(n.watcher.to_string(), "juliet@xmpp.test");
        let p = n.presence.as_ref().unwrap();
        assert_eq!(p.tuples[0].basic, Some(Basic::Closed));
    }
    // Unknown dialog: 481.
    let bogus = Request::builder(&Method::Notify, "sip:gateway@127.0.0.1:5060")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:7000;branch=z9hG4bKn2",
        )
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, "<sip:carol@kamailio.test>;tag=remote1")
        .header(HeaderName::To, "<sip:juliet@xmpp.test>;tag=nope")
        .header(HeaderName::CallId, "other")
        .header(HeaderName::CSeq, "1 NOTIFY")
        .header(HeaderName::Event, "presence")
        .header(HeaderName::SubscriptionState, "active")
        .build_request()
        .unwrap();
    assert_eq!(
        h.tu.handle_request(bogus, src(7000)).await.unwrap().code(),
        481
    );
    // Unsubscribe.
    assert_eq!(
        h.tu.deliver(Operation::Unsubscribe(s)).await.status.code,
        StatusCode::OK
    );
    settle().await;
    let sent = h.wire.sent();
    let last = &sent.last().unwrap().0;
    assert_eq!(last.expires(), Some(0));
    assert_eq!(last.uri_str(), "sip:carol@127.0.0.1:7000");
    assert_eq!(last.to_tag(), Some("remote1"));
    assert_eq!(last.call_id(), call_id);
}
