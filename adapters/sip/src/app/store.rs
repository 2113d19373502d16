//! Persistence of the SIP application state: registrations, subscription dialogs and
//! publications.
//!
//! The adapter writes through [`SipStore`] after every change and reads everything back
//! at start, so a restarted gateway keeps its registrations (UAs need not re-register)
//! and its subscriptions (in-dialog NOTIFYs and refreshes keep working). The gateway
//! implements the trait on its durable store; [`MemoryStore`] is the in-memory version
//! for tests and for running without persistence. Records are plain serde structs so a
//! store may keep them as JSON.

use std::collections::HashMap;
use std::sync::Mutex;

use cpim_core::adapter::BoxFuture;
use serde::{Deserialize, Serialize};

/// One registered contact of an address of record (RFC 3261 s10.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BindingRecord {
    /// The AOR, `sip:user@domain`.
    pub aor: String,
    /// The Contact URI, as registered.
    pub contact: String,
    /// The q value (0.0 to 1.0), if given.
    pub q: Option<f32>,
    /// Call-ID of the REGISTER that created or last refreshed it.
    pub call_id: String,
    /// Its CSeq number.
    pub cseq: u32,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// The flow it was registered over (`udp:192.0.2.1:5060`), used to trust requests
    /// arriving over the same flow and to reach a UA behind NAT.
    pub flow: Option<String>,
    /// The stream connection it was registered over (see
    /// [`super::tu::Source::connection`]). Not stored: connections do not outlive the
    /// process, and neither does the trust bound to them.
    #[serde(skip)]
    pub connection: Option<u64>,
    /// The digest username that registered it; `None` if registered without digest
    /// (a trusted peer).
    pub authenticated_user: Option<String>,
    /// `+sip.instance` of the contact (RFC 5626), if any.
    pub instance: Option<String>,
    /// The UA at this binding sent a `message/cpim` MESSAGE (RFC 3862): the gateway writes
    /// to it in `message/cpim` too (`[sip] cpim_wrap = "learn"`, see
    /// [`super::config::CpimWrap`]). Kept across refreshes and restarts.
    #[serde(default)]
    pub cpim: bool,
}

/// Which side of a subscription dialog the gateway is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DialogRole {
    /// The gateway is the notifier: a SIP watcher subscribed to a presentity behind
    /// another adapter.
    Notifier,
    /// The gateway is the subscriber: a watcher on another protocol watches a SIP
    /// presentity.
    Subscriber,
    /// The gateway is the notifier of a `presence.winfo` subscription (RFC 3857): a SIP
    /// user watches its own watchers.
    WinfoNotifier,
}

/// One subscription dialog (RFC 6665 s4; RFC 3261 s12 dialog state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DialogRecord {
    /// Which side the gateway is on.
    pub role: DialogRole,
    /// Call-ID.
    pub call_id: String,
    /// The gateway's tag.
    pub local_tag: String,
    /// The peer's tag (`None` until the dialog is confirmed, subscriber side).
    pub remote_tag: Option<String>,
    /// The gateway-side URI (the presentity as notifier, the watcher as subscriber).
    pub local_uri: String,
    /// The peer-side URI.
    pub remote_uri: String,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: String,
    /// Route set, in the order requests carry it.
    pub route_set: Vec<String>,
    /// Last CSeq the gateway sent in this dialog.
    pub local_cseq: u32,
    /// Last CSeq the peer sent (0: none yet).
    pub remote_cseq: u32,
    /// The watcher (abstract address, as the core knows it).
    pub watcher: String,
    /// The presentity (abstract address, as the core knows it).
    pub presentity: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// Subscription state: `pending`, `active` or `terminated`.
    pub state: String,
    /// The flow the dialog runs over, if it is bound to one.
    pub flow: Option<String>,
}

impl DialogRecord {
    /// The key a store files this record under.
    pub fn key(&self) -> String {
        format!("{}|{}", self.call_id, self.local_tag)
    }
}

/// One publication (RFC 3903 event state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublicationRecord {
    /// The entity tag currently naming it.
    pub etag: String,
    /// The presentity (AOR).
    pub aor: String,
    /// Expiry, seconds since the Unix epoch.
    pub expires_at: u64,
    /// When the document was last published or modified (an initial PUBLISH or a
    /// modify, not a refresh; RFC 3903 s4), seconds since the Unix epoch: the order of
    /// composition. 0 in records written before it existed.
    #[serde(default)]
    pub modified_at: u64,
    /// Content-Type of the published document.
    pub content_type: String,
    /// The published document, as received.
    pub body: Vec<u8>,
}

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backing store refused or failed; the text says why.
    #[error("SIP store: {0}")]
    Backend(String),
}

/// Durable state of the SIP adapter. All methods may be called concurrently.
pub trait SipStore: Send + Sync + 'static {
    /// Replaces all bindings of `aor` (an empty slice removes the AOR).
    fn put_bindings<'a>(
        &'a self,
        aor: &'a str,
        bindings: &'a [BindingRecord],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Every stored binding (expired ones included; the registrar drops them).
    fn load_bindings(&self) -> BoxFuture<'_, Result<Vec<BindingRecord>, StoreError>>;
    /// Inserts or replaces a dialog, keyed by [`DialogRecord::key`].
    fn put_dialog<'a>(&'a self, dialog: &'a DialogRecord) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Removes a dialog by key.
    fn remove_dialog<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Every stored dialog.
    fn load_dialogs(&self) -> BoxFuture<'_, Result<Vec<DialogRecord>, StoreError>>;
    /// Inserts or replaces a publication; `old_etag` (if any) is removed at the same time.
    fn put_publication<'a>(
        &'a self,
        old_etag: Option<&'a str>,
        publication: &'a PublicationRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Removes a publication by entity tag.
    fn remove_publication<'a>(&'a self, etag: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Every stored publication.
    fn load_publications(&self) -> BoxFuture<'_, Result<Vec<PublicationRecord>, StoreError>>;
}

#[derive(Debug, Default)]
struct Tables {
    bindings: HashMap<String, Vec<BindingRecord>>,
    dialogs: HashMap<String, DialogRecord>,
    publications: HashMap<String, PublicationRecord>,
}

/// An in-memory [`SipStore`]: state survives an adapter restart within one process
/// (tests use that), not a process restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        let mut t = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut t)
    }
}

impl SipStore for MemoryStore {
    fn put_bindings<'a>(
        &'a self,
        aor: &'a str,
        bindings: &'a [BindingRecord],
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.with(|t| {
            if bindings.is_empty() {
                t.bindings.remove(aor);
            } else {
                t.bindings.insert(aor.to_owned(), bindings.to_vec());
            }
        });
        Box::pin(async { Ok(()) })
    }

    fn load_bindings(&self) -> BoxFuture<'_, Result<Vec<BindingRecord>, StoreError>> {
        let v = self.with(|t| t.bindings.values().flatten().cloned().collect());
        Box::pin(async { Ok(v) })
    }

    fn put_dialog<'a>(&'a self, dialog: &'a DialogRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        self.with(|t| t.dialogs.insert(dialog.key(), dialog.clone()));
        Box::pin(async { Ok(()) })
    }

    fn remove_dialog<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.with(|t| t.dialogs.remove(key));
        Box::pin(async { Ok(()) })
    }

    fn load_dialogs(&self) -> BoxFuture<'_, Result<Vec<DialogRecord>, StoreError>> {
        let v = self.with(|t| t.dialogs.values().cloned().collect());
        Box::pin(async { Ok(v) })
    }

    fn put_publication<'a>(
        &'a self,
        old_etag: Option<&'a str>,
        publication: &'a PublicationRecord,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.with(|t| {
            if let Some(old) = old_etag {
                t.publications.remove(old);
            }
            t.publications
                .insert(publication.etag.clone(), publication.clone());
        });
        Box::pin(async { Ok(()) })
    }

    fn remove_publication<'a>(&'a self, etag: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        self.with(|t| t.publications.remove(etag));
        Box::pin(async { Ok(()) })
    }

    fn load_publications(&self) -> BoxFuture<'_, Result<Vec<PublicationRecord>, StoreError>> {
        let v = self.with(|t| t.publications.values().cloned().collect());
        Box::pin(async { Ok(v) })
    }
}
