//! The admin HTTP API (axum): `/health`, `/ready`, `/links`, `/registrations`,
//! `/subscriptions`, `/queue`, `/metrics` (Prometheus text format).
//!
//! Authentication: when `admin.token` is set, every endpoint but `/health` needs
//! `Authorization: Bearer <token>` (401 otherwise). The config loader refuses a
//! non-loopback `admin.listen` without a token; the default is 127.0.0.1:8080.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cpim_core::adapter::LinkStatus;
use tokio::sync::watch;

use crate::gateway::RunState;
use crate::metrics::{LinkLabels, Metrics};
use crate::presence_service::PresenceService;
use crate::router::RouteTable;
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
    /// Required bearer token.
    pub token: Option<String>,
    /// Run state.
    pub run: Arc<RunState>,
    /// Adapters that failed to start.
    pub failed: Mutex<Vec<LinkStatus>>,
}

type S = State<Arc<AdminState>>;

fn check(st: &AdminState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = &st.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare without an early exit on the first differing byte.
    let ok = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
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
        Ok(d) => json(serde_json::json!({ "depth": d })),
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

/// The router.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/links", get(links_h))
        .route("/registrations", get(registrations))
        .route("/subscriptions", get(subscriptions))
        .route("/queue", get(queue))
        .route("/metrics", get(metrics))
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
