//! The router: every operation an adapter hands in passes a tower
//! [`Service`](tower::Service) pipeline of one middleware per module, outermost first:
//!
//! 1. [`authorize`]: the source may use the adapter it came in by; no open relay.
//! 2. [`size`]: bodies and documents above the configured size get 413.
//! 3. [`rate`]: a token bucket per source address, and per foreign source domain (the
//!    link that proved it); an empty bucket gets 503.
//! 4. [`hops`]: a message's hop count is counted down; none left gets 483.
//! 5. [`dedupe`]: a message id seen before from the same source gets the first outcome
//!    instead of a second delivery.
//! 6. [`journal`]: a message from a source that does not acknowledge messages is written
//!    ahead; every outcome of a message with an id is recorded (see [`crate::journal`]).
//! 7. [`timeout`]: no answer in time gets 408.
//! 8. the dispatcher ([`crate::dispatch`]): messages are routed by destination domain
//!    ([`crate::routing`]) and re-encoded ([`crate::reencode`]); presence operations go
//!    to the presence engine.
//!
//! Steps 1 to 4 are rules over one submission ([`check::Check`]), each applied by the
//! one generic [`check::CheckLayer`]. Messages recovered from the journal at start take
//! a shorter way: journal, dedupe, timeout, dispatcher (their checks were passed and
//! their hop counted when they first arrived).
//!
//! The request type is [`Submission`] rather than a bare `Operation`: the authorization
//! step must know which adapter an operation came in by, and a written-ahead message
//! carries its journal row to the dispatcher.

pub mod authorize;
pub mod check;
pub mod dedupe;
pub mod hops;
pub mod journal;
pub mod rate;
pub mod size;
pub mod timeout;

use std::convert::Infallible;
use std::sync::Arc;

use cpim_core::model::{Message, Operation, Outcome};
use tower::util::BoxCloneSyncService;

use crate::journal::JournalRow;

/// An operation as it enters the router, with the name of the adapter that submitted it.
#[derive(Clone, Debug)]
pub struct Submission {
    /// The adapter that received the operation from its native peer.
    pub adapter: Arc<str>,
    /// The operation.
    pub op: Operation,
    /// The message's row in the write-ahead journal, once it has one: set by the
    /// [`journal`] middleware when it has written the message ahead, or from the start
    /// for a message recovered from the journal. The dispatcher hands it to the queue,
    /// which completes it in the transaction that queues the message.
    pub journal_row: Option<JournalRow>,
}

impl Submission {
    /// A submission from `adapter`.
    pub fn new(adapter: impl Into<Arc<str>>, op: Operation) -> Submission {
        Submission {
            adapter: adapter.into(),
            op,
            journal_row: None,
        }
    }

    /// A message recovered from journal row `id` at start, first submitted by `adapter`.
    pub fn recovered(adapter: impl Into<Arc<str>>, id: i64, m: Message) -> Submission {
        let key = dedupe::dedupe_key(&m);
        Submission {
            adapter: adapter.into(),
            op: Operation::Message(m),
            journal_row: Some(JournalRow { id, key }),
        }
    }
}

/// An answer that is not the operation's fate: the gateway did not take the operation
/// (its write-ahead to the journal failed) or lost track of it (the first copy of a
/// duplicate was abandoned). The source gets it as its outcome and may try again, so it
/// is neither remembered by the dedupe cache nor recorded in the journal. The dedupe and
/// journal middlewares, and so the pipeline, return it as their error, so that the
/// middlewares around them can tell it from an outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct NotTaken(pub Outcome);

impl From<Infallible> for NotTaken {
    fn from(never: Infallible) -> NotTaken {
        match never {}
    }
}

/// The whole pipeline, boxed: what the ingress calls. Its answer to the source is the
/// outcome, or the outcome inside [`NotTaken`].
pub type Pipeline = BoxCloneSyncService<Submission, Outcome, NotTaken>;

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
