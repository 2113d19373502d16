//! XCAP operations through the sans-IO server (RFC 4825 s7, s8, s11): documents,
//! elements, attributes, ETags and conditional requests, authorization, caps,
//! persistence.

mod common;

use common::*;
use cpim_xcap::{Change, Config, Request, XcapServer};

fn with_friends() -> XcapServer {
    let mut s = server();
    assert_eq!(put(&mut s, &rl(ALICE), ALICE, RL_MIME, FRIENDS).status, 201);
    s
}

fn friends_sel(rest: &str) -> String {
    format!(
        "{}/~~/resource-lists/list%5b@name=%22friends%22%5d{rest}",
        rl(ALICE)
    )
}

#[test]
fn put_then_get_document_returns_the_bytes_put_rfc4825_s8_2_1_s8_2_2() {
    let mut s = server();
    let r = put(&mut s, &rl(ALICE), ALICE, RL_MIME, FRIENDS);
    assert_eq!(r.status, 201);
    let etag1 = r.etag.clone().unwrap();
    let g = get(&mut s, &rl(ALICE), ALICE);
    assert_eq!(g.status, 200);
    assert_eq!(g.content_type, Some(RL_MIME));
    assert_eq!(body(&g), FRIENDS);
    assert_eq!(g.etag.as_deref(), Some(etag1.as_str()));
    // Replacing: 200 and a new ETag, even for the same content.
    let r = put(&mut s, &rl(ALICE), ALICE, RL_MIME, FRIENDS);
    assert_eq!(r.status, 200);
    assert_ne!(r.etag.unwrap(), etag1);
    assert_eq!(
        get(&mut s, &doc("resource-lists", ALICE, "other"), ALICE).status,
        404
    );
}

#[test]
fn get_element_and_attribute_rfc4825_s8_2_2() {
    let mut s = with_friends();
    let g = get(
        &mut s,
        &friends_sel("/entry%5b@uri=%22sip:bill@example.com%22%5d"),
        ALICE,
    );
    assert_eq!(g.status, 200);
    assert_eq!(g.content_type, Some(EL));
    let e = cpim_core::xml::parse(&g.body).unwrap();
    assert!(e.is("urn:ietf:params:xml:ns:resource-lists", "entry"));
    assert_eq!(e.attr("uri"), Some("sip:bill@example.com"));
    let a = get(
        &mut s,
        &friends_sel("/list%5b@name=%22close-friends%22%5d/entry%5b2%5d/@uri"),
        ALICE,
    );
    assert_eq!((a.status, a.content_type), (200, Some(ATT)));
    assert_eq!(body(&a), "sip:nancy@example.com");
    assert_eq!(
        get(&mut s, &friends_sel("/entry%5b9%5d"), ALICE).status,
        404
    );
    assert_eq!(get(&mut s, &friends_sel("/@nothing"), ALICE).status, 404);
}

#[test]
fn put_element_inserts_then_replaces_rfc4825_s8_2_3() {
    let mut s = with_friends();
    let target = friends_sel("/entry%5b@uri=%22sip:ann@example.com%22%5d");
    // No namespace declaration in the body: it inherits the parent's (s7.4).
    let r = put(
        &mut s,
        &target,
        ALICE,
        EL,
        r#"<entry uri="sip:ann@example.com"/>"#,
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    let g = get(&mut s, &target, ALICE);
    assert_eq!(g.status, 200);
    assert_eq!(g.etag, r.etag);
    let r = put(
        &mut s,
        &target,
        ALICE,
        EL,
        r#"<entry uri="sip:ann@example.com"><display-name>Ann</display-name></entry>"#,
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    assert!(body(&get(&mut s, &target, ALICE)).contains("<display-name>Ann</display-name>"));
    // Positional: entry[2] exists (ann) and is replaced; entry[3] is inserted
    // after it.
    let r = put(
        &mut s,
        &friends_sel("/entry%5b2%5d"),
        ALICE,
        EL,
        r#"<entry uri="sip:second@example.com"/>"#,
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let r = put(
        &mut s,
        &friends_sel("/entry%5b3%5d"),
        ALICE,
        EL,
        r#"<entry uri="sip:third@example.com"/>"#,
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    let g = get(&mut s, &friends_sel("/entry%5b3%5d/@uri"), ALICE);
    assert_eq!(body(&g), "sip:third@example.com");
    let g = get(&mut s, &friends_sel("/entry%5b2%5d/@uri"), ALICE);
    assert_eq!(body(&g), "sip:second@example.com");
}

#[test]
fn put_element_that_would_not_be_selected_is_409_cannot_insert_rfc4825_s8_2_3() {
    let mut s = with_friends();
    let target = friends_sel("/entry%5b@uri=%22sip:ann@example.com%22%5d");
    let r = put(
        &mut s,
        &target,
        ALICE,
        EL,
        r#"<entry uri="sip:other@example.com"/>"#,
    );
    assert_conflict(&r, "cannot-insert");
    // Position 9 with two entries: the new one could not be the 9th.
    let r = put(
        &mut s,
        &friends_sel("/entry%5b9%5d"),
        ALICE,
        EL,
        r#"<entry uri="sip:x@example.com"/>"#,
    );
    assert_conflict(&r, "cannot-insert");
    // Nothing changed.
    assert_eq!(body(&get(&mut s, &rl(ALICE), ALICE)), FRIENDS);
}

#[test]
fn put_element_without_parent_is_409_no_parent_with_ancestor_rfc4825_s8_2_3_s11_2() {
    let mut s = with_friends();
    let r = put(
        &mut s,
        &format!(
            "{}/~~/resource-lists/list%5b@name=%22nope%22%5d/entry",
            rl(ALICE)
        ),
        ALICE,
        EL,
        r#"<entry uri="sip:x@example.com"/>"#,
    );
    assert_conflict(&r, "no-parent");
    let b = body(&r);
    assert!(
        b.contains(&format!(
            "<ancestor>{}/~~/resource-lists</ancestor>",
            rl(ALICE)
        )),
        "{b}"
    );
    // An element into a document that does not exist.
    let r = put(
        &mut s,
        &format!(
            "{}/~~/resource-lists/list",
            doc("resource-lists", ALICE, "none")
        ),
        ALICE,
        EL,
        "<list/>",
    );
    assert_conflict(&r, "no-parent");
}

#[test]
fn malformed_bodies_are_409_with_their_condition_rfc4825_s11_2() {
    let mut s = server();
    assert_conflict(
        &put(&mut s, &rl(ALICE), ALICE, RL_MIME, "<resource-lists"),
        "not-well-formed",
    );
    let r = s.handle(&Request {
        content_type: Some(RL_MIME),
        body: b"<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">\xff</resource-lists>",
        ..req("PUT", &rl(ALICE), ALICE)
    });
    assert_conflict(&r, "not-utf-8");
    assert_conflict(
        &put(
            &mut s,
            &rl(ALICE),
            ALICE,
            RL_MIME,
            "<other xmlns=\"urn:x\"/>",
        ),
        "schema-validation-error",
    );
    assert_conflict(
        &put(
            &mut s,
            &rl(ALICE),
            ALICE,
            RL_MIME,
            r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><entry uri="sip:a@b"/></resource-lists>"#,
        ),
        "schema-validation-error",
    );
    // A DOCTYPE is refused by the reader.
    assert_conflict(
        &put(
            &mut s,
            &rl(ALICE),
            ALICE,
            RL_MIME,
            "<!DOCTYPE x [<!ENTITY a \"b\">]><resource-lists/>",
        ),
        "not-well-formed",
    );
    assert_eq!(put(&mut s, &rl(ALICE), ALICE, RL_MIME, FRIENDS).status, 201);
    let target = friends_sel("/entry%5b@uri=%22sip:z@example.com%22%5d");
    assert_conflict(
        &put(
            &mut s,
            &target,
            ALICE,
            EL,
            r#"<entry uri="sip:z@example.com"/><entry uri="sip:y@example.com"/>"#,
        ),
        "not-xml-frag",
    );
    assert_conflict(
        &put(&mut s, &target, ALICE, EL, "just text"),
        "not-xml-frag",
    );
    assert_conflict(
        &put(&mut s, &friends_sel("/@name"), ALICE, ATT, "a\"b"),
        "not-xml-att-value",
    );
    // Wrong body types.
    assert_eq!(
        put(&mut s, &rl(ALICE), ALICE, "application/xml", FRIENDS).status,
        415
    );
    assert_eq!(
        put(
            &mut s,
            &target,
            ALICE,
            RL_MIME,
            "<entry uri=\"sip:z@example.com\"/>"
        )
        .status,
        415
    );
}

#[test]
fn attributes_put_and_delete_rfc4825_s8_2_3_s8_2_5() {
    let mut s = with_friends();
    let close = "/list%5b@name=%22close-friends%22%5d";
    let r = put(
        &mut s,
        &friends_sel(&format!("{close}/entry%5b1%5d/@uri")),
        ALICE,
        ATT,
        "sip:joseph@example.com",
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let g = get(
        &mut s,
        &friends_sel(&format!("{close}/entry%5b1%5d/@uri")),
        ALICE,
    );
    assert_eq!(body(&g), "sip:joseph@example.com");
    // Renaming the list the URI selects by name: no longer selected.
    let r = put(
        &mut s,
        &friends_sel(&format!("{close}/@name")),
        ALICE,
        ATT,
        "renamed",
    );
    assert_conflict(&r, "cannot-insert");
    // A qualified attribute (anyAttribute ##other), escaped value round trip.
    let cc = friends_sel(&format!(
        "{close}/entry%5b2%5d/@cp:copyControl?xmlns(cp=urn:ietf:params:xml:ns:copycontrol)"
    ));
    let r = put(&mut s, &cc, ALICE, ATT, "a &amp; b");
    assert_eq!(r.status, 201, "{}", body(&r));
    assert_eq!(body(&get(&mut s, &cc, ALICE)), "a &amp; b");
    let e = get(
        &mut s,
        &friends_sel(&format!("{close}/entry%5b2%5d")),
        ALICE,
    );
    let e = cpim_core::xml::parse(&e.body).unwrap();
    assert_eq!(
        e.attr_ns("urn:ietf:params:xml:ns:copycontrol", "copyControl"),
        Some("a & b")
    );
    assert_eq!(delete(&mut s, &cc, ALICE).status, 200);
    assert_eq!(get(&mut s, &cc, ALICE).status, 404);
    // An unqualified attribute the schema does not have: refused by validation.
    let y = friends_sel(&format!("{close}/entry%5b2%5d/@y"));
    assert_conflict(&put(&mut s, &y, ALICE, ATT, "v"), "schema-validation-error");
    assert_eq!(get(&mut s, &y, ALICE).status, 404);
}

#[test]
fn delete_element_and_409_cannot_delete_rfc4825_s8_2_5() {
    let mut s = with_friends();
    let close = "/list%5b@name=%22close-friends%22%5d";
    // Deleting entry[1] would let the URI select the next entry.
    assert_conflict(
        &delete(
            &mut s,
            &friends_sel(&format!("{close}/entry%5b1%5d")),
            ALICE,
        ),
        "cannot-delete",
    );
    let target = friends_sel(&format!(
        "{close}/entry%5b@uri=%22sip:joe@example.com%22%5d"
    ));
    assert_eq!(delete(&mut s, &target, ALICE).status, 200);
    assert_eq!(get(&mut s, &target, ALICE).status, 404);
    assert_eq!(delete(&mut s, &target, ALICE).status, 404);
    assert_conflict(
        &delete(&mut s, &format!("{}/~~/resource-lists", rl(ALICE)), ALICE),
        "cannot-delete",
    );
    assert_eq!(delete(&mut s, &rl(ALICE), ALICE).status, 200);
    assert_eq!(get(&mut s, &rl(ALICE), ALICE).status, 404);
}

#[test]
fn conditional_requests_412_and_304_rfc4825_s8_5() {
    let mut s = server();
    let cond = |m, im: Option<&'static str>, inm: Option<&'static str>| Request {
        if_match: im,
        if_none_match: inm,
        content_type: Some(RL_MIME),
        body: FRIENDS.as_bytes(),
        ..req(m, "", ALICE)
    };
    let target = rl(ALICE);
    // If-Match on a missing document.
    let r = s.handle(&Request {
        target: &target,
        ..cond("PUT", Some("*"), None)
    });
    assert_eq!(r.status, 412);
    // Create only if absent.
    let r = s.handle(&Request {
        target: &target,
        ..cond("PUT", None, Some("*"))
    });
    assert_eq!(r.status, 201);
    let etag = r.etag.unwrap();
    let r = s.handle(&Request {
        target: &target,
        ..cond("PUT", None, Some("*"))
    });
    assert_eq!(r.status, 412);
    let r = s.handle(&Request {
        target: &target,
        ..cond("PUT", Some("\"stale\""), None)
    });
    assert_eq!(r.status, 412);
    let r = s.handle(&Request {
        target: &target,
        if_none_match: Some(&etag),
        ..req("GET", "", ALICE)
    });
    assert_eq!(r.status, 304);
    let sel = format!("{target}/~~/resource-lists/list%5b@name=%22friends%22%5d/@name");
    let r = s.handle(&Request {
        target: &sel,
        if_match: Some("\"nope\", \"other\""),
        ..req("DELETE", "", ALICE)
    });
    assert_eq!(r.status, 412);
    let r = s.handle(&Request {
        target: &target,
        if_match: Some(&etag),
        ..cond("PUT", None, None)
    });
    assert_eq!(r.status, 200);
    assert_ne!(r.etag.unwrap(), etag);
}

#[test]
fn another_users_documents_are_403_rfc4825_s8_1_rfc4826_s3_6() {
    let mut s = with_friends();
    assert_eq!(get(&mut s, &rl(ALICE), BOB).status, 403);
    assert_eq!(put(&mut s, &rl(ALICE), BOB, RL_MIME, FRIENDS).status, 403);
    assert_eq!(delete(&mut s, &rl(ALICE), BOB).status, 403);
    assert_eq!(
        put(
            &mut s,
            "/xcap-root/resource-lists/global/index",
            ALICE,
            RL_MIME,
            FRIENDS
        )
        .status,
        403
    );
    assert_eq!(
        get(
            &mut s,
            "/xcap-root/nope/users/sip:alice@example.com/index",
            ALICE
        )
        .status,
        404
    );
    assert_eq!(s.handle(&req("POST", &rl(ALICE), ALICE)).status, 405);
}

#[test]
fn a_50_mb_put_is_413_before_parsing() {
    let mut s = server();
    let big = vec![b'<'; 50 * 1024 * 1024];
    let r = s.handle(&Request {
        content_type: Some(RL_MIME),
        body: &big,
        ..req("PUT", &rl(ALICE), ALICE)
    });
    assert_eq!(r.status, 413);
    assert_eq!(s.document_count(), 0);
}

#[test]
fn document_caps_are_409_constraint_failure() {
    let mut c = Config::new("/xcap-root", [1; 32]);
    c.max_documents_per_user = 2;
    c.max_documents = 3;
    let mut s = XcapServer::new(c);
    for n in ["a", "b"] {
        assert_eq!(
            put(
                &mut s,
                &doc("resource-lists", ALICE, n),
                ALICE,
                RL_MIME,
                FRIENDS
            )
            .status,
            201
        );
    }
    assert_conflict(
        &put(
            &mut s,
            &doc("resource-lists", ALICE, "c"),
            ALICE,
            RL_MIME,
            FRIENDS,
        ),
        "constraint-failure",
    );
    // Replacing an existing one is fine.
    assert_eq!(
        put(
            &mut s,
            &doc("resource-lists", ALICE, "a"),
            ALICE,
            RL_MIME,
            FRIENDS
        )
        .status,
        200
    );
    assert_eq!(put(&mut s, &rl(BOB), BOB, RL_MIME, FRIENDS).status, 201);
    assert_conflict(
        &put(
            &mut s,
            &doc("resource-lists", BOB, "x"),
            BOB,
            RL_MIME,
            FRIENDS,
        ),
        "constraint-failure",
    );
}

#[test]
fn xcap_caps_is_global_and_read_only_rfc4825_s12() {
    let mut s = server();
    let g = get(&mut s, "/xcap-root/xcap-caps/global/index", ALICE);
    assert_eq!(
        (g.status, g.content_type),
        (200, Some("application/xcap-caps+xml"))
    );
    let b = body(&g);
    for auid in ["resource-lists", "rls-services", "pres-rules", "xcap-caps"] {
        assert!(b.contains(&format!("<auid>{auid}</auid>")), "{b}");
    }
    let a = get(
        &mut s,
        "/xcap-root/xcap-caps/global/index/~~/xcap-caps/auids/auid%5b1%5d",
        ALICE,
    );
    assert_eq!(
        body(&a),
        "<auid xmlns=\"urn:ietf:params:xml:ns:xcap-caps\">resource-lists</auid>"
    );
    let p = put(
        &mut s,
        "/xcap-root/xcap-caps/global/index",
        ALICE,
        "application/xcap-caps+xml",
        &b,
    );
    assert_eq!((p.status, p.allow), (405, Some("GET")));
    assert_eq!(
        delete(&mut s, "/xcap-root/xcap-caps/global/index", ALICE).status,
        405
    );
    assert_eq!(
        get(&mut s, &doc("xcap-caps", ALICE, "index"), ALICE).status,
        404
    );
}

#[test]
fn changes_are_reported_and_restored_byte_exact() {
    let mut s = with_friends();
    let c = s.poll_change().unwrap();
    assert_eq!(
        c,
        Change {
            user: ALICE.into(),
            auid: "resource-lists".into(),
            document: "index".into(),
            content: Some(FRIENDS.as_bytes().to_vec()),
        }
    );
    assert!(s.poll_change().is_none());
    // A refused request changes nothing.
    put(
        &mut s,
        &friends_sel("/entry%5b9%5d"),
        ALICE,
        EL,
        "<entry uri=\"sip:q@example.com\"/>",
    );
    assert!(s.poll_change().is_none());
    let mut again = server();
    again
        .restore(&c.user, &c.auid, &c.document, c.content.as_deref().unwrap())
        .unwrap();
    assert!(again.poll_change().is_none());
    assert_eq!(body(&get(&mut again, &rl(ALICE), ALICE)), FRIENDS);
    assert!(again
        .restore(ALICE, "resource-lists", "bad", b"<x/>")
        .is_err());
    assert_eq!(delete(&mut s, &rl(ALICE), ALICE).status, 200);
    assert_eq!(s.poll_change().unwrap().content, None);
}

#[test]
fn total_bytes_cap_is_409_constraint_failure() {
    let mut c = Config::new("/xcap-root", [1; 32]);
    c.max_total_bytes = FRIENDS.len() * 3 + 10;
    let mut s = XcapServer::new(c);
    for n in ["a", "b", "c"] {
        let r = put(
            &mut s,
            &doc("resource-lists", ALICE, n),
            ALICE,
            RL_MIME,
            FRIENDS,
        );
        assert_eq!(r.status, 201);
    }
    let d = doc("resource-lists", ALICE, "d");
    assert_conflict(
        &put(&mut s, &d, ALICE, RL_MIME, FRIENDS),
        "constraint-failure",
    );
    // Growing a document past the cap by an element PUT is refused too.
    let user = "x".repeat(200);
    let t = format!(
        "{}/~~/resource-lists/list%5b@name=%22friends%22%5d/entry%5b@uri=%22sip:{user}@example.com%22%5d",
        doc("resource-lists", ALICE, "a")
    );
    let el = format!("<entry uri=\"sip:{user}@example.com\"/>");
    assert_conflict(&put(&mut s, &t, ALICE, EL, &el), "constraint-failure");
    // Deleting frees the room.
    assert_eq!(
        delete(&mut s, &doc("resource-lists", ALICE, "c"), ALICE).status,
        200
    );
    assert_eq!(put(&mut s, &d, ALICE, RL_MIME, FRIENDS).status, 201);
}
