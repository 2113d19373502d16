//! The slixmpp client script `py/xmpp_client.py` (RFC 6120 c2s login, RFC 6121 s5
//! messages): a receiver that prints what reaches it, and a one-message sender.

use std::time::Duration;

use cpim_interop::{Peers, Proc, ProcOutput};

/// How long a script may run, and how long its READY line may take.
pub const LIMIT: Duration = Duration::from_secs(30);

/// A c2s login: the JID (bare or full), its password and the server's c2s address.
pub struct Login {
    pub jid: String,
    pub password: String,
    pub server: String,
}

impl Login {
    /// A login as `jid` with `password` at the c2s address `server`.
    pub fn new(jid: String, password: &str, server: std::net::SocketAddr) -> Login {
        Login {
            jid,
            password: password.to_owned(),
            server: server.to_string(),
        }
    }

    /// The script's arguments: `command`, this login, then `rest`.
    fn args<'a>(&'a self, command: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            command,
            "--jid",
            &self.jid,
            "--password",
            &self.password,
            "--server",
            &self.server,
        ];
        args.extend_from_slice(rest);
        args
    }
}

/// `xmpp_client.py recv` logged in as `login`, once it printed its READY line (returned).
pub fn receiver(peers: &Peers, login: &Login) -> (Proc, String) {
    let mut receiver = peers
        .spawn_python("xmpp_client.py", login.args("recv", &["--timeout", "25"]))
        .unwrap();
    let ready = receiver.wait_for_line("READY ", LIMIT).unwrap();
    (receiver, ready)
}

/// `xmpp_client.py send`: one message `body` to `to` from `login`, the script giving up
/// after `timeout` seconds.
pub fn send(peers: &Peers, login: &Login, to: &str, body: &str, timeout: &str) -> ProcOutput {
    peers
        .run_python(
            "xmpp_client.py",
            login.args("send", &["--to", to, "--body", body, "--timeout", timeout]),
            LIMIT,
        )
        .unwrap()
}
