//! SIP/SIMPLE adapter: SIP codec, transactions, transports (sans-IO core plus a tokio layer)
//! and the application layer ([`app`]) that maps SIP onto CPIM operations.
//!
//! A request climbs transport (parse; malformed ones answered there), endpoint and
//! transaction layer (retransmissions absorbed, RFC 3261 s8.2 checks) to the transaction
//! user in [`app`], which authenticates it and submits the CPIM operation to the core;
//! the response goes back down the same way.
//!
//! # Lower layers: the API the application layer uses
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
//! use these directly: the endpoint drives them. Server transactions are capped
//! (`max_server_transactions`: past it a stateless 503, never longer than the request)
//! and a refusal ends its transaction at once, leaving a bounded compact record of its
//! answer ([`transaction::stateless`]); the counts are in `Endpoint::transaction_stats()`.
//!
//! ## `endpoint` -- the tokio layer for the TU
//! - `Endpoint::bind(EndpointConfig).await -> Result<(Endpoint, IncomingRequests),
//!   EndpointError>`; `Endpoint` is cheap to clone; `local_addrs()`, `local_addr(Transport)`,
//!   `sent_by(Transport)`, `contact_uri(Transport)`, `resolve(uri)`.
//! - `Endpoint::bind_to(EndpointConfig, impl RequestSink)`: the endpoint task offers each
//!   new request to the sink with a plain call (`offer` gives it back when the sink is full
//!   or stopping: 503 with Retry-After); the SIP adapter's sink runs each request on a task
//!   of its own, at most `tu_queue` at once. `bind` is `bind_to` a queue of `tu_queue`.
//! - `IncomingRequests::recv().await -> Option<IncomingRequest>`; an `IncomingRequest` has
//!   `request: Request` (top Via already stamped with received/rport), `source:
//!   SocketAddr`, `transport: Transport`, `responder: Responder` (Clone + Send, to answer
//!   from another task) and `respond(Response)` / `respond_code(u16)` (provisional or
//!   final; retransmissions are absorbed by the transaction, the TU sees each request
//!   once). Malformed requests (4xx/505 naming the problem), INVITE and other known but
//!   unhandled methods (405 + Allow), unknown methods (501 + Allow), unsupported Require
//!   (420 + Unsupported), other URI schemes (416) and CANCEL (481) are answered by the
//!   endpoint and never reach the TU.
//! - `Endpoint::send_request(Request, Target).await -> Result<Response, SendError>`: the
//!   final response (any status); the endpoint replaces any Via with its own (fresh
//!   branch, rport). `SendError::status_code()`: 408 on timer F, 503 for transport or
//!   resolution failures, 400 for an unsendable request. `Target::Uri(String)` resolves
//!   per RFC 3263 (static overrides first), `Target::Addr(Transport, SocketAddr)` is
//!   explicit. Requests over `udp_max_request_bytes` (1300) go over TCP instead of UDP.
//! - `EndpointConfig` (serde, `deny_unknown_fields`, every field defaulted; `Default` =
//!   UDP+TCP on 127.0.0.1:5060 and TLS on 127.0.0.1:5061, static target `localhost`):
//!   listen addresses per transport, `tls_cert`/`tls_key`/`tls_ca` (PEM paths; a TLS
//!   listener without `tls_cert`/`tls_key` gets a self-signed certificate, which
//!   outgoing TLS also presents as client certificate; `tls_ca` plus the system store
//!   validate servers and client certificates),
//!   `advertised_host`, size limits, T1/T2/T4, `dns`, `static_targets`, `allow`,
//!   `supported`, `extra_uri_schemes`, `tu_queue`; stream connection limits
//!   `max_connections_per_source` (32, IPv6 per /64), `max_connections` (1024),
//!   `message_timeout_secs` (10: a message must be complete that long after its first
//!   byte), `idle_timeout_secs` (300). A request to a `sips:` URI goes over TLS only;
//!   one received over UDP or TCP gets 416. Each incoming request carries its
//!   [`transport::Connection`] (id; domains a TLS client certificate proved, RFC 5922).
//!
//! ## `transport`
//! [`transport::Transport`] `{Udp, Tcp, Tls}`; [`transport::resolve::StaticTarget`]
//! `{transport, address}`; `tls_acceptor_from_pem`, `tls_connector_from_pem`;
//! [`transport::tls`]: `self_signed` (certificate and key made in memory; the gateway keeps
//! them in its store folder), `trust_roots`, `tls_connector_with_roots`; [`transport::peer`]:
//! [`transport::Connection`] and the RFC 5922 s7.1 reading of client certificates.
//! Incoming TCP/TLS connections are admitted by `cpim_listen`
//! (per-source and total caps, EMFILE backoff).
//!
//! # Application layer
//!
//! [`app`] is the transaction user: registrar (RFC 3261 s10.3), digest (RFC 8760 algorithms,
//! SHA-256 then MD5 by default, see `docs/decisions/0009-sip-digest-algorithms.md`), the
//! identity policy (digest of exactly that user, a TCP/TLS flow the user registered on,
//! `trusted_peers`, or a TLS certificate naming a foreign domain; never a UDP source
//! address; `docs/security.md`), per-source limits and caps (503 with Retry-After),
//! MESSAGE (RFC 3428, RFC 7572), PUBLISH (RFC 3903), the notifier for SIP watchers and the
//! subscriber towards SIP presence agents (RFC 6665, RFC 3856). Its state is persisted
//! through [`app::SipStore`] and read back at start. Delivery to a local user forks to every
//! live binding over its registration flow (first 2xx wins, else the lowest failure, a 6xx
//! first; 480 without a binding; 404 for a user a configured `users` list lacks, so the
//! gateway's queue does not retry it); elsewhere through the outbound proxy if configured,
//! else RFC 3263 through the endpoint.
//!
//! # Tests, fuzzing, benches
//!
//! Lower layers: `tests/rfc4475.rs` (the 50 torture messages against their manifest, with
//! the expected status; skipped without the shared corpus), `tests/roundtrip.rs`
//! (proptest build -> serialise -> parse), `tests/transaction.rs` and
//! `tests/transaction_limits.rs` (virtual time), `tests/endpoint.rs` (UDP/TCP/TLS between
//! two endpoints, size switch, timer F, refused connections, malformed requests answered and
//! never reaching the TU), `tests/dns.rs` (an in-test DNS responder: NAPTR/SRV order,
//! fallback, failover), `tests/listeners.rs` (connection caps, trickled bytes, `sips:`),
//! `tests/sipp.rs` (SIPp scenarios; skipped without `sipp`). Application layer:
//! `tests/app_tu.rs`, `tests/app_tu_message.rs`, `tests/app_tu_presence.rs` (the TU in
//! process with a fake transaction layer and core),
//! `tests/app_sipp.rs` (SIPp over real sockets, NOTIFY bodies checked with xmllint),
//! `tests/security.rs` and `tests/security_streams.rs` (forged identities, foreign
//! domains, floods), and the real-peer tests `tests/app_kamailio.rs` and
//! `tests/app_baresip.rs`. The gateway-level SIP acceptance tests are in
//! `tests/interop/tests/sip_gateway_*.rs`. Fuzz targets in `fuzz/` (`sip_message`,
//! `framer`, `digest`; `scripts/fuzz cpim-sip`); criterion bench `benches/sip_codec.rs`.

pub mod app;
pub mod codec;
pub mod endpoint;
pub mod transaction;
pub mod transport;
