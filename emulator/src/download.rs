//! Downloads by name and by id: headers, Range, and bodies streamed from disk.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{header, HeaderMap, Method, Response, StatusCode};

use crate::api::{self, FileIdReq};
use crate::auth::Key;
use crate::error::{B2Error, B2Result};
use crate::faults::TestMode;
use crate::http::{empty, header_str, percent_encode, Body};
use crate::http::{parse_query, percent_decode_strict};
use crate::sse;
use crate::state::Shared;
use crate::store::Action;
use crate::store::{BucketMeta, Version};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::Value;

/// Size of each read from disk and each body chunk sent.
const READ_CHUNK: usize = 1 << 20;
/// Chunks read ahead of the socket.
const CHUNKS_AHEAD: usize = 4;

/// The inclusive byte range to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub(crate) first: u64,
    pub(crate) last: u64,
}

/// Parses a single `bytes=` range against `size`: `Ok(None)` means the whole file.
pub(crate) fn parse_range(value: Option<&str>, size: u64) -> B2Result<Option<ByteRange>> {
    let Some(value) = value else { return Ok(None) };
    let bad = || {
        B2Error::bad_request(format!(
            "unsupported Range header {value:?}: one bytes= range"
        ))
    };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(bad());
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let unsatisfiable = || {
        B2Error::new(
            416,
            "range_not_satisfiable",
            format!("range {value} is not satisfiable for {size} bytes"),
        )
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
    let range = if a.is_empty() {
        let n = num(b)?;
        if n == 0 || size == 0 {
            return Err(unsatisfiable());
        }
        ByteRange {
            first: size.saturating_sub(n),
            last: size - 1,
        }
    } else {
        let first = num(a)?;
        let last = if b.is_empty() { u64::MAX } else { num(b)? };
        if last < first {
            return Err(bad());
        }
        if first >= size {
            return Err(unsatisfiable());
        }
        ByteRange {
            first,
            last: last.min(size - 1),
        }
    };
    Ok(Some(range))
}

/// Checks the caller may read `version` in `bucket`: anyone for allPublic buckets,
/// otherwise an account token with readFiles inside the key's bucket and prefix.
pub fn authorize_download(
    shared: &Shared,
    headers: &HeaderMap,
    query_token: Option<&str>,
    bucket: &BucketMeta,
    file_name: &str,
) -> B2Result<()> {
    if bucket.kind == "allPublic" {
        return Ok(());
    }
    let key: Arc<Key> = shared
        .auth
        .session(header_str(headers, "authorization").or(query_token))?;
    key.require("readFiles")?;
    key.require_bucket(&bucket.name)?;
    key.require_name(file_name)?;
    Ok(())
}

pub fn cap_exceeded(headers: &HeaderMap) -> Option<B2Error> {
    match header_str(headers, "x-bz-test-mode").and_then(TestMode::parse) {
        Some(TestMode::ForceCapExceeded) => Some(B2Error::new(
            403,
            "download_cap_exceeded",
            "X-Bz-Test-Mode: force_cap_exceeded",
        )),
        _ => None,
    }
}

/// Builds the download answer for `version` (an upload), streaming its content.
pub fn respond(
    shared: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    version: &Version,
    corrupt: bool,
) -> B2Result<Response<Body>> {
    sse::check_read(version.sse.as_ref(), headers)?;
    let range = match parse_range(header_str(headers, "range"), version.size) {
        // RFC 9110: a 416 tells the client the current size.
        Err(e) if e.status == 416 => {
            let mut resp = e.into_response();
            let value = header::HeaderValue::from_str(&format!("bytes */{}", version.size))
                .map_err(|e| B2Error::internal(e.to_string()))?;
            resp.headers_mut().insert(header::CONTENT_RANGE, value);
            return Ok(resp);
        }
        other => other?,
    };
    let (status, first, len) = match range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.first, r.last - r.first + 1),
        None => (StatusCode::OK, 0, version.size),
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_TYPE, &version.content_type)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("x-bz-file-name", percent_encode(&version.name))
        .header("x-bz-file-id", version.file_id())
        .header("x-bz-content-sha1", version.sha1_or_none())
        .header("x-bz-upload-timestamp", version.ts);
    for (name, value) in sse::response_headers(version.sse.as_ref()) {
        builder = builder.header(name, value);
    }
    if let Some(r) = range {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {}-{}/{}", r.first, r.last, version.size),
        );
    }
    for (k, v) in &version.info {
        // B2 turns these reserved info names into the matching standard headers.
        let standard = match k.as_str() {
            "b2-content-disposition" => Some(header::CONTENT_DISPOSITION),
            "b2-content-language" => Some(header::CONTENT_LANGUAGE),
            "b2-expires" => Some(header::EXPIRES),
            "b2-cache-control" => Some(header::CACHE_CONTROL),
            "b2-content-encoding" => Some(header::CONTENT_ENCODING),
            _ => None,
        };
        builder = match standard {
            Some(h) => builder.header(h, v),
            None => builder.header(format!("x-bz-info-{k}"), percent_encode(v)),
        };
    }
    let body = if *method == Method::HEAD || len == 0 {
        empty()
    } else {
        let segments = version
            .content
            .iter()
            .map(|s| (shared.store.blob_path(&s.blob), s.len))
            .collect();
        stream_segments(shared.clone(), segments, first, len, corrupt)
    };
    builder
        .body(body)
        .map_err(|e| B2Error::internal(format!("building download response: {e}")))
}

/// Streams `len` bytes starting at `offset` of the concatenation of `segments`, read on
/// a blocking thread in 1 MiB chunks a few chunks ahead of the socket.
fn stream_segments(
    shared: Arc<Shared>,
    segments: Vec<(PathBuf, u64)>,
    offset: u64,
    len: u64,
    corrupt: bool,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(CHUNKS_AHEAD);
    tokio::task::spawn_blocking(move || {
        let result = read_segments(&segments, offset, len, corrupt, &tx);
        if let Err(e) = result {
            let _ = tx.blocking_send(Err(e));
        }
    });
    let stream = futures_util::stream::unfold(rx, move |mut rx| {
        let shared = shared.clone();
        async move {
            let item = rx.recv().await?;
            if let Ok(bytes) = &item {
                shared.faults.add_sent(bytes.len() as u64);
            }
            Some((item.map(Frame::data), rx))
        }
    });
    StreamBody::new(stream).boxed()
}

fn read_segments(
    segments: &[(PathBuf, u64)],
    mut offset: u64,
    mut left: u64,
    mut corrupt: bool,
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
) -> io::Result<()> {
    for (path, seg_len) in segments {
        if left == 0 {
            break;
        }
        if offset >= *seg_len {
            offset -= seg_len;
            continue;
        }
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut seg_left = (seg_len - offset).min(left);
        offset = 0;
        while seg_left > 0 {
            let n = seg_left.min(READ_CHUNK as u64) as usize;
            let mut buf = BytesMut::zeroed(n);
            file.read_exact(&mut buf)?;
            if corrupt {
                buf[0] ^= 0x01;
                corrupt = false;
            }
            seg_left -= n as u64;
            left -= n as u64;
            if tx.blocking_send(Ok(buf.freeze())).is_err() {
                return Ok(()); // the client went away
            }
        }
    }
    Ok(())
}

fn require_get_or_head(method: &Method) -> B2Result<()> {
    if *method == Method::GET || *method == Method::HEAD {
        Ok(())
    } else {
        Err(B2Error::new(
            405,
            "method_not_allowed",
            format!("{method} is not allowed for downloads"),
        ))
    }
}

/// `GET|HEAD /file/{bucketName}/{fileName}` (both percent-encoded).
pub fn download_by_name(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    raw_bucket: &str,
    raw_name: &str,
    corrupt: bool,
) -> B2Result<Response<Body>> {
    require_get_or_head(req.method())?;
    let bucket_name = percent_decode_strict(raw_bucket, "bucket name")?;
    let name = percent_decode_strict(raw_name, "file name")?;
    let query = parse_query(req.uri().query())?;
    let query_token = query
        .iter()
        .find(|(k, _)| k == "Authorization")
        .map(|(_, v)| v.as_str());
    let bucket = shared
        .store
        .bucket_by_name(&bucket_name)
        .ok_or_else(|| B2Error::not_found(format!("bucket {bucket_name} does not exist")))?;
    authorize_download(shared, req.headers(), query_token, &bucket, &name)?;
    if let Some(e) = cap_exceeded(req.headers()) {
        return Err(e);
    }
    let version = shared
        .store
        .newest_visible(&bucket.id, &name)
        .ok_or_else(|| {
            B2Error::not_found(format!("file {name} not present in bucket {bucket_name}"))
        })?;
    respond(shared, req.method(), req.headers(), &version, corrupt)
}

/// `GET|HEAD /b2api/vN/b2_download_file_by_id?fileId=...` (POST with JSON works too).
pub async fn download_by_id(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    corrupt: bool,
) -> B2Result<Response<Body>> {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let query_token = parse_query(req.uri().query())?
        .into_iter()
        .find(|(k, _)| k == "Authorization")
        .map(|(_, v)| v);
    let (_, params) = api::read_params(req).await?;
    let params = match params {
        Value::Object(mut map) => {
            map.remove("Authorization");
            Value::Object(map)
        }
        other => other,
    };
    let FileIdReq { file_id } = serde_json::from_value(params)
        .map_err(|e| B2Error::bad_request(format!("bad request parameters: {e}")))?;
    let version = shared
        .store
        .version_by_id(&file_id)
        .filter(|v| v.action == Action::Upload)
        .ok_or_else(|| B2Error::not_found(format!("no file with fileId {file_id}")))?;
    let bucket = shared
        .store
        .bucket(&version.bucket_id)
        .ok_or_else(|| B2Error::not_found(format!("no file with fileId {file_id}")))?;
    authorize_download(
        shared,
        &headers,
        query_token.as_deref(),
        &bucket,
        &version.name,
    )?;
    if let Some(e) = cap_exceeded(&headers) {
        return Err(e);
    }
    let method = if method == Method::POST {
        Method::GET
    } else {
        method
    };
    respond(shared, &method, &headers, &version, corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |s, size| parse_range(Some(s), size);
        assert_eq!(
            r("bytes=0-9", 100).unwrap(),
            Some(ByteRange { first: 0, last: 9 })
        );
        assert_eq!(
            r("bytes=90-", 100).unwrap(),
            Some(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            r("bytes=-10", 100).unwrap(),
            Some(ByteRange {
                first: 90,
                last: 99
            })
        );
        assert_eq!(
            r("bytes=-1000", 100).unwrap(),
            Some(ByteRange { first: 0, last: 99 })
        );
        assert_eq!(
            r("bytes=50-1000", 100).unwrap(),
            Some(ByteRange {
                first: 50,
                last: 99
            })
        );
        assert_eq!(r("bytes=100-", 100).unwrap_err().status, 416);
        assert_eq!(r("bytes=0-", 0).unwrap_err().status, 416);
        assert_eq!(r("bytes=5-1", 100).unwrap_err().status, 400);
        assert_eq!(r("bytes=0-1,5-6", 100).unwrap_err().status, 400);
        assert_eq!(parse_range(None, 100).unwrap(), None);
    }
}
