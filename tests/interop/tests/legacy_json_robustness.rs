//! Robustness of the JSON protocol through the real gateway (adapters/json/PROTOCOL.md,
//! "error"): malformed, truncated, oversized frames, unknown members, unknown types, invalid
//! UTF-8 and forged senders are each answered with an `error` frame with a code and a reason,
//! the session goes on, and the gateway keeps serving other sessions (a message between two
//! sessions still goes through the router with its outcome).
//!
//! Needs no external peer: it runs in every `cargo test`, and under `scripts/test`.

mod common;

use std::time::Duration;

use common::legacy::JsonClient;
use cpim_gateway::config::Config;
use cpim_testkit::TestGateway;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const MAX_FRAME: usize = 4096;

fn config() -> Config {
    let text = format!(
        "adapters = [\"json\"]\n[json]\ntcp_listen = \"127.0.0.1:0\"\ndomains = [\"json.test\"]\n\
         max_frame_bytes = {MAX_FRAME}\nrate_per_sec = 1000.0\nrate_burst = 1000\n\
         [[json.tokens]]\ntoken = \"carol-token-6f1d2c9a8b7e\"\naddresses = [\"im:carol@json.test\"]\n\
         [[json.tokens]]\ntoken = \"dave-token-3a5c7e9b1d2f\"\naddresses = [\"im:dave@json.test\"]\n\
         [queue]\nenabled = false\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    );
    Config::from_str_with_env(&text, "robustness.toml", Vec::new()).expect("config")
}

/// Sends `raw` (a whole line, newline included) and returns the error frame it earned.
async fn refused(c: &mut JsonClient, raw: &[u8]) -> Value {
    c.send_raw(raw).await;
    let e = c.await_frame(|f| f["type"] == "error").await;
    let reason = e["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty(), "error frame without a reason: {e}");
    assert_ne!(e["fatal"], true, "not fatal: {e}");
    e
}

/// The session still works: ping/pong.
async fn alive(c: &mut JsonClient, id: &str) {
    c.send(&json!({"type": "ping", "id": id})).await;
    c.await_frame(|f| f["type"] == "pong" && f["id"] == id)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_error_frames_and_the_gateway_keeps_serving() {
    let gw = TestGateway::start(config()).await.expect("gateway starts");
    let addr = gw.gateway().json_tcp_addr().expect("JSON listener");
    let (mut carol, _) = JsonClient::login(addr, "carol-token-6f1d2c9a8b7e").await;
    let (mut dave, _) = JsonClient::login(addr, "dave-token-3a5c7e9b1d2f").await;

    // Malformed JSON.
    let e = refused(&mut carol, b"this is not json\n").await;
    assert_eq!(e["code"], 400, "{e}");

    // Truncated JSON (the object never closes before the newline).
    let e = refused(
        &mut carol,
        b"{\"type\":\"message\",\"id\":\"t1\",\"to\":\"im:dave@json.test\",\"body\":\"hel\n",
    )
    .await;
    assert_eq!(e["code"], 400, "{e}");

    // An unknown member: refused, naming it.
    let e = refused(
        &mut carol,
        b"{\"type\":\"message\",\"id\":\"u1\",\"to\":\"im:dave@json.test\",\"body\":\"x\",\"colour\":\"red\"}\n",
    )
    .await;
    assert_eq!(e["code"], 400, "{e}");
    assert!(e["reason"].as_str().unwrap().contains("colour"), "{e}");

    // An unknown frame type.
    let e = refused(&mut carol, b"{\"type\":\"teleport\",\"id\":\"k1\"}\n").await;
    assert_eq!(e["code"], 400, "{e}");

    // Invalid UTF-8.
    let e = refused(&mut carol, b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}\n").await;
    assert_eq!(e["code"], 400, "{e}");

    // A frame far above max_frame_bytes: skipped with 413, and the next frame is read.
    let mut huge =
        b"{\"type\":\"message\",\"id\":\"h1\",\"to\":\"im:dave@json.test\",\"body\":\"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', MAX_FRAME * 16));
    huge.extend_from_slice(b"\"}\n");
    let e = refused(&mut carol, &huge).await;
    assert_eq!(e["code"], 413, "{e}");

    // A forged sender (another token's address).
    let e = refused(
        &mut carol,
        b"{\"type\":\"message\",\"id\":\"f1\",\"from\":\"im:dave@json.test\",\"to\":\"im:dave@json.test\",\"body\":\"x\"}\n",
    )
    .await;
    assert_eq!(e["code"], 403, "{e}");
    assert_eq!(e["id"], "f1", "{e}");

    // None of that was delivered to dave.
    alive(&mut carol, "k2").await;
    alive(&mut dave, "k3").await;
    assert!(
        !dave.pending_contains(|f| f["type"] == "message"),
        "a refused frame reached the other session"
    );

    // A connection cut in the middle of a frame, and one that never logs in.
    {
        let mut cut = tokio::net::TcpStream::connect(addr).await.expect("connect");
        cut.write_all(b"{\"type\":\"hello\",\"version\":1,\"tok")
            .await
            .expect("write");
        cut.shutdown().await.expect("shutdown");
    }
    let (mut anon, _) = (JsonClient::connect(addr).await, ());
    let e = refused(
        &mut anon,
        b"{\"type\":\"message\",\"id\":\"a1\",\"to\":\"im:dave@json.test\",\"body\":\"x\"}\n",
    )
    .await;
    assert_eq!(e["code"], 401, "{e}");

    // The sessions still work end to end through the router.
    // (dave answers the delivered message while carol waits for her outcome.)
    carol
        .send(&json!({"type": "message", "id": "ok1", "to": "im:dave@json.test", "body": "still here"}))
        .await;
    let m = dave
        .await_frame(|f| f["type"] == "message" && f["body"] == "still here")
        .await;
    assert_eq!(m["from"], "im:carol@json.test", "{m}");
    let out = carol
        .await_frame(|f| f["type"] == "outcome" && f["id"] == "ok1")
        .await;
    assert_eq!(
        out["code"], 200,
        "message between sessions after the bad frames: {out}"
    );

    // And a new session can log in.
    let (mut late, w) = JsonClient::login(addr, "dave-token-3a5c7e9b1d2f").await;
    assert_eq!(w["addresses"], json!(["im:dave@json.test"]));
    alive(&mut late, "k4").await;

    tokio::time::timeout(Duration::from_secs(30), gw.shutdown())
        .await
        .expect("gateway shuts down in time");
}
