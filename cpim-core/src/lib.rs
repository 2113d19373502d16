//! The CPIM model and its codecs.
//!
//! This crate is sans-IO: it has no runtime, no sockets and no clock. Time, where an
//! operation needs it, is passed in by the caller.
//!
//! - [`address`]: `im:`, `pres:`, `sip:`, `sips:` and `xmpp:` addresses (RFC 3859/3860, RFC 3261, RFC 7622).
//! - [`domain`]: the one canonical form of a domain name (case, trailing dot, IDNA A-labels) every
//!   authorization decision compares in.
//! - [`model`]: the abstract operations message, subscribe, unsubscribe, notify and publish and their outcomes.
//! - [`presence`]: the abstract presence state (RFC 3863 tuples, RFC 4480 activities, RFC 4479 person).
//! - [`adapter`]: the interface every protocol adapter implements, and the one it calls into the core with.
//! - [`connlimit`]: connection caps per network source (IPv4 address, IPv6 /64) and in total, shared by every listener.

#![forbid(unsafe_code)]

pub mod adapter;
pub mod address;
pub mod addrmap;
pub mod connlimit;
pub mod cpim;
pub mod domain;
pub mod errmap;
pub mod imdn;
pub mod iscomposing;
pub mod model;
pub mod pidf;
pub mod presence;
pub mod rlmi;
pub mod sharded;
pub mod watcherinfo;
pub mod xml;

pub use address::{Address, AddressError, Scheme};
pub use model::{
    Message, Notify, Operation, Outcome, Publish, Status, Subscribe, SubscriptionState, TransId,
};
pub use presence::Presence;
