//! The XML namespaces the adapter speaks, in one place.
//!
//! Stream-level namespaces come from RFC 6120 (s4.8 streams and stream errors, s5
//! STARTTLS, s6 SASL, s8.3 stanza errors); the content namespaces from the XEPs named on
//! each constant.

/// RFC 6120 s4.8.1: the `stream` prefix.
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// The namespace bound to the `xml` prefix (`xml:lang`).
pub const XML: &str = cpim_core::xml::ns::XML;
/// XEP-0114: the content namespace of a component stream.
pub const COMPONENT: &str = "jabber:component:accept";
/// RFC 6120 s4.8.3: the content namespace of a server-to-server stream.
pub const SERVER: &str = "jabber:server";
/// RFC 6120 s4.9.3: stream error conditions.
pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// RFC 6120 s8.3: stanza error conditions.
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// RFC 6120 s5: STARTTLS.
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// RFC 6120 s6: SASL.
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// XEP-0220: Server Dialback elements (`db:` prefix).
pub const DIALBACK: &str = "jabber:server:dialback";
/// XEP-0220 s2.1: the dialback stream feature.
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
/// XEP-0199: XMPP Ping.
pub const PING: &str = "urn:xmpp:ping";
/// XEP-0030: service discovery, info.
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// XEP-0030: service discovery, items.
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// XEP-0092: software version.
pub const VERSION: &str = "jabber:iq:version";
/// XEP-0085: chat state notifications.
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// XEP-0184: message delivery receipts.
pub const RECEIPTS: &str = "urn:xmpp:receipts";
/// XEP-0333: chat markers.
pub const MARKERS: &str = "urn:xmpp:chat-markers:0";
/// XEP-0198 stream management, version 3.
pub const SM: &str = "urn:xmpp:sm:3";
/// XEP-0359 unique and stable stanza ids (`origin-id`).
pub const SID: &str = "urn:xmpp:sid:0";
/// The gateway's own extension (documented in `crate::mapping`'s module docs): the hops
/// a message has left, `<hops xmlns='urn:cpim-gateway:hops:0' left='69'/>`, so that two
/// gateways chained over XMPP count one budget (RFC 3261 s16.6 step 3 Max-Forwards) and a
/// loop between them ends.
pub const HOPS: &str = "urn:cpim-gateway:hops:0";
