//! Metrics in the Prometheus text format (prometheus-client: an explicit registry per
//! gateway, so several gateways in one test process do not share counters).

use std::sync::Arc;

use cpim_core::StatusCode;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the message counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// `in` (submitted by an adapter) or `out` (delivered to an adapter).
    pub direction: &'static str,
    /// The adapter.
    pub adapter: String,
    /// Operation kind.
    pub kind: &'static str,
    /// Outcome class: `2xx`, `4xx`, `5xx`, `6xx`.
    pub outcome: &'static str,
}

/// Labels of the link gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabels {
    /// The link's name.
    pub link: String,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Operations by direction, adapter, kind and outcome.
    pub operations: Family<OpLabels, Counter>,
    /// Seconds from submission to the target's answer, for messages.
    pub delivery_latency: Histogram,
    /// Subscriptions held by the presence engine.
    pub subscriptions: Gauge,
    /// Messages waiting in the store-and-forward queue.
    pub queue_depth: Gauge,
    /// 1 per link that is up, 0 per link that is down.
    pub links: Family<LinkLabels, Gauge>,
    /// SIP server transactions: held now, the most held at once, requests refused
    /// statelessly past `sip.endpoint.max_server_transactions`, compact records of
    /// refusals kept.
    pub sip_server_transactions: [Gauge; 4],
}

/// The outcome class of a status code.
pub fn class(code: StatusCode) -> &'static str {
    match code.class() {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        _ => "6xx",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("cpim");
        let operations = Family::<OpLabels, Counter>::default();
        registry.register(
            "operations",
            "Operations by direction (in: submitted by an adapter, out: delivered to one), adapter, kind and outcome class",
            operations.clone(),
        );
        let delivery_latency = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "delivery_latency_seconds",
            "Seconds from a message's submission to its target's answer",
            delivery_latency.clone(),
        );
        let subscriptions = Gauge::default();
        registry.register(
            "subscriptions",
            "Presence subscriptions held",
            subscriptions.clone(),
        );
        let queue_depth = Gauge::default();
        registry.register(
            "queue_depth",
            "Messages accepted and waiting for delivery",
            queue_depth.clone(),
        );
        let links = Family::<LinkLabels, Gauge>::default();
        registry.register("link_up", "1 if the link is up, 0 if down", links.clone());
        let sip_server_transactions: [Gauge; 4] = Default::default();
        for (g, (name, help)) in sip_server_transactions.iter().zip([
            ("sip_server_transactions", "SIP server transactions held"),
            (
                "sip_server_transactions_peak",
                "The most SIP server transactions held at once since start",
            ),
            (
                "sip_server_transactions_refused",
                "SIP requests answered statelessly past the server-transaction cap",
            ),
            (
                "sip_refusal_records",
                "Compact records of SIP refusals kept for retransmissions",
            ),
        ]) {
            registry.register(name, help, g.clone());
        }
        Metrics {
            sip_server_transactions,
            registry,
            operations,
            delivery_latency,
            subscriptions,
            queue_depth,
            links,
        }
    }

    /// Counts one operation.
    pub fn count(
        &self,
        direction: &'static str,
        adapter: &str,
        kind: &'static str,
        code: StatusCode,
    ) {
        self.operations
            .get_or_create(&OpLabels {
                direction,
                adapter: adapter.to_owned(),
                kind,
                outcome: class(code),
            })
            .inc();
    }

    /// Copies the SIP endpoint's transaction counters into the gauges.
    pub fn sip_transactions(&self, t: &cpim_sip::transaction::TxStats) {
        let [now, peak, refused, records] = &self.sip_server_transactions;
        now.set(t.server_transactions() as i64);
        peak.set(t.peak_server_transactions() as i64);
        refused.set(t.refused_over_cap() as i64);
        records.set(t.records() as i64);
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;
