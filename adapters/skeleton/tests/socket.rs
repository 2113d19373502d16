//! The skeleton over a real TCP socket with a fake core.

use cpim_core::StatusCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::model::{Message, Operation, Outcome, TransId};
use cpim_core::Address;
use cpim_skeleton::{start, SkelConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Records what is submitted; a message to `nobody` gets 404, anything else 200.
#[derive(Default)]
struct FakeCore {
    seen: Mutex<Vec<(String, Operation)>>,
}

impl Ingress for FakeCore {
    fn submit(&self, adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let tid = op.trans_id();
        let refuse = op.destination().and_then(|d| d.user.as_deref()) == Some("nobody");
        self.seen.lock().unwrap().push((adapter.to_owned(), op));
        Box::pin(async move {
            if refuse {
                Outcome::failure(tid, StatusCode::NOT_FOUND, "no such user")
            } else {
                Outcome::ok(tid)
            }
        })
    }
}

struct Client {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Client {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Client {
            r: BufReader::new(r),
            w,
        }
    }
    async fn send(&mut self, line: &str) {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
    async fn line(&mut self) -> String {
        let mut s = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut s))
            .await
            .expect("no line within 10 s")
            .unwrap();
        assert!(n > 0, "connection closed");
        s.trim_end().to_owned()
    }
}

fn config() -> SkelConfig {
    let text = r#"
        listen = "127.0.0.1:0"
        domain = "skel.test"
        deliver_timeout_ms = 500
        [accounts]
        alice = "pw"
    "#;
    toml::from_str(text).unwrap()
}

#[test]
fn config_refuses_unknown_keys() {
    let e =
        toml::from_str::<SkelConfig>("listen = \"127.0.0.1:0\"\nlisten_port = 1\n").unwrap_err();
    assert!(e.to_string().contains("listen_port"), "{e}");
    assert_eq!(
        toml::from_str::<SkelConfig>("").unwrap(),
        SkelConfig::default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_core_talk_through_the_skeleton() {
    let core = Arc::new(FakeCore::default());
    let handle = start(config(), core.clone()).await.unwrap();
    assert!(handle.serves(&Address::parse("im:alice@skel.test").unwrap()));
    assert!(handle.links()[0].up);
    let alice = Address::parse("im:alice@skel.test").unwrap();
    let bob = Address::parse("sip:bob@sip.test").unwrap();
    let msg = |n| {
        Operation::Message(Message::new(
            TransId(n),
            bob.clone(),
            alice.clone(),
            "text/plain;charset=UTF-8",
            "hi alice",
        ))
    };

    // Not logged in yet: 480 at once.
    assert_eq!(
        handle.deliver(msg(1)).await.status.code,
        StatusCode::TEMPORARILY_UNAVAILABLE
    );

    let mut c = Client::connect(handle.local_addr()).await;
    c.send("MSG 0 bob@sip.test too early").await;
    assert_eq!(c.line().await, "ERR 0 403 LOGIN first");
    c.send("LOGIN 1 alice pw").await;
    assert_eq!(c.line().await, "OK 1");

    // MSG -> Operation::Message; the answer is the core's outcome.
    c.send("MSG 2 sip:bob@sip.test hello bob").await;
    assert_eq!(c.line().await, "OK 2");
    c.send("MSG 3 nobody@sip.test hello?").await;
    assert_eq!(c.line().await, "ERR 3 404 no such user");
    {
        let seen = core.seen.lock().unwrap();
        let (name, Operation::Message(m)) = &seen[0] else {
            panic!("{seen:?}")
        };
        assert_eq!(name, "skel");
        assert_eq!(
            (
                m.source.to_string().as_str(),
                m.destination.to_string().as_str()
            ),
            ("im:alice@skel.test", "sip:bob@sip.test")
        );
        assert_eq!(m.body, b"hello bob");
    }

    // PRES -> Operation::Publish.
    c.send("PRES 4 away back soon").await;
    assert_eq!(c.line().await, "OK 4");
    assert!(
        matches!(&core.seen.lock().unwrap()[2].1, Operation::Publish(p) if p.presentity == alice && p.presence.notes[0].text == "back soon")
    );

    // Malformed and oversize lines are answered; the session goes on.
    c.send("PRES 5 dancing").await;
    assert!(c.line().await.starts_with("ERR 5 400 state must be"));
    c.send(&"x".repeat(5000)).await;
    assert_eq!(c.line().await, "ERR - 413 line longer than 4096 bytes");

    // deliver reaches the client and resolves with its answer, or 408 without one.
    let h = &handle;
    let (o, ()) = tokio::join!(h.deliver(msg(10)), async {
        assert_eq!(c.line().await, "MSG s1 sip:bob@sip.test hi alice");
        c.send("OK s1").await;
    });
    assert_eq!(o, Outcome::ok(TransId(10)));
    let (o, ()) = tokio::join!(h.deliver(msg(11)), async {
        assert_eq!(c.line().await, "MSG s2 sip:bob@sip.test hi alice");
        c.send("ERR s2 486 busy").await;
    });
    assert_eq!(
        o,
        Outcome::failure(TransId(11), StatusCode::BUSY_HERE, "busy")
    );
    let (o, ()) = tokio::join!(h.deliver(msg(12)), async {
        assert_eq!(c.line().await, "MSG s3 sip:bob@sip.test hi alice");
    });
    assert_eq!(o.status.code, StatusCode::REQUEST_TIMEOUT);

    // Gone: 480 again.
    drop(c);
    let mut code = StatusCode::new(0);
    for _ in 0..100 {
        code = handle.deliver(msg(13)).await.status.code;
        if code == 480 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(code, 480);

    handle.shutdown().await;
    assert!(!handle.links()[0].up);
    assert!(
        TcpStream::connect(handle.local_addr()).await.is_err(),
        "listener closed"
    );
}
