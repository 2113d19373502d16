//! Shared helpers of the XCAP tests: a server, requests as one-liners, and
//! documents written after the RFCs' examples.

#![allow(dead_code)]

use cpim_xcap::{Config, Request, Response, XcapServer};

pub const ALICE: &str = "sip:alice@example.com";
pub const BOB: &str = "sip:bob@example.com";
pub const RL_MIME: &str = "application/resource-lists+xml";
pub const RLS_MIME: &str = "application/rls-services+xml";
pub const PR_MIME: &str = "application/auth-policy+xml";
pub const EL: &str = "application/xcap-el+xml";
pub const ATT: &str = "application/xcap-att+xml";

/// Alice's buddy list after RFC 4826 s3.3's example (anchors under this server's root).
pub const FRIENDS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">
  <list name="friends">
    <entry uri="sip:bill@example.com">
      <display-name>Bill Doe</display-name>
    </entry>
    <entry-ref ref="resource-lists/users/sip:bob@example.com/index/~~/resource-lists/list%5b@name=%22list1%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d"/>
    <list name="close-friends">
      <display-name>Close Friends</display-name>
      <entry uri="sip:joe@example.com">
        <display-name>Joe Smith</display-name>
      </entry>
      <entry uri="sip:nancy@example.com">
        <display-name>Nancy Gross</display-name>
      </entry>
      <external anchor="http://xcap.example.com/xcap-root/resource-lists/users/sip:bob@example.com/index/~~/resource-lists/list%5b@name=%22mkting%22%5d">
        <display-name>Marketing</display-name>
      </external>
    </list>
  </list>
</resource-lists>
"#;

/// An rls-services document after RFC 4826 s4.4's example.
pub fn services(uri: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"
   xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
  <service uri="{uri}">
    <resource-list>http://xcap.example.com/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists/list%5b@name=%22friends%22%5d</resource-list>
    <packages>
      <package>presence</package>
    </packages>
  </service>
  <service uri="sip:marketing@example.com">
    <list name="marketing">
      <rl:entry uri="sip:joe@example.com"/>
      <rl:entry uri="sip:sudhir@example.com"/>
    </list>
    <packages>
      <package>presence</package>
    </packages>
  </service>
</rls-services>
"#
    )
}

/// A pres-rules document after RFC 5025 s7's example.
pub const PRES_RULES: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
    xmlns:pr="urn:ietf:params:xml:ns:pres-rules"
    xmlns:cr="urn:ietf:params:xml:ns:common-policy">
  <cr:rule id="a">
    <cr:conditions>
      <cr:identity>
        <cr:one id="sip:user@example.com"/>
      </cr:identity>
    </cr:conditions>
    <cr:actions>
      <pr:sub-handling>allow</pr:sub-handling>
    </cr:actions>
    <cr:transformations>
      <pr:provide-services>
        <pr:service-uri-scheme>sip</pr:service-uri-scheme>
        <pr:service-uri-scheme>mailto</pr:service-uri-scheme>
      </pr:provide-services>
      <pr:provide-persons>
        <pr:all-persons/>
      </pr:provide-persons>
      <pr:provide-activities>true</pr:provide-activities>
      <pr:provide-user-input>bare</pr:provide-user-input>
      <pr:provide-unknown-attribute ns="urn:vendor-specific:foo-namespace" name="foo">true</pr:provide-unknown-attribute>
    </cr:transformations>
  </cr:rule>
</cr:ruleset>
"#;

pub fn server() -> XcapServer {
    XcapServer::new(Config::new("/xcap-root", [7; 32]))
}

pub fn doc(auid: &str, user: &str, name: &str) -> String {
    format!("/xcap-root/{auid}/users/{user}/{name}")
}

pub fn rl(user: &str) -> String {
    doc("resource-lists", user, "index")
}

pub fn req<'a>(method: &'a str, target: &'a str, user: &'a str) -> Request<'a> {
    Request {
        method,
        target,
        if_match: None,
        if_none_match: None,
        content_type: None,
        body: b"",
        user,
    }
}

pub fn get(s: &mut XcapServer, target: &str, user: &str) -> Response {
    s.handle(&req("GET", target, user))
}

pub fn put(s: &mut XcapServer, target: &str, user: &str, ct: &str, body: &str) -> Response {
    s.handle(&Request {
        content_type: Some(ct),
        body: body.as_bytes(),
        ..req("PUT", target, user)
    })
}

pub fn delete(s: &mut XcapServer, target: &str, user: &str) -> Response {
    s.handle(&req("DELETE", target, user))
}

pub fn body(r: &Response) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

/// Asserts a 409 whose `<xcap-error>` holds `condition`.
pub fn assert_conflict(r: &Response, condition: &str) {
    let b = body(r);
    assert_eq!(r.status, 409, "{b}");
    assert_eq!(r.content_type, Some("application/xcap-error+xml"));
    let root = cpim_core::xml::parse(b.as_bytes()).unwrap();
    assert!(
        root.is("urn:ietf:params:xml:ns:xcap-error", "xcap-error"),
        "{b}"
    );
    let first = root.elements().next().unwrap();
    assert_eq!(first.name, condition, "{b}");
}

/// A path in the shared folder: `<workspace>/../shared`, or one level higher for a
/// git worktree kept in a folder beside the main checkout; canonical, so that
/// xmllint finds a schema's relative imports.
pub fn shared(rel: &str) -> Option<std::path::PathBuf> {
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    ["../shared", "../../shared"]
        .iter()
        .find_map(|up| std::fs::canonicalize(ws.join(up).join(rel)).ok())
}
