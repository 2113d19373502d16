//! The CPIM model and its codecs.
//!
//! This crate is sans-IO: it has no runtime, no sockets and no clock. Time, where an
//! operation needs it, is passed in by the caller.
//!
//! - [`address`]: `im:`, `pres:`, `sip:`, `sips:` and `xmpp:` addresses (RFC 3859/3860, RFC 3261, RFC 7622).
//! - [`domain`]: the one canonical form of a domain name (case, trailing dot, IDNA A-labels) every
//!   authorization decision compares in.
//! - [`model`]: the abstract operations message, subscribe, unsubscribe, notify and publish and their outcomes.
//! - [`status`]: the SIP-style status code of an outcome, with named constants.
//! - [`presence`]: the abstract presence state (RFC 3863 tuples, RFC 4480 activities, RFC 4479 person).
//! - [`adapter`]: the interface every protocol adapter implements, and the one it calls into the core with.
//! - [`connlimit`]: connection caps per network source (IPv4 address, IPv6 /64) and in total, shared by every listener.
//! - [`sharded`]: a hash map split over shards, for per-message tables whose growth must not
//!   stall the messages behind them (SIP transactions, the router's dedupe cache).
//!
//! Codecs and mappings:
//!
//! - [`cpim`]: `message/cpim` (RFC 3862), lossless: `serialize(parse(x)) == x` for every
//!   accepted input, so signatures over the inner object survive (RFC 3923); headers added
//!   by code are written canonically. Bounded by `cpim::Limits` (4 MiB, 256 headers, 16 KiB
//!   lines).
//! - [`addrmap`]: SIP URI <-> JID (RFC 7247 s6, XEP-0106), with the identity's home side
//!   deciding the escaping; [`errmap`]: the RFC 7247 s7.1/s7.2 status tables.
//! - [`xml`]: the one restricted XML reader and writer of the project (no DTD, no entities
//!   beyond the predefined ones, bounded size, depth, elements and attributes); the XMPP
//!   adapter reuses its element type, writer and character filter. Rule for every XML
//!   codec: parse leniently, emit strictly in schema order, keep unknown elements as XML
//!   text so they survive any number of parse/encode rounds.
//! - [`pidf`] (RFC 3863 with RPID, RFC 4480, and the data model, RFC 4479), [`imdn`]
//!   (RFC 5438), [`iscomposing`] (RFC 3994), [`watcherinfo`] (RFC 3858), [`rlmi`]
//!   (RFC 4662 s5), [`pidf_diff`] (RFC 5262 partial PIDF with the RFC 5261 patch
//!   operations), [`filter`] (RFC 4661 event notification filters, applied as RFC 4660
//!   says): one module per specification; closed vocabularies are enums with an
//!   `Other` fallback.
//!
//! # Tests, fuzzing, benchmarks
//!
//! Unit tests beside each module (the XML reader's security cases in `xml::tests`:
//! DOCTYPE, billion laughs, undeclared entities, forbidden characters, depth, size, element
//! and attribute bombs; the proptest `sip_jid_sip_identity` in `addrmap`). `tests/cpim_corpus.rs`
//! runs the message/cpim corpus (a `.multipart` file is a multipart/mixed body and is
//! refused as message/cpim; its message/cpim part parses). `tests/xml_corpus.rs` runs every
//! XML corpus file against its expectation and validates emitted documents with
//! `xmllint --schema` (skipped when the shared corpus folder or xmllint is absent);
//! `tests/xml_roundtrip.rs` has proptests for the PIDF, IMDN and isComposing round trips
//! and for the reader on arbitrary bytes. Fuzz targets in `fuzz/` (outside the workspace,
//! `scripts/fuzz cpim-core`): `cpim_message`, `addrmap`, `domain`, `pidf`, `imdn`,
//! `iscomposing`, `watcherinfo`, `rlmi` (for the codecs: if it parses, encode and re-parse
//! give an equal value). Criterion benches `cpim_text` and `xml_codecs`; figures in
//! `docs/benchmarks.md`.

#![forbid(unsafe_code)]

pub mod adapter;
pub mod address;
pub mod addrmap;
pub mod coding;
pub mod connlimit;
pub mod cpim;
pub mod domain;
pub mod errmap;
pub mod filter;
pub mod imdn;
pub mod iscomposing;
pub mod model;
pub mod pidf;
pub mod pidf_diff;
pub mod presence;
pub mod rlmi;
pub mod sharded;
pub mod status;
pub mod watcherinfo;
pub mod xml;

pub use address::{Address, AddressError, Scheme};
pub use model::{
    Message, Notify, Operation, Outcome, Publish, Status, Subscribe, SubscriptionState, TransId,
};
pub use presence::Presence;
pub use status::StatusCode;
