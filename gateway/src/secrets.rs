//! No known secrets: the checks on configured secrets, the secrets generated at first
//! start, and the private file modes of the store folder.
//!
//! - A configured secret (the XMPP dialback secret, the XEP-0114 component secret, the
//!   admin token, the JSON clients' login tokens) is refused when it is empty, shorter than [`MIN_SECRET_BYTES`] bytes or a
//!   well-known placeholder (`change-me`, `secret`, ...): see [`weakness`]. The config
//!   loader (and so `check-config`) names the key and its line; [`resolve`] refuses them
//!   again at start for configs built in code.
//! - A secret absent from the config (the dialback secret in s2s mode, the admin token
//!   when the admin API is enabled) is generated at first start: 32 bytes from the
//!   operating system's random source, hex-encoded, written to a file of the store folder
//!   ([`DIALBACK_SECRET_FILE`], [`ADMIN_TOKEN_FILE`]) with mode 0600, and read back from
//!   there at every later start (so dialback keys and the token survive restarts). The
//!   log says where the token is, never the token.
//! - The SIP TLS listener without a configured certificate gets a self-signed one kept in
//!   the store folder ([`generated_tls_identity`]: [`SIP_TLS_CERT_FILE`],
//!   [`SIP_TLS_KEY_FILE`]), written like the secrets by [`create_private`].
//! - The store folder is mode 0700 and its files 0600, whatever the umask: [`private_dir`]
//!   creates (or tightens, with a warning) the folder, [`private_file`] the files.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// The file of the store folder that keeps the generated XMPP dialback secret.
pub const DIALBACK_SECRET_FILE: &str = "dialback.secret";

/// The file of the store folder that keeps the generated admin API token.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The file of the store folder that keeps the generated SIP TLS certificate (PEM).
pub const SIP_TLS_CERT_FILE: &str = "sip-tls-cert.pem";

/// The file of the store folder that keeps the generated SIP TLS private key (PEM).
pub const SIP_TLS_KEY_FILE: &str = "sip-tls-key.pem";

/// Placeholders found in sample configs and documentation (compared without case and
/// without `-`/`_`/spaces).
const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "changethis",
    "changethisadmintoken",
    "replaceme",
    "replacethis",
    "secret",
    "s3cret",
    "password",
    "token",
    "admintoken",
    "alongrandomsecret",
    "xxxxxxxxxxxxxxxx",
];

/// Why `secret` must not be used (`None`: it may).
pub fn weakness(secret: &str) -> Option<String> {
    let folded: String = secret
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    if secret.is_empty() {
        Some("is empty".into())
    } else if PLACEHOLDERS.contains(&folded.as_str())
        || folded.starts_with("changeme")
        || folded.starts_with("changethis")
        || folded.starts_with("replacethis")
        || folded.starts_with("replaceme")
    {
        Some(format!("`{secret}` is a well-known placeholder"))
    } else if secret.len() < MIN_SECRET_BYTES {
        Some(format!(
            "is {} bytes long; at least {MIN_SECRET_BYTES} are required",
            secret.len()
        ))
    } else {
        None
    }
}

/// A configured secret, by its key (`xmpp.mode.dialback_secret`), for the checks.
#[derive(Debug)]
pub struct Configured<'a> {
    /// The table, as [`crate::config`] finds keys (`xmpp.mode`, `admin`).
    pub table: &'static str,
    /// The key inside the table.
    pub key: &'static str,
    /// The value.
    pub value: &'a str,
    /// Absent from the config (an empty value then means: generate it).
    pub generated_when_empty: bool,
    /// Which table of that name (from 0): the `[[json.tokens]]` entries.
    pub nth: usize,
}

impl Configured<'_> {
    /// The key as errors name it (`admin.token`, `json.tokens[2].token`).
    pub fn name(&self) -> String {
        if self.table == "json.tokens" {
            format!("{}[{}].{}", self.table, self.nth + 1, self.key)
        } else {
            format!("{}.{}", self.table, self.key)
        }
    }

    /// What to do about a weak value.
    pub fn hint(&self) -> &'static str {
        if self.table == "json.tokens" {
            "; use a random value (e.g. `openssl rand -hex 32`) and give it to the client"
        } else if self.generated_when_empty || self.key == "token" {
            "; remove the key to have a random one generated at first start"
        } else {
            "; use a random value (e.g. `openssl rand -hex 32`) on both sides"
        }
    }
}

/// The secrets of `cfg` that are checked (those of the adapters and APIs it runs).
pub fn configured(cfg: &Config) -> Vec<Configured<'_>> {
    let mut v = Vec::new();
    if cfg.adapters.iter().any(|a| a == "xmpp") {
        match &cfg.xmpp.mode {
            cpim_xmpp::Mode::S2s {
                dialback_secret, ..
            } => v.push(Configured {
                table: "xmpp.mode",
                key: "dialback_secret",
                value: dialback_secret,
                generated_when_empty: true,
                nth: 0,
            }),
            cpim_xmpp::Mode::Component { secret, .. } => v.push(Configured {
                table: "xmpp.mode",
                key: "secret",
                value: secret,
                generated_when_empty: false,
                nth: 0,
            }),
        }
    }
    if cfg.admin.enabled {
        if let Some(t) = &cfg.admin.token {
            v.push(Configured {
                table: "admin",
                key: "token",
                value: t,
                generated_when_empty: false,
                nth: 0,
            });
        }
    }
    if let Some(j) = cfg.json.as_ref().filter(|j| cfg.adapters.contains(&j.name)) {
        for (nth, t) in j.tokens.iter().enumerate() {
            v.push(Configured {
                table: "json.tokens",
                key: "token",
                value: &t.token,
                generated_when_empty: false,
                nth,
            });
        }
    }
    v
}

/// Why a secret could not be read, generated or stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// A configured secret is weak.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file of the store folder.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A stored secret is weak (edited by hand?).
    #[error("{path}: the stored secret {why}; remove the file to have a new one generated")]
    Weak {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The SIP TLS certificate could not be made.
    #[error("making the SIP TLS certificate: {0}")]
    Certificate(#[source] cpim_sip::transport::TransportError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SecretError + '_ {
    move |source| SecretError::Io {
        path: path.to_owned(),
        source,
    }
}

/// 32 random bytes from the operating system, hex-encoded.
fn generate() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The secret kept in `dir/name`, generated (mode 0600) when the file does not exist.
/// Returns the secret and whether it was generated now.
pub fn stored_secret(dir: &Path, name: &str) -> Result<(String, bool), SecretError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            tighten(&path, 0o600).map_err(io(&path))?;
            let s = text.trim().to_owned();
            if let Some(why) = weakness(&s) {
                return Err(SecretError::Weak { path, why });
            }
            Ok((s, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = generate();
            if create_private(dir, name, format!("{s}\n").as_bytes())? {
                Ok((s, true))
            } else {
                stored_secret(dir, name)
            }
        }
        Err(e) => Err(io(&path)(e)),
    }
}

/// Creates `dir/name` with `data`, mode 0600; false (nothing written) if it exists.
/// Written whole to a temporary file, then linked into place: a crash leaves no
/// half-written file, and of two gateways starting on one store the second keeps the
/// first one's file.
pub fn create_private(dir: &Path, name: &str, data: &[u8]) -> Result<bool, SecretError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = private_file(&tmp, true).map_err(io(&tmp))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    drop(f);
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(&path)(e)),
    }
}

/// The certificate and key files of the SIP TLS listener in the store folder `dir`
/// ([`SIP_TLS_CERT_FILE`], [`SIP_TLS_KEY_FILE`], mode 0600): at first start a
/// self-signed certificate for `names` (made in memory by the SIP crate) and its key are
/// written with [`create_private`];
/// later starts reuse them, so peers that pinned the certificate keep working. A lone
/// file (a start that ended between the two writes, or one removed by hand) is replaced
/// with the pair.
pub fn generated_tls_identity(
    dir: &Path,
    names: &[String],
) -> Result<(PathBuf, PathBuf), SecretError> {
    let cert = dir.join(SIP_TLS_CERT_FILE);
    let key = dir.join(SIP_TLS_KEY_FILE);
    if !(cert.exists() && key.exists()) {
        private_dir(dir).map_err(io(dir))?;
        for p in [&cert, &key] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(p)(e)),
                _ => {}
            }
        }
        let (c, k) =
            cpim_sip::transport::tls::self_signed(names).map_err(SecretError::Certificate)?;
        // The key first: a certificate on disk always has its key.
        create_private(dir, SIP_TLS_KEY_FILE, k.as_bytes())?;
        create_private(dir, SIP_TLS_CERT_FILE, c.as_bytes())?;
        tracing::info!(cert = %cert.display(), "generated a self-signed certificate for the SIP TLS listener");
    }
    for p in [&cert, &key] {
        tighten(p, 0o600).map_err(io(p))?;
    }
    Ok((cert, key))
}

/// Refuses weak configured secrets (a config built in code, not through the loader), then
/// fills in the absent ones from the store folder `dir` (generating them at first start).
pub fn resolve(cfg: &mut Config, dir: &Path) -> Result<(), SecretError> {
    for c in configured(cfg) {
        if c.generated_when_empty && c.value.is_empty() {
            continue;
        }
        if let Some(why) = weakness(c.value) {
            return Err(ConfigError::Invalid {
                file: "<config>".into(),
                message: format!("{}: {why}", c.name()),
            }
            .into());
        }
    }
    let xmpp = cfg.adapters.iter().any(|a| a == "xmpp");
    if let cpim_xmpp::Mode::S2s {
        dialback_secret, ..
    } = &mut cfg.xmpp.mode
    {
        if xmpp && dialback_secret.is_empty() {
            let (s, new) = stored_secret(dir, DIALBACK_SECRET_FILE)?;
            let path = dir.join(DIALBACK_SECRET_FILE);
            if new {
                tracing::info!(path = %path.display(), "xmpp.mode.dialback_secret not configured: generated one");
            } else {
                tracing::info!(path = %path.display(), "xmpp.mode.dialback_secret not configured: using the stored one");
            }
            *dialback_secret = s;
        }
    }
    if cfg.admin.enabled && cfg.admin.token.is_none() {
        let (s, new) = stored_secret(dir, ADMIN_TOKEN_FILE)?;
        let path = dir.join(ADMIN_TOKEN_FILE);
        if new {
            tracing::info!(path = %path.display(), "admin.token not configured: generated one; the admin API requires it as `Authorization: Bearer <token>`");
        } else {
            tracing::info!(path = %path.display(), "admin.token not configured: the admin API requires the token stored in this file");
        }
        cfg.admin.token = Some(s);
    }
    Ok(())
}

/// Creates `dir` (and its parents) and makes it mode 0700; an existing folder with a looser
/// mode is tightened, with a warning.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)?;
    tighten(dir, 0o700)
}

/// Makes the store folder `dir` private (0700, created if needed) and its SQLite database
/// `db` too: created 0600 before SQLite opens it (SQLite gives the `-wal`, `-shm` and
/// `-journal` files the database's mode); those of an older store are tightened.
pub fn private_store(dir: &Path, db: &Path) -> std::io::Result<()> {
    private_dir(dir)?;
    drop(private_file(db, false)?);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut f = db.as_os_str().to_owned();
        f.push(suffix);
        tighten(Path::new(&f), 0o600)?;
    }
    Ok(())
}

/// Opens `path` for writing, created with mode 0600 (whatever the umask; an existing file is
/// tightened). `new_only`: fail if it exists.
pub fn private_file(path: &Path, new_only: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if new_only {
        o.create_new(true);
    } else {
        o.create(true).truncate(false);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let f = o.open(path)?;
    tighten(path, 0o600)?;
    Ok(f)
}

/// Removes the permission bits of `path` beyond `mode` (a warning says so); nothing if it
/// does not exist.
pub fn tighten(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let old = meta.permissions().mode() & 0o777;
        if old & !mode != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(old & mode))?;
            tracing::warn!(path = %path.display(), old = format!("{old:o}"), new = format!("{:o}", old & mode), "store: permissions were looser than owner-only; tightened");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_short_and_empty_secrets_are_weak() {
        for s in [
            "",
            "x",
            "change-me",
            "CHANGE_ME",
            "change-this-admin-token",
            "replace-me",
            "replace-this-client-token",
            "s3cret",
            "a-long-random-secret",
            "fifteen-bytes!!",
        ] {
            assert!(weakness(s).is_some(), "{s:?} accepted");
        }
        assert!(weakness("0123456789abcdef").is_none());
        assert!(weakness(&generate()).is_none());
        assert_eq!(generate().len(), 64);
        assert_ne!(generate(), generate());
    }

    /// A lone certificate (a start that ended between the two writes) is replaced with a
    /// matching pair, mode 0600, which later starts reuse.
    #[test]
    fn tls_identity_is_written_as_a_pair_and_kept() {
        let dir = std::env::temp_dir().join(format!("cpim-gw-tlsid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        private_dir(&dir).unwrap();
        std::fs::write(dir.join(SIP_TLS_CERT_FILE), "stale").unwrap();
        let names = vec!["sip.test".to_string()];
        let (cert, key) = generated_tls_identity(&dir, &names).unwrap();
        let pem = std::fs::read_to_string(&cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        assert!(std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY"));
        #[cfg(unix)]
        for p in [&cert, &key] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        generated_tls_identity(&dir, &names).unwrap();
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), pem);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
