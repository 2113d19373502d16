//! What a SIP watcher asks of its NOTIFY bodies beyond plain PIDF: partial notification
//! (RFC 5263) and an event notification filter (RFC 4660, document RFC 4661).
//!
//! - [`WatchRequest::parse`]: from the SUBSCRIBE's `Accept` values and body. A watcher
//!   whose `Accept` lists `application/pidf-diff+xml` (RFC 5263 s3) gets partial
//!   notifications; a body of type `application/simple-filter+xml` is a filter. A filter
//!   the notifier cannot apply refuses the SUBSCRIBE with the status of
//!   [`cpim_core::filter::FilterError::status`] (400, 488, 489; RFC 4660 s3.3); a body
//!   of another type gets 415.
//! - [`Notifier::handle_subscribe_with`]: [`Notifier::handle_subscribe`] plus the above,
//!   kept per subscription. A refresh (RFC 5263 s4: the notifier sends full state after
//!   every SUBSCRIBE) makes the next NOTIFY full state; a refresh without a body keeps
//!   the filter, one with a filter replaces it.
//! - Rendering ([`Notifier::poll_output`] calls [`Notifier::shape`]): the presence of each
//!   NOTIFY is reduced by the filter, and a NOTIFY a filter's triggers do not select
//!   (RFC 4661 s3.5) is not sent; for a partial-notification watcher the body is the
//!   `<pidf-full>` document first, then `<pidf-diff>` documents whose `version` goes up
//!   by one each time (RFC 5262 s3, RFC 5263 s4), or full state again when a change
//!   cannot be expressed by element id.

use cpim_core::address::{Address, Scheme};
use cpim_core::filter::{self, Compiled, FilterError};
use cpim_core::pidf_diff::{self, Diff, Document, FullState};
use cpim_core::presence::Presence;

use super::{
    Notifier, NotifierOutput, OutgoingNotify, SubscribeDecision, SubscribeRequest, PRESENCE_EVENT,
};

/// What a SUBSCRIBE asks beyond PIDF.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchRequest {
    /// `Accept` lists `application/pidf-diff+xml` (with a non-zero q).
    pub accepts_diff: bool,
    /// The filter of the body, compiled; `None` without a filter body.
    pub filter: Option<Compiled>,
}

/// Why a SUBSCRIBE's body or headers cannot be honoured: the status to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchRefusal {
    /// Status code.
    pub code: u16,
    /// Reason phrase.
    pub reason: &'static str,
}

impl WatchRequest {
    /// Reads `accept` (each `Accept` header value, comma lists allowed) and the body with
    /// its Content-Type.
    pub fn parse(
        accept: &[&str],
        body: Option<(&str, &[u8])>,
    ) -> Result<WatchRequest, WatchRefusal> {
        let accepts_diff = accept.iter().flat_map(|v| v.split(',')).any(|item| {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim();
            let zero_q = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case(pidf_diff::CONTENT_TYPE) && !zero_q
        });
        let filter = match body {
            Some((_, b)) if b.iter().all(u8::is_ascii_whitespace) => None,
            Some((ct, b)) => {
                let media = ct.split(';').next().unwrap_or("").trim();
                if !media.eq_ignore_ascii_case(filter::CONTENT_TYPE) {
                    return Err(WatchRefusal {
                        code: 415,
                        reason: "Unsupported Media Type",
                    });
                }
                let compiled = filter::parse(b)
                    .and_then(|set| set.compile(PRESENCE_EVENT))
                    .map_err(|e: FilterError| {
                        let (code, reason) = e.status();
                        tracing::debug!(error = %e, code, "filter refused");
                        WatchRefusal { code, reason }
                    })?;
                Some(compiled)
            }
            None => None,
        };
        Ok(WatchRequest {
            accepts_diff,
            filter,
        })
    }

    fn is_plain(&self) -> bool {
        !self.accepts_diff && self.filter.as_ref().is_none_or(Compiled::is_empty)
    }
}

/// The partial-notification and filter state of one subscription.
#[derive(Debug, Default)]
pub(super) struct Watch {
    accepts_diff: bool,
    filter: Option<Compiled>,
    /// The `version` of the last partial document sent.
    version: u32,
    /// The (filtered) state the watcher holds, as of the last body sent.
    sent: Option<Presence>,
    /// The last unfiltered state seen, for the triggers.
    seen: Option<Presence>,
    /// The Subscription-State name of the last NOTIFY sent.
    last_state: String,
    /// NOTIFYs from this CSeq on start with full state (a refresh's NOTIFY).
    full_from_cseq: Option<u32>,
}

impl Notifier {
    /// [`Notifier::handle_subscribe`] for a SUBSCRIBE with these `Accept` values and body
    /// (see [`WatchRequest::parse`]).
    pub fn handle_subscribe_with(
        &mut self,
        req: SubscribeRequest,
        accept: &[&str],
        body: Option<(&str, &[u8])>,
        local_tag: &str,
        now: u64,
    ) -> SubscribeDecision {
        let wr = match WatchRequest::parse(accept, body) {
            Ok(w) => w,
            Err(r) => {
                return SubscribeDecision::Reject {
                    code: r.code,
                    reason: r.reason,
                    min_expires: None,
                }
            }
        };
        let existing = req
            .to_tag
            .as_ref()
            .map(|t| format!("{}|{}", req.call_id, t));
        let cseq_before = existing
            .as_ref()
            .and_then(|k| self.subs.get(k))
            .map(|s| s.rec.local_cseq);
        let decision = self.handle_subscribe(req, local_tag, now);
        match &decision {
            SubscribeDecision::Submit { key, .. } if !wr.is_plain() => {
                self.watch.insert(
                    key.clone(),
                    Watch {
                        accepts_diff: wr.accepts_diff,
                        filter: wr.filter,
                        ..Watch::default()
                    },
                );
            }
            SubscribeDecision::Answer { expires } if *expires > 0 => {
                let (Some(key), Some(before)) = (existing, cseq_before) else {
                    return decision;
                };
                let had = self.watch.contains_key(&key);
                if !had && wr.is_plain() {
                    return decision;
                }
                let w = self.watch.entry(key).or_default();
                w.accepts_diff = wr.accepts_diff;
                if wr.filter.is_some() {
                    w.filter = wr.filter;
                }
                // RFC 5263 s4: full state after the refresh, in the NOTIFY it triggered.
                w.full_from_cseq = Some(before + 1);
            }
            _ => {}
        }
        decision
    }

    /// Shapes one output on its way out (see the module doc); `None` drops it.
    pub(super) fn shape(&mut self, o: NotifierOutput) -> Option<NotifierOutput> {
        if self.watch.is_empty() && self.closing.is_empty() {
            // The common case: no watcher asked for more than PIDF.
            return Some(o);
        }
        let NotifierOutput::Notify(n) = o else {
            return Some(o);
        };
        let key = n.dialog.key();
        let terminated = n.subscription_state.starts_with("terminated");
        let Some(w) = self.watch.get_mut(&key) else {
            let Some(mut w) = self.closing.remove(&key) else {
                return Some(NotifierOutput::Notify(n));
            };
            let out = w.render(n);
            if !terminated {
                self.closing.insert(key, w);
            }
            return out;
        };
        if terminated {
            let mut w = self.watch.remove(&key).unwrap_or_default();
            return w.render(n);
        }
        w.render(n)
    }
}

fn presentity(s: &str) -> Option<Address> {
    Address::parse(s)
        .ok()
        .map(|a| a.bare().with_scheme(Scheme::Pres))
}

impl Watch {
    fn render(&mut self, mut n: OutgoingNotify) -> Option<NotifierOutput> {
        let state = n
            .subscription_state
            .split(';')
            .next()
            .unwrap_or("")
            .to_owned();
        let refresh = self
            .full_from_cseq
            .is_some_and(|c| n.dialog.local_cseq >= c);
        if refresh {
            self.full_from_cseq = None;
        }
        let Some(mut p) = n.presence.take() else {
            self.last_state = state;
            return Some(NotifierOutput::Notify(n));
        };
        if p.entity.is_none() {
            p.entity = presentity(&n.dialog.presentity);
        }
        if let Some(f) = &self.filter {
            // RFC 4661 s3.5: a change no trigger selects is not notified (full-state
            // NOTIFYs and changes of the subscription state always are).
            if !refresh
                && state == self.last_state
                && state != "terminated"
                && !f.triggered(self.seen.as_ref(), &p)
            {
                self.seen = Some(p);
                return None;
            }
            self.seen = Some(p.clone());
            p = f.apply(&p);
        }
        self.last_state = state;
        if !self.accepts_diff {
            n.presence = Some(p);
            return Some(NotifierOutput::Notify(n));
        }
        let ops = match (&self.sent, refresh) {
            (Some(old), false) => pidf_diff::diff(old, &p).ok().flatten(),
            _ => None,
        };
        self.version = self.version.wrapping_add(1);
        let doc = match ops {
            Some(ops) => Document::Diff(Diff {
                entity: p
                    .entity
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                version: self.version,
                ops,
                prefixes: Vec::new(),
            }),
            None => Document::Full(FullState {
                version: self.version,
                presence: p.clone(),
            }),
        };
        match pidf_diff::encode(&doc) {
            Ok(body) => {
                self.sent = Some(p);
                Some(NotifierOutput::NotifyBody {
                    notify: n,
                    content_type: pidf_diff::CONTENT_TYPE,
                    body,
                })
            }
            Err(e) => {
                // The PIDF encoder refuses the same document: send it as today, the
                // sender logs the failure; the watcher recovers with the next full state.
                tracing::warn!(error = %e, "partial PIDF encoding failed");
                self.sent = None;
                n.presence = Some(p);
                Some(NotifierOutput::Notify(n))
            }
        }
    }
}
