//! The transaction user driven in process (harness in `common/tu.rs`): partial
//! notification (RFC 5263) and event notification filters (RFC 4660) on the wire.

mod common;

use cpim_core::address::Address;
use cpim_core::model::{Notify, Operation, SubscriptionState, TransId};
use cpim_core::pidf_diff::{self, Document};
use cpim_core::presence::{Basic, Presence, Tuple};
use cpim_core::StatusCode;

use common::tu::*;
use cpim_sip::app::store::MemoryStore;
use cpim_sip::codec::{HeaderName, Method};

fn subscribe() -> Req {
    Req::new(
        Method::Subscribe,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Event, "presence")
    .h(HeaderName::Expires, "600")
    .h(HeaderName::Contact, "<sip:carol@127.0.0.1:6000>")
}

fn notify(basic: Basic) -> Operation {
    Operation::Notify(Notify {
        trans_id: TransId(5),
        watcher: Address::parse("sip:carol@other.test").unwrap(),
        target: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
        state: SubscriptionState::Active { expires: 600 },
        presence: Some(Presence {
            tuples: vec![Tuple {
                id: "r1".into(),
                basic: Some(basic),
                ..Default::default()
            }],
            ..Default::default()
        }),
    })
}

/// RFC 5263 s4 on the wire: `Accept: application/pidf+xml, application/pidf-diff+xml`
/// gets a `<pidf-full>` NOTIFY, then a `<pidf-diff>` with the next version, both as
/// `application/pidf-diff+xml`.
#[tokio::test]
async fn rfc5263_partial_notifies_on_the_wire() {
    // No RFC 3856 s6.4 rate limit, so that each change is a NOTIFY at once.
    let mut c = config();
    c.notify_min_interval = 0;
    let h = harness_with(c, std::sync::Arc::new(MemoryStore::new()));
    let s = subscribe().h(
        HeaderName::Accept,
        "application/pidf+xml, application/pidf-diff+xml",
    );
    let resp = h.tu.handle_request(s.build(), peer(6000)).await.unwrap();
    assert_eq!(resp.code(), 200);
    settle().await;
    for basic in [Basic::Open, Basic::Closed] {
        assert_eq!(
            h.tu.deliver(notify(basic)).await.status.code,
            StatusCode::OK
        );
        settle().await;
    }
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 3, "initial, full state, diff");
    let docs: Vec<Document> = sent[1..]
        .iter()
        .map(|(n, _)| {
            assert_eq!(n.content_type(), Some(pidf_diff::CONTENT_TYPE));
            pidf_diff::parse(n.body()).unwrap()
        })
        .collect();
    let [Document::Full(full), Document::Diff(diff)] = docs.as_slice() else {
        panic!("{docs:?}")
    };
    assert_eq!((full.version, diff.version), (1, 2));
    assert_eq!(diff.entity, "pres:romeo@xmpp.test");
    let applied = pidf_diff::apply(&full.presence, diff).unwrap();
    assert_eq!(applied.tuples[0].basic, Some(Basic::Closed));
}

/// RFC 4660 s3.3 on the wire: a filter with a namespace the gateway does not know gets
/// 488 and no subscription reaches the core; a filter it can apply is accepted.
#[tokio::test]
async fn rfc4660_filter_bodies_on_the_wire() {
    let h = harness();
    let unknown = r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter" package="presence">
  <filter id="1"><what><include type="namespace">urn:example:not-known</include></what></filter>
</filter-set>"#;
    let s = subscribe().body("application/simple-filter+xml", unknown.as_bytes());
    let resp = h.tu.handle_request(s.build(), peer(6000)).await.unwrap();
    assert_eq!(resp.code(), 488);
    assert!(h.ingress.ops.lock().unwrap().is_empty());
    let wrong_type = subscribe().body("text/plain", b"x");
    let resp =
        h.tu.handle_request(wrong_type.build(), peer(6000))
            .await
            .unwrap();
    assert_eq!(resp.code(), 415);
    assert_eq!(
        resp.header(HeaderName::Accept),
        Some("application/simple-filter+xml")
    );
    let ok = r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter" package="presence">
  <filter id="1"><what><include type="namespace">urn:ietf:params:xml:ns:pidf</include></what></filter>
</filter-set>"#;
    let s = subscribe().body("application/simple-filter+xml", ok.as_bytes());
    let resp = h.tu.handle_request(s.build(), peer(6000)).await.unwrap();
    assert_eq!(resp.code(), 200);
    settle().await;
    assert!(matches!(
        h.ingress.ops.lock().unwrap().last(),
        Some(Operation::Subscribe(_))
    ));
}
