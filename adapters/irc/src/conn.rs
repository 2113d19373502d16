//! One IRC client connection, sans-IO: registration (RFC 2812 s3.1) with nickname
//! collision handling (433), keepalive (PING/PONG, s3.7.2-3), flood control of what it
//! sends (RFC 1459 s8.10), and delivery outcomes for PRIVMSG/NOTICE through a PING
//! barrier.
//!
//! IRC does not acknowledge PRIVMSG. The server handles one client's lines in order,
//! so after a PRIVMSG the connection sends `PING :<cookie>`: an error numeric about the
//! target (401 ERR_NOSUCHNICK, 404 ERR_CANNOTSENDTOCHAN, ...) arrives before the PONG
//! carrying the cookie, and a PONG with nothing before it means the server accepted the
//! message for delivery.
//!
//! Input: [`Conn::handle_bytes`], the `send_*`/`join`/`userhost`/`whois`/`set_away`/
//! `quit` commands, [`Conn::handle_timeout`]. Output: [`Conn::poll_transmit`],
//! [`Conn::poll_event`], [`Conn::poll_timeout`]. Time is passed in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::proto::{casefold, nick_eq, write_line, IrcMessage, MAX_LINE};

/// Settings of one connection.
#[derive(Clone, Debug)]
pub struct ConnSettings {
    /// Wanted nickname.
    pub nick: String,
    /// Longest nickname the server accepts (for 433 alternatives).
    pub nick_len: usize,
    /// USER name.
    pub user: String,
    /// Real name.
    pub realname: String,
    /// Server password (PASS), if any.
    pub password: Option<String>,
    /// Flood control: each line adds this much to the message timer (RFC 1459 s8.10: 2 s).
    pub flood_penalty: Duration,
    /// ...and lines go out while the timer is less than this far ahead (10 s).
    pub flood_window: Duration,
    /// Send a PING after this long without traffic from the server.
    pub ping_interval: Duration,
    /// Give the connection up when the server stays silent this long after our PING.
    pub ping_timeout: Duration,
    /// How long a PRIVMSG waits for its barrier PONG before it is reported as 408.
    pub send_timeout: Duration,
    /// Registration must complete in this time.
    pub register_timeout: Duration,
}

/// What the connection reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnEvent {
    /// Registration is complete (001 received) under this nickname.
    Registered {
        /// The nickname the server accepted.
        nick: String,
    },
    /// A PRIVMSG (or NOTICE) from `from` to `target` (our nick or a channel).
    Message {
        /// Sender nickname.
        from: String,
        /// Our nickname or a channel.
        target: String,
        /// The text.
        text: String,
        /// True for NOTICE: never answered automatically (RFC 2812 s3.3.2).
        notice: bool,
    },
    /// Someone joined a channel we are in.
    Join {
        /// Nickname.
        nick: String,
        /// Channel.
        channel: String,
    },
    /// Someone left a channel we are in.
    Part {
        /// Nickname.
        nick: String,
        /// Channel.
        channel: String,
    },
    /// Someone quit the network.
    Quit {
        /// Nickname.
        nick: String,
        /// Quit message.
        reason: String,
    },
    /// Someone changed nickname.
    NickChange {
        /// Old nickname.
        old: String,
        /// New nickname.
        new: String,
    },
    /// 301 RPL_AWAY: `nick` is away with this message (after a PRIVMSG or WHOIS).
    AwayReply {
        /// Nickname.
        nick: String,
        /// The away message.
        note: String,
    },
    /// 318 RPL_ENDOFWHOIS for `nick`.
    WhoisEnd {
        /// Nickname.
        nick: String,
    },
    /// 302 RPL_USERHOST answer to [`Conn::userhost`]: who of `asked` is online, and away.
    Userhost {
        /// The nicknames asked about.
        asked: Vec<String>,
        /// `(nick, away)` for those online.
        online: Vec<(String, bool)>,
    },
    /// The outcome of [`Conn::send_text`] number `token`: `Ok` or the error numeric
    /// and its text.
    SendResult {
        /// The token given.
        token: u64,
        /// `Err((numeric, text))` when the server refused.
        result: Result<(), (u16, String)>,
    },
    /// Joining a channel failed (403, 405, 471, 473, 474, 475).
    JoinFailed {
        /// Channel.
        channel: String,
        /// The numeric.
        numeric: u16,
    },
    /// The connection is unusable (ERROR from the server, ping timeout, no nickname
    /// accepted); the driver closes the socket.
    Dead {
        /// Why.
        reason: String,
    },
}

#[derive(Debug)]
struct Barrier {
    token: u64,
    target: String,
    cookie: String,
    deadline: Instant,
    error: Option<(u16, String)>,
}

/// The state of one connection.
#[derive(Debug)]
pub struct Conn {
    s: ConnSettings,
    nick: String,
    registered: bool,
    dead: bool,
    /// Lines waiting for flood control (or for registration).
    queue: VecDeque<Vec<u8>>,
    /// Lines sent at once: registration and PONG.
    urgent: VecDeque<Vec<u8>>,
    events: VecDeque<ConnEvent>,
    barriers: VecDeque<Barrier>,
    userhosts: VecDeque<Vec<String>>,
    next_cookie: u64,
    flood_timer: Instant,
    last_rx: Instant,
    keepalive_sent: Option<Instant>,
    register_deadline: Instant,
    nick_attempts: u32,
    rx: Vec<u8>,
}

/// Error numerics that concern the target of a PRIVMSG/NOTICE (RFC 2812 s3.3.1).
fn is_send_error(n: u16) -> bool {
    matches!(
        n,
        401 | 402 | 403 | 404 | 407 | 411 | 412 | 413 | 414 | 437 | 440 | 451 | 263
    )
}

impl Conn {
    /// A connection that starts registering at `now` (queues PASS, NICK, USER).
    pub fn new(s: ConnSettings, now: Instant) -> Conn {
        let mut c = Conn {
            nick: s.nick.clone(),
            registered: false,
            dead: false,
            queue: VecDeque::new(),
            urgent: VecDeque::new(),
            events: VecDeque::new(),
            barriers: VecDeque::new(),
            userhosts: VecDeque::new(),
            next_cookie: 0,
            flood_timer: now,
            last_rx: now,
            keepalive_sent: None,
            register_deadline: now + s.register_timeout,
            nick_attempts: 0,
            rx: Vec::new(),
            s,
        };
        if let Some(p) = c.s.password.clone() {
            c.urgent_line("PASS", &[], Some(&p));
        }
        let nick = c.nick.clone();
        c.urgent_line("NICK", &[&nick], None);
        let (user, real) = (c.s.user.clone(), c.s.realname.clone());
        c.urgent_line("USER", &[&user, "0", "*"], Some(&real));
        c
    }

    /// The current nickname.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// True after 001.
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    fn urgent_line(&mut self, cmd: &str, params: &[&str], trailing: Option<&str>) {
        let mut l = Vec::new();
        write_line(&mut l, cmd, params, trailing);
        self.urgent.push_back(l);
    }

    fn line(&mut self, cmd: &str, params: &[&str], trailing: Option<&str>) {
        let mut l = Vec::new();
        write_line(&mut l, cmd, params, trailing);
        self.queue.push_back(l);
    }

    /// Sends `text` to `target` (nick or channel) as PRIVMSG, or NOTICE when `notice`;
    /// one line per text line, long lines split at character boundaries. The outcome
    /// comes as [`ConnEvent::SendResult`] with `token`.
    pub fn send_text(&mut self, target: &str, text: &str, notice: bool, token: u64, now: Instant) {
        if self.dead {
            // No barrier could ever resolve: the outcome is known now.
            self.events.push_back(ConnEvent::SendResult {
                token,
                result: Err((0, "connection lost".into())),
            });
            return;
        }
        let cmd = if notice { "NOTICE" } else { "PRIVMSG" };
        // Room for ":nick!user@host CMD target :" as the server relays it (RFC 2812 s2.3).
        let room = MAX_LINE
            .saturating_sub(
                2 + 1 + self.nick.len() + 1 + 10 + 1 + 63 + 1 + cmd.len() + 1 + target.len() + 2,
            )
            .max(64);
        // Empty lines would be refused (412 ERR_NOTEXTTOSEND) and fail the whole message.
        let mut sent_any = false;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            sent_any = true;
            let mut rest = line;
            while !rest.is_empty() {
                let mut cut = rest.len().min(room);
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                let (part, tail) = rest.split_at(cut);
                self.line(cmd, &[target], Some(part));
                rest = tail;
            }
        }
        if !sent_any {
            self.line(cmd, &[target], Some(" "));
        }
        self.next_cookie += 1;
        let cookie = format!("cpim-{}", self.next_cookie);
        self.line("PING", &[], Some(&cookie));
        self.barriers.push_back(Barrier {
            token,
            target: target.to_owned(),
            cookie,
            deadline: now + self.s.send_timeout,
            error: None,
        });
    }

    /// JOIN a channel.
    pub fn join(&mut self, channel: &str) {
        self.line("JOIN", &[channel], None);
    }

    /// Asks which of up to five nicknames are online and away (RFC 2812 s4.8).
    pub fn userhost(&mut self, nicks: &[String]) {
        let nicks: Vec<String> = nicks.iter().take(5).cloned().collect();
        if nicks.is_empty() {
            return;
        }
        let refs: Vec<&str> = nicks.iter().map(String::as_str).collect();
        self.line("USERHOST", &refs, None);
        self.userhosts.push_back(nicks);
    }

    /// WHOIS (for the away message, 301).
    pub fn whois(&mut self, nick: &str) {
        self.line("WHOIS", &[nick], None);
    }

    /// Marks us away with a message, or back with `None` (RFC 2812 s4.1).
    pub fn set_away(&mut self, note: Option<&str>) {
        match note {
            Some(n) => self.line("AWAY", &[], Some(if n.is_empty() { "away" } else { n })),
            None => self.line("AWAY", &[], None),
        }
    }

    /// QUIT with a message; the server then closes the connection.
    pub fn quit(&mut self, reason: &str) {
        self.queue.clear();
        self.urgent_line("QUIT", &[], Some(reason));
    }

    /// Bytes from the server.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Instant) {
        self.last_rx = now;
        self.keepalive_sent = None;
        self.rx.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(i) = self.rx[start..].iter().position(|&b| b == b'\n') {
            let line = self.rx[start..start + i].to_vec();
            start += i + 1;
            if let Ok(m) = IrcMessage::parse(&line) {
                self.handle_message(m, now);
            }
        }
        self.rx.drain(..start);
        if self.rx.len() > 8 * MAX_LINE {
            // A server that sends no newline is broken; drop what it sent.
            self.rx.clear();
        }
    }

    fn handle_message(&mut self, m: IrcMessage, now: Instant) {
        let numeric: Option<u16> = m.command.parse().ok().filter(|_| m.command.len() == 3);
        match (m.command.as_str(), numeric) {
            ("PING", _) => {
                let p = m.param(0).to_owned();
                self.urgent_line("PONG", &[], Some(&p));
            }
            ("PONG", _) => {
                let cookie = m.params.last().map_or("", String::as_str);
                if let Some(pos) = self.barriers.iter().position(|b| b.cookie == cookie) {
                    // Everything before the PONG has been processed: earlier barriers too.
                    for b in self.barriers.drain(..=pos) {
                        self.events.push_back(ConnEvent::SendResult {
                            token: b.token,
                            result: b.error.map_or(Ok(()), Err),
                        });
                    }
                }
            }
            ("ERROR", _) => self.die(format!("server closed the link: {}", m.param(0))),
            (_, Some(1)) => {
                self.registered = true;
                if let Some(n) = m.params.first() {
                    self.nick = n.clone();
                }
                self.flood_timer = now;
                self.events.push_back(ConnEvent::Registered {
                    nick: self.nick.clone(),
                });
            }
            (_, Some(432 | 433 | 436 | 437)) if !self.registered => {
                // Nickname refused while registering: try another (433 collision).
                self.nick_attempts += 1;
                let code = numeric.unwrap_or(433);
                if code == 432 || self.nick_attempts > 5 {
                    return self.die(format!("nickname {} refused ({code})", self.nick));
                }
                let mut n = self.s.nick.clone();
                let suffix = "_".repeat(self.nick_attempts as usize);
                while n.len() + suffix.len() > self.s.nick_len && !n.is_empty() {
                    n.pop();
                }
                n.push_str(&suffix);
                self.nick = n.clone();
                self.urgent_line("NICK", &[&n], None);
            }
            (_, Some(301)) => self.events.push_back(ConnEvent::AwayReply {
                nick: m.param(1).to_owned(),
                note: m.param(2).to_owned(),
            }),
            (_, Some(318)) => self.events.push_back(ConnEvent::WhoisEnd {
                nick: m.param(1).to_owned(),
            }),
            (_, Some(302)) => {
                let asked = self.userhosts.pop_front().unwrap_or_default();
                let online = m
                    .params
                    .last()
                    .map(String::as_str)
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|r| {
                        let (nick, host) = r.split_once('=')?;
                        Some((nick.trim_end_matches('*').to_owned(), host.starts_with('-')))
                    })
                    .collect();
                self.events.push_back(ConnEvent::Userhost { asked, online });
            }
            (_, Some(n @ (403 | 405 | 471 | 473 | 474 | 475)))
                if !self.barriers.iter().any(|b| nick_eq(&b.target, m.param(1))) =>
            {
                self.events.push_back(ConnEvent::JoinFailed {
                    channel: m.param(1).to_owned(),
                    numeric: n,
                });
            }
            (_, Some(n)) if is_send_error(n) => {
                let target = m.param(1);
                let text = m.params.last().cloned().unwrap_or_default();
                let b = self
                    .barriers
                    .iter_mut()
                    .find(|b| b.error.is_none() && nick_eq(&b.target, target));
                if let Some(b) = b {
                    b.error = Some((n, text));
                } else if let Some(b) = self.barriers.iter_mut().find(|b| b.error.is_none()) {
                    // No target named (411, 412, 451, ...): the oldest message waiting.
                    if matches!(n, 411 | 412 | 451 | 263 | 440) {
                        b.error = Some((n, text));
                    }
                }
            }
            ("PRIVMSG" | "NOTICE", _) => {
                let Some(from) = m.nick() else { return };
                // Server notices (no '!' in the prefix) are not messages from a user.
                if !m.prefix.as_deref().is_some_and(|p| p.contains('!')) {
                    return;
                }
                self.events.push_back(ConnEvent::Message {
                    from: from.to_owned(),
                    target: m.param(0).to_owned(),
                    text: m.param(1).to_owned(),
                    notice: m.command == "NOTICE",
                });
            }
            ("JOIN", _) => {
                if let Some(n) = m.nick() {
                    self.events.push_back(ConnEvent::Join {
                        nick: n.to_owned(),
                        channel: m.param(0).to_owned(),
                    });
                }
            }
            ("PART", _) => {
                if let Some(n) = m.nick() {
                    self.events.push_back(ConnEvent::Part {
                        nick: n.to_owned(),
                        channel: m.param(0).to_owned(),
                    });
                }
            }
            ("QUIT", _) => {
                if let Some(n) = m.nick() {
                    self.events.push_back(ConnEvent::Quit {
                        nick: n.to_owned(),
                        reason: m.param(0).to_owned(),
                    });
                }
            }
            ("NICK", _) => {
                if let Some(old) = m.nick() {
                    let new = m.param(0).to_owned();
                    if nick_eq(old, &self.nick) {
                        self.nick = new.clone();
                    }
                    self.events.push_back(ConnEvent::NickChange {
                        old: old.to_owned(),
                        new,
                    });
                }
            }
            _ => {}
        }
    }

    fn die(&mut self, reason: String) {
        if self.dead {
            return;
        }
        self.dead = true;
        for b in self.barriers.drain(..) {
            self.events.push_back(ConnEvent::SendResult {
                token: b.token,
                result: Err((0, format!("connection lost: {reason}"))),
            });
        }
        self.events.push_back(ConnEvent::Dead { reason });
    }

    /// Lost the socket: pending sends fail.
    pub fn handle_closed(&mut self) {
        self.die("connection closed".into());
    }

    /// Appends the lines that may go out now to `out`; true if any.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        let before = out.len();
        while let Some(l) = self.urgent.pop_front() {
            out.extend_from_slice(&l);
        }
        if self.registered {
            // RFC 1459 s8.10: the message timer runs at least at `now`, each line adds
            // the penalty, and lines stop while it is more than the window ahead.
            while !self.queue.is_empty() {
                if self.flood_timer < now {
                    self.flood_timer = now;
                }
                if self.flood_timer >= now + self.s.flood_window {
                    break;
                }
                if let Some(l) = self.queue.pop_front() {
                    out.extend_from_slice(&l);
                    self.flood_timer += self.s.flood_penalty;
                }
            }
        }
        out.len() > before
    }

    /// Keepalive, registration and send deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dead {
            return;
        }
        if !self.registered && now >= self.register_deadline {
            return self.die("registration timed out".into());
        }
        match self.keepalive_sent {
            Some(t) if now >= t + self.s.ping_timeout => {
                return self.die("ping timeout".into());
            }
            None if self.registered && now >= self.last_rx + self.s.ping_interval => {
                self.urgent_line("PING", &[], Some("keepalive"));
                self.keepalive_sent = Some(now);
            }
            _ => {}
        }
        while self.barriers.front().is_some_and(|b| now >= b.deadline) {
            if let Some(b) = self.barriers.pop_front() {
                self.events.push_back(ConnEvent::SendResult {
                    token: b.token,
                    result: b
                        .error
                        .map_or(Err((0, "no answer from the IRC server".into())), Err),
                });
            }
        }
    }

    /// When [`Conn::handle_timeout`] or [`Conn::poll_transmit`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        let mut t = vec![self.barriers.front().map(|b| b.deadline)];
        if !self.registered {
            t.push(Some(self.register_deadline));
        } else {
            t.push(Some(match self.keepalive_sent {
                Some(s) => s + self.s.ping_timeout,
                None => self.last_rx + self.s.ping_interval,
            }));
            if !self.queue.is_empty() {
                // The first instant the timer is less than the window ahead.
                let at = self
                    .flood_timer
                    .checked_sub(self.s.flood_window)
                    .unwrap_or(self.flood_timer);
                t.push(Some(at + Duration::from_millis(1)));
            }
        }
        t.into_iter().flatten().min()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// The case-folded current nickname.
    pub fn nick_key(&self) -> String {
        casefold(&self.nick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ConnSettings {
        ConnSettings {
            nick: "gw".into(),
            nick_len: 9,
            user: "cpim".into(),
            realname: "CPIM gateway".into(),
            password: None,
            flood_penalty: Duration::from_secs(2),
            flood_window: Duration::from_secs(10),
            ping_interval: Duration::from_secs(60),
            ping_timeout: Duration::from_secs(20),
            send_timeout: Duration::from_secs(10),
            register_timeout: Duration::from_secs(30),
        }
    }

    fn tx(c: &mut Conn, now: Instant) -> String {
        let mut out = Vec::new();
        c.poll_transmit(now, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn events(c: &mut Conn) -> Vec<ConnEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    fn registered(now: Instant) -> Conn {
        let mut c = Conn::new(settings(), now);
        assert_eq!(
            tx(&mut c, now),
            "NICK gw\r\nUSER cpim 0 * :CPIM gateway\r\n"
        );
        c.handle_bytes(b":srv 433 * gw :Nickname already in use\r\n", now);
        assert_eq!(tx(&mut c, now), "NICK gw_\r\n");
        c.handle_bytes(b":srv 001 gw_ :Welcome\r\n", now);
        assert_eq!(
            events(&mut c),
            vec![ConnEvent::Registered { nick: "gw_".into() }]
        );
        c
    }

    #[test]
    fn barrier_reports_401_before_pong_as_error_and_plain_pong_as_success() {
        let now = Instant::now();
        let mut c = registered(now);
        c.send_text("bob", "hi", false, 1, now);
        c.send_text("ghost", "boo", false, 2, now);
        assert_eq!(
            tx(&mut c, now),
            "PRIVMSG bob :hi\r\nPING :cpim-1\r\nPRIVMSG ghost :boo\r\nPING :cpim-2\r\n"
        );
        c.handle_bytes(b":srv PONG srv :cpim-1\r\n:srv 401 gw_ ghost :No such nick\r\n:srv PONG srv :cpim-2\r\n", now);
        assert_eq!(
            events(&mut c),
            vec![
                ConnEvent::SendResult {
                    token: 1,
                    result: Ok(())
                },
                ConnEvent::SendResult {
                    token: 2,
                    result: Err((401, "No such nick".into()))
                },
            ]
        );
    }

    #[test]
    fn flood_control_lets_a_burst_through_then_one_line_per_penalty() {
        // RFC 1459 s8.10: 10 s window, 2 s per line: five lines at once, then one per 2 s.
        let now = Instant::now();
        let mut c = registered(now);
        for i in 0..4 {
            c.send_text("bob", &format!("m{i}"), false, i, now);
        }
        assert_eq!(tx(&mut c, now).lines().count(), 5);
        assert_eq!(tx(&mut c, now).lines().count(), 0);
        let next = c.poll_timeout().unwrap();
        assert_eq!(next, now + Duration::from_millis(1));
        assert_eq!(tx(&mut c, next).lines().count(), 1);
        assert_eq!(tx(&mut c, next).lines().count(), 0);
        let next = c.poll_timeout().unwrap();
        assert_eq!(next, now + Duration::from_millis(2001));
        assert_eq!(tx(&mut c, next).lines().count(), 1);
    }

    #[test]
    fn keepalive_pings_then_gives_up_and_answers_server_pings() {
        let now = Instant::now();
        let mut c = registered(now);
        c.handle_bytes(b"PING :srv\r\n", now);
        assert_eq!(tx(&mut c, now), "PONG :srv\r\n");
        let t1 = now + Duration::from_secs(60);
        c.handle_timeout(t1);
        assert_eq!(tx(&mut c, t1), "PING :keepalive\r\n");
        c.send_text("bob", "x", false, 9, t1);
        c.handle_timeout(t1 + Duration::from_secs(21));
        let ev = events(&mut c);
        assert!(ev.iter().any(|e| matches!(
            e,
            ConnEvent::SendResult {
                token: 9,
                result: Err(_)
            }
        )));
        assert!(matches!(ev.last(), Some(ConnEvent::Dead { .. })));
    }

    #[test]
    fn messages_presence_events_and_userhost() {
        let now = Instant::now();
        let mut c = registered(now);
        c.userhost(&["Bob".into(), "ghost".into()]);
        tx(&mut c, now);
        c.handle_bytes(
            b":bob!u@h PRIVMSG gw_ :hello\r\n:bob!u@h NOTICE gw_ :fyi\r\n:srv NOTICE gw_ :server says\r\n:bob!u@h JOIN #t\r\n:bob!u@h QUIT :bye\r\n:srv 302 gw_ :Bob*=-u@h\r\n:srv 301 gw_ bob :lunch\r\n",
            now,
        );
        assert_eq!(
            events(&mut c),
            vec![
                ConnEvent::Message {
                    from: "bob".into(),
                    target: "gw_".into(),
                    text: "hello".into(),
                    notice: false
                },
                ConnEvent::Message {
                    from: "bob".into(),
                    target: "gw_".into(),
                    text: "fyi".into(),
                    notice: true
                },
                ConnEvent::Join {
                    nick: "bob".into(),
                    channel: "#t".into()
                },
                ConnEvent::Quit {
                    nick: "bob".into(),
                    reason: "bye".into()
                },
                ConnEvent::Userhost {
                    asked: vec!["Bob".into(), "ghost".into()],
                    online: vec![("Bob".into(), true)]
                },
                ConnEvent::AwayReply {
                    nick: "bob".into(),
                    note: "lunch".into()
                },
            ]
        );
    }

    #[test]
    fn long_and_multiline_text_is_split_into_valid_lines() {
        let now = Instant::now();
        let mut c = registered(now);
        c.send_text(
            "bob",
            &format!("{}\n\nsecond", "é".repeat(400)),
            false,
            1,
            now,
        );
        let mut out = Vec::new();
        let mut t = now;
        for _ in 0..10 {
            c.poll_transmit(t, &mut out);
            t += Duration::from_secs(2);
        }
        let s = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = s.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert!(lines.len() >= 4, "{lines:?}");
        assert!(lines.iter().all(|l| l.len() + 2 <= MAX_LINE));
        assert_eq!(lines[lines.len() - 2], "PRIVMSG bob :second");
        // the empty line between is not sent (it would be refused with 412)
        assert!(lines.iter().all(|l| !l.ends_with(" :")), "{lines:?}");
    }

    #[test]
    fn a_send_on_a_lost_connection_fails_at_once() {
        let now = Instant::now();
        let mut c = registered(now);
        c.handle_closed();
        events(&mut c);
        c.send_text("bob", "hi", false, 7, now);
        assert_eq!(tx(&mut c, now), "");
        assert!(matches!(
            events(&mut c)[..],
            [ConnEvent::SendResult {
                token: 7,
                result: Err(_)
            }]
        ));
    }
}
