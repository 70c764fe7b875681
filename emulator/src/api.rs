//! The JSON API calls (everything but the upload and download endpoints).

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::auth::{Key, UploadTarget};
use crate::error::{B2Error, B2Result};
use crate::faults::{Call, TestMode};
use crate::http::{
    header_str, json_bytes, ok_json, parse_query, read_body_limited, Body, MAX_JSON_BODY,
};
use crate::names;
use crate::server::Shared;
use crate::store::{self, BucketMeta, FileJson, ListEntry, ListQuery};

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
    "ifRevisionMatch",
];

pub async fn handle(
    shared: Arc<Shared>,
    call: Call,
    version: u8,
    req: Request<Incoming>,
) -> Response<Body> {
    match handle_call(&shared, call, version, req).await {
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

fn parse<T: DeserializeOwned>(params: Value) -> B2Result<T> {
    serde_json::from_value(params)
        .map_err(|e| B2Error::bad_request(format!("bad request parameters: {e}")))
}

async fn handle_call(
    shared: &Shared,
    call: Call,
    version: u8,
    req: Request<Incoming>,
) -> B2Result<Response<Body>> {
    let (headers, params) = read_params(req).await?;
    if call == Call::AuthorizeAccount {
        return authorize(shared, version, &headers);
    }
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
    let body: Answer = match call {
        Call::ListBuckets => ctx.list_buckets(parse(params)?)?.into(),
        Call::CreateBucket => ctx.create_bucket(parse(params)?)?.into(),
        Call::UpdateBucket => ctx.update_bucket(parse(params)?)?.into(),
        Call::DeleteBucket => ctx.delete_bucket(parse(params)?)?.into(),
        Call::GetUploadUrl => ctx.get_upload_url(parse(params)?)?.into(),
        Call::StartLargeFile => ctx.start_large_file(parse(params)?)?.into(),
        Call::GetUploadPartUrl => ctx.get_upload_part_url(parse(params)?)?.into(),
        Call::FinishLargeFile => ctx.finish_large_file(parse(params)?)?.into(),
        Call::CancelLargeFile => ctx.cancel_large_file(parse(params)?)?.into(),
        Call::ListUnfinishedLargeFiles => ctx.list_unfinished(parse(params)?)?.into(),
        Call::ListParts => ctx.list_parts(parse(params)?)?.into(),
        Call::ListFileNames => Answer::Bytes(ctx.list_files(parse(params)?, false)?),
        Call::ListFileVersions => Answer::Bytes(ctx.list_files(parse(params)?, true)?),
        Call::HideFile => ctx.hide_file(parse(params)?)?.into(),
        Call::DeleteFileVersion => ctx.delete_file_version(parse(params)?)?.into(),
        Call::GetFileInfo => ctx.get_file_info(parse(params)?)?.into(),
        Call::AuthorizeAccount
        | Call::UploadFile
        | Call::UploadPart
        | Call::DownloadFileByName
        | Call::DownloadFileById => {
            return Err(B2Error::bad_request(format!(
                "{} is not a JSON API call",
                call.name()
            )))
        }
    };
    Ok(match body {
        Answer::Value(v) => ok_json(v),
        Answer::Bytes(b) => json_bytes(b),
    })
}

/// A call's answer: a JSON value, or JSON already serialized (big listings).
enum Answer {
    Value(Value),
    Bytes(Vec<u8>),
}

impl From<Value> for Answer {
    fn from(v: Value) -> Answer {
        Answer::Value(v)
    }
}

/// `{"files": [...], "nextFileName": ..., "nextFileId": ...}` (the last for versions only).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FilesPage<'a> {
    files: Vec<FileJson<'a>>,
    next_file_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_file_id: Option<Option<String>>,
}

fn authorize(shared: &Shared, version: u8, headers: &HeaderMap) -> B2Result<Response<Body>> {
    let (token, key) = shared
        .auth
        .authorize(header_str(headers, "authorization"))?;
    let base = &shared.base_url;
    let spec = &key.spec;
    let (bucket_id, bucket_name) = match &spec.bucket {
        Some(name) => (
            json!(shared.store.bucket_by_name(name).map(|b| b.id)),
            json!(name),
        ),
        None => (Value::Null, Value::Null),
    };
    let account_id = shared.auth.account_id();
    let body = match version {
        1 | 2 => json!({
            "accountId": account_id,
            "authorizationToken": token,
            "apiUrl": base,
            "downloadUrl": base,
            "s3ApiUrl": base,
            "recommendedPartSize": shared.recommended_part_size,
            "absoluteMinimumPartSize": shared.min_part_size,
            "minimumPartSize": shared.recommended_part_size,
            "allowed": {
                "bucketId": bucket_id,
                "bucketName": bucket_name,
                "capabilities": spec.capabilities,
                "namePrefix": spec.name_prefix,
            },
        }),
        3 => json!({
            "accountId": account_id,
            "authorizationToken": token,
            "applicationKeyExpirationTimestamp": null,
            "apiInfo": {
                "storageApi": {
                    "apiUrl": base,
                    "downloadUrl": base,
                    "s3ApiUrl": base,
                    "recommendedPartSize": shared.recommended_part_size,
                    "absoluteMinimumPartSize": shared.min_part_size,
                    "bucketId": bucket_id,
                    "bucketName": bucket_name,
                    "capabilities": spec.capabilities,
                    "namePrefix": spec.name_prefix,
                    "infoType": "storageApi",
                },
            },
        }),
        _ => {
            let buckets = match &spec.bucket {
                Some(_) => json!([{"id": bucket_id, "name": bucket_name}]),
                None => Value::Null,
            };
            json!({
                "accountId": account_id,
                "authorizationToken": token,
                "applicationKeyExpirationTimestamp": null,
                "apiInfo": {
                    "storageApi": {
                        "apiUrl": base,
                        "downloadUrl": base,
                        "s3ApiUrl": base,
                        "recommendedPartSize": shared.recommended_part_size,
                        "absoluteMinimumPartSize": shared.min_part_size,
                        "allowed": {
                            "buckets": buckets,
                            "capabilities": spec.capabilities,
                            "namePrefix": spec.name_prefix,
                        },
                        "infoType": "storageApi",
                    },
                },
            })
        }
    };
    Ok(ok_json(body))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListBucketsReq {
    account_id: String,
    bucket_id: Option<String>,
    bucket_name: Option<String>,
    bucket_types: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBucketReq {
    account_id: String,
    bucket_name: String,
    bucket_type: String,
    bucket_info: Option<Value>,
    cors_rules: Option<Value>,
    lifecycle_rules: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBucketReq {
    account_id: String,
    bucket_id: String,
    bucket_type: Option<String>,
    bucket_info: Option<Value>,
    cors_rules: Option<Value>,
    lifecycle_rules: Option<Value>,
    if_revision_match: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteBucketReq {
    account_id: String,
    bucket_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketIdReq {
    bucket_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileIdReq {
    pub file_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartLargeFileReq {
    bucket_id: String,
    file_name: String,
    content_type: String,
    file_info: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FinishLargeFileReq {
    file_id: String,
    part_sha1_array: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListUnfinishedReq {
    bucket_id: String,
    name_prefix: Option<String>,
    start_file_id: Option<String>,
    max_file_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPartsReq {
    file_id: String,
    start_part_number: Option<u32>,
    max_part_count: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListFilesReq {
    bucket_id: String,
    start_file_name: Option<String>,
    start_file_id: Option<String>,
    max_file_count: Option<u64>,
    prefix: Option<String>,
    delimiter: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HideFileReq {
    bucket_id: String,
    file_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteFileVersionReq {
    file_name: String,
    file_id: String,
}

/// What every handler needs: the server state and the caller's key.
struct Ctx<'a> {
    shared: &'a Shared,
    key: &'a Arc<Key>,
    version: u8,
}

impl Ctx<'_> {
    fn account_id(&self) -> &str {
        self.shared.auth.account_id()
    }

    fn check_account(&self, account_id: &str) -> B2Result<()> {
        if account_id == self.account_id() {
            Ok(())
        } else {
            Err(B2Error::unauthorized(format!(
                "accountId {account_id} is not this key's account"
            )))
        }
    }

    /// The bucket by id, if the key may use it.
    fn bucket(&self, bucket_id: &str) -> B2Result<BucketMeta> {
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
            None => Err(B2Error::bad_request(format!(
                "invalid bucketId {bucket_id}"
            ))),
        }
    }

    fn file_version_json(&self, v: &store::Version) -> Value {
        v.to_json(self.account_id())
    }

    fn list_buckets(&self, req: ListBucketsReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("listBuckets")?;
        if let Some(allowed) = &self.key.spec.bucket {
            let by_id = req
                .bucket_id
                .as_deref()
                .and_then(|id| self.shared.store.bucket(id));
            let names_it = req.bucket_name.as_deref() == Some(allowed.as_str())
                || by_id.is_some_and(|b| b.name == *allowed);
            if !names_it {
                return Err(B2Error::unauthorized(format!(
                    "application key is restricted to bucket {allowed}: pass its bucketId or bucketName"
                )));
            }
        }
        let types = req.bucket_types.unwrap_or_else(|| vec!["all".to_owned()]);
        let buckets: Vec<Value> = self
            .shared
            .store
            .buckets()
            .into_iter()
            .filter(|b| req.bucket_id.as_ref().is_none_or(|id| *id == b.id))
            .filter(|b| req.bucket_name.as_ref().is_none_or(|n| *n == b.name))
            .filter(|b| types.iter().any(|t| t == "all" || *t == b.kind))
            .map(|b| b.to_json(self.account_id()))
            .collect();
        Ok(json!({ "buckets": buckets }))
    }

    fn create_bucket(&self, req: CreateBucketReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("writeBuckets")?;
        if self.key.spec.bucket.is_some() {
            return Err(B2Error::unauthorized(
                "a key restricted to one bucket cannot create buckets",
            ));
        }
        names::validate_bucket_name(&req.bucket_name)?;
        names::validate_bucket_type(&req.bucket_type)?;
        let info = object_or_default(req.bucket_info, "bucketInfo")?;
        let cors = array_or_default(req.cors_rules, "corsRules")?;
        let rules = array_or_default(req.lifecycle_rules, "lifecycleRules")?;
        names::validate_lifecycle_rules(&rules)?;
        let meta = self.shared.store.create_bucket(
            &req.bucket_name,
            &req.bucket_type,
            info,
            rules,
            cors,
        )?;
        Ok(meta.to_json(self.account_id()))
    }

    fn update_bucket(&self, req: UpdateBucketReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("writeBuckets")?;
        self.bucket(&req.bucket_id)?;
        if let Some(kind) = &req.bucket_type {
            names::validate_bucket_type(kind)?;
        }
        if let Some(rules) = &req.lifecycle_rules {
            names::validate_lifecycle_rules(rules)?;
        }
        if req.bucket_info.as_ref().is_some_and(|v| !v.is_object()) {
            return Err(B2Error::bad_request("bucketInfo must be an object"));
        }
        if req.cors_rules.as_ref().is_some_and(|v| !v.is_array()) {
            return Err(B2Error::bad_request("corsRules must be an array"));
        }
        let meta = self.shared.store.update_bucket(
            &req.bucket_id,
            req.bucket_type,
            req.bucket_info,
            req.lifecycle_rules,
            req.cors_rules,
            req.if_revision_match,
        )?;
        Ok(meta.to_json(self.account_id()))
    }

    fn delete_bucket(&self, req: DeleteBucketReq) -> B2Result<Value> {
        self.check_account(&req.account_id)?;
        self.key.require("deleteBuckets")?;
        self.bucket(&req.bucket_id)?;
        let meta = self.shared.store.delete_bucket(&req.bucket_id)?;
        Ok(meta.to_json(self.account_id()))
    }

    fn get_upload_url(&self, req: BucketIdReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        let key = self.key.clone();
        let (token, url_id) = self
            .shared
            .auth
            .issue_upload(UploadTarget::Bucket(bucket.id.clone()), key);
        Ok(json!({
            "bucketId": bucket.id,
            "uploadUrl": format!("{}/b2api/v{}/b2_upload_file/{}/{}",
                self.shared.base_url, self.version, bucket.id, url_id),
            "authorizationToken": token,
        }))
    }

    fn start_large_file(&self, req: StartLargeFileReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        names::validate_file_name(&req.file_name)?;
        self.key.require_name(&req.file_name)?;
        names::validate_content_type(&req.content_type)?;
        let info = req.file_info.unwrap_or_default();
        names::validate_info(&req.file_name, &info)?;
        let content_type = names::resolve_content_type(&req.content_type, &req.file_name);
        let v = self
            .shared
            .store
            .start_large(&bucket.id, &req.file_name, &content_type, info)?;
        Ok(self.file_version_json(&v))
    }

    /// The unfinished large file, if the key may write it.
    fn unfinished(&self, file_id: &str) -> B2Result<store::Version> {
        self.key.require("writeFiles")?;
        let file = self.shared.store.unfinished(file_id)?;
        self.bucket(&file.bucket_id)?;
        self.key.require_name(&file.name)?;
        Ok(file)
    }

    fn get_upload_part_url(&self, req: FileIdReq) -> B2Result<Value> {
        let file = self.unfinished(&req.file_id)?;
        let key = self.key.clone();
        let (token, url_id) = self
            .shared
            .auth
            .issue_upload(UploadTarget::LargeFile(file.seq), key);
        Ok(json!({
            "fileId": req.file_id,
            "uploadUrl": format!("{}/b2api/v{}/b2_upload_part/{}/{}",
                self.shared.base_url, self.version, req.file_id, url_id),
            "authorizationToken": token,
        }))
    }

    fn finish_large_file(&self, req: FinishLargeFileReq) -> B2Result<Value> {
        self.unfinished(&req.file_id)?;
        let v = self.shared.store.finish_large(
            &req.file_id,
            &req.part_sha1_array,
            self.shared.min_part_size,
        )?;
        Ok(self.file_version_json(&v))
    }

    fn cancel_large_file(&self, req: FileIdReq) -> B2Result<Value> {
        self.unfinished(&req.file_id)?;
        let v = self.shared.store.cancel_large(&req.file_id)?;
        Ok(json!({
            "fileId": v.file_id(),
            "accountId": self.account_id(),
            "bucketId": v.bucket_id,
            "fileName": v.name,
        }))
    }

    fn list_unfinished(&self, req: ListUnfinishedReq) -> B2Result<Value> {
        self.key.require("listFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        let prefix = req.name_prefix.unwrap_or_default();
        self.key.require_list_prefix(&prefix)?;
        let max = count_param(req.max_file_count, DEFAULT_LIST_COUNT, MAX_UNFINISHED_COUNT);
        let start_seq = match &req.start_file_id {
            Some(id) => Some(
                store::parse_file_id(id)
                    .ok_or_else(|| B2Error::bad_request(format!("invalid startFileId {id}")))?,
            ),
            None => None,
        };
        let (files, next) = self
            .shared
            .store
            .list_unfinished(&bucket.id, &prefix, start_seq, max)?;
        let files: Vec<Value> = files.iter().map(|v| self.file_version_json(v)).collect();
        Ok(json!({
            "files": files,
            "nextFileId": next.map(|seq| store::file_id(&bucket.id, seq)),
        }))
    }

    fn list_parts(&self, req: ListPartsReq) -> B2Result<Value> {
        let file = self.unfinished(&req.file_id)?;
        let start = req.start_part_number.unwrap_or(1).max(1);
        let max = count_param(req.max_part_count, DEFAULT_LIST_COUNT, MAX_PART_COUNT);
        let (parts, next) = self.shared.store.list_parts(file.seq, start, max)?;
        let parts: Vec<Value> = parts
            .iter()
            .map(|p| {
                json!({
                    "fileId": req.file_id,
                    "partNumber": p.number,
                    "contentLength": p.size,
                    "contentSha1": p.sha1,
                    "uploadTimestamp": p.ts,
                })
            })
            .collect();
        Ok(json!({ "parts": parts, "nextPartNumber": next }))
    }

    fn list_files(&self, req: ListFilesReq, all_versions: bool) -> B2Result<Vec<u8>> {
        self.key.require("listFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        let prefix = req.prefix.unwrap_or_default();
        self.key.require_list_prefix(&prefix)?;
        let max = count_param(req.max_file_count, DEFAULT_LIST_COUNT, MAX_LIST_COUNT);
        let start_seq = match (&req.start_file_id, all_versions) {
            (Some(id), true) => {
                if req.start_file_name.is_none() {
                    return Err(B2Error::bad_request("startFileId requires startFileName"));
                }
                Some(
                    store::parse_file_id(id)
                        .ok_or_else(|| B2Error::bad_request(format!("invalid startFileId {id}")))?,
                )
            }
            _ => None,
        };
        let query = ListQuery {
            prefix: &prefix,
            delimiter: req.delimiter.as_deref(),
            start_name: req.start_file_name.as_deref(),
            start_seq,
            max,
            all_versions,
        };
        let page = self.shared.store.list(&bucket.id, &query)?;
        let account_id = self.account_id();
        let files: Vec<FileJson<'_>> = page
            .entries
            .iter()
            .map(|e| match e {
                ListEntry::File(v) => v.json(account_id),
                ListEntry::Folder(name) => FileJson::folder(account_id, &bucket.id, name),
            })
            .collect();
        let body = FilesPage {
            files,
            next_file_name: page.next_name.as_deref(),
            next_file_id: all_versions
                .then(|| page.next_seq.map(|seq| store::file_id(&bucket.id, seq))),
        };
        serde_json::to_vec(&body).map_err(|e| B2Error::internal(e.to_string()))
    }

    fn hide_file(&self, req: HideFileReq) -> B2Result<Value> {
        self.key.require("writeFiles")?;
        let bucket = self.bucket(&req.bucket_id)?;
        names::validate_file_name(&req.file_name)?;
        self.key.require_name(&req.file_name)?;
        let v = self.shared.store.hide(&bucket.id, &req.file_name)?;
        Ok(self.file_version_json(&v))
    }

    fn delete_file_version(&self, req: DeleteFileVersionReq) -> B2Result<Value> {
        self.key.require("deleteFiles")?;
        if let Some(v) = self.shared.store.version_by_id(&req.file_id) {
            self.bucket(&v.bucket_id)?;
            self.key.require_name(&v.name)?;
        }
        let v = self
            .shared
            .store
            .delete_version(&req.file_name, &req.file_id)?;
        Ok(json!({ "fileId": v.file_id(), "fileName": v.name }))
    }

    fn get_file_info(&self, req: FileIdReq) -> B2Result<Value> {
        self.key.require("readFiles")?;
        let v = self
            .shared
            .store
            .version_by_id(&req.file_id)
            .ok_or_else(|| B2Error::not_found(format!("no file with fileId {}", req.file_id)))?;
        self.bucket(&v.bucket_id)?;
        self.key.require_name(&v.name)?;
        Ok(self.file_version_json(&v))
    }
}

/// A count parameter: absent or 0 means the default; above the maximum is capped.
fn count_param(asked: Option<u64>, default: u64, max: u64) -> usize {
    match asked {
        None | Some(0) => default.min(max) as usize,
        Some(n) => n.min(max) as usize,
    }
}

fn object_or_default(value: Option<Value>, what: &str) -> B2Result<Value> {
    match value {
        None | Some(Value::Null) => Ok(json!({})),
        Some(v) if v.is_object() => Ok(v),
        Some(_) => Err(B2Error::bad_request(format!("{what} must be an object"))),
    }
}

fn array_or_default(value: Option<Value>, what: &str) -> B2Result<Value> {
    match value {
        None | Some(Value::Null) => Ok(json!([])),
        Some(v) if v.is_array() => Ok(v),
        Some(_) => Err(B2Error::bad_request(format!("{what} must be an array"))),
    }
}
