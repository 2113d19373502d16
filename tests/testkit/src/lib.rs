//! Testkit: start a gateway in-process and drive it from tests and harnesses.
//!
//! Everything here is async (tokio) and every wait is bounded: a test that waits for
//! something that never comes fails with [`TestkitError::Timeout`] naming what it waited for
//! and what did arrive, never hangs.
//!
//! - [`TestGateway`]: a [`cpim_gateway::gateway::Gateway`] started in-process from any
//!   [`cpim_gateway::config::Config`]. The builder patches the listeners to ephemeral ports
//!   (SIP UDP/TCP/TLS, the admin API, the XMPP s2s listener; port 0 on loopback) and the store
//!   to a fresh temporary folder that is removed on drop. Accessors: [`TestGateway::sip_addr`],
//!   [`TestGateway::admin_url`], [`TestGateway::admin_get`], [`TestGateway::wait_link_up`],
//!   [`TestGateway::ingress`] (submit operations as an adapter would). The admin API always
//!   requires a token: a config without `admin.token` gets a fresh one from the builder,
//!   which [`TestGateway::admin_get`] sends ([`TestGateway::admin_token`] gives it).
//!   [`TestGateway::shutdown`] awaits the gateway's graceful shutdown (in-flight operations
//!   drained, adapters, timers and admin API stopped) and removes the temporary store;
//!   [`TestGateway::restart`] shuts down and starts again on the same store and admin port
//!   (new SIP ports: cpim-sip's transports do not release their sockets inside the process,
//!   see the method). Dropping a `TestGateway` without `shutdown` drops the gateway (its task
//!   set aborts the timers, queue worker and admin API) and removes the store.
//!   The builder ([`TestGateway::builder`]) can keep configured listen addresses
//!   (`keep_sip_listen`, `keep_admin_listen`, `keep_xmpp_listen`, for a test that must
//!   listen where a peer's route points), use a given store folder (`store_dir`) and add
//!   mock adapters (`adapters`). [`http_get`] serves a gateway that runs as a process.
//! - [`SipUa`]: a minimal SIP user agent over UDP or TCP on cpim-sip's own endpoint
//!   (codec, transactions, transports: no second SIP parser). It sends REGISTER, MESSAGE,
//!   SUBSCRIBE (returning the dialog, [`SipSubscription`]), PUBLISH, OPTIONS or any request,
//!   answering digest challenges (RFC 3261 s22, MD5 and SHA-256) with its password; it
//!   auto-answers every request it receives with a configurable code per method (200 unless
//!   told otherwise, [`SipUa::answer_with`]) and keeps them for
//!   [`SipUa::await_request`] (first request matching a predicate, with a timeout).
//! - [`XmppClient`]: a real XMPP client (slixmpp, through `tests/interop/py/xmpp_agent.py`
//!   and the venv's Python) logged in over c2s: send messages and presence stanzas of any
//!   type, remove roster items, an IQ barrier ([`XmppClient::sync`]), and
//!   [`XmppClient::await_event`] for messages and presence matching a predicate. Driving
//!   slixmpp is less code than a Rust c2s client and tests against a client used in the wild.
//! - [`Linphone`]: Linphone's console client `linphonec` as a real SIP user agent, headless,
//!   with a configuration of its own per run (free UDP port, digest registration at the
//!   gateway, page-mode chat as `message/cpim` with IMDN headers); commands through a pipe
//!   (`chat`), received messages read from its output ([`Linphone::await_message`]);
//!   killed when dropped. [`linphone::program`] finds it (`CPIM_PEER_LINPHONEC`, else
//!   `PATH`).
//! - [`eventually`]: poll a condition until it holds or a timeout passes.
//! - [`own_prosody`]: a Prosody of the test's own (`scripts/peers/prosody.sh` on ports of
//!   its own) for tests that stop and restart the XMPP server.
//! - [`sipp`]: the SIPp runner; [`dns`]: a DNS responder on loopback; [`peer_env`]: the
//!   real peers' `CPIM_PEER_*` variables and the one rule for a missing peer
//!   ([`peer_env::need`]: skip with a message, fail under `CI=true`; a found peer is
//!   recorded for `scripts/test`'s per-peer counts).
//!
//! ```no_run
//! # async fn demo() -> Result<(), cpim_testkit::TestkitError> {
//! use std::time::Duration;
//! use cpim_gateway::config::Config;
//! use cpim_testkit::{SipUa, TestGateway, Transport};
//! let mut cfg = Config::default();
//! cfg.adapters = vec!["sip".into()];
//! cfg.sip.domains = vec!["sip.test".into()];
//! let gw = TestGateway::start(cfg).await?;
//! let ua = SipUa::new("alice", "sip.test", Some("pw"), Transport::Udp, gw.sip_addr(Transport::Udp).unwrap()).await?;
//! let r = ua.register(300).await?;
//! assert_eq!(r.code(), 200);
//! let msg = ua.await_request(|r| r.method().as_str() == "MESSAGE", Duration::from_secs(5)).await?;
//! # let _ = msg; gw.shutdown().await; Ok(()) }
//! ```

pub mod dns;
mod error;
mod gateway;
pub mod linphone;
pub mod own_prosody;
pub mod peer_env;
mod sip;
pub mod sipp;
mod wait;
mod xmpp;

pub use cpim_sip::transport::Transport;
pub use error::TestkitError;
pub use gateway::{http_get, http_get_host, TestGateway, TestGatewayBuilder};
pub use linphone::{Linphone, LinphoneAccount};
pub use sip::{SipSubscription, SipUa};
pub use wait::eventually;
pub use xmpp::{XmppClient, XmppEvent};
