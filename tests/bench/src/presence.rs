//! P3 (presence fan-out) and P4 (standing subscription state) against the gateway.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cpim_bench::procstat;
use cpim_bench::report::{FanoutResult, Section, StateResult};
use cpim_bench::roles::{self, ComponentServer, UasOptions};
use cpim_bench::search::{Search, SearchConfig};
use cpim_bench::sip;
use cpim_bench::stats::Delays;

use crate::ctx::Ctx;
use crate::gateway::{http_get, metric, start_gateway, Gw, COMPONENT};
use crate::run::skipped;
use crate::{lo0, log, RunArgs};

/// The gateway's `cpim_subscriptions` gauge.
fn held(admin: SocketAddr) -> Option<u64> {
    http_get(admin, "/metrics")
        .ok()
        .and_then(|t| metric(&t, "cpim_subscriptions"))
        .map(|v| v as u64)
}

/// Writes `stanzas` into the gateway's component stream, `chunk` per write, at about
/// `rate` stanzas per second.
fn write_paced(
    component: &ComponentServer,
    stanzas: impl Iterator<Item = String>,
    rate: u64,
    chunk: usize,
    limit: Duration,
) -> Result<u64, String> {
    let t = Instant::now();
    let mut n = 0u64;
    let mut buf = String::with_capacity(chunk * 160);
    let mut k = 0;
    let flush = |buf: &mut String, n: u64| -> Result<(), String> {
        component
            .write(std::mem::take(buf).into_bytes())
            .map_err(|e| format!("writing to the gateway's component stream: {e}"))?;
        let due = Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(t.elapsed()) {
            std::thread::sleep(wait);
        }
        Ok(())
    };
    for s in stanzas {
        buf.push_str(&s);
        n += 1;
        k += 1;
        if k == chunk {
            flush(&mut buf, n)?;
            k = 0;
            if t.elapsed() > limit {
                return Err(format!(
                    "time limit of {} s reached after {n} stanzas",
                    limit.as_secs()
                ));
            }
        }
    }
    if !buf.is_empty() {
        flush(&mut buf, n)?;
    }
    Ok(n)
}

/// Polls the gauge until it reaches `want` or stops growing for `stall`; returns the
/// last value and the seconds it took.
fn wait_held(admin: SocketAddr, want: u64, stall: Duration, limit: Duration) -> (u64, f64) {
    let t = Instant::now();
    let mut last = 0;
    let mut last_change = Instant::now();
    loop {
        let h = held(admin).unwrap_or(last);
        if h != last {
            last = h;
            last_change = Instant::now();
        }
        if h >= want || last_change.elapsed() > stall || t.elapsed() > limit {
            return (h, t.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn run_p3(
    ctx: &mut Ctx,
    a: &RunArgs,
    gw: &mut Gw,
    work: &Path,
    cfg: &Path,
    component: &ComponentServer,
) -> Section<Vec<FanoutResult>> {
    if held(gw.admin).is_none() {
        return skipped("the gateway's /metrics has no cpim_subscriptions gauge");
    }
    let store = work.join("store");
    let mut out = Vec::new();
    let mut k = 0u64;
    for &w in &a.p3_watchers {
        let w = w.max(1);
        // The zero-failure search of RFC 7502 over the offered notification rate. A trial
        // is a fixed number of notifications (--p3-notifications), so it lasts
        // notifications / rate seconds. Every trial runs on a fresh gateway with an empty
        // store and its own presentities and watchers: re-publishing a presentity adds a
        // publication (an initial PUBLISH has no SIP-If-Match), and without the restart a
        // failed trial's backlog made the following trials fail at a tenth of the rate.
        let mut search = Search::new(SearchConfig {
            start: a.p3_rate.max(w),
            min: w.max(a.min_rate),
            max: a.max_rate,
            precision: a.precision.max(0.1),
            max_steps: a.max_steps.min(6),
        });
        while let Some(rate) = search.next_rate() {
            k += 1;
            gw.sut.stop();
            let _ = std::fs::remove_dir_all(&store);
            match start_gateway(a, &ctx.probe, work, cfg, gw.admin, gw.sip) {
                Ok(g) => *gw = g,
                Err(e) => return skipped(format!("restart with an empty store failed: {e}")),
            }
            std::thread::sleep(Duration::from_millis(300));
            let pid = gw.sut.pid;
            let f = move || vec![pid];
            match p3_trial(ctx, a, gw, component, &f, w, k, rate) {
                Ok(r) => {
                    search.record(rate, r.clean);
                    out.push(r);
                }
                Err(e) => return skipped(e),
            }
        }
    }
    Section::Ran(out)
}

/// One P3 trial: `w` watchers on each of `p3_notifications / w` fresh presentities, each
/// presentity PUBLISHed once, `rate` notifications/s offered.
#[allow(clippy::too_many_arguments)]
fn p3_trial(
    ctx: &mut Ctx,
    a: &RunArgs,
    gw: &Gw,
    component: &ComponentServer,
    f: &dyn Fn() -> Vec<u32>,
    w: u64,
    k: u64,
    rate: u64,
) -> Result<FanoutResult, String> {
    let presentities = (a.p3_notifications / w).max(1);
    let sip_w = w / 2;
    let xmpp_w = w - sip_w;
    let mut notes = Vec::new();
    let base = held(gw.admin).unwrap_or(0);
    log(format!(
        "p3: {presentities} presentities x {w} watchers ({sip_w} SIP + {xmpp_w} XMPP)"
    ));
    // SIP watchers: SUBSCRIBE from a fresh UAS, which then answers the NOTIFYs.
    let mut subs = Vec::new();
    for i in 0..presentities {
        for j in 0..sip_w {
            subs.push((
                format!("sip:sw{k}x{i}x{j}@sip.test"),
                format!("sip:p{k}x{i}@sip.test"),
            ));
        }
    }
    let t_setup = Instant::now();
    let uas = if subs.is_empty() {
        None
    } else {
        let opts = UasOptions {
            register: Vec::new(),
            registrar: Some(gw.sip),
            subscribe: subs,
            best_effort: true,
        };
        match roles::udp_uas(lo0(), opts, ctx.probe.clone()) {
            Ok(a) => Some(a),
            Err(e) => {
                notes.push(format!("SIP watchers could not subscribe: {e}"));
                None
            }
        }
    };
    let sip_ok = uas.is_some();
    // XMPP watchers: presence subscribe stanzas on the component stream.
    let stanzas = (0..presentities).flat_map(|i| {
        (0..xmpp_w).map(move |j| format!("<presence type='subscribe' from='xw{k}x{i}x{j}@xmpp.test' to='p{k}x{i}@{COMPONENT}'/>"))
    });
    if let Err(e) = write_paced(component, stanzas, 20_000, 500, Duration::from_secs(120)) {
        notes.push(format!("XMPP subscriptions: {e}"));
    }
    let want = base + presentities * (xmpp_w + if sip_ok { sip_w } else { 0 });
    let (h, _) = wait_held(
        gw.admin,
        want,
        Duration::from_secs(10),
        Duration::from_secs(120),
    );
    notes.push(format!(
        "set-up: {} subscriptions held of {} asked for in {:.1} s",
        h.saturating_sub(base),
        want - base,
        t_setup.elapsed().as_secs_f64()
    ));
    let watchers_ok = h.saturating_sub(base);
    // PUBLISH once per presentity (RFC 3856: the fan-out goes across presentities).
    let pres: Vec<String> = (0..presentities)
        .map(|i| format!("sip:p{k}x{i}@sip.test"))
        .collect();
    let (uac, _) = match roles::udp_uac_multi(
        lo0(),
        gw.sip,
        move |local| {
            pres.iter()
                .map(|p| sip::publish_template(p, &local.to_string()))
                .collect()
        },
        ctx.probe.clone(),
    ) {
        Ok(x) => x,
        Err(e) => return Err(format!("UAC: {e}")),
    };
    ctx.settle(Some(f));
    let step = ctx.next_step();
    let probe = ctx.probe.clone();
    let pids = f();
    probe.begin(step);
    let cpu0 = procstat::cpu_ticks_sum(&pids);
    let t0 = probe.now_ns();
    let publish_rate = (rate / w).max(1);
    let rep = match uac.run(step, publish_rate, presentities) {
        Ok(r) => r,
        Err(e) => return Err(format!("PUBLISH sender: {e}")),
    };
    let expected = presentities * w;
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = 0;
    let mut last_change = Instant::now();
    while Instant::now() < deadline {
        let n = probe.notifications.load(Ordering::Relaxed);
        if n >= watchers_ok && probe.answered.missing(rep.sent) == 0 {
            break;
        }
        if n != last {
            last = n;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu1 = procstat::cpu_ticks_sum(&pids);
    probe.end();
    let received = probe.notifications.load(Ordering::Relaxed);
    let last_ns = probe.last_notification_ns.load(Ordering::Relaxed);
    let seconds = if last_ns > t0 {
        (last_ns - t0) as f64 / 1e9
    } else {
        0.0
    };
    let (delay, _): (Delays, Delays) = probe.delays();
    let publish_ok = probe.answered.count_seen(rep.sent) - probe.non2xx.load(Ordering::Relaxed);
    if publish_ok < rep.sent {
        notes.push(format!(
            "{} of {} PUBLISH not answered 2xx (last code {})",
            rep.sent - publish_ok,
            rep.sent,
            probe.last_failure_code.load(Ordering::Relaxed)
        ));
    }
    // Clean: every PUBLISH answered 2xx and every watcher the gateway holds notified
    // (subscriptions lost during set-up are reported in the set-up note, not here).
    let clean = received >= watchers_ok.min(expected) && publish_ok == rep.sent;
    notes.push(format!(
        "{}: offered {} notifications/s ({publish_rate} PUBLISH/s x {w} watchers) for {:.1} s",
        if clean {
            "clean (every PUBLISH answered 2xx, every notification arrived)"
        } else {
            "NOT clean: the rate given is what arrived under overload, not a zero-failure rate"
        },
        publish_rate * w,
        rep.seconds
    ));
    if received < expected {
        notes.push(format!("{received} notifications of {expected} expected arrived ({} untagged presence stanzas or NOTIFYs ignored)", probe.untagged.load(Ordering::Relaxed)));
    }
    let r = FanoutResult {
        watchers: w,
        presentities,
        sip_watchers: sip_w,
        xmpp_watchers: xmpp_w,
        publish_rate,
        expected,
        received,
        publish_ok,
        seconds,
        notifications_per_s: if seconds > 0.0 {
            received as f64 / seconds
        } else {
            0.0
        },
        delay,
        sut_cpu_us_per_notification: (received > 0)
            .then(|| (cpu1 - cpu0) as f64 * 1e6 / ctx.clk_tck as f64 / received as f64),
        notes,
        offered_per_s: publish_rate * w,
        clean,
    };
    log(format!(
        "p3 {w} watchers at {rate}/s offered: {received}/{expected} notifications, {:.0}/s, {}",
        r.notifications_per_s,
        if clean { "clean" } else { "NOT clean" }
    ));
    Ok(r)
}

fn dir_bytes(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => n += dir_bytes(&e.path()),
                Ok(m) => n += m.len(),
                Err(_) => {}
            }
        }
    }
    n
}

pub(crate) fn run_p4(
    ctx: &mut Ctx,
    a: &RunArgs,
    gw: &mut Gw,
    work: &Path,
    cfg: &Path,
    component: &ComponentServer,
) -> Section<Vec<StateResult>> {
    if held(gw.admin).is_none() {
        return skipped("the gateway's /metrics has no cpim_subscriptions gauge");
    }
    let _ = ctx;
    let store = work.join("store");
    let mut out: Vec<StateResult> = Vec::new();
    for &count in &a.p4_counts {
        let mut notes = Vec::new();
        if let Some(prev) = out.last() {
            if prev.held < prev.requested {
                out.push(StateResult {
                    requested: count,
                    held: 0,
                    create_seconds: 0.0,
                    rss_before_kib: 0,
                    rss_after_kib: 0,
                    rss_bytes_per_subscription: None,
                    store_bytes: 0,
                    store_bytes_per_subscription: None,
                    restore_seconds: None,
                    restored: 0,
                    rss_after_restore_kib: None,
                    rss_bytes_per_subscription_after_restore: None,
                    notes: vec![format!("not attempted: the previous trial did not reach {} subscriptions within the time limit", prev.requested)],
                });
                continue;
            }
        }
        // a fresh gateway with an empty store
        gw.sut.stop();
        let _ = std::fs::remove_dir_all(&store);
        match start_gateway(a, &ctx.probe, work, cfg, gw.admin, gw.sip) {
            Ok(g) => *gw = g,
            Err(e) => return skipped(format!("restart with an empty store failed: {e}")),
        }
        std::thread::sleep(Duration::from_millis(500));
        let pid = gw.sut.pid;
        let rss_before = procstat::status_kib(pid, "VmRSS").unwrap_or(0);
        let base = held(gw.admin).unwrap_or(0);
        log(format!("p4: {count} subscriptions at {}/s", a.p4_rate));
        let presentities = (count / 1000).max(1);
        let stanzas = (0..count).map(move |i| {
            format!(
                "<presence type='subscribe' from='s{i}@xmpp.test' to='q{}@{COMPONENT}'/>",
                i % presentities
            )
        });
        let t = Instant::now();
        let limit = Duration::from_secs_f64(a.p4_time_limit);
        if let Err(e) = write_paced(component, stanzas, a.p4_rate, 1000, limit) {
            notes.push(format!("sending the subscriptions: {e}"));
        }
        let left = limit
            .saturating_sub(t.elapsed())
            .max(Duration::from_secs(5));
        let (h, _) = wait_held(gw.admin, base + count, Duration::from_secs(20), left);
        let create_seconds = t.elapsed().as_secs_f64();
        let held_n = h.saturating_sub(base);
        if held_n < count {
            notes.push(format!(
                "only {held_n} of {count} subscriptions held after {create_seconds:.0} s"
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
        let rss_after = procstat::status_kib(pid, "VmRSS").unwrap_or(0);
        let store_bytes = dir_bytes(&store);
        // restart: time until the admin API reports them all
        gw.sut.stop();
        let t = Instant::now();
        let (restore_seconds, restored, rss_restored) =
            match start_gateway(a, &ctx.probe, work, cfg, gw.admin, gw.sip) {
                Ok(g) => {
                    *gw = g;
                    let (r, _) = wait_held(
                        gw.admin,
                        h,
                        Duration::from_secs(30),
                        Duration::from_secs(120),
                    );
                    let secs = t.elapsed().as_secs_f64();
                    (
                        Some(secs),
                        r,
                        procstat::status_kib(gw.sut.pid, "VmRSS").ok(),
                    )
                }
                Err(e) => {
                    notes.push(format!("restart failed: {e}"));
                    (None, 0, None)
                }
            };
        notes.push("restore time = gateway process start -> component link up and /metrics reporting the held count (includes process start; the store is read before the admin API listens)".into());
        let per = |x: u64| (held_n > 0).then(|| x as f64 / held_n as f64);
        let r = StateResult {
            requested: count,
            held: held_n,
            create_seconds,
            rss_before_kib: rss_before,
            rss_after_kib: rss_after,
            rss_bytes_per_subscription: per(rss_after.saturating_sub(rss_before) * 1024),
            store_bytes,
            store_bytes_per_subscription: per(store_bytes),
            restore_seconds,
            restored,
            rss_after_restore_kib: rss_restored,
            rss_bytes_per_subscription_after_restore: rss_restored
                .and_then(|r| per(r.saturating_sub(rss_before) * 1024)),
            notes,
        };
        log(format!(
            "p4 {count}: held {held_n}, {:?} B/sub RSS, restore {:?} s",
            r.rss_bytes_per_subscription, r.restore_seconds
        ));
        out.push(r);
    }
    Section::Ran(out)
}
