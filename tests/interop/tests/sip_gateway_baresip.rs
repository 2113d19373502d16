//! Two real SIP user agents (baresip, headless, each with its own config folder) on the
//! real gateway (`Gateway::start`, SIP domain `sip.test`, MD5 digest because baresip 1.0
//! gives up on SHA-256 challenges):
//!
//! - both register with digest (RFC 3261 s10, s22): the gateway's `/registrations` lists
//!   alice and bob;
//! - alice -> gateway -> bob and back (RFC 3428): each text shows up on the receiver's
//!   console (baresip's `cons` module) and the gateway counts the MESSAGEs it took in as
//!   2xx, with no "message failed" in the sender's log;
//! - bob watches alice through the gateway's presence (RFC 3856: baresip's contact with
//!   `presence=p2p` SUBSCRIBEs through its outbound proxy, the gateway): alice's
//!   start-up publication, then `presence_offline` / `presence_online` /
//!   `presence_offline` (RFC 3903 PUBLISH) change what bob's `contacts` command shows for
//!   Alice each time.
//!
//! Driven over baresip's ctrl_tcp port (netstring JSON). Skipped without
//! `CPIM_PEERS=1` (a failure under `CI=true`).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A baresip process, killed when dropped.
struct Ua {
    child: Child,
    dir: PathBuf,
    ctrl: u16,
    /// What its console module printed so far.
    cons: Arc<Mutex<String>>,
}

impl Drop for Ua {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A SIP port for baresip: it binds UDP and TCP on it and TLS on the next one.
fn free_sip_port() -> u16 {
    for _ in 0..100 {
        let p = common::sip::free_port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no free SIP port pair for baresip");
}

impl Ua {
    fn start(
        baresip: &Path,
        dir: &Path,
        aor: &str,
        pass: &str,
        gw: SocketAddr,
        contact: &str,
    ) -> Ua {
        std::fs::create_dir_all(dir).unwrap();
        let (sip, ctrl, cons) = (free_sip_port(), free_tcp(), free_tcp());
        std::fs::write(
            dir.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip}\nnet_interface 127.0.0.1\n\
                 audio_player aufile,/dev/null\naudio_source ausine,440\naudio_alert aufile,/dev/null\n\
                 module_path /usr/lib/baresip/modules\nmodule cons.so\nmodule g711.so\n\
                 module ausine.so\nmodule aufile.so\nmodule_app account.so\nmodule_app contact.so\n\
                 module_app menu.so\nmodule_app presence.so\nmodule_app ctrl_tcp.so\n\
                 ctrl_tcp_listen 127.0.0.1:{ctrl}\ncons_listen 127.0.0.1:{cons}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("accounts"),
            format!("<{aor}>;auth_pass={pass};outbound=\"sip:{gw}\";regint=600;pubint=60\n"),
        )
        .unwrap();
        std::fs::write(dir.join("contacts"), format!("{contact}\n")).unwrap();
        let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
        let child = Command::new(baresip)
            .arg("-f")
            .arg(dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start baresip");
        let ua = Ua {
            child,
            dir: dir.to_owned(),
            ctrl,
            cons: Arc::new(Mutex::new(String::new())),
        };
        // Wait for its control and console ports, then keep reading the console.
        let end = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", cons)) {
                break s;
            }
            assert!(Instant::now() < end, "baresip did not start: {}", ua.log());
            std::thread::sleep(Duration::from_millis(100));
        };
        let sink = ua.cons.clone();
        std::thread::spawn(move || {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        while TcpStream::connect(("127.0.0.1", ctrl)).is_err() {
            assert!(
                Instant::now() < end,
                "baresip ctrl_tcp not up: {}",
                ua.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        ua
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    fn console(&self) -> String {
        self.cons.lock().unwrap().replace('\r', "")
    }

    /// One ctrl_tcp command; returns the response's `data`.
    fn command(&self, command: &str, params: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.ctrl)).expect("ctrl_tcp");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let req =
            serde_json::json!({"command": command, "params": params, "token": "t1"}).to_string();
        s.write_all(format!("{}:{req},", req.len()).as_bytes())
            .unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            // netstrings: LEN:JSON, ; events may come before the response
            while let Some(colon) = buf.iter().position(|b| *b == b':') {
                let Ok(len) = std::str::from_utf8(&buf[..colon])
                    .unwrap_or("")
                    .parse::<usize>()
                else {
                    return String::new();
                };
                if buf.len() < colon + 1 + len + 1 {
                    break;
                }
                let v: serde_json::Value =
                    serde_json::from_slice(&buf[colon + 1..colon + 1 + len]).unwrap_or_default();
                buf.drain(..colon + 1 + len + 1);
                if v.get("response").and_then(|r| r.as_bool()) == Some(true) {
                    return v
                        .get("data")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default()
                        .to_owned();
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        String::new()
    }
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let token = common::sip::ADMIN_TOKEN;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The gateway's count of operations of `kind` the SIP adapter submitted and that got 2xx.
async fn counter(admin: SocketAddr, kind: &str) -> f64 {
    let metrics = http_get(admin, "/metrics").await;
    let kind = format!("kind=\"{kind}\"");
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("cpim_operations_total{")
                && l.contains("direction=\"in\"")
                && l.contains("adapter=\"sip\"")
                && l.contains(&kind)
                && l.contains("outcome=\"2xx\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `f` for up to `secs` seconds.
async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    f()
}

/// The line of bob's `contacts` listing that names Alice.
fn alice_line(contacts: &str) -> String {
    contacts
        .lines()
        .find(|l| l.contains("alice@"))
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_pair_registers_messages_and_sees_presence_through_the_gateway() {
    let peers = cpim_interop::require_peers!(Baresip);
    let dir = common::sip::scratch("gw-baresip");
    let (gw, udp, _tcp) = common::sip::start(common::sip::config(&dir.join("store"))).await;
    let admin = gw.admin_addr().expect("admin API");

    let alice = Ua::start(
        &peers.baresip,
        &dir.join("alice"),
        "sip:alice@sip.test",
        "alicepw",
        udp,
        "\"Bob\" <sip:bob@sip.test>;presence=p2p",
    );
    let bob = Ua::start(
        &peers.baresip,
        &dir.join("bob"),
        "sip:bob@sip.test",
        "bobpw",
        udp,
        "\"Alice\" <sip:alice@sip.test>;presence=p2p",
    );

    // Both register with digest.
    let end = Instant::now() + Duration::from_secs(15);
    let (registered, regs) = loop {
        let regs = http_get(admin, "/registrations").await;
        if regs.contains("sip:alice@sip.test") && regs.contains("sip:bob@sip.test") {
            break (true, regs);
        }
        if Instant::now() > end {
            break (false, regs);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        registered,
        "registrations: {regs}\nalice: {}\nbob: {}",
        alice.log(),
        bob.log()
    );

    // MESSAGE both ways.
    let a2b = format!("hello bob from alice {}", std::process::id());
    let b2a = format!("hello alice from bob {}", std::process::id());
    alice.command("message", &a2b);
    assert!(
        eventually(10, || bob.console().contains(&a2b)).await,
        "bob did not get alice's text; bob's console: {}\nalice's log: {}\nbob's log: {}",
        bob.console(),
        alice.log(),
        bob.log()
    );
    bob.command("message", &b2a);
    assert!(
        eventually(10, || alice.console().contains(&b2a)).await,
        "alice did not get bob's text; alice's console: {}\nbob's log: {}",
        alice.console(),
        bob.log()
    );
    for ua in [&alice, &bob] {
        let text = ua.log() + &ua.console();
        assert!(
            !text.to_ascii_lowercase().contains("message failed"),
            "a sender saw a failure: {text}"
        );
    }
    // The senders' 200s: the gateway counts each MESSAGE it took in once it has answered
    // (the receiver may print the text a moment before that).
    let end = Instant::now() + Duration::from_secs(10);
    let mut in_2xx = counter(admin, "message").await;
    while in_2xx < 2.0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        in_2xx = counter(admin, "message").await;
    }
    let metrics = http_get(admin, "/metrics").await;
    assert!(
        in_2xx >= 2.0,
        "the gateway answered fewer than two MESSAGEs with 2xx: {metrics}"
    );

    // Presence: bob watches alice through the gateway. alice publishes "online" when she
    // starts; each later change is one PUBLISH, and the next command waits until the gateway
    // has accepted the previous one (two PUBLISHes in flight with the same SIP-If-Match
    // would race: one of them gets 412, RFC 3903 s6, and the order decides the state).
    let mut last = String::new();
    let online = eventually(20, || {
        last = bob.command("contacts", "");
        alice_line(&last).to_ascii_lowercase().contains("online")
    })
    .await;
    assert!(
        online,
        "bob does not see alice online: {last}\nalice's log: {}\nbob's log: {}",
        alice.log(),
        bob.log()
    );
    println!("bob's view of alice at start: {}", alice_line(&last));
    let end = Instant::now() + Duration::from_secs(10);
    // Both UAs publish once at start-up (pubint).
    while counter(admin, "publish").await < 2.0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (command, want_online) in [
        ("presence_offline", false),
        ("presence_online", true),
        ("presence_offline", false),
    ] {
        let before = counter(admin, "publish").await;
        alice.command(command, "");
        let end = Instant::now() + Duration::from_secs(10);
        while counter(admin, "publish").await <= before && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let seen = eventually(20, || {
            last = bob.command("contacts", "");
            let l = alice_line(&last).to_ascii_lowercase();
            !l.is_empty() && l.contains("online") == want_online
        })
        .await;
        let subs = http_get(admin, "/subscriptions").await;
        assert!(
            seen,
            "after alice's {command}, bob's contacts: {last}\nthe gateway's subscriptions: \
             {subs}\nalice's console: {}\nbob's console: {}\nalice's log: {}\nbob's log: {}",
            alice.console(),
            bob.console(),
            alice.log(),
            bob.log()
        );
        println!("bob's view of alice after {command}: {}", alice_line(&last));
    }
    println!("bob's console: {}", bob.console().trim());
    println!("alice's console: {}", alice.console().trim());
    drop(alice);
    drop(bob);
    gw.shutdown().await;
}
