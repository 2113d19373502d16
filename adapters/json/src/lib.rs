//! JSON protocol adapter: newline-delimited JSON over TCP and the same frames over
//! WebSocket, for systems that speak neither SIP nor XMPP (see `PROTOCOL.md`).
//!
//! - [`frame`]: the frames of protocol version 1 (serde, unknown members refused).
//! - [`codec`]: newline framing with a size limit; [`ws`]: RFC 6455 framing. Sans-IO.
//! - [`session`]: one client's session state machine (hello/login, address binding,
//!   rate limit, operation <-> frame mapping, outcome correlation). Sans-IO.
//! - [`server`]: the tokio layer: listeners (connection caps per source and in total,
//!   EMFILE backoff, via `cpim_listen`), connections (hello and frame deadlines that
//!   trickled bytes do not move), the adapter handle.
//!
//! Fuzzing: `fuzz/` (outside the workspace; `scripts/fuzz cpim-json`) has `json_frame`
//! (any line parses or is refused; parse -> serialize -> parse agrees) and `json_framing`
//! (newline and WebSocket framing fed in arbitrary chunks give what the whole input gives;
//! the opening handshake does not panic).

#![forbid(unsafe_code)]

pub mod codec;
pub mod frame;
pub mod server;
pub mod session;
pub mod ws;

pub use server::{start, JsonConfig, JsonError, JsonHandle, TokenConfig};

/// A framing problem in what a client sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame longer than the limit; it was skipped.
    #[error("frame longer than {limit} bytes; skipped")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The WebSocket framing is broken; the connection cannot continue.
    #[error("WebSocket protocol error: {0}")]
    Protocol(String),
    /// The WebSocket opening handshake is not acceptable.
    #[error("WebSocket handshake refused: {0}")]
    Handshake(String),
}
