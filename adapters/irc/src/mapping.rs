//! IRC to CPIM mappings: numeric replies to status codes, IRC states to presence.
//! Sans-IO.

use cpim_core::presence::{Activity, Basic, Note, Person, Tuple};
use cpim_core::Presence;

/// The CPIM (SIP-style, RFC 3860 s4.2) status for an IRC error numeric about a message
/// target (RFC 2812 s5.2). 0 stands for "the link failed".
pub fn numeric_to_status(numeric: u16) -> (u16, &'static str) {
    match numeric {
        401 => (404, "Not Found (no such nick)"),
        402 => (404, "Not Found (no such server)"),
        403 => (404, "Not Found (no such channel)"),
        404 => (403, "Forbidden (cannot send to channel)"),
        405 => (403, "Forbidden (too many channels)"),
        407 => (400, "Bad Request (too many targets)"),
        411 | 412 => (400, "Bad Request (no recipient or no text)"),
        413 | 414 => (400, "Bad Request (bad mask)"),
        437 => (480, "Temporarily Unavailable (nick/channel unavailable)"),
        471 => (486, "Busy Here (channel is full)"),
        473 => (403, "Forbidden (invite-only channel)"),
        474 => (403, "Forbidden (banned from channel)"),
        475 => (403, "Forbidden (bad channel key)"),
        263 | 440 => (503, "Service Unavailable (server busy)"),
        451 => (503, "Service Unavailable (not registered)"),
        0 => (503, "Service Unavailable (IRC link failed)"),
        _ => (500, "Server Internal Error (unexpected IRC reply)"),
    }
}

/// What is known of an IRC user's presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IrcPresence {
    /// Connected, not away.
    Here,
    /// Connected and away, with the away message if known.
    Away(Option<String>),
    /// Not connected (QUIT, or absent from USERHOST), with the quit message if known.
    Gone(Option<String>),
}

/// The presence document for an IRC state: here -> open; away -> open with the RPID
/// `away` activity and the away message as note (RFC 4480 s3.2); gone -> closed.
pub fn presence_of(state: &IrcPresence) -> Presence {
    let (basic, note, away) = match state {
        IrcPresence::Here => (Basic::Open, None, false),
        IrcPresence::Away(n) => (Basic::Open, n.clone(), true),
        IrcPresence::Gone(n) => (Basic::Closed, n.clone().filter(|s| !s.is_empty()), false),
    };
    Presence {
        tuples: vec![Tuple {
            id: "irc".into(),
            basic: Some(basic),
            ..Tuple::default()
        }],
        person: away.then(|| Person {
            id: "p".into(),
            activities: vec![Activity::Away],
            ..Person::default()
        }),
        notes: note.into_iter().map(Note::new).collect(),
        ..Presence::default()
    }
}

/// The AWAY message for a CPIM presence shown on a puppet: `None` means "here".
pub fn away_of(p: &Presence) -> Option<String> {
    let note = p
        .notes
        .first()
        .or_else(|| p.person.as_ref().and_then(|x| x.notes.first()))
        .map(|n| n.text.clone());
    let away_activity = p.person.as_ref().is_some_and(|x| {
        x.activities
            .iter()
            .any(|a| !matches!(a, Activity::Unknown | Activity::Working))
    });
    if !p.is_available() || away_activity {
        Some(note.unwrap_or_else(|| {
            p.person
                .as_ref()
                .and_then(|x| x.activities.first())
                .map_or("away".into(), |a| a.name().to_owned())
        }))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_map_to_cpim_codes() {
        assert_eq!(numeric_to_status(401).0, 404);
        assert_eq!(numeric_to_status(404).0, 403);
        assert_eq!(numeric_to_status(471).0, 486);
        assert_eq!(numeric_to_status(0).0, 503);
        assert_eq!(numeric_to_status(999).0, 500);
    }

    #[test]
    fn irc_states_to_presence_and_back() {
        let p = presence_of(&IrcPresence::Away(Some("lunch".into())));
        assert!(p.is_available());
        assert_eq!(p.person.as_ref().unwrap().activities, vec![Activity::Away]);
        assert_eq!(p.notes[0].text, "lunch");
        assert_eq!(away_of(&p).as_deref(), Some("lunch"));
        let p = presence_of(&IrcPresence::Gone(Some("Quit: bye".into())));
        assert!(!p.is_available());
        assert_eq!(away_of(&presence_of(&IrcPresence::Here)), None);
    }
}
