//! The `pres-rules` application usage (RFC 5025 s9): presence authorization rules,
//! a common-policy document (RFC 4745 s7: `<ruleset>` of `<rule id=...>` with
//! optional `<conditions>`, `<actions>`, `<transformations>` in that order) whose
//! actions and transformations use the pres-rules elements (RFC 5025 s3, s4).
//! Checked: the common-policy structure, rule ids unique and NCNames (RFC 4745:
//! `xs:ID`), `<identity>` with at least one `<one id>`/`<many>`, `<sphere value>`,
//! `<validity>` as `<from>`/`<until>` pairs, and `<sub-handling>` among the four
//! values of RFC 5025 s3.2.1.

use std::collections::HashSet;

use cpim_core::xml::Element;

use super::{check_attrs, expect_root, no_text, text_only, Ctx, Usage};
use crate::error::{Condition, Exists, XcapError};
use crate::uri::is_ncname;

/// RFC 4745 s7 common-policy namespace, the default document namespace (RFC 5025 s9.3).
pub const CP_NS: &str = "urn:ietf:params:xml:ns:common-policy";
/// RFC 5025 s5 pres-rules namespace.
pub const PR_NS: &str = "urn:ietf:params:xml:ns:pres-rules";

/// RFC 5025 s9.1 AUID, s9.2 MIME type.
pub const USAGE: Usage = Usage {
    auid: "pres-rules",
    mime: "application/auth-policy+xml",
    default_ns: CP_NS,
    read_only: false,
    validate,
};

fn validate(root: &Element, _ctx: &Ctx<'_>) -> Result<(), XcapError> {
    expect_root(root, CP_NS, "ruleset")?;
    check_attrs(root, &[], &[])?;
    no_text(root)?;
    let mut ids = HashSet::new();
    for (n, rule) in root.elements().enumerate() {
        if !rule.is(CP_NS, "rule") {
            return Err(XcapError::schema(format!(
                "<{}> inside <ruleset>",
                rule.name
            )));
        }
        check_attrs(rule, &["id"], &["id"])?;
        let id = rule.attr("id").unwrap_or("");
        if !is_ncname(id) {
            return Err(XcapError::schema(format!(
                "rule id {id:?} is not an NCName"
            )));
        }
        if !ids.insert(id) {
            return Err(XcapError::with(
                Condition::UniquenessFailure(vec![Exists {
                    field: format!("ruleset/rule[{}]/@id", n + 1),
                    alt_values: (2..100)
                        .map(|k| format!("{id}-{k}"))
                        .find(|c| !ids.contains(c.as_str()))
                        .into_iter()
                        .collect(),
                }]),
                format!("rule id {id:?} is used twice (RFC 4745 s7)"),
            ));
        }
        check_rule(rule)?;
    }
    Ok(())
}

fn check_rule(rule: &Element) -> Result<(), XcapError> {
    no_text(rule)?;
    let order = ["conditions", "actions", "transformations"];
    let mut next = 0;
    for part in rule.elements() {
        let at = order
            .iter()
            .position(|o| part.is(CP_NS, o))
            .filter(|&i| i >= next)
            .ok_or_else(|| XcapError::schema(format!("<{}> misplaced in <rule>", part.name)))?;
        next = at + 1;
        no_text(part)?;
        if at == 0 {
            check_conditions(part)?;
        } else {
            for e in part.elements() {
                if e.ns == CP_NS {
                    return Err(XcapError::schema(format!(
                        "<{}> inside <{}>",
                        e.name, part.name
                    )));
                }
                if e.is(PR_NS, "sub-handling") {
                    let v = e.trimmed_text();
                    if !["block", "confirm", "polite-block", "allow"].contains(&v.as_str()) {
                        return Err(XcapError::schema(format!(
                            "sub-handling {v:?} is not one of RFC 5025 s3.2.1's values"
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_conditions(c: &Element) -> Result<(), XcapError> {
    for e in c.elements().filter(|e| e.ns == CP_NS) {
        match e.name.as_str() {
            "identity" => {
                no_text(e)?;
                let mut any = false;
                for m in e.elements() {
                    any = true;
                    if m.is(CP_NS, "one") {
                        check_attrs(m, &["id"], &["id"])?;
                    } else if m.is(CP_NS, "many") {
                        check_attrs(m, &["domain"], &[])?;
                        for x in m.elements() {
                            if x.is(CP_NS, "except") {
                                check_attrs(x, &["domain", "id"], &[])?;
                            } else if x.ns == CP_NS {
                                return Err(XcapError::schema(format!(
                                    "<{}> inside <many>",
                                    x.name
                                )));
                            }
                        }
                    } else if m.ns == CP_NS {
                        return Err(XcapError::schema(format!("<{}> inside <identity>", m.name)));
                    }
                }
                if !any {
                    return Err(XcapError::schema("<identity> without <one> or <many>"));
                }
            }
            "sphere" => check_attrs(e, &["value"], &["value"])?,
            "validity" => {
                no_text(e)?;
                let names: Vec<&str> = e.elements().map(|x| x.name.as_str()).collect();
                let pairs = names.chunks(2).all(|p| p == ["from", "until"]);
                if names.is_empty() || !pairs || e.elements().any(|x| x.ns != CP_NS) {
                    return Err(XcapError::schema("<validity> is not <from>/<until> pairs"));
                }
                for x in e.elements() {
                    text_only(x)?;
                }
            }
            other => return Err(XcapError::schema(format!("<{other}> inside <conditions>"))),
        }
    }
    Ok(())
}
