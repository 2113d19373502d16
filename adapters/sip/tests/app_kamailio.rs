//! Real-peer test (run by `scripts/test`): the SIP adapter subscribes, for a watcher on
//! another protocol, to a presentity on Kamailio's presence server (RFC 6665, RFC 3856),
//! receives the NOTIFYs that follow a PUBLISH there, hands them to the core as
//! `Operation::Notify` with the decoded PIDF, and unsubscribes. Reads
//! `CPIM_PEER_KAMAILIO` (`host:port`, UDP and TCP) and `CPIM_PEER_KAMAILIO_DOMAIN`;
//! skips with a message when they are absent, fails under `CI=true`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::Address;
use cpim_core::model::{Operation, Outcome, Subscribe, SubscriptionState, TransId};
use cpim_core::presence::Basic;
use cpim_sip::app::config::SipConfig;
use cpim_sip::app::{start, MemoryStore};
use cpim_sip::codec::{HeaderName, Method, Request};
use cpim_sip::endpoint::{EndpointConfig, Target};
use cpim_sip::transport::resolve::StaticTarget;
use cpim_sip::transport::Transport;

#[derive(Default)]
struct Core {
    ops: Mutex<Vec<Operation>>,
}

impl Ingress for Core {
    fn submit(&self, _adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let tid = op.trans_id();
        self.ops.lock().unwrap().push(op);
        Box::pin(async move { Outcome::ok(tid) })
    }
}

/// Kamailio's address and domain, through the real-peer rule (`peer_env::need`).
fn peer() -> Option<(SocketAddr, String)> {
    use cpim_testkit::peer_env::{self, Peer};
    let addr = peer_env::need(
        &[Peer::Kamailio],
        peer_env::addr("CPIM_PEER_KAMAILIO"),
        "CPIM_PEER_KAMAILIO is not set (run through scripts/test)",
    )?;
    let domain = peer_env::var("CPIM_PEER_KAMAILIO_DOMAIN").unwrap_or_else(|| "sip.test".into());
    Some((addr, domain))
}

fn publish(user: &str, domain: &str, note: &str) -> Request {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:{user}@{domain}\"><tuple id=\"k1\"><status><basic>open</basic></status><note>{note}</note></tuple></presence>"
    );
    Request::builder(&Method::Publish, &format!("sip:{user}@{domain}"))
        .header(HeaderName::MaxForwards, "70")
        .header(HeaderName::From, &format!("<sip:{user}@{domain}>;tag=pub1"))
        .header(HeaderName::To, &format!("<sip:{user}@{domain}>"))
        .header(HeaderName::CallId, &format!("pub-{note}"))
        .header(HeaderName::CSeq, "1 PUBLISH")
        .header(HeaderName::Event, "presence")
        .header(HeaderName::Expires, "120")
        .body("application/pidf+xml", body.into_bytes())
        .build_request()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_subscribes_to_kamailio_presentity_and_gets_notifies() {
    let Some((kam, domain)) = peer() else {
        return;
    };
    let mut statics = HashMap::new();
    statics.insert(
        domain.clone(),
        vec![StaticTarget {
            transport: Transport::Udp,
            address: kam.to_string(),
        }],
    );
    let config = SipConfig {
        endpoint: EndpointConfig {
            udp: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            tcp: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            tls: Vec::new(),
            dns: false,
            static_targets: statics,
            ..Default::default()
        },
        domains: vec!["gw.test".into()],
        remote_domains: vec![domain.clone()],
        ..Default::default()
    };
    let core = Arc::new(Core::default());
    let handle = start(config, core.clone(), Arc::new(MemoryStore::new()))
        .await
        .expect("start");
    let adapter = handle.adapter();
    let user = format!("kam{}", std::process::id());
    let note = format!("note-{}", std::process::id());
    let target = Address::parse(&format!("sip:{user}@{domain}")).unwrap();
    let watcher = Address::parse("juliet@xmpp.test").unwrap();
    assert!(adapter.serves(&target));
    let sub = Subscribe {
        trans_id: TransId(1),
        watcher: watcher.clone(),
        target: target.clone(),
        duration: 600,
    };
    let out = adapter.deliver(Operation::Subscribe(sub.clone())).await;
    assert!(out.status.is_success(), "SUBSCRIBE to Kamailio: {out:?}");

    let resp = handle
        .endpoint()
        .send_request(
            publish(&user, &domain, &note),
            Target::Addr(Transport::Udp, kam),
        )
        .await
        .expect("PUBLISH to Kamailio");
    assert_eq!(resp.code(), 200, "PUBLISH to Kamailio");

    // Kamailio notifies the gateway; the core gets the decoded presence.
    let mut found = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let ops = core.ops.lock().unwrap().clone();
        found = ops.iter().any(|o| match o {
            Operation::Notify(n) => {
                n.watcher.same_user(&watcher)
                    && matches!(n.state, SubscriptionState::Active { .. })
                    && n.presence.as_ref().is_some_and(|p| {
                        p.tuples.iter().any(|t| {
                            t.basic == Some(Basic::Open) && t.notes.iter().any(|x| x.text == note)
                        })
                    })
            }
            _ => false,
        });
        if found {
            break;
        }
    }
    assert!(
        found,
        "no Notify with the published state reached the core: {:?}",
        core.ops.lock().unwrap()
    );

    let out = adapter.deliver(Operation::Unsubscribe(sub)).await;
    assert!(out.status.is_success());
    handle.shutdown().await;
}
