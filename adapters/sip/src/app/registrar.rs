//! The registrar and location service (RFC 3261 s10.3). Sans-IO: requests come in as
//! [`RegisterRequest`] values with the current time; the answer says what to respond
//! and which AOR's bindings to persist.
//!
//! Processing follows s10.3 steps 6 to 8: `*` only alone and with `Expires: 0`; each
//! contact's expiry from its `expires` parameter, else the Expires header, else the
//! default; a non-zero expiry under the minimum rejects the whole request with 423 and
//! Min-Expires; over the maximum it is shortened; an existing binding with the same
//! Call-ID is only updated by a higher CSeq, otherwise the whole request fails (500)
//! and nothing changes. The 200 lists every current binding with its remaining time.

use std::collections::HashMap;

use super::config::RegistrarConfig;
use super::store::BindingRecord;

/// One Contact of a REGISTER.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactEntry {
    /// The contact URI (without angle brackets and header parameters).
    pub uri: String,
    /// Its `expires` parameter.
    pub expires: Option<u32>,
    /// Its `q` parameter.
    pub q: Option<f32>,
    /// Its `+sip.instance` parameter.
    pub instance: Option<String>,
}

/// The Contact header field(s) of a REGISTER.
#[derive(Clone, Debug, PartialEq)]
pub enum Contacts {
    /// No Contact: a query for the current bindings.
    Query,
    /// `Contact: *`.
    Star,
    /// A list of contacts.
    List(Vec<ContactEntry>),
}

/// A REGISTER as the registrar needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterRequest {
    /// The AOR from the To header, canonical (`sip:user@domain`).
    pub aor: String,
    /// The contacts.
    pub contacts: Contacts,
    /// The Expires header, if any.
    pub expires: Option<u32>,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// The flow it arrived over.
    pub flow: Option<String>,
    /// The stream connection it arrived over ([`super::tu::Source::connection`]).
    pub connection: Option<u64>,
    /// The authenticated digest username, if any.
    pub authenticated_user: Option<String>,
}

/// A refusal, with the status to send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// 400: `*` with other contacts or a non-zero expiry.
    #[error("400 invalid wildcard Contact")]
    BadWildcard,
    /// 423 Interval Too Brief, with the Min-Expires value to send.
    #[error("423 Interval Too Brief (Min-Expires {0})")]
    IntervalTooBrief(u32),
    /// 500: an out-of-order CSeq for an existing binding (s10.3 step 7).
    #[error("500 out-of-order CSeq {cseq} for Call-ID {call_id}")]
    OutOfOrder {
        /// The request's Call-ID.
        call_id: String,
        /// The request's CSeq.
        cseq: u32,
    },
    /// 403: too many bindings for one AOR.
    #[error("403 too many bindings (limit {0})")]
    TooManyBindings(usize),
}

impl RegisterError {
    /// The SIP status code and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            RegisterError::BadWildcard => (400, "Invalid Wildcard Contact"),
            RegisterError::IntervalTooBrief(_) => (423, "Interval Too Brief"),
            RegisterError::OutOfOrder { .. } => (500, "Out Of Order CSeq"),
            RegisterError::TooManyBindings(_) => (403, "Too Many Bindings"),
        }
    }
}

/// The result of a successful REGISTER.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterOutcome {
    /// The current bindings, to list in the 200 (with `expires` = remaining seconds).
    pub bindings: Vec<(BindingRecord, u32)>,
    /// True if the bindings changed and must be persisted.
    pub changed: bool,
}

/// The location service: bindings per AOR.
#[derive(Debug, Default)]
pub struct Registrar {
    config: RegistrarConfig,
    bindings: HashMap<String, Vec<BindingRecord>>,
}

fn same_contact(a: &str, b: &str) -> bool {
    // RFC 3261 s19.1.4 URI comparison, simplified: scheme and host case-insensitive,
    // user part case-sensitive. Good enough to recognise the same UA refreshing.
    fn split(u: &str) -> (String, &str) {
        match u.split_once('@') {
            Some((user, rest)) => {
                let (scheme, user) = user.split_once(':').unwrap_or(("sip", user));
                (format!("{}:{user}", scheme.to_ascii_lowercase()), rest)
            }
            None => (String::new(), u),
        }
    }
    let (ua, ra) = split(a.trim());
    let (ub, rb) = split(b.trim());
    ua == ub && ra.eq_ignore_ascii_case(rb)
}

impl Registrar {
    /// An empty registrar with these limits.
    pub fn new(config: RegistrarConfig) -> Registrar {
        Registrar {
            config,
            bindings: HashMap::new(),
        }
    }

    /// Loads bindings read from the store, dropping expired ones.
    pub fn restore(&mut self, records: Vec<BindingRecord>, now: u64) {
        for r in records {
            if r.expires_at > now {
                self.bindings.entry(r.aor.clone()).or_default().push(r);
            }
        }
    }

    /// Handles a REGISTER (RFC 3261 s10.3 steps 6-8).
    pub fn handle_register(
        &mut self,
        req: &RegisterRequest,
        now: u64,
    ) -> Result<RegisterOutcome, RegisterError> {
        let limits = self.config.limits();
        let current = self.bindings.get(&req.aor).cloned().unwrap_or_default();
        let mut next: Vec<BindingRecord> = current
            .iter()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        let mut changed = next.len() != current.len();
        match &req.contacts {
            Contacts::Query => {}
            Contacts::Star => {
                if req.expires != Some(0) {
                    return Err(RegisterError::BadWildcard);
                }
                for b in &next {
                    if b.call_id == req.call_id && req.cseq <= b.cseq {
                        return Err(RegisterError::OutOfOrder {
                            call_id: req.call_id.clone(),
                            cseq: req.cseq,
                        });
                    }
                }
                changed |= !next.is_empty();
                next.clear();
            }
            Contacts::List(list) => {
                // Validate every contact first: the request is atomic.
                let mut granted = Vec::with_capacity(list.len());
                for c in list {
                    let e = limits
                        .grant(c.expires.or(req.expires))
                        .map_err(RegisterError::IntervalTooBrief)?;
                    granted.push(e);
                }
                for (c, expires) in list.iter().zip(granted) {
                    let existing = next.iter().position(|b| same_contact(&b.contact, &c.uri));
                    if let Some(i) = existing {
                        let b = &next[i];
                        if b.call_id == req.call_id && req.cseq <= b.cseq {
                            return Err(RegisterError::OutOfOrder {
                                call_id: req.call_id.clone(),
                                cseq: req.cseq,
                            });
                        }
                        changed = true;
                        if expires == 0 {
                            next.remove(i);
                            continue;
                        }
                        let b = &mut next[i];
                        b.contact.clone_from(&c.uri);
                        b.q = c.q;
                        b.call_id.clone_from(&req.call_id);
                        b.cseq = req.cseq;
                        b.expires_at = now + u64::from(expires);
                        b.flow.clone_from(&req.flow);
                        b.connection = req.connection;
                        b.authenticated_user.clone_from(&req.authenticated_user);
                        b.instance.clone_from(&c.instance);
                    } else if expires != 0 {
                        changed = true;
                        next.push(BindingRecord {
                            aor: req.aor.clone(),
                            contact: c.uri.clone(),
                            q: c.q,
                            call_id: req.call_id.clone(),
                            cseq: req.cseq,
                            expires_at: now + u64::from(expires),
                            flow: req.flow.clone(),
                            connection: req.connection,
                            authenticated_user: req.authenticated_user.clone(),
                            instance: c.instance.clone(),
                            cpim: false,
                        });
                    }
                }
                if next.len() > self.config.max_bindings {
                    return Err(RegisterError::TooManyBindings(self.config.max_bindings));
                }
            }
        }
        let listed = next
            .iter()
            .map(|b| (b.clone(), remaining(b, now)))
            .collect();
        if next.is_empty() {
            self.bindings.remove(&req.aor);
        } else {
            self.bindings.insert(req.aor.clone(), next);
        }
        Ok(RegisterOutcome {
            bindings: listed,
            changed,
        })
    }

    /// The live bindings of `aor`, highest q first (absent q counts as 1.0, RFC 3261
    /// s20.10 leaves it to the registrar).
    pub fn lookup(&self, aor: &str, now: u64) -> Vec<&BindingRecord> {
        let mut v: Vec<&BindingRecord> = self
            .bindings
            .get(aor)
            .map(|bs| bs.iter().filter(|b| b.expires_at > now).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| {
            b.q.unwrap_or(1.0)
                .partial_cmp(&a.q.unwrap_or(1.0))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        v
    }

    /// The user that registered `aor` with digest authentication over the stream
    /// connection `connection` (which came over `flow`), if that binding is live: the
    /// connection is then trusted for that user (RFC 5626 s3: the flow is the connection).
    /// A binding restored from the store, or made over UDP, has no connection and is
    /// never trusted this way.
    pub fn flow_authenticated(
        &self,
        aor: &str,
        flow: &str,
        connection: Option<u64>,
        now: u64,
    ) -> Option<&str> {
        let connection = connection?;
        self.bindings.get(aor)?.iter().find_map(|b| {
            (b.expires_at > now
                && b.flow.as_deref() == Some(flow)
                && b.connection == Some(connection))
            .then_some(b.authenticated_user.as_deref())
            .flatten()
        })
    }

    /// Marks the live bindings of `aor` registered over `flow` as writing `message/cpim`;
    /// returns the AOR's bindings when one changed (to persist).
    pub fn learn_cpim(&mut self, aor: &str, flow: &str, now: u64) -> Option<Vec<BindingRecord>> {
        let bs = self.bindings.get_mut(aor)?;
        let mut changed = false;
        for b in bs.iter_mut() {
            if b.expires_at > now && b.flow.as_deref() == Some(flow) && !b.cpim {
                b.cpim = true;
                changed = true;
            }
        }
        changed.then(|| bs.clone())
    }

    /// Removes expired bindings; returns the AORs whose bindings changed, with what is
    /// left of them (to persist).
    pub fn expire(&mut self, now: u64) -> Vec<(String, Vec<BindingRecord>)> {
        let mut changed = Vec::new();
        self.bindings.retain(|aor, bs| {
            let before = bs.len();
            bs.retain(|b| b.expires_at > now);
            if bs.len() != before {
                changed.push((aor.clone(), bs.clone()));
            }
            !bs.is_empty()
        });
        changed
    }

    /// How many bindings there are in total.
    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }

    /// True if `aor` has bindings.
    pub fn has_bindings(&self, aor: &str) -> bool {
        self.bindings.get(aor).is_some_and(|b| !b.is_empty())
    }

    /// When the next binding expires.
    pub fn next_expiry(&self) -> Option<u64> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    /// The AORs with live bindings.
    pub fn aors(&self) -> impl Iterator<Item = &str> {
        self.bindings.keys().map(String::as_str)
    }
}

fn remaining(b: &BindingRecord, now: u64) -> u32 {
    u32::try_from(b.expires_at.saturating_sub(now)).unwrap_or(u32::MAX)
}

/// Parses the Contact header values of a REGISTER (each value may hold a comma list).
/// Returns `None` for a malformed value.
pub fn parse_contacts<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Contacts> {
    let mut list = Vec::new();
    let mut star = false;
    let mut any = false;
    for v in values {
        for item in split_commas(v) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            any = true;
            if item == "*" {
                star = true;
                continue;
            }
            list.push(parse_contact(item)?);
        }
    }
    match (any, star) {
        (false, _) => Some(Contacts::Query),
        (true, true) if list.is_empty() => Some(Contacts::Star),
        (true, true) => None,
        (true, false) => Some(Contacts::List(list)),
    }
}

/// Splits at commas outside quotes and angle brackets.
pub fn split_commas(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(&v[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&v[start..]);
    out
}

/// Parses one contact: `"Name" <sip:u@h;transport=tcp>;expires=60;q=0.5` or a bare URI
/// (whose `;` parameters are then header parameters, RFC 3261 s20.10).
pub fn parse_contact(item: &str) -> Option<ContactEntry> {
    let (uri, params) = if let Some(lt) = find_unquoted(item, b'<') {
        let gt = item[lt..].find('>')? + lt;
        (item[lt + 1..gt].trim(), &item[gt + 1..])
    } else {
        match item.find(';') {
            Some(i) => (item[..i].trim(), &item[i..]),
            None => (item.trim(), ""),
        }
    };
    if uri.is_empty() || !uri.contains(':') {
        return None;
    }
    let mut e = ContactEntry {
        uri: uri.to_owned(),
        expires: None,
        q: None,
        instance: None,
    };
    for p in params.split(';') {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let k = k.trim();
        let v = v.trim();
        if k.eq_ignore_ascii_case("expires") {
            e.expires = Some(v.parse::<u64>().ok()?.min(u64::from(u32::MAX)) as u32);
        } else if k.eq_ignore_ascii_case("q") {
            let q: f32 = v.parse().ok()?;
            if !(0.0..=1.0).contains(&q) {
                return None;
            }
            e.q = Some(q);
        } else if k.eq_ignore_ascii_case("+sip.instance") {
            e.instance = Some(v.trim_matches('"').to_owned());
        }
    }
    Some(e)
}

fn find_unquoted(s: &str, c: u8) -> Option<usize> {
    let mut quoted = false;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            x if x == c && !quoted => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registrar {
        Registrar::new(RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 1800,
            max_bindings: 3,
        })
    }

    fn req(contacts: Contacts, expires: Option<u32>, call_id: &str, cseq: u32) -> RegisterRequest {
        RegisterRequest {
            aor: "sip:alice@sip.test".into(),
            contacts,
            expires,
            call_id: call_id.into(),
            cseq,
            flow: Some("tcp:127.0.0.1:5070".into()),
            connection: Some(7),
            authenticated_user: Some("alice".into()),
        }
    }

    fn contact(uri: &str, expires: Option<u32>) -> ContactEntry {
        ContactEntry {
            uri: uri.into(),
            expires,
            q: None,
            instance: None,
        }
    }

    #[test]
    fn add_refresh_list_and_expire() {
        let mut r = reg();
        let out = r
            .handle_register(
                &req(
                    Contacts::List(vec![contact("sip:alice@192.0.2.1:5070", None)]),
                    None,
                    "c1",
                    1,
                ),
                1000,
            )
            .unwrap();
        assert!(out.changed);
        assert_eq!(out.bindings.len(), 1);
        assert_eq!(out.bindings[0].1, 1800, "default expiry");
        // Refresh with a larger value is capped at max.
        let out = r
            .handle_register(
                &req(
                    Contacts::List(vec![contact("sip:alice@192.0.2.1:5070", Some(99999))]),
                    None,
                    "c1",
                    2,
                ),
                1100,
            )
            .unwrap();
        assert_eq!(out.bindings[0].1, 3600);
        // A second UA with another Call-ID.
        let out = r
            .handle_register(
                &req(
                    Contacts::List(vec![contact("sip:alice@192.0.2.2", Some(120))]),
                    None,
                    "c2",
                    1,
                ),
                1100,
            )
            .unwrap();
        assert_eq!(out.bindings.len(), 2);
        // Query lists without change.
        let out = r
            .handle_register(&req(Contacts::Query, None, "c3", 1), 1110)
            .unwrap();
        assert!(!out.changed);
        assert_eq!(out.bindings.len(), 2);
        assert_eq!(r.lookup("sip:alice@sip.test", 1110).len(), 2);
        // Virtual time passes: the 120 s binding expires.
        let gone = r.expire(1221);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.len(), 1);
        assert_eq!(r.lookup("sip:alice@sip.test", 1221).len(), 1);
        assert_eq!(r.next_expiry(), Some(1100 + 3600));
    }

    #[test]
    fn too_brief_is_423_and_changes_nothing() {
        let mut r = reg();
        let e = r
            .handle_register(
                &req(
                    Contacts::List(vec![
                        contact("sip:alice@192.0.2.1", Some(600)),
                        contact("sip:alice@192.0.2.2", Some(10)),
                    ]),
                    None,
                    "c1",
                    1,
                ),
                0,
            )
            .unwrap_err();
        assert_eq!(e, RegisterError::IntervalTooBrief(60));
        assert_eq!(e.status().0, 423);
        assert!(r.lookup("sip:alice@sip.test", 0).is_empty());
    }

    #[test]
    fn same_call_id_needs_higher_cseq() {
        let mut r = reg();
        let c = || Contacts::List(vec![contact("sip:alice@192.0.2.1", None)]);
        r.handle_register(&req(c(), None, "c1", 5), 0).unwrap();
        let e = r.handle_register(&req(c(), None, "c1", 5), 1).unwrap_err();
        assert!(matches!(e, RegisterError::OutOfOrder { .. }));
        assert_eq!(e.status().0, 500);
        // Another Call-ID replaces it whatever its CSeq.
        r.handle_register(&req(c(), None, "c9", 1), 2).unwrap();
        assert_eq!(r.lookup("sip:alice@sip.test", 2)[0].call_id, "c9");
    }

    #[test]
    fn star_removal_rules() {
        let mut r = reg();
        r.handle_register(
            &req(
                Contacts::List(vec![contact("sip:alice@192.0.2.1", None)]),
                None,
                "c1",
                5,
            ),
            0,
        )
        .unwrap();
        assert_eq!(
            r.handle_register(&req(Contacts::Star, Some(60), "c1", 6), 1),
            Err(RegisterError::BadWildcard)
        );
        assert_eq!(
            r.handle_register(&req(Contacts::Star, None, "c1", 6), 1),
            Err(RegisterError::BadWildcard)
        );
        assert!(matches!(
            r.handle_register(&req(Contacts::Star, Some(0), "c1", 4), 1),
            Err(RegisterError::OutOfOrder { .. })
        ));
        let out = r
            .handle_register(&req(Contacts::Star, Some(0), "c1", 6), 1)
            .unwrap();
        assert!(out.changed);
        assert!(out.bindings.is_empty());
        assert!(r.lookup("sip:alice@sip.test", 1).is_empty());
    }

    #[test]
    fn expires_zero_removes_one_binding_and_limit_applies() {
        let mut r = reg();
        let list: Vec<_> = (1..=3)
            .map(|i| contact(&format!("sip:alice@192.0.2.{i}"), None))
            .collect();
        r.handle_register(&req(Contacts::List(list), None, "c1", 1), 0)
            .unwrap();
        let e = r
            .handle_register(
                &req(
                    Contacts::List(vec![contact("sip:alice@192.0.2.9", None)]),
                    None,
                    "c2",
                    1,
                ),
                0,
            )
            .unwrap_err();
        assert_eq!(e, RegisterError::TooManyBindings(3));
        let out = r
            .handle_register(
                &req(
                    Contacts::List(vec![contact("sip:alice@192.0.2.2", Some(0))]),
                    None,
                    "c1",
                    2,
                ),
                0,
            )
            .unwrap();
        assert_eq!(out.bindings.len(), 2);
    }

    #[test]
    fn cpim_is_learned_per_flow_and_survives_refresh() {
        let mut r = reg();
        let c = || Contacts::List(vec![contact("sip:alice@192.0.2.1", None)]);
        r.handle_register(&req(c(), None, "c1", 1), 0).unwrap();
        const AOR: &str = "sip:alice@sip.test";
        assert!(
            r.learn_cpim(AOR, "tcp:127.0.0.1:9999", 0).is_none(),
            "another flow"
        );
        assert!(r
            .learn_cpim("sip:bob@sip.test", "tcp:127.0.0.1:5070", 0)
            .is_none());
        let saved = r.learn_cpim(AOR, "tcp:127.0.0.1:5070", 0).expect("changed");
        assert!(saved[0].cpim);
        assert!(
            r.learn_cpim(AOR, "tcp:127.0.0.1:5070", 0).is_none(),
            "no change twice"
        );
        r.handle_register(&req(c(), None, "c1", 2), 10).unwrap();
        assert!(r.lookup(AOR, 10)[0].cpim, "a refresh keeps it");
    }

    #[test]
    fn lookup_orders_by_q_and_flow_trust() {
        let mut r = reg();
        let mut a = contact("sip:alice@192.0.2.1", None);
        a.q = Some(0.2);
        let mut b = contact("sip:alice@192.0.2.2", None);
        b.q = Some(0.9);
        r.handle_register(&req(Contacts::List(vec![a, b]), None, "c1", 1), 0)
            .unwrap();
        let l = r.lookup("sip:alice@sip.test", 0);
        assert_eq!(l[0].contact, "sip:alice@192.0.2.2");
        const FLOW: &str = "tcp:127.0.0.1:5070";
        let ok = |r: &Registrar, flow: &str, conn: Option<u64>, now: u64| {
            r.flow_authenticated("sip:alice@sip.test", flow, conn, now)
                .map(str::to_owned)
        };
        assert_eq!(ok(&r, FLOW, Some(7), 0).as_deref(), Some("alice"));
        assert_eq!(ok(&r, "tcp:127.0.0.1:9999", Some(7), 0), None);
        assert_eq!(ok(&r, FLOW, Some(7), 999_999), None);
        // RFC 5626 s3: the flow is the connection, not its address and port
        assert_eq!(ok(&r, FLOW, Some(8), 0), None, "another connection");
        assert_eq!(ok(&r, FLOW, None, 0), None, "no connection");
        // restored bindings carry no connection: nothing vouches until a new REGISTER
        let saved: Vec<_> = r
            .lookup("sip:alice@sip.test", 0)
            .into_iter()
            .map(|b| BindingRecord {
                connection: None,
                ..b.clone()
            })
            .collect();
        let mut r2 = reg();
        r2.restore(saved, 0);
        assert_eq!(ok(&r2, FLOW, Some(7), 0), None);
    }

    #[test]
    fn restore_drops_expired() {
        let mut r = reg();
        r.handle_register(
            &req(
                Contacts::List(vec![contact("sip:alice@192.0.2.1", Some(100))]),
                None,
                "c1",
                1,
            ),
            0,
        )
        .unwrap();
        let saved: Vec<_> = r
            .lookup("sip:alice@sip.test", 0)
            .into_iter()
            .cloned()
            .collect();
        let mut r2 = reg();
        r2.restore(saved.clone(), 50);
        assert_eq!(r2.lookup("sip:alice@sip.test", 50).len(), 1);
        let mut r3 = reg();
        r3.restore(saved, 150);
        assert!(r3.lookup("sip:alice@sip.test", 150).is_empty());
    }

    #[test]
    fn contact_parsing() {
        assert_eq!(parse_contacts(std::iter::empty()), Some(Contacts::Query));
        assert_eq!(parse_contacts(["*"]), Some(Contacts::Star));
        assert_eq!(parse_contacts(["*, <sip:a@b>"]), None);
        let Some(Contacts::List(l)) = parse_contacts([
            "\"A, B\" <sip:a@192.0.2.1;transport=tcp>;expires=60;q=0.7, sip:b@h;expires=5",
        ]) else {
            panic!("not a list")
        };
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].uri, "sip:a@192.0.2.1;transport=tcp");
        assert_eq!(l[0].expires, Some(60));
        assert_eq!(l[0].q, Some(0.7));
        assert_eq!(l[1].uri, "sip:b@h");
        assert_eq!(l[1].expires, Some(5));
        assert_eq!(parse_contacts(["<sip:a@b>;q=2"]), None);
        assert_eq!(parse_contacts(["<sip:a@b"]), None);
        assert_eq!(parse_contacts(["<sip:a@b>;expires=x"]), None);
    }
}
