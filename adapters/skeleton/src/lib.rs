//! The adapter skeleton: the smallest complete protocol adapter, for a made-up line
//! protocol "SKEL". Copy this crate to start a new adapter; every place to change is
//! marked `// ADAPT:` (see `docs/adapter-guide.md`).
//!
//! - [`codec`]: the wire format (line framing with a size limit, parsing that names what is
//!   wrong). Sans-IO.
//! - [`session`]: one client's state machine: login, native <-> CPIM mapping, outcome
//!   correlation, delivery deadlines, keep-alive. Sans-IO, time passed in.
//! - [`server`]: the tokio layer: listener, one task per connection, the [`SkelHandle`]
//!   implementing [`cpim_core::adapter::Adapter`].
//!
//! SKEL: `LOGIN id user secret`, `MSG id to body`, `PRES id state [note]`, answered by
//! `OK id` or `ERR id code reason`; towards the client `MSG id from body` and
//! `NOTIFY id from state [note]`, answered the same way; `PING`/`PONG`. An oversize line
//! gets `ERR - 413` once and is skipped without being buffered; a malformed one gets
//! `ERR <id> 400 <what is wrong>` and the session goes on. `deliver` resolves with the
//! client's `OK`/`ERR`, 408 after `deliver_timeout_ms` or when the connection drops with
//! the answer outstanding, 480 when the user is not logged in.
//!
//! Tests: codec and session unit tests (virtual time), `tests/socket.rs` over a real
//! socket with a fake core.

#![forbid(unsafe_code)]

pub mod codec;
pub mod server;
pub mod session;

pub use server::{start, SkelConfig, SkelError, SkelHandle};
