//! The Kamailio baseline: the same SIP MESSAGE workload relayed by Kamailio (`tm`
//! `t_relay`), restarted after a failed trial.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cpim_bench::procstat;
use cpim_bench::report::SearchResult;
use cpim_bench::roles;
use cpim_bench::sip::{self, Transport};

use crate::ctx::{message_tpl, Ctx, Workload};
use crate::sut::Sut;
use crate::{free_port, lo0, log, RunArgs};

pub(crate) fn run_kamailio(
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
pub(crate) fn start_kamailio(
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

pub(crate) fn kamailio_version(bin: &str) -> String {
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
