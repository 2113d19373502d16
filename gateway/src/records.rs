//! The stored forms of model values (JSON through serde), kept apart from `cpim-core`,
//! which has no serde. Every conversion is lossless: `from(to(x)) == x` (tested).

use cpim_core::address::{Address, Scheme};
use cpim_core::model::{DispositionRequest, Message, MessageKind, SubscriptionState, TransId};
use cpim_core::presence::Presence;
use serde::{Deserialize, Serialize};

/// Why a stored record cannot be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not the JSON this module writes.
    #[error("malformed record: {0}")]
    Json(#[from] serde_json::Error),
    /// A field with an unknown value.
    #[error("malformed record: {0}")]
    Value(String),
}

/// An address, field by field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddressRec {
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    d: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<String>,
}

impl From<&Address> for AddressRec {
    fn from(a: &Address) -> Self {
        AddressRec {
            s: a.scheme.as_str().to_owned(),
            u: a.user.clone(),
            d: a.domain.clone(),
            i: a.instance.clone(),
        }
    }
}

impl TryFrom<AddressRec> for Address {
    type Error = RecordError;
    fn try_from(r: AddressRec) -> Result<Address, RecordError> {
        let scheme = match r.s.as_str() {
            "im" => Scheme::Im,
            "pres" => Scheme::Pres,
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "xmpp" => Scheme::Xmpp,
            other => return Err(RecordError::Value(format!("scheme {other:?}"))),
        };
        Ok(Address {
            scheme,
            user: r.u,
            domain: r.d,
            instance: r.i,
        })
    }
}

/// A queued message.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageRec {
    trans_id: u64,
    source: AddressRec,
    destination: AddressRec,
    content_type: String,
    #[serde(with = "body_b64")]
    body: Vec<u8>,
    message_id: Option<String>,
    subject: Option<String>,
    thread: Option<String>,
    language: Option<String>,
    kind: String,
    delivery: bool,
    display: bool,
    /// Absent in records written before it existed.
    #[serde(default)]
    negative: bool,
    hops_left: u8,
}

mod body_b64 {
    //! Bodies are bytes: stored as hex inside the JSON (compact enough for IM sizes).
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        // Text bodies stay readable in the sqlite3 tool when they are UTF-8.
        match std::str::from_utf8(b) {
            Ok(t) => s.serialize_str(&format!("t:{t}")),
            Err(_) => {
                let mut out = String::with_capacity(2 + b.len() * 2);
                out.push_str("x:");
                for byte in b {
                    out.push_str(&format!("{byte:02x}"));
                }
                s.serialize_str(&out)
            }
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if let Some(t) = s.strip_prefix("t:") {
            return Ok(t.as_bytes().to_vec());
        }
        let h = s
            .strip_prefix("x:")
            .ok_or_else(|| serde::de::Error::custom("body without t:/x: prefix"))?;
        if h.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

impl From<&Message> for MessageRec {
    fn from(m: &Message) -> Self {
        MessageRec {
            trans_id: m.trans_id.0,
            source: (&m.source).into(),
            destination: (&m.destination).into(),
            content_type: m.content_type.clone(),
            body: m.body.clone(),
            message_id: m.message_id.clone(),
            subject: m.subject.clone(),
            thread: m.thread.clone(),
            language: m.language.clone(),
            kind: match m.kind {
                MessageKind::Chat => "chat",
                MessageKind::Normal => "normal",
                MessageKind::Headline => "headline",
                MessageKind::Groupchat => "groupchat",
            }
            .to_owned(),
            delivery: m.disposition.delivery,
            display: m.disposition.display,
            negative: m.disposition.negative,
            hops_left: m.hops_left,
        }
    }
}

impl TryFrom<MessageRec> for Message {
    type Error = RecordError;
    fn try_from(r: MessageRec) -> Result<Message, RecordError> {
        Ok(Message {
            trans_id: TransId(r.trans_id),
            source: r.source.try_into()?,
            destination: r.destination.try_into()?,
            content_type: r.content_type,
            body: r.body,
            message_id: r.message_id,
            subject: r.subject,
            thread: r.thread,
            language: r.language,
            kind: match r.kind.as_str() {
                "chat" => MessageKind::Chat,
                "normal" => MessageKind::Normal,
                "headline" => MessageKind::Headline,
                "groupchat" => MessageKind::Groupchat,
                other => return Err(RecordError::Value(format!("message kind {other:?}"))),
            },
            disposition: DispositionRequest {
                delivery: r.delivery,
                display: r.display,
                negative: r.negative,
            },
            hops_left: r.hops_left,
        })
    }
}

/// A presence document, stored as PIDF (RFC 3863) through the `cpim-core` codec, so the
/// store follows the model as it grows. The codec normalizes on parse (generated ids,
/// clamped priorities), and parse -> encode -> parse is stable.
pub fn presence_to_pidf(p: &Presence) -> Result<String, RecordError> {
    cpim_core::pidf::encode(p).map_err(|e| RecordError::Value(format!("presence: {e}")))
}

/// Reads what [`presence_to_pidf`] wrote.
pub fn presence_from_pidf(s: &str) -> Result<Presence, RecordError> {
    cpim_core::pidf::parse(s.as_bytes()).map_err(|e| RecordError::Value(format!("presence: {e}")))
}

/// A subscription state, as text (`pending`, `active`, `terminated:<reason>`).
pub fn state_to_str(s: &SubscriptionState) -> String {
    match s {
        SubscriptionState::Pending => "pending".into(),
        SubscriptionState::Active { expires } => format!("active:{expires}"),
        SubscriptionState::Terminated(r) => format!("terminated:{}", r.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_round_trip_with_binary_body() {
        let mut m = Message::new(
            TransId(7),
            Address::parse("sip:a%20b@sip.test;gr=x").unwrap(),
            Address::parse("romeo@xmpp.test/orchard").unwrap(),
            "application/octet-stream",
            vec![0u8, 255, 10, 13],
        );
        m.subject = Some("s".into());
        m.kind = MessageKind::Headline;
        m.disposition.display = true;
        let json = serde_json::to_string(&MessageRec::from(&m)).unwrap();
        let back: Message = serde_json::from_str::<MessageRec>(&json)
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn presence_round_trip_through_pidf() {
        use cpim_core::presence::{Activity, Basic, Note, Person, Tuple};
        let p = Presence {
            entity: Some(Address::parse("pres:alice@sip.test").unwrap()),
            tuples: vec![Tuple {
                id: "t1".into(),
                basic: Some(Basic::Open),
                priority: Some(0.5),
                notes: vec![Note::new("hi")],
                ..Default::default()
            }],
            person: Some(Person {
                id: "p".into(),
                activities: vec![Activity::OnThePhone],
                ..Default::default()
            }),
            ..Default::default()
        };
        let once = presence_from_pidf(&presence_to_pidf(&p).unwrap()).unwrap();
        assert_eq!(once.tuples[0].basic, Some(Basic::Open));
        assert_eq!(
            once.person.as_ref().unwrap().activities,
            vec![Activity::OnThePhone]
        );
        let twice = presence_from_pidf(&presence_to_pidf(&once).unwrap()).unwrap();
        assert_eq!(twice, once);
    }

    proptest::proptest! {
        #[test]
        fn any_body_round_trips(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let m = Message::new(TransId(1), Address::parse("sip:a@b").unwrap(), Address::parse("c@d").unwrap(), "x/y", body);
            let json = serde_json::to_string(&MessageRec::from(&m)).unwrap();
            let back: Message = serde_json::from_str::<MessageRec>(&json).unwrap().try_into().unwrap();
            proptest::prop_assert_eq!(back, m);
        }
    }
}
