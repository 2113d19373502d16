//! Presence and subscription state between the model and the frames.

use cpim_core::model::{SubscriptionState, TerminationReason};
use cpim_core::presence::{Activity, Basic, Note, Person, Tuple};
use cpim_core::{Address, Presence};

use crate::frame::*;

fn activity_from_name(name: &str) -> Activity {
    Activity::from_name(name).unwrap_or_else(|| Activity::Other(name.to_owned()))
}

/// Builds the model's presence from the protocol's simplified one.
pub fn presence_from_parts(
    entity: Option<&Address>,
    basic: Option<BasicFrame>,
    note: Option<String>,
    activities: &[String],
) -> Presence {
    let mut p = Presence {
        entity: entity.map(|a| a.with_scheme(cpim_core::Scheme::Pres)),
        ..Presence::default()
    };
    if basic.is_some() || note.is_some() {
        p.tuples.push(Tuple {
            id: "json".into(),
            basic: basic.map(|b| match b {
                BasicFrame::Open => Basic::Open,
                BasicFrame::Closed => Basic::Closed,
            }),
            ..Tuple::default()
        });
    }
    if let Some(n) = note {
        p.notes.push(Note::new(n));
    }
    if !activities.is_empty() {
        p.person = Some(Person {
            id: "p".into(),
            activities: activities.iter().map(|a| activity_from_name(a)).collect(),
            ..Person::default()
        });
    }
    p
}

/// The protocol's simplified view of a presence.
pub fn presence_to_object(p: &Presence) -> PresenceObject {
    let basic = if p.is_available() {
        Some(BasicFrame::Open)
    } else if p.tuples.iter().any(|t| t.basic == Some(Basic::Closed)) {
        Some(BasicFrame::Closed)
    } else {
        None
    };
    let note = p
        .notes
        .first()
        .or_else(|| p.person.as_ref().and_then(|x| x.notes.first()))
        .or_else(|| p.tuples.iter().find_map(|t| t.notes.first()))
        .map(|n| n.text.clone());
    let activities = p
        .person
        .iter()
        .flat_map(|x| &x.activities)
        .map(|a| match a {
            Activity::Other(t) => t.clone(),
            a => a.name().to_owned(),
        })
        .collect();
    PresenceObject {
        basic,
        note,
        activities,
    }
}

pub(super) fn state_from_frame(
    s: StateFrame,
    expires: Option<u32>,
    reason: Option<String>,
) -> SubscriptionState {
    match s {
        StateFrame::Pending => SubscriptionState::Pending,
        StateFrame::Active => SubscriptionState::Active {
            expires: expires.unwrap_or(3600),
        },
        StateFrame::Terminated => SubscriptionState::Terminated(match reason.as_deref() {
            None => TerminationReason::Deactivated,
            Some(token) => TerminationReason::from_token(token),
        }),
    }
}

pub(super) fn state_to_frame(s: &SubscriptionState) -> (StateFrame, Option<u32>, Option<String>) {
    match s {
        SubscriptionState::Pending => (StateFrame::Pending, None, None),
        SubscriptionState::Active { expires } => (StateFrame::Active, Some(*expires), None),
        SubscriptionState::Terminated(r) => {
            (StateFrame::Terminated, None, Some(r.as_str().to_owned()))
        }
    }
}
