//! The check-or-refuse middleware shared by the router's rules: a [`Check`] looks at a
//! submission and lets it pass or refuses it with a status; [`CheckLayer`] turns any
//! check into a tower layer. A refused submission never reaches the inner services; its
//! source gets the refusal as the outcome.
//!
//! Authorization ([`super::authorize`]), size ([`super::size`]), rate ([`super::rate`])
//! and hop count ([`super::hops`]) are checks; each of those modules holds only its rule.

use std::task::{Context, Poll};

use cpim_core::adapter::BoxFuture;
use cpim_core::model::{Outcome, Status};
use tower::{Layer, Service};

use super::Submission;

/// A rule a submission must pass.
pub trait Check {
    /// `Ok` lets `sub` pass, `Err` refuses it with that status. A check may stamp what
    /// passes (the hop count is counted down on the way through).
    fn check(&self, sub: &mut Submission) -> Result<(), Status>;
}

/// Layer for [`CheckService`]; every service it builds shares the check's state (its
/// clones must share it, as an `Arc` does).
#[derive(Clone, Copy, Debug)]
pub struct CheckLayer<C> {
    check: C,
}

impl<C> CheckLayer<C> {
    /// A layer applying `check`.
    pub fn new(check: C) -> Self {
        CheckLayer { check }
    }
}

impl<C: Clone, S> Layer<S> for CheckLayer<C> {
    type Service = CheckService<C, S>;
    fn layer(&self, inner: S) -> CheckService<C, S> {
        CheckService {
            check: self.check.clone(),
            inner,
        }
    }
}

/// The middleware: applies its check, then calls the inner service with what passed.
#[derive(Clone, Debug)]
pub struct CheckService<C, S> {
    check: C,
    inner: S,
}

impl<C, S> Service<Submission> for CheckService<C, S>
where
    C: Check,
    S: Service<Submission, Response = Outcome>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Outcome;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Outcome, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Submission) -> Self::Future {
        match self.check.check(&mut req) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(status) => {
                let trans_id = req.op.trans_id();
                Box::pin(async move { Ok(Outcome { trans_id, status }) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::testutil::{msg, Recorder};
    use cpim_core::StatusCode;
    use tower::ServiceExt;

    /// Refuses bodies that say "no"; marks what passes.
    #[derive(Clone)]
    struct SaysNo;

    impl Check for SaysNo {
        fn check(&self, sub: &mut Submission) -> Result<(), Status> {
            let cpim_core::model::Operation::Message(m) = &mut sub.op else {
                return Ok(());
            };
            if m.body == b"no" {
                return Err(Status::new(StatusCode::BAD_REQUEST, "said no"));
            }
            m.subject = Some("checked".into());
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refusal_is_the_outcome_and_what_passes_goes_on_as_stamped() {
        let rec = Recorder::default();
        let svc = CheckLayer::new(SaysNo).layer(rec.clone());
        let no = Submission::new("sip", msg(7, "sip:a@s.test", "b@x.test", "no"));
        let out = svc.clone().oneshot(no).await.unwrap();
        assert_eq!(
            (
                out.trans_id.0,
                out.status.code.as_u16(),
                out.status.reason.as_str()
            ),
            (7, 400, "said no")
        );
        assert_eq!(rec.count(), 0);
        let yes = Submission::new("sip", msg(8, "sip:a@s.test", "b@x.test", "yes"));
        assert_eq!(svc.oneshot(yes).await.unwrap().status.code, StatusCode::OK);
        let seen = rec.seen.lock().unwrap();
        let cpim_core::model::Operation::Message(m) = &seen[0].op else {
            panic!()
        };
        assert_eq!(m.subject.as_deref(), Some("checked"));
    }
}
