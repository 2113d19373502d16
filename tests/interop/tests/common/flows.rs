//! The message and presence flows of the acceptance tests, shared by component mode and
//! s2s mode (only the way XMPP users write a SIP user's JID differs) and by the XMPP
//! servers they run against (Prosody: `gateway_component`, `gateway_s2s`; ejabberd:
//! `gateway_ejabberd_component`, `gateway_ejabberd_s2s`). [`super::modes`] sets them up.

use cpim_core::presence::Basic;
use cpim_interop::{Peers, XmppServer};
use cpim_sip::codec::HeaderName;
use cpim_testkit::{SipUa, TestGateway, Transport, XmppClient, XmppEvent};

use super::*;

/// A flow as a value: `|s, u| Box::pin(flows::messages_both_ways(s, u))`.
pub type Flow = for<'a> fn(
    &'a Setup<'a>,
    &'a str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// Where the flows run.
pub struct Setup<'a> {
    /// The peers.
    pub peers: &'a Peers,
    /// The XMPP server of the XMPP users (one of `peers`): its c2s address, domain and
    /// accounts (`alice`, `bob`).
    pub xmpp: &'a XmppServer,
    /// The gateway (started with the flow's SIP user in its user list).
    pub gw: &'a TestGateway,
    /// The SIP users' domain.
    pub sip_domain: String,
    /// The domain XMPP users write for SIP users (component domain, or the gateway's s2s
    /// domain).
    pub jid_domain: String,
}

impl Setup<'_> {
    async fn ua(&self, user: &str, transport: Transport) -> SipUa {
        let ua = SipUa::new(
            user,
            &self.sip_domain,
            Some(&format!("{user}pw")),
            transport,
            self.gw.sip_addr(transport).unwrap(),
        )
        .await
        .unwrap();
        let r = ua.register(300).await.unwrap();
        assert_eq!(r.code(), 200, "REGISTER: {}", r.reason());
        ua
    }

    async fn xmpp(&self, user: &str) -> XmppClient {
        xmpp_login(self.peers, self.xmpp, user).await
    }
}

/// SIP (UDP and TCP) -> XMPP text/plain and message/cpim (the XMPP user gets the payload,
/// RFC 3922 s4 / RFC 7572), XMPP -> SIP in message/cpim to a UA that wrote CPIM.
pub async fn messages_both_ways(s: &Setup<'_>, user: &str) {
    let bob = s.xmpp.account("bob").unwrap();
    let mut xbob = s.xmpp("bob").await;
    let sip_jid = format!("{user}@{}", s.jid_domain);
    let to_bob = format!("sip:{}", bob.jid());
    for transport in [Transport::Udp, Transport::Tcp] {
        let ua = s.ua(user, transport).await;

        // SIP -> XMPP, text/plain: 200 only after the XMPP side accepted it.
        let text = format!("plain over {transport:?}");
        let r = ua
            .message(&to_bob, "text/plain;charset=UTF-8", text.as_bytes())
            .await
            .unwrap();
        assert_eq!(r.code(), 200, "{}", r.reason());
        let m = xbob
            .await_event(
                |e| matches!(e, XmppEvent::Message { body, .. } if *body == text),
                WAIT,
            )
            .await
            .unwrap();
        assert_eq!(m.from_bare(), Some(sip_jid.as_str()));

        // SIP -> XMPP, message/cpim: the payload, not the envelope.
        let payload = format!("cpim payload over {transport:?}");
        let cpim = format!(
            "From: <sip:{user}@{}>\r\nTo: <{to_bob}>\r\nDateTime: 2026-11-21T12:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: id{transport:?}{user}\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n{payload}",
            s.sip_domain
        );
        let r = ua
            .message(&to_bob, "message/cpim", cpim.as_bytes())
            .await
            .unwrap();
        assert_eq!(r.code(), 200, "{}", r.reason());
        let m = xbob
            .await_event(
                |e| matches!(e, XmppEvent::Message { body, .. } if body.contains("cpim payload")),
                WAIT,
            )
            .await
            .unwrap();
        match &m {
            XmppEvent::Message { body, .. } => assert_eq!(body, &payload, "unwrapped payload"),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.from_bare(), Some(sip_jid.as_str()));

        // XMPP -> SIP. The UA has just written message/cpim, so the gateway writes to it
        // in CPIM too (`cpim_wrap = "learn"`): the payload with the XMPP stanza id as
        // imdn.Message-ID (RFC 3862, RFC 5438 s6.3).
        let reply = format!("reply over {transport:?}");
        let xid = format!("r-{transport:?}");
        xbob.send_message(&sip_jid, &reply, &xid).await.unwrap();
        let req = ua
            .await_request(
                |r| {
                    r.method().as_str() == "MESSAGE"
                        && cpim_core::cpim::CpimMessage::parse(r.body())
                            .is_ok_and(|c| c.payload() == reply.as_bytes())
                },
                WAIT,
            )
            .await
            .unwrap();
        let from = req.header(HeaderName::From).unwrap_or("");
        assert!(from.contains(&bob.jid()), "From {from:?}");
        assert!(
            req.content_type().unwrap_or("").starts_with("message/cpim"),
            "{:?}",
            req.content_type()
        );
        let env = cpim_core::cpim::CpimMessage::parse(req.body()).unwrap();
        assert_eq!(env.imdn_message_id().as_deref(), Some(xid.as_str()));
        assert!(env
            .content_type()
            .is_some_and(|t| t.starts_with("text/plain")));
        assert_eq!(ua.register(0).await.unwrap().code(), 200);
    }
    xbob.quit().await.unwrap();
}

/// A SIP watcher of an XMPP user (RFC 3856, RFC 6665, RFC 8048 s4-s5): pending until the
/// XMPP user approves, then NOTIFY active with PIDF open; show/status; offline and online;
/// unsubscribe reaches the XMPP user.
pub async fn sip_watcher_of_xmpp_user(s: &Setup<'_>, user: &str) {
    let alice = s.xmpp.account("alice").unwrap();
    let mut xalice = s.xmpp("alice").await;
    let ua = s.ua(user, Transport::Udp).await;
    let sip_jid = format!("{user}@{}", s.jid_domain);
    let presentity = format!("sip:{}", alice.jid());

    // SUBSCRIBE: accepted (202 pending or 200), the XMPP user is asked.
    let (r, sub) = ua.subscribe(&presentity, "presence", 600).await.unwrap();
    assert!(matches!(r.code(), 200 | 202), "{} {}", r.code(), r.reason());
    let sub = sub.expect("a dialog");
    // (Prosody also re-delivers pending requests of earlier runs at login: match `from`.)
    await_presence_from(&xalice, "subscribe", &sip_jid).await;
    // Not active before the approval: every NOTIFY so far is pending without open state.
    // (Prosody acknowledges the request with presence `unavailable` from the bare JID, which
    // RFC 6121 s3.1.3 does not ask for; ejabberd sends nothing before the approval. Either
    // way nothing here may be active or open.)
    xalice.sync().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for n in ua.take_received().iter().filter(|r| is_notify(r)) {
        assert_eq!(
            sub_state(n),
            "pending",
            "SUBSCRIBE answered {}; NOTIFY {:?}: {}",
            r.code(),
            n.header(HeaderName::SubscriptionState),
            body_text(n)
        );
        assert_ne!(basic(n), Some(Basic::Open), "{}", body_text(n));
    }

    // Approve: NOTIFY active with PIDF open (RFC 6121 s3.1.5: `subscribed`, then the current
    // presence of each available resource; Prosody marks that presence delayed, XEP-0203).
    xalice
        .send_presence(Some(&sip_jid), Some("subscribed"), None, None)
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && sub_state(r) == "active" && basic(r) == Some(Basic::Open),
        WAIT,
    )
    .await
    .unwrap();

    // A show/status change arrives as a note.
    xalice
        .send_presence(None, None, Some("away"), Some("in a meeting"))
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && body_text(r).contains("in a meeting"),
        WAIT,
    )
    .await
    .unwrap();

    // Offline, then online again.
    xalice
        .send_presence(None, Some("unavailable"), None, None)
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && sub_state(r) == "active" && basic(r) == Some(Basic::Closed),
        WAIT,
    )
    .await
    .unwrap();
    xalice
        .send_presence(None, None, None, Some("back"))
        .await
        .unwrap();
    ua.await_request(
        |r| is_notify(r) && basic(r) == Some(Basic::Open) && body_text(r).contains("back"),
        WAIT,
    )
    .await
    .unwrap();

    // Unsubscribe: the dialog ends with a terminated NOTIFY, the XMPP user is told. (ejabberd
    // then also sends `unavailable` from each available resource, as RFC 6121 s3.3.3 asks,
    // and an `unsubscribed` of its own; Prosody neither. The gateway's terminated NOTIFY does
    // not depend on them.)
    let r = ua.resubscribe(&sub, 0).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    ua.await_request(|r| is_notify(r) && sub_state(r) == "terminated", WAIT)
        .await
        .unwrap();
    await_presence_from(&xalice, "unsubscribe", &sip_jid).await;
    xalice.roster_remove(&sip_jid).await.unwrap();
    xalice.quit().await.unwrap();
}

/// An XMPP watcher of a SIP user: approved by the gateway's policy; the SIP user's
/// PUBLISHed state (RFC 3903) arrives with its note; modified; removed (unavailable);
/// published again; the unsubscribe removes the subscription.
pub async fn xmpp_watcher_of_sip_user(s: &Setup<'_>, user: &str) {
    let bob = s.xmpp.account("bob").unwrap();
    let mut xbob = s.xmpp("bob").await;
    let ua = s.ua(user, Transport::Udp).await;
    let sip_jid = format!("{user}@{}", s.jid_domain);

    let r = ua
        .publish(Some(&ua.pidf(true, Some("at my desk"))), 600, None)
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let etag = r.header(HeaderName::SipEtag).unwrap().to_owned();

    // The XMPP user subscribes; the gateway approves (approve-all) and sends the state.
    xbob.send_presence(Some(&sip_jid), Some("subscribe"), None, None)
        .await
        .unwrap();
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, .. } if kind == "subscribed" && from.starts_with(&sip_jid)),
        WAIT,
    )
    .await
    .unwrap();
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, status, .. }
            if kind == "available" && from.starts_with(&sip_jid) && status.as_deref() == Some("at my desk")),
        WAIT,
    )
    .await
    .unwrap();

    // A changed publication.
    let r = ua
        .publish(Some(&ua.pidf(true, Some("lunch"))), 600, Some(&etag))
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let etag = r.header(HeaderName::SipEtag).unwrap().to_owned();
    await_status(&xbob, &sip_jid, "lunch").await;

    // Removing the publication (Expires: 0) makes the SIP user unavailable.
    let r = ua.publish(None, 0, Some(&etag)).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, .. } if kind == "unavailable" && from.starts_with(&sip_jid)),
        WAIT,
    )
    .await
    .unwrap();

    // Online again.
    let r = ua
        .publish(Some(&ua.pidf(true, Some("back again"))), 600, None)
        .await
        .unwrap();
    assert_eq!(r.code(), 200);
    xbob.await_event(
        |e| matches!(e, XmppEvent::Presence { kind, from, status, .. }
            if kind == "available" && from.starts_with(&sip_jid) && status.as_deref() == Some("back again")),
        WAIT,
    )
    .await
    .unwrap();

    // Unsubscribe: the gateway drops the subscription.
    let watcher = bob.jid();
    let listed = || async {
        let (_, body) = s.gw.admin_get("/subscriptions").await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array().unwrap().iter().any(|e| {
            let e = e.to_string();
            e.contains(&watcher) && e.contains(user)
        })
    };
    assert!(
        listed().await,
        "the subscription is listed in /subscriptions"
    );
    xbob.send_presence(Some(&sip_jid), Some("unsubscribe"), None, None)
        .await
        .unwrap();
    cpim_testkit::eventually("the subscription to disappear", WAIT, || async {
        (!listed().await).then_some(())
    })
    .await
    .unwrap();
    xbob.roster_remove(&sip_jid).await.unwrap();
    xbob.quit().await.unwrap();
}

/// Refusals both ways (RFC 7247 s7): a SIP MESSAGE to a user the XMPP server does not have
/// is answered 404 (never 2xx, not queued); an XMPP message to a user the gateway's user list
/// does not have bounces `item-not-found` (the s7.2 row of 404).
pub async fn refusals_mapped(s: &Setup<'_>, user: &str) {
    let ua = s.ua(user, Transport::Udp).await;
    let r = ua
        .message(
            &format!("sip:nobody-{user}@{}", s.xmpp.domain),
            "text/plain",
            b"anyone there?",
        )
        .await
        .unwrap();
    // Both servers bounce `service-unavailable` (RFC 6121 s8.5.1); ejabberd's bounce also
    // carries the original payload (body, thread, origin-id), as RFC 6120 s8.3.1 allows.
    assert_eq!(r.code(), 404, "{} {}", r.code(), r.reason());
    assert_eq!(queue_depth(s.gw).await, 0, "nothing queued");

    let mut xbob = s.xmpp("bob").await;
    xbob.send_message(&format!("nobody{user}@{}", s.jid_domain), "hello?", "e1")
        .await
        .unwrap();
    assert_bounced(&xbob, "e1", 404).await;
    xbob.quit().await.unwrap();
}

/// A SIP user whose name holds an `@` (`sip:gina%40home@sip.test`, RFC 3261 s19.1.2)
/// writes to an XMPP user as `gina\40home@<jid domain>` (XEP-0106 s4.3, RFC 7247 s6.2),
/// and the XMPP user's reply to that JID reaches the SIP user: the `@` stays in the name,
/// it is not read as a domain the gateway would route elsewhere.
pub async fn user_with_at_sign_both_ways(s: &Setup<'_>, user: &str) {
    let (local, rest) = user.split_once('@').expect("a user with an @");
    let bob = s.xmpp.account("bob").unwrap();
    let mut xbob = s.xmpp("bob").await;
    let ua = s.ua(user, Transport::Udp).await;
    let jid = format!("{local}\\40{rest}@{}", s.jid_domain);

    let text = format!("from {user}");
    let r = ua
        .message(&format!("sip:{}", bob.jid()), "text/plain", text.as_bytes())
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    let m = xbob
        .await_event(
            |e| matches!(e, XmppEvent::Message { body, .. } if *body == text),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(m.from_bare(), Some(jid.as_str()), "escaped JID");

    let reply = format!("reply to {user}");
    xbob.send_message(&jid, &reply, "at-reply").await.unwrap();
    let req = ua
        .await_request(
            |r| r.method().as_str() == "MESSAGE" && r.body().as_ref() == reply.as_bytes(),
            WAIT,
        )
        .await
        .unwrap();
    let to = req.header(HeaderName::To).unwrap_or("");
    assert!(to.contains(&ua.aor()), "To {to:?} names {}", ua.aor());
    assert_eq!(ua.register(0).await.unwrap().code(), 200);
    xbob.quit().await.unwrap();
}

/// The IMDN a SIP client sends for `message_id` (RFC 5438 s7.2.1.1): a delivery
/// notification in `message/cpim` with `Content-Disposition: notification`, its payload
/// deflated as Linphone sends it (`Content-Encoding: deflate`).
fn deflated_delivery_imdn(from: &str, to: &str, message_id: &str) -> Vec<u8> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><imdn xmlns=\"urn:ietf:params:xml:ns:imdn\"><message-id>{message_id}</message-id><datetime>2026-12-07T12:00:00Z</datetime><recipient-uri>{from}</recipient-uri><original-recipient-uri>{from}</original-recipient-uri><delivery-notification><status><delivered/></status></delivery-notification></imdn>"
    );
    let mut body = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nDateTime: 2026-12-07T12:00:01Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: n-{message_id}\r\n\r\nContent-Type: message/imdn+xml\r\nContent-Disposition: notification\r\nContent-Encoding: deflate\r\n\r\n"
    )
    .into_bytes();
    body.extend(miniz_oxide::deflate::compress_to_vec_zlib(
        xml.as_bytes(),
        6,
    ));
    body
}

/// `ua` sends `text` to `to` in `message/cpim` with the message id `mid` and the IMDN
/// request `disposition`; it must be answered 200 and reach `x`, whose copy is returned.
async fn cpim_to_xmpp(
    ua: &SipUa,
    x: &XmppClient,
    to: &str,
    mid: &str,
    disposition: &str,
    text: &str,
) -> XmppEvent {
    let cpim = format!(
        "From: <{}>\r\nTo: <{to}>\r\nDateTime: 2026-12-07T12:00:00Z\r\nNS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: {mid}\r\nimdn.Disposition-Notification: {disposition}\r\n\r\nContent-Type: text/plain;charset=UTF-8\r\n\r\n{text}",
        ua.aor()
    );
    let r = ua
        .message(to, "message/cpim", cpim.as_bytes())
        .await
        .unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    x.await_event(
        |e| matches!(e, XmppEvent::Message { body, .. } if body == text),
        WAIT,
    )
    .await
    .unwrap()
}

/// Receipts both ways with their ids (RFC 5438 <-> XEP-0184, XEP-0359):
/// - a CPIM message from SIP with `imdn.Message-ID` and a delivery request reaches the
///   XMPP user with a receipt request, its id as origin-id and inside the stanza id;
/// - the XMPP user's receipt comes back to SIP as a delivery IMDN in `message/cpim`
///   (Content-Disposition: notification) naming the SIP message's id;
/// - the SIP user wrote CPIM, so the XMPP user's message with a receipt request reaches
///   it in `message/cpim` with the XMPP stanza id as `imdn.Message-ID` and a
///   `positive-delivery` request (and `negative-delivery`: XMPP senders always get errors);
/// - the SIP user's deflated delivery IMDN becomes an XMPP receipt naming that id;
/// - an XMPP error after the SIP sender's 200 becomes the negative delivery IMDN its
///   message asked for (RFC 5438 s7.2.1.2).
pub async fn receipts_both_ways(s: &Setup<'_>, user: &str) {
    let bob = s.xmpp.account("bob").unwrap();
    let mut xbob = s.xmpp("bob").await;
    let sip_jid = format!("{user}@{}", s.jid_domain);
    let to_bob = format!("sip:{}", bob.jid());
    let ua = s.ua(user, Transport::Udp).await;

    let mid = format!("M1-{user}");
    let m = cpim_to_xmpp(
        &ua,
        &xbob,
        &to_bob,
        &mid,
        "positive-delivery",
        "with receipt",
    )
    .await;
    let XmppEvent::Message { id, xml, .. } = &m else {
        unreachable!()
    };
    assert!(id.starts_with(&format!("{mid}.")), "stanza id {id}");
    assert!(
        xml.contains("urn:xmpp:sid:0") && xml.contains(&format!("id=\"{mid}\"")),
        "origin-id: {xml}"
    );
    assert!(xml.contains("urn:xmpp:receipts"), "receipt request: {xml}");

    xbob.send_raw(&format!(
        "<message to='{sip_jid}' id='rcpt-{user}'><received xmlns='urn:xmpp:receipts' id='{id}'/></message>"
    ))
    .await
    .unwrap();
    let imdn = ua
        .await_request(
            |r| {
                r.method().as_str() == "MESSAGE"
                    && String::from_utf8_lossy(r.body()).contains("<delivered")
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        imdn.content_type()
            .unwrap_or("")
            .starts_with("message/cpim"),
        "{:?}",
        imdn.content_type()
    );
    let text = String::from_utf8_lossy(imdn.body()).into_owned();
    assert!(text.contains("Content-Disposition: notification"), "{text}");
    assert!(text.contains("Content-Type: message/imdn+xml"), "{text}");
    assert!(
        text.contains(&format!("<message-id>{mid}</message-id>")),
        "{text}"
    );

    // RFC 5438 s7.2.1.2 / RFC 7247 s7: an error from the recipient after the sender got
    // its 200 becomes the negative delivery notice the message asked for.
    let mid2 = format!("M2-{user}");
    let disposition = "positive-delivery, negative-delivery";
    let m = cpim_to_xmpp(&ua, &xbob, &to_bob, &mid2, disposition, "refused later").await;
    let XmppEvent::Message { id: id2, .. } = &m else {
        unreachable!()
    };
    xbob.send_raw(&format!(
        "<message type='error' to='{sip_jid}' id='{id2}'><error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
    ))
    .await
    .unwrap();
    let failed = ua
        .await_request(
            |r| {
                r.method().as_str() == "MESSAGE"
                    && String::from_utf8_lossy(r.body()).contains("<failed")
            },
            WAIT,
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(failed.body()).into_owned();
    assert!(
        text.contains(&format!("<message-id>{mid2}</message-id>")),
        "{text}"
    );
    assert!(text.contains("Content-Disposition: notification"), "{text}");

    let xid = format!("x-{user}");
    xbob.send_raw(&format!(
        "<message to='{sip_jid}' id='{xid}' type='chat'><body>receipt please</body><request xmlns='urn:xmpp:receipts'/></message>"
    ))
    .await
    .unwrap();
    let req = ua
        .await_request(
            |r| {
                r.method().as_str() == "MESSAGE"
                    && String::from_utf8_lossy(r.body()).contains("receipt please")
            },
            WAIT,
        )
        .await
        .unwrap();
    assert!(req.content_type().unwrap_or("").starts_with("message/cpim"));
    let text = String::from_utf8_lossy(req.body()).into_owned();
    assert!(
        text.contains(&format!("imdn.Message-ID: {xid}\r\n")),
        "{text}"
    );
    assert!(
        text.contains("imdn.Disposition-Notification: positive-delivery, negative-delivery\r\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("From: <sip:{}>", bob.jid())),
        "{text}"
    );

    let imdn = deflated_delivery_imdn(&ua.aor(), &to_bob, &xid);
    let r = ua.message(&to_bob, "message/cpim", &imdn).await.unwrap();
    assert_eq!(r.code(), 200, "{}", r.reason());
    xbob.await_event(
        |e| {
            matches!(e, XmppEvent::Message { xml, .. }
                if xml.contains("urn:xmpp:receipts") && xml.contains(&format!("id=\"{xid}\"")) && xml.contains("received"))
        },
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(ua.register(0).await.unwrap().code(), 200);
    xbob.quit().await.unwrap();
}
