//! Schema validation of every partial PIDF document the encoder emits (RFC 5262 s4):
//! full-state and diff documents over a sequence of presence changes are checked with
//! `xmllint --schema` against `tests/schemas/pidf-diff.xsd`, which imports the PIDF,
//! RPID and data-model schemas of the shared `simple-xml-schemas` corpus
//! (`<workspace>/../shared`). The presence document each diff leads to is validated as
//! PIDF too. Skips with a message when the corpus or xmllint is absent; under `CI=true`
//! that is a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cpim_core::pidf_diff::{self, Diff, Document, FullState};
use cpim_core::presence::{Activity, Basic, Device, Note, Person, Presence, Tuple};
use cpim_core::xml::ns;
use cpim_core::{pidf, Address};

fn skip(why: String) -> Option<Xmllint> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "xmllint peer missing under CI: {why}"
    );
    println!("SKIP: {why}");
    None
}

struct Xmllint {
    dir: PathBuf,
    n: usize,
}

impl Xmllint {
    fn new() -> Option<Xmllint> {
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/corpora/simple-xml-schemas/sipsimple");
        if !schemas.is_dir() {
            return skip(format!("{} not found", schemas.display()));
        }
        if Command::new("xmllint").arg("--version").output().is_err() {
            return skip("xmllint not installed (package libxml2-utils)".into());
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("cpim-core-pidf-diff-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas");
        let diff_xsd = fs::read_to_string(local.join("pidf-diff.xsd"))
            .unwrap()
            .replace("PIDF_XSD", &schemas.join("pidf.xsd").display().to_string());
        fs::write(dir.join("pidf-diff.xsd"), diff_xsd).unwrap();
        fs::copy(local.join("patch-ops.xsd"), dir.join("patch-ops.xsd")).unwrap();
        let imports: String = [
            (ns::PIDF, schemas.join("pidf.xsd")),
            (ns::RPID, schemas.join("rpid.xsd")),
            (ns::DATA_MODEL, schemas.join("data-model.xsd")),
            (ns::CAPS, schemas.join("caps.xsd")),
            (ns::PIDF_DIFF, dir.join("pidf-diff.xsd")),
        ]
        .iter()
        .map(|(n, f)| {
            format!(
                "  <xs:import namespace=\"{n}\" schemaLocation=\"{}\"/>\n",
                f.display()
            )
        })
        .collect();
        fs::write(
            dir.join("wrapper.xsd"),
            format!("<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"urn:x-cpim-test-wrapper\">\n{imports}</xs:schema>\n"),
        )
        .unwrap();
        Some(Xmllint { dir, n: 0 })
    }

    fn check(&mut self, doc: &str) {
        self.n += 1;
        let f = self.dir.join(format!("doc{}.xml", self.n));
        fs::write(&f, doc).unwrap();
        let out = Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema"])
            .arg(self.dir.join("wrapper.xsd"))
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{doc}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Xmllint {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn tuple(id: &str, basic: Basic, contact: &str, ts: &str) -> Tuple {
    Tuple {
        id: id.into(),
        basic: Some(basic),
        contact: Some(contact.into()),
        priority: Some(0.5),
        timestamp: Some(ts.into()),
        notes: vec![Note {
            lang: Some("en".into()),
            text: format!("{id} <&> note"),
        }],
        ..Tuple::default()
    }
}

/// A presentity going through the changes a gateway sees: a second device, an
/// activity, a device going away, the person leaving and coming back.
fn states() -> Vec<Presence> {
    let entity = Some(Address::parse("pres:alice@example.com").unwrap());
    let s0 = Presence {
        entity: entity.clone(),
        tuples: vec![tuple(
            "t1",
            Basic::Open,
            "sip:alice@pc.example.com",
            "2026-01-01T10:00:00Z",
        )],
        ..Presence::default()
    };
    let mut s1 = s0.clone();
    s1.tuples.push(tuple(
        "t2",
        Basic::Open,
        "xmpp:alice@example.org/phone",
        "2026-01-01T10:01:00Z",
    ));
    s1.tuples[1].device_id = Some("urn:uuid:5bd3bd5c-0b6e-4b23-bb1a-3c2a0e5bbd2e".into());
    s1.devices.push(Device {
        id: "d2".into(),
        device_id: Some("urn:uuid:5bd3bd5c-0b6e-4b23-bb1a-3c2a0e5bbd2e".into()),
        ..Device::default()
    });
    let mut s2 = s1.clone();
    s2.person = Some(Person {
        id: "p1".into(),
        activities: vec![Activity::OnThePhone, Activity::Other("gardening".into())],
        notes: vec![Note::new("busy")],
        ..Person::default()
    });
    s2.tuples[0].basic = Some(Basic::Closed);
    s2.tuples[0].extensions.push(format!(
        "<c:servcaps xmlns:c=\"{}\"><c:audio>true</c:audio></c:servcaps>",
        ns::CAPS
    ));
    let mut s3 = s2.clone();
    s3.tuples.remove(0);
    s3.person.as_mut().unwrap().activities = vec![Activity::Away];
    let mut s4 = s3.clone();
    s4.person = None;
    s4.devices.clear();
    s4.tuples.insert(
        0,
        tuple(
            "t0",
            Basic::Open,
            "sip:alice@desk.example.com",
            "2026-01-01T10:05:00Z",
        ),
    );
    vec![s0, s1, s2, s3, s4.clone(), s0_like(&s4)]
}

fn s0_like(from: &Presence) -> Presence {
    Presence {
        entity: from.entity.clone(),
        ..Presence::default()
    }
}

/// RFC 5262 s4 (schema), RFC 5263 s4 (full state first, then diffs with increasing
/// versions): every emitted document validates, and applying each diff to the state
/// before gives the state after.
#[test]
fn rfc5262_s4_emitted_documents_validate() {
    let Some(mut lint) = Xmllint::new() else {
        return;
    };
    let states = states();
    let full = pidf_diff::encode(&Document::Full(FullState {
        version: 1,
        presence: states[0].clone(),
    }))
    .unwrap();
    lint.check(&full);
    let mut diffs = 0;
    for (i, w) in states.windows(2).enumerate() {
        let ops = pidf_diff::diff(&w[0], &w[1]).unwrap().expect("by id");
        let d = Diff {
            entity: "pres:alice@example.com".into(),
            version: u32::try_from(i).unwrap() + 2,
            ops,
            prefixes: vec![],
        };
        let xml = pidf_diff::encode(&Document::Diff(d)).unwrap();
        lint.check(&xml);
        let Document::Diff(parsed) = pidf_diff::parse(xml.as_bytes()).unwrap() else {
            panic!("not a diff")
        };
        let applied = pidf_diff::apply(&w[0], &parsed).unwrap();
        assert_eq!(applied, w[1]);
        lint.check(&pidf::encode(&applied).unwrap());
        lint.check(
            &pidf_diff::encode(&Document::Full(FullState {
                version: parsed.version,
                presence: applied,
            }))
            .unwrap(),
        );
        diffs += 1;
    }
    assert_eq!(diffs, 5);
    println!("validated {} partial PIDF documents with xmllint", lint.n);
}

/// The schema is not a rubber stamp: a diff without its version is refused.
#[test]
fn rfc5262_s4_schema_refuses_a_diff_without_version() {
    let Some(mut lint) = Xmllint::new() else {
        return;
    };
    let bad = "<p:pidf-diff xmlns:p=\"urn:ietf:params:xml:ns:pidf-diff\" entity=\"pres:a@b\"/>";
    let f = lint.dir.join("bad.xml");
    fs::write(&f, bad).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(lint.dir.join("wrapper.xsd"))
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    lint.check(&bad.replace("/>", " version=\"0\"/>"));
}
