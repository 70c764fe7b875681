//! The host's side of B2 Object Lock: what an upload needs before its first byte, which
//! versions a delete may touch, and the figures usage and delete report of what stays.

use serde_json::{json, Value};

use super::Destination;
use crate::b2::api::FileVersion;
use crate::b2::object_lock::{BucketLock, ObjectLockSettings, RetentionMode, VersionLock};
use crate::b2::session::BucketInfo;
use crate::error::{Error, Result};

pub const ENABLE_LOCK: &str = "enable Object Lock on the bucket in the Backblaze web console (Buckets, Object Lock: Enabled; it cannot be turned off again) or with b2_update_bucket fileLockEnabled: true";
const KEY_CAPS: &str = "create an application key with readFileRetentions and writeFileRetentions (and readBucketRetentions) besides listFiles, readFiles, writeFiles and deleteFiles";

/// The bucket's Object Lock as `bucket` (the session's copy) says.
pub fn bucket_lock_of(bucket: &BucketInfo) -> BucketLock {
    bucket
        .details
        .as_ref()
        .map_or(BucketLock::Unknown, |b| b.lock())
}

/// The bucket's Object Lock as far as this key can see, read again from B2 when the
/// session's copy says off (it may have been enabled since).
pub async fn bucket_lock(dest: &Destination, bucket: &BucketInfo) -> Result<BucketLock> {
    let lock = bucket_lock_of(bucket);
    if lock == BucketLock::Off {
        let now = dest.client.bucket_now(&bucket.name).await?;
        return Ok(now
            .details
            .as_ref()
            .map_or(BucketLock::Unknown, |b| b.lock()));
    }
    Ok(lock)
}

/// The lock policy uploads apply, once B2 is known to honour it: the bucket has Object
/// Lock and the key may write retentions and read them back (what B2 then holds is how a
/// resume and a lost answer are judged). Checked before any byte; each file's retention
/// is counted from its own start.
pub async fn upload_lock(
    dest: &Destination,
    bucket: &BucketInfo,
) -> Result<Option<ObjectLockSettings>> {
    let Some(policy) = dest.object_lock() else {
        return Ok(None);
    };
    let auth = dest.client.authorization().await?;
    let missing: Vec<&str> = ["readFileRetentions", "writeFileRetentions"]
        .into_iter()
        .filter(|c| !auth.has_capability(c))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Permission(format!(
            "this destination has \"object_lock\" but its application key lacks the {} capability, so no upload could be locked and its lock checked: {KEY_CAPS}",
            missing.join(" and ")
        )));
    }
    check_clock(dest, bucket).await?;
    match bucket_lock(dest, bucket).await? {
        BucketLock::On(_) => Ok(Some(policy)),
        BucketLock::Off => Err(Error::Permission(format!(
            "bucket \"{}\" does not have Object Lock enabled, so the backups of this destination (\"object_lock\" is set) could not be locked: {ENABLE_LOCK}",
            bucket.name
        ))),
        BucketLock::Unknown => Err(Error::Permission(format!(
            "the application key may not read the Object Lock settings of bucket \"{}\" (readBucketRetentions, and listBuckets or a key restricted to the bucket), so it cannot be known that uploads will be locked: {KEY_CAPS}",
            bucket.name
        ))),
    }
}

/// How far this machine's clock may be from B2's before a lock is refused.
const MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

/// Retain-until is counted on this machine's clock: one behind B2's locks for less than
/// promised, one ahead for longer, which in compliance mode nobody can undo. B2's clock
/// is read from the `Date` of an answer this operation got (one bucket listing if none).
pub async fn check_clock(dest: &Destination, bucket: &BucketInfo) -> Result<()> {
    let op = &dest.client.op;
    if op.b2_clock_offset().is_none() {
        dest.client.bucket_now(&bucket.name).await?;
    }
    let Some(offset) = op.b2_clock_offset() else {
        return Ok(());
    };
    if offset.abs() <= MAX_CLOCK_SKEW_MS {
        return Ok(());
    }
    Err(Error::Config(format!(
        "this server's clock is {} s {} B2's, so an Object Lock retain-until counted from it would be wrong ({}); nothing was locked: set the clock right (NTP) and try again",
        offset.unsigned_abs() / 1000,
        if offset > 0 { "behind" } else { "ahead of" },
        if offset > 0 {
            "shorter than retention_days"
        } else {
            "longer than retention_days, which in compliance mode nobody can shorten"
        }
    )))
}

/// What a delete does with one version.
pub enum DeletePlan {
    /// Delete it; `bypass`: with `bypassGovernance`.
    Delete { bypass: bool },
    /// Object Lock holds it: leave it, until this time (None: no known end).
    Held(Option<u64>),
}

/// Whether this destination may bypass governance: it asks for it and its key may.
pub async fn may_bypass(dest: &Destination) -> Result<bool> {
    if !dest.object_lock().is_some_and(|l| l.bypass_governance) {
        return Ok(false);
    }
    Ok(dest
        .client
        .authorization()
        .await?
        .has_capability("bypassGovernance"))
}

/// A version B2 would refuse to delete is not sent to B2 at all; one whose lock the key
/// cannot read is tried, and B2 says.
pub fn delete_plan(v: &FileVersion, may_bypass: bool, now: u64) -> DeletePlan {
    let lock = v.lock();
    if lock.legal_hold == Some(true) {
        return DeletePlan::Held(None);
    }
    match (lock.retention, lock.active_retention(now)) {
        (_, Some(r)) if r.mode == RetentionMode::Governance && may_bypass => {
            DeletePlan::Delete { bypass: true }
        }
        (_, Some(r)) => DeletePlan::Held(Some(r.retain_until_timestamp)),
        (None, _) => DeletePlan::Delete { bypass: may_bypass },
        (Some(_), None) => DeletePlan::Delete { bypass: false },
    }
}

/// Versions Object Lock keeps: how many, their bytes, and when the first and last go free.
#[derive(Default, Debug, Clone, Copy)]
pub struct Held {
    pub versions: u64,
    pub bytes: u64,
    pub earliest_ms: Option<u64>,
    pub latest_ms: Option<u64>,
    /// Held with no known end: a legal hold, or a refusal whose retention was not readable.
    pub without_end: u64,
}

impl Held {
    pub fn add(&mut self, bytes: u64, until: Option<u64>) {
        self.versions += 1;
        self.bytes += bytes;
        match until {
            Some(t) => {
                self.earliest_ms = Some(self.earliest_ms.map_or(t, |e| e.min(t)));
                self.latest_ms = Some(self.latest_ms.map_or(t, |l| l.max(t)));
            }
            None => self.without_end += 1,
        }
    }

    /// Counts `v` when it is held at `now` as far as the key can read.
    pub fn count(&mut self, v: &FileVersion, lock: &VersionLock, now: u64) {
        if let Some(until) = lock.held(now) {
            self.add(v.bytes(), until);
        }
    }

    /// The figures when the key could not read some retentions on a bucket with Object
    /// Lock: not known, so null rather than a zero that reads as "nothing locked".
    pub fn unknown_fields() -> Value {
        json!({
            "lock_readable": false,
            "locked_versions": null,
            "locked_bytes": null,
            "earliest_unlock_ms": null,
            "latest_unlock_ms": null,
        })
    }

    pub fn fields(&self) -> Value {
        json!({
            "locked_versions": self.versions,
            "locked_bytes": self.bytes,
            "earliest_unlock_ms": self.earliest_ms,
            "latest_unlock_ms": self.latest_ms,
        })
    }
}

/// A list entry's Object Lock fields, when the key may read them; a retention it may not
/// read is `retention_readable: false`, never the look of "no lock".
pub fn entry_fields(v: &FileVersion) -> Vec<(&'static str, Value)> {
    let lock = v.lock();
    let mut fields = Vec::new();
    if v.file_retention.as_ref().is_some_and(|r| r.refused()) {
        fields.push(("retention_readable", json!(false)));
    }
    if let Some(retention) = lock.retention {
        fields.push((
            "retain_until_ms",
            json!(retention.map(|r| r.retain_until_timestamp)),
        ));
        // A mode this library does not know is shown as B2 wrote it.
        let mode = v
            .file_retention
            .as_ref()
            .and_then(|r| r.value.as_ref())
            .and_then(|r| r.mode.clone());
        let shown = retention.map(|r| match r.mode {
            RetentionMode::Unknown => mode.unwrap_or_default(),
            known => known.as_str().to_string(),
        });
        fields.push(("retention_mode", json!(shown)));
    }
    if let Some(hold) = lock.legal_hold {
        fields.push(("legal_hold", json!(hold)));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(retention: Value) -> FileVersion {
        serde_json::from_value(json!({
            "fileId": "i", "fileName": "f", "action": "upload", "contentLength": 1,
            "fileRetention": {"isClientAuthorizedToRead": true, "value": retention}
        }))
        .unwrap()
    }

    #[test]
    fn a_retention_mode_b2_adds_is_held_and_never_bypassed() {
        let v = version(json!({"mode": "frozen", "retainUntilTimestamp": 100}));
        assert!(matches!(
            delete_plan(&v, true, 50),
            DeletePlan::Held(Some(100))
        ));
        assert!(matches!(
            delete_plan(&v, true, 150),
            DeletePlan::Delete { bypass: false }
        ));
        let shown = entry_fields(&v);
        assert!(
            shown.contains(&("retention_mode", json!("frozen"))),
            "{shown:?}"
        );
        let v = version(json!({"mode": "governance", "retainUntilTimestamp": 100}));
        assert!(matches!(
            delete_plan(&v, true, 50),
            DeletePlan::Delete { bypass: true }
        ));
        assert!(matches!(
            delete_plan(&v, false, 50),
            DeletePlan::Held(Some(100))
        ));
        assert!(entry_fields(&v).contains(&("retention_mode", json!("governance"))));
    }
}
