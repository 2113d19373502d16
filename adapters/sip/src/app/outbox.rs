//! The outbox: outputs of the sans-IO notifier and subscriber (NOTIFYs, SUBSCRIBE
//! refreshes, store writes, operations for the core), run in the order the machines
//! produced them by one worker task per TU.

use std::collections::HashMap;
use std::sync::Arc;

use cpim_core::model::{Notify, Operation, Subscribe};
use tokio::sync::mpsc;

use super::presence::notifier::{NotifierOutput, OutgoingNotify};
use super::presence::subscriber::SubscriberOutput;
use super::store::DialogRecord;
use super::tu::Tu;

/// One output of the sans-IO machines, on its way to the outbox worker.
#[derive(Debug)]
pub(super) enum Out {
    N(NotifierOutput),
    S(SubscriberOutput),
}

/// One step of a notifier dialog's lane, in the order the notifier produced it.
#[allow(clippy::large_enum_variant)] // transient, moved through a channel once
#[derive(Debug)]
enum LaneItem {
    Persist(DialogRecord),
    /// A NOTIFY, with a prepared body (media type, text) or none (PIDF of its presence).
    Notify(OutgoingNotify, Option<(&'static str, String)>),
    Forget(String),
}

/// Runs outputs in order. Everything of one notifier dialog (its store writes and its
/// NOTIFYs) runs in sequence on that dialog's lane: a NOTIFY waits for the write before it
/// (its CSeq is durable before it is sent) and for the previous NOTIFY's answer (RFC 6665
/// s4.2.2), without holding up other dialogs, so the writes of many dialogs share the
/// store's group commit instead of one fsync after the other on this worker. Subscriber
/// store writes run in sequence here, operations for the core in sequence on one lane,
/// SUBSCRIBE refreshes each on its own task. Holds only a weak reference: it ends when
/// the TU is dropped.
async fn outbox_worker(tu: std::sync::Weak<Tu>, mut rx: mpsc::UnboundedReceiver<Out>) {
    let mut lanes: HashMap<String, mpsc::UnboundedSender<LaneItem>> = HashMap::new();
    let (core_tx, mut core_rx) = mpsc::unbounded_channel::<Operation>();
    let weak = tu.clone();
    tokio::spawn(async move {
        while let Some(op) = core_rx.recv().await {
            let Some(tu) = weak.upgrade() else { break };
            let _ = tu.submit(op).await;
        }
    });
    let lane_for = |lanes: &mut HashMap<String, mpsc::UnboundedSender<LaneItem>>, key: String| {
        lanes
            .entry(key)
            .or_insert_with(|| {
                let (tx, mut lrx) = mpsc::unbounded_channel::<LaneItem>();
                let weak = tu.clone();
                tokio::spawn(async move {
                    while let Some(item) = lrx.recv().await {
                        let Some(tu) = weak.upgrade() else { break };
                        match item {
                            LaneItem::Persist(rec) => tu.persist_dialog(&rec).await,
                            LaneItem::Forget(key) => tu.forget_dialog(&key).await,
                            LaneItem::Notify(n, body) => {
                                let key = n.dialog.key();
                                let code = tu.send_notify(n, body).await;
                                tu.lock().notifier.notify_answered(&key, code);
                                tu.drain_outputs();
                            }
                        }
                    }
                });
                tx
            })
            .clone()
    };
    while let Some(o) = rx.recv().await {
        let Some(this) = tu.upgrade() else { break };
        match o {
            Out::N(NotifierOutput::Notify(n)) => {
                let _ = lane_for(&mut lanes, n.dialog.key()).send(LaneItem::Notify(n, None));
            }
            Out::N(NotifierOutput::NotifyBody {
                notify,
                content_type,
                body,
            }) => {
                let item = LaneItem::Notify(notify, Some((content_type, body)));
                let _ = lane_for(&mut lanes, item_key(&item)).send(item);
            }
            Out::N(NotifierOutput::Persist(rec)) => {
                let _ = lane_for(&mut lanes, rec.key()).send(LaneItem::Persist(rec));
            }
            Out::N(NotifierOutput::Forget(key)) => {
                // Dropping the lane's sender lets it finish what is queued (the final
                // NOTIFY, then the removal) and end.
                let _ = lane_for(&mut lanes, key.clone()).send(LaneItem::Forget(key.clone()));
                lanes.remove(&key);
            }
            Out::S(SubscriberOutput::Persist(rec)) => {
                this.persist_dialog(&rec).await;
            }
            Out::S(SubscriberOutput::Forget(key)) => {
                this.forget_dialog(&key).await;
            }
            Out::N(NotifierOutput::Unsubscribe {
                watcher,
                presentity,
            }) => {
                let _ = core_tx.send(Operation::Unsubscribe(Subscribe {
                    trans_id: this.trans_id(),
                    watcher,
                    target: presentity,
                    duration: 0,
                }));
            }
            Out::S(SubscriberOutput::Notify {
                watcher,
                presentity,
                state,
                presence,
            }) => {
                let _ = core_tx.send(Operation::Notify(Notify {
                    trans_id: this.trans_id(),
                    watcher,
                    target: presentity,
                    state,
                    presence,
                }));
            }
            Out::S(SubscriberOutput::Subscribe(s)) => {
                // Refreshes and re-subscriptions (initial ones are sent by deliver()).
                let t = Arc::clone(&this);
                tokio::spawn(async move {
                    t.send_subscribe(s).await;
                    t.drain_outputs();
                });
            }
        }
    }
}

impl Tu {
    /// Hands the queued outputs of the notifier and subscriber, in order, to the outbox
    /// worker (see `outbox_worker`).
    pub fn drain_outputs(self: &Arc<Self>) {
        let rx = self
            .outbox_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            tokio::spawn(outbox_worker(Arc::downgrade(self), rx));
        }
        // Queue while holding the state lock, so concurrent drains keep the order in
        // which the machines produced their outputs (the send never blocks).
        let mut st = self.lock();
        while let Some(o) = st.notifier.poll_output() {
            let _ = self.outbox.send(Out::N(o));
        }
        while let Some(o) = st.subscriber.poll_output() {
            let _ = self.outbox.send(Out::S(o));
        }
    }
}

fn item_key(item: &LaneItem) -> String {
    match item {
        LaneItem::Persist(rec) => rec.key(),
        LaneItem::Notify(n, _) => n.dialog.key(),
        LaneItem::Forget(k) => k.clone(),
    }
}
