//! The shared Prosody set-up of the real-peer s2s tests: the peer variables exported by
//! `scripts/test` and a slixmpp client (`tests/xmpp_client.py`) driven as a subprocess.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Where the shared peers are.
#[derive(Debug)]
pub struct Env {
    pub s2s: String,
    pub gw_domain: String,
    pub gw_listen: String,
    pub c2s: String,
    pub domain: String,
    pub python: String,
    pub cert: String,
}

/// The shared peers' settings, or None (with the reason printed) outside `scripts/test`;
/// under `CI=true` a missing peer fails the test instead (`peer_env::need`).
pub fn env() -> Option<Env> {
    use cpim_testkit::peer_env::{need, need_var, Peer};
    let get = cpim_testkit::peer_env::var;
    let s2s = need_var(Peer::Prosody, "CPIM_PEER_PROSODY_S2S")?;
    let domain = get("CPIM_PEER_PROSODY_DOMAIN").unwrap_or_else(|| "xmpp.test".into());
    let cert = get("CPIM_PEER_PROSODY_CERT")
        .or_else(|| get("CPIM_PEER_DIR").map(|d| format!("{d}/prosody-a/certs/{domain}.crt")));
    let cert = need(
        &[Peer::Prosody],
        cert.filter(|c| std::path::Path::new(c).exists()),
        "Prosody's certificate is not found (CPIM_PEER_PROSODY_CERT / CPIM_PEER_DIR)",
    )?;
    Some(Env {
        s2s,
        gw_domain: get("CPIM_PEER_PROSODY_S2S_GW_DOMAIN").unwrap_or_else(|| "gw.test".into()),
        gw_listen: get("CPIM_PEER_PROSODY_S2S_GW").unwrap_or_else(|| "127.0.0.1:5299".into()),
        c2s: get("CPIM_PEER_PROSODY_C2S").unwrap_or_else(|| "127.0.0.1:5222".into()),
        domain,
        python: get("CPIM_PEER_PYTHON").unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.venv/bin/python")
                .to_string_lossy()
                .into_owned()
        }),
        cert,
    })
}

/// A slixmpp client on Prosody's c2s port, driven line by line in JSON.
pub struct Client {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Client {
    pub async fn start(e: &Env, jid: &str, pw: &str) -> Client {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/xmpp_client.py");
        let mut child = Command::new(&e.python)
            .arg(script)
            .arg(&e.c2s)
            .arg(jid)
            .arg(pw)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start slixmpp client");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut c = Client {
            _child: child,
            stdin,
            lines,
        };
        c.wait(|v| v["ev"] == "ready", 20).await;
        c
    }

    pub async fn cmd(&mut self, v: Value) {
        let s = format!("{v}\n");
        self.stdin.write_all(s.as_bytes()).await.unwrap();
    }

    pub async fn wait(&mut self, pred: impl Fn(&Value) -> bool, secs: u64) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .expect("timeout waiting for the client")
                .unwrap()
                .expect("client exited");
            let v: Value = serde_json::from_str(&line).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}
