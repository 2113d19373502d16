//! Faults under load, with counts: an open-loop load of 200 SIP MESSAGE/s for 20 s (4000
//! messages) from a SIP UA registered at the gateway binary (`cpim-gateway-e2e`, the
//! gateway's own `main`, as Prosody's XEP-0114 component) to a slixmpp receiver on Prosody,
//! and in the middle of it one fault:
//!
//! - `prosody_restart_*`: a Prosody of the test's own (`cpim_testkit::own_prosody`, so the
//!   shared peers are untouched) stopped, then started again 2 s later. The component link
//!   dies with it: what the gateway wrote and Prosody did not confirm (no barrier ping
//!   answer) resolves 408 and goes to the store-and-forward queue (the sender gets 202),
//!   what comes while the link is down waits in the link's own queue (the sender gets 200
//!   once the next link confirmed it). The receiver's c2s session dies too and it logs in
//!   again; what Prosody routes to it while it is offline is kept by Prosody's offline
//!   storage (`mod_offline`, loaded by Prosody itself whatever `modules_enabled` says;
//!   `scripts/peers/prosody.sh` does not turn it off; stored on disk, so it also outlives
//!   the restart) and handed over with a `<delay/>` at the login.
//!   The s2s variant reaches the same Prosody over s2s with SASL EXTERNAL and XEP-0198
//!   stream management (`docs/decisions/0013-xep0198-on-s2s.md`): the link resends what
//!   Prosody did not acknowledge, and every message is answered 200.
//! - `gateway_sigkill_*`: the gateway process SIGKILLed and started again on its store
//!   (Prosody A of the shared peers, as `gateway_crash` does). Requests in flight at the
//!   kill get no answer (code 0: the sender's TCP connection died).
//!
//! Every message is `message/cpim` with its own `imdn.Message-ID` `<run>-<seq>` and the
//! payload `<run> seq <seq>`. CPIM rather than plain text because the message id is then
//! the sender's (RFC 5438 s6.3), as a chat client sends it, and known to the test: every
//! copy must carry it as XEP-0359 origin-id and at the head of its stanza id, so a copy
//! with a gateway-made id is caught even when it is the only copy (with text/plain the id
//! is `Call-ID-CSeq`, which the digest round trip changes out of the test's sight).
//!
//! Counted and printed as one line per test (run with `--nocapture`): sent, 200, 202,
//! other codes (`code:count`; 0 = no answer), delivered (distinct sequence numbers at
//! the receiver), raw copies, duplicates with an id already seen for that sequence number
//! (what a receiver honouring XEP-0359 drops: allowed, counted), duplicates with a new id
//! (the defect stable ids fix), and messages delivered without a 2xx. Asserted: every
//! message with a 2xx is delivered; no sequence number arrives under two ids; every copy
//! carries its own message id; the gateway takes messages again after the fault (the last
//! 100 get a 2xx).
//!
//! Skips (prints why) without `CPIM_PEERS`, fails for that under `CI=true`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use cpim_interop::{
    free_tcp_port, require_peers, scratch_dir, Account, Component, Peers, S2sRoute, XmppServer,
};
use cpim_testkit::own_prosody::{self, OwnProsody};
use cpim_testkit::{SipUa, Transport, XmppClient, XmppEvent};
use cpim_xmpp::Mode;

/// Messages per second.
const RATE: u64 = 200;
/// 20 seconds of load.
const MESSAGES: usize = 4000;
/// When the fault starts, counted from the first message (seq 1600).
const FAULT_AT: Duration = Duration::from_secs(8);
/// How long the test's own Prosody stays stopped (at 200/s: 400 messages wait in the
/// gateway's link queue, below its default capacity of 1000).
const DOWN: Duration = Duration::from_secs(2);
/// The last messages, long after the fault, must all be accepted.
const RECOVERED: usize = 100;
/// How long the receivers may take to get every accepted message.
const DELIVERY: Duration = Duration::from_secs(120);
/// How long to keep listening for late copies once everything arrived.
const LATE: Duration = Duration::from_secs(3);

/// The CPIM body of message `seq` of `run` from `from` to `to`.
fn cpim(from: &str, to: &str, run: &str, seq: usize) -> String {
    format!(
        "From: <{from}>\r\nTo: <{to}>\r\nDateTime: 2026-12-07T12:00:00Z\r\n\
         NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: {run}-{seq}\r\n\r\n\
         Content-Type: text/plain;charset=UTF-8\r\n\r\n{run} seq {seq}"
    )
}

/// Sends [`MESSAGES`] messages from `ua` to `to`, one per tick of a tokio interval of
/// 1/[`RATE`] s, each in a task of its own: open loop, the schedule sets the pace, not the
/// answers (a missed tick is caught up at once). The final status code and reason of each
/// message by sequence number (0 and the error: no answer).
async fn load(ua: Arc<SipUa>, to: String, run: String) -> Vec<(u16, String)> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut tasks = tokio::task::JoinSet::new();
    for seq in 0..MESSAGES {
        tick.tick().await;
        let ua = ua.clone();
        let body = cpim(&ua.aor(), &to, &run, seq);
        let to = to.clone();
        tasks.spawn(async move {
            let answer = match ua.message(&to, "message/cpim", body.as_bytes()).await {
                Ok(r) => (r.code(), r.reason().to_owned()),
                Err(e) => (0, e.to_string()),
            };
            (seq, answer)
        });
    }
    let mut answers = vec![(0, String::new()); MESSAGES];
    while let Some(r) = tasks.join_next().await {
        let (seq, answer) = r.unwrap();
        answers[seq] = answer;
    }
    answers
}

/// One copy of a message of the run at the receiver.
#[derive(Debug)]
struct Copy {
    seq: usize,
    /// The stanza id.
    id: String,
    /// The XEP-0359 origin-id.
    origin: Option<String>,
}

/// The run's copies among `client`'s events, oldest first (bounces and other messages
/// are left out).
fn take_copies(client: &XmppClient, run: &str, into: &mut Vec<Copy>) {
    let prefix = format!("{run} seq ");
    for e in client.take_events() {
        let origin = e.origin_id();
        if let XmppEvent::Message { kind, id, body, .. } = e {
            let seq = body.strip_prefix(&prefix).and_then(|n| n.parse().ok());
            if let (false, Some(seq)) = (kind == "error", seq) {
                into.push(Copy { seq, id, origin });
            }
        }
    }
}

/// Takes `client`'s copies until every message in `acked` arrived and the gateway's queue
/// is empty (bounded by [`DELIVERY`]), then for [`LATE`] more.
async fn collect(
    client: &XmppClient,
    admin: SocketAddr,
    run: &str,
    acked: &BTreeSet<usize>,
    copies: &mut Vec<Copy>,
) {
    let deadline = tokio::time::Instant::now() + DELIVERY;
    loop {
        take_copies(client, run, copies);
        let seen: BTreeSet<usize> = copies.iter().map(|c| c.seq).collect();
        let empty = binary::queue_depth(admin).await == Some(0);
        if (empty && acked.is_subset(&seen)) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(LATE).await;
    take_copies(client, run, copies);
}

/// The sequence numbers whose message got a 2xx.
fn accepted(answers: &[(u16, String)]) -> BTreeSet<usize> {
    (0..answers.len())
        .filter(|s| (200..300).contains(&answers[*s].0))
        .collect()
}

/// What one run counted.
#[derive(Debug, Default)]
struct Counts {
    sent: usize,
    ok200: usize,
    ok202: usize,
    /// Other final codes and how many (0: no answer).
    other: BTreeMap<u16, usize>,
    /// The same with the reasons.
    other_reasons: BTreeMap<(u16, String), usize>,
    /// Distinct sequence numbers received.
    delivered: usize,
    /// Every copy received.
    copies: usize,
    /// Copies whose stanza id and origin-id an earlier copy of the same message had.
    dup_same_id: usize,
    /// Copies under ids no earlier copy of the same message had.
    dup_new_id: usize,
    /// Delivered without a 2xx.
    unacked_delivered: usize,
    /// 2xx but never delivered.
    lost: Vec<usize>,
    /// Sequence numbers received under more than one id, with the ids.
    new_ids: BTreeMap<usize, Vec<(String, Option<String>)>>,
    /// Copies without their message id as origin-id and stanza id prefix.
    foreign: Vec<(usize, String, Option<String>)>,
}

impl Counts {
    fn new(answers: &[(u16, String)], copies: &[Copy], run: &str) -> Counts {
        let mut c = Counts {
            sent: answers.len(),
            copies: copies.len(),
            ..Counts::default()
        };
        for (code, reason) in answers {
            match code {
                200 => c.ok200 += 1,
                202 => c.ok202 += 1,
                other => {
                    *c.other.entry(*other).or_default() += 1;
                    *c.other_reasons.entry((*other, reason.clone())).or_default() += 1;
                }
            }
        }
        let mut ids: BTreeMap<usize, Vec<(String, Option<String>)>> = BTreeMap::new();
        for copy in copies {
            let mid = format!("{run}-{}", copy.seq);
            let id = (copy.id.clone(), copy.origin.clone());
            if copy.origin.as_deref() != Some(mid.as_str())
                || !copy.id.starts_with(&format!("{mid}."))
            {
                c.foreign.push((copy.seq, id.0.clone(), id.1.clone()));
            }
            let seen = ids.entry(copy.seq).or_default();
            if seen.is_empty() {
                c.delivered += 1;
            } else if seen.contains(&id) {
                c.dup_same_id += 1;
            } else {
                c.dup_new_id += 1;
            }
            if !seen.contains(&id) {
                seen.push(id);
            }
        }
        let acked = accepted(answers);
        c.lost = acked
            .iter()
            .filter(|s| !ids.contains_key(s))
            .copied()
            .collect();
        c.unacked_delivered = ids.keys().filter(|s| !acked.contains(s)).count();
        c.new_ids = ids.into_iter().filter(|(_, v)| v.len() > 1).collect();
        c
    }

    /// The assertions of the module documentation; `log` (the gateway's output) goes into
    /// the failure message.
    fn check(&self, answers: &[(u16, String)], log: &str) {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let tail = tail.join("\n");
        assert!(
            self.lost.is_empty(),
            "{self}\naccepted but never delivered: {:?}\ngateway log tail:\n{tail}",
            self.lost
        );
        assert!(
            self.new_ids.is_empty(),
            "{self}\ndelivered under two ids: {:?}\ngateway log tail:\n{tail}",
            self.new_ids
        );
        assert!(
            self.foreign.is_empty(),
            "{self}\ncopies without their message id as origin-id and stanza id prefix: {:?}",
            self.foreign.iter().take(20).collect::<Vec<_>>()
        );
        let late: Vec<(usize, &(u16, String))> = (answers.len() - RECOVERED..answers.len())
            .filter(|s| !(200..300).contains(&answers[*s].0))
            .map(|s| (s, &answers[s]))
            .collect();
        assert!(
            late.is_empty(),
            "{self}\nthe gateway must accept again after the fault: {late:?}"
        );
    }
}

impl Counts {
    /// The summary line, `name: counts; extra`, and the reasons of the other answers.
    fn print(&self, name: &str, extra: &str) {
        println!("{name}: {self}{extra}");
        if !self.other_reasons.is_empty() {
            println!("{name}: other answers {:?}", self.other_reasons);
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let other: Vec<String> = self
            .other
            .iter()
            .map(|(code, n)| format!("{code}:{n}"))
            .collect();
        write!(
            f,
            "sent {}, 200 {}, 202 {}, other [{}], delivered {}, copies {}, \
             duplicates same id {}, duplicates new id {}, delivered without 2xx {}",
            self.sent,
            self.ok200,
            self.ok202,
            other.join(" "),
            self.delivered,
            self.copies,
            self.dup_same_id,
            self.dup_new_id,
            self.unacked_delivered
        )
    }
}

/// The sender: `user` of `domain` over TCP (a dead gateway shows as a failed connection
/// at once), registered at `sip_tcp`.
async fn sender(user: &str, domain: &str, sip_tcp: SocketAddr) -> Arc<SipUa> {
    let ua = SipUa::new(
        user,
        domain,
        Some(&format!("{user}pw")),
        Transport::Tcp,
        sip_tcp,
    )
    .await
    .unwrap();
    assert_eq!(ua.register(3600).await.unwrap().code(), 200);
    Arc::new(ua)
}

/// A Prosody of the test's own restarted during the load, the gateway its XEP-0114
/// component. Both tests take the component lock: this one does not share the
/// component, but two loads at once would not be the 200/s each claims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_restart_under_load_delivers_every_accepted_message_under_one_id() {
    let peers = require_peers!(Prosody);
    // No XEP-0198 on component links: what Prosody handled but did not confirm before
    // it stopped is resent under the same ids, which `check` allows.
    prosody_restart(&peers, Link::Component).await;
}

/// The same over s2s, where Prosody (mod_smacks, SASL EXTERNAL with the gateway's
/// certificate) acknowledges stanzas (XEP-0198): when the stream is lost, what Prosody
/// acknowledged succeeds and the rest is resent by the link on the next stream under the
/// same ids, so no delivery ends in 408 and no sender is told 202 (queued), unlike the
/// component link. Same-id copies stay possible for what Prosody handled in its last
/// moments without acknowledging (it sends no last `<a/>` on s2s); `check` allows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prosody_restart_under_load_over_s2s_with_xep0198_resends_only_in_the_link() {
    let peers = require_peers!(Prosody);
    if let Some((counts, log)) = prosody_restart(&peers, Link::S2s).await {
        // Stream management was on for the gateway's stream to Prosody, before and
        // after the restart.
        let enabled = log
            .lines()
            // Prosody logs the attributes in any order.
            .filter(|l| l.contains("Received[s2sin]: <enable ") && l.contains("'urn:xmpp:sm:3'"))
            .count();
        assert!(
            enabled >= 2,
            "XEP-0198 enabled {enabled} time(s) by the gateway"
        );
        assert_eq!(
            (counts.ok200, counts.ok202),
            (counts.sent, 0),
            "every message answered 200: {counts}"
        );
    }
}

/// How the gateway reaches the restarted Prosody.
#[derive(Clone, Copy, PartialEq)]
enum Link {
    Component,
    S2s,
}

/// The counts, and the Prosody log.
async fn prosody_restart(peers: &Peers, link: Link) -> Option<(Counts, String)> {
    let pdir = own_prosody::dir(match link {
        Link::Component => "gateway-faults-prosody",
        Link::S2s => "gateway-faults-prosody-s2s",
    })?;
    init_tracing();
    let _lock = component_lock().await;
    let port = || free_tcp_port().unwrap();
    let s2s = link == Link::S2s;
    let server = XmppServer {
        domain: "xmpp.test".into(),
        c2s: ([127, 0, 0, 1], port()).into(),
        s2s: ([127, 0, 0, 1], port()).into(),
        component: (!s2s).then(|| Component {
            addr: ([127, 0, 0, 1], port()).into(),
            domain: "sip.xmpp.test".into(),
            secret: format!("{}-component-secret", unique("faults")),
        }),
        accounts: vec![Account {
            user: "bob".into(),
            password: "bobpw".into(),
            domain: "xmpp.test".into(),
        }],
    };
    let gw_route = S2sRoute {
        domain: "gw.test".into(),
        addr: ([127, 0, 0, 1], port()).into(),
    };
    let bob = server.account("bob").unwrap();
    let (c2s, s2s_port) = (server.c2s.port().to_string(), server.s2s.port().to_string());
    let (comp_port, comp_domain, comp_secret) = match &server.component {
        Some(c) => (
            c.addr.port().to_string(),
            c.domain.clone(),
            c.secret.clone(),
        ),
        None => (port().to_string(), String::new(), String::new()),
    };
    let users = format!("{}:{}", bob.user, bob.password);
    let routes = format!("{}={}", gw_route.domain, gw_route.addr.port());
    let mut vars = vec![
        ("DOMAIN", server.domain.as_str()),
        ("C2S_PORT", &c2s),
        ("S2S_PORT", &s2s_port),
        ("COMPONENT_PORT", &comp_port),
        ("COMPONENT_DOMAIN", &comp_domain),
        ("COMPONENT_SECRET", &comp_secret),
        ("S2S_ROUTES", ""),
        ("USERS", &users),
    ];
    if s2s {
        vars.retain(|(k, _)| *k != "S2S_ROUTES");
        vars.extend([
            ("S2S_ROUTES", routes.as_str()),
            ("GW_DOMAIN", &gw_route.domain),
            ("SMACKS", "1"),
        ]);
    }
    let prosody = Arc::new(OwnProsody::start(&pdir, &vars));
    let carol = unique("carol");
    let dir = scratch_dir("gateway-faults-prosody").unwrap();
    let (mut cfg, sip_domain) = if s2s {
        let certs = pdir.join("certs");
        let mut cfg = s2s_config(
            &server,
            &gw_route,
            &[&carol],
            &certs.join(format!("{}.crt", server.domain)),
        );
        if let Mode::S2s { cert, key, .. } = &mut cfg.xmpp.mode {
            let gw = |ext: &str| certs.join("gw").join(format!("{}.{ext}", gw_route.domain));
            *cert = Some(gw("crt").display().to_string());
            *key = Some(gw("key").display().to_string());
        }
        (cfg, gw_route.domain.clone())
    } else {
        (
            component_config_of(&server, &[&carol]),
            SIP_DOMAIN.to_owned(),
        )
    };
    cfg.queue.retry_initial_ms = 200;
    cfg.xmpp.reconnect_initial_ms = 100;
    cfg.xmpp.reconnect_max_ms = 1000;
    let (config, listen) = binary::write_config(cfg, &dir);
    let gw = binary::spawn(&config, "cpim-gateway");
    let bob_jid = bob.jid();
    let login = || XmppClient::login(&peers.python, &bob_jid, &bob.password, server.c2s);
    let first = login().await.unwrap();
    let gw = if s2s {
        binary::wait_admin_up(listen.admin, gw).await
    } else {
        binary::wait_xmpp_up(listen.admin, gw).await
    };
    let ua = sender(&carol, &sip_domain, listen.sip_tcp).await;
    if s2s {
        // The s2s streams open on the first message; the load starts on working links
        // (the admin API may answer before the XMPP adapter took its route).
        let to = format!("sip:{bob_jid}");
        let mut last = (0, String::new());
        for _ in 0..40 {
            let r = ua.message(&to, "text/plain", b"warm-up").await.unwrap();
            last = (r.code(), r.reason().to_owned());
            if last.0 == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(last.0, 200, "warm-up message: {}", last.1);
    }

    let run = unique("restart");
    let load = tokio::spawn(load(ua, format!("sip:{bob_jid}"), run.clone()));
    tokio::time::sleep(FAULT_AT).await;
    let p = prosody.clone();
    let (stopped, started) = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        assert!(p.run("stop"), "own prosody stop");
        let stopped = t0.elapsed();
        std::thread::sleep(DOWN);
        assert!(p.run("start"), "own prosody start again");
        (stopped, t0.elapsed())
    })
    .await
    .unwrap();
    // The receiver's session died with the server: a new login (the offline messages
    // come with it).
    let second = login().await.unwrap();
    let answers = load.await.unwrap();

    let mut copies = Vec::new();
    take_copies(&first, &run, &mut copies);
    let before = copies.len();
    let acked = accepted(&answers);
    collect(&second, listen.admin, &run, &acked, &mut copies).await;
    let counts = Counts::new(&answers, &copies, &run);
    counts.print(
        match link {
            Link::Component => "prosody restart (component)",
            Link::S2s => "prosody restart (s2s, XEP-0198)",
        },
        &format!(
            "; copies before the restart {before}, prosody stopped in {:.1}s and up again \
             {:.1}s after the stop began",
            stopped.as_secs_f64(),
            started.as_secs_f64()
        ),
    );
    let _ = second.quit().await;
    let out = gw.kill();
    counts.check(&answers, &out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    let log = std::fs::read_to_string(pdir.join("prosody.log")).unwrap_or_default();
    Some((counts, log))
}

/// The gateway process SIGKILLed during the load and started again on its store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_sigkill_under_load_delivers_every_accepted_message_under_one_id() {
    let peers = require_peers!(Prosody);
    init_tracing();
    let _lock = component_lock().await;
    let carol = unique("carol");
    let dir = scratch_dir("gateway-faults-kill").unwrap();
    let mut cfg = component_config(&peers, &[&carol]);
    cfg.queue.retry_initial_ms = 200;
    let (config, listen) = binary::write_config(cfg, &dir);
    let gw = binary::spawn(&config, "cpim-gateway run 1");
    let gw = binary::wait_xmpp_up(listen.admin, gw).await;
    let bob = peers.prosody.account("bob").unwrap().jid();
    let xbob = prosody_login(&peers, "bob").await;
    let ua = sender(&carol, SIP_DOMAIN, listen.sip_tcp).await;

    let run = unique("kill");
    let load = tokio::spawn(load(ua, format!("sip:{bob}"), run.clone()));
    tokio::time::sleep(FAULT_AT).await;
    let killed = tokio::task::spawn_blocking(move || gw.kill())
        .await
        .unwrap();
    assert!(
        !killed.success(),
        "the gateway was killed, not stopped: {:?}",
        killed.status
    );
    let gw = binary::spawn(&config, "cpim-gateway run 2");
    let answers = load.await.unwrap();
    let gw = binary::wait_xmpp_up(listen.admin, gw).await;

    let mut copies = Vec::new();
    let acked = accepted(&answers);
    collect(&xbob, listen.admin, &run, &acked, &mut copies).await;
    let counts = Counts::new(&answers, &copies, &run);
    counts.print("gateway SIGKILL", "");
    let _ = xbob.quit().await;
    let out = gw.kill();
    let log = format!(
        "{}\n--- after the restart ---\n{}",
        killed.stderr, out.stderr
    );
    counts.check(&answers, &log);
    let _ = std::fs::remove_dir_all(&dir);
}
