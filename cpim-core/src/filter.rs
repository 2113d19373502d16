//! Event notification filters (RFC 4661 document format, `application/simple-filter+xml`)
//! for the presence package, and what a notifier does with them (RFC 4660).
//!
//! - [`parse`]: a `<filter-set>` (RFC 4661 s3: `package`, `<ns-bindings>`, `<filter>`
//!   with `id`, `uri`, `domain`, `remove`, `enabled`, then `<what>` with `<include>` /
//!   `<exclude>` and `<trigger>` with `<changed>`, `<added>`, `<removed>`) into a
//!   [`FilterSet`]. A document that does not parse or breaks the RFC 4661 structure is
//!   [`FilterError::Malformed`].
//! - [`FilterSet::compile`]: decides whether the notifier can apply the filters
//!   (RFC 4660 s3.3: a notifier refuses a filter it cannot honour rather than ignore it)
//!   and turns them into a [`Compiled`] filter. Supported: `<include>` / `<exclude>` of
//!   the namespaces the PIDF codec knows (PIDF, data model, RPID, CIPID, capabilities;
//!   PIDF itself cannot be excluded, it is the document's skeleton) and of top-level
//!   elements by a simple path (`/pidf:presence/pidf:tuple`, with `[@id='x']`, `pidf:note`,
//!   `dm:person`, `dm:device`); triggers `<changed>` on
//!   `/pidf:presence/pidf:tuple/pidf:status/pidf:basic` (optionally `from`/`to`) and on
//!   `/pidf:presence/dm:person/rpid:activities`, and `<added>` / `<removed>` on
//!   `/pidf:presence/pidf:tuple`. Anything else is unsupported. A filter's `uri` and
//!   `domain` are read but not matched: a presence subscription has one resource, and
//!   every enabled filter of the set applies to it.
//! - Errors carry the SIP status a SUBSCRIBE gets ([`FilterError::status`]): 400 for a
//!   malformed document; 488 (Not Acceptable Here) for a filter using a namespace the
//!   notifier does not know or a feature it cannot apply; 489 (Bad Event) for a
//!   filter-set written for another event package than the subscription's.
//! - [`Compiled::apply`] reduces a presence document to what the filter lets through;
//!   [`Compiled::triggered`] says whether a change is to be notified at all. Pure
//!   functions over [`Presence`].

use crate::presence::{Basic, Presence};
use crate::xml::{self, ns, DocError, Element, Limits};

/// The media type (RFC 4661 s7).
pub const CONTENT_TYPE: &str = "application/simple-filter+xml";

/// Bounds of a filter document: it is small, and it is kept for the whole subscription.
pub const LIMITS: Limits = Limits {
    max_bytes: 16 * 1024,
    max_depth: 8,
    max_elements: 256,
    max_attributes: 16,
};

/// Most `<filter>` elements in one document.
pub const MAX_FILTERS: usize = 16;

/// A `<filter-set>`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FilterSet {
    /// `package`: the event package the filters are for.
    pub package: Option<String>,
    /// `<ns-binding prefix urn>`: prefixes the paths use.
    pub ns_bindings: Vec<(String, String)>,
    /// The filters in document order.
    pub filters: Vec<Filter>,
}

/// One `<filter>` (RFC 4661 s3.3).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Filter {
    /// `id`.
    pub id: Option<String>,
    /// `uri`: the resource it is for.
    pub uri: Option<String>,
    /// `domain`: the domain of the resources it is for.
    pub domain: Option<String>,
    /// `remove="true"`: removes the filter with this id.
    pub remove: bool,
    /// `enabled` (default true).
    pub enabled: bool,
    /// `<what>`.
    pub what: Option<What>,
    /// `<trigger>` elements (any of them fires).
    pub triggers: Vec<Trigger>,
}

/// `<what>`: what the notifications contain (RFC 4661 s3.4).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct What {
    /// `<include>` items.
    pub include: Vec<Selector>,
    /// `<exclude>` items.
    pub exclude: Vec<Selector>,
}

/// The content of an `<include>` or `<exclude>` by its `type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `type="namespace"`: every element in this namespace.
    Namespace(String),
    /// `type="xpath"` (the default): the elements a path selects.
    Path(String),
}

/// One `<trigger>`: its conditions, all of which must hold (RFC 4661 s3.5).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Trigger {
    /// The conditions.
    pub conditions: Vec<Condition>,
}

/// A trigger condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `<changed from? to? by?>path</changed>`.
    Changed {
        /// The path.
        path: String,
        /// `from`.
        from: Option<String>,
        /// `to`.
        to: Option<String>,
        /// `by`.
        by: Option<String>,
    },
    /// `<added>path</added>`.
    Added(String),
    /// `<removed>path</removed>`.
    Removed(String),
}

/// Why a filter document cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// Not a well-formed filter document.
    #[error("malformed filter document: {0}")]
    Malformed(String),
    /// A namespace the notifier does not know (in a path, an `<include type=namespace>`,
    /// or an element of the filter).
    #[error("filter uses unknown namespace {0}")]
    UnknownNamespace(String),
    /// A feature the notifier cannot apply.
    #[error("filter not supported: {0}")]
    Unsupported(String),
    /// The filter-set is for another event package.
    #[error("filter is for event package {0:?}")]
    WrongPackage(String),
}

impl FilterError {
    /// The status for the SUBSCRIBE that carried the filter (see the module doc).
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            FilterError::Malformed(_) => (400, "Bad Request"),
            FilterError::UnknownNamespace(_) | FilterError::Unsupported(_) => {
                (488, "Not Acceptable Here")
            }
            FilterError::WrongPackage(_) => (489, "Bad Event"),
        }
    }
}

impl From<DocError> for FilterError {
    fn from(e: DocError) -> Self {
        FilterError::Malformed(e.to_string())
    }
}

/// Namespaces whose elements the presence model keeps apart, so a namespace filter can
/// act on them.
const KNOWN: [&str; 5] = [ns::PIDF, ns::DATA_MODEL, ns::RPID, ns::CIPID, ns::CAPS];

fn flag(el: &Element, name: &'static str, default: bool) -> Result<bool, FilterError> {
    match el.attr(name).map(str::trim) {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(v) => Err(FilterError::Malformed(format!("{name}={v:?}"))),
    }
}

fn foreign(el: &Element) -> Result<(), FilterError> {
    match el.elements().find(|c| c.ns != ns::SIMPLE_FILTER) {
        Some(c) => Err(FilterError::UnknownNamespace(c.ns.clone())),
        None => Ok(()),
    }
}

/// Parses a filter document.
pub fn parse(input: &[u8]) -> Result<FilterSet, FilterError> {
    let root = xml::parse_with(input, &LIMITS).map_err(DocError::from)?;
    if !root.is(ns::SIMPLE_FILTER, "filter-set") {
        return Err(DocError::wrong_root(ns::SIMPLE_FILTER, "filter-set", &root).into());
    }
    foreign(&root)?;
    let mut set = FilterSet {
        package: root.attr("package").map(str::to_owned),
        ..FilterSet::default()
    };
    for el in root.elements() {
        match el.name.as_str() {
            "ns-bindings" => {
                for b in el.elements() {
                    let (Some(p), Some(u)) = (b.attr("prefix"), b.attr("urn")) else {
                        return Err(FilterError::Malformed(
                            "ns-binding without prefix or urn".into(),
                        ));
                    };
                    set.ns_bindings.push((p.to_owned(), u.trim().to_owned()));
                }
            }
            "filter" => {
                if set.filters.len() == MAX_FILTERS {
                    return Err(FilterError::Unsupported(format!(
                        "more than {MAX_FILTERS} filters"
                    )));
                }
                set.filters.push(filter(el)?);
            }
            other => return Err(FilterError::Malformed(format!("unexpected <{other}>"))),
        }
    }
    Ok(set)
}

fn filter(el: &Element) -> Result<Filter, FilterError> {
    foreign(el)?;
    let mut f = Filter {
        id: el.attr("id").map(str::to_owned),
        uri: el.attr("uri").map(str::to_owned),
        domain: el.attr("domain").map(str::to_owned),
        remove: flag(el, "remove", false)?,
        enabled: flag(el, "enabled", true)?,
        ..Filter::default()
    };
    for c in el.elements() {
        match c.name.as_str() {
            "what" if f.what.is_none() => {
                foreign(c)?;
                let mut w = What::default();
                for s in c.elements() {
                    let sel = match s.attr("type").unwrap_or("xpath") {
                        "xpath" => Selector::Path(s.trimmed_text()),
                        "namespace" => Selector::Namespace(s.trimmed_text()),
                        t => {
                            return Err(FilterError::Unsupported(format!(
                                "<{}> type {t:?}",
                                s.name
                            )))
                        }
                    };
                    match s.name.as_str() {
                        "include" => w.include.push(sel),
                        "exclude" => w.exclude.push(sel),
                        other => {
                            return Err(FilterError::Malformed(format!(
                                "unexpected <{other}> in <what>"
                            )))
                        }
                    }
                }
                f.what = Some(w);
            }
            "trigger" => {
                foreign(c)?;
                let mut t = Trigger::default();
                for k in c.elements() {
                    t.conditions.push(match k.name.as_str() {
                        "changed" => Condition::Changed {
                            path: k.trimmed_text(),
                            from: k.attr("from").map(str::to_owned),
                            to: k.attr("to").map(str::to_owned),
                            by: k.attr("by").map(str::to_owned),
                        },
                        "added" => Condition::Added(k.trimmed_text()),
                        "removed" => Condition::Removed(k.trimmed_text()),
                        other => {
                            return Err(FilterError::Malformed(format!(
                                "unexpected <{other}> in <trigger>"
                            )))
                        }
                    });
                }
                f.triggers.push(t);
            }
            other => {
                return Err(FilterError::Malformed(format!(
                    "unexpected <{other}> in <filter>"
                )))
            }
        }
    }
    if f.id.is_none() && f.remove {
        return Err(FilterError::Malformed("remove without id".into()));
    }
    Ok(f)
}

/// A top-level element of a presence document a path designates.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Top {
    Tuple(Option<String>),
    Note,
    Person,
    Device(Option<String>),
}

/// What a trigger condition watches.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Cond {
    Basic {
        tuple: Option<String>,
        from: Option<Basic>,
        to: Option<Basic>,
    },
    Activities,
    Added,
    Removed,
}

/// Filters the notifier can apply, ready to be applied.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Compiled {
    include_ns: Vec<String>,
    exclude_ns: Vec<String>,
    include: Vec<Top>,
    exclude: Vec<Top>,
    triggers: Vec<Vec<Cond>>,
}

/// One step of a path: expanded name and an optional `[@id='x']`.
fn steps(
    path: &str,
    bindings: &[(String, String)],
) -> Result<Vec<(String, String, Option<String>)>, FilterError> {
    let unsupported = || FilterError::Unsupported(format!("path {path:?}"));
    let p = path.trim().strip_prefix('/').ok_or_else(unsupported)?;
    p.split('/')
        .map(|step| {
            let (qname, id) = match step.split_once('[') {
                None => (step, None),
                Some((q, pred)) => {
                    let v = pred
                        .strip_suffix(']')
                        .and_then(|p| p.trim().strip_prefix("@id="))
                        .and_then(|v| {
                            v.strip_prefix('\'')
                                .and_then(|v| v.strip_suffix('\''))
                                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                        })
                        .ok_or_else(unsupported)?;
                    (q, Some(v.to_owned()))
                }
            };
            let (nsname, local) = match qname.split_once(':') {
                Some((prefix, local)) => {
                    let n = bindings
                        .iter()
                        .find(|(p, _)| p == prefix)
                        .map(|(_, n)| n.clone())
                        .ok_or_else(|| {
                            FilterError::Malformed(format!("prefix {prefix:?} is not bound"))
                        })?;
                    (n, local)
                }
                // Unprefixed: the presence vocabulary, by local name.
                None => (
                    match qname {
                        "person" | "device" => ns::DATA_MODEL,
                        "activities" => ns::RPID,
                        _ => ns::PIDF,
                    }
                    .to_owned(),
                    qname,
                ),
            };
            if !KNOWN.contains(&nsname.as_str()) {
                return Err(FilterError::UnknownNamespace(nsname));
            }
            Ok((nsname, local.to_owned(), id))
        })
        .collect()
}

fn top(path: &str, bindings: &[(String, String)]) -> Result<Top, FilterError> {
    let s = steps(path, bindings)?;
    let unsupported = || FilterError::Unsupported(format!("path {path:?}"));
    let [(rns, root, None), (ens, el, id)] = s.as_slice() else {
        return Err(unsupported());
    };
    if rns != ns::PIDF || root != "presence" {
        return Err(unsupported());
    }
    match (ens.as_str(), el.as_str(), id) {
        (ns::PIDF, "tuple", id) => Ok(Top::Tuple(id.clone())),
        (ns::PIDF, "note", None) => Ok(Top::Note),
        (ns::DATA_MODEL, "person", None) => Ok(Top::Person),
        (ns::DATA_MODEL, "device", id) => Ok(Top::Device(id.clone())),
        _ => Err(unsupported()),
    }
}

fn basic(v: Option<&String>) -> Result<Option<Basic>, FilterError> {
    match v.map(|s| s.trim()) {
        None => Ok(None),
        Some("open") => Ok(Some(Basic::Open)),
        Some("closed") => Ok(Some(Basic::Closed)),
        Some(other) => Err(FilterError::Unsupported(format!("basic status {other:?}"))),
    }
}

fn cond(c: &Condition, bindings: &[(String, String)]) -> Result<Cond, FilterError> {
    let unsupported = |p: &str| FilterError::Unsupported(format!("trigger path {p:?}"));
    match c {
        Condition::Changed { path, from, to, by } => {
            if by.is_some() {
                return Err(FilterError::Unsupported("changed by".into()));
            }
            let s = steps(path, bindings)?;
            let names: Vec<(&str, &str)> =
                s.iter().map(|(n, l, _)| (n.as_str(), l.as_str())).collect();
            match names.as_slice() {
                [(ns::PIDF, "presence"), (ns::PIDF, "tuple"), (ns::PIDF, "status"), (ns::PIDF, "basic")]
                    if s[0].2.is_none() && s[2].2.is_none() && s[3].2.is_none() =>
                {
                    Ok(Cond::Basic {
                        tuple: s[1].2.clone(),
                        from: basic(from.as_ref())?,
                        to: basic(to.as_ref())?,
                    })
                }
                [(ns::PIDF, "presence"), (ns::DATA_MODEL, "person"), (ns::RPID, "activities")]
                    if from.is_none() && to.is_none() =>
                {
                    Ok(Cond::Activities)
                }
                _ => Err(unsupported(path)),
            }
        }
        Condition::Added(p) | Condition::Removed(p) => match top(p, bindings)? {
            Top::Tuple(None) if matches!(c, Condition::Added(_)) => Ok(Cond::Added),
            Top::Tuple(None) => Ok(Cond::Removed),
            _ => Err(unsupported(p)),
        },
    }
}

impl FilterSet {
    /// Decides whether the notifier can apply these filters for a subscription to
    /// `package` and compiles them (see the module doc). Filters with `remove` or
    /// `enabled="false"` contribute nothing; at most one filter may have a `<what>`.
    pub fn compile(&self, package: &str) -> Result<Compiled, FilterError> {
        if let Some(p) = &self.package {
            if !p.trim().eq_ignore_ascii_case(package) {
                return Err(FilterError::WrongPackage(p.clone()));
            }
        }
        let mut c = Compiled::default();
        let mut whats = 0;
        for f in self.filters.iter().filter(|f| f.enabled && !f.remove) {
            if let Some(w) = &f.what {
                whats += 1;
                if whats > 1 {
                    return Err(FilterError::Unsupported("more than one <what>".into()));
                }
                for (sels, nss, tops) in [
                    (&w.include, &mut c.include_ns, &mut c.include),
                    (&w.exclude, &mut c.exclude_ns, &mut c.exclude),
                ] {
                    for s in sels {
                        match s {
                            Selector::Namespace(n) if KNOWN.contains(&n.as_str()) => {
                                nss.push(n.clone())
                            }
                            Selector::Namespace(n) => {
                                return Err(FilterError::UnknownNamespace(n.clone()))
                            }
                            Selector::Path(p) => tops.push(top(p, &self.ns_bindings)?),
                        }
                    }
                }
                if c.exclude_ns.iter().any(|n| n == ns::PIDF) {
                    return Err(FilterError::Unsupported(
                        "excluding the PIDF namespace".into(),
                    ));
                }
            }
            for t in &f.triggers {
                let conds = t
                    .conditions
                    .iter()
                    .map(|k| cond(k, &self.ns_bindings))
                    .collect::<Result<Vec<_>, _>>()?;
                if !conds.is_empty() {
                    c.triggers.push(conds);
                }
            }
        }
        Ok(c)
    }
}

fn selects(t: &Top, kind: &str, id: &str) -> bool {
    match (t, kind) {
        (Top::Tuple(want), "tuple") | (Top::Device(want), "device") => {
            want.as_deref().is_none_or(|w| w == id)
        }
        (Top::Person, "person") | (Top::Note, "note") => true,
        _ => false,
    }
}

/// The namespace of a kept extension (its root element's).
fn ext_ns(x: &str) -> Option<String> {
    xml::parse(x.as_bytes()).ok().map(|e| e.ns)
}

impl Compiled {
    /// True if the filter changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Compiled::default()
    }

    fn ns_allowed(&self, n: &str) -> bool {
        (n == ns::PIDF || self.include_ns.is_empty() || self.include_ns.iter().any(|i| i == n))
            && !self.exclude_ns.iter().any(|e| e == n)
    }

    fn keeps(&self, kind: &str, id: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|t| selects(t, kind, id)))
            && !self.exclude.iter().any(|t| selects(t, kind, id))
    }

    /// What the filter lets through of `p` (RFC 4661 s3.4 `<what>`).
    pub fn apply(&self, p: &Presence) -> Presence {
        let mut out = p.clone();
        out.tuples.retain(|t| self.keeps("tuple", &t.id));
        out.devices.retain(|d| self.keeps("device", &d.id));
        if !self.keeps("note", "") {
            out.notes.clear();
        }
        if out
            .person
            .as_ref()
            .is_some_and(|x| !self.keeps("person", &x.id))
        {
            out.person = None;
        }
        let keep_ext =
            |v: &mut Vec<String>| v.retain(|x| ext_ns(x).is_none_or(|n| self.ns_allowed(&n)));
        if !self.ns_allowed(ns::DATA_MODEL) {
            out.person = None;
            out.devices.clear();
            out.tuples.iter_mut().for_each(|t| t.device_id = None);
        }
        keep_ext(&mut out.extensions);
        for t in &mut out.tuples {
            keep_ext(&mut t.extensions);
            keep_ext(&mut t.status_extensions);
        }
        for d in &mut out.devices {
            keep_ext(&mut d.extensions);
        }
        if let Some(person) = &mut out.person {
            if !self.ns_allowed(ns::RPID) {
                person.activities.clear();
                person.activities_notes.clear();
                person.activities_extensions.clear();
                person.activities_from = None;
                person.activities_until = None;
            }
            keep_ext(&mut person.extensions);
            keep_ext(&mut person.activities_extensions);
        }
        out
    }

    /// Whether a change from `old` to `new` is to be notified (RFC 4661 s3.5): always
    /// without triggers or without a previous state, else when every condition of some
    /// trigger holds.
    pub fn triggered(&self, old: Option<&Presence>, new: &Presence) -> bool {
        let Some(old) = old else { return true };
        if self.triggers.is_empty() {
            return true;
        }
        self.triggers
            .iter()
            .any(|conds| conds.iter().all(|c| Self::holds(c, old, new)))
    }

    fn holds(c: &Cond, old: &Presence, new: &Presence) -> bool {
        match c {
            Cond::Basic { tuple, from, to } => new.tuples.iter().any(|t| {
                tuple.as_deref().is_none_or(|id| id == t.id)
                    && old.tuples.iter().find(|o| o.id == t.id).is_some_and(|o| {
                        o.basic != t.basic
                            && from.is_none_or(|f| o.basic == Some(f))
                            && to.is_none_or(|x| t.basic == Some(x))
                    })
            }),
            Cond::Activities => {
                old.person.as_ref().map(|p| &p.activities)
                    != new.person.as_ref().map(|p| &p.activities)
            }
            Cond::Added => new
                .tuples
                .iter()
                .any(|t| !old.tuples.iter().any(|o| o.id == t.id)),
            Cond::Removed => old
                .tuples
                .iter()
                .any(|o| !new.tuples.iter().any(|t| t.id == o.id)),
        }
    }
}

#[cfg(test)]
mod tests;
