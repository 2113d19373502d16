//! The namespace declarations of a document's root start tag. The element tree
//! keeps prefixes but not declarations, and writes back only the ones a subtree
//! uses; so that a document keeps its declared prefixes across element and
//! attribute operations (a client may PUT `<pr:x>` into a document whose root
//! declares `pr` but does not use it yet, RFC 4825 s7.4), the root's declarations
//! are read from the stored text and written back onto the rewritten root.

/// `(prefix, value as written)` of each `xmlns` / `xmlns:p` on the root start tag;
/// the prefix is `None` for the default namespace.
pub fn root_declarations(text: &str) -> Vec<(Option<String>, String)> {
    let Some(tag) = root_start_tag(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = tag;
    while let Some(i) = rest.find("xmlns") {
        let before_ok = rest[..i].ends_with(|c: char| c.is_ascii_whitespace());
        let after = &rest[i + 5..];
        let (prefix, after) = match after.strip_prefix(':') {
            Some(a) => {
                let end = a
                    .find(|c: char| c == '=' || c.is_ascii_whitespace())
                    .unwrap_or(a.len());
                (Some(a[..end].to_owned()), &a[end..])
            }
            None => (None, after),
        };
        let after = after.trim_start();
        let Some(after) = after.strip_prefix('=') else {
            rest = &rest[i + 5..];
            continue;
        };
        let after = after.trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            rest = &rest[i + 5..];
            continue;
        };
        let Some(end) = after[1..].find(q) else { break };
        if before_ok {
            out.push((prefix, after[1..1 + end].to_owned()));
        }
        rest = &after[end + 2..];
    }
    out
}

/// The root element's start tag (without `<` and `>`), skipping the prolog.
fn root_start_tag(text: &str) -> Option<&str> {
    let mut rest = text;
    loop {
        let i = rest.find('<')?;
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("<?") {
            rest = &r[r.find("?>")? + 2..];
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->")? + 3..];
        } else if rest.starts_with("<!") {
            return None;
        } else {
            break;
        }
    }
    let mut quote = None;
    for (i, c) in rest.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return Some(rest[1..i].trim_end_matches('/')),
            _ => {}
        }
    }
    None
}

/// Adds to the root start tag of `xml` (as [`cpim_core::xml::Element::to_xml`]
/// writes it, beginning with `<`) the declarations of `decls` whose prefix it does
/// not declare.
pub fn add_declarations(xml: &str, decls: &[(Option<String>, String)]) -> String {
    let Some(tag) = root_start_tag(xml) else {
        return xml.to_owned();
    };
    let present = root_declarations(xml);
    let name_end = tag
        .find(|c: char| c.is_ascii_whitespace())
        .unwrap_or(tag.len());
    let mut extra = String::new();
    for (p, v) in decls {
        if present.iter().any(|(pp, _)| pp == p) {
            continue;
        }
        match p {
            Some(p) => {
                extra.push_str(" xmlns:");
                extra.push_str(p);
            }
            None => extra.push_str(" xmlns"),
        }
        extra.push_str("=\"");
        extra.push_str(&v.replace('"', "&quot;"));
        extra.push('"');
    }
    let at = 1 + name_end;
    let mut out = String::with_capacity(xml.len() + extra.len());
    out.push_str(&xml[..at]);
    out.push_str(&extra);
    out.push_str(&xml[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations_survive_a_rewrite_rfc4825_s7_4() {
        let text = "<?xml version=\"1.0\"?>\n<!-- c --><cr:ruleset xmlns=\"urn:pr\"\n xmlns:pr='urn:pr' xmlns:cr=\"urn:cr\" a=\"x>y\"><cr:rule id=\"a\"/></cr:ruleset>";
        let d = root_declarations(text);
        assert_eq!(
            d,
            vec![
                (None, "urn:pr".to_owned()),
                (Some("pr".to_owned()), "urn:pr".to_owned()),
                (Some("cr".to_owned()), "urn:cr".to_owned()),
            ]
        );
        let rewritten = add_declarations("<cr:ruleset xmlns:cr=\"urn:cr\"/>", &d);
        assert_eq!(
            rewritten,
            "<cr:ruleset xmlns=\"urn:pr\" xmlns:pr=\"urn:pr\" xmlns:cr=\"urn:cr\"/>"
        );
        let doc = cpim_core::xml::parse(rewritten.as_bytes()).unwrap();
        assert!(doc.is("urn:cr", "ruleset"));
    }
}
