//! The testkit's one error type.

use std::time::Duration;

/// What went wrong in a test harness step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The gateway did not start.
    #[error("gateway did not start: {0}")]
    Gateway(#[from] cpim_gateway::gateway::GatewayError),
    /// A socket, file or child process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Something expected did not happen in time.
    #[error("timed out after {timeout:?} waiting for {what}; {seen}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
        /// What arrived meanwhile (for the failure message).
        seen: String,
    },
    /// The SIP test UA could not send or build a request.
    #[error("SIP test UA: {0}")]
    Sip(String),
    /// The XMPP test client failed (login, connection, bad event line).
    #[error("XMPP test client: {0}")]
    Xmpp(String),
    /// The admin API answered something unreadable.
    #[error("admin API: {0}")]
    Admin(String),
}

impl TestkitError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        TestkitError::Io {
            what: what.into(),
            source,
        }
    }
}
