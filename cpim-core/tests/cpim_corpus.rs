//! The shared message/cpim corpus (`<workspace>/../shared/corpora/cpim-message-rfc3862`).
//!
//! Its files come from the rcsjta CPIM parser tests (see the folder's SOURCE.txt):
//! - `*.cpim`: message/cpim bodies; each must parse and serialize back byte for byte.
//! - `*.multipart`: a multipart/mixed body (an SDP part and a message/cpim part), not a
//!   message/cpim object: as a whole it must be rejected with an error that names line 1;
//!   its message/cpim part, cut out at the MIME boundary, must parse and round-trip.

use std::path::{Path, PathBuf};

use cpim_core::cpim::{CpimError, CpimMessage};

fn corpus_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = manifest
        .parent()?
        .join("../shared/corpora/cpim-message-rfc3862");
    dir.is_dir().then_some(dir)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "SOURCE.txt") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The message/cpim part of a multipart body: after its part headers, up to the CRLF
/// before the next boundary line.
fn cpim_part(body: &[u8]) -> Option<&[u8]> {
    let text = std::str::from_utf8(body).ok()?;
    let boundary_line = text.lines().next()?.trim_end();
    let start = text.find("Content-Type: message/cpim\r\n\r\n")?
        + "Content-Type: message/cpim\r\n\r\n".len();
    let end = start + text[start..].find(&format!("\r\n{boundary_line}"))?;
    Some(&body[start..end])
}

#[test]
fn corpus_parses_or_is_rejected() {
    let Some(dir) = corpus_dir() else {
        println!("skipped: shared corpus cpim-message-rfc3862 not found next to the workspace");
        return;
    };
    let files = files(&dir);
    assert!(!files.is_empty(), "corpus folder is empty");
    let (mut parsed, mut rejected) = (0, 0);
    for path in files {
        let data = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".cpim") {
            let m = CpimMessage::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.to_bytes(), data, "{name}: round trip");
            assert_eq!(
                m.from().unwrap().uri,
                "sip:anonymous@anonymous.invalid",
                "{name}"
            );
            assert_eq!(
                m.imdn_message_id().as_deref(),
                Some("ae6926cfcffa40a89e44252ce9e970a2"),
                "{name}"
            );
            assert_eq!(
                m.imdn_disposition_notification().as_deref(),
                Some("positive-delivery"),
                "{name}"
            );
            assert_eq!(m.datetime(), Some("2016-03-24T08:51:42+01:00"), "{name}");
            assert_eq!(
                m.content_type().as_deref(),
                Some("text/plain;charset=utf-8"),
                "{name}"
            );
            let len: usize = m.content_header("Content-Length").unwrap().parse().unwrap();
            assert_eq!(
                m.payload().len(),
                len,
                "{name}: payload matches Content-length"
            );
            parsed += 1;
        } else if name.ends_with(".multipart") {
            let err = CpimMessage::parse(&data).unwrap_err();
            assert!(
                matches!(
                    err,
                    CpimError::InvalidHeaderName { line: 1, .. }
                        | CpimError::MissingColon { line: 1 }
                ),
                "{name}: {err}"
            );
            println!("{name}: rejected as expected: {err}");
            let part = cpim_part(&data).expect("multipart has a message/cpim part");
            let m = CpimMessage::parse(part).unwrap_or_else(|e| panic!("{name} (cpim part): {e}"));
            assert_eq!(m.to_bytes(), part);
            assert_eq!(
                m.imdn_disposition_notification().as_deref(),
                Some("positive-delivery, display")
            );
            assert_eq!(m.payload(), b"   ");
            rejected += 1;
        } else {
            panic!("{name}: unknown corpus file kind");
        }
    }
    println!("cpim corpus: {parsed} parsed and round-tripped, {rejected} rejected as expected");
    assert!(parsed >= 2);
}
