//! End to end through the gateway as an XMPP server of its own federating with the real
//! ejabberd (s2s, RFC 7247 s4; RFC 6120 with STARTTLS, ejabberd authenticating the gateway
//! by Server Dialback, XEP-0220/XEP-0185): the flows of `gateway_s2s` (`common/flows.rs`)
//! against ejabberd instead of Prosody. The gateway serves `gw.test`
//! (`CPIM_PEER_PROSODY_S2S_GW_DOMAIN`) for SIP and XMPP alike on a free port; ejabberd finds
//! it through the SRV record the test answers at `CPIM_PEER_EJABBERD_DNS` (its only DNS
//! server, `common::modes::ejabberd_dns_route`); the gateway reaches ejabberd
//! (`CPIM_PEER_EJABBERD_S2S`) through a static SRV override and trusts its self-signed
//! certificate (`CPIM_PEER_EJABBERD_CERT`, else `$CPIM_PEER_DIR/ejabberd/certs/`). XMPP
//! users write to SIP user `u@gw.test` as `u@gw.test`.
//!
//! - messages both ways, text/plain and message/cpim (RFC 3862, RFC 3922 s4 / RFC 7572),
//!   over SIP UDP and TCP;
//! - SIP watcher of an XMPP user with authorization (RFC 3856, RFC 6665, RFC 8048 s4-s5,
//!   RFC 6121 s3.1), with changes, offline/online and unsubscribe;
//! - XMPP watcher of a SIP user (RFC 3903 PUBLISH -> presence with its note);
//! - refusals mapped both ways (RFC 7247 s7);
//! - a SIP user whose name holds an `@` (XEP-0106);
//! - receipts both ways with their ids (RFC 5438 IMDN <-> XEP-0184, XEP-0359).
//!
//! Skips (prints why) without `CPIM_PEERS` or the certificate, and fails for that under
//! `CI=true`.

mod common;

use common::flows;
use common::modes::s2s;
use common::unique;
use cpim_interop::peer_env::Peer;

async fn run(user_prefix: &str, flow: flows::Flow) {
    s2s(Peer::Ejabberd, unique(user_prefix), flow).await
}

/// RFC 3862, RFC 3922 s4 / RFC 7572: text/plain and message/cpim both ways over UDP and TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_s2s_messages_both_ways_plain_and_cpim() {
    run("sara", |s, u| Box::pin(flows::messages_both_ways(s, u))).await;
}

/// RFC 3856, RFC 6665, RFC 8048 s4-s5, RFC 6121 s3.1: pending until approved, then active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_s2s_sip_watcher_of_xmpp_user_with_authorization() {
    run("tom", |s, u| {
        Box::pin(flows::sip_watcher_of_xmpp_user(s, u))
    })
    .await;
}

/// RFC 3903 PUBLISH as XMPP presence (RFC 8048 s5), RFC 6121 s3.3 unsubscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_s2s_xmpp_watcher_of_sip_user_sees_published_state() {
    run("uma", |s, u| {
        Box::pin(flows::xmpp_watcher_of_sip_user(s, u))
    })
    .await;
}

/// RFC 7247 s7: 404 for a nonexistent XMPP user, `item-not-found` for an unknown SIP user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_s2s_refusals_mapped_both_ways() {
    run("vic", |s, u| Box::pin(flows::refusals_mapped(s, u))).await;
}

/// XEP-0106 s4.3, RFC 7247 s6.2, RFC 3261 s19.1.2: an `@` in the SIP user name both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_s2s_user_with_at_sign_round_trips_xep0106() {
    s2s(Peer::Ejabberd, format!("{}@home", unique("hal")), |s, u| {
        Box::pin(flows::user_with_at_sign_both_ways(s, u))
    })
    .await;
}

/// RFC 5438 IMDN <-> XEP-0184 receipts, ids kept (XEP-0359, RFC 5438 s6.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejabberd_s2s_receipts_both_ways_with_their_ids_rfc5438_xep0184() {
    run("rolf", |s, u| Box::pin(flows::receipts_both_ways(s, u))).await;
}
