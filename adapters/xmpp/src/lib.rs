//! XMPP adapter: XEP-0114 component and RFC 6120 server-to-server federation (sans-IO
//! core plus a tokio layer).
//!
//! Sans-IO modules (no tokio, time passed in): [`stream`] (incremental restricted-XML
//! stream parser), [`session`] (XEP-0114 component state machine with keep-alives and
//! pings), [`mapping`] (stanzas <-> operations), [`tracker`] (delivery outcomes with
//! the ordering barrier, unguessable stanza ids, and outcomes believed only from the
//! domain a stanza went to), [`backoff`], [`jid`] (XEP-0106), [`s2s`] and [`s2s_in`]
//! (RFC 6120 server-to-server streams: STARTTLS, SASL EXTERNAL, dialback, deadlines),
//! `sm` (XEP-0198 counters),
//! [`tls`] (identity and trust store for s2s), [`ns`] (the XML namespaces). The tokio
//! layer is [`adapter`]: [`start`] returns an [`XmppHandle`] whose [`XmppAdapter`]
//! implements `cpim_core::adapter::Adapter` and hands operations to the link of the
//! configured mode (`link::component`, `link::s2s`); the links never call back into the
//! adapter. The s2s listener admits connections through `cpim_listen`
//! (`s2s_max_connections_per_source`, 32, IPv6 per /64; `s2s_max_connections`, 1024;
//! backoff on EMFILE); past a cap a connection is closed at once. Reads of s2s
//! connections reach the hub through a bounded channel (256 reads of 16 KiB at most in
//! all): a peer faster than the gateway waits in its socket buffers.
//!
//! # Mapping
//!
//! [`mapping`] carries messages (chat, normal, headline, groupchat; body, subject, thread,
//! `xml:lang`, id) as `text/plain` (RFC 7572); XEP-0085 chat states as isComposing;
//! XEP-0184 receipts and XEP-0333 displayed markers as IMDN; presence with show, status and
//! priority as a `Notify` with one tuple per resource (RFC 8048 s4); subscribe, probe,
//! unsubscribe, subscribed and unsubscribed as the presence operations (RFC 8048 s5).
//! disco#info, disco#items, XEP-0092 version and XEP-0199 ping are answered; any other iq
//! get/set gets `service-unavailable`. Error stanzas map to status codes through
//! `cpim_core::errmap` (RFC 7247 s7.1), with one refinement: `service-unavailable` bounced
//! by a user's JID is the server's answer for a user it does not have (RFC 6121
//! s8.5.1), so 404 rather than a 503 the gateway's queue would retry. An error that
//! comes after a message's outcome was given (a client refusing it later) becomes the
//! RFC 5438 `failed` delivery notice for its sender when the message asked for negative
//! delivery notices (read back from its stanza id, [`ids`]). A malformed JID
//! gets `jid-malformed`, an unknown type `bad-request`; neither drops the link.
//!
//! # Links
//!
//! - Component mode: one task owns the TCP link and reconnects after a [`backoff`] delay.
//!   Every outgoing stanza has a `from` inside the component domain (servers refuse
//!   others): a source on another domain is written as the XEP-0106 escape of the whole
//!   address (`carol\40sip.example@<component>`), and stanzas to such a JID come back to
//!   the core as that address.
//! - S2s mode ([`Mode::S2s`]): one hub task owns every stream; outgoing streams are per
//!   (local domain, remote domain) pair, each with its own header `from` and its own
//!   dialback or SASL EXTERNAL, rather than XEP-0220 multiplexing. Peers are found through
//!   the static `srv_overrides`, then `_xmpp-server._tcp` SRV, then `domain:5269`. Link
//!   names are `s2s:<remote>` for the first local domain and `s2s:<local>-><remote>` for
//!   the others. Trust: `docs/decisions/0001-s2s-trust-store.md`, `docs/security.md`.
//! - Both: while a link is down, deliveries queue (bounded) or get 503, per config; a
//!   stanza leaves the queue when written, so nothing is sent twice; a stanza written on a
//!   link that dies before its outcome resolves 408. Batches of deliveries share one
//!   barrier ping per destination domain (`docs/decisions/0008-xmpp-batched-barrier.md`).
//! - S2s with XEP-0198 stream management (`sm` counters, enabled when the
//!   peer offers it, as Prosody with mod_smacks does after SASL EXTERNAL; offered to
//!   authenticated incoming streams, answered, and a last `<a/>` sent at close): a
//!   delivery the peer acknowledged succeeds when its stream is lost, one it did not is
//!   written again on the next stream with the same stanzas and ids, not 408
//!   (`link::s2s::resend`, `docs/decisions/0013-xep0198-on-s2s.md`). No resumption
//!   (no s2s peer offers it); XEP-0114 component streams have no stream management.
//! - Inbound, operations from message and presence stanzas go through per-(bare from,
//!   bare to) lanes, one for messages and one for presence, so a conversation reaches the
//!   core in the order it was written (RFC 6120 s10.1) while other pairs run in parallel.
//!
//! # Tests
//!
//! Unit tests per module, the session and s2s machines in virtual time and the parser fed
//! in 1-byte and random chunks. `tests/corpus.rs` runs the xmpp-parsers test stanzas of the
//! shared corpus through the parser. Without a real server: `tests/fake_server.rs`
//! (component link against an in-process server: silent server detected by ping, reconnect,
//! an unanswered barrier never turns into success, presence of one sender in arrival
//! order), `tests/component_outcomes.rs`, and the s2s tests `s2s_fake.rs` (two gateways
//! federating with TLS and dialback, SRV through an in-test DNS responder, liveness),
//! `s2s_outcomes.rs`, `s2s_deadlines.rs`, `s2s_dialback_attacks.rs`,
//! `s2s_sasl_external.rs`, `s2s_tls_policy.rs`. Real-peer tests (skipped without the
//! `CPIM_PEER_*` variables): `tests/prosody.rs` (a slixmpp client through the component on
//! Prosody and ejabberd; a restart of a Prosody of its own with messages queued meanwhile),
//! `tests/prosody_s2s.rs` and `tests/prosody_s2s_sasl.rs` (federation with Prosody). Fuzz
//! targets in `fuzz/` (`stream`, `component`, `s2s`, `jid`; `scripts/fuzz cpim-xmpp`).

#![forbid(unsafe_code)]

pub mod adapter;
pub mod backoff;
pub mod config;
pub mod element;
mod error;
pub mod ids;
pub mod jid;
mod lanes;
mod link;
pub mod mapping;
pub mod ns;
pub mod s2s;
mod s2s_core;
pub mod s2s_in;
pub mod session;
mod sm;
pub mod stream;
pub mod tls;
pub mod tracker;

pub use adapter::{start, XmppAdapter, XmppError, XmppHandle};
pub use config::{Mode, XmppConfig};
