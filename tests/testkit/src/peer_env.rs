//! The real peers' environment: the `CPIM_PEER_*` variables `scripts/test` sets for the
//! peers it started, read in one place, and the skip rule that goes with them. Without a
//! peer a test skips with a message; under `CI=true` a real-peer test never passes by
//! skipping, so a missing peer fails it there.

use std::ffi::OsString;
use std::net::SocketAddr;

/// Whether this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A variable's raw value, if set and not empty.
pub fn var_os(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// A variable's value, if set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A socket address variable (`127.0.0.1:5060`); a malformed value panics, naming it.
pub fn addr(name: &str) -> Option<SocketAddr> {
    var(name).map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v} is not a socket address: {e}"))
    })
}

/// [`var`], or `None` after printing that `what` is skipped. Under `CI=true` a missing
/// variable fails instead.
pub fn require(name: &str, what: &str) -> Option<String> {
    let v = var(name);
    if v.is_none() {
        assert!(!in_ci(), "CI=true but {name} is not set: {what} would skip");
        println!("SKIPPED {what}: {name} is not set");
    }
    v
}
