//! The presentity decides (policy `ask`), in virtual time: pending watchers, allow and
//! deny (RFC 6665 s4.1.3 states, RFC 8048 s5 `subscribed`/`unsubscribed`), remembered
//! decisions, caps, restart, and the watcherinfo document (RFC 3858) of the result.

use std::time::{Duration, Instant};

use cpim_core::address::Address;
use cpim_core::model::{
    Operation, Publish, Status, Subscribe, SubscriptionState, TerminationReason, TransId,
};
use cpim_core::presence::{Basic, Presence, Tuple};
use cpim_core::watcherinfo::{self, WatcherEvent, WatcherStatus};
use cpim_core::StatusCode;

use super::super::{
    Action, Policy, PresenceConfig, PresenceEngine, Side, SubState, SubscribeReply,
};
use super::{Choice, Decision};

const LOCAL: Side = Side::Local {
    known_watcher: false,
};

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

fn code(r: SubscribeReply) -> u16 {
    match r {
        SubscribeReply::Now(s) => s.code.as_u16(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn drain(e: &mut PresenceEngine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

/// The notifies in `actions` as (adapter, watcher, state, with presence?).
fn notifies(actions: &[Action]) -> Vec<(String, String, SubscriptionState, bool)> {
    actions
        .iter()
        .filter_map(|x| match x {
            Action::Deliver {
                adapter,
                op: Operation::Notify(n),
            } => Some((
                adapter.clone(),
                n.watcher.to_string(),
                n.state.clone(),
                n.presence.is_some(),
            )),
            _ => None,
        })
        .collect()
}

fn publish_open(e: &mut PresenceEngine, t: Instant, p: &str) {
    let st = e.handle_publish(
        t,
        &Publish {
            trans_id: TransId(2),
            presentity: a(p),
            presence: Presence {
                tuples: vec![Tuple {
                    id: "t".into(),
                    basic: Some(Basic::Open),
                    ..Default::default()
                }],
                ..Default::default()
            },
            expires: 3600,
        },
    );
    assert_eq!(st, Status::ok());
}

fn active(n: &(String, String, SubscriptionState, bool)) -> bool {
    matches!(n.2, SubscriptionState::Active { .. })
}

/// The default policy is `ask`: a stranger is pending (202, no `subscribed` for XMPP);
/// the presentity's allow makes it active: XMPP `subscribed` first, then the state
/// (RFC 8048 s5). The allow is remembered: the watcher's next subscribe is approved at
/// once.
#[test]
fn rfc6665_s4_1_3_pending_then_allow_active_and_xmpp_subscribed() {
    assert_eq!(PresenceConfig::default().policy, Policy::Ask);
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig::default());
    publish_open(&mut e, t0, "sip:alice@sip.test");
    drain(&mut e);
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("romeo@xmpp.test", "sip:alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(code(r), 202);
    let acts = drain(&mut e);
    assert!(
        notifies(&acts).is_empty(),
        "nothing for a pending XMPP watcher: {acts:?}"
    );
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::SaveSubscription(s) if s.state == SubState::Pending)));
    let w = e.watchers_of(&a("sip:alice@sip.test"), t0);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].status, w[0].event), ("pending", "subscribe"));

    let st = e.decide(
        t0 + Duration::from_secs(1),
        &a("sip:alice@sip.test"),
        &a("romeo@xmpp.test"),
        Choice::Allow,
    );
    assert_eq!(st, Status::ok());
    let acts = drain(&mut e);
    let n = notifies(&acts);
    assert_eq!(n.len(), 2, "{acts:?}");
    assert!(active(&n[0]) && !n[0].3, "`subscribed` first: {n:?}");
    assert!(active(&n[1]) && n[1].3, "then the state: {n:?}");
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::SaveDecision(d) if d.allow)));
    let w = e.watchers_of(&a("sip:alice@sip.test"), t0);
    assert_eq!((w[0].status, w[0].event), ("active", "approved"));

    // The watcher leaves and comes back: approved without asking.
    e.handle_unsubscribe(t0, &sub("romeo@xmpp.test", "sip:alice@sip.test", 0));
    drain(&mut e);
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("romeo@xmpp.test", "sip:alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(code(r), 200);
}

/// A SIP watcher is told `pending` (RFC 6665 s4.1.3); the deny ends the subscription
/// with `terminated;reason=rejected` (RFC 6665 s4.2.2; XMPP `unsubscribed`) and is
/// remembered: the next subscribe and fetch get 403 without asking; a reset asks again.
#[test]
fn rfc6665_s4_2_2_deny_terminates_rejected_and_is_remembered() {
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let r = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:eve@other.test", "sip:alice@sip.test", 600),
        LOCAL,
    );
    assert_eq!(code(r), 202);
    let n = notifies(&drain(&mut e));
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].2, SubscriptionState::Pending);
    assert!(!n[0].3, "no state while pending");
    // A fetch of the undecided watcher learns nothing.
    let r = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:eve@other.test", "sip:alice@sip.test", 0),
        LOCAL,
    );
    assert_eq!(code(r), 202, "a fetch of a pending pair learns nothing");
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        [(
            "sip".to_owned(),
            "sip:eve@other.test".to_owned(),
            SubscriptionState::Terminated(TerminationReason::Timeout),
            false
        )]
    );

    let st = e.decide(
        t0,
        &a("sip:alice@sip.test"),
        &a("sip:eve@other.test"),
        Choice::Deny,
    );
    assert_eq!(st, Status::ok());
    let acts = drain(&mut e);
    let n = notifies(&acts);
    assert_eq!(n.len(), 1, "{acts:?}");
    assert_eq!(
        n[0].2,
        SubscriptionState::Terminated(TerminationReason::Rejected)
    );
    assert!(!n[0].3);
    assert_eq!(e.subscription_count(), 0);
    let w = e.watchers_of(&a("sip:alice@sip.test"), t0);
    assert_eq!((w[0].status, w[0].event), ("terminated", "rejected"));

    for d in [600, 0] {
        let r = e.handle_subscribe(
            t0,
            "sip",
            &sub("sip:eve@other.test", "sip:alice@sip.test", d),
            LOCAL,
        );
        assert_eq!(code(r), 403, "duration {d}");
    }
    assert_eq!(e.subscription_count(), 0);

    // An XMPP watcher denied gets `unsubscribed` (terminated;reason=rejected, no state).
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("mallory@xmpp.test", "sip:alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(code(r), 202);
    drain(&mut e);
    e.decide(
        t0,
        &a("sip:alice@sip.test"),
        &a("mallory@xmpp.test"),
        Choice::Deny,
    );
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        [(
            "xmpp".to_owned(),
            "mallory@xmpp.test".to_owned(),
            SubscriptionState::Terminated(TerminationReason::Rejected),
            false
        )]
    );

    // Reset: the next subscribe asks again.
    e.decide(
        t0,
        &a("sip:alice@sip.test"),
        &a("sip:eve@other.test"),
        Choice::Reset,
    );
    assert!(drain(&mut e)
        .iter()
        .any(|x| matches!(x, Action::DeleteDecision(_))));
    let r = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:eve@other.test", "sip:alice@sip.test", 600),
        LOCAL,
    );
    assert_eq!(code(r), 202);
}

/// Under `ask` the presentity's own domain, `allow_domains` and mutual interest are
/// approved at once; `deny_domains` is refused; an undecided fetch holds no state.
#[test]
fn ask_keeps_immediate_approvals_of_the_rules() {
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig {
        allow_domains: vec!["partner.test".into()],
        deny_domains: vec!["spam.test".into()],
        ..PresenceConfig::default()
    });
    let cases = [
        ("sip:bob@sip.test", 200),
        ("juliet@partner.test", 200),
        ("x@spam.test", 403),
        ("stranger@xmpp.test", 202),
    ];
    for (w, want) in cases {
        let r = e.handle_subscribe(t0, "xmpp", &sub(w, "sip:alice@sip.test", 3600), LOCAL);
        assert_eq!(code(r), want, "{w}");
    }
    // Mutual interest: alice watches romeo, so romeo may watch alice.
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
        &sub("romeo@xmpp.test", "sip:alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(code(r), 200);
    let before = e.subscription_count();
    let r = e.handle_subscribe(
        t0,
        "sip",
        &sub("sip:carol@far.test", "sip:alice@sip.test", 0),
        LOCAL,
    );
    assert_eq!(code(r), 202);
    assert_eq!(e.subscription_count(), before, "a fetch leaves no state");
    let n = notifies(&drain(&mut e));
    assert!(n.iter().any(|x| x.1 == "sip:carol@far.test"
        && x.2 == SubscriptionState::Terminated(TerminationReason::Timeout)
        && !x.3));
}

/// Pending watchers are capped per presentity and in total, remembered decisions too
/// (503); a refresh of a pending pair is not new state.
#[test]
fn pending_watchers_and_decisions_are_capped() {
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig {
        max_pending_per_presentity: 2,
        max_pending: 3,
        max_decisions_per_presentity: 2,
        max_decisions: 3,
        ..PresenceConfig::default()
    });
    let mut codes = Vec::new();
    for i in 0..3 {
        let w = format!("w{i}@x.test");
        codes.push(code(e.handle_subscribe(
            t0,
            "xmpp",
            &sub(&w, "sip:alice@sip.test", 60),
            LOCAL,
        )));
    }
    assert_eq!(codes, [202, 202, 503]);
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("w0@x.test", "sip:alice@sip.test", 60),
        LOCAL,
    );
    assert_eq!(code(r), 202, "refresh");
    assert_eq!(
        code(e.handle_subscribe(t0, "xmpp", &sub("w0@x.test", "sip:bob@sip.test", 60), LOCAL)),
        202
    );
    assert_eq!(
        code(e.handle_subscribe(t0, "xmpp", &sub("w1@x.test", "sip:bob@sip.test", 60), LOCAL)),
        503
    );

    let alice = a("sip:alice@sip.test");
    let st: Vec<u16> = (0..3)
        .map(|i| {
            e.decide(t0, &alice, &a(&format!("d{i}@x.test")), Choice::Deny)
                .code
                .as_u16()
        })
        .collect();
    assert_eq!(st, [200, 200, 503]);
    // Changing a remembered decision is not a new one.
    assert_eq!(
        e.decide(t0, &alice, &a("d0@x.test"), Choice::Allow),
        Status::ok()
    );
    let bob = a("sip:bob@sip.test");
    assert_eq!(
        e.decide(t0, &bob, &a("d0@x.test"), Choice::Deny),
        Status::ok()
    );
    let full = e.decide(t0, &bob, &a("d1@x.test"), Choice::Deny);
    assert_eq!(full.code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(e.decision_count(), 3);
}

/// Pending subscriptions and decisions come back after a restart from what the engine
/// asked to persist; a decision after the restart acts on the restored pending watcher.
#[test]
fn restart_keeps_pending_watchers_and_decisions() {
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let alice = a("sip:alice@sip.test");
    e.handle_subscribe(
        t0,
        "xmpp",
        &sub("romeo@xmpp.test", "sip:alice@sip.test", 3600),
        LOCAL,
    );
    e.decide(t0, &alice, &a("eve@xmpp.test"), Choice::Deny);
    let mut subs = Vec::new();
    let mut decisions: Vec<Decision> = Vec::new();
    for x in drain(&mut e) {
        match x {
            Action::SaveSubscription(s) => subs.push(*s),
            Action::SaveDecision(d) => decisions.push(d),
            _ => {}
        }
    }
    let mut e = PresenceEngine::new(PresenceConfig::default());
    for s in subs {
        e.restore_subscription(s);
    }
    for d in decisions {
        e.restore_decision(d);
    }
    let w = e.watchers_of(&alice, t0);
    let got: Vec<(String, &str)> = w
        .iter()
        .map(|x| (x.watcher.to_string(), x.status))
        .collect();
    assert_eq!(
        got,
        [
            ("eve@xmpp.test".to_owned(), "terminated"),
            ("romeo@xmpp.test".to_owned(), "pending")
        ]
    );
    let r = e.handle_subscribe(
        t0,
        "xmpp",
        &sub("eve@xmpp.test", "sip:alice@sip.test", 3600),
        LOCAL,
    );
    assert_eq!(code(r), 403);
    e.decide(t0, &alice, &a("romeo@xmpp.test"), Choice::Allow);
    let n = notifies(&drain(&mut e));
    assert!(n.len() == 2 && n.iter().all(active), "{n:?}");
}

/// The watcherinfo document (RFC 3858 s3): full state, one list for the presentity and
/// the `presence` package, each watcher with status and event (RFC 3857 s4.7.1); it
/// round-trips through the codec and validates against the RFC 3858 schema.
#[test]
fn rfc3858_s3_watcherinfo_document_of_the_decisions() {
    let t0 = Instant::now();
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let alice = a("sip:alice@sip.test");
    for w in ["romeo@xmpp.test", "eve@xmpp.test", "sip:bob@sip.test"] {
        e.handle_subscribe(t0, "xmpp", &sub(w, "sip:alice@sip.test", 3600), LOCAL);
    }
    e.decide(t0, &alice, &a("eve@xmpp.test"), Choice::Deny);
    let doc = e.watcher_info(&alice, 3, t0);
    assert_eq!(doc.version, 3);
    assert_eq!(doc.lists.len(), 1);
    assert_eq!(doc.lists[0].resource, "sip:alice@sip.test");
    assert_eq!(doc.lists[0].package, "presence");
    let got: Vec<(String, WatcherStatus, WatcherEvent)> = doc.lists[0]
        .watchers
        .iter()
        .map(|w| (w.uri.clone(), w.status.clone(), w.event.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "sip:bob@sip.test".into(),
                WatcherStatus::Active,
                WatcherEvent::Subscribe
            ),
            (
                "xmpp:eve@xmpp.test".into(),
                WatcherStatus::Terminated,
                WatcherEvent::Rejected
            ),
            (
                "xmpp:romeo@xmpp.test".into(),
                WatcherStatus::Pending,
                WatcherEvent::Subscribe
            ),
        ]
    );
    // Ids are stable for a pair and differ between watchers.
    let again = e.watcher_info(&alice, 4, t0);
    assert_eq!(doc.lists[0].watchers[2].id, again.lists[0].watchers[2].id);
    assert_ne!(doc.lists[0].watchers[0].id, doc.lists[0].watchers[1].id);
    let xml = watcherinfo::encode(&doc).unwrap();
    assert_eq!(watcherinfo::parse(xml.as_bytes()).unwrap(), doc);
    super::super::winfo::tests::schema_valid(&xml);
}
