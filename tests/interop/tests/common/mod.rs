//! Shared by the end-to-end tests. Here: gateway configs for the real peers, unique user
//! names, NOTIFY inspection (the `gateway_*` tests); [`flows`]: message and presence flows;
//! [`modes`]: the gateway as component or s2s peer of Prosody or ejabberd, running a flow;
//! [`legacy`]: the `legacy_*` tests' gateway and raw IRC/JSON clients; [`sip`]: the
//! `sip_gateway_*` tests' SIP-only gateway and SIPp runs;
//! [`xmpp_client`]: the slixmpp client script; [`binary`]: the gateway binary as a child
//! process (`gateway_crash`, `gateway_faults`).

#![allow(dead_code)] // each test binary uses a part

pub mod binary;
pub mod flows;
pub mod legacy;
pub mod modes;
pub mod sip;
pub mod xmpp_client;

use std::sync::atomic::{AtomicU32, Ordering};

use cpim_core::presence::Basic;
use cpim_gateway::config::{Config, DomainAlias, Route};
use cpim_interop::peer_env::Peer;
use cpim_interop::{Peers, S2sRoute, XmppServer};
use cpim_sip::app::config::SipUser;
use cpim_sip::codec::{HeaderName, Request};

/// Logs of the in-process gateway on stderr when `RUST_LOG` is set (e.g.
/// `RUST_LOG=cpim_gateway=debug,cpim_sip=debug`).
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// The SIP domain the gateway serves in these tests.
pub const SIP_DOMAIN: &str = "sip.test";

/// Generous waits: the machine is shared by parallel builds.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// One XMPP component link per domain at a time: tests of one binary that start a gateway
/// as Prosody's component take this lock (cargo runs test binaries one after another).
pub async fn component_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A user name unique to this process and call (Prosody's rosters outlive a test).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// `user` of the Prosody peer logged in over c2s (slixmpp, RFC 6120).
pub async fn prosody_login(peers: &Peers, user: &str) -> cpim_testkit::XmppClient {
    xmpp_login(peers, &peers.prosody, user).await
}

/// `user` of the XMPP server `server` (one of `peers`) logged in over c2s (slixmpp,
/// RFC 6120).
pub async fn xmpp_login(
    peers: &Peers,
    server: &XmppServer,
    user: &str,
) -> cpim_testkit::XmppClient {
    let a = server.account(user).unwrap();
    cpim_testkit::XmppClient::login(&peers.python, &a.jid(), &a.password, server.c2s)
        .await
        .unwrap()
}

/// The real XMPP server `peer` (Prosody A or ejabberd) of `peers`.
pub fn xmpp_server(peers: &Peers, peer: Peer) -> &XmppServer {
    match peer {
        Peer::Prosody => &peers.prosody,
        Peer::Ejabberd => &peers.ejabberd,
        other => panic!("{} is not an XMPP server", other.name()),
    }
}

/// Waits for the error reply to the message `id` that `x` sent and asserts its condition
/// is the one `cpim_core::errmap` maps the SIP status `code` to (RFC 7248 s8).
pub async fn assert_bounced(x: &cpim_testkit::XmppClient, id: &str, code: u16) {
    use cpim_testkit::XmppEvent;
    let (expected, _) = cpim_core::errmap::sip_to_xmpp(code);
    let e = x
        .await_event(
            |e| matches!(e, XmppEvent::Message { kind, id: i, .. } if kind == "error" && i == id),
            WAIT,
        )
        .await
        .unwrap();
    assert!(
        matches!(&e, XmppEvent::Message { error: Some(c), .. } if c == expected.as_str()),
        "{e:?}"
    );
}

/// Waits until `x` gets a presence stanza of type `kind` (`subscribe`, `unsubscribe`)
/// from the bare JID `from` (RFC 6121 s3).
pub async fn await_presence_from(x: &cpim_testkit::XmppClient, kind: &str, from: &str) {
    use cpim_testkit::XmppEvent;
    x.await_event(
        |e| {
            matches!(e, XmppEvent::Presence { kind: k, .. } if k == kind)
                && e.from_bare() == Some(from)
        },
        WAIT,
    )
    .await
    .unwrap();
}

/// Waits until `x` gets presence with the status text `status` from a JID that starts
/// with `from`.
pub async fn await_status(x: &cpim_testkit::XmppClient, from: &str, status: &str) {
    use cpim_testkit::XmppEvent;
    x.await_event(
        |e| {
            matches!(e, XmppEvent::Presence { from: f, status: s, .. }
            if f.starts_with(from) && s.as_deref() == Some(status))
        },
        WAIT,
    )
    .await
    .unwrap();
}

/// A UA for `user` of [`SIP_DOMAIN`] (password `<user>pw`, as [`sip_users`] configures)
/// talking to the gateway's SIP address `gw` over `transport`.
pub async fn sip_ua(
    user: &str,
    transport: cpim_testkit::Transport,
    gw: std::net::SocketAddr,
) -> cpim_testkit::SipUa {
    cpim_testkit::SipUa::new(user, SIP_DOMAIN, Some(&format!("{user}pw")), transport, gw)
        .await
        .unwrap()
}

/// SIP users with password `<name>pw`.
pub fn sip_users(names: &[&str]) -> Vec<SipUser> {
    names
        .iter()
        .map(|u| SipUser {
            username: (*u).to_owned(),
            password: Some(format!("{u}pw")),
            ..SipUser::default()
        })
        .collect()
}

/// Settings every e2e config shares: SIP domain and users, fast presence (no RFC 3856 s6.4
/// rate limit, which would only slow the tests down), a rate limit far above the tests'.
pub fn base_config(users: &[&str]) -> Config {
    let mut c = Config::default();
    c.sip.domains = vec![SIP_DOMAIN.into()];
    c.sip.users = sip_users(users);
    c.sip.notify_min_interval = 0;
    c.presence.notify_interval_ms = 0;
    // These tests relay presence between protocols; who may watch whom is tested in the
    // presence engine's unit tests (the default is approve-mutual).
    c.presence.authorization = "approve-all".into();
    c.limits.rate_per_source = 10_000.0;
    c.limits.burst_per_source = 10_000.0;
    // The SIP adapter's per-address limits too (one UA sends 1000 messages in
    // gateway_crash, each with its digest round trip).
    c.sip.limits.requests_per_source = 10_000.0;
    c.sip.limits.requests_burst = 10_000.0;
    c
}

/// The gateway as Prosody A's XEP-0114 component (`CPIM_PEER_PROSODY_COMPONENT*`): XMPP
/// users write to `user@<component domain>`, which is the alias of `sip.test`.
pub fn component_config(peers: &Peers, users: &[&str]) -> Config {
    component_config_of(&peers.prosody, users)
}

/// The gateway as the XEP-0114 component of `server` (`CPIM_PEER_<SERVER>_COMPONENT*`),
/// routing `server`'s domain to XMPP: XMPP users write to `user@<component domain>`, which
/// is the alias of `sip.test`.
pub fn component_config_of(server: &XmppServer, users: &[&str]) -> Config {
    let comp = server
        .component
        .as_ref()
        .expect("the server has a component listener");
    let mut c = base_config(users);
    c.xmpp = toml::from_str(&format!(
        "[mode]\nkind = \"component\"\nserver = \"{}\"\ndomain = \"{}\"\nsecret = \"{}\"\n",
        comp.addr, comp.domain, comp.secret
    ))
    .expect("component config");
    c.routes = vec![Route {
        domain: server.domain.clone(),
        adapter: "xmpp".into(),
    }];
    c.domain_aliases = vec![DomainAlias {
        alias: comp.domain.clone(),
        domain: SIP_DOMAIN.into(),
        adapter: "xmpp".into(),
    }];
    c
}

/// The self-signed certificate of the XMPP server `peer` (the gateway trusts it explicitly
/// in s2s mode): `CPIM_PEER_<PEER>_CERT`, else `$CPIM_PEER_DIR/<folder>/certs/<domain>.crt`,
/// where `scripts/test` puts it (folder `prosody-a` for Prosody A, `ejabberd`).
pub fn xmpp_cert(peers: &Peers, peer: Peer) -> Option<std::path::PathBuf> {
    let folder = match peer {
        Peer::Prosody => "prosody-a",
        _ => peer.name(),
    };
    let var = format!("CPIM_PEER_{}_CERT", peer.name().to_ascii_uppercase());
    std::env::var_os(var)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            peers
                .dir
                .join(folder)
                .join("certs")
                .join(format!("{}.crt", xmpp_server(peers, peer).domain))
        })
        .canonicalize()
        .ok()
}

/// The gateway as XMPP server `gw.domain` federating with `server` (s2s, RFC 7247 s4): its
/// SIP domain is that domain too (`user@gw.test` on both sides), it listens at `gw.addr`
/// (where `server` sends s2s for it) and reaches `server` through a static SRV override,
/// trusting the server's self-signed certificate `cert`.
pub fn s2s_config(
    server: &XmppServer,
    gw: &S2sRoute,
    users: &[&str],
    cert: &std::path::Path,
) -> Config {
    let mut c = base_config(users);
    c.sip.domains = vec![gw.domain.clone()];
    c.xmpp = toml::from_str(&format!(
        "delivery_timeout_secs = 20
reconnect_initial_ms = 100
reconnect_max_ms = 1000
         [mode]
kind = \"s2s\"
domains = [\"{}\"]
listen = \"{}\"
         dialback_secret = \"e2e-dialback-secret\"
trust_roots = [\"{}\"]
         [mode.srv_overrides]
\"{}\" = \"{}\"
",
        gw.domain,
        gw.addr,
        cert.display(),
        server.domain,
        server.s2s
    ))
    .expect("s2s config");
    c.routes = vec![Route {
        domain: server.domain.clone(),
        adapter: "xmpp".into(),
    }];
    c
}

/// The component domain (`sip.xmpp.test`).
pub fn component_domain(peers: &Peers) -> String {
    peers.prosody.component.as_ref().unwrap().domain.clone()
}

/// The gateway's store-and-forward queue depth (`/queue`).
pub async fn queue_depth(gw: &cpim_testkit::TestGateway) -> u64 {
    let (code, body) = gw.admin_get("/queue").await.expect("/queue");
    queue_depth_of(code, &body)
}

/// The queue depth from the answer `code`, `body` to `/queue`.
pub fn queue_depth_of(code: u16, body: &str) -> u64 {
    assert_eq!(code, 200, "{body}");
    serde_json::from_str::<serde_json::Value>(body).expect("JSON")["depth"]
        .as_u64()
        .expect("depth")
}

/// True for a NOTIFY.
pub fn is_notify(r: &Request) -> bool {
    r.method().as_str() == "NOTIFY"
}

/// The Subscription-State value's first token, lower-cased (`active`, `pending`,
/// `terminated`).
pub fn sub_state(r: &Request) -> String {
    r.header(HeaderName::SubscriptionState)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The PIDF body's basic status: `Some(Open)` if any tuple is open, `Some(Closed)` if there
/// are tuples and none is open, `None` without a (parsable) PIDF body.
pub fn basic(r: &Request) -> Option<Basic> {
    if r.body().is_empty() {
        return None;
    }
    let p = cpim_core::pidf::parse(r.body()).ok()?;
    let all: Vec<Basic> = p.tuples.iter().filter_map(|t| t.basic).collect();
    if all.contains(&Basic::Open) {
        Some(Basic::Open)
    } else if all.is_empty() {
        None
    } else {
        Some(Basic::Closed)
    }
}

/// The body as text.
pub fn body_text(r: &Request) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}
