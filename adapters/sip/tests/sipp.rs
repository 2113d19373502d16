//! Real peer: SIPp sends MESSAGEs to a running endpoint over UDP and TCP; the test's TU
//! answers 200 and SIPp's exit status must report every call successful. A second
//! scenario sends a malformed MESSAGE (Max-Forwards 300) and expects the endpoint's 400.
//!
//! Skipped with a message when `sipp` is not on PATH. Scenarios: `tests/sipp/*.xml`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cpim_sip::codec::Response;
use cpim_sip::endpoint::{Endpoint, EndpointConfig};
use cpim_sip::transport::Transport;

fn sipp_available() -> bool {
    Command::new("sipp").arg("-v").output().is_ok()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

async fn run_sipp(
    scenario_file: PathBuf,
    target: SocketAddr,
    transport: &'static str,
    calls: u32,
) -> std::process::Output {
    let local_port = free_udp_port();
    tokio::task::spawn_blocking(move || {
        let dir = std::env::temp_dir();
        Command::new("sipp")
            .current_dir(dir)
            .arg("-sf")
            .arg(&scenario_file)
            .args(["-t", transport, "-i", "127.0.0.1"])
            .args(["-p", &local_port.to_string()])
            .args(["-m", &calls.to_string(), "-r", "50", "-l", "10"])
            .args(["-timeout", "30s", "-timeout_error", "-nostdin", "-nr"])
            .arg(target.to_string())
            .output()
            .expect("sipp runs")
    })
    .await
    .unwrap()
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
    if !sipp_available() {
        eprintln!("SKIP: sipp not on PATH");
        return;
    }
    let (ep, count) = endpoint_with_counting_tu().await;
    for (t, flag) in [(Transport::Udp, "u1"), (Transport::Tcp, "t1")] {
        let before = count.load(Ordering::SeqCst);
        let out = run_sipp(
            scenario("message_uac.xml"),
            ep.local_addr(t).unwrap(),
            flag,
            20,
        )
        .await;
        assert!(
            out.status.success(),
            "sipp over {t} failed: {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            count.load(Ordering::SeqCst) - before,
            20,
            "the TU saw each MESSAGE once over {t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_malformed_gets_400() {
    if !sipp_available() {
        eprintln!("SKIP: sipp not on PATH");
        return;
    }
    let (ep, count) = endpoint_with_counting_tu().await;
    let out = run_sipp(
        scenario("malformed_uac.xml"),
        ep.local_addr(Transport::Udp).unwrap(),
        "u1",
        3,
    )
    .await;
    assert!(
        out.status.success(),
        "sipp failed: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "malformed requests never reach the TU"
    );
}
