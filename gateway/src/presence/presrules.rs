//! A presentity's presence-authorization rules (RFC 5025 on RFC 4745 common-policy),
//! sans-IO: the `sub-handling` a pres-rules document gives one watcher.
//!
//! Evaluation (RFC 4745 s10, RFC 5025 s3):
//! - a rule matches when every condition in its `<conditions>` matches; a rule without
//!   conditions (absent or empty) matches every watcher (RFC 4745 s10);
//! - `<identity>` (RFC 4745 s7.1) matches when one of its `<one id>` names the watcher
//!   or one of its `<many>` covers it (`<many domain>`: the watcher's domain; `<many/>`:
//!   any authenticated watcher), unless an `<except id>` / `<except domain>` of that
//!   `<many>` excludes it. Identities compare scheme-neutrally (RFC 5025 s3.1: the
//!   watcher's authenticated URI, `sip:`, and for other protocols `pres:`/`im:`/`xmpp:`):
//!   `sip:bob@example.com`, `xmpp:bob@example.com` and `pres:bob@example.com` are the
//!   same watcher; the user part is compared as written, the domain case-insensitively
//!   (canonical domain comparison);
//! - `<sphere>` (RFC 4745 s7.2) and `<validity>` (RFC 4745 s7.3) need
//!   the presentity's current sphere and the wall clock, which the gateway does not
//!   evaluate here: a rule with either never matches, and neither does a rule with a
//!   condition this module does not know (RFC 4745 s10: a rule matches only when all
//!   of its conditions are shown true);
//! - the combined `sub-handling` is the largest value among the matching rules that
//!   carry one, in RFC 5025 s3.2.1's order `block` < `confirm` < `polite-block` <
//!   `allow` (RFC 4745 s10: the maximum). When no matching rule carries one the result is
//!   `None`: the gateway's own policy decides (RFC 5025 s3.2.1 would read it as `block`;
//!   under [`super::Policy::Ask`] the watcher stays pending, which grants nothing).

use cpim_core::address::Address;
use cpim_core::xml::Element;

pub use cpim_xcap::usage::pres_rules::{CP_NS, PR_NS};
/// The XCAP application usage of pres-rules documents (RFC 5025 s9.1).
pub const AUID: &str = cpim_xcap::usage::pres_rules::USAGE.auid;
/// The document name XCAP clients use for a user's rules (RFC 5025 s9 naming
/// conventions: `index`).
pub const DOCUMENT: &str = "index";

/// The `sub-handling` permission (RFC 5025 s3.2.1), ordered as the RFC orders its
/// values (block 0, confirm 10, polite-block 20, allow 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubHandling {
    /// Refuse the subscription (403; an active one ends `rejected`).
    Block,
    /// Keep it pending and ask the presentity.
    Confirm,
    /// Accept it but show the watcher no state of the presentity (offline).
    PoliteBlock,
    /// Accept it.
    Allow,
}

impl SubHandling {
    /// One of the four values of RFC 5025 s3.2.1.
    pub fn parse(s: &str) -> Option<SubHandling> {
        match s.trim() {
            "block" => Some(SubHandling::Block),
            "confirm" => Some(SubHandling::Confirm),
            "polite-block" => Some(SubHandling::PoliteBlock),
            "allow" => Some(SubHandling::Allow),
            _ => None,
        }
    }
}

/// Why a document was not taken as rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    /// Not well-formed XML.
    #[error("not XML: {0}")]
    Xml(String),
    /// Not a common-policy `<ruleset>`.
    #[error("not a common-policy ruleset")]
    NotRuleset,
}

/// One `<many>` of an `<identity>`, its domains in canonical form (as an
/// [`Address`]'s are), so that matching compares them as they are.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Many {
    domain: Option<String>,
    except_domains: Vec<String>,
    except_ids: Vec<Address>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Condition {
    /// `<identity>`: the `<one id>`s and `<many>`s.
    Identity { ones: Vec<Address>, many: Vec<Many> },
    /// A condition the gateway does not evaluate (`<sphere>`, `<validity>`, an
    /// extension, an unparseable identity): never matches.
    Never,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    conditions: Vec<Condition>,
    sub_handling: Option<SubHandling>,
}

/// A parsed pres-rules document.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PresRules {
    rules: Vec<Rule>,
}

fn parse_id(id: &str) -> Option<Address> {
    Address::parse(id).ok().map(|a| a.bare())
}

fn parse_many(m: &Element) -> Many {
    let mut many = Many {
        domain: m.attr("domain").map(cpim_core::domain::canonical_or_raw),
        except_domains: Vec::new(),
        except_ids: Vec::new(),
    };
    for x in m.elements().filter(|x| x.is(CP_NS, "except")) {
        if let Some(d) = x.attr("domain") {
            many.except_domains
                .push(cpim_core::domain::canonical_or_raw(d));
        }
        if let Some(a) = x.attr("id").and_then(parse_id) {
            many.except_ids.push(a);
        }
    }
    many
}

fn parse_condition(c: &Element) -> Condition {
    if !c.is(CP_NS, "identity") {
        return Condition::Never;
    }
    let mut ones = Vec::new();
    let mut many = Vec::new();
    for m in c.elements() {
        if m.is(CP_NS, "one") {
            // An id the gateway cannot read names nobody it could match.
            if let Some(a) = m.attr("id").and_then(parse_id) {
                ones.push(a);
            }
        } else if m.is(CP_NS, "many") {
            many.push(parse_many(m));
        }
    }
    Condition::Identity { ones, many }
}

impl Condition {
    fn matches(&self, watcher: &Address) -> bool {
        match self {
            Condition::Never => false,
            Condition::Identity { ones, many } => {
                ones.iter().any(|o| o.same_user(watcher))
                    || many.iter().any(|m| {
                        m.domain.as_ref().is_none_or(|d| *d == watcher.domain)
                            && !m.except_domains.contains(&watcher.domain)
                            && !m.except_ids.iter().any(|x| x.same_user(watcher))
                    })
            }
        }
    }
}

impl PresRules {
    /// Parses a pres-rules document (the XCAP usage has validated its structure; this
    /// reads what evaluation needs and takes an unknown part as a condition that
    /// never matches).
    pub fn parse(doc: &[u8]) -> Result<PresRules, RulesError> {
        let root = cpim_core::xml::parse(doc).map_err(|e| RulesError::Xml(e.to_string()))?;
        PresRules::from_element(&root)
    }

    /// As [`PresRules::parse`], from a parsed `<ruleset>`.
    pub fn from_element(root: &Element) -> Result<PresRules, RulesError> {
        if !root.is(CP_NS, "ruleset") {
            return Err(RulesError::NotRuleset);
        }
        let rules = root
            .elements()
            .filter(|r| r.is(CP_NS, "rule"))
            .map(|r| Rule {
                conditions: r
                    .child(CP_NS, "conditions")
                    .map(|c| c.elements().map(parse_condition).collect())
                    .unwrap_or_default(),
                sub_handling: r
                    .child(CP_NS, "actions")
                    .and_then(|a| a.child(PR_NS, "sub-handling"))
                    .and_then(|s| SubHandling::parse(&s.trimmed_text())),
            })
            .collect();
        Ok(PresRules { rules })
    }

    /// The combined `sub-handling` for `watcher` (see the module docs); `None`: no
    /// matching rule says anything about subscriptions.
    pub fn sub_handling(&self, watcher: &Address) -> Option<SubHandling> {
        let w = watcher.bare();
        self.rules
            .iter()
            .filter(|r| r.conditions.iter().all(|c| c.matches(&w)))
            .filter_map(|r| r.sub_handling)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn doc(rules: &str) -> PresRules {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
    xmlns:pr="urn:ietf:params:xml:ns:pres-rules"
    xmlns:cr="urn:ietf:params:xml:ns:common-policy">{rules}</cr:ruleset>"#
        );
        PresRules::parse(xml.as_bytes()).unwrap()
    }

    fn rule(id: &str, conditions: &str, handling: &str) -> String {
        format!(
            "<cr:rule id=\"{id}\"><cr:conditions>{conditions}</cr:conditions>\
             <cr:actions><pr:sub-handling>{handling}</pr:sub-handling></cr:actions></cr:rule>"
        )
    }

    /// A document in the shape of RFC 5025's example document: one rule allowing one SIP
    /// identity, with transformations the evaluation leaves alone.
    #[test]
    fn rfc5025_example_document_allows_the_named_watcher_only() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
    xmlns:pr="urn:ietf:params:xml:ns:pres-rules"
    xmlns:cr="urn:ietf:params:xml:ns:common-policy">
  <cr:rule id="a">
    <cr:conditions>
      <cr:identity>
        <cr:one id="sip:user@example.com"/>
      </cr:identity>
    </cr:conditions>
    <cr:actions>
      <pr:sub-handling>allow</pr:sub-handling>
    </cr:actions>
    <cr:transformations>
      <pr:provide-services>
        <pr:service-uri-scheme>sip</pr:service-uri-scheme>
        <pr:service-uri-scheme>mailto</pr:service-uri-scheme>
      </pr:provide-services>
      <pr:provide-persons><pr:all-persons/></pr:provide-persons>
      <pr:provide-activities>true</pr:provide-activities>
      <pr:provide-user-input>bare</pr:provide-user-input>
      <pr:provide-unknown-attribute ns="urn:vendor:ns" name="foo">true</pr:provide-unknown-attribute>
    </cr:transformations>
  </cr:rule>
</cr:ruleset>"#;
        let r = PresRules::parse(xml.as_bytes()).unwrap();
        assert_eq!(
            r.sub_handling(&addr("sip:user@example.com")),
            Some(SubHandling::Allow)
        );
        assert_eq!(r.sub_handling(&addr("sip:other@example.com")), None);
    }

    #[test]
    fn rfc5025_s3_2_1_values_are_ordered_block_confirm_polite_allow() {
        use SubHandling::*;
        assert!(Block < Confirm && Confirm < PoliteBlock && PoliteBlock < Allow);
        assert_eq!(SubHandling::parse("polite-block"), Some(PoliteBlock));
        assert_eq!(SubHandling::parse("deny"), None);
    }

    #[test]
    fn rfc4745_s10_combined_value_is_the_maximum_of_matching_rules() {
        let r = doc(&[
            rule("a", "<cr:identity><cr:many/></cr:identity>", "block"),
            rule(
                "b",
                "<cr:identity><cr:one id=\"sip:bob@example.com\"/></cr:identity>",
                "polite-block",
            ),
            rule(
                "c",
                "<cr:identity><cr:many domain=\"example.com\"/></cr:identity>",
                "confirm",
            ),
        ]
        .concat());
        assert_eq!(
            r.sub_handling(&addr("sip:bob@example.com")),
            Some(SubHandling::PoliteBlock)
        );
        assert_eq!(
            r.sub_handling(&addr("sip:carol@example.com")),
            Some(SubHandling::Confirm)
        );
        assert_eq!(
            r.sub_handling(&addr("sip:eve@elsewhere.org")),
            Some(SubHandling::Block)
        );
    }

    #[test]
    fn rfc4745_s10_no_matching_rule_gives_no_decision() {
        let r = doc(&rule(
            "a",
            "<cr:identity><cr:one id=\"sip:bob@example.com\"/></cr:identity>",
            "allow",
        ));
        assert_eq!(r.sub_handling(&addr("sip:alice@example.com")), None);
        assert_eq!(doc("").sub_handling(&addr("sip:bob@example.com")), None);
        // A matching rule without sub-handling says nothing either.
        let r = doc("<cr:rule id=\"x\"><cr:conditions/></cr:rule>");
        assert_eq!(r.sub_handling(&addr("sip:bob@example.com")), None);
    }

    #[test]
    fn rfc4745_s10_rule_without_conditions_matches_everyone() {
        let r = doc(
            "<cr:rule id=\"all\"><cr:actions><pr:sub-handling>allow</pr:sub-handling>\
             </cr:actions></cr:rule>",
        );
        assert_eq!(
            r.sub_handling(&addr("xmpp:anyone@jabber.example")),
            Some(SubHandling::Allow)
        );
    }

    #[test]
    fn rfc4745_s7_1_many_with_except_domain_and_id() {
        let r = doc(&rule(
            "a",
            "<cr:identity><cr:many domain=\"example.com\">\
               <cr:except id=\"sip:mallory@example.com\"/></cr:many>\
             <cr:many><cr:except domain=\"example.com\"/><cr:except domain=\"spam.example\"/>\
             </cr:many></cr:identity>",
            "allow",
        ));
        assert_eq!(
            r.sub_handling(&addr("sip:bob@EXAMPLE.com")),
            Some(SubHandling::Allow)
        );
        assert_eq!(r.sub_handling(&addr("sip:mallory@example.com")), None);
        assert_eq!(
            r.sub_handling(&addr("xmpp:zed@other.org")),
            Some(SubHandling::Allow)
        );
        assert_eq!(r.sub_handling(&addr("sip:x@spam.example")), None);
    }

    #[test]
    fn rfc5025_s3_1_identities_compare_across_schemes_and_domain_case() {
        let r = doc(&rule(
            "a",
            "<cr:identity><cr:one id=\"sip:bob@Example.COM\"/>\
             <cr:one id=\"xmpp:juliet@capulet.example\"/></cr:identity>",
            "allow",
        ));
        for w in [
            "sip:bob@example.com",
            "xmpp:bob@example.com/phone",
            "pres:bob@example.com",
            "im:juliet@capulet.example",
            "sip:juliet@CAPULET.example",
        ] {
            assert_eq!(r.sub_handling(&addr(w)), Some(SubHandling::Allow), "{w}");
        }
        // The user part is not folded.
        assert_eq!(r.sub_handling(&addr("sip:Bob@example.com")), None);
    }

    #[test]
    fn rfc4745_s7_2_s7_3_sphere_and_validity_rules_do_not_match() {
        let id = "<cr:identity><cr:one id=\"sip:bob@example.com\"/></cr:identity>";
        let r = doc(&[
            rule("s", &format!("{id}<cr:sphere value=\"work\"/>"), "allow"),
            rule(
                "v",
                &format!(
                    "{id}<cr:validity><cr:from>2000-01-01T00:00:00Z</cr:from>\
                         <cr:until>2999-01-01T00:00:00Z</cr:until></cr:validity>"
                ),
                "allow",
            ),
            rule(
                "x",
                &format!("{id}<ext:where xmlns:ext=\"urn:x\"/>"),
                "allow",
            ),
            rule("c", id, "confirm"),
        ]
        .concat());
        assert_eq!(
            r.sub_handling(&addr("sip:bob@example.com")),
            Some(SubHandling::Confirm)
        );
    }

    #[test]
    fn not_a_ruleset_is_an_error() {
        assert_eq!(
            PresRules::parse(b"<resource-lists xmlns=\"urn:x\"/>"),
            Err(RulesError::NotRuleset)
        );
        assert!(matches!(
            PresRules::parse(b"<cr:ruleset"),
            Err(RulesError::Xml(_))
        ));
    }
}
