//! Dialback verification in the s2s hub (XEP-0220 s2.1.2-2.4, RFC 6120 s13): a key
//! received on an incoming stream is sent, as `<db:verify/>`, on our outgoing stream to
//! the claimed domain's authoritative server; only that stream's answer about that
//! (stream id, from, to) decides, anything else is ignored and logged.

use tracing::{debug, warn};

use super::{std_now, Conn, Hub, Pair, Session};

/// A dialback key waiting for the authoritative server's answer: the incoming stream that
/// asked, and the outgoing stream (to the claimed domain) the `<db:verify/>` was sent on.
/// Only an answer arriving on that very outgoing stream, about that (from, to) pair and
/// stream id, counts (XEP-0220 s2.3-2.4, RFC 6120 s13).
pub(super) struct PendingVerify {
    pub(super) incoming: u64,
    pub(super) outgoing: Option<u64>,
}

impl Hub {
    /// An incoming stream asks us to verify `key` for (from, to) on its stream `stream_id`.
    pub(super) fn on_verify_key(
        &mut self,
        id: u64,
        from: String,
        to: String,
        key: String,
        stream_id: String,
        now: std::time::Instant,
    ) {
        debug!(conn = id, %from, "xmpp s2s: verifying dialback key with the authoritative server");
        let pkey = (stream_id.clone(), from.clone(), to.clone());
        self.pending_verify.insert(
            pkey.clone(),
            PendingVerify {
                incoming: id,
                outgoing: None,
            },
        );
        // Asked on the stream from the domain the peer wants to reach.
        let vpair = (to.clone(), from.clone());
        let out = self.out_by_remote.get(&vpair).copied();
        let sent = match out.and_then(|o| self.conns.get_mut(&o)) {
            Some(Conn {
                session: Session::Out(o),
                ..
            }) => {
                o.send_verify(&to, &from, &stream_id, &key, now);
                true
            }
            _ => false,
        };
        if sent {
            if let Some(p) = self.pending_verify.get_mut(&pkey) {
                p.outgoing = out;
            }
            if let Some(o) = out {
                self.pump(o);
            }
        } else {
            self.verify_queue.entry(vpair.clone()).or_default().push((
                to,
                from.clone(),
                stream_id,
                key,
            ));
            self.ensure_out(&vpair);
        }
    }

    /// An answer to a `<db:verify/>` arrived on connection `id`.
    pub(super) fn on_verify_answer(
        &mut self,
        id: u64,
        is_out: bool,
        pair: Option<Pair>,
        key: (String, String, String),
        valid: bool,
        now: std::time::Instant,
    ) {
        let pkey = (
            key.0,
            key.1.to_ascii_lowercase(),
            key.2.to_ascii_lowercase(),
        );
        // XEP-0220 s2.4 / RFC 6120 s13: the answer must come from the claimed
        // domain's authoritative server, on the stream we asked it on, about the
        // pair we asked for. Anything else is ignored.
        let bound = is_out
            && pair.as_ref() == Some(&(pkey.2.clone(), pkey.1.clone()))
            && self
                .pending_verify
                .get(&pkey)
                .is_some_and(|p| p.outgoing == Some(id));
        if !bound {
            warn!(
                conn = id,
                link = ?pair,
                from = %pkey.1,
                to = %pkey.2,
                "xmpp s2s: ignoring a dialback verify answer not asked for on this stream"
            );
            return;
        }
        let Some(p) = self.pending_verify.remove(&pkey) else {
            return;
        };
        let (_, claimed, ours) = pkey;
        if !valid {
            warn!(%claimed, "xmpp s2s: dialback key refused by the authoritative server");
        }
        if let Some(Conn {
            session: Session::In(i),
            ..
        }) = self.conns.get_mut(&p.incoming)
        {
            i.verify_done(&claimed, &ours, valid, now);
        }
        self.pump(p.incoming);
    }

    /// A connection is gone: verifications its incoming stream asked for are forgotten;
    /// those sent on it as an outgoing stream can no longer be answered on it, so the
    /// incoming streams that asked get `type='invalid'` (they may try again).
    pub(super) fn drop_verifications(&mut self, id: u64) {
        let now = std_now();
        let mut lost = Vec::new();
        self.pending_verify.retain(|k, p| {
            if p.outgoing == Some(id) {
                lost.push((p.incoming, k.1.clone(), k.2.clone()));
            }
            p.incoming != id && p.outgoing != Some(id)
        });
        for (inc, claimed, ours) in lost {
            warn!(%claimed, "xmpp s2s: stream to the authoritative server lost before it answered");
            if let Some(Conn {
                session: Session::In(i),
                ..
            }) = self.conns.get_mut(&inc)
            {
                i.verify_done(&claimed, &ours, false, now);
            }
            self.pump(inc);
        }
    }
}
