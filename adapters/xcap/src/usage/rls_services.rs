//! The `rls-services` application usage (RFC 4826 s4): `<rls-services>` of
//! `<service uri=...>` elements, each with either a `<resource-list>` (an HTTP URI
//! under the XCAP root pointing to a resource list) or an inline `<list>` (the
//! resource-lists `listType`), then optional `<packages>` (s4.2). Constraints
//! (s4.3.5): a service's `uri` is unique across all services the server knows
//! (this document and every other user's), so that the RLS can find the one
//! service a SUBSCRIBE targets; a duplicate is a uniqueness failure with a
//! suggested alternative.

use std::collections::HashSet;

use cpim_core::xml::Element;

use super::resource_lists::{anchor_path, check_list};
use super::{alt_uri, check_attrs, expect_root, no_text, text_only, Ctx, Usage};
use crate::error::{Condition, Exists, XcapError};

/// RFC 4826 s4.2 namespace, the default document namespace (s4.3.3).
pub const NS: &str = "urn:ietf:params:xml:ns:rls-services";

/// RFC 4826 s4.3.1 AUID, s4.3.2 MIME type.
pub const USAGE: Usage = Usage {
    auid: "rls-services",
    mime: "application/rls-services+xml",
    default_ns: NS,
    read_only: false,
    validate,
};

/// The service URIs of an rls-services document (for the server's global index).
pub fn service_uris(root: &Element) -> Vec<String> {
    root.elements()
        .filter(|e| e.is(NS, "service"))
        .filter_map(|e| e.attr("uri").map(str::to_owned))
        .collect()
}

fn validate(root: &Element, ctx: &Ctx<'_>) -> Result<(), XcapError> {
    expect_root(root, NS, "rls-services")?;
    check_attrs(root, &[], &[])?;
    no_text(root)?;
    let mut uris = HashSet::new();
    for (n, s) in root.elements().enumerate() {
        let field = format!("rls-services/service[{}]", n + 1);
        if !s.is(NS, "service") {
            return Err(XcapError::schema(format!(
                "<{}> inside <rls-services>",
                s.name
            )));
        }
        check_service(s, &field, ctx.root)?;
        let uri = s.attr("uri").unwrap_or("");
        let elsewhere = |u: &str| ctx.store.service_owner(u).is_some_and(|k| k != ctx.key);
        if !uris.insert(uri) || elsewhere(uri) {
            let taken = |c: &str| uris.contains(c) || elsewhere(c);
            return Err(XcapError::with(
                Condition::UniquenessFailure(vec![Exists {
                    field: format!("{field}/@uri"),
                    alt_values: alt_uri(uri, &taken).into_iter().collect(),
                }]),
                format!("service uri {uri:?} is already in use (RFC 4826 s4.3.5)"),
            ));
        }
    }
    Ok(())
}

fn check_service(s: &Element, field: &str, root: &str) -> Result<(), XcapError> {
    check_attrs(s, &["uri"], &["uri"])?;
    no_text(s)?;
    let mut kids = s.elements().peekable();
    match kids.next() {
        Some(e) if e.is(NS, "resource-list") => {
            text_only(e)?;
            let t = e.trimmed_text();
            if anchor_path(&t, root).is_none() {
                return Err(XcapError::constraint(format!(
                    "resource-list {t:?} is not an HTTP URI under the XCAP root (RFC 4826 s4.3.5)"
                )));
            }
        }
        Some(e) if e.is(NS, "list") => check_list(e, &format!("{field}/list"), root)?,
        _ => {
            return Err(XcapError::schema(format!(
                "{field} has neither <resource-list> nor <list> first"
            )))
        }
    }
    if kids.peek().is_some_and(|e| e.is(NS, "packages")) {
        let p = kids.next().expect("peeked");
        no_text(p)?;
        for pk in p.elements() {
            if pk.is(NS, "package") {
                text_only(pk)?;
            } else if pk.ns == NS {
                return Err(XcapError::schema(format!(
                    "<{}> inside <packages>",
                    pk.name
                )));
            }
        }
    }
    for e in kids {
        if e.ns == NS {
            return Err(XcapError::schema(format!(
                "<{}> misplaced in {field}",
                e.name
            )));
        }
    }
    Ok(())
}
