//! A sans-IO XCAP server (RFC 4825) with the SIMPLE application usages:
//! `resource-lists` and `rls-services` (RFC 4826), `pres-rules` (RFC 5025) and
//! `xcap-caps` (RFC 4825 s12). The HTTP layer parses a request into a
//! [`Request`] (with the user it authenticated), hands it to
//! [`XcapServer::handle`] and sends the [`Response`]; changed documents come out
//! of [`XcapServer::poll_change`] for the caller to persist and go back in with
//! [`XcapServer::restore`] at start. No I/O, no clock, no tokio.
//!
//! Modules:
//! - [`uri`]: XCAP URIs (s6): document selector, node selector, `xmlns()` bindings.
//! - [`select`]: evaluating a node selector over a document tree (s6.3).
//! - [`store`]: the documents as written, their ETags, the change queue.
//! - [`decls`]: the root's namespace declarations, kept across rewrites.
//! - [`ops`]: element and attribute GET/PUT/DELETE (s7, s8.2).
//! - [`server`]: routing, authorization, caps, conditional requests, documents (s8).
//! - [`error`]: the error conditions and the `<xcap-error>` body (s11).
//! - [`usage`]: one module per application usage and its validation (s5).

pub mod decls;
pub mod error;
pub mod ops;
pub mod select;
pub mod server;
pub mod store;
pub mod uri;
pub mod usage;

pub use error::{Condition, Exists, XcapError};
pub use server::{Config, Request, Response, XcapServer};
pub use store::Change;
