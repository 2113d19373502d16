//! The XCAP server state machine (RFC 4825 s8): a request in (method, target,
//! conditional headers, body, the authenticated user), a response out. Routing to
//! the application usage (s8.1), authorization (s8.1, RFC 4826 s3.6, s4.3.7: a user
//! reads and writes only their own `users/<XUI>/` tree; the global xcap-caps
//! document is readable by all, s12.7), the caps (body size before any parsing,
//! documents per user and in all), conditional requests (s7.11, s8.5: `If-Match`,
//! `If-None-Match`, `*` included, 412 or 304), document operations (s8.2.1 PUT
//! creating or replacing, s8.2.2 GET, s8.2.4 DELETE) and, through [`crate::ops`],
//! element and attribute operations; every change is validated by its usage before
//! it is kept, and queued for the caller to persist ([`XcapServer::poll_change`]).

use cpim_core::xml::{parse_with, Element, Limits};

use crate::decls;
use crate::error::{Condition, XcapError, XCAP_ERROR_MIME};
use crate::ops::{self, xml_condition, Fail};
use crate::store::{Change, DocKey, Store};
use crate::uri::{self, Tree, UriError};
use crate::usage::{self, rls_services, xcap_caps, Ctx, Usage};

/// The server's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The XCAP root path, e.g. `/xcap-root` (RFC 4825 s6.1).
    pub root: String,
    /// Largest request body (413 above it, before any parsing).
    pub max_body: usize,
    /// Most documents one user may have.
    pub max_documents_per_user: usize,
    /// Most documents in all.
    pub max_documents: usize,
    /// Most bytes of documents in all.
    pub max_total_bytes: usize,
    /// The XML reader's depth, element and attribute bounds (its byte bound is
    /// `max_body`).
    pub limits: Limits,
    /// Secret seed of the ETags (random, per process).
    pub etag_seed: [u8; 32],
}

impl Config {
    /// 1 MiB bodies, 32 documents per user, 100 000 and 256 MiB in all.
    pub fn new(root: &str, etag_seed: [u8; 32]) -> Config {
        Config {
            root: root.trim_end_matches('/').to_owned(),
            max_body: 1024 * 1024,
            max_documents_per_user: 32,
            max_documents: 100_000,
            max_total_bytes: 256 * 1024 * 1024,
            limits: Limits {
                max_bytes: 1024 * 1024,
                ..Limits::DEFAULT
            },
            etag_seed,
        }
    }
}

/// A request, as the HTTP layer parsed it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// `GET`, `PUT`, `DELETE`...
    pub method: &'a str,
    /// Path and query, still percent-encoded.
    pub target: &'a str,
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `Content-Type` (parameters are ignored).
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
    /// The authenticated user's XUI (e.g. `sip:alice@example.com`).
    pub user: &'a str,
}

/// A response for the HTTP layer to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: Option<&'static str>,
    /// `ETag` value, quoted.
    pub etag: Option<String>,
    /// `Allow` (with 405).
    pub allow: Option<&'static str>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    fn status(status: u16) -> Response {
        Response {
            status,
            content_type: None,
            etag: None,
            allow: None,
            body: Vec::new(),
        }
    }

    fn text(status: u16, text: &str) -> Response {
        Response {
            content_type: Some("text/plain; charset=utf-8"),
            body: text.as_bytes().to_vec(),
            ..Response::status(status)
        }
    }

    fn conflict(e: &XcapError) -> Response {
        Response {
            content_type: Some(XCAP_ERROR_MIME),
            body: e.to_xml().into_bytes(),
            ..Response::status(409)
        }
    }

    fn with_etag(mut self, etag: Option<&str>) -> Response {
        self.etag = etag.map(|e| format!("\"{e}\""));
        self
    }

    /// The headers to send, as (name, value) pairs.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(c) = self.content_type {
            h.push(("Content-Type", c.to_owned()));
        }
        if let Some(e) = &self.etag {
            h.push(("ETag", e.clone()));
        }
        if let Some(a) = self.allow {
            h.push(("Allow", a.to_owned()));
        }
        h
    }
}

/// The XCAP server.
#[derive(Debug)]
pub struct XcapServer {
    config: Config,
    store: Store,
    caps: (String, String),
}

/// Whether an `If-Match`/`If-None-Match` list names `etag` (or is `*`).
fn names_etag(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).trim_matches('"') == etag)
}

fn media_type(ct: Option<&str>) -> String {
    ct.unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl XcapServer {
    /// A server with no documents.
    pub fn new(config: Config) -> XcapServer {
        let mut store = Store::new(config.etag_seed);
        let caps = (xcap_caps::document(), store.next_etag());
        XcapServer {
            config,
            store,
            caps,
        }
    }

    /// The next change to persist (call after every [`XcapServer::handle`] until `None`).
    pub fn poll_change(&mut self) -> Option<Change> {
        self.store.poll_change()
    }

    /// Number of documents held.
    pub fn document_count(&self) -> usize {
        self.store.len()
    }

    /// Loads a persisted document back (at start); it is validated like a PUT but not
    /// queued as a change.
    pub fn restore(
        &mut self,
        user: &str,
        auid: &str,
        document: &str,
        content: &[u8],
    ) -> Result<(), XcapError> {
        let usage = usage::by_auid(auid)
            .filter(|u| !u.read_only)
            .ok_or_else(|| XcapError::constraint(format!("unknown application usage {auid:?}")))?;
        let key = DocKey {
            auid: auid.to_owned(),
            tree: Tree::User(user.to_owned()),
            name: document.to_owned(),
        };
        self.check_quota(&key)?;
        let (root, text) = self.parse_document(content)?;
        self.check_bytes(&key, text.len())?;
        self.validate(usage, &root, &key)?;
        let services = rls_services::service_uris(&root);
        self.store.put(&key, text, services, false);
        Ok(())
    }

    fn doc_uri(&self, u: &uri::XcapUri) -> String {
        format!("{}/{}", self.config.root, u.document_path)
    }

    fn check_quota(&self, key: &DocKey) -> Result<(), XcapError> {
        if self.store.text(key).is_some() {
            return Ok(());
        }
        let user_full = match &key.tree {
            Tree::User(u) => self.store.count_of(u) >= self.config.max_documents_per_user,
            Tree::Global => false,
        };
        if user_full || self.store.len() >= self.config.max_documents {
            return Err(XcapError::constraint("document quota reached"));
        }
        Ok(())
    }

    fn check_bytes(&self, key: &DocKey, new_len: usize) -> Result<(), XcapError> {
        let old = self.store.text(key).map_or(0, str::len);
        if self.store.total_bytes() - old + new_len > self.config.max_total_bytes {
            return Err(XcapError::constraint("storage quota reached"));
        }
        Ok(())
    }

    fn parse_document(&self, body: &[u8]) -> Result<(Element, String), XcapError> {
        let limits = Limits {
            max_bytes: self.config.max_body,
            ..self.config.limits
        };
        let root = parse_with(body, &limits)
            .map_err(|e| xml_condition(&e.kind, Condition::NotWellFormed, e.to_string()))?;
        let text =
            String::from_utf8(body.to_vec()).map_err(|_| XcapError::new(Condition::NotUtf8))?;
        Ok((root, text))
    }

    fn validate(&self, usage: &Usage, root: &Element, key: &DocKey) -> Result<(), XcapError> {
        let ctx = Ctx {
            root: &self.config.root,
            key,
            store: &self.store,
        };
        (usage.validate)(root, &ctx)
    }

    /// Handles one request.
    pub fn handle(&mut self, req: &Request<'_>) -> Response {
        let method = req.method;
        if !matches!(method, "GET" | "PUT" | "DELETE") {
            return Response {
                allow: Some("GET, PUT, DELETE"),
                ..Response::status(405)
            };
        }
        if req.body.len() > self.config.max_body {
            return Response::text(413, "request body too large");
        }
        let u = match uri::parse(&self.config.root, req.target, usage::default_ns) {
            Ok(u) => u,
            Err(UriError::NotUnderRoot) => return Response::status(404),
            Err(e) => return Response::text(400, &e.to_string()),
        };
        let Some(usage) = usage::by_auid(&u.auid) else {
            return Response::text(404, "unknown application usage");
        };
        match &u.tree {
            Tree::Global if usage.read_only => {
                if u.document != xcap_caps::DOCUMENT {
                    return Response::status(404);
                }
                if method != "GET" {
                    return Response {
                        allow: Some("GET"),
                        ..Response::status(405)
                    };
                }
                let (text, etag) = self.caps.clone();
                return self.read(req, usage, &u, &text, &etag);
            }
            Tree::Global if method == "GET" => return Response::status(404),
            Tree::Global => return Response::text(403, "the global tree is read-only"),
            Tree::User(_) if usage.read_only => return Response::status(404),
            Tree::User(x) if x != req.user => {
                return Response::text(403, "a user may only access their own documents")
            }
            Tree::User(_) => {}
        }
        let key = DocKey::from_uri(&u);
        let etag = self.store.etag(&key).map(str::to_owned);
        if let Some(m) = req.if_match {
            if !etag.as_deref().is_some_and(|e| names_etag(m, e)) {
                return Response::status(412);
            }
        }
        if let (Some(m), Some(e)) = (req.if_none_match, etag.as_deref()) {
            if names_etag(m, e) {
                let status = if method == "GET" { 304 } else { 412 };
                return Response::status(status).with_etag(Some(e));
            }
        }
        match (method, self.store.text(&key)) {
            ("GET", None) | ("DELETE", None) => Response::status(404),
            ("GET", Some(text)) => {
                let text = text.to_owned();
                self.read(req, usage, &u, &text, etag.as_deref().unwrap_or(""))
            }
            ("DELETE", Some(_)) if u.node.is_none() => {
                self.store.remove(&key);
                Response::status(200)
            }
            ("PUT", _) if u.node.is_none() => self.put_document(req, usage, &key),
            ("PUT", None) => {
                let ancestor = match &u.tree {
                    Tree::User(x) => format!(
                        "{}/{}/users/{}",
                        self.config.root,
                        u.auid,
                        u.document_path.split('/').nth(2).unwrap_or(x)
                    ),
                    Tree::Global => format!("{}/{}/global", self.config.root, u.auid),
                };
                Response::conflict(&XcapError::with(
                    Condition::NoParent(Some(ancestor)),
                    "the document does not exist",
                ))
            }
            (_, Some(text)) => {
                let text = text.to_owned();
                self.modify(req, usage, &u, &key, &text)
            }
            _ => Response::status(405),
        }
    }

    fn read(
        &self,
        req: &Request<'_>,
        usage: &Usage,
        u: &uri::XcapUri,
        text: &str,
        etag: &str,
    ) -> Response {
        if let Some(m) = req.if_none_match {
            if names_etag(m, etag) {
                return Response::status(304).with_etag(Some(etag));
            }
        }
        let Some(sel) = &u.node else {
            return Response {
                content_type: Some(usage.mime),
                body: text.as_bytes().to_vec(),
                ..Response::status(200)
            }
            .with_etag(Some(etag));
        };
        let root = match parse_with(
            text.as_bytes(),
            &Limits {
                max_bytes: usize::MAX,
                ..self.config.limits
            },
        ) {
            Ok(r) => r,
            Err(_) => return Response::status(500),
        };
        match ops::get(&root, sel) {
            Ok((body, mime)) => Response {
                content_type: Some(mime),
                body: body.into_bytes(),
                ..Response::status(200)
            }
            .with_etag(Some(etag)),
            Err(_) => Response::status(404),
        }
    }

    fn put_document(&mut self, req: &Request<'_>, usage: &Usage, key: &DocKey) -> Response {
        if media_type(req.content_type) != usage.mime {
            return Response::text(
                415,
                &format!("documents of {} are {}", usage.auid, usage.mime),
            );
        }
        let result = self.check_quota(key).and_then(|()| {
            let (root, text) = self.parse_document(req.body)?;
            self.check_bytes(key, text.len())?;
            self.validate(usage, &root, key)?;
            Ok((root, text))
        });
        match result {
            Ok((root, text)) => {
                let created = self.store.text(key).is_none();
                let services = rls_services::service_uris(&root);
                let etag = self.store.put(key, text, services, true);
                Response::status(if created { 201 } else { 200 }).with_etag(Some(&etag))
            }
            Err(e) => Response::conflict(&e),
        }
    }

    fn modify(
        &mut self,
        req: &Request<'_>,
        usage: &Usage,
        u: &uri::XcapUri,
        key: &DocKey,
        text: &str,
    ) -> Response {
        let sel = u.node.as_ref().expect("node selector");
        let limits = Limits {
            max_bytes: self.config.max_body,
            ..self.config.limits
        };
        let Ok(mut root) = parse_with(
            text.as_bytes(),
            &Limits {
                max_bytes: usize::MAX,
                ..limits
            },
        ) else {
            return Response::status(500);
        };
        let result = if req.method == "PUT" {
            let ct = media_type(req.content_type);
            let decls = decls::root_declarations(text);
            ops::put(
                &mut root,
                sel,
                &ct,
                req.body,
                &limits,
                &self.doc_uri(u),
                &decls,
            )
        } else {
            ops::delete(&mut root, sel).map(|()| false)
        };
        let created = match result {
            Ok(c) => c,
            Err(Fail::NotFound) => return Response::status(404),
            Err(Fail::UnsupportedMediaType) => return Response::status(415),
            Err(Fail::Conflict(e)) => return Response::conflict(&e),
        };
        if let Err(e) = self.validate(usage, &root, key) {
            return Response::conflict(&e);
        }
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&decls::add_declarations(
            &root.to_xml(),
            &decls::root_declarations(text),
        ));
        if out.len() > self.config.max_body {
            return Response::conflict(&XcapError::constraint("the document would be too large"));
        }
        if let Err(e) = self.check_bytes(key, out.len()) {
            return Response::conflict(&e);
        }
        let services = rls_services::service_uris(&root);
        let etag = self.store.put(key, out, services, true);
        Response::status(if created { 201 } else { 200 }).with_etag(Some(&etag))
    }
}
