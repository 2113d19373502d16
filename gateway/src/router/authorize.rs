//! Source authorization, the outermost step.
//!
//! - A source in one of the gateway's own domains must come in by the adapter that owns
//!   that domain (a SIP user of the local registrar cannot be claimed over XMPP).
//! - A source in a domain another adapter claims (configured route, `Adapter::serves`)
//!   is forged; a domain nobody claims is vouched for by the adapter it came in by (an
//!   XMPP s2s peer authenticated by dialback or TLS, a foreign SIP domain).
//! - No open relay: the source or the destination must be local or have a configured
//!   route. A publish must come from a local presentity.
//!
//! Domains compare in the canonical form of [`cpim_core::domain`] (case, trailing dot,
//! IDNA A-labels): parsed addresses hold it and the [`RouteTable`] keeps its domains in
//! it, so `xmpp.test.` is the routed `xmpp.test`, never an unclaimed domain to vouch for.
//!
//! Refusals are 403 (RFC 3860 s4.2: the sender is not allowed to send this).

use cpim_core::StatusCode;
use std::sync::Arc;

use cpim_core::model::{Operation, Status};

use super::check::Check;
use super::Submission;
use crate::routing::RouteTable;

/// The authorization rule over a routing table.
#[derive(Clone, Debug)]
pub struct Authorize {
    table: Arc<RouteTable>,
}

impl Authorize {
    /// Authorizes against `table`.
    pub fn new(table: Arc<RouteTable>) -> Self {
        Authorize { table }
    }
}

impl Check for Authorize {
    fn check(&self, sub: &mut Submission) -> Result<(), Status> {
        authorized(&self.table, sub).inspect_err(|status| {
            tracing::info!(adapter = %sub.adapter, source = %sub.op.source(), reason = %status.reason, "refused");
        })
    }
}

/// Checks a submission; `Err` carries the refusal.
pub fn authorized(table: &RouteTable, sub: &Submission) -> Result<(), Status> {
    let src = sub.op.source();
    if let Some(owner) = table.local_owner(&src.domain) {
        if owner != &*sub.adapter {
            return Err(Status::new(
                StatusCode::FORBIDDEN,
                format!(
                    "source domain {} is served by adapter {owner}, not {}",
                    src.domain, sub.adapter
                ),
            ));
        }
    } else if let Some(a) = table.claimed_by(src) {
        // The domain is another adapter's: a forged source.
        if *a != *sub.adapter {
            return Err(Status::new(
                StatusCode::FORBIDDEN,
                format!(
                    "source domain {} belongs to adapter {a}, not {}",
                    src.domain, sub.adapter
                ),
            ));
        }
    } else if table.is_closed(&sub.adapter) {
        // IRC and JSON speak only for their own users (the JSON session binds its
        // token's addresses; the IRC network is one domain): nothing to vouch for.
        return Err(Status::new(
            StatusCode::FORBIDDEN,
            format!(
                "adapter {} may only send as its own addresses, not {src}",
                sub.adapter
            ),
        ));
    }
    // A domain no adapter claims is vouched for by the adapter it came in by (SIP
    // from a foreign domain, an XMPP s2s peer verified by dialback or TLS); the relay
    // rule below still applies.
    match sub.op.destination() {
        None => {
            // A publish: only the gateway's own presentities publish to it.
            if !table.is_local(&src.domain) {
                return Err(Status::new(
                    StatusCode::FORBIDDEN,
                    "only local presentities may publish",
                ));
            }
        }
        Some(dst) => {
            if !table.is_known(&src.domain) && !table.is_known(&dst.domain) {
                return Err(Status::new(
                    StatusCode::FORBIDDEN,
                    format!(
                        "relaying denied: neither {} nor {} is a local or routed domain",
                        src.domain, dst.domain
                    ),
                ));
            }
        }
    }
    if let Operation::Notify(_) = &sub.op {
        // A notify comes from the presentity's side; nothing more to check here.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::check::CheckLayer;
    use crate::router::testutil::{msg, Recorder};
    use tower::{Layer, ServiceExt};

    fn table() -> Arc<RouteTable> {
        Arc::new(RouteTable::new(
            [("sip.test", "sip")],
            [("xmpp.test", "xmpp"), ("other.test", "xmpp")],
        ))
    }

    async fn run(adapter: &str, op: Operation) -> (u16, usize) {
        let rec = Recorder::default();
        let svc = CheckLayer::new(Authorize::new(table())).layer(rec.clone());
        let out = svc.oneshot(Submission::new(adapter, op)).await.unwrap();
        (out.status.code.as_u16(), rec.count())
    }

    #[tokio::test]
    async fn local_source_from_its_own_adapter_passes() {
        let (code, n) = run(
            "sip",
            msg(1, "sip:alice@sip.test", "xmpp:romeo@xmpp.test", "hi"),
        )
        .await;
        assert_eq!((code, n), (200, 1));
    }

    #[tokio::test]
    async fn local_source_from_another_adapter_is_forged() {
        let (code, n) = run(
            "xmpp",
            msg(1, "xmpp:alice@sip.test", "sip:bob@sip.test", "hi"),
        )
        .await;
        assert_eq!((code, n), (403, 0));
    }

    #[tokio::test]
    async fn remote_source_must_belong_to_its_adapter() {
        // An XMPP domain claimed by a SIP user agent.
        let (code, n) = run(
            "sip",
            msg(1, "sip:romeo@xmpp.test", "sip:bob@sip.test", "hi"),
        )
        .await;
        assert_eq!((code, n), (403, 0));
        let (code, n) = run("xmpp", msg(1, "romeo@xmpp.test", "sip:bob@sip.test", "hi")).await;
        assert_eq!((code, n), (200, 1));
    }

    /// Issue 10: `xmpp.test.` and `SIP.Test.` are the routed and the local domain, not
    /// unclaimed ones an adapter may vouch for (RFC 1034 s3.1, cpim_core::domain).
    #[tokio::test]
    async fn domain_spellings_cannot_get_past_anti_forging() {
        for from in [
            "sip:romeo@xmpp.test.",
            "sip:romeo@XMPP.Test",
            "sip:romeo@Other.TEST.",
        ] {
            let (code, n) = run("sip", msg(1, from, "sip:bob@sip.test", "hi")).await;
            assert_eq!((code, n), (403, 0), "{from}");
        }
        for from in ["alice@sip.test.", "alice@SIP.test"] {
            let (code, n) = run("xmpp", msg(1, from, "sip:bob@sip.test", "hi")).await;
            assert_eq!((code, n), (403, 0), "{from}");
        }
        // A table configured with odd spellings still finds the canonical domain.
        let t = Arc::new(RouteTable::new(
            [("SIP.Test.", "sip")],
            [("XMPP.test", "xmpp")],
        ));
        assert!(t.is_local("sip.test") && t.is_local("sip.TEST."));
        assert!(t.is_known("xmpp.test."));
    }

    #[tokio::test]
    async fn no_open_relay() {
        // Both ends are routed XMPP domains: allowed (routes are configured on purpose).
        let (code, _) = run("xmpp", msg(1, "romeo@xmpp.test", "dave@other.test", "hi")).await;
        assert_eq!(code, 200);
        // Neither end local nor routed: refused.
        let (code, n) = run("xmpp", msg(1, "eve@evil.test", "dave@nowhere.test", "hi")).await;
        assert_eq!((code, n), (403, 0));
        // An unclaimed (federated) source domain to a local user: the adapter vouches.
        let (code, n) = run(
            "xmpp",
            msg(1, "eve@federated.test", "sip:bob@sip.test", "hi"),
        )
        .await;
        assert_eq!((code, n), (200, 1));
    }

    #[tokio::test]
    async fn closed_adapters_send_only_as_their_own_addresses() {
        let t = Arc::new(
            RouteTable::new(
                [
                    ("sip.test", "sip"),
                    ("irc.test", "irc"),
                    ("json.test", "json"),
                ],
                [("xmpp.test", "xmpp")],
            )
            .with_closed_adapters(["irc", "json"]),
        );
        let go = |adapter: &'static str, op: Operation| {
            let svc = CheckLayer::new(Authorize::new(t.clone())).layer(Recorder::default());
            async move {
                svc.oneshot(Submission::new(adapter, op))
                    .await
                    .unwrap()
                    .status
                    .code
            }
        };
        // Its own domain: passes.
        let own = msg(1, "im:nick@irc.test", "sip:bob@sip.test", "hi");
        assert_eq!(go("irc", own.clone()).await, 200);
        // The IRC domain claimed over JSON (or XMPP): forged.
        assert_eq!(go("json", own.clone()).await, 403);
        assert_eq!(go("xmpp", own).await, 403);
        // A JSON session cannot claim a foreign, unclaimed domain.
        let foreign = msg(2, "im:eve@nowhere.test", "sip:bob@sip.test", "hi");
        assert_eq!(go("json", foreign.clone()).await, 403);
        // ...where an open (federating) adapter vouches for it.
        assert_eq!(go("xmpp", foreign).await, 200);
        assert_eq!(
            go(
                "json",
                msg(3, "im:carol@json.test", "im:nick@irc.test", "hi")
            )
            .await,
            200
        );
    }

    #[tokio::test]
    async fn publish_only_from_local_presentities() {
        use cpim_core::model::{Publish, TransId};
        use cpim_core::Address;
        let p = |who: &str| {
            Operation::Publish(Publish {
                trans_id: TransId(9),
                presentity: Address::parse(who).unwrap(),
                presence: Default::default(),
                expires: 60,
            })
        };
        assert_eq!(run("sip", p("sip:alice@sip.test")).await, (200, 1));
        assert_eq!(run("xmpp", p("romeo@xmpp.test")).await.0, 403);
    }
}
