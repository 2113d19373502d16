//! Store-and-forward: a message whose target is offline or whose link is down (the
//! target's outcome is one of `queue.on_codes`) is persisted and the source gets
//! 202 Accepted; a notification (an isComposing indication, RFC 3994, or an IMDN, RFC
//! 5438) is never queued, its sender gets the target's answer (the dispatcher decides,
//! `Message::is_notification`). A
//! worker retries with exponential backoff (doubling from
//! `retry_initial_ms` up to `retry_max_ms`), and at once when the destination registers.
//!
//! Exactly once, except in one window: an entry is removed after the target accepted
//! it. If the process dies after the target's acceptance and before the removal is
//! committed (one fsync, well under a millisecond), the message is delivered again after
//! the restart. The message keeps its `message_id` (and XMPP stanza id), so a recipient
//! that deduplicates sees it once. Nothing accepted is lost: the entry is committed
//! before the 202 is returned. A message that was written ahead to the journal
//! ([`crate::journal`]) leaves it in the transaction that queues it, so after a crash
//! exactly one of the two delivers it, and a copy its source sends again later is
//! answered 202 from the dedupe record instead of being queued twice.

use cpim_core::StatusCode;
use std::sync::Arc;
use std::time::Duration;

use cpim_core::imdn;
use cpim_core::model::{Message, Operation, Outcome};
use tokio::sync::Notify;

use crate::config::QueueSection;
use crate::journal::{Journal, JournalRow};
use crate::outbound::Outbound;
use crate::store::{unix_ms, Store, StoreError};

/// What the source of a queued message is told (RFC 3261 s21.2.3).
pub fn queued_status() -> cpim_core::model::Status {
    cpim_core::model::Status::new(StatusCode::ACCEPTED, "Accepted (queued for delivery)")
}

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// `queue.max_depth` messages are queued already.
    #[error("queue full ({depth} messages)")]
    Full {
        /// Messages queued.
        depth: u64,
    },
    /// The store failed.
    #[error("queue store: {0}")]
    Store(#[from] StoreError),
}

/// The queue.
#[derive(Debug)]
pub struct Queue {
    store: Store,
    cfg: QueueSection,
    out: Arc<Outbound>,
    wake: Notify,
}

impl Queue {
    /// A queue over `store`.
    pub fn new(store: Store, cfg: QueueSection, out: Arc<Outbound>) -> Arc<Queue> {
        let q = Arc::new(Queue {
            store,
            cfg,
            out,
            wake: Notify::new(),
        });
        q.update_gauge();
        q
    }

    fn update_gauge(&self) {
        if let Ok(d) = self.store.queue_depth() {
            self.out.metrics.queue_depth.set(d as i64);
        }
    }

    /// True if store-and-forward is on.
    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// True if this outcome of a delivery through `adapter` means "queue it"
    /// (`queue.on_codes_by_adapter`, else `queue.on_codes`).
    pub fn should_queue(&self, adapter: &str, outcome: &Outcome) -> bool {
        self.cfg
            .codes_for(adapter)
            .contains(&outcome.status.code.as_u16())
    }

    /// Persists `msg` for `adapter`; `Ok(())` once it is committed. A message written
    /// ahead to the journal (`journal`: its row and the journal) leaves the journal in
    /// the same transaction, its row becoming the dedupe record with the 202 the source
    /// gets: after a crash exactly one of them delivers it.
    pub async fn accept(
        &self,
        msg: Message,
        adapter: &str,
        journal: Option<(JournalRow, &Journal)>,
    ) -> Result<(), QueueError> {
        let depth = self.store.queue_depth()?;
        if depth >= self.cfg.max_depth {
            return Err(QueueError::Full { depth });
        }
        let now = unix_ms();
        let adapter = adapter.to_owned();
        let retry = self.cfg.retry_initial_ms;
        let done = journal.map(|(row, j)| j.done_op(Some(row.id), row.key, &queued_status()));
        self.store
            .run(move |s| {
                // First retry after the initial delay: the target just refused.
                s.enqueue_with(&msg, &adapter, now, now + retry, done.as_ref())
                    .map(|_| ())
            })
            .await?;
        self.update_gauge();
        self.wake.notify_one();
        Ok(())
    }

    /// The destination (`user@domain`) is reachable again (e.g. it registered).
    pub fn wake_destination(&self, dest: &str) {
        match self.store.wake_destination(dest, unix_ms()) {
            Ok(n) if n > 0 => {
                tracing::info!(%dest, messages = n, "destination back; delivering queued messages");
                self.wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "queue wake failed"),
        }
    }

    fn backoff(&self, attempts: u32) -> u64 {
        let shift = attempts.saturating_sub(1).min(20);
        self.cfg
            .retry_initial_ms
            .saturating_mul(1 << shift)
            .min(self.cfg.retry_max_ms)
    }

    /// One pass over the due entries; returns how many were handled.
    pub async fn run_once(&self) -> usize {
        let now = unix_ms();
        let due = match self.store.due(now, 64) {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "queue read failed");
                return 0;
            }
        };
        let n = due.len();
        for e in due {
            let age_secs = (now / 1000).saturating_sub(e.enqueued_at);
            if age_secs > self.cfg.max_age_secs {
                tracing::warn!(id = e.id, dest = %e.message.destination, "queued message expired undelivered");
                let _ = self.store.dequeue(e.id);
                self.tell_sender(&e.message, e.id, imdn::Status::Failed);
                continue;
            }
            let out = self
                .out
                .deliver(&e.adapter, Operation::Message(e.message.clone()))
                .await;
            let r = if out.status.is_success() {
                tracing::info!(id = e.id, dest = %e.message.destination, attempts = e.attempts + 1, "queued message delivered");
                self.store.dequeue(e.id).map(|_| ())
            } else if self.should_queue(&e.adapter, &out) {
                self.store.reschedule(
                    e.id,
                    e.attempts + 1,
                    unix_ms() + self.backoff(e.attempts + 1),
                )
            } else {
                tracing::warn!(id = e.id, dest = %e.message.destination, code = %out.status.code, reason = %out.status.reason, "queued message refused by its target; dropped");
                let status = if out.status.code == StatusCode::FORBIDDEN {
                    imdn::Status::Forbidden
                } else {
                    imdn::Status::Failed
                };
                self.tell_sender(&e.message, e.id, status);
                self.store.dequeue(e.id).map(|_| ())
            };
            if let Err(err) = r {
                tracing::error!(error = %err, "queue update failed");
            }
        }
        self.update_gauge();
        n
    }

    /// Tells the sender of a queued message that it failed after its 202: a negative
    /// delivery notification (RFC 5438 s7.2.1.1, `failed` or `forbidden`) from the
    /// destination, naming the message's id, when the sender asked for one
    /// (`disposition.negative`; XMPP senders always do, and get it as an error stanza).
    /// Sent once, not queued: a sender that is gone too does not hear of it.
    fn tell_sender(&self, m: &Message, entry: i64, status: imdn::Status) {
        let Some(id) = m.message_id.as_deref() else {
            return;
        };
        if !m.disposition.negative || m.is_notification() {
            return;
        }
        let Some(adapter) = self.out.table.adapter_name_for(&m.source) else {
            return;
        };
        let mut doc = imdn::Imdn::notice(
            id,
            &cpim_core::cpim::rfc3339(unix_ms() / 1000),
            Some(m.destination.bare().to_string()),
            imdn::NotificationKind::Delivery,
            status,
        );
        doc.original_recipient_uri.clone_from(&doc.recipient_uri);
        let Ok(xml) = imdn::encode(&doc) else {
            return;
        };
        let mut n = Message::new(
            m.trans_id,
            m.destination.bare(),
            m.source.clone(),
            imdn::CONTENT_TYPE,
            xml.into_bytes(),
        );
        n.message_id = Some(format!("gw-{entry}-{}", unix_ms()));
        n.kind = m.kind;
        tracing::info!(to = %m.source, %id, "telling the sender its queued message failed");
        self.out
            .deliver_detached(adapter.to_string(), Operation::Message(n));
    }

    /// Runs until `stop` changes.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            while self.run_once().await == 64 {}
            let wait = match self.store.next_due() {
                Ok(Some(t)) => {
                    Duration::from_millis(t.saturating_sub(unix_ms())).min(Duration::from_secs(60))
                }
                _ => Duration::from_secs(60),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}
