//! The transaction user driven in process (harness in `common/tu.rs`): MESSAGE in (RFC 3428,
//! RFC 7572) with its identity checks, MESSAGE out (forking, the digest client, the
//! outbound proxy).

mod common;

use cpim_core::StatusCode;
use std::net::SocketAddr;
use std::sync::Arc;

use common::tu::*;
use cpim_core::address::Address;
use cpim_core::model::{Message, Operation, TransId};
use cpim_sip::app::config::ClientCredential;
use cpim_sip::app::digest;
use cpim_sip::app::store::MemoryStore;
use cpim_sip::app::tu::{NextHop, Source};
use cpim_sip::codec::{HeaderName, Method, Request};

/// RFC 3428 + RFC 7572: MESSAGE from a local user needs authentication; once
/// authenticated the core gets the mapped message, and its outcome becomes the answer.
#[tokio::test]
async fn message_in_authenticated_mapped_and_outcome_mapped() {
    let h = harness();
    let m = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:alice@sip.test",
        "sip:romeo@xmpp.test",
    )
    .h(HeaderName::Subject, "greeting")
    .body("text/plain;charset=UTF-8", b"Hello Romeo");
    let resp = with_auth(&h, m, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 200);
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Operation::Message(msg) = &ops[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(msg.source.to_string(), "sip:alice@sip.test");
        assert_eq!(msg.destination.to_string(), "sip:romeo@xmpp.test");
        assert_eq!(msg.body, b"Hello Romeo");
        assert_eq!(msg.subject.as_deref(), Some("greeting"));
        // Max-Forwards 70 as it came: the router counts the hop.
        assert_eq!(msg.hops_left, 70);
    }
    // The core says 404: so does the SIP answer.
    let m = Req::new(
        Method::Message,
        "sip:nobody@xmpp.test",
        "sip:alice@sip.test",
        "sip:nobody@xmpp.test",
    )
    .body("text/plain", b"anyone?");
    assert_eq!(
        with_auth(&h, m, "alice", "wonderland", 5070).await.code(),
        404
    );
    // Max-Forwards 0 from the trusted peer: hops_left 0 for the core, whose 483 is the
    // answer.
    let req = Request::builder(&Method::Message, "sip:romeo@xmpp.test")
        .header(
            HeaderName::Via,
            "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKmf0",
        )
        .header(HeaderName::MaxForwards, "0")
        .header(HeaderName::From, "<sip:carol@other.test>;tag=a")
        .header(HeaderName::To, "<sip:romeo@xmpp.test>")
        .header(HeaderName::CallId, "mf0")
        .header(HeaderName::CSeq, "1 MESSAGE")
        .body("text/plain", &b"loop"[..])
        .build_request()
        .unwrap();
    assert_eq!(
        h.tu.handle_request(req, peer(5090)).await.unwrap().code(),
        483
    );
    let ops = h.ingress.ops.lock().unwrap();
    assert!(
        matches!(ops.last(), Some(Operation::Message(m)) if m.hops_left == 0),
        "{ops:?}"
    );
}

/// No forging: a MESSAGE claiming a local user is challenged; authenticating as another
/// user gets 403; a TCP flow the same user registered on is trusted without digest, a UDP
/// one never (issue 10: a UDP source address is no identity).
#[tokio::test]
async fn message_forging_refused_and_registered_flow_trusted() {
    let h = harness();
    let m = || {
        Req::new(
            Method::Message,
            "sip:romeo@xmpp.test",
            "sip:alice@sip.test",
            "sip:romeo@xmpp.test",
        )
        .body("text/plain", b"hi")
    };
    assert_eq!(code(&h, &m(), src(5070)).await, 401);
    let r = own(Method::Register, "sip:sip.test", "sip:bob@sip.test")
        .h(HeaderName::Contact, "<sip:bob@127.0.0.1:5080>");
    assert_eq!(with_auth(&h, r, "bob", "builder", 5080).await.code(), 200);
    // Bob authenticates but claims to be alice.
    assert_eq!(with_auth(&h, m(), "bob", "builder", 5080).await.code(), 403);
    // Alice registers from UDP 5070: her MESSAGE from that address and port is still
    // challenged (anyone can send from it) and reaches no one.
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(
        with_auth(&h, r, "alice", "wonderland", 5070).await.code(),
        200
    );
    let before = h.ingress.ops.lock().unwrap().len();
    assert_eq!(code(&h, &m(), src(5070)).await, 401);
    assert_eq!(
        h.ingress.ops.lock().unwrap().len(),
        before,
        "nothing relayed"
    );
    // Over a TCP connection she registered on with digest, no digest is needed.
    let mut r = register("<sip:alice@127.0.0.1:5072;transport=tcp>", "600");
    r.call_id = "reg-tcp".into();
    assert_eq!(
        with_auth_from(&h, r, "alice", "wonderland", tcp(5072))
            .await
            .code(),
        200
    );
    // The registered connection is trusted; the same claim from another port, or over
    // UDP from that port, is challenged.
    for (from, want) in [(tcp(5072), 200), (tcp(5071), 401), (src(5072), 401)] {
        let what = format!("{} {}", from.transport, from.remote);
        assert_eq!(code(&h, &m(), from).await, want, "{what}");
    }
    // A user of another domain is not challenged when a trusted peer speaks for it (the
    // router checks cross-domain forging); from anyone else, 403 (RFC 5922).
    let other = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:carol@other.test",
        "sip:romeo@xmpp.test",
    )
    .body("text/plain", b"hi");
    let r = h.tu.handle_request(other.build(), src(6000)).await.unwrap();
    assert_eq!((r.code(), r.reason()), (403, "Foreign Domain Not Trusted"));
    assert_eq!(code(&h, &other, peer(6000)).await, 200);
}

/// deliver(Message) to a local user forks to its bindings; the first 2xx wins.
#[tokio::test]
async fn deliver_message_forks_to_bindings() {
    let h = harness();
    for (i, port) in [5070u16, 5071].iter().enumerate() {
        let mut r = register(&format!("<sip:alice@127.0.0.1:{port}>"), "600");
        r.call_id = format!("reg-{i}");
        assert_eq!(
            with_auth(&h, r, "alice", "wonderland", *port).await.code(),
            200
        );
    }
    h.wire.answer_next(|_| (480, vec![]));
    h.wire.answer_next(|_| (200, vec![]));
    let mut m = Message::new(
        TransId(9),
        Address::parse("romeo@xmpp.test/balcony").unwrap(),
        Address::parse("sip:alice@sip.test").unwrap(),
        "message/cpim",
        b"From: <im:romeo@xmpp.test>\r\n\r\nContent-Type: text/plain\r\n\r\nhi".to_vec(),
    );
    m.subject = Some("s".into());
    let out = h.tu.deliver(Operation::Message(m)).await;
    assert_eq!(out.status.code, StatusCode::OK, "{out:?}");
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 2);
    for (req, hop) in &sent {
        assert_eq!(req.method(), &Method::Message);
        assert!(matches!(hop, NextHop::Flow(f) if f.starts_with("udp:127.0.0.1:507")));
        assert_eq!(req.content_type(), Some("message/cpim"));
        assert!(req.body().starts_with(b"From: <im:romeo@xmpp.test>"));
        assert!(req
            .header(HeaderName::From)
            .unwrap()
            .contains("sip:romeo@xmpp.test;gr=balcony"));
    }
    // No binding: 480.
    let m = Message::new(
        TransId(10),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:bob@sip.test").unwrap(),
        "text/plain",
        b"x".to_vec(),
    );
    assert_eq!(
        h.tu.deliver(Operation::Message(m)).await.status.code,
        StatusCode::TEMPORARILY_UNAVAILABLE
    );
}

/// Out of domain: through the proxy; a 407 is answered with configured credentials; a
/// timeout becomes 408.
#[tokio::test]
async fn deliver_message_remote_with_proxy_auth_and_timeout() {
    let mut c = config();
    c.remote_domains = vec!["kamailio.test".into()];
    c.outbound_proxy = Some(cpim_sip::app::config::OutboundProxy {
        address: "127.0.0.1:5090".into(),
        transport: Some(cpim_sip::transport::Transport::Udp),
    });
    c.credentials = vec![ClientCredential {
        realm: Some("kamailio.test".into()),
        username: "gw".into(),
        password: "secret".into(),
    }];
    let h = harness_with(c, Arc::new(MemoryStore::new()));
    h.wire.answer_next(|_| {
        (
            407,
            vec![(
                HeaderName::ProxyAuthenticate,
                "Digest realm=\"kamailio.test\", nonce=\"abc\", qop=\"auth\", algorithm=SHA-256"
                    .into(),
            )],
        )
    });
    h.wire.answer_next(|req: &Request| {
        let v = req.header(HeaderName::ProxyAuthorization).unwrap_or("");
        let c = digest::Credentials::parse(v).unwrap();
        let expected = digest::response(
            c.algorithm,
            &digest::ha1(c.algorithm, "gw", "kamailio.test", "secret"),
            "abc",
            Some((c.nc.as_deref().unwrap(), c.cnonce.as_deref().unwrap())),
            "MESSAGE",
            &c.uri,
        );
        (if expected == c.response { 202 } else { 403 }, vec![])
    });
    let m = Message::new(
        TransId(1),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:carol@kamailio.test").unwrap(),
        "text/plain",
        b"hi".to_vec(),
    );
    let out = h.tu.deliver(Operation::Message(m.clone())).await;
    assert_eq!(out.status.code, StatusCode::ACCEPTED);
    let sent = h.wire.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].1,
        NextHop::Uri("sip:127.0.0.1:5090;transport=udp;lr".into())
    );
    assert_eq!(sent[0].0.uri_str(), "sip:carol@kamailio.test");
    assert!(sent[1].0.cseq().seq > sent[0].0.cseq().seq);
    h.wire.answer_next(|_| (408, vec![]));
    assert_eq!(
        h.tu.deliver(Operation::Message(m)).await.status.code,
        StatusCode::REQUEST_TIMEOUT
    );
}

/// Outbound-proxy mode: the proxy owns the users, so REGISTER is refused; requests from
/// a trusted peer (the proxy) need no digest; a MESSAGE to a user of the gateway's
/// domain goes to the proxy with the AOR as Request-URI.
#[tokio::test]
async fn outbound_proxy_mode() {
    let mut c = config();
    c.outbound_proxy = Some(cpim_sip::app::config::OutboundProxy {
        address: "127.0.0.1:5064".into(),
        transport: None,
    });
    c.trusted_peers = vec!["127.0.0.2".parse().unwrap()];
    let h = harness_with(c, Arc::new(MemoryStore::new()));
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(code(&h, &r, src(5070)).await, 403);
    let m = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:alice@sip.test",
        "sip:romeo@xmpp.test",
    )
    .body("text/plain", b"via the proxy");
    let from_proxy = Source {
        transport: cpim_sip::transport::Transport::Udp,
        remote: SocketAddr::from(([127, 0, 0, 2], 5064)),
        verified_names: Vec::new(),
        connection: None,
    };
    assert_eq!(code(&h, &m, from_proxy).await, 200);
    // The same request from elsewhere is challenged.
    assert_eq!(code(&h, &m, src(5070)).await, 401);
    let out = Message::new(
        TransId(1),
        Address::parse("romeo@xmpp.test").unwrap(),
        Address::parse("sip:alice@sip.test").unwrap(),
        "text/plain",
        b"hi".to_vec(),
    );
    assert_eq!(
        h.tu.deliver(Operation::Message(out)).await.status.code,
        StatusCode::OK
    );
    let sent = h.wire.sent();
    assert_eq!(sent[0].0.uri_str(), "sip:alice@sip.test");
    assert_eq!(
        sent[0].1,
        NextHop::Uri("sip:127.0.0.1:5064;transport=udp;lr".into())
    );
}

/// RFC 7247 s5 and XEP-0106: a SIP user whose user part holds an `@` (`a%40b`) writes to
/// XMPP as `a\40b@sip.test`; a reply to that JID reaches the user's binding, with the
/// user part percent-encoded again in the Request-URI's AOR and the To header.
#[tokio::test]
async fn user_with_at_sign_round_trips_through_its_escaped_jid() {
    use cpim_core::addrmap::{from_jid, to_jid, Home};
    let mut c = config();
    c.users.push(cpim_sip::app::config::SipUser {
        username: "a@b".into(),
        password: Some("at-sign-secret".into()),
        ..Default::default()
    });
    let h = harness_with(c, Arc::new(MemoryStore::new()));
    let aor = "sip:a%40b@sip.test";
    let reg = Req::new(Method::Register, "sip:sip.test", aor, aor)
        .h(HeaderName::Contact, "<sip:a%40b@127.0.0.1:5080>")
        .h(HeaderName::Expires, "600");
    assert_eq!(
        with_auth(&h, reg, "a@b", "at-sign-secret", 5080)
            .await
            .code(),
        200
    );
    // SIP -> core: the source is the user `a@b`, written to XMPP as `a\40b`.
    let m = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        aor,
        "sip:romeo@xmpp.test",
    )
    .body("text/plain", b"hi Romeo");
    let r = with_auth(&h, m, "a@b", "at-sign-secret", 5080).await;
    assert_eq!(r.code(), 200, "{}", r.reason());
    let source = {
        let ops = h.ingress.ops.lock().unwrap();
        let Operation::Message(msg) = &ops[0] else {
            panic!("{ops:?}")
        };
        msg.source.clone()
    };
    assert_eq!(source.user.as_deref(), Some("a@b"));
    let jid = to_jid(&source, Home::Sip).unwrap();
    assert_eq!(jid, "a\\40b@sip.test");
    // core -> SIP: the reply to that JID goes to the binding.
    h.wire.answer_next(|_| (200, vec![]));
    let reply = Message::new(
        TransId(77),
        Address::parse("romeo@xmpp.test/balcony").unwrap(),
        from_jid(&jid, Home::Sip).unwrap(),
        "text/plain",
        b"hi back".to_vec(),
    );
    let out = h.tu.deliver(Operation::Message(reply)).await;
    assert_eq!(out.status.code, StatusCode::OK, "{out:?}");
    let sent = h.wire.sent();
    let (req, hop) = sent.last().unwrap();
    assert!(
        matches!(hop, NextHop::Flow(f) if f == "udp:127.0.0.1:5080"),
        "{hop:?}"
    );
    assert!(
        req.header(HeaderName::To)
            .unwrap()
            .contains("sip:a%40b@sip.test"),
        "{:?}",
        req.header(HeaderName::To)
    );
    assert_eq!(req.body().as_ref(), b"hi back");
}

/// RFC 3261 s20.12: a deflated body (Linphone deflates its IMDNs) reaches the core
/// decoded; a coding the gateway does not know gets 415 with Accept-Encoding (s21.4.13),
/// a body that is not what its coding says gets 400.
#[tokio::test]
async fn content_encoding_is_decoded_or_refused() {
    let h = harness();
    let text = b"<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\"/>";
    let m = || {
        Req::new(
            Method::Message,
            "sip:romeo@xmpp.test",
            "sip:alice@sip.test",
            "sip:romeo@xmpp.test",
        )
    };
    let deflated = m().h(HeaderName::ContentEncoding, "deflate").body(
        "message/imdn+xml",
        &miniz_oxide::deflate::compress_to_vec_zlib(text, 6),
    );
    let resp = with_auth(&h, deflated, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 200);
    {
        let ops = h.ingress.ops.lock().unwrap();
        let Some(Operation::Message(msg)) = ops.last() else {
            panic!("{ops:?}")
        };
        assert_eq!(msg.body, text);
    }
    let brotli = m()
        .h(HeaderName::ContentEncoding, "br")
        .body("text/plain", b"x");
    let resp = with_auth(&h, brotli, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 415);
    assert_eq!(
        resp.header(HeaderName::AcceptEncoding),
        Some("identity, deflate")
    );
    let corrupt = m()
        .h(HeaderName::ContentEncoding, "deflate")
        .body("text/plain", b"not deflate");
    let resp = with_auth(&h, corrupt, "alice", "wonderland", 5070).await;
    assert_eq!(resp.code(), 400);
}

/// XMPP -> SIP in message/cpim (RFC 3862; `[sip] cpim_wrap`, default "learn"): a text to
/// a binding whose UA never wrote CPIM goes bare; once the UA has sent message/cpim over
/// that flow it goes in CPIM with the message id (RFC 5438 s6.3); a UA that answers 415
/// gets it bare again at once (RFC 3428 s7); a user's own `cpim = false` wins over what was
/// learned.
#[tokio::test]
async fn cpim_to_sip_users_learned_per_binding_415_falls_back_and_user_setting_wins() {
    let mut cfg = config();
    let h = harness_with(cfg.clone(), Arc::new(MemoryStore::default()));
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(
        with_auth(&h, r, "alice", "wonderland", 5070).await.code(),
        200
    );
    let text = |n: u64| {
        let mut m = Message::new(
            TransId(n),
            Address::parse("romeo@xmpp.test").unwrap(),
            Address::parse("sip:alice@sip.test").unwrap(),
            "text/plain;charset=UTF-8",
            b"hi".to_vec(),
        );
        m.message_id = Some(format!("x-{n}"));
        Operation::Message(m)
    };
    let last_sent = |h: &Harness| h.wire.sent().last().unwrap().0.clone();

    assert_eq!(h.tu.deliver(text(1)).await.status.code, StatusCode::OK);
    assert_eq!(
        last_sent(&h).content_type(),
        Some("text/plain;charset=UTF-8")
    );

    // alice's UA writes CPIM over the flow it registered on: learned.
    let cpim = b"From: <sip:alice@sip.test>\r\nTo: <sip:romeo@xmpp.test>\r\n\r\nContent-Type: text/plain\r\n\r\nhello";
    let m = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:alice@sip.test",
        "sip:romeo@xmpp.test",
    )
    .body("message/cpim", cpim);
    assert_eq!(
        with_auth(&h, m, "alice", "wonderland", 5070).await.code(),
        200
    );
    assert_eq!(h.tu.deliver(text(2)).await.status.code, StatusCode::OK);
    let sent = last_sent(&h);
    assert_eq!(sent.content_type(), Some("message/cpim"));
    let body = String::from_utf8_lossy(sent.body()).into_owned();
    assert!(body.contains("imdn.Message-ID: x-2\r\n"), "{body}");
    assert!(body.ends_with("\r\n\r\nhi"), "{body}");

    // 415 to the envelope: the same message bare, at once.
    h.wire.answer_next(|_| (415, vec![]));
    h.wire.answer_next(|_| (200, vec![]));
    let before = h.wire.sent().len();
    assert_eq!(h.tu.deliver(text(3)).await.status.code, StatusCode::OK);
    let sent = h.wire.sent();
    assert_eq!(sent.len(), before + 2);
    assert_eq!(sent[before].0.content_type(), Some("message/cpim"));
    assert_eq!(
        sent[before + 1].0.content_type(),
        Some("text/plain;charset=UTF-8")
    );

    // The user's own setting wins over what was learned.
    cfg.users[0].cpim = Some(false);
    let h2 = harness_with(cfg, h.store.clone());
    let r = register("<sip:alice@127.0.0.1:5070>", "600");
    assert_eq!(
        with_auth(&h2, r, "alice", "wonderland", 5070).await.code(),
        200
    );
    let m = Req::new(
        Method::Message,
        "sip:romeo@xmpp.test",
        "sip:alice@sip.test",
        "sip:romeo@xmpp.test",
    )
    .body("message/cpim", cpim);
    assert_eq!(
        with_auth(&h2, m, "alice", "wonderland", 5070).await.code(),
        200
    );
    assert_eq!(h2.tu.deliver(text(4)).await.status.code, StatusCode::OK);
    assert_eq!(
        last_sent(&h2).content_type(),
        Some("text/plain;charset=UTF-8")
    );
}
