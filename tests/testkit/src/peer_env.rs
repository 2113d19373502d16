//! The real peers' environment: the `CPIM_PEER_*` variables `scripts/test` sets for the
//! peers it started, read in one place, and the one rule for a real-peer test whose peer is
//! not there ([`need`]):
//!
//! - without `CI=true` the test prints `skipped: ...` (naming what is missing) and returns;
//! - under `CI=true` it fails: a real-peer test never passes by skipping in CI.
//!
//! A test that finds its peer records it ([`record`]): with `CPIM_PEER_TALLY` set to a
//! folder (`scripts/test` sets it), one line `<test binary>::<test name>` is appended to the
//! file named after the peer ([`Peer::name`]). `scripts/test` counts the distinct lines per
//! file and prints how many tests ran against each peer.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The variable naming the folder where tests record the peers they ran against.
pub const TALLY_VAR: &str = "CPIM_PEER_TALLY";

/// A real peer: a server `scripts/test` starts or a program it installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Prosody (either instance, or one a test starts itself), with the slixmpp clients.
    Prosody,
    /// ejabberd.
    Ejabberd,
    /// Kamailio (presence server or MSRP relay).
    Kamailio,
    /// ngIRCd.
    Ngircd,
    /// SIPp.
    Sipp,
    /// baresip.
    Baresip,
    /// Linphone's console client `linphonec`.
    Linphone,
    /// xmllint (schema validation).
    Xmllint,
}

impl Peer {
    /// Every peer, in the order `scripts/test` prints them.
    pub const ALL: [Peer; 8] = [
        Peer::Prosody,
        Peer::Ejabberd,
        Peer::Kamailio,
        Peer::Ngircd,
        Peer::Sipp,
        Peer::Baresip,
        Peer::Linphone,
        Peer::Xmllint,
    ];

    /// The lower-case name: the tally file's name and what messages print.
    pub fn name(self) -> &'static str {
        match self {
            Peer::Prosody => "prosody",
            Peer::Ejabberd => "ejabberd",
            Peer::Kamailio => "kamailio",
            Peer::Ngircd => "ngircd",
            Peer::Sipp => "sipp",
            Peer::Baresip => "baresip",
            Peer::Linphone => "linphone",
            Peer::Xmllint => "xmllint",
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The rule for a real-peer test: `found` is what the test needs from `peers` (an address,
/// a program, the whole environment), `None` when it is missing; `missing` says what is
/// missing, for the message.
///
/// With `Some`, every peer is [`record`]ed and the value returned. With `None`, the test
/// must return at once: this prints `skipped: ...` and gives `None`, except under
/// `CI=true`, where it panics naming the peers and what is missing.
///
/// ```no_run
/// use cpim_testkit::peer_env::{self, Peer};
/// let Some(addr) = peer_env::need(&[Peer::Ngircd], peer_env::addr("CPIM_PEER_NGIRCD"),
///     "CPIM_PEER_NGIRCD is not set (run scripts/test)") else { return };
/// # let _ = addr;
/// ```
pub fn need<T>(peers: &[Peer], found: Option<T>, missing: &str) -> Option<T> {
    match verdict(peers, found.is_some(), missing, in_ci()) {
        Verdict::Run => {
            for p in peers {
                record(*p);
            }
            found
        }
        Verdict::Skip(msg) => {
            println!("{msg}");
            None
        }
        Verdict::Fail(msg) => panic!("{msg}"),
    }
}

/// [`need`] for one variable: its value, if set and not empty.
pub fn need_var(peer: Peer, name: &str) -> Option<String> {
    need(
        &[peer],
        var(name),
        &format!("{name} is not set (run scripts/test)"),
    )
}

/// What [`need`] does; apart so that the rule is testable without panics and environment.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Run,
    Skip(String),
    Fail(String),
}

fn verdict(peers: &[Peer], found: bool, missing: &str, ci: bool) -> Verdict {
    if found {
        return Verdict::Run;
    }
    let names: Vec<&str> = peers.iter().map(|p| p.name()).collect();
    let names = names.join(", ");
    if ci {
        Verdict::Fail(format!(
            "CI=true and a real peer is missing ({names}): {missing}. \
             A real-peer test must not pass by skipping in CI."
        ))
    } else {
        Verdict::Skip(format!("skipped: real peer missing ({names}): {missing}"))
    }
}

/// Records that the running test ran against `peer`: appends `<binary>::<test>` to the file
/// `$CPIM_PEER_TALLY/<peer>`. Does nothing without `CPIM_PEER_TALLY`; panics when the
/// folder is set but cannot be written (a broken harness must not hide the counts).
pub fn record(peer: Peer) {
    let Some(dir) = var_os(TALLY_VAR) else {
        return;
    };
    let line = format!("{}\n", test_id());
    if let Err(e) = append(&Path::new(&dir).join(peer.name()), &line) {
        panic!(
            "{TALLY_VAR}={}: cannot record {peer}: {e}",
            dir.to_string_lossy()
        );
    }
}

/// One write of the whole line to a file opened for appending: concurrent tests do not
/// interleave their lines.
fn append(file: &Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?
        .write_all(line.as_bytes())
}

/// `<test binary>::<test name>`: the binary's name without cargo's hash suffix, and the
/// name of the test's thread (libtest names it after the test).
fn test_id() -> String {
    let exe = std::env::current_exe().ok();
    let binary = exe
        .as_deref()
        .and_then(Path::file_stem)
        .map(|s| strip_hash(&s.to_string_lossy()).to_owned())
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    format!("{binary}::{}", thread.name().unwrap_or("?"))
}

/// `name-0123456789abcdef` -> `name`.
fn strip_hash(stem: &str) -> &str {
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => stem,
    }
}

/// A variable's raw value, if set and not empty.
pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// A variable's value, if set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A path variable, if set and not empty.
pub fn path(name: &str) -> Option<PathBuf> {
    var_os(name).map(PathBuf::from)
}

/// A program: the path in variable `name` when set, else [`on_path`]`(command)`.
pub fn program(name: &str, command: &str) -> Option<PathBuf> {
    path(name).or_else(|| on_path(command))
}

/// `command` when `PATH` has an executable file of that name (looked up, not run: some
/// peers' programs start a server).
pub fn on_path(command: &str) -> Option<PathBuf> {
    find_in(&var_os("PATH")?, command)
}

/// The first executable file `command` in the folders of `dirs` (a `PATH` value).
fn find_in(dirs: &std::ffi::OsStr, command: &str) -> Option<PathBuf> {
    std::env::split_paths(dirs)
        .map(|d| d.join(command))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A socket address variable (`127.0.0.1:5060`); a malformed value panics, naming it.
pub fn addr(name: &str) -> Option<SocketAddr> {
    var(name).map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v} is not a socket address: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_found_peer_runs_in_and_out_of_ci() {
        assert_eq!(verdict(&[Peer::Sipp], true, "x", false), Verdict::Run);
        assert_eq!(verdict(&[Peer::Sipp], true, "x", true), Verdict::Run);
    }

    #[test]
    fn a_missing_peer_skips_outside_ci_and_fails_in_ci_naming_it() {
        let peers = [Peer::Prosody, Peer::Kamailio];
        let missing = "CPIM_PEERS=1 is not set";
        match verdict(&peers, false, missing, false) {
            Verdict::Skip(m) => {
                assert!(m.starts_with("skipped: "), "{m}");
                assert!(
                    m.contains("prosody, kamailio") && m.contains(missing),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
        match verdict(&peers, false, missing, true) {
            Verdict::Fail(m) => {
                assert!(m.contains("CI=true"), "{m}");
                assert!(
                    m.contains("prosody, kamailio") && m.contains(missing),
                    "{m}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_distinct_file_names() {
        let mut names: Vec<&str> = Peer::ALL.iter().map(|p| p.name()).collect();
        assert!(names
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase())));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Peer::ALL.len());
    }

    #[test]
    fn the_test_id_is_the_binary_and_the_test_thread() {
        assert_eq!(strip_hash("gateway_s2s-0123456789abcdef"), "gateway_s2s");
        assert_eq!(strip_hash("sip-smoke"), "sip-smoke");
        assert_eq!(strip_hash("x-0123456789abcdeg"), "x-0123456789abcdeg");
        let id = test_id();
        assert!(
            id.starts_with("cpim_testkit::")
                && id.ends_with("::the_test_id_is_the_binary_and_the_test_thread"),
            "{id}"
        );
    }

    #[test]
    fn programs_are_found_as_executable_files_on_the_path() {
        let dir = std::env::temp_dir().join(format!("cpim-path-test-{}", std::process::id()));
        let (a, b) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "not executable").unwrap();
        std::fs::write(b.join("tool"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        let exec = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(b.join("tool"), exec).unwrap();
        let path = std::env::join_paths([&a, &b]).unwrap();
        assert_eq!(find_in(&path, "tool"), Some(b.join("tool")));
        assert_eq!(find_in(&path, "other"), None);
        std::fs::remove_dir_all(&dir).unwrap();
        // A set variable wins, unchecked: scripts/test exports what it installed.
        assert_eq!(
            program("PATH", "ignored"),
            var_os("PATH").map(PathBuf::from)
        );
    }

    #[test]
    fn lines_appended_from_many_threads_stay_whole() {
        let dir = std::env::temp_dir().join(format!("cpim-tally-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("prosody");
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let file = file.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        append(&file, &format!("bin::test_{t}_{i}\n")).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 400);
        assert!(lines.iter().all(|l| l.starts_with("bin::test_")), "{text}");
    }
}
