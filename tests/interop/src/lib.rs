//! Cross-crate and real-peer interop tests, and the helpers they share.
//!
//! Real-peer tests run against the servers that `scripts/test` starts on 127.0.0.1 (Prosody,
//! ejabberd, Kamailio, ngIRCd) and the tools it installs (SIPp, sipsak, baresip, linphonec, a
//! Python venv with slixmpp). The script exports their addresses as `CPIM_PEER_*` variables;
//! [`Peers::from_env`] reads them. A real-peer test starts with [`require_peers!`], naming
//! the peers it runs against: when they are absent (a plain `cargo test`) it prints why it
//! skips and returns, and under `CI=true` it fails instead ([`peer_env::need`], re-exported
//! from cpim-testkit).
//!
//! Every wait in here has a timeout, and every child process is killed when its handle drops,
//! so a misbehaving peer fails a test instead of hanging it.
//!
//! Helpers: [`Peers`] (the peers' addresses; `from_env` panics naming a variable that does
//! not parse, so a broken harness does not turn into silent skips), [`Proc`] (a child
//! process whose output is read by two threads; `wait_for_line`, `finish`, `kill`),
//! `Peers::spawn_python`/`run_python` (the scripts of `tests/interop/py/` with the venv's
//! Python, e.g. the scriptable slixmpp client `xmpp_client.py`), [`Sipp`] (a SIPp
//! scenario from `tests/interop/sipp/` in a scratch folder; [`SippRun`] lets the test play
//! the other side), and `repo_root`, `shared_dir`, `scratch_dir`, `free_udp_port`,
//! `free_tcp_port`.
//!
//! The tests, by file prefix:
//!
//! - `*_smoke`: each peer and the harness alone, before any adapter (Prosody and ejabberd
//!   c2s, s2s routes between the two Prosodys, XEP-0114 handshakes, SIPp, Kamailio presence,
//!   the MSRP relay, ngIRCd); each also checks a refusal, so a helper that reports success
//!   regardless cannot pass.
//! - `gateway_*`: the acceptance tests on the testkit against Prosody (component and
//!   s2s): messages both ways, presence with approval, error mapping, receipts, a crash of
//!   the gateway binary under load with nothing acknowledged lost, faults under an
//!   open-loop load with counts (`gateway_faults`: Prosody restarted, the gateway
//!   SIGKILLed), the defaults with no config, and Linphone (a real SIP client) chatting
//!   with an XMPP user (`gateway_linphone`). The flows of `gateway_component` and
//!   `gateway_s2s` (`tests/common/flows.rs`) also run against ejabberd, in both modes
//!   (`gateway_ejabberd_component`, `gateway_ejabberd_s2s`).
//! - `sip_gateway_*`: SIP through the whole gateway with SIPp, baresip, Kamailio, the
//!   RFC 4475 torture messages and a load run.
//! - `legacy_*`: the IRC and JSON adapters wired into the gateway, with and without peers.
//! - `security_flood`: floods against the gateway binary; counts and memory bounds.
//!
//! The component domain admits one connection: the component tests of one binary take a
//! lock (`tests/common/`), and cargo runs test binaries one after another.

mod error;
mod paths;
mod peers;
mod process;
mod sipp;

pub use cpim_testkit::peer_env;
pub use error::HarnessError;
pub use paths::{
    free_tcp_port, free_udp_port, py_dir, repo_root, scratch_dir, shared_dir, sipp_dir,
};
pub use peers::{Account, Component, IrcServer, Peers, S2sRoute, SipServer, XmppServer};
pub use process::{Proc, ProcOutput};
pub use sipp::{Sipp, SippOutput, SippRun, SippTransport};

/// What a real-peer test reports when the peers are not running.
pub const SKIP_MESSAGE: &str = "CPIM_PEERS=1 is not set: real peers not running (run scripts/test)";

/// `let peers = require_peers!(Prosody, Sipp);` -- the [`Peers`] from the environment, for
/// a test that runs against the listed [`peer_env::Peer`]s. Through [`peer_env::need`]:
/// the peers are recorded for `scripts/test`'s counts; without `CPIM_PEERS=1` the
/// (unit-returning) test prints a skip message naming them and returns, or fails under
/// `CI=true`.
#[macro_export]
macro_rules! require_peers {
    ($($peer:ident),+ $(,)?) => {
        match $crate::peer_env::need(
            &[$($crate::peer_env::Peer::$peer),+],
            $crate::Peers::from_env(),
            $crate::SKIP_MESSAGE,
        ) {
            Some(peers) => peers,
            None => return,
        }
    };
}
