//! The error of starting the adapter, shared by [`crate::adapter`] and the links.

/// Errors of the tokio layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XmppError {
    /// The configuration cannot work.
    #[error("invalid XMPP configuration: {0}")]
    Config(String),
    /// The mode is not available in this build.
    #[error("XMPP mode not supported yet: {0}")]
    Unsupported(&'static str),
}
