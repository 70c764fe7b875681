//! The JSON API calls (everything but the upload and download endpoints): what they
//! share. Each group of calls has its own file; `calls.rs` lists them all.

mod authorize;
pub mod buckets;
pub mod copy;
pub mod files;
pub mod large_files;
pub mod retention;

pub use authorize::handle as authorize;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::Key;
use crate::error::{B2Error, B2Result};
use crate::faults::TestMode;
use crate::http::{
    header_str, json_bytes, ok_json, parse_query, read_body_limited, Body, MAX_JSON_BODY,
};
use crate::state::Shared;
use crate::store::{self, BucketMeta};

/// Default and largest `maxFileCount` of the file listings (larger asks are capped).
const DEFAULT_LIST_COUNT: u64 = 100;
const MAX_LIST_COUNT: u64 = 10_000;
const MAX_UNFINISHED_COUNT: u64 = 100;
const MAX_PART_COUNT: u64 = 1_000;

/// Query parameters that are numbers in the JSON form of a call.
const NUMERIC_PARAMS: &[&str] = &[
    "maxFileCount",
    "startPartNumber",
    "maxPartCount",
    "ifRevisionIs",
    "ifRevisionMatch",
];

/// A JSON call's handler: the caller's context and the call's parameters.
pub type JsonHandler = fn(&Ctx<'_>, Value) -> B2Result<Answer>;

pub async fn handle(
    shared: Arc<Shared>,
    handler: JsonHandler,
    version: u8,
    req: Request<Incoming>,
) -> Response<Body> {
    match handle_call(&shared, handler, version, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

/// Parameters of a call: the JSON body of a POST, or the query string of a GET.
pub async fn read_params(req: Request<Incoming>) -> B2Result<(HeaderMap, Value)> {
    let (parts, body) = req.into_parts();
    let from_query = |query: Option<&str>| -> B2Result<Value> {
        let mut map = Map::new();
        for (k, v) in parse_query(query)? {
            let value = if NUMERIC_PARAMS.contains(&k.as_str()) {
                v.parse::<u64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(v))
            } else if k == "bucketTypes" || k == "partSha1Array" {
                serde_json::from_str(&v).unwrap_or(Value::String(v))
            } else {
                Value::String(v)
            };
            map.insert(k, value);
        }
        Ok(Value::Object(map))
    };
    let params = match parts.method {
        Method::GET | Method::HEAD => from_query(parts.uri.query())?,
        Method::POST => {
            let bytes = read_body_limited(body, MAX_JSON_BODY).await?;
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                from_query(parts.uri.query())?
            } else {
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| B2Error::bad_request(format!("request body is not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(B2Error::bad_request("request body must be a JSON object"));
                }
                value
            }
        }
        _ => {
            return Err(B2Error::new(
                405,
                "method_not_allowed",
                format!("{} is not allowed; use POST (or GET)", parts.method),
            ))
        }
    };
    Ok((parts.headers, params))
}

pub fn parse<T: DeserializeOwned>(params: Value) -> B2Result<T> {
    serde_json::from_value(params)
        .map_err(|e| B2Error::bad_request(format!("bad request parameters: {e}")))
}

async fn handle_call(
    shared: &Shared,
    handler: JsonHandler,
    version: u8,
    req: Request<Incoming>,
) -> B2Result<Response<Body>> {
    let (headers, params) = read_params(req).await?;
    let key = shared.auth.session(header_str(&headers, "authorization"))?;
    if header_str(&headers, "x-bz-test-mode").and_then(TestMode::parse)
        == Some(TestMode::ExpireSomeAccountAuthorizationTokens)
        && shared
            .faults
            .test_mode_fires(TestMode::ExpireSomeAccountAuthorizationTokens)
    {
        return Err(B2Error::expired_auth_token());
    }
    let ctx = Ctx {
        shared,
        key: &key,
        version,
    };
    let body = handler(&ctx, params)?;
    Ok(match body {
        Answer::Value(v) => ok_json(v),
        Answer::Bytes(b) => json_bytes(b),
    })
}

/// A call's answer: a JSON value, or JSON already serialized (big listings).
pub enum Answer {
    Value(Value),
    Bytes(Vec<u8>),
}

impl From<Value> for Answer {
    fn from(v: Value) -> Answer {
        Answer::Value(v)
    }
}

impl From<Vec<u8>> for Answer {
    fn from(b: Vec<u8>) -> Answer {
        Answer::Bytes(b)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileIdReq {
    pub file_id: String,
}

/// What every handler needs: the server state and the caller's key.
pub struct Ctx<'a> {
    shared: &'a Shared,
    key: &'a Arc<Key>,
    version: u8,
}

impl Ctx<'_> {
    pub(crate) fn account_id(&self) -> &str {
        self.shared.auth.account_id()
    }

    pub(crate) fn check_account(&self, account_id: &str) -> B2Result<()> {
        if account_id == self.account_id() {
            Ok(())
        } else {
            Err(B2Error::unauthorized(format!(
                "accountId {account_id} is not this key's account"
            )))
        }
    }

    /// The bucket by id, if the key may use it.
    pub(crate) fn bucket(&self, bucket_id: &str) -> B2Result<BucketMeta> {
        let bucket = self.shared.store.bucket(bucket_id);
        if let (Some(allowed), Some(b)) = (&self.key.spec.bucket, &bucket) {
            if *allowed != b.name {
                return Err(B2Error::unauthorized(format!(
                    "application key is restricted to bucket {allowed}"
                )));
            }
        }
        match bucket {
            Some(b) => Ok(b),
            None if self.key.spec.bucket.is_some() => Err(B2Error::unauthorized(
                "application key is restricted to another bucket",
            )),
            None => Err(B2Error::bad_bucket_id(bucket_id)),
        }
    }

    pub(crate) fn file_version_json(&self, v: &store::Version) -> Value {
        v.to_json(self.account_id(), retention::readers(self.key))
    }
}

/// A count parameter: absent or 0 means the default; above the maximum is capped.
pub(crate) fn count_param(asked: Option<u64>, default: u64, max: u64) -> usize {
    match asked {
        None | Some(0) => default.min(max) as usize,
        Some(n) => n.min(max) as usize,
    }
}

pub(crate) fn object_or_default(value: Option<Value>, what: &str) -> B2Result<Value> {
    match value {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v) if v.is_object() => Ok(v),
        Some(_) => Err(B2Error::bad_request(format!("{what} must be an object"))),
    }
}

pub(crate) fn array_or_default(value: Option<Value>, what: &str) -> B2Result<Value> {
    match value {
        None | Some(Value::Null) => Ok(json!([])),
        Some(v) if v.is_array() => Ok(v),
        Some(_) => Err(B2Error::bad_request(format!("{what} must be an array"))),
    }
}
