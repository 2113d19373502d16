//! The application layer of the SIP adapter: the transaction user (TU) above the
//! transaction layer of [`crate`].
//!
//! - [`adapter`]: [`adapter::start`], [`adapter::SipAdapter`] (the `Adapter` impl) and
//!   [`adapter::SipHandle`]; [`tu`]: the transaction user they drive, a dispatcher that
//!   reads each request once (`incoming`) and hands it to its method's handler
//!   (`method`: REGISTER, MESSAGE, SUBSCRIBE/NOTIFY, PUBLISH).
//! - `deliver`: core operations out to SIP (MESSAGE forking, SUBSCRIBE, NOTIFY);
//!   `auth_client`: the digest client answering 401/407 to what the gateway sends;
//!   `outbox`: the worker running the notifier's and subscriber's outputs in order;
//!   `persist`: writes of bindings, dialogs and publications to the store.
//! - [`config`]: `[sip]` configuration (domains, users, registrar limits, outbound proxy).
//! - [`digest`]: HTTP Digest authentication for SIP (RFC 3261 s22, RFC 8760, RFC 7616
//!   algorithms), server and client side. Sans-IO, time passed in.
//! - [`identity`]: who may speak for an identity beyond digest: flows (TCP/TLS only, never
//!   a UDP source address), trusted peers (CIDR), foreign domains (RFC 5922).
//! - [`limits`]: token buckets per source address (IPv6 /64) and caps on subscriptions,
//!   publications and bindings; 503 with Retry-After past them.
//! - [`registrar`]: the registrar and location service (RFC 3261 s10.3). Sans-IO.
//! - [`store`]: the [`store::SipStore`] persistence trait and its in-memory implementation.
//! - [`message`]: MESSAGE (RFC 3428) <-> [`cpim_core::model::Message`] (RFC 7572).
//! - [`presence`]: PUBLISH (RFC 3903), the notifier for SIP watchers and the subscriber
//!   toward SIP presence agents (RFC 6665, RFC 3856). Sans-IO.
//!
//! Time in this layer is wall-clock seconds since the Unix epoch, passed in by the caller
//! (`now: u64`), because bindings, subscriptions and publications are persisted and must
//! survive a restart; tests drive it in virtual time.

pub mod adapter;
mod auth_client;
pub mod config;
mod deliver;
pub mod digest;
pub mod identity;
mod incoming;
pub mod limits;
pub mod message;
mod method;
mod outbox;
mod persist;
pub mod presence;
pub mod registrar;
pub mod store;
pub mod tu;

pub use adapter::{start, SipAdapter, SipError, SipHandle};
pub use config::SipConfig;
pub use store::{MemoryStore, SipStore};
