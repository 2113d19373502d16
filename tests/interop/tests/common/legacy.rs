//! Shared by the `legacy_*` end-to-end tests: the gateway configuration (component mode on
//! the harness's Prosody, the gateway's own SIP registrar), a raw IRC client and a raw
//! JSON-protocol client, both async with bounded waits.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use cpim_gateway::config::Config;
use cpim_interop::Peers;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long any single wait in these tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The gateway as the XEP-0114 component `CPIM_PEER_PROSODY_COMPONENT_DOMAIN` of Prosody,
/// SIP domain `sip.test` (users alice/bob, password `pw`), plus `extra` TOML (the `[irc]`
/// and `[json]` sections), parsed by the real loader. `adapters` lists `extra_adapters` after
/// sip and xmpp.
pub fn component_config(peers: &Peers, extra_adapters: &[&str], extra: &str) -> Config {
    let c = peers
        .prosody
        .component
        .as_ref()
        .expect("Prosody has a component");
    let adapters: Vec<String> = ["sip", "xmpp"]
        .iter()
        .chain(extra_adapters)
        .map(|a| format!("{a:?}"))
        .collect();
    let text = format!(
        r#"adapters = [{adapters}]

[sip]
domains = ["sip.test"]
[sip.endpoint]
udp = ["127.0.0.1:0"]
tcp = ["127.0.0.1:0"]
tls = ["127.0.0.1:0"]
[[sip.users]]
username = "alice"
password = "pw"
[[sip.users]]
username = "bob"
password = "pw"

[xmpp.mode]
kind = "component"
server = "{server}"
domain = "{cdomain}"
secret = "{secret}"

[[routes]]
domain = "{xdomain}"
adapter = "xmpp"

[[domain_aliases]]
alias = "{cdomain}"
domain = "sip.test"
adapter = "xmpp"

[queue]
enabled = false

# Presence relay between strangers, not authorization, is tested here (the default,
# approve-mutual, is tested in the presence engine).
[presence]
authorization = "approve-all"

[admin]
listen = "127.0.0.1:0"

{extra}
"#,
        adapters = adapters.join(", "),
        server = c.addr,
        cdomain = c.domain,
        secret = c.secret,
        xdomain = peers.prosody.domain,
    );
    Config::from_str_with_env(&text, "legacy-e2e.toml", Vec::new())
        .unwrap_or_else(|e| panic!("test config: {e}\n{text}"))
}

/// A raw IRC client (RFC 2812) on a real server.
pub struct IrcClient {
    pub nick: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl IrcClient {
    /// Connects and registers (NICK/USER, waits for 001).
    pub async fn register(addr: SocketAddr, nick: &str) -> IrcClient {
        let s = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("IRC connect in time")
            .expect("IRC connect");
        let (r, w) = s.into_split();
        let mut c = IrcClient {
            nick: nick.to_owned(),
            reader: BufReader::new(r),
            writer: w,
        };
        c.send(&format!("NICK {nick}")).await;
        c.send(&format!("USER {nick} 0 * :legacy e2e test")).await;
        c.wait_for(|l| l.split(' ').nth(1) == Some("001")).await;
        c
    }

    pub async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("IRC write");
    }

    /// Reads lines (answering PINGs) until one matches; panics after [`WAIT`] with what
    /// was seen.
    pub async fn wait_for(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("{}: no matching line in time; saw:\n{seen}", self.nick))
                .expect("IRC read");
            assert!(n > 0, "{}: server closed; saw:\n{seen}", self.nick);
            let line = line.trim_end().to_owned();
            if let Some(token) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {token}")).await;
            }
            if pred(&line) {
                return line;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
    }

    /// Waits for a PRIVMSG to this client with exactly `text`; returns the sender's nick.
    pub async fn await_privmsg(&mut self, text: &str) -> String {
        let me = self.nick.clone();
        let line = self
            .wait_for(|l| {
                let mut p = l.splitn(4, ' ');
                let (_, cmd, target, rest) = (p.next(), p.next(), p.next(), p.next());
                cmd == Some("PRIVMSG")
                    && target.is_some_and(|t| t.eq_ignore_ascii_case(&me))
                    && rest == Some(&format!(":{text}"))
            })
            .await;
        line.trim_start_matches(':')
            .split('!')
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    /// The realname (WHOIS 311) of `nick`: the gateway puts the CPIM owner's address there.
    pub async fn whois_realname(&mut self, nick: &str) -> String {
        self.send(&format!("WHOIS {nick}")).await;
        let line = self.wait_for(|l| l.split(' ').nth(1) == Some("311")).await;
        // `:server 311 me nick user host * :realname`: the trailing parameter.
        line.split_once(" :")
            .map_or_else(|| line.clone(), |(_, real)| real.to_owned())
    }
}

/// A raw JSON-protocol client (adapters/json/PROTOCOL.md) over TCP.
pub struct JsonClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Frames read but not yet taken.
    pending: Vec<Value>,
}

impl JsonClient {
    pub async fn connect(addr: SocketAddr) -> JsonClient {
        let s = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("JSON connect in time")
            .expect("JSON connect");
        let (r, w) = s.into_split();
        JsonClient {
            reader: BufReader::new(r),
            writer: w,
            pending: Vec::new(),
        }
    }

    /// Connects and logs in with `token`; returns the welcome frame.
    pub async fn login(addr: SocketAddr, token: &str) -> (JsonClient, Value) {
        let mut c = JsonClient::connect(addr).await;
        c.send(&json!({"type": "hello", "version": 1, "token": token}))
            .await;
        let w = c.await_frame(|f| f["type"] == "welcome").await;
        (c, w)
    }

    pub async fn send(&mut self, frame: &Value) {
        self.send_raw(format!("{frame}\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("JSON write");
    }

    /// The first frame matching `pred` (frames read before and not matching stay pending);
    /// panics after [`WAIT`] with what was seen.
    pub async fn await_frame(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout_at(deadline, self.reader.read_line(&mut line))
                .await
                .unwrap_or_else(|_| {
                    panic!("no matching JSON frame in time; have {:?}", self.pending)
                })
                .expect("JSON read");
            assert!(
                n > 0,
                "server closed the JSON session; have {:?}",
                self.pending
            );
            let v: Value = serde_json::from_str(line.trim_end())
                .unwrap_or_else(|e| panic!("server sent invalid JSON {line:?}: {e}"));
            if v["type"] == "message" || v["type"] == "subscribe" || v["type"] == "notify" {
                // Every delivered operation must be answered (PROTOCOL.md).
                if let Some(id) = v["id"].as_str() {
                    let ok = json!({"type": "outcome", "id": id, "code": 200, "reason": "OK"});
                    self.send(&ok).await;
                }
            }
            if pred(&v) {
                return v;
            }
            self.pending.push(v);
        }
    }

    /// True if a frame read but not yet taken matches `pred`.
    pub fn pending_contains(&self, pred: impl Fn(&Value) -> bool) -> bool {
        self.pending.iter().any(pred)
    }

    /// Sends an operation frame and waits for its outcome; returns the code.
    pub async fn op(&mut self, frame: Value) -> u16 {
        let id = frame["id"].as_str().expect("frame id").to_owned();
        self.send(&frame).await;
        let out = self
            .await_frame(|f| f["type"] == "outcome" && f["id"] == id.as_str())
            .await;
        out["code"].as_u64().expect("code") as u16
    }
}
