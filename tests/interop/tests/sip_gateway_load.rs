//! A SIPp load run through the real gateway: `CPIM_SIP_LOAD_CALLS` (default 5000) MESSAGEs
//! at `CPIM_SIP_LOAD_RATE` per second (default 500) over UDP from a remote-domain user to
//! bob@sip.test, whose UA (registered with digest by SIPp from a fixed port, then played
//! by this test on that port) answers 200 and records each MESSAGE by Call-ID and the
//! sequence number in its body. Asserts only correctness, never timing:
//!
//! - SIPp ends successfully (every call got its 200) and counts `calls` successful calls;
//! - bob's UA received every sequence number exactly once: no loss, and no duplicated
//!   transaction (two Call-IDs carrying one sequence number); a retransmission of the
//!   same transaction (same Call-ID) is answered again but is not a second delivery;
//! - nothing was left in the gateway's store-and-forward queue.
//!
//! The achieved rate and the counts are printed. Skipped without
//! `CPIM_PEERS=1` (a failure under `CI=true`).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sip::{DOMAIN, T};

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What bob's UA saw.
#[derive(Default, Debug)]
struct Seen {
    /// Call-ID -> sequence number in the body.
    by_call: HashMap<String, u64>,
    /// Datagrams that repeated a Call-ID already seen (retransmissions).
    retransmissions: u64,
    /// MESSAGEs without a parsable sequence number.
    unparsable: u64,
}

fn header<'a>(head: &'a str, names: &[&str]) -> Option<&'a str> {
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        names
            .iter()
            .any(|x| n.trim().eq_ignore_ascii_case(x))
            .then(|| v.trim())
    })
}

/// Answers every MESSAGE on `sock` with 200 until `stop`, recording it.
fn uas(sock: UdpSocket, stop: Arc<AtomicBool>) -> Seen {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut seen = Seen::default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        if !text.starts_with("MESSAGE ") {
            continue;
        }
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for line in head.split("\r\n").skip(1) {
            let name = line.split(':').next().unwrap_or("").trim();
            if ["via", "v", "from", "f", "call-id", "i", "cseq"]
                .iter()
                .any(|x| name.eq_ignore_ascii_case(x))
            {
                resp.push_str(line);
                resp.push_str("\r\n");
            } else if name.eq_ignore_ascii_case("to") || name.eq_ignore_ascii_case("t") {
                resp.push_str(line);
                resp.push_str(";tag=bob-ua\r\n");
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        // Responses go back where the request came from (the gateway's socket, which is
        // also its Via sent-by on 127.0.0.1).
        let _ = sock.send_to(resp.as_bytes(), from);
        let Some(call_id) = header(head, &["call-id", "i"]) else {
            seen.unparsable += 1;
            continue;
        };
        let seq = body
            .trim()
            .strip_prefix("seq=")
            .and_then(|s| s.trim().parse::<u64>().ok());
        match seq {
            None => seen.unparsable += 1,
            Some(seq) => {
                if seen.by_call.insert(call_id.to_owned(), seq).is_some() {
                    seen.retransmissions += 1;
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_message_load_no_loss_no_duplicates() {
    let peers = cpim_interop::require_peers!(Sipp);
    let calls = env_u32("CPIM_SIP_LOAD_CALLS", 5000);
    let rate = env_u32("CPIM_SIP_LOAD_RATE", 500);
    let dir = common::sip::scratch("gw-load");
    let mut c = common::sip::config(&dir.join("store"));
    // One source sends everything: the per-source limiter must not be what is measured.
    c.limits.rate_per_source = 1_000_000.0;
    c.limits.burst_per_source = 1_000_000.0;
    let (gw, udp, _tcp) = common::sip::start(c).await;

    // bob registers from `port` with SIPp, then this test answers on that port.
    let port = common::sip::free_port();
    let reg = common::sip::sipp(
        &peers,
        "gw_register.xml",
        T::Udp,
        port,
        Some(udp),
        &[
            "-s", "bob", "-au", "bob", "-ap", "bobpw", "-key", "domain", DOMAIN, "-key", "expires",
            "3600", "-m", "1",
        ],
        &dir,
    );
    let reg = tokio::task::spawn_blocking(move || reg.run())
        .await
        .unwrap();
    assert!(reg.ok, "bob's REGISTER: {}", reg.report);
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("bind bob's port again");
    let stop = Arc::new(AtomicBool::new(false));
    let receiver = std::thread::spawn({
        let stop = stop.clone();
        move || uas(sock, stop)
    });

    let started = Instant::now();
    let load = common::sip::sipp(
        &peers,
        "gw_message_uac.xml",
        T::Udp,
        common::sip::free_port(),
        Some(udp),
        &[
            "-s",
            "bob",
            "-key",
            "domain",
            DOMAIN,
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            "2000",
            "-timeout",
            &format!("{}s", calls / rate.max(1) + 120),
            "-trace_stat",
            "-fd",
            "1",
        ],
        &dir,
    );
    let stat_dir = dir.clone();
    let out = tokio::task::spawn_blocking(move || load.run())
        .await
        .unwrap();
    let elapsed = started.elapsed();
    // Let late retransmissions and the last answers settle, then stop the UA.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let seen = receiver.join().expect("bob's UA thread");

    // SIPp's own count of successful calls, from its statistics file (last line).
    let successful = std::fs::read_dir(&stat_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("_.csv"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|csv| {
            let mut lines = csv.lines();
            let head: Vec<&str> = lines.next()?.split(';').collect();
            let last: Vec<&str> = lines.last()?.split(';').collect();
            let i = head.iter().position(|h| *h == "SuccessfulCall(C)")?;
            last.get(i)?.parse::<u64>().ok()
        });

    let seqs: Vec<u64> = seen.by_call.values().copied().collect();
    let distinct: HashSet<u64> = seqs.iter().copied().collect();
    let duplicates = seqs.len() - distinct.len();
    let missing: Vec<u64> = (1..=u64::from(calls))
        .filter(|s| !distinct.contains(s))
        .take(20)
        .collect();
    let queued = gw.store.queue_depth().unwrap_or(0);
    println!(
        "load: {calls} MESSAGEs offered at {rate}/s over UDP, SIPp run {:.1} s ({:.0}/s achieved); \
         SIPp successful calls {successful:?}; bob's UA got {} transactions, {} distinct \
         sequence numbers, {duplicates} duplicated, {} retransmissions, {} unparsable; queue {queued}",
        elapsed.as_secs_f64(),
        f64::from(calls) / elapsed.as_secs_f64(),
        seqs.len(),
        distinct.len(),
        seen.retransmissions,
        seen.unparsable,
    );
    assert!(out.ok, "SIPp load run failed: {}", out.report);
    if let Some(n) = successful {
        assert_eq!(n, u64::from(calls), "SIPp's successful calls");
    }
    assert_eq!(duplicates, 0, "duplicated transactions at the receiver");
    assert!(missing.is_empty(), "lost MESSAGEs, first seqs: {missing:?}");
    assert_eq!(distinct.len(), calls as usize);
    assert_eq!(seen.unparsable, 0);
    assert_eq!(queued, 0, "messages left in the queue");
    gw.shutdown().await;
}
