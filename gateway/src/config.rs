//! The configuration: one TOML file, every table `deny_unknown_fields`, errors as
//! `FILE:LINE:COL: message`.
//!
//! Without a file the gateway runs on [`Config::default`]: SIP on 127.0.0.1:5060 (UDP
//! and TCP) with its registrar for the domain `localhost`, XMPP s2s for the same domain,
//! the admin API on 127.0.0.1:8080 (token required), the store under `./data`.
//!
//! Secrets (see [`crate::secrets`]): a configured dialback secret, component secret,
//! admin token or JSON client token (`[[json.tokens]]` `token`) that is empty, shorter
//! than 16 bytes or a placeholder (`change-me`, ...) is an error naming the key and its
//! line; the dialback secret and the admin token, when
//! absent, are generated at first start and kept in the store folder (mode 0600).
//!
//! Environment overrides: `CPIM_GATEWAY__<TABLE>__<KEY>=<value>` sets `table.key`
//! (names lower-cased, `__` between levels; e.g. `CPIM_GATEWAY__ADMIN__LISTEN=0.0.0.0:9000`,
//! `CPIM_GATEWAY__SIP__LISTEN=127.0.0.1:5070`). The value is read as a TOML value when it
//! parses as one (`42`, `true`, `["a", "b"]`) and as a string otherwise. Overrides are
//! applied on top of the file (or the defaults) and checked like the file; a required key
//! the file lacks may come from an override (a secret kept out of the file, e.g.
//! `CPIM_GATEWAY__XMPP__MODE__SECRET`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cpim_irc::IrcConfig;
use cpim_json::JsonConfig;
use cpim_sip::app::config::SipConfig;
use cpim_xmpp::XmppConfig;
use serde::{Deserialize, Deserializer, Serialize};

use crate::presence::{Policy, PresenceConfig};

/// Prefix of the environment overrides.
pub const ENV_PREFIX: &str = "CPIM_GATEWAY__";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Syntax or type error, with its position.
    #[error("{file}:{line}:{column}: {message}")]
    At {
        /// The file (or `<defaults>` / the environment variable).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// An error without a position (from an environment override, or semantic).
    #[error("{file}: {message}")]
    Invalid {
        /// The source of the value.
        file: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The adapters to start, in routing order (`Adapter::serves` is asked in this order).
    pub adapters: Vec<String>,
    /// The SIP adapter (`[sip]`, see the SIP adapter's documentation).
    pub sip: SipConfig,
    /// The XMPP adapter (`[xmpp]`, see the XMPP adapter's documentation).
    pub xmpp: XmppConfig,
    /// IRC networks (`[[irc]]`, one table per network; a single `[irc]` table is
    /// accepted too). Each runs as the adapter named by its `name` (default `irc`),
    /// which must be listed in `adapters`; its `domain` is a local domain of that adapter.
    #[serde(
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub irc: Vec<IrcConfig>,
    /// The JSON protocol adapter (`[json]`), run as the adapter named by its `name`
    /// (default `json`), which must be listed in `adapters`; its `domains` are local
    /// domains of that adapter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonConfig>,
    /// Explicit routes: a destination domain and the adapter that serves it.
    pub routes: Vec<Route>,
    /// The adapter for destinations no route, local domain or adapter claims (e.g.
    /// `xmpp` in s2s mode: any federated domain). None by default: such destinations get
    /// 404.
    pub default_route: Option<String>,
    /// Domain aliases: the domain under which an adapter's peers see a local domain
    /// (XEP-0114 component mode: `sip.xmpp.test` for the SIP domain `sip.test`).
    pub domain_aliases: Vec<DomainAlias>,
    /// Router limits.
    pub limits: Limits,
    /// Presence.
    pub presence: PresenceSection,
    /// Store-and-forward.
    pub queue: QueueSection,
    /// The durable store.
    pub store: StoreSection,
    /// The admin HTTP API.
    pub admin: AdminSection,
}

/// `[[routes]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination domain (exact, case-insensitive).
    pub domain: String,
    /// Adapter name.
    pub adapter: String,
}

/// `[[domain_aliases]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainAlias {
    /// The domain the adapter's peers use.
    pub alias: String,
    /// The local domain it stands for.
    pub domain: String,
    /// The adapter whose peers use the alias.
    pub adapter: String,
}

/// `[limits]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message body or presence document, bytes (413 above).
    pub max_body_bytes: usize,
    /// Sustained operations per second per source (503 above).
    pub rate_per_source: f64,
    /// Token-bucket size per source.
    pub burst_per_source: f64,
    /// Milliseconds before an unanswered operation gets 408: the one operation timeout
    /// (the adapters set none of their own around it). The default is below SIP's Timer F
    /// (64*T1 = 32 s, RFC 3261 s17.1.2.2), so a SIP sender hears the 408 before it gives up.
    pub timeout_ms: u64,
    /// Seconds a message id is remembered for duplicate suppression.
    pub dedupe_ttl_secs: u64,
    /// Seconds in-flight operations get to finish on shutdown.
    pub drain_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            rate_per_source: 20.0,
            burst_per_source: 50.0,
            timeout_ms: 30_000,
            dedupe_ttl_secs: 300,
            drain_secs: 10,
        }
    }
}

/// `[presence]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceSection {
    /// `ask` (default: the presentity's own domain, `allow_domains`, watchers the
    /// presentity has subscribed to and those it allowed are approved, denied ones
    /// refused, any other is pending until the presentity decides), `approve-mutual`
    /// (the same approvals, every other watcher refused), `approve-all`,
    /// `approve-known` or `reject-all`. See [`crate::presence`].
    pub authorization: String,
    /// Watcher domains always approved.
    pub allow_domains: Vec<String>,
    /// Watcher domains always rejected.
    pub deny_domains: Vec<String>,
    /// Minimum milliseconds between notifications of one presentity (RFC 3856 s6.4).
    pub notify_interval_ms: u64,
    /// Longest watcher subscription, seconds.
    pub max_expires: u32,
    /// Adapters whose upstream subscriptions the gateway refreshes, with the duration.
    pub upstream_expires: BTreeMap<String, u32>,
    /// Adapters whose watchers hold roster-style subscriptions without expiry (XMPP).
    pub roster_adapters: Vec<String>,
    /// Most subscriptions (and pending fetches) the presence engine holds; past it 503.
    pub max_subscriptions: usize,
    /// Most watchers of one presentity; past it 503.
    pub max_watchers_per_presentity: usize,
    /// Most pending watchers (`ask`) of one presentity; past it 503.
    pub max_pending_per_presentity: usize,
    /// Most pending watchers in total; past it 503.
    pub max_pending: usize,
    /// Most remembered decisions of one presentity; past it the decision gets 503.
    pub max_decisions_per_presentity: usize,
    /// Most remembered decisions in total.
    pub max_decisions: usize,
}

impl Default for PresenceSection {
    fn default() -> Self {
        PresenceSection {
            authorization: "ask".into(),
            allow_domains: Vec::new(),
            deny_domains: Vec::new(),
            notify_interval_ms: 5000,
            max_expires: 86_400,
            upstream_expires: BTreeMap::from([("sip".to_owned(), 3600)]),
            roster_adapters: vec!["xmpp".into()],
            max_subscriptions: 50_000,
            max_watchers_per_presentity: 1_000,
            max_pending_per_presentity: 100,
            max_pending: 5_000,
            max_decisions_per_presentity: 1_000,
            max_decisions: 20_000,
        }
    }
}

/// `[queue]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// Queue messages whose target is offline or whose link is down.
    pub enabled: bool,
    /// Outcome codes that mean "not now" and queue the message.
    pub on_codes: Vec<u16>,
    /// Per target adapter, the codes that queue a message to it instead of `on_codes`
    /// (`sip = []`: an offline SIP user's sender gets the 480 at once, an XMPP sender
    /// an error stanza, rather than a 202 and a later delivery).
    pub on_codes_by_adapter: BTreeMap<String, Vec<u16>>,
    /// First retry delay, milliseconds (doubled per attempt).
    pub retry_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    pub retry_max_ms: u64,
    /// Seconds after which an undelivered message is dropped.
    pub max_age_secs: u64,
    /// Messages kept at most (beyond that: the target's failure is returned).
    pub max_depth: u64,
}

impl QueueSection {
    /// The outcome codes that queue a message to `adapter`: none when the queue is off,
    /// else `on_codes_by_adapter`'s entry or `on_codes`.
    pub fn codes_for(&self, adapter: &str) -> &[u16] {
        if !self.enabled {
            return &[];
        }
        self.on_codes_by_adapter
            .get(adapter)
            .unwrap_or(&self.on_codes)
    }
}

impl Default for QueueSection {
    fn default() -> Self {
        QueueSection {
            enabled: true,
            on_codes: vec![408, 480, 503],
            on_codes_by_adapter: BTreeMap::new(),
            retry_initial_ms: 2000,
            retry_max_ms: 300_000,
            max_age_secs: 7 * 86_400,
            max_depth: 100_000,
        }
    }
}

/// `[store]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Directory of the store.
    pub path: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from("./data"),
        }
    }
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Serve the admin API.
    pub enabled: bool,
    /// Address.
    pub listen: SocketAddr,
    /// Bearer token required on every endpoint but `/health` (at least 16 bytes, no
    /// placeholder). Absent: generated at first start and kept in the store folder
    /// (`admin.token`, mode 0600); the log says where.
    pub token: Option<String>,
    /// Names accepted in the `Host` header besides `localhost`, the loopback addresses and
    /// the listen address (DNS rebinding: a page of another site that resolves its name to
    /// this address gets 421).
    pub allowed_hosts: Vec<String>,
    /// Connections open at once per source address (per /64 for IPv6).
    pub max_connections_per_source: usize,
    /// Connections open at once in all.
    pub max_connections: usize,
    /// Seconds a request's headers may take (an idle keep-alive connection closes after
    /// as long), however slowly they trickle.
    pub header_timeout_secs: u64,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            allowed_hosts: Vec::new(),
            max_connections_per_source: 16,
            max_connections: 64,
            header_timeout_secs: 10,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let sip = SipConfig {
            domains: vec!["localhost".into()],
            ..SipConfig::default()
        };
        // Written as TOML so that fields the XMPP adapter adds with serde defaults
        // need no change here.
        let xmpp: XmppConfig = toml::from_str(
            "[mode]\nkind = \"s2s\"\ndomains = [\"localhost\"]\nlisten = \"127.0.0.1:5269\"\n",
        )
        .unwrap_or_default();
        Config {
            adapters: vec!["sip".into(), "xmpp".into()],
            sip,
            xmpp,
            irc: Vec::new(),
            json: None,
            routes: Vec::new(),
            default_route: None,
            domain_aliases: Vec::new(),
            limits: Limits::default(),
            presence: PresenceSection::default(),
            queue: QueueSection::default(),
            store: StoreSection::default(),
            admin: AdminSection::default(),
        }
    }
}

/// The adapters this build knows by fixed name; the IRC and JSON adapters are known by
/// the `name` of their `[[irc]]` / `[json]` sections.
pub const KNOWN_ADAPTERS: &[&str] = &["sip", "xmpp"];

/// `[irc]` (one network) or `[[irc]]` (several), as a list.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IrcConfig>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<IrcConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an [irc] table or [[irc]] tables")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IrcConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                .map(|c| vec![c])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Vec::<IrcConfig>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
        }
    }
    d.deserialize_any(V)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

/// The position of `key` inside `[table]` (or at the top level), for semantic errors.
fn find_key(text: &str, table: Option<&str>, key: &str) -> Option<(usize, usize)> {
    find_key_nth(text, table, key, 0)
}

/// [`find_key`] in the `nth` (from 0) table named `table` (`[[json.tokens]]` arrays).
fn find_key_nth(text: &str, table: Option<&str>, key: &str, nth: usize) -> Option<(usize, usize)> {
    let mut in_table = table.is_none();
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('[') {
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            in_table = false;
            if Some(name) == table {
                in_table = seen == nth;
                seen += 1;
            }
            continue;
        }
        if in_table {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return Some((i + 1, line.len() - t.len() + 1));
                }
            }
        }
    }
    None
}

impl Config {
    /// Reads and checks `path`, then applies the environment overrides.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_str_with_env(&text, &path.display().to_string(), std::env::vars())
    }

    /// The defaults with the environment overrides applied.
    pub fn defaults_with_env() -> Result<Config, ConfigError> {
        Self::from_str_with_env("", "<defaults>", std::env::vars())
    }

    /// Parses `text` (named `file` in errors), then applies overrides from `vars`.
    pub fn from_str_with_env(
        text: &str,
        file: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let at = |e: toml::de::Error| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ConfigError::At {
                file: file.to_owned(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
            }
        };
        let overrides: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        // With overrides, the file alone may lack a key they supply (a secret kept out of
        // the file): its error counts only if the merged config fails too.
        let parsed: Result<Config, ConfigError> = toml::from_str(text).map_err(at);
        let mut cfg = match parsed {
            Ok(c) => c,
            Err(e) if overrides.is_empty() => return Err(e),
            Err(_) => Config::default(),
        };
        if !overrides.is_empty() {
            let mut table: toml::Table = toml::from_str(text).map_err(at)?;
            for (var, value) in &overrides {
                let path: Vec<String> = var[ENV_PREFIX.len()..]
                    .split("__")
                    .map(str::to_ascii_lowercase)
                    .collect();
                if path.iter().any(String::is_empty) {
                    return Err(ConfigError::Invalid {
                        file: var.clone(),
                        message: "empty key in override name".into(),
                    });
                }
                let v = toml::from_str::<toml::Table>(&format!("v = {value}"))
                    .ok()
                    .and_then(|mut t| t.remove("v"))
                    .unwrap_or_else(|| toml::Value::String(value.clone()));
                let mut cur = &mut table;
                for k in &path[..path.len() - 1] {
                    let entry = cur
                        .entry(k.clone())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    cur = entry.as_table_mut().ok_or_else(|| ConfigError::Invalid {
                        file: var.clone(),
                        message: format!("`{k}` is not a table"),
                    })?;
                }
                cur.insert(path[path.len() - 1].clone(), v);
            }
            let names: Vec<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
            cfg = Config::deserialize(table).map_err(|e| match toml::from_str::<Config>(text) {
                Err(file_err) => at(file_err),
                Ok(_) => ConfigError::Invalid {
                    file: format!("{file} with {}", names.join(", ")),
                    message: e.message().trim_end().to_owned(),
                },
            })?;
        }
        cfg.validate(text, file)?;
        Ok(cfg)
    }

    /// Semantic checks: names the key (and its line when it is in the file).
    pub fn validate(&self, text: &str, file: &str) -> Result<(), ConfigError> {
        let err_at = |at: Option<(usize, usize)>, message: String| match at {
            Some((line, column)) => ConfigError::At {
                file: file.to_owned(),
                line,
                column,
                message,
            },
            None => ConfigError::Invalid {
                file: file.to_owned(),
                message,
            },
        };
        let err = |table: Option<&str>, key: &str, message: String| {
            err_at(find_key(text, table, key), message)
        };
        let mut sections: Vec<(&str, &str)> = Vec::new(); // (adapter name, table)
        for i in &self.irc {
            sections.push((i.name.as_str(), "irc"));
        }
        if let Some(j) = &self.json {
            sections.push((j.name.as_str(), "json"));
        }
        for (i, (name, table)) in sections.iter().enumerate() {
            if KNOWN_ADAPTERS.contains(name) || sections[..i].iter().any(|(n, _)| n == name) {
                return Err(err(
                    Some(table),
                    "name",
                    format!("{table}.name: the adapter name `{name}` is used twice"),
                ));
            }
            if !self.adapters.iter().any(|a| a == name) {
                return Err(err(
                    None,
                    "adapters",
                    format!("adapters: `{name}` (the [{table}] section) is configured but not listed in `adapters`"),
                ));
            }
        }
        for a in &self.adapters {
            if !KNOWN_ADAPTERS.contains(&a.as_str()) && !sections.iter().any(|(n, _)| n == a) {
                return Err(err(
                    None,
                    "adapters",
                    format!("adapters: unknown adapter `{a}` (known: sip, xmpp, and the names of the [[irc]] and [json] sections)"),
                ));
            }
        }
        for a in self.queue.on_codes_by_adapter.keys() {
            if !self.adapters.iter().any(|x| x == a) {
                let at = find_key(text, Some("queue.on_codes_by_adapter"), a)
                    .or_else(|| find_key(text, Some("queue"), "on_codes_by_adapter"));
                return Err(err_at(
                    at,
                    format!(
                        "queue.on_codes_by_adapter: `{a}` is not an adapter listed in `adapters`"
                    ),
                ));
            }
        }
        let local = self.local_domains();
        for (i, (d, a)) in local.iter().enumerate() {
            if let Some((_, other)) = local[..i].iter().find(|(d2, a2)| d2 == d && a2 != a) {
                return Err(err(
                    None,
                    "domains",
                    format!(
                        "the domain `{d}` is claimed by both adapter `{other}` and adapter `{a}`"
                    ),
                ));
            }
        }
        if let Some(j) = &self.json {
            for t in &j.tokens {
                for addr in &t.addresses {
                    let domain =
                        cpim_core::Address::parse(addr)
                            .map(|x| x.domain)
                            .map_err(|e| {
                                err(
                                    Some("json"),
                                    "tokens",
                                    format!("json.tokens: address `{addr}`: {e}"),
                                )
                            })?;
                    if let Some((_, owner)) =
                        local.iter().find(|(d, a)| *d == domain && *a != j.name)
                    {
                        return Err(err(
                            Some("json"),
                            "tokens",
                            format!("json.tokens: address `{addr}` is in the domain of adapter `{owner}`; a JSON session cannot send as it"),
                        ));
                    }
                }
            }
        }
        for r in &self.routes {
            if !self.adapters.contains(&r.adapter) {
                return Err(err(
                    Some("[routes"),
                    "adapter",
                    format!(
                        "routes: domain `{}` routes to adapter `{}`, which is not in `adapters`",
                        r.domain, r.adapter
                    ),
                ));
            }
            if self
                .local_domains()
                .iter()
                .any(|(d, _)| d.eq_ignore_ascii_case(&r.domain))
            {
                return Err(err(
                    Some("[routes"),
                    "domain",
                    format!(
                        "routes: `{}` is a local domain; it cannot be routed elsewhere",
                        r.domain
                    ),
                ));
            }
        }
        if let Some(d) = &self.default_route {
            if !self.adapters.contains(d) {
                return Err(err(
                    None,
                    "default_route",
                    format!("default_route: adapter `{d}` is not in `adapters`"),
                ));
            }
        }
        for a in &self.domain_aliases {
            let local = self
                .local_domains()
                .iter()
                .any(|(d, _)| d.eq_ignore_ascii_case(&a.domain));
            let routed = self
                .routes
                .iter()
                .any(|r| r.domain.eq_ignore_ascii_case(&a.domain));
            if !local && !routed {
                return Err(err(
                    Some("[domain_aliases"),
                    "domain",
                    format!(
                        "domain_aliases: `{}` is neither a local nor a routed domain",
                        a.domain
                    ),
                ));
            }
            if !self.adapters.contains(&a.adapter) {
                return Err(err(
                    Some("[domain_aliases"),
                    "adapter",
                    format!(
                        "domain_aliases: adapter `{}` is not in `adapters`",
                        a.adapter
                    ),
                ));
            }
        }
        for c in crate::secrets::configured(self) {
            let at = find_key_nth(text, Some(c.table), c.key, c.nth);
            if c.generated_when_empty && c.value.is_empty() && at.is_none() {
                continue; // absent: generated at first start
            }
            if let Some(why) = crate::secrets::weakness(c.value) {
                let hint = c.hint();
                return Err(err_at(at, format!("{}: {why}{hint}", c.name())));
            }
        }
        match self.presence.authorization.as_str() {
            "ask" | "approve-mutual" | "approve-all" | "approve-known" | "reject-all" => {}
            other => {
                return Err(err(
                    Some("presence"),
                    "authorization",
                    format!("presence.authorization: `{other}` is not one of ask, approve-mutual, approve-all, approve-known, reject-all"),
                ))
            }
        }
        if self.limits.rate_per_source <= 0.0 || self.limits.burst_per_source < 1.0 {
            return Err(err(
                Some("limits"),
                "rate_per_source",
                "limits: rate_per_source must be > 0 and burst_per_source >= 1".into(),
            ));
        }
        let ep = &self.sip.endpoint;
        if ep.tls_cert.is_some() != ep.tls_key.is_some() {
            let key = if ep.tls_cert.is_some() {
                "tls_cert"
            } else {
                "tls_key"
            };
            return Err(err(
                Some("sip.endpoint"),
                key,
                "sip.endpoint: tls_cert and tls_key go together (with neither, a self-signed certificate is generated in the store folder)".into(),
            ));
        }
        if self.adapters.iter().any(|a| a == "sip") {
            self.sip
                .validate()
                .map_err(|e| err(Some("sip"), "", format!("sip: {e}")))?;
        }
        Ok(())
    }

    /// The local domains and the adapter that owns each: the SIP domains belong to the
    /// SIP adapter (its registrar), each IRC network's `domain` to its IRC adapter, the
    /// `[json]` `domains` to the JSON adapter (only adapters listed in `adapters`).
    pub fn local_domains(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let listed = |name: &str| self.adapters.iter().any(|a| a == name);
        if listed("sip") {
            for d in &self.sip.domains {
                v.push((d.to_ascii_lowercase(), "sip".to_owned()));
            }
        }
        for i in self.irc.iter().filter(|i| listed(&i.name)) {
            v.push((i.domain.to_ascii_lowercase(), i.name.clone()));
        }
        if let Some(j) = self.json.as_ref().filter(|j| listed(&j.name)) {
            for d in &j.domains {
                v.push((d.to_ascii_lowercase(), j.name.clone()));
            }
        }
        v
    }

    /// The presence engine's configuration.
    pub fn presence_config(&self) -> PresenceConfig {
        PresenceConfig {
            policy: match self.presence.authorization.as_str() {
                "approve-known" => Policy::ApproveKnown,
                "reject-all" => Policy::RejectAll,
                "approve-all" => Policy::ApproveAll,
                "approve-mutual" => Policy::ApproveMutual,
                _ => Policy::Ask,
            },
            allow_domains: self.presence.allow_domains.clone(),
            deny_domains: self.presence.deny_domains.clone(),
            notify_interval: Duration::from_millis(self.presence.notify_interval_ms),
            max_expires: self.presence.max_expires,
            upstream_expires: self
                .presence
                .upstream_expires
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect::<HashMap<_, _>>(),
            roster_adapters: self.presence.roster_adapters.clone(),
            max_subscriptions: self.presence.max_subscriptions,
            max_watchers_per_presentity: self.presence.max_watchers_per_presentity,
            max_pending_per_presentity: self.presence.max_pending_per_presentity,
            max_pending: self.presence.max_pending,
            max_decisions_per_presentity: self.presence.max_decisions_per_presentity,
            max_decisions: self.presence.max_decisions,
        }
    }
}

#[cfg(test)]
mod tests;
