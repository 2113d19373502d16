//! XCAP (RFC 4825) on the admin listener, under `/xcap-root/`: the sans-IO
//! [`cpim_xcap::XcapServer`] behind HTTP Digest authentication (RFC 7616; RFC 4825
//! s13.2) with the SIP users' credentials (`[[sip.users]]`, checked by the SIP
//! adapter's [`DigestServer`], realm `sip.realm`), so a SIP client manages its buddy
//! lists (resource-lists, rls-services), presence rules (pres-rules) with the account
//! it registers with. The authenticated user's XUI is `sip:<username>@<domain>`
//! (the user's configured domain, else the first of `sip.domains`).
//!
//! Order of the checks: a body larger than the server's cap (`Content-Length`, then
//! while reading) is refused with 413 before anything else; then the credentials
//! (401 with one `WWW-Authenticate: Digest` challenge per algorithm, `stale=TRUE` for an
//! expired nonce; the `uri` of the credentials must be the request target); then the
//! XCAP server. Every changed document is written to the store (`records`, kind
//! `xcap`, key `<xui> <auid> <document>` separated by newlines) before the answer,
//! and all are restored at start. Served only when SIP runs with configured users.
//!
//! A user's pres-rules document (RFC 5025 s9: AUID `pres-rules`, document `index`)
//! decides who may watch the user: each write or deletion is handed to the presence
//! service once stored ([`PresenceService::set_rules`], which re-evaluates the user's
//! watchers), and each restored one at start ([`PresenceService::restore_rules`]). A
//! document the presence side cannot read is logged and leaves the rules as they were.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use cpim_sip::app::digest::{AuthFailure, Credentials, DigestServer, Secret};
use cpim_sip::app::SipConfig;
use cpim_xcap::{Config, XcapServer};
use rand::Rng;

use cpim_core::address::Address;

use crate::admin::AdminState;
use crate::presence::presrules::{self, PresRules};
use crate::presence_service::PresenceService;
use crate::store::Store;

/// The XCAP root path on the admin listener.
pub const ROOT: &str = "/xcap-root";
/// The `records` kind of the documents.
pub const KIND: &str = "xcap";

/// The XCAP service: server, digest state, users, store.
#[derive(Debug)]
pub struct XcapService {
    server: Mutex<XcapServer>,
    digest: Mutex<DigestServer>,
    sip: SipConfig,
    store: Store,
    max_body: usize,
    presence: Option<Arc<PresenceService>>,
}

/// The presentity and rules of a pres-rules `index` document of `user`, if `auid` and
/// `doc` name one; `Err` when the content cannot be read as rules.
fn pres_rules_of(
    user: &str,
    auid: &str,
    doc: &str,
    content: Option<&[u8]>,
) -> Option<Result<(Address, Option<PresRules>), String>> {
    if auid != presrules::AUID || doc != presrules::DOCUMENT {
        return None;
    }
    let who = match Address::parse(user) {
        Ok(a) => a,
        Err(e) => return Some(Err(e.to_string())),
    };
    Some(match content.map(PresRules::parse).transpose() {
        Ok(rules) => Ok((who, rules)),
        Err(e) => Err(e.to_string()),
    })
}

fn now_secs() -> u64 {
    crate::store::unix_ms() / 1000
}

impl XcapService {
    /// The service for the SIP users of `sip`, with the documents of `store`, handing
    /// pres-rules documents to `presence`; `None` when no SIP user is configured (nobody
    /// could authenticate).
    pub fn new(
        sip: &SipConfig,
        store: Store,
        presence: Option<Arc<PresenceService>>,
    ) -> Option<Arc<XcapService>> {
        if sip.users.is_empty() {
            return None;
        }
        let seed = rand::thread_rng().gen::<[u8; 32]>();
        let config = Config::new(ROOT, seed);
        let max_body = config.max_body;
        let mut server = XcapServer::new(config);
        let restored = store.for_each(KIND, |key, data| {
            let mut parts = key.splitn(3, '\n');
            let (Some(user), Some(auid), Some(doc)) = (parts.next(), parts.next(), parts.next())
            else {
                tracing::warn!(key, "xcap: unreadable record key, skipped");
                return;
            };
            if let Err(e) = server.restore(user, auid, doc, data.as_bytes()) {
                tracing::warn!(user, auid, doc, error = %e, "xcap: document not restored");
                return;
            }
            let applied = match (
                pres_rules_of(user, auid, doc, Some(data.as_bytes())),
                &presence,
            ) {
                (Some(Ok((who, Some(rules)))), Some(p)) => p
                    .restore_rules(&who, rules)
                    .then_some(())
                    .ok_or_else(|| "too many documents".to_owned()),
                (Some(Err(e)), _) => Err(e),
                _ => Ok(()),
            };
            if let Err(e) = applied {
                tracing::warn!(user, error = %e, "xcap: pres-rules not applied");
            }
        });
        if let Err(e) = restored {
            tracing::error!(error = %e, "xcap: documents not restored");
        }
        let opaque = hex::encode(rand::thread_rng().gen::<[u8; 8]>());
        let digest = DigestServer::new(
            sip.realm(),
            &sip.auth_algorithms,
            sip.nonce_lifetime,
            opaque,
        );
        Some(Arc::new(XcapService {
            server: Mutex::new(server),
            digest: Mutex::new(digest),
            sip: sip.clone(),
            store,
            max_body,
            presence,
        }))
    }

    fn secret(&self, username: &str) -> Option<Secret> {
        let u = self.sip.users.iter().find(|u| u.username == username)?;
        match (&u.password, &u.ha1) {
            (Some(p), _) => Some(Secret::Password(p.clone())),
            (None, Some(h)) => Some(Secret::Ha1(
                u.ha1_algorithm
                    .unwrap_or(cpim_sip::app::digest::Algorithm::Md5),
                h.clone(),
            )),
            _ => None,
        }
    }

    fn xui(&self, username: &str) -> String {
        let domain = self
            .sip
            .users
            .iter()
            .find(|u| u.username == username)
            .and_then(|u| u.domain.clone())
            .or_else(|| self.sip.domains.first().cloned())
            .unwrap_or_default();
        format!("sip:{username}@{domain}")
    }

    fn challenge(&self, stale: bool) -> Response {
        let random = rand::thread_rng().gen::<[u8; 16]>();
        let challenges = self
            .digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .challenge(now_secs(), stale, random);
        let mut r = (StatusCode::UNAUTHORIZED, "unauthorized\n").into_response();
        for c in challenges {
            if let Ok(v) = HeaderValue::from_str(&c.to_header()) {
                r.headers_mut().append(header::WWW_AUTHENTICATE, v);
            }
        }
        r
    }

    /// The authenticated XUI, or the answer to send.
    fn authenticate(
        &self,
        method: &str,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<String, Box<Response>> {
        let bad = |why: &'static str| Box::new((StatusCode::BAD_REQUEST, why).into_response());
        let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                v.get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("digest "))
            })
        else {
            return Err(Box::new(self.challenge(false)));
        };
        match Credentials::parse(auth) {
            Ok(c) if c.uri != target => return Err(bad("digest uri is not the request target\n")),
            Ok(_) => {}
            Err(_) => return Err(bad("malformed credentials\n")),
        }
        let verified = self
            .digest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .verify(auth, method, now_secs(), |u| self.secret(u));
        match verified {
            Ok(username) => Ok(self.xui(&username)),
            Err(AuthFailure::Stale) => Err(Box::new(self.challenge(true))),
            Err(AuthFailure::Malformed(_)) => Err(bad("malformed credentials\n")),
            Err(_) => Err(Box::new(self.challenge(false))),
        }
    }

    /// Handles one request under the XCAP root.
    pub async fn handle(&self, req: Request) -> Response {
        let too_large =
            || (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return too_large();
        }
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let method = parts.method.as_str().to_owned();
        let user = match self.authenticate(&method, &target, &parts.headers) {
            Ok(u) => u,
            Err(r) => return *r,
        };
        let Ok(body) = axum::body::to_bytes(body, self.max_body).await else {
            return too_large();
        };
        let h = |n: header::HeaderName| parts.headers.get(n).and_then(|v| v.to_str().ok());
        let request = cpim_xcap::Request {
            method: &method,
            target: &target,
            if_match: h(header::IF_MATCH),
            if_none_match: h(header::IF_NONE_MATCH),
            content_type: h(header::CONTENT_TYPE),
            body: &body,
            user: &user,
        };
        let (response, changes) = {
            let mut server = self.server.lock().unwrap_or_else(|e| e.into_inner());
            let response = server.handle(&request);
            let changes: Vec<_> = std::iter::from_fn(|| server.poll_change()).collect();
            (response, changes)
        };
        for c in changes {
            let key = format!("{}\n{}\n{}", c.user, c.auid, c.document);
            let done = match &c.content {
                Some(bytes) => {
                    let text = String::from_utf8_lossy(bytes).into_owned();
                    self.store.put(KIND, &key, None, &text).map(|()| true)
                }
                None => self.store.remove(KIND, &key),
            };
            if let Err(e) = done {
                tracing::error!(user = %c.user, auid = %c.auid, error = %e, "xcap: document not stored");
            }
            let (Some(p), Some(found)) = (
                &self.presence,
                pres_rules_of(&c.user, &c.auid, &c.document, c.content.as_deref()),
            ) else {
                continue;
            };
            match found {
                Ok((who, rules)) => {
                    let st = p.set_rules(&who, rules).await;
                    if !st.is_success() {
                        tracing::warn!(user = %c.user, status = %st.code.as_u16(), reason = %st.reason, "xcap: pres-rules not applied");
                    }
                }
                Err(e) => {
                    tracing::warn!(user = %c.user, error = %e, "xcap: pres-rules not applied")
                }
            }
        }
        let mut r = Response::new(Body::from(response.body.clone()));
        *r.status_mut() =
            StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in response.headers() {
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
        r
    }
}

/// The admin route of `/xcap-root` and below.
pub async fn route(State(st): State<Arc<AdminState>>, req: Request) -> Response {
    match &st.xcap {
        Some(x) => x.handle(req).await,
        None => (
            StatusCode::NOT_FOUND,
            "XCAP is not enabled (no [[sip.users]])\n",
        )
            .into_response(),
    }
}
