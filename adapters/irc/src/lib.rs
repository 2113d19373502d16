//! IRC adapter (RFC 1459/2812): the gateway is a client of an IRC network.
//!
//! - [`proto`]: message syntax, nickname syntax and RFC 2812 case mapping. Sans-IO.
//! - [`nick`]: the reversible escaping of CPIM user parts into nicknames. Sans-IO.
//! - [`conn`]: one client connection's state machine: registration, 433 handling,
//!   keepalive, flood control, PING-barrier delivery outcomes. Sans-IO.
//! - [`mapping`]: IRC numerics to CPIM status codes, presence construction. Sans-IO.
//! - [`adapter`]: the tokio layer: the relay bot connection (with reconnect and backoff),
//!   per-user "puppet" connections up to a cap, presence watching, the adapter handle.
//!
//! # Connections
//!
//! The relay bot is always connected (reconnect with backoff from `reconnect_min_ms` to
//! `reconnect_max_ms`), joins the configured channels, watches presence and carries traffic
//! for senders without a puppet (`<alice@sip.example> text`); IRC users reach any CPIM
//! address with `/msg <bot> user@domain text`. A CPIM user who sends to IRC gets a puppet
//! connection of their own, so IRC users see the real sender and can answer with a plain
//! `/msg`; at most `max_puppets`, idle ones quit after `puppet_idle_secs`. Past the cap, or
//! when the nickname does not fit or collides, the bot relays instead.
//!
//! # Addresses and messages
//!
//! An IRC user is `im:<nick>@<domain>` (`domain` from the config), a channel
//! `im:%23chan@<domain>`. PRIVMSG is `Operation::Message` in `text/plain` (other media
//! types get 415); channel traffic is `MessageKind::Groupchat`, taken from the bot only so
//! that puppets do not duplicate it; NOTICE is `MessageKind::Headline` both ways and is
//! never answered automatically (RFC 2812 s3.3.2). Long text is cut at character boundaries
//! to fit 512-byte lines; CR, LF and NUL in parameters become spaces.
//!
//! # Outcomes, flood control, presence
//!
//! IRC does not acknowledge PRIVMSG, so [`conn`] follows it with a PING: an error numeric
//! before the PONG is the outcome ([`mapping::numeric_to_status`]), a PONG alone is 200, no
//! PONG within `send_timeout_ms` 408, a lost link 503. What the gateway sends is paced by
//! RFC 1459 s8.10's message timer (`flood_penalty_ms` per line, `flood_window_ms` ahead at
//! most), per connection. A `Subscribe` registers a watcher and asks USERHOST; watched nicks
//! are polled every `presence_poll_secs`, channel JOIN, QUIT and NICK give changes at once,
//! an away user's WHOIS message becomes the note. A `Notify` about a CPIM user with a
//! puppet sets or clears the puppet's AWAY. TLS uses rustls with the CAs of `tls_ca_file`
//! only (no built-in root store).
//!
//! # Tests
//!
//! Unit tests of syntax, escaping (proptest: round trip, valid nicknames, case-equality),
//! the barrier, the flood timer, keepalive and splitting. `tests/ngircd.rs` runs against a
//! real ngIRCd (`CPIM_PEER_NGIRCD`, else one it starts from a temporary folder, else
//! skipped).

#![forbid(unsafe_code)]

pub mod adapter;
pub mod conn;
pub mod mapping;
pub mod nick;
pub mod proto;

pub use adapter::{start, IrcConfig, IrcError, IrcHandle};
