//! Running SIPp scenarios (kept under `tests/interop/sipp/`) against a target.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{HarnessError, Peers, Proc, ProcOutput};

/// SIPp's transport mode (`-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SippTransport {
    /// One UDP socket (`u1`).
    #[default]
    Udp,
    /// One TCP connection (`t1`).
    Tcp,
}

/// One SIPp run: `Sipp::new("message_uac.xml", target).service("bob").key("body", "hi").run(&peers)`.
///
/// Always passes `-m CALLS -i 127.0.0.1 -p <free port> -nostdin -timeout <limit> -timeout_error`,
/// so SIPp never takes port 5060 (the gateway's default) and never outlives the limit; the run
/// happens in a fresh scratch folder where SIPp's trace files land.
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
        let secs = self.timeout.as_secs().max(1);
        let mut cmd = Command::new(&peers.sipp);
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .arg("-sf")
            .arg(&self.scenario)
            .args(["-m", &self.calls.to_string()])
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args([
                "-t",
                match self.transport {
                    SippTransport::Udp => "u1",
                    SippTransport::Tcp => "t1",
                },
            ])
            .args([
                "-nostdin",
                "-timeout",
                &format!("{secs}s"),
                "-timeout_error",
            ]);
        if let Some(service) = &self.service {
            cmd.args(["-s", service]);
        }
        for (k, v) in &self.keys {
            cmd.arg("-key").arg(k).arg(v);
        }
        cmd.args(&self.extra).arg(self.target.to_string());
        let name = self
            .scenario
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let proc = Proc::spawn(&format!("sipp {name} -> {}", self.target), cmd)?;
        Ok(SippRun {
            proc,
            dir,
            local_port: port,
            limit: self.timeout + Duration::from_secs(5),
        })
    }

    /// Run SIPp to its end.
    pub fn run(&self, peers: &Peers) -> Result<SippOutput, HarnessError> {
        self.spawn(peers)?.finish()
    }
}

/// A SIPp run in progress.
#[derive(Debug)]
pub struct SippRun {
    proc: Proc,
    dir: PathBuf,
    local_port: u16,
    limit: Duration,
}

impl SippRun {
    /// SIPp's local SIP port (`-p`).
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// Wait for SIPp to end (bounded by the run's timeout plus a margin).
    pub fn finish(self) -> Result<SippOutput, HarnessError> {
        let output = self.proc.finish(self.limit)?;
        Ok(SippOutput {
            output,
            dir: self.dir,
        })
    }
}

/// A finished SIPp run: its output (exit status 0 = every call succeeded) and its folder.
#[derive(Debug)]
pub struct SippOutput {
    /// SIPp's exit status and output.
    pub output: ProcOutput,
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
