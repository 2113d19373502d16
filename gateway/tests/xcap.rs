//! XCAP (RFC 4825) on the admin listener, over raw HTTP against the in-process
//! gateway: HTTP Digest with a SIP user's credentials (RFC 7616: 401 with a
//! challenge, then the answer), document PUT/GET/DELETE, element operations, a 409
//! with `<xcap-error>`, a 412 on a stale `If-Match`, a 413 for a 50 MB PUT before its
//! body is sent, 403 for another user's document, and the documents restored after a
//! restart from the store.

use std::net::SocketAddr;
use std::path::Path;

use cpim_gateway::config::Config;
use cpim_gateway::gateway::Gateway;
use cpim_sip::app::config::SipUser;
use cpim_sip::app::digest::{respond, Challenge};

mod common;
use common::{raw, tmp, Reply};

const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>
  </list>
</resource-lists>
"#;

fn config(store: &Path) -> Config {
    let mut c = Config::default();
    c.sip.endpoint.udp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.endpoint.tls = vec!["127.0.0.1:0".parse().unwrap()];
    c.sip.domains = vec!["example.com".into()];
    for (u, p) in [("alice", "alice-secret-1"), ("bob", "bob-secret-22")] {
        c.sip.users.push(SipUser {
            username: u.into(),
            password: Some(p.into()),
            ..SipUser::default()
        });
    }
    if let cpim_xmpp::Mode::S2s { listen, .. } = &mut c.xmpp.mode {
        *listen = "127.0.0.1:0".into();
    }
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.admin.token = Some("0123456789abcdef0123456789abcdef".into());
    c.store.path = store.to_owned();
    c
}

/// A client answering digest challenges as `user`.
struct Client {
    addr: SocketAddr,
    user: &'static str,
    password: &'static str,
    challenge: Option<Challenge>,
    nc: u32,
}

impl Client {
    /// Sends the request, answering one challenge (a first one, or a stale nonce).
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut answered = false;
        loop {
            let mut head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
                self.addr,
                body.len()
            );
            for (n, v) in extra {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            if let Some(c) = &self.challenge {
                self.nc += 1;
                let cred = respond(
                    c,
                    method,
                    path,
                    self.user,
                    self.password,
                    "0a4f113b",
                    self.nc,
                );
                head.push_str(&format!("Authorization: {}\r\n", cred.to_header()));
            }
            head.push_str("\r\n");
            let r = raw(self.addr, &head, Some(body.as_bytes())).await;
            if r.status != 401 || answered {
                return r;
            }
            let c = Challenge::parse(r.header("www-authenticate").unwrap()).unwrap();
            self.challenge = Some(c);
            self.nc = 0;
            answered = true;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xcap_over_http_with_sip_digest_credentials_rfc4825() {
    let dir = tmp("xcap");
    let gw = Gateway::start(config(&dir)).await.unwrap();
    let addr = gw.admin_addr().unwrap();
    let doc = "/xcap-root/resource-lists/users/sip:alice@example.com/index";
    let ct = [("Content-Type", "application/resource-lists+xml")];

    // No credentials: a Digest challenge (RFC 7616 s3.3).
    let head = format!("GET {doc} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let r = raw(addr, &head, None).await;
    assert_eq!(r.status, 401);
    let www = r.header("www-authenticate").unwrap();
    assert!(
        www.starts_with("Digest ") && www.contains("qop=\"auth\""),
        "{www}"
    );
    // A wrong password is refused.
    let mut mallory = Client {
        addr,
        user: "alice",
        password: "guess",
        challenge: None,
        nc: 0,
    };
    assert_eq!(mallory.send("GET", doc, &[], "").await.status, 401);

    let mut alice = Client {
        addr,
        user: "alice",
        password: "alice-secret-1",
        challenge: None,
        nc: 0,
    };
    let r = alice.send("PUT", doc, &ct, DOC).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let etag = r.header("etag").unwrap().to_owned();
    let r = alice.send("GET", doc, &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/resource-lists+xml")
    );
    assert_eq!(r.body, DOC);

    // Element PUT (RFC 4825 s8.2.3), then a duplicate: 409 with <xcap-error>.
    let el = format!("{doc}/~~/resource-lists/list%5b@name=%22friends%22%5d/entry%5b@uri=%22sip:carol@example.com%22%5d");
    let elct = [("Content-Type", "application/xcap-el+xml")];
    let r = alice
        .send("PUT", &el, &elct, r#"<entry uri="sip:carol@example.com"/>"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let dup = format!("{doc}/~~/resource-lists/list%5b@name=%22friends%22%5d/entry%5b3%5d");
    let r = alice
        .send(
            "PUT",
            &dup,
            &elct,
            r#"<entry uri="sip:carol@example.com"/>"#,
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.header("content-type"), Some("application/xcap-error+xml"));
    assert!(r.body.contains("<uniqueness-failure"), "{}", r.body);
    let r = alice.send("PUT", doc, &ct, "<resource-lists").await;
    assert_eq!(r.status, 409);
    assert!(r.body.contains("<not-well-formed"), "{}", r.body);

    // The first ETag is stale now: 412 (RFC 4825 s8.5).
    let r = alice
        .send("PUT", doc, &[ct[0], ("If-Match", &etag)], DOC)
        .await;
    assert_eq!(r.status, 412);

    // Another user's document: 403.
    let r = alice
        .send(
            "GET",
            "/xcap-root/resource-lists/users/sip:bob@example.com/index",
            &[],
            "",
        )
        .await;
    assert_eq!(r.status, 403);

    // A 50 MB PUT is refused from its Content-Length, before the body is sent.
    let head = format!(
        "PUT {doc} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/resource-lists+xml\r\nContent-Length: {}\r\n\r\n",
        50 * 1024 * 1024
    );
    let r = raw(addr, &head, None).await;
    assert_eq!(r.status, 413);

    // DELETE of the element; the document is kept across a restart.
    let r = alice.send("DELETE", &el, &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    gw.shutdown().await;
    let gw = Gateway::start(config(&dir)).await.unwrap();
    let addr = gw.admin_addr().unwrap();
    let mut alice = Client {
        addr,
        user: "alice",
        password: "alice-secret-1",
        challenge: None,
        nc: 0,
    };
    let r = alice.send("GET", doc, &[], "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("sip:bob@example.com") && !r.body.contains("carol"),
        "{}",
        r.body
    );
    let r = alice.send("DELETE", doc, &[], "").await;
    assert_eq!(r.status, 200);
    gw.shutdown().await;
    let gw = Gateway::start(config(&dir)).await.unwrap();
    let mut alice = Client {
        addr: gw.admin_addr().unwrap(),
        user: "alice",
        password: "alice-secret-1",
        challenge: None,
        nc: 0,
    };
    assert_eq!(alice.send("GET", doc, &[], "").await.status, 404);
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
