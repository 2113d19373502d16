//! The adapter skeleton: the smallest complete protocol adapter, for a made-up line
//! protocol "SKEL". Copy this crate to start a new adapter; every place to change is
//! marked `// ADAPT:` (see ARCHITECTURE.md, "The adapter guide").
//!
//! - [`codec`]: the wire format (line framing with a size limit, parsing that names what is
//!   wrong). Sans-IO.
//! - [`session`]: one client's state machine: login, native <-> CPIM mapping, outcome
//!   correlation, delivery deadlines, keep-alive. Sans-IO, time passed in.
//! - [`server`]: the tokio layer: listener, one task per connection, the [`SkelHandle`]
//!   implementing [`cpim_core::adapter::Adapter`].

#![forbid(unsafe_code)]

pub mod codec;
pub mod server;
pub mod session;

pub use server::{start, SkelConfig, SkelError, SkelHandle};
