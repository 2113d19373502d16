//! UAS request checks before the TU sees a request (RFC 3261 s8.2.1-s8.2.2): method
//! inspection (405/501 with Allow), Request-URI scheme (416), Require (420 with
//! Unsupported). Sans-IO; the endpoint applies it to every new server transaction.

use super::{split_list, HeaderName, Method, Request, Scheme};

/// What the UAS accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Methods the TU handles (advertised in Allow).
    pub allow: Vec<Method>,
    /// Option tags the TU supports (RFC 3261 s8.2.2.3).
    pub supported: Vec<String>,
    /// Extra URI schemes accepted in the Request-URI besides sip, sips and tel.
    pub extra_schemes: Vec<String>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow: vec![
                Method::Message,
                Method::Options,
                Method::Register,
                Method::Subscribe,
                Method::Notify,
                Method::Publish,
            ],
            supported: Vec::new(),
            extra_schemes: Vec::new(),
        }
    }
}

/// A refusal: status code, reason phrase and the headers RFC 3261 requires with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Status code.
    pub code: u16,
    /// Reason phrase naming the problem.
    pub reason: String,
    /// Extra headers (`Allow` for 405/501, `Unsupported` for 420).
    pub headers: Vec<(HeaderName, String)>,
}

impl Policy {
    /// The `Allow` header value.
    pub fn allow_header(&self) -> String {
        let mut s = String::new();
        for m in &self.allow {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(m.as_str());
        }
        if !self.allow.contains(&Method::Ack) {
            s.push_str(if s.is_empty() { "ACK" } else { ", ACK" });
        }
        s
    }

    /// Checks a new request. ACK never gets here (the transaction layer absorbs it).
    pub fn check(&self, req: &Request) -> Result<(), Rejection> {
        let m = req.method();
        if !self.allow.contains(m) && *m != Method::Ack {
            let known = !matches!(m, Method::Extension(_));
            let code = if known { 405 } else { 501 };
            let reason = if known {
                format!("Method Not Allowed ({m} is not handled by this gateway)")
            } else {
                format!("Not Implemented (unknown method {m})")
            };
            return Err(Rejection {
                code,
                reason,
                headers: vec![(HeaderName::Allow, self.allow_header())],
            });
        }
        match req.uri() {
            Ok(u) => match u.scheme {
                Scheme::Sip | Scheme::Sips | Scheme::Tel => {}
                Scheme::Other(s) => {
                    if !self.extra_schemes.iter().any(|e| e.eq_ignore_ascii_case(s)) {
                        return Err(Rejection {
                            code: 416,
                            reason: format!("Unsupported URI Scheme ({s})"),
                            headers: Vec::new(),
                        });
                    }
                }
            },
            Err(e) => {
                return Err(Rejection {
                    code: 400,
                    reason: format!("Bad Request ({e})"),
                    headers: Vec::new(),
                })
            }
        }
        let mut unsupported = Vec::new();
        for v in req.header_all(HeaderName::Require) {
            for tag in split_list(v) {
                if !tag.is_empty() && !self.supported.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
                    unsupported.push(tag.to_string());
                }
            }
        }
        if !unsupported.is_empty() {
            let list = unsupported.join(", ");
            return Err(Rejection {
                code: 420,
                reason: format!("Bad Extension ({list})"),
                headers: vec![(HeaderName::Unsupported, list)],
            });
        }
        Ok(())
    }
}
