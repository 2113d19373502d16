//! A Prosody of the test's own, for the tests that stop and restart the XMPP server under
//! a live link: `scripts/peers/prosody.sh start|stop DIR` in a folder of the test's, on
//! ports of its own.

use std::path::{Path, PathBuf};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers/prosody.sh")
}

/// The folder of this process's Prosody named `name`: under `CPIM_PEER_DIR`, else the
/// temporary folder; `None` (the test skips with a note, or fails under `CI=true`) without
/// the script or the `prosody` program.
pub fn dir(name: &str) -> Option<PathBuf> {
    use cpim_testkit::peer_env::{need, on_path, Peer};
    let found = script().exists() && on_path("prosody").is_some();
    need(
        &[Peer::Prosody],
        found.then_some(()),
        "scripts/peers/prosody.sh or the prosody program is not found",
    )?;
    let base = cpim_testkit::peer_env::var("CPIM_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    Some(base.join(format!("{name}-{}", std::process::id())))
}

/// A started Prosody serving xmpp.test with the user alice (password `alicepw`): the
/// script's folder and its other variables (ports, component, routes). Dropped, it is
/// stopped and its folder removed, also when the test fails.
pub struct OwnProsody {
    dir: PathBuf,
    vars: &'static [(&'static str, &'static str)],
}

impl OwnProsody {
    /// Starts a Prosody in `dir` configured by `vars`; panics if the script fails.
    pub fn start(dir: &Path, vars: &'static [(&'static str, &'static str)]) -> OwnProsody {
        let p = OwnProsody {
            dir: dir.to_owned(),
            vars,
        };
        assert!(p.run("start"), "own prosody start");
        p
    }

    /// Runs the script with `cmd` (`start` or `stop`); true if it succeeded.
    pub fn run(&self, cmd: &str) -> bool {
        let st = std::process::Command::new("bash")
            .arg(script())
            .arg(cmd)
            .arg(&self.dir)
            .env("DOMAIN", "xmpp.test")
            .env("USERS", "alice:alicepw")
            .envs(self.vars.iter().copied())
            .status();
        matches!(st, Ok(s) if s.success())
    }
}

impl Drop for OwnProsody {
    fn drop(&mut self) {
        self.run("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
