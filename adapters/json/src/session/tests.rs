//! Tests of the session: handshake, framing errors, operations and outcomes, rate
//! limit, delivery timeouts and presence mapping.

use base64::Engine as _;
use cpim_core::model::MessageKind;
use cpim_core::Message;
use cpim_core::StatusCode;

use super::*;
use crate::FrameError;

fn limits() -> SessionLimits {
    SessionLimits {
        rate_per_sec: 1.0,
        rate_burst: 100,
        deliver_timeout: Duration::from_secs(5),
        hello_timeout: Duration::from_secs(5),
    }
}

fn tokens() -> HashMap<String, Vec<Address>> {
    let mut t = HashMap::new();
    t.insert(
        "secret".to_owned(),
        vec![Address::parse("im:alice@corp.example").unwrap()],
    );
    t
}

fn drain(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn error_code(e: &Event) -> Option<(u16, bool)> {
    match e {
        Event::Send(Frame::Error(f)) => Some((f.code, f.fatal)),
        _ => None,
    }
}

fn open() -> (Session, Instant) {
    open_with(limits())
}

fn open_with(limits: SessionLimits) -> (Session, Instant) {
    let now = Instant::now();
    let mut s = Session::new(7, limits, now);
    s.handle_frame(
        Ok(br#"{"type":"hello","version":1,"token":"secret"}"#),
        &tokens(),
        now,
    );
    let ev = drain(&mut s);
    assert!(
        matches!(&ev[0], Event::Send(Frame::Welcome(w)) if w.addresses == ["im:alice@corp.example"])
    );
    assert!(matches!(&ev[1], Event::LoggedIn(a) if a.len() == 1));
    (s, now)
}

#[test]
fn hello_is_required_and_checked() {
    let now = Instant::now();
    let mut s = Session::new(1, limits(), now);
    s.handle_frame(
        Ok(br#"{"type":"message","id":"1","to":"im:b@x","body":"hi"}"#),
        &tokens(),
        now,
    );
    assert_eq!(error_code(&drain(&mut s)[0]), Some((401, false)));
    s.handle_frame(
        Ok(br#"{"type":"hello","version":9,"token":"secret"}"#),
        &tokens(),
        now,
    );
    assert_eq!(error_code(&drain(&mut s)[0]), Some((505, false)));
    s.handle_frame(
        Ok(br#"{"type":"hello","version":1,"token":"nope"}"#),
        &tokens(),
        now,
    );
    let ev = drain(&mut s);
    assert_eq!(error_code(&ev[0]), Some((403, true)));
    assert!(matches!(ev[1], Event::Close));
}

#[test]
fn malformed_truncated_unknown_field_and_oversize_frames_are_answered_and_survived() {
    let (mut s, now) = open();
    let t = tokens();
    let cases: [(&[u8], &str); 5] = [
        (b"{not json", "malformed"),
        (
            br#"{"type":"message","id":"7","to":"im:b@x","bo"#,
            "truncated",
        ),
        (
            br#"{"type":"message","id":"8","to":"im:b@x","body":"x","colour":"red"}"#,
            "colour",
        ),
        (br#"{"type":"launch","id":"9"}"#, "launch"),
        (br#"[1,2,3]"#, "invalid"),
    ];
    for (bytes, word) in cases {
        s.handle_frame(Ok(bytes), &t, now);
        let ev = drain(&mut s);
        match &ev[..] {
            [Event::Send(Frame::Error(e))] => {
                assert_eq!(e.code, StatusCode::BAD_REQUEST);
                assert!(!e.fatal);
                assert!(e.reason.contains(word), "{:?} lacks {word}", e.reason);
            }
            other => panic!("{other:?}"),
        }
    }
    // the unknown-field error names the frame id
    s.handle_frame(
        Ok(br#"{"type":"message","id":"8","to":"im:b@x","body":"x","colour":"red"}"#),
        &t,
        now,
    );
    assert!(
        matches!(&drain(&mut s)[0], Event::Send(Frame::Error(e)) if e.id.as_deref() == Some("8"))
    );
    s.handle_frame(Err(FrameError::TooLarge { limit: 10 }), &t, now);
    assert_eq!(error_code(&drain(&mut s)[0]), Some((413, false)));
    // still usable
    s.handle_frame(
        Ok(br#"{"type":"message","id":"m1","to":"sip:bob@sip.example","body":"hi"}"#),
        &t,
        now,
    );
    assert!(matches!(
        &drain(&mut s)[0],
        Event::Submit(Operation::Message(_))
    ));
}

#[test]
fn message_maps_to_operation_and_outcome_comes_back_with_the_id() {
    let (mut s, now) = open();
    let f = br#"{"type":"message","id":"m1","to":"sip:bob@sip.example","content_type":"message/cpim","body":"AAEC","encoding":"base64","headers":{"subject":"s","thread":"t","message_id":"x1","kind":"normal","disposition":["delivery"]}}"#;
    s.handle_frame(Ok(f), &tokens(), now);
    let Some(Event::Submit(Operation::Message(m))) = s.poll_event() else {
        panic!()
    };
    assert_eq!(m.source.to_string(), "im:alice@corp.example");
    assert_eq!(m.destination.to_string(), "sip:bob@sip.example");
    assert_eq!(m.body, vec![0, 1, 2]);
    assert_eq!(m.content_type, "message/cpim");
    assert_eq!(
        (
            m.subject.as_deref(),
            m.thread.as_deref(),
            m.message_id.as_deref()
        ),
        (Some("s"), Some("t"), Some("x1"))
    );
    assert_eq!(m.kind, MessageKind::Normal);
    assert!(m.disposition.delivery && !m.disposition.display);
    s.handle_submit_outcome(Outcome::failure(
        m.trans_id,
        StatusCode::NOT_FOUND,
        "Not Found",
    ));
    assert!(
        matches!(s.poll_event(), Some(Event::Send(Frame::Outcome(o))) if o.id == "m1" && o.code == StatusCode::NOT_FOUND)
    );
}

#[test]
fn forged_sender_is_refused() {
    let (mut s, now) = open();
    s.handle_frame(Ok(br#"{"type":"message","id":"m","from":"im:mallory@corp.example","to":"im:b@x","body":"hi"}"#), &tokens(), now);
    assert!(
        matches!(&drain(&mut s)[..], [Event::Send(Frame::Error(e))] if e.code == StatusCode::FORBIDDEN && e.id.as_deref() == Some("m"))
    );
}

#[test]
fn rate_limit_refuses_excess_then_recovers() {
    let (mut s, now) = open_with(SessionLimits {
        rate_burst: 3,
        ..limits()
    });
    let f = br#"{"type":"publish","id":"p","basic":"open"}"#;
    for _ in 0..3 {
        s.handle_frame(Ok(f), &tokens(), now);
        assert!(matches!(
            &drain(&mut s)[..],
            [Event::Submit(Operation::Publish(_))]
        ));
    }
    s.handle_frame(Ok(f), &tokens(), now);
    assert_eq!(error_code(&drain(&mut s)[0]), Some((429, false)));
    // the refused frame cost a token: 2 s refill one token and pay the debt
    s.handle_frame(Ok(f), &tokens(), now + Duration::from_secs(3));
    assert!(matches!(
        &drain(&mut s)[..],
        [Event::Submit(Operation::Publish(_))]
    ));
    // malformed frames count too, and a client that keeps going is closed
    let later = now + Duration::from_secs(3);
    let mut codes = Vec::new();
    for _ in 0..10 {
        s.handle_frame(Ok(b"{bad"), &tokens(), later);
        codes.extend(drain(&mut s).iter().filter_map(error_code));
    }
    // one token left (400 for the bad JSON), then refusals into debt, then closed
    assert_eq!(
        codes,
        vec![
            (400, false),
            (429, false),
            (429, false),
            (429, false),
            (429, true)
        ]
    );
}

#[test]
fn delivery_waits_for_the_client_outcome_or_times_out() {
    let (mut s, now) = open();
    let a = Address::parse("sip:bob@sip.example").unwrap();
    let b = Address::parse("im:alice@corp.example").unwrap();
    let m = Message::new(
        TransId(5),
        a.clone(),
        b.clone(),
        "text/plain",
        vec![0xff, 0x00],
    );
    s.deliver(Operation::Message(m.clone()), 1, now);
    let Some(Event::Send(Frame::Message(f))) = s.poll_event() else {
        panic!()
    };
    assert_eq!(f.encoding, BodyEncoding::Base64);
    assert_eq!(f.body, "/wA=");
    s.handle_frame(
        Ok(format!(
            r#"{{"type":"outcome","id":"{}","code":200,"reason":"OK"}}"#,
            f.id
        )
        .as_bytes()),
        &tokens(),
        now,
    );
    assert!(
        matches!(s.poll_event(), Some(Event::Delivered(1, o)) if o.status.code == StatusCode::OK && o.trans_id == TransId(5))
    );
    s.deliver(Operation::Message(m), 2, now);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
    s.handle_timeout(now + Duration::from_secs(6));
    assert!(
        matches!(s.poll_event(), Some(Event::Delivered(2, o)) if o.status.code == StatusCode::REQUEST_TIMEOUT)
    );
    s.handle_frame(
        Ok(br#"{"type":"outcome","id":"s9","code":200}"#),
        &tokens(),
        now,
    );
    assert_eq!(error_code(&drain(&mut s)[0]), Some((481, false)));
}

#[test]
fn presence_round_trip_through_the_model() {
    let acts = vec!["away".to_owned(), "knitting".to_owned()];
    let p = presence_from_parts(
        None,
        Some(BasicFrame::Open),
        Some("back soon".into()),
        &acts,
    );
    let o = presence_to_object(&p);
    assert_eq!(o.basic, Some(BasicFrame::Open));
    assert_eq!(o.note.as_deref(), Some("back soon"));
    assert_eq!(o.activities, acts);
}

proptest::proptest! {
    #[test]
    fn message_frames_round_trip_through_json_and_the_model(
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        subject in proptest::option::of("\\PC{0,20}"),
    ) {
        let (mut s, now) = open();
        let a = Address::parse("sip:bob@sip.example").unwrap();
        let b = Address::parse("im:alice@corp.example").unwrap();
        let mut m = Message::new(TransId(1), a, b, "message/cpim", body.clone());
        m.subject = subject.clone();
        s.deliver(Operation::Message(m.clone()), 1, now);
        let Some(Event::Send(f)) = s.poll_event() else { panic!() };
        let wire = serde_json::to_vec(&f).unwrap();
        let Frame::Message(back) = serde_json::from_slice::<Frame>(&wire).unwrap() else { panic!() };
        let decoded = match back.encoding {
            BodyEncoding::Utf8 => back.body.into_bytes(),
            BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD.decode(back.body).unwrap(),
        };
        proptest::prop_assert_eq!(decoded, body);
        proptest::prop_assert_eq!(back.headers.subject, subject);
    }
}
