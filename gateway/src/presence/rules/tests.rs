//! Pres-rules documents (RFC 5025 s3.2.1 on RFC 4745 s10) applied by the engine, in
//! virtual time: a written document decides pending and active watchers, a restored
//! one applies to later subscriptions, polite-block shows the presentity offline, and
//! the most recent of a document and an admin decision wins.

use std::time::Instant;

use cpim_core::address::Address;
use cpim_core::model::{
    Operation, Publish, Subscribe, SubscriptionState, TerminationReason, TransId,
};
use cpim_core::presence::{Basic, Presence, Tuple};

use super::super::decide::Choice;
use super::super::presrules::PresRules;
use super::super::{Action, PresenceConfig, PresenceEngine, Side, SubState, SubscribeReply};

const LOCAL: Side = Side::Local {
    known_watcher: false,
};
const BOB: &str = "sip:bob@example.com";
const ALICE: &str = "sip:alice@other.org";

fn a(s: &str) -> Address {
    Address::parse(s).unwrap()
}

fn subscribe(e: &mut PresenceEngine, t: Instant, w: &str) -> u16 {
    let s = Subscribe {
        trans_id: TransId(1),
        watcher: a(w),
        target: a(BOB),
        duration: 600,
    };
    match e.handle_subscribe(t, "sip", &s, LOCAL) {
        SubscribeReply::Now(st) => st.code.as_u16(),
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn publish_open(e: &mut PresenceEngine, t: Instant) {
    e.handle_publish(
        t,
        &Publish {
            trans_id: TransId(2),
            presentity: a(BOB),
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
}

fn drain(e: &mut PresenceEngine) -> Vec<Action> {
    std::iter::from_fn(|| e.poll_action()).collect()
}

/// The notifies in `actions`: (watcher, state, basic of the first tuple).
fn notifies(actions: &[Action]) -> Vec<(String, SubscriptionState, Option<Basic>)> {
    actions
        .iter()
        .filter_map(|x| match x {
            Action::Deliver {
                op: Operation::Notify(n),
                ..
            } => Some((
                n.watcher.to_string(),
                n.state.clone(),
                n.presence
                    .as_ref()
                    .and_then(|p| p.tuples.first())
                    .and_then(|t| t.basic),
            )),
            _ => None,
        })
        .collect()
}

fn rules(handling: &str, who: &str) -> PresRules {
    let xml = format!(
        r#"<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy"
            xmlns:pr="urn:ietf:params:xml:ns:pres-rules">
          <cr:rule id="r"><cr:conditions><cr:identity><cr:one id="{who}"/></cr:identity>
          </cr:conditions><cr:actions><pr:sub-handling>{handling}</pr:sub-handling>
          </cr:actions></cr:rule></cr:ruleset>"#
    );
    PresRules::parse(xml.as_bytes()).unwrap()
}

fn state(e: &PresenceEngine, w: &str) -> Option<SubState> {
    e.subscription(&a(w), &a(BOB)).map(|s| s.state.clone())
}

#[test]
fn rfc5025_s3_2_1_allow_turns_a_pending_watcher_active() {
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let t = Instant::now();
    publish_open(&mut e, t);
    assert_eq!(subscribe(&mut e, t, ALICE), 202);
    assert_eq!(state(&e, ALICE), Some(SubState::Pending));
    drain(&mut e);
    assert!(e
        .set_rules(t, &a(BOB), Some(rules("allow", ALICE)))
        .is_success());
    assert_eq!(state(&e, ALICE), Some(SubState::Active));
    let n = notifies(&drain(&mut e));
    assert_eq!(n.len(), 1, "{n:?}");
    assert!(matches!(n[0].1, SubscriptionState::Active { .. }));
    assert_eq!(n[0].2, Some(Basic::Open));
    // Nothing is remembered as an admin decision; the watcher list says approved
    // (RFC 3857 s4.7.1 event).
    assert_eq!(e.decided(&a(ALICE), &a(BOB)), None);
    let w = e.watchers_of(&a(BOB), t);
    assert_eq!((w[0].status, w[0].event), ("active", "approved"));
}

#[test]
fn rfc5025_s3_2_1_block_terminates_an_active_watcher_and_refuses_the_next() {
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let t = Instant::now();
    e.set_rules(t, &a(BOB), Some(rules("allow", ALICE)));
    assert_eq!(subscribe(&mut e, t, ALICE), 200);
    drain(&mut e);
    e.set_rules(t, &a(BOB), Some(rules("block", ALICE)));
    assert_eq!(state(&e, ALICE), None);
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n.iter().map(|x| x.1.clone()).collect::<Vec<_>>(),
        vec![SubscriptionState::Terminated(TerminationReason::Rejected)]
    );
    assert_eq!(subscribe(&mut e, t, ALICE), 403);
    // Another watcher is left to the policy (ask: pending).
    assert_eq!(subscribe(&mut e, t, "sip:carol@other.org"), 202);
}

#[test]
fn rules_restored_after_a_restart_apply_to_new_subscriptions() {
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let t = Instant::now();
    assert!(e.restore_rules(&a(BOB), rules("allow", ALICE)));
    assert!(
        drain(&mut e).is_empty(),
        "restoring has no effect of its own"
    );
    assert_eq!(e.rules_count(), 1);
    assert_eq!(subscribe(&mut e, t, ALICE), 200);
    assert_eq!(state(&e, ALICE), Some(SubState::Active));
    let mut e = PresenceEngine::new(PresenceConfig::default());
    assert!(e.restore_rules(&a(BOB), rules("block", "xmpp:alice@other.org")));
    assert_eq!(subscribe(&mut e, t, ALICE), 403);
}

#[test]
fn rfc5025_s3_2_1_polite_block_is_active_and_shows_offline() {
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let t = Instant::now();
    publish_open(&mut e, t);
    assert_eq!(subscribe(&mut e, t, ALICE), 202);
    drain(&mut e);
    e.set_rules(t, &a(BOB), Some(rules("polite-block", ALICE)));
    assert_eq!(state(&e, ALICE), Some(SubState::Active));
    let n = notifies(&drain(&mut e));
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].2, Some(Basic::Closed), "the watcher sees offline");
    // Allowing it now shows the real state.
    e.set_rules(t, &a(BOB), Some(rules("allow", ALICE)));
    let n = notifies(&drain(&mut e));
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].2, Some(Basic::Open));
    // Polite-blocked again, then the document deleted: back to pending, no state.
    e.set_rules(t, &a(BOB), Some(rules("polite-block", ALICE)));
    drain(&mut e);
    e.set_rules(t, &a(BOB), None);
    assert_eq!(state(&e, ALICE), Some(SubState::Pending));
    let n = notifies(&drain(&mut e));
    assert_eq!(
        n,
        vec![(ALICE.to_owned(), SubscriptionState::Pending, None)]
    );
    assert_eq!(e.rules_count(), 0);
}

#[test]
fn rfc5025_s3_2_1_confirm_leaves_the_watcher_pending() {
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let t = Instant::now();
    assert_eq!(subscribe(&mut e, t, ALICE), 202);
    drain(&mut e);
    e.set_rules(t, &a(BOB), Some(rules("confirm", ALICE)));
    assert_eq!(state(&e, ALICE), Some(SubState::Pending));
    assert!(notifies(&drain(&mut e)).is_empty());
}

#[test]
fn the_most_recent_of_a_decision_and_a_document_wins() {
    let mut e = PresenceEngine::new(PresenceConfig::default());
    let t = Instant::now();
    e.decide(t, &a(BOB), &a(ALICE), Choice::Deny);
    drain(&mut e);
    // The document written later forgets the decision and allows.
    e.set_rules(t, &a(BOB), Some(rules("allow", ALICE)));
    assert_eq!(e.decided(&a(ALICE), &a(BOB)), None);
    assert!(drain(&mut e)
        .iter()
        .any(|x| matches!(x, Action::DeleteDecision(_))));
    assert_eq!(subscribe(&mut e, t, ALICE), 200);
    // A decision made later overrides the document.
    e.decide(t, &a(BOB), &a(ALICE), Choice::Deny);
    assert_eq!(state(&e, ALICE), None);
    assert_eq!(subscribe(&mut e, t, ALICE), 403);
    // A document that only confirms does not forget it.
    e.set_rules(t, &a(BOB), Some(rules("confirm", ALICE)));
    assert_eq!(e.decided(&a(ALICE), &a(BOB)), Some(false));
}
