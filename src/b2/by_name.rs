//! A single-file restore's first request, `b2_download_file_by_name`: its answer's headers
//! say what a listing would (file id, length, SHA1, file info, encryption), so a restore
//! makes no class C call. Its body is the download's first range; every other range goes
//! by the id it gave, so all come from the same version. Headers are read the lenient way
//! (`lenient.rs`): a missing or odd one is absent, never a failure.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use reqwest::header::HeaderMap;

use super::api::{Action, FileEncryption, FileVersion};
use super::client::B2Client;
use super::http::{network_failure, read_failure, timed_out};
use super::retry::Failed;
use super::wire::encode_name;
use crate::error::Result;

pub const CALL: &str = "b2_download_file_by_name";

/// What the by-name request found.
pub enum Opened {
    /// The newest version as the headers describe it, the answer (its body is the bytes
    /// `[0, first_len)`), and `first_len`.
    Found(Box<FileVersion>, reqwest::Response, u64),
    /// B2's 404: nothing stored under exactly that name, or its newest version is a hide
    /// marker. The name may still be a directory.
    Missing,
    /// B2 would not read it (400 or 403): its SSE-C key is missing or another one, or
    /// another refusal. The error as the failure table tells it, and whether a customer
    /// key was sent.
    Refused(crate::error::Error, bool),
    /// An answer without a file id or a length: the caller lists the name instead.
    Unreadable,
}

/// Internal: a 416 (the file is empty, so the Range asked for is past its end).
enum Answer {
    Opened(Opened),
    Unsatisfiable,
}

/// Sends the by-name request for `name` in `bucket_name`, asking for its first `first_len`
/// bytes, with the destination's SSE-C key if it has one. Retries like any download.
pub async fn open(
    client: &B2Client,
    bucket_name: &str,
    name: &str,
    first_len: u64,
) -> Result<Opened> {
    // An empty file answers a Range with 416: asked again without one.
    for ranged in [true, false] {
        let answer = client
            .with_retries(CALL, &client.calls.clone(), |auth| {
                let url = format!(
                    "{}/file/{}/{}",
                    auth.download_url,
                    encode_name(bucket_name),
                    encode_name(name)
                );
                let mut req = client.decorate(client.http().get(url), &auth.token);
                if ranged && first_len > 0 {
                    req = req.header("Range", format!("bytes=0-{}", first_len - 1));
                }
                // The file's mode is not known yet: with an SSE-C destination the key goes
                // (a file stored otherwise is then refused, and found by the listing).
                let key_headers = client.encryption.by_name_headers();
                let key_sent = !key_headers.is_empty();
                for (k, v) in key_headers {
                    req = req.header(k, v);
                }
                async move {
                    let timeout = client.session.timeout;
                    let sent = tokio::time::timeout(timeout, req.send()).await;
                    if !matches!(&sent, Ok(Err(e)) if e.is_connect()) {
                        client.op.count_call(CALL);
                    }
                    let Ok(sent) = sent else {
                        return Err(timed_out(CALL, timeout));
                    };
                    let resp = sent.map_err(|e| network_failure(CALL, &e))?;
                    let status = resp.status().as_u16();
                    if resp.status().is_success() {
                        return Ok(Answer::Opened(found(name, resp)));
                    }
                    if status == 416 {
                        return Ok(Answer::Unsatisfiable);
                    }
                    let failure = read_failure(CALL, resp).await.with_customer_key(key_sent);
                    match status {
                        404 => Ok(Answer::Opened(Opened::Missing)),
                        400 | 403 if !failure.code.ends_with("_cap_exceeded") => {
                            let error = Failed::from(failure).error;
                            Ok(Answer::Opened(Opened::Refused(error, key_sent)))
                        }
                        _ => Err(failure.into()),
                    }
                }
            })
            .await?;
        match answer {
            Answer::Opened(opened) => return Ok(opened),
            Answer::Unsatisfiable if ranged => continue,
            Answer::Unsatisfiable => break,
        }
    }
    Ok(Opened::Unreadable)
}

/// The version a success answer describes, or `Unreadable` without an id or a length.
fn found(name: &str, resp: reqwest::Response) -> Opened {
    let headers = resp.headers();
    let partial = resp.status().as_u16() == 206;
    let (total, first_len) = if partial {
        match content_range(headers) {
            Some((0, last, total)) if last < total => (Some(total), last + 1),
            _ => return Opened::Unreadable,
        }
    } else {
        let len = header(headers, "content-length").and_then(|v| v.parse().ok());
        match len {
            Some(len) => (Some(len), len),
            None => return Opened::Unreadable,
        }
    };
    let version = version_from_headers(name, headers, total);
    if version.file_id.is_none() {
        return Opened::Unreadable;
    }
    Opened::Found(Box::new(version), resp, first_len)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// `bytes FIRST-LAST/TOTAL` as numbers; None for anything else (`*` included).
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let spec = header(headers, "content-range")?
        .strip_prefix("bytes")?
        .trim();
    let (range, total) = spec.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

/// What a listing entry of `name` would say, from a download's headers; `total` is the
/// file's whole length. Absent headers leave their fields absent.
pub fn version_from_headers(name: &str, headers: &HeaderMap, total: Option<u64>) -> FileVersion {
    let mut file_info = BTreeMap::new();
    for (k, v) in headers {
        let Some(info) = k.as_str().strip_prefix("x-bz-info-") else {
            continue;
        };
        let Ok(raw) = v.to_str() else { continue };
        let value = percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .unwrap_or_else(|_| raw.to_string());
        file_info.insert(info.to_string(), value);
    }
    let sse = if let Some(alg) = header(headers, "x-bz-server-side-encryption-customer-algorithm") {
        Some(FileEncryption {
            mode: Some("SSE-C".into()),
            algorithm: Some(alg.into()),
        })
    } else {
        header(headers, "x-bz-server-side-encryption").map(|alg| FileEncryption {
            mode: Some("SSE-B2".into()),
            algorithm: Some(alg.into()),
        })
    };
    let mut version = FileVersion::new("", name, Action::Upload, 0);
    version.file_id = header(headers, "x-bz-file-id").map(str::to_string);
    version.content_length = total;
    version.content_sha1 = header(headers, "x-bz-content-sha1").map(str::to_string);
    version.file_info = file_info;
    version.upload_timestamp =
        header(headers, "x-bz-upload-timestamp").and_then(|v| v.parse().ok());
    version.server_side_encryption = sse;
    version
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

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

    #[test]
    fn a_large_file_is_checked_against_its_large_file_sha1() {
        let sha1 = "A9993E364706816ABA3E25717850C26C9CD0D89D";
        let h = headers(&[
            ("x-bz-file-id", "4_z1"),
            ("x-bz-content-sha1", "none"),
            ("X-Bz-Info-large_file_sha1", sha1),
            ("x-bz-info-note", "a%20b%2Fc"),
            ("x-bz-upload-timestamp", "1700000000000"),
            ("x-bz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-bz-server-side-encryption-customer-key-md5", "abc=="),
        ]);
        let v = version_from_headers("d/f", &h, Some(12));
        assert_eq!(v.id(), "4_z1");
        assert_eq!(v.length(), Some(12));
        assert_eq!(v.whole_sha1().as_deref(), Some(&*sha1.to_ascii_lowercase()));
        assert_eq!(v.file_info["note"], "a b/c");
        assert_eq!(v.uploaded_ms(), 1_700_000_000_000);
        assert_eq!(v.encryption_mode(), Some("SSE-C"));
        assert!(v.is_stored());
    }

    #[test]
    fn missing_or_odd_headers_are_absent_never_a_failure() {
        let v = version_from_headers(
            "f",
            &headers(&[
                ("x-bz-upload-timestamp", "soon"),
                (
                    "x-bz-content-sha1",
                    "unverified:a9993e364706816aba3e25717850c26c9cd0d89d",
                ),
                ("x-bz-server-side-encryption", "AES256"),
            ]),
            None,
        );
        assert_eq!(v.file_id, None);
        assert_eq!(v.length(), None);
        assert_eq!(v.upload_timestamp, None);
        assert_eq!(v.encryption_mode(), Some("SSE-B2"));
        assert_eq!(
            v.whole_sha1().as_deref(),
            Some("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert!(version_from_headers("f", &HeaderMap::new(), Some(1))
            .whole_sha1()
            .is_none());
    }

    #[test]
    fn content_ranges() {
        let r = |v| content_range(&headers(&[("content-range", v)]));
        assert_eq!(r("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(r("bytes 0-9/*"), None);
        assert_eq!(r("bytes */100"), None);
        assert_eq!(r("items 0-9/100"), None);
    }
}
