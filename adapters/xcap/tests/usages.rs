//! The application usages' constraints through the server: resource-lists and
//! rls-services (RFC 4826 s3.4, s4.3.5), pres-rules (RFC 5025, RFC 4745).

mod common;

use common::*;

const RL_OPEN: &str = r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">"#;

fn anchor(user: &str, doc: &str, list: &str) -> String {
    format!("http://xcap.example.com/xcap-root/resource-lists/users/{user}/{doc}/~~/resource-lists/list%5b@name=%22{list}%22%5d")
}

#[test]
fn entry_uri_unique_within_a_list_uniqueness_failure_rfc4826_s3_4() {
    let mut s = server();
    let d = format!(
        r#"{RL_OPEN}<list name="a"><entry uri="sip:x@example.com"/><entry uri="sip:x@example.com"/></list></resource-lists>"#
    );
    let r = put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d);
    assert_conflict(&r, "uniqueness-failure");
    let b = body(&r);
    assert!(
        b.contains(r#"<exists field="resource-lists/list[1]/entry[2]/@uri">"#),
        "{b}"
    );
    assert!(
        b.contains("<alt-value>sip:x-2@example.com</alt-value>"),
        "{b}"
    );
    // The same URI in two different lists is fine.
    let d = format!(
        r#"{RL_OPEN}<list name="a"><entry uri="sip:x@example.com"/></list><list name="b"><entry uri="sip:x@example.com"/></list></resource-lists>"#
    );
    assert_eq!(put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d).status, 201);
    // Adding a duplicate by element PUT is refused the same way.
    let t = format!(
        "{}/~~/resource-lists/list%5b@name=%22a%22%5d/entry%5b2%5d",
        rl(ALICE)
    );
    assert_conflict(
        &put(&mut s, &t, ALICE, EL, r#"<entry uri="sip:x@example.com"/>"#),
        "uniqueness-failure",
    );
}

#[test]
fn list_names_unique_among_siblings_rfc4826_s3_4() {
    let mut s = server();
    let d = format!(r#"{RL_OPEN}<list name="a"/><list name="a"/></resource-lists>"#);
    let r = put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d);
    assert_conflict(&r, "uniqueness-failure");
    assert!(
        body(&r).contains(r#"field="resource-lists/list[2]/@name""#),
        "{}",
        body(&r)
    );
    let d = format!(
        r#"{RL_OPEN}<list name="a"><list name="b"/><list name="b"/></list></resource-lists>"#
    );
    assert_conflict(
        &put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d),
        "uniqueness-failure",
    );
    let d = format!(r#"{RL_OPEN}<list name="a"><list name="a"/></list></resource-lists>"#);
    assert_eq!(put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d).status, 201);
}

#[test]
fn references_must_point_inside_the_xcap_root_rfc4826_s3_2_2_s3_2_3() {
    let mut s = server();
    for bad in [
        r#"<external anchor="http://elsewhere.example.com/other/resource-lists/users/a/index"/>"#,
        r#"<external anchor="sip:list@example.com"/>"#,
        r#"<entry-ref ref="/resource-lists/users/sip:bob@example.com/index"/>"#,
        r#"<entry-ref ref="http://xcap.example.com/xcap-root/resource-lists/users/b/index"/>"#,
        r#"<entry-ref ref="resource-lists/../../secret"/>"#,
    ] {
        let d = format!(r#"{RL_OPEN}<list name="a">{bad}</list></resource-lists>"#);
        assert_conflict(
            &put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d),
            "constraint-failure",
        );
    }
}

#[test]
fn a_list_referring_to_itself_is_409_constraint_failure_rfc4826_s3_4() {
    let mut s = server();
    // Directly.
    let d = format!(
        r#"{RL_OPEN}<list name="a"><external anchor="{}"/></list></resource-lists>"#,
        anchor(ALICE, "index", "a")
    );
    let r = put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d);
    assert_conflict(&r, "constraint-failure");
    // Through an inner list pointing at its ancestor.
    let d = format!(
        r#"{RL_OPEN}<list name="a"><list name="b"><external anchor="{}"/></list></list></resource-lists>"#,
        anchor(ALICE, "index", "a")
    );
    assert_conflict(
        &put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d),
        "constraint-failure",
    );
    // An entry-ref to the list holding it (not to an entry).
    let d = format!(
        r#"{RL_OPEN}<list name="a"><entry-ref ref="resource-lists/users/{ALICE}/index/~~/resource-lists/list%5b@name=%22a%22%5d"/></list></resource-lists>"#
    );
    assert_conflict(
        &put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d),
        "constraint-failure",
    );
    // A cycle through two documents: a -> other/b is fine until b -> index/a.
    let d = format!(
        r#"{RL_OPEN}<list name="a"><external anchor="{}"/></list></resource-lists>"#,
        anchor(ALICE, "other", "b")
    );
    assert_eq!(put(&mut s, &rl(ALICE), ALICE, RL_MIME, &d).status, 201);
    let other = doc("resource-lists", ALICE, "other");
    let ok = format!(
        r#"{RL_OPEN}<list name="b"><entry uri="sip:x@example.com"/></list></resource-lists>"#
    );
    assert_eq!(put(&mut s, &other, ALICE, RL_MIME, &ok).status, 201);
    let el = format!(r#"<external anchor="{}"/>"#, anchor(ALICE, "index", "a"));
    let t = format!("{other}/~~/resource-lists/list%5b@name=%22b%22%5d/external");
    assert_conflict(&put(&mut s, &t, ALICE, EL, &el), "constraint-failure");
    // The same anchor from a list that is not referred to is fine.
    let t = format!("{other}/~~/resource-lists/list%5b@name=%22c%22%5d");
    let r = put(
        &mut s,
        &t,
        ALICE,
        EL,
        &format!(r#"<list name="c">{el}</list>"#),
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    // References into another user's documents are not followed: the entry-ref to
    // Alice's list (not an entry) is accepted, telling Bob nothing about her lists.
    let d = format!(
        r#"{RL_OPEN}<list name="x"><entry-ref ref="resource-lists/users/{ALICE}/index/~~/resource-lists/list%5b@name=%22a%22%5d"/></list></resource-lists>"#
    );
    assert_eq!(put(&mut s, &rl(BOB), BOB, RL_MIME, &d).status, 201);
    // The same reference in Alice's own document is checked.
    let third = doc("resource-lists", ALICE, "third");
    assert_conflict(
        &put(&mut s, &third, ALICE, RL_MIME, &d),
        "constraint-failure",
    );
}

#[test]
fn rls_service_uri_unique_across_documents_rfc4826_s4_3_5() {
    let mut s = server();
    let target = doc("rls-services", ALICE, "index");
    let r = put(
        &mut s,
        &target,
        ALICE,
        RLS_MIME,
        &services("sip:alice-friends@example.com"),
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    // Same URI twice in one document.
    let r = put(
        &mut s,
        &target,
        ALICE,
        RLS_MIME,
        &services("sip:marketing@example.com"),
    );
    assert_conflict(&r, "uniqueness-failure");
    assert!(
        body(&r).contains("<alt-value>sip:marketing-2@example.com</alt-value>"),
        "{}",
        body(&r)
    );
    // Bob cannot take a URI Alice's document holds.
    let bobs = doc("rls-services", BOB, "index");
    let r = put(
        &mut s,
        &bobs,
        BOB,
        RLS_MIME,
        &services("sip:alice-friends@example.com"),
    );
    assert_conflict(&r, "uniqueness-failure");
    assert!(
        body(&r).contains(r#"field="rls-services/service[2]/@uri""#)
            || body(&r).contains(r#"field="rls-services/service[1]/@uri""#)
    );
    // Once Alice deletes hers, both URIs are free.
    assert_eq!(delete(&mut s, &target, ALICE).status, 200);
    let r = put(
        &mut s,
        &bobs,
        BOB,
        RLS_MIME,
        &services("sip:alice-friends@example.com"),
    );
    assert_eq!(r.status, 201, "{}", body(&r));
}

#[test]
fn rls_service_needs_a_list_or_resource_list_rfc4826_s4_2() {
    let mut s = server();
    let target = doc("rls-services", ALICE, "index");
    let d = r#"<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"><service uri="sip:a@example.com"><packages/></service></rls-services>"#;
    assert_conflict(
        &put(&mut s, &target, ALICE, RLS_MIME, d),
        "schema-validation-error",
    );
    let d = r#"<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"><service uri="sip:a@example.com"><resource-list>sip:not-http@example.com</resource-list></service></rls-services>"#;
    assert_conflict(
        &put(&mut s, &target, ALICE, RLS_MIME, d),
        "constraint-failure",
    );
    let d = r#"<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists"><service uri="sip:a@example.com"><list><rl:entry uri="sip:b@x"/><rl:entry uri="sip:b@x"/></list></service></rls-services>"#;
    assert_conflict(
        &put(&mut s, &target, ALICE, RLS_MIME, d),
        "uniqueness-failure",
    );
}

#[test]
fn pres_rules_accepts_the_rfc_example_and_refuses_duplicate_rule_ids_rfc5025_s9() {
    let mut s = server();
    let target = doc("pres-rules", ALICE, "index");
    let r = put(&mut s, &target, ALICE, PR_MIME, PRES_RULES);
    assert_eq!(r.status, 201, "{}", body(&r));
    // A second rule with the same id, by element PUT (default namespace: common-policy).
    let t = format!("{target}/~~/ruleset/rule%5b@id=%22a%22%5d");
    let r = put(&mut s, &t, ALICE, EL, r#"<cr:rule id="a"/>"#);
    assert_eq!(r.status, 200, "replacing by the same id: {}", body(&r));
    let t2 = format!("{target}/~~/ruleset/rule%5b2%5d");
    let r = put(&mut s, &t2, ALICE, EL, r#"<cr:rule id="a"/>"#);
    assert_conflict(&r, "uniqueness-failure");
    assert!(
        body(&r).contains(r#"field="ruleset/rule[2]/@id""#),
        "{}",
        body(&r)
    );
    let r = put(
        &mut s,
        &t2,
        ALICE,
        EL,
        r#"<cr:rule id="b"><cr:actions><pr:sub-handling>block</pr:sub-handling></cr:actions></cr:rule>"#,
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    let r = put(
        &mut s,
        &t2,
        ALICE,
        EL,
        r#"<cr:rule id="b"><cr:actions><pr:sub-handling>maybe</pr:sub-handling></cr:actions></cr:rule>"#,
    );
    assert_conflict(&r, "schema-validation-error");
    let bad = r#"<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy"><cr:rule id="1x"/></cr:ruleset>"#;
    assert_conflict(
        &put(&mut s, &target, ALICE, PR_MIME, bad),
        "schema-validation-error",
    );
    let bad = r#"<cr:ruleset xmlns:cr="urn:ietf:params:xml:ns:common-policy"><cr:rule id="r"><cr:actions/><cr:conditions/></cr:rule></cr:ruleset>"#;
    assert_conflict(
        &put(&mut s, &target, ALICE, PR_MIME, bad),
        "schema-validation-error",
    );
}

#[test]
fn corpus_resource_lists_document_is_accepted() {
    let Some(path) =
        shared("corpora/resource-lists-rlmi/rcsjta/ResourceListParserTest-sXmlContentToParse1.xml")
    else {
        println!("SKIP: shared corpus resource-lists-rlmi not found next to the workspace");
        return;
    };
    let text = std::fs::read(&path).unwrap();
    let mut s = server();
    let r = put(
        &mut s,
        &rl(ALICE),
        ALICE,
        RL_MIME,
        std::str::from_utf8(&text).unwrap(),
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    let a = get(
        &mut s,
        &format!("{}/~~/resource-lists/list/entry%5b3%5d/@uri", rl(ALICE)),
        ALICE,
    );
    assert_eq!(body(&a), "sip:ted@example.net");
}
