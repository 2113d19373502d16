//! Transaction matching keys (RFC 3261 s17.1.3, s17.2.3).

use crate::codec::{Method, Request, Response};

/// The key a transaction is matched by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TxKey {
    /// RFC 3261 matching: branch (with the magic cookie), sent-by, method (ACK counts as
    /// INVITE). Client keys leave `sent_by` empty (s17.1.3 matches branch + CSeq method).
    Branch {
        /// Via branch.
        branch: Box<str>,
        /// Via sent-by (servers only).
        sent_by: Box<str>,
        /// Method (ACK mapped to INVITE).
        method: Method,
    },
    /// RFC 2543 fallback (s17.2.3): Request-URI, From tag, Call-ID, CSeq number, top Via.
    Legacy {
        /// Request-URI.
        uri: Box<str>,
        /// From tag.
        from_tag: Box<str>,
        /// Call-ID.
        call_id: Box<str>,
        /// CSeq number.
        cseq: u32,
        /// Method (ACK mapped to INVITE).
        method: Method,
        /// Top Via as written.
        via: Box<str>,
    },
}

pub(super) fn match_method(m: &Method) -> Method {
    if *m == Method::Ack {
        Method::Invite
    } else {
        m.clone()
    }
}

impl TxKey {
    /// The server-side key of a received request.
    pub fn for_server(req: &Request) -> TxKey {
        let via = req.top_via();
        let method = match_method(req.method());
        match via.and_then(|v| v.branch().map(|b| (b, v))) {
            // RFC 4475 s3.2.1: a bare magic cookie identifies nothing
            Some((branch, v)) if branch.len() > 7 && branch.starts_with("z9hG4bK") => {
                TxKey::Branch {
                    branch: branch.into(),
                    sent_by: v.sent_by().to_ascii_lowercase().into(),
                    method,
                }
            }
            _ => TxKey::Legacy {
                uri: req.uri_str().into(),
                from_tag: req.from_tag().unwrap_or("").into(),
                call_id: req.call_id().into(),
                cseq: req.cseq().seq,
                method,
                via: req
                    .list(crate::codec::HeaderName::Via)
                    .next()
                    .unwrap_or("")
                    .into(),
            },
        }
    }

    /// The client-side key of a response (branch + CSeq method, s17.1.3).
    pub fn for_response(resp: &Response) -> Option<TxKey> {
        let branch = resp.top_via()?.branch()?.to_string();
        Some(TxKey::Branch {
            branch: branch.into(),
            sent_by: "".into(),
            method: match_method(&resp.cseq().method),
        })
    }

    /// The client-side key of a request we send.
    pub fn for_client(req: &Request) -> Option<TxKey> {
        let branch = req.branch()?.to_string();
        Some(TxKey::Branch {
            branch: branch.into(),
            sent_by: "".into(),
            method: match_method(req.method()),
        })
    }
}
