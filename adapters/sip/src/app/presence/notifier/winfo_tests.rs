//! The `presence.winfo` notifier (RFC 3857, RFC 3858) in virtual time.

use super::*;
use cpim_core::watcherinfo::{self, DocState, Watcher, WatcherEvent, WatcherInfo, WatcherStatus};

fn notifier() -> Notifier {
    Notifier::new(
        ExpiryLimits {
            min: 60,
            max: 3600,
            default: 3600,
        },
        2,
    )
}

fn req(from: &str, expires: Option<u32>, to_tag: Option<&str>, cseq: u32) -> SubscribeRequest {
    SubscribeRequest {
        call_id: "wcid".into(),
        from_uri: from.into(),
        from_tag: "ft".into(),
        to_uri: "sip:alice@sip.test".into(),
        to_tag: to_tag.map(str::to_owned),
        event: Some("presence.winfo".into()),
        expires,
        cseq,
        contact: Some("sip:alice@192.0.2.1:5070".into()),
        record_route: Vec::new(),
        flow: None,
        watcher: Address::parse(from).unwrap(),
        presentity: Address::parse("sip:alice@sip.test").unwrap(),
    }
}

fn doc(watchers: &[(&str, WatcherStatus, WatcherEvent)]) -> WatcherInfo {
    WatcherInfo {
        version: 0,
        state: DocState::Full,
        lists: vec![watcherinfo::WatcherList {
            resource: "sip:alice@sip.test".into(),
            package: "presence".into(),
            watchers: watchers
                .iter()
                .map(|(uri, status, event)| Watcher {
                    uri: (*uri).into(),
                    id: format!("id-{uri}"),
                    status: status.clone(),
                    event: event.clone(),
                    display_name: None,
                    expiration: None,
                    duration_subscribed: None,
                    lang: None,
                })
                .collect(),
            extensions: Vec::new(),
        }],
        extensions: Vec::new(),
    }
}

/// The NOTIFYs in the output, with their decoded documents.
fn sent(n: &mut Notifier) -> Vec<(String, Option<WatcherInfo>)> {
    std::iter::from_fn(|| n.poll_output())
        .filter_map(|o| match o {
            NotifierOutput::Notify(x) => {
                let body = x.winfo.expect("a presence.winfo NOTIFY");
                let d = (!body.is_empty()).then(|| watcherinfo::parse(body.as_bytes()).unwrap());
                Some((x.subscription_state, d))
            }
            _ => None,
        })
        .collect()
}

fn pending_romeo() -> WatcherInfo {
    doc(&[(
        "xmpp:romeo@xmpp.test",
        WatcherStatus::Pending,
        WatcherEvent::Subscribe,
    )])
}

/// RFC 3857 s4.6: only the presentity may subscribe to its watcher information; others
/// get 403; a resource without watcher information 404; the event is recognized.
#[test]
fn rfc3857_s4_6_only_the_presentity_sees_its_watchers() {
    assert!(is_winfo(Some("presence.winfo;id=1")));
    assert!(!is_winfo(Some("presence")));
    let mut n = notifier();
    let d = n.handle_winfo_subscribe(
        req("sip:eve@sip.test", Some(600), None, 1),
        "lt",
        1000,
        Some(pending_romeo()),
    );
    assert!(
        matches!(d, SubscribeDecision::Reject { code: 403, .. }),
        "{d:?}"
    );
    let d = n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(600), None, 1),
        "lt",
        1000,
        None,
    );
    assert!(
        matches!(d, SubscribeDecision::Reject { code: 404, .. }),
        "{d:?}"
    );
    assert!(sent(&mut n).is_empty());
    assert!(n.winfo_watched().is_empty());
}

/// RFC 3858 s3, s4: the first NOTIFY has the full state with version 0; each change a
/// further full document with the next version; no NOTIFY when nothing changed; a
/// refresh re-sends the state; the versions follow the dialog's CSeq, so a restored
/// dialog keeps counting.
#[test]
fn rfc3858_s4_full_state_then_changes_with_incrementing_versions() {
    let mut n = notifier();
    let d = n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(600), None, 1),
        "lt",
        1000,
        Some(pending_romeo()),
    );
    assert_eq!(d, SubscribeDecision::Answer { expires: 600 });
    let persisted: Vec<DialogRecord> = std::iter::from_fn(|| n.poll_output())
        .filter_map(|o| match o {
            NotifierOutput::Notify(x) => {
                let doc = watcherinfo::parse(x.winfo.unwrap().as_bytes()).unwrap();
                assert_eq!(x.subscription_state, "active;expires=600");
                assert_eq!((doc.version, doc.state), (0, DocState::Full));
                assert_eq!(doc.lists[0].watchers[0].status, WatcherStatus::Pending);
                None
            }
            NotifierOutput::Persist(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(persisted.len(), 1);
    assert_eq!(persisted[0].role, DialogRole::WinfoNotifier);
    let key = persisted[0].key();
    assert_eq!(
        n.winfo_watched(),
        [(key.clone(), Address::parse("sip:alice@sip.test").unwrap())]
    );

    // Unchanged: nothing. Decided: the next version.
    n.winfo_update(&key, &pending_romeo(), 1001);
    assert!(sent(&mut n).is_empty());
    let approved = doc(&[(
        "xmpp:romeo@xmpp.test",
        WatcherStatus::Active,
        WatcherEvent::Approved,
    )]);
    n.winfo_update(&key, &approved, 1010);
    let s = sent(&mut n);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "active;expires=590");
    let d1 = s[0].1.clone().unwrap();
    assert_eq!(d1.version, 1);
    assert_eq!(d1.lists[0].watchers[0].event, WatcherEvent::Approved);

    // A refresh: the state again, version 2.
    let d = n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(600), Some("lt"), 2),
        "unused",
        1020,
        Some(approved.clone()),
    );
    assert_eq!(d, SubscribeDecision::Answer { expires: 600 });
    let s = sent(&mut n);
    assert_eq!(s[0].1.as_ref().unwrap().version, 2);

    // Restored from the store: the first poll re-sends the state, version 3.
    let mut rec = persisted[0].clone();
    rec.local_cseq = 3;
    let mut m = notifier();
    m.restore(vec![rec], 1030);
    assert_eq!(m.len(), 1, "counted with the others (caps)");
    m.winfo_update(&key, &approved, 1030);
    let s = sent(&mut m);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].1.as_ref().unwrap().version, 3);
}

/// RFC 6665 s4.2.1.4 / s4.2.2: `Expires: 0` in the dialog ends it with a final NOTIFY
/// (terminated;reason=timeout, the state); expiry does the same; a fetch outside a
/// dialog gets one final NOTIFY and keeps nothing; a NOTIFY answered 481 ends it.
#[test]
fn rfc6665_s4_2_unsubscribe_expiry_fetch_and_failed_notify_end_it() {
    let mut n = notifier();
    n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(600), None, 1),
        "lt",
        1000,
        Some(pending_romeo()),
    );
    sent(&mut n);
    let d = n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(0), Some("lt"), 2),
        "x",
        1001,
        Some(pending_romeo()),
    );
    assert_eq!(d, SubscribeDecision::Answer { expires: 0 });
    let s = sent(&mut n);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "terminated;reason=timeout");
    assert!(s[0].1.is_some());
    assert!(n.winfo_watched().is_empty());

    n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(60), None, 1),
        "lt2",
        1000,
        Some(pending_romeo()),
    );
    sent(&mut n);
    assert_eq!(n.poll_timeout(), Some(1060));
    n.handle_timeout(1060);
    let s = sent(&mut n);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "terminated;reason=timeout");
    assert!(n.winfo_watched().is_empty());

    let d = n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(0), None, 1),
        "lt3",
        1000,
        Some(pending_romeo()),
    );
    assert_eq!(d, SubscribeDecision::Answer { expires: 0 });
    let s = sent(&mut n);
    assert_eq!(s[0].0, "terminated;reason=timeout");
    assert!(n.winfo_watched().is_empty());

    n.handle_winfo_subscribe(
        req("sip:alice@sip.test", Some(600), None, 1),
        "lt4",
        1000,
        Some(pending_romeo()),
    );
    sent(&mut n);
    n.notify_answered("wcid|lt4", 481);
    assert!(n.winfo_watched().is_empty());
    assert!(std::iter::from_fn(|| n.poll_output())
        .any(|o| matches!(o, NotifierOutput::Forget(k) if k == "wcid|lt4")));
}
