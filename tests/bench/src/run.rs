//! One benchmark run: the machine description, the workloads in order and the report
//! written at the end.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use cpim_bench::probe::Probe;
use cpim_bench::procstat;
use cpim_bench::report::{self, Report, SearchResult, Section};
use cpim_bench::roles::{self, ComponentServer, UasOptions};
use cpim_bench::sip::Transport;
use cpim_bench::xmpp;

use crate::ctx::{message_tpl, Ctx, Workload};
use crate::gateway::{gateway_config, start_gateway, Gw, COMPONENT, SECRET};
use crate::kamailio::run_kamailio;
use crate::presence;
use crate::{free_port, lo0, log, RunArgs};

pub(crate) fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub(crate) fn machine() -> serde_json::Value {
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

pub(crate) fn wants(a: &RunArgs, w: &str) -> bool {
    a.only.iter().any(|x| x == w)
}

pub(crate) fn skipped<T>(reason: impl Into<String>) -> Section<T> {
    Section::Skipped {
        reason: reason.into(),
    }
}

pub(crate) fn run(a: &RunArgs) -> Result<(), String> {
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
        let (_component, cfg, admin, sip_addr) = gateway_setup(a, &probe, &work)?;
        let gw = start_gateway(a, &probe, &work, &cfg, admin, sip_addr)?;
        let (uac, _) = udp_uac_to_bob(a, &probe, sip_addr).map_err(|e| e.to_string())?;
        let pid = gw.sut.pid;
        let f = move || vec![pid];
        let w = delivery_workload(&uac, true, Some(&f));
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
        let w = delivery_workload(&uac0, true, None);
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
        let w = delivery_workload(&cli, false, None);
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
        let (component, cfg_path, admin, sip_addr) = gateway_setup(a, &probe, &work)?;
        notes.push(format!(
            "Gateway config (written to the work folder): SIP domain sip.test on 127.0.0.1 UDP+TCP, 127.0.0.1 a trusted peer (no digest), XEP-0114 component {COMPONENT} connecting to the generator's component server, route xmpp.test -> xmpp, rate limit off (1e9/s), store-and-forward queue off (a failure must show, not be retried), xmpp.grace_ms = 0, presence.notify_interval_ms = 0 and sip.notify_min_interval = 0 (no RFC 3856 s6.4 rate limiting, so that P3 counts every notification), the SIP server-transaction and in-progress request caps raised (4,000,000 and 1,000,000), everything else default (limits.dedupe_ttl_secs = 300: every message id is remembered for 5 to 10 minutes, in memory and as a journal row, so RSS grows with the rate times that window; SIP server transactions are kept for Timer J, 32 s over UDP)."
        ));
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
                    let (uac, _) = udp_uac_to_bob(a, &probe, gw.sip).map_err(|e| e.to_string())?;
                    let w = delivery_workload(&uac, true, Some(&f));
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
                            let w = delivery_workload(&tcp, true, Some(&f));
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

pub(crate) fn run_p2(
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
    let w = delivery_workload(&component.sender, false, Some(f));
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

/// The XEP-0114 component server the gateway under test connects to, and the gateway's
/// configuration written to `work` for it: (component, config path, admin address, SIP
/// address).
fn gateway_setup(
    a: &RunArgs,
    probe: &Arc<Probe>,
    work: &Path,
) -> Result<(ComponentServer, PathBuf, SocketAddr, SocketAddr), String> {
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
        gateway_config(work, sip_port, admin_port, component.local),
    )
    .map_err(|e| e.to_string())?;
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let sip = SocketAddr::from(([127, 0, 0, 1], sip_port));
    Ok((component, cfg, admin, sip))
}

/// The P1 sender: SIP MESSAGEs over UDP from u1@sip.test to bob@xmpp.test at `gateway`.
fn udp_uac_to_bob(
    a: &RunArgs,
    probe: &Arc<Probe>,
    gateway: SocketAddr,
) -> std::io::Result<(roles::Sender, SocketAddr)> {
    roles::udp_uac(
        lo0(),
        gateway,
        message_tpl(
            "sip:bob@xmpp.test".into(),
            "sip:u1@sip.test",
            "sip:bob@xmpp.test".into(),
            Transport::Udp,
            a.body_len,
        ),
        probe.clone(),
    )
}

/// A workload whose every message must be delivered at the far end (and answered, if
/// `answers`), on a system under test that is never restarted.
fn delivery_workload<'a>(
    sender: &'a roles::Sender,
    answers: bool,
    sut: Option<&'a dyn Fn() -> Vec<u32>>,
) -> Workload<'a> {
    Workload {
        sender,
        answers,
        deliveries: true,
        sut,
        restart: None,
    }
}
