//! The engine with users of several devices (RFC 8048 s4-s5, RFC 4479 s4), in virtual
//! time.

use super::*;
use cpim_core::model::Outcome;
use cpim_core::StatusCode;

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn drain(e: &mut PresenceEngine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

/// The presence documents delivered to watchers in `acts`.
fn docs(acts: &[Action]) -> Vec<Presence> {
    acts.iter()
        .filter_map(|x| match x {
            Action::Deliver {
                op: Operation::Notify(n),
                ..
            } => n.presence.clone(),
            _ => None,
        })
        .collect()
}

fn tuples(p: &Presence) -> Vec<(String, bool)> {
    p.tuples
        .iter()
        .map(|t| (t.id.clone(), t.basic == Some(Basic::Open)))
        .collect()
}

fn engine() -> (Instant, PresenceEngine) {
    let cfg = PresenceConfig {
        policy: Policy::ApproveAll,
        ..PresenceConfig::default()
    };
    (Instant::now(), PresenceEngine::new(cfg))
}

/// What the XMPP mapping makes of a presence stanza from `bob@xmpp.test/res`.
fn stanza(res: &str, open: bool) -> Notify {
    Notify {
        trans_id: TransId(3),
        watcher: a("sip:alice@sip.test"),
        target: a("bob@xmpp.test"),
        state: SubscriptionState::Active { expires: 0 },
        presence: Some(Presence {
            entity: Some(a("xmpp:bob@xmpp.test")),
            tuples: vec![Tuple {
                id: res.into(),
                basic: Some(if open { Basic::Open } else { Basic::Closed }),
                contact: Some(format!("xmpp:bob@xmpp.test/{res}")),
                ..Tuple::default()
            }],
            ..Presence::default()
        }),
    }
}

/// A SIP watcher of bob@xmpp.test, approved; the time after it.
fn sip_watcher_of_bob(e: &mut PresenceEngine, t0: Instant) -> Instant {
    let s = Subscribe {
        trans_id: TransId(1),
        watcher: a("sip:alice@sip.test"),
        target: a("bob@xmpp.test"),
        duration: 3600,
    };
    let key = match e.handle_subscribe(t0, "sip", &s, Side::Remote("xmpp".into())) {
        SubscribeReply::Upstream { key, .. } => key,
        other => panic!("{other:?}"),
    };
    e.handle_upstream_result(t0, &key, &Outcome::ok(TransId(1)));
    let mut approve = stanza("x", true);
    approve.presence = None;
    assert_eq!(e.handle_notify(t0, "xmpp", &approve).code, StatusCode::OK);
    drain(e);
    t0 + Duration::from_secs(10)
}

/// The document the SIP watcher gets for `n` at `t` (the notify interval has passed).
fn seen(e: &mut PresenceEngine, t: Instant, n: &Notify) -> Presence {
    assert_eq!(e.handle_notify(t, "xmpp", n).code, StatusCode::OK);
    let got = docs(&drain(e));
    assert_eq!(got.len(), 1, "{got:?}");
    got.into_iter().next().unwrap()
}

/// RFC 8048 s4: two resources of one XMPP user are two tuples, newest first; one going
/// `unavailable` leaves the user open with the other; closed only when both are gone.
#[test]
fn rfc8048_s4_sip_watcher_sees_open_until_every_resource_is_gone() {
    let (t0, mut e) = engine();
    let t = sip_watcher_of_bob(&mut e, t0);
    let step = Duration::from_secs(10);
    let p = seen(&mut e, t, &stanza("phone", true));
    assert_eq!(tuples(&p), vec![("phone".into(), true)]);
    let p = seen(&mut e, t + step, &stanza("desk", true));
    assert_eq!(
        tuples(&p),
        vec![("desk".into(), true), ("phone".into(), true)]
    );
    let p = seen(&mut e, t + step * 2, &stanza("desk", false));
    assert!(p.is_available());
    assert_eq!(tuples(&p), vec![("phone".into(), true)]);
    let p = seen(&mut e, t + step * 3, &stanza("phone", false));
    assert!(!p.is_available());
    assert_eq!(p.tuples.len(), 1);
}

/// The composed state is the subscription's persisted state: after a restart the
/// resources are still there, in their order, and one leaving closes only itself.
#[test]
fn restart_keeps_the_resources_and_their_order() {
    let (t0, mut e) = engine();
    let t = sip_watcher_of_bob(&mut e, t0);
    let step = Duration::from_secs(10);
    seen(&mut e, t, &stanza("phone", true));
    assert_eq!(
        e.handle_notify(t + step, "xmpp", &stanza("desk", true))
            .code,
        StatusCode::OK
    );
    let saved = drain(&mut e)
        .into_iter()
        .rev()
        .find_map(|x| match x {
            Action::SaveSubscription(s) => Some(*s),
            _ => None,
        })
        .expect("saved");
    let (t1, mut again) = engine();
    again.restore_subscription(saved);
    let bob = again
        .subscription(&a("sip:alice@sip.test"), &a("bob@xmpp.test"))
        .unwrap();
    assert_eq!(
        tuples(bob.last_presence.as_ref().unwrap()),
        vec![("desk".into(), true), ("phone".into(), true)]
    );
    let p = seen(&mut again, t1, &stanza("phone", false));
    assert_eq!(tuples(&p), vec![("desk".into(), true)]);
}

fn two_devices(ids: &[&str]) -> Publish {
    Publish {
        trans_id: TransId(2),
        presentity: a("sip:carol@sip.test"),
        presence: Presence {
            tuples: ids
                .iter()
                .map(|id| Tuple {
                    id: (*id).into(),
                    basic: Some(Basic::Open),
                    ..Tuple::default()
                })
                .collect(),
            ..Presence::default()
        },
        expires: 600,
    }
}

/// RFC 8048 s5: an XMPP watcher of a SIP user with two devices gets both, and an
/// `unavailable` (a closed tuple) for the device that went away; a SIP watcher does not
/// get the departed tuple.
#[test]
fn rfc8048_s5_xmpp_watcher_gets_unavailable_for_a_departed_device() {
    let (t0, mut e) = engine();
    e.handle_publish(t0, &two_devices(&["phone", "desk"]));
    for (adapter, w) in [("xmpp", "romeo@xmpp.test"), ("sip", "sip:dave@sip.test")] {
        let s = Subscribe {
            trans_id: TransId(1),
            watcher: a(w),
            target: a("sip:carol@sip.test"),
            duration: 3600,
        };
        let side = Side::Local {
            known_watcher: true,
        };
        assert_eq!(
            e.handle_subscribe(t0, adapter, &s, side),
            SubscribeReply::Now(Status::ok())
        );
    }
    let got = docs(&drain(&mut e));
    assert!(got.iter().all(|p| p.tuples.len() == 2), "{got:?}");
    let t1 = t0 + Duration::from_secs(10);
    e.handle_publish(t1, &two_devices(&["phone"]));
    let acts = drain(&mut e);
    let mut by_adapter: Vec<(String, Vec<(String, bool)>)> = acts
        .iter()
        .filter_map(|x| match x {
            Action::Deliver {
                adapter,
                op: Operation::Notify(n),
            } => n.presence.as_ref().map(|p| (adapter.clone(), tuples(p))),
            _ => None,
        })
        .collect();
    by_adapter.sort();
    assert_eq!(
        by_adapter,
        vec![
            ("sip".into(), vec![("phone".into(), true)]),
            (
                "xmpp".into(),
                vec![("phone".into(), true), ("desk".into(), false)]
            ),
        ]
    );
}
