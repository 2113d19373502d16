//! End to end through the gateway as an XMPP server of its own (s2s, RFC 7247 s4, RFC 6120
//! with STARTTLS and Server Dialback XEP-0220/XEP-0185): the gateway serves the domain
//! `CPIM_PEER_PROSODY_S2S_GW_DOMAIN` (`gw.test`) for SIP and XMPP alike and listens at
//! `CPIM_PEER_PROSODY_S2S_GW`, where Prosody A's hermetic DNS sends s2s for that domain; it
//! reaches Prosody A through a static SRV override and trusts Prosody's self-signed
//! certificate (`CPIM_PEER_PROSODY_CERT`, else `$CPIM_PEER_DIR/prosody-a/certs/`). No
//! component: XMPP users write to SIP user `u@gw.test` as `u@gw.test`.
//!
//! The same flows as `gateway_component` (`common/flows.rs`, run through `common/modes.rs`,
//! shared with the ejabberd runs `gateway_ejabberd_*`): messages both ways in text/plain and
//! message/cpim, a SIP watcher of an XMPP user pending until approval then active/open with
//! changes, offline/online and unsubscribe, an XMPP watcher of a SIP user seeing the
//! PUBLISHed state; refusals mapped both ways (a nonexistent XMPP user is 404 for SIP, an
//! unknown SIP user `item-not-found` for XMPP); a SIP user with an `@` (XEP-0106); receipts
//! both ways with their ids (RFC 5438 IMDN <-> XEP-0184). Skips (prints why) without
//! `CPIM_PEERS` or the certificate, and fails for that under `CI=true`.

mod common;

use common::flows;
use common::modes::s2s;
use common::unique;
use cpim_interop::peer_env::Peer;

async fn run(user_prefix: &str, flow: flows::Flow) {
    s2s(Peer::Prosody, unique(user_prefix), flow).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_messages_both_ways_plain_and_cpim() {
    run("sara", |s, u| Box::pin(flows::messages_both_ways(s, u))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_sip_watcher_of_xmpp_user_with_authorization() {
    run("tom", |s, u| {
        Box::pin(flows::sip_watcher_of_xmpp_user(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_xmpp_watcher_of_sip_user_sees_published_state() {
    run("uma", |s, u| {
        Box::pin(flows::xmpp_watcher_of_sip_user(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_refusals_mapped_both_ways() {
    run("vic", |s, u| Box::pin(flows::refusals_mapped(s, u))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_user_with_at_sign_round_trips_xep0106() {
    s2s(Peer::Prosody, format!("{}@home", unique("hal")), |s, u| {
        Box::pin(flows::user_with_at_sign_both_ways(s, u))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2s_receipts_both_ways_with_their_ids_rfc5438_xep0184() {
    run("rolf", |s, u| Box::pin(flows::receipts_both_ways(s, u))).await;
}
