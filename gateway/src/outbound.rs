//! Delivery to adapters: alias mapping, metrics, and detached deliveries that keep their
//! order (presence notifications).

use cpim_core::StatusCode;
use std::future::Future;
use std::sync::Arc;

use cpim_core::model::{Operation, Outcome};

use crate::aliases::Aliases;
use crate::metrics::SharedMetrics;
use crate::routing::RouteTable;

/// The way out to the adapters.
#[derive(Debug)]
pub struct Outbound {
    /// Routing.
    pub table: Arc<RouteTable>,
    /// Domain aliases.
    pub aliases: Arc<Aliases>,
    /// Metrics.
    pub metrics: SharedMetrics,
}

impl Outbound {
    /// Delivers `op` through the adapter named `adapter` and waits for the outcome.
    pub async fn deliver(&self, adapter: &str, mut op: Operation) -> Outcome {
        let trans_id = op.trans_id();
        let Some(a) = self.table.adapter(adapter) else {
            return Outcome::failure(
                trans_id,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("adapter {adapter} is not running"),
            );
        };
        self.aliases.outbound(adapter, &mut op);
        let kind = op.kind();
        let out = a.deliver(op).await;
        self.metrics.count("out", adapter, kind, out.status.code);
        out
    }

    /// Delivers without waiting for the outcome. The adapter's future is polled once
    /// before this returns, so adapters that enqueue on the first poll (all of ours)
    /// see detached deliveries in the order they were made; the rest runs in a task.
    pub fn deliver_detached(self: &Arc<Self>, adapter: String, op: Operation) {
        let me = self.clone();
        let mut fut = Box::pin(async move {
            let out = me.deliver(&adapter, op).await;
            if !out.status.is_success() {
                tracing::debug!(%adapter, code = %out.status.code, reason = %out.status.reason, "notification not delivered");
            }
        });
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        if fut.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(fut);
        }
    }
}
