//! Persistence of the TU's state through [`super::store::SipStore`]: bindings, dialogs
//! and publications. A store that fails is logged and does not fail the request: the
//! state lives on in memory until the next write or a restart.

use super::store::{BindingRecord, DialogRecord};
use super::tu::Tu;

impl Tu {
    pub(super) async fn persist_bindings(&self, aor: &str, bindings: &[BindingRecord]) {
        if let Err(e) = self.store.put_bindings(aor, bindings).await {
            tracing::warn!(error = %e, aor, "could not persist bindings");
        }
    }

    pub(super) async fn persist_dialog(&self, rec: &DialogRecord) {
        if let Err(e) = self.store.put_dialog(rec).await {
            tracing::warn!(error = %e, "could not persist dialog");
        }
    }

    pub(super) async fn forget_dialog(&self, key: &str) {
        if let Err(e) = self.store.remove_dialog(key).await {
            tracing::warn!(error = %e, "could not remove dialog");
        }
    }

    pub(super) async fn remove_publication(&self, etag: &str) {
        if let Err(e) = self.store.remove_publication(etag).await {
            tracing::warn!(error = %e, "could not remove publication");
        }
    }
}
