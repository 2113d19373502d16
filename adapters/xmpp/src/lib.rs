//! XMPP adapter: XEP-0114 component and RFC 6120 server-to-server federation (sans-IO core plus a tokio layer).
