//! The report: every figure and parameter, as JSON and as markdown, and the targets.

use std::fmt::Write as _;

use serde::Serialize;

use crate::roles::SendReport;
use crate::search::SearchConfig;
use crate::stats::Delays;

/// One fixed-rate trial.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepResult {
    /// Step id (tag prefix).
    pub step: u8,
    /// Offered rate, per second.
    pub rate: u64,
    /// Planned duration, seconds.
    pub duration_s: f64,
    /// What the sender did.
    pub send: SendReport,
    /// Arrived at the far end (each once).
    pub delivered: u64,
    /// Sent but never arrived.
    pub lost: u64,
    /// Arrived more than once (as separate deliveries).
    pub duplicates: u64,
    /// SIP retransmissions received by the UAS (same branch; not failures).
    pub retransmissions: u64,
    /// Final responses received (SIP workloads).
    pub answered: Option<u64>,
    /// Of which not 2xx.
    pub non2xx: u64,
    /// The last non-2xx code.
    pub last_failure_code: u64,
    /// Requests without a final response at the end of the drain time.
    pub no_answer: u64,
    /// XMPP error stanzas.
    pub xmpp_errors: u64,
    /// Arrivals from earlier steps (not counted above).
    pub stale: u64,
    /// Completed (delivered, and answered 2xx where answers are expected) per second of
    /// sending.
    pub completed_per_s: f64,
    /// Send -> far end, microseconds.
    pub delivery: Delays,
    /// Send -> final response, microseconds.
    pub answer: Delays,
    /// CPU microseconds of the system under test per message.
    pub sut_cpu_us_per_msg: Option<f64>,
    /// RSS of the system under test after the step, KiB.
    pub sut_rss_kib: Option<u64>,
    /// Peak RSS (VmHWM) of the system under test after the step, KiB.
    pub sut_peak_rss_kib: Option<u64>,
    /// CPU microseconds of the generator per message.
    pub gen_cpu_us_per_msg: f64,
    /// Zero failures.
    pub pass: bool,
    /// Why not.
    pub failure: Option<String>,
}

/// One zero-failure search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    /// Workload id (`generator-sip-udp`, `p1-udp`, ...).
    pub workload: String,
    /// What runs where.
    pub description: String,
    /// The search parameters.
    pub config: SearchConfig,
    /// Trial length, seconds.
    pub duration_s: f64,
    /// Every trial in order.
    pub steps: Vec<StepResult>,
    /// Highest rate with zero failures (0: none).
    pub max_clean_rate: u64,
    /// Lowest rate that failed.
    pub lowest_failing_rate: Option<u64>,
}

impl SearchResult {
    /// The trial at the highest clean rate.
    pub fn best_step(&self) -> Option<&StepResult> {
        self.steps.iter().filter(|s| s.pass).max_by_key(|s| s.rate)
    }
}

/// A section that ran or was skipped (with the reason).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", content = "result", rename_all = "lowercase")]
pub enum Section<T> {
    /// It ran.
    Ran(T),
    /// It did not run, and why.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl<T> Section<T> {
    /// The result when it ran.
    pub fn ran(&self) -> Option<&T> {
        match self {
            Section::Ran(t) => Some(t),
            Section::Skipped { .. } => None,
        }
    }
}

/// A target of the project and whether it was met.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// Name.
    pub name: String,
    /// The goal, in words.
    pub goal: String,
    /// What was measured, in words.
    pub measured: String,
    /// `Some(true)` met, `Some(false)` not met, `None` not measured.
    pub met: Option<bool>,
}

/// Fan-out trial (P3).
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    /// Watchers per presentity.
    pub watchers: u64,
    /// Presentities.
    pub presentities: u64,
    /// SIP watchers and XMPP watchers per presentity.
    pub sip_watchers: u64,
    /// XMPP watchers per presentity.
    pub xmpp_watchers: u64,
    /// PUBLISH rate offered, per second.
    pub publish_rate: u64,
    /// Notifications expected (publications x watchers).
    pub expected: u64,
    /// Notifications received.
    pub received: u64,
    /// PUBLISH answered 2xx.
    pub publish_ok: u64,
    /// Seconds from the first PUBLISH to the last notification.
    pub seconds: f64,
    /// Notifications per second.
    pub notifications_per_s: f64,
    /// PUBLISH -> notification delays.
    pub delay: Delays,
    /// CPU us of the gateway per notification.
    pub sut_cpu_us_per_notification: Option<f64>,
    /// Set-up notes (subscriptions made, refused).
    pub notes: Vec<String>,
    /// Notifications offered per second (PUBLISH rate x watchers).
    pub offered_per_s: u64,
    /// Zero failures: every PUBLISH answered 2xx and every watcher notified.
    pub clean: bool,
}

/// Standing-state trial (P4).
#[derive(Debug, Clone, Serialize)]
pub struct StateResult {
    /// Subscriptions asked for.
    pub requested: u64,
    /// Subscriptions the gateway reports holding (`cpim_subscriptions`).
    pub held: u64,
    /// Seconds to create them.
    pub create_seconds: f64,
    /// RSS before, KiB.
    pub rss_before_kib: u64,
    /// RSS after, KiB.
    pub rss_after_kib: u64,
    /// (RSS after - before) / held, bytes.
    pub rss_bytes_per_subscription: Option<f64>,
    /// Size of the store folder on disk, bytes.
    pub store_bytes: u64,
    /// Store bytes / held.
    pub store_bytes_per_subscription: Option<f64>,
    /// Seconds from the restart to the admin API reporting them all.
    pub restore_seconds: Option<f64>,
    /// Subscriptions reported after the restart.
    pub restored: u64,
    /// RSS after the restart, KiB.
    pub rss_after_restore_kib: Option<u64>,
    /// (RSS after the restart - RSS of a fresh gateway) / held, bytes: the standing state
    /// without what creating it left behind in the allocator.
    pub rss_bytes_per_subscription_after_restore: Option<f64>,
    /// Notes.
    pub notes: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// UTC start time (RFC 3339).
    pub started_utc: String,
    /// Seconds the whole run took.
    pub total_seconds: f64,
    /// The command line.
    pub command: String,
    /// Machine facts.
    pub machine: serde_json::Value,
    /// Parameters of the run.
    pub parameters: serde_json::Value,
    /// The generator alone.
    pub generator: Vec<Section<SearchResult>>,
    /// Kamailio as a stateful relay.
    pub kamailio: Section<SearchResult>,
    /// P1 over UDP.
    pub p1_udp: Section<SearchResult>,
    /// P1 over TCP.
    pub p1_tcp: Section<SearchResult>,
    /// P1 at half the clean UDP rate (latency).
    pub p1_half_rate: Section<StepResult>,
    /// P2.
    pub p2: Section<SearchResult>,
    /// P3 fan-out trials.
    pub p3: Section<Vec<FanoutResult>>,
    /// P4 standing state.
    pub p4: Section<Vec<StateResult>>,
    /// The profile of P1.
    pub profile: Section<String>,
    /// Targets.
    pub targets: Vec<Target>,
    /// Anything the reader must know.
    pub notes: Vec<String>,
}

/// Evaluates the project's targets from the report's figures.
pub fn targets(r: &Report) -> Vec<Target> {
    let mut t = Vec::new();
    let p1 = r.p1_udp.ran().map(|s| s.max_clean_rate);
    t.push(Target {
        name: "P1 rate".into(),
        goal: ">= 50,000 msg/s clean (UDP)".into(),
        measured: p1.map_or("not measured".into(), |v| format!("{v} msg/s")),
        met: p1.map(|v| v >= 50_000),
    });
    let half = r.p1_half_rate.ran();
    t.push(Target {
        name: "P1 latency".into(),
        goal: "p99 < 5 ms at half the clean rate".into(),
        measured: half.map_or("not measured".into(), |h| {
            format!(
                "p99 {:.2} ms at {} msg/s (p50 {:.2} ms)",
                f64::from(h.delivery.p99_us) / 1000.0,
                h.rate,
                f64::from(h.delivery.p50_us) / 1000.0
            )
        }),
        met: half.map(|h| h.pass && h.delivery.p99_us < 5000),
    });
    let k = r.kamailio.ran().map(|s| s.max_clean_rate);
    let ratio = match (p1, k) {
        (Some(p), Some(k)) if k > 0 => Some(p as f64 / k as f64),
        _ => None,
    };
    t.push(Target {
        name: "P1 vs Kamailio".into(),
        goal: ">= 3x Kamailio's stateful relay rate".into(),
        measured: match (ratio, k) {
            (Some(x), Some(k)) => format!("{x:.2}x (Kamailio {k} msg/s)"),
            _ => "not measured".into(),
        },
        met: ratio.map(|x| x >= 3.0),
    });
    // the zero-failure rule: only clean trials count
    let p3 = r.p3.ran().and_then(|v| {
        v.iter()
            .filter(|f| f.clean)
            .map(|f| f.notifications_per_s)
            .reduce(f64::max)
    });
    t.push(Target {
        name: "P3 fan-out".into(),
        goal: ">= 100,000 notifications/s".into(),
        measured: p3.map_or("not measured".into(), |v| {
            format!("{v:.0} notifications/s (best clean trial)")
        }),
        met: p3.map(|v| v >= 100_000.0),
    });
    let p4 = r.p4.ran();
    let per_sub = p4.and_then(|v| {
        v.iter()
            .filter_map(|s| {
                s.rss_bytes_per_subscription_after_restore
                    .or(s.rss_bytes_per_subscription)
            })
            .reduce(f64::max)
    });
    let per_sub_live = p4.and_then(|v| {
        v.iter()
            .filter_map(|s| s.rss_bytes_per_subscription)
            .reduce(f64::max)
    });
    t.push(Target {
        name: "P4 memory".into(),
        goal: "<= 1 KiB per subscription".into(),
        measured: per_sub.map_or("not measured".into(), |v| {
            format!(
                "{v:.0} B per subscription (RSS after a restart minus a fresh gateway's, worst trial); {} B right after creating them",
                per_sub_live.map_or("-".into(), |x| format!("{x:.0}"))
            )
        }),
        met: per_sub.map(|v| v <= 1024.0),
    });
    let million = p4.and_then(|v| {
        v.iter()
            .find(|s| s.requested >= 1_000_000 && s.held >= 1_000_000)
    });
    t.push(Target {
        name: "P4 restore".into(),
        goal: "1M subscriptions restored in < 10 s".into(),
        measured: match million {
            Some(s) => s.restore_seconds.map_or("restart failed".into(), |x| {
                format!("{x:.2} s for {}", s.restored)
            }),
            None => "not measured (1M subscriptions were not reached)".into(),
        },
        met: million.and_then(|s| {
            s.restore_seconds
                .map(|x| x < 10.0 && s.restored >= 1_000_000)
        }),
    });
    t
}

fn ms(us: u32) -> String {
    format!("{:.2}", f64::from(us) / 1000.0)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |x| x.to_string())
}

fn search_md(out: &mut String, s: &SearchResult) {
    let _ = writeln!(out, "{}\n", s.description);
    let _ = writeln!(
        out,
        "Search: start {} /s, bounds {}..{} /s, precision {:.0}%, at most {} trials of {} s each.\n",
        s.config.start,
        s.config.min,
        s.config.max,
        s.config.precision * 100.0,
        s.config.max_steps,
        s.duration_s
    );
    let _ = writeln!(
        out,
        "**Highest clean rate: {} msg/s**{}\n",
        s.max_clean_rate,
        s.lowest_failing_rate
            .map_or(String::new(), |f| format!(" (lowest failing: {f} msg/s)"))
    );
    let _ = writeln!(out, "| rate /s | sent | sent in s | delivered | lost | dup | retrans | 2xx/answered | no answer | xmpp err | p50 ms | p99 ms | answer p99 ms | SUT us/msg | SUT RSS MiB (peak) | gen us/msg | result |");
    let _ = writeln!(
        out,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for st in &s.steps {
        let answered = st
            .answered
            .map_or("-".into(), |a| format!("{}/{}", a - st.non2xx, a));
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            st.rate,
            st.send.sent,
            st.send.seconds,
            st.delivered,
            st.lost,
            st.duplicates,
            st.retransmissions,
            answered,
            st.no_answer,
            st.xmpp_errors,
            ms(st.delivery.p50_us),
            ms(st.delivery.p99_us),
            ms(st.answer.p99_us),
            st.sut_cpu_us_per_msg.map_or("-".into(), |v| format!("{v:.1}")),
            match (st.sut_rss_kib, st.sut_peak_rss_kib) {
                (Some(r), Some(p)) => format!("{} ({})", r / 1024, p / 1024),
                _ => "-".into(),
            },
            st.gen_cpu_us_per_msg,
            if st.pass { "clean".to_owned() } else { format!("FAIL: {}", st.failure.as_deref().unwrap_or("?")) }
        );
    }
    let _ = writeln!(out);
}

fn section_md<T>(
    out: &mut String,
    title: &str,
    s: &Section<T>,
    body: impl FnOnce(&mut String, &T),
) {
    let _ = writeln!(out, "## {title}\n");
    match s {
        Section::Ran(t) => body(out, t),
        Section::Skipped { reason } => {
            let _ = writeln!(out, "Not run: {reason}\n");
        }
    }
}

/// The markdown form of the report.
pub fn markdown(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# cpim-gateway benchmark, {}\n", r.started_utc);
    let _ = writeln!(
        o,
        "Command: `{}`  \nTotal time: {:.0} s\n",
        r.command, r.total_seconds
    );
    let _ = writeln!(o, "## Targets\n");
    let _ = writeln!(o, "| target | goal | measured | met |");
    let _ = writeln!(o, "|---|---|---|---|");
    for t in &r.targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "not measured",
        };
        let _ = writeln!(o, "| {} | {} | {} | {} |", t.name, t.goal, t.measured, met);
    }
    let _ = writeln!(o);
    if !r.notes.is_empty() {
        let _ = writeln!(o, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(o, "- {n}");
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "## Machine and parameters\n");
    let _ = writeln!(
        o,
        "```json\n{}\n{}\n```\n",
        serde_json::to_string_pretty(&r.machine).unwrap_or_default(),
        serde_json::to_string_pretty(&r.parameters).unwrap_or_default()
    );
    let _ = writeln!(
        o,
        "## Generator alone (RFC 7501: the generator must not be the bottleneck)\n"
    );
    for g in &r.generator {
        match g {
            Section::Ran(s) => {
                let _ = writeln!(o, "### {}\n", s.workload);
                search_md(&mut o, s);
            }
            Section::Skipped { reason } => {
                let _ = writeln!(o, "Not run: {reason}\n");
            }
        }
    }
    section_md(
        &mut o,
        "Kamailio stateful relay (anchor)",
        &r.kamailio,
        search_md,
    );
    section_md(
        &mut o,
        "P1: SIP MESSAGE -> XMPP message, UDP",
        &r.p1_udp,
        search_md,
    );
    section_md(
        &mut o,
        "P1: SIP MESSAGE -> XMPP message, TCP",
        &r.p1_tcp,
        search_md,
    );
    section_md(
        &mut o,
        "P1 at half the clean UDP rate (latency)",
        &r.p1_half_rate,
        |o, st| {
            let _ = writeln!(
            o,
            "{} msg/s for {} s: delivered {} of {}, lost {}, dup {}, non-2xx {}; delivery p50 {} ms, p99 {} ms, max {} ms; answer p50 {} ms, p99 {} ms; gateway {} us CPU per message, RSS {} MiB (peak {} MiB). {}\n",
            st.rate,
            st.duration_s,
            st.delivered,
            st.send.sent,
            st.lost,
            st.duplicates,
            st.non2xx,
            ms(st.delivery.p50_us),
            ms(st.delivery.p99_us),
            ms(st.delivery.max_us),
            ms(st.answer.p50_us),
            ms(st.answer.p99_us),
            st.sut_cpu_us_per_msg.map_or("-".into(), |v| format!("{v:.1}")),
            opt(st.sut_rss_kib.map(|k| k / 1024)),
            opt(st.sut_peak_rss_kib.map(|k| k / 1024)),
            if st.pass { "Clean.".to_owned() } else { format!("FAILED: {}", st.failure.as_deref().unwrap_or("?")) }
        );
        },
    );
    section_md(
        &mut o,
        "P2: XMPP message -> SIP MESSAGE (200 from the generator's UAS)",
        &r.p2,
        search_md,
    );
    section_md(&mut o, "P3: presence fan-out", &r.p3, |o, v| {
        let _ = writeln!(o, "Per watcher count, the zero-failure search over the offered notification rate (RFC 7502); each trial is a fixed number of notifications on a fresh gateway with fresh presentities and watchers.\n");
        for w in v
            .iter()
            .map(|f| f.watchers)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let best = v
                .iter()
                .filter(|f| f.watchers == w && f.clean)
                .map(|f| f.notifications_per_s)
                .reduce(f64::max);
            let _ = writeln!(
                o,
                "- {w} watchers per presentity: **{}**",
                best.map_or("no clean trial".into(), |b| format!(
                    "highest clean: {b:.0} notifications/s"
                ))
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "| watchers/presentity (SIP+XMPP) | offered /s | presentities | PUBLISH /s | expected | received | PUBLISH 2xx | seconds | notifications/s | p50 ms | p99 ms | SUT us/notification | result |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for f in v {
            let _ = writeln!(
                o,
                "| {} ({}+{}) | {} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} |",
                f.watchers,
                f.sip_watchers,
                f.xmpp_watchers,
                f.offered_per_s,
                f.presentities,
                f.publish_rate,
                f.expected,
                f.received,
                f.publish_ok,
                f.seconds,
                f.notifications_per_s,
                ms(f.delay.p50_us),
                ms(f.delay.p99_us),
                f.sut_cpu_us_per_notification
                    .map_or("-".into(), |v| format!("{v:.1}")),
                if f.clean { "clean" } else { "FAIL" }
            );
        }
        for f in v {
            for n in &f.notes {
                let _ = writeln!(
                    o,
                    "\n- {} watchers, {}/s offered: {n}",
                    f.watchers, f.offered_per_s
                );
            }
        }
        let _ = writeln!(o);
    });
    section_md(&mut o, "P4: standing presence state", &r.p4, |o, v| {
        let _ = writeln!(o, "| requested | held | create s | RSS fresh MiB | RSS after MiB | B/subscription (RSS) | RSS after restart MiB | B/subscription after restart | store bytes | B/subscription (disk) | restore s | restored |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        for s in v {
            let _ = writeln!(
                o,
                "| {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.requested,
                s.held,
                s.create_seconds,
                s.rss_before_kib / 1024,
                s.rss_after_kib / 1024,
                s.rss_bytes_per_subscription
                    .map_or("-".into(), |v| format!("{v:.0}")),
                opt(s.rss_after_restore_kib.map(|k| k / 1024)),
                s.rss_bytes_per_subscription_after_restore
                    .map_or("-".into(), |v| format!("{v:.0}")),
                s.store_bytes,
                s.store_bytes_per_subscription
                    .map_or("-".into(), |v| format!("{v:.0}")),
                s.restore_seconds.map_or("-".into(), |v| format!("{v:.2}")),
                s.restored
            );
        }
        for s in v {
            for n in &s.notes {
                let _ = writeln!(o, "\n- {}: {n}", s.requested);
            }
        }
        let _ = writeln!(o);
    });
    section_md(&mut o, "Profile of P1", &r.profile, |o, p| {
        let _ = writeln!(o, "{p}\n");
    });
    o
}
