//! The store across restarts, and the queue's scheduling.

use super::*;
use cpim_core::model::TransId;
use cpim_core::Address;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cpim-gw-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn msg(i: u64) -> Message {
    Message::new(
        TransId(i),
        Address::parse("sip:alice@sip.test").unwrap(),
        Address::parse("romeo@xmpp.test/orchard").unwrap(),
        "text/plain",
        format!("message {i}").into_bytes(),
    )
}

/// Write, drop, reopen: everything is back.
#[test]
fn restart_keeps_records_and_queue() {
    let dir = tmpdir("restart");
    {
        let s = Store::open(&dir).unwrap();
        s.put(kind::SUBSCRIPTION, "a|b", Some(100), "{\"x\":1}")
            .unwrap();
        s.put(kind::SUBSCRIPTION, "c|d", None, "{\"x\":2}").unwrap();
        s.replace(kind::SIP_PUBLICATION, None, "e1", Some(5), "p1")
            .unwrap();
        s.replace(kind::SIP_PUBLICATION, Some("e1"), "e2", Some(5), "p2")
            .unwrap();
        for i in 0..3 {
            s.enqueue(&msg(i), "xmpp", 1000 + i).unwrap();
        }
        let first = s.due(u64::MAX, 1).unwrap()[0].id;
        assert!(s.dequeue(first).unwrap());
    }
    let s = Store::open(&dir).unwrap();
    assert_eq!(
        s.load(kind::SUBSCRIPTION).unwrap(),
        vec![
            ("a|b".into(), "{\"x\":1}".into()),
            ("c|d".into(), "{\"x\":2}".into())
        ]
    );
    assert_eq!(
        s.load(kind::SIP_PUBLICATION).unwrap(),
        vec![("e2".into(), "p2".into())]
    );
    assert_eq!(s.queue_depth().unwrap(), 2);
    let q = s.for_destination("romeo@xmpp.test").unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0].message, msg(1));
    assert_eq!(q[1].message, msg(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The group-commit writer applies changes in the order handed over (a put then a
/// remove of one key leaves nothing; a remove then a put leaves the put), batches
/// from many tasks, and everything waited for is there after a reopen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_writer_keeps_order_and_durability() {
    let dir = tmpdir("writer");
    {
        let s = Store::open(&dir).unwrap();
        let put = |k: String, d: &str| RecordOp::Put {
            kind: kind::SUBSCRIPTION,
            key: k,
            expires_at: None,
            data: d.to_owned(),
        };
        let rm = |k: String| RecordOp::Remove {
            kind: kind::SUBSCRIPTION,
            key: k,
        };
        let w = s.writer().unwrap();
        let a = w.submit(vec![put("gone".into(), "1")]);
        let b = w.submit(vec![rm("gone".into())]);
        let c = w.submit(vec![rm("kept".into()), put("kept".into(), "2")]);
        assert!(a < b && b < c);
        w.wait(c).await;
        assert!(w.is_committed(a));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                s.writer()
                    .unwrap()
                    .commit(vec![put(format!("t{i:03}"), "x")])
                    .await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(s.count(kind::SUBSCRIPTION).unwrap(), 201);
    }
    let s = Store::open(&dir).unwrap();
    let all = s.load(kind::SUBSCRIPTION).unwrap();
    assert_eq!(all.len(), 201);
    assert_eq!(all[0], ("kept".into(), "2".into()));
    assert!(s.get(kind::SUBSCRIPTION, "gone").unwrap().is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn queue_scheduling() {
    let dir = tmpdir("sched");
    let s = Store::open(&dir).unwrap();
    let id = s.enqueue(&msg(1), "xmpp", 1000).unwrap();
    assert_eq!(s.due(999, 10).unwrap().len(), 0);
    assert_eq!(s.due(1000, 10).unwrap().len(), 1);
    s.reschedule(id, 1, 5000).unwrap();
    assert_eq!(s.next_due().unwrap(), Some(5000));
    assert_eq!(s.due(4000, 10).unwrap().len(), 0);
    assert_eq!(s.wake_destination("romeo@xmpp.test", 4000).unwrap(), 1);
    let e = &s.due(4000, 10).unwrap()[0];
    assert_eq!((e.attempts, e.adapter.as_str()), (1, "xmpp"));
    assert!(s.dequeue(id).unwrap());
    assert!(!s.dequeue(id).unwrap());
    assert_eq!(s.queue_depth().unwrap(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
