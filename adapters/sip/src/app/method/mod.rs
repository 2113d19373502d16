//! The handlers of incoming requests, one module per method, each a method of
//! [`super::tu::Tu`] taking the request as read once ([`super::incoming::Incoming`]):
//!
//! - [`register`]: REGISTER, the registrar (RFC 3261 s10.3).
//! - [`message`]: MESSAGE (RFC 3428) to the core, mapped by [`super::message`].
//! - [`subscribe`]: SUBSCRIBE from SIP watchers and NOTIFY toward the gateway's own
//!   subscriptions (RFC 6665, RFC 3856).
//! - [`publish`]: PUBLISH (RFC 3903) and the composition of a presentity's publications.
//! - [`winfo`]: SUBSCRIBE to `presence.winfo` (RFC 3857): a user's own watchers.
//!
//! OPTIONS and unknown methods are answered by the dispatcher itself.

mod message;
mod publish;
mod register;
mod subscribe;
mod winfo;

pub(super) use publish::compose;
