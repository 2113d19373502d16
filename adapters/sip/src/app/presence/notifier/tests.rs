//! Tests of the notifier state machine in virtual time.

use super::*;
use cpim_core::model::TerminationReason;
use cpim_core::presence::{Basic, Tuple};

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

fn req(expires: Option<u32>, to_tag: Option<&str>, cseq: u32) -> SubscribeRequest {
    SubscribeRequest {
        call_id: "cid".into(),
        from_uri: "sip:watcher@sip.test".into(),
        from_tag: "ft".into(),
        to_uri: "sip:romeo@xmpp.test".into(),
        to_tag: to_tag.map(str::to_owned),
        event: Some("presence".into()),
        expires,
        cseq,
        contact: Some("sip:watcher@192.0.2.1:5070".into()),
        record_route: vec!["<sip:proxy.test;lr>".into()],
        flow: None,
        watcher: Address::parse("sip:watcher@sip.test").unwrap(),
        presentity: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
    }
}

fn drain(n: &mut Notifier) -> Vec<NotifierOutput> {
    std::iter::from_fn(|| n.poll_output()).collect()
}

fn notifies(out: &[NotifierOutput]) -> Vec<&OutgoingNotify> {
    out.iter()
        .filter_map(|o| match o {
            NotifierOutput::Notify(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn open() -> Presence {
    Presence {
        tuples: vec![Tuple {
            id: "t".into(),
            basic: Some(Basic::Open),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn core_notify(state: SubscriptionState, presence: Option<Presence>) -> Notify {
    Notify {
        trans_id: Default::default(),
        watcher: Address::parse("im:watcher@sip.test").unwrap(),
        target: Address::parse("romeo@xmpp.test").unwrap(),
        state,
        presence,
    }
}

/// RFC 6665 s4.1.2.4 (the NOTIFY may precede the 2xx) seen from the notifier: the
/// presentity's side answers before the core's outcome for the SUBSCRIBE is back. The
/// Notify is neither refused (481) nor lost: it follows the 2xx's first NOTIFY.
#[test]
fn notify_before_the_core_answered_is_kept_and_follows_the_2xx() {
    let mut n = notifier();
    let SubscribeDecision::Submit { key, .. } =
        n.handle_subscribe(req(Some(600), None, 1), "lt", 1000)
    else {
        panic!()
    };
    let early = core_notify(SubscriptionState::Active { expires: 0 }, Some(open()));
    assert_eq!(n.handle_core_notify(&early, 1000), 1, "accepted, not 481");
    // A later state-only Notify keeps the presence seen before.
    let approve = core_notify(SubscriptionState::Active { expires: 0 }, None);
    assert_eq!(n.handle_core_notify(&approve, 1000), 1);
    assert!(
        notifies(&drain(&mut n)).is_empty(),
        "nothing before the 2xx"
    );
    assert_eq!(n.core_answered(&key, 202, 1000), Some((202, 600)));
    let out = drain(&mut n);
    let ns = notifies(&out);
    assert_eq!(ns.len(), 2, "{ns:?}");
    assert_eq!(ns[0].subscription_state, "pending;expires=600");
    assert_eq!(ns[1].subscription_state, "active;expires=600");
    assert_eq!(ns[1].presence, Some(open()));
    assert!(ns[0].dialog.local_cseq < ns[1].dialog.local_cseq);
}

#[test]
fn unknown_event_is_489_and_brief_is_423() {
    let mut n = notifier();
    let mut r = req(None, None, 1);
    r.event = Some("dialog".into());
    assert!(matches!(
        n.handle_subscribe(r, "lt", 0),
        SubscribeDecision::Reject { code: 489, .. }
    ));
    let mut r = req(None, None, 1);
    r.event = None;
    assert!(matches!(
        n.handle_subscribe(r, "lt", 0),
        SubscribeDecision::Reject { code: 489, .. }
    ));
    assert_eq!(
        n.handle_subscribe(req(Some(5), None, 1), "lt", 0),
        SubscribeDecision::Reject {
            code: 423,
            reason: "Interval Too Brief",
            min_expires: Some(60)
        }
    );
    assert!(n.is_empty());
}

#[test]
fn subscribe_notify_refresh_expire_in_virtual_time() {
    let mut n = notifier();
    let d = n.handle_subscribe(req(Some(600), None, 1), "lt", 1000);
    let SubscribeDecision::Submit { key, duration } = d else {
        panic!("{d:?}")
    };
    assert_eq!(duration, 600);
    assert!(drain(&mut n).is_empty(), "nothing before the core answers");
    assert_eq!(n.core_answered(&key, 202, 1000), Some((202, 600)));
    let out = drain(&mut n);
    let ns = notifies(&out);
    assert_eq!(ns.len(), 1);
    assert_eq!(ns[0].subscription_state, "pending;expires=600");
    assert_eq!(ns[0].dialog.local_cseq, 1);
    assert_eq!(
        ns[0].dialog.route_set,
        vec!["<sip:proxy.test;lr>".to_owned()]
    );
    assert_eq!(ns[0].dialog.remote_target, "sip:watcher@192.0.2.1:5070");
    // The core authorizes and sends presence.
    assert_eq!(
        n.handle_core_notify(
            &core_notify(SubscriptionState::Active { expires: 0 }, Some(open())),
            1100
        ),
        1
    );
    let out = drain(&mut n);
    let ns = notifies(&out);
    assert_eq!(ns[0].subscription_state, "active;expires=500");
    assert_eq!(ns[0].presence, Some(open()));
    assert_eq!(ns[0].dialog.local_cseq, 2);
    // Refresh in dialog: 200 and a NOTIFY with the last state.
    assert_eq!(
        n.handle_subscribe(req(Some(600), Some("lt"), 2), "x", 1200),
        SubscribeDecision::Answer { expires: 600 }
    );
    let out = drain(&mut n);
    assert_eq!(notifies(&out)[0].subscription_state, "active;expires=600");
    assert_eq!(notifies(&out)[0].presence, Some(open()));
    // Old CSeq in dialog: 500; unknown tag: 481.
    assert!(matches!(
        n.handle_subscribe(req(Some(600), Some("lt"), 2), "x", 1201),
        SubscribeDecision::Reject { code: 500, .. }
    ));
    assert!(matches!(
        n.handle_subscribe(req(Some(600), Some("zz"), 3), "x", 1201),
        SubscribeDecision::Reject { code: 481, .. }
    ));
    // Time passes without refresh.
    assert_eq!(n.poll_timeout(), Some(1800));
    n.handle_timeout(1799);
    assert!(drain(&mut n).is_empty());
    n.handle_timeout(1800);
    let out = drain(&mut n);
    assert_eq!(
        notifies(&out)[0].subscription_state,
        "terminated;reason=timeout"
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, NotifierOutput::Unsubscribe { .. })));
    assert!(out
        .iter()
        .any(|o| matches!(o, NotifierOutput::Forget(k) if *k == key)));
    assert!(n.is_empty());
}

#[test]
fn refused_by_core_returns_its_code() {
    let mut n = notifier();
    let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
    else {
        panic!()
    };
    assert_eq!(n.core_answered(&key, 404, 0), Some((404, 0)));
    assert!(n.is_empty());
    assert!(drain(&mut n).is_empty());
}

#[test]
fn unsubscribe_in_dialog() {
    let mut n = notifier();
    let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
    else {
        panic!()
    };
    n.core_answered(&key, 200, 0);
    drain(&mut n);
    assert_eq!(
        n.handle_subscribe(req(Some(0), Some("lt"), 2), "x", 10),
        SubscribeDecision::Answer { expires: 0 }
    );
    let out = drain(&mut n);
    assert!(notifies(&out)[0]
        .subscription_state
        .starts_with("terminated"));
    assert!(matches!(
        out.last(),
        Some(NotifierOutput::Unsubscribe { .. })
    ));
    assert!(n.is_empty());
}

#[test]
fn fetch_sends_one_notify_with_state_or_after_wait() {
    let mut n = notifier();
    let SubscribeDecision::Submit { key, duration } =
        n.handle_subscribe(req(Some(0), None, 1), "lt", 0)
    else {
        panic!()
    };
    assert_eq!(duration, 0);
    assert_eq!(n.core_answered(&key, 200, 0), Some((200, 0)));
    assert!(drain(&mut n).is_empty());
    n.handle_core_notify(
        &core_notify(SubscriptionState::Active { expires: 0 }, Some(open())),
        1,
    );
    let out = drain(&mut n);
    let ns = notifies(&out);
    assert_eq!(ns.len(), 1);
    assert_eq!(ns[0].subscription_state, "terminated;reason=timeout");
    assert_eq!(ns[0].presence, Some(open()));
    assert!(n.is_empty());
    // Second fetch: nothing arrives, the wait ends.
    let mut r = req(Some(0), None, 1);
    r.call_id = "c2".into();
    let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(r, "lt2", 10) else {
        panic!()
    };
    n.core_answered(&key, 200, 10);
    assert_eq!(n.poll_timeout(), Some(12));
    n.handle_timeout(12);
    let out = drain(&mut n);
    assert_eq!(notifies(&out)[0].presence, None);
    assert!(!out
        .iter()
        .any(|o| matches!(o, NotifierOutput::Unsubscribe { .. })));
}

#[test]
fn core_termination_and_481_end_the_dialog() {
    let mut n = notifier();
    let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
    else {
        panic!()
    };
    n.core_answered(&key, 200, 0);
    drain(&mut n);
    n.handle_core_notify(
        &core_notify(
            SubscriptionState::Terminated(TerminationReason::Rejected),
            None,
        ),
        5,
    );
    let out = drain(&mut n);
    assert_eq!(
        notifies(&out)[0].subscription_state,
        "terminated;reason=rejected"
    );
    assert!(n.is_empty());

    let mut r = req(None, None, 1);
    r.call_id = "c3".into();
    let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(r, "lt", 0) else {
        panic!()
    };
    n.core_answered(&key, 200, 0);
    drain(&mut n);
    n.notify_answered(&key, 200);
    assert_eq!(n.len(), 1);
    n.notify_answered(&key, 481);
    assert!(n.is_empty());
    assert!(matches!(
        drain(&mut n).last(),
        Some(NotifierOutput::Unsubscribe { .. })
    ));
}

/// RFC 3856 s6.4: state changes closer than the interval are coalesced; the latest
/// goes out when the interval ends.
#[test]
fn notifications_are_rate_limited_and_coalesced() {
    let mut n = notifier().with_min_interval(5);
    let SubscribeDecision::Submit { key, .. } =
        n.handle_subscribe(req(Some(600), None, 1), "lt", 0)
    else {
        panic!()
    };
    n.core_answered(&key, 200, 0);
    drain(&mut n);
    let mut closed = open();
    closed.tuples[0].basic = Some(Basic::Closed);
    let active = || SubscriptionState::Active { expires: 600 };
    n.handle_core_notify(&core_notify(active(), Some(open())), 10);
    assert_eq!(notifies(&drain(&mut n)).len(), 1);
    n.handle_core_notify(&core_notify(active(), Some(closed.clone())), 11);
    n.handle_core_notify(&core_notify(active(), Some(open())), 12);
    n.handle_core_notify(&core_notify(active(), Some(closed.clone())), 13);
    assert!(notifies(&drain(&mut n)).is_empty(), "held back");
    assert_eq!(n.poll_timeout(), Some(15));
    n.handle_timeout(15);
    let out = drain(&mut n);
    let ns = notifies(&out);
    assert_eq!(ns.len(), 1, "three changes, one NOTIFY");
    assert_eq!(ns[0].presence, Some(closed));
    assert_eq!(ns[0].subscription_state, "active;expires=585");
    assert_eq!(ns[0].dialog.local_cseq, 3);
    // A change after the interval goes out at once.
    n.handle_core_notify(&core_notify(active(), Some(open())), 21);
    assert_eq!(notifies(&drain(&mut n)).len(), 1);
}

#[test]
fn restore_keeps_live_notifier_dialogs() {
    let mut n = notifier();
    let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(req(None, None, 1), "lt", 0)
    else {
        panic!()
    };
    n.core_answered(&key, 200, 0);
    let recs: Vec<DialogRecord> = drain(&mut n)
        .into_iter()
        .filter_map(|o| match o {
            NotifierOutput::Persist(r) => Some(r),
            _ => None,
        })
        .collect();
    let mut n2 = notifier();
    n2.restore(recs.clone(), 100);
    assert_eq!(n2.len(), 1);
    assert_eq!(
        n2.handle_core_notify(
            &core_notify(SubscriptionState::Active { expires: 1 }, Some(open())),
            100
        ),
        1
    );
    let out = drain(&mut n2);
    assert_eq!(notifies(&out)[0].dialog.local_cseq, 2);
    let mut n3 = notifier();
    n3.restore(recs, 99_999);
    assert!(n3.is_empty());
}

/// A core Notify reaches exactly the dialogs of its (watcher, presentity) pair, found
/// through the pair index, however many other subscriptions there are; a dialog that
/// ends leaves the index.
#[test]
fn core_notify_reaches_only_its_pair_through_the_index() {
    let mut n = notifier();
    let mut keys = Vec::new();
    for i in 0..200 {
        let mut r = req(Some(600), None, 1);
        r.call_id = format!("cid{i}");
        let w = if i < 2 {
            "watcher".to_owned()
        } else {
            format!("w{i}")
        };
        r.from_uri = format!("sip:{w}@sip.test");
        r.watcher = Address::parse(&format!("sip:{w}@sip.test")).unwrap();
        let SubscribeDecision::Submit { key, .. } = n.handle_subscribe(r, &format!("lt{i}"), 1000)
        else {
            panic!()
        };
        assert_eq!(n.core_answered(&key, 200, 1000), Some((200, 600)));
        keys.push(key);
    }
    drain(&mut n);
    let active = core_notify(SubscriptionState::Active { expires: 0 }, Some(open()));
    // two dialogs (two devices of watcher@sip.test) share the pair
    assert_eq!(n.handle_core_notify(&active, 1001), 2);
    let out = drain(&mut n);
    let ns = notifies(&out);
    assert_eq!(ns.len(), 2);
    assert!(ns
        .iter()
        .all(|x| x.dialog.watcher == "sip:watcher@sip.test"));
    // the first device's NOTIFY fails: its dialog ends and leaves the index
    n.notify_answered(&keys[0], 481);
    drain(&mut n);
    assert_eq!(n.handle_core_notify(&active, 1002), 1);
    let mut other = active.clone();
    other.watcher = Address::parse("sip:w7@sip.test").unwrap();
    assert_eq!(n.handle_core_notify(&other, 1003), 1);
    other.watcher = Address::parse("sip:nobody@sip.test").unwrap();
    assert_eq!(n.handle_core_notify(&other, 1003), 0);
}
