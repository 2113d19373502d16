//! The SIPp runner shared by every test that drives a SIP endpoint with SIPp.
//!
//! - [`program`]: where SIPp is (`CPIM_PEER_SIPP` when set, else `sipp` on `PATH`);
//!   [`program_or_skip`] applies the real-peer rule of [`crate::peer_env::need`]: without
//!   SIPp a test skips with a message, except under `CI=true`, where it fails.
//! - [`Sipp`]: one command line built from a scenario and a target. It always passes
//!   `-i IP -p PORT -t u1|t1 -nostdin -timeout LIMIT -timeout_error`, so SIPp never takes
//!   port 5060 and never outlives its limit; the process is killed a few seconds after the
//!   limit if it is still there. With [`Sipp::trace`], `-trace_logs`/`-trace_err` write the
//!   scenario's `<log>` actions and SIPp's errors to files in the given folder, returned in
//!   [`SippOutput`].
//! - [`SippCommand::run`] runs to the end (blocking; [`Sipp::run_async`] from async tests),
//!   [`SippCommand::spawn`] starts in the background for tests that play the other side.
//!   SIPp's exit status 0 means every call of the scenario succeeded.

use std::ffi::OsString;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Where SIPp is: `CPIM_PEER_SIPP` when set, else `sipp` when it runs from `PATH`.
pub fn program() -> Option<PathBuf> {
    crate::peer_env::program("CPIM_PEER_SIPP", "sipp")
}

/// [`program`], through the real-peer rule ([`crate::peer_env::need`]): recorded when
/// found; when not, `None` after a skip message, or a failure under `CI=true`.
pub fn program_or_skip() -> Option<PathBuf> {
    crate::peer_env::need(
        &[crate::peer_env::Peer::Sipp],
        program(),
        "SIPp is not found (CPIM_PEER_SIPP unset, no sipp on PATH)",
    )
}

/// SIPp's transport mode (`-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SippTransport {
    /// One UDP socket (`u1`).
    #[default]
    Udp,
    /// One TCP connection (`t1`).
    Tcp,
}

impl SippTransport {
    /// The `-t` value.
    pub fn flag(self) -> &'static str {
        match self {
            SippTransport::Udp => "u1",
            SippTransport::Tcp => "t1",
        }
    }

    /// Lower-case name, for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            SippTransport::Udp => "udp",
            SippTransport::Tcp => "tcp",
        }
    }
}

/// A loopback port free for both UDP and TCP (SIPp's local port).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let port = udp.local_addr().expect("local address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// One SIPp command line: `Sipp::new(program, scenario).target(addr).service("bob").run()`.
#[derive(Debug, Clone)]
pub struct Sipp {
    program: PathBuf,
    scenario: PathBuf,
    target: Option<SocketAddr>,
    transport: SippTransport,
    local_ip: String,
    local_port: Option<u16>,
    service: Option<String>,
    calls: Option<u32>,
    keys: Vec<(String, String)>,
    extra: Vec<OsString>,
    timeout: Duration,
    dir: Option<PathBuf>,
    trace: Option<PathBuf>,
}

impl Sipp {
    /// SIPp at `program` ([`program`]) playing `scenario` (a path to the XML file).
    pub fn new(program: impl Into<PathBuf>, scenario: impl Into<PathBuf>) -> Sipp {
        Sipp {
            program: program.into(),
            scenario: scenario.into(),
            target: None,
            transport: SippTransport::Udp,
            local_ip: "127.0.0.1".into(),
            local_port: None,
            service: None,
            calls: None,
            keys: Vec::new(),
            extra: Vec::new(),
            timeout: Duration::from_secs(30),
            dir: None,
            trace: None,
        }
    }

    /// The remote address (none for a UAS that only listens).
    pub fn target(mut self, target: SocketAddr) -> Sipp {
        self.target = Some(target);
        self
    }

    /// Transport (default UDP).
    pub fn transport(mut self, transport: SippTransport) -> Sipp {
        self.transport = transport;
        self
    }

    /// Local address (`-i`, default 127.0.0.1).
    pub fn local_ip(mut self, ip: &str) -> Sipp {
        ip.clone_into(&mut self.local_ip);
        self
    }

    /// Local port (`-p`, default a free one, see [`free_port`]).
    pub fn local_port(mut self, port: u16) -> Sipp {
        self.local_port = Some(port);
        self
    }

    /// The Request-URI user (`-s`, `[service]` in scenarios).
    pub fn service(mut self, user: &str) -> Sipp {
        self.service = Some(user.to_owned());
        self
    }

    /// Number of calls (`-m`; SIPp's own default when not given).
    pub fn calls(mut self, calls: u32) -> Sipp {
        self.calls = Some(calls);
        self
    }

    /// A scenario keyword (`-key NAME VALUE`, `[NAME]` in scenarios).
    pub fn key(mut self, name: &str, value: &str) -> Sipp {
        self.keys.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Further SIPp arguments (e.g. `["-au", "alice", "-ap", "pw"]`).
    pub fn args<I, S>(mut self, args: I) -> Sipp
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Limit for the whole run (SIPp's `-timeout`; default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Sipp {
        self.timeout = timeout;
        self
    }

    /// The folder SIPp runs in (default the system's temporary folder).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Sipp {
        self.dir = Some(dir.into());
        self
    }

    /// Write the scenario's log actions and SIPp's errors to files in `dir` (which is also
    /// where SIPp runs); [`SippOutput::logs`] and [`SippOutput::errors`] hold them.
    pub fn trace(mut self, dir: impl Into<PathBuf>) -> Sipp {
        let dir = dir.into();
        self.dir = Some(dir.clone());
        self.trace = Some(dir);
        self
    }

    /// The command line, ready to run or spawn.
    pub fn command(&self) -> SippCommand {
        let port = self.local_port.unwrap_or_else(free_port);
        let name = self
            .scenario
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tag = format!("{name}.{}.{port}", self.transport.name());
        let dir = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        let mut cmd = Command::new(&self.program);
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .arg("-sf")
            .arg(&self.scenario)
            .args(["-i", &self.local_ip, "-p", &port.to_string()])
            .args(["-t", self.transport.flag()])
            .args(["-nostdin", "-timeout"])
            .arg(format!("{}s", self.timeout.as_secs().max(1)))
            .arg("-timeout_error");
        if let Some(calls) = self.calls {
            cmd.args(["-m", &calls.to_string()]);
        }
        if let Some(service) = &self.service {
            cmd.args(["-s", service]);
        }
        for (k, v) in &self.keys {
            cmd.arg("-key").arg(k).arg(v);
        }
        let files = self.trace.as_ref().map(|d| {
            let log = d.join(format!("{tag}.log"));
            let err = d.join(format!("{tag}.err"));
            let _ = std::fs::remove_file(&log);
            let _ = std::fs::remove_file(&err);
            cmd.arg("-trace_logs").arg("-log_file").arg(&log);
            cmd.arg("-trace_err").arg("-error_file").arg(&err);
            (log, err)
        });
        cmd.args(&self.extra);
        if let Some(target) = self.target {
            cmd.arg(target.to_string());
        }
        SippCommand {
            cmd,
            files,
            local_port: port,
            what: format!("sipp {tag} -> {:?}", self.target),
            limit: self.timeout + Duration::from_secs(5),
        }
    }

    /// Runs to the end (blocking).
    pub fn run(&self) -> SippOutput {
        self.command().run()
    }

    /// Runs to the end on tokio's blocking pool.
    pub async fn run_async(&self) -> SippOutput {
        let cmd = self.command();
        tokio::task::spawn_blocking(move || cmd.run())
            .await
            .expect("the SIPp run's task")
    }
}

/// A SIPp command line built by [`Sipp::command`].
#[derive(Debug)]
pub struct SippCommand {
    cmd: Command,
    files: Option<(PathBuf, PathBuf)>,
    local_port: u16,
    what: String,
    limit: Duration,
}

impl SippCommand {
    /// SIPp's local SIP port (`-p`).
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// Runs to the end, bounded by the run's timeout plus a margin (then killed).
    pub fn run(self) -> SippOutput {
        let limit = self.limit;
        let (child, cmd) = self.spawn();
        let out = wait_output(child, limit);
        cmd.result(out)
    }

    /// How long [`SippCommand::run`] waits: SIPp's `-timeout` plus a margin.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Starts in the background (stdout and stderr piped); pass the child's output to
    /// [`SippCommand::result`] once it has ended.
    pub fn spawn(mut self) -> (Child, SippCommand) {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.what));
        (child, self)
    }

    /// The result of a spawned run from its output.
    pub fn result(&self, out: Output) -> SippOutput {
        self.output(
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn output(&self, status: ExitStatus, stdout: String, stderr: String) -> SippOutput {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let (logs, errors) = match &self.files {
            Some((log, err)) => (read(log), read(err)),
            None => (String::new(), String::new()),
        };
        SippOutput {
            what: self.what.clone(),
            status,
            stdout,
            stderr,
            logs,
            errors,
        }
    }
}

/// Waits for a child whose stdout and stderr are piped, at most `limit` (then kills it),
/// reading both pipes meanwhile so that a chatty process never blocks on a full pipe.
pub fn wait_output(mut child: Child, limit: Duration) -> Output {
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let out = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                break child.wait().expect("wait for a killed child");
            }
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A finished SIPp run.
#[derive(Debug)]
pub struct SippOutput {
    /// What ran (scenario, transport, port, target), for messages.
    pub what: String,
    /// SIPp's exit status: success when every call succeeded.
    pub status: ExitStatus,
    /// SIPp's standard output.
    pub stdout: String,
    /// SIPp's standard error.
    pub stderr: String,
    /// The scenario's log actions (with [`Sipp::trace`]).
    pub logs: String,
    /// SIPp's error file (with [`Sipp::trace`]).
    pub errors: String,
}

impl SippOutput {
    /// Every call of the scenario succeeded.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Status, the ends of the outputs, errors and logs: what a failed assertion shows.
    pub fn report(&self) -> String {
        format!(
            "{}: {:?}\nstdout: {}\nstderr: {}\nerrors: {}\nlogs: {}",
            self.what,
            self.status,
            tail(&self.stdout, 3000),
            tail(&self.stderr, 2000),
            tail(&self.errors, 3000),
            tail(&self.logs, 3000)
        )
    }
}

impl std::fmt::Display for SippOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.report())
    }
}

/// The last `n` bytes of `s` (at a character boundary).
pub fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_carries_the_fixed_and_chosen_arguments() {
        let target: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let c = Sipp::new("sipp", "/s/message.xml")
            .target(target)
            .transport(SippTransport::Tcp)
            .local_port(6000)
            .service("bob")
            .calls(2)
            .key("text", "hi")
            .timeout(Duration::from_secs(7))
            .args(["-trace_msg"])
            .command();
        let args: Vec<String> = c
            .cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let line = args.join(" ");
        for want in [
            "-sf /s/message.xml",
            "-i 127.0.0.1 -p 6000 -t t1 -nostdin -timeout 7s -timeout_error",
            "-m 2",
            "-s bob",
            "-key text hi",
        ] {
            assert!(line.contains(want), "{want} missing in {line}");
        }
        assert!(line.ends_with("-trace_msg 127.0.0.1:5070"), "{line}");
        assert_eq!(c.local_port(), 6000);
        assert_eq!(c.limit(), Duration::from_secs(12));
    }

    #[test]
    fn tail_keeps_char_boundaries() {
        assert_eq!(tail("héllo", 4), "llo");
        assert_eq!(tail("abc", 10), "abc");
    }
}
