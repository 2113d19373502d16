//! RFC 4475 (SIP torture test messages) over the wire: each of the 50 messages of the
//! shared corpus (`<workspace>/../shared/corpora/rfc4475-sip-torture`, see its manifest)
//! is sent byte for byte as one UDP datagram to the running gateway (`Gateway::start`,
//! SIP adapter on an ephemeral port). Expected per the manifest's class:
//!
//! - invalid requests (s3.1.2): the RFC's error (400, 505 for `badvers.dat`);
//! - valid requests (s3.1.1) and the application-layer ones (s3.3): a final response that is
//!   not a syntax error (400/505); where the outcome is fixed by what the gateway does (no
//!   calls: 405 for INVITE; 501 unknown method; 416 unknown URI scheme; 420 Require) that code;
//! - responses (`scalarlg`, `bigcode`, `unreason`, `noreason`, `bcast`): no answer at all;
//! - `test.dat` (unclassified): anything, as long as nothing breaks;
//! - a request whose RFC 3261 s17.2.3 transaction key (branch, sent-by, method) repeats an
//!   earlier message's (the corpus reuses `branch=z9hG4bKkdjuw`): the server treats it as a
//!   retransmission and sends the earlier transaction's response again.
//!
//! Afterwards the gateway still answers OPTIONS with 200. Responses are routed per RFC 3261
//! s18.2.2 to the received address and the Via port (5060 when absent), so the test sends
//! from 127.0.0.1:5060 (and listens on 5050 for `quotbal.dat`'s Via port); it is skipped
//! with a message when those ports are taken. Needs no real peer.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Exactly this code.
    Code(u16),
    /// A final response that is not 400/505 (the message is well-formed).
    WellFormed,
    /// No answer (responses).
    Silence,
    /// Unclassified: no assertion on the answer.
    Any,
    /// Same RFC 3261 transaction key as an earlier message: that one's response again.
    Retransmission,
}

fn expectation(file: &str, class: &str) -> Expect {
    use Expect::*;
    match file {
        "badvers.dat" => Code(505),
        "scalarlg.dat" | "bigcode.dat" | "unreason.dat" | "noreason.dat" | "bcast.dat" => Silence,
        "wsinv.dat" | "esc01.dat" | "longreq.dat" | "invut.dat" | "sdp01.dat" | "inv2543.dat" => {
            Code(405)
        }
        "intmeth.dat" | "esc02.dat" => Code(501),
        "unkscm.dat" | "novelsc.dat" => Code(416),
        "bext01.dat" => Code(420),
        // s3.3.4: a registrar rejects it with 400, the To URI must be SIP or SIPS.
        "insuf.dat" | "multi01.dat" | "mcl01.dat" | "unksm2.dat" => Code(400),
        "test.dat" => Any,
        _ if class == "invalid" => Code(400),
        _ => WellFormed,
    }
}

fn corpus() -> Option<PathBuf> {
    let p = cpim_interop::shared_dir()?.join("corpora/rfc4475-sip-torture");
    p.join("manifest.tsv").exists().then_some(p)
}

/// The value of a header (first occurrence, folded lines joined, white space collapsed).
fn header(msg: &str, long: &str, short: &str) -> Option<String> {
    let head = msg.split("\r\n\r\n").next().unwrap_or(msg);
    let mut lines = head.split("\r\n").skip(1).peekable();
    while let Some(line) = lines.next() {
        let mut line = line.to_owned();
        while lines.peek().is_some_and(|l| l.starts_with([' ', '\t'])) {
            line.push(' ');
            line.push_str(lines.next().unwrap_or(""));
        }
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        let n = n.trim();
        if n.eq_ignore_ascii_case(long) || n.eq_ignore_ascii_case(short) {
            return Some(v.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    None
}

/// RFC 3261 s17.2.3 server transaction key of a request with an RFC 3261 branch: (branch,
/// sent-by with the default port, method). The corpus reuses some keys (e.g. `escnull` and
/// `regescrt`, `cparam01` and `cparam02`, `unkscm` and `novelsc`), so to a running server
/// the later message is a retransmission of the earlier transaction.
fn tx_key(msg: &str) -> Option<(String, String, String)> {
    let method = msg.split(' ').next()?.to_owned();
    let via = header(msg, "via", "v")?;
    let mut parts = via.split(';');
    let sent = parts
        .next()?
        .split_whitespace()
        .last()?
        .to_ascii_lowercase();
    let sent = if sent.contains(':') {
        sent
    } else {
        format!("{sent}:5060")
    };
    let branch = parts
        .find_map(|p| p.trim().strip_prefix("branch="))
        .filter(|b| b.starts_with("z9hG4bK"))?
        .to_owned();
    Some((branch, sent, method))
}

/// Waits for a final response with this Call-ID (one without a Call-ID when None); returns
/// its status code and status line.
fn final_response(
    socks: &[&UdpSocket],
    call_id: Option<String>,
    within: Duration,
) -> Option<(u16, String)> {
    let end = Instant::now() + within;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < end {
        for s in socks {
            let Ok((n, _)) = s.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let Some(code) = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse::<u16>().ok())
            else {
                continue;
            };
            if code < 200 {
                continue;
            }
            let matches = match &call_id {
                Some(id) => header(&text, "call-id", "i").as_ref() == Some(id),
                // A request without a Call-ID gets a response without one; a response
                // with one belongs to another transaction (an INVITE's non-2xx final
                // response is retransmitted until its ACK, RFC 3261 s17.2.1 Timer G,
                // and this test sends none).
                None => header(&text, "call-id", "i").is_none_or(|c| c.is_empty()),
            };
            if matches {
                let first = text.lines().next().unwrap_or("").to_owned();
                return Some((code, first));
            }
        }
    }
    None
}

fn drain(socks: &[&UdpSocket]) {
    let mut buf = vec![0u8; 65536];
    for s in socks {
        while s.recv_from(&mut buf).is_ok() {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc4475_torture_messages_over_udp_to_the_gateway() {
    let Some(dir) = corpus() else {
        println!("skipped: shared RFC 4475 corpus not found next to the workspace");
        return;
    };
    let (Ok(s5060), Ok(s5050)) = (
        UdpSocket::bind("127.0.0.1:5060"),
        UdpSocket::bind("127.0.0.1:5050"),
    ) else {
        println!("skipped: 127.0.0.1:5060 or :5050 (UDP) is taken; the torture messages' Via ports need them");
        return;
    };
    for s in [&s5060, &s5050] {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    }
    let store = common::sip::scratch("gw-rfc4475");
    let (gw, udp, _tcp) = common::sip::start(common::sip::config(&store.join("store"))).await;

    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let entries: Vec<(String, String)> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (c.len() >= 4).then(|| (c[0].to_owned(), c[3].to_owned()))
        })
        .collect();
    assert_eq!(entries.len(), 50, "the manifest lists 50 messages");

    let results = tokio::task::spawn_blocking(move || {
        let socks = [&s5060, &s5050];
        let mut failures = Vec::new();
        let mut seen_files = HashSet::new();
        let mut keys: HashMap<(String, String, String), (String, Option<String>)> = HashMap::new();
        for (file, class) in &entries {
            let raw = std::fs::read(dir.join("messages").join(file)).unwrap();
            let text = String::from_utf8_lossy(&raw).into_owned();
            let mut expect = expectation(file, class);
            let mut call_id = header(&text, "call-id", "i");
            // Messages that fail to parse never reach the transaction layer.
            let parses = class != "invalid" && expect != Expect::Code(400);
            if let Some(key) = tx_key(&text).filter(|_| parses) {
                if let Some((first, first_call_id)) = keys.get(&key) {
                    // A retransmission to the server: the first one's response again.
                    println!("{file}: same transaction as {first}");
                    if expect != Expect::Silence {
                        expect = Expect::Retransmission;
                        call_id = first_call_id.clone();
                    }
                } else {
                    keys.insert(key, (file.clone(), call_id.clone()));
                }
            }
            drain(&socks);
            s5060.send_to(&raw, udp).unwrap();
            let wait = match expect {
                Expect::Silence | Expect::Any => Duration::from_millis(500),
                _ => Duration::from_secs(4),
            };
            let got = final_response(&socks, call_id, wait);
            let ok = match (expect, &got) {
                (Expect::Code(c), Some((code, _))) => *code == c,
                (Expect::WellFormed | Expect::Retransmission, Some((code, _))) => {
                    !matches!(code, 400 | 505)
                }
                (Expect::Silence, None) => true,
                (Expect::Any, _) => true,
                _ => false,
            };
            println!("{file:16} {class:40.40} expected {expect:?}, got {got:?}");
            if !ok {
                failures.push(format!("{file}: expected {expect:?}, got {got:?}"));
            }
            seen_files.insert(file.clone());
        }
        (failures, seen_files.len())
    })
    .await
    .unwrap();
    let (failures, seen) = results;
    assert_eq!(seen, 50);

    // Still serving: OPTIONS from an ordinary socket gets 200.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = probe.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{d} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-after-torture;rport\r\nMax-Forwards: 70\r\nFrom: <sip:probe@other.test>;tag=p1\r\nTo: <sip:{d}>\r\nCall-ID: after-torture@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        d = common::sip::DOMAIN
    );
    let answer = tokio::task::spawn_blocking(move || {
        probe.send_to(options.as_bytes(), udp).unwrap();
        final_response(
            &[&probe],
            Some("after-torture@test".into()),
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        answer.map(|a| a.0),
        Some(200),
        "the gateway stopped serving after the torture messages"
    );
    assert!(
        failures.is_empty(),
        "{} of 50 torture messages not handled as expected:\n{}",
        failures.len(),
        failures.join("\n")
    );
    gw.shutdown().await;
}
