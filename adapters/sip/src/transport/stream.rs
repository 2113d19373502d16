//! The sans-IO read side of one SIP stream connection (TCP or TLS): framing
//! (RFC 3261 s18.3) plus a deadline per message that trickled bytes do not move.
//!
//! An idle timer reset by every byte lets a client hold a connection forever by sending
//! one byte every few seconds (slowloris). Here the clock starts at the first byte of an
//! unfinished message and the whole message (head and body) must be in within
//! `message_timeout`; the tokio layer closes the connection when [`StreamReader::deadline`]
//! passes. Keep-alive CRLFs (RFC 5626 s3.5.1) complete at once and start no clock.
//! Time is passed in, so the rules are tested on virtual time.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::codec::framing::{Frame, Framer, FramingError, Limits};

/// What the reader found in its buffer.
#[derive(Debug)]
pub(crate) enum Item {
    /// A framed message.
    Message(Bytes),
    /// A double-CRLF keep-alive ping (answer with one CRLF, RFC 5626 s3.5.1).
    Ping,
    /// The stream cannot be resynchronised: answer (the buffer still holds the
    /// offending message, see [`StreamReader::buffered`]) and close.
    Fatal(FramingError),
}

/// Framing state and message deadline of one stream connection.
#[derive(Debug)]
pub(crate) struct StreamReader {
    buf: BytesMut,
    /// Resumes the search for the end of the head where the last read stopped, so a
    /// trickled message costs linear work.
    framer: Framer,
    message_timeout: Duration,
    /// When the first byte of the unfinished message arrived.
    started: Option<Instant>,
}

impl StreamReader {
    pub(crate) fn new(limits: Limits, message_timeout: Duration) -> StreamReader {
        StreamReader {
            buf: BytesMut::with_capacity(8192),
            framer: Framer::new(limits),
            message_timeout,
            started: None,
        }
    }

    /// The buffer to read into; call [`StreamReader::received`] after each read.
    /// It keeps at least 4 KiB of spare room (growing by 8 KiB); one read takes at most
    /// what is spare, which bounds what one connection reads per turn.
    pub(crate) fn buffer_mut(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(8192);
        }
        &mut self.buf
    }

    /// Appends `data` (for callers that do not read into [`StreamReader::buffer_mut`]).
    #[cfg(test)]
    pub(crate) fn push(&mut self, data: &[u8], now: Instant) {
        self.buf.extend_from_slice(data);
        self.received(now);
    }

    /// Notes that bytes were appended at `now`: starts the message clock if none runs.
    pub(crate) fn received(&mut self, now: Instant) {
        if self.started.is_none() && !self.buf.is_empty() {
            self.started = Some(now);
        }
    }

    /// The buffered, not yet framed bytes.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The next item, or `None` when more bytes are needed. `now` restarts the clock
    /// for bytes left over after a message (the start of the next one).
    pub(crate) fn next(&mut self, now: Instant) -> Option<Item> {
        let item = match self.framer.frame(&self.buf) {
            Ok(Frame::Incomplete) => return None,
            Ok(Frame::KeepAlive(n)) => {
                let _ = self.buf.split_to(n);
                if n >= 4 {
                    Some(Item::Ping)
                } else {
                    // a lone CRLF: nothing to answer, look further
                    self.restart(now);
                    return self.next(now);
                }
            }
            Ok(Frame::Message { len }) => Some(Item::Message(self.buf.split_to(len).freeze())),
            Err(e) => return Some(Item::Fatal(e)),
        };
        self.restart(now);
        item
    }

    fn restart(&mut self, now: Instant) {
        self.started = if self.buf.is_empty() { None } else { Some(now) };
    }

    /// When the unfinished message must be complete; `None` when nothing is pending.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.started.map(|t| t + self.message_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    fn reader() -> StreamReader {
        StreamReader::new(Limits::default(), Duration::from_secs(10))
    }

    /// RFC 3261 s18.3 framing with a deadline from the first byte: a header section
    /// trickled one byte per second is cut at 10 s however many bytes arrive.
    #[test]
    fn trickled_bytes_do_not_move_the_message_deadline() {
        let t0 = Instant::now();
        let mut r = reader();
        assert_eq!(r.deadline(), None);
        for (i, b) in OPTIONS[..40].iter().enumerate() {
            let now = t0 + Duration::from_secs(i as u64);
            r.push(&[*b], now);
            assert!(r.next(now).is_none());
            assert_eq!(r.deadline(), Some(t0 + Duration::from_secs(10)));
        }
    }

    #[test]
    fn a_complete_message_stops_the_clock_and_leftovers_restart_it() {
        let t0 = Instant::now();
        let mut r = reader();
        let mut two = OPTIONS.to_vec();
        two.extend_from_slice(&OPTIONS[..10]);
        r.push(&two, t0);
        let t1 = t0 + Duration::from_secs(3);
        assert!(matches!(r.next(t1), Some(Item::Message(m)) if m.len() == OPTIONS.len()));
        assert!(r.next(t1).is_none());
        assert_eq!(r.deadline(), Some(t1 + Duration::from_secs(10)));
        r.push(&OPTIONS[10..], t1);
        assert!(matches!(r.next(t1), Some(Item::Message(_))));
        assert_eq!(r.deadline(), None);
    }

    /// RFC 5626 s3.5.1: a double-CRLF ping is answered and starts no clock.
    #[test]
    fn keepalives_start_no_clock() {
        let t0 = Instant::now();
        let mut r = reader();
        r.push(b"\r\n\r\n", t0);
        assert!(matches!(r.next(t0), Some(Item::Ping)));
        assert!(r.next(t0).is_none());
        assert_eq!(r.deadline(), None);
        r.push(b"\r\n", t0);
        assert!(r.next(t0).is_none());
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn an_oversized_head_is_fatal() {
        let t0 = Instant::now();
        let mut r = StreamReader::new(
            Limits {
                max_head: 64,
                max_body: 64,
            },
            Duration::from_secs(10),
        );
        r.push(&[b'A'; 100], t0);
        assert!(matches!(
            r.next(t0),
            Some(Item::Fatal(FramingError::HeadTooLarge(64)))
        ));
        assert_eq!(r.buffered().len(), 100);
    }
}
