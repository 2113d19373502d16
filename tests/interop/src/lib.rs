//! Cross-crate and real-peer interop tests, and the helpers they share.
//!
//! Real-peer tests run against the servers that `scripts/test` starts on 127.0.0.1 (Prosody,
//! ejabberd, Kamailio, ngIRCd) and the tools it installs (SIPp, sipsak, baresip, a Python venv
//! with slixmpp). The script exports their addresses as `CPIM_PEER_*` variables;
//! [`Peers::from_env`] reads them. When they are absent (a plain `cargo test`), a real-peer test
//! prints [`SKIP_MESSAGE`] and returns: use [`require_peers!`].
//!
//! Every wait in here has a timeout, and every child process is killed when its handle drops,
//! so a misbehaving peer fails a test instead of hanging it.

mod error;
mod paths;
mod peers;
mod process;
mod sipp;

pub use error::HarnessError;
pub use paths::{
    free_tcp_port, free_udp_port, py_dir, repo_root, scratch_dir, shared_dir, sipp_dir,
};
pub use peers::{Account, Component, IrcServer, Peers, S2sRoute, SipServer, XmppServer};
pub use process::{Proc, ProcOutput};
pub use sipp::{Sipp, SippOutput, SippRun, SippTransport};

/// What a real-peer test prints when the peers are not running.
pub const SKIP_MESSAGE: &str = "skipped: real peers not running (run scripts/test)";

/// `let peers = require_peers!();` -- the [`Peers`] from the environment, or print
/// [`SKIP_MESSAGE`] and return from the (unit-returning) test.
#[macro_export]
macro_rules! require_peers {
    () => {
        match $crate::Peers::from_env() {
            Some(peers) => peers,
            None => {
                println!("{}", $crate::SKIP_MESSAGE);
                return;
            }
        }
    };
}
