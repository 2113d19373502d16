//! Timeout: an operation not answered within the configured time gets 408 Request
//! Timeout (RFC 3860 s4.2 lets the gateway answer for a target that did not).

use cpim_core::StatusCode;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Duration;

use cpim_core::adapter::BoxFuture;
use cpim_core::model::Outcome;
use tower::{Layer, Service};

use super::Submission;

/// The timeout middleware.
#[derive(Clone, Debug)]
pub struct Timeout<S> {
    inner: S,
    limit: Duration,
}

/// Layer for [`Timeout`].
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    limit: Duration,
}

impl TimeoutLayer {
    /// Answers 408 after `limit`.
    pub fn new(limit: Duration) -> Self {
        TimeoutLayer { limit }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            limit: self.limit,
        }
    }
}

impl<S> Service<Submission> for Timeout<S>
where
    S: Service<Submission, Response = Outcome, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Outcome;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Outcome, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Submission) -> Self::Future {
        let id = req.op.trans_id();
        let limit = self.limit;
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Ok(Outcome::failure(
                    id,
                    StatusCode::REQUEST_TIMEOUT,
                    "Request Timeout",
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::testutil::{msg, Recorder};
    use tower::ServiceExt;

    #[tokio::test(start_paused = true)]
    async fn slow_inner_gets_408_fast_inner_passes() {
        for (delay_ms, code) in [(10_000, StatusCode::REQUEST_TIMEOUT), (10, StatusCode::OK)] {
            let inner = Recorder {
                delay_ms,
                ..Default::default()
            };
            let svc = TimeoutLayer::new(Duration::from_secs(5)).layer(inner);
            let out = svc
                .oneshot(Submission::new(
                    "sip",
                    msg(1, "sip:a@s.test", "b@x.test", "x"),
                ))
                .await
                .unwrap();
            assert_eq!(out.status.code, code, "inner delay {delay_ms} ms");
        }
    }
}
