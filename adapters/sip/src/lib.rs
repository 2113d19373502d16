//! SIP/SIMPLE adapter: SIP codec, transactions, transports (sans-IO core plus a tokio layer).
//!
//! # Lower layers (owned by the "sip-stack" part): the API the application layer uses
//!
//! ## `codec` -- messages (RFC 3261 s7, s20, s25)
//! - [`codec::SipMessage`] `{ Request(Request), Response(Response) }`;
//!   `SipMessage::parse(Bytes)` (datagram rules), `SipMessage::parse_framed(Bytes)` (one
//!   message cut from a stream), `to_bytes()`, `encode(&mut Vec<u8>)`.
//! - [`codec::Request`]: `method() -> &Method`, `uri() -> Result<Uri>`, `uri_str()`,
//!   `branch()`, `stamp_received(SocketAddr)`, and through `Deref<Target = Parts>` all the
//!   header accessors below. [`codec::Response`]: `code()`, `reason()`, same accessors.
//! - [`codec::Parts`] accessors: `header(HeaderName) -> Option<&str>` (first value),
//!   `header_all(HeaderName)` (one per line), `header_str("X-Any")` (any spelling or
//!   extension name), `list(HeaderName)` (comma-split elements over all lines),
//!   `headers()` (iterate `(HeaderName, name_as_written, value)`), `call_id() -> &str`,
//!   `cseq() -> &CSeq {seq, method}`, `from()/to() -> Result<NameAddr>`,
//!   `from_tag()/to_tag()`, `vias()/top_via() -> Via`, `contacts()`, `expires()`,
//!   `max_forwards()`, `content_type()`, `body() -> &Bytes`.
//! - Typed views borrowing from the message: [`codec::NameAddr`] `{display, uri, params}`
//!   (`display_name()`, `tag()`), [`codec::Uri`] `{raw, scheme, user, password, host, port,
//!   params, headers, opaque}` (`param(name)`, `address_of_record()`), [`codec::Via`]
//!   (`branch()`, `received()`, `rport()`, `sent_by()`), [`codec::Params`] (`get`, `iter`),
//!   [`codec::Scheme`] `{Sip, Sips, Tel, Other}`, [`codec::Host`].
//! - Building: `Request::builder(&Method, "sip:bob@example.com")`, `Response::builder(code,
//!   reason)`, `Response::for_request(&req, code, None)` (RFC 3261 s8.2.6: copies Via, From,
//!   To, Call-ID, CSeq; adds a To tag unless 100 or already tagged) and
//!   `for_request_tagged(.., Some(tag))`; then `.header(HeaderName::Contact, "<sip:..>")` or
//!   `.header("X-Ext", "v")`, `.body("text/plain", bytes)`, `.build_request()` /
//!   `.build_response()` (the result is re-parsed, so it obeys the same checks; requests
//!   built locally may omit Via: the endpoint adds it). Content-Length is always computed.
//! - `codec::new_tag()`, `codec::new_branch()`, `codec::reason_phrase(code)`.
//! - [`codec::ParseError`] with `error_response_code()` (400/413/505/513) and
//!   `reason_phrase()` naming the problem.
//!
//! ## `transaction` -- RFC 3261 s17, sans-IO
//! [`transaction::ClientTransaction`], [`transaction::ServerTransaction`] and the
//! [`transaction::TransactionLayer`] that matches and times them. The TU normally does not
//! use these directly: the endpoint drives them.
//!
//! ## `endpoint` -- the tokio layer for the TU
//! - `Endpoint::bind(EndpointConfig) -> (Endpoint, IncomingRequests)`; `Endpoint` is cheap
//!   to clone.
//! - `IncomingRequests::recv().await -> Option<IncomingRequest>`; an `IncomingRequest` has
//!   `request: Request`, `source: SocketAddr`, `transport: Transport` and
//!   `respond(Response)` (provisional or final; retransmissions are absorbed by the
//!   transaction, the TU sees each request once). Malformed requests, INVITE (405),
//!   unknown methods (501), unsupported Require (420) and unknown URI schemes (416) are
//!   answered by the endpoint and never reach the TU.
//! - `Endpoint::send_request(Request, Target).await -> Result<Response, SendError>`: the
//!   final response; `SendError::status_code()` is 408 on timer F, 503 when no target could
//!   be reached. `Target::Uri(String)` resolves per RFC 3263 (static overrides first),
//!   `Target::Addr(Transport, SocketAddr)` is explicit.
//! - `EndpointConfig` (serde, `deny_unknown_fields`; `Default` = UDP+TCP on
//!   127.0.0.1:5060).

pub mod app;
pub mod codec;
pub mod endpoint;
pub mod transaction;
pub mod transport;
