//! Where things are: the repository, the shared folder, the test assets, scratch folders.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::HarnessError;

/// The workspace root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// The shared folder beside the repository (`<workspace root>/../shared`), if it exists.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = repo_root().parent()?.join("shared");
    dir.is_dir().then_some(dir)
}

/// The helper Python scripts (`tests/interop/py`).
pub fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py")
}

/// The SIPp scenario files (`tests/interop/sipp`).
pub fn sipp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sipp")
}

/// A new empty folder for one test's files (SIPp traces, generated configs). It lives in the
/// peers' folder (`CPIM_PEER_DIR`, removed by `scripts/test` after a passing run) when that is
/// set, else in the system temporary folder.
pub fn scratch_dir(tag: &str) -> Result<PathBuf, HarnessError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var_os("CPIM_PEER_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let dir = base.join(format!(
        "{tag}-{}-{}-{nanos:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|source| HarnessError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    Ok(dir)
}

/// A UDP port on 127.0.0.1 that was free a moment ago (bind to port 0, read, release).
pub fn free_udp_port() -> Result<u16, HarnessError> {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|source| HarnessError::Io {
            context: "finding a free UDP port".into(),
            source,
        })
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> Result<u16, HarnessError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|source| HarnessError::Io {
            context: "finding a free TCP port".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace_manifest_and_the_scripts() {
        let root = repo_root();
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
        assert!(root.join("scripts/test").is_file());
        assert!(py_dir().join("xmpp_client.py").is_file());
        assert!(sipp_dir().join("message_uac.xml").is_file());
    }

    #[test]
    fn scratch_dirs_are_distinct_and_empty() {
        let a = scratch_dir("a/b c").unwrap();
        let b = scratch_dir("a/b c").unwrap();
        assert_ne!(a, b);
        assert!(a
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("a_b_c-"));
        assert_eq!(std::fs::read_dir(&a).unwrap().count(), 0);
        std::fs::remove_dir(a).unwrap();
        std::fs::remove_dir(b).unwrap();
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_udp_port().unwrap();
        assert_ne!(port, 0);
        UdpSocket::bind(("127.0.0.1", port)).unwrap();
        let port = free_tcp_port().unwrap();
        TcpListener::bind(("127.0.0.1", port)).unwrap();
    }
}
