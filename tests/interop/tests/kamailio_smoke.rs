//! Harness smoke test for Kamailio as presence server (CPIM_PEER_KAMAILIO): SIPp PUBLISHes a
//! PIDF document (RFC 3903, RFC 3863) and a SIPp watcher's SUBSCRIBE (RFC 3856, RFC 6665) gets a
//! NOTIFY carrying it.

use std::time::Duration;

use cpim_interop::{require_peers, Peers, Sipp};

#[test]
fn kamailio_notifies_a_watcher_of_what_was_published() {
    let peers = require_peers!(Kamailio, Sipp);
    let kam = &peers.kamailio;
    let user = format!("carol{}", std::process::id());
    let note = format!("note-{}", std::process::id());

    let published = Sipp::new("publish_uac.xml", kam.addr)
        .service(&user)
        .key("domain", &kam.domain)
        .key("note", &note)
        .timeout(Duration::from_secs(10))
        .run(&peers)
        .unwrap();
    assert!(published.success(), "PUBLISH failed: {published}");

    let notify = watcher_notify(&peers, &user);
    assert!(notify.contains("<basic>open</basic>"), "{notify}");
    assert!(
        notify.contains(&note),
        "the NOTIFY lacks the published note:\n{notify}"
    );
    assert!(
        notify.contains(&format!("sip:{user}@{}", kam.domain)),
        "{notify}"
    );
}

/// Nobody published for this presentity: the watcher still gets its NOTIFY (subscription
/// active), and it does not claim the presentity is open.
#[test]
fn kamailio_does_not_invent_presence_for_a_silent_presentity() {
    let peers = require_peers!(Kamailio, Sipp);
    let user = format!("silent{}", std::process::id());
    let notify = watcher_notify(&peers, &user);
    assert!(notify.contains("Subscription-State: active"), "{notify}");
    assert!(!notify.contains("<basic>open</basic>"), "{notify}");
}

/// A SIPp watcher of `user` at Kamailio (RFC 3856 SUBSCRIBE): the first NOTIFY it got, from
/// its request line on.
fn watcher_notify(peers: &Peers, user: &str) -> String {
    let kam = &peers.kamailio;
    let subscribed = Sipp::new("subscribe_uac.xml", kam.addr)
        .service(user)
        .key("domain", &kam.domain)
        .arg("-trace_msg")
        .timeout(Duration::from_secs(10))
        .run(peers)
        .unwrap();
    assert!(
        subscribed.success(),
        "SUBSCRIBE/NOTIFY failed: {subscribed}"
    );
    let trace = subscribed
        .trace("_messages.log")
        .expect("SIPp wrote no message trace");
    trace
        .split("NOTIFY sip:")
        .nth(1)
        .unwrap_or_else(|| panic!("no NOTIFY in the trace:\n{trace}"))
        .to_owned()
}
