//! Watcher information of a local presentity (RFC 3857 event package
//! `presence.winfo`, RFC 3858 document `application/watcherinfo+xml`), built from the
//! engine's subscriptions and the presentity's remembered decisions.
//!
//! One `<watcher-list>` for the presentity and the `presence` package (RFC 3858 s3);
//! each watcher (RFC 3858 s3) with its status and the RFC 3857 s4.7.1 event that led
//! there: `pending`/`subscribe` (waiting for the decision), `active`/`subscribe`
//! (approved by the rules at once), `active`/`approved` (allowed by the presentity),
//! `terminated`/`rejected` (denied). The watcher's `id` is stable for the pair, so a
//! later document names the same watcher the same way.

use std::hash::{Hash, Hasher};
use std::time::Instant;

use cpim_core::address::{Address, Scheme};
use cpim_core::watcherinfo::{
    DocState, Watcher, WatcherEvent, WatcherInfo, WatcherList, WatcherStatus,
};

use super::{sub_key, PresenceEngine};

/// The event package whose watchers are listed (RFC 3856 s6.2).
pub const PACKAGE: &str = "presence";

/// A stable `id` for the watcher of a pair (RFC 3858 s3: unique per subscription).
fn watcher_id(watcher: &Address, presentity: &Address) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sub_key(watcher, presentity).hash(&mut h);
    format!("w{:016x}", h.finish())
}

/// The watcher as a URI: a JID as an `xmpp:` URI (RFC 5122), any other address as is.
fn watcher_uri(a: &Address) -> String {
    match a.scheme {
        Scheme::Xmpp => format!("xmpp:{a}"),
        _ => a.to_string(),
    }
}

impl PresenceEngine {
    /// The full-state watcherinfo document of a local presentity (RFC 3858 s3, s4:
    /// `version` as given, `state="full"`).
    pub fn watcher_info(&self, presentity: &Address, version: u64, now: Instant) -> WatcherInfo {
        let watchers = self
            .watchers_of(presentity, now)
            .into_iter()
            .filter(|e| e.status != "none")
            .map(|e| Watcher {
                uri: watcher_uri(&e.watcher),
                id: watcher_id(&e.watcher, presentity),
                status: WatcherStatus::from_text(e.status),
                event: WatcherEvent::from_text(e.event),
                display_name: None,
                expiration: e.expires_in,
                duration_subscribed: None,
                lang: None,
            })
            .collect();
        WatcherInfo {
            version,
            state: DocState::Full,
            lists: vec![WatcherList {
                resource: presentity.bare().to_string(),
                package: PACKAGE.to_owned(),
                watchers,
                extensions: Vec::new(),
            }],
            extensions: Vec::new(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::process::Command;

    /// Validates a watcherinfo document against the RFC 3858 schema of the shared
    /// `simple-xml-schemas` corpus with xmllint (an `xmllint` peer: skipped with a
    /// message when absent, a failure under CI).
    pub(in crate::presence) fn schema_valid(xml: &str) {
        // The shared folder next to the workspace (or next to the folder of its git
        // worktrees).
        let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let schema = ["../shared", "../../shared"].iter().find_map(|up| {
            std::fs::canonicalize(
                ws.join(up)
                    .join("corpora/simple-xml-schemas/sipsimple/watcherinfo.xsd"),
            )
            .ok()
        });
        let Some(schema) = cpim_testkit::peer_env::need(
            &[cpim_testkit::peer_env::Peer::Xmllint],
            schema,
            "the watcherinfo schema of the shared corpora is not found",
        ) else {
            return;
        };
        let Some(xmllint) = cpim_testkit::peer_env::need(
            &[cpim_testkit::peer_env::Peer::Xmllint],
            cpim_testkit::peer_env::program("CPIM_PEER_XMLLINT", "xmllint"),
            "xmllint is not found (CPIM_PEER_XMLLINT unset, no xmllint on PATH)",
        ) else {
            return;
        };
        let file = std::env::temp_dir().join(format!(
            "cpim-gw-winfo-{}-{:x}.xml",
            std::process::id(),
            xml.len() as u64 ^ (xml.as_ptr() as u64)
        ));
        std::fs::write(&file, xml).unwrap();
        let out = Command::new(xmllint)
            .arg("--noout")
            .arg("--nonet")
            .arg("--schema")
            .arg(&schema)
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "watcherinfo does not validate: {}\n{xml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
