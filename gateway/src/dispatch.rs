//! The innermost service of the pipeline: messages are routed by destination domain
//! (configured routes, then the local domains' owners, then `Adapter::serves` in
//! configuration order), re-encoded for their target ([`crate::reencode`]) and
//! delivered; the source gets the target's outcome, or 202 when the message was queued
//! for later delivery. Presence operations go to the [`PresenceService`].

use cpim_core::StatusCode;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use cpim_core::adapter::BoxFuture;
use cpim_core::model::{Operation, Outcome};
use tower::Service;

use crate::journal::{Journal, JournalRow};
use crate::outbound::Outbound;
use crate::presence_service::PresenceService;
use crate::queue::{queued_status, Queue};
use crate::reencode::reencode;
use crate::router::Submission;

/// The dispatcher.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// Delivery.
    pub out: Arc<Outbound>,
    /// Presence.
    pub presence: Arc<PresenceService>,
    /// Store-and-forward.
    pub queue: Arc<Queue>,
    /// The write-ahead journal, if any (a queued message leaves it with the queue insert).
    pub journal: Option<Arc<Journal>>,
}

impl Dispatch {
    async fn message(
        self,
        from: Arc<str>,
        mut m: cpim_core::model::Message,
        row: Option<JournalRow>,
    ) -> Outcome {
        let id = m.trans_id;
        let Some(target) = self.out.table.adapter_for(&m.destination) else {
            return Outcome::failure(
                id,
                StatusCode::NOT_FOUND,
                format!("Not Found: no route to {}", m.destination.domain),
            );
        };
        let name = target.name().to_owned();
        if let Err(status) = reencode(&mut m, target.carries_cpim()) {
            return Outcome {
                trans_id: id,
                status,
            };
        }
        let started = Instant::now();
        // A copy for the queue only when the queue may take it.
        let keep = self.queue.enabled().then(|| m.clone());
        let outcome = self.out.deliver(&name, Operation::Message(m)).await;
        self.out
            .metrics
            .delivery_latency
            .observe(started.elapsed().as_secs_f64());
        // A notification (isComposing, RFC 3994 s3: it lasts its refresh interval; an
        // IMDN, RFC 5438) is never stored for later: the sender gets the target's answer.
        // Looked at only when the outcome would queue.
        let keep =
            keep.filter(|m| self.queue.should_queue(&name, &outcome) && !m.is_notification());
        if let Some(m) = keep {
            // A written-ahead message moves from the journal to the queue atomically.
            let journal = row.zip(self.journal.as_deref());
            match self.queue.accept(m, &name, journal).await {
                Ok(()) => {
                    tracing::info!(from = %from, target = %name, code = %outcome.status.code, "target unavailable; message queued");
                    return Outcome {
                        trans_id: id,
                        status: queued_status(),
                    };
                }
                Err(e) => tracing::warn!(error = %e, "message not queued"),
            }
        }
        Outcome {
            trans_id: id,
            status: outcome.status,
        }
    }
}

impl Service<Submission> for Dispatch {
    type Response = Outcome;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Outcome, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Submission) -> Self::Future {
        let me = self.clone();
        Box::pin(async move {
            let from = req.adapter;
            Ok(match req.op {
                Operation::Message(m) => me.message(from, m, req.journal_row).await,
                Operation::Subscribe(s) => me.presence.subscribe(&from, s).await,
                Operation::Unsubscribe(s) => me.presence.unsubscribe(s).await,
                Operation::Notify(n) => me.presence.notify(&from, n).await,
                Operation::Publish(p) => me.presence.publish(p).await,
                other => Outcome::failure(
                    other.trans_id(),
                    StatusCode::NOT_IMPLEMENTED,
                    "Not Implemented",
                ),
            })
        })
    }
}
