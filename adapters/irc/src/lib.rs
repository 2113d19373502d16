//! IRC adapter (RFC 1459/2812): the gateway is a client of an IRC network.
//!
//! - [`proto`]: message syntax, nickname syntax and RFC 2812 case mapping. Sans-IO.
//! - [`nick`]: the reversible escaping of CPIM user parts into nicknames. Sans-IO.
//! - [`conn`]: one client connection's state machine: registration, 433 handling,
//!   keepalive, flood control, PING-barrier delivery outcomes. Sans-IO.
//! - [`mapping`]: IRC numerics to CPIM status codes, presence construction. Sans-IO.
//! - [`adapter`]: the tokio layer: the relay bot connection (with reconnect and backoff),
//!   per-user "puppet" connections up to a cap, presence watching, the adapter handle.

#![forbid(unsafe_code)]

pub mod adapter;
pub mod conn;
pub mod mapping;
pub mod nick;
pub mod proto;

pub use adapter::{start, IrcConfig, IrcError, IrcHandle};
