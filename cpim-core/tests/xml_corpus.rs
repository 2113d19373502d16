//! Corpus tests for the XML codecs over the shared corpora (`<workspace>/../shared`),
//! and schema validation of what the encoders emit (xmllint against the XSDs of the
//! shared `simple-xml-schemas` folder). Each test skips with a message when the
//! shared folder or xmllint is absent.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use cpim_core::presence::{Activity, Basic, Device, Note, Person, Presence, Tuple};
use cpim_core::xml::{ns, DocError};
use cpim_core::{imdn, iscomposing, pidf, rlmi, watcherinfo, Address};

fn corpora() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join("shared")
        .join("corpora");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("SKIP: shared corpora not found at {}", dir.display());
        None
    }
}

/// `file -> result` from a VALIDATION.tsv (header line skipped).
fn validation(path: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.to_owned(), f.next()?.to_owned()))
        })
        .collect()
}

/// Splits a MIME entity (headers, blank line, body) into its leaf parts as
/// `(media type, body)`, descending into multipart bodies.
fn mime_leaves(entity: &str, out: &mut Vec<(String, String)>) {
    let entity = entity.replace("\r\n", "\n");
    let (head, body) = entity.split_once("\n\n").unwrap_or((entity.as_str(), ""));
    let mut ctype = String::new();
    let mut current = String::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            current.push(' ');
            current.push_str(line.trim());
            continue;
        }
        if current.to_ascii_lowercase().starts_with("content-type:") {
            ctype = current["content-type:".len()..].trim().to_owned();
        }
        current = line.to_owned();
    }
    if current.to_ascii_lowercase().starts_with("content-type:") {
        ctype = current["content-type:".len()..].trim().to_owned();
    }
    let media = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("multipart/") {
        let boundary = ctype
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()
            .expect("multipart without boundary")
            .trim_matches('"')
            .to_owned();
        let delim = format!("--{boundary}");
        let mut parts = body.split(&delim);
        parts.next(); // preamble
        for part in parts {
            if part.starts_with("--") {
                break;
            }
            let part = part.strip_prefix('\n').unwrap_or(part);
            mime_leaves(part.trim_end_matches('\n'), out);
        }
    } else {
        out.push((media, body.trim().to_owned()));
    }
}

#[test]
fn pidf_corpus_parses_or_is_refused_as_validation_tsv_says() {
    let Some(c) = corpora() else { return };
    let dir = c.join("pidf-presence-documents");
    let mut checked = 0;
    for (file, result) in validation(&dir.join("VALIDATION.tsv")) {
        let path = dir.join(&file);
        let Ok(bytes) = fs::read(&path) else {
            println!("SKIP: {file} listed in VALIDATION.tsv is not in the corpus");
            continue;
        };
        let parsed = pidf::parse(&bytes);
        match result.as_str() {
            "schema-valid" | "schema-INVALID" => {
                let p = parsed.unwrap_or_else(|e| panic!("{file}: {e}"));
                let out = pidf::encode(&p).unwrap_or_else(|e| panic!("{file}: {e}"));
                let again = pidf::parse(out.as_bytes())
                    .unwrap_or_else(|e| panic!("{file} re-parse: {e}\n{out}"));
                assert_eq!(again, p, "{file}: encode/parse changed the presence\n{out}");
            }
            "not-well-formed" => {
                let e = parsed.expect_err(&file);
                assert!(matches!(e, DocError::Xml(_)), "{file}: {e}");
                println!("{file}: refused: {e}");
            }
            r if r.starts_with("well-formed; no schema") => {
                let e = parsed.expect_err(&file);
                assert!(matches!(e, DocError::WrongRoot { .. }), "{file}: {e}");
                println!("{file}: refused: {e}");
            }
            other => panic!("{file}: unknown expectation {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} PIDF corpus files checked");
}

fn corpus_pidf(c: &Path, rel: &str) -> Presence {
    let bytes = fs::read(c.join("pidf-presence-documents").join(rel)).unwrap();
    pidf::parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn pidf_corpus_contents() {
    let Some(c) = corpora() else { return };
    // RFC 4480 s3 example: activities with note and from/until, tuple notes with
    // xml:lang, device, RPID elements kept.
    let p = corpus_pidf(
        &c,
        "resiprocate-testGenericPidfContents/rfc4480-rpid-example.xml",
    );
    assert_eq!(p.tuples.len(), 3);
    assert_eq!(
        p.tuples[0].device_id.as_deref(),
        Some("urn:device:0003ba4811e3")
    );
    assert_eq!(p.tuples[0].notes[1].lang.as_deref(), Some("fr"));
    assert_eq!(p.tuples[0].priority, Some(0.8));
    assert_eq!(p.tuples[0].extensions.len(), 2); // relationship, service-class
    assert_eq!(p.notes, vec![Note::new("I'll be in Tokyo next week")]);
    let person = p.person.as_ref().unwrap();
    assert_eq!(person.activities, vec![Activity::Away]);
    assert_eq!(person.activities_notes, vec![Note::new("Far away")]);
    assert_eq!(
        person.activities_until.as_deref(),
        Some("2005-05-30T17:00:00+05:00")
    );
    assert_eq!(
        person.timestamp.as_deref(),
        Some("2005-05-30T16:09:44+05:00")
    );
    assert_eq!(person.notes, vec![Note::new("Scoring 120")]);
    assert!(person
        .extensions
        .iter()
        .any(|x| x.contains("<rpid:mood") && x.contains("brooding")));
    assert_eq!(p.devices.len(), 1);
    assert_eq!(p.devices[0].notes, vec![Note::new("PC")]);

    // RFC 4479 example: no entity, caps kept in the tuple.
    let p = corpus_pidf(
        &c,
        "resiprocate-testGenericPidfContents/rfc4479-data-model-example.xml",
    );
    assert_eq!(p.entity, None);
    assert!(p.tuples[0].extensions[0]
        .starts_with("<caps:servcaps xmlns:caps=\"urn:ietf:params:xml:ns:pidf:caps\""));
    assert_eq!(
        p.person.as_ref().unwrap().activities,
        vec![Activity::OnThePhone]
    );
    assert_eq!(p.devices[0].device_id.as_deref(), Some("mac:8asd7d7d70"));

    // Implementation-authored: geopriv inside <status>, a foreign activity element.
    let p = corpus_pidf(&c, "cipango-kaleo/pidf1.xml");
    assert_eq!(p.tuples[0].status_extensions.len(), 2);
    assert!(p.tuples[0].status_extensions[0].contains("<gml:Point"));
    let person = p.person.as_ref().unwrap();
    assert!(person.activities.is_empty());
    assert_eq!(person.activities_extensions.len(), 1);

    // Client output with person first and notes before contact.
    let p = corpus_pidf(&c, "resiprocate-testGenericPidfContents/jitsi.xml");
    assert_eq!(
        p.tuples[0].contact.as_deref(),
        Some("sip:2002@blitzzgod.com")
    );
    assert_eq!(p.person.as_ref().unwrap().id, "p719");

    // <contact> and <note> inside <status>, no entity, no tuple id.
    let p = corpus_pidf(&c, "resiprocate-testPidf/testPidf-3-line67.xml");
    assert_eq!(p.tuples[0].id, "t0");
    assert_eq!(
        p.tuples[0].contact.as_deref(),
        Some("sip:jason_AT_example.com@london.gloo.net")
    );
    assert_eq!(p.tuples[0].basic, Some(Basic::Open));

    // A PIDF body inside a SIP message.
    let sip = fs::read_to_string(c.join(
        "pidf-presence-documents/resiprocate-testGenericPidfContents/invite-with-pidf-body.sip",
    ))
    .unwrap();
    let mut leaves = Vec::new();
    mime_leaves(&sip, &mut leaves);
    assert_eq!(leaves.len(), 1);
    assert_eq!(leaves[0].0, pidf::CONTENT_TYPE);
    let p = pidf::parse(leaves[0].1.as_bytes()).unwrap();
    assert_eq!(p.person.unwrap().activities, vec![Activity::Unknown]);
}

#[test]
fn iscomposing_corpus() {
    let Some(c) = corpora() else { return };
    let dir = c.join("iscomposing-rfc3994");
    let v = validation(&dir.join("VALIDATION.tsv"));
    assert_eq!(v.len(), 2);
    for (file, result) in v {
        // Both are schema-INVALID only by element order: parsed leniently.
        assert_eq!(result, "schema-INVALID");
        let d = iscomposing::parse(&fs::read(dir.join(&file)).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let want = if file.contains("Parse1") {
            iscomposing::State::Active
        } else {
            iscomposing::State::Idle
        };
        assert_eq!(d.state, want, "{file}");
        assert_eq!(d.refresh, Some(60));
        assert_eq!(d.content_type.as_deref(), Some("text/plain"));
        assert_eq!(d.last_active.as_deref(), Some("2012-02-22T17:53:49.000Z"));
        assert_eq!(
            iscomposing::parse(iscomposing::encode(&d).unwrap().as_bytes()).unwrap(),
            d
        );
    }
}

#[test]
fn imdn_corpus() {
    let Some(c) = corpora() else { return };
    let dir = c.join("imdn-rfc5438");
    for (file, result) in validation(&dir.join("VALIDATION.tsv")) {
        assert_eq!(result, "schema-valid");
        let d = imdn::parse(&fs::read(dir.join(&file)).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(d.message_id, "34jk324j");
        assert_eq!(d.datetime, "2008-04-04T12:16:49-05:00");
        let n = d.notification.as_ref().unwrap();
        assert_eq!(
            (n.kind, &n.status),
            (imdn::NotificationKind::Display, &imdn::Status::Displayed)
        );
        assert_eq!(
            imdn::parse(imdn::encode(&d).unwrap().as_bytes()).unwrap(),
            d
        );
    }
}

#[test]
fn rlmi_corpus() {
    let Some(c) = corpora() else { return };
    let dir = c.join("resource-lists-rlmi");
    // A resource-lists document (RFC 4826) is not RLMI: refused with a named root.
    let rl = fs::read(dir.join("rcsjta/ResourceListParserTest-sXmlContentToParse1.xml")).unwrap();
    let e = rlmi::parse(&rl).unwrap_err();
    assert!(
        matches!(&e, DocError::WrongRoot { found, .. } if found == "resource-lists"),
        "{e}"
    );

    let mut rlmi_docs = 0;
    let mut pidf_docs = 0;
    let mut names: Vec<_> = fs::read_dir(dir.join("resiprocate"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        if !matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("sip" | "bytes")
        ) {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        // A SIP message: drop the request line so the rest is a MIME entity.
        let entity = if text.starts_with("NOTIFY") {
            text.split_once('\n').unwrap().1
        } else {
            &text
        };
        let mut leaves = Vec::new();
        mime_leaves(entity, &mut leaves);
        for (media, body) in leaves {
            match media.as_str() {
                rlmi::CONTENT_TYPE => {
                    // These use the misspelled `rmli` namespace of RFC 4662's
                    // examples: accepted, and written back in the right one.
                    assert!(body.contains(ns::RLMI_MISSPELLED));
                    let l = rlmi::parse(body.as_bytes())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    assert!(!l.resources.is_empty());
                    // The draft-era `name` attribute is kept as an extra attribute.
                    assert!(l.extra_attributes.iter().any(|a| a.name == "name"));
                    let out = rlmi::encode(&l).unwrap();
                    assert_eq!(rlmi::parse(out.as_bytes()).unwrap(), l);
                    rlmi_docs += 1;
                }
                pidf::CONTENT_TYPE => {
                    pidf::parse(body.as_bytes())
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    pidf_docs += 1;
                }
                "application/pkcs7-signature" => {}
                other => panic!("{}: unexpected part {other}", path.display()),
            }
        }
    }
    assert_eq!((rlmi_docs, pidf_docs), (5, 6));
    let l = {
        let text = fs::read_to_string(dir.join("resiprocate/testRlmi-1-line17.sip")).unwrap();
        let mut leaves = Vec::new();
        mime_leaves(text.split_once('\n').unwrap().1, &mut leaves);
        rlmi::parse(leaves[0].1.as_bytes()).unwrap()
    };
    assert_eq!(
        (l.uri.as_str(), l.version, l.full_state),
        ("sip:adam-friends@pres.example.com", 1, true)
    );
    assert_eq!(
        l.resources[0].instances[0].cid.as_deref(),
        Some("bUZBsM@pres.example.com")
    );
    assert_eq!(l.resources[2].instances.len(), 0);
}

// ---------------------------------------------------------------------------------
// Schema validation of emitted documents.

struct Xmllint {
    dir: PathBuf,
    n: usize,
}

impl Xmllint {
    fn new() -> Option<Xmllint> {
        let c = corpora()?;
        let schemas = c.join("simple-xml-schemas").join("sipsimple");
        if !schemas.is_dir() {
            println!("SKIP: {} not found", schemas.display());
            return None;
        }
        if Command::new("xmllint").arg("--version").output().is_err() {
            println!("SKIP: xmllint not installed (package libxml2-utils)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("cpim-core-xsd-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // One wrapper schema importing the RFC schemas, so that elements in `##other`
        // wildcards (RPID, data model, caps, CIPID) are validated too.
        let imports: String = [
            (ns::PIDF, "pidf.xsd"),
            (ns::RPID, "rpid.xsd"),
            (ns::DATA_MODEL, "data-model.xsd"),
            (ns::CAPS, "caps.xsd"),
            (ns::CIPID, "cipid.xsd"),
            (ns::IMDN, "imdn.xsd"),
            (ns::ISCOMPOSING, "im-iscomposing.xsd"),
            (ns::WATCHERINFO, "watcherinfo.xsd"),
            (ns::RLMI, "rlmi.xsd"),
        ]
        .iter()
        .map(|(n, f)| {
            let loc = schemas.join(f);
            format!(
                "  <xs:import namespace=\"{n}\" schemaLocation=\"{}\"/>\n",
                loc.display()
            )
        })
        .collect();
        let wrapper = format!(
            "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" targetNamespace=\"urn:x-cpim-test-wrapper\">\n{imports}</xs:schema>\n"
        );
        fs::write(dir.join("wrapper.xsd"), wrapper).unwrap();
        Some(Xmllint { dir, n: 0 })
    }

    /// Validates `doc`; returns xmllint's complaint on failure.
    fn check(&mut self, doc: &str) -> Result<(), String> {
        self.n += 1;
        let f = self.dir.join(format!("doc{}.xml", self.n));
        fs::write(&f, doc).unwrap();
        let out = Command::new("xmllint")
            .arg("--noout")
            .arg("--nonet")
            .arg("--schema")
            .arg(self.dir.join("wrapper.xsd"))
            .arg(&f)
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

impl Drop for Xmllint {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn note(lang: Option<&str>, text: &str) -> Note {
    Note {
        lang: lang.map(str::to_owned),
        text: text.to_owned(),
    }
}

fn sample_presences() -> Vec<(&'static str, Presence)> {
    let entity = Some(Address::parse("pres:someone@example.com").unwrap());
    let minimal = Presence {
        entity: entity.clone(),
        tuples: vec![Tuple {
            id: "t1".into(),
            basic: Some(Basic::Open),
            contact: Some("sip:someone@example.com".into()),
            priority: Some(0.8),
            ..Tuple::default()
        }],
        ..Presence::default()
    };
    let rpid = Presence {
        entity: entity.clone(),
        tuples: vec![Tuple {
            id: "t2".into(),
            basic: Some(Basic::Closed),
            contact: Some("im:someone@example.com".into()),
            priority: Some(1.0),
            notes: vec![note(Some("en"), "Don't <disturb> & \"go\""), note(Some("fr"), "Ne dérangez pas")],
            timestamp: Some("2005-10-27T16:49:29Z".into()),
            device_id: Some("urn:device:0003ba4811e3".into()),
            extensions: vec![format!("<r:relationship xmlns:r=\"{}\"><r:self/></r:relationship>", ns::RPID)],
            status_extensions: vec!["<g:geopriv xmlns:g=\"urn:ietf:params:xml:ns:pidf:geopriv10\"><g:usage-rules/></g:geopriv>".into()],
        }],
        person: Some(Person {
            id: "p1".into(),
            activities: vec![Activity::Away, Activity::Meeting, Activity::Other("brooding".into())],
            notes: vec![note(Some("en"), "Scoring 120")],
            extensions: vec![
                format!("<rpid:mood xmlns:rpid=\"{}\"><rpid:happy/></rpid:mood>", ns::RPID),
                format!("<c:homepage xmlns:c=\"{}\">http://example.com/~someone</c:homepage>", ns::CIPID),
            ],
            timestamp: Some("2005-05-30T16:09:44+05:00".into()),
            activities_notes: vec![note(None, "Far away")],
            activities_from: Some("2005-05-30T12:00:00+05:00".into()),
            activities_until: Some("2005-05-30T17:00:00+05:00".into()),
            activities_extensions: vec![],
        }),
        notes: vec![note(Some("en"), "I'll be in Tokyo next week")],
        devices: vec![Device {
            id: "pc147".into(),
            device_id: Some("urn:device:0003ba4811e3".into()),
            notes: vec![note(None, "PC")],
            timestamp: Some("2005-05-30T16:09:44+05:00".into()),
            extensions: vec![format!(
                "<rpid:user-input xmlns:rpid=\"{}\" idle-threshold=\"600\" last-input=\"2004-10-21T13:20:00-05:00\">idle</rpid:user-input>",
                ns::RPID
            )],
        }],
        extensions: vec!["<x:extra xmlns:x=\"urn:example:extra\" a=\"1\">kept</x:extra>".into()],
    };
    let caps = Presence {
        entity: entity.clone(),
        tuples: vec![Tuple {
            id: "sg89ae".into(),
            basic: Some(Basic::Open),
            device_id: Some("mac:8asd7d7d70".into()),
            extensions: vec![format!(
                "<caps:servcaps xmlns:caps=\"{}\"><caps:methods><caps:supported><caps:MESSAGE/><caps:OPTIONS/></caps:supported></caps:methods></caps:servcaps>",
                ns::CAPS
            )],
            contact: Some("sip:someone@example.com".into()),
            ..Tuple::default()
        }],
        person: Some(Person {
            id: "p2".into(),
            activities: vec![Activity::Unknown],
            ..Person::default()
        }),
        ..Presence::default()
    };
    let all_activities = Presence {
        entity: Some(Address::parse("sip:a@example.org").unwrap()),
        person: Some(Person {
            id: "p3".into(),
            activities: Activity::NAMED
                .iter()
                .map(|(_, a)| a.clone())
                .filter(|a| *a != Activity::Unknown)
                .collect(),
            ..Person::default()
        }),
        ..Presence::default()
    };
    vec![
        ("minimal", minimal),
        ("rpid+dm+extensions", rpid),
        ("caps+unknown-activity", caps),
        ("every-activity", all_activities),
    ]
}

#[test]
fn emitted_documents_validate_against_the_schemas() {
    let Some(mut lint) = Xmllint::new() else {
        return;
    };
    // The validator does reject what the schemas forbid (note before tuple, an RPID
    // activity with text), so a pass below means something.
    let bad = format!(
        "<presence xmlns=\"{}\" entity=\"pres:a@b\"><note/><tuple id=\"t\"><status/></tuple></presence>",
        ns::PIDF
    );
    assert!(lint.check(&bad).is_err());
    let bad = format!(
        "<presence xmlns=\"{}\" xmlns:r=\"{}\" entity=\"pres:a@b\"><r:activities><r:away>x</r:away></r:activities></presence>",
        ns::PIDF,
        ns::RPID
    );
    assert!(lint.check(&bad).is_err());
    let mut failures = Vec::new();
    let mut check = |name: &str, doc: String| {
        if let Err(e) = lint.check(&doc) {
            failures.push(format!("{name}: {e}\n{doc}"));
        }
    };
    for (name, p) in sample_presences() {
        let doc = pidf::encode(&p).unwrap();
        assert_eq!(pidf::parse(doc.as_bytes()).unwrap(), p, "{name}");
        check(name, doc);
    }
    // Corpus documents that are schema-invalid only by element order (and the valid
    // ones) come out valid.
    if let Some(c) = corpora() {
        let dir = c.join("pidf-presence-documents");
        for (file, result) in validation(&dir.join("VALIDATION.tsv")) {
            let fixable = [
                "jitsi.xml",
                "microsip.xml",
                "merge-input-2.xml",
                "08-pidf-implementation-authored-callback-test.xml",
            ];
            if result != "schema-valid" && !fixable.iter().any(|f| file.ends_with(f)) {
                continue;
            }
            let Ok(bytes) = fs::read(dir.join(&file)) else {
                continue;
            };
            let p = pidf::parse(&bytes).unwrap();
            check(&file, pidf::encode(&p).unwrap());
        }
    }
    let imdns = [
        imdn::Imdn {
            message_id: "34jk324j".into(),
            datetime: "2008-04-04T12:16:49-05:00".into(),
            recipient_uri: Some("im:bob@example.com".into()),
            original_recipient_uri: Some("im:bob@example.com".into()),
            subject: Some("report <1> & more".into()),
            notification: Some(imdn::Notification {
                kind: imdn::NotificationKind::Delivery,
                status: imdn::Status::Delivered,
                status_extensions: vec![],
            }),
            extensions: vec!["<x:e xmlns:x=\"urn:x\"/>".into()],
        },
        imdn::Imdn {
            message_id: "a".into(),
            datetime: "2008-04-04T12:16:49Z".into(),
            notification: Some(imdn::Notification {
                kind: imdn::NotificationKind::Display,
                status: imdn::Status::Error,
                status_extensions: vec![],
            }),
            ..imdn::Imdn::default()
        },
        imdn::Imdn {
            message_id: "b".into(),
            datetime: "2008-04-04T12:16:49Z".into(),
            notification: Some(imdn::Notification {
                kind: imdn::NotificationKind::Processing,
                status: imdn::Status::Stored,
                status_extensions: vec!["<x:why xmlns:x=\"urn:x\">q</x:why>".into()],
            }),
            ..imdn::Imdn::default()
        },
    ];
    for (i, d) in imdns.iter().enumerate() {
        check(&format!("imdn {i}"), imdn::encode(d).unwrap());
    }
    let mut comp = iscomposing::IsComposing::new(iscomposing::State::Active);
    check("iscomposing minimal", iscomposing::encode(&comp).unwrap());
    comp.last_active = Some("2012-02-22T17:53:49.000Z".into());
    comp.content_type = Some("text/plain".into());
    comp.refresh = Some(60);
    comp.extensions.push("<x:e xmlns:x=\"urn:x\"/>".into());
    check("iscomposing full", iscomposing::encode(&comp).unwrap());
    let wi = watcherinfo::WatcherInfo {
        version: 3,
        state: watcherinfo::DocState::Partial,
        lists: vec![watcherinfo::WatcherList {
            resource: "sip:professor@example.net".into(),
            package: "presence".into(),
            watchers: vec![watcherinfo::Watcher {
                uri: "sip:userA@example.net".into(),
                id: "8ajksjda7s".into(),
                status: watcherinfo::WatcherStatus::Pending,
                event: watcherinfo::WatcherEvent::Subscribe,
                display_name: Some("Mr. A".into()),
                expiration: Some(3600),
                duration_subscribed: Some(509),
                lang: Some("en".into()),
            }],
            extensions: vec!["<x:e xmlns:x=\"urn:x\"/>".into()],
        }],
        extensions: vec![],
    };
    check("watcherinfo", watcherinfo::encode(&wi).unwrap());
    let list = rlmi::List {
        uri: "sip:adam-friends@pres.example.com".into(),
        version: 7,
        full_state: true,
        cid: None,
        names: vec![note(Some("en"), "Buddy List")],
        resources: vec![rlmi::Resource {
            uri: "sip:bob@example.com".into(),
            names: vec![note(None, "Bob")],
            instances: vec![rlmi::Instance {
                id: "juwigmtboe".into(),
                state: rlmi::InstanceState::Terminated,
                reason: Some("rejected".into()),
                cid: Some("bUZBsM@pres.example.com".into()),
                extensions: vec![],
                extra_attributes: vec![],
            }],
            extra_attributes: vec![rlmi::ExtraAttribute {
                ns: String::new(),
                name: "name".into(),
                value: "Bob Smith".into(),
            }],
        }],
        extra_attributes: vec![rlmi::ExtraAttribute {
            ns: "urn:x".into(),
            name: "k".into(),
            value: "v".into(),
        }],
    };
    check("rlmi", rlmi::encode(&list).unwrap());
    println!("validated {} emitted documents with xmllint", lint.n);
    assert!(
        failures.is_empty(),
        "{} emitted documents fail schema validation:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
