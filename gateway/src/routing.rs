//! Which adapter serves which domain: the gateway's own (local) domains, the configured
//! routes, then each adapter's own [`Adapter::serves`], in configuration order.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cpim_core::adapter::Adapter;
use cpim_core::address::Address;
use cpim_core::domain::{canonical, canonical_or_raw};

/// The routing table shared by the pipeline, the presence layer and the queue.
#[derive(Default)]
pub struct RouteTable {
    /// Local domain -> the adapter where its users live (e.g. the SIP registrar).
    local: HashMap<String, Arc<str>>,
    /// Configured route: domain -> adapter.
    routes: HashMap<String, Arc<str>>,
    /// Where destinations no other rule matches go.
    default_route: Option<Arc<str>>,
    /// Adapters that speak only for their own users (IRC, JSON): every source they submit
    /// must be an address they claim; they vouch for no foreign domain.
    closed: Vec<Arc<str>>,
    /// The running adapters in configuration order; filled once they have started.
    adapters: RwLock<Vec<Arc<dyn Adapter>>>,
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("local", &self.local)
            .field("routes", &self.routes)
            .field(
                "adapters",
                &self
                    .adapters()
                    .iter()
                    .map(|a| a.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl RouteTable {
    /// A table with the given local domains and routes (both `(domain, adapter)`); domains
    /// are kept and compared in the canonical form of [`cpim_core::domain`] (case,
    /// trailing dot, IDNA), so `SIP.Test.` finds `sip.test`.
    pub fn new<'a>(
        local: impl IntoIterator<Item = (&'a str, &'a str)>,
        routes: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> RouteTable {
        RouteTable {
            local: local
                .into_iter()
                .map(|(d, a)| (canonical_or_raw(d), Arc::from(a)))
                .collect(),
            routes: routes
                .into_iter()
                .map(|(d, a)| (canonical_or_raw(d), Arc::from(a)))
                .collect(),
            adapters: RwLock::new(Vec::new()),
            default_route: None,
            closed: Vec::new(),
        }
    }

    /// Marks adapters as closed: they may only submit sources they claim (their local
    /// domains, `Adapter::serves`), never a foreign domain they vouch for.
    pub fn with_closed_adapters<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        self.closed.extend(names.into_iter().map(Arc::from));
        self
    }

    /// True if `adapter` is closed (see [`Self::with_closed_adapters`]).
    pub fn is_closed(&self, adapter: &str) -> bool {
        self.closed.iter().any(|a| **a == *adapter)
    }

    /// Sets the adapter for destinations no other rule matches.
    pub fn with_default_route(mut self, adapter: Option<&str>) -> Self {
        self.default_route = adapter.map(Arc::from);
        self
    }

    /// The adapter that claims `address`'s domain as its own or by configuration:
    /// local owner, configured route, `Adapter::serves` (not the default route).
    pub fn claimed_by(&self, address: &Address) -> Option<Arc<str>> {
        if let Some(a) = self.local.get(&address.domain) {
            return Some(a.clone());
        }
        if let Some(a) = self.routes.get(&address.domain) {
            return Some(a.clone());
        }
        self.adapters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|a| a.serves(address))
            .map(|a| Arc::from(a.name()))
    }

    /// Adds a running adapter (in configuration order).
    pub fn add_adapter(&self, adapter: Arc<dyn Adapter>) {
        self.adapters
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(adapter);
    }

    /// The running adapters.
    pub fn adapters(&self) -> Vec<Arc<dyn Adapter>> {
        self.adapters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The adapter with this name, if running.
    pub fn adapter(&self, name: &str) -> Option<Arc<dyn Adapter>> {
        self.adapters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|a| a.name() == name)
            .cloned()
    }

    /// True if `domain` is one of the gateway's own domains.
    pub fn is_local(&self, domain: &str) -> bool {
        canonical(domain).is_ok_and(|d| self.local.contains_key(&*d))
    }

    /// The adapter that owns a local domain.
    pub fn local_owner(&self, domain: &str) -> Option<&str> {
        let d = canonical(domain).ok()?;
        self.local.get(&*d).map(|a| &**a)
    }

    /// True if `domain` is local or has a configured route.
    pub fn is_known(&self, domain: &str) -> bool {
        canonical(domain)
            .is_ok_and(|d| self.local.contains_key(&*d) || self.routes.contains_key(&*d))
    }

    /// The name of the adapter that serves `address`: local owner, then configured
    /// route, then the first adapter whose `serves` says yes, then the default route.
    pub fn adapter_name_for(&self, address: &Address) -> Option<Arc<str>> {
        self.claimed_by(address)
            .or_else(|| self.default_route.clone())
    }

    /// The running adapter that serves `address`.
    pub fn adapter_for(&self, address: &Address) -> Option<Arc<dyn Adapter>> {
        let name = self.adapter_name_for(address)?;
        self.adapter(&name)
    }
}
