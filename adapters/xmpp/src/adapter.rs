//! The tokio layer's face: [`start`] picks the link of the configured mode
//! (`link`: the XEP-0114 component link or the RFC 6120 s2s hub) and returns an
//! [`XmppHandle`] whose [`XmppAdapter`] implements [`Adapter`].
//!
//! The adapter hands operations to the link task over a bounded channel, each with its
//! deadline, and reads the links' state from what the task shares. Dependencies point
//! one way: the adapter knows the links, a link never knows the adapter.

use cpim_core::StatusCode;
use std::sync::Arc;
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress, LinkStatus};
use cpim_core::address::Address;
use cpim_core::model::{Operation, Outcome};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use crate::config::{Mode, XmppConfig};
pub use crate::error::XmppError;
use crate::link::{self, Command, Shared};

/// The XMPP adapter (name `xmpp`).
pub struct XmppAdapter {
    domains: Vec<String>,
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    delivery_timeout: Duration,
}

impl std::fmt::Debug for XmppAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmppAdapter")
            .field("domains", &self.domains)
            .finish()
    }
}

/// What [`start`] returns: the adapter and the task running its link.
#[derive(Debug)]
pub struct XmppHandle {
    adapter: Arc<XmppAdapter>,
    task: Option<JoinHandle<()>>,
}

impl XmppHandle {
    /// The adapter, to register with the gateway.
    pub fn adapter(&self) -> Arc<XmppAdapter> {
        self.adapter.clone()
    }

    /// Closes the stream politely, fails queued operations with 503 and stops the task.
    pub async fn shutdown(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.adapter.tx.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}

/// Starts the adapter: validates the configuration and spawns the link task, which
/// connects in the background (see [`XmppAdapter::links`] for its state).
pub async fn start(config: XmppConfig, ingress: Arc<dyn Ingress>) -> Result<XmppHandle, XmppError> {
    let shared = Arc::new(Shared::default());
    let (tx, rx) = mpsc::channel(1024);
    let domains = config.local_domains();
    let delivery_timeout = Duration::from_secs(config.delivery_timeout_secs);
    let task = match &config.mode {
        Mode::Component { .. } => link::component::start(config, ingress, shared.clone(), rx)?,
        Mode::S2s { .. } => link::s2s::start(config, ingress, shared.clone(), rx).await?,
    };
    let adapter = Arc::new(XmppAdapter {
        domains,
        tx,
        shared,
        delivery_timeout,
    });
    Ok(XmppHandle {
        adapter,
        task: Some(task),
    })
}

impl Adapter for XmppAdapter {
    fn name(&self) -> &str {
        "xmpp"
    }

    fn serves(&self, address: &Address) -> bool {
        self.domains.contains(&address.domain)
    }

    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        let trans_id = op.trans_id();
        Box::pin(async move {
            let (reply, rx) = oneshot::channel();
            let deadline = TokioInstant::now() + self.delivery_timeout;
            let cmd = Command::Deliver {
                op: Box::new(op),
                reply,
                deadline,
            };
            if self.tx.send(cmd).await.is_err() {
                return Outcome::failure(
                    trans_id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "XMPP adapter is shut down",
                );
            }
            match tokio::time::timeout(self.delivery_timeout + Duration::from_secs(2), rx).await {
                Ok(Ok(o)) => o,
                Ok(Err(_)) => Outcome::failure(
                    trans_id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "XMPP adapter is shut down",
                ),
                Err(_) => Outcome::failure(
                    trans_id,
                    StatusCode::REQUEST_TIMEOUT,
                    "no answer from the XMPP side in time",
                ),
            }
        })
    }

    fn links(&self) -> Vec<LinkStatus> {
        self.shared.status.lock().expect("status lock").clone()
    }
}
