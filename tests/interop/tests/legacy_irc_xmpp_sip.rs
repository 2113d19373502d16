//! End to end through the real gateway: an IRC user on ngIRCd (a raw client here), an XMPP
//! user on Prosody (slixmpp; the gateway is Prosody's XEP-0114 component) and a SIP user
//! registered at the gateway (cpim-testkit's UA) exchange messages in every direction, and
//! each side sees the right sender address:
//!
//! - IRC users are `im:nick@irc.test`: XMPP sees them as `nick\40irc.test@<component>`
//!   (XEP-0106 s4.2 escaping of `@`), SIP as `sip:nick@irc.test`.
//! - CPIM users reach IRC through a puppet connection whose realname (WHOIS, RFC 2812
//!   s4.5.2 / 311) is their address; IRC users write to them with `/msg <bot> user@domain`
//!   or straight to the puppet.
//!
//! A JSON-protocol client joins in for JSON->IRC and IRC->JSON.
//!
//! Runs under `scripts/test`; skips without the peers (fails under `CI=true`).

mod common;

use std::time::Duration;

use common::legacy::{component_config, IrcClient, JsonClient, WAIT};
use cpim_interop::require_peers;
use cpim_sip::codec::{HeaderName, Request};
use cpim_testkit::{SipUa, TestGateway, Transport, XmppClient, XmppEvent};
use serde_json::json;

fn sip_message_with(body: &str) -> impl Fn(&Request) -> bool + '_ {
    move |r: &Request| r.method().as_str() == "MESSAGE" && r.body().as_ref() == body.as_bytes()
}

fn xmpp_message_with(body: &str) -> impl Fn(&XmppEvent) -> bool + '_ {
    move |e: &XmppEvent| matches!(e, XmppEvent::Message { body: b, kind, .. } if b == body && kind != "error")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_xmpp_and_sip_users_exchange_messages_in_every_direction() {
    let peers = require_peers!(Ngircd, Prosody);
    let irc_domain = peers.ngircd.name.clone();
    let component = peers.prosody.component.clone().expect("component").domain;
    let pid = std::process::id() % 100_000;
    let nick = format!("lg{pid}");
    let bot = format!("gw{pid}");
    let cfg = component_config(
        &peers,
        &["irc", "json"],
        &format!(
            "[[irc]]\nserver = \"{}\"\ndomain = \"{irc_domain}\"\nbot_nick = \"{bot}\"\n\
             nick_len = 30\npuppet_suffix = \"|x\"\nflood_penalty_ms = 0\n\
             presence_poll_secs = 5\nreconnect_min_ms = 200\n\
             [json]\ntcp_listen = \"127.0.0.1:0\"\ndomains = [\"json.test\"]\n\
             [[json.tokens]]\ntoken = \"carol-token-6f1d2c9a8b7e\"\naddresses = [\"im:carol@json.test\"]\n",
            peers.ngircd.addr
        ),
    );
    let gw = TestGateway::start(cfg).await.expect("gateway starts");
    gw.wait_link_up("xmpp-component", WAIT)
        .await
        .expect("component link up");
    gw.wait_link_up(&format!("irc:{}", peers.ngircd.addr), WAIT)
        .await
        .expect("IRC bot registered");

    let mut irc = IrcClient::register(peers.ngircd.addr, &nick).await;
    let alice = peers.prosody.account("alice").expect("alice").clone();
    let mut xmpp = XmppClient::login(
        &peers.python,
        &alice.jid(),
        &alice.password,
        peers.prosody.c2s,
    )
    .await
    .expect("XMPP login");
    let udp = gw.sip_addr(Transport::Udp).expect("SIP UDP");
    let bob = SipUa::new("bob", "sip.test", Some("pw"), Transport::Udp, udp)
        .await
        .expect("SIP UA");
    assert_eq!(bob.register(300).await.expect("REGISTER").code(), 200);

    let irc_jid = format!("{nick}\\40{irc_domain}@{component}");
    let xmpp_addr = alice.jid();

    // IRC -> XMPP.
    let t1 = format!("irc to xmpp {pid}");
    irc.send(&format!("PRIVMSG {bot} :{xmpp_addr} {t1}")).await;
    let ev = xmpp
        .await_event(xmpp_message_with(&t1), WAIT)
        .await
        .expect("XMPP user gets the IRC message");
    assert_eq!(ev.from_bare(), Some(irc_jid.as_str()), "{ev:?}");

    // XMPP -> IRC: through the XMPP user's puppet, whose realname is the XMPP address.
    let t2 = format!("xmpp to irc {pid}");
    xmpp.send_message(&irc_jid, &t2, &format!("x2-{pid}"))
        .await
        .expect("XMPP send");
    let puppet = irc.await_privmsg(&t2).await;
    assert_ne!(puppet, bot, "sent through a puppet, not the relay bot");
    let real = irc.whois_realname(&puppet).await;
    assert!(
        real.contains(&xmpp_addr),
        "puppet realname {real:?} names {xmpp_addr}"
    );

    // IRC -> XMPP again, as a reply to the puppet (no /msg syntax).
    let t2r = format!("irc reply to puppet {pid}");
    irc.send(&format!("PRIVMSG {puppet} :{t2r}")).await;
    let ev = xmpp
        .await_event(xmpp_message_with(&t2r), WAIT)
        .await
        .expect("reply to the puppet reaches the XMPP user");
    assert_eq!(ev.from_bare(), Some(irc_jid.as_str()), "{ev:?}");

    // IRC -> SIP.
    let t3 = format!("irc to sip {pid}");
    irc.send(&format!("PRIVMSG {bot} :bob@sip.test {t3}")).await;
    let req = bob
        .await_request(sip_message_with(&t3), WAIT)
        .await
        .expect("SIP user gets the IRC message");
    let from = req.header(HeaderName::From).unwrap_or_default().to_owned();
    assert!(
        from.contains(&format!("{nick}@{irc_domain}")),
        "From {from:?} names the IRC user"
    );

    // SIP -> IRC.
    let t4 = format!("sip to irc {pid}");
    let r = bob
        .message(
            &format!("sip:{nick}@{irc_domain}"),
            "text/plain",
            t4.as_bytes(),
        )
        .await
        .expect("SIP MESSAGE to IRC");
    assert_eq!(r.code() / 100, 2, "MESSAGE to IRC answered {}", r.code());
    let puppet = irc.await_privmsg(&t4).await;
    let real = irc.whois_realname(&puppet).await;
    assert!(real.contains("bob@sip.test"), "puppet realname {real:?}");

    // SIP -> XMPP.
    let t5 = format!("sip to xmpp {pid}");
    let r = bob
        .message(&format!("sip:{xmpp_addr}"), "text/plain", t5.as_bytes())
        .await
        .expect("SIP MESSAGE to XMPP");
    assert_eq!(r.code() / 100, 2, "MESSAGE to XMPP answered {}", r.code());
    let ev = xmpp
        .await_event(xmpp_message_with(&t5), WAIT)
        .await
        .expect("XMPP user gets the SIP message");
    assert_eq!(
        ev.from_bare(),
        Some(format!("bob@{component}").as_str()),
        "{ev:?}"
    );

    // XMPP -> SIP.
    let t6 = format!("xmpp to sip {pid}");
    xmpp.send_message(&format!("bob@{component}"), &t6, &format!("x6-{pid}"))
        .await
        .expect("XMPP send");
    let req = bob
        .await_request(sip_message_with(&t6), WAIT)
        .await
        .expect("SIP user gets the XMPP message");
    let from = req.header(HeaderName::From).unwrap_or_default().to_owned();
    assert!(from.contains(&xmpp_addr), "From {from:?} names {xmpp_addr}");

    // JSON <-> IRC: two closed adapters, each speaking only for its own domain.
    let json_addr = gw.gateway().json_tcp_addr().expect("JSON listener");
    let (mut carol, _) = JsonClient::login(json_addr, "carol-token-6f1d2c9a8b7e").await;
    let t7 = format!("json to irc {pid}");
    let code = carol
        .op(json!({"type": "message", "id": "j7", "to": format!("im:{nick}@{irc_domain}"), "body": t7}))
        .await;
    assert_eq!(code, 200, "JSON message to the IRC user");
    let puppet = irc.await_privmsg(&t7).await;
    let real = irc.whois_realname(&puppet).await;
    assert!(real.contains("carol@json.test"), "puppet realname {real:?}");
    let t8 = format!("irc to json {pid}");
    irc.send(&format!("PRIVMSG {bot} :carol@json.test {t8}"))
        .await;
    let f = carol
        .await_frame(|f| f["type"] == "message" && f["body"] == t8.as_str())
        .await;
    assert_eq!(f["from"], format!("im:{nick}@{irc_domain}"), "{f}");

    // Wiring: the IRC links are in /links and in the metrics.
    let (code, links) = gw.admin_get("/links").await.expect("/links");
    assert_eq!(code, 200);
    assert!(
        links.contains(&format!("irc:{}", peers.ngircd.addr)),
        "{links}"
    );
    assert!(links.contains("irc-puppet:"), "{links}");
    let (_, metrics) = gw.admin_get("/metrics").await.expect("/metrics");
    assert!(
        metrics.contains("adapter=\"irc\""),
        "metrics count IRC operations:\n{metrics}"
    );

    irc.send("QUIT :done").await;
    let _ = xmpp.quit().await;
    // Graceful shutdown quits the bot and the puppets.
    tokio::time::timeout(Duration::from_secs(30), gw.shutdown())
        .await
        .expect("gateway shuts down in time");
}
