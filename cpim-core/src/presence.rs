//! The abstract presence state: what a presence document says, independent of its
//! encoding. PIDF (RFC 3863) with RPID (RFC 4480) and the data model (RFC 4479) is the
//! canonical encoding; XMPP presence (RFC 6121) maps onto it by RFC 8048.
//!
//! The encodings live in their own modules; this module has only the data.

use crate::address::Address;

/// The presence of one presentity.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Presence {
    /// The presentity (`entity` attribute of PIDF, a `pres:` URI). `None` where the
    /// carrier names it elsewhere (an XMPP stanza's `from`).
    pub entity: Option<Address>,
    /// One tuple per communication means or instance (RFC 3863 s4.1.1; an XMPP resource
    /// per RFC 8048 s6).
    pub tuples: Vec<Tuple>,
    /// The person (RFC 4479 s3.2) with RPID activities (RFC 4480 s3.2).
    pub person: Option<Person>,
    /// Presentity-level notes (RFC 3863 s4.1.6).
    pub notes: Vec<Note>,
    /// Devices of the data model (RFC 4479 s3.4), `<dm:device>`.
    pub devices: Vec<Device>,
    /// Elements of the document this model does not represent, kept as XML text
    /// (with the namespace declarations they need) so that a re-encoding keeps them.
    pub extensions: Vec<String>,
}

/// RFC 3863 basic status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Basic {
    /// Ready to receive.
    Open,
    /// Not ready.
    Closed,
}

/// A PIDF tuple (RFC 3863 s4.1.1) or data-model service (RFC 4479 s3.3).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tuple {
    /// The tuple id (unique within the document).
    pub id: String,
    /// `<basic>`; `None` when absent (the element is optional in RFC 3863).
    pub basic: Option<Basic>,
    /// `<contact>`: where to reach this instance.
    pub contact: Option<String>,
    /// `<contact priority="...">`, 0.0 to 1.0 (RFC 3863 s4.1.5); mapped from XMPP
    /// priority by RFC 8048.
    pub priority: Option<f32>,
    /// `<note>` elements of the tuple.
    pub notes: Vec<Note>,
    /// `<timestamp>` as written (RFC 3339).
    pub timestamp: Option<String>,
    /// `<dm:deviceID>` (RFC 4479).
    pub device_id: Option<String>,
    /// Elements of the tuple not represented here, kept as XML text.
    pub extensions: Vec<String>,
    /// Elements inside `<status>` other than `<basic>` (e.g. geopriv), kept as XML text.
    pub status_extensions: Vec<String>,
}

/// A device of the data model (RFC 4479 s3.4): `<dm:device id>` with its
/// `<dm:deviceID>`, notes and timestamp.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Device {
    /// The element id.
    pub id: String,
    /// `<dm:deviceID>`, a URN (required by the schema; `None` only for lenient input).
    pub device_id: Option<String>,
    /// `<dm:note>` elements.
    pub notes: Vec<Note>,
    /// `<dm:timestamp>` as written.
    pub timestamp: Option<String>,
    /// Characteristics not represented here (RPID user-input, class, ...), kept as XML text.
    pub extensions: Vec<String>,
}

/// A note with an optional language (RFC 3863 s4.1.6; `xml:lang`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Note {
    /// Language tag, e.g. `en`.
    pub lang: Option<String>,
    /// The text.
    pub text: String,
}

impl Note {
    /// A note without a language.
    pub fn new(text: impl Into<String>) -> Note {
        Note {
            lang: None,
            text: text.into(),
        }
    }
}

/// A person element of the data model (RFC 4479) with its RPID information.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Person {
    /// The person id.
    pub id: String,
    /// RPID `<activities>` (RFC 4480 s3.2).
    pub activities: Vec<Activity>,
    /// Person-level notes.
    pub notes: Vec<Note>,
    /// Elements of the person not represented here (mood, place-type, ...), kept as XML text.
    pub extensions: Vec<String>,
    /// `<dm:timestamp>` of the person as written.
    pub timestamp: Option<String>,
    /// `<rpid:note>` elements inside `<rpid:activities>`.
    pub activities_notes: Vec<Note>,
    /// `from` attribute of `<rpid:activities>` (RFC 4480 s3.1).
    pub activities_from: Option<String>,
    /// `until` attribute of `<rpid:activities>`.
    pub activities_until: Option<String>,
    /// Activities in other namespaces (allowed by RFC 4480), kept as XML text.
    pub activities_extensions: Vec<String>,
}

/// An RPID activity (RFC 4480 s3.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activity {
    /// appointment
    Appointment,
    /// away
    Away,
    /// breakfast
    Breakfast,
    /// busy
    Busy,
    /// dinner
    Dinner,
    /// holiday
    Holiday,
    /// in-transit
    InTransit,
    /// looking-for-work
    LookingForWork,
    /// meal
    Meal,
    /// meeting
    Meeting,
    /// on-the-phone
    OnThePhone,
    /// performance
    Performance,
    /// permanent-absence
    PermanentAbsence,
    /// playing
    Playing,
    /// presentation
    Presentation,
    /// shopping
    Shopping,
    /// sleeping
    Sleeping,
    /// spectator
    Spectator,
    /// steering
    Steering,
    /// travel
    Travel,
    /// tv
    Tv,
    /// unknown
    Unknown,
    /// vacation
    Vacation,
    /// working
    Working,
    /// worship
    Worship,
    /// `<other>` with its text.
    Other(String),
}

impl Activity {
    /// All activities with an element name, in RFC 4480 order.
    pub const NAMED: [(&'static str, Activity); 25] = [
        ("appointment", Activity::Appointment),
        ("away", Activity::Away),
        ("breakfast", Activity::Breakfast),
        ("busy", Activity::Busy),
        ("dinner", Activity::Dinner),
        ("holiday", Activity::Holiday),
        ("in-transit", Activity::InTransit),
        ("looking-for-work", Activity::LookingForWork),
        ("meal", Activity::Meal),
        ("meeting", Activity::Meeting),
        ("on-the-phone", Activity::OnThePhone),
        ("performance", Activity::Performance),
        ("permanent-absence", Activity::PermanentAbsence),
        ("playing", Activity::Playing),
        ("presentation", Activity::Presentation),
        ("shopping", Activity::Shopping),
        ("sleeping", Activity::Sleeping),
        ("spectator", Activity::Spectator),
        ("steering", Activity::Steering),
        ("travel", Activity::Travel),
        ("tv", Activity::Tv),
        ("unknown", Activity::Unknown),
        ("vacation", Activity::Vacation),
        ("working", Activity::Working),
        ("worship", Activity::Worship),
    ];

    /// The element name (`on-the-phone`); `other` for [`Activity::Other`].
    pub fn name(&self) -> &str {
        if let Activity::Other(_) = self {
            return "other";
        }
        Self::NAMED
            .iter()
            .find(|(_, a)| a == self)
            .map(|(n, _)| *n)
            .unwrap_or("unknown")
    }

    /// The activity for an element name, `None` if RFC 4480 has no such element.
    pub fn from_name(name: &str) -> Option<Activity> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| a.clone())
    }
}

impl Presence {
    /// True if any tuple is open.
    pub fn is_available(&self) -> bool {
        self.tuples.iter().any(|t| t.basic == Some(Basic::Open))
    }
}
