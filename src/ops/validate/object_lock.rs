//! The Object Lock checks of `dest_validate`: capabilities, the bucket's setting, and the
//! retention of the probe (a minute, so it costs nothing for long; the next validate
//! removes the probes whose minute is over).

use super::Checks;
use crate::b2::api::FileVersion;
use crate::b2::list::FileLister;
use crate::b2::object_lock::{BucketLock, Retention, RetentionMode};
use crate::b2::session::Authorization;
use crate::b2::session::BucketInfo;
use crate::b2::wire::now_ms;
use crate::error::{Error, Result};
use crate::ops::object_lock::{self as policy, DeletePlan};
use crate::ops::Destination;

/// How long a probe stays locked.
pub const PROBE_LOCK_MS: u64 = 60_000;
pub const PROBE_PREFIX: &str = ".b2dest-probe-";

/// `object_lock_capabilities`: what the key needs to write and read retentions (and to
/// bypass governance when the destination asks to). False when it failed.
pub fn capabilities(dest: &Destination, auth: &Authorization, checks: &mut Checks) -> bool {
    let Some(lock) = dest.object_lock() else {
        return true;
    };
    let mut needed = vec!["readFileRetentions", "writeFileRetentions"];
    if lock.bypass_governance && lock.mode == RetentionMode::Governance {
        needed.push("bypassGovernance");
    }
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|c| !auth.has_capability(c))
        .collect();
    if missing.is_empty() {
        checks.pass(
            "object_lock_capabilities",
            format!("the key has {}", needed.join(", ")),
        );
        true
    } else {
        checks.fail(
            "object_lock_capabilities",
            Error::Permission(format!(
                "\"object_lock\" is set but the application key lacks {}: create a key with {} (besides listFiles, readFiles, writeFiles, deleteFiles){}",
                missing.join(", "),
                needed.join(", "),
                if missing.contains(&"bypassGovernance") {
                    ", or set \"bypass_governance\" to false"
                } else {
                    ""
                }
            )),
        );
        false
    }
}

fn describe_default(default: &Option<(RetentionMode, u64, String)>) -> String {
    match default {
        Some((mode, n, unit)) => format!(
            "a default retention of {n} {unit} in {} mode",
            mode.as_str()
        ),
        None => "no default retention".into(),
    }
}

/// `object_lock_bucket` (with `object_lock`), and the warning for a destination without
/// it on a bucket whose default retention would lock its backups anyway. `bucket` was
/// just read from B2.
pub fn bucket(
    dest: &Destination,
    bucket: &BucketInfo,
    checks: &mut Checks,
    warnings: &mut Vec<String>,
) -> BucketLock {
    let lock = policy::bucket_lock_of(bucket);
    if dest.object_lock().is_some() {
        match &lock {
            BucketLock::On(default) => checks.pass(
                "object_lock_bucket",
                format!(
                    "bucket \"{}\" has Object Lock enabled, with {}; this destination locks each backup itself",
                    bucket.name,
                    describe_default(default)
                ),
            ),
            BucketLock::Off => checks.fail(
                "object_lock_bucket",
                Error::Permission(format!(
                    "bucket \"{}\" does not have Object Lock enabled: {}",
                    bucket.name,
                    policy::ENABLE_LOCK
                )),
            ),
            BucketLock::Unknown => checks.fail(
                "object_lock_bucket",
                Error::Permission(format!(
                    "the Object Lock settings of bucket \"{}\" cannot be read: give the key readBucketRetentions (and listBuckets, or restrict it to this bucket)",
                    bucket.name
                )),
            ),
        }
    } else if let BucketLock::On(Some(default)) = &lock {
        warnings.push(format!(
            "bucket \"{}\" gives every new file {}, and this destination has no \"object_lock\": its deletes of backups younger than that will fail (DEST_ERR_LOCKED); set \"object_lock\" to match, or remove the default retention",
            bucket.name,
            describe_default(&Some(default.clone()))
        ));
    }
    lock
}

/// The retention the probe is written with: a minute in the destination's mode, or, on a
/// bucket with a default retention, a minute in governance mode instead of the default's
/// days (when the key may set one).
pub fn probe_retention(
    dest: &Destination,
    lock: &BucketLock,
    auth: &Authorization,
) -> Option<Retention> {
    let until = now_ms() + PROBE_LOCK_MS;
    match (dest.object_lock(), lock) {
        (Some(l), _) => Some(Retention {
            mode: l.mode,
            retain_until_timestamp: until,
        }),
        (None, BucketLock::On(Some(_))) if auth.has_capability("writeFileRetentions") => {
            Some(Retention {
                mode: RetentionMode::Governance,
                retain_until_timestamp: until,
            })
        }
        _ => None,
    }
}

/// B2 holds the retention the probe was written with (as far as the key may read it).
pub fn check_probe_retention(version: &FileVersion, wanted: &Retention) -> Result<()> {
    match version.lock().retention {
        // A mode B2 names in a way this library does not know, until the date asked, also
        // says B2 kept a lock on the probe, which is what this check asks.
        Some(Some(held)) if held.kept_until(wanted) => Ok(()),
        Some(held) => Err(Error::Remote {
            message: format!(
                "the probe file was written with {} retention until {} but B2 holds {:?}: B2 did not keep the lock",
                wanted.mode.as_str(),
                wanted.retain_until_timestamp,
                held
            ),
            retryable: false,
        }),
        None => Ok(()),
    }
}

/// Removes the probes of earlier validations whose lock is over; returns how many.
pub async fn sweep_old_probes(dest: &Destination, bucket: &BucketInfo) -> Result<u64> {
    let client = dest.client.detached();
    let prefix = format!("{}{PROBE_PREFIX}", dest.directory_prefix());
    let versions = FileLister::versions(&bucket.id, &prefix)
        .collect_all(&client)
        .await?;
    let now = now_ms();
    let mut removed = 0;
    for v in versions.iter().filter(|v| v.file_name.starts_with(&prefix)) {
        if let DeletePlan::Delete { .. } = policy::delete_plan(v, false, now) {
            let request = crate::b2::calls::DeleteFileVersion::of(v);
            match client.delete_file_version(&request).await.result {
                Ok(_) => removed += 1,
                Err(Error::Locked(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}
