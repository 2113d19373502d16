//! Properties of partial PIDF (RFC 5262) and filters (RFC 4661): for any two presence
//! documents of one presentity, applying the encoded and re-parsed diff to the first
//! gives the second whenever a diff is answered (always, unless shared elements changed
//! order); the readers of both formats are total on arbitrary input.

use proptest::collection::vec;
use proptest::prelude::*;

use cpim_core::pidf_diff::{self, Diff, Document};
use cpim_core::presence::{Activity, Basic, Device, Note, Person, Presence, Tuple};
use cpim_core::{filter, Address};

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 <>&'\"]{0,12}"
}

fn tuple(id: String) -> impl Strategy<Value = Tuple> {
    (
        prop::option::of(prop::bool::ANY),
        prop::option::of("sip:[a-z]{1,6}@example\\.com"),
        vec(text(), 0..2),
    )
        .prop_map(move |(basic, contact, notes)| Tuple {
            id: id.clone(),
            basic: basic.map(|o| if o { Basic::Open } else { Basic::Closed }),
            contact,
            notes: notes.into_iter().map(Note::new).collect(),
            ..Tuple::default()
        })
}

/// A subset of a pool of ids, in pool order, each with random content.
fn tuples() -> impl Strategy<Value = Vec<Tuple>> {
    vec(prop::bool::ANY, 5).prop_flat_map(|keep| {
        let ids: Vec<String> = keep
            .iter()
            .enumerate()
            .filter(|(_, k)| **k)
            .map(|(i, _)| format!("t{i}"))
            .collect();
        ids.into_iter().map(tuple).collect::<Vec<_>>()
    })
}

fn person() -> impl Strategy<Value = Option<Person>> {
    prop::option::of((
        0..2u8,
        prop::sample::subsequence(vec![Activity::Away, Activity::Busy, Activity::Meal], 0..3),
        vec(text(), 0..2),
    ))
    .prop_map(|p| {
        p.map(|(id, activities, notes)| Person {
            id: format!("p{id}"),
            activities,
            notes: notes.into_iter().map(Note::new).collect(),
            ..Person::default()
        })
    })
}

fn devices() -> impl Strategy<Value = Vec<Device>> {
    vec((prop::bool::ANY, prop::option::of(text())), 3).prop_map(|ds| {
        ds.into_iter()
            .enumerate()
            .filter(|(_, (keep, _))| *keep)
            .map(|(i, (_, note))| Device {
                id: format!("d{i}"),
                device_id: Some(format!("urn:uuid:00000000-0000-0000-0000-00000000000{i}")),
                notes: note.into_iter().map(Note::new).collect(),
                ..Device::default()
            })
            .collect()
    })
}

fn presence() -> impl Strategy<Value = Presence> {
    (tuples(), person(), devices()).prop_map(|(tuples, person, devices)| Presence {
        entity: Some(Address::parse("pres:alice@example.com").unwrap()),
        tuples,
        person,
        devices,
        ..Presence::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// RFC 5262 s3.2 with RFC 5261 s4: apply(old, diff(old, new)) == new.
    #[test]
    fn rfc5262_apply_of_diff_gives_the_new_document(old in presence(), new in presence()) {
        let ops = pidf_diff::diff(&old, &new).unwrap();
        // Ids come from pools in a fixed order, so every change is addressable.
        let ops = ops.expect("expressible by id");
        let xml = pidf_diff::encode(&Document::Diff(Diff {
            entity: "pres:alice@example.com".into(),
            version: 7,
            ops,
            prefixes: vec![],
        })).unwrap();
        let Document::Diff(d) = pidf_diff::parse(xml.as_bytes()).unwrap() else {
            panic!("not a diff");
        };
        prop_assert_eq!(pidf_diff::apply(&old, &d).unwrap(), new);
    }

    /// The readers refuse bad input with an error, never a panic, and what they accept
    /// re-encodes to the same value.
    #[test]
    fn readers_are_total(input in vec(any::<u8>(), 0..512), markup in vec(prop::sample::select(vec![
        "<p:pidf-diff xmlns:p='urn:ietf:params:xml:ns:pidf-diff' entity='pres:a@b' version='1'>",
        "</p:pidf-diff>", "<p:add sel='*'>", "</p:add>", "<p:remove sel=\"*/tuple[@id='x']\"/>",
        "<tuple xmlns='urn:ietf:params:xml:ns:pidf' id='x'><status/></tuple>",
        "<filter-set xmlns='urn:ietf:params:xml:ns:simple-filter'>", "</filter-set>",
        "<filter id='a'>", "</filter>", "<what>", "</what>", "<include type='namespace'>",
        "</include>", "urn:ietf:params:xml:ns:pidf", "<trigger><added>/presence/tuple</added></trigger>",
    ]), 0..12)) {
        let _ = filter::parse(&input).map(|s| s.compile("presence"));
        if let Ok(doc) = pidf_diff::parse(&input) {
            if let Ok(xml) = pidf_diff::encode(&doc) {
                prop_assert_eq!(pidf_diff::parse(xml.as_bytes()).unwrap(), doc);
            }
        }
        let m: String = markup.concat();
        let _ = filter::parse(m.as_bytes()).map(|s| s.compile("presence"));
        if let Ok(doc) = pidf_diff::parse(m.as_bytes()) {
            let xml = pidf_diff::encode(&doc).unwrap();
            prop_assert_eq!(pidf_diff::parse(xml.as_bytes()).unwrap(), doc);
        }
    }
}
