//! The presence engine in virtual time: `t0 + n seconds`, no clock.

use super::*;
use cpim_core::model::Outcome;
use cpim_core::presence::Basic;
use cpim_core::StatusCode;

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn sub(w: &str, p: &str, d: u32) -> Subscribe {
    Subscribe {
        trans_id: TransId(1),
        watcher: a(w),
        target: a(p),
        duration: d,
    }
}

fn publish(p: &str, open: bool, expires: u32) -> Publish {
    Publish {
        trans_id: TransId(2),
        presentity: a(p),
        presence: Presence {
            tuples: vec![Tuple {
                id: "t".into(),
                basic: Some(if open { Basic::Open } else { Basic::Closed }),
                ..Default::default()
            }],
            ..Default::default()
        },
        expires,
    }
}

fn drain(e: &mut PresenceEngine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

/// The notifies in `actions`, as (adapter, watcher key, state, basic open?).
fn notifies(actions: &[Action]) -> Vec<(String, String, SubscriptionState, Option<bool>)> {
    actions
        .iter()
        .filter_map(|x| match x {
            Action::Deliver {
                adapter,
                op: Operation::Notify(n),
            } => Some((
                adapter.clone(),
                user_key(&n.watcher),
                n.state.clone(),
                n.presence.as_ref().map(|p| p.is_available()),
            )),
            _ => None,
        })
        .collect()
}

fn upstream(actions: &[Action]) -> Vec<(String, &'static str, u32)> {
    actions
        .iter()
        .filter_map(|x| match x {
            Action::Deliver {
                adapter,
                op: Operation::Subscribe(s),
            } => Some((adapter.clone(), "subscribe", s.duration)),
            Action::Deliver {
                adapter,
                op: Operation::Unsubscribe(s),
            } => Some((adapter.clone(), "unsubscribe", s.duration)),
            _ => None,
        })
        .collect()
}

const LOCAL: Side = Side::Local {
    known_watcher: true,
};

/// The engine as a trusted deployment configures it (`authorization = "approve-all"`):
/// the tests of the subscription machinery below do not test authorization.
fn approve_all() -> PresenceConfig {
    PresenceConfig {
        policy: Policy::ApproveAll,
        ..PresenceConfig::default()
    }
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A fresh engine that approves every watcher, and the time it starts at.
fn engine() -> (Instant, PresenceEngine) {
    (Instant::now(), PresenceEngine::new(approve_all()))
}

/// `s` from a watcher of `adapter` to a presentity `remote` serves: the upstream
/// subscribe the engine asks for, as (adapter, operation, key).
fn upstream_subscribe(
    e: &mut PresenceEngine,
    t: Instant,
    adapter: &str,
    s: &Subscribe,
    remote: &str,
) -> (String, Operation, String) {
    match e.handle_subscribe(t, adapter, s, Side::Remote(remote.into())) {
        SubscribeReply::Upstream { adapter, op, key } => (adapter, op, key),
        other => panic!("expected an upstream subscribe, got {other:?}"),
    }
}

/// One entry of [`notifies`].
fn nt(
    adapter: &str,
    watcher: &str,
    state: SubscriptionState,
    open: Option<bool>,
) -> (String, String, SubscriptionState, Option<bool>) {
    (adapter.into(), watcher.into(), state, open)
}

#[test]
fn xmpp_watcher_of_local_sip_user_is_approved_and_gets_state() {
    let (t0, mut e) = engine();
    e.handle_publish(t0, &publish("sip:alice@sip.test", true, 600));
    drain(&mut e);
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("romeo@xmpp.test", "alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(r, SubscribeReply::Now(Status::ok()));
    let acts = drain(&mut e);
    // RFC 8048 s4: `subscribed` (state only), then the presence.
    assert_eq!(
        notifies(&acts),
        vec![
            nt(
                "xmpp",
                "romeo@xmpp.test",
                SubscriptionState::Active { expires: u32::MAX },
                None
            ),
            nt(
                "xmpp",
                "romeo@xmpp.test",
                SubscriptionState::Active { expires: u32::MAX },
                Some(true)
            )
        ]
    );
    // XMPP watchers name 3600 s but hold roster subscriptions: no expiry timer.
    assert!(e
        .subscription(&a("romeo@xmpp.test"), &a("alice@sip.test"))
        .unwrap()
        .expires_at
        .is_none());
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::SaveSubscription(_))));
    // Publication changes reach the watcher.
    e.handle_publish(t0 + secs(10), &publish("sip:alice@sip.test", false, 600));
    let n = notifies(&drain(&mut e));
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].3, Some(false));
}

#[test]
fn policy_reject_and_deny_domains() {
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig {
        policy: Policy::ApproveKnown,
        deny_domains: vec!["bad.test".into()],
        ..Default::default()
    });
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("x@unknown.test", "alice@sip.test", 60),
        Side::Local {
            known_watcher: false,
        },
    );
    assert!(matches!(r, SubscribeReply::Now(s) if s.code == StatusCode::FORBIDDEN));
    let r = e.handle_subscribe(t0, "xmpp", &sub("x@bad.test", "alice@sip.test", 60), LOCAL);
    assert!(matches!(r, SubscribeReply::Now(s) if s.code == StatusCode::FORBIDDEN));
    assert_eq!(e.subscription_count(), 0);
}

/// RFC 8048 s4: a SIP watcher of an XMPP presentity is pending until the XMPP side
/// answers `subscribed`; SIP refreshes are absorbed by the gateway.
#[test]
fn sip_watcher_of_remote_xmpp_user_pending_then_active_refresh_absorbed() {
    let (t0, mut e) = engine();
    let s = sub("sip:alice@sip.test", "romeo@xmpp.test", 3600);
    let (adapter, op, key) = upstream_subscribe(&mut e, t0, "sip", &s, "xmpp");
    assert_eq!(adapter, "xmpp");
    // XMPP needs no refresh: no expiry upstream.
    assert!(matches!(op, Operation::Subscribe(ref u) if u.duration == u32::MAX));
    let status = e.handle_upstream_result(t0, &key, &Outcome::ok(TransId(5)));
    assert_eq!(status.code, StatusCode::ACCEPTED);
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        vec![nt(
            "sip",
            "alice@sip.test",
            SubscriptionState::Pending,
            None
        )]
    );

    // Presence alone (Prosody acknowledges the subscribe with `unavailable`) is no
    // approval: still pending, nothing for the watcher.
    let mut closed = publish("romeo@xmpp.test", false, 1).presence;
    closed.entity = None;
    let ack = Notify {
        trans_id: TransId(6),
        watcher: a("alice@sip.test"),
        target: a("romeo@xmpp.test"),
        state: SubscriptionState::Active { expires: 0 },
        presence: Some(closed),
    };
    assert_eq!(e.handle_notify(t0, "xmpp", &ack).code, StatusCode::OK);
    assert!(notifies(&drain(&mut e)).is_empty());

    // The XMPP user approves (`subscribed`, state only), then sends presence.
    let approve = Notify {
        presence: None,
        ..ack.clone()
    };
    assert_eq!(
        e.handle_notify(t0 + secs(1), "xmpp", &approve).code,
        StatusCode::OK
    );
    let n = notifies(&drain(&mut e));
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].2, SubscriptionState::Active { expires: 3599 });
    let mut p = publish("romeo@xmpp.test", true, 1).presence;
    p.entity = None;
    // (After the notify interval: the approval's NOTIFY opened the rate gate.)
    let st = e.handle_notify(
        t0 + secs(7),
        "xmpp",
        &Notify {
            trans_id: TransId(6),
            watcher: a("alice@sip.test"),
            target: a("romeo@xmpp.test"),
            state: SubscriptionState::Active { expires: 0 },
            presence: Some(p),
        },
    );
    assert_eq!(st.code, StatusCode::OK);
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        vec![nt(
            "sip",
            "alice@sip.test",
            SubscriptionState::Active { expires: 3593 },
            Some(true)
        )]
    );

    // SIP refresh 30 min later: answered here, current state re-sent, nothing upstream.
    let r = e.handle_subscribe(t0 + secs(1800), "sip", &s, Side::Remote("xmpp".into()));
    assert_eq!(r, SubscribeReply::Now(Status::ok()));
    let acts = drain(&mut e);
    assert!(
        upstream(&acts).is_empty(),
        "a refresh must not reach XMPP: {acts:?}"
    );
    assert_eq!(
        notifies(&acts)[0].2,
        SubscriptionState::Active { expires: 3600 }
    );

    // Not refreshed again: expires at 1800 + 3600, terminated(timeout), unsubscribed upstream.
    assert_eq!(e.poll_timeout(), Some(t0 + secs(5400)));
    e.handle_timeout(t0 + secs(5399));
    assert!(drain(&mut e).is_empty());
    e.handle_timeout(t0 + secs(5400));
    let acts = drain(&mut e);
    assert_eq!(
        notifies(&acts)[0].2,
        SubscriptionState::Terminated(TerminationReason::Timeout)
    );
    assert_eq!(upstream(&acts), vec![("xmpp".into(), "unsubscribe", 0)]);
    assert_eq!(e.subscription_count(), 0);
}

#[test]
fn gateway_refreshes_upstream_sip_subscriptions_itself() {
    let (t0, mut e) = engine();
    let s = sub("romeo@xmpp.test", "sip:bob@remote-sip.test", u32::MAX);
    let (_, op, key) = upstream_subscribe(&mut e, t0, "xmpp", &s, "sip");
    assert!(matches!(op, Operation::Subscribe(ref u) if u.duration == 3600));
    e.handle_upstream_result(t0, &key, &Outcome::ok(TransId(1)));
    drain(&mut e);
    // 80 % of 3600 s.
    assert_eq!(e.poll_timeout(), Some(t0 + secs(2880)));
    e.handle_timeout(t0 + secs(2880));
    let acts = drain(&mut e);
    assert_eq!(upstream(&acts), vec![("sip".into(), "subscribe", 3600)]);
    assert!(
        notifies(&acts).is_empty(),
        "a refresh is invisible to the watcher"
    );
    assert_eq!(e.poll_timeout(), Some(t0 + secs(5760)));
}

#[test]
fn upstream_failure_is_the_watchers_answer() {
    let (t0, mut e) = engine();
    let s = sub("sip:alice@sip.test", "nobody@xmpp.test", 60);
    let (_, _, key) = upstream_subscribe(&mut e, t0, "sip", &s, "xmpp");
    let st = e.handle_upstream_result(
        t0,
        &key,
        &Outcome::failure(TransId(1), StatusCode::NOT_FOUND, "Not Found"),
    );
    assert_eq!(st.code, StatusCode::NOT_FOUND);
    assert_eq!(e.subscription_count(), 0);
}

#[test]
fn remote_rejection_terminates() {
    let (t0, mut e) = engine();
    let s = sub("sip:alice@sip.test", "romeo@xmpp.test", 60);
    let (_, _, key) = upstream_subscribe(&mut e, t0, "sip", &s, "xmpp");
    e.handle_upstream_result(t0, &key, &Outcome::ok(TransId(1)));
    drain(&mut e);
    let n = Notify {
        trans_id: TransId(3),
        watcher: a("sip:alice@sip.test"),
        target: a("romeo@xmpp.test"),
        state: SubscriptionState::Terminated(TerminationReason::Rejected),
        presence: None,
    };
    // Only the adapter serving the presentity may speak for it.
    assert_eq!(e.handle_notify(t0, "sip", &n).code, StatusCode::FORBIDDEN);
    assert_eq!(e.handle_notify(t0, "xmpp", &n).code, StatusCode::OK);
    let acts = drain(&mut e);
    assert_eq!(
        notifies(&acts)[0].2,
        SubscriptionState::Terminated(TerminationReason::Rejected)
    );
    assert!(upstream(&acts).is_empty());
    assert_eq!(
        e.handle_notify(t0, "xmpp", &n).code,
        StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST
    );
}

/// RFC 3856 s3.3 fetch / RFC 8048 s6 probe.
#[test]
fn fetch_answered_from_store_and_probe_relayed() {
    let (t0, mut e) = engine();
    e.handle_publish(t0, &publish("sip:alice@sip.test", true, 600));
    drain(&mut e);
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("romeo@xmpp.test", "alice@sip.test", 0),
        LOCAL,
    );
    assert_eq!(r, SubscribeReply::Now(Status::ok()));
    // An XMPP probe is answered with plain presence (state active), ...
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        vec![nt(
            "xmpp",
            "romeo@xmpp.test",
            SubscriptionState::Active { expires: 0 },
            Some(true)
        )]
    );
    // ... a SIP fetch with terminated;reason=timeout (RFC 3856 s3.3).
    e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:bob@sip.test", "alice@sip.test", 0),
        LOCAL,
    );
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        vec![nt(
            "sip",
            "bob@sip.test",
            SubscriptionState::Terminated(TerminationReason::Timeout),
            Some(true)
        )]
    );
    assert_eq!(e.subscription_count(), 0);

    // Remote fetch without cached state: probed upstream, the answer relayed once.
    let r = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:alice@sip.test", "romeo@xmpp.test", 0),
        Side::Remote("xmpp".into()),
    );
    let SubscribeReply::Upstream { op, key, .. } = r else {
        panic!()
    };
    assert!(matches!(op, Operation::Subscribe(ref s) if s.duration == 0));
    assert!(e
        .handle_upstream_result(t0, &key, &Outcome::ok(TransId(1)))
        .is_success());
    let answer = Notify {
        trans_id: TransId(3),
        watcher: a("alice@sip.test"),
        target: a("romeo@xmpp.test"),
        state: SubscriptionState::Active { expires: 0 },
        presence: Some(publish("romeo@xmpp.test", true, 1).presence),
    };
    assert_eq!(e.handle_notify(t0, "xmpp", &answer).code, StatusCode::OK);
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n[0].2,
        SubscriptionState::Terminated(TerminationReason::Timeout)
    );
    assert_eq!(
        e.handle_notify(t0, "xmpp", &answer).code,
        StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST
    );
}

/// RFC 3856 s6.4: at most one notification per interval per presentity, the latest
/// state winning.
#[test]
fn notifications_rate_limited_and_coalesced() {
    let (t0, mut e) = engine();
    for w in ["a@xmpp.test", "b@xmpp.test"] {
        e.handle_subscribe(t0, "xmpp", &sub(w, "alice@sip.test", u32::MAX), LOCAL);
    }
    drain(&mut e);
    e.handle_publish(t0 + secs(10), &publish("sip:alice@sip.test", true, 600));
    assert_eq!(notifies(&drain(&mut e)).len(), 2);
    e.handle_publish(t0 + secs(11), &publish("sip:alice@sip.test", false, 600));
    e.handle_publish(t0 + secs(12), &publish("sip:alice@sip.test", true, 600));
    e.handle_publish(t0 + secs(13), &publish("sip:alice@sip.test", false, 600));
    assert!(notifies(&drain(&mut e)).is_empty());
    assert_eq!(e.poll_timeout(), Some(t0 + secs(15)));
    e.handle_timeout(t0 + secs(15));
    let n = notifies(&drain(&mut e));
    assert_eq!(n.len(), 2);
    assert!(
        n.iter().all(|x| x.3 == Some(false)),
        "the latest state wins: {n:?}"
    );
}

#[test]
fn publication_expiry_fans_out_offline() {
    let (t0, mut e) = engine();
    e.handle_subscribe(
        t0,
        "xmpp",
        &sub("a@xmpp.test", "alice@sip.test", u32::MAX),
        LOCAL,
    );
    e.handle_publish(t0 + secs(10), &publish("sip:alice@sip.test", true, 60));
    drain(&mut e);
    e.handle_timeout(t0 + secs(70));
    let acts = drain(&mut e);
    assert!(acts.contains(&Action::DeletePublication("alice@sip.test".into())));
    assert_eq!(notifies(&acts)[0].3, Some(false));
    assert!(e.published(&a("sip:alice@sip.test")).is_none());
}

#[test]
fn unsubscribe_terminates_and_restore_rearms_timers() {
    let (t0, mut e) = engine();
    e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:bob@sip.test", "alice@sip.test", 600),
        LOCAL,
    );
    let saved: Vec<Subscription> = drain(&mut e)
        .into_iter()
        .filter_map(|x| match x {
            Action::SaveSubscription(s) => Some(*s),
            _ => None,
        })
        .collect();
    assert_eq!(saved.len(), 1);
    // A new engine (a restart) restored from what was saved: the expiry timer is back.
    let mut e2 = PresenceEngine::new(approve_all());
    e2.restore_subscription(saved[0].clone());
    assert_eq!(e2.poll_timeout(), Some(t0 + secs(600)));
    e2.handle_timeout(t0 + secs(600));
    assert_eq!(
        notifies(&drain(&mut e2))[0].2,
        SubscriptionState::Terminated(TerminationReason::Timeout)
    );

    assert_eq!(
        e.handle_unsubscribe(t0, &sub("sip:bob@sip.test", "alice@sip.test", 0))
            .code,
        StatusCode::OK
    );
    let acts = drain(&mut e);
    assert!(matches!(
        notifies(&acts)[0].2,
        SubscriptionState::Terminated(_)
    ));
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::DeleteSubscription(_))));
    assert_eq!(e.subscription_count(), 0);
}

/// Notifies from upstream while the watcher's subscribe is still being answered wait:
/// the answer goes first, then one notify with the state as it is by then.
#[test]
fn nothing_reaches_the_watcher_before_its_subscribe_is_answered() {
    let (t0, mut e) = engine();
    let s = sub("sip:alice@sip.test", "romeo@xmpp.test", 600);
    let (_, _, key) = upstream_subscribe(&mut e, t0, "sip", &s, "xmpp");
    // The XMPP side approves and sends presence before the subscribe's outcome is back.
    let n = Notify {
        trans_id: TransId(3),
        watcher: a("alice@sip.test"),
        target: a("romeo@xmpp.test"),
        state: SubscriptionState::Active { expires: 0 },
        presence: None,
    };
    assert_eq!(e.handle_notify(t0, "xmpp", &n).code, StatusCode::OK);
    let n = Notify {
        presence: Some(publish("romeo@xmpp.test", true, 1).presence),
        ..n
    };
    assert_eq!(e.handle_notify(t0, "xmpp", &n).code, StatusCode::OK);
    assert!(notifies(&drain(&mut e)).is_empty());
    assert_eq!(
        e.handle_upstream_result(t0, &key, &Outcome::ok(TransId(1)))
            .code,
        StatusCode::OK
    );
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        vec![nt(
            "sip",
            "alice@sip.test",
            SubscriptionState::Active { expires: 600 },
            Some(true)
        )]
    );
}

/// Prosody's sequence for a SIP/JSON watcher of an XMPP user: `unavailable` acknowledging
/// the subscribe (no approval, not kept), the subscribe's outcome, `subscribed` (approval,
/// state only), the user's presence (at once), then a change inside the notify interval (when
/// the interval ends).
#[test]
fn xmpp_ack_then_approval_then_presence_changes_reach_the_watcher() {
    let (t0, mut e) = engine();
    let s = sub("im:carol@json.test", "alice@xmpp.test", 600);
    let (_, _, key) = upstream_subscribe(&mut e, t0, "json", &s, "xmpp");
    let n = |presence: Option<Presence>| Notify {
        trans_id: TransId(3),
        watcher: a("carol@json.test"),
        target: a("alice@xmpp.test"),
        state: SubscriptionState::Active { expires: 0 },
        presence,
    };
    let closed = publish("alice@xmpp.test", false, 1).presence;
    let open = publish("alice@xmpp.test", true, 1).presence;
    let mut away = open.clone();
    away.notes.push(cpim_core::presence::Note {
        lang: None,
        text: "away".into(),
    });
    assert_eq!(
        e.handle_notify(t0, "xmpp", &n(Some(closed))).code,
        StatusCode::OK
    );
    assert_eq!(
        e.handle_upstream_result(t0, &key, &Outcome::ok(TransId(1)))
            .code,
        StatusCode::ACCEPTED
    );
    let got = notifies(&drain(&mut e));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2, SubscriptionState::Pending);
    let t1 = t0 + Duration::from_millis(200);
    assert_eq!(e.handle_notify(t1, "xmpp", &n(None)).code, StatusCode::OK);
    let got = notifies(&drain(&mut e));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(got[0].2, SubscriptionState::Active { .. }));
    // Not the acknowledgement's `unavailable`: it was not the user's state for this watcher.
    assert_eq!(got[0].3, None, "{got:?}");
    // The first state after the (state-only) approval is not held back.
    assert_eq!(
        e.handle_notify(t1, "xmpp", &n(Some(open))).code,
        StatusCode::OK
    );
    let got = notifies(&drain(&mut e));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].3, Some(true), "{got:?}");
    // A change inside the interval waits for its end.
    assert_eq!(
        e.handle_notify(t1, "xmpp", &n(Some(away.clone()))).code,
        StatusCode::OK
    );
    let mut delivered = notifies(&drain(&mut e));
    assert!(delivered.is_empty(), "{delivered:?}");
    // The interval ends: the latest state goes out.
    while let Some(t) = e.poll_timeout() {
        if t > t1 + secs(6) {
            break;
        }
        e.handle_timeout(t);
        let acts = drain(&mut e);
        delivered.extend(notifies(&acts));
        for a in &acts {
            if let Action::Deliver {
                op: Operation::Notify(n),
                ..
            } = a
            {
                if n.presence.as_ref().is_some_and(|p| p.notes == away.notes) {
                    return;
                }
            }
        }
    }
    panic!("the away state never reached the watcher: {delivered:?}");
}

/// Issue 10: under `approve-mutual` a stranger cannot watch a local user (`approve-all`
/// let anyone);
/// a user of the presentity's own domain, an allowed domain, or a watcher the
/// presentity has subscribed to (RFC 6121 s3.1.3-like mutual interest) can. Refused
/// watchers hold no state.
#[test]
fn approve_mutual_approves_only_mutual_interest() {
    let t0 = Instant::now();
    let mutual = || PresenceConfig {
        policy: Policy::ApproveMutual,
        ..PresenceConfig::default()
    };
    let mut e = PresenceEngine::new(mutual());
    let refused = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("eve@xmpp.test", "alice@sip.test", 3600),
        LOCAL,
    );
    assert!(matches!(refused, SubscribeReply::Now(s) if s.code == StatusCode::FORBIDDEN));
    // A fetch is refused the same way.
    let refused = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("eve@xmpp.test", "alice@sip.test", 0),
        LOCAL,
    );
    assert!(matches!(refused, SubscribeReply::Now(s) if s.code == StatusCode::FORBIDDEN));
    assert_eq!(e.subscription_count(), 0);
    // Same domain: approved.
    let r = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:bob@sip.test", "sip:alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(r, SubscribeReply::Now(Status::ok()));
    // Alice subscribes to romeo's presence: romeo may then watch her.
    let up = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:alice@sip.test", "romeo@xmpp.test", 3600),
        Side::Remote("xmpp".into()),
    );
    assert!(matches!(up, SubscribeReply::Upstream { .. }));
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("romeo@xmpp.test", "alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(r, SubscribeReply::Now(Status::ok()));
    // Spellings of an allowed domain compare canonically.
    let mut e = PresenceEngine::new(PresenceConfig {
        allow_domains: vec!["Partner.Test.".into()],
        ..mutual()
    });
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("juliet@partner.test", "alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(r, SubscribeReply::Now(Status::ok()));
}

/// Issue 10: subscriptions are capped in total and per presentity (503); refreshes of
/// existing pairs still pass.
#[test]
fn subscriptions_are_capped() {
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig {
        max_subscriptions: 5,
        max_watchers_per_presentity: 3,
        ..approve_all()
    });
    let mut codes = Vec::new();
    for i in 0..4 {
        let r = e.handle_subscribe(
            t0,
            "xmpp",
            &sub(&format!("w{i}@x.test"), "alice@sip.test", 3600),
            LOCAL,
        );
        codes.push(match r {
            SubscribeReply::Now(s) => s.code.as_u16(),
            _ => 0,
        });
    }
    assert_eq!(codes, [200, 200, 200, 503]);
    for i in 0..3 {
        let r = e.handle_subscribe(
            t0,
            "xmpp",
            &sub(&format!("w{i}@x.test"), "bob@sip.test", 3600),
            LOCAL,
        );
        let code = match r {
            SubscribeReply::Now(s) => s.code.as_u16(),
            _ => 0,
        };
        assert_eq!(code, if i < 2 { 200 } else { 503 }, "{i}");
    }
    assert_eq!(e.subscription_count(), 5);
    // A refresh of an existing pair is not new state.
    let r = e.handle_subscribe(
        t0 + secs(1),
        "xmpp",
        &sub("w0@x.test", "alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(r, SubscribeReply::Now(Status::ok()));
    // Nor are remote fetches allowed past the total.
    let r = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:a@sip.test", "r@xmpp.test", 0),
        Side::Remote("xmpp".into()),
    );
    assert!(matches!(r, SubscribeReply::Now(s) if s.code == StatusCode::SERVICE_UNAVAILABLE));
}
