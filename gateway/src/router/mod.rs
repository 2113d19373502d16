//! The router: every operation an adapter hands in passes a tower [`Service`] pipeline of
//! one middleware per module, outermost first:
//!
//! 1. [`authorize`]: the source may use the adapter it came in by; no open relay.
//! 2. [`size`]: bodies and documents above the configured size get 413.
//! 3. [`rate`]: a token bucket per source address, and per foreign source domain (the
//!    link that proved it); an empty bucket gets 503.
//! 4. [`loops`]: hop counting (483 at zero) and the message-id dedupe cache.
//! 5. [`timeout`]: no answer in time gets 408.
//! 6. the dispatcher ([`crate::dispatch`]): messages are routed by destination domain
//!    ([`crate::routing`]) and re-encoded ([`crate::reencode`]); presence operations go
//!    to the presence engine.
//!
//! The request type is [`Submission`] rather than a bare `Operation`: the authorization
//! step must know which adapter an operation came in by.

pub mod authorize;
pub mod loops;
pub mod rate;
pub mod size;
pub mod timeout;

use std::convert::Infallible;
use std::sync::Arc;

use cpim_core::model::{Operation, Outcome};
use tower::util::BoxCloneSyncService;

/// An operation as it enters the router, with the name of the adapter that submitted it.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The adapter that received the operation from its native peer.
    pub adapter: Arc<str>,
    /// The operation.
    pub op: Operation,
}

impl Submission {
    /// A submission from `adapter`.
    pub fn new(adapter: impl Into<Arc<str>>, op: Operation) -> Submission {
        Submission {
            adapter: adapter.into(),
            op,
        }
    }
}

/// The whole pipeline, boxed: what the ingress calls.
pub type Pipeline = BoxCloneSyncService<Submission, Outcome, Infallible>;

#[cfg(test)]
pub(crate) mod testutil {
    //! Mock inner services for the middleware tests.
    use super::*;
    use cpim_core::address::Address;
    use cpim_core::model::{Message, TransId};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A service that records what reaches it and answers 200 (or a fixed status).
    #[derive(Clone, Default)]
    pub struct Recorder {
        pub seen: Arc<Mutex<Vec<Submission>>>,
        pub calls: Arc<AtomicUsize>,
        pub code: u16,
        pub delay_ms: u64,
    }

    impl Recorder {
        pub fn count(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl tower::Service<Submission> for Recorder {
        type Response = Outcome;
        type Error = Infallible;
        type Future = cpim_core::adapter::BoxFuture<'static, Result<Outcome, Infallible>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: Submission) -> Self::Future {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let id = req.op.trans_id();
            self.seen.lock().unwrap().push(req);
            let code = if self.code == 0 { 200 } else { self.code };
            let delay = self.delay_ms;
            Box::pin(async move {
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                Ok(Outcome::failure(id, code, "recorded"))
            })
        }
    }

    pub fn msg(id: u64, from: &str, to: &str, body: &str) -> Operation {
        Operation::Message(Message::new(
            TransId(id),
            Address::parse(from).unwrap(),
            Address::parse(to).unwrap(),
            "text/plain",
            body.as_bytes().to_vec(),
        ))
    }
}
