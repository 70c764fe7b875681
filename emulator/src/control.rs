//! The test-control API under `/__emulator/` (never counted, never faulted), and the
//! operations it shares with the `Emulator` methods.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::retention;
use crate::auth::{Key, KeySpec};
use crate::error::{B2Error, B2Result};
use crate::faults::Fault;
use crate::http::{json_response, ok_json, read_body_limited, Body, MAX_JSON_BODY};
use crate::state::Shared;
use crate::store::{Action, BucketLock, Sse, StoredVersion, Version};
use crate::variants::VariantRule;

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>, path: &str) -> Response<Body> {
    match handle_inner(shared, req, path).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketSettings {
    bucket_type: Option<String>,
    lifecycle_rules: Option<Value>,
    /// `{"mode": "SSE-B2", "algorithm": "AES256"}` or `{"mode": null}`.
    default_server_side_encryption: Option<Value>,
    /// Object Lock, as b2_update_bucket takes it: `fileLockEnabled`, `defaultRetention`.
    #[serde(flatten)]
    lock: serde_json::Map<String, Value>,
}

/// Sets a version's retention and legal hold whatever the rules (a retain-until in the
/// past included): `{"bucket", "fileName", "fileId"?, "fileRetention"?, "legalHold"?}`;
/// without `fileId`, the newest stored version of the name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRequest {
    bucket: String,
    file_name: String,
    file_id: Option<String>,
    file_retention: Option<Value>,
    legal_hold: Option<String>,
}

#[derive(Deserialize)]
struct SeedRequest {
    bucket: String,
    prefix: String,
    count: u64,
    size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackdateRequest {
    bucket: String,
    file_name: String,
    millis: u64,
}

#[derive(Deserialize)]
struct ReleaseRequest {
    count: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CorruptRequest {
    bucket: String,
    file_name: String,
}

async fn json_body<T: for<'de> Deserialize<'de>>(req: Request<Incoming>) -> B2Result<T> {
    let bytes = read_body_limited(req.into_body(), MAX_JSON_BODY).await?;
    let bytes = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(bytes)
        .map_err(|e| B2Error::bad_request(format!("bad control request: {e}")))
}

async fn handle_inner(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    path: &str,
) -> B2Result<Response<Body>> {
    let method = req.method().clone();
    let path = path.trim_end_matches('/');
    let done = || ok_json(json!({"ok": true}));
    match (&method, path) {
        (&Method::GET, "health") => Ok(done()),
        (&Method::POST, "faults") => {
            let fault: Fault = json_body(req).await?;
            shared
                .faults
                .validate(&fault)
                .map_err(B2Error::bad_request)?;
            shared.faults.inject(fault);
            Ok(done())
        }
        (&Method::DELETE, "faults") => {
            shared.faults.clear();
            Ok(done())
        }
        (&Method::GET, "held") => Ok(ok_json(json!({"held": shared.faults.held()}))),
        (&Method::POST, "release") => {
            let release: ReleaseRequest = json_body(req).await?;
            let released = shared.faults.release(release.count);
            Ok(ok_json(json!({"released": released})))
        }
        (&Method::POST, "variants") => {
            let rule: VariantRule = json_body(req).await?;
            if rule.call != "*" && crate::calls::find(&rule.call).is_none() {
                return Err(B2Error::bad_request(format!(
                    "unknown call name {:?}",
                    rule.call
                )));
            }
            shared.variants.set(&rule);
            Ok(done())
        }
        (&Method::DELETE, "variants") => {
            shared.variants.clear();
            Ok(done())
        }
        (&Method::GET, "variants") => Ok(ok_json(
            serde_json::to_value(shared.variants.rules()).unwrap_or_default(),
        )),
        (&Method::GET, "counts") => Ok(json_response(
            StatusCode::OK,
            &serde_json::to_value(shared.faults.counts()).unwrap_or_default(),
        )),
        (&Method::POST, "counts/reset") => {
            shared.faults.reset_counts();
            Ok(done())
        }
        (&Method::POST, "keys") => {
            let spec: KeySpec = json_body(req).await?;
            shared.auth.add_key(spec);
            Ok(done())
        }
        (&Method::POST, "tokens/expire") => {
            shared.auth.expire_tokens();
            Ok(done())
        }
        (&Method::POST, "seed") => {
            let seed: SeedRequest = json_body(req).await?;
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                seed_files(&shared, &seed.bucket, &seed.prefix, seed.count, seed.size)
            })
            .await
            .map_err(|e| B2Error::internal(e.to_string()))??;
            Ok(done())
        }
        (&Method::POST, "corrupt") => {
            let target: CorruptRequest = json_body(req).await?;
            let shared = shared.clone();
            tokio::task::spawn_blocking(move || {
                corrupt_file(&shared, &target.bucket, &target.file_name)
            })
            .await
            .map_err(|e| B2Error::internal(e.to_string()))??;
            Ok(done())
        }
        (&Method::POST, "backdate") => {
            let r: BackdateRequest = json_body(req).await?;
            let n = backdate_unfinished(&shared, &r.bucket, &r.file_name, r.millis)?;
            Ok(ok_json(json!({"backdated": n})))
        }
        (&Method::POST, p) if p.starts_with("buckets/") => {
            let name = &p["buckets/".len()..];
            let settings: BucketSettings = json_body(req).await?;
            let default_sse = settings
                .default_server_side_encryption
                .as_ref()
                .map(crate::sse::bucket_default_value)
                .transpose()?;
            let meta = configure_bucket(
                &shared,
                name,
                BucketChange {
                    bucket_type: settings.bucket_type.as_deref(),
                    lifecycle_rules: settings.lifecycle_rules,
                    default_sse,
                },
                true,
            )?;
            if settings.lock.is_empty() {
                return Ok(ok_json(meta));
            }
            Ok(ok_json(configure_bucket_lock(
                &shared,
                name,
                &settings.lock,
            )?))
        }
        (&Method::POST, "lock") => {
            let r: LockRequest = json_body(req).await?;
            let v = force_lock(&shared, &r)?;
            Ok(ok_json(
                serde_json::to_value(stored_version(v)).unwrap_or_default(),
            ))
        }
        (&Method::GET, p) if p.starts_with("versions/") => {
            let name = &p["versions/".len()..];
            let versions = stored_versions(&shared, name, false)?;
            Ok(ok_json(serde_json::to_value(versions).unwrap_or_default()))
        }
        (&Method::GET, p) if p.starts_with("unfinished/") => {
            let name = &p["unfinished/".len()..];
            let versions = stored_versions(&shared, name, true)?;
            Ok(ok_json(serde_json::to_value(versions).unwrap_or_default()))
        }
        _ => Err(B2Error::not_found(format!(
            "no control endpoint {method} /__emulator/{path}"
        ))),
    }
}

fn bucket_id(shared: &Shared, name: &str) -> B2Result<String> {
    shared
        .store
        .bucket_by_name(name)
        .map(|b| b.id)
        .ok_or_else(|| B2Error::not_found(format!("no bucket named {name}")))
}

/// What a control request changes of a bucket; `None` leaves a setting alone.
#[derive(Default)]
pub struct BucketChange<'a> {
    pub bucket_type: Option<&'a str>,
    pub lifecycle_rules: Option<Value>,
    /// `Some(None)` clears the default encryption.
    pub default_sse: Option<Option<Sse>>,
}

/// Sets a bucket's type, lifecycle rules and default encryption (creating it when `create`
/// and missing).
pub fn configure_bucket(
    shared: &Shared,
    name: &str,
    change: BucketChange<'_>,
    create: bool,
) -> B2Result<Value> {
    let BucketChange {
        bucket_type,
        lifecycle_rules,
        default_sse,
    } = change;
    if let Some(kind) = bucket_type {
        crate::names::validate_bucket_type(kind)?;
    }
    if let Some(rules) = &lifecycle_rules {
        crate::names::validate_lifecycle_rules(rules)?;
    }
    let meta = match shared.store.bucket_by_name(name) {
        Some(b) => shared.store.update_bucket(
            &b.id,
            bucket_type.map(str::to_owned),
            None,
            lifecycle_rules,
            None,
            None,
            None,
        )?,
        None if create => shared.store.create_bucket(
            name,
            bucket_type.unwrap_or("allPrivate"),
            json!({}),
            lifecycle_rules.unwrap_or_else(|| json!([])),
            json!([]),
            BucketLock::default(),
        )?,
        None => return Err(B2Error::not_found(format!("no bucket named {name}"))),
    };
    let meta = match default_sse {
        Some(sse) => shared.store.set_default_sse(&meta.id, sse)?,
        None => meta,
    };
    Ok(meta.to_json(shared.auth.account_id(), true))
}

/// Object Lock settings of a bucket, as b2_update_bucket takes them, with the master
/// key's rights (Object Lock, once on, still cannot be turned off).
pub fn configure_bucket_lock(
    shared: &Shared,
    name: &str,
    settings: &serde_json::Map<String, Value>,
) -> B2Result<Value> {
    let bucket = shared
        .store
        .bucket_by_name(name)
        .ok_or_else(|| B2Error::not_found(format!("no bucket named {name}")))?;
    let master = Key {
        spec: KeySpec {
            key_id: String::new(),
            application_key: String::new(),
            capabilities: vec!["writeBucketRetentions".to_owned()],
            bucket: None,
            name_prefix: None,
        },
    };
    let lock = retention::bucket_lock(settings, bucket.lock, &master)?;
    let meta = shared
        .store
        .update_bucket(&bucket.id, None, None, None, None, None, lock)?;
    Ok(meta.to_json(shared.auth.account_id(), true))
}

fn force_lock(shared: &Shared, r: &LockRequest) -> B2Result<Version> {
    let id = bucket_id(shared, &r.bucket)?;
    let current = shared
        .store
        .all_versions(&id)
        .into_iter()
        .find(|v| {
            v.name == r.file_name
                && v.action == Action::Upload
                && r.file_id.as_ref().is_none_or(|f| *f == v.file_id())
        })
        .ok_or_else(|| B2Error::not_found(format!("no stored version of {}", r.file_name)))?;
    let mut lock = current.lock;
    if let Some(value) = &r.file_retention {
        lock.retention = retention::parse_retention(value, "fileRetention")?;
    }
    if let Some(hold) = &r.legal_hold {
        lock.legal_hold = match hold.as_str() {
            "on" => Some(true),
            "off" => Some(false),
            other => {
                return Err(B2Error::bad_request(format!(
                    "legalHold must be on or off, not {other:?}"
                )))
            }
        };
    }
    shared
        .store
        .force_lock(&id, &r.file_name, Some(&current.file_id()), lock)
}

pub fn seed_files(
    shared: &Shared,
    bucket: &str,
    prefix: &str,
    count: u64,
    size: u64,
) -> B2Result<()> {
    let id = bucket_id(shared, bucket)?;
    shared.store.seed(&id, prefix, count, size)
}

pub fn backdate_unfinished(
    shared: &Shared,
    bucket: &str,
    file_name: &str,
    millis: u64,
) -> B2Result<u64> {
    let id = bucket_id(shared, bucket)?;
    shared.store.backdate_unfinished(&id, file_name, millis)
}

pub fn corrupt_file(shared: &Shared, bucket: &str, file_name: &str) -> B2Result<()> {
    let id = bucket_id(shared, bucket)?;
    shared.store.corrupt(&id, file_name)
}

/// All versions of a bucket in B2 order, or only its unfinished large files.
pub fn stored_versions(
    shared: &Shared,
    bucket: &str,
    unfinished_only: bool,
) -> B2Result<Vec<StoredVersion>> {
    let id = bucket_id(shared, bucket)?;
    Ok(shared
        .store
        .all_versions(&id)
        .into_iter()
        .filter(|v| !unfinished_only || v.action == Action::Start)
        .map(stored_version)
        .collect())
}

pub fn stored_version(v: Version) -> StoredVersion {
    StoredVersion {
        file_id: v.file_id(),
        sha1: v.sha1_or_none().to_owned(),
        file_name: v.name,
        action: v.action.as_str().to_owned(),
        size: v.size,
        file_info: v.info,
        upload_timestamp: v.ts,
        encryption: v.sse,
        retention_mode: v.lock.retention.map(|r| r.mode.as_str().to_owned()),
        retain_until: v.lock.retention.map(|r| r.retain_until),
        legal_hold: v.lock.legal_hold,
    }
}

/// `force_lock` for the `Emulator` method.
pub fn force_lock_request(shared: &Shared, r: &LockRequest) -> B2Result<StoredVersion> {
    force_lock(shared, r).map(stored_version)
}
