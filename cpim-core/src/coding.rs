//! Content codings (RFC 3261 s20.12 `Content-Encoding`, also a CPIM content header, RFC
//! 3862 s3.3): the one place a body is decoded. `identity` and `deflate` are known;
//! `deflate` is read as zlib (RFC 1950, what the SIP and HTTP registries mean by it) and,
//! failing that, as raw deflate (RFC 1951, as some clients send it). Linphone deflates its
//! IMDNs. A decoded body is capped at [`MAX_DECODED_BYTES`] (a compression bomb is
//! refused, not expanded).

use miniz_oxide::inflate::{self, DecompressError, TINFLStatus};

use crate::StatusCode;

/// The most a coded body may decode to (an IMDN or a page-mode text is far less).
pub const MAX_DECODED_BYTES: usize = 1 << 20;

/// The codings [`decode`] knows, for an `Accept-Encoding` header.
pub const ACCEPTED: &str = "identity, deflate";

/// Why a body could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodingError {
    /// A coding [`decode`] does not know.
    #[error("content coding {0} is not supported (supported: {ACCEPTED})")]
    Unsupported(String),
    /// The body decodes to more than [`MAX_DECODED_BYTES`].
    #[error("the decoded body is larger than {MAX_DECODED_BYTES} bytes")]
    TooLarge,
    /// The body is not valid data of its coding.
    #[error("the body is not valid {0} data")]
    Corrupt(&'static str),
}

impl CodingError {
    /// The status a request with this body gets: 415 (RFC 3261 s21.4.13, with
    /// `Accept-Encoding: ` [`ACCEPTED`]), 413, 400.
    pub fn status(&self) -> StatusCode {
        match self {
            CodingError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CodingError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            CodingError::Corrupt(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// `body` decoded from the codings of a `Content-Encoding` value (a list, applied in
/// order, so decoded from the last).
pub fn decode(encoding: &str, body: &[u8]) -> Result<Vec<u8>, CodingError> {
    let mut out = body.to_vec();
    for coding in encoding.rsplit(',') {
        out = decode_one(coding, out)?;
    }
    Ok(out)
}

fn decode_one(coding: &str, body: Vec<u8>) -> Result<Vec<u8>, CodingError> {
    match coding.trim().to_ascii_lowercase().as_str() {
        "identity" | "" => Ok(body),
        "deflate" => {
            let too_large = |e: &DecompressError| e.status == TINFLStatus::HasMoreOutput;
            let out = match inflate::decompress_to_vec_zlib_with_limit(&body, MAX_DECODED_BYTES) {
                Err(e) if !too_large(&e) => {
                    inflate::decompress_to_vec_with_limit(&body, MAX_DECODED_BYTES)
                }
                other => other,
            };
            out.map_err(|e| {
                if too_large(&e) {
                    CodingError::TooLarge
                } else {
                    CodingError::Corrupt("deflate")
                }
            })
        }
        other => Err(CodingError::Unsupported(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_zlib_and_raw_identity_and_lists() {
        let text = b"<imdn xmlns=\"urn:ietf:params:xml:ns:imdn\"/>";
        let zlib = miniz_oxide::deflate::compress_to_vec_zlib(text, 6);
        let raw = miniz_oxide::deflate::compress_to_vec(text, 6);
        assert_eq!(decode("deflate", &zlib).unwrap(), text);
        assert_eq!(decode(" Deflate ", &raw).unwrap(), text);
        assert_eq!(decode("identity", text).unwrap(), text);
        assert_eq!(decode("identity, deflate", &zlib).unwrap(), text);
        let twice = miniz_oxide::deflate::compress_to_vec_zlib(&zlib, 6);
        assert_eq!(decode("deflate, deflate", &twice).unwrap(), text);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            decode("deflate", b"not deflate"),
            Err(CodingError::Corrupt("deflate"))
        );
        let bomb = miniz_oxide::deflate::compress_to_vec_zlib(&vec![0u8; MAX_DECODED_BYTES + 1], 9);
        assert_eq!(decode("deflate", &bomb), Err(CodingError::TooLarge));
        assert_eq!(
            decode("br", b"x"),
            Err(CodingError::Unsupported("br".into()))
        );
        assert_eq!(
            CodingError::TooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(CodingError::Unsupported("x".into()).status(), 415);
        assert_eq!(CodingError::Corrupt("deflate").status(), 400);
    }
}
