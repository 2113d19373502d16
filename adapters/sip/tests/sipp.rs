//! Real peer: SIPp sends MESSAGEs to a running endpoint over UDP and TCP; the test's TU
//! answers 200 and SIPp's exit status must report every call successful. A second
//! scenario sends a malformed MESSAGE (Max-Forwards 300) and expects the endpoint's 400.
//!
//! Skipped with a message when SIPp is not found (a failure under `CI=true`, see
//! `cpim_testkit::sipp`). Scenarios: `tests/sipp/*.xml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cpim_sip::codec::Response;
use cpim_sip::endpoint::{Endpoint, EndpointConfig};
use cpim_sip::transport::Transport;
use cpim_testkit::sipp::{Sipp, SippOutput, SippTransport};

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

async fn run_sipp(
    program: &std::path::Path,
    scenario_file: PathBuf,
    target: SocketAddr,
    transport: SippTransport,
    calls: u32,
) -> SippOutput {
    Sipp::new(program, scenario_file)
        .target(target)
        .transport(transport)
        .calls(calls)
        .args(["-r", "50", "-l", "10", "-nr"])
        .run_async()
        .await
}

async fn endpoint_with_counting_tu() -> (Endpoint, Arc<AtomicUsize>) {
    let cfg = EndpointConfig {
        udp: vec!["127.0.0.1:0".parse().unwrap()],
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        tls: Vec::new(),
        dns: false,
        ..EndpointConfig::default()
    };
    let (ep, mut inc) = Endpoint::bind(cfg).await.unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    tokio::spawn(async move {
        while let Some(r) = inc.recv().await {
            c2.fetch_add(1, Ordering::SeqCst);
            let resp = Response::for_request(&r.request, 200, None)
                .build_response()
                .unwrap();
            r.respond(resp).unwrap();
        }
    });
    (ep, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_message_over_udp_and_tcp() {
    let Some(program) = cpim_testkit::sipp::program_or_skip() else {
        return;
    };
    let (ep, count) = endpoint_with_counting_tu().await;
    for (t, flag) in [
        (Transport::Udp, SippTransport::Udp),
        (Transport::Tcp, SippTransport::Tcp),
    ] {
        let before = count.load(Ordering::SeqCst);
        let out = run_sipp(
            &program,
            scenario("message_uac.xml"),
            ep.local_addr(t).unwrap(),
            flag,
            20,
        )
        .await;
        assert!(out.success(), "sipp over {t} failed: {}", out.report());
        assert_eq!(
            count.load(Ordering::SeqCst) - before,
            20,
            "the TU saw each MESSAGE once over {t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_malformed_gets_400() {
    let Some(program) = cpim_testkit::sipp::program_or_skip() else {
        return;
    };
    let (ep, count) = endpoint_with_counting_tu().await;
    let out = run_sipp(
        &program,
        scenario("malformed_uac.xml"),
        ep.local_addr(Transport::Udp).unwrap(),
        SippTransport::Udp,
        3,
    )
    .await;
    assert!(out.success(), "sipp failed: {}", out.report());
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "malformed requests never reach the TU"
    );
}
