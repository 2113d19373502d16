//! The digest client (RFC 3261 s22.2, RFC 7616): a request the gateway sends is kept in
//! parts ([`OutRequest`]) so that, when a server or proxy challenges it with 401 or 407,
//! it is sent once more with credentials from `[sip] credentials` for the challenge's
//! realm (or the realm-less default) and the next CSeq.

use bytes::Bytes;
use rand::Rng;

use crate::codec::{HeaderName, Method, Request, Response};

use super::config::ClientCredential;
use super::digest::{self, Challenge};
use super::tu::{NextHop, Tu, WireError};

impl Tu {
    /// Sends `out`; on 401/407 answers the challenge once with configured credentials.
    pub(super) async fn send_authenticated(
        &self,
        out: &mut OutRequest,
        hop: NextHop,
    ) -> Result<Response, WireError> {
        let req = out
            .build(None)
            .map_err(|e| WireError::Transport(e.to_string()))?;
        let resp = self.wire.send_request(req, hop.clone()).await?;
        let (hdr_in, hdr_out) = match resp.code() {
            401 => (HeaderName::WwwAuthenticate, HeaderName::Authorization),
            407 => (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            ),
            _ => return Ok(resp),
        };
        let challenge = resp
            .header_all(hdr_in)
            .filter_map(|h| Challenge::parse(h).ok())
            .find(|c| self.credential_for(&c.realm).is_some());
        let Some(challenge) = challenge else {
            return Ok(resp);
        };
        let Some(cred) = self.credential_for(&challenge.realm) else {
            return Ok(resp);
        };
        // Each challenge brings a fresh nonce; this is its first use.
        let nc = 1;
        let cnonce = hex::encode(rand::thread_rng().gen::<[u8; 8]>());
        let creds = digest::respond(
            &challenge,
            out.method.as_str(),
            &out.ruri,
            &cred.username,
            &cred.password,
            &cnonce,
            nc,
        );
        out.cseq += 1;
        let req = out
            .build(Some((hdr_out, creds.to_header())))
            .map_err(|e| WireError::Transport(e.to_string()))?;
        self.wire.send_request(req, hop).await
    }

    fn credential_for(&self, realm: &str) -> Option<&ClientCredential> {
        self.config
            .credentials
            .iter()
            .find(|c| c.realm.as_deref() == Some(realm))
            .or_else(|| self.config.credentials.iter().find(|c| c.realm.is_none()))
    }
}

/// An outgoing request, kept in parts so a challenged one can be rebuilt.
#[derive(Clone, Debug)]
pub(super) struct OutRequest {
    pub(super) method: Method,
    pub(super) ruri: String,
    pub(super) from: String,
    pub(super) to: String,
    pub(super) call_id: String,
    pub(super) cseq: u32,
    pub(super) routes: Vec<String>,
    pub(super) headers: Vec<(HeaderName, String)>,
    pub(super) max_forwards: u8,
    pub(super) body: Option<(String, Bytes)>,
}

impl OutRequest {
    pub(super) fn with_language(mut self, lang: Option<&str>) -> Self {
        if let Some(l) = lang {
            self.headers.push((HeaderName::Other, l.to_owned()));
        }
        self
    }

    pub(super) fn build(
        &self,
        auth: Option<(HeaderName, String)>,
    ) -> Result<Request, crate::codec::ParseError> {
        let mut b = Request::builder(&self.method, &self.ruri)
            .header(HeaderName::MaxForwards, &self.max_forwards.to_string())
            .header(HeaderName::From, &self.from)
            .header(HeaderName::To, &self.to)
            .header(HeaderName::CallId, &self.call_id)
            .header(
                HeaderName::CSeq,
                &format!("{} {}", self.cseq, self.method.as_str()),
            );
        for r in &self.routes {
            b = b.header(HeaderName::Route, r);
        }
        for (n, v) in &self.headers {
            b = match n {
                HeaderName::Other => b.header("Content-Language", v),
                n => b.header(*n, v),
            };
        }
        if let Some((n, v)) = auth {
            b = b.header(n, &v);
        }
        if let Some((ct, body)) = &self.body {
            b = b.body(ct, body.clone());
        }
        b.build_request()
    }
}
