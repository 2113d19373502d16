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
