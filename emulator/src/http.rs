//! Small HTTP helpers shared by the handlers: the response body type, JSON answers,
//! header and query-string access, and bounded body reading.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{header, HeaderMap, Response, StatusCode};
use percent_encoding::{percent_decode_str, AsciiSet, NON_ALPHANUMERIC};
use serde_json::json;

use crate::error::{B2Error, B2Result};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// How long a request body may stay silent before the emulator gives up on it
/// (a client that declares more bytes than it sends must not hang the server forever).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest JSON request body accepted by the API calls (a 10,000-part partSha1Array is ~450 KB).
pub const MAX_JSON_BODY: usize = 4 << 20;

/// What B2 leaves unescaped when it percent-encodes names and info values in headers.
pub const HEADER_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let text = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(full(text))
        .expect("static response parts are valid")
}

/// A redirect to `location`, with an empty body (a scripted fault: B2 never redirects).
pub fn redirect(status: u16, location: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::TEMPORARY_REDIRECT))
        .header(header::LOCATION, location)
        .header(header::CONTENT_LENGTH, 0)
        .body(empty())
        .expect("the fault's status and location were checked")
}

/// A 200 answer whose JSON is cut off half-way (a scripted fault, after the call acted).
pub fn garbled() -> Response<Body> {
    json_bytes(br#"{"fileId": "4_z"#.to_vec())
}

/// A 200 answer with an already serialized JSON body.
pub fn json_bytes(text: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json;charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .body(full(text))
        .expect("static response parts are valid")
}

pub fn ok_json(value: serde_json::Value) -> Response<Body> {
    json_response(StatusCode::OK, &value)
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes a percent-encoded header value or URL path ('+' stays '+', as B2 does
/// outside query strings). Refuses raw non-ASCII and encodings that are not UTF-8.
pub fn percent_decode_strict(raw: &str, what: &str) -> B2Result<String> {
    if !raw.is_ascii() {
        return Err(B2Error::bad_request(format!(
            "{what} must be percent-encoded UTF-8"
        )));
    }
    let bytes = raw.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            if !ok {
                return Err(B2Error::bad_request(format!(
                    "{what}: bad percent-encoding"
                )));
            }
        }
    }
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| B2Error::bad_request(format!("{what} is not valid UTF-8")))
}

pub fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, HEADER_ENCODE_SET).to_string()
}

/// Parses `a=b&c=d` with form rules ('+' is a space), as B2 does for query strings.
pub fn parse_query(query: Option<&str>) -> B2Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let Some(query) = query else { return Ok(out) };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| -> B2Result<String> {
            let s = s.replace('+', " ");
            percent_decode_str(&s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| B2Error::bad_request("query string is not valid UTF-8"))
        };
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

/// Reads a whole (small) request body, refusing more than `limit` bytes and stalls.
pub async fn read_body_limited(mut body: Incoming, limit: usize) -> B2Result<Bytes> {
    let mut buf = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => return Err(B2Error::new(408, "request_timeout", "request body stalled")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(B2Error::bad_request(format!("reading request body: {e}")))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(B2Error::bad_request("request body too large"));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// B2's error answer, with `Retry-After` when set.
impl B2Error {
    pub fn into_response(self) -> Response<Body> {
        let body = json!({
            "status": self.status,
            "code": self.code,
            "message": self.message,
        });
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = json_response(status, &body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}
