//! The harness's error type.

use std::time::Duration;

/// Why a harness helper failed. The messages carry what the child printed, so a failed
/// assertion shows the peer's side of the story.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// A `CPIM_PEER_*` variable is missing or malformed while `CPIM_PEERS=1`.
    #[error("environment variable {name}: {problem} (scripts/test sets it)")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A child process could not be started.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A child process did not do what was awaited within the time limit; it was killed.
    #[error(
        "{what}: nothing after {timeout:?} while waiting for {waiting_for}; killed it\n{output}"
    )]
    Timeout {
        /// The child, as described by its spawner.
        what: String,
        /// The limit that passed.
        timeout: Duration,
        /// What was awaited.
        waiting_for: String,
        /// Everything the child printed.
        output: String,
    },
    /// A child process exited while a line was still awaited.
    #[error("{what}: exited before printing a line containing {needle:?}\n{output}")]
    ExitedEarly {
        /// The child.
        what: String,
        /// The awaited text.
        needle: String,
        /// Everything the child printed, with its exit status.
        output: String,
    },
    /// A file system or socket operation of the harness itself failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}
