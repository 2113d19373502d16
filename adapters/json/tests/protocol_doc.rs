//! Keeps PROTOCOL.md and schema/v1.json true: every JSON example in the document is a
//! frame this crate accepts and is valid under the schema; frames the crate writes are
//! valid under the schema; frames the schema forbids are refused by the crate.

use cpim_json::frame::*;
use serde_json::{json, Value};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn schema() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("schema/v1.json")).unwrap()).unwrap()
}

/// A validator for the subset of JSON Schema 2020-12 the schema uses: $ref (local),
/// oneOf, type, const, enum, required, properties, additionalProperties: false, items,
/// minItems, minLength, maxLength, minimum, maximum.
fn valid(schema: &Value, root: &Value, v: &Value) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let mut s = root;
        for part in r.trim_start_matches("#/").split('/') {
            s = &s[part];
        }
        return valid(s, root, v);
    }
    if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
        let n = alts.iter().filter(|a| valid(a, root, v).is_ok()).count();
        return if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} alternatives match {v}"))
        };
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Err(format!("{v} is not {c}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{v} not in {e:?}"));
        }
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let o = v.as_object().ok_or(format!("{v} is not an object"))?;
            let props = schema.get("properties").and_then(Value::as_object);
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if !o.contains_key(r.as_str().unwrap()) {
                    return Err(format!("missing {r} in {v}"));
                }
            }
            for (k, x) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => valid(ps, root, x).map_err(|e| format!("{k}: {e}"))?,
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        return Err(format!("unknown member {k}"))
                    }
                    None => {}
                }
            }
        }
        Some("array") => {
            let a = v.as_array().ok_or(format!("{v} is not an array"))?;
            if let Some(m) = schema.get("minItems").and_then(Value::as_u64) {
                if (a.len() as u64) < m {
                    return Err("too few items".into());
                }
            }
            if let Some(items) = schema.get("items") {
                for x in a {
                    valid(items, root, x)?;
                }
            }
        }
        Some("string") => {
            let s = v.as_str().ok_or(format!("{v} is not a string"))?;
            let n = s.chars().count() as u64;
            if schema
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| n < m)
                || schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| n > m)
            {
                return Err(format!("bad length of {s:?}"));
            }
        }
        Some("integer") => {
            let i = v.as_i64().ok_or(format!("{v} is not an integer"))?;
            if schema
                .get("minimum")
                .and_then(Value::as_i64)
                .is_some_and(|m| i < m)
                || schema
                    .get("maximum")
                    .and_then(Value::as_i64)
                    .is_some_and(|m| i > m)
            {
                return Err(format!("{i} out of range"));
            }
        }
        Some("boolean") if !v.is_boolean() => return Err(format!("{v} is not a boolean")),
        _ => {}
    }
    Ok(())
}

fn check(v: &Value) -> Result<(), String> {
    let s = schema();
    valid(&s, &s, v)
}

fn doc_examples() -> Vec<String> {
    let doc = std::fs::read_to_string(root().join("PROTOCOL.md")).unwrap();
    doc.split("```json\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn every_example_in_protocol_md_parses_and_matches_the_schema() {
    let examples = doc_examples();
    assert!(
        examples.len() >= 10,
        "only {} examples found",
        examples.len()
    );
    for e in examples {
        let frame: Frame = serde_json::from_str(&e).unwrap_or_else(|err| panic!("{e}: {err}"));
        let v: Value = serde_json::from_str(&e).unwrap();
        check(&v).unwrap_or_else(|err| panic!("{e}: {err}"));
        // and what the crate writes back is valid too
        check(&serde_json::to_value(&frame).unwrap()).unwrap();
    }
}

#[test]
fn frames_the_crate_writes_are_valid_under_the_schema() {
    let frames = vec![
        Frame::Welcome(Welcome {
            version: VERSION,
            session: "s1".into(),
            addresses: vec!["im:a@b".into()],
        }),
        Frame::Message(MessageFrame {
            id: "s1".into(),
            from: Some("sip:a@b".into()),
            to: "im:c@d".into(),
            content_type: "message/cpim".into(),
            body: "AAE=".into(),
            encoding: BodyEncoding::Base64,
            headers: Headers {
                kind: Some(Kind::Groupchat),
                disposition: vec![Disposition::Display],
                ..Headers::default()
            },
        }),
        Frame::Notify(NotifyFrame {
            id: "s2".into(),
            from: Some("pres:a@b".into()),
            to: "im:c@d".into(),
            state: StateFrame::Terminated,
            expires: None,
            reason: Some("timeout".into()),
            presence: Some(PresenceObject {
                basic: Some(BasicFrame::Closed),
                note: None,
                activities: vec!["away".into()],
            }),
        }),
        Frame::Error(ErrorFrame {
            id: None,
            code: 413,
            reason: "too large".into(),
            fatal: true,
        }),
        Frame::Outcome(OutcomeFrame {
            id: "m".into(),
            code: 200,
            reason: "OK".into(),
        }),
        Frame::Pong(PingFrame { id: None }),
    ];
    for f in frames {
        let v = serde_json::to_value(&f).unwrap();
        check(&v).unwrap_or_else(|e| panic!("{v}: {e}"));
    }
}

#[test]
fn schema_and_crate_agree_on_what_is_refused() {
    let bad = [
        json!({"type":"message","id":"1","to":"im:a@b","body":"x","extra":1}),
        json!({"type":"message","id":"1","to":"im:a@b"}),
        json!({"type":"publish","id":"1","basic":"maybe"}),
        json!({"type":"message","id":"1","to":"im:a@b","body":"x","headers":{"priority":"high"}}),
        json!({"type":"launch"}),
        json!({"type":"hello","version":1}),
    ];
    for b in bad {
        assert!(check(&b).is_err(), "schema accepts {b}");
        assert!(
            serde_json::from_value::<Frame>(b.clone()).is_err(),
            "crate accepts {b}"
        );
    }
}
