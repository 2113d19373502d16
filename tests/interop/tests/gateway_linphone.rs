//! Linphone (`linphonec`, liblinphone 5.1, through `cpim_testkit::Linphone`) registered at
//! the gateway as a SIP user with digest credentials, and the slixmpp user bob on Prosody,
//! through the gateway as Prosody's XEP-0114 component:
//!
//! - Linphone's chat message, sent as `message/cpim` with `imdn.Message-ID` and
//!   `imdn.Disposition-Notification` (RFC 3862, RFC 5438), reaches bob as the payload text
//!   from the Linphone user's JID `user@<component domain>`;
//!   the imdn.Message-ID travels as the XEP-0359 origin-id and inside the stanza id;
//! - bob's XEP-0184 receipt reaches Linphone as a delivery IMDN in message/cpim, which
//!   Linphone takes (its message becomes DeliveredToUser);
//! - bob's message to that JID, with a receipt request, is shown by Linphone as received
//!   from bob, and Linphone's deflated delivery IMDN becomes a receipt naming bob's id.
//!
//! Skips (prints why) without `CPIM_PEERS` or without linphonec (Debian `linphone-cli`),
//! fails for that under `CI=true`.

mod common;

use common::*;
use cpim_interop::peer_env::{self, Peer};
use cpim_interop::{scratch_dir, Peers, SKIP_MESSAGE};
use cpim_testkit::{linphone, Linphone, LinphoneAccount, TestGateway, Transport, XmppEvent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linphone_and_xmpp_user_exchange_messages_and_receipts_through_the_component() {
    // Both peers are looked for before either is recorded as used.
    let (peers, program) = (Peers::from_env(), linphone::program());
    let missing = if peers.is_none() {
        SKIP_MESSAGE
    } else {
        "linphonec is not found (CPIM_PEER_LINPHONEC unset, no linphonec on PATH; \
         Debian package linphone-cli)"
    };
    let Some((peers, program)) = peer_env::need(
        &[Peer::Prosody, Peer::Linphone],
        peers.zip(program),
        missing,
    ) else {
        return;
    };
    init_tracing();
    let _lock = component_lock().await;
    let user = unique("lin");
    let gw = TestGateway::start(component_config(&peers, &[&user]))
        .await
        .unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let account = LinphoneAccount {
        user: user.clone(),
        domain: SIP_DOMAIN.into(),
        password: format!("{user}pw"),
        proxy: gw.sip_addr(Transport::Udp).unwrap(),
    };
    let dir = scratch_dir("linphone").unwrap();
    let mut lin = Linphone::start(&program, &dir, &account).await.unwrap();
    lin.await_registered(WAIT).await.unwrap();
    let bob = peers.prosody.account("bob").unwrap();
    let bob_uri = format!("sip:{}", bob.jid());
    let jid = format!("{user}@{}", component_domain(&peers));
    let mut xbob = prosody_login(&peers, "bob").await;

    // Linphone -> XMPP: message/cpim with IMDN headers; bob gets the payload.
    let text = format!("hello from linphone {user}");
    lin.chat(&bob_uri, &text).await.unwrap();
    let m = xbob
        .await_event(
            |e| matches!(e, XmppEvent::Message { body, .. } if body.contains("hello from linphone")),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\nlinphonec log: {}", dir.display()));
    match &m {
        XmppEvent::Message { body, .. } => assert_eq!(body, &text, "the CPIM payload"),
        other => panic!("{other:?}"),
    }
    assert_eq!(m.from_bare(), Some(jid.as_str()));
    // Its imdn.Message-ID is the XEP-0359 origin-id and is inside the stanza id; it asked
    // for a delivery receipt (XEP-0184).
    let XmppEvent::Message { id, xml, .. } = &m else {
        unreachable!()
    };
    let (linphone_id, _) = id.rsplit_once('.').expect("message id and mac");
    assert!(
        xml.contains(&format!(
            "<origin-id xmlns=\"urn:xmpp:sid:0\" id=\"{linphone_id}\""
        )),
        "{xml}"
    );
    assert!(xml.contains("urn:xmpp:receipts"), "{xml}");

    // bob's receipt reaches Linphone as a delivery IMDN in message/cpim naming its id,
    // which Linphone takes (no error comes back to bob).
    xbob.send_raw(&format!(
        "<message to='{jid}' id='rcpt-{user}'><received xmlns='urn:xmpp:receipts' id='{id}'/></message>"
    ))
    .await
    .unwrap();

    // XMPP -> Linphone, with a receipt request: Linphone shows it, and its delivery IMDN
    // (deflated) becomes a receipt naming bob's stanza id.
    let reply = format!("reply from bob to {user}");
    let rid = format!("lin-r-{user}");
    xbob.send_raw(&format!(
        "<message to='{jid}' id='{rid}' type='chat'><body>{reply}</body><request xmlns='urn:xmpp:receipts'/></message>"
    ))
    .await
    .unwrap();
    let shown = lin.await_message(&bob_uri, WAIT).await.unwrap();
    assert_eq!(shown, reply);
    xbob.await_event(
        |e| {
            matches!(e, XmppEvent::Message { xml, .. }
                if xml.contains("urn:xmpp:receipts") && xml.contains(&format!("id=\"{rid}\"")) && xml.contains("received"))
        },
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nlinphonec log: {}", dir.display()));
    let errors: Vec<_> = xbob
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, XmppEvent::Message { kind, .. } if kind == "error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // Linphone took bob's receipt for its own message: liblinphone moved that message to
    // its DeliveredToUser state (LinphoneChatMessageStateDeliveredToUser).
    let deadline = std::time::Instant::now() + WAIT;
    while !lin.log().contains("to DeliveredToUser") {
        assert!(
            std::time::Instant::now() < deadline,
            "Linphone never marked its message delivered to bob; linphonec log: {}",
            dir.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    xbob.quit().await.unwrap();
    lin.quit().await.unwrap();
    gw.shutdown().await;
}
