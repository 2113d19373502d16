//! Durability under a hard kill: a child process writes through the store and aborts
//! (no destructors, no flush: what `kill -9` leaves); the parent reopens the store and
//! finds everything the child had been told was committed.

use cpim_core::address::Address;
use cpim_core::model::{Message, TransId};
use cpim_gateway::store::{kind, Store};

const CHILD_ENV: &str = "CPIM_GW_CRASH_CHILD_DIR";

fn message(i: u64) -> Message {
    Message::new(
        TransId(i),
        Address::parse("sip:alice@sip.test").unwrap(),
        Address::parse("romeo@xmpp.test").unwrap(),
        "text/plain",
        format!("message {i}").into_bytes(),
    )
}

/// The child's part: only does something when the parent starts it.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let s = Store::open(std::path::Path::new(&dir)).unwrap();
    for i in 0..50 {
        s.enqueue(&message(i), "xmpp", 1000).unwrap();
        s.put(kind::SUBSCRIPTION, &format!("w{i}|p"), None, "{}")
            .unwrap();
    }
    // Acknowledged above; now die without unwinding.
    std::process::abort();
}

#[test]
fn nothing_acknowledged_is_lost_on_abort() {
    let dir = std::env::temp_dir().join(format!("cpim-gw-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &dir)
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have aborted");
    let s = Store::open(&dir).unwrap();
    assert_eq!(s.queue_depth().unwrap(), 50);
    assert_eq!(s.count(kind::SUBSCRIPTION).unwrap(), 50);
    let q = s.for_destination("romeo@xmpp.test").unwrap();
    assert_eq!(q[49].message, message(49));
    let _ = std::fs::remove_dir_all(&dir);
}
