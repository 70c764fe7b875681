//! `dest_usage`: what the backup directory costs on B2, every version counted.

use serde_json::json;

use super::{Destination, Report};
use crate::b2::api::Action;
use crate::b2::list::{self, FileLister};
use crate::b2::object_lock::BucketLock;
use crate::b2::upload;
use crate::error::{Error, Result};
use crate::operation::LogLevel;
use crate::runtime::process_state;
use crate::usage_cache::USAGE_MAX_AGE;

/// Records in the process's usage cache what an upload added or a delete freed.
pub fn adjust(dest: &Destination, bucket_id: &str, object_name: &str, delta: i64) {
    if let Ok(state) = process_state() {
        state
            .usage
            .adjust(&dest.usage_key(bucket_id), object_name, delta);
    }
}

#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub used_bytes: u64,
    pub files: u64,
    pub versions: u64,
    pub hide_markers: u64,
    pub unfinished_large_files: u64,
    /// Unfinished large files of this library nobody resumed within the resume window,
    /// cancelled by this measurement.
    pub cancelled_large_files: u64,
    /// Versions Object Lock holds now, as far as the key may read.
    pub held: super::object_lock::Held,
    /// Versions whose retention the key may not read (no `readFileRetentions`).
    pub lock_unreadable: u64,
    /// Entries B2 listed that this library could not fully read: how many, and what was
    /// wrong with the first few (see `FileVersion::unreadable`).
    pub odd_entries: super::OddEntries,
}

/// Lists every version under the backup directory (and the parts of unfinished large
/// files, which B2 bills too).
pub async fn measure(dest: &Destination, bucket_id: &str) -> Result<Usage> {
    let client = &dest.client;
    let mut usage = Usage::default();
    let mut lister = FileLister::versions(bucket_id, &dest.directory_prefix());
    let mut last_name: Option<String> = None;
    while let Some(page) = lister.next_page(client).await? {
        for v in page {
            // Versions come newest first within a name: the first one says if it is current.
            let first_of_name = last_name.as_deref() != Some(v.file_name.as_str());
            usage.odd_entries.note(&v);
            match v.action {
                _ if v.is_stored() => {
                    usage.versions += 1;
                    usage.used_bytes += v.bytes();
                    let lock = v.lock();
                    if lock.retention.is_none() {
                        usage.lock_unreadable += 1;
                    }
                    usage.held.count(&v, &lock, crate::b2::wire::now_ms());
                    if first_of_name {
                        usage.files += 1;
                    }
                }
                Action::Hide => usage.hide_markers += 1,
                Action::Start if v.file_id.is_some() => {
                    let parts = list::parts(client, v.id()).await?;
                    let window = dest.config.b2.resume_window;
                    if upload::is_abandoned(&v, &parts, window, crate::b2::wire::now_ms()) {
                        match upload::cancel_large_file(client, bucket_id, v.id(), &v.file_name)
                            .await
                        {
                            Ok(cancelled) => {
                                usage.cancelled_large_files += cancelled as u64;
                                continue;
                            }
                            Err(e) => client.op.log(
                                LogLevel::Warn,
                                format!(
                                    "could not cancel the abandoned unfinished upload of {}: {e}",
                                    v.file_name
                                ),
                            ),
                        }
                    }
                    usage.unfinished_large_files += 1;
                    usage.used_bytes += parts.iter().map(|p| p.content_length).sum::<u64>();
                }
                _ => {}
            }
            if v.action != Action::Start {
                last_name = Some(v.file_name);
            }
        }
        client.op.check_cancelled()?;
    }
    process_state()?
        .usage
        .store(dest.usage_key(bucket_id), usage.used_bytes);
    Ok(usage)
}

/// Whether `used` is at or over the destination's free disk space limit.
pub fn limit_reached(dest: &Destination, used: u64) -> bool {
    match (dest.config.free_disk_space_limit, dest.config.quota_bytes) {
        (limit, Some(quota)) if limit > 0 => {
            (used as u128) * 100 >= (limit as u128) * (quota as u128)
        }
        _ => false,
    }
}

/// Refuses a new upload when the limit is reached, using a figure at most five minutes old.
pub async fn check_limit(dest: &Destination, bucket_id: &str) -> Result<()> {
    if dest.config.free_disk_space_limit == 0 {
        return Ok(());
    }
    let cached = process_state()?
        .usage
        .get(&dest.usage_key(bucket_id), USAGE_MAX_AGE);
    let used = match cached {
        Some(used) => used,
        None => measure(dest, bucket_id).await?.used_bytes,
    };
    if limit_reached(dest, used) {
        let quota = dest.config.quota_bytes.unwrap_or(0);
        return Err(Error::Limit(format!(
            "the destination uses {used} of its {quota} bytes, at or over its free disk space limit of {}%: delete old backups or raise the limit",
            dest.config.free_disk_space_limit
        )));
    }
    Ok(())
}

pub async fn run(dest: &Destination) -> Result<Report> {
    let bucket = dest.bucket().await?;
    let u = measure(dest, &bucket.id).await?;
    let mut fields = json!({
        "used_bytes": u.used_bytes,
        "files": u.files,
        "versions": u.versions,
        "hide_markers": u.hide_markers,
        "unfinished_large_files": u.unfinished_large_files,
        "cancelled_large_files": u.cancelled_large_files,
        "limit_reached": limit_reached(dest, u.used_bytes),
    });
    // On a bucket without Object Lock nothing can be locked, whatever the key may read.
    let lock = super::object_lock::bucket_lock_of(&bucket);
    let unreadable = u.lock_unreadable > 0 && lock != BucketLock::Off;
    let held = if unreadable {
        super::object_lock::Held::unknown_fields()
    } else {
        u.held.fields()
    };
    if let (serde_json::Value::Object(fields), serde_json::Value::Object(held)) =
        (&mut fields, held)
    {
        fields.extend(held);
        fields.insert("lock_readable".into(), (!unreadable).into());
    }
    if let Some(quota) = dest.config.quota_bytes {
        fields["total_bytes"] = quota.into();
        fields["free_bytes"] = quota.saturating_sub(u.used_bytes).into();
        fields["used_percent"] =
            ((u.used_bytes as f64 / quota as f64 * 10_000.0).round() / 100.0).into();
    }
    let mut report = Report::with(fields);
    u.odd_entries.warn(
        &mut report,
        "counted in used_bytes with the length B2 gave (0 where none)",
    );
    if unreadable {
        report.warnings.push(format!(
            "the application key lacks readFileRetentions, so it cannot tell whether {} version(s) are locked (lock_readable: false, the locked figures null): give the key readFileRetentions to see them",
            u.lock_unreadable
        ));
    }
    Ok(report)
}
