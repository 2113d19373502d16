//! Domain aliases: the name under which one adapter's peers see a domain (XEP-0114
//! component mode: XMPP users write to `alice@sip.xmpp.test` for the SIP user
//! `alice@sip.test`). Incoming operations have their destination-side address mapped
//! from the alias to the domain before routing; outgoing ones their source-side address
//! from the domain to the alias. The router and the presence engine only ever see the
//! real domains.

use cpim_core::address::Address;
use cpim_core::model::Operation;

use crate::config::DomainAlias;

/// The alias table.
#[derive(Clone, Debug, Default)]
pub struct Aliases {
    entries: Vec<DomainAlias>,
}

/// The destination-side address of an operation, mutably.
pub fn destination_mut(op: &mut Operation) -> Option<&mut Address> {
    match op {
        Operation::Message(m) => Some(&mut m.destination),
        Operation::Subscribe(s) | Operation::Unsubscribe(s) => Some(&mut s.target),
        Operation::Notify(n) => Some(&mut n.watcher),
        _ => None,
    }
}

/// The source-side address of an operation, mutably.
pub fn source_mut(op: &mut Operation) -> Option<&mut Address> {
    match op {
        Operation::Message(m) => Some(&mut m.source),
        Operation::Subscribe(s) | Operation::Unsubscribe(s) => Some(&mut s.watcher),
        Operation::Notify(n) => Some(&mut n.target),
        Operation::Publish(p) => Some(&mut p.presentity),
        _ => None,
    }
}

impl Aliases {
    /// From the configuration (domains lower-cased).
    pub fn new(entries: &[DomainAlias]) -> Self {
        Aliases {
            entries: entries
                .iter()
                .map(|a| DomainAlias {
                    alias: a.alias.to_ascii_lowercase(),
                    domain: a.domain.to_ascii_lowercase(),
                    adapter: a.adapter.clone(),
                })
                .collect(),
        }
    }

    /// True if there are no aliases.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// An operation that came in by `adapter`: alias -> domain on the destination side.
    pub fn inbound(&self, adapter: &str, op: &mut Operation) {
        self.rewrite(adapter, op, destination_mut, |e| (&e.alias, &e.domain));
    }

    /// An operation going out by `adapter`: domain -> alias on the source side.
    pub fn outbound(&self, adapter: &str, op: &mut Operation) {
        self.rewrite(adapter, op, source_mut, |e| (&e.domain, &e.alias));
    }

    /// Maps the domain of the address `side` picks (and of a NOTIFY's presentity) from
    /// the first of `pair(entry)` to the second, for the first entry of `adapter` that
    /// matches.
    fn rewrite(
        &self,
        adapter: &str,
        op: &mut Operation,
        side: fn(&mut Operation) -> Option<&mut Address>,
        pair: fn(&DomainAlias) -> (&str, &str),
    ) {
        if self.entries.is_empty() {
            return;
        }
        let map = |domain: &mut String| {
            if let Some((_, to)) = self
                .entries
                .iter()
                .filter(|e| e.adapter == adapter)
                .map(pair)
                .find(|(from, _)| *from == domain.as_str())
            {
                to.clone_into(domain);
            }
        };
        if let Some(a) = side(op) {
            map(&mut a.domain);
        }
        if let Operation::Notify(n) = op {
            // The presence document names the presentity too.
            if let Some(ent) = n.presence.as_mut().and_then(|p| p.entity.as_mut()) {
                map(&mut ent.domain);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::testutil::msg;

    #[test]
    fn component_alias_both_ways() {
        let al = Aliases::new(&[DomainAlias {
            alias: "sip.xmpp.test".into(),
            domain: "sip.test".into(),
            adapter: "xmpp".into(),
        }]);
        let mut op = msg(1, "romeo@xmpp.test", "alice@sip.xmpp.test", "hi");
        al.inbound("xmpp", &mut op);
        assert_eq!(op.destination().unwrap().domain, "sip.test");
        // Another adapter's traffic is left alone.
        let mut op2 = msg(1, "sip:bob@sip.test", "alice@sip.xmpp.test", "hi");
        al.inbound("sip", &mut op2);
        assert_eq!(op2.destination().unwrap().domain, "sip.xmpp.test");
        let mut out = msg(2, "sip:alice@sip.test", "romeo@xmpp.test", "hi");
        al.outbound("xmpp", &mut out);
        assert_eq!(out.source().domain, "sip.xmpp.test");
        assert_eq!(out.source().user.as_deref(), Some("alice"));
    }
}
