//! One incoming request, read once: the dispatcher ([`super::tu`]) builds an
//! [`Incoming`] per request and hands it to the handler of the request's method, so no
//! handler parses From, To or the Request-URI again.
//!
//! A From or To that does not parse is kept as absent, a URI that is no address as its
//! error: each handler refuses with its own status (RFC 3261 s8.2.2 leaves the 400's
//! reason to the UAS), as before the split.

use cpim_core::address::{Address, AddressError};

use crate::codec::Request;

use super::tu::{reply, Reply, Source};

/// The From or To of a request.
#[derive(Debug)]
pub(in crate::app) struct Party<'a> {
    /// The URI as written (no display name, no header parameters).
    pub uri: &'a str,
    /// The `tag` parameter.
    pub tag: Option<&'a str>,
    /// The URI as an address.
    pub address: Result<Address, AddressError>,
}

impl<'a> Party<'a> {
    fn read(na: Result<crate::codec::NameAddr<'a>, crate::codec::ParseError>) -> Option<Self> {
        let na = na.ok()?;
        Some(Party {
            uri: na.uri.raw,
            tag: na.tag(),
            address: Address::parse(na.uri.raw),
        })
    }
}

/// An incoming request with what every handler reads parsed once.
#[derive(Debug)]
pub(in crate::app) struct Incoming<'a> {
    /// The request.
    pub req: &'a Request,
    /// Where it came from.
    pub src: &'a Source,
    /// From, `None` if the header does not parse.
    pub from: Option<Party<'a>>,
    /// To, `None` if the header does not parse.
    pub to: Option<Party<'a>>,
    /// The Request-URI as an address.
    pub request_uri: Result<Address, AddressError>,
    /// Max-Forwards, if present (RFC 3261 s8.1.1.6).
    pub max_forwards: Option<u32>,
    /// Call-ID.
    pub call_id: &'a str,
}

impl<'a> Incoming<'a> {
    /// Reads `req` from `src`.
    pub fn read(req: &'a Request, src: &'a Source) -> Self {
        Incoming {
            req,
            src,
            from: Party::read(req.from()),
            to: Party::read(req.to()),
            request_uri: Address::parse(req.uri_str()),
            max_forwards: req.max_forwards(),
            call_id: req.call_id(),
        }
    }

    /// The From address, or a 400 "Bad From URI".
    pub fn address_of_from(&self) -> Result<&Address, Reply> {
        self.from
            .as_ref()
            .and_then(|p| p.address.as_ref().ok())
            .ok_or_else(|| reply(self.req, 400, Some("Bad From URI")))
    }

    /// The To address, or a 400 "Bad To URI".
    pub fn address_of_to(&self) -> Result<&Address, Reply> {
        self.to
            .as_ref()
            .and_then(|p| p.address.as_ref().ok())
            .ok_or_else(|| reply(self.req, 400, Some("Bad To URI")))
    }

    /// The Request-URI's address if it names a user.
    pub fn user_request_uri(&self) -> Option<&Address> {
        self.request_uri.as_ref().ok().filter(|a| a.user.is_some())
    }
}
