//! [`SipAdapter`]: the SIP side of the gateway, implementing
//! [`cpim_core::adapter::Adapter`].
//!
//! Started by [`start`]:
//!
//! ```text
//! pub async fn start(config: SipConfig, ingress: Arc<dyn Ingress>, store: Arc<dyn SipStore>)
//!     -> Result<SipHandle, SipError>
//! ```
//!
//! It binds the endpoint (UDP and TCP), restores registrations, subscriptions and
//! publications from `store`, then takes requests: the endpoint task hands each to the
//! `Dispatcher`, which runs it on a task of its own (so a MESSAGE waiting for the core
//! never blocks the others). One more task drives expiries and refreshes once a second.
//! [`SipHandle::adapter`] is what the gateway registers with its router;
//! [`SipHandle::shutdown`] refuses new requests, lets those in flight finish (bounded),
//! stops the timers and closes the sockets.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress, LinkStatus};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Operation, Outcome};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::codec::{Request, Response};
use crate::endpoint::{Endpoint, EndpointError, IncomingRequest, RequestSink, Target};
use crate::transport::{Flow, Transport};

use super::config::{ConfigError, SipConfig};
use super::store::{SipStore, StoreError};
use super::tu::{NextHop, Source, Tu, Wire, WireError, ADAPTER_NAME};

/// Why the adapter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    /// The configuration is invalid.
    #[error("invalid [sip] configuration: {0}")]
    Config(#[from] ConfigError),
    /// The endpoint could not bind its sockets.
    #[error("SIP endpoint: {0}")]
    Endpoint(#[source] EndpointError),
    /// The configuration names neither a UDP nor a TCP listener.
    #[error("SIP endpoint: no UDP or TCP listener configured")]
    NoListener,
    /// The store could not be read.
    #[error("SIP store: {0}")]
    Store(#[from] StoreError),
}

/// The endpoint as the TU's [`Wire`].
struct EndpointWire {
    endpoint: Endpoint,
}

impl Wire for EndpointWire {
    fn send_request(
        &self,
        req: Request,
        hop: NextHop,
    ) -> BoxFuture<'_, Result<Response, WireError>> {
        Box::pin(async move {
            let target = match hop {
                NextHop::Uri(u) => Target::Uri(u),
                NextHop::Flow(f) => match f.parse::<Flow>() {
                    Ok(flow) => Target::Addr(flow.transport, flow.remote),
                    Err(e) => return Err(WireError::Transport(e.to_string())),
                },
            };
            self.endpoint.send_request(req, target).await.map_err(|e| {
                if e.status_code() == 408 {
                    WireError::Timeout
                } else {
                    WireError::Transport(e.to_string())
                }
            })
        })
    }

    fn local_hostport(&self) -> String {
        self.endpoint
            .sent_by(Transport::Udp)
            .unwrap_or_else(|| "127.0.0.1".to_owned())
    }
}

/// The SIP adapter, as the router sees it.
#[derive(Debug)]
pub struct SipAdapter {
    tu: Arc<Tu>,
    local: SocketAddr,
}

impl SipAdapter {
    /// The standing state the adapter holds (subscriptions, publications, bindings):
    /// what the caps of [`super::limits`] bound.
    pub fn standing_state(&self) -> super::limits::StandingState {
        self.tu.standing_state()
    }

    fn serves_domain(&self, domain: &str) -> bool {
        let c = &self.tu.config;
        c.is_local_domain(domain)
            || c.remote_domains
                .iter()
                .any(|d| cpim_core::domain::same(d, domain))
    }
}

impl Adapter for SipAdapter {
    fn name(&self) -> &str {
        ADAPTER_NAME
    }

    /// A MESSAGE gets its final response only once the target accepted or refused.
    fn acknowledges_messages(&self) -> bool {
        true
    }

    /// `sip:`/`sips:` addresses (and `im:`/`pres:` ones, which name the same users) of
    /// the gateway's own domains and of the configured remote SIP domains.
    fn serves(&self, address: &Address) -> bool {
        matches!(
            address.scheme,
            Scheme::Sip | Scheme::Sips | Scheme::Im | Scheme::Pres
        ) && self.serves_domain(&address.domain)
    }

    fn carries_cpim(&self) -> bool {
        true
    }

    fn deliver(&self, op: Operation) -> BoxFuture<'_, Outcome> {
        Box::pin(self.tu.deliver(op))
    }

    fn links(&self) -> Vec<LinkStatus> {
        let mut v = vec![LinkStatus {
            name: format!("sip-listen:{}", self.local),
            up: true,
            queued: 0,
            last_error: None,
        }];
        if let Some(p) = &self.tu.config.outbound_proxy {
            v.push(LinkStatus {
                name: format!("sip-proxy:{}", p.address),
                up: true,
                queued: 0,
                last_error: None,
            });
        }
        v
    }
}

/// A running SIP adapter.
#[derive(Debug)]
pub struct SipHandle {
    adapter: Arc<SipAdapter>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    local: SocketAddr,
    addrs: Vec<(Transport, SocketAddr)>,
    endpoint: Endpoint,
    dispatcher: Dispatcher,
}

impl SipHandle {
    /// The adapter, to register with the router.
    pub fn adapter(&self) -> Arc<SipAdapter> {
        Arc::clone(&self.adapter)
    }

    /// The first bound address (UDP if configured, else TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Every bound listener address.
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.addrs
    }

    /// The endpoint (for sending raw requests in tests and tools).
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Stops taking requests, waits up to five seconds for requests in flight, stops
    /// the timers. State is already persisted after every change.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.dispatcher.drain(Duration::from_secs(5)).await;
        let timers = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(1), timers)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
    }
}

/// Starts the SIP adapter: binds the endpoint, restores state from `store`, and serves.
pub async fn start(
    config: SipConfig,
    ingress: Arc<dyn Ingress>,
    store: Arc<dyn SipStore>,
) -> Result<SipHandle, SipError> {
    config.validate()?;
    let dispatcher = Dispatcher::new(config.endpoint.tu_queue);
    let endpoint = Endpoint::bind_to(config.endpoint.clone(), dispatcher.clone())
        .await
        .map_err(SipError::Endpoint)?;
    let local = endpoint
        .local_addr(Transport::Udp)
        .or_else(|| endpoint.local_addr(Transport::Tcp))
        .ok_or(SipError::NoListener)?;
    let addrs = endpoint.local_addrs();
    let wire = Arc::new(EndpointWire {
        endpoint: endpoint.clone(),
    });
    let tu = Arc::new(Tu::new(config, ingress, store, wire));
    tu.restore().await?;
    let _ = dispatcher.tu.set(Arc::clone(&tu));
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tasks.spawn(timers(Arc::clone(&tu), stop_rx));
    tracing::info!(%local, "SIP adapter started");
    Ok(SipHandle {
        adapter: Arc::new(SipAdapter { tu, local }),
        stop,
        tasks,
        local,
        addrs,
        endpoint,
        dispatcher,
    })
}

/// The TU's [`RequestSink`]: the endpoint task offers each new request here and it
/// starts one task for it, so a MESSAGE waiting for the core never blocks the others and
/// a request crosses no channel between the endpoint and the TU. At most `tu_queue`
/// requests are handled at once; past that, and before the TU is ready or once it is
/// stopping, the endpoint answers 503 with Retry-After.
#[derive(Clone, Debug)]
struct Dispatcher {
    tu: Arc<OnceLock<Arc<Tu>>>,
    permits: Arc<Semaphore>,
    capacity: u32,
    stopping: Arc<AtomicBool>,
}

impl Dispatcher {
    fn new(capacity: usize) -> Dispatcher {
        // `acquire_many` counts in u32: the cap is at most that
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        Dispatcher {
            tu: Arc::new(OnceLock::new()),
            permits: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Refuses new requests and waits up to `grace` for those in progress.
    async fn drain(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        let all = self.permits.acquire_many(self.capacity);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("SIP adapter stopped with requests still in progress");
        }
    }
}

impl RequestSink for Dispatcher {
    fn offer(&mut self, inc: IncomingRequest) -> Result<(), IncomingRequest> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(inc);
        }
        let Some(tu) = self.tu.get().cloned() else {
            return Err(inc);
        };
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return Err(inc);
        };
        tokio::spawn(async move {
            let IncomingRequest {
                request,
                source,
                transport,
                connection,
                responder,
            } = inc;
            let src = Source {
                transport,
                remote: source,
                verified_names: connection
                    .as_ref()
                    .map(|c| c.verified_names.clone())
                    .unwrap_or_default(),
                connection: connection.map(|c| c.id),
            };
            tu.handle_request_with(request, src, |resp| {
                if let Err(e) = responder.respond(resp) {
                    tracing::debug!(error = %e, "response not sent");
                }
            })
            .await;
            drop(permit);
        });
        Ok(())
    }
}

async fn timers(tu: Arc<Tu>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => tu.tick().await,
        }
    }
}
