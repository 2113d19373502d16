//! SIP presence (SIMPLE): RFC 3856 presence event package over RFC 6665, RFC 3903 PUBLISH.
//!
//! - [`publish`]: the event state compositor side of PUBLISH (SIP-ETag lifecycle).
//! - [`notifier`]: subscriptions of SIP watchers to presentities behind other adapters,
//!   with partial notification (RFC 5263) and event notification filters (RFC 4660).
//! - [`subscriber`]: the gateway's own subscriptions toward SIP presence agents.
//!
//! All three are sans-IO: they take requests/responses already parsed into plain values
//! and the current time, and return what to send and what to submit to the core.

pub mod notifier;
pub mod publish;
pub mod subscriber;

/// Splits a header value such as `terminated;reason=timeout;retry-after=5` into its
/// first token (lower-cased) and parameters (names lower-cased, values unquoted).
pub fn split_params(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';');
    let first = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let p = p.trim();
            if p.is_empty() {
                return None;
            }
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_owned(),
            ))
        })
        .collect();
    (first, params)
}
