//! The interface between the core and the protocol adapters.
//!
//! An adapter owns one protocol (SIP, XMPP, IRC, ...). In one direction it turns native
//! traffic into [`Operation`]s and submits them through the [`Ingress`] the gateway gives
//! it, answering its native peer only once the returned future yields the [`Outcome`]:
//! no success is sent before the target has accepted. In the other direction the gateway
//! calls [`Adapter::deliver`] for operations whose target the adapter serves, and the
//! adapter resolves that future once its peer has accepted or refused.
//!
//! The trait is runtime-neutral (plain `std::future::Future`), so this crate stays sans-IO.

use std::future::Future;
use std::pin::Pin;

use crate::address::Address;
use crate::model::{Operation, Outcome};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The state of one link an adapter maintains (an XMPP component stream, an s2s peer,
/// an IRC connection); reported by the admin API and the link metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Which link, e.g. `xmpp-component:xmpp.test` or `s2s:other.test`.
    pub name: String,
    /// Up and usable.
    pub up: bool,
    /// Operations waiting for the link to come back.
    pub queued: usize,
    /// A short description of the last problem, if any.
    pub last_error: Option<String>,
}

/// What a protocol adapter offers the core.
pub trait Adapter: Send + Sync + 'static {
    /// A short stable name (`sip`, `xmpp`, `irc`, `json`): used in config, logs and metrics.
    fn name(&self) -> &str;

    /// True if this adapter can reach `address` (by its domain or scheme); the router
    /// asks each adapter in configuration order when no route is configured explicitly.
    fn serves(&self, address: &Address) -> bool;

    /// True if the adapter's protocol can carry a `message/cpim` body intact (SIP, MSRP,
    /// the JSON protocol); false for plain XMPP, where the core unwraps the envelope
    /// (RFC 3922 s4).
    fn carries_cpim(&self) -> bool {
        false
    }

    /// True if this adapter's native senders learn each message's outcome (a SIP
    /// MESSAGE gets its final response, a JSON `message` its `result`), so a message
    /// lost in flight by a crash is retransmitted or reported as failed by the sender.
    /// False (the default) for protocols without a per-message acknowledgement (XMPP
    /// `<message/>`, IRC `PRIVMSG`): their messages count as accepted once read, and the
    /// gateway writes them to its journal before it attempts delivery, so a crash
    /// cannot lose them.
    fn acknowledges_messages(&self) -> bool {
        false
    }

    /// Delivers an operation to the target on this adapter's side. The future resolves
    /// once the target side has accepted it (2xx) or refused it (mapped error), or with a
    /// 408 when it could not find out in time.
    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome>;

    /// The adapter's links and their state.
    fn links(&self) -> Vec<LinkStatus> {
        Vec::new()
    }
}

/// What the core offers an adapter: the way in.
pub trait Ingress: Send + Sync + 'static {
    /// Submits an operation that came in on `adapter`'s side. The future resolves with
    /// the outcome the adapter must report to its native peer.
    fn submit(&self, adapter: &str, op: Operation) -> BoxFuture<'static, Outcome>;

    /// True if `domain` is served by an adapter other than `adapter` (a local domain, a
    /// configured route or an adapter's own claim; never the default route). An adapter
    /// that folds foreign addresses into its own namespace (XMPP component mode writes
    /// `sip:carol@sip.example` as `carol\40sip.example@<component>`, XEP-0106) unfolds an
    /// address only into such a domain, so that a user whose name holds an `@`
    /// (`sip:gina%40home@...`) keeps it. Without a routing table every domain counts.
    fn serves_elsewhere(&self, adapter: &str, domain: &str) -> bool {
        let _ = (adapter, domain);
        true
    }

    /// The watcher information (RFC 3858, full state, `version` 0) of one of the core's
    /// own presentities, for an adapter that serves the `presence.winfo` event package
    /// (RFC 3857) to its users; `None` when the core keeps none for `presentity` (not a
    /// local presentity, or no presence engine). The adapter authorizes the subscriber
    /// and numbers the documents of each subscription.
    fn watcher_info(&self, presentity: &Address) -> Option<crate::watcherinfo::WatcherInfo> {
        let _ = presentity;
        None
    }
}
