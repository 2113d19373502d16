//! The IRC adapter against a real ngircd (RFC 2812 client protocol), with two raw IRC
//! clients written here and a fake core. Uses `CPIM_PEER_NGIRCD` (host:port) when the
//! harness exported it; otherwise starts ngircd from a temporary folder; skips when
//! ngircd is not installed (fails under `CI=true`).

use cpim_core::StatusCode;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress};
use cpim_core::model::MessageKind;
use cpim_core::presence::Activity;
use cpim_core::{Address, Message, Operation, Outcome, Subscribe, TransId};
use cpim_irc::{start, IrcConfig, IrcHandle};
use cpim_testkit::peer_env::{self, Peer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Ngircd {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server to use, and the guard of our own instance if we started one.
fn server(test: &str) -> Option<(String, Option<Ngircd>)> {
    if let Some(addr) = peer_env::var("CPIM_PEER_NGIRCD") {
        peer_env::record(Peer::Ngircd);
        return Some((addr, None));
    }
    own_server(test, false).map(|(a, g, _)| (a, Some(g)))
}

/// Starts ngircd from a temporary folder; with `tls`, on a TLS port with a fresh
/// self-signed certificate for `localhost` (returned as PEM).
fn own_server(test: &str, tls: bool) -> Option<(String, Ngircd, String)> {
    own_server_on(test, tls, None)
}

fn own_server_on(test: &str, tls: bool, port: Option<u16>) -> Option<(String, Ngircd, String)> {
    let bin = ["/usr/sbin/ngircd", "/usr/bin/ngircd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let bin = peer_env::need(
        &[Peer::Ngircd],
        bin,
        &format!("{test}: CPIM_PEER_NGIRCD is not set and ngircd is not installed"),
    )?;
    let port = port.unwrap_or_else(|| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    });
    let dir = std::env::temp_dir().join(format!("cpim-irc-{test}-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cert_pem = String::new();
    let (ports, ssl) = if tls {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        cert_pem = cert.cert.pem();
        std::fs::write(dir.join("cert.pem"), &cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        let ssl = format!(
            "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {port}\n",
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        );
        (String::new(), ssl)
    } else {
        (format!("Ports = {port}\n"), String::new())
    };
    let conf = dir.join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\nName = irc.test\nInfo = cpim test\nListen = 127.0.0.1\n{ports}MotdPhrase = test\n\
             [Limits]\nMaxNickLength = 30\nMaxConnectionsIP = 0\nPingTimeout = 120\nPongTimeout = 20\n\
             [Options]\nPAM = no\nIdent = no\nDNS = no\n{ssl}"
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .args(["-n", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Ngircd { child, dir };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((format!("127.0.0.1:{port}"), guard, cert_pem));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("ngircd did not start on port {port}");
}

/// Names on a shared server must not collide with another run of these tests: every
/// nickname and channel below gets a per-process tag (lower-case letters).
fn u(s: &str) -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| {
        let mut n = std::process::id() as usize;
        (0..2)
            .map(|_| {
                let c = (b'a' + (n % 26) as u8) as char;
                n /= 26;
                c
            })
            .collect()
    });
    let mut out = s.to_owned();
    for name in [
        "ann1", "bob2", "dan3", "eve4", "fay8", "alice", "amy", "zed", "gwbot1", "gwbot2",
        "gwbot3", "gwbot4", "gwbot5", "gwbot6", "gwbot7", "gwbot8", "cpimm", "cpimr", "cpimp",
        "cpimc", "cpimt", "cpimx", "cpimi",
    ] {
        // Idempotent: a name already tagged stays as it is.
        let tagged = format!("{name}{tag}");
        out = out.replace(&tagged, name).replace(name, &tagged);
    }
    out
}

/// Records operations; refuses messages to `ghost`.
struct FakeCore(mpsc::UnboundedSender<Operation>);

impl Ingress for FakeCore {
    fn submit(&self, _adapter: &str, op: Operation) -> BoxFuture<'static, Outcome> {
        let outcome = match op.destination().and_then(|d| d.user.as_deref()) {
            Some("ghost") => Outcome::failure(op.trans_id(), StatusCode::NOT_FOUND, "Not Found"),
            _ => Outcome::ok(op.trans_id()),
        };
        let _ = self.0.send(op);
        Box::pin(async move { outcome })
    }
}

async fn next_op(rx: &mut mpsc::UnboundedReceiver<Operation>, what: &str) -> Operation {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no operation in time: {what}"))
        .unwrap()
}

/// A raw IRC client.
struct Client {
    nick: String,
    io: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: &str, nick: &str) -> Client {
        let nick = &u(nick);
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = Client {
            nick: nick.to_owned(),
            io: BufReader::new(s),
        };
        c.send(&format!("NICK {nick}")).await;
        c.send(&format!("USER {nick} 0 * :test user")).await;
        c.expect(|l| l.contains(" 001 ")).await;
        c
    }

    async fn send(&mut self, line: &str) {
        let line = u(line);
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads lines (answering PING) until one matches.
    async fn expect(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let nick = self.nick.clone();
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let mut line = String::new();
                assert!(
                    self.io.read_line(&mut line).await.unwrap() > 0,
                    "{nick}: connection closed"
                );
                let line = line.trim_end().to_owned();
                if let Some(p) = line.strip_prefix("PING ") {
                    self.send(&format!("PONG {p}")).await;
                    continue;
                }
                if pred(&line) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{nick}: expected line did not come"))
    }
}

fn config(server: &str, bot: &str, channel: &str) -> IrcConfig {
    IrcConfig {
        server: server.to_owned(),
        domain: "irc.example".into(),
        bot_nick: u(bot),
        nick_len: 9,
        channels: vec![u(channel)],
        presence_poll_secs: 1,
        reconnect_min_ms: 100,
        ..IrcConfig::default()
    }
}

async fn started(cfg: IrcConfig) -> (IrcHandle, mpsc::UnboundedReceiver<Operation>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let h = start(cfg, Arc::new(FakeCore(tx))).await.unwrap();
    for _ in 0..200 {
        if h.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.is_connected(), "bot did not register: {:?}", h.links());
    (h, rx)
}

fn addr(s: &str) -> Address {
    Address::parse(&u(s)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_flow_both_ways_through_ngircd() {
    let Some((server, _guard)) = server("messages") else {
        return;
    };
    let mut ann = Client::connect(&server, "ann1").await;
    ann.send("JOIN #cpimm").await;
    ann.expect(|l| l.contains(" 366 ")).await;
    let (h, mut rx) = started(config(&server, "gwbot1", "#cpimm")).await;
    assert!(h.serves(&addr("im:ann1@irc.example")));
    // The bot joined the channel before anyone talks there.
    ann.expect(|l| l.starts_with(&u(":gwbot1!")) && l.contains("JOIN"))
        .await;

    // IRC user -> CPIM address through the bot.
    ann.send("PRIVMSG gwbot1 :alice@sip.example hello from irc")
        .await;
    match next_op(&mut rx, "relayed message").await {
        Operation::Message(m) => {
            assert_eq!(m.source, addr("im:ann1@irc.example"));
            assert_eq!(m.destination, addr("im:alice@sip.example"));
            assert_eq!(m.body, b"hello from irc");
            assert_eq!(m.kind, MessageKind::Chat);
        }
        o => panic!("{o:?}"),
    }
    // A refused one is reported back with a NOTICE.
    // A NOTICE is never answered (RFC 2812 s3.3.2), not even with the usage hint a
    // malformed PRIVMSG to the bot gets: the next NOTICE ann sees is the 404 below.
    ann.send("NOTICE gwbot1 :not an address").await;
    ann.send("PRIVMSG gwbot1 :ghost@sip.example anyone?").await;
    next_op(&mut rx, "message to ghost").await;
    let n = ann.expect(|l| l.contains(&u("NOTICE ann1"))).await;
    assert!(n.contains("404"), "{n}");
    ann.send("PRIVMSG gwbot1 :not an address").await;
    let n = ann.expect(|l| l.contains(&u("NOTICE ann1"))).await;
    assert!(n.contains("usage"), "{n}");

    // CPIM -> IRC user: through a puppet named after the sender.
    let m = Message::new(
        TransId(1),
        addr("sip:alice@sip.example"),
        addr("im:ann1@irc.example"),
        "text/plain",
        "hi ann",
    );
    let outcome = h.deliver(Operation::Message(m)).await;
    assert_eq!(outcome, Outcome::ok(TransId(1)));
    let line = ann.expect(|l| l.contains(&u("PRIVMSG ann1"))).await;
    assert!(line.starts_with(&u(":alice!")), "{line}");
    assert!(line.ends_with(":hi ann"), "{line}");

    // The IRC user answers the puppet: the message goes to the puppet's owner.
    ann.send("PRIVMSG alice :hi there").await;
    match next_op(&mut rx, "reply to puppet").await {
        Operation::Message(m) => {
            assert_eq!(m.source, addr("im:ann1@irc.example"));
            assert_eq!(m.destination, addr("sip:alice@sip.example"));
            assert_eq!(m.body, b"hi there");
        }
        o => panic!("{o:?}"),
    }

    // No such nick: 401 before the barrier PONG -> 404.
    let m = Message::new(
        TransId(2),
        addr("sip:alice@sip.example"),
        addr("im:nobody9@irc.example"),
        "text/plain",
        "hello?",
    );
    let outcome = h.deliver(Operation::Message(m)).await;
    assert_eq!(outcome.status.code, StatusCode::NOT_FOUND, "{outcome:?}");

    // Not text: 415 without touching IRC.
    let m = Message::new(
        TransId(3),
        addr("sip:alice@sip.example"),
        addr("im:ann1@irc.example"),
        "image/png",
        vec![0u8, 1],
    );
    assert_eq!(
        h.deliver(Operation::Message(m)).await.status.code,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );

    // Channel traffic is a groupchat message to the channel address; NOTICE is headline.
    ann.send("PRIVMSG #cpimm :hello channel").await;
    match next_op(&mut rx, "channel message").await {
        Operation::Message(m) => {
            assert_eq!(m.kind, MessageKind::Groupchat);
            assert_eq!(m.destination.user.as_deref(), Some(u("#cpimm").as_str()));
            assert_eq!(m.body, b"hello channel");
        }
        o => panic!("{o:?}"),
    }
    ann.send("NOTICE #cpimm :automated notice").await;
    match next_op(&mut rx, "channel notice").await {
        Operation::Message(m) => assert_eq!(m.kind, MessageKind::Headline),
        o => panic!("{o:?}"),
    }
    // A message to the channel from CPIM (the puppet joins it first).
    let mut m = Message::new(
        TransId(4),
        addr("sip:alice@sip.example"),
        addr("im:%23cpimm@irc.example"),
        "text/plain",
        "hi all",
    );
    m.kind = MessageKind::Groupchat;
    assert_eq!(
        h.deliver(Operation::Message(m)).await.status.code,
        StatusCode::OK
    );
    let line = ann.expect(|l| l.contains(&u("PRIVMSG #cpimm"))).await;
    assert!(
        line.starts_with(&u(":alice!")) && line.ends_with(":hi all"),
        "{line}"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_bot_is_used_when_no_puppet_is_allowed() {
    let Some((server, _guard)) = server("relay") else {
        return;
    };
    let mut bob = Client::connect(&server, "bob2").await;
    let cfg = IrcConfig {
        max_puppets: 0,
        ..config(&server, "gwbot2", "#cpimr")
    };
    let (h, _rx) = started(cfg).await;
    let m = Message::new(
        TransId(1),
        addr("xmpp:carol@xmpp.example"),
        addr("im:bob2@irc.example"),
        "text/plain",
        "via bot",
    );
    assert_eq!(
        h.deliver(Operation::Message(m)).await.status.code,
        StatusCode::OK
    );
    let line = bob.expect(|l| l.contains(&u("PRIVMSG bob2"))).await;
    assert!(line.starts_with(&u(":gwbot2!")), "{line}");
    assert!(line.ends_with(":<carol@xmpp.example> via bot"), "{line}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_and_quit_become_notify_operations() {
    let Some((server, _guard)) = server("presence") else {
        return;
    };
    let mut dan = Client::connect(&server, "dan3").await;
    dan.send("JOIN #cpimp").await;
    dan.expect(|l| l.contains(" 366 ")).await;
    let (h, mut rx) = started(config(&server, "gwbot3", "#cpimp")).await;
    let watcher = addr("sip:watcher@sip.example");
    let sub = Subscribe {
        trans_id: TransId(1),
        watcher: watcher.clone(),
        target: addr("im:dan3@irc.example"),
        duration: 3600,
    };
    assert_eq!(
        h.deliver(Operation::Subscribe(sub)).await.status.code,
        StatusCode::OK
    );
    let presence = |op: Operation| match op {
        Operation::Notify(n) => {
            assert_eq!(n.watcher, watcher);
            assert_eq!(n.target.user.as_deref(), Some(u("dan3").as_str()));
            n.presence.unwrap()
        }
        o => panic!("{o:?}"),
    };
    let p = presence(next_op(&mut rx, "initial notify").await);
    assert!(p.is_available());
    assert!(p.person.is_none());

    dan.send("AWAY :at lunch").await;
    let p = presence(next_op(&mut rx, "away notify").await);
    assert!(p.is_available());
    assert_eq!(p.person.unwrap().activities, vec![Activity::Away]);
    assert_eq!(p.notes[0].text, "at lunch");

    dan.send("AWAY").await;
    let p = presence(next_op(&mut rx, "back notify").await);
    assert!(p.person.is_none());

    dan.send("QUIT :gone home").await;
    let p = presence(next_op(&mut rx, "quit notify").await);
    assert!(!p.is_available());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nick_collision_gets_an_alternative_nick() {
    let Some((server, _guard)) = server("collision") else {
        return;
    };
    let _squatter = Client::connect(&server, "gwbot4").await;
    let cfg = IrcConfig {
        max_puppets: 0,
        ..config(&server, "gwbot4", "#cpimc")
    };
    let (h, _rx) = started(cfg).await;
    let mut eve = Client::connect(&server, "eve4").await;
    let m = Message::new(
        TransId(1),
        addr("sip:x@sip.example"),
        addr("im:eve4@irc.example"),
        "text/plain",
        "x",
    );
    assert_eq!(
        h.deliver(Operation::Message(m)).await.status.code,
        StatusCode::OK
    );
    let line = eve.expect(|l| l.contains(&u("PRIVMSG eve4"))).await;
    assert!(line.starts_with(&u(":gwbot4_!")), "{line}");
    h.shutdown().await;
}

#[tokio::test]
async fn unreachable_server_reports_link_down_not_a_hang() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (tx, _rx) = mpsc::unbounded_channel();
    let cfg = IrcConfig {
        server: format!("127.0.0.1:{port}"),
        max_puppets: 0,
        reconnect_min_ms: 50,
        reconnect_max_ms: 200,
        ..IrcConfig::default()
    };
    let h = start(cfg, Arc::new(FakeCore(tx))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let links = h.links();
    assert!(!links[0].up);
    assert!(
        links[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("connect"),
        "{links:?}"
    );
    let m = Message::new(
        TransId(1),
        addr("sip:x@sip.example"),
        addr("im:eve@irc.example"),
        "text/plain",
        "x",
    );
    assert_eq!(
        h.deliver(Operation::Message(m)).await.status.code,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connection_to_ngircd_verifies_the_server_and_works() {
    let Some((server, guard, cert_pem)) = own_server("tls", true) else {
        return;
    };
    let ca = guard.dir.join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    let cfg = IrcConfig {
        tls: true,
        tls_ca_file: Some(ca),
        tls_server_name: Some("localhost".into()),
        max_puppets: 0,
        ..config(&server, "gwbot5", "#cpimt")
    };
    let (h, _rx) = started(cfg).await;
    assert!(h.is_connected());
    h.shutdown().await;
    // A certificate nobody vouches for is refused: the link never comes up.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let wrong = guard.dir.join("wrong.pem");
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let cfg = IrcConfig {
        tls: true,
        tls_ca_file: Some(wrong),
        tls_server_name: Some("localhost".into()),
        ..config(&server, "gwbot6", "#cpimt")
    };
    let h = start(cfg, Arc::new(FakeCore(tx))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let links = h.links();
    assert!(!links[0].up, "{links:?}");
    assert!(links[0].last_error.is_some(), "{links:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bot_reconnects_after_the_server_restarts() {
    let Some((server, guard, _)) = own_server("reconnect", false) else {
        return;
    };
    let port: u16 = server.rsplit_once(':').unwrap().1.parse().unwrap();
    let cfg = IrcConfig {
        reconnect_min_ms: 100,
        reconnect_max_ms: 400,
        ..config(&server, "gwbot7", "#cpimx")
    };
    let (h, _rx) = started(cfg).await;
    drop(guard); // the server goes away
    for _ in 0..100 {
        if !h.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!h.is_connected(), "link still reported up: {:?}", h.links());
    let (_, _guard2, _) = own_server_on("reconnect2", false, Some(port)).unwrap();
    for _ in 0..200 {
        if h.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.is_connected(), "bot did not come back: {:?}", h.links());
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_puppets_quit_and_the_cap_falls_back_to_the_bot() {
    let Some((server, _guard)) = server("idle") else {
        return;
    };
    let mut fay = Client::connect(&server, "fay8").await;
    let cfg = IrcConfig {
        max_puppets: 1,
        puppet_idle_secs: 3,
        ..config(&server, "gwbot8", "#cpimi")
    };
    let (h, _rx) = started(cfg).await;
    let send = |from: &str, n: u64| {
        Message::new(
            TransId(n),
            addr(from),
            addr("im:fay8@irc.example"),
            "text/plain",
            format!("m{n}"),
        )
    };
    assert_eq!(
        // A sender of its own: tests share the server and run in parallel, and
        // another test's puppet for alice would make this one's nick collide.
        h.deliver(Operation::Message(send("sip:amy@sip.example", 1)))
            .await
            .status
            .code,
        StatusCode::OK
    );
    let line = fay
        .expect(|l| l.contains("PRIVMSG") && l.ends_with(":m1"))
        .await;
    assert!(line.starts_with(&u(":amy!")), "{line}");
    // The cap is one puppet: a second sender goes through the bot.
    assert_eq!(
        h.deliver(Operation::Message(send("sip:zed@sip.example", 2)))
            .await
            .status
            .code,
        StatusCode::OK
    );
    let line = fay
        .expect(|l| l.contains("PRIVMSG") && l.ends_with(&u(":<zed@sip.example> m2")))
        .await;
    assert!(line.starts_with(&u(":gwbot8!")), "{line}");
    assert_eq!(h.links().len(), 2);
    // Idle: the puppet quits and its slot is free again.
    for _ in 0..200 {
        if h.links().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(h.links().len(), 1, "{:?}", h.links());
    assert_eq!(
        h.deliver(Operation::Message(send("sip:zed@sip.example", 3)))
            .await
            .status
            .code,
        StatusCode::OK
    );
    let line = fay
        .expect(|l| l.contains("PRIVMSG") && l.ends_with(":m3"))
        .await;
    assert!(line.starts_with(&u(":zed!")), "{line}");
    h.shutdown().await;
}
