//! RFC 4475 (SIP torture test messages): every message of the shared corpus is handled as
//! its manifest says. Valid messages (s3.1.1) parse; invalid ones (s3.1.2) fail with an
//! error mapping to the expected 4xx/505, or are dropped when they are responses;
//! application-layer messages (s3.3) parse and are then refused or accepted by the UAS
//! checks of RFC 3261 s8.2. Nothing panics.
//!
//! The corpus lives in `<workspace>/../shared/corpora/rfc4475-sip-torture`; the test is
//! skipped with a message when it is absent.

use std::path::PathBuf;

use bytes::Bytes;
use cpim_sip::codec::{error_response_for, HeaderName, Method, Policy, SipMessage};
use cpim_sip::transaction::TxKey;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Parses; the UAS check yields this (None = reaches the TU).
    Parse(Option<u16>),
    /// A request that fails to parse with this response code.
    Reject(u16),
    /// A response that fails to parse: dropped, no answer.
    DropResponse,
    /// Unclassified: only "does not panic".
    Any,
}

fn expectation(file: &str) -> Expect {
    use Expect::*;
    match file {
        // 3.1.1 valid
        "wsinv.dat" => Parse(Some(405)), // INVITE: the gateway does not do calls
        "intmeth.dat" => Parse(Some(501)),
        "esc01.dat" => Parse(Some(405)),
        "escnull.dat" => Parse(None),
        "esc02.dat" => Parse(Some(501)), // RE%47IST%45R is not REGISTER
        "lwsdisp.dat" => Parse(None),
        "longreq.dat" => Parse(Some(405)),
        "dblreq.dat" => Parse(None),
        "semiuri.dat" => Parse(None),
        "transports.dat" => Parse(None),
        "mpart01.dat" => Parse(None),
        "unreason.dat" | "noreason.dat" => Parse(None),
        // 3.1.2 invalid
        "badinv01.dat" | "clerr.dat" | "ncl.dat" | "scalar02.dat" | "quotbal.dat"
        | "ltgtruri.dat" | "lwsruri.dat" | "lwsstart.dat" | "trws.dat" | "escruri.dat"
        | "baddate.dat" | "regbadct.dat" | "badaspec.dat" | "baddn.dat" | "mismatch01.dat"
        | "mismatch02.dat" => Reject(400),
        "badvers.dat" => Reject(505),
        "scalarlg.dat" | "bigcode.dat" => DropResponse,
        // 3.2.1 transaction layer: parses, RFC 2543 matching
        "badbranch.dat" => Parse(None),
        // 3.3 application layer
        "insuf.dat" => Reject(400),
        "unkscm.dat" | "novelsc.dat" => Parse(Some(416)),
        "unksm2.dat" => Parse(None), // header URIs are the registrar's business
        "bext01.dat" => Parse(Some(420)),
        "invut.dat" | "sdp01.dat" => Parse(Some(405)),
        "regaut01.dat" => Parse(None),
        "multi01.dat" | "mcl01.dat" => Reject(400),
        "bcast.dat" => Parse(None),
        "zeromf.dat" => Parse(None),
        "cparam01.dat" | "cparam02.dat" | "regescrt.dat" => Parse(None),
        "inv2543.dat" => Parse(Some(405)),
        _ => Any,
    }
}

fn corpus() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpora/rfc4475-sip-torture");
    p.join("manifest.tsv").exists().then_some(p)
}

#[test]
fn rfc4475_corpus_matches_manifest() {
    let Some(dir) = corpus() else {
        eprintln!("SKIP: shared RFC 4475 corpus not found next to the workspace");
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let policy = Policy::default();
    let mut seen = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, class) = (cols[0], cols[3]);
        let raw = std::fs::read(dir.join("messages").join(file)).unwrap();
        let expect = expectation(file);
        // the manifest's class and the table agree
        match class {
            "valid" => assert!(
                matches!(expect, Expect::Parse(_)),
                "{file}: valid but expected {expect:?}"
            ),
            "invalid" => assert!(
                matches!(expect, Expect::Reject(_) | Expect::DropResponse),
                "{file}: invalid but expected {expect:?}"
            ),
            "unclassified" => assert_eq!(expect, Expect::Any),
            _ => assert_ne!(expect, Expect::Any, "{file}: no expectation"),
        }
        let parsed = SipMessage::parse(Bytes::from(raw.clone()));
        match (expect, &parsed) {
            (Expect::Parse(check), Ok(msg)) => {
                if let SipMessage::Request(r) = msg {
                    let got = policy.check(r).err().map(|rej| rej.code);
                    assert_eq!(got, check, "{file}: UAS check");
                    // serialize -> parse keeps the essentials
                    let again = SipMessage::parse(msg.to_bytes())
                        .unwrap_or_else(|e| panic!("{file}: reparse: {e}"));
                    let SipMessage::Request(r2) = again else {
                        panic!("{file}: reparse kind")
                    };
                    assert_eq!(r2.method(), r.method());
                    assert_eq!(r2.call_id(), r.call_id());
                    assert_eq!(r2.body(), r.body());
                } else {
                    assert_eq!(check, None);
                }
            }
            (Expect::Reject(code), Err(e)) => {
                assert_eq!(e.error_response_code(), code, "{file}: {e}");
                let resp = error_response_for(&raw, e);
                if let Some(resp) = resp {
                    let s = String::from_utf8_lossy(&resp);
                    assert!(s.starts_with(&format!("SIP/2.0 {code} ")), "{file}: {s}");
                }
            }
            (Expect::DropResponse, Err(e)) => {
                assert!(
                    error_response_for(&raw, e).is_none(),
                    "{file}: responses are not answered"
                );
            }
            (Expect::Any, _) => {}
            (exp, got) => panic!(
                "{file}: expected {exp:?}, got {:?}",
                got.as_ref().map(|_| "parsed").map_err(|e| e.to_string())
            ),
        }
        seen += 1;
    }
    assert_eq!(seen, 50, "manifest lists 50 messages");
}

fn load(file: &str) -> Option<SipMessage> {
    let dir = corpus()?;
    Some(
        SipMessage::parse(Bytes::from(
            std::fs::read(dir.join("messages").join(file)).unwrap(),
        ))
        .unwrap(),
    )
}

#[test]
fn rfc4475_field_details() {
    if corpus().is_none() {
        eprintln!("SKIP: shared RFC 4475 corpus not found next to the workspace");
        return;
    }
    let req = |f: &str| match load(f).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("{f} is a response"),
    };
    // 3.1.1.1 folding, compact names, LWS around ':' and ';'
    let r = req("wsinv.dat");
    assert_eq!(r.to_tag(), Some("1918181833n"));
    assert_eq!(r.from_tag(), Some("98asjd8"));
    assert_eq!(r.cseq().seq, 9);
    assert_eq!(r.max_forwards(), Some(68));
    let vias: Vec<_> = r.vias().map(|v| v.transport.to_string()).collect();
    assert_eq!(vias, ["UDP", "TCP", "UDP"]);
    assert_eq!(
        r.header_str("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    // 3.1.1.2 unknown method is not INVITE
    assert!(matches!(req("intmeth.dat").method(), Method::Extension(_)));
    // 3.1.1.8 only the first message of the datagram
    let r = req("dblreq.dat");
    assert_eq!(r.method(), &Method::Register);
    assert!(r.body().is_empty());
    // 3.1.1.9 user part with ';'
    assert_eq!(
        req("semiuri.dat").uri().unwrap().user,
        Some("user;par=u%40example.net")
    );
    // 3.1.1.10 five Vias, unknown transport kept
    let v: Vec<_> = req("transports.dat")
        .vias()
        .map(|v| v.transport.to_string())
        .collect();
    assert_eq!(v, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    // 3.1.1.11 binary multipart body kept intact
    let r = req("mpart01.dat");
    let cl: usize = r
        .header(HeaderName::ContentLength)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(r.body().len(), cl);
    assert!(r.body().contains(&0));
    // 3.1.1.12/13 reason phrases
    match load("unreason.dat").unwrap() {
        SipMessage::Response(resp) => assert!(!resp.reason().is_ascii()),
        _ => panic!(),
    }
    match load("noreason.dat").unwrap() {
        SipMessage::Response(resp) => assert_eq!(resp.reason(), ""),
        _ => panic!(),
    }
    // 3.2.1 no magic cookie: RFC 2543 matching
    assert!(matches!(
        TxKey::for_server(&req("badbranch.dat")),
        TxKey::Legacy { .. }
    ));
    // 3.3.12 / 3.3.13 contact-param vs uri-param
    let r = req("cparam01.dat");
    let c = r.contacts().next().unwrap().unwrap();
    assert!(c.params.get("unknownparam").is_some());
    assert!(c.uri.param("unknownparam").is_none());
    let r = req("cparam02.dat");
    let c = r.contacts().next().unwrap().unwrap();
    assert!(c.uri.param("unknownparam").is_some());
    // 3.3.14 escaped header inside a bracketed Contact URI
    let r = req("regescrt.dat");
    assert!(r.contacts().next().unwrap().unwrap().uri.headers.is_some());
}
