//! [`Linphone`]: Linphone's console client `linphonec` (liblinphone) as a real SIP user agent,
//! headless, driven through a pipe.
//!
//! [`Linphone::start`] writes a configuration of its own into the given folder (liblinphone
//! rewrites its configuration file, so every run needs a fresh one): a free UDP port, no TCP
//! or TLS, registration at `proxy` as `user@domain` with digest credentials
//! (`[auth_info_0]`), and page-mode chat sent as `message/cpim` with IMDN headers
//! (`cpim_in_basic_chat_rooms_enabled=1` in `[proxy_default_values]`; without it `chat`
//! sends `text/plain`). `HOME` is a folder inside it holding `.local/share/linphone`
//! (linphonec crashes on `chat` without it). Commands are written to its standard input;
//! its output lines are kept for [`Linphone::await_line`]; liblinphone's debug log (every
//! SIP message it sends and receives) goes to `linphonec.log` in the folder. The process is
//! killed by its PID when the handle drops.
//!
//! liblinphone 5.1 (Debian 12) resolves a chat message's Request-URI by DNS unless the
//! proxy is also its outbound route (`reg_route`, set here: every request goes to `proxy`);
//! it sends its delivery IMDNs only once a REGISTER got 200, and compresses them
//! (`Content-Encoding: deflate`); it answers 488 to a `message/cpim` whose `DateTime` is in
//! January.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

use crate::peer_env;
use crate::TestkitError;

/// How long one command may take to be written.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`Linphone::await_registered`] asks for the registration state.
const STATUS_POLL: Duration = Duration::from_millis(250);

/// Where linphonec is: `CPIM_PEER_LINPHONEC` when set, else `linphonec` on `PATH`.
pub fn program() -> Option<PathBuf> {
    peer_env::program("CPIM_PEER_LINPHONEC", "linphonec")
}

/// The account linphonec registers.
#[derive(Debug, Clone)]
pub struct LinphoneAccount {
    /// User part of the identity and digest user name.
    pub user: String,
    /// Domain of the identity (`sip:user@domain`).
    pub domain: String,
    /// Digest password.
    pub password: String,
    /// Where every request goes (UDP): the registrar and proxy.
    pub proxy: SocketAddr,
}

#[derive(Debug, Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    /// Readers (stdout, stderr) that reached their end.
    ended: Mutex<u8>,
    arrived: Notify,
}

/// A running linphonec; killed when dropped.
#[derive(Debug)]
pub struct Linphone {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Output>,
    dir: PathBuf,
    port: u16,
}

impl Linphone {
    /// Starts `program` (see [`program`]) for `account`, with its configuration, `HOME` and
    /// log in `dir` (created if needed). It registers on its own; see
    /// [`Linphone::await_registered`].
    pub async fn start(
        program: &Path,
        dir: &Path,
        account: &LinphoneAccount,
    ) -> Result<Linphone, TestkitError> {
        let home = dir.join("home");
        let data = home.join(".local/share/linphone");
        std::fs::create_dir_all(&data)
            .map_err(|e| TestkitError::io(format!("creating {}", data.display()), e))?;
        let port = free_udp_port()?;
        let config = dir.join("linphonerc");
        std::fs::write(&config, config_text(account, port, free_udp_port()?))
            .map_err(|e| TestkitError::io(format!("writing {}", config.display()), e))?;
        let mut child = Command::new(program)
            .arg("-c")
            .arg(&config)
            .args(["-d", "6", "-l"])
            .arg(dir.join("linphonec.log"))
            .env("HOME", &home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TestkitError::io(format!("starting {}", program.display()), e))?;
        let output = Arc::new(Output::default());
        if let Some(out) = child.stdout.take() {
            tokio::spawn(read_lines(out, output.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_lines(err, output.clone()));
        }
        Ok(Linphone {
            stdin: child.stdin.take(),
            child,
            output,
            dir: dir.to_owned(),
            port,
        })
    }

    /// The UDP port linphonec listens on.
    pub fn sip_port(&self) -> u16 {
        self.port
    }

    /// Writes one command line (`chat sip:bob@example.com hi`, `status register`, ...).
    pub async fn command(&mut self, line: &str) -> Result<(), TestkitError> {
        if line.contains(['\r', '\n']) {
            return Err(TestkitError::Sip(format!(
                "linphonec command with a line break: {line:?}"
            )));
        }
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| TestkitError::Sip("linphonec's input is closed".into()))?;
        let write = async {
            stdin.write_all(format!("{line}\n").as_bytes()).await?;
            stdin.flush().await
        };
        match tokio::time::timeout(COMMAND_TIMEOUT, write).await {
            Ok(r) => r.map_err(|e| TestkitError::io("writing to linphonec", e)),
            Err(_) => Err(self.timeout("linphonec to read a command", COMMAND_TIMEOUT)),
        }
    }

    /// Sends `text` (one line) to `to` as a page-mode chat message.
    pub async fn chat(&mut self, to: &str, text: &str) -> Result<(), TestkitError> {
        self.command(&format!("chat {to} {text}")).await
    }

    /// Asks for the registration state until linphonec reports itself registered.
    pub async fn await_registered(&mut self, timeout: Duration) -> Result<(), TestkitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let from = self.output.lines.lock().unwrap().len();
            self.command("status register").await?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let state = self
                .await_line_from(from, |l| l.starts_with("registered"), left)
                .await?;
            if state.starts_with("registered, identity=") {
                return Ok(());
            }
            if tokio::time::Instant::now() + STATUS_POLL >= deadline {
                return Err(self.timeout("linphonec to register", timeout));
            }
            tokio::time::sleep(STATUS_POLL).await;
        }
    }

    /// Waits for linphonec to show a chat message from `from` (a SIP URI without
    /// parameters: `sip:bob@example.com` matches the line
    /// `Message received from <sip:bob@example.com;gr=x>: hi`); returns the text.
    pub async fn await_message(
        &self,
        from: &str,
        timeout: Duration,
    ) -> Result<String, TestkitError> {
        let line = self
            .await_line(|l| received(l).is_some_and(|(f, _)| f == from), timeout)
            .await?;
        Ok(received(&line)
            .map(|(_, text)| text.to_owned())
            .unwrap_or_default())
    }

    /// The first output line (standard output or error) matching `pred`, waiting at most
    /// `timeout`.
    pub async fn await_line(
        &self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, TestkitError> {
        self.await_line_from(0, pred, timeout).await
    }

    async fn await_line_from(
        &self,
        from: usize,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, TestkitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.output.arrived.notified();
            {
                let lines = self.output.lines.lock().unwrap();
                if let Some(l) = lines.iter().skip(from).find(|l| pred(l)) {
                    return Ok(l.clone());
                }
            }
            let ended = *self.output.ended.lock().unwrap() == 2;
            if ended || tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(self.timeout("a matching linphonec output line", timeout));
            }
        }
    }

    /// Every output line so far.
    pub fn output(&self) -> Vec<String> {
        self.output.lines.lock().unwrap().clone()
    }

    /// liblinphone's debug log so far (empty when unreadable).
    pub fn log(&self) -> String {
        std::fs::read(self.dir.join("linphonec.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Sends `quit` and waits (bounded) for the process to end; kills it otherwise.
    pub async fn quit(mut self) -> Result<(), TestkitError> {
        let _ = self.command("quit").await;
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(TestkitError::io("waiting for linphonec", e)),
            Err(_) => {
                let _ = self.child.start_kill();
                Err(self.timeout("linphonec to quit", Duration::from_secs(10)))
            }
        }
    }

    fn timeout(&self, what: &str, timeout: Duration) -> TestkitError {
        let lines = self.output();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        TestkitError::Timeout {
            what: what.to_owned(),
            timeout,
            seen: format!(
                "linphonec output (last lines):\n{tail}\nlog: {}",
                self.dir.join("linphonec.log").display()
            ),
        }
    }
}

async fn read_lines(stream: impl AsyncRead + Unpin, output: Arc<Output>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        output.lines.lock().unwrap().push(line);
        output.arrived.notify_waiters();
    }
    *output.ended.lock().unwrap() += 1;
    output.arrived.notify_waiters();
}

/// A chat message line of linphonec: the sender's URI without parameters, and the text.
fn received(line: &str) -> Option<(&str, &str)> {
    const PREFIX: &str = "Message received from ";
    let rest = &line[line.find(PREFIX)? + PREFIX.len()..];
    let (sender, text) = rest.split_once(": ")?;
    let uri = match (sender.find('<'), sender.rfind('>')) {
        (Some(a), Some(b)) if a < b => &sender[a + 1..b],
        _ => sender,
    };
    Some((uri.split(';').next().unwrap_or(uri).trim(), text))
}

fn free_udp_port() -> Result<u16, TestkitError> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| TestkitError::io("finding a free UDP port", e))
}

/// linphonec's configuration (an INI file) for `account` on UDP port `port`.
fn config_text(account: &LinphoneAccount, port: u16, rtp_port: u16) -> String {
    let LinphoneAccount {
        user,
        domain,
        password,
        proxy,
    } = account;
    format!(
        "[sip]\nsip_port={port}\nsip_tcp_port=-1\nsip_tls_port=-1\ndefault_proxy=0\n\
         [rtp]\naudio_rtp_port={rtp_port}\n\
         [sound]\ncapture_dev_id=\nplayback_dev_id=\nringer_dev_id=\n\
         [proxy_default_values]\ncpim_in_basic_chat_rooms_enabled=1\n\
         [proxy_0]\nreg_proxy=<sip:{proxy};transport=udp>\nreg_route=<sip:{proxy};transport=udp;lr>\n\
         reg_identity=sip:{user}@{domain}\n\
         reg_sendregister=1\nreg_expires=600\npublish=0\ncpim_in_basic_chat_rooms_enabled=1\n\
         [auth_info_0]\nusername={user}\npasswd={password}\ndomain={domain}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_lines_give_the_sender_uri_and_the_text() {
        assert_eq!(
            received("linphonec> Message received from <sip:bob@x.test;gr=Ab1>: hi: there"),
            Some(("sip:bob@x.test", "hi: there"))
        );
        assert_eq!(
            received("Message received from sip:bob@127.0.0.1: hello"),
            Some(("sip:bob@127.0.0.1", "hello"))
        );
        assert_eq!(
            received("Message received from \"Bob\" <sip:bob@x.test>: yo"),
            Some(("sip:bob@x.test", "yo"))
        );
        assert_eq!(received("registered=-1"), None);
    }

    #[test]
    fn config_registers_the_account_at_the_proxy_with_cpim_chat() {
        let account = LinphoneAccount {
            user: "lin".into(),
            domain: "sip.test".into(),
            password: "linpw".into(),
            proxy: "127.0.0.1:5099".parse().unwrap(),
        };
        let text = config_text(&account, 40000, 40002);
        for line in [
            "sip_port=40000",
            "sip_tcp_port=-1",
            "reg_proxy=<sip:127.0.0.1:5099;transport=udp>",
            "reg_route=<sip:127.0.0.1:5099;transport=udp;lr>",
            "reg_identity=sip:lin@sip.test",
            "reg_sendregister=1",
            "username=lin",
            "passwd=linpw",
            "domain=sip.test",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // CPIM must be on in the proxy defaults: the chat command builds its room from them.
        let defaults = text.split("[proxy_default_values]").nth(1).unwrap();
        assert!(defaults
            .lines()
            .take_while(|l| !l.starts_with('['))
            .any(|l| l == "cpim_in_basic_chat_rooms_enabled=1"));
    }
}
