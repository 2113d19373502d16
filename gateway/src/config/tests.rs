use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_str_with_env(text, "gw.toml", Vec::new())
}

#[test]
fn empty_file_is_the_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.sip.endpoint.udp, vec!["127.0.0.1:5060".parse().unwrap()]);
    assert_eq!(c.sip.endpoint.tcp, vec!["127.0.0.1:5060".parse().unwrap()]);
    assert_eq!(c.admin.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        c.local_domains(),
        vec![("localhost".to_string(), "sip".to_string())]
    );
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let e =
        parse("adapters = [\"sip\"]\n\n[limits]\nmax_body_bytes = 10\ntypo_key = 1\n").unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("gw.toml:5:1: unknown field `typo_key`"),
        "{s}"
    );
}

#[test]
fn unknown_key_inside_an_adapter_section() {
    let e = parse("[sip]\ndomains = [\"a.test\"]\nlisen = 1\n").unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("gw.toml:3:1: unknown field `lisen`"), "{s}");
}

#[test]
fn type_error_has_position() {
    let e = parse("[limits]\ntimeout_ms = \"soon\"\n").unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("gw.toml:2:14: invalid type"), "{s}");
}

#[test]
fn semantic_errors_name_key_and_line() {
    // No token configured: one is generated at first start, so any address may listen.
    assert!(parse("[admin]\nlisten = \"0.0.0.0:8080\"\n").is_ok());
    assert!(
        parse("[admin]\nlisten = \"0.0.0.0:8080\"\ntoken = \"0123456789abcdef0123\"\n").is_ok()
    );
    let e = parse("[[routes]]\ndomain = \"x.test\"\nadapter = \"irc\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("adapter `irc`"), "{e}");
    let e = parse("[presence]\nauthorization = \"maybe\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("gw.toml:2:1: presence.authorization"), "{e}");
}

#[test]
fn environment_overrides() {
    let vars = vec![
        (
            "CPIM_GATEWAY__ADMIN__LISTEN".to_string(),
            "127.0.0.1:9999".to_string(),
        ),
        (
            "CPIM_GATEWAY__LIMITS__TIMEOUT_MS".to_string(),
            "1234".to_string(),
        ),
        (
            "CPIM_GATEWAY__ADAPTERS".to_string(),
            "[\"sip\"]".to_string(),
        ),
        ("UNRELATED".to_string(), "x".to_string()),
    ];
    let c = Config::from_str_with_env("[limits]\ntimeout_ms = 5\n", "gw.toml", vars).unwrap();
    assert_eq!(c.admin.listen, "127.0.0.1:9999".parse().unwrap());
    assert_eq!(c.limits.timeout_ms, 1234);
    assert_eq!(c.adapters, vec!["sip".to_string()]);
    let e = Config::from_str_with_env(
        "",
        "gw.toml",
        vec![("CPIM_GATEWAY__LIMITS__NOPE".to_string(), "1".to_string())],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("CPIM_GATEWAY__LIMITS__NOPE") && e.contains("unknown field `nope`"),
        "{e}"
    );
}

/// Every sample config under deploy/ parses with the real loader.
#[test]
fn every_sample_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("deploy/config exists") {
        let p = entry.unwrap().path();
        if p.extension().and_then(|e| e.to_str()) == Some("toml") {
            let text = std::fs::read_to_string(&p).unwrap();
            // No sample carries a usable secret: the component secret (shared with the
            // XMPP server, so not generated) comes from the environment.
            let mut env = Vec::new();
            if text.contains("kind = \"component\"") {
                assert!(
                    !text.contains("\nsecret ="),
                    "{}: a sample secret",
                    p.display()
                );
                env.push((
                    "CPIM_GATEWAY__XMPP__MODE__SECRET".to_string(),
                    "0123456789abcdef0123456789abcdef".to_string(),
                ));
            }
            // Nor a JSON client token: they come from the environment too (as the sample says).
            let json = text.contains("\n[json]");
            if json {
                assert!(
                    !text.contains("\n[[json.tokens]]"),
                    "{}: a sample JSON token",
                    p.display()
                );
                env.push((
                    "CPIM_GATEWAY__JSON__TOKENS".to_string(),
                    r#"[{token = "0123456789abcdef0123", addresses = ["im:carol@json.test"]}]"#
                        .to_string(),
                ));
            }
            let c = Config::from_str_with_env(&text, &p.display().to_string(), env)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.admin.token, None, "{}: a sample admin token", p.display());
            if json {
                assert_eq!(
                    c.json.as_ref().map(|j| j.tokens.len()),
                    Some(1),
                    "{}",
                    p.display()
                );
            }
            n += 1;
        }
    }
    assert!(n >= 4, "expected the four sample configs, found {n}");
}

#[test]
fn default_xmpp_is_s2s_for_localhost() {
    let c = Config::default();
    assert!(
        matches!(&c.xmpp.mode, cpim_xmpp::Mode::S2s { domains, .. } if domains == &["localhost".to_string()])
    );
}

#[test]
fn irc_and_json_sections() {
    // One network as `[irc]`, several as `[[irc]]`.
    let one = parse(
        "adapters = [\"sip\", \"irc\", \"json\"]\n[irc]\nserver = \"127.0.0.1:6667\"\ndomain = \"irc.test\"\n\
         [json]\ndomains = [\"json.test\"]\n[[json.tokens]]\ntoken = \"carol-token-6f1d2c9a8b7e\"\naddresses = [\"im:carol@json.test\"]\n",
    )
    .unwrap();
    assert_eq!(one.irc.len(), 1);
    assert_eq!(one.irc[0].domain, "irc.test");
    assert!(one
        .local_domains()
        .contains(&("irc.test".to_string(), "irc".to_string())));
    assert!(one
        .local_domains()
        .contains(&("json.test".to_string(), "json".to_string())));
    let two = parse(
        "adapters = [\"irc\", \"libera\"]\n[[irc]]\ndomain = \"irc.test\"\n\
         [[irc]]\nname = \"libera\"\ndomain = \"libera.test\"\n",
    )
    .unwrap();
    assert_eq!(two.irc.len(), 2);
    assert_eq!(two.irc[1].name, "libera");
    // A misspelt key inside `[[irc]]` keeps its position.
    let e = parse("adapters = [\"irc\"]\n[[irc]]\ndomian = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("gw.toml:3:1: unknown field `domian`"), "{e}");
}

#[test]
fn irc_and_json_semantic_errors() {
    // A section whose adapter is not listed would silently never run.
    let e = parse("[json]\ndomains = [\"json.test\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`json` (the [json] section) is configured but not listed"),
        "{e}"
    );
    // Two networks under one name.
    let e =
        parse("adapters = [\"irc\"]\n[[irc]]\ndomain = \"a.test\"\n[[irc]]\ndomain = \"b.test\"\n")
            .unwrap_err()
            .to_string();
    assert!(e.contains("`irc` is used twice"), "{e}");
    // One domain, two owners.
    let e = parse(
        "adapters = [\"sip\", \"irc\"]\n[sip]\ndomains = [\"x.test\"]\n[irc]\ndomain = \"x.test\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("claimed by both adapter `sip` and adapter `irc`"),
        "{e}"
    );
    // A JSON token cannot bind a SIP user's address (that would be forging).
    let e = parse(
        "adapters = [\"sip\", \"json\"]\n[sip]\ndomains = [\"sip.test\"]\n\
         [json]\n[[json.tokens]]\ntoken = \"carol-token-6f1d2c9a8b7e\"\naddresses = [\"sip:alice@sip.test\"]\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("in the domain of adapter `sip`"), "{e}");
}

/// Issue 10, no known secrets: placeholders, empty and short secrets are refused by the
/// loader (and so by `check-config`), naming the key and its line.
/// JSON client tokens are secrets too: a short one or a placeholder is refused, naming
/// the entry and its line.
#[test]
fn weak_json_tokens_name_entry_and_line() {
    let json = "adapters = [\"sip\", \"json\"]\n[json]\ndomains = [\"json.test\"]\n\
                [[json.tokens]]\ntoken = \"carol-token-6f1d2c9a8b7e\"\naddresses = [\"im:carol@json.test\"]\n";
    assert!(parse(json).is_ok());
    let e = parse(&format!(
        "{json}[[json.tokens]]\ntoken = \"dave-token\"\naddresses = [\"im:dave@json.test\"]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("gw.toml:8:1: json.tokens[2].token: is 10 bytes long"),
        "{e}"
    );
    let e = parse(&json.replace("carol-token-6f1d2c9a8b7e", "replace-this-client-token"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gw.toml:5:1: json.tokens[1].token: `replace-this-client-token` is a well-known placeholder"),
        "{e}"
    );
}

#[test]
fn weak_secrets_name_key_and_line() {
    let e = parse("[admin]\nlisten = \"127.0.0.1:8080\"\ntoken = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gw.toml:3:1: admin.token: is 1 bytes long"),
        "{e}"
    );
    let e = parse("[admin]\ntoken = \"\"\n").unwrap_err().to_string();
    assert!(e.starts_with("gw.toml:2:1: admin.token: is empty"), "{e}");
    let e = parse("[admin]\ntoken = \"change-this-admin-token\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "gw.toml:2:1: admin.token: `change-this-admin-token` is a well-known placeholder"
        ),
        "{e}"
    );
    let s2s =
        "[xmpp.mode]\nkind = \"s2s\"\ndomains = [\"localhost\"]\nlisten = \"127.0.0.1:5269\"\n";
    let e = parse(&format!("{s2s}dialback_secret = \"change-me\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gw.toml:5:1: xmpp.mode.dialback_secret: `change-me`"),
        "{e}"
    );
    let e = parse(&format!("{s2s}dialback_secret = \"\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gw.toml:5:1: xmpp.mode.dialback_secret: is empty"),
        "{e}"
    );
    // Absent: generated at first start.
    let c = parse(s2s).unwrap();
    assert!(
        matches!(&c.xmpp.mode, cpim_xmpp::Mode::S2s { dialback_secret, .. } if dialback_secret.is_empty())
    );
    assert!(parse(&format!(
        "{s2s}dialback_secret = \"0123456789abcdef0123\"\n"
    ))
    .is_ok());
    let comp =
        "[xmpp.mode]\nkind = \"component\"\nserver = \"127.0.0.1:5347\"\ndomain = \"c.test\"\n";
    let e = parse(&format!("{comp}secret = \"s3cret\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gw.toml:5:1: xmpp.mode.secret: `s3cret`"),
        "{e}"
    );
    assert!(parse(&format!("{comp}secret = \"0123456789abcdef0123\"\n")).is_ok());
    // The admin token from the environment is checked too.
    let e = Config::from_str_with_env(
        "",
        "gw.toml",
        vec![(
            "CPIM_GATEWAY__ADMIN__TOKEN".to_string(),
            "short".to_string(),
        )],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("admin.token: is 5 bytes long"), "{e}");
}

#[test]
fn sip_tls_listener_by_default_and_cert_key_go_together() {
    let c = parse("").unwrap();
    assert_eq!(c.sip.endpoint.tls, vec!["127.0.0.1:5061".parse().unwrap()]);
    let e = parse("[sip.endpoint]\ntls_cert = \"c.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gw.toml:2:1: sip.endpoint: tls_cert and tls_key"),
        "{e}"
    );
    assert!(parse("[sip.endpoint]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n").is_ok());
}

#[test]
fn queue_codes_per_adapter_name_a_listed_adapter() {
    let c = parse("[queue.on_codes_by_adapter]\nsip = []\n").unwrap();
    assert_eq!(c.queue.on_codes_by_adapter.get("sip"), Some(&Vec::new()));
    let e = parse("[queue.on_codes_by_adapter]\nsipp = [480]\n").unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("gw.toml:2:1: queue.on_codes_by_adapter: `sipp` is not an adapter"),
        "{s}"
    );
}
