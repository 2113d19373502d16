//! The SIP adapter over real sockets against SIPp (scenarios in `tests/sipp/`): MESSAGE
//! over UDP and TCP with the outcome mapping, REGISTER with digest, the PUBLISH ETag
//! lifecycle, SUBSCRIBE with NOTIFYs whose PIDF body is checked against the RFC 3863
//! schema with xmllint. A fake `Ingress` plays the core. Skips (with a message) when
//! SIPp is not found (a failure under `CI=true`, see `cpim_testkit::sipp`); the schema
//! check skips when the shared corpus is missing, and when xmllint is (a failure under
//! `CI=true`).

use cpim_core::StatusCode;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::model::{Notify, Operation, Outcome, SubscriptionState, TransId};
use cpim_core::presence::{Basic, Note, Presence, Tuple};
use cpim_sip::app::config::{SipConfig, SipUser};
use cpim_sip::app::digest::Algorithm;
use cpim_sip::app::{start, MemoryStore, SipAdapter, SipHandle};
use cpim_sip::endpoint::EndpointConfig;
use cpim_sip::transport::Transport;
use cpim_testkit::sipp::{Sipp, SippTransport};

#[derive(Default)]
struct Core {
    adapter: OnceLock<Arc<SipAdapter>>,
    ops: Mutex<Vec<Operation>>,
}

impl Ingress for Core {
    fn submit(&self, _adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let tid = op.trans_id();
        let mut outcome = Outcome::ok(tid);
        if let Some(d) = op.destination() {
            if d.user.as_deref() == Some("nobody") {
                outcome = Outcome::failure(tid, StatusCode::NOT_FOUND, "Not Found");
            }
        }
        if let Operation::Subscribe(s) = &op {
            // The presentity's state arrives a moment later, as from another adapter.
            if let Some(adapter) = self.adapter.get().cloned() {
                let n = Notify {
                    trans_id: TransId(1000),
                    watcher: s.watcher.clone(),
                    target: s.target.clone(),
                    state: SubscriptionState::Active {
                        expires: s.duration,
                    },
                    presence: Some(Presence {
                        tuples: vec![Tuple {
                            id: "romeo-1".into(),
                            basic: Some(Basic::Open),
                            notes: vec![Note::new("in the garden")],
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                };
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let _ = adapter.deliver(Operation::Notify(n)).await;
                });
            }
        }
        self.ops.lock().unwrap().push(op);
        Box::pin(async move { outcome })
    }
}

/// SIPp, or `None` when the test skips (see `cpim_testkit::sipp::program_or_skip`).
fn sipp_program() -> Option<PathBuf> {
    cpim_testkit::sipp::program_or_skip()
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cpim-sip-app-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The source address of the scenarios whose From is in `other.test`.
const FOREIGN_PEER: &str = "127.0.0.2";

async fn gateway() -> (SipHandle, Arc<Core>) {
    let config = SipConfig {
        endpoint: EndpointConfig {
            udp: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            tcp: vec![SocketAddr::from(([127, 0, 0, 1], 0))],
            tls: Vec::new(),
            dns: false,
            ..Default::default()
        },
        domains: vec!["sip.test".into()],
        // The scenarios that speak for carol@other.test run from this address (RFC 5922:
        // a foreign domain only from a trusted peer); the others from 127.0.0.1.
        trusted_peers: vec![FOREIGN_PEER.parse().unwrap()],
        users: vec![SipUser {
            username: "alice".into(),
            password: Some("wonderland".into()),
            ..Default::default()
        }],
        // SIPp answers the first challenge and knows MD5 only.
        auth_algorithms: vec![Algorithm::Md5, Algorithm::Sha256],
        ..Default::default()
    };
    let core = Arc::new(Core::default());
    let handle = start(config, core.clone(), Arc::new(MemoryStore::new()))
        .await
        .expect("start the SIP adapter");
    let _ = core.adapter.set(handle.adapter());
    (handle, core)
}

fn addr_of(h: &SipHandle, t: Transport) -> SocketAddr {
    h.local_addrs()
        .iter()
        .find(|(tr, _)| *tr == t)
        .map(|(_, a)| *a)
        .unwrap()
}

/// Runs one SIPp scenario (one call) and returns (success, log text).
async fn sipp(
    program: &Path,
    scenario_file: &str,
    transport: Transport,
    service: &str,
    remote: SocketAddr,
    extra: &[&str],
    dir: &Path,
) -> (bool, String) {
    let ip = match scenario_file {
        "message_200.xml" | "message_404.xml" | "subscribe.xml" => FOREIGN_PEER,
        _ => "127.0.0.1",
    };
    let out = Sipp::new(program, scenario(scenario_file))
        .target(remote)
        .transport(if transport == Transport::Tcp {
            SippTransport::Tcp
        } else {
            SippTransport::Udp
        })
        .local_ip(ip)
        .calls(1)
        .service(service)
        .timeout(Duration::from_secs(20))
        .trace(dir)
        .args(extra)
        .run_async()
        .await;
    if !out.success() {
        println!("{}", out.report());
    }
    (out.success(), out.logs)
}

/// RFC 3428 MESSAGE in over UDP and TCP; the core's outcome (200, 404) is the SIP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_message_udp_and_tcp_outcome_mapping() {
    let Some(sipp_bin) = sipp_program() else {
        return;
    };
    let dir = scratch("message");
    let (h, core) = gateway().await;
    for t in [Transport::Udp, Transport::Tcp] {
        let remote = addr_of(&h, t);
        let (ok, _) = sipp(&sipp_bin, "message_200.xml", t, "romeo", remote, &[], &dir).await;
        assert!(ok, "MESSAGE 200 over {t:?}");
        let (ok, _) = sipp(&sipp_bin, "message_404.xml", t, "nobody", remote, &[], &dir).await;
        assert!(ok, "MESSAGE 404 over {t:?}");
    }
    let ops = core.ops.lock().unwrap().clone();
    let msgs: Vec<_> = ops
        .iter()
        .filter_map(|o| match o {
            Operation::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(msgs.len(), 4);
    assert_eq!(msgs[0].source.to_string(), "sip:carol@other.test");
    assert_eq!(msgs[0].destination.to_string(), "sip:romeo@xmpp.test");
    assert_eq!(msgs[0].subject.as_deref(), Some("sipp"));
    assert!(msgs[0].body.starts_with(b"Hello from SIPp over UDP"));
    assert!(msgs[2].body.starts_with(b"Hello from SIPp over TCP"));
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// REGISTER: 401 with a digest challenge, then 200 for the right credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_register_with_digest() {
    let Some(sipp_bin) = sipp_program() else {
        return;
    };
    let dir = scratch("register");
    let (h, _core) = gateway().await;
    let remote = addr_of(&h, Transport::Udp);
    let (ok, _) = sipp(
        &sipp_bin,
        "register_auth.xml",
        Transport::Udp,
        "alice",
        remote,
        &["-au", "alice", "-ap", "wonderland"],
        &dir,
    )
    .await;
    assert!(ok, "REGISTER with digest");
    // A wrong password ends in another 401, which the scenario does not expect.
    let (ok, _) = sipp(
        &sipp_bin,
        "register_auth.xml",
        Transport::Udp,
        "alice",
        remote,
        &["-au", "alice", "-ap", "wrong"],
        &dir,
    )
    .await;
    assert!(!ok, "a wrong password must not register");
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// PUBLISH: ETag on the initial request, a new one on refresh, removal; the core sees
/// the publication come and go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_publish_etag_lifecycle() {
    let Some(sipp_bin) = sipp_program() else {
        return;
    };
    let dir = scratch("publish");
    let (h, core) = gateway().await;
    let remote = addr_of(&h, Transport::Udp);
    let (ok, logs) = sipp(
        &sipp_bin,
        "publish.xml",
        Transport::Udp,
        "alice",
        remote,
        &["-au", "alice", "-ap", "wonderland"],
        &dir,
    )
    .await;
    assert!(ok, "PUBLISH lifecycle; logs: {logs}");
    let tags: Vec<&str> = logs
        .lines()
        .filter_map(|l| l.split("etag ").nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(tags.len(), 2, "{logs}");
    assert_ne!(tags[0], tags[1], "a refresh gets a new entity tag");
    let ops = core.ops.lock().unwrap().clone();
    let pubs: Vec<_> = ops
        .iter()
        .filter_map(|o| match o {
            Operation::Publish(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(pubs.len(), 3);
    assert!(pubs[0].presence.is_available());
    assert_eq!(pubs[0].expires, 600);
    assert!(pubs[2].presence.tuples.is_empty());
    assert_eq!(pubs[2].expires, 0);
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn shared_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

/// SUBSCRIBE: 200, the immediate NOTIFY, a NOTIFY with the core's presence as PIDF; the
/// PIDF validates against the RFC 3863 schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_subscribe_gets_notify_with_valid_pidf() {
    let Some(sipp_bin) = sipp_program() else {
        return;
    };
    let dir = scratch("subscribe");
    let (h, core) = gateway().await;
    for t in [Transport::Udp, Transport::Tcp] {
        let remote = addr_of(&h, t);
        let (ok, logs) = sipp(&sipp_bin, "subscribe.xml", t, "romeo", remote, &[], &dir).await;
        assert!(ok, "SUBSCRIBE over {t:?}; logs: {logs}");
        let pidf = logs
            .split("PIDF-BEGIN")
            .nth(1)
            .and_then(|s| s.split("PIDF-END").next())
            .unwrap_or_else(|| panic!("no PIDF logged: {logs}"))
            .to_owned();
        assert!(pidf.contains("<basic>open</basic>"), "{pidf}");
        assert!(pidf.contains("in the garden"), "{pidf}");
        let schema = shared_dir().join("corpora/simple-xml-schemas/sipsimple/pidf.xsd");
        // Canonical, so that xmllint finds the schema's relative imports.
        let Ok(schema) = std::fs::canonicalize(&schema) else {
            println!("SKIPPED schema check: {} not found", schema.display());
            continue;
        };
        let Some(xmllint) = cpim_testkit::peer_env::need(
            &[cpim_testkit::peer_env::Peer::Xmllint],
            cpim_testkit::peer_env::program("CPIM_PEER_XMLLINT", "xmllint"),
            "xmllint is not found (CPIM_PEER_XMLLINT unset, no xmllint on PATH)",
        ) else {
            continue;
        };
        let file = dir.join(format!("notify-{t:?}.xml"));
        std::fs::write(&file, &pidf).unwrap();
        let out = Command::new(xmllint)
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "PIDF does not validate: {}\n{pidf}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let subs = core
        .ops
        .lock()
        .unwrap()
        .iter()
        .filter(|o| matches!(o, Operation::Subscribe(_)))
        .count();
    assert_eq!(subs, 2);
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
