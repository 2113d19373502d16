//! How the acceptance flows of [`super::flows`] run: the gateway as the XEP-0114 component
//! of a real XMPP server, or as an XMPP server of its own federating with it (s2s), for
//! each of the two servers `scripts/test` starts (Prosody A and ejabberd). One set of
//! flows, two servers, two modes: the test files only name the server and the flow.

use std::sync::{Arc, Mutex, OnceLock};

use cpim_interop::peer_env::{self, Peer};
use cpim_interop::{Peers, S2sRoute};
use cpim_testkit::{dns, TestGateway};
use cpim_xmpp::Mode;

use super::flows::{Flow, Setup};
use super::*;

/// The peers, or `None` (the test skips, or fails under `CI=true`) when `peer` is not
/// running: the one rule of `peer_env::need`, as `require_peers!` applies it.
fn need(peer: Peer) -> Option<Peers> {
    peer_env::need(&[peer], Peers::from_env(), cpim_interop::SKIP_MESSAGE)
}

/// Runs `flow` for the SIP user `user` with the gateway as the XEP-0114 component of
/// `peer` (`CPIM_PEER_<PEER>_COMPONENT*`): XMPP users write to `user@<component domain>`,
/// the alias of [`SIP_DOMAIN`].
pub async fn component(peer: Peer, user: String, flow: Flow) {
    let Some(peers) = need(peer) else {
        return;
    };
    init_tracing();
    // One component connection per domain: one test of the binary at a time.
    let _lock = component_lock().await;
    let server = xmpp_server(&peers, peer);
    let gw = TestGateway::start(component_config_of(server, &[&user]))
        .await
        .unwrap();
    gw.wait_link_up("xmpp", WAIT).await.unwrap();
    let setup = Setup {
        peers: &peers,
        xmpp: server,
        gw: &gw,
        sip_domain: SIP_DOMAIN.into(),
        jid_domain: server.component.as_ref().unwrap().domain.clone(),
    };
    flow(&setup, &user).await;
    gw.shutdown().await;
}

/// Runs `flow` for the SIP user `user` with the gateway as XMPP server of its own domain
/// (`CPIM_PEER_PROSODY_S2S_GW_DOMAIN`, `gw.test`; its SIP domain too) federating with
/// `peer` over s2s (RFC 6120 with STARTTLS and Server Dialback, XEP-0220): it reaches the
/// server through a static SRV override and trusts its self-signed certificate
/// ([`xmpp_cert`]). The server finds the gateway
/// - Prosody A: through its hermetic DNS, at `CPIM_PEER_PROSODY_S2S_GW`;
/// - ejabberd: through the SRV record [`ejabberd_dns_route`] answers, at a free port.
pub async fn s2s(peer: Peer, user: String, flow: Flow) {
    let Some(peers) = need(peer) else {
        return;
    };
    init_tracing();
    // One listener for the gateway's domain (and one DNS answer for it) at a time.
    let _lock = component_lock().await;
    let Some(cert) = peer_env::need(
        &[peer],
        xmpp_cert(&peers, peer),
        "the XMPP server's certificate is not found (CPIM_PEER_<PEER>_CERT / CPIM_PEER_DIR/<peer folder>/certs)",
    ) else {
        return;
    };
    let route = match peer {
        Peer::Ejabberd => {
            let route = S2sRoute {
                domain: peers.gateway_s2s.domain.clone(),
                addr: std::net::SocketAddr::new(
                    std::net::Ipv4Addr::LOCALHOST.into(),
                    cpim_interop::free_tcp_port().expect("a free TCP port"),
                ),
            };
            ejabberd_dns_route(&peers, &route);
            route
        }
        _ => peers.gateway_s2s.clone(),
    };
    let server = xmpp_server(&peers, peer);
    let mut cfg = s2s_config(server, &route, &[&user], &cert);
    if peer == Peer::Prosody {
        // Prosody A trusts the gateway certificate `scripts/test` made for gw.test: SASL
        // EXTERNAL both ways (XEP-0178), after which Prosody (mod_smacks) offers and
        // enables stream management (XEP-0198) on both streams.
        let get = peer_env::var;
        if let (Mode::S2s { cert, key, .. }, Some(c), Some(k)) = (
            &mut cfg.xmpp.mode,
            get("CPIM_PEER_PROSODY_GW_CERT"),
            get("CPIM_PEER_PROSODY_GW_KEY"),
        ) {
            *cert = Some(c);
            *key = Some(k);
        }
    }
    let gw = TestGateway::builder(cfg)
        .keep_xmpp_listen()
        .start()
        .await
        .unwrap();
    let setup = Setup {
        peers: &peers,
        xmpp: server,
        gw: &gw,
        sip_domain: route.domain.clone(),
        jid_domain: route.domain.clone(),
    };
    flow(&setup, &user).await;
    gw.shutdown().await;
}

/// Makes ejabberd's s2s lookups for `route.domain` find `route.addr`: the testkit's DNS
/// responder on `CPIM_PEER_EJABBERD_DNS`, the only DNS server ejabberd asks (see
/// `scripts/peers/ejabberd.sh`), answers `SRV _xmpp-server._tcp.<domain>. ->
/// localhost:<port>` (RFC 6120 s3.2.1) and nothing else. The responder is bound once per
/// test binary, on a thread of its own: a test's runtime ends with the test, while the
/// fixed port must stay bound for the next test of the binary.
pub fn ejabberd_dns_route(peers: &Peers, route: &S2sRoute) {
    static ZONE: OnceLock<Arc<Mutex<dns::Zone>>> = OnceLock::new();
    let zone = ZONE.get_or_init(|| {
        let zone = Arc::new(Mutex::new(dns::Zone::new()));
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let (addr, served) = (peers.ejabberd_dns, zone.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the DNS responder");
            rt.block_on(async move {
                let bound = dns::responder_on(addr, served).await;
                let _ = bound_tx.send(bound.as_ref().map(|_| ()).map_err(|e| e.to_string()));
                // Keep the query channel open and the runtime (the responder's task) alive.
                let _queries = bound;
                std::future::pending::<()>().await
            })
        });
        if let Err(e) = bound_rx.recv().expect("the DNS responder's thread answers") {
            panic!("binding ejabberd's DNS server address {addr} (CPIM_PEER_EJABBERD_DNS): {e}");
        }
        zone
    });
    *zone.lock().unwrap() = dns::xmpp_server_zone(&route.domain, route.addr.port());
}
