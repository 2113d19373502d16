//! Tests of partial notification (RFC 5263) and filters (RFC 4660/4661) in the
//! notifier, in virtual time.

use super::*;
use cpim_core::pidf_diff::{self, Document};
use cpim_core::presence::{Basic, Note, Tuple};

const BOTH: &str = "application/pidf+xml, application/pidf-diff+xml";

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

fn req(to_tag: Option<&str>, cseq: u32, expires: u32) -> SubscribeRequest {
    SubscribeRequest {
        call_id: "cid".into(),
        from_uri: "sip:watcher@sip.test".into(),
        from_tag: "ft".into(),
        to_uri: "sip:romeo@xmpp.test".into(),
        to_tag: to_tag.map(str::to_owned),
        event: Some("presence".into()),
        expires: Some(expires),
        cseq,
        contact: Some("sip:watcher@192.0.2.1:5070".into()),
        record_route: vec![],
        flow: None,
        watcher: Address::parse("sip:watcher@sip.test").unwrap(),
        presentity: Address::parse("xmpp:romeo@xmpp.test").unwrap(),
    }
}

fn tuple(id: &str, basic: Basic) -> Tuple {
    Tuple {
        id: id.into(),
        basic: Some(basic),
        ..Tuple::default()
    }
}

fn state(t1: Basic, t2: Option<Basic>, note: &str) -> Presence {
    let mut tuples = vec![tuple("t1", t1)];
    if let Some(b) = t2 {
        tuples.push(tuple("t2", b));
    }
    tuples[0].notes.push(Note::new(note));
    Presence {
        tuples,
        ..Presence::default()
    }
}

fn core(p: Presence) -> Notify {
    Notify {
        trans_id: Default::default(),
        watcher: Address::parse("im:watcher@sip.test").unwrap(),
        target: Address::parse("romeo@xmpp.test").unwrap(),
        state: SubscriptionState::Active { expires: 0 },
        presence: Some(p),
    }
}

fn drain(n: &mut Notifier) -> Vec<NotifierOutput> {
    std::iter::from_fn(|| n.poll_output()).collect()
}

/// The NOTIFYs of `out`: (body media type, body or PIDF presence).
#[derive(Debug)]
enum Sent {
    Partial(Document),
    Pidf(Option<Presence>),
}

fn sent(out: &[NotifierOutput]) -> Vec<Sent> {
    out.iter()
        .filter_map(|o| match o {
            NotifierOutput::Notify(n) => Some(Sent::Pidf(n.presence.clone())),
            NotifierOutput::NotifyBody {
                content_type, body, ..
            } => {
                assert_eq!(*content_type, pidf_diff::CONTENT_TYPE);
                Some(Sent::Partial(pidf_diff::parse(body.as_bytes()).unwrap()))
            }
            _ => None,
        })
        .collect()
}

/// Subscribes and accepts; returns the dialog key with the initial NOTIFY drained.
fn established(n: &mut Notifier, accept: &[&str], body: Option<(&str, &[u8])>) -> String {
    let SubscribeDecision::Submit { key, .. } =
        n.handle_subscribe_with(req(None, 1, 600), accept, body, "lt", 1000)
    else {
        panic!("not submitted")
    };
    assert_eq!(n.core_answered(&key, 200, 1000), Some((200, 600)));
    let first = sent(&drain(n));
    assert!(matches!(first.as_slice(), [Sent::Pidf(None)]), "{first:?}");
    key
}

fn version(s: &Sent) -> (bool, u32) {
    match s {
        Sent::Partial(Document::Full(f)) => (true, f.version),
        Sent::Partial(Document::Diff(d)) => (false, d.version),
        Sent::Pidf(_) => panic!("PIDF where a partial document was due: {s:?}"),
    }
}

/// RFC 5263 s4: a watcher accepting `application/pidf-diff+xml` gets full state first,
/// then diffs whose version goes up by one; applying them gives each state.
#[test]
fn rfc5263_s4_full_state_then_diffs_with_versions() {
    let mut n = notifier();
    established(&mut n, &[BOTH], None);
    let states = [
        state(Basic::Open, None, "a"),
        state(Basic::Closed, None, "a"),
        state(Basic::Closed, Some(Basic::Open), "a"),
    ];
    let mut held: Option<Presence> = None;
    let mut seen = Vec::new();
    for (i, s) in states.iter().enumerate() {
        assert_eq!(n.handle_core_notify(&core(s.clone()), 1001 + i as u64), 1);
        let out = sent(&drain(&mut n));
        assert_eq!(out.len(), 1, "{out:?}");
        seen.push(version(&out[0]));
        held = Some(match &out[0] {
            Sent::Partial(Document::Full(f)) => f.presence.clone(),
            Sent::Partial(Document::Diff(d)) => {
                pidf_diff::apply(held.as_ref().unwrap(), d).unwrap()
            }
            Sent::Pidf(_) => unreachable!(),
        });
        let mut want = s.clone();
        want.entity = Address::parse("pres:romeo@xmpp.test").ok();
        assert_eq!(held.as_ref(), Some(&want));
    }
    assert_eq!(seen, [(true, 1), (false, 2), (false, 3)]);
}

/// RFC 5263 s4: after a refresh the notifier sends full state again (the version goes
/// on), then diffs; a change without an id to address (a presentity note) is full state.
#[test]
fn rfc5263_s4_refresh_sends_full_state_again() {
    let mut n = notifier();
    established(&mut n, &[BOTH], None);
    n.handle_core_notify(&core(state(Basic::Open, None, "a")), 1001);
    n.handle_core_notify(&core(state(Basic::Closed, None, "a")), 1002);
    let v: Vec<_> = sent(&drain(&mut n)).iter().map(version).collect();
    assert_eq!(v, [(true, 1), (false, 2)]);
    let d = n.handle_subscribe_with(req(Some("lt"), 2, 600), &[BOTH], None, "x", 1003);
    assert_eq!(d, SubscribeDecision::Answer { expires: 600 });
    let v: Vec<_> = sent(&drain(&mut n)).iter().map(version).collect();
    assert_eq!(v, [(true, 3)], "the refresh's NOTIFY is full state");
    n.handle_core_notify(&core(state(Basic::Open, None, "a")), 1004);
    let mut noted = state(Basic::Open, None, "a");
    noted.notes.push(Note::new("presentity note"));
    n.handle_core_notify(&core(noted), 1005);
    let v: Vec<_> = sent(&drain(&mut n)).iter().map(version).collect();
    assert_eq!(v, [(false, 4), (true, 5)]);
}

/// RFC 5263 s3: without `application/pidf-diff+xml` in Accept (or with q=0) the watcher
/// gets PIDF as before, and the notifier keeps no state for it.
#[test]
fn rfc5263_s3_watcher_without_diff_gets_pidf() {
    for accept in [
        vec!["application/pidf+xml"],
        vec![],
        vec!["application/pidf+xml", "application/pidf-diff+xml;q=0"],
    ] {
        let mut n = notifier();
        established(&mut n, &accept, None);
        assert!(n.watch.is_empty(), "{accept:?}");
        let p = state(Basic::Open, None, "a");
        n.handle_core_notify(&core(p.clone()), 1001);
        let out = sent(&drain(&mut n));
        assert!(
            matches!(out.as_slice(), [Sent::Pidf(Some(q))] if *q == p),
            "{out:?}"
        );
    }
}

/// RFC 6665 s4.2.1.4 with RFC 5263: the final NOTIFY of a partial watcher is still a
/// partial document, and the state is gone afterwards; a refused subscription leaves
/// nothing behind.
#[test]
fn rfc5263_final_notify_and_cleanup() {
    let mut n = notifier();
    established(&mut n, &[BOTH], None);
    n.handle_core_notify(&core(state(Basic::Open, None, "a")), 1001);
    drain(&mut n);
    let d = n.handle_subscribe_with(req(Some("lt"), 2, 0), &[BOTH], None, "x", 1002);
    assert_eq!(d, SubscribeDecision::Answer { expires: 0 });
    let out = sent(&drain(&mut n));
    assert!(
        matches!(out.as_slice(), [Sent::Partial(Document::Diff(d))] if d.version == 2 && d.ops.is_empty()),
        "{out:?}"
    );
    assert!(n.watch.is_empty() && n.closing.is_empty());

    let SubscribeDecision::Submit { key, .. } =
        n.handle_subscribe_with(req(None, 1, 600), &[BOTH], None, "lt2", 2000)
    else {
        panic!()
    };
    assert_eq!(n.watch.len(), 1);
    assert_eq!(n.core_answered(&key, 403, 2000), Some((403, 0)));
    drain(&mut n);
    assert!(n.watch.is_empty() && n.closing.is_empty());
}

const FILTER_NS: &str = r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter" package="presence">
  <ns-bindings><ns-binding prefix="pidf" urn="urn:ietf:params:xml:ns:pidf"/></ns-bindings>
  <filter id="f1">
    <what><include>/pidf:presence/pidf:tuple[@id='t2']</include></what>
    <trigger><changed>/pidf:presence/pidf:tuple/pidf:status/pidf:basic</changed></trigger>
  </filter>
</filter-set>"#;

/// RFC 4660 s3.3 / RFC 4661 s3.4-s3.5: a filter in the SUBSCRIBE is applied to every
/// NOTIFY (only tuple t2), and a change its trigger does not select (a note) is not
/// notified; a basic status change is.
#[test]
fn rfc4660_filter_applied_to_notifies() {
    let mut n = notifier();
    established(
        &mut n,
        &["application/pidf+xml"],
        Some(("application/simple-filter+xml", FILTER_NS.as_bytes())),
    );
    n.handle_core_notify(&core(state(Basic::Open, Some(Basic::Open), "a")), 1001);
    let out = sent(&drain(&mut n));
    let [Sent::Pidf(Some(p))] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(
        p.tuples.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t2"]
    );
    n.handle_core_notify(&core(state(Basic::Open, Some(Basic::Open), "b")), 1002);
    assert!(
        sent(&drain(&mut n)).is_empty(),
        "a note change is not a trigger"
    );
    n.handle_core_notify(&core(state(Basic::Open, Some(Basic::Closed), "b")), 1003);
    let out = sent(&drain(&mut n));
    assert!(
        matches!(out.as_slice(), [Sent::Pidf(Some(p))] if p.tuples[0].basic == Some(Basic::Closed)),
        "{out:?}"
    );
    // The refresh's NOTIFY goes whatever the trigger says.
    n.handle_subscribe_with(req(Some("lt"), 2, 600), &[], None, "x", 1004);
    assert_eq!(sent(&drain(&mut n)).len(), 1);
}

/// A filter and partial notification together: the diffs are of the filtered state.
#[test]
fn rfc4660_filter_with_partial_notification() {
    let mut n = notifier();
    let only_t1 = FILTER_NS.replace("t2", "t1").replace(
        "<trigger><changed>/pidf:presence/pidf:tuple/pidf:status/pidf:basic</changed></trigger>",
        "",
    );
    established(
        &mut n,
        &[BOTH],
        Some(("application/simple-filter+xml", only_t1.as_bytes())),
    );
    n.handle_core_notify(&core(state(Basic::Open, None, "a")), 1001);
    n.handle_core_notify(&core(state(Basic::Open, Some(Basic::Open), "a")), 1002);
    let out = sent(&drain(&mut n));
    let [Sent::Partial(Document::Full(f)), Sent::Partial(Document::Diff(d))] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!(f.presence.tuples.len(), 1);
    assert!(d.ops.is_empty(), "t2 is filtered out: {d:?}");
}

/// RFC 4660 s3.3: a filter the notifier cannot apply refuses the SUBSCRIBE and creates
/// nothing: an unknown namespace and an unsupported feature are 488, another package
/// 489, a malformed document 400, a body of another type 415.
#[test]
fn rfc4660_s3_3_filters_that_cannot_be_applied() {
    let ct = "application/simple-filter+xml";
    let unknown_ns = r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter"><filter>
        <what><include type="namespace">urn:example:unknown-extension</include></what></filter></filter-set>"#;
    let unsupported = r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter"><filter>
        <trigger><changed by="2">/presence/tuple/status/basic</changed></trigger></filter></filter-set>"#;
    let dialog = r#"<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter" package="dialog"/>"#;
    for (ctype, body, code) in [
        (ct, unknown_ns, 488),
        (ct, unsupported, 488),
        (ct, dialog, 489),
        (ct, "<filter-set", 400),
        ("text/plain", "hello", 415),
    ] {
        let mut n = notifier();
        let d = n.handle_subscribe_with(
            req(None, 1, 600),
            &[],
            Some((ctype, body.as_bytes())),
            "lt",
            1000,
        );
        assert!(
            matches!(d, SubscribeDecision::Reject { code: c, .. } if c == code),
            "{ctype} {body}: {d:?}"
        );
        assert!(n.is_empty() && n.watch.is_empty());
    }
}
