//! The context of a run and one workload: the rate search over trials (RFC 7501/7502
//! method) and the message templates the senders fill in.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpim_bench::probe::Probe;
use cpim_bench::procstat;
use cpim_bench::report::{SearchResult, StepResult};
use cpim_bench::roles::Sender;
use cpim_bench::search::{Search, SearchConfig};
use cpim_bench::sip::{self, MessageSpec, Transport};

use crate::{log, RunArgs};

/// What runs one workload.
pub(crate) struct Workload<'a> {
    pub(crate) sender: &'a Sender,
    /// SIP answers are expected for every message.
    pub(crate) answers: bool,
    /// Deliveries at the far end are expected for every message.
    pub(crate) deliveries: bool,
    /// The processes under test.
    pub(crate) sut: Option<&'a dyn Fn() -> Vec<u32>>,
    /// Starts the system under test afresh; called after a failed trial when the system
    /// does not recover from overload by itself (Kamailio), so that every trial starts
    /// from the same state. `None`: it is never restarted (the gateway).
    pub(crate) restart: Option<&'a dyn Fn() -> Result<(), String>>,
}

pub(crate) struct Ctx {
    pub(crate) args: RunArgs,
    pub(crate) probe: Arc<Probe>,
    pub(crate) step: u8,
    pub(crate) clk_tck: u64,
}

impl Ctx {
    pub(crate) fn next_step(&mut self) -> u8 {
        self.step = self.step % 99 + 1;
        self.step
    }

    pub(crate) fn search_cfg(&self, start: u64, max: u64) -> SearchConfig {
        SearchConfig {
            start,
            min: self.args.min_rate,
            max,
            precision: self.args.precision,
            max_steps: self.args.max_steps,
        }
    }

    /// Waits until the processes under test are idle (at most 20 s).
    pub(crate) fn settle(&self, sut: Option<&dyn Fn() -> Vec<u32>>) {
        std::thread::sleep(Duration::from_millis(300));
        let Some(f) = sut else { return };
        let t = Instant::now();
        let window = Duration::from_millis(250);
        let quiet_ticks = (self.clk_tck / 40).max(1); // < 10% of a core over the window
        while t.elapsed() < Duration::from_secs(20) {
            let pids = f();
            let a = procstat::cpu_ticks_sum(&pids);
            std::thread::sleep(window);
            let b = procstat::cpu_ticks_sum(&pids);
            if b.saturating_sub(a) <= quiet_ticks {
                return;
            }
        }
        log("system under test still busy after 20 s of settling");
    }

    pub(crate) fn run_step(&mut self, w: &Workload<'_>, rate: u64, duration: f64) -> StepResult {
        let step = self.next_step();
        let probe = self.probe.clone();
        let count = ((rate as f64 * duration) as u64).min(probe.capacity());
        self.settle(w.sut);
        let pids = w.sut.map(|f| f()).unwrap_or_default();
        let me = std::process::id();
        probe.begin(step);
        let cpu0 = procstat::cpu_ticks_sum(&pids);
        let gen0 = procstat::cpu_ticks(me).unwrap_or(0);
        let send = match w.sender.run(step, rate, count) {
            Ok(r) => r,
            Err(e) => {
                probe.end();
                return StepResult {
                    step,
                    rate,
                    duration_s: duration,
                    failure: Some(format!("sender failed: {e}")),
                    ..StepResult::default()
                };
            }
        };
        let sent = send.sent;
        let deadline = Instant::now() + Duration::from_secs_f64(self.args.drain);
        loop {
            let d_ok = !w.deliveries || probe.delivered.missing(sent) == 0;
            let a_ok = !w.answers || probe.answered.missing(sent) == 0;
            if (d_ok && a_ok) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let cpu1 = procstat::cpu_ticks_sum(&pids);
        let gen1 = procstat::cpu_ticks(me).unwrap_or(0);
        probe.end();
        let us_per_tick = 1e6 / self.clk_tck as f64;
        let per_msg = |ticks: u64| {
            if sent == 0 {
                0.0
            } else {
                ticks as f64 * us_per_tick / sent as f64
            }
        };
        let delivered = probe.delivered.count_seen(sent);
        let (delivery, answer) = probe.delays();
        let answered = w.answers.then(|| probe.answered.count_seen(sent));
        let non2xx = probe.non2xx.load(Ordering::Relaxed);
        let mut st = StepResult {
            step,
            rate,
            duration_s: duration,
            send,
            delivered,
            lost: if w.deliveries { sent - delivered } else { 0 },
            duplicates: probe.delivered.duplicates(),
            retransmissions: probe.retransmissions.load(Ordering::Relaxed),
            answered,
            non2xx,
            last_failure_code: probe.last_failure_code.load(Ordering::Relaxed),
            no_answer: answered.map_or(0, |a| sent - a),
            xmpp_errors: probe.errors.load(Ordering::Relaxed),
            stale: probe.stale.load(Ordering::Relaxed),
            completed_per_s: 0.0,
            delivery,
            answer,
            sut_cpu_us_per_msg: (!pids.is_empty()).then(|| per_msg(cpu1.saturating_sub(cpu0))),
            sut_rss_kib: pids
                .first()
                .and_then(|p| procstat::status_kib(*p, "VmRSS").ok()),
            sut_peak_rss_kib: pids
                .first()
                .and_then(|p| procstat::status_kib(*p, "VmHWM").ok()),
            gen_cpu_us_per_msg: per_msg(gen1.saturating_sub(gen0)),
            pass: false,
            failure: None,
        };
        let completed = if w.answers {
            answered.unwrap_or(0) - non2xx
        } else {
            delivered
        };
        let completed = if w.deliveries {
            completed.min(delivered)
        } else {
            completed
        };
        st.completed_per_s = if st.send.seconds > 0.0 {
            completed as f64 / st.send.seconds
        } else {
            0.0
        };
        let mut why = Vec::new();
        if sent < count {
            why.push(format!("sent only {sent} of {count}"));
        }
        if st.send.send_errors > 0 {
            why.push(format!("{} send errors", st.send.send_errors));
        }
        if st.lost > 0 {
            why.push(format!("{} lost", st.lost));
        }
        if st.duplicates > 0 {
            why.push(format!("{} duplicated", st.duplicates));
        }
        if st.non2xx > 0 {
            why.push(format!(
                "{} non-2xx (last {})",
                st.non2xx, st.last_failure_code
            ));
        }
        if st.no_answer > 0 {
            why.push(format!(
                "{} unanswered after {} s",
                st.no_answer, self.args.drain
            ));
        }
        if st.xmpp_errors > 0 {
            why.push(format!("{} XMPP error stanzas", st.xmpp_errors));
        }
        // The generator must hold the schedule (RFC 7501 s3): sending may not take more
        // than 10% (and 50 ms) longer than planned.
        if st.send.seconds > duration * 1.1 + 0.05 {
            why.push(format!(
                "generator behind schedule ({:.2} s to send {duration} s)",
                st.send.seconds
            ));
        }
        st.pass = why.is_empty();
        st.failure = (!why.is_empty()).then(|| why.join(", "));
        st
    }

    pub(crate) fn search(
        &mut self,
        name: &str,
        description: String,
        w: &Workload<'_>,
        cfg: SearchConfig,
    ) -> SearchResult {
        log(format!("search {name}: {description}"));
        let mut s = Search::new(cfg);
        let mut steps = Vec::new();
        let duration = self.args.duration;
        while let Some(rate) = s.next_rate() {
            let st = self.run_step(w, rate, duration);
            if let (false, Some(restart)) = (st.pass, w.restart) {
                if let Err(e) = restart() {
                    log(format!(
                        "  {name}: restart after a failed trial failed: {e}"
                    ));
                }
            }
            log(format!(
                "  {name} {rate}/s: {} (delivered {}/{}, p50 {} us, p99 {} us, SUT {} us/msg, gen {:.2} us/msg)",
                if st.pass { "clean".to_owned() } else { format!("FAIL {}", st.failure.as_deref().unwrap_or("")) },
                st.delivered,
                st.send.sent,
                st.delivery.p50_us,
                st.delivery.p99_us,
                st.sut_cpu_us_per_msg.map_or("-".into(), |v| format!("{v:.1}")),
                st.gen_cpu_us_per_msg
            ));
            s.record(rate, st.pass);
            steps.push(st);
        }
        SearchResult {
            workload: name.to_owned(),
            description,
            config: cfg,
            duration_s: duration,
            steps,
            max_clean_rate: s.best,
            lowest_failing_rate: s.lowest_fail,
        }
    }
}

pub(crate) fn message_tpl(
    ruri: String,
    from: &'static str,
    to: String,
    transport: Transport,
    body_len: usize,
) -> impl FnOnce(SocketAddr) -> cpim_bench::template::Template + Send + 'static {
    move |local| {
        sip::message_template(&MessageSpec {
            request_uri: &ruri,
            from,
            to: &to,
            transport,
            local: &local.to_string(),
            body_len,
        })
    }
}
