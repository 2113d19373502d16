//! Real-socket tests of the JSON adapter with a fake core: TCP and WebSocket sessions
//! log in, exchange messages and presence, survive bad frames; the Python client speaks
//! the protocol too.

use cpim_core::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::{Address, Message, Notify, Operation, Outcome, SubscriptionState, TransId};
use cpim_json::ws;
use cpim_json::{start, JsonConfig, JsonHandle, TokenConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Records what it is given; refuses messages to `ghost`.
#[derive(Default)]
struct FakeCore {
    ops: Mutex<Vec<(String, Operation)>>,
}

impl Ingress for FakeCore {
    fn submit(&self, adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let outcome = match op.destination().and_then(|d| d.user.as_deref()) {
            Some("ghost") => Outcome::failure(op.trans_id(), StatusCode::NOT_FOUND, "Not Found"),
            _ => Outcome::ok(op.trans_id()),
        };
        self.ops.lock().unwrap().push((adapter.to_owned(), op));
        Box::pin(async move { outcome })
    }
}

impl FakeCore {
    fn take(&self) -> Vec<Operation> {
        self.ops.lock().unwrap().drain(..).map(|(_, o)| o).collect()
    }
}

/// One WebSocket frame (RFC 6455 s5.2), masked with `mask` if given.
fn ws_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = Vec::new();
    ws::encode_frame(opcode, payload, mask, &mut f);
    f
}

/// A token that logs in as the one `address`.
fn token(token: &str, address: &str) -> TokenConfig {
    TokenConfig {
        token: token.into(),
        addresses: vec![address.into()],
    }
}

async fn adapter(max_frame: usize) -> (Arc<FakeCore>, JsonHandle) {
    let core = Arc::new(FakeCore::default());
    let cfg = JsonConfig {
        tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
        ws_listen: Some("127.0.0.1:0".parse().unwrap()),
        domains: vec!["corp.example".into()],
        tokens: vec![
            token("t-alice", "im:alice@corp.example"),
            token("t-carol", "im:carol@corp.example"),
        ],
        max_frame_bytes: max_frame,
        deliver_timeout_ms: 3000,
        ..JsonConfig::default()
    };
    let h = start(cfg, core.clone()).await.unwrap();
    (core, h)
}

/// A client over either transport.
enum Client {
    Tcp(BufReader<TcpStream>),
    Ws(TcpStream, Vec<u8>),
}

impl Client {
    async fn tcp(h: &JsonHandle) -> Client {
        Client::Tcp(BufReader::new(
            TcpStream::connect(h.tcp_addr().unwrap()).await.unwrap(),
        ))
    }

    async fn ws(h: &JsonHandle) -> Client {
        let mut s = TcpStream::connect(h.ws_addr().unwrap()).await.unwrap();
        s.write_all(b"GET /cpim HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).await.unwrap();
            buf.push(b[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        Client::Ws(s, Vec::new())
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        match self {
            Client::Tcp(s) => {
                s.get_mut().write_all(bytes).await.unwrap();
                s.get_mut().write_all(b"\n").await.unwrap();
            }
            Client::Ws(s, _) => {
                let f = ws_frame(ws::opcode::TEXT, bytes, Some([0x12, 0x34, 0x56, 0x78]));
                s.write_all(&f).await.unwrap();
            }
        }
    }

    async fn send(&mut self, v: Value) {
        self.send_raw(v.to_string().as_bytes()).await
    }

    async fn recv(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(5), self.recv_inner())
            .await
            .expect("no frame in time")
    }

    async fn recv_inner(&mut self) -> Value {
        match self {
            Client::Tcp(s) => {
                let mut line = String::new();
                assert!(
                    s.read_line(&mut line).await.unwrap() > 0,
                    "connection closed"
                );
                serde_json::from_str(&line).unwrap()
            }
            Client::Ws(s, buf) => loop {
                if buf.len() >= 2 {
                    let (op, len, hdr) = match buf[1] & 0x7f {
                        126 if buf.len() >= 4 => (
                            buf[0] & 0xf,
                            u16::from_be_bytes([buf[2], buf[3]]) as usize,
                            4,
                        ),
                        127 => panic!("huge frame"),
                        126 => (0xff, usize::MAX - 8, 0),
                        n => (buf[0] & 0xf, n as usize, 2),
                    };
                    if op != 0xff && buf.len() >= hdr + len {
                        let payload: Vec<u8> = buf.drain(..hdr + len).skip(hdr).collect();
                        assert_eq!(op, ws::opcode::TEXT, "opcode {op}, payload {payload:?}");
                        return serde_json::from_slice(&payload).unwrap();
                    }
                }
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed");
                buf.extend_from_slice(&chunk[..n]);
            },
        }
    }

    async fn login(&mut self, token: &str) -> Value {
        self.send(json!({"type":"hello","version":1,"token":token}))
            .await;
        let w = self.recv().await;
        assert_eq!(w["type"], "welcome", "{w}");
        w
    }
}

async fn exchange(mut a: Client, mut c: Client, core: &FakeCore, h: &JsonHandle) {
    let w = a.login("t-alice").await;
    assert_eq!(w["addresses"], json!(["im:alice@corp.example"]));
    c.login("t-carol").await;
    // client -> core, with outcome
    a.send(json!({"type":"message","id":"m1","to":"sip:bob@sip.example","body":"hello","headers":{"subject":"hi"}})).await;
    assert_eq!(
        a.recv().await,
        json!({"type":"outcome","id":"m1","code":200,"reason":"OK"})
    );
    a.send(json!({"type":"message","id":"m2","to":"sip:ghost@sip.example","body":"boo"}))
        .await;
    assert_eq!(a.recv().await["code"], 404);
    a.send(
        json!({"type":"publish","id":"p1","basic":"open","note":"at desk","activities":["busy"]}),
    )
    .await;
    assert_eq!(a.recv().await["code"], 200);
    a.send(json!({"type":"subscribe","id":"s1","to":"sip:bob@sip.example","expires":600}))
        .await;
    assert_eq!(a.recv().await["id"], "s1");
    let ops = core.take();
    assert_eq!(ops.len(), 4);
    match &ops[0] {
        Operation::Message(m) => {
            assert_eq!(m.source.to_string(), "im:alice@corp.example");
            assert_eq!(m.body, b"hello");
            assert_eq!(m.subject.as_deref(), Some("hi"));
        }
        o => panic!("{o:?}"),
    }
    match &ops[2] {
        Operation::Publish(p) => {
            assert!(p.presence.is_available());
            assert_eq!(p.presence.notes[0].text, "at desk");
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(&ops[3], Operation::Subscribe(s) if s.duration == 600));

    // core -> client: a message, answered by the client's outcome
    let carol = Address::parse("im:carol@corp.example").unwrap();
    let bob = Address::parse("sip:bob@sip.example").unwrap();
    let msg = Message::new(
        TransId(77),
        bob.clone(),
        carol.clone(),
        "text/plain;charset=UTF-8",
        "hi carol",
    );
    let delivery = h.deliver(Operation::Message(msg));
    let client_side = async {
        let f = c.recv().await;
        assert_eq!(f["type"], "message");
        assert_eq!(f["from"], "sip:bob@sip.example");
        assert_eq!(f["body"], "hi carol");
        c.send(json!({"type":"outcome","id":f["id"],"code":200,"reason":"OK"}))
            .await;
    };
    let (outcome, ()) = tokio::join!(delivery, client_side);
    assert_eq!(outcome, Outcome::ok(TransId(77)));
    // a refusal by the client comes back as its code
    let msg = Message::new(
        TransId(78),
        bob.clone(),
        carol.clone(),
        "text/plain",
        "again",
    );
    let client_side = async {
        let f = c.recv().await;
        c.send(json!({"type":"outcome","id":f["id"],"code":486,"reason":"Busy Here"}))
            .await;
    };
    let (outcome, ()) = tokio::join!(h.deliver(Operation::Message(msg)), client_side);
    assert_eq!(outcome.status.code, StatusCode::BUSY_HERE);
    // a notify reaches the watcher
    let n = Notify {
        trans_id: TransId(79),
        watcher: carol.clone(),
        target: bob.clone(),
        state: SubscriptionState::Active { expires: 300 },
        presence: Some(cpim_json::session::presence_from_parts(
            None,
            Some(cpim_json::frame::BasicFrame::Closed),
            Some("gone".into()),
            &[],
        )),
    };
    let client_side = async {
        let f = c.recv().await;
        assert_eq!(f["type"], "notify");
        assert_eq!(f["state"], "active");
        assert_eq!(f["presence"], json!({"basic":"closed","note":"gone"}));
        c.send(json!({"type":"outcome","id":f["id"],"code":200}))
            .await;
    };
    let (outcome, ()) = tokio::join!(h.deliver(Operation::Notify(n)), client_side);
    assert_eq!(outcome.status.code, StatusCode::OK);
    // nobody logged in as dave
    let dave = Address::parse("im:dave@corp.example").unwrap();
    let msg = Message::new(TransId(80), bob, dave, "text/plain", "x");
    assert_eq!(
        h.deliver(Operation::Message(msg)).await.status.code,
        StatusCode::TEMPORARILY_UNAVAILABLE
    );
}

/// The transport of a test session.
#[derive(Clone, Copy)]
enum Via {
    Tcp,
    Ws,
}

/// [`exchange`] between a session over `a` and one over `c`.
async fn exchange_over(a: Via, c: Via, core: &FakeCore, h: &JsonHandle) {
    let connect = |via| async move {
        match via {
            Via::Tcp => Client::tcp(h).await,
            Via::Ws => Client::ws(h).await,
        }
    };
    let a = connect(a).await;
    let c = connect(c).await;
    exchange(a, c, core, h).await;
}

#[tokio::test]
async fn tcp_sessions_exchange_messages_and_presence() {
    let (core, h) = adapter(4096).await;
    assert!(h.serves(&Address::parse("im:x@corp.example").unwrap()));
    assert!(h.carries_cpim());
    exchange_over(Via::Tcp, Via::Tcp, &core, &h).await;
    h.shutdown().await;
}

#[tokio::test]
async fn websocket_sessions_exchange_messages_and_presence() {
    let (core, h) = adapter(4096).await;
    exchange_over(Via::Ws, Via::Ws, &core, &h).await;
    h.shutdown().await;
}

#[tokio::test]
async fn mixed_transports_talk_to_each_other_through_deliver() {
    let (core, h) = adapter(4096).await;
    exchange_over(Via::Ws, Via::Tcp, &core, &h).await;
}

async fn robustness(mut a: Client, h: &JsonHandle, core: &FakeCore, ws_transport: bool) {
    a.login("t-alice").await;
    let huge = format!(
        r#"{{"type":"message","id":"h","to":"im:b@corp.example","body":"{}"}}"#,
        "x".repeat(10_000)
    );
    let bad: Vec<(Vec<u8>, u16)> = vec![
        (b"{this is not json".to_vec(), 400),
        (br#"{"type":"message","id":"t1","to":"im:b@corp.example","bo"#.to_vec(), 400),
        (br#"{"type":"message","id":"u1","to":"im:b@corp.example","body":"x","priority":5}"#.to_vec(), 400),
        (br#"{"type":"message","id":"f1","from":"im:carol@corp.example","to":"im:b@corp.example","body":"x"}"#.to_vec(), 403),
        (br#"{"type":"message","id":"b1","to":"im:b@corp.example","body":"%%%","encoding":"base64"}"#.to_vec(), 400),
        (br#"{"type":"message","id":"a1","to":"mailto:b@corp.example","body":"x"}"#.to_vec(), 400),
        (huge.into_bytes(), 413),
        (vec![0xff, 0xfe, b'{'], 400),
    ];
    for (i, (frame, code)) in bad.into_iter().enumerate() {
        a.send_raw(&frame).await;
        let e = a.recv().await;
        assert_eq!(e["type"], "error", "case {i}: {e}");
        assert_eq!(e["code"], code, "case {i}: {e}");
        assert!(!e["reason"].as_str().unwrap().is_empty());
        assert!(e.get("fatal").is_none());
        // the same session still works after each bad frame
        a.send(
            json!({"type":"message","id":format!("ok{i}"),"to":"im:b@corp.example","body":"fine"}),
        )
        .await;
        let o = a.recv().await;
        assert_eq!(
            (o["type"].as_str(), o["code"].as_u64()),
            (Some("outcome"), Some(200)),
            "after case {i}: {o}"
        );
    }
    // and a second session works too
    let mut b = if ws_transport {
        Client::ws(h).await
    } else {
        Client::tcp(h).await
    };
    b.login("t-carol").await;
    b.send(json!({"type":"ping","id":"p"})).await;
    assert_eq!(b.recv().await, json!({"type":"pong","id":"p"}));
    b.send(json!({"type":"message","id":"z","to":"im:b@corp.example","body":"fine"}))
        .await;
    assert_eq!(b.recv().await["code"], 200);
    assert_eq!(core.take().len(), 9);
}

#[tokio::test]
async fn tcp_session_survives_bad_frames() {
    let (core, h) = adapter(4096).await;
    let a = Client::tcp(&h).await;
    robustness(a, &h, &core, false).await;
}

#[tokio::test]
async fn websocket_session_survives_bad_frames() {
    let (core, h) = adapter(4096).await;
    let a = Client::ws(&h).await;
    robustness(a, &h, &core, true).await;
}

/// An adapter, and alice logged in to it over WebSocket.
async fn alice_over_ws() -> (Arc<FakeCore>, JsonHandle, Client) {
    let (core, h) = adapter(4096).await;
    let mut c = Client::ws(&h).await;
    c.login("t-alice").await;
    (core, h, c)
}

#[tokio::test]
async fn websocket_protocol_violation_gets_an_error_frame_then_close() {
    let (_core, _h, mut c) = alice_over_ws().await;
    let Client::Ws(s, _) = &mut c else {
        unreachable!()
    };
    let f = ws_frame(ws::opcode::TEXT, b"{}", None); // unmasked: RFC 6455 s5.1
    s.write_all(&f).await.unwrap();
    let e = c.recv().await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["fatal"], true);
    let Client::Ws(s, buf) = &mut c else {
        unreachable!()
    };
    let mut rest = std::mem::take(buf);
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert_eq!(rest.first().map(|b| b & 0xf), Some(ws::opcode::CLOSE));
}

#[tokio::test]
async fn wrong_token_is_refused_and_closed() {
    let (_core, h) = adapter(4096).await;
    let mut c = Client::tcp(&h).await;
    c.send(json!({"type":"hello","version":1,"token":"guess"}))
        .await;
    let e = c.recv().await;
    assert_eq!(
        (e["code"].as_u64(), e["fatal"].as_bool()),
        (Some(403), Some(true))
    );
    let Client::Tcp(s) = &mut c else {
        unreachable!()
    };
    let mut line = String::new();
    assert_eq!(s.read_line(&mut line).await.unwrap(), 0);
}

#[tokio::test]
async fn python_client_speaks_the_protocol() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/python/cpim_json_client.py");
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output();
    if python.map(|o| !o.status.success()).unwrap_or(true) {
        println!("skipped: python3 not found");
        return;
    }
    let (core, h) = adapter(4096).await;
    let addr = h.tcp_addr().unwrap();
    let carol = Address::parse("im:carol@corp.example").unwrap();
    let bob = Address::parse("sip:bob@sip.example").unwrap();
    // The client logs in as carol, sends one message, then answers one delivery.
    let child = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .args([
                "--host",
                &addr.ip().to_string(),
                "--port",
                &addr.port().to_string(),
            ])
            .args([
                "--token",
                "t-carol",
                "--to",
                "sip:bob@sip.example",
                "--text",
                "from python",
                "--wait-one",
            ])
            .output()
            .unwrap()
    });
    // Wait until the message arrived, then deliver one to the client.
    for _ in 0..100 {
        if !core.ops.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ops = core.take();
    assert!(
        matches!(&ops[..], [Operation::Message(m)] if m.body == b"from python" && m.source == carol)
    );
    let msg = Message::new(TransId(9), bob, carol, "text/plain", "to python");
    let outcome = h.deliver(Operation::Message(msg)).await;
    assert_eq!(outcome.status.code, StatusCode::OK);
    let out = child.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("outcome 200"), "{stdout}");
    assert!(
        stdout.contains("message from sip:bob@sip.example: to python"),
        "{stdout}"
    );
}

#[tokio::test]
async fn websocket_close_is_answered_with_close() {
    let (_core, _h, mut c) = alice_over_ws().await;
    let Client::Ws(s, buf) = &mut c else {
        unreachable!()
    };
    let f = ws_frame(
        ws::opcode::CLOSE,
        &1000u16.to_be_bytes(),
        Some([9, 8, 7, 6]),
    );
    s.write_all(&f).await.unwrap();
    let mut rest = std::mem::take(buf);
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert_eq!(rest, vec![0x88, 0x02, 0x03, 0xE8]);
}

#[tokio::test]
async fn rate_limit_is_per_session() {
    let core = Arc::new(FakeCore::default());
    let cfg = JsonConfig {
        tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
        tokens: vec![
            token("a", "im:alice@corp.example"),
            token("c", "im:carol@corp.example"),
        ],
        rate_per_sec: 0.001,
        rate_burst: 3,
        ..JsonConfig::default()
    };
    let h = start(cfg, core.clone()).await.unwrap();
    let mut a = Client::tcp(&h).await;
    a.login("a").await;
    let mut codes = Vec::new();
    for i in 0..4 {
        a.send(json!({"type":"publish","id":format!("p{i}"),"basic":"open"}))
            .await;
        let f = a.recv().await;
        codes.push((
            f["type"].as_str().unwrap().to_owned(),
            f["code"].as_u64().unwrap(),
        ));
    }
    assert_eq!(codes[3], ("error".to_owned(), 429), "{codes:?}");
    assert!(
        codes[..3].iter().all(|(t, c)| t == "outcome" && *c == 200),
        "{codes:?}"
    );
    let mut c = Client::tcp(&h).await;
    c.login("c").await;
    c.send(json!({"type":"publish","id":"q","basic":"open"}))
        .await;
    assert_eq!(c.recv().await["code"], 200);
}

/// An adapter with a frame timeout of 1 s, and alice logged in to it over TCP.
async fn alice_with_frame_timeout() -> (Arc<FakeCore>, JsonHandle, Client) {
    let core = Arc::new(FakeCore::default());
    let h = start(
        JsonConfig {
            tcp_listen: Some("127.0.0.1:0".parse().unwrap()),
            tokens: vec![token("t-alice", "im:alice@corp.example")],
            frame_timeout_ms: 1000,
            ..JsonConfig::default()
        },
        core.clone(),
    )
    .await
    .unwrap();
    let mut c = Client::tcp(&h).await;
    c.login("t-alice").await;
    (core, h, c)
}

/// After login, a frame trickled one byte every 100 ms (each byte used to keep the
/// connection alive) is cut `frame_timeout_ms` after its first byte, unfinished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_frame_is_cut_at_the_frame_deadline() {
    let (core, _h, mut c) = alice_with_frame_timeout().await;
    let Client::Tcp(s) = &mut c else {
        unreachable!()
    };
    let frame = br#"{"type":"message","id":"m1","to":"sip:bob@sip.example","body":"a slow frame that never ends in time"}"#;
    let mut sent = 0;
    let mut cut = false;
    let mut b = [0u8; 512];
    for byte in frame {
        if s.get_mut().write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        sent += 1;
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            Ok(Ok(n)) => panic!("unexpected: {:?}", String::from_utf8_lossy(&b[..n])),
            Err(_) => {}
        }
    }
    assert!(
        cut && sent < frame.len(),
        "the trickled frame was read to its end ({sent} bytes)"
    );
    assert!(core.take().is_empty());
}

/// A busy client whose every write ends in the middle of a frame is not cut: the frame
/// clock restarts at each completed frame (25 frames over 2.5 s, frame timeout 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_stream_of_frames_is_not_cut_by_the_frame_deadline() {
    let (core, _h, mut c) = alice_with_frame_timeout().await;
    let Client::Tcp(s) = &mut c else {
        unreachable!()
    };
    let frame = |i: usize| {
        format!(r#"{{"type":"message","id":"m{i}","to":"sip:bob@sip.example","body":"b"}}"#) + "\n"
    };
    let mut carry = String::new();
    for i in 0..25 {
        let f = frame(i);
        let (head, tail) = f.split_at(f.len() / 2);
        // the end of the previous frame and the start of this one
        let chunk = format!("{carry}{head}");
        carry = tail.to_string();
        s.get_mut().write_all(chunk.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.get_mut().write_all(carry.as_bytes()).await.unwrap();
    let mut seen = 0;
    for _ in 0..50 {
        seen += core.take().len();
        if seen == 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 25, "every frame of the busy stream was taken");
}
