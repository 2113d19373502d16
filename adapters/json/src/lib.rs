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
//! # Sessions
//!
//! `hello {version, token}` is checked against the configured tokens; a token binds the
//! session to one or more addresses, and a `from` outside them is refused with 403, so a
//! client cannot forge a sender (the gateway's router also treats this adapter as closed).
//! Operation frames become `Operation`s with TransIds `(session id << 32) | counter`; the
//! `outcome` frame carries the client's `id` and is sent only when the core's outcome
//! resolves. Operations for the client are written with ids `s1`, `s2`, ... and resolve
//! with the client's `outcome` (408 after `deliver_timeout_ms`, 480 when no session is open
//! for the address or the client disconnects); the latest login for an address receives.
//! `carries_cpim()` is true: a `message/cpim` body crosses unchanged; UTF-8 bodies travel
//! as JSON strings, others as base64 with `"encoding":"base64"`.
//!
//! # Robustness
//!
//! Framing and parsing are separate: an oversize line or WebSocket message is reported
//! once (413) and skipped without being buffered. Malformed or truncated JSON, an unknown
//! `type` or member, a bad address or bad base64 each get an `error` frame naming the
//! problem (and the frame's `id` when it can be read), and the session continues. Only
//! what breaks the stream closes it, after an `error` frame with `fatal: true`: a WebSocket
//! framing violation (close 1002), a bad token, a missing hello. A token bucket per session
//! (`rate_per_sec`, `rate_burst`) covers every frame but `outcome` and `pong`; refused
//! frames cost a token and a debt of one burst closes the session, so error frames cannot
//! be used as an amplifier. Why the WebSocket framing is the crate's own:
//! `docs/decisions/0005-own-websocket-framing.md`.
//!
//! # Tests
//!
//! Unit tests per module (line and WebSocket framing with proptests over chunking, the
//! RFC 6455 s1.3 accept-key vector, session cases for every kind of bad frame, forged
//! senders, rate and timeouts); `tests/sessions.rs` runs real TCP and WebSocket sessions
//! against a fake core, every bad frame followed by a working one, and the Python client
//! of `clients/python/` (skipped without `python3`); `tests/protocol_doc.rs` checks every
//! JSON example of `PROTOCOL.md` and the frames the crate writes against `schema/v1.json`.
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
