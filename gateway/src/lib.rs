//! The CPIM gateway: router, presence state, durable store, config, admin API.
//!
//! - [`router`]: the tower pipeline every submitted operation passes.
//! - [`dispatch`]: the innermost service: routing, re-encoding, store-and-forward.
//! - [`routing`]: which adapter serves which domain.
//! - [`reencode`]: a message prepared for its target adapter (CPIM kept or unwrapped).
//! - [`presence`]: the sans-IO subscription state machine and presence store (RFC 8048).
//! - [`store`]: the durable embedded store (SQLite).
//! - [`journal`]: the write-ahead journal and the persistent dedupe records.
//! - [`config`]: the TOML configuration.
//! - [`secrets`]: secret checks, generated secrets, private store file modes.
//! - [`admin`]: the admin HTTP API and metrics.
//! - [`gateway`]: wiring it all together and running it.
//! - [`presence_service`]: the tokio layer of the presence engine (timers, persistence,
//!   ordered delivery of notifications).
//! - [`queue`]: store-and-forward for targets that are offline or unreachable (202).
//! - [`outbound`]: delivery to adapters with alias mapping and metrics; [`aliases`]: the
//!   domain names one adapter's peers use for another's domain (component mode).
//! - [`records`]: the stored JSON forms of model values; [`sip_store`]: the SIP adapter's
//!   `SipStore` on the durable store.
//! - [`metrics`]: the Prometheus registry; [`cli`]: the command line (`run`,
//!   `check-config`, `--log-format json`).
//!
//! # One operation
//!
//! An adapter calls [`gateway::GatewayIngress`] (`Ingress::submit`); aliases are mapped and
//! the operation enters the [`router`] pipeline as a [`router::Submission`]: authorize,
//! size, rate, hops, dedupe, journal, timeout, then the dispatcher
//! ([`dispatch::Dispatch`]: routing by [`routing::RouteTable`], re-encoding, delivery, or the
//! queue; presence operations go to the presence service). The outcome travels back to the
//! adapter.
//!
//! # Adapters and their lifecycle
//!
//! `[sip]` and `[xmpp]` embed the adapters' own config structs; `[[irc]]` (one table per
//! network) and `[json]` are optional, each run as the adapter named by its `name`, which
//! must be listed in `adapters` (its place there is its routing order). Each adapter's local
//! domains route to it, and a source in them is accepted only from it. IRC and JSON are
//! *closed* adapters ([`routing::RouteTable::with_closed_adapters`]): every source they
//! submit must be an address they claim; they vouch for no foreign domain. Adapters start
//! in `adapters` order; one that fails to start is a down link `adapter:<name>` in `/links`
//! and `/metrics` and makes `/ready` 503, while the rest runs. Graceful shutdown (SIGTERM,
//! SIGINT): new operations get 503, operations in flight drain (bounded by
//! `limits.drain_secs`), then the adapters stop in reverse start order, then the timers and
//! the admin API, and the journal is flushed. Sample configurations in `deploy/config/` are parsed by a test.
//!
//! # Tests
//!
//! Unit tests per module (each middleware against a mock inner service; the presence engine
//! in virtual time in `presence/tests.rs`; the record writer's order and durability).
//! `tests/gateway.rs` runs the whole gateway in-process (real SIP adapter, mock adapters
//! for routing, queue and restart, the admin API over HTTP); `tests/crash.rs` and
//! `tests/journal.rs` abort a child process and check that nothing acknowledged is lost
//! and nothing is delivered twice; `tests/listeners.rs` and `tests/admin_security.rs` attack
//! the listeners and the admin API from outside; `tests/prosody.rs` is the real-peer test of
//! the component link. Figures of the store, the journal and the presence writer:
//! `docs/decisions/0003-sqlite-store.md`, `0004-journal-group-commit.md`,
//! `0007-presence-group-commit.md`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod aliases;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod gateway;
pub mod journal;
pub mod metrics;
pub mod outbound;
pub mod presence;
pub mod presence_service;
pub mod queue;
pub mod records;
pub mod reencode;
pub mod router;
pub mod routing;
pub mod secrets;
pub mod sip_store;
pub mod store;
pub mod xcap;
