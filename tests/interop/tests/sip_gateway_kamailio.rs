//! The gateway subscribes, on behalf of a watcher of another protocol, to a presentity of
//! Kamailio's presence server (RFC 3856 / RFC 6665 through RFC 8048's presence relay):
//!
//! - a mock adapter ("watchers", domain `watchers.test`) stands for the other protocol: it
//!   submits a SUBSCRIBE for `sip:<user>@sip.test` into the real gateway
//!   (`Gateway::start_with`) and records the NOTIFYs the gateway delivers to it;
//! - the SIP adapter serves `sip.test` as a remote domain reached through Kamailio (a route
//!   `sip.test -> sip` and a static RFC 3263 target, `CPIM_PEER_KAMAILIO`);
//! - SIPp PUBLISHes "open" for the user to Kamailio, then modifies that publication to
//!   "closed" (RFC 3903 s4.4); the watcher must see each change, with its note.
//!
//! Skipped without `CPIM_PEERS=1` (a failure under `CI=true`).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sip::T;
use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::address::Address;
use cpim_core::model::{Notify, Operation, Outcome, Subscribe, SubscriptionState, TransId};
use cpim_core::presence::Basic;
use cpim_gateway::config::Route;
use cpim_sip::transport::resolve::StaticTarget;
use cpim_sip::transport::Transport;

/// The watcher side: serves `watchers.test`, accepts what it is given, keeps the NOTIFYs.
struct Watchers {
    notifies: Mutex<Vec<Notify>>,
}

impl Adapter for Watchers {
    fn name(&self) -> &str {
        "watchers"
    }
    fn serves(&self, a: &Address) -> bool {
        a.domain.eq_ignore_ascii_case("watchers.test")
    }
    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        let id = op.trans_id();
        if let Operation::Notify(n) = op {
            self.notifies.lock().unwrap().push(n);
        }
        Box::pin(async move { Outcome::ok(id) })
    }
}

fn basic_with_note(n: &Notify, basic: Basic, note: &str) -> bool {
    matches!(n.state, SubscriptionState::Active { .. })
        && n.presence.as_ref().is_some_and(|p| {
            p.tuples
                .iter()
                .any(|t| t.basic == Some(basic) && t.notes.iter().any(|x| x.text == note))
        })
}

async fn wait_for(w: &Watchers, f: impl Fn(&Notify) -> bool) -> bool {
    for _ in 0..100 {
        if w.notifies.lock().unwrap().iter().any(&f) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_watcher_sees_kamailio_presentity_changes() {
    let peers = cpim_interop::require_peers!(Kamailio, Sipp);
    let kam = peers.kamailio.clone();
    let dir = common::sip::scratch("gw-kamailio");
    let mut c = common::sip::config(&dir.join("store"));
    c.sip.domains = vec!["gw.test".into()];
    c.sip.remote_domains = vec![kam.domain.clone()];
    c.sip.endpoint.static_targets = HashMap::from([(
        kam.domain.clone(),
        vec![StaticTarget {
            transport: Transport::Udp,
            address: kam.addr.to_string(),
        }],
    )]);
    c.routes = vec![
        Route {
            domain: kam.domain.clone(),
            adapter: "sip".into(),
        },
        Route {
            domain: "watchers.test".into(),
            adapter: "watchers".into(),
        },
    ];
    let watchers = Arc::new(Watchers {
        notifies: Mutex::new(Vec::new()),
    });
    let gw = cpim_gateway::gateway::Gateway::start_with(c, vec![watchers.clone()])
        .await
        .expect("start the gateway");
    let udp = gw
        .sip_addrs()
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case("udp"))
        .map(|(_, a)| *a)
        .expect("SIP over UDP");
    println!("gateway SIP on {udp}, Kamailio on {}", kam.addr);

    let user = format!("kamuser{}", std::process::id());
    let target = Address::parse(&format!("sip:{user}@{}", kam.domain)).unwrap();
    let watcher = Address::parse("im:juliet@watchers.test").unwrap();
    let out = gw
        .ingress
        .submit(
            "watchers",
            Operation::Subscribe(Subscribe {
                trans_id: TransId(1),
                watcher: watcher.clone(),
                target: target.clone(),
                duration: 600,
            }),
        )
        .await;
    assert!(
        out.status.is_success(),
        "the watcher's SUBSCRIBE through the gateway: {:?}",
        out.status
    );

    // The first PUBLISH creates the publication, the second modifies it (SIP-If-Match).
    let mut ifmatch = "X-Initial: 1".to_owned();
    for (basic, word) in [(Basic::Open, "open"), (Basic::Closed, "closed")] {
        let note = format!("{word}-{}", std::process::id());
        let publish = common::sip::sipp(
            &peers,
            "gw_publish_basic.xml",
            T::Udp,
            common::sip::free_port(),
            Some(kam.addr),
            &[
                "-s",
                &user,
                "-key",
                "domain",
                &kam.domain,
                "-key",
                "basic",
                word,
                "-key",
                "note",
                &note,
                "-key",
                "ifmatch",
                &ifmatch,
                "-m",
                "1",
            ],
            &dir,
        );
        let published = tokio::task::spawn_blocking(move || publish.run())
            .await
            .unwrap();
        assert!(
            published.ok,
            "PUBLISH {word} to Kamailio: {}",
            published.report
        );
        let etag = published
            .logs
            .lines()
            .find_map(|l| l.strip_prefix("ETAG "))
            .map(str::trim)
            .unwrap_or_default()
            .to_owned();
        assert!(!etag.is_empty(), "no SIP-ETag: {}", published.report);
        ifmatch = format!("SIP-If-Match: {etag}");
        let seen = wait_for(&watchers, |n| {
            n.watcher.same_user(&watcher) && basic_with_note(n, basic, &note)
        })
        .await;
        assert!(
            seen,
            "the watcher did not see {word} ({note}); NOTIFYs it got: {:#?}",
            watchers.notifies.lock().unwrap()
        );
    }
    gw.shutdown().await;
}
