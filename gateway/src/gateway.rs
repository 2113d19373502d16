//! Wiring: the store, the presence service, the queue, the router pipeline, the
//! adapters and the admin API, started from a [`Config`] and stopped gracefully.
//! Secrets absent from the config are filled in from the store folder first (generated at
//! first start, see [`crate::secrets`]); weak configured ones stop the start.

use cpim_core::StatusCode;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cpim_core::adapter::{Adapter, BoxFuture, Ingress, LinkStatus};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Operation, Outcome};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt};

use crate::admin::{self, AdminState};
use crate::aliases::Aliases;
use crate::config::Config;
use crate::dispatch::Dispatch;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::presence_service::PresenceService;
use crate::queue::Queue;
use crate::router::authorize::Authorize;
use crate::router::check::CheckLayer;
use crate::router::dedupe::DedupeLayer;
use crate::router::hops::Hops;
use crate::router::journal::{Acknowledges, JournalLayer};
use crate::router::rate::{RateConfig, RateLimit};
use crate::router::size::SizeLimit;
use crate::router::timeout::TimeoutLayer;
use crate::router::{NotTaken, Pipeline, Submission};
use crate::routing::RouteTable;
use crate::sip_store::GatewaySipStore;
use crate::store::{Store, StoreError};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A configured secret is weak, or a generated one could not be stored or read.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// The admin listener could not be bound.
    #[error("admin API on {addr}: {source}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Whether operations are accepted, and how many are in flight.
#[derive(Debug, Default)]
pub struct RunState {
    stopping: AtomicBool,
    inflight: AtomicUsize,
    idle: Notify,
    started: AtomicBool,
}

impl RunState {
    /// True once every configured adapter has been started (or has failed) and the
    /// gateway is not shutting down.
    pub fn is_running(&self) -> bool {
        self.started.load(Ordering::SeqCst) && !self.stopping.load(Ordering::SeqCst)
    }

    /// Operations in flight.
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }
}

struct Inflight<'a>(&'a RunState);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if self.0.inflight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The [`Ingress`] the adapters submit through.
pub struct GatewayIngress {
    pipeline: Pipeline,
    aliases: Arc<Aliases>,
    table: Arc<RouteTable>,
    run: Arc<RunState>,
    metrics: Arc<Metrics>,
    presence: Arc<PresenceService>,
}

impl std::fmt::Debug for GatewayIngress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayIngress").finish_non_exhaustive()
    }
}

impl Ingress for GatewayIngress {
    fn submit(&self, adapter: &str, mut op: Operation) -> BoxFuture<'static, Outcome> {
        let trans_id = op.trans_id();
        if self.run.stopping.load(Ordering::SeqCst) {
            return Box::pin(async move {
                Outcome::failure(
                    trans_id,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable: shutting down",
                )
            });
        }
        self.run.inflight.fetch_add(1, Ordering::SeqCst);
        self.aliases.inbound(adapter, &mut op);
        let kind = op.kind();
        let adapter: Arc<str> = Arc::from(adapter);
        let svc = self.pipeline.clone();
        let run = self.run.clone();
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let _guard = Inflight(&run);
            let out = svc
                .oneshot(Submission::new(adapter.clone(), op))
                .await
                .unwrap_or_else(|NotTaken(out)| out);
            metrics.count("in", &adapter, kind, out.status.code);
            tracing::debug!(%adapter, kind, code = %out.status.code, reason = %out.status.reason, "operation answered");
            out
        })
    }

    fn serves_elsewhere(&self, adapter: &str, domain: &str) -> bool {
        let probe = Address::new(Scheme::Im, None, domain);
        self.table
            .claimed_by(&probe)
            .is_some_and(|a| *a != *adapter)
    }

    fn watcher_info(&self, presentity: &Address) -> Option<cpim_core::watcherinfo::WatcherInfo> {
        self.table
            .is_local(&presentity.domain)
            .then(|| self.presence.watcher_info(presentity))
    }
}

/// Builds the router pipeline over `dispatch` (see [`crate::router`] for the order),
/// with an in-memory dedupe cache and no journal.
pub fn pipeline(cfg: &Config, table: Arc<RouteTable>, dispatch: Dispatch) -> Pipeline {
    let dedupe = DedupeLayer::new(Duration::from_secs(cfg.limits.dedupe_ttl_secs));
    pipeline_with(cfg, table, dispatch, dedupe, JournalLayer::none())
}

/// Builds the router pipeline over `dispatch` with the given dedupe cache and journal.
pub fn pipeline_with(
    cfg: &Config,
    table: Arc<RouteTable>,
    dispatch: Dispatch,
    dedupe: DedupeLayer,
    journal: JournalLayer,
) -> Pipeline {
    let svc = ServiceBuilder::new()
        .layer(CheckLayer::new(Authorize::new(table.clone())))
        .layer(CheckLayer::new(SizeLimit::new(cfg.limits.max_body_bytes)))
        .layer(CheckLayer::new(
            RateLimit::new(RateConfig {
                rate: cfg.limits.rate_per_source,
                burst: cfg.limits.burst_per_source,
            })
            .with_domains(table),
        ))
        .layer(CheckLayer::new(Hops))
        .layer(dedupe)
        .layer(journal)
        .layer(TimeoutLayer::new(Duration::from_millis(
            cfg.limits.timeout_ms,
        )))
        .service(dispatch);
    BoxCloneSyncService::new(svc)
}

/// The pipeline for messages recovered from the journal at start: they passed
/// authorization, size, rate and hop checks when they were accepted, so only the journal
/// (outermost, so that it completes the row of a recovered message the dedupe cache
/// answers), the dedupe cache (both shared with the main pipeline), the timeout and the
/// dispatcher.
fn recovery_pipeline(
    cfg: &Config,
    dispatch: Dispatch,
    dedupe: DedupeLayer,
    journal: JournalLayer,
) -> Pipeline {
    let svc = ServiceBuilder::new()
        .layer(journal)
        .layer(dedupe)
        .layer(TimeoutLayer::new(Duration::from_millis(
            cfg.limits.timeout_ms,
        )))
        .service(dispatch);
    BoxCloneSyncService::new(svc)
}

/// Delivers the messages left in flight in the journal by a crash, each with its row:
/// the journal middleware completes the row (or the queue takes it over).
fn recover(
    journal: &Journal,
    pipeline: Pipeline,
    tasks: &mut JoinSet<()>,
) -> Result<(), StoreError> {
    let pending = journal.in_flight()?;
    if !pending.is_empty() {
        tracing::info!(
            messages = pending.len(),
            "delivering messages recovered from the journal"
        );
    }
    for (id, adapter, m) in pending {
        let svc = pipeline.clone();
        tasks.spawn(async move {
            let dest = m.destination.to_string();
            let sub = Submission::recovered(adapter.as_str(), id, m);
            let out = svc.oneshot(sub).await.unwrap_or_else(|NotTaken(out)| out);
            if out.status.is_success() {
                tracing::info!(row = id, %dest, code = %out.status.code, "recovered message delivered");
            } else {
                // Its source's session is gone: nobody to tell but the log.
                tracing::warn!(row = id, %adapter, %dest, code = %out.status.code, reason = %out.status.reason, "recovered message refused");
            }
        });
    }
    Ok(())
}

enum Handle {
    Sip(cpim_sip::app::SipHandle),
    Xmpp(cpim_xmpp::XmppHandle),
    Irc(Arc<cpim_irc::IrcHandle>),
    Json(Arc<cpim_json::JsonHandle>),
}

/// A running gateway.
pub struct Gateway {
    run: Arc<RunState>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    handles: Vec<Handle>,
    admin_addr: Option<SocketAddr>,
    sip_addrs: Vec<(String, SocketAddr)>,
    json_addrs: (Option<SocketAddr>, Option<SocketAddr>),
    drain: Duration,
    journal: Arc<Journal>,
    /// The ingress (tests submit through it as an adapter would).
    pub ingress: Arc<GatewayIngress>,
    /// The routing table.
    pub table: Arc<RouteTable>,
    /// The presence service.
    pub presence: Arc<PresenceService>,
    /// The store.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("admin_addr", &self.admin_addr)
            .field("sip_addrs", &self.sip_addrs)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts the configured adapters and the admin API.
    pub async fn start(cfg: Config) -> Result<Gateway, GatewayError> {
        Self::start_with(cfg, Vec::new()).await
    }

    /// Starts with extra, already running adapters (after the configured ones in
    /// routing order): how tests plug in mock adapters.
    pub async fn start_with(
        mut cfg: Config,
        extra: Vec<Arc<dyn Adapter>>,
    ) -> Result<Gateway, GatewayError> {
        let store = Store::open(&cfg.store.path)?;
        let store_dir = cfg.store.path.clone();
        crate::secrets::resolve(&mut cfg, &store_dir)?;
        let metrics = Arc::new(Metrics::new());
        let local = cfg.local_domains();
        let table = Arc::new(
            RouteTable::new(
                local.iter().map(|(d, a)| (d.as_str(), a.as_str())),
                cfg.routes
                    .iter()
                    .map(|r| (r.domain.as_str(), r.adapter.as_str())),
            )
            .with_default_route(cfg.default_route.as_deref())
            .with_closed_adapters(
                cfg.irc
                    .iter()
                    .map(|i| i.name.as_str())
                    .chain(cfg.json.iter().map(|j| j.name.as_str())),
            ),
        );
        let aliases = Arc::new(Aliases::new(&cfg.domain_aliases));
        let out = Arc::new(Outbound {
            table: table.clone(),
            aliases: aliases.clone(),
            metrics: metrics.clone(),
        });
        let presence = PresenceService::restore(cfg.presence_config(), out.clone(), store.clone())?;
        let queue = Queue::new(store.clone(), cfg.queue.clone(), out.clone());
        let journal = Journal::start(
            store.clone(),
            Duration::from_secs(cfg.limits.dedupe_ttl_secs),
        )?;
        let dispatch = Dispatch {
            out: out.clone(),
            presence: presence.clone(),
            queue: queue.clone(),
            journal: Some(journal.clone()),
        };
        let acks_table = table.clone();
        let dedupe = DedupeLayer::with_journal(&journal);
        let journaled = JournalLayer::new(
            journal.clone(),
            Acknowledges(Arc::new(move |name: &str| {
                acks_table
                    .adapter(name)
                    .is_some_and(|a| a.acknowledges_messages())
            })),
        );
        let recovery = recovery_pipeline(&cfg, dispatch.clone(), dedupe.clone(), journaled.clone());
        let run = Arc::new(RunState::default());
        let ingress = Arc::new(GatewayIngress {
            pipeline: pipeline_with(&cfg, table.clone(), dispatch, dedupe, journaled),
            aliases,
            table: table.clone(),
            run: run.clone(),
            metrics: metrics.clone(),
            presence: presence.clone(),
        });
        let sip_store = Arc::new(GatewaySipStore::new(store.clone()));
        sip_store.set_queue(queue.clone());

        let mut handles = Vec::new();
        let mut failed: Vec<LinkStatus> = Vec::new();
        let mut sip_addrs = Vec::new();
        let mut sip_transactions = None;
        let mut json_addrs = (None, None);
        for name in &cfg.adapters {
            match name.as_str() {
                "sip" => match start_sip(&cfg, ingress.clone(), sip_store.clone()).await {
                    Ok(h) => {
                        table.add_adapter(h.adapter());
                        sip_addrs = h
                            .local_addrs()
                            .iter()
                            .map(|(t, a)| (format!("{t:?}").to_ascii_lowercase(), *a))
                            .collect();
                        sip_transactions = Some(h.endpoint().transaction_stats());
                        handles.push(Handle::Sip(h));
                    }
                    Err(e) => failed.push(adapter_failed("sip", &e.to_string())),
                },
                "xmpp" => match cpim_xmpp::start(cfg.xmpp.clone(), ingress.clone()).await {
                    Ok(h) => {
                        table.add_adapter(h.adapter());
                        handles.push(Handle::Xmpp(h));
                    }
                    Err(e) => failed.push(adapter_failed("xmpp", &e.to_string())),
                },
                other => {
                    if let Some(irc) = cfg.irc.iter().find(|i| i.name == other) {
                        match cpim_irc::start(irc.clone(), ingress.clone()).await {
                            Ok(h) => {
                                let h = Arc::new(h);
                                table.add_adapter(h.clone());
                                handles.push(Handle::Irc(h));
                            }
                            Err(e) => failed.push(adapter_failed(other, &e.to_string())),
                        }
                    } else if let Some(json) = cfg.json.as_ref().filter(|j| j.name == other) {
                        match cpim_json::start(json.clone(), ingress.clone()).await {
                            Ok(h) => {
                                let h = Arc::new(h);
                                table.add_adapter(h.clone());
                                json_addrs = (h.tcp_addr(), h.ws_addr());
                                handles.push(Handle::Json(h));
                            }
                            Err(e) => failed.push(adapter_failed(other, &e.to_string())),
                        }
                    } else {
                        failed.push(adapter_failed(other, "unknown adapter"));
                    }
                }
            }
        }
        for a in extra {
            table.add_adapter(a);
        }
        run.started.store(true, Ordering::SeqCst);

        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(presence.clone().run_timers(stop_rx.clone()));
        tasks.spawn(queue.clone().run(stop_rx.clone()));
        recover(&journal, recovery, &mut tasks)?;

        let mut admin_addr = None;
        if cfg.admin.enabled {
            let listener = tokio::net::TcpListener::bind(cfg.admin.listen)
                .await
                .map_err(|source| GatewayError::Admin {
                    addr: cfg.admin.listen,
                    source,
                })?;
            admin_addr = listener.local_addr().ok();
            let state = Arc::new(AdminState {
                table: table.clone(),
                presence: presence.clone(),
                store: store.clone(),
                sip_store,
                metrics: metrics.clone(),
                sip_transactions,
                queue: cfg.queue.clone(),
                token: cfg.admin.token.clone().unwrap_or_default(),
                hosts: admin::allowed_hosts(cfg.admin.listen, &cfg.admin.allowed_hosts),
                run: run.clone(),
                failed: Mutex::new(failed),
                xcap: if cfg.adapters.iter().any(|a| a == "sip") {
                    crate::xcap::XcapService::new(&cfg.sip, store.clone(), Some(presence.clone()))
                } else {
                    None
                },
            });
            let limits = admin::ServeLimits {
                conn: cpim_core::connlimit::ConnLimits {
                    per_source: cfg.admin.max_connections_per_source,
                    total: cfg.admin.max_connections,
                },
                header_timeout: Duration::from_secs(cfg.admin.header_timeout_secs.max(1)),
            };
            tasks.spawn(admin::serve(listener, state, limits, stop_rx.clone()));
        } else {
            for f in failed {
                tracing::error!(link = %f.name, error = ?f.last_error, "adapter not running");
            }
        }
        tracing::info!(admin = ?admin_addr, sip = ?sip_addrs, "gateway started");
        Ok(Gateway {
            run,
            stop,
            tasks,
            handles,
            admin_addr,
            sip_addrs,
            json_addrs,
            drain: Duration::from_secs(cfg.limits.drain_secs),
            journal,
            ingress,
            table,
            presence,
            store,
            metrics,
        })
    }

    /// The admin API's bound address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The SIP adapter's bound addresses, as (`udp`/`tcp`/`tls`, address).
    pub fn sip_addrs(&self) -> &[(String, SocketAddr)] {
        &self.sip_addrs
    }

    /// The JSON adapter's bound TCP address (useful with port 0).
    pub fn json_tcp_addr(&self) -> Option<SocketAddr> {
        self.json_addrs.0
    }

    /// The JSON adapter's bound WebSocket address.
    pub fn json_ws_addr(&self) -> Option<SocketAddr> {
        self.json_addrs.1
    }

    /// Stops accepting, waits (bounded by `limits.drain_secs`) for the operations in
    /// flight, stops the adapters, the timers and the admin API.
    pub async fn shutdown(mut self) {
        self.run.stopping.store(true, Ordering::SeqCst);
        let run = self.run.clone();
        let drained = tokio::time::timeout(self.drain, async move {
            loop {
                let idle = run.idle.notified();
                if run.inflight() == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await;
        match drained {
            Ok(()) => tracing::info!("in-flight operations drained"),
            Err(_) => tracing::warn!(left = self.run.inflight(), "drain timed out"),
        }
        for h in self.handles.drain(..).rev() {
            match h {
                Handle::Sip(h) => h.shutdown().await,
                Handle::Xmpp(h) => h.shutdown().await,
                Handle::Irc(h) => h.shutdown().await,
                Handle::Json(h) => h.shutdown().await,
            }
        }
        let _ = self.stop.send(true);
        let tasks = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), tasks)
            .await
            .is_err()
        {
            self.tasks.abort_all();
        }
        // Dedupe records handed over without waiting are on disk before the process ends.
        if let Err(e) = self.journal.flush().await {
            tracing::error!(error = %e, "journal not flushed at shutdown");
        }
        tracing::info!("gateway stopped");
    }
}

/// Starts the SIP adapter. A TLS listener without `tls_cert`/`tls_key` gets the
/// self-signed certificate kept in the store folder, generated at first start for the
/// SIP domains, `advertised_host` and `localhost` (files mode 0600).
async fn start_sip(
    cfg: &Config,
    ingress: Arc<GatewayIngress>,
    sip_store: Arc<GatewaySipStore>,
) -> Result<cpim_sip::app::SipHandle, String> {
    let mut sip = cfg.sip.clone();
    let ep = &mut sip.endpoint;
    if !ep.tls.is_empty() && ep.tls_cert.is_none() && ep.tls_key.is_none() {
        let mut names = sip.domains.clone();
        names.extend(ep.advertised_host.iter().cloned());
        names.push("localhost".into());
        let (c, k) = crate::secrets::generated_tls_identity(&cfg.store.path, &names)
            .map_err(|e| format!("SIP TLS certificate: {e}"))?;
        ep.tls_cert = Some(c);
        ep.tls_key = Some(k);
    }
    cpim_sip::app::start(sip, ingress, sip_store)
        .await
        .map_err(|e| e.to_string())
}

fn adapter_failed(name: &str, error: &str) -> LinkStatus {
    tracing::error!(adapter = name, %error, "adapter failed to start; continuing without it");
    LinkStatus {
        name: format!("adapter:{name}"),
        up: false,
        queued: 0,
        last_error: Some(error.to_owned()),
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}
