//! Load generator that drives a running gateway (RFC 7501/7502 method).
//!
//! - [`template`]: pre-built requests with fixed-width tag slots patched per message.
//! - [`pacing`]: open-loop schedule at a fixed offered rate.
//! - [`stats`]: loss/duplicate detection by sequence number, percentiles.
//! - [`probe`]: the shared measurement state (one process, one clock).
//! - [`sip`], [`xmpp`]: the bytes of both ends (SIP UAC/UAS, XEP-0114 component server).
//! - [`roles`]: the tokio roles, one `current_thread` runtime per thread.
//! - [`procstat`]: CPU time and peak RSS of the system under test from `/proc`.
//! - [`search`]: the zero-failure rate search (RFC 7502 s5).
//!
//! A SIP request that reaches the UAS again with the same tag and Via branch is a
//! retransmission (counted, not a failure); with another branch it is a duplicate delivery
//! (a failure). The generator never retransmits over UDP: a lost datagram is a failure.
//! `scripts/bench` runs it; method and figures are in `docs/benchmarks.md`.

#![forbid(unsafe_code)]

pub mod pacing;
pub mod probe;
pub mod procstat;
pub mod report;
pub mod roles;
pub mod search;
pub mod sip;
pub mod stats;
pub mod template;
pub mod xmpp;
