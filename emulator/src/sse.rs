//! Server-side encryption as B2 does it. SSE-B2: `X-Bz-Server-Side-Encryption: AES256` on
//! an upload, `serverSideEncryption: {"mode": "SSE-B2", "algorithm": "AES256"}` in
//! b2_start_large_file, or the bucket's `defaultServerSideEncryption`. SSE-C: the customer's
//! key (base64 of 32 bytes) and its MD5 on the upload, on every part and on every download;
//! only the MD5 is kept (in memory and in the journal), never the key, so a download with
//! another key, or none, is refused.
//!
//! The emulator stores content as it came: what is modelled is the contract (which
//! request must carry which key, what is refused, what is shown), not the cipher.

use std::collections::BTreeMap;

use base64::Engine;
use hyper::HeaderMap;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::error::{B2Error, B2Result};
use crate::http::header_str;

/// How a version (or an unfinished large file) is encrypted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode")]
pub enum Sse {
    #[serde(rename = "SSE-B2")]
    B2,
    /// The customer key's MD5, base64, as the client sent it: all B2 keeps of the key.
    #[serde(rename = "SSE-C")]
    C { key_md5: String },
}

const ALGORITHM: &str = "AES256";
const SSE_B2_HEADER: &str = "x-bz-server-side-encryption";
const SSE_C_PREFIX: &str = "x-bz-server-side-encryption-customer-";
const SSE_C_ALGORITHM: &str = "x-bz-server-side-encryption-customer-algorithm";
const SSE_C_KEY: &str = "x-bz-server-side-encryption-customer-key";
const SSE_C_KEY_MD5: &str = "x-bz-server-side-encryption-customer-key-md5";
/// With server-side encryption, B2 allows a file name plus file info of this many bytes
/// (instead of 7,000).
pub const MAX_NAME_AND_INFO_BYTES: usize = 2048;

/// The MD5 (base64) of a customer key given as base64, checked to be 32 bytes.
fn key_md5_of(key_b64: &str, what: &str) -> B2Result<String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(key_b64.trim())
        .map_err(|_| B2Error::bad_request(format!("{what} must be base64")))?;
    if key.len() != 32 {
        return Err(B2Error::bad_request(format!(
            "{what} must be a 256-bit key (32 bytes), not {} bytes",
            key.len()
        )));
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(Md5::digest(&key)))
}

/// The SSE-C key of a request, checked against the MD5 it came with.
fn customer_key(algorithm: Option<&str>, key: Option<&str>, md5: Option<&str>) -> B2Result<Sse> {
    let (Some(algorithm), Some(key), Some(md5)) = (algorithm, key, md5) else {
        return Err(B2Error::bad_request(
            "SSE-C needs the customer algorithm, the customer key and the key's MD5 together",
        ));
    };
    if algorithm.trim() != ALGORITHM {
        return Err(B2Error::bad_request(format!(
            "the SSE-C algorithm must be {ALGORITHM}"
        )));
    }
    let computed = key_md5_of(key, "the SSE-C customer key")?;
    if computed != md5.trim() {
        return Err(B2Error::bad_request(
            "the SSE-C customer key MD5 does not match the customer key",
        ));
    }
    Ok(Sse::C { key_md5: computed })
}

/// The encryption asked for by the headers of an upload, a part or a download.
pub fn from_headers(headers: &HeaderMap) -> B2Result<Option<Sse>> {
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with(SSE_C_PREFIX) && ![SSE_C_ALGORITHM, SSE_C_KEY, SSE_C_KEY_MD5].contains(&n)
        {
            return Err(B2Error::bad_request(format!(
                "unknown server-side encryption header {n}"
            )));
        }
    }
    let sse_b2 = header_str(headers, SSE_B2_HEADER);
    let c = [SSE_C_ALGORITHM, SSE_C_KEY, SSE_C_KEY_MD5].map(|h| header_str(headers, h));
    let asks_c = c.iter().any(Option::is_some);
    match (sse_b2, asks_c) {
        (Some(_), true) => Err(B2Error::bad_request(
            "X-Bz-Server-Side-Encryption (SSE-B2) and the SSE-C customer key headers exclude each other",
        )),
        (Some(v), false) if v.trim() == ALGORITHM => Ok(Some(Sse::B2)),
        (Some(v), false) => Err(B2Error::bad_request(format!(
            "X-Bz-Server-Side-Encryption must be {ALGORITHM}, not {:?}",
            v.chars().take(40).collect::<String>()
        ))),
        (None, true) => customer_key(c[0], c[1], c[2]).map(Some),
        (None, false) => Ok(None),
    }
}

/// `serverSideEncryption` of b2_start_large_file: absent, null or `{"mode": null}` ask for
/// nothing.
pub fn from_json(value: Option<&Value>, field: &str) -> B2Result<Option<Sse>> {
    let map = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(B2Error::bad_request(format!("{field} must be an object"))),
    };
    for key in map.keys() {
        if !["mode", "algorithm", "customerKey", "customerKeyMd5"].contains(&key.as_str()) {
            return Err(B2Error::bad_request(format!(
                "unknown field {key:?} in {field}"
            )));
        }
    }
    let text = |k: &str| map.get(k).and_then(Value::as_str);
    match map.get("mode") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(m)) if m == "none" => Ok(None),
        Some(Value::String(m)) if m == "SSE-B2" => {
            if text("algorithm") != Some(ALGORITHM) {
                return Err(B2Error::bad_request(format!(
                    "{field}: SSE-B2 needs \"algorithm\": \"{ALGORITHM}\""
                )));
            }
            if map.contains_key("customerKey") || map.contains_key("customerKeyMd5") {
                return Err(B2Error::bad_request(format!(
                    "{field}: SSE-B2 takes no customer key"
                )));
            }
            Ok(Some(Sse::B2))
        }
        Some(Value::String(m)) if m == "SSE-C" => customer_key(
            text("algorithm"),
            text("customerKey"),
            text("customerKeyMd5"),
        )
        .map(Some),
        Some(other) => Err(B2Error::bad_request(format!(
            "{field}: mode must be SSE-B2, SSE-C or null, not {other}"
        ))),
    }
}

/// `defaultServerSideEncryption` of b2_create_bucket / b2_update_bucket: `None` leaves the
/// setting alone, `Some(None)` clears it. Only SSE-B2 can be a bucket's default.
pub fn bucket_default(params: &Map<String, Value>) -> B2Result<Option<Option<Sse>>> {
    params
        .get("defaultServerSideEncryption")
        .map(bucket_default_value)
        .transpose()
}

/// One `defaultServerSideEncryption` value: SSE-B2 or none.
pub fn bucket_default_value(value: &Value) -> B2Result<Option<Sse>> {
    if value.get("mode").and_then(Value::as_str) == Some("SSE-C") {
        return Err(B2Error::bad_request(
            "SSE-C cannot be a bucket's default encryption: the key travels with each request",
        ));
    }
    from_json(Some(value), "defaultServerSideEncryption")
}

/// What a new version gets: what was asked for, or else the bucket's default.
pub fn applied(asked: Option<Sse>, bucket_default: Option<&Sse>) -> Option<Sse> {
    asked.or_else(|| bucket_default.cloned())
}

/// A part must ask for what its large file was started with: the same customer key for
/// SSE-C (with no key, or another one, it is refused), nothing or SSE-B2 otherwise.
pub fn check_part(file: Option<&Sse>, headers: &HeaderMap) -> B2Result<()> {
    match (file, from_headers(headers)?) {
        (Some(Sse::C { key_md5 }), Some(Sse::C { key_md5: asked })) if *key_md5 == asked => Ok(()),
        (Some(Sse::C { .. }), Some(Sse::C { .. })) => Err(B2Error::bad_request(
            "the SSE-C customer key of this part is not the one the large file was started with",
        )),
        (Some(Sse::C { .. }), _) => Err(B2Error::bad_request(
            "the large file was started with SSE-C: every part needs the same customer key headers",
        )),
        (_, Some(Sse::C { .. })) => Err(B2Error::bad_request(
            "the large file was not started with SSE-C: send no customer key with its parts",
        )),
        (Some(Sse::B2), Some(Sse::B2)) | (_, None) => Ok(()),
        (None, Some(Sse::B2)) => Err(B2Error::bad_request(
            "the large file was started without server-side encryption: a part cannot ask for SSE-B2",
        )),
    }
}

/// A download of an SSE-C file needs its customer key: without it, or with another, B2
/// answers 403 `access_denied`. A customer key sent for a file that has none is refused.
pub fn check_read(stored: Option<&Sse>, headers: &HeaderMap) -> B2Result<()> {
    let asked = from_headers(headers)?;
    match (stored, asked) {
        (Some(Sse::C { key_md5 }), Some(Sse::C { key_md5: asked })) if *key_md5 == asked => Ok(()),
        (Some(Sse::C { .. }), Some(Sse::C { .. })) => Err(B2Error::new(
            403,
            "access_denied",
            "the SSE-C customer key does not match the key this file was encrypted with",
        )),
        (Some(Sse::C { .. }), _) => Err(B2Error::new(
            403,
            "access_denied",
            "this file is encrypted with SSE-C: send its customer key to download it",
        )),
        (_, Some(Sse::C { .. })) => Err(B2Error::bad_request(
            "this file is not encrypted with SSE-C: send no customer key",
        )),
        _ => Ok(()),
    }
}

/// The headers a download of `stored` answers with.
pub fn response_headers(stored: Option<&Sse>) -> Vec<(&'static str, String)> {
    match stored {
        None => Vec::new(),
        Some(Sse::B2) => vec![("x-bz-server-side-encryption", ALGORITHM.to_owned())],
        Some(Sse::C { key_md5 }) => vec![
            (SSE_C_ALGORITHM, ALGORITHM.to_owned()),
            (SSE_C_KEY_MD5, key_md5.clone()),
        ],
    }
}

/// `serverSideEncryption` of a file version: mode and algorithm, never a key.
#[derive(Serialize, Clone, Copy)]
pub struct SseJson {
    algorithm: Option<&'static str>,
    mode: Option<&'static str>,
}

pub fn file_json(stored: Option<&Sse>) -> SseJson {
    let (algorithm, mode) = match stored {
        None => (None, None),
        Some(Sse::B2) => (Some(ALGORITHM), Some("SSE-B2")),
        Some(Sse::C { .. }) => (Some(ALGORITHM), Some("SSE-C")),
    };
    SseJson { algorithm, mode }
}

/// `defaultServerSideEncryption` of a bucket, as a key with or without
/// `readBucketEncryption` sees it.
pub fn bucket_json(default: Option<&Sse>, may_read: bool) -> Value {
    if !may_read {
        return json!({"isClientAuthorizedToRead": false, "value": null});
    }
    json!({"isClientAuthorizedToRead": true, "value": file_json(default)})
}

/// B2's lower limit on file name plus file info for an encrypted file.
/// B2's lower limit on file name plus file info, 2,048 bytes instead of 7,000, with
/// server-side encryption or on a bucket with Object Lock enabled.
pub fn check_info_size(
    name: &str,
    info: &BTreeMap<String, String>,
    sse: Option<&Sse>,
    object_lock_bucket: bool,
) -> B2Result<()> {
    if sse.is_none() && !object_lock_bucket {
        return Ok(());
    }
    let total = name.len() + info.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    if total > MAX_NAME_AND_INFO_BYTES {
        let why = if sse.is_some() {
            "with server-side encryption"
        } else {
            "in a bucket with Object Lock enabled"
        };
        return Err(B2Error::bad_request(format!(
            "file name and file info take {total} bytes; {why} the limit is {MAX_NAME_AND_INFO_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::{HeaderName, HeaderValue};

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const KEY_MD5: &str = "hRasmdxgYDKV3nvbahU1MA==";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn sse_c(key: &str, md5: &str) -> HeaderMap {
        headers(&[
            ("X-Bz-Server-Side-Encryption-Customer-Algorithm", "AES256"),
            ("X-Bz-Server-Side-Encryption-Customer-Key", key),
            ("X-Bz-Server-Side-Encryption-Customer-Key-Md5", md5),
        ])
    }

    #[test]
    fn the_customer_key_is_checked_and_only_its_md5_kept() {
        let md5 = key_md5_of(KEY, "k").unwrap();
        assert_eq!(md5, KEY_MD5);
        let got = from_headers(&sse_c(KEY, &md5)).unwrap();
        assert_eq!(got, Some(Sse::C { key_md5: md5 }));
        assert!(!serde_json::to_string(&got).unwrap().contains(KEY));
        assert_eq!(from_headers(&sse_c(KEY, "AAAA")).unwrap_err().status, 400);
        // 31 bytes is not a 256-bit key.
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        assert_eq!(from_headers(&sse_c(&short, "x")).unwrap_err().status, 400);
        let partial = headers(&[("X-Bz-Server-Side-Encryption-Customer-Key", KEY)]);
        assert_eq!(from_headers(&partial).unwrap_err().status, 400);
    }

    #[test]
    fn sse_b2_is_aes256_and_excludes_sse_c() {
        let b2 = headers(&[("X-Bz-Server-Side-Encryption", "AES256")]);
        assert_eq!(from_headers(&b2).unwrap(), Some(Sse::B2));
        let none = headers(&[("X-Bz-Server-Side-Encryption", "NONE")]);
        assert!(from_headers(&none).is_err());
        let mut both = sse_c(KEY, KEY_MD5);
        both.insert("x-bz-server-side-encryption", "AES256".parse().unwrap());
        assert!(from_headers(&both).is_err());
        assert_eq!(from_headers(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn reads_and_parts_need_the_key_the_file_was_written_with() {
        let stored = Sse::C {
            key_md5: KEY_MD5.into(),
        };
        assert!(check_read(Some(&stored), &sse_c(KEY, KEY_MD5)).is_ok());
        let e = check_read(Some(&stored), &HeaderMap::new()).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (403, "access_denied"));
        let other = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let other_md5 = key_md5_of(&other, "k").unwrap();
        let e = check_read(Some(&stored), &sse_c(&other, &other_md5)).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (403, "access_denied"));
        assert!(check_read(None, &sse_c(KEY, KEY_MD5)).is_err());
        assert!(check_read(Some(&Sse::B2), &HeaderMap::new()).is_ok());

        assert!(check_part(Some(&stored), &sse_c(KEY, KEY_MD5)).is_ok());
        assert!(check_part(Some(&stored), &HeaderMap::new()).is_err());
        assert!(check_part(Some(&stored), &sse_c(&other, &other_md5)).is_err());
        assert!(check_part(None, &sse_c(KEY, KEY_MD5)).is_err());
        assert!(check_part(Some(&Sse::B2), &HeaderMap::new()).is_ok());
    }

    #[test]
    fn json_settings() {
        let b2 = json!({"mode": "SSE-B2", "algorithm": "AES256"});
        assert_eq!(from_json(Some(&b2), "f").unwrap(), Some(Sse::B2));
        assert_eq!(from_json(Some(&json!({"mode": null})), "f").unwrap(), None);
        let c = json!({"mode": "SSE-C", "algorithm": "AES256", "customerKey": KEY, "customerKeyMd5": KEY_MD5});
        assert!(matches!(
            from_json(Some(&c), "f").unwrap(),
            Some(Sse::C { .. })
        ));
        assert!(from_json(Some(&json!({"mode": "SSE-B2"})), "f").is_err());
        let mut params = Map::new();
        params.insert("defaultServerSideEncryption".into(), c);
        assert!(bucket_default(&params).is_err());
        params.insert("defaultServerSideEncryption".into(), json!({"mode": null}));
        assert_eq!(bucket_default(&params).unwrap(), Some(None));
        let shown = file_json(Some(&Sse::C {
            key_md5: KEY_MD5.into(),
        }));
        assert_eq!(
            serde_json::to_value(shown).unwrap(),
            json!({"algorithm": "AES256", "mode": "SSE-C"})
        );
    }
}
