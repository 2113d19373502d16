//! The links of the tokio layer, one per mode: [`component`] (one XEP-0114 stream to a
//! server) and [`s2s`] (RFC 6120 server-to-server streams, one hub for every peer).
//!
//! [`crate::adapter`] starts a link and talks to it only through what is here: the
//! [`Command`] channel and the [`Shared`] link status. Links never reach back into the
//! adapter.

use std::sync::Mutex;

use cpim_core::adapter::{Ingress, LinkStatus};
use cpim_core::address::{Address, Scheme};
use cpim_core::model::{Operation, Outcome};
use tokio::sync::oneshot;
use tokio::time::Instant as TokioInstant;

pub(crate) mod component;
pub(crate) mod s2s;

/// What the adapter asks of the task running a link.
pub(crate) enum Command {
    Deliver {
        /// Boxed: an operation is large, and the channel holds many commands.
        op: Box<Operation>,
        reply: oneshot::Sender<Outcome>,
        deadline: TokioInstant,
    },
    Shutdown(oneshot::Sender<()>),
}

/// An operation waiting to be written, with its reply and its deadline.
pub(crate) struct Queued {
    pub(crate) op: Operation,
    pub(crate) reply: oneshot::Sender<Outcome>,
    pub(crate) deadline: TokioInstant,
}

/// State the link task shares with the adapter.
#[derive(Default)]
pub(crate) struct Shared {
    /// One entry per link (component: one; s2s: one per peer domain).
    pub(crate) status: Mutex<Vec<LinkStatus>>,
}

impl Shared {
    /// Updates (or adds) the link `name`.
    pub(crate) fn update(&self, name: &str, f: impl FnOnce(&mut LinkStatus)) {
        let mut v = self.status.lock().expect("status lock");
        if let Some(l) = v.iter_mut().find(|l| l.name == name) {
            f(l);
        } else {
            let mut l = LinkStatus {
                name: name.to_owned(),
                up: false,
                queued: 0,
                last_error: None,
            };
            f(&mut l);
            v.push(l);
        }
    }
}

/// Now, on the clock tokio's test time controls.
pub(crate) fn std_now() -> std::time::Instant {
    TokioInstant::now().into_std()
}

/// Sleeps until `t`, or forever when there is nothing to wait for.
pub(crate) async fn sleep_until_opt(t: Option<TokioInstant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The source of an operation, moved into `domain` by XEP-0106 escaping when it is
/// elsewhere: `sip:carol@sip.example` becomes `carol\40sip.example@<domain>`.
pub(crate) fn localise_source(domain: &str, mut op: Operation) -> Operation {
    let fix = |a: &mut Address| {
        if a.domain != *domain {
            let user = match &a.user {
                Some(u) => format!("{u}@{}", a.domain),
                None => a.domain.clone(),
            };
            *a = Address::new(Scheme::Xmpp, Some(&user), domain)
                .with_instance(a.instance.as_deref());
        }
    };
    match &mut op {
        Operation::Message(m) => fix(&mut m.source),
        Operation::Subscribe(x) | Operation::Unsubscribe(x) => fix(&mut x.watcher),
        Operation::Notify(n) => fix(&mut n.target),
        _ => {}
    }
    op
}

/// The inverse of [`localise_source`] for a destination: `carol\40sip.example@<component>`
/// names `im:carol@sip.example` when the core serves `sip.example` by another adapter
/// ([`Ingress::serves_elsewhere`]); otherwise the `@` belongs to the user's own name
/// (`gina\40home@<component>` is the SIP user `gina@home` of the component's domain) and
/// the address is left alone.
fn delocalise(a: &mut Address, ingress: &dyn Ingress) {
    if let Some((user, domain)) = a.user.as_deref().and_then(|u| u.rsplit_once('@')) {
        if !user.is_empty() && !domain.is_empty() && ingress.serves_elsewhere("xmpp", domain) {
            let inst = a.instance.take();
            *a = Address::new(Scheme::Im, Some(user), domain).with_instance(inst.as_deref());
        }
    }
}

/// [`delocalise`] applied to the destination side of an incoming operation.
pub(crate) fn delocalise_destination(op: &mut Operation, ingress: &dyn Ingress) {
    match op {
        Operation::Message(m) => delocalise(&mut m.destination, ingress),
        Operation::Subscribe(x) | Operation::Unsubscribe(x) => delocalise(&mut x.target, ingress),
        Operation::Notify(n) => delocalise(&mut n.watcher, ingress),
        _ => {}
    }
}

/// An answer to a stanza the gateway sent goes to `settle` (true when it settled a
/// delivery still waiting); an error that comes after its delivery's outcome becomes the
/// sender's failure notice, if the message asked for one (`mapping::message::late_failure`).
/// Anything else is returned as it is; `None` when nothing is left to do.
pub(crate) fn settle_response(
    inbound: crate::mapping::Inbound,
    settle: impl FnOnce(&str, Result<(), cpim_core::model::Status>) -> bool,
) -> Option<crate::mapping::Inbound> {
    use crate::mapping::Inbound;
    match inbound {
        Inbound::Response { id, result, late } => {
            if settle(&id, result) {
                return None;
            }
            let (op, origin) = *late?;
            Some(Inbound::Op { op, origin })
        }
        other => Some(other),
    }
}
