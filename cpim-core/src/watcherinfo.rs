//! Watcher information (RFC 3858): who subscribes to a resource
//! (`application/watcherinfo+xml`, RFC 3858 s4).

use crate::rlmi::required;
use crate::xml::{self, ns, DocError, Element, EncodeError, Limits, Writer};

/// The media type (RFC 3858 s7).
pub const CONTENT_TYPE: &str = "application/watcherinfo+xml";

/// A watcherinfo document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherInfo {
    /// `version` (RFC 3858 s4.2): increments with each document of a subscription.
    pub version: u64,
    /// `state`: full or partial.
    pub state: DocState,
    /// `<watcher-list>` elements.
    pub lists: Vec<WatcherList>,
    /// Extension elements, kept as XML text.
    pub extensions: Vec<String>,
}

/// `state` of the document.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DocState {
    /// The complete list.
    Full,
    /// Changes since the previous document.
    Partial,
    /// Another value, as written.
    Other(String),
}

/// The watchers of one resource for one event package.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WatcherList {
    /// `resource`: the watched URI.
    pub resource: String,
    /// `package`: the event package (`presence`).
    pub package: String,
    /// `<watcher>` elements.
    pub watchers: Vec<Watcher>,
    /// Extension elements, kept as XML text.
    pub extensions: Vec<String>,
}

/// One watcher (RFC 3858 s4.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watcher {
    /// The watcher's URI (element text).
    pub uri: String,
    /// `id`: unique for this watcher's subscription.
    pub id: String,
    /// `status`.
    pub status: WatcherStatus,
    /// `event`: what changed the status.
    pub event: WatcherEvent,
    /// `display-name`.
    pub display_name: Option<String>,
    /// `expiration` in seconds.
    pub expiration: Option<u64>,
    /// `duration-subscribed` in seconds.
    pub duration_subscribed: Option<u64>,
    /// `xml:lang` of the display name.
    pub lang: Option<String>,
}

macro_rules! vocab {
    ($(#[$m:meta])* $t:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $t {
            $($(#[$vm])* $v,)*
            /// Another value, as written.
            Other(String),
        }
        impl $t {
            /// The attribute value.
            pub fn as_str(&self) -> &str {
                match self {
                    $($t::$v => $s,)*
                    $t::Other(s) => s,
                }
            }
            /// The value for an attribute text.
            pub fn from_text(s: &str) -> $t {
                match s {
                    $($s => $t::$v,)*
                    other => $t::Other(other.to_owned()),
                }
            }
        }
    };
}

vocab!(
    /// `status` of a watcher (RFC 3858 s4.4).
    WatcherStatus {
        /// pending
        Pending = "pending",
        /// active
        Active = "active",
        /// waiting
        Waiting = "waiting",
        /// terminated
        Terminated = "terminated",
    }
);

vocab!(
    /// `event` of a watcher (RFC 3858 s4.4).
    WatcherEvent {
        /// subscribe
        Subscribe = "subscribe",
        /// approved
        Approved = "approved",
        /// deactivated
        Deactivated = "deactivated",
        /// probation
        Probation = "probation",
        /// rejected
        Rejected = "rejected",
        /// timeout
        Timeout = "timeout",
        /// giveup
        Giveup = "giveup",
        /// noresource
        Noresource = "noresource",
    }
);

/// Parses a watcherinfo document with the default limits.
pub fn parse(input: &[u8]) -> Result<WatcherInfo, DocError> {
    parse_with(input, &Limits::DEFAULT)
}

/// Parses a watcherinfo document.
pub fn parse_with(input: &[u8], limits: &Limits) -> Result<WatcherInfo, DocError> {
    let root = xml::parse_with(input, limits)?;
    from_element(&root)
}

fn number(el: &Element, name: &'static str) -> Result<Option<u64>, DocError> {
    el.attr(name)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| DocError::invalid(name, v))
        })
        .transpose()
}

/// Reads a `<watcherinfo>` element.
pub fn from_element(root: &Element) -> Result<WatcherInfo, DocError> {
    if !root.is(ns::WATCHERINFO, "watcherinfo") {
        return Err(DocError::wrong_root(ns::WATCHERINFO, "watcherinfo", root));
    }
    let version = required(root, "version", "watcherinfo")?;
    let version = version
        .trim()
        .parse::<u64>()
        .map_err(|_| DocError::invalid("version", version))?;
    let state = match required(root, "state", "watcherinfo")? {
        "full" => DocState::Full,
        "partial" => DocState::Partial,
        other => DocState::Other(other.to_owned()),
    };
    let mut d = WatcherInfo {
        version,
        state,
        lists: Vec::new(),
        extensions: Vec::new(),
    };
    for c in root.elements() {
        if c.ns != ns::WATCHERINFO {
            d.extensions.push(c.to_xml());
        } else if c.name == "watcher-list" {
            d.lists.push(list(c)?);
        }
    }
    Ok(d)
}

fn list(el: &Element) -> Result<WatcherList, DocError> {
    let mut l = WatcherList {
        resource: required(el, "resource", "watcher-list")?.to_owned(),
        package: required(el, "package", "watcher-list")?.to_owned(),
        ..WatcherList::default()
    };
    for c in el.elements() {
        if c.ns != ns::WATCHERINFO {
            l.extensions.push(c.to_xml());
        } else if c.name == "watcher" {
            l.watchers.push(Watcher {
                uri: c.trimmed_text(),
                id: required(c, "id", "watcher")?.to_owned(),
                status: WatcherStatus::from_text(required(c, "status", "watcher")?),
                event: WatcherEvent::from_text(required(c, "event", "watcher")?),
                display_name: c.attr("display-name").map(str::to_owned),
                expiration: number(c, "expiration")?,
                duration_subscribed: number(c, "duration-subscribed")?,
                lang: c.lang().map(str::to_owned),
            });
        }
    }
    Ok(l)
}

/// Encodes a watcherinfo document.
pub fn encode(d: &WatcherInfo) -> Result<String, EncodeError> {
    let mut w = Writer::new();
    w.open("watcherinfo")
        .attr("xmlns", ns::WATCHERINFO)
        .attr("version", &d.version.to_string())
        .attr(
            "state",
            match &d.state {
                DocState::Full => "full",
                DocState::Partial => "partial",
                DocState::Other(s) => s,
            },
        );
    for l in &d.lists {
        w.open("watcher-list")
            .attr("resource", &l.resource)
            .attr("package", &l.package);
        for x in &l.watchers {
            w.open("watcher")
                .attr_opt("display-name", x.display_name.as_deref())
                .attr("status", x.status.as_str())
                .attr("event", x.event.as_str());
            if let Some(e) = x.expiration {
                w.attr("expiration", &e.to_string());
            }
            w.attr("id", &x.id);
            if let Some(e) = x.duration_subscribed {
                w.attr("duration-subscribed", &e.to_string());
            }
            w.attr_opt("xml:lang", x.lang.as_deref());
            w.text(&x.uri).close();
        }
        xml::write_extensions(&mut w, &l.extensions, ns::WATCHERINFO, "watcher-list")?;
        w.close();
    }
    xml::write_extensions(&mut w, &d.extensions, ns::WATCHERINFO, "watcherinfo")?;
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3858 s5 example (shape and values).
    const EXAMPLE: &str = r#"<?xml version="1.0"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="0" state="full">
  <watcher-list resource="sip:professor@example.net" package="presence">
    <watcher status="active" id="8ajksjda7s" duration-subscribed="509" event="approved">sip:userA@example.net</watcher>
    <watcher status="pending" id="hh8juja87s997-ass7" display-name="Mr. Subscriber" event="subscribe">sip:userB@example.org</watcher>
  </watcher-list>
</watcherinfo>"#;

    #[test]
    fn rfc3858_example() {
        let d = parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!((d.version, &d.state), (0, &DocState::Full));
        let l = &d.lists[0];
        assert_eq!(
            (l.resource.as_str(), l.package.as_str()),
            ("sip:professor@example.net", "presence")
        );
        assert_eq!(l.watchers.len(), 2);
        let a = &l.watchers[0];
        assert_eq!(
            (a.uri.as_str(), &a.status, &a.event),
            (
                "sip:userA@example.net",
                &WatcherStatus::Active,
                &WatcherEvent::Approved
            )
        );
        assert_eq!(a.duration_subscribed, Some(509));
        assert_eq!(
            l.watchers[1].display_name.as_deref(),
            Some("Mr. Subscriber")
        );
        assert_eq!(parse(encode(&d).unwrap().as_bytes()).unwrap(), d);
    }

    #[test]
    fn missing_and_invalid_attributes_are_named() {
        let e = parse(br#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" state="full"/>"#)
            .unwrap_err();
        assert_eq!(e.to_string(), "missing version in <watcherinfo>");
        let e = parse(br#"<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="-1" state="full"/>"#).unwrap_err();
        assert!(matches!(
            e,
            DocError::Invalid {
                what: "version",
                ..
            }
        ));
        let e = parse(br#"<w:watcherinfo xmlns:w="urn:ietf:params:xml:ns:watcherinfo" version="1" state="partial"><w:watcher-list resource="r" package="p"><w:watcher status="active" event="x">u</w:watcher></w:watcher-list></w:watcherinfo>"#).unwrap_err();
        assert!(
            matches!(
                e,
                DocError::Missing {
                    what: "id",
                    parent: "watcher"
                }
            ),
            "{e}"
        );
    }
}
