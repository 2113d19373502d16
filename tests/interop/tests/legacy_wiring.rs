//! The IRC and JSON adapters wired into the gateway, without external peers (runs in every
//! `cargo test`): both start from their config sections, their links are in `/links` and the
//! metrics, their domains route to them, an operation towards an IRC network that is down
//! fails with an outcome instead of hanging, and graceful shutdown stops them.

mod common;

use std::time::Duration;

use common::legacy::JsonClient;
use cpim_gateway::config::Config;
use cpim_testkit::TestGateway;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_and_json_start_route_report_and_stop() {
    // An IRC server address where nothing listens: the bot's link stays down.
    let dead = cpim_interop::free_tcp_port().expect("free port");
    let text = format!(
        "adapters = [\"json\", \"irc\"]\n\
         [[irc]]\nserver = \"127.0.0.1:{dead}\"\ndomain = \"irc.test\"\nreconnect_min_ms = 100\n\
         [json]\ntcp_listen = \"127.0.0.1:0\"\ndomains = [\"json.test\"]\n\
         [[json.tokens]]\ntoken = \"carol-token-6f1d2c9a8b7e\"\naddresses = [\"im:carol@json.test\"]\n\
         [queue]\nenabled = false\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    );
    let cfg = Config::from_str_with_env(&text, "wiring.toml", Vec::new()).expect("config");
    let gw = TestGateway::start(cfg).await.expect("gateway starts");
    let addr = gw.gateway().json_tcp_addr().expect("JSON listener bound");

    // The IRC adapter reports its link once its first connection attempt has begun:
    // poll /links (bounded) until both adapters' links are listed.
    let irc_prefix = format!("irc:127.0.0.1:{dead}");
    let mut links = serde_json::Value::Null;
    for _ in 0..100 {
        let (code, body) = gw.admin_get("/links").await.expect("/links");
        assert_eq!(code, 200);
        links = serde_json::from_str(&body).expect("JSON links");
        let listed = links.as_array().is_some_and(|a| {
            a.iter().any(|l| {
                l["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&irc_prefix))
            })
        });
        if listed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let find = |prefix: &str| {
        links
            .as_array()
            .expect("array")
            .iter()
            .find(|l| l["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
            .cloned()
            .unwrap_or_else(|| panic!("no link {prefix}* in {links}"))
    };
    assert_eq!(find(&format!("json-tcp:{addr}"))["up"], true);
    assert_eq!(find(&format!("irc:127.0.0.1:{dead}"))["up"], false);

    // JSON -> IRC routes to the IRC adapter, which answers (link down) instead of hanging.
    let (mut carol, _) = JsonClient::login(addr, "carol-token-6f1d2c9a8b7e").await;
    let code = carol
        .op(json!({"type": "message", "id": "m1", "to": "im:nick@irc.test", "body": "hi"}))
        .await;
    assert!(
        (400..700).contains(&code),
        "IRC link down must fail the message, got {code}"
    );
    // A destination nobody serves is not relayed.
    let code = carol
        .op(json!({"type": "message", "id": "m2", "to": "im:x@nowhere.test", "body": "hi"}))
        .await;
    assert!((400..500).contains(&code), "unserved domain got {code}");

    let (_, metrics) = gw.admin_get("/metrics").await.expect("/metrics");
    assert!(metrics.contains("adapter=\"json\""), "{metrics}");
    assert!(
        metrics.contains(&format!("irc:127.0.0.1:{dead}")),
        "{metrics}"
    );

    tokio::time::timeout(Duration::from_secs(30), gw.shutdown())
        .await
        .expect("graceful shutdown stops the IRC and JSON adapters in time");
    // The JSON listener is closed.
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "JSON listener still open after shutdown"
    );
}
