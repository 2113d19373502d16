//! The real peers `scripts/test` started, read from its `CPIM_PEER_*` variables.

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{HarnessError, Proc, ProcOutput};

/// An account on one of the XMPP servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Local part.
    pub user: String,
    /// Password (cleartext login is allowed on the test servers).
    pub password: String,
    /// The server's domain.
    pub domain: String,
}

impl Account {
    /// The bare JID `user@domain`.
    pub fn jid(&self) -> String {
        format!("{}@{}", self.user, self.domain)
    }
}

/// An XEP-0114 component listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The component's domain (the gateway's XMPP domain in component mode).
    pub domain: String,
    /// The handshake secret.
    pub secret: String,
}

/// One XMPP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmppServer {
    /// The server's (only) virtual host.
    pub domain: String,
    /// Client-to-server listener (plain TCP; STARTTLS offered, not required).
    pub c2s: SocketAddr,
    /// Server-to-server listener.
    pub s2s: SocketAddr,
    /// The component listener, if this server has one.
    pub component: Option<Component>,
    /// The accounts created at start-up.
    pub accounts: Vec<Account>,
}

impl XmppServer {
    /// The account with local part `user`, if the server has it.
    pub fn account(&self, user: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.user == user)
    }
}

/// An s2s route of the hermetic DNS: the Prosody servers send s2s traffic for `domain` to
/// `addr`. Nothing listens there until a test binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S2sRoute {
    /// The remote XMPP domain (the gateway's domain in s2s mode).
    pub domain: String,
    /// Where Prosody connects for it.
    pub addr: SocketAddr,
}

/// A SIP server (Kamailio: registrar, proxy and presence server; no authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipServer {
    /// UDP and TCP.
    pub addr: SocketAddr,
    /// The SIP domain it serves.
    pub domain: String,
}

/// An IRC server (ngIRCd, no flood penalties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcServer {
    /// Plain TCP.
    pub addr: SocketAddr,
    /// The server name.
    pub name: String,
}

/// Everything `scripts/test` started and installed. See scripts/README.md for the variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peers {
    /// The peers' folder (configs and logs); `CPIM_PEER_DIR`.
    pub dir: PathBuf,
    /// Python of the venv with slixmpp; `CPIM_PEER_PYTHON`.
    pub python: PathBuf,
    /// `CPIM_PEER_SIPP`.
    pub sipp: PathBuf,
    /// `CPIM_PEER_SIPSAK`.
    pub sipsak: PathBuf,
    /// `CPIM_PEER_BARESIP`.
    pub baresip: PathBuf,
    /// `CPIM_PEER_XMLLINT`.
    pub xmllint: PathBuf,
    /// Prosody A (xmpp.test, with a component listener); `CPIM_PEER_PROSODY_*`.
    pub prosody: XmppServer,
    /// Prosody B (other.test, s2s peer of A); `CPIM_PEER_PROSODY_B_*`.
    pub prosody_b: XmppServer,
    /// ejabberd (ejabberd.test, with a component listener); `CPIM_PEER_EJABBERD_*`.
    pub ejabberd: XmppServer,
    /// Where Prosody A and B send s2s for the gateway's test domain; `CPIM_PEER_PROSODY_S2S_GW*`.
    pub gateway_s2s: S2sRoute,
    /// The one DNS server ejabberd's resolver asks for its s2s SRV lookups (UDP);
    /// `CPIM_PEER_EJABBERD_DNS`. Nothing answers there until a test binds it.
    pub ejabberd_dns: SocketAddr,
    /// Kamailio as registrar and presence server; `CPIM_PEER_KAMAILIO*`.
    pub kamailio: SipServer,
    /// Kamailio as MSRP relay (TCP); `CPIM_PEER_KAMAILIO_MSRP`.
    pub kamailio_msrp: SocketAddr,
    /// ngIRCd; `CPIM_PEER_NGIRCD*`.
    pub ngircd: IrcServer,
}

impl Peers {
    /// The peers, or `None` when `CPIM_PEERS` is not `1` (no `scripts/test` around).
    ///
    /// # Panics
    /// When `CPIM_PEERS=1` but a variable is missing or malformed: that is a harness bug, and
    /// it must fail loudly rather than turn every real-peer test into a silent skip.
    pub fn from_env() -> Option<Peers> {
        match Self::try_from_env() {
            Ok(peers) => peers,
            Err(e) => panic!("CPIM_PEERS=1 but {e}"),
        }
    }

    /// As [`Peers::from_env`], with the problem as an error instead of a panic.
    pub fn try_from_env() -> Result<Option<Peers>, HarnessError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the peers through `get` (the environment, or a map in tests).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Peers>, HarnessError> {
        if get("CPIM_PEERS").as_deref() != Some("1") {
            return Ok(None);
        }
        let v = Vars(&get);
        let prosody_domain = v.string("CPIM_PEER_PROSODY_DOMAIN")?;
        let prosody_b_domain = v.string("CPIM_PEER_PROSODY_B_DOMAIN")?;
        let ejabberd_domain = v.string("CPIM_PEER_EJABBERD_DOMAIN")?;
        Ok(Some(Peers {
            dir: v.path("CPIM_PEER_DIR")?,
            python: v.path("CPIM_PEER_PYTHON")?,
            sipp: v.path("CPIM_PEER_SIPP")?,
            sipsak: v.path("CPIM_PEER_SIPSAK")?,
            baresip: v.path("CPIM_PEER_BARESIP")?,
            xmllint: v.path("CPIM_PEER_XMLLINT")?,
            prosody: XmppServer {
                c2s: v.addr("CPIM_PEER_PROSODY_C2S")?,
                s2s: v.addr("CPIM_PEER_PROSODY_S2S")?,
                component: Some(Component {
                    addr: v.addr("CPIM_PEER_PROSODY_COMPONENT")?,
                    domain: v.string("CPIM_PEER_PROSODY_COMPONENT_DOMAIN")?,
                    secret: v.string("CPIM_PEER_PROSODY_COMPONENT_SECRET")?,
                }),
                accounts: v.accounts("CPIM_PEER_PROSODY_USERS", &prosody_domain)?,
                domain: prosody_domain,
            },
            prosody_b: XmppServer {
                c2s: v.addr("CPIM_PEER_PROSODY_B_C2S")?,
                s2s: v.addr("CPIM_PEER_PROSODY_B_S2S")?,
                component: None,
                accounts: v.accounts("CPIM_PEER_PROSODY_B_USERS", &prosody_b_domain)?,
                domain: prosody_b_domain,
            },
            ejabberd: XmppServer {
                c2s: v.addr("CPIM_PEER_EJABBERD_C2S")?,
                s2s: v.addr("CPIM_PEER_EJABBERD_S2S")?,
                component: Some(Component {
                    addr: v.addr("CPIM_PEER_EJABBERD_COMPONENT")?,
                    domain: v.string("CPIM_PEER_EJABBERD_COMPONENT_DOMAIN")?,
                    secret: v.string("CPIM_PEER_EJABBERD_COMPONENT_SECRET")?,
                }),
                accounts: v.accounts("CPIM_PEER_EJABBERD_USERS", &ejabberd_domain)?,
                domain: ejabberd_domain,
            },
            gateway_s2s: S2sRoute {
                domain: v.string("CPIM_PEER_PROSODY_S2S_GW_DOMAIN")?,
                addr: v.addr("CPIM_PEER_PROSODY_S2S_GW")?,
            },
            ejabberd_dns: v.addr("CPIM_PEER_EJABBERD_DNS")?,
            kamailio: SipServer {
                addr: v.addr("CPIM_PEER_KAMAILIO")?,
                domain: v.string("CPIM_PEER_KAMAILIO_DOMAIN")?,
            },
            kamailio_msrp: v.addr("CPIM_PEER_KAMAILIO_MSRP")?,
            ngircd: IrcServer {
                addr: v.addr("CPIM_PEER_NGIRCD")?,
                name: v.string("CPIM_PEER_NGIRCD_NAME")?,
            },
        }))
    }

    /// A command running `tests/interop/py/<script>` with the venv's Python (unbuffered), the
    /// given arguments, stdin closed.
    pub fn python_command<I, S>(&self, script: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.python);
        cmd.arg("-u")
            .arg(crate::py_dir().join(script))
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Start a helper Python script in the background; see [`Proc`].
    pub fn spawn_python<I, S>(&self, script: &str, args: I) -> Result<Proc, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Proc::spawn(script, self.python_command(script, args))
    }

    /// Run a helper Python script to its end, at most `timeout` (then it is killed and the
    /// result is [`HarnessError::Timeout`]).
    pub fn run_python<I, S>(
        &self,
        script: &str,
        args: I,
        timeout: Duration,
    ) -> Result<ProcOutput, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spawn_python(script, args)?.finish(timeout)
    }
}

/// Typed access to the variables, with errors naming the variable.
struct Vars<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    fn string(&self, name: &str) -> Result<String, HarnessError> {
        match (self.0)(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
            Some(_) => Err(env_error(name, "is empty")),
            None => Err(env_error(name, "is not set")),
        }
    }

    fn path(&self, name: &str) -> Result<PathBuf, HarnessError> {
        self.string(name).map(PathBuf::from)
    }

    fn addr(&self, name: &str) -> Result<SocketAddr, HarnessError> {
        let v = self.string(name)?;
        v.parse()
            .map_err(|_| env_error(name, &format!("{v:?} is not an IP:PORT address")))
    }

    /// `user:password,user:password`
    fn accounts(&self, name: &str, domain: &str) -> Result<Vec<Account>, HarnessError> {
        self.string(name)?
            .split(',')
            .map(|entry| match entry.trim().split_once(':') {
                Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Account {
                    user: user.to_owned(),
                    password: password.to_owned(),
                    domain: domain.to_owned(),
                }),
                _ => Err(env_error(
                    name,
                    &format!("entry {entry:?} is not USER:PASSWORD"),
                )),
            })
            .collect()
    }
}

fn env_error(name: &str, problem: &str) -> HarnessError {
    HarnessError::Env {
        name: name.to_owned(),
        problem: problem.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// What scripts/test exports (kept in step with it by `every_variable_is_exported_by_scripts_test`).
    fn full_env() -> HashMap<String, String> {
        [
            ("CPIM_PEERS", "1"),
            ("CPIM_PEER_DIR", "peers-dir"),
            ("CPIM_PEER_PYTHON", "/r/.venv/bin/python"),
            ("CPIM_PEER_SIPP", "/usr/bin/sipp"),
            ("CPIM_PEER_SIPSAK", "/usr/bin/sipsak"),
            ("CPIM_PEER_BARESIP", "/usr/bin/baresip"),
            ("CPIM_PEER_XMLLINT", "/usr/bin/xmllint"),
            ("CPIM_PEER_PROSODY_DOMAIN", "xmpp.test"),
            ("CPIM_PEER_PROSODY_C2S", "127.0.0.1:5222"),
            ("CPIM_PEER_PROSODY_S2S", "127.0.0.1:5269"),
            ("CPIM_PEER_PROSODY_COMPONENT", "127.0.0.1:5347"),
            ("CPIM_PEER_PROSODY_COMPONENT_DOMAIN", "sip.xmpp.test"),
            (
                "CPIM_PEER_PROSODY_COMPONENT_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            ("CPIM_PEER_PROSODY_USERS", "alice:alicepw,bob:bobpw"),
            ("CPIM_PEER_PROSODY_S2S_GW_DOMAIN", "gw.test"),
            ("CPIM_PEER_PROSODY_S2S_GW", "127.0.0.1:5299"),
            ("CPIM_PEER_PROSODY_B_DOMAIN", "other.test"),
            ("CPIM_PEER_PROSODY_B_C2S", "127.0.0.1:5223"),
            ("CPIM_PEER_PROSODY_B_S2S", "127.0.0.1:5270"),
            ("CPIM_PEER_PROSODY_B_USERS", "dave:davepw"),
            ("CPIM_PEER_EJABBERD_DOMAIN", "ejabberd.test"),
            ("CPIM_PEER_EJABBERD_C2S", "127.0.0.1:5322"),
            ("CPIM_PEER_EJABBERD_S2S", "127.0.0.1:5369"),
            ("CPIM_PEER_EJABBERD_COMPONENT", "127.0.0.1:5387"),
            ("CPIM_PEER_EJABBERD_COMPONENT_DOMAIN", "sip.ejabberd.test"),
            (
                "CPIM_PEER_EJABBERD_COMPONENT_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
            ("CPIM_PEER_EJABBERD_USERS", "alice:alicepw,bob:bobpw"),
            ("CPIM_PEER_EJABBERD_DNS", "127.0.0.1:5398"),
            ("CPIM_PEER_KAMAILIO", "127.0.0.1:5064"),
            ("CPIM_PEER_KAMAILIO_DOMAIN", "sip.test"),
            ("CPIM_PEER_KAMAILIO_MSRP", "127.0.0.1:2855"),
            ("CPIM_PEER_NGIRCD", "127.0.0.1:6667"),
            ("CPIM_PEER_NGIRCD_NAME", "irc.test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn read(env: &HashMap<String, String>) -> Result<Option<Peers>, HarnessError> {
        Peers::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn absent_or_unset_cpim_peers_means_no_peers() {
        assert_eq!(read(&HashMap::new()).unwrap(), None);
        let mut env = full_env();
        env.insert("CPIM_PEERS".into(), "0".into());
        assert_eq!(read(&env).unwrap(), None);
    }

    #[test]
    fn full_environment_is_read() {
        let peers = read(&full_env()).unwrap().unwrap();
        assert_eq!(peers.prosody.domain, "xmpp.test");
        assert_eq!(peers.prosody.c2s, "127.0.0.1:5222".parse().unwrap());
        let bob = peers.prosody.account("bob").unwrap();
        assert_eq!(bob.jid(), "bob@xmpp.test");
        assert_eq!(bob.password, "bobpw");
        let comp = peers.prosody.component.as_ref().unwrap();
        assert_eq!(comp.domain, "sip.xmpp.test");
        assert_eq!(comp.addr.port(), 5347);
        assert_eq!(
            peers.prosody_b.account("dave").unwrap().jid(),
            "dave@other.test"
        );
        assert!(peers.prosody_b.component.is_none());
        assert_eq!(
            peers.ejabberd.account("alice").unwrap().jid(),
            "alice@ejabberd.test"
        );
        assert_eq!(peers.gateway_s2s.domain, "gw.test");
        assert_eq!(peers.gateway_s2s.addr.port(), 5299);
        assert_eq!(peers.ejabberd_dns, "127.0.0.1:5398".parse().unwrap());
        assert_eq!(peers.kamailio.addr.port(), 5064);
        assert_eq!(peers.kamailio.domain, "sip.test");
        assert_eq!(peers.kamailio_msrp.port(), 2855);
        assert_eq!(peers.ngircd.name, "irc.test");
    }

    #[test]
    fn a_missing_variable_is_named() {
        let mut env = full_env();
        env.remove("CPIM_PEER_KAMAILIO");
        let err = read(&env).unwrap_err().to_string();
        assert!(
            err.contains("CPIM_PEER_KAMAILIO") && err.contains("not set"),
            "{err}"
        );
    }

    #[test]
    fn malformed_values_are_named() {
        let mut env = full_env();
        env.insert("CPIM_PEER_NGIRCD".into(), "localhost:6667".into());
        let err = read(&env).unwrap_err().to_string();
        assert!(
            err.contains("CPIM_PEER_NGIRCD") && err.contains("IP:PORT"),
            "{err}"
        );

        let mut env = full_env();
        env.insert("CPIM_PEER_PROSODY_USERS".into(), "alice:alicepw,bob".into());
        let err = read(&env).unwrap_err().to_string();
        assert!(err.contains("\"bob\""), "{err}");
    }

    /// scripts/test prints a count for each peer a test can record, in the same order.
    #[test]
    fn scripts_test_counts_every_peer() {
        let script = std::fs::read_to_string(crate::repo_root().join("scripts/test")).unwrap();
        let line = script
            .lines()
            .find_map(|l| l.strip_prefix("PEER_NAMES=("))
            .expect("scripts/test has PEER_NAMES=(...)");
        let listed: Vec<&str> = line.trim_end_matches(')').split_whitespace().collect();
        let peers: Vec<&str> = crate::peer_env::Peer::ALL
            .iter()
            .map(|p| p.name())
            .collect();
        assert_eq!(listed, peers);
    }

    /// The variables read here and the ones scripts/test exports must not drift apart.
    #[test]
    fn every_variable_is_exported_by_scripts_test() {
        let script = std::fs::read_to_string(crate::repo_root().join("scripts/test")).unwrap();
        for name in full_env().keys() {
            assert!(
                script.contains(&format!("export {name}=")),
                "scripts/test does not export {name}"
            );
        }
    }
}
