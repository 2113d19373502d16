//! XMPP adapter: XEP-0114 component and RFC 6120 server-to-server federation (sans-IO
//! core plus a tokio layer).
//!
//! Sans-IO modules (no tokio, time passed in): [`stream`] (incremental restricted-XML
//! stream parser), [`session`] (XEP-0114 component state machine with keep-alives and
//! pings), [`mapping`] (stanzas <-> operations), [`tracker`] (delivery outcomes with
//! the ordering barrier, unguessable stanza ids, and outcomes believed only from the
//! domain a stanza went to), [`backoff`], [`jid`] (XEP-0106). The tokio layer is
//! [`adapter`]: [`start`] returns an [`XmppHandle`] whose [`XmppAdapter`] implements
//! `cpim_core::adapter::Adapter`.

#![forbid(unsafe_code)]

pub mod adapter;
pub mod backoff;
pub mod config;
pub mod element;
pub mod jid;
mod lanes;
pub mod mapping;
pub mod s2s;
mod s2s_link;
pub mod session;
pub mod stream;
pub mod tls;
pub mod tracker;

pub use adapter::{start, XmppAdapter, XmppError, XmppHandle};
pub use config::{Mode, XmppConfig};
