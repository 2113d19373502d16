//! The frames of the JSON protocol, version 1 (see `PROTOCOL.md` and `schema/v1.json`).
//!
//! Every frame is one JSON object with a `type` member. Unknown members are refused
//! (`deny_unknown_fields`): a client that misspells a field learns it at once instead of
//! having it silently ignored.

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks.
pub const VERSION: u32 = 1;

/// One frame, either direction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Frame {
    /// Client -> server: first frame of a session.
    Hello(Hello),
    /// Server -> client: the hello was accepted.
    Welcome(Welcome),
    /// Either direction: an instant message.
    Message(MessageFrame),
    /// Client -> server: the client publishes its presence.
    Publish(PublishFrame),
    /// Either direction: a watcher subscribes to a presentity.
    Subscribe(SubscribeFrame),
    /// Either direction: a watcher ends its subscription.
    Unsubscribe(UnsubscribeFrame),
    /// Either direction: presence and/or subscription state for a watcher.
    Notify(NotifyFrame),
    /// Either direction: the final answer to an operation frame with the same `id`.
    Outcome(OutcomeFrame),
    /// Server -> client: something the client sent was refused.
    Error(ErrorFrame),
    /// Either direction: liveness check, answered by `pong` with the same id.
    Ping(PingFrame),
    /// Either direction: the answer to `ping`.
    Pong(PingFrame),
}

impl Frame {
    /// The `type` name of the frame.
    pub fn type_name(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Welcome(_) => "welcome",
            Frame::Message(_) => "message",
            Frame::Publish(_) => "publish",
            Frame::Subscribe(_) => "subscribe",
            Frame::Unsubscribe(_) => "unsubscribe",
            Frame::Notify(_) => "notify",
            Frame::Outcome(_) => "outcome",
            Frame::Error(_) => "error",
            Frame::Ping(_) => "ping",
            Frame::Pong(_) => "pong",
        }
    }
}

/// `hello`: protocol version and the login token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// Must be [`VERSION`].
    pub version: u32,
    /// A token from the adapter's configuration.
    pub token: String,
}

/// `welcome`: the session is open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// The version spoken.
    pub version: u32,
    /// A session identifier, for logs.
    pub session: String,
    /// The addresses this session may send as; the first is the default `from`.
    pub addresses: Vec<String>,
}

/// How `body` is encoded in a JSON string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// The body is the UTF-8 text itself.
    #[default]
    Utf8,
    /// The body is standard base64 (RFC 4648 s4, padded) of the bytes.
    Base64,
}

impl BodyEncoding {
    fn is_utf8(&self) -> bool {
        *self == BodyEncoding::Utf8
    }
}

/// The kind of a message (after XMPP message types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One-to-one conversation.
    Chat,
    /// A single message.
    Normal,
    /// An alert expecting no reply.
    Headline,
    /// A message to or from a group.
    Groupchat,
}

/// A disposition notification the sender asks for (RFC 5438).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// positive-delivery
    Delivery,
    /// display
    Display,
}

/// The CPIM header fields a message carries besides its body.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Conversation thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
    /// The message's own id (`imdn.Message-ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Language of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Message kind; `chat` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    /// Requested disposition notifications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disposition: Vec<Disposition>,
}

impl Headers {
    fn is_empty(&self) -> bool {
        *self == Headers::default()
    }
}

fn default_content_type() -> String {
    "text/plain;charset=UTF-8".to_owned()
}

/// `message`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFrame {
    /// Chosen by the sender of the frame; the `outcome` frame repeats it.
    pub id: String,
    /// Sender address; from a client, one of its session's addresses (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Recipient address.
    pub to: String,
    /// MIME type with parameters.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// The body, encoded as `encoding` says.
    pub body: String,
    /// `utf8` (default) or `base64`.
    #[serde(default, skip_serializing_if = "BodyEncoding::is_utf8")]
    pub encoding: BodyEncoding,
    /// CPIM header fields.
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
}

/// RFC 3863 basic status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BasicFrame {
    /// Ready to receive.
    Open,
    /// Not ready.
    Closed,
}

fn default_expires() -> u32 {
    3600
}

/// `publish`: the client's own presence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishFrame {
    /// Frame id.
    pub id: String,
    /// Presentity; one of the session's addresses (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// open/closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicFrame>,
    /// A free-text note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// RFC 4480 activity names (`away`, `busy`, `on-the-phone`, ...); any other text is
    /// carried as an `other` activity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<String>,
    /// Seconds the state is valid; 0 withdraws it.
    #[serde(default = "default_expires")]
    pub expires: u32,
}

/// `subscribe`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeFrame {
    /// Frame id.
    pub id: String,
    /// Watcher; one of the session's addresses (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Presentity.
    pub to: String,
    /// Requested duration in seconds; 0 fetches the state once.
    #[serde(default = "default_expires")]
    pub expires: u32,
}

/// `unsubscribe`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeFrame {
    /// Frame id.
    pub id: String,
    /// Watcher; one of the session's addresses (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Presentity.
    pub to: String,
}

/// Subscription state in a `notify`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateFrame {
    /// Awaiting authorization.
    Pending,
    /// Authorized.
    Active,
    /// Ended.
    Terminated,
}

/// `notify`: `from` is the presentity, `to` the watcher.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFrame {
    /// Frame id.
    pub id: String,
    /// Presentity; from a client, one of its session's addresses (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Watcher.
    pub to: String,
    /// Subscription state.
    pub state: StateFrame,
    /// Seconds left, for `active`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u32>,
    /// Why, for `terminated` (RFC 6665 reasons: `deactivated`, `rejected`, `timeout`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The presentity's state, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceObject>,
}

/// A presence state as a nested object (in `notify`); same members as in [`PublishFrame`].
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceObject {
    /// open/closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicFrame>,
    /// A free-text note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// RFC 4480 activity names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activities: Vec<String>,
}

/// `outcome`: the final status of the operation frame with the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeFrame {
    /// The id of the operation frame answered.
    pub id: String,
    /// SIP-style status code (2xx success).
    pub code: u16,
    /// Reason phrase.
    #[serde(default)]
    pub reason: String,
}

/// `error`: a frame was refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorFrame {
    /// The id of the refused frame, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// SIP-style code: 400 malformed, 401 no hello yet, 403 forbidden, 413 too large,
    /// 429 rate limited, 481 unknown id, 505 version not supported.
    pub code: u16,
    /// What was wrong, for a human.
    pub reason: String,
    /// True when the server closes the connection after this frame.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fatal: bool,
}

/// `ping`/`pong`.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PingFrame {
    /// Echoed in the `pong`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}
