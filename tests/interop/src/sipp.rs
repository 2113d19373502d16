//! SIPp scenarios kept under `tests/interop/sipp/`, run against a target with the peers'
//! SIPp (`CPIM_PEER_SIPP`) through the testkit's runner (`cpim_testkit::sipp`), each run in
//! a fresh scratch folder where SIPp's trace files land.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use cpim_testkit::sipp::{wait_output, SippCommand};

use crate::{HarnessError, Peers};

/// SIPp's transport mode (`-t`).
pub use cpim_testkit::sipp::SippTransport;

/// One SIPp run: `Sipp::new("message_uac.xml", target).service("bob").key("body", "hi").run(&peers)`.
///
/// One call (`-m 1`) and a 15 s limit unless told otherwise; the testkit's runner adds
/// `-i 127.0.0.1 -p <free port> -nostdin -timeout <limit> -timeout_error`, so SIPp never
/// takes port 5060 (the gateway's default) and never outlives the limit.
#[derive(Debug, Clone)]
pub struct Sipp {
    scenario: PathBuf,
    target: SocketAddr,
    service: Option<String>,
    transport: SippTransport,
    calls: u32,
    keys: Vec<(String, String)>,
    extra: Vec<OsString>,
    timeout: Duration,
}

impl Sipp {
    /// `scenario` is a file name under `tests/interop/sipp/`, or a path.
    pub fn new(scenario: impl AsRef<Path>, target: SocketAddr) -> Sipp {
        let scenario = scenario.as_ref();
        let scenario = if scenario.components().count() == 1 {
            crate::sipp_dir().join(scenario)
        } else {
            scenario.to_path_buf()
        };
        Sipp {
            scenario,
            target,
            service: None,
            transport: SippTransport::Udp,
            calls: 1,
            keys: Vec::new(),
            extra: Vec::new(),
            timeout: Duration::from_secs(15),
        }
    }

    /// The Request-URI user (`-s`, `[service]` in scenarios).
    pub fn service(mut self, user: &str) -> Sipp {
        self.service = Some(user.to_owned());
        self
    }

    /// A scenario keyword (`-key NAME VALUE`, `[NAME]` in scenarios).
    pub fn key(mut self, name: &str, value: &str) -> Sipp {
        self.keys.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Transport (default UDP).
    pub fn transport(mut self, transport: SippTransport) -> Sipp {
        self.transport = transport;
        self
    }

    /// Number of calls (default 1).
    pub fn calls(mut self, calls: u32) -> Sipp {
        self.calls = calls;
        self
    }

    /// Any further SIPp argument (e.g. `-trace_msg`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Sipp {
        self.extra.push(arg.into());
        self
    }

    /// Limit for the whole run (SIPp's `-timeout`; the process is killed a little later if it
    /// is still there). Default 15 s.
    pub fn timeout(mut self, timeout: Duration) -> Sipp {
        self.timeout = timeout;
        self
    }

    /// Start SIPp in the background (for tests that play the other side themselves).
    pub fn spawn(&self, peers: &Peers) -> Result<SippRun, HarnessError> {
        let dir = crate::scratch_dir("sipp")?;
        let port = crate::free_udp_port()?;
        let mut run = cpim_testkit::sipp::Sipp::new(&peers.sipp, &self.scenario)
            .target(self.target)
            .transport(self.transport)
            .local_port(port)
            .calls(self.calls)
            .timeout(self.timeout)
            .dir(&dir);
        if let Some(service) = &self.service {
            run = run.service(service);
        }
        for (k, v) in &self.keys {
            run = run.key(k, v);
        }
        let (child, cmd) = run.args(self.extra.iter().cloned()).command().spawn();
        Ok(SippRun { child, cmd, dir })
    }

    /// Run SIPp to its end.
    pub fn run(&self, peers: &Peers) -> Result<SippOutput, HarnessError> {
        self.spawn(peers)?.finish()
    }
}

/// A SIPp run in progress.
#[derive(Debug)]
pub struct SippRun {
    child: Child,
    cmd: SippCommand,
    dir: PathBuf,
}

impl SippRun {
    /// SIPp's local SIP port (`-p`).
    pub fn local_port(&self) -> u16 {
        self.cmd.local_port()
    }

    /// Wait for SIPp to end (bounded by the run's timeout plus a margin).
    pub fn finish(self) -> Result<SippOutput, HarnessError> {
        let out = wait_output(self.child, self.cmd.limit());
        Ok(SippOutput {
            output: self.cmd.result(out),
            dir: self.dir,
        })
    }
}

/// A finished SIPp run: its output (exit status 0 = every call succeeded) and its folder.
#[derive(Debug)]
pub struct SippOutput {
    /// SIPp's exit status and output.
    pub output: cpim_testkit::sipp::SippOutput,
    /// The folder SIPp ran in (trace files such as `*_messages.log` with `-trace_msg`).
    pub dir: PathBuf,
}

impl SippOutput {
    /// Every call of the scenario succeeded.
    pub fn success(&self) -> bool {
        self.output.success()
    }

    /// The contents of the first trace file whose name ends with `suffix` (e.g.
    /// `"_messages.log"`), if there is one.
    pub fn trace(&self, suffix: &str) -> Option<String> {
        let entries = std::fs::read_dir(&self.dir).ok()?;
        let path = entries.filter_map(|e| e.ok().map(|e| e.path())).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        })?;
        std::fs::read_to_string(path).ok()
    }
}

impl std::fmt::Display for SippOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (run folder {})", self.output, self.dir.display())
    }
}
