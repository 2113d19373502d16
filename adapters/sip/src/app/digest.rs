//! Digest authentication for SIP: RFC 3261 s22.4 with the algorithms of RFC 8760
//! (SHA-256 and MD5; RFC 7616 s3.4 computations), `qop=auth` only.
//!
//! Server side ([`DigestServer`]): issues nonces that expire after a configured lifetime
//! (a late use gets `stale=TRUE`, RFC 7616 s3.3), remembers the highest nonce count seen
//! per nonce so that a replayed `nc` is refused, and checks `opaque`. Client side
//! ([`respond`]): answers a `WWW-Authenticate`/`Proxy-Authenticate` challenge.
//!
//! Sans-IO: the caller passes the current time (`now`, seconds) and, for the server,
//! supplies random bytes through `rand`.

use std::collections::HashMap;
use std::fmt::Write as _;

use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// A digest algorithm (RFC 8760 s2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// `MD5` (RFC 3261; kept for old UAs).
    #[serde(rename = "MD5", alias = "md5")]
    Md5,
    /// `SHA-256` (RFC 8760).
    #[serde(rename = "SHA-256", alias = "sha-256", alias = "sha256")]
    Sha256,
}

impl Algorithm {
    /// The token as written in the `algorithm` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses the `algorithm` parameter (case-insensitive); absent means MD5.
    pub fn parse(s: Option<&str>) -> Option<Algorithm> {
        match s {
            None => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Lower-case hex of the hash of `parts` joined by `:`.
    pub fn hash(self, parts: &[&[u8]]) -> String {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&[u8]]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            hex::encode(d.finalize())
        }
        match self {
            Algorithm::Md5 => run(Md5::new(), parts),
            Algorithm::Sha256 => run(Sha256::new(), parts),
        }
    }
}

/// HA1 = H(username:realm:password) (RFC 7616 s3.4.2).
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> String {
    alg.hash(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The request-digest for `qop=auth` (RFC 7616 s3.4.1), or without qop (RFC 2069 form,
/// RFC 3261 s22.4 compatibility) when `qop` is `None`.
pub fn response(
    alg: Algorithm,
    ha1: &str,
    nonce: &str,
    qop: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = alg.hash(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some((nc, cnonce)) => alg.hash(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]),
        None => alg.hash(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Why a digest header cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// The scheme is not `Digest`.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// A parameter is malformed (unterminated quote, missing `=`).
    #[error("malformed digest parameter near {0:?}")]
    Malformed(String),
    /// A required parameter is missing.
    #[error("digest parameter {0} missing")]
    Missing(&'static str),
    /// The algorithm is not supported.
    #[error("unsupported digest algorithm {0:?}")]
    Algorithm(String),
    /// A qop other than `auth` is required.
    #[error("unsupported qop {0:?}")]
    Qop(String),
}

/// Parses `Digest k=v, k="v", ...` into (lower-cased name, unquoted value) pairs.
pub fn parse_params(header: &str) -> Result<Vec<(String, String)>, DigestError> {
    let h = header.trim_start();
    let rest = match h.get(..6) {
        Some(s) if s.eq_ignore_ascii_case("digest") => &h[6..],
        _ => return Err(DigestError::NotDigest),
    };
    let b = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t' || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(DigestError::Malformed(
                rest[start..].chars().take(20).collect(),
            ));
        }
        let name = rest[start..i].trim().to_ascii_lowercase();
        i += 1;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            let mut closed = false;
            let mut seg = i;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        v.push_str(&rest[seg..i]);
                        seg = i + 1;
                        i += 2;
                    }
                    b'"' => {
                        v.push_str(&rest[seg..i]);
                        closed = true;
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                return Err(DigestError::Malformed(name));
            }
            v
        } else {
            let s = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            rest[s..i].trim().to_owned()
        };
        if name.is_empty() {
            return Err(DigestError::Malformed(value));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn quote(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A challenge (`WWW-Authenticate` / `Proxy-Authenticate` value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// opaque, returned unchanged by the client
    pub opaque: Option<String>,
    /// algorithm
    pub algorithm: Algorithm,
    /// True if `qop` offers `auth`.
    pub qop_auth: bool,
    /// stale=TRUE: the credentials were right but the nonce had expired.
    pub stale: bool,
}

impl Challenge {
    /// Parses a challenge header value.
    pub fn parse(header: &str) -> Result<Challenge, DigestError> {
        let p = parse_params(header)?;
        let alg_s = get(&p, "algorithm");
        let algorithm = Algorithm::parse(alg_s)
            .ok_or_else(|| DigestError::Algorithm(alg_s.unwrap_or("").into()))?;
        let qop = get(&p, "qop");
        let qop_auth =
            qop.is_some_and(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")));
        if let Some(q) = qop {
            if !qop_auth {
                return Err(DigestError::Qop(q.to_owned()));
            }
        }
        Ok(Challenge {
            realm: get(&p, "realm")
                .ok_or(DigestError::Missing("realm"))?
                .to_owned(),
            nonce: get(&p, "nonce")
                .ok_or(DigestError::Missing("nonce"))?
                .to_owned(),
            opaque: get(&p, "opaque").map(str::to_owned),
            algorithm,
            qop_auth,
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Formats the header value.
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(160);
        s.push_str("Digest realm=");
        quote(&mut s, &self.realm);
        s.push_str(", nonce=");
        quote(&mut s, &self.nonce);
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            quote(&mut s, o);
        }
        let _ = write!(s, ", algorithm={}", self.algorithm.as_str());
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if self.stale {
            s.push_str(", stale=TRUE");
        }
        s
    }
}

/// Credentials (`Authorization` / `Proxy-Authorization` value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// username
    pub username: String,
    /// realm
    pub realm: String,
    /// nonce
    pub nonce: String,
    /// digest-uri
    pub uri: String,
    /// request-digest, lower-case hex
    pub response: String,
    /// algorithm
    pub algorithm: Algorithm,
    /// cnonce (with qop)
    pub cnonce: Option<String>,
    /// opaque
    pub opaque: Option<String>,
    /// `Some(nc)` when `qop=auth`
    pub nc: Option<String>,
}

impl Credentials {
    /// Parses a credentials header value.
    pub fn parse(header: &str) -> Result<Credentials, DigestError> {
        let p = parse_params(header)?;
        let alg_s = get(&p, "algorithm");
        let algorithm = Algorithm::parse(alg_s)
            .ok_or_else(|| DigestError::Algorithm(alg_s.unwrap_or("").into()))?;
        let nc = match get(&p, "qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                if get(&p, "cnonce").is_none() {
                    return Err(DigestError::Missing("cnonce"));
                }
                Some(get(&p, "nc").ok_or(DigestError::Missing("nc"))?.to_owned())
            }
            Some(q) => return Err(DigestError::Qop(q.to_owned())),
        };
        Ok(Credentials {
            username: get(&p, "username")
                .ok_or(DigestError::Missing("username"))?
                .to_owned(),
            realm: get(&p, "realm")
                .ok_or(DigestError::Missing("realm"))?
                .to_owned(),
            nonce: get(&p, "nonce")
                .ok_or(DigestError::Missing("nonce"))?
                .to_owned(),
            uri: get(&p, "uri")
                .ok_or(DigestError::Missing("uri"))?
                .to_owned(),
            response: get(&p, "response")
                .ok_or(DigestError::Missing("response"))?
                .to_ascii_lowercase(),
            algorithm,
            cnonce: get(&p, "cnonce").map(str::to_owned),
            opaque: get(&p, "opaque").map(str::to_owned),
            nc,
        })
    }

    /// Formats the header value.
    pub fn to_header(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("Digest username=");
        quote(&mut s, &self.username);
        s.push_str(", realm=");
        quote(&mut s, &self.realm);
        s.push_str(", nonce=");
        quote(&mut s, &self.nonce);
        s.push_str(", uri=");
        quote(&mut s, &self.uri);
        s.push_str(", response=");
        quote(&mut s, &self.response);
        let _ = write!(s, ", algorithm={}", self.algorithm.as_str());
        if let (Some(nc), Some(cn)) = (&self.nc, &self.cnonce) {
            s.push_str(", cnonce=");
            quote(&mut s, cn);
            let _ = write!(s, ", qop=auth, nc={nc}");
        }
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            quote(&mut s, o);
        }
        s
    }
}

/// Client side: answers `challenge` for a request `method` to `uri`. `nc` counts the
/// uses of this nonce (1 for the first answer).
pub fn respond(
    challenge: &Challenge,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Credentials {
    let h1 = ha1(challenge.algorithm, username, &challenge.realm, password);
    let nc_s = format!("{nc:08x}");
    let qop = challenge.qop_auth.then_some((nc_s.as_str(), cnonce));
    let resp = response(challenge.algorithm, &h1, &challenge.nonce, qop, method, uri);
    Credentials {
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        response: resp,
        algorithm: challenge.algorithm,
        cnonce: challenge.qop_auth.then(|| cnonce.to_owned()),
        opaque: challenge.opaque.clone(),
        nc: challenge.qop_auth.then_some(nc_s),
    }
}

/// The stored secret of one user, as the server checks it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    /// The password in clear: any algorithm works.
    Password(String),
    /// A precomputed HA1 for one algorithm.
    Ha1(Algorithm, String),
}

impl Secret {
    /// HA1 for `alg`, if this secret can give it.
    pub fn ha1(&self, alg: Algorithm, username: &str, realm: &str) -> Option<String> {
        match self {
            Secret::Password(p) => Some(ha1(alg, username, realm, p)),
            Secret::Ha1(a, h) if *a == alg => Some(h.to_ascii_lowercase()),
            Secret::Ha1(..) => None,
        }
    }
}

/// Why a request's credentials were not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No credentials for our realm: challenge.
    #[error("no credentials")]
    Missing,
    /// The credentials cannot be parsed (400).
    #[error("bad credentials: {0}")]
    Malformed(#[from] DigestError),
    /// Right digest, expired or unknown nonce: challenge with stale=TRUE.
    #[error("stale nonce")]
    Stale,
    /// Unknown user, wrong password, wrong opaque or realm: challenge again (or 403).
    #[error("credentials rejected")]
    Rejected,
    /// A nonce count not above the last one seen for this nonce: a replay.
    #[error("nonce count replayed")]
    Replay,
}

#[derive(Clone, Debug)]
struct NonceState {
    issued: u64,
    last_nc: u32,
}

/// Server side: issues challenges and checks credentials (RFC 3261 s22.4, RFC 8760).
///
/// Nonces are random, kept in a bounded table with their issue time and the highest
/// `nc` seen. A nonce older than `lifetime` or unknown (after a restart) yields
/// [`AuthFailure::Stale`] if the digest is otherwise right, so the UA retries silently.
#[derive(Debug)]
pub struct DigestServer {
    realm: String,
    opaque: String,
    lifetime: u64,
    algorithms: Vec<Algorithm>,
    nonces: HashMap<String, NonceState>,
    max_nonces: usize,
}

impl DigestServer {
    /// A server for `realm` offering `algorithms` (in order), nonces living `lifetime`
    /// seconds. `opaque` is a per-process random value echoed by clients.
    pub fn new(realm: &str, algorithms: &[Algorithm], lifetime: u32, opaque: String) -> Self {
        DigestServer {
            realm: realm.to_owned(),
            opaque,
            lifetime: u64::from(lifetime.max(1)),
            algorithms: algorithms.to_vec(),
            nonces: HashMap::new(),
            max_nonces: 100_000,
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// Issues a fresh nonce and returns one challenge per configured algorithm (RFC 8760
    /// s2.4: the client picks the first it supports).
    pub fn challenge(&mut self, now: u64, stale: bool, random: [u8; 16]) -> Vec<Challenge> {
        if self.nonces.len() >= self.max_nonces {
            self.purge(now);
            if self.nonces.len() >= self.max_nonces {
                // Still full: drop the oldest half rather than grow without bound.
                let mut issued: Vec<u64> = self.nonces.values().map(|n| n.issued).collect();
                issued.sort_unstable();
                let cut = issued[issued.len() / 2];
                self.nonces.retain(|_, n| n.issued > cut);
            }
        }
        let nonce = format!("{now:x}.{}", hex::encode(random));
        self.nonces.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                last_nc: 0,
            },
        );
        self.algorithms
            .iter()
            .map(|&algorithm| Challenge {
                realm: self.realm.clone(),
                nonce: nonce.clone(),
                opaque: Some(self.opaque.clone()),
                algorithm,
                qop_auth: true,
                stale,
            })
            .collect()
    }

    /// Forgets expired nonces.
    pub fn purge(&mut self, now: u64) {
        let lifetime = self.lifetime;
        self.nonces
            .retain(|_, n| now.saturating_sub(n.issued) <= lifetime);
    }

    /// Checks `header` (an Authorization value) for a request `method`; `lookup` gives the
    /// secret of a username. Returns the authenticated username.
    pub fn verify(
        &mut self,
        header: &str,
        method: &str,
        now: u64,
        lookup: impl FnOnce(&str) -> Option<Secret>,
    ) -> Result<String, AuthFailure> {
        let c = Credentials::parse(header)?;
        if c.realm != self.realm {
            return Err(AuthFailure::Missing);
        }
        if !self.algorithms.contains(&c.algorithm) {
            return Err(AuthFailure::Rejected);
        }
        if c.opaque.as_deref().is_some_and(|o| o != self.opaque) {
            return Err(AuthFailure::Rejected);
        }
        let secret = lookup(&c.username).ok_or(AuthFailure::Rejected)?;
        let h1 = secret
            .ha1(c.algorithm, &c.username, &self.realm)
            .ok_or(AuthFailure::Rejected)?;
        let qop = match (&c.nc, &c.cnonce) {
            (Some(nc), Some(cn)) => Some((nc.as_str(), cn.as_str())),
            _ => None,
        };
        let expected = response(c.algorithm, &h1, &c.nonce, qop, method, &c.uri);
        if !constant_time_eq(expected.as_bytes(), c.response.as_bytes()) {
            return Err(AuthFailure::Rejected);
        }
        let lifetime = self.lifetime;
        let Some(state) = self.nonces.get_mut(&c.nonce) else {
            return Err(AuthFailure::Stale);
        };
        if now.saturating_sub(state.issued) > lifetime {
            self.nonces.remove(&c.nonce);
            return Err(AuthFailure::Stale);
        }
        // Replay protection: with qop the nonce count must grow; without qop a nonce is
        // good for one request only.
        let nc = match &c.nc {
            Some(nc) => u32::from_str_radix(nc, 16)
                .map_err(|_| AuthFailure::Malformed(DigestError::Malformed(nc.clone())))?,
            None => 1,
        };
        if nc <= state.last_nc {
            return Err(AuthFailure::Replay);
        }
        state.last_nc = nc;
        Ok(c.username)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
