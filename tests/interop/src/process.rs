//! Child processes with bounded waits: every wait takes a timeout, and a child whose handle
//! drops is killed.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::HarnessError;

/// How long to wait for the pipes to close after the child exited (a grandchild may hold them).
const DRAIN_LIMIT: Duration = Duration::from_secs(2);
/// Poll interval while waiting for a child to exit.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// What a finished (or killed) child printed, and how it ended.
#[derive(Debug, Clone)]
pub struct ProcOutput {
    /// The description given when it was spawned.
    pub what: String,
    /// Exit status; `None` if it could not be collected.
    pub status: Option<ExitStatus>,
    /// Everything on stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything on stderr (lossy UTF-8).
    pub stderr: String,
}

impl ProcOutput {
    /// Exited with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The exit code, if it exited normally.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// The stdout lines that start with `prefix`, with the prefix removed.
    pub fn lines_with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.stdout
            .lines()
            .filter_map(move |l| l.strip_prefix(prefix))
    }

    /// The stdout lines `PREFIX {json}` parsed as JSON (the helper scripts' event lines).
    pub fn json_lines(&self, prefix: &str) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        self.lines_with_prefix(prefix)
            .map(serde_json::from_str)
            .collect()
    }
}

impl fmt::Display for ProcOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => writeln!(f, "{}: {s}", self.what)?,
            None => writeln!(f, "{}: exit status unknown", self.what)?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// A running child whose output is collected line by line in the background.
#[derive(Debug)]
pub struct Proc {
    what: String,
    child: Child,
    lines: Receiver<(Stream, String)>,
    stdout: String,
    stderr: String,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Start `cmd` with stdout and stderr captured (stdin closed unless the caller set it).
    /// `what` names the child in messages.
    pub fn spawn(what: &str, mut cmd: Command) -> Result<Proc, HarnessError> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn {
            program: format!("{what} ({:?})", cmd.get_program()),
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            reader(out, Stream::Out, tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            reader(err, Stream::Err, tx);
        }
        Ok(Proc {
            what: what.to_owned(),
            child,
            lines: rx,
            stdout: String::new(),
            stderr: String::new(),
            status: None,
        })
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Wait until the child prints a stdout line containing `needle`; return that line.
    /// Fails if the child exits first or `timeout` passes (the child is then killed).
    pub fn wait_for_line(
        &mut self,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill_now();
                return Err(HarnessError::Timeout {
                    what: self.what.clone(),
                    timeout,
                    waiting_for: format!("a line containing {needle:?}"),
                    output: self.snapshot().to_string(),
                });
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok((stream, line)) => {
                    let hit = stream == Stream::Out && line.contains(needle);
                    self.push(stream, &line);
                    if hit {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Both pipes closed: the child is gone (or closed them); collect its status.
                    let _ = self.wait_exit(Instant::now() + DRAIN_LIMIT);
                    return Err(HarnessError::ExitedEarly {
                        what: self.what.clone(),
                        needle: needle.to_owned(),
                        output: self.snapshot().to_string(),
                    });
                }
            }
        }
    }

    /// Wait for the child to exit, at most `timeout`; then collect all its output. On timeout
    /// the child is killed and the error carries what it printed.
    pub fn finish(mut self, timeout: Duration) -> Result<ProcOutput, HarnessError> {
        let deadline = Instant::now() + timeout;
        if self.wait_exit(deadline) {
            self.drain(Instant::now() + DRAIN_LIMIT);
            Ok(self.snapshot())
        } else {
            self.kill_now();
            self.drain(Instant::now() + DRAIN_LIMIT);
            Err(HarnessError::Timeout {
                what: self.what.clone(),
                timeout,
                waiting_for: "it to exit".into(),
                output: self.snapshot().to_string(),
            })
        }
    }

    /// Kill the child now and return what it printed.
    pub fn kill(mut self) -> ProcOutput {
        self.kill_now();
        self.drain(Instant::now() + DRAIN_LIMIT);
        self.snapshot()
    }

    fn push(&mut self, stream: Stream, line: &str) {
        let buf = match stream {
            Stream::Out => &mut self.stdout,
            Stream::Err => &mut self.stderr,
        };
        buf.push_str(line);
        buf.push('\n');
    }

    /// Poll for exit until `deadline`, reading output meanwhile. True when it exited.
    fn wait_exit(&mut self, deadline: Instant) -> bool {
        loop {
            if self.status.is_none() {
                match self.child.try_wait() {
                    Ok(Some(status)) => self.status = Some(status),
                    Ok(None) => {}
                    Err(_) => return false,
                }
            }
            if self.status.is_some() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.lines.recv_timeout(left.min(POLL)) {
                Ok((stream, line)) => self.push(stream, &line),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(left.min(POLL)),
            }
        }
    }

    /// Read the remaining lines until both pipes closed or `deadline`.
    fn drain(&mut self, deadline: Instant) {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.lines.recv_timeout(left) {
                Ok((stream, line)) => self.push(stream, &line),
                Err(_) => return,
            }
        }
    }

    fn kill_now(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            // SIGKILL cannot be ignored; reaping is immediate once the kernel delivered it.
            self.status = self.child.wait().ok();
        }
    }

    fn snapshot(&self) -> ProcOutput {
        ProcOutput {
            what: self.what.clone(),
            status: self.status,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_now();
    }
}

fn reader(pipe: impl Read + Send + 'static, stream: Stream, tx: mpsc::Sender<(Stream, String)>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send((stream, line)).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).stdin(Stdio::null());
        cmd
    }

    #[test]
    fn finish_collects_both_streams_and_the_status() {
        let out = Proc::spawn(
            "sh",
            sh("echo one; echo two >&2; echo 'EV {\"a\": 1}'; exit 3"),
        )
        .unwrap()
        .finish(Duration::from_secs(10))
        .unwrap();
        assert_eq!(out.code(), Some(3));
        assert!(!out.success());
        assert_eq!(out.stdout, "one\nEV {\"a\": 1}\n");
        assert_eq!(out.stderr, "two\n");
        let events = out.json_lines("EV ").unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["a"], 1);
        assert!(out.to_string().contains("--- stderr ---\ntwo"));
    }

    #[test]
    fn wait_for_line_returns_the_matching_line_and_keeps_the_rest() {
        let mut p = Proc::spawn(
            "sh",
            sh("echo starting; echo 'READY x'; read _ignored; echo after"),
        )
        .unwrap();
        let line = p.wait_for_line("READY", Duration::from_secs(10)).unwrap();
        assert_eq!(line, "READY x");
        let out = p.finish(Duration::from_secs(10)).unwrap();
        assert!(out.success(), "{out}");
        assert_eq!(out.stdout, "starting\nREADY x\nafter\n");
    }

    #[test]
    fn a_child_that_never_exits_is_killed_at_the_deadline() {
        let p = Proc::spawn("sleeper", sh("echo hi; exec sleep 30")).unwrap();
        let started = Instant::now();
        let err = p.finish(Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        let msg = err.to_string();
        assert!(matches!(err, HarnessError::Timeout { .. }), "{msg}");
        assert!(msg.contains("sleeper") && msg.contains("hi"), "{msg}");
    }

    #[test]
    fn waiting_for_a_line_that_never_comes_fails_when_the_child_exits() {
        let mut p = Proc::spawn("quitter", sh("echo nope; exit 1")).unwrap();
        let err = p
            .wait_for_line("READY", Duration::from_secs(10))
            .unwrap_err();
        assert!(matches!(err, HarnessError::ExitedEarly { .. }), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err =
            Proc::spawn("ghost", Command::new("/nonexistent/cpim-no-such-program")).unwrap_err();
        assert!(matches!(err, HarnessError::Spawn { .. }), "{err}");
    }
}
