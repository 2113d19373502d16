//! The three-digit status code of an [`Outcome`](crate::model::Outcome).
//!
//! RFC 3860 s4.2 and RFC 3859 s4 give CPIM and CPP responses the numeric classes of SIP
//! (RFC 3261 s7.2, s21): 1xx provisional, 2xx success, 3xx redirection, 4xx request failure,
//! 5xx server failure, 6xx global failure. [`StatusCode`] carries any such number unchanged
//! on the wire; the constants name the codes the adapters and the router answer with,
//! using the reason phrases of RFC 3261 s21 and of the extensions that define them.

use std::fmt;

/// A SIP-style status code (RFC 3261 s7.2). Any `u16` is representable, so codes read off
/// the wire pass through unchanged; the associated constants name the ones the project
/// answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 100 Trying (RFC 3261 s21.1.1).
    pub const TRYING: StatusCode = StatusCode(100);
    /// 200 OK (RFC 3261 s21.2.1).
    pub const OK: StatusCode = StatusCode(200);
    /// 202 Accepted (RFC 3265 s3.1.6.1, RFC 3428 s7).
    pub const ACCEPTED: StatusCode = StatusCode(202);
    /// 301 Moved Permanently (RFC 3261 s21.3.2).
    pub const MOVED_PERMANENTLY: StatusCode = StatusCode(301);
    /// 400 Bad Request (RFC 3261 s21.4.1).
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 401 Unauthorized (RFC 3261 s21.4.2).
    pub const UNAUTHORIZED: StatusCode = StatusCode(401);
    /// 403 Forbidden (RFC 3261 s21.4.4).
    pub const FORBIDDEN: StatusCode = StatusCode(403);
    /// 404 Not Found (RFC 3261 s21.4.5).
    pub const NOT_FOUND: StatusCode = StatusCode(404);
    /// 405 Method Not Allowed (RFC 3261 s21.4.6).
    pub const METHOD_NOT_ALLOWED: StatusCode = StatusCode(405);
    /// 407 Proxy Authentication Required (RFC 3261 s21.4.8).
    pub const PROXY_AUTHENTICATION_REQUIRED: StatusCode = StatusCode(407);
    /// 408 Request Timeout (RFC 3261 s21.4.9).
    pub const REQUEST_TIMEOUT: StatusCode = StatusCode(408);
    /// 410 Gone (RFC 3261 s21.4.10).
    pub const GONE: StatusCode = StatusCode(410);
    /// 412 Conditional Request Failed (RFC 3903 s11.2.1).
    pub const CONDITIONAL_REQUEST_FAILED: StatusCode = StatusCode(412);
    /// 413 Request Entity Too Large (RFC 3261 s21.4.11).
    pub const PAYLOAD_TOO_LARGE: StatusCode = StatusCode(413);
    /// 415 Unsupported Media Type (RFC 3261 s21.4.13).
    pub const UNSUPPORTED_MEDIA_TYPE: StatusCode = StatusCode(415);
    /// 416 Unsupported URI Scheme (RFC 3261 s21.4.14).
    pub const UNSUPPORTED_URI_SCHEME: StatusCode = StatusCode(416);
    /// 420 Bad Extension (RFC 3261 s21.4.15).
    pub const BAD_EXTENSION: StatusCode = StatusCode(420);
    /// 421 Extension Required (RFC 3261 s21.4.16).
    pub const EXTENSION_REQUIRED: StatusCode = StatusCode(421);
    /// 423 Interval Too Brief (RFC 3261 s21.4.17).
    pub const INTERVAL_TOO_BRIEF: StatusCode = StatusCode(423);
    /// 480 Temporarily Unavailable (RFC 3261 s21.4.18).
    pub const TEMPORARILY_UNAVAILABLE: StatusCode = StatusCode(480);
    /// 481 Call/Transaction Does Not Exist (RFC 3261 s21.4.19).
    pub const CALL_OR_TRANSACTION_DOES_NOT_EXIST: StatusCode = StatusCode(481);
    /// 482 Loop Detected (RFC 3261 s21.4.20).
    pub const LOOP_DETECTED: StatusCode = StatusCode(482);
    /// 483 Too Many Hops (RFC 3261 s21.4.21).
    pub const TOO_MANY_HOPS: StatusCode = StatusCode(483);
    /// 484 Address Incomplete (RFC 3261 s21.4.22).
    pub const ADDRESS_INCOMPLETE: StatusCode = StatusCode(484);
    /// 486 Busy Here (RFC 3261 s21.4.24).
    pub const BUSY_HERE: StatusCode = StatusCode(486);
    /// 488 Not Acceptable Here (RFC 3261 s21.4.26).
    pub const NOT_ACCEPTABLE_HERE: StatusCode = StatusCode(488);
    /// 489 Bad Event (RFC 3265 s7.3.2).
    pub const BAD_EVENT: StatusCode = StatusCode(489);
    /// 500 Server Internal Error (RFC 3261 s21.5.1).
    pub const SERVER_INTERNAL_ERROR: StatusCode = StatusCode(500);
    /// 501 Not Implemented (RFC 3261 s21.5.2).
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    /// 502 Bad Gateway (RFC 3261 s21.5.3).
    pub const BAD_GATEWAY: StatusCode = StatusCode(502);
    /// 503 Service Unavailable (RFC 3261 s21.5.4).
    pub const SERVICE_UNAVAILABLE: StatusCode = StatusCode(503);
    /// 504 Server Time-out (RFC 3261 s21.5.5).
    pub const SERVER_TIMEOUT: StatusCode = StatusCode(504);
    /// 513 Message Too Large (RFC 3261 s21.5.7).
    pub const MESSAGE_TOO_LARGE: StatusCode = StatusCode(513);
    /// 600 Busy Everywhere (RFC 3261 s21.6.1).
    pub const BUSY_EVERYWHERE: StatusCode = StatusCode(600);
    /// 603 Decline (RFC 3261 s21.6.2).
    pub const DECLINE: StatusCode = StatusCode(603);
    /// 604 Does Not Exist Anywhere (RFC 3261 s21.6.3).
    pub const DOES_NOT_EXIST_ANYWHERE: StatusCode = StatusCode(604);

    /// The code for a number, whatever its class.
    pub const fn new(code: u16) -> StatusCode {
        StatusCode(code)
    }
    /// The number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }
    /// The class digit: 1 for 1xx, 2 for 2xx and so on.
    pub const fn class(self) -> u16 {
        self.0 / 100
    }
    /// True for 1xx.
    pub const fn is_provisional(self) -> bool {
        self.class() == 1
    }
    /// True for 2xx.
    pub const fn is_success(self) -> bool {
        self.class() == 2
    }
    /// True for 3xx.
    pub const fn is_redirection(self) -> bool {
        self.class() == 3
    }
    /// True for 4xx.
    pub const fn is_client_error(self) -> bool {
        self.class() == 4
    }
    /// True for 5xx.
    pub const fn is_server_error(self) -> bool {
        self.class() == 5
    }
    /// True for 6xx.
    pub const fn is_global_failure(self) -> bool {
        self.class() == 6
    }
    /// True for a final answer (200 to 699), the range a SIP response to a request may carry
    /// as its last word (RFC 3261 s7.2).
    pub const fn is_final(self) -> bool {
        matches!(self.class(), 2..=6)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<u16> for StatusCode {
    fn from(code: u16) -> StatusCode {
        StatusCode(code)
    }
}

impl From<StatusCode> for u16 {
    fn from(code: StatusCode) -> u16 {
        code.0
    }
}

impl PartialEq<u16> for StatusCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl PartialEq<StatusCode> for u16 {
    fn eq(&self, other: &StatusCode) -> bool {
        *self == other.0
    }
}

impl PartialOrd<u16> for StatusCode {
    fn partial_cmp(&self, other: &u16) -> Option<std::cmp::Ordering> {
        self.0.partial_cmp(other)
    }
}

impl PartialOrd<StatusCode> for u16 {
    fn partial_cmp(&self, other: &StatusCode) -> Option<std::cmp::Ordering> {
        self.partial_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(StatusCode::OK.is_success() && StatusCode::ACCEPTED.is_success());
        assert!(StatusCode::TRYING.is_provisional() && !StatusCode::TRYING.is_final());
        assert!(StatusCode::NOT_FOUND.is_client_error() && StatusCode::NOT_FOUND.is_final());
        assert!(StatusCode::SERVICE_UNAVAILABLE.is_server_error());
        assert!(StatusCode::DECLINE.is_global_failure());
        assert!(StatusCode::new(302).is_redirection());
        assert!(!StatusCode::new(700).is_final());
        assert_eq!(StatusCode::TOO_MANY_HOPS.class(), 4);
    }

    #[test]
    fn numbers_and_text() {
        assert_eq!(StatusCode::TOO_MANY_HOPS, 483);
        assert_eq!(413, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(u16::from(StatusCode::REQUEST_TIMEOUT), 408);
        assert_eq!(StatusCode::from(503), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(StatusCode::NOT_FOUND.to_string(), "404");
        assert!(StatusCode::OK < 300 && 600 <= StatusCode::DECLINE);
    }
}
