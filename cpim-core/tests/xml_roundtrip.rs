//! Property tests: model -> XML -> model is the identity for PIDF (RFC 3863/4479/4480),
//! IMDN (RFC 5438) and isComposing (RFC 3994), for values in the normal form the
//! parsers produce (see the module docs of `pidf`); and the restricted reader never
//! panics on arbitrary input.

use cpim_core::imdn::{self, Imdn, Notification, NotificationKind, Status};
use cpim_core::iscomposing::{self, IsComposing, State};
use cpim_core::pidf;
use cpim_core::presence::{Activity, Basic, Device, Note, Person, Presence, Tuple};
use cpim_core::xml::{self, is_xml_char};
use cpim_core::Address;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Any text XML can carry, with markup characters and CR/LF/tab mixed in.
fn text() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            4 => any::<char>().prop_filter("XML Char", |c| is_xml_char(*c)),
            1 => prop::sample::select(vec!['<', '>', '&', '"', '\'', '\r', '\n', '\t', ' ', ']']),
        ],
        0..24,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// A token without leading/trailing whitespace (URIs, dates, ids: the parser trims them).
fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9:@._+/&<>-]{0,20}"
}

fn ncname() -> impl Strategy<Value = String> {
    "[a-z_][a-z0-9._-]{0,10}"
}

fn note() -> impl Strategy<Value = Note> {
    (option::of("[a-z]{2}(-[A-Z]{2})?"), text()).prop_map(|(lang, text)| Note { lang, text })
}

fn notes() -> impl Strategy<Value = Vec<Note>> {
    vec(note(), 0..3)
}

/// Kept extensions in the form the parser produces them.
fn extension() -> impl Strategy<Value = String> {
    (ncname(), text()).prop_map(|(name, t)| {
        let mut s = format!("<x:{name} xmlns:x=\"urn:example:ext\" a=\"1\">");
        xml::escape_text_into(&mut s, &t);
        s.push_str(&format!("</x:{name}>"));
        if t.is_empty() {
            format!("<x:{name} xmlns:x=\"urn:example:ext\" a=\"1\"/>")
        } else {
            s
        }
    })
}

fn extensions() -> impl Strategy<Value = Vec<String>> {
    vec(extension(), 0..2)
}

fn entity() -> impl Strategy<Value = Option<Address>> {
    option::of(
        (
            "(sip|sips|pres|im)",
            "[a-z0-9]{1,8}",
            "[a-z0-9]{1,8}\\.(com|org)",
        )
            .prop_map(|(s, u, d)| Address::parse(&format!("{s}:{u}@{d}")).unwrap()),
    )
}

fn tuple() -> impl Strategy<Value = Tuple> {
    (
        ncname(),
        option::of(prop_oneof![Just(Basic::Open), Just(Basic::Closed)]),
        option::of(token()),
        option::of(0u32..=1000),
        notes(),
        option::of(token()),
        option::of(token()),
        extensions(),
        extensions(),
    )
        .prop_map(
            |(
                id,
                basic,
                contact,
                prio,
                notes,
                timestamp,
                device_id,
                extensions,
                status_extensions,
            )| {
                let priority = match (&contact, prio) {
                    (Some(_), Some(n)) => Some(n as f32 / 1000.0),
                    _ => None,
                };
                Tuple {
                    id,
                    basic,
                    contact,
                    priority,
                    notes,
                    timestamp,
                    device_id,
                    extensions,
                    status_extensions,
                }
            },
        )
}

fn activities() -> impl Strategy<Value = Vec<Activity>> {
    let named: Vec<Activity> = Activity::NAMED
        .iter()
        .map(|(_, a)| a.clone())
        .filter(|a| *a != Activity::Unknown)
        .collect();
    prop_oneof![
        1 => Just(vec![Activity::Unknown]),
        4 => vec(
            prop_oneof![
                4 => prop::sample::select(named),
                1 => text().prop_map(Activity::Other),
            ],
            0..4
        ),
    ]
}

fn person() -> impl Strategy<Value = Person> {
    (
        ncname(),
        activities(),
        notes(),
        extensions(),
        option::of(token()),
        notes(),
        option::of(token()),
        option::of(token()),
    )
        .prop_map(
            |(id, activities, notes, extensions, timestamp, an, from, until)| Person {
                id,
                activities,
                notes,
                extensions,
                timestamp,
                activities_notes: an,
                activities_from: from,
                activities_until: until,
                activities_extensions: Vec::new(),
            },
        )
}

fn device() -> impl Strategy<Value = Device> {
    (
        ncname(),
        option::of(token()),
        notes(),
        option::of(token()),
        extensions(),
    )
        .prop_map(|(id, device_id, notes, timestamp, extensions)| Device {
            id,
            device_id,
            notes,
            timestamp,
            extensions,
        })
}

fn presence() -> impl Strategy<Value = Presence> {
    (
        entity(),
        vec(tuple(), 0..3),
        option::of(person()),
        notes(),
        vec(device(), 0..2),
        extensions(),
    )
        .prop_map(
            |(entity, tuples, person, notes, devices, extensions)| Presence {
                entity,
                tuples,
                person,
                notes,
                devices,
                extensions,
            },
        )
}

fn imdn_doc() -> impl Strategy<Value = Imdn> {
    let status = prop_oneof![
        Just(Status::Delivered),
        Just(Status::Failed),
        Just(Status::Forbidden),
        Just(Status::Error),
        Just(Status::Displayed),
        Just(Status::Processed),
        Just(Status::Stored),
        "x-[a-z]{1,6}".prop_map(Status::Other),
    ];
    let kind = prop_oneof![
        Just(NotificationKind::Delivery),
        Just(NotificationKind::Display),
        Just(NotificationKind::Processing),
    ];
    (
        token(),
        token(),
        option::of(token()),
        option::of(token()),
        option::of(text()),
        option::of((kind, status, extensions())),
        extensions(),
    )
        .prop_map(
            |(message_id, datetime, r, o, subject, n, extensions)| Imdn {
                message_id,
                datetime,
                recipient_uri: r,
                original_recipient_uri: o,
                subject,
                notification: n.map(|(kind, status, status_extensions)| Notification {
                    kind,
                    status,
                    status_extensions,
                }),
                extensions,
            },
        )
}

fn iscomposing_doc() -> impl Strategy<Value = IsComposing> {
    let state = prop_oneof![
        Just(State::Active),
        Just(State::Idle),
        "x-[a-z]{1,6}".prop_map(State::Other),
    ];
    (
        state,
        option::of(token()),
        option::of(token()),
        option::of(1u32..),
        extensions(),
    )
        .prop_map(
            |(state, last_active, content_type, refresh, extensions)| IsComposing {
                state,
                last_active,
                content_type,
                refresh,
                extensions,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pidf_round_trip(p in presence()) {
        let doc = pidf::encode(&p).unwrap();
        let back = pidf::parse(doc.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
        prop_assert_eq!(back, p);
    }

    #[test]
    fn imdn_round_trip(d in imdn_doc()) {
        let doc = imdn::encode(&d).unwrap();
        let back = imdn::parse(doc.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
        prop_assert_eq!(back, d);
    }

    #[test]
    fn iscomposing_round_trip(d in iscomposing_doc()) {
        let doc = iscomposing::encode(&d).unwrap();
        let back = iscomposing::parse(doc.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
        prop_assert_eq!(back, d);
    }

    /// Arbitrary bytes: refused or parsed, never a panic; a parsed tree written back
    /// with `to_xml` parses to the same tree.
    #[test]
    fn reader_total_and_to_xml_stable(input in vec(any::<u8>(), 0..256)) {
        if let Ok(el) = xml::parse(&input) {
            let again = xml::parse(el.to_xml().as_bytes()).unwrap();
            prop_assert_eq!(again.to_xml(), el.to_xml());
        }
    }

    /// Markup-shaped input reaches deeper into the reader than random bytes.
    #[test]
    fn reader_total_on_markup(parts in vec(prop::sample::select(vec![
        "<a>", "</a>", "<b:c xmlns:b='u'>", "</b:c>", "<d/>", "&amp;", "&#x41;", "&#0;", "&x;",
        "<![CDATA[x]]>", "<!--c-->", "<?pi x?>", "<!DOCTYPE a>", " ", "t", "<e f='&lt;'/>", "\u{1}",
    ]), 0..20)) {
        let input: String = parts.concat();
        if let Ok(el) = xml::parse(input.as_bytes()) {
            let again = xml::parse(el.to_xml().as_bytes()).unwrap();
            prop_assert_eq!(again.to_xml(), el.to_xml());
        }
    }
}
