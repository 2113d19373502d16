//! Hop counting, the loop guard between chained gateways: a message's `hops_left` (SIP
//! Max-Forwards, RFC 3261 s16.6 step 3) is counted down by one here, the only place on
//! its way through the gateway; a message that arrives with none left is refused with
//! 483 Too Many Hops (RFC 3261 s21.4.20) and not forwarded. The count crosses XMPP in the
//! XMPP adapter's `urn:cpim-gateway:hops:0` element, so gateways chained over XMPP share
//! one budget: a loop between two of them ends after 70 hops (test `gateway_chain` in
//! `tests/interop`).
//!
//! Messages recovered from the journal at start do not pass this check again: the
//! recovery pipeline has no hop layer, their hop was counted when they first arrived.

use cpim_core::model::{Operation, Status};
use cpim_core::StatusCode;

use super::check::Check;
use super::Submission;

/// The hop rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hops;

impl Check for Hops {
    fn check(&self, sub: &mut Submission) -> Result<(), Status> {
        let Operation::Message(m) = &mut sub.op else {
            return Ok(());
        };
        if m.hops_left == 0 {
            return Err(Status::new(StatusCode::TOO_MANY_HOPS, "Too Many Hops"));
        }
        m.hops_left -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::check::CheckLayer;
    use crate::router::testutil::{msg, Recorder};
    use tower::{Layer, ServiceExt};

    fn with_hops(id: u64, hops: u8) -> Submission {
        let mut op = msg(id, "sip:alice@s.test", "bob@x.test", "hi");
        if let Operation::Message(m) = &mut op {
            m.hops_left = hops;
        }
        Submission::new("sip", op)
    }

    #[tokio::test]
    async fn hops_counted_down_and_483_at_zero() {
        let rec = Recorder::default();
        let svc = CheckLayer::new(Hops).layer(rec.clone());
        let out = svc.clone().oneshot(with_hops(1, 0)).await.unwrap();
        assert_eq!(out.status.code, StatusCode::TOO_MANY_HOPS);
        assert_eq!(rec.count(), 0);
        svc.oneshot(with_hops(2, 5)).await.unwrap();
        let seen = rec.seen.lock().unwrap();
        let Operation::Message(m) = &seen[0].op else {
            panic!()
        };
        assert_eq!(m.hops_left, 4);
    }
}
