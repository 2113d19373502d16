//! SIPp as a SIP watcher of the real gateway (`cpim_gateway::Gateway` with its SIP
//! adapter, as in `sip_gateway_sipp.rs`): partial notification (RFC 5263) and event
//! notification filters (RFC 4660). Skipped with a message without `CPIM_PEERS=1` (a
//! failure under `CI=true`). Scenarios `tests/interop/sipp/gw_subscribe_partial.xml` and
//! `gw_subscribe_filter.xml`.
//!
//! - A watcher sending `Accept: application/pidf+xml, application/pidf-diff+xml` gets
//!   `application/pidf-diff+xml` NOTIFYs: a `<pidf-full>` with the published open status,
//!   and after an in-dialog refresh a `<pidf-full>` again with a higher version (RFC 5263
//!   s4). Every document validates against the pidf-diff schema of
//!   `cpim-core/tests/schemas` with the PIDF schema of the shared corpus (xmllint).
//! - A SUBSCRIBE whose filter includes a namespace the gateway does not know gets 488
//!   (RFC 4660).

mod common;

use std::path::Path;
use std::process::Command;

use common::sip::{DOMAIN, FOREIGN_PEER, T};
use cpim_testkit::sipp::{Sipp, SippOutput};

async fn run_sipp(s: Sipp) -> SippOutput {
    tokio::task::spawn_blocking(move || s.command().run())
        .await
        .unwrap()
}

fn watcher(
    peers: &cpim_interop::Peers,
    scenario: &str,
    t: T,
    target: std::net::SocketAddr,
    dir: &Path,
) -> Sipp {
    Sipp::new(&peers.sipp, common::sip::scenario(scenario))
        .transport(t)
        .local_ip(FOREIGN_PEER)
        .local_port(common::sip::free_port())
        .trace(dir)
        .target(target)
        .args(["-s", "alice", "-key", "domain", DOMAIN, "-m", "1"])
}

/// Texts between `begin` and `end` markers in SIPp's log.
fn between(logs: &str, begin: &str, end: &str) -> Vec<String> {
    logs.split(begin)
        .skip(1)
        .filter_map(|s| s.split(end).next())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Validates a partial PIDF document; `Ok(false)` when the schemas are not there.
fn validate(
    peers: &cpim_interop::Peers,
    doc: &str,
    dir: &Path,
    name: &str,
) -> Result<bool, String> {
    let Some(shared) = cpim_interop::shared_dir() else {
        return Ok(false);
    };
    let Ok(pidf) =
        std::fs::canonicalize(shared.join("corpora/simple-xml-schemas/sipsimple/pidf.xsd"))
    else {
        return Ok(false);
    };
    let local = cpim_interop::repo_root().join("cpim-core/tests/schemas");
    let xsd = std::fs::read_to_string(local.join("pidf-diff.xsd"))
        .unwrap()
        .replace("PIDF_XSD", &pidf.display().to_string());
    std::fs::write(dir.join("pidf-diff.xsd"), xsd).unwrap();
    std::fs::copy(local.join("patch-ops.xsd"), dir.join("patch-ops.xsd")).unwrap();
    let file = dir.join(format!("{name}.xml"));
    std::fs::write(&file, doc).unwrap();
    let out = Command::new(&peers.xmllint)
        .args(["--noout", "--nonet", "--schema"])
        .arg(dir.join("pidf-diff.xsd"))
        .arg(&file)
        .output()
        .expect("run xmllint");
    if out.status.success() {
        Ok(true)
    } else {
        Err(format!(
            "{}\n{doc}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn version(doc: &str) -> u32 {
    let v = doc
        .split("version=\"")
        .nth(1)
        .and_then(|s| s.split('"').next());
    v.and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {doc}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc5263_sipp_watcher_gets_full_state_then_full_state_after_refresh() {
    let peers = cpim_interop::require_peers!(Sipp, Xmllint);
    let dir = common::sip::scratch("gw-subscribe-partial");
    let (gw, udp, tcp) = common::sip::start(common::sip::config(&dir.join("store"))).await;
    let published = tokio::task::spawn_blocking({
        let c = common::sip::sipp(
            &peers,
            "gw_publish_open.xml",
            T::Udp,
            common::sip::free_port(),
            Some(udp),
            &[
                "-s", "alice", "-au", "alice", "-ap", "alicepw", "-key", "domain", DOMAIN, "-m",
                "1",
            ],
            &dir,
        );
        move || c.run()
    })
    .await
    .unwrap();
    assert!(published.ok, "alice's PUBLISH: {}", published.report);
    let mut validated = 0;
    for (t, target) in [(T::Udp, udp), (T::Tcp, tcp)] {
        let out = run_sipp(watcher(&peers, "gw_subscribe_partial.xml", t, target, &dir)).await;
        assert!(out.success(), "SUBSCRIBE over {t:?}: {}", out.report());
        let docs = between(&out.logs, "DOC-BEGIN", "DOC-END");
        let refreshed = between(&out.logs, "AGAIN-BEGIN", "AGAIN-END");
        let types = between(&out.logs, "CTYPE=", "\n");
        let full = docs
            .iter()
            .find(|d| d.contains("pidf-full"))
            .unwrap_or_else(|| panic!("no <pidf-full> over {t:?}: {}", out.report()));
        assert!(full.contains("<basic>open</basic>"), "{full}");
        assert!(
            types
                .iter()
                .any(|c| c.starts_with("application/pidf-diff+xml")),
            "{types:?}: {}",
            out.logs
        );
        assert_eq!(refreshed.len(), 1, "{}", out.report());
        assert!(
            version(&refreshed[0]) > version(full),
            "the refresh's full state has a later version: {} then {}",
            full,
            refreshed[0]
        );
        for (i, doc) in docs.iter().chain(&refreshed).enumerate() {
            match validate(&peers, doc, &dir, &format!("partial-{}-{i}", t.name())) {
                Ok(true) => validated += 1,
                Ok(false) => println!("schema check skipped: shared PIDF schema not found"),
                Err(e) => panic!("NOTIFY over {t:?}: document does not validate: {e}"),
            }
        }
    }
    println!("{validated} partial PIDF documents validated against RFC 5262's schema");
    gw.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4660_sipp_filter_with_unknown_namespace_gets_488() {
    let peers = cpim_interop::require_peers!(Sipp);
    let dir = common::sip::scratch("gw-subscribe-filter");
    let (gw, udp, tcp) = common::sip::start(common::sip::config(&dir.join("store"))).await;
    for (t, target) in [(T::Udp, udp), (T::Tcp, tcp)] {
        let out = run_sipp(watcher(&peers, "gw_subscribe_filter.xml", t, target, &dir)).await;
        assert!(
            out.success(),
            "filter SUBSCRIBE over {t:?}: {}",
            out.report()
        );
    }
    gw.shutdown().await;
}
