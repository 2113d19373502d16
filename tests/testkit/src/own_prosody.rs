//! A Prosody of the test's own, for the tests that stop and restart the XMPP server under
//! a live link: `scripts/peers/prosody.sh start|stop DIR` in a folder of the test's, on
//! ports of its own, so the shared peers `scripts/test` started are never touched.

use std::path::{Path, PathBuf};

use crate::peer_env::{need, on_path, var, Peer};

/// `scripts/peers/prosody.sh`, found from this crate's folder.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers/prosody.sh")
}

/// The folder of this process's Prosody named `name`: under `CPIM_PEER_DIR`, else the
/// temporary folder; `None` (the test skips with a note, or fails under `CI=true`) without
/// the script or the `prosody` program.
pub fn dir(name: &str) -> Option<PathBuf> {
    let found = script().exists() && on_path("prosody").is_some();
    need(
        &[Peer::Prosody],
        found.then_some(()),
        "scripts/peers/prosody.sh or the prosody program is not found",
    )?;
    let base = var("CPIM_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    Some(base.join(format!("{name}-{}", std::process::id())))
}

/// A started Prosody serving `xmpp.test` with the user alice (password `alicepw`) unless
/// its variables say otherwise (`DOMAIN`, `USERS`, ports, component, routes: the script's
/// settings). Dropped, it is stopped and its folder removed, also when the test fails.
#[derive(Debug)]
pub struct OwnProsody {
    dir: PathBuf,
    vars: Vec<(String, String)>,
}

impl OwnProsody {
    /// Starts a Prosody in `dir` configured by `vars`; panics if the script fails.
    pub fn start(dir: &Path, vars: &[(&str, &str)]) -> OwnProsody {
        let p = OwnProsody {
            dir: dir.to_owned(),
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        assert!(p.run("start"), "own prosody start");
        p
    }

    /// Runs the script with `cmd` (`start` or `stop`); true if it succeeded. A `start`
    /// after a `stop` keeps the folder: accounts, offline messages and certificates.
    pub fn run(&self, cmd: &str) -> bool {
        let st = std::process::Command::new("bash")
            .arg(script())
            .arg(cmd)
            .arg(&self.dir)
            .env("DOMAIN", "xmpp.test")
            .env("USERS", "alice:alicepw")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .status();
        matches!(st, Ok(s) if s.success())
    }

    /// The script's folder (configuration, log, data, certificates).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for OwnProsody {
    fn drop(&mut self) {
        self.run("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_script_is_found() {
        assert!(super::script().is_file(), "{}", super::script().display());
    }
}
