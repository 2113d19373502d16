//! Unit tests of the digest module: the RFC 2617 and RFC 7616 vectors, the server's nonce
//! bookkeeping, and round-trip properties of the header formats.

use super::*;

/// RFC 2617 s3.5 example (MD5, qop=auth).
#[test]
fn rfc2617_md5_vector() {
    let h1 = ha1(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    let r = response(
        Algorithm::Md5,
        &h1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Some(("00000001", "0a4f113b")),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

/// RFC 7616 s3.9.1 example, the algorithm set RFC 8760 brings to SIP.
#[test]
fn rfc7616_sha256_and_md5_vectors() {
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    let realm = "http-auth@example.org";
    let h1 = ha1(Algorithm::Sha256, "Mufasa", realm, "Circle of Life");
    let r = response(
        Algorithm::Sha256,
        &h1,
        nonce,
        Some(("00000001", cnonce)),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(
        r,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    let h1 = ha1(Algorithm::Md5, "Mufasa", realm, "Circle of Life");
    let r = response(
        Algorithm::Md5,
        &h1,
        nonce,
        Some(("00000001", cnonce)),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
}

#[test]
fn challenge_round_trip_and_quoting() {
    let c = Challenge {
        realm: "a \"quoted\" realm".into(),
        nonce: "n1".into(),
        opaque: Some("op".into()),
        algorithm: Algorithm::Sha256,
        qop_auth: true,
        stale: true,
    };
    assert_eq!(Challenge::parse(&c.to_header()), Ok(c));
    let p = Challenge::parse("Digest realm=\"x\",nonce=\"y\",qop=\"auth,auth-int\"").unwrap();
    assert!(p.qop_auth);
    assert_eq!(p.algorithm, Algorithm::Md5);
    assert_eq!(
        Challenge::parse("Basic realm=\"x\""),
        Err(DigestError::NotDigest)
    );
    assert!(Challenge::parse("Digest realm=\"x").is_err());
    assert_eq!(
        Challenge::parse("Digest realm=x, nonce=y, algorithm=SHA-512-256"),
        Err(DigestError::Algorithm("SHA-512-256".into()))
    );
}

fn server() -> DigestServer {
    DigestServer::new(
        "sip.test",
        &[Algorithm::Sha256, Algorithm::Md5],
        300,
        "opq".into(),
    )
}

fn lookup(u: &str) -> Option<Secret> {
    (u == "alice").then(|| Secret::Password("wonder".into()))
}

#[test]
fn server_accepts_client_answer_and_refuses_replay() {
    let mut s = server();
    let ch = s.challenge(1000, false, [7; 16]);
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0].algorithm, Algorithm::Sha256);
    for (i, c) in ch.iter().enumerate() {
        let nc = 2 * i as u32 + 1;
        let cred = respond(c, "REGISTER", "sip:sip.test", "alice", "wonder", "abc", nc);
        let hdr = cred.to_header();
        assert_eq!(
            s.verify(&hdr, "REGISTER", 1001, lookup),
            Ok("alice".to_owned())
        );
        // Same nc again: replay.
        assert_eq!(
            s.verify(&hdr, "REGISTER", 1002, lookup),
            Err(AuthFailure::Replay)
        );
    }
}

#[test]
fn server_rejects_wrong_password_method_and_opaque() {
    let mut s = server();
    let c = &s.challenge(0, false, [1; 16])[0];
    let bad = respond(c, "MESSAGE", "sip:bob@sip.test", "alice", "nope", "x", 1);
    assert_eq!(
        s.verify(&bad.to_header(), "MESSAGE", 1, lookup),
        Err(AuthFailure::Rejected)
    );
    let good = respond(c, "MESSAGE", "sip:bob@sip.test", "alice", "wonder", "x", 1);
    assert_eq!(
        s.verify(&good.to_header(), "PUBLISH", 1, lookup),
        Err(AuthFailure::Rejected)
    );
    let mut wrong_opaque = good.clone();
    wrong_opaque.opaque = Some("other".into());
    assert_eq!(
        s.verify(&wrong_opaque.to_header(), "MESSAGE", 1, lookup),
        Err(AuthFailure::Rejected)
    );
    let unknown = respond(
        c,
        "MESSAGE",
        "sip:bob@sip.test",
        "mallory",
        "wonder",
        "x",
        1,
    );
    assert_eq!(
        s.verify(&unknown.to_header(), "MESSAGE", 1, lookup),
        Err(AuthFailure::Rejected)
    );
}

#[test]
fn expired_or_unknown_nonce_is_stale() {
    let mut s = server();
    let c = s.challenge(0, false, [2; 16])[1].clone();
    let cred = respond(&c, "REGISTER", "sip:sip.test", "alice", "wonder", "x", 1);
    assert_eq!(
        s.verify(&cred.to_header(), "REGISTER", 301, lookup),
        Err(AuthFailure::Stale)
    );
    let mut fresh = server();
    assert_eq!(
        fresh.verify(&cred.to_header(), "REGISTER", 1, lookup),
        Err(AuthFailure::Stale)
    );
    let again = fresh.challenge(400, true, [3; 16]);
    assert!(again[0].stale);
    assert!(again[0].to_header().ends_with("stale=TRUE"));
}

#[test]
fn ha1_secret_only_serves_its_algorithm() {
    let mut s = server();
    let c = s.challenge(0, false, [4; 16]);
    let h = ha1(Algorithm::Md5, "alice", "sip.test", "wonder");
    let lk = |u: &str| (u == "alice").then(|| Secret::Ha1(Algorithm::Md5, h.clone()));
    let md5 = respond(&c[1], "REGISTER", "sip:sip.test", "alice", "wonder", "x", 1);
    assert_eq!(
        s.verify(&md5.to_header(), "REGISTER", 1, lk),
        Ok("alice".into())
    );
    let sha = respond(&c[0], "REGISTER", "sip:sip.test", "alice", "wonder", "x", 2);
    assert_eq!(
        s.verify(&sha.to_header(), "REGISTER", 1, lk),
        Err(AuthFailure::Rejected)
    );
}

#[test]
fn malformed_credentials_are_errors_not_panics() {
    let mut s = server();
    for h in [
        "",
        "Digest",
        "Digest username",
        "Digest username=\"a",
        "Digest username=a, realm=sip.test, nonce=n, uri=u, response=r, qop=auth",
        "Digest =x",
    ] {
        assert!(s.verify(h, "MESSAGE", 0, lookup).is_err(), "{h}");
    }
}

#[test]
fn nonce_table_stays_bounded() {
    let mut s = server();
    s.max_nonces = 10;
    for i in 0..50u8 {
        s.challenge(u64::from(i), false, [i; 16]);
    }
    assert!(s.nonces.len() <= 10);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        // Any printable text, quotes and backslashes included.
        "[ -~]{0,40}"
    }

    proptest! {
        /// Challenge header: format then parse gives the same challenge.
        #[test]
        fn challenge_round_trip(realm in text(), nonce in text(), opaque in proptest::option::of(text()),
                                sha in any::<bool>(), stale in any::<bool>()) {
            let c = Challenge {
                realm, nonce, opaque,
                algorithm: if sha { Algorithm::Sha256 } else { Algorithm::Md5 },
                qop_auth: true,
                stale,
            };
            prop_assert_eq!(Challenge::parse(&c.to_header()), Ok(c));
        }

        /// Credentials header: format then parse gives the same credentials.
        #[test]
        fn credentials_round_trip(user in text(), realm in text(), nonce in text(), uri in text(),
                                  cnonce in text(), nc in any::<u32>(), opaque in proptest::option::of(text())) {
            let c = Credentials {
                username: user, realm, nonce, uri,
                response: "0123abcd".into(),
                algorithm: Algorithm::Sha256,
                cnonce: Some(cnonce),
                opaque,
                nc: Some(format!("{nc:08x}")),
            };
            prop_assert_eq!(Credentials::parse(&c.to_header()), Ok(c));
        }

        /// Arbitrary input never panics the parsers or the server.
        #[test]
        fn no_panic_on_garbage(s in "\\PC{0,200}") {
            let _ = Challenge::parse(&s);
            let _ = Credentials::parse(&s);
            let mut srv = DigestServer::new("r", &[Algorithm::Md5], 10, "o".into());
            let _ = srv.verify(&s, "MESSAGE", 0, |_| Some(Secret::Password("p".into())));
        }
    }
}
