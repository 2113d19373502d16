//! XMPP adapter: XEP-0114 component and RFC 6120 server-to-server federation (sans-IO
//! core plus a tokio layer).
//!
//! Sans-IO modules (no tokio, time passed in): [`stream`] (incremental restricted-XML
//! stream parser), [`session`] (XEP-0114 component state machine with keep-alives and
//! pings), [`mapping`] (stanzas <-> operations), [`tracker`] (delivery outcomes with
//! the ordering barrier, unguessable stanza ids, and outcomes believed only from the
//! domain a stanza went to), [`backoff`], [`jid`] (XEP-0106), [`s2s`] and [`s2s_in`]
//! (RFC 6120 server-to-server streams: STARTTLS, SASL EXTERNAL, dialback, deadlines),
//! [`tls`] (identity and trust store for s2s). The tokio layer is
//! [`adapter`]: [`start`] returns an [`XmppHandle`] whose [`XmppAdapter`] implements
//! `cpim_core::adapter::Adapter`. The s2s listener admits connections through
//! `cpim_listen` (`s2s_max_connections_per_source`, 32, IPv6 per /64;
//! `s2s_max_connections`, 1024; backoff on EMFILE); past a cap a connection is closed
//! at once. Reads of s2s connections reach the hub through a bounded channel (256 reads
//! of 16 KiB at most in all): a peer faster than the gateway waits in its socket buffers.

#![forbid(unsafe_code)]

pub mod adapter;
pub mod backoff;
pub mod config;
pub mod element;
pub mod jid;
mod lanes;
pub mod mapping;
pub mod s2s;
pub mod s2s_in;
mod s2s_link;
pub mod session;
pub mod stream;
pub mod tls;
pub mod tracker;

pub use adapter::{start, XmppAdapter, XmppError, XmppHandle};
pub use config::{Mode, XmppConfig};
