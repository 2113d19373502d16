//! A process under test, started with its output in the work directory and stopped
//! by PID.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::log;

/// A process under test, stopped by PID on drop (SIGTERM, SIGKILL after 10 s).
pub(crate) struct Sut {
    name: String,
    child: Child,
    pub(crate) pid: u32,
    pidfile: PathBuf,
}

impl Sut {
    pub(crate) fn spawn(name: &str, mut cmd: Command, work: &Path) -> std::io::Result<Sut> {
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

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub(crate) fn stop(&mut self) {
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

    pub(crate) fn log_tail(&self, work: &Path) -> String {
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
