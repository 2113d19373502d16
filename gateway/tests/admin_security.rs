//! Issue 10, secrets and the admin API, driven from outside over raw TCP against the
//! in-process gateway: no known secrets (generated at first start, mode 0600, kept across
//! restarts), the admin token required by default, the `Host` check against DNS
//! rebinding (RFC 9110 s7.2 `Host`, s15.5.20 421), weak configured secrets refused at
//! start, the store folder 0700 and its files 0600.

use std::path::Path;

use cpim_gateway::config::Config;
use cpim_gateway::gateway::Gateway;
use cpim_gateway::secrets::{ADMIN_TOKEN_FILE, DIALBACK_SECRET_FILE};

mod common;
use common::{get, tmp};

/// The built-in defaults (s2s XMPP, SIP, admin) on ephemeral loopback ports.
fn defaults(store: &Path) -> Config {
    let mut c = Config::default();
    c.sip.endpoint.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    if let cpim_xmpp::Mode::S2s { listen, .. } = &mut c.xmpp.mode {
        *listen = "127.0.0.1:0".into();
    }
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.store.path = store.to_owned();
    c
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

/// The defaults: the admin API answers nothing but `/health` without the generated token,
/// which is in a 0600 file of the store folder and is the same after a restart; the
/// dialback secret is generated the same way (no `change-me`).
#[tokio::test]
async fn default_admin_requires_the_generated_token_which_survives_restarts() {
    let dir = tmp("gen");
    let gw = Gateway::start(defaults(&dir)).await.unwrap();
    let admin = gw.admin_addr().unwrap();
    let host = admin.to_string();
    let token = read(&dir.join(ADMIN_TOKEN_FILE));
    let dialback = read(&dir.join(DIALBACK_SECRET_FILE));
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    assert_eq!(dialback.len(), 64, "32 random bytes, hex");
    assert_ne!(token, dialback);
    assert_eq!(
        get(admin, "/health", Some(&host), None).await,
        (200, "ok\n".into())
    );
    for path in [
        "/registrations",
        "/links",
        "/subscriptions",
        "/queue",
        "/metrics",
        "/ready",
    ] {
        let (code, body) = get(admin, path, Some(&host), None).await;
        assert_eq!(code, 401, "{path} without a token: {body}");
        // differs from the token in its last character, whatever that is
        let last = if token.ends_with('0') { '1' } else { '0' };
        let wrong = format!("{}{last}", &token[..63]);
        assert_eq!(
            get(admin, path, Some(&host), Some(&wrong)).await.0,
            401,
            "{path}"
        );
    }
    let (code, body) = get(admin, "/registrations", Some(&host), Some(&token)).await;
    assert_eq!(code, 200, "{body}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700, "store folder");
        for f in [
            ADMIN_TOKEN_FILE,
            DIALBACK_SECRET_FILE,
            "gateway.sqlite3",
            "gateway.sqlite3-wal",
            "gateway.sqlite3-shm",
        ] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }
    gw.shutdown().await;

    let gw = Gateway::start(defaults(&dir)).await.unwrap();
    let admin = gw.admin_addr().unwrap();
    assert_eq!(
        read(&dir.join(ADMIN_TOKEN_FILE)),
        token,
        "kept across restarts"
    );
    assert_eq!(read(&dir.join(DIALBACK_SECRET_FILE)), dialback);
    let (code, body) = get(admin, "/links", Some(&admin.to_string()), Some(&token)).await;
    assert_eq!(code, 200, "{body}");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// DNS rebinding: a page of `evil.example` whose name resolves to 127.0.0.1 sends
/// `Host: evil.example:8080`; it gets 421 even with the right token (a browser would not
/// have it, but the check must not depend on that), and so does a request without `Host`.
/// The loopback names, the listen address and `admin.allowed_hosts` pass.
#[tokio::test]
async fn wrong_host_header_is_misdirected() {
    let dir = tmp("host");
    let mut c = defaults(&dir);
    c.admin.allowed_hosts = vec!["Admin.Example.".into()];
    let gw = Gateway::start(c).await.unwrap();
    let admin = gw.admin_addr().unwrap();
    let token = read(&dir.join(ADMIN_TOKEN_FILE));
    let port = admin.port();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".into(),
        "127.0.0.1.evil.example".into(),
        format!("localhost.evil.example:{port}"),
    ] {
        for path in ["/registrations", "/health"] {
            let (code, body) = get(admin, path, Some(&host), Some(&token)).await;
            assert_eq!(code, 421, "Host: {host} {path}: {body}");
        }
    }
    assert_eq!(
        get(admin, "/registrations", None, Some(&token)).await.0,
        421,
        "no Host"
    );
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST.".into(),
        format!("[::1]:{port}"),
        "admin.example".into(),
        format!("admin.example:{port}"),
    ] {
        let (code, body) = get(admin, "/registrations", Some(&host), Some(&token)).await;
        assert_eq!(code, 200, "Host: {host}: {body}");
    }
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config built in code (not through the loader) with a weak secret does not start: the
/// error names the key.
#[tokio::test]
async fn weak_configured_secrets_refused_at_start() {
    let dir = tmp("weak");
    let mut c = defaults(&dir);
    c.admin.token = Some("x".into());
    let e = Gateway::start(c).await.unwrap_err().to_string();
    assert!(e.contains("admin.token"), "{e}");

    let mut c = defaults(&dir);
    if let cpim_xmpp::Mode::S2s {
        dialback_secret, ..
    } = &mut c.xmpp.mode
    {
        *dialback_secret = "change-me".into();
    }
    let e = Gateway::start(c).await.unwrap_err().to_string();
    assert!(e.contains("xmpp.mode.dialback_secret"), "{e}");

    let mut c = defaults(&dir);
    c.xmpp = toml::from_str(
        "[mode]\nkind = \"component\"\nserver = \"127.0.0.1:1\"\ndomain = \"c.test\"\nsecret = \"s3cret\"\n",
    )
    .unwrap();
    let e = Gateway::start(c).await.unwrap_err().to_string();
    assert!(e.contains("xmpp.mode.secret"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store folder and files left world-readable (an older version, a copy) are made
/// owner-only at start; a new folder is created 0700 whatever the umask allows.
#[cfg(unix)]
#[tokio::test]
async fn loose_store_modes_are_tightened_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp("modes");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let token = dir.join(ADMIN_TOKEN_FILE);
    std::fs::write(&token, "an-old-stored-admin-token-0123456789\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = dir.join("gateway.sqlite3");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o666)).unwrap();
    let gw = Gateway::start(defaults(&dir)).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&token), 0o600);
    assert_eq!(mode(&db), 0o600);
    let admin = gw.admin_addr().unwrap();
    let (code, body) = get(
        admin,
        "/queue",
        Some(&admin.to_string()),
        Some("an-old-stored-admin-token-0123456789"),
    )
    .await;
    assert_eq!(code, 200, "the stored token is used: {body}");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
