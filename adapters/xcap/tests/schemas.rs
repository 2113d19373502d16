//! Every kind of document the server emits, validated with xmllint against the
//! SIMPLE schemas of the shared corpus (`<workspace>/../shared/corpora/
//! simple-xml-schemas`): resource-lists and rls-services (RFC 4826) and pres-rules
//! (RFC 5025) documents as rewritten after element and attribute operations,
//! element bodies, and the xcap-caps document (RFC 4825 s12.3). The corpus has no
//! xcap-error schema: error bodies are checked well-formed by xmllint and by
//! structure in the other tests. Skips (or fails under CI=true) without xmllint.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use cpim_testkit::peer_env::{need, program, Peer};

struct Lint {
    xmllint: PathBuf,
    schemas: PathBuf,
    dir: PathBuf,
    n: usize,
}

impl Lint {
    fn new() -> Option<Lint> {
        let Some(schemas) = shared("corpora/simple-xml-schemas/sipsimple") else {
            println!("SKIP: simple-xml-schemas not found next to the workspace");
            return None;
        };
        let xmllint = need(
            &[Peer::Xmllint],
            program("CPIM_PEER_XMLLINT", "xmllint"),
            "xmllint is not found (CPIM_PEER_XMLLINT unset, no xmllint on PATH)",
        )?;
        let dir = std::env::temp_dir().join(format!("cpim-xcap-schemas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Some(Lint {
            xmllint,
            schemas,
            dir,
            n: 0,
        })
    }

    /// Validates `doc` against `schema` (a file name in the corpus), or checks it
    /// well-formed when `schema` is `None`.
    fn check(&mut self, schema: Option<&str>, doc: &str) {
        self.n += 1;
        let file = self.dir.join(format!("doc-{}.xml", self.n));
        std::fs::write(&file, doc).unwrap();
        let mut cmd = Command::new(&self.xmllint);
        cmd.arg("--noout");
        if let Some(s) = schema {
            cmd.arg("--schema").arg(self.schemas.join(s));
        }
        let out = cmd.arg(&file).output().unwrap();
        assert!(
            out.status.success(),
            "{schema:?} rejects an emitted document: {}\n{doc}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Lint {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn emitted_documents_validate_against_the_schemas() {
    let Some(mut lint) = Lint::new() else { return };
    let mut s = server();

    // resource-lists: the RFC 4826 s3.3 example, then element and attribute edits.
    lint.check(Some("resourcelists.xsd"), FRIENDS);
    assert_eq!(put(&mut s, &rl(ALICE), ALICE, RL_MIME, FRIENDS).status, 201);
    let friends = format!(
        "{}/~~/resource-lists/list%5b@name=%22friends%22%5d",
        rl(ALICE)
    );
    let edits = [
        (format!("{friends}/entry%5b@uri=%22sip:ann@example.com%22%5d"), EL, r#"<entry uri="sip:ann@example.com"><display-name xml:lang="en">Ann</display-name></entry>"#.to_owned()),
        (format!("{friends}/list%5b@name=%22work%22%5d"), EL, r#"<list name="work"><display-name>Work</display-name><entry uri="sip:boss@example.com"/></list>"#.to_owned()),
        (format!("{friends}/list%5b@name=%22close-friends%22%5d/entry%5b1%5d/@cp:copyControl?xmlns(cp=urn:ietf:params:xml:ns:copycontrol)"), ATT, "to".to_owned()),
        (format!("{friends}/entry%5b1%5d/@uri"), ATT, "sip:william@example.com".to_owned()),
    ];
    for (t, ct, b) in &edits {
        let r = put(&mut s, t, ALICE, ct, b);
        assert!(r.status == 200 || r.status == 201, "{t}: {}", body(&r));
        let g = get(&mut s, &rl(ALICE), ALICE);
        lint.check(Some("resourcelists.xsd"), &body(&g));
    }
    assert_eq!(
        delete(&mut s, &format!("{friends}/entry-ref"), ALICE).status,
        200
    );
    lint.check(
        Some("resourcelists.xsd"),
        &body(&get(&mut s, &rl(ALICE), ALICE)),
    );
    // An element body read back is itself a valid resource-lists fragment host:
    // wrap a read list into a document.
    let list = get(
        &mut s,
        &format!("{friends}/list%5b@name=%22work%22%5d"),
        ALICE,
    );
    let list = body(&list);
    lint.check(None, &list);
    let wrapped = format!(
        "<resource-lists xmlns=\"urn:ietf:params:xml:ns:resource-lists\">{list}</resource-lists>"
    );
    lint.check(Some("resourcelists.xsd"), &wrapped);

    // rls-services: the RFC 4826 s4.4 example, then an inline list edit.
    let rls = doc("rls-services", ALICE, "index");
    let d = services("sip:alice-friends@example.com");
    lint.check(Some("rlsservices.xsd"), &d);
    assert_eq!(put(&mut s, &rls, ALICE, RLS_MIME, &d).status, 201);
    let t = format!("{rls}/~~/rls-services/service%5b2%5d/list/rl:entry%5b@uri=%22sip:new@example.com%22%5d?xmlns(rl=urn:ietf:params:xml:ns:resource-lists)");
    let r = put(
        &mut s,
        &t,
        ALICE,
        EL,
        r#"<rl:entry uri="sip:new@example.com"/>"#,
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    lint.check(Some("rlsservices.xsd"), &body(&get(&mut s, &rls, ALICE)));

    // pres-rules: the RFC 5025 s7 example, then a rule added.
    let pr = doc("pres-rules", ALICE, "index");
    lint.check(Some("pres-rules.xsd"), PRES_RULES);
    assert_eq!(put(&mut s, &pr, ALICE, PR_MIME, PRES_RULES).status, 201);
    let t = format!("{pr}/~~/ruleset/rule%5b@id=%22block-spam%22%5d");
    let r = put(
        &mut s,
        &t,
        ALICE,
        EL,
        r#"<cr:rule id="block-spam"><cr:conditions><cr:identity><cr:many domain="spam.example.com"><cr:except id="sip:ok@spam.example.com"/></cr:many></cr:identity></cr:conditions><cr:actions><pr:sub-handling>block</pr:sub-handling></cr:actions></cr:rule>"#,
    );
    assert_eq!(r.status, 201, "{}", body(&r));
    lint.check(Some("pres-rules.xsd"), &body(&get(&mut s, &pr, ALICE)));

    // xcap-caps (RFC 4825 s12.3).
    let caps = get(&mut s, "/xcap-root/xcap-caps/global/index", ALICE);
    lint.check(Some("xcap-caps.xsd"), &body(&caps));

    // Error bodies: well-formed.
    let r = put(
        &mut s,
        &format!("{friends}/entry%5b99%5d"),
        ALICE,
        EL,
        "<entry uri=\"sip:q@x\"/>",
    );
    assert_conflict(&r, "cannot-insert");
    lint.check(None, &body(&r));
    let d = r#"<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="a"/><list name="a"/></resource-lists>"#;
    let r = put(&mut s, &rl(BOB), BOB, RL_MIME, d);
    assert_conflict(&r, "uniqueness-failure");
    lint.check(None, &body(&r));
    println!("validated {} emitted documents with xmllint", lint.n);
}
