//! b2_upload_file and b2_upload_part: content is streamed to a temp file and hashed in
//! the same pass, then verified and only then moved into the store.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{header, HeaderMap, Request, Response};
use serde_json::json;
use sha1::{Digest, Sha1};

use crate::auth::{Auth, UploadTarget};
use crate::content_file::ContentWriter;
use crate::error::{B2Error, B2Result};
use crate::faults::TestMode;
use crate::http::{header_str, ok_json, percent_decode_strict, Body, BODY_IDLE_TIMEOUT};
use crate::names;
use crate::sse::{self, Sse};
use crate::state::Shared;
use crate::store::{self, hex, MAX_PART_NUMBER, MAX_UPLOAD_BYTES};

/// Body chunks in flight between the socket reader and the hasher / disk writer (each
/// chunk is at most hyper's read buffer, 1 MiB), so memory per upload stays bounded.
const CHUNKS_IN_FLIGHT: usize = 16;

/// How the client asked for the content to be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sha1Check {
    /// 40 hex digits in the header.
    Given(String),
    /// The last 40 bytes of the body are the hex SHA1 of the rest.
    AtEnd,
    DoNotVerify,
}

/// A temp file deleted on drop unless adopted into the store.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn path(&self) -> &std::path::Path {
        self.path.as_deref().expect("temp file still owned")
    }

    fn adopt(mut self, shared: &Shared) -> io::Result<String> {
        let path = self.path.take().expect("temp file still owned");
        let result = shared.store.adopt_blob(&path);
        if result.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        result
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

struct Received {
    temp: TempFile,
    /// Content bytes (excluding a trailing hex SHA1).
    size: u64,
    sha1: String,
    /// The 40 bytes after the content with `hex_digits_at_end`.
    trailer: Vec<u8>,
}

/// Reads and discards the rest of a body, so the client gets to read the answer.
/// `counted`: the bytes are upload content (they count in `bytes_received`).
pub async fn drain(shared: &Shared, mut body: Incoming, counted: bool) {
    read_up_to(shared, &mut body, u64::MAX, counted).await;
}

/// Reads and discards up to `limit` body bytes (or to the end), then stops.
pub async fn read_up_to(shared: &Shared, body: &mut Incoming, limit: u64, counted: bool) {
    let mut seen = 0u64;
    while seen < limit {
        match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    seen += data.len() as u64;
                    if counted {
                        shared.faults.add_received(data.len() as u64);
                    }
                }
            }
            _ => return,
        }
    }
}

/// Streams `body` (exactly `content_length` bytes) to a temp file, hashing the content.
async fn receive(
    shared: &Shared,
    mut body: Incoming,
    content_length: u64,
    check: &Sha1Check,
    mut damage: bool,
) -> B2Result<Received> {
    let content_len = match check {
        Sha1Check::AtEnd => content_length - 40,
        _ => content_length,
    };
    let temp = TempFile {
        path: Some(shared.store.temp_path()),
    };
    let path = temp.path().to_owned();
    // Hashing and disk writes run on two blocking threads while this task keeps reading
    // the socket: the three stages overlap instead of taking turns.
    let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let (write_tx, mut write_rx) = tokio::sync::mpsc::channel::<Bytes>(CHUNKS_IN_FLIGHT);
    let hasher = tokio::task::spawn_blocking(move || -> (String, Vec<u8>) {
        let mut hasher = Sha1::new();
        let mut seen = 0u64;
        let mut trailer = Vec::new();
        while let Some(chunk) = hash_rx.blocking_recv() {
            let (content, rest) = split_content(&chunk, &mut seen, content_len);
            hasher.update(content);
            trailer.extend_from_slice(rest);
        }
        (hex(&hasher.finalize()), trailer)
    });
    let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
        let mut file = ContentWriter::create(&path, content_len)?;
        let mut seen = 0u64;
        while let Some(chunk) = write_rx.blocking_recv() {
            let (content, _) = split_content(&chunk, &mut seen, content_len);
            file.write(content)?;
        }
        file.finish()
    });

    let mut received = 0u64;
    let mut failure = None;
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => {
                failure = Some(B2Error::new(408, "request_timeout", "upload body stalled"));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                failure = Some(B2Error::bad_request(format!(
                    "upload body ended after {received} of {content_length} bytes: {e}"
                )));
                break;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(mut data) = frame.into_data() {
            if damage && received < content_len && !data.is_empty() {
                let mut flipped = data.to_vec();
                flipped[0] ^= 0xff;
                data = Bytes::from(flipped);
                damage = false;
            }
            received += data.len() as u64;
            shared.faults.add_received(data.len() as u64);
            if received > content_length {
                failure = Some(B2Error::bad_request("body longer than Content-Length"));
                break;
            }
            let hashed = hash_tx.send(data.clone()).await;
            if hashed.is_err() || write_tx.send(data).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
    }
    drop(hash_tx);
    drop(write_tx);
    let written = writer
        .await
        .map_err(|e| B2Error::internal(format!("upload writer: {e}")))?;
    let (sha1, trailer) = hasher
        .await
        .map_err(|e| B2Error::internal(format!("upload hasher: {e}")))?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    let size = written?;
    if received != content_length {
        return Err(B2Error::bad_request(format!(
            "body has {received} bytes but Content-Length says {content_length}"
        )));
    }
    Ok(Received {
        temp,
        size,
        sha1,
        trailer,
    })
}

/// Splits a chunk into content and trailing-SHA1 bytes, given `seen` content bytes so far.
fn split_content<'a>(chunk: &'a [u8], seen: &mut u64, content_len: u64) -> (&'a [u8], &'a [u8]) {
    let take = (content_len - *seen).min(chunk.len() as u64) as usize;
    *seen += take as u64;
    chunk.split_at(take)
}

fn verify(received: &Received, check: &Sha1Check) -> B2Result<()> {
    let expected = match check {
        Sha1Check::Given(s) => s.clone(),
        Sha1Check::AtEnd => {
            let trailer = std::str::from_utf8(&received.trailer).unwrap_or("");
            if !names::is_sha1_hex(trailer) {
                return Err(B2Error::bad_request(
                    "with hex_digits_at_end the last 40 bytes of the body must be the hex SHA1",
                ));
            }
            trailer.to_ascii_lowercase()
        }
        Sha1Check::DoNotVerify => return Ok(()),
    };
    if expected != received.sha1 {
        return Err(B2Error::bad_request(format!(
            "Sha1 did not match data received: expected {expected}, computed {}",
            received.sha1
        )));
    }
    Ok(())
}

/// Content-Length is required, exact, and chunked bodies are refused (as B2 does).
fn content_length(headers: &HeaderMap) -> B2Result<u64> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(B2Error::new(
            411,
            "length_required",
            "chunked transfer encoding is not supported: send Content-Length",
        ));
    }
    let value = header_str(headers, "content-length")
        .ok_or_else(|| B2Error::new(411, "length_required", "Content-Length is required"))?;
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| B2Error::bad_request("bad Content-Length"))
}

fn sha1_check(headers: &HeaderMap) -> B2Result<Sha1Check> {
    let value = header_str(headers, "x-bz-content-sha1")
        .ok_or_else(|| B2Error::bad_request("X-Bz-Content-Sha1 is required"))?
        .trim();
    match value {
        "hex_digits_at_end" => Ok(Sha1Check::AtEnd),
        "do_not_verify" => Ok(Sha1Check::DoNotVerify),
        v if names::is_sha1_hex(v) => Ok(Sha1Check::Given(v.to_ascii_lowercase())),
        v => Err(B2Error::bad_request(format!(
            "X-Bz-Content-Sha1 must be 40 hex digits, hex_digits_at_end or do_not_verify, not {v:?}"
        ))),
    }
}

/// Content size after removing a trailing hex SHA1, checked against B2's limits.
fn content_size(length: u64, check: &Sha1Check) -> B2Result<u64> {
    let size = if *check == Sha1Check::AtEnd {
        length.checked_sub(40).ok_or_else(|| {
            B2Error::bad_request("with hex_digits_at_end the body must be at least 40 bytes")
        })?
    } else {
        length
    };
    if size > MAX_UPLOAD_BYTES {
        return Err(B2Error::bad_request(format!(
            "{size} bytes is more than the 5 GB limit of one upload"
        )));
    }
    Ok(size)
}

fn test_mode_failure(shared: &Shared, headers: &HeaderMap) -> Option<B2Error> {
    match header_str(headers, "x-bz-test-mode").and_then(TestMode::parse)? {
        TestMode::FailSomeUploads if shared.faults.test_mode_fires(TestMode::FailSomeUploads) => {
            Some(B2Error::new(
                503,
                "service_unavailable",
                "X-Bz-Test-Mode: fail_some_uploads",
            ))
        }
        TestMode::ForceCapExceeded => Some(B2Error::new(
            403,
            "storage_cap_exceeded",
            "X-Bz-Test-Mode: force_cap_exceeded",
        )),
        _ => None,
    }
}

/// Headers B2 says must not be sent to b2_upload_file (the `b2-` file info names set
/// the response headers of downloads instead).
const FORBIDDEN_UPLOAD_HEADERS: &[&str] = &[
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Location",
    "Content-Range",
    "Expires",
];

fn refuse_forbidden_headers(headers: &HeaderMap) -> B2Result<()> {
    match FORBIDDEN_UPLOAD_HEADERS
        .iter()
        .find(|h| headers.contains_key(**h))
    {
        Some(h) => Err(B2Error::bad_request(format!(
            "the {h} header must not be sent to b2_upload_file (use X-Bz-Info-b2-{} where B2 has one)",
            h.to_ascii_lowercase()
        ))),
        None => Ok(()),
    }
}

/// File name and X-Bz-Info-* headers, percent-decoded and checked.
fn name_and_info(headers: &HeaderMap) -> B2Result<(String, BTreeMap<String, String>)> {
    let raw_name = headers
        .get("x-bz-file-name")
        .ok_or_else(|| B2Error::bad_request("X-Bz-File-Name is required"))?;
    let raw_name = raw_name
        .to_str()
        .map_err(|_| B2Error::bad_request("X-Bz-File-Name must be percent-encoded UTF-8"))?;
    let name = percent_decode_strict(raw_name, "X-Bz-File-Name")?;
    names::validate_file_name(&name)?;
    let mut info = BTreeMap::new();
    for (key, value) in headers {
        let Some(info_name) = key.as_str().strip_prefix("x-bz-info-") else {
            continue;
        };
        let value = value
            .to_str()
            .map_err(|_| B2Error::bad_request(format!("{key} must be percent-encoded UTF-8")))?;
        info.insert(
            info_name.to_owned(),
            percent_decode_strict(value, key.as_str())?,
        );
    }
    names::validate_info(&name, &info)?;
    Ok((name, info))
}

/// Path: `/b2api/vN/b2_upload_file/{bucketId}/{urlId}`.
pub async fn upload_file(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    bucket_id: &str,
    url_id: &str,
    damage: bool,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let checked = check_upload_file(&shared, &parts.headers, bucket_id, url_id);
    let (guard, name, info, content_type, length, check, sse, (lock, readers)) = match checked {
        Ok(ok) => ok,
        Err(e) => return refuse(&shared, e, body).await,
    };
    let received = match receive(&shared, body, length, &check, damage).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    drop(guard);
    if let Err(e) = verify(&received, &check) {
        return e.into_response();
    }
    let sha1 = match check {
        Sha1Check::DoNotVerify => None,
        _ => Some(received.sha1.clone()),
    };
    let size = received.size;
    let blob = match received.temp.adopt(&shared) {
        Ok(b) => b,
        Err(e) => return B2Error::from(e).into_response(),
    };
    match shared.store.add_upload(
        bucket_id,
        &name,
        &content_type,
        info,
        sha1,
        size,
        blob,
        sse,
        lock,
    ) {
        Ok(version) => ok_json(version.to_json(shared.auth.account_id(), readers)),
        Err(e) => e.into_response(),
    }
}

type UploadFileChecks = (
    crate::auth::BusyGuard,
    String,
    BTreeMap<String, String>,
    String,
    u64,
    Sha1Check,
    Option<Sse>,
    (store::VersionLock, store::LockReaders),
);

fn check_upload_file(
    shared: &Shared,
    headers: &HeaderMap,
    bucket_id: &str,
    url_id: &str,
) -> B2Result<UploadFileChecks> {
    let target = UploadTarget::Bucket(bucket_id.to_owned());
    let grant = shared
        .auth
        .upload_grant(header_str(headers, "authorization"), &target, url_id)?;
    let bucket = shared
        .store
        .bucket(bucket_id)
        .ok_or_else(|| B2Error::bad_bucket_id(bucket_id))?;
    let guard = Auth::claim(&grant)?;
    if let Some(e) = test_mode_failure(shared, headers) {
        return Err(e);
    }
    let length = content_length(headers)?;
    let check = sha1_check(headers)?;
    content_size(length, &check)?;
    let (name, info) = name_and_info(headers)?;
    refuse_forbidden_headers(headers)?;
    let sse = sse::applied(sse::from_headers(headers)?, bucket.default_sse.as_ref());
    sse::check_info_size(&name, &info, sse.as_ref(), bucket.lock.enabled)?;
    grant.key.require("writeFiles")?;
    grant.key.require_bucket(&bucket.name)?;
    grant.key.require_name(&name)?;
    let lock = crate::api::retention::lock_from_headers(headers, &bucket, &grant.key)?;
    let readers = crate::api::retention::readers(&grant.key);
    let content_type = header_str(headers, "content-type")
        .ok_or_else(|| B2Error::bad_request("Content-Type is required"))?
        .trim()
        .to_owned();
    names::validate_content_type(&content_type)?;
    let content_type = names::resolve_content_type(&content_type, &name);
    Ok((
        guard,
        name,
        info,
        content_type,
        length,
        check,
        sse,
        (lock, readers),
    ))
}

/// Path: `/b2api/vN/b2_upload_part/{fileId}/{urlId}`.
pub async fn upload_part(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    file_id: &str,
    url_id: &str,
    damage: bool,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let (guard, seq, number, length, check, file_sse) =
        match check_upload_part(&shared, &parts.headers, file_id, url_id) {
            Ok(ok) => ok,
            Err(e) => return refuse(&shared, e, body).await,
        };
    let received = match receive(&shared, body, length, &check, damage).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    drop(guard);
    if let Err(e) = verify(&received, &check) {
        return e.into_response();
    }
    let size = received.size;
    let sha1 = received.sha1.clone();
    let blob = match received.temp.adopt(&shared) {
        Ok(b) => b,
        Err(e) => return B2Error::from(e).into_response(),
    };
    match shared.store.add_part(seq, number, blob, size, sha1) {
        Ok(part) => ok_json(json!({
            "fileId": file_id,
            "partNumber": part.number,
            "contentLength": part.size,
            "contentSha1": part.sha1,
            "serverSideEncryption": sse::file_json(file_sse.as_ref()),
            "uploadTimestamp": part.ts,
        })),
        Err(e) => e.into_response(),
    }
}

fn check_upload_part(
    shared: &Shared,
    headers: &HeaderMap,
    file_id: &str,
    url_id: &str,
) -> B2Result<(
    crate::auth::BusyGuard,
    u64,
    u32,
    u64,
    Sha1Check,
    Option<Sse>,
)> {
    let seq = store::parse_file_id(file_id)
        .ok_or_else(|| B2Error::bad_auth_token("no upload URL for this fileId"))?;
    let grant = shared.auth.upload_grant(
        header_str(headers, "authorization"),
        &UploadTarget::LargeFile(seq),
        url_id,
    )?;
    let file = shared.store.unfinished(file_id)?;
    let guard = Auth::claim(&grant)?;
    if let Some(e) = test_mode_failure(shared, headers) {
        return Err(e);
    }
    let number: u32 = header_str(headers, "x-bz-part-number")
        .ok_or_else(|| B2Error::bad_request("X-Bz-Part-Number is required"))?
        .trim()
        .parse()
        .map_err(|_| B2Error::bad_request("X-Bz-Part-Number must be a number"))?;
    if !(1..=MAX_PART_NUMBER).contains(&number) {
        return Err(B2Error::bad_request(format!(
            "part number {number} is outside 1..={MAX_PART_NUMBER}"
        )));
    }
    let length = content_length(headers)?;
    let check = sha1_check(headers)?;
    if content_size(length, &check)? == 0 {
        return Err(B2Error::bad_request("a part must have at least 1 byte"));
    }
    sse::check_part(file.sse.as_ref(), headers)?;
    grant.key.require("writeFiles")?;
    if let Some(bucket) = shared.store.bucket(&file.bucket_id) {
        grant.key.require_bucket(&bucket.name)?;
    }
    grant.key.require_name(&file.name)?;
    Ok((guard, seq, number, length, check, file.sse))
}

/// Answers an upload refused before its body was read: the body is drained first so the
/// client sees the answer instead of a broken pipe, unless it is too big to bother.
async fn refuse(shared: &Shared, error: B2Error, body: Incoming) -> Response<Body> {
    let declared = body_size_hint(&body);
    if declared <= MAX_UPLOAD_BYTES + 40 {
        drain(shared, body, true).await;
        error.into_response()
    } else {
        let mut resp = error.into_response();
        resp.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        resp
    }
}

fn body_size_hint(body: &Incoming) -> u64 {
    use hyper::body::Body as _;
    body.size_hint().exact().unwrap_or(0)
}
