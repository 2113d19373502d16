//! Hop count and size through the whole gateway, SIP to SIP on the testkit's UA: the SIP
//! adapter only translates Max-Forwards to `hops_left` and back, the router counts the
//! hop (RFC 3261 s16.6 step 3) and refuses a message with none left (483, s16.3 step 3)
//! or too large (413), and those refusals are the SIP answers.

use std::time::Duration;

use cpim_gateway::config::Config;
use cpim_sip::codec::HeaderName;
use cpim_testkit::{SipUa, TestGateway, Transport};

mod common;

fn config() -> Config {
    let mut c = common::sip_only_config();
    c.limits.max_body_bytes = 200;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_to_sip_message_leaves_with_one_hop_less() {
    let gw = TestGateway::start(config()).await.unwrap();
    let server = gw.sip_addr(Transport::Udp).unwrap();
    let alice = SipUa::new("alice", "sip.test", Some("alicepw"), Transport::Udp, server)
        .await
        .unwrap();
    let bob = SipUa::new("bob", "sip.test", Some("bobpw"), Transport::Udp, server)
        .await
        .unwrap();
    assert_eq!(alice.register(300).await.unwrap().code(), 200);
    assert_eq!(bob.register(300).await.unwrap().code(), 200);
    let send = |mf: &'static str, body: Vec<u8>| {
        let alice = &alice;
        async move {
            alice
                .request(
                    "MESSAGE",
                    "sip:bob@sip.test",
                    &[("Max-Forwards", mf)],
                    Some(("text/plain", &body[..])),
                )
                .await
                .unwrap()
                .code()
        }
    };
    for (mf, left) in [("70", "69"), ("5", "4"), ("1", "0")] {
        assert_eq!(
            send(mf, format!("hop {mf}").into_bytes()).await,
            200,
            "{mf}"
        );
        let got = bob
            .await_request(
                |r| r.method().as_str() == "MESSAGE",
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(&got.body()[..], format!("hop {mf}").as_bytes());
        assert_eq!(got.header(HeaderName::MaxForwards), Some(left), "{mf}");
    }
    // No hops left: the router's 483; too large for the router's limit: its 413.
    assert_eq!(send("0", b"loop".to_vec()).await, 483);
    assert_eq!(send("70", vec![b'a'; 300]).await, 413);
    assert!(
        bob.take_received()
            .iter()
            .all(|r| r.method().as_str() != "MESSAGE"),
        "nothing refused reaches bob"
    );
    gw.shutdown().await;
}
