//! Throughput of the write-ahead journal alone (no delivery): each message is one
//! write-ahead insert and one completion, both committed (fsynced) before the caller
//! goes on. Compares the group-commit writer under `C` concurrent senders with one
//! transaction per change.
//!
//! `cargo run --release -p cpim-gateway --example journal_bench [MESSAGES] [DIR]`
//! (DIR defaults to a fresh folder under the system temp dir; it is removed afterwards).

use cpim_core::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpim_core::address::Address;
use cpim_core::model::{Message, Status, TransId};
use cpim_gateway::journal::Journal;
use cpim_gateway::store::Store;

fn message(i: u64) -> Message {
    let mut m = Message::new(
        TransId(i),
        Address::parse("romeo@xmpp.test/orchard").unwrap(),
        Address::parse("sip:alice@sip.test").unwrap(),
        "text/plain",
        format!("message number {i}, of a typical instant-message length").into_bytes(),
    );
    m.message_id = Some(format!("bench-{i}"));
    m
}

fn key(i: u64) -> Option<(String, String)> {
    Some(("romeo@xmpp.test".into(), format!("bench-{i}")))
}

fn fresh(base: &std::path::Path, name: &str) -> std::path::PathBuf {
    let d = base.join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let base = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("cpim-journal-bench-{}", std::process::id()))
        });
    let ok = Status::new(StatusCode::OK, "OK");

    // One transaction (one fsync) per change, one sender.
    let n = (total / 4).max(1);
    let store = Store::open(&fresh(&base, "single")).unwrap();
    let j = Journal::start(store.clone(), Duration::from_secs(300)).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let op = Journal::begin_op("xmpp", &message(i), key(i)).unwrap();
        let id = store.journal_apply(&[op], None).unwrap()[0];
        store
            .journal_apply(&[j.done_op(id, key(i), &ok)], None)
            .unwrap();
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "one commit per change, 1 sender: {n} messages in {s:.2} s = {:.0} messages/s",
        n as f64 / s
    );
    drop(j);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for senders in [1u64, 16, 64, 256] {
        let n = if senders == 1 { total / 4 } else { total };
        let store = Store::open(&fresh(&base, &format!("group-{senders}"))).unwrap();
        let j = Journal::start(store, Duration::from_secs(300)).unwrap();
        let per = n / senders;
        let t = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::new();
            for c in 0..senders {
                let j = Arc::clone(&j);
                let ok = ok.clone();
                tasks.push(tokio::spawn(async move {
                    for k in 0..per {
                        let i = c * per + k;
                        let op = Journal::begin_op("xmpp", &message(i), key(i)).unwrap();
                        let id = j.commit(op).await.unwrap();
                        j.commit(j.done_op(id, key(i), &ok)).await.unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let s = t.elapsed().as_secs_f64();
        let done = per * senders;
        println!(
            "group commit, {senders} concurrent senders: {done} messages in {s:.2} s = {:.0} messages/s",
            done as f64 / s
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}
