//! The admin HTTP API (axum): `/health`, `/ready`, `/links`, `/registrations`,
//! `/subscriptions`, `/queue`, `/metrics` (Prometheus text format), the presence
//! authorization endpoints `/presence/watchers`, `/presence/decision` ([`presence`]); and
//! XCAP under `/xcap-root` with its own authentication (see [`crate::xcap`]).
//!
//! Authentication: every endpoint but `/health` (which answers `ok` and nothing else) and
//! XCAP (HTTP Digest with the SIP users' credentials)
//! needs `Authorization: Bearer <token>` (401 otherwise). The token is `admin.token`, or,
//! when absent, one generated at first start and kept in the store folder
//! (`admin.token`, mode 0600; see [`crate::secrets`]); configured tokens shorter than 16
//! bytes or placeholders are refused by the config loader. The comparison (of SHA-256
//! digests) takes the same time wherever the first difference is and whatever the length. The default listen address is 127.0.0.1:8080.
//!
//! DNS rebinding: every request, `/health` included, must name in its `Host` header
//! `localhost`, a loopback address, the listen address or one of `admin.allowed_hosts`
//! (the port is not compared); any other or no `Host` gets 421 Misdirected Request
//! (RFC 9110 s15.5.20), so a web page of another site whose name resolves to this address
//! cannot read the API through the victim's browser.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use cpim_core::adapter::LinkStatus;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::gateway::RunState;
use crate::metrics::{LinkLabels, Metrics};
use crate::presence_service::PresenceService;
use crate::routing::RouteTable;
use crate::sip_store::GatewaySipStore;
use crate::store::Store;

/// What the handlers read.
#[derive(Debug)]
pub struct AdminState {
    /// Routing (adapters and their links).
    pub table: Arc<RouteTable>,
    /// Presence.
    pub presence: Arc<PresenceService>,
    /// The store.
    pub store: Store,
    /// SIP registrations.
    pub sip_store: Arc<GatewaySipStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The SIP endpoint's server-transaction counters, when SIP runs.
    pub sip_transactions: Option<Arc<cpim_sip::transaction::TxStats>>,
    /// The queue settings: `/queue` shows, per running adapter, the outcome codes that
    /// queue a message to it (empty: never queued).
    pub queue: crate::config::QueueSection,
    /// The required bearer token (an empty one refuses every request but `/health`).
    pub token: String,
    /// The host names accepted in `Host` (lower case, see [`allowed_hosts`]).
    pub hosts: Vec<String>,
    /// Run state.
    pub run: Arc<RunState>,
    /// Adapters that failed to start.
    pub failed: Mutex<Vec<LinkStatus>>,
    /// XCAP under `/xcap-root` (digest-authenticated, not by the bearer token), when
    /// SIP runs with configured users.
    pub xcap: Option<Arc<crate::xcap::XcapService>>,
}

mod presence;

type S = State<Arc<AdminState>>;

/// The names accepted in `Host`: `localhost`, the loopback addresses, the listen address
/// (unless unspecified) and `extra`, lower case, without a trailing dot.
pub fn allowed_hosts(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut v: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    if !listen.ip().is_unspecified() {
        v.push(listen.ip().to_string());
    }
    v.extend(extra.iter().map(|h| canonical_host(h)));
    v
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]:port`, `v4:port`), lower
/// case, without a trailing dot.
fn canonical_host(value: &str) -> String {
    let v = value.trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if v.parse::<IpAddr>().is_ok() {
        v
    } else {
        match v.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => v,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Refuses requests whose `Host` is not one of [`AdminState::hosts`] (DNS rebinding).
async fn host_check(State(st): S, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(canonical_host);
    match host {
        Some(h) if st.hosts.contains(&h) => next.run(req).await,
        _ => (
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected request: the Host header does not name this admin API (see admin.allowed_hosts)\n",
        )
            .into_response(),
    }
}

fn check(st: &AdminState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared as SHA-256 digests without an early exit: the time depends neither on
    // where the first difference is nor on the token's length.
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(st.token.as_bytes()),
    );
    let ok = !st.token.is_empty()
        && a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0;
    if ok {
        Ok(())
    } else {
        Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "unauthorized\n",
            )
                .into_response(),
        ))
    }
}

fn json(v: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{v}\n"),
    )
        .into_response()
}

fn links(st: &AdminState) -> Vec<LinkStatus> {
    let mut v: Vec<LinkStatus> = st.table.adapters().iter().flat_map(|a| a.links()).collect();
    v.extend(
        st.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned(),
    );
    v
}

async fn health() -> &'static str {
    "ok\n"
}

async fn ready(State(st): S, h: HeaderMap) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    let failed = !st
        .failed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty();
    if st.run.is_running() && !failed {
        (StatusCode::OK, "ready\n").into_response()
    } else if failed {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: an adapter failed to start (see /links)\n",
        )
            .into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn links_h(State(st): S, h: HeaderMap) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    let v: Vec<serde_json::Value> = links(&st)
        .into_iter()
        .map(|l| serde_json::json!({"name": l.name, "up": l.up, "queued": l.queued, "last_error": l.last_error}))
        .collect();
    json(serde_json::Value::Array(v))
}

async fn registrations(State(st): S, h: HeaderMap) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    match st.sip_store.bindings() {
        Ok(b) => json(serde_json::to_value(b).unwrap_or_default()),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn subscriptions(State(st): S, h: HeaderMap) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    json(serde_json::Value::Array(st.presence.snapshot()))
}

async fn queue(State(st): S, h: HeaderMap) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    match st.store.queue_depth() {
        Ok(d) => {
            let on: serde_json::Map<String, serde_json::Value> = st
                .table
                .adapters()
                .iter()
                .map(|a| {
                    (
                        a.name().to_owned(),
                        serde_json::json!(st.queue.codes_for(a.name())),
                    )
                })
                .collect();
            json(serde_json::json!({ "depth": d, "queued_on": on }))
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn metrics(State(st): S, h: HeaderMap) -> Response {
    if let Err(r) = check(&st, &h) {
        return *r;
    }
    for l in links(&st) {
        st.metrics
            .links
            .get_or_create(&LinkLabels { link: l.name })
            .set(i64::from(l.up));
    }
    st.metrics.subscriptions.set(st.presence.count() as i64);
    if let Some(t) = &st.sip_transactions {
        st.metrics.sip_transactions(t);
    }
    if let Ok(d) = st.store.queue_depth() {
        st.metrics.queue_depth.set(d as i64);
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.encode(),
    )
        .into_response()
}

/// The router (every route behind the `Host` check).
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/links", get(links_h))
        .route("/registrations", get(registrations))
        .route("/subscriptions", get(subscriptions))
        .route("/queue", get(queue))
        .route("/metrics", get(metrics))
        .route("/presence/watchers", get(presence::watchers))
        .route("/presence/decision", post(presence::decision))
        .route(crate::xcap::ROOT, any(crate::xcap::route))
        .route(
            &format!("{}/{{*rest}}", crate::xcap::ROOT),
            any(crate::xcap::route),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            host_check,
        ))
        .with_state(state)
}

/// Connection limits of the admin listener (`[admin]` keys).
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Connections per source address (IPv6: per /64) and in total.
    pub conn: cpim_core::connlimit::ConnLimits,
    /// A request's header section must be in this long after the connection starts
    /// waiting for it (an idle keep-alive connection is closed after it too), however
    /// slowly the bytes trickle.
    pub header_timeout: std::time::Duration,
}

/// Serves until `stop` changes. Connections are admitted by `cpim_listen::CappedListener`
/// (caps, EMFILE backoff) and served by hyper's HTTP/1 with a header read timeout.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let mut listener = cpim_listen::CappedListener::new(listener, limits.conn, "admin");
    let app = router(state);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            (stream, _peer, permit) = listener.accept() => {
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                conns.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(limits.header_timeout)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "admin connection ended");
                    }
                    drop(permit);
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // let requests in progress finish, briefly
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(std::time::Duration::from_secs(2), drain)
        .await
        .is_err()
    {
        conns.abort_all();
    }
}
