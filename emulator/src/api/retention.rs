//! Object Lock on the wire: the settings of buckets (`fileLockEnabled`,
//! `defaultRetention`), of versions (upload headers, `fileRetention` and `legalHold` in
//! b2_start_large_file), and the calls b2_update_file_retention and
//! b2_update_file_legal_hold. The rules themselves are in `store/locks.rs`.

use hyper::HeaderMap;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::auth::Key;
use crate::error::{B2Error, B2Result};
use crate::http::header_str;
use crate::store::{
    self, check_retention_change, BucketLock, BucketMeta, DefaultRetention, LockMode, LockReaders,
    PeriodUnit, Retention, VersionLock,
};

/// B2 supports retention periods of 1 to 3,000 days (Backblaze's Object Lock page).
const MAX_RETENTION_DAYS: u64 = 3_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFileRetentionReq {
    file_name: String,
    file_id: String,
    file_retention: Value,
    #[serde(default)]
    bypass_governance: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFileLegalHoldReq {
    file_name: String,
    file_id: String,
    legal_hold: String,
}

/// What the key may read of versions' locks.
pub fn readers(key: &Key) -> LockReaders {
    LockReaders {
        retention: key.has("readFileRetentions"),
        legal_hold: key.has("readFileLegalHolds"),
    }
}

fn bad(message: impl Into<String>) -> B2Error {
    B2Error::bad_request(message)
}

/// `{"mode": "governance", "retainUntilTimestamp": N}`; `{"mode": null}` is none.
pub fn parse_retention(value: &Value, field: &str) -> B2Result<Option<Retention>> {
    let Some(map) = value.as_object() else {
        return Err(bad(format!("{field} must be an object")));
    };
    let mode = match map.get("mode") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(m)) => LockMode::parse(m).ok_or_else(|| {
            bad(format!(
                "{field}.mode must be \"governance\", \"compliance\" or null, not {m:?}"
            ))
        })?,
        Some(_) => return Err(bad(format!("{field}.mode must be a string or null"))),
    };
    let retain_until = map
        .get("retainUntilTimestamp")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            bad(format!(
                "{field}.retainUntilTimestamp must be a number of ms"
            ))
        })?;
    Ok(Some(Retention { mode, retain_until }))
}

fn parse_legal_hold(s: &str) -> B2Result<bool> {
    match s.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(bad(format!(
            "legalHold must be \"on\" or \"off\", not {other:?}"
        ))),
    }
}

/// The checks every version setting passes: the bucket has Object Lock, the key may
/// write what is set, a retention ends in the future; then the bucket's default.
fn settle_version_lock(
    mut lock: VersionLock,
    bucket: &BucketMeta,
    key: &Key,
    now: u64,
) -> B2Result<VersionLock> {
    // "off" asks for nothing, wherever it is sent.
    if !bucket.lock.enabled && lock.legal_hold == Some(false) {
        lock.legal_hold = None;
    }
    if !lock.is_none() && !bucket.lock.enabled {
        return Err(bad(format!(
            "bucket {} does not have Object Lock enabled: retention and legal hold cannot be set",
            bucket.name
        )));
    }
    if lock.retention.is_some() {
        key.require("writeFileRetentions")?;
    }
    if lock.legal_hold.is_some() {
        key.require("writeFileLegalHolds")?;
    }
    if let Some(r) = lock.retention {
        if r.retain_until <= now {
            return Err(bad("the retain-until timestamp must be in the future"));
        }
    }
    if lock.retention.is_none() {
        if let Some(d) = bucket.lock.default_retention {
            lock.retention = Some(Retention {
                mode: d.mode,
                retain_until: now.saturating_add(d.millis()),
            });
        }
    }
    Ok(lock)
}

/// The lock of a b2_upload_file: `X-Bz-File-Retention-Mode` with
/// `X-Bz-File-Retention-Retain-Until-Timestamp`, and `X-Bz-File-Legal-Hold`.
pub fn lock_from_headers(
    headers: &HeaderMap,
    bucket: &BucketMeta,
    key: &Key,
) -> B2Result<VersionLock> {
    let mode = header_str(headers, "x-bz-file-retention-mode").map(str::trim);
    let until = header_str(headers, "x-bz-file-retention-retain-until-timestamp").map(str::trim);
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(m), Some(u)) => Some(Retention {
            mode: LockMode::parse(m).ok_or_else(|| {
                bad(format!(
                    "X-Bz-File-Retention-Mode must be governance or compliance, not {m:?}"
                ))
            })?,
            retain_until: u.parse().map_err(|_| {
                bad("X-Bz-File-Retention-Retain-Until-Timestamp must be ms since the epoch")
            })?,
        }),
        _ => return Err(bad(
            "X-Bz-File-Retention-Mode and X-Bz-File-Retention-Retain-Until-Timestamp go together",
        )),
    };
    let legal_hold = header_str(headers, "x-bz-file-legal-hold")
        .map(parse_legal_hold)
        .transpose()?;
    // Any other X-Bz-File-Retention-* header is a typo a client should hear about.
    for name in headers.keys() {
        let n = name.as_str();
        if n.starts_with("x-bz-file-retention-")
            && n != "x-bz-file-retention-mode"
            && n != "x-bz-file-retention-retain-until-timestamp"
        {
            return Err(bad(format!("unknown Object Lock header {n}")));
        }
    }
    settle_version_lock(
        VersionLock {
            retention,
            legal_hold,
        },
        bucket,
        key,
        store::now_millis(),
    )
}

/// The lock of a b2_start_large_file: `fileRetention` and `legalHold`.
pub fn lock_from_json(
    extra: &Map<String, Value>,
    bucket: &BucketMeta,
    key: &Key,
) -> B2Result<VersionLock> {
    let retention = match extra.get("fileRetention") {
        None | Some(Value::Null) => None,
        Some(v) => parse_retention(v, "fileRetention")?,
    };
    let legal_hold = match extra.get("legalHold") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_legal_hold(s)?),
        Some(_) => return Err(bad("legalHold must be \"on\" or \"off\"")),
    };
    settle_version_lock(
        VersionLock {
            retention,
            legal_hold,
        },
        bucket,
        key,
        store::now_millis(),
    )
}

/// `defaultRetention: {"mode", "period": {"duration", "unit"}}` or `{"mode": null}`.
fn parse_default_retention(value: &Value) -> B2Result<Option<DefaultRetention>> {
    let map = value
        .as_object()
        .ok_or_else(|| bad("defaultRetention must be an object"))?;
    let mode = match map.get("mode") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(m)) => LockMode::parse(m).ok_or_else(|| {
            bad(format!(
                "defaultRetention.mode must be governance, compliance or null, not {m:?}"
            ))
        })?,
        Some(_) => return Err(bad("defaultRetention.mode must be a string or null")),
    };
    let period = map
        .get("period")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("defaultRetention.period {duration, unit} is required with a mode"))?;
    let duration = period
        .get("duration")
        .and_then(Value::as_u64)
        .filter(|d| *d > 0)
        .ok_or_else(|| bad("defaultRetention.period.duration must be a positive whole number"))?;
    let unit = match period.get("unit").and_then(Value::as_str) {
        Some("days") => PeriodUnit::Days,
        Some("years") => PeriodUnit::Years,
        _ => {
            return Err(bad(
                "defaultRetention.period.unit must be \"days\" or \"years\"",
            ))
        }
    };
    let d = DefaultRetention {
        mode,
        duration,
        unit,
    };
    if d.millis() > MAX_RETENTION_DAYS * 86_400_000 {
        return Err(bad(format!(
            "a retention period may be at most {MAX_RETENTION_DAYS} days"
        )));
    }
    Ok(Some(d))
}

/// The bucket's lock after a b2_create_bucket / b2_update_bucket (None: not asked to
/// change). Written flat; the read shape `fileLockConfiguration` is refused.
pub fn bucket_lock(
    extra: &Map<String, Value>,
    current: BucketLock,
    key: &Key,
) -> B2Result<Option<BucketLock>> {
    if extra.contains_key("fileLockConfiguration") {
        return Err(bad(
            "fileLockConfiguration is what b2_list_buckets answers; set fileLockEnabled and defaultRetention instead",
        ));
    }
    let enabled = extra.get("fileLockEnabled").filter(|v| !v.is_null());
    let default = extra.get("defaultRetention").filter(|v| !v.is_null());
    if enabled.is_none() && default.is_none() {
        return Ok(None);
    }
    key.require("writeBucketRetentions")?;
    let mut lock = current;
    if let Some(v) = enabled {
        lock.enabled = v
            .as_bool()
            .ok_or_else(|| bad("fileLockEnabled must be true or false"))?
            || current.enabled;
        if current.enabled && v == &Value::Bool(false) {
            return Err(B2Error::new(
                400,
                "file_lock_conflict",
                "fileLockEnabled value of false is not allowed when bucket is already file lock enabled",
            ));
        }
    }
    if let Some(v) = default {
        lock.default_retention = parse_default_retention(v)?;
        if lock.default_retention.is_some() && !lock.enabled {
            return Err(bad(
                "defaultRetention needs Object Lock on the bucket: set fileLockEnabled: true",
            ));
        }
    }
    Ok(Some(lock))
}

impl Ctx<'_> {
    pub(crate) fn update_file_retention(&self, req: UpdateFileRetentionReq) -> B2Result<Value> {
        self.key.require("writeFileRetentions")?;
        let new = parse_retention(&req.file_retention, "fileRetention")?;
        self.lockable(&req.file_id)?;
        let bypass = req.bypass_governance && self.key.has("bypassGovernance");
        let v = self
            .shared
            .store
            .change_lock(&req.file_name, &req.file_id, |v, bucket| {
                if !bucket.enabled {
                    return Err(bad(format!(
                        "the bucket of {} does not have Object Lock enabled",
                        v.name
                    )));
                }
                check_retention_change(v, new, bypass, store::now_millis())?;
                Ok(VersionLock {
                    retention: new,
                    ..v.lock
                })
            })?;
        Ok(json!({
            "fileId": v.file_id(),
            "fileName": v.name,
            "fileRetention": {
                "mode": v.lock.retention.map(|r| r.mode.as_str()),
                "retainUntilTimestamp": v.lock.retention.map(|r| r.retain_until),
            },
        }))
    }

    pub(crate) fn update_file_legal_hold(&self, req: UpdateFileLegalHoldReq) -> B2Result<Value> {
        self.key.require("writeFileLegalHolds")?;
        let on = parse_legal_hold(&req.legal_hold)?;
        self.lockable(&req.file_id)?;
        let v = self
            .shared
            .store
            .change_lock(&req.file_name, &req.file_id, |v, bucket| {
                if !bucket.enabled {
                    return Err(bad(format!(
                        "the bucket of {} does not have Object Lock enabled",
                        v.name
                    )));
                }
                Ok(VersionLock {
                    legal_hold: Some(on),
                    ..v.lock
                })
            })?;
        Ok(json!({
            "fileId": v.file_id(),
            "fileName": v.name,
            "legalHold": if on { "on" } else { "off" },
        }))
    }

    /// A stored file version (not a hide marker or unfinished file) the key may reach.
    fn lockable(&self, file_id: &str) -> B2Result<store::Version> {
        let v = self.shared.store.version_by_id(file_id).ok_or_else(|| {
            B2Error::new(
                400,
                "file_not_present",
                format!("file not present: {file_id}"),
            )
        })?;
        self.bucket(&v.bucket_id)?;
        self.key.require_name(&v.name)?;
        if v.action != store::Action::Upload {
            return Err(bad(format!(
                "{file_id} is a {}, not a file: Object Lock applies to stored files",
                v.action.as_str()
            )));
        }
        Ok(v)
    }
}
