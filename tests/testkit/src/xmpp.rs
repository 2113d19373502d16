//! [`XmppClient`]: a real XMPP client (slixmpp) driven through a pipe.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

use crate::TestkitError;

/// How long a login may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one command may take to be written (a `sync` includes a server round trip).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What the XMPP client saw.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum XmppEvent {
    /// A message stanza (also error bounces: `error` is the condition).
    Message {
        /// Full `from` JID.
        from: String,
        /// Full `to` JID.
        to: String,
        /// `type` attribute (`chat`, `normal`, `error`, ...).
        kind: String,
        /// Stanza id.
        id: String,
        /// The body (empty when none).
        body: String,
        /// The error condition of an error stanza.
        error: Option<String>,
        /// The whole stanza as the client received it (extension elements: XEP-0184
        /// receipts, XEP-0359 origin-id, ...).
        xml: String,
    },
    /// A presence stanza.
    Presence {
        /// Full `from` JID.
        from: String,
        /// Full `to` JID.
        to: String,
        /// `available` or the `type` attribute (`unavailable`, `subscribe`, ...).
        kind: String,
        /// `<show/>`.
        show: Option<String>,
        /// `<status/>`.
        status: Option<String>,
        /// The error condition of an error stanza.
        error: Option<String>,
    },
    /// Any other event line.
    Other(Value),
}

impl XmppEvent {
    /// The bare `from` JID of a message or presence.
    pub fn from_bare(&self) -> Option<&str> {
        match self {
            XmppEvent::Message { from, .. } | XmppEvent::Presence { from, .. } => {
                Some(from.split('/').next().unwrap_or(from))
            }
            XmppEvent::Other(_) => None,
        }
    }

    /// The XEP-0359 `<origin-id xmlns='urn:xmpp:sid:0' id='...'/>` of a message, from its
    /// stanza XML.
    pub fn origin_id(&self) -> Option<String> {
        let XmppEvent::Message { xml, .. } = self else {
            return None;
        };
        let mut rest = xml.as_str();
        while let Some(at) = rest.find("<origin-id") {
            let tag = &rest[at..];
            let tag = &tag[..tag.find('>')?];
            rest = &rest[at + tag.len()..];
            if tag.contains("urn:xmpp:sid:0") {
                return attr(tag, "id");
            }
        }
        None
    }

    fn parse(v: Value) -> XmppEvent {
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let o = |k: &str| v[k].as_str().map(str::to_owned);
        match v["event"].as_str() {
            Some("message") => XmppEvent::Message {
                from: s("from"),
                to: s("to"),
                kind: s("type"),
                id: s("id"),
                body: s("body"),
                error: o("error"),
                xml: s("xml"),
            },
            Some("presence") => XmppEvent::Presence {
                from: s("from"),
                to: s("to"),
                kind: s("type"),
                show: o("show"),
                status: o("status"),
                error: o("error"),
            },
            _ => XmppEvent::Other(v),
        }
    }
}

/// The value of attribute `name` in the start tag `tag` (either quote), entities of
/// XML 1.0 s4.6 resolved.
fn attr(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag;
    loop {
        let at = rest.find(name)?;
        let before = rest[..at].chars().next_back();
        let after = rest[at + name.len()..].trim_start();
        rest = &rest[at + name.len()..];
        if !before.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let value = &value[1..];
        let value = &value[..value.find(quote)?];
        return Some(
            value
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&"),
        );
    }
}

#[derive(Debug, Default)]
struct Events {
    queue: Mutex<VecDeque<XmppEvent>>,
    done: Mutex<Vec<u64>>,
    failed: Mutex<Option<String>>,
    ready: Mutex<Option<String>>,
    closed: Mutex<bool>,
    stderr: Mutex<String>,
    arrived: Notify,
}

/// An XMPP user logged in through c2s with slixmpp (`tests/interop/py/xmpp_agent.py`); the
/// process is killed when this drops.
#[derive(Debug)]
pub struct XmppClient {
    jid: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Events>,
    seq: u64,
}

/// The agent script, found from this crate's folder.
pub fn agent_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/py/xmpp_agent.py")
}

impl XmppClient {
    /// Starts the client with `python` (a Python with slixmpp, `CPIM_PEER_PYTHON`) and waits
    /// until it is logged in with its initial presence processed by the server.
    pub async fn login(
        python: &Path,
        jid: &str,
        password: &str,
        server: SocketAddr,
    ) -> Result<XmppClient, TestkitError> {
        Self::login_with(python, jid, password, server, true).await
    }

    /// As [`XmppClient::login`]; `available = false` sends no initial presence.
    pub async fn login_with(
        python: &Path,
        jid: &str,
        password: &str,
        server: SocketAddr,
        available: bool,
    ) -> Result<XmppClient, TestkitError> {
        let mut cmd = Command::new(python);
        cmd.arg("-u")
            .arg(agent_script())
            .args(["--jid", jid, "--password", password, "--server"])
            .arg(server.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !available {
            cmd.arg("--no-presence");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| TestkitError::io(format!("starting {}", python.display()), e))?;
        let events = Arc::new(Events::default());
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let ev = events.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(rest) = line.strip_prefix("EVENT ") else {
                    continue;
                };
                let Ok(v) = serde_json::from_str::<Value>(rest) else {
                    continue;
                };
                match v["event"].as_str() {
                    Some("ready") => {
                        *ev.ready.lock().unwrap() = Some(v["jid"].as_str().unwrap_or("").into())
                    }
                    Some("done") => ev.done.lock().unwrap().push(v["seq"].as_u64().unwrap_or(0)),
                    Some("failed") => {
                        *ev.failed.lock().unwrap() = Some(v["reason"].as_str().unwrap_or("").into())
                    }
                    _ => ev.queue.lock().unwrap().push_back(XmppEvent::parse(v)),
                }
                ev.arrived.notify_waiters();
            }
            *ev.closed.lock().unwrap() = true;
            ev.arrived.notify_waiters();
        });
        let ev = events.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = ev.stderr.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        let stdin = child.stdin.take();
        let client = XmppClient {
            jid: jid.to_owned(),
            child,
            stdin,
            events,
            seq: 0,
        };
        client
            .wait_for(&format!("{jid} logged in"), LOGIN_TIMEOUT, |e: &Events| {
                e.ready.lock().unwrap().is_some()
            })
            .await?;
        Ok(client)
    }

    /// The (bare or full) JID it logged in with.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        cond: impl Fn(&Events) -> bool,
    ) -> Result<(), TestkitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.events.arrived.notified();
            if cond(&self.events) {
                return Ok(());
            }
            if let Some(reason) = self.events.failed.lock().unwrap().clone() {
                return Err(TestkitError::Xmpp(format!(
                    "{}: {reason}; stderr: {}",
                    self.jid,
                    self.events.stderr.lock().unwrap()
                )));
            }
            if *self.events.closed.lock().unwrap() {
                return Err(TestkitError::Xmpp(format!(
                    "{} exited while waiting for {what}; stderr: {}",
                    self.jid,
                    self.events.stderr.lock().unwrap()
                )));
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(TestkitError::Timeout {
                    what: what.to_owned(),
                    timeout,
                    seen: format!("stderr: {}", self.events.stderr.lock().unwrap()),
                });
            }
        }
    }

    /// Sends one command and waits until the agent has written it.
    async fn command(&mut self, mut cmd: Value) -> Result<(), TestkitError> {
        self.seq += 1;
        let seq = self.seq;
        cmd["seq"] = json!(seq);
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| TestkitError::Xmpp("the client has quit".into()))?;
        let mut line = cmd.to_string();
        line.push('\n');
        stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| TestkitError::io("writing to the XMPP client", e))?;
        stdin
            .flush()
            .await
            .map_err(|e| TestkitError::io("writing to the XMPP client", e))?;
        self.wait_for(
            &format!("command {cmd} done"),
            COMMAND_TIMEOUT,
            |e: &Events| e.done.lock().unwrap().contains(&seq),
        )
        .await?;
        self.events.done.lock().unwrap().retain(|s| *s != seq);
        Ok(())
    }

    /// Sends a `chat` message with stanza id `id`.
    pub async fn send_message(
        &mut self,
        to: &str,
        body: &str,
        id: &str,
    ) -> Result<(), TestkitError> {
        self.command(json!({"cmd": "message", "to": to, "body": body, "id": id}))
            .await
    }

    /// Sends a raw stanza (XML as written; the server stamps `from`).
    pub async fn send_raw(&mut self, xml: &str) -> Result<(), TestkitError> {
        self.command(json!({"cmd": "raw", "xml": xml})).await
    }

    /// Sends a presence stanza: `kind` None = available, else `subscribe`, `subscribed`,
    /// `unsubscribe`, `unsubscribed`, `unavailable`, `probe`; `to` None = broadcast.
    pub async fn send_presence(
        &mut self,
        to: Option<&str>,
        kind: Option<&str>,
        show: Option<&str>,
        status: Option<&str>,
    ) -> Result<(), TestkitError> {
        self.command(
            json!({"cmd": "presence", "to": to, "type": kind, "show": show, "status": status}),
        )
        .await
    }

    /// Removes `jid` from the roster (cancels subscriptions both ways): cleanup between runs.
    pub async fn roster_remove(&mut self, jid: &str) -> Result<(), TestkitError> {
        self.command(json!({"cmd": "roster_remove", "jid": jid}))
            .await
    }

    /// An IQ round trip with the server: every stanza sent before it has been processed.
    pub async fn sync(&mut self) -> Result<(), TestkitError> {
        self.command(json!({"cmd": "sync"})).await
    }

    /// The first event (oldest first) matching `pred`, removed from the queue; waits up to
    /// `timeout`.
    pub async fn await_event(
        &self,
        pred: impl Fn(&XmppEvent) -> bool,
        timeout: Duration,
    ) -> Result<XmppEvent, TestkitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.events.arrived.notified();
            {
                let mut q = self.events.queue.lock().unwrap();
                if let Some(i) = q.iter().position(&pred) {
                    return Ok(q.remove(i).expect("index from position"));
                }
            }
            let closed = *self.events.closed.lock().unwrap();
            if closed || tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let q = self.events.queue.lock().unwrap();
                return Err(TestkitError::Timeout {
                    what: format!("a matching event at {}", self.jid),
                    timeout,
                    seen: format!(
                        "client exited: {closed}; unmatched events: {:?}; stderr: {}",
                        q,
                        self.events.stderr.lock().unwrap()
                    ),
                });
            }
        }
    }

    /// Every event not yet taken, oldest first.
    pub fn take_events(&self) -> Vec<XmppEvent> {
        self.events.queue.lock().unwrap().drain(..).collect()
    }

    /// Sends unavailable presence, logs out and waits (bounded) for the process to exit.
    pub async fn quit(mut self) -> Result<(), TestkitError> {
        let _ = self.command(json!({"cmd": "quit"})).await;
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(TestkitError::io("waiting for the XMPP client", e)),
            Err(_) => {
                let _ = self.child.start_kill();
                Err(TestkitError::Timeout {
                    what: format!("{} to exit", self.jid),
                    timeout: Duration::from_secs(10),
                    seen: String::new(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        let e = XmppEvent::parse(json!({"event": "message", "from": "a@x/r", "to": "b@y",
            "type": "chat", "id": "1", "body": "hi", "error": null}));
        assert_eq!(e.from_bare(), Some("a@x"));
        assert!(matches!(&e, XmppEvent::Message { body, error: None, .. } if body == "hi"));
        let p = XmppEvent::parse(json!({"event": "presence", "from": "a@x", "to": "b@y",
            "type": "subscribe", "show": null, "status": null, "error": null}));
        assert!(matches!(&p, XmppEvent::Presence { kind, .. } if kind == "subscribe"));
        assert!(agent_script().exists(), "{}", agent_script().display());
    }

    #[test]
    fn origin_id_is_read_from_the_stanza() {
        let m = |xml: &str| {
            XmppEvent::parse(json!({"event": "message", "from": "a@x/r", "to": "b@y",
                "type": "chat", "id": "s1", "body": "hi", "xml": xml}))
        };
        let e = m("<message id=\"s1\"><body>hi</body><origin-id xmlns=\"urn:xmpp:sid:0\" id=\"M&amp;1\" /></message>");
        assert_eq!(e.origin_id().as_deref(), Some("M&1"));
        let e = m("<message><origin-id id='o2' xmlns='urn:xmpp:sid:0'/></message>");
        assert_eq!(e.origin_id().as_deref(), Some("o2"));
        // Another namespace's origin-id, an attribute that only ends in "id", none at all.
        let e = m("<message><origin-id xmlns='urn:other' id='x'/><body>a</body></message>");
        assert_eq!(e.origin_id(), None);
        let e = m("<message><origin-id xmlns='urn:xmpp:sid:0' xid='y'/></message>");
        assert_eq!(e.origin_id(), None);
        assert_eq!(m("<message><body>a</body></message>").origin_id(), None);
    }
}
