//! SIP message codec (RFC 3261 s7, s20, s25).
//!
//! Parsing is zero-copy: a [`Request`]/[`Response`] keeps the received [`Bytes`](bytes::Bytes) buffer and
//! stores every header name and value as a byte range into it (folded values, which are
//! rare, are the only ones copied, to collapse the folding into one SP). Typed views
//! ([`NameAddr`], [`Via`], [`Uri`]) borrow from the message and are produced on demand;
//! the mandatory headers (Via, From, To, Call-ID, CSeq) and the scalar headers
//! (Content-Length, Max-Forwards, Expires, CSeq) are checked while parsing, so a message
//! that parsed has well-formed versions of them.
//!
//! Serialising writes the start line, the headers in order (known names in their
//! canonical long form), a `Content-Length` computed from the body, and the body.

mod chars;
pub mod framing;
pub mod header;
pub mod method;
pub mod params;
pub mod uri;
pub mod validate;

mod builder;
mod error;
mod message;
mod parse;
mod parts;

pub use builder::{HeaderKey, MessageBuilder};
pub use error::{error_response_for, reason_phrase, ParseError};
pub use header::{split_list, CSeq, HeaderName, NameAddr, Via};
pub use message::{new_branch, new_tag, Request, Response, SipMessage};
pub use method::Method;
pub use params::Params;
use parse::skip_leading_crlf;
pub use parts::Parts;
pub use uri::{Host, Scheme, Uri};
pub use validate::{Policy, Rejection};

/// A MESSAGE request the unit tests of the codec parse.
#[cfg(test)]
const MSG: &str = "MESSAGE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP alice.example.com:5060;branch=z9hG4bK776;rport\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=49583\r\n\
To: <sip:bob@biloxi.example.com>\r\n\
Call-ID: asd88asd77a@1.2.3.4\r\n\
CSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\n\
l: 5\r\n\
\r\n\
hello";
