//! The documents: their text exactly as last written (a GET of a document returns
//! the bytes of its last PUT), an ETag each (RFC 4825 s7.11, s8.5: a new,
//! unguessable value on every change: SHA-256 of a secret seed and a write
//! counter), per-user counts for the caps, the global index of rls-services
//! service URIs (RFC 4826 s4.3.5), and the queue of changes the caller persists.

use std::collections::{BTreeMap, HashMap, VecDeque};

use sha2::{Digest, Sha256};

use crate::uri::{Tree, XcapUri};

/// Which document: AUID, tree and path inside it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocKey {
    /// The application usage.
    pub auid: String,
    /// Users' (with the XUI) or global tree.
    pub tree: Tree,
    /// Document path inside the tree.
    pub name: String,
}

impl DocKey {
    /// The document a URI names.
    pub fn from_uri(u: &XcapUri) -> DocKey {
        DocKey {
            auid: u.auid.clone(),
            tree: u.tree.clone(),
            name: u.document.clone(),
        }
    }
}

/// A change to persist: the document's new text, or `None` when it was deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The XUI whose document changed.
    pub user: String,
    /// Its AUID.
    pub auid: String,
    /// Its path in the user's tree.
    pub document: String,
    /// The new content; `None` for a deletion.
    pub content: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct Stored {
    text: String,
    etag: String,
}

/// All documents.
#[derive(Debug)]
pub struct Store {
    docs: BTreeMap<DocKey, Stored>,
    per_user: HashMap<String, usize>,
    bytes: usize,
    services: HashMap<String, DocKey>,
    seed: [u8; 32],
    counter: u64,
    changes: VecDeque<Change>,
}

impl Store {
    /// An empty store whose ETags derive from `seed` (keep it secret and random).
    pub fn new(seed: [u8; 32]) -> Store {
        Store {
            docs: BTreeMap::new(),
            per_user: HashMap::new(),
            bytes: 0,
            services: HashMap::new(),
            seed,
            counter: 0,
            changes: VecDeque::new(),
        }
    }

    /// A fresh ETag value (without the quotes).
    pub fn next_etag(&mut self) -> String {
        self.counter += 1;
        let mut h = Sha256::new();
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        hex::encode(&h.finalize()[..16])
    }

    /// The text of a document.
    pub fn text(&self, key: &DocKey) -> Option<&str> {
        self.docs.get(key).map(|d| d.text.as_str())
    }

    /// The ETag of a document.
    pub fn etag(&self, key: &DocKey) -> Option<&str> {
        self.docs.get(key).map(|d| d.etag.as_str())
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    /// True when there is no document.
    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Bytes of all documents.
    pub fn total_bytes(&self) -> usize {
        self.bytes
    }

    /// Number of documents of one user.
    pub fn count_of(&self, user: &str) -> usize {
        self.per_user.get(user).copied().unwrap_or(0)
    }

    /// The document holding an rls-services service URI.
    pub fn service_owner(&self, uri: &str) -> Option<&DocKey> {
        self.services.get(uri)
    }

    /// Stores `text` under `key` with a new ETag, which it returns; `services` are
    /// the document's rls-services service URIs. `persist` queues a [`Change`].
    pub fn put(
        &mut self,
        key: &DocKey,
        text: String,
        services: Vec<String>,
        persist: bool,
    ) -> String {
        let etag = self.next_etag();
        if persist {
            self.queue(key, Some(text.clone().into_bytes()));
        }
        self.services.retain(|_, k| k != key);
        for s in services {
            self.services.insert(s, key.clone());
        }
        self.bytes += text.len();
        let old = self.docs.insert(
            key.clone(),
            Stored {
                text,
                etag: etag.clone(),
            },
        );
        if let Some(o) = &old {
            self.bytes -= o.text.len();
        }
        if old.is_none() {
            if let Tree::User(u) = &key.tree {
                *self.per_user.entry(u.clone()).or_default() += 1;
            }
        }
        etag
    }

    /// Removes a document; false if there was none.
    pub fn remove(&mut self, key: &DocKey) -> bool {
        let Some(old) = self.docs.remove(key) else {
            return false;
        };
        self.bytes -= old.text.len();
        self.services.retain(|_, k| k != key);
        if let Tree::User(u) = &key.tree {
            if let Some(n) = self.per_user.get_mut(u) {
                *n -= 1;
                if *n == 0 {
                    self.per_user.remove(u);
                }
            }
        }
        self.queue(key, None);
        true
    }

    fn queue(&mut self, key: &DocKey, content: Option<Vec<u8>>) {
        if let Tree::User(u) = &key.tree {
            self.changes.push_back(Change {
                user: u.clone(),
                auid: key.auid.clone(),
                document: key.name.clone(),
                content,
            });
        }
    }

    /// The next change to persist.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }
}
