//! In-order hand-off of inbound operations to the core.
//!
//! RFC 6120 s10.1: stanzas from one entity are processed in the order they arrived. The
//! links read stanzas in order but hand each operation to [`Ingress::submit`] on a task
//! of its own, so two presence stanzas of one sender arriving together (Prosody sends
//! `subscribed`, the user's current presence and the next presence change back to back)
//! could reach the presence engine in any order, and the engine then kept an older state
//! as the latest. A [`Lanes`] runs the jobs of one key strictly one after the other
//! (each starts when the one before it finished) while different keys, and jobs without
//! a key, still run concurrently.
//!
//! [`Ingress::submit`]: cpim_core::adapter::Ingress::submit

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A job: a lazy future (nothing happens until it is polled).
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Lane {
    tx: mpsc::UnboundedSender<Job>,
    done: JoinHandle<()>,
}

/// Per-key serial execution of jobs. Must be used from within a tokio runtime.
#[derive(Default)]
pub(crate) struct Lanes {
    lanes: HashMap<String, Lane>,
    prune_at: usize,
}

/// Finished lanes are forgotten once this many are known.
const PRUNE_MIN: usize = 64;

impl Lanes {
    /// Runs `job` after every job given earlier with the same `key` has finished; a job
    /// without a key runs at once on a task of its own.
    pub(crate) fn run(&mut self, key: Option<String>, job: Job) {
        let Some(key) = key else {
            tokio::spawn(job);
            return;
        };
        // A lane whose worker already closed its queue refuses the job: a new lane
        // takes it, and starts only when the old worker has finished what it held.
        let (job, before) = match self.lanes.remove(&key) {
            Some(lane) => match lane.tx.send(job) {
                Ok(()) => {
                    self.lanes.insert(key, lane);
                    return;
                }
                Err(e) => (e.0, Some(lane.done)),
            },
            None => (job, None),
        };
        if self.lanes.len() >= self.prune_at.max(PRUNE_MIN) {
            self.lanes.retain(|_, l| !l.done.is_finished());
            self.prune_at = self.lanes.len() * 2;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive: it was created just now.
        let _ = tx.send(job);
        let done = tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            worker(rx).await;
        });
        self.lanes.insert(key, Lane { tx, done });
    }

    /// Number of lanes known (finished ones included until pruned).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lanes.len()
    }
}

/// Runs the queued jobs in order; ends when the queue is empty. Closing before the last
/// drain makes every later `send` fail, so no job is ever left behind in a dropped queue.
async fn worker(mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Ok(job) = rx.try_recv() {
        job.await;
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        job.await;
    }
}

/// The ordering key of an inbound stanza's operation (RFC 6120 s10.1: stanzas from one
/// entity to another are processed in order). Presence is keyed by the bare sender and
/// bare addressee (RFC 6121 s3/s4 state is per pair); messages by the same pair in a lane
/// of their own, so a conversation reaches the other side in the order it was written
/// while presence is never held up behind a slow message delivery. Other stanzas (iq)
/// are answered on their own and keep no order.
pub(crate) fn order_key(kind: &str, from: &str, to: &str) -> Option<String> {
    let lane = match kind {
        "presence" => "p",
        "message" => "m",
        _ => return None,
    };
    let bare = |j: &str| j.split('/').next().unwrap_or(j).to_ascii_lowercase();
    Some(format!("{lane}|{}|{}", bare(from), bare(to)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn job(log: &Arc<Mutex<Vec<u32>>>, n: u32, delay_ms: u64) -> Job {
        let log = log.clone();
        Box::pin(async move {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            log.lock().unwrap().push(n);
        })
    }

    async fn settle(log: &Arc<Mutex<Vec<u32>>>, n: usize) {
        for _ in 0..10_000 {
            if log.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("jobs did not finish: {:?}", log.lock().unwrap());
    }

    // Virtual time: the sleeps only create the adversarial interleaving (an earlier job
    // that takes longer); the assertion is on order.
    #[tokio::test(start_paused = true)]
    async fn jobs_of_one_key_finish_in_the_order_given_even_when_the_first_is_slow() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lanes = Lanes::default();
        let k = || order_key("presence", "alice@x.test/r1", "carol@c.test");
        lanes.run(k(), job(&log, 1, 300));
        lanes.run(k(), job(&log, 2, 0));
        lanes.run(
            order_key("presence", "alice@x.test/r2", "carol@c.test"),
            job(&log, 3, 100),
        );
        lanes.run(k(), job(&log, 4, 0));
        settle(&log, 4).await;
        assert_eq!(*log.lock().unwrap(), vec![1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn other_keys_and_keyless_jobs_are_not_held_up() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lanes = Lanes::default();
        lanes.run(Some("a|b".into()), job(&log, 1, 300));
        lanes.run(Some("a|c".into()), job(&log, 2, 0));
        lanes.run(None, job(&log, 3, 0));
        settle(&log, 3).await;
        let got = log.lock().unwrap().clone();
        assert_eq!(got.last(), Some(&1), "{got:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_lane_is_replaced_and_order_still_holds() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lanes = Lanes::default();
        lanes.run(Some("k".into()), job(&log, 1, 0));
        settle(&log, 1).await;
        // The first worker has ended (its queue is closed): the next job needs a new lane.
        tokio::time::sleep(Duration::from_millis(5)).await;
        lanes.run(Some("k".into()), job(&log, 2, 200));
        lanes.run(Some("k".into()), job(&log, 3, 0));
        settle(&log, 3).await;
        assert_eq!(*log.lock().unwrap(), vec![1, 2, 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn finished_lanes_are_pruned() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lanes = Lanes::default();
        for i in 0..200u32 {
            lanes.run(Some(format!("k{i}")), job(&log, i, 0));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        settle(&log, 200).await;
        assert!(lanes.len() < 200, "{} lanes kept", lanes.len());
    }

    #[test]
    fn presence_and_messages_are_keyed_by_bare_pair_in_separate_lanes() {
        assert_eq!(
            order_key(
                "presence",
                "Alice@X.test/res",
                "carol\\40json.test@gw.x.test"
            ),
            Some("p|alice@x.test|carol\\40json.test@gw.x.test".to_owned())
        );
        assert_eq!(
            order_key("message", "a@x/r", "b@y"),
            Some("m|a@x|b@y".to_owned())
        );
        assert_ne!(
            order_key("message", "a@x/r", "b@y"),
            order_key("presence", "a@x/r", "b@y")
        );
        assert_eq!(order_key("iq", "a@x/r", "b@y"), None);
    }
}
