//! `cpim-bench`: the load generator and benchmark driver. See `cpim-bench run --help` and
//! `scripts/bench`.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use cpim_bench::probe::Probe;
use cpim_bench::procstat;
use cpim_bench::report::{self, Report, SearchResult, Section, StepResult};
use cpim_bench::roles::{self, ComponentServer, Sender, UasOptions};
use cpim_bench::search::{Search, SearchConfig};
use cpim_bench::sip::{self, MessageSpec, Transport};
use cpim_bench::xmpp;

mod presence;

/// Load generator and benchmark driver for the CPIM gateway (RFC 7501/7502 method).
#[derive(Debug, Parser)]
#[command(name = "cpim-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the benchmark and write the report (what `scripts/bench` runs).
    Run(Box<RunArgs>),
}

/// Parameters of a run (all of them go into the report).
#[derive(Debug, Clone, clap::Args, serde::Serialize)]
pub struct RunArgs {
    /// The `cpim-gateway` binary (gateway workloads are skipped without it).
    #[arg(long)]
    gateway_bin: Option<PathBuf>,
    /// A command put before the gateway (e.g. `valgrind --tool=callgrind`), split on spaces.
    #[arg(long)]
    gateway_wrapper: Option<String>,
    /// Scratch folder: configs, pid files, logs, the gateway's store.
    #[arg(long)]
    work_dir: PathBuf,
    /// Report path without extension: PREFIX.md and PREFIX.json are written.
    #[arg(long)]
    out: PathBuf,
    /// Workloads to run (comma-separated): generator, kamailio, p1, p2, p3, p4.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "generator,kamailio,p1,p2,p3,p4"
    )]
    only: Vec<String>,
    /// Length of each trial, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds to wait after the last send for answers and deliveries.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Search precision (relative gap between highest clean and lowest failing rate).
    #[arg(long, default_value_t = 0.05)]
    precision: f64,
    /// Most trials per search.
    #[arg(long, default_value_t = 8)]
    max_steps: u32,
    /// Generator self-test: first rate.
    #[arg(long, default_value_t = 50_000)]
    gen_start: u64,
    /// Generator self-test: highest rate tried.
    #[arg(long, default_value_t = 400_000)]
    gen_max: u64,
    /// Gateway and Kamailio searches: first rate.
    #[arg(long, default_value_t = 10_000)]
    start_rate: u64,
    /// Gateway and Kamailio searches: highest rate tried.
    #[arg(long, default_value_t = 200_000)]
    max_rate: u64,
    /// Lowest rate worth trying.
    #[arg(long, default_value_t = 100)]
    min_rate: u64,
    /// Message body size, bytes.
    #[arg(long, default_value_t = 100)]
    body_len: usize,
    /// The Kamailio binary.
    #[arg(long, default_value = "kamailio")]
    kamailio_bin: String,
    /// The Kamailio relay config template (`@PORT@` is replaced).
    #[arg(long)]
    kamailio_cfg: Option<PathBuf>,
    /// P3: watchers per presentity (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    p3_watchers: Vec<u64>,
    /// P3: notifications per trial (presentities = this / watchers, each published once).
    #[arg(long, default_value_t = 10_000)]
    p3_notifications: u64,
    /// P3: offered notifications per second (PUBLISH rate = this / watchers).
    #[arg(long, default_value_t = 10_000)]
    p3_rate: u64,
    /// P4: subscription counts (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "100000,1000000")]
    p4_counts: Vec<u64>,
    /// P4: subscription requests per second.
    #[arg(long, default_value_t = 20_000)]
    p4_rate: u64,
    /// P4: seconds allowed to create one set of subscriptions.
    #[arg(long, default_value_t = 180.0)]
    p4_time_limit: f64,
    /// P2: XMPP senders (bNNNN@xmpp.test), each one conversation with u1: the gateway keeps
    /// the messages of one (sender, addressee) pair in order, so one pair measures one
    /// conversation's round trip, not the gateway.
    #[arg(long, default_value_t = 1000)]
    p2_pairs: u64,
    /// Only P1 over UDP at this rate for one trial (for profiling), no search.
    #[arg(long)]
    fixed_rate: Option<u64>,
    /// Markdown to include as the profile section.
    #[arg(long)]
    profile_summary: Option<PathBuf>,
    /// The command line to record in the report.
    #[arg(long)]
    command_line: Option<String>,
    /// Seconds to wait for the gateway to connect to the component server.
    #[arg(long, default_value_t = 30.0)]
    start_timeout: f64,
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(a) => match run(&a) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cpim-bench: {e}");
                1
            }
        },
    };
    std::process::exit(code);
}

fn log(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

fn lo0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> std::io::Result<u16> {
    for _ in 0..50 {
        let u = UdpSocket::bind(lo0())?;
        let port = u.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free port"))
}

/// A process under test, stopped by PID on drop (SIGTERM, SIGKILL after 10 s).
struct Sut {
    name: String,
    child: Child,
    pid: u32,
    pidfile: PathBuf,
}

impl Sut {
    fn spawn(name: &str, mut cmd: Command, work: &Path) -> std::io::Result<Sut> {
        let log = std::fs::File::create(work.join(format!("{name}.log")))?;
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        let pid = child.id();
        let pidfile = work.join(format!("{name}.pid"));
        std::fs::write(&pidfile, format!("{pid}\n"))?;
        Ok(Sut {
            name: name.to_owned(),
            child,
            pid,
            pidfile,
        })
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(&mut self) {
        if self.alive() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid.to_string())
                .status();
            let t = Instant::now();
            while self.alive() && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.alive() {
                log(format!(
                    "{} (pid {}) ignored SIGTERM for 10 s; killing",
                    self.name, self.pid
                ));
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pidfile);
    }

    fn log_tail(&self, work: &Path) -> String {
        let s =
            std::fs::read_to_string(work.join(format!("{}.log", self.name))).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Sut {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What runs one workload.
struct Workload<'a> {
    sender: &'a Sender,
    /// SIP answers are expected for every message.
    answers: bool,
    /// Deliveries at the far end are expected for every message.
    deliveries: bool,
    /// The processes under test.
    sut: Option<&'a dyn Fn() -> Vec<u32>>,
    /// Starts the system under test afresh; called after a failed trial when the system
    /// does not recover from overload by itself (Kamailio), so that every trial starts
    /// from the same state. `None`: it is never restarted (the gateway).
    restart: Option<&'a dyn Fn() -> Result<(), String>>,
}

struct Ctx {
    args: RunArgs,
    probe: Arc<Probe>,
    step: u8,
    clk_tck: u64,
}

impl Ctx {
    fn next_step(&mut self) -> u8 {
        self.step = self.step % 99 + 1;
        self.step
    }

    fn search_cfg(&self, start: u64, max: u64) -> SearchConfig {
        SearchConfig {
            start,
            min: self.args.min_rate,
            max,
            precision: self.args.precision,
            max_steps: self.args.max_steps,
        }
    }

    /// Waits until the processes under test are idle (at most 20 s).
    fn settle(&self, sut: Option<&dyn Fn() -> Vec<u32>>) {
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

    fn run_step(&mut self, w: &Workload<'_>, rate: u64, duration: f64) -> StepResult {
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

    fn search(
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

fn message_tpl(
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

const SECRET: &str = "bench-component-secret-0123456789";
/// The admin API token of the gateway under test (it always requires one).
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const COMPONENT: &str = "sip.xmpp.test";

fn gateway_config(work: &Path, sip_port: u16, admin_port: u16, component: SocketAddr) -> String {
    format!(
        r#"# Written by cpim-bench for one benchmark run.
adapters = ["sip", "xmpp"]

[[routes]]
domain = "xmpp.test"
adapter = "xmpp"

[[domain_aliases]]
alias = "{COMPONENT}"
domain = "sip.test"
adapter = "xmpp"

[limits]
rate_per_source = 1000000000.0
burst_per_source = 1000000000.0

[queue]
enabled = false

[presence]
notify_interval_ms = 0
# The generator's watchers are strangers to the presentities; P3 measures fan-out, not
# authorization, nor the caps (raised far above any trial).
authorization = "approve-all"
max_subscriptions = 1000000
max_watchers_per_presentity = 1000000

[store]
path = "{store}"

[admin]
listen = "127.0.0.1:{admin_port}"
token = "{ADMIN_TOKEN}"

[sip]
domains = ["sip.test"]
trusted_peers = ["127.0.0.1"]
# RFC 3856 s6.4 rate limit per SIP dialog off, as presence.notify_interval_ms: P3 counts
# every notification; with the default 5 s a NOTIFY right after the subscription's
# first one was held past the trial
notify_min_interval = 0

[sip.limits]
max_subscriptions = 1000000
max_subscriptions_per_presentity = 1000000
max_subscriptions_per_source = 1000000

[sip.endpoint]
udp = ["127.0.0.1:{sip_port}"]
tcp = ["127.0.0.1:{sip_port}"]
dns = false

[xmpp]
grace_ms = 0
reconnect_initial_ms = 100
reconnect_max_ms = 1000
queue_capacity = 100000

[xmpp.mode]
kind = "component"
server = "{component}"
domain = "{COMPONENT}"
secret = "{SECRET}"
"#,
        store = work.join("store").display(),
    )
}

/// The running gateway and what the workloads need to reach it.
struct Gw {
    sut: Sut,
    sip: SocketAddr,
    admin: SocketAddr,
}

fn start_gateway(
    a: &RunArgs,
    probe: &Probe,
    work: &Path,
    config: &Path,
    admin: SocketAddr,
    sip: SocketAddr,
) -> Result<Gw, String> {
    let bin = a.gateway_bin.as_ref().ok_or("no --gateway-bin")?;
    let mut cmd = match &a.gateway_wrapper {
        Some(w) => {
            let mut parts = w.split_ascii_whitespace();
            let mut c = Command::new(parts.next().ok_or("empty --gateway-wrapper")?);
            c.args(parts).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("run").arg("--config").arg(config);
    cmd.env(
        "RUST_LOG",
        std::env::var("CPIM_BENCH_GATEWAY_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let sessions = probe.component_sessions.load(Ordering::Relaxed);
    let mut sut =
        Sut::spawn("gateway", cmd, work).map_err(|e| format!("cannot start the gateway: {e}"))?;
    let t = Instant::now();
    while probe.component_sessions.load(Ordering::Relaxed) == sessions {
        if !sut.alive() {
            return Err(format!(
                "the gateway exited at start:\n{}",
                sut.log_tail(work)
            ));
        }
        if t.elapsed() > Duration::from_secs_f64(a.start_timeout) {
            return Err(format!(
                "the gateway did not connect to the component server within {} s:\n{}",
                a.start_timeout,
                sut.log_tail(work)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // the SIP side answers once it is up: wait for the admin API too
    while http_get(admin, "/health").is_err()
        && t.elapsed() < Duration::from_secs_f64(a.start_timeout)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    log(format!(
        "gateway pid {} up in {:.2} s (component connected)",
        sut.pid,
        t.elapsed().as_secs_f64()
    ));
    Ok(Gw { sut, sip, admin })
}

/// A plain HTTP/1.0 GET on loopback; the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    if !buf.starts_with("HTTP/1.") || !buf[9..].starts_with('2') {
        return Err(std::io::Error::other(format!(
            "GET {path}: {}",
            buf.lines().next().unwrap_or("")
        )));
    }
    Ok(buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default())
}

/// A gauge or counter from the Prometheus text of /metrics.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
    });
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| procstat::parse_status_kib(&s, "MemTotal"));
    serde_json::json!({
        "cpus": cpus,
        "cpu_model": model,
        "load_average_at_start": load.trim(),
        "kernel": kernel.trim(),
        "mem_total_kib": mem,
        "rmem_max": std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap_or_default().trim(),
    })
}

fn wants(a: &RunArgs, w: &str) -> bool {
    a.only.iter().any(|x| x == w)
}

fn skipped<T>(reason: impl Into<String>) -> Section<T> {
    Section::Skipped {
        reason: reason.into(),
    }
}

fn run(a: &RunArgs) -> Result<(), String> {
    let t_start = Instant::now();
    let started_utc = utc_now();
    std::fs::create_dir_all(&a.work_dir).map_err(|e| format!("{}: {e}", a.work_dir.display()))?;
    let work = a.work_dir.canonicalize().map_err(|e| e.to_string())?;
    let top = a
        .gen_max
        .max(a.max_rate)
        .max(a.fixed_rate.unwrap_or(0))
        .max(a.p3_notifications)
        .max(a.p4_counts.iter().copied().max().unwrap_or(0));
    let capacity = ((top as f64 * a.duration.max(1.0)) as u64).clamp(100_000, 16_000_000);
    let probe = Arc::new(Probe::new(capacity));
    let mut ctx = Ctx {
        args: a.clone(),
        probe: probe.clone(),
        step: 0,
        clk_tck: procstat::clk_tck(),
    };
    let mut notes: Vec<String> = vec![
        "Open-loop offered load (RFC 7501 s3): the sender keeps its schedule whatever the answers; UDP requests are not retransmitted, so a lost datagram is a failure.".into(),
        "A trial passes only with zero failures: every request answered 2xx (SIP workloads), every message delivered exactly once (sequence number in the body), no XMPP error stanza, and the generator on schedule.".into(),
        "Delays are measured in one process with one monotonic clock: send time at one end, receive time at the other (delivery), and send time to final response (answer).".into(),
        "SUT CPU is utime+stime from /proc/PID/stat (all processes of the tree for Kamailio) over the trial and its drain, divided by messages sent; RSS is VmRSS and VmHWM of the main process after the trial.".into(),
        format!("Machine load average at start: {} (other jobs share the 2 CPUs: figures are lower bounds of what an idle machine does).", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()),
    ];
    let uas0 = roles::udp_uas(lo0(), UasOptions::default(), probe.clone())
        .map_err(|e| format!("UAS: {e}"))?;

    // Profile mode: P1 over UDP at one rate.
    if let Some(rate) = a.fixed_rate {
        let component = roles::component_server(
            lo0(),
            COMPONENT,
            SECRET,
            xmpp::message_template("b{pair}@xmpp.test", &format!("u1@{COMPONENT}"), a.body_len)
                .with_pairs(a.p2_pairs),
            probe.clone(),
        )
        .map_err(|e| e.to_string())?;
        let (sip_port, admin_port) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let cfg = work.join("gateway.toml");
        std::fs::write(
            &cfg,
            gateway_config(&work, sip_port, admin_port, component.local),
        )
        .map_err(|e| e.to_string())?;
        let sip_addr = SocketAddr::from(([127, 0, 0, 1], sip_port));
        let gw = start_gateway(
            a,
            &probe,
            &work,
            &cfg,
            SocketAddr::from(([127, 0, 0, 1], admin_port)),
            sip_addr,
        )?;
        let (uac, _) = roles::udp_uac(
            lo0(),
            sip_addr,
            message_tpl(
                "sip:bob@xmpp.test".into(),
                "sip:u1@sip.test",
                "sip:bob@xmpp.test".into(),
                Transport::Udp,
                a.body_len,
            ),
            probe.clone(),
        )
        .map_err(|e| e.to_string())?;
        let pid = gw.sut.pid;
        let f = move || vec![pid];
        let w = Workload {
            sender: &uac,
            answers: true,
            deliveries: true,
            sut: Some(&f),
            restart: None,
        };
        let st = ctx.run_step(&w, rate, a.duration);
        log(format!(
            "fixed rate {rate}/s: {}",
            serde_json::to_string(&st).unwrap_or_default()
        ));
        drop(gw);
        return Ok(());
    }

    // 1. The generator alone.
    let mut generator = Vec::new();
    if wants(a, "generator") {
        let (uac0, _) = roles::udp_uac(
            lo0(),
            uas0,
            message_tpl(
                format!("sip:uas@{uas0}"),
                "sip:uac@cpim.bench",
                format!("sip:uas@{uas0}"),
                Transport::Udp,
                a.body_len,
            ),
            probe.clone(),
        )
        .map_err(|e| e.to_string())?;
        let w = Workload {
            sender: &uac0,
            answers: true,
            deliveries: true,
            sut: None,
            restart: None,
        };
        let cfg = ctx.search_cfg(a.gen_start, a.gen_max);
        generator.push(Section::Ran(ctx.search(
            "generator-sip-udp",
            format!("The generator's SIP UAC (UDP, MESSAGE with a {} B body) straight to its own UAS, which answers 200. No system under test.", a.body_len),
            &w,
            cfg,
        )));
        let srv = roles::component_server(
            lo0(),
            "gen.test",
            SECRET,
            xmpp::message_template("a@x.test", "b@gen.test", a.body_len),
            probe.clone(),
        )
        .map_err(|e| e.to_string())?;
        let cli = roles::component_client(
            srv.local,
            "gen.test",
            SECRET,
            xmpp::message_template("u1@gen.test", "bob@xmpp.test", a.body_len),
            probe.clone(),
        )
        .map_err(|e| e.to_string())?;
        let w = Workload {
            sender: &cli,
            answers: false,
            deliveries: true,
            sut: None,
            restart: None,
        };
        generator.push(Section::Ran(ctx.search(
            "generator-xmpp",
            format!("The generator's XEP-0114 component client to its own component server (one TCP stream, <message> with a {} B body). No system under test.", a.body_len),
            &w,
            cfg,
        )));
    } else {
        generator.push(skipped("not selected (--only)"));
    }

    // 2. Kamailio as a stateful relay.
    let kamailio = if !wants(a, "kamailio") {
        skipped("not selected (--only)")
    } else if let Some(tpl) = &a.kamailio_cfg {
        match run_kamailio(&mut ctx, a, &work, tpl, uas0) {
            Ok(s) => Section::Ran(s),
            Err(e) => skipped(format!("Kamailio could not be run: {e}")),
        }
    } else {
        skipped("no --kamailio-cfg given")
    };

    // 3. The gateway.
    let mut p1_udp = skipped("not selected (--only)");
    let mut p1_tcp = skipped("not selected (--only)");
    let mut p1_half = skipped("not selected (--only)");
    let mut p2 = skipped("not selected (--only)");
    let mut p3 = skipped("not selected (--only)");
    let mut p4 = skipped("not selected (--only)");
    let gw_wanted = ["p1", "p2", "p3", "p4"].iter().any(|w| wants(a, w));
    if gw_wanted && a.gateway_bin.is_none() {
        let r = "no --gateway-bin given";
        for s in [&mut p1_udp, &mut p1_tcp, &mut p2] {
            *s = skipped(r);
        }
        p1_half = skipped(r);
        p3 = skipped(r);
        p4 = skipped(r);
    } else if gw_wanted {
        let component = roles::component_server(
            lo0(),
            COMPONENT,
            SECRET,
            xmpp::message_template("b{pair}@xmpp.test", &format!("u1@{COMPONENT}"), a.body_len)
                .with_pairs(a.p2_pairs),
            probe.clone(),
        )
        .map_err(|e| e.to_string())?;
        let (sip_port, admin_port) = (
            free_port().map_err(|e| e.to_string())?,
            free_port().map_err(|e| e.to_string())?,
        );
        let cfg_path = work.join("gateway.toml");
        std::fs::write(
            &cfg_path,
            gateway_config(&work, sip_port, admin_port, component.local),
        )
        .map_err(|e| e.to_string())?;
        notes.push(format!(
            "Gateway config (written to the work folder): SIP domain sip.test on 127.0.0.1 UDP+TCP, 127.0.0.1 a trusted peer (no digest), XEP-0114 component {COMPONENT} connecting to the generator's component server, route xmpp.test -> xmpp, rate limit off (1e9/s), store-and-forward queue off (a failure must show, not be retried), xmpp.grace_ms = 0, presence.notify_interval_ms = 0 and sip.notify_min_interval = 0 (no RFC 3856 s6.4 rate limiting, so that P3 counts every notification), everything else default (limits.dedupe_ttl_secs = 300: every message id is remembered for 5 to 10 minutes, in memory and as a journal row, so RSS grows with the rate times that window; SIP server transactions are kept for Timer J, 32 s over UDP)."
        ));
        let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
        let sip_addr = SocketAddr::from(([127, 0, 0, 1], sip_port));
        match start_gateway(a, &probe, &work, &cfg_path, admin, sip_addr) {
            Err(e) => {
                let r = format!("the gateway did not start: {e}");
                for s in [&mut p1_udp, &mut p1_tcp, &mut p2] {
                    *s = skipped(r.clone());
                }
                p1_half = skipped(r.clone());
                p3 = skipped(r.clone());
                p4 = skipped(r);
            }
            Ok(mut gw) => {
                let pid = gw.sut.pid;
                let f = move || vec![pid];
                if wants(a, "p1") {
                    let (uac, _) = roles::udp_uac(
                        lo0(),
                        gw.sip,
                        message_tpl(
                            "sip:bob@xmpp.test".into(),
                            "sip:u1@sip.test",
                            "sip:bob@xmpp.test".into(),
                            Transport::Udp,
                            a.body_len,
                        ),
                        probe.clone(),
                    )
                    .map_err(|e| e.to_string())?;
                    let w = Workload {
                        sender: &uac,
                        answers: true,
                        deliveries: true,
                        sut: Some(&f),
                        restart: None,
                    };
                    let cfg = ctx.search_cfg(a.start_rate, a.max_rate);
                    let s = ctx.search(
                        "p1-udp",
                        format!("P1: SIP MESSAGE (UDP, {} B text/plain body) from sip:u1@sip.test to sip:bob@xmpp.test, through cpim-gateway (one process) to the generator's XEP-0114 component server, which answers the gateway's barrier pings. Delay = SIP send -> <message> received.", a.body_len),
                        &w,
                        cfg,
                    );
                    let clean = s.max_clean_rate;
                    p1_udp = Section::Ran(s);
                    p1_half = if clean >= 2 {
                        let st = ctx.run_step(&w, clean / 2, a.duration);
                        log(format!(
                            "p1 half rate {}/s: p50 {} us p99 {} us pass {}",
                            clean / 2,
                            st.delivery.p50_us,
                            st.delivery.p99_us,
                            st.pass
                        ));
                        Section::Ran(st)
                    } else {
                        skipped("P1 over UDP had no clean rate")
                    };
                    match roles::tcp_uac(
                        gw.sip,
                        message_tpl(
                            "sip:bob@xmpp.test".into(),
                            "sip:u1@sip.test",
                            "sip:bob@xmpp.test;transport=tcp".into(),
                            Transport::Tcp,
                            a.body_len,
                        ),
                        probe.clone(),
                    ) {
                        Ok((tcp, _)) => {
                            let w = Workload {
                                sender: &tcp,
                                answers: true,
                                deliveries: true,
                                sut: Some(&f),
                                restart: None,
                            };
                            p1_tcp = Section::Ran(ctx.search("p1-tcp", format!("P1 over one TCP connection (each due batch is one write), otherwise as P1 over UDP ({} B body).", a.body_len), &w, cfg));
                        }
                        Err(e) => p1_tcp = skipped(format!("cannot connect over TCP: {e}")),
                    }
                }
                if wants(a, "p2") {
                    p2 = match run_p2(&mut ctx, a, &gw, &component, &f) {
                        Ok(s) => Section::Ran(s),
                        Err(e) => skipped(e),
                    };
                }
                if wants(a, "p3") {
                    p3 = presence::run_p3(&mut ctx, a, &mut gw, &work, &cfg_path, &component);
                }
                if wants(a, "p4") {
                    p4 = presence::run_p4(&mut ctx, a, &mut gw, &work, &cfg_path, &component);
                }
                if !gw.sut.alive() {
                    notes.push(format!(
                        "The gateway process was no longer running at the end:\n{}",
                        gw.sut.log_tail(&work)
                    ));
                }
                drop(gw);
            }
        }
    }

    let profile = match &a.profile_summary {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(s) => Section::Ran(s),
            Err(e) => skipped(format!("{}: {e}", p.display())),
        },
        None => skipped("no profile was taken (scripts/bench --profile takes one)"),
    };
    let mut r = Report {
        started_utc: String::new(),
        total_seconds: 0.0,
        command: a
            .command_line
            .clone()
            .unwrap_or_else(|| std::env::args().collect::<Vec<_>>().join(" ")),
        machine: machine(),
        parameters: serde_json::to_value(a).unwrap_or_default(),
        generator,
        kamailio,
        p1_udp,
        p1_tcp,
        p1_half_rate: p1_half,
        p2,
        p3,
        p4,
        profile,
        targets: Vec::new(),
        notes,
    };
    r.started_utc = started_utc;
    r.total_seconds = t_start.elapsed().as_secs_f64();
    r.targets = report::targets(&r);
    let json = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
    let md = report::markdown(&r);
    let (jp, mp) = (a.out.with_extension("json"), a.out.with_extension("md"));
    if let Some(d) = jp.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    std::fs::write(&jp, json).map_err(|e| format!("{}: {e}", jp.display()))?;
    std::fs::write(&mp, md).map_err(|e| format!("{}: {e}", mp.display()))?;
    log(format!("report: {} and {}", mp.display(), jp.display()));
    Ok(())
}

fn run_kamailio(
    ctx: &mut Ctx,
    a: &RunArgs,
    work: &Path,
    tpl: &Path,
    uas: SocketAddr,
) -> Result<SearchResult, String> {
    let port = free_port().map_err(|e| e.to_string())?;
    let cfg = std::fs::read_to_string(tpl)
        .map_err(|e| format!("{}: {e}", tpl.display()))?
        .replace("@PORT@", &port.to_string());
    let kdir = work.join("kamailio");
    std::fs::create_dir_all(&kdir).map_err(|e| e.to_string())?;
    let cfg_path = kdir.join("relay.cfg");
    std::fs::write(&cfg_path, cfg).map_err(|e| e.to_string())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let sut = std::cell::RefCell::new(start_kamailio(a, work, &kdir, &cfg_path, port)?);
    log(format!(
        "kamailio pid {} up on udp {port}",
        sut.borrow().pid
    ));
    let (uac, _) = roles::udp_uac(
        lo0(),
        addr,
        message_tpl(
            format!("sip:uas@{uas}"),
            "sip:uac@cpim.bench",
            format!("sip:uas@{uas}"),
            Transport::Udp,
            a.body_len,
        ),
        ctx.probe.clone(),
    )
    .map_err(|e| e.to_string())?;
    let f = || procstat::process_tree(sut.borrow().pid);
    // Kamailio did not recover from an overloaded trial within the settling time (trials
    // far below the rate it had passed then failed), so it starts afresh after a failure.
    let restart = || -> Result<(), String> {
        sut.borrow_mut().stop();
        let fresh = start_kamailio(a, work, &kdir, &cfg_path, port)?;
        log(format!(
            "kamailio restarted after a failed trial, pid {}",
            fresh.pid
        ));
        *sut.borrow_mut() = fresh;
        Ok(())
    };
    let w = Workload {
        sender: &uac,
        answers: true,
        deliveries: true,
        sut: Some(&f),
        restart: Some(&restart),
    };
    let cfg = ctx.search_cfg(a.start_rate, a.max_rate);
    let s = ctx.search(
        "kamailio",
        format!(
            "{} as a stateful relay (tm t_relay) of SIP MESSAGE over UDP, config tests/bench/kamailio/relay.cfg: 1 UDP worker, -x fm, -m 1024, -b 4194304, max_branches=1. The generator's UAC sends to it, it relays to the generator's UAS and relays the 200 back (4 datagrams through it per message, {} B body).",
            kamailio_version(&a.kamailio_bin),
            a.body_len
        ),
        &w,
        cfg,
    );
    sut.borrow_mut().stop();
    Ok(s)
}

/// Starts Kamailio with the relay config on `port` and waits until it answers OPTIONS.
fn start_kamailio(
    a: &RunArgs,
    work: &Path,
    kdir: &Path,
    cfg_path: &Path,
    port: u16,
) -> Result<Sut, String> {
    let mut cmd = Command::new(&a.kamailio_bin);
    cmd.arg("-f")
        .arg(cfg_path)
        .args([
            "-DD", "-E", "-x", "fm", "-m", "1024", "-M", "32", "-b", "4194304", "-Y",
        ])
        .arg(kdir)
        .arg("-w")
        .arg(kdir);
    let mut sut = Sut::spawn("kamailio", cmd, work)
        .map_err(|e| format!("cannot start {}: {e}", a.kamailio_bin))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // ready when it answers an OPTIONS (405 from the config)
    let probe_sock = UdpSocket::bind(lo0()).map_err(|e| e.to_string())?;
    probe_sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let local = probe_sock.local_addr().map_err(|e| e.to_string())?;
    let opts = format!("OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK.o1\r\nMax-Forwards: 70\r\nFrom: <sip:b@cpim.bench>;tag=1\r\nTo: <sip:127.0.0.1:{port}>\r\nCall-ID: o1@cpim.bench\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        if !sut.alive() {
            return Err(format!("kamailio exited at start:\n{}", sut.log_tail(work)));
        }
        if t.elapsed() > Duration::from_secs(15) {
            return Err(format!(
                "kamailio did not answer on port {port} in 15 s:\n{}",
                sut.log_tail(work)
            ));
        }
        let _ = probe_sock.send_to(opts.as_bytes(), addr);
        if let Ok((n, _)) = probe_sock.recv_from(&mut buf) {
            if sip::status_code(&buf[..n]).is_some() {
                break;
            }
        }
    }
    Ok(sut)
}

fn kamailio_version(bin: &str) -> String {
    Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.trim_start_matches("version:").trim().to_owned())
        })
        .unwrap_or_default()
}

fn run_p2(
    ctx: &mut Ctx,
    a: &RunArgs,
    gw: &Gw,
    component: &ComponentServer,
    f: &dyn Fn() -> Vec<u32>,
) -> Result<SearchResult, String> {
    let opts = UasOptions {
        register: vec![("u1".into(), "sip.test".into())],
        registrar: Some(gw.sip),
        subscribe: Vec::new(),
        best_effort: false,
    };
    let uas = roles::udp_uas(lo0(), opts, ctx.probe.clone()).map_err(|e| {
        format!("P2 needs u1@sip.test registered at the gateway, and REGISTER failed: {e}")
    })?;
    let w = Workload {
        sender: &component.sender,
        answers: false,
        deliveries: true,
        sut: Some(f),
        restart: None,
    };
    let cfg = ctx.search_cfg(a.start_rate, a.max_rate);
    Ok(ctx.search(
        "p2",
        format!(
            "P2: <message> from {} XMPP senders (b0000@xmpp.test, b0001@xmpp.test, ...; message n from sender n mod {}) to u1@{COMPONENT} written by the generator's component server into the gateway's component stream; the gateway sends a SIP MESSAGE over UDP to u1@sip.test's registered contact (the generator's UAS at {uas}, which answers 200). Delay = stanza written -> MESSAGE received. A failure shows as an XMPP error stanza back or as a missing MESSAGE ({} B body).",
            a.p2_pairs, a.p2_pairs, a.body_len
        ),
        &w,
        cfg,
    ))
}
