//! XEP-0198 on outgoing streams, in the hub: what a lost stream leaves behind.
//!
//! A delivery written on a stream with stream management keeps its stanzas until the
//! peer's `<a h='N'/>` covers its last one (`Conn::sm_log` maps stanza numbers to
//! deliveries). When the stream ends:
//! - a delivery the peer acknowledged was handled by the peer server (XEP-0198 s4): it
//!   succeeds, although the barrier answer (`crate::tracker`) the stream would have
//!   brought is lost; it is never written again;
//! - a delivery not acknowledged goes back to the head of its stream's queue, in its
//!   order, and is written on the next stream with the same stanzas, ids included (s5
//!   "take alternative action" without resumption, which Prosody does not offer on s2s).
//!   An `<r/>` follows every delivery, so the peer's count trails what it handled by the
//!   stanzas in flight only; those it handled without acknowledging before the stream
//!   ended (Prosody sends no last `<a/>` when it closes an s2s stream) arrive twice,
//!   under the same ids, which receivers honouring XEP-0359 drop;
//! - without stream management (not offered, `<failed/>`, or past [`MAX_UNACKED`]
//!   deliveries awaiting an ack) the outcome is unknown: 408, and the gateway's queue
//!   decides.

use cpim_core::model::Status;
use cpim_core::StatusCode;
use tracing::{debug, info};

use super::{Hub, Pair, Pending};
use crate::sm::covered;

/// Deliveries kept for a resend per stream; past it, a delivery is written without the
/// guarantee (a peer that never answers `<r/>` cannot make the hub hold everything).
pub(super) const MAX_UNACKED: usize = 4096;

impl Hub {
    /// The peer's `<a h='N'/>` on outgoing stream `conn`.
    pub(super) fn on_acked(&mut self, conn: u64, h: u32) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        while let Some(&(n, key)) = c.sm_log.front() {
            if !covered(n, h) {
                break;
            }
            c.sm_log.pop_front();
            if let Some(w) = self.replies.get_mut(&key) {
                w.unacked = None;
                w.acked = true;
            }
        }
    }

    /// Outgoing stream `conn` for `pair` is gone (`sm`: with stream management to the
    /// end): settles what was written on it, see the module docs.
    pub(super) fn settle_lost(&mut self, conn: u64, pair: &Pair, sm: bool) {
        let mut keys: Vec<u64> = self
            .replies
            .iter()
            .filter(|(_, w)| w.conn == Some(conn))
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        let mut again = Vec::new();
        for k in keys {
            self.tracker.forget(k);
            let Some(w) = self.replies.get_mut(&k) else {
                continue;
            };
            if sm && w.acked {
                let why = format!("handled by {} (XEP-0198 ack)", pair.1);
                self.resolve(k, Status::new(StatusCode::OK, why));
            } else if sm && w.unacked.is_some() {
                w.conn = None;
                again.push(k);
            } else {
                self.resolve(
                    k,
                    Status::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "s2s link lost before the peer confirmed",
                    ),
                );
            }
        }
        if !again.is_empty() {
            info!(link = %self.link_name(pair), "xmpp s2s: {} unacknowledged deliveries to resend (XEP-0198)", again.len());
            let q = self.queues.entry(pair.clone()).or_default();
            for k in again.into_iter().rev() {
                q.push_front(Pending::Resend(k));
            }
        }
    }

    /// Writes a delivery again on the new stream `conn`, with its stanzas as they were.
    pub(super) fn resend(&mut self, conn: u64, pair: &Pair, key: u64) {
        let Some(stanzas) = self.replies.get_mut(&key).and_then(|w| w.unacked.take()) else {
            debug!(key, "xmpp s2s: nothing left to resend");
            return;
        };
        self.write_delivery(conn, pair, key, stanzas);
    }
}
