//! Size limits: a message body or a presence document above the configured size is
//! refused with 413 (Request Entity Too Large, RFC 3261 s21.4.11); RFC 3428 s5 asks that
//! page-mode messages stay small, so the default limit is modest.

use cpim_core::model::{Operation, Status};
use cpim_core::presence::Presence;
use cpim_core::StatusCode;

use super::check::Check;
use super::Submission;

/// The approximate encoded size of an operation's payload, in bytes.
pub fn payload_size(op: &Operation) -> usize {
    match op {
        Operation::Message(m) => {
            m.body.len()
                + m.subject.as_ref().map_or(0, String::len)
                + m.thread.as_ref().map_or(0, String::len)
                + m.content_type.len()
        }
        Operation::Publish(p) => presence_size(&p.presence),
        Operation::Notify(n) => n.presence.as_ref().map_or(0, presence_size),
        Operation::Subscribe(_) | Operation::Unsubscribe(_) => 0,
        _ => 0,
    }
}

fn presence_size(p: &Presence) -> usize {
    let notes =
        |n: &[cpim_core::presence::Note]| n.iter().map(|n| n.text.len() + 16).sum::<usize>();
    let ext = |e: &[String]| e.iter().map(String::len).sum::<usize>();
    p.tuples
        .iter()
        .map(|t| {
            64 + t.id.len()
                + t.contact.as_ref().map_or(0, String::len)
                + notes(&t.notes)
                + ext(&t.extensions)
        })
        .sum::<usize>()
        + notes(&p.notes)
        + ext(&p.extensions)
        + p.person.as_ref().map_or(0, |x| {
            32 + x.activities.len() * 16 + notes(&x.notes) + ext(&x.extensions)
        })
}

/// The size rule: payloads above `max` bytes are refused.
#[derive(Clone, Copy, Debug)]
pub struct SizeLimit {
    max: usize,
}

impl SizeLimit {
    /// Refuses payloads above `max` bytes.
    pub fn new(max: usize) -> Self {
        SizeLimit { max }
    }
}

impl Check for SizeLimit {
    fn check(&self, sub: &mut Submission) -> Result<(), Status> {
        let size = payload_size(&sub.op);
        if size > self.max {
            return Err(Status::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "Request Entity Too Large ({size} bytes, limit {})",
                    self.max
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::check::CheckLayer;
    use crate::router::testutil::{msg, Recorder};
    use tower::{Layer, ServiceExt};

    #[tokio::test]
    async fn over_the_limit_gets_413_and_never_reaches_inner() {
        let rec = Recorder::default();
        let svc = CheckLayer::new(SizeLimit::new(100)).layer(rec.clone());
        let big = "x".repeat(200);
        let out = svc
            .clone()
            .oneshot(Submission::new(
                "sip",
                msg(1, "sip:a@s.test", "b@x.test", &big),
            ))
            .await
            .unwrap();
        assert_eq!(out.status.code, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(rec.count(), 0);
        let out = svc
            .oneshot(Submission::new(
                "sip",
                msg(2, "sip:a@s.test", "b@x.test", "small"),
            ))
            .await
            .unwrap();
        assert_eq!(out.status.code, StatusCode::OK);
        assert_eq!(rec.count(), 1);
    }
}
