//! [`cpim_sip::app::SipStore`] on the durable store: bindings, subscription dialogs and
//! publications of the SIP adapter as JSON records. A new binding also wakes the
//! store-and-forward queue for that address of record (delivery on registration).

use std::sync::{Arc, OnceLock};

use cpim_core::adapter::BoxFuture;
use cpim_core::address::Address;
use cpim_sip::app::store::{
    BindingRecord, DialogRecord, PublicationRecord, SipStore, StoreError as SipStoreError,
};

use crate::queue::Queue;
use crate::store::{kind, RecordOp, Store, StoreError};

/// The SIP adapter's view of the store.
#[derive(Debug)]
pub struct GatewaySipStore {
    store: Store,
    queue: OnceLock<Arc<Queue>>,
}

impl GatewaySipStore {
    /// Over `store`.
    pub fn new(store: Store) -> Self {
        GatewaySipStore {
            store,
            queue: OnceLock::new(),
        }
    }

    /// Registrations wake this queue.
    pub fn set_queue(&self, q: Arc<Queue>) {
        let _ = self.queue.set(q);
    }

    /// Durable writes go through the store's group-commit writer: concurrent SIP
    /// transactions share one fsync (each still waits for its own commit before the
    /// adapter answers).
    async fn commit_all(&self, ops: Vec<RecordOp>) -> Result<(), SipStoreError> {
        self.store.writer().map_err(backend)?.commit(ops).await;
        Ok(())
    }

    async fn commit(&self, op: RecordOp) -> Result<(), SipStoreError> {
        self.commit_all(vec![op]).await
    }

    /// Every binding, for the admin API.
    pub fn bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
        let mut out = Vec::new();
        for (_, data) in self.store.load(kind::SIP_BINDINGS)? {
            let v: Vec<BindingRecord> =
                serde_json::from_str(&data).map_err(crate::records::RecordError::from)?;
            out.extend(v);
        }
        Ok(out)
    }
}

fn backend(e: impl std::fmt::Display) -> SipStoreError {
    SipStoreError::Backend(e.to_string())
}

fn load<T: serde::de::DeserializeOwned + Send + 'static>(
    store: &Store,
    k: &'static str,
) -> Result<Vec<T>, SipStoreError> {
    store
        .load(k)
        .map_err(backend)?
        .into_iter()
        .map(|(_, d)| serde_json::from_str(&d).map_err(backend))
        .collect()
}

impl SipStore for GatewaySipStore {
    fn put_bindings<'a>(
        &'a self,
        aor: &'a str,
        bindings: &'a [BindingRecord],
    ) -> BoxFuture<'a, Result<(), SipStoreError>> {
        Box::pin(async move {
            let key = aor.to_owned();
            if bindings.is_empty() {
                self.commit(RecordOp::Remove {
                    kind: kind::SIP_BINDINGS,
                    key,
                })
                .await?;
                return Ok(());
            }
            let data = serde_json::to_string(bindings).map_err(backend)?;
            let expires_at = bindings.iter().map(|b| b.expires_at).max();
            self.commit(RecordOp::Put {
                kind: kind::SIP_BINDINGS,
                key,
                expires_at,
                data,
            })
            .await?;
            if let (Some(q), Ok(a)) = (self.queue.get(), Address::parse(aor)) {
                q.wake_destination(&crate::presence::user_key(&a));
            }
            Ok(())
        })
    }

    fn load_bindings(&self) -> BoxFuture<'_, Result<Vec<BindingRecord>, SipStoreError>> {
        Box::pin(async move {
            let v: Vec<Vec<BindingRecord>> = load(&self.store, kind::SIP_BINDINGS)?;
            Ok(v.into_iter().flatten().collect())
        })
    }

    fn put_dialog<'a>(
        &'a self,
        dialog: &'a DialogRecord,
    ) -> BoxFuture<'a, Result<(), SipStoreError>> {
        Box::pin(async move {
            let data = serde_json::to_string(dialog).map_err(backend)?;
            self.commit(RecordOp::Put {
                kind: kind::SIP_DIALOG,
                key: dialog.key(),
                expires_at: Some(dialog.expires_at),
                data,
            })
            .await
        })
    }

    fn remove_dialog<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), SipStoreError>> {
        Box::pin(async move {
            self.commit(RecordOp::Remove {
                kind: kind::SIP_DIALOG,
                key: key.to_owned(),
            })
            .await
        })
    }

    fn load_dialogs(&self) -> BoxFuture<'_, Result<Vec<DialogRecord>, SipStoreError>> {
        Box::pin(async move { load(&self.store, kind::SIP_DIALOG) })
    }

    fn put_publication<'a>(
        &'a self,
        old_etag: Option<&'a str>,
        publication: &'a PublicationRecord,
    ) -> BoxFuture<'a, Result<(), SipStoreError>> {
        Box::pin(async move {
            let data = serde_json::to_string(publication).map_err(backend)?;
            // One transaction: the old entity tag goes with the new one's insert.
            let mut ops = Vec::with_capacity(2);
            if let Some(old) = old_etag {
                ops.push(RecordOp::Remove {
                    kind: kind::SIP_PUBLICATION,
                    key: old.to_owned(),
                });
            }
            ops.push(RecordOp::Put {
                kind: kind::SIP_PUBLICATION,
                key: publication.etag.clone(),
                expires_at: Some(publication.expires_at),
                data,
            });
            self.commit_all(ops).await
        })
    }

    fn remove_publication<'a>(&'a self, etag: &'a str) -> BoxFuture<'a, Result<(), SipStoreError>> {
        Box::pin(async move {
            self.commit(RecordOp::Remove {
                kind: kind::SIP_PUBLICATION,
                key: etag.to_owned(),
            })
            .await
        })
    }

    fn load_publications(&self) -> BoxFuture<'_, Result<Vec<PublicationRecord>, SipStoreError>> {
        Box::pin(async move { load(&self.store, kind::SIP_PUBLICATION) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpim_sip::app::store::DialogRole;

    /// Written through the SIP adapter's trait, dropped, reopened: all back.
    #[tokio::test]
    async fn sip_state_survives_reopen() {
        let dir = std::env::temp_dir().join(format!("cpim-gw-sipstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let b = BindingRecord {
            aor: "sip:alice@sip.test".into(),
            contact: "sip:alice@127.0.0.1:5080".into(),
            q: Some(0.5),
            call_id: "c1".into(),
            cseq: 3,
            expires_at: 2_000_000_000,
            flow: Some("udp:127.0.0.1:5080".into()),
            connection: None,
            authenticated_user: Some("alice".into()),
            instance: None,
            cpim: true,
        };
        let d = DialogRecord {
            role: DialogRole::Notifier,
            call_id: "cid".into(),
            local_tag: "lt".into(),
            remote_tag: Some("rt".into()),
            local_uri: "sip:romeo@xmpp.test".into(),
            remote_uri: "sip:alice@sip.test".into(),
            remote_target: "sip:alice@127.0.0.1:5080".into(),
            route_set: vec![],
            local_cseq: 1,
            remote_cseq: 2,
            watcher: "sip:alice@sip.test".into(),
            presentity: "romeo@xmpp.test".into(),
            expires_at: 2_000_000_000,
            state: "active".into(),
            flow: None,
        };
        let p = PublicationRecord {
            etag: "e1".into(),
            aor: "sip:alice@sip.test".into(),
            expires_at: 2_000_000_000,
            modified_at: 1_999_999_000,
            content_type: "application/pidf+xml".into(),
            body: b"<presence/>".to_vec(),
        };
        {
            let s = GatewaySipStore::new(Store::open(&dir).unwrap());
            s.put_bindings("sip:alice@sip.test", std::slice::from_ref(&b))
                .await
                .unwrap();
            s.put_dialog(&d).await.unwrap();
            s.put_publication(None, &p).await.unwrap();
            let mut p2 = p.clone();
            p2.etag = "e2".into();
            s.put_publication(Some("e1"), &p2).await.unwrap();
        }
        let s = GatewaySipStore::new(Store::open(&dir).unwrap());
        assert_eq!(s.load_bindings().await.unwrap(), vec![b]);
        assert_eq!(s.load_dialogs().await.unwrap(), vec![d.clone()]);
        let pubs = s.load_publications().await.unwrap();
        assert_eq!(pubs.len(), 1);
        assert_eq!(pubs[0].etag, "e2");
        // The modified time, the order of composition, comes back.
        assert_eq!(pubs[0].modified_at, 1_999_999_000);
        s.remove_dialog(&d.key()).await.unwrap();
        s.put_bindings("sip:alice@sip.test", &[]).await.unwrap();
        assert!(s.load_dialogs().await.unwrap().is_empty());
        assert!(s.load_bindings().await.unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
