//! `dest_protect`: moves the Object Lock retention of existing backups forward to now +
//! `retention_days` (the continuous-protection pattern: keep the last N days locked).
//! Only forward: a retention already as long is left alone, compliance stays compliance,
//! and the library never asks B2 to shorten anything.

use futures_util::stream::{self, StreamExt};
use serde_json::json;

use super::{Destination, Report};
use crate::b2::api::FileVersion;
use crate::b2::calls::UpdateFileRetention;
use crate::b2::list::FileLister;
use crate::b2::object_lock::Retention;
use crate::b2::upload::utc_time;
use crate::b2::wire::now_ms;
use crate::error::{Error, Result};
use crate::remote_path::{EmptyPath, RemotePath};

/// What one version needs: the retention to set, or nothing (already as long and strong).
fn extension(v: &FileVersion, target: &Retention, now: u64) -> Result<Option<Retention>> {
    let current = v.lock().retention.ok_or_else(|| {
        Error::Permission(
            "the application key may not read file retentions, so protecting could shorten one: give the key readFileRetentions".into(),
        )
    })?;
    let current = current.filter(|r| r.retain_until_timestamp > now);
    Ok(match current {
        Some(cur) if cur.covers(target) => None,
        // Never weaker, never shorter than what B2 holds now.
        Some(cur) => Some(Retention {
            mode: cur.mode.strongest(target.mode),
            retain_until_timestamp: cur
                .retain_until_timestamp
                .max(target.retain_until_timestamp),
        }),
        None => Some(*target),
    })
}

pub async fn run(dest: &Destination, remote: &str) -> Result<Report> {
    dest.check_writable("change retentions")?;
    let policy = dest.object_lock().ok_or_else(|| {
        Error::Config(
            "dest_protect needs \"object_lock\" in the configuration (its mode and retention_days say how long to protect)".into(),
        )
    })?;
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Allowed)?;
    let bucket = dest.bucket().await?;
    let auth = dest.client.authorization().await?;
    for cap in ["readFileRetentions", "writeFileRetentions"] {
        if !auth.has_capability(cap) {
            return Err(Error::Permission(format!(
                "the application key lacks the {cap} capability, which protecting backups needs: create a key with readFileRetentions and writeFileRetentions"
            )));
        }
    }
    if !matches!(
        super::object_lock::bucket_lock(dest, &bucket).await?,
        crate::b2::object_lock::BucketLock::On(_)
    ) {
        return Err(Error::Permission(format!(
            "bucket \"{}\" does not have Object Lock enabled: {}",
            bucket.name,
            super::object_lock::ENABLE_LOCK
        )));
    }
    super::object_lock::check_clock(dest, &bucket).await?;
    let now = now_ms();
    let target = policy.retention_from(now);
    let mut done = Done::default();
    let outcome = extend_all(dest, &bucket.id, &path, &target, now, &mut done).await;
    let mut report = Report::with(json!({
        "remote_path": path.relative,
        "extended_versions": done.extended,
        "unchanged_versions": done.unchanged,
        "retention_mode": policy.mode.as_str(),
        "retain_until_ms": target.retain_until_timestamp,
        "retain_until": utc_time(target.retain_until_timestamp),
        "latest_unlock_ms": (done.latest > 0).then_some(done.latest),
    }));
    if let Err(e) = outcome {
        // The versions already extended stay so: the host learns how far it got.
        report.failure = Some(e.with_note(&format!(
            "before it stopped, {} version(s) were extended and {} already held as long (extended_versions, unchanged_versions); run it again to protect the rest",
            done.extended, done.unchanged
        )));
    }
    Ok(report)
}

#[derive(Default)]
struct Done {
    extended: u64,
    unchanged: u64,
    latest: u64,
}

async fn extend_all(
    dest: &Destination,
    bucket_id: &str,
    path: &RemotePath,
    target: &Retention,
    now: u64,
    done: &mut Done,
) -> Result<()> {
    let (file_name, dir_prefix) = (path.object_name.clone(), path.dir_prefix());
    let mut lister = FileLister::versions(bucket_id, &file_name);
    while let Some(page) = lister.next_page(&dest.client).await? {
        let mine: Vec<FileVersion> = page
            .into_iter()
            .filter(|v| {
                (!path.relative.is_empty() && v.file_name == file_name)
                    || v.file_name.starts_with(&dir_prefix)
            })
            .filter(|v| v.is_stored())
            .collect();
        let mut work = Vec::new();
        for v in &mine {
            match extension(v, target, now)? {
                None => {
                    done.unchanged += 1;
                    if let Some(Some(r)) = v.lock().retention {
                        done.latest = done.latest.max(r.retain_until_timestamp);
                    }
                }
                Some(r) => work.push(async move {
                    dest.client
                        .update_file_retention(&UpdateFileRetention {
                            file_name: &v.file_name,
                            file_id: v.id(),
                            file_retention: &r,
                        })
                        .await
                        .map(|a| a.held(&r))
                }),
            }
        }
        let results: Vec<Result<Retention>> = stream::iter(work)
            .buffer_unordered(dest.config.concurrency)
            .collect()
            .await;
        let mut failure = None;
        for r in results {
            match r {
                Ok(r) => {
                    done.extended += 1;
                    done.latest = done.latest.max(r.retain_until_timestamp);
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        dest.client.op.check_cancelled()?;
    }
    Ok(())
}
