//! The adapter's request dispatcher, driven from outside over raw UDP: the endpoint task
//! hands each new request to a task of its own, at most `tu_queue` at once. A request past
//! the cap is answered at once with 503 and Retry-After (RFC 3261 s21.5.4), not queued
//! behind a MESSAGE that waits for the core, and the held MESSAGE still gets its answer
//! when the core gives one.

mod common;

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use cpim_core::adapter::{BoxFuture, Ingress};
use cpim_core::model::{Operation, Outcome};
use cpim_core::StatusCode;
use tokio::sync::Semaphore;

/// A core that records each operation and answers only once the test opens its gate.
struct HeldCore {
    ops: Mutex<Vec<Operation>>,
    gate: Arc<Semaphore>,
}

impl Ingress for HeldCore {
    fn submit(&self, _adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let tid = op.trans_id();
        self.ops.lock().unwrap().push(op);
        let gate = Arc::clone(&self.gate);
        Box::pin(async move {
            let _open = gate.acquire().await;
            Outcome::ok(tid)
        })
    }
}

fn options(me: std::net::SocketAddr, cid: &str) -> String {
    request(
        "OPTIONS",
        "sip:sip.test",
        "sip:carol@elsewhere.test",
        "sip:sip.test",
        me,
        cid,
        1,
        "",
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_past_the_dispatch_cap_gets_503_while_a_message_waits_for_the_core() {
    let mut config = base_config();
    config.endpoint.tu_queue = 1;
    let core = Arc::new(HeldCore {
        ops: Mutex::new(Vec::new()),
        gate: Arc::new(Semaphore::new(0)),
    });
    let (h, gw) = gateway_with(config, core.clone()).await;
    let c = Arc::clone(&core);
    let (refused, held, after) = tokio::task::spawn_blocking(move || {
        let alice = UdpSocket::bind("127.0.0.1:0").unwrap();
        let me = alice.local_addr().unwrap();
        let other = UdpSocket::bind("127.0.0.1:0").unwrap();
        let other_me = other.local_addr().unwrap();
        // alice's authenticated MESSAGE reaches the core and waits there, holding the
        // one dispatch slot
        let message = |cseq: u32, extra: &str| {
            request(
                "MESSAGE",
                "sip:romeo@sip.test",
                "sip:alice@sip.test",
                "sip:romeo@sip.test",
                me,
                "held-1",
                cseq,
                &format!("{extra}Content-Type: text/plain\r\n"),
                "hello",
            )
        };
        let first = exchange(&alice, gw, &message(1, ""), "held-1");
        assert_eq!(first.code, StatusCode::UNAUTHORIZED);
        let auth = authorization(
            &first,
            ("alice", "wonderland"),
            "MESSAGE",
            "sip:romeo@sip.test",
        );
        alice.send_to(message(2, &auth).as_bytes(), gw).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while c.ops.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the MESSAGE never reached the core"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // another request meanwhile: refused at once, not queued
        let refused = exchange(&other, gw, &options(other_me, "past-cap"), "past-cap");
        c.gate.add_permits(1);
        let (held, _) = final_response(&alice, "held-1", Duration::from_secs(5));
        // the slot is free again
        let after = exchange(&other, gw, &options(other_me, "after"), "after");
        (refused, held, after)
    })
    .await
    .unwrap();
    assert_eq!(
        refused.code,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text
    );
    assert_eq!(refused.header("Retry-After"), Some("1"));
    let held = held.expect("the held MESSAGE is answered once the core answers");
    assert_eq!(held.code, StatusCode::OK, "{}", held.text);
    assert_eq!(after.code, StatusCode::OK, "{}", after.text);
    assert_eq!(core.ops.lock().unwrap().len(), 1);
    h.shutdown().await;
}
