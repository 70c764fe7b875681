//! `dest_upload`: a file, or a directory tree, to the backup directory.
//!
//! A directory is walked through directory handles (`local/walk.rs`), and each file opened
//! relative to its directory's handle when its turn comes, refused unless it is still the
//! file the walk saw. A file that
//! cannot be uploaded (an odd name, unreadable, swapped, changing while read) is skipped
//! and listed in `skipped`, and the rest of the tree still goes up (`DEST_OK` with a
//! warning), unless the configuration asks for `strict`. A directory upload that fails or
//! is cancelled part-way says which files went up (`files`) and which did not (`failed`,
//! `not_started`); the files that went up stay on B2, each one whole.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::{usage, Destination, Report};
use crate::b2::upload::{KeptCopies, KeptCopy, UploadJob, UploadedFile};
use crate::b2::wire::now_ms;
use crate::error::{Error, Result};
use crate::local::file::LocalFile;
use crate::local::walk::{Walk, WalkItem};
use crate::local::{open_named, Named};
use crate::operation::LogLevel;
use crate::remote_path::{EmptyPath, RemotePath};

fn file_entry(path: &RemotePath, f: &UploadedFile) -> Value {
    let mut entry = json!({
        "remote_path": path.relative,
        "size": f.size,
        "sha1": f.sha1,
        "file_id": f.file_id,
        "resumed_bytes": f.resumed_bytes,
    });
    if let Some(r) = &f.retention {
        entry["retain_until_ms"] = r.retain_until_timestamp.into();
        entry["retention_mode"] = r.mode.as_str().into();
    }
    entry
}

pub async fn run(dest: &Destination, local: &Path, remote: &str) -> Result<Report> {
    dest.check_writable("upload")?;
    let root = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Refused)?;
    if remote.ends_with('/') {
        return Err(Error::InvalidArgument(
            "the remote path of an upload names the file or directory to create; remove the trailing '/'".into(),
        ));
    }
    let named = open_named(local)?;
    let bucket = dest.bucket().await?;
    usage::check_limit(dest, &bucket.id).await?;
    let part_size = dest.part_size().await?;
    // Before any byte: the lock this destination promises must be one B2 will keep.
    let lock = super::object_lock::upload_lock(dest, &bucket).await?;
    let job = JobSettings { part_size, lock };
    let slots = Arc::new(Semaphore::new(dest.config.concurrency));
    let kept = KeptCopies::default();
    let kept = &kept;

    let root_dir = match named {
        Named::File(file) => {
            dest.client.op.add_total(file.size());
            let done = upload_one(dest, &bucket.id, &root, &file, &slots, job, kept).await;
            let mut report = match done {
                Ok(done) => Report::with(file_entry(&root, &done)),
                Err(e) if kept_copies(kept).is_empty() => return Err(e),
                Err(e) => Report {
                    failure: Some(e),
                    ..Report::default()
                },
            };
            report.warnings.extend(file.sparse_warning());
            tell_kept(&mut report, kept);
            return Ok(report);
        }
        Named::Dir(dir) => Arc::new(dir),
    };
    let walk = Walk::new(root_dir, root.clone(), dest.client.op.clone());
    let warnings = walk.warnings.clone();
    let bucket_id = bucket.id.as_str();
    let slots = &slots;
    // After a failure no new file starts, but the ones under way run to their end (success
    // or their own clean-up): dropping them mid-way would leave unfinished large files. The
    // walk goes on (listing only) so that the response can name every file not uploaded.
    let failed = AtomicBool::new(false);
    let failed = &failed;
    let strict = dest.config.strict;
    let file_warnings = &warnings;
    let work = walk.map(|item| async move {
        let WalkItem::File {
            remote,
            dir,
            name,
            seen,
        } = item
        else {
            let WalkItem::Skip { local_path, reason } = item else {
                unreachable!("two kinds of item")
            };
            // Strict: the first such file fails the upload; any later one is only listed.
            if strict && !failed.swap(true, Ordering::SeqCst) {
                return Outcome::Failed(local_path, Error::LocalIo(reason));
            }
            return Outcome::Skipped(local_path, reason);
        };
        let local_path = dir.display(&name);
        if failed.load(Ordering::SeqCst) || dest.client.op.is_cancelled() {
            return Outcome::NotStarted(local_path);
        }
        let attempt = async {
            let file = LocalFile::open_in(&dir, &name, seen)?;
            if let Some(w) = file.sparse_warning() {
                file_warnings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(w);
            }
            upload_one(dest, bucket_id, &remote, &file, slots, job, kept).await
        };
        match attempt.await {
            Ok(done) => Outcome::Uploaded(file_entry(&remote, &done), done.size),
            Err(e) if is_file_level(&e) && (!strict || failed.swap(true, Ordering::SeqCst)) => {
                Outcome::Skipped(local_path, e.to_string())
            }
            Err(e) => {
                failed.store(true, Ordering::SeqCst);
                Outcome::Failed(local_path, e)
            }
        }
    });
    let outcomes: Vec<Outcome> = stream::iter(work)
        .buffered(dest.config.concurrency)
        .collect()
        .await;

    let (mut files, mut skipped, mut failed_files, mut not_started) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut total = 0u64;
    let mut failure: Option<Error> = None;
    let mut report_warnings =
        std::mem::take(&mut *warnings.lock().unwrap_or_else(|e| e.into_inner()));
    for outcome in outcomes {
        match outcome {
            Outcome::Uploaded(entry, size) => {
                total += size;
                files.push(entry);
            }
            Outcome::Skipped(path, reason) => {
                report_warnings.push(format!("skipped: {reason}"));
                skipped.push(json!({"local_path": path.to_string_lossy(), "reason": reason}));
            }
            Outcome::Failed(path, e) => {
                failed_files
                    .push(json!({"local_path": path.to_string_lossy(), "reason": e.to_string()}));
                // The first real failure decides; a cancel seen by later files follows it.
                if failure.is_none() || matches!(failure, Some(Error::Cancelled)) {
                    failure = Some(e);
                }
            }
            Outcome::NotStarted(path) => not_started.push(Value::from(path.to_string_lossy())),
        }
    }
    if failure.is_none() && !not_started.is_empty() {
        // Cancelled between two files: nothing failed, but the host asked to stop.
        failure = Some(Error::Cancelled);
    }
    if !skipped.is_empty() {
        report_warnings.push(format!(
            "{} file(s) could not be uploaded and were skipped (listed in \"skipped\"); the rest of the tree was uploaded: upload those again once the reason is fixed",
            skipped.len()
        ));
    }
    let uploaded = files.len();
    let mut report = Report::with(json!({
        "remote_path": root.relative,
        "size": total,
        "file_count": uploaded,
        "files": files,
        "skipped": skipped,
    }));
    if let Some(e) = failure {
        let note = format!(
            "{uploaded} file(s) of the tree were uploaded before it stopped and are kept on B2, each one whole (listed in \"files\"); {} file(s) were not uploaded (\"failed\": under way when it stopped, nothing of them kept; \"not_started\"; \"skipped\")",
            failed_files.len() + not_started.len() + report.fields["skipped"].as_array().map_or(0, Vec::len)
        );
        report.fields.insert("failed".into(), failed_files.into());
        report
            .fields
            .insert("not_started".into(), not_started.into());
        report.failure = Some(e.with_note(&note));
    }
    report.warnings = report_warnings;
    tell_kept(&mut report, kept);
    Ok(report)
}

fn kept_copies(kept: &KeptCopies) -> Vec<KeptCopy> {
    kept.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Copies B2 kept although the upload failed (a clean-up delete it refused, most often
/// for Object Lock): listed in `kept_on_b2`, with a warning, so nobody reads the failure
/// as "nothing was kept".
fn tell_kept(report: &mut Report, kept: &KeptCopies) {
    let kept = kept_copies(kept);
    if kept.is_empty() {
        return;
    }
    for k in &kept {
        report.warnings.push(k.note());
    }
    let list: Vec<Value> = kept
        .iter()
        .map(|k| {
            json!({
                "object_name": k.object_name,
                "file_id": k.file_id,
                "retain_until_ms": k.retain_until_ms,
            })
        })
        .collect();
    report.fields.insert("kept_on_b2".into(), list.into());
}

/// A failure that concerns one local file alone (its name, its reading, its changing), so
/// that the rest of the tree can still go up.
fn is_file_level(e: &Error) -> bool {
    matches!(
        e,
        Error::LocalIo(_) | Error::NotFound(_) | Error::InvalidArgument(_)
    )
}

enum Outcome {
    Uploaded(Value, u64),
    Skipped(PathBuf, String),
    Failed(PathBuf, Error),
    NotStarted(PathBuf),
}

async fn upload_one(
    dest: &Destination,
    bucket_id: &str,
    remote: &RemotePath,
    file: &LocalFile,
    slots: &Arc<Semaphore>,
    job: JobSettings,
    kept: &KeptCopies,
) -> Result<UploadedFile> {
    dest.client.op.check_cancelled()?;
    dest.client.op.log(
        LogLevel::Info,
        format!(
            "uploading {} ({} bytes) to {}",
            file.path.display(),
            file.size(),
            remote.object_name
        ),
    );
    let done = UploadJob {
        client: &dest.client,
        bucket_id,
        object_name: &remote.object_name,
        file,
        slots,
        concurrency: dest.config.concurrency,
        part_size: job.part_size,
        resume_window: dest.client.session.resume_window,
        // Counted from this file's start, not the operation's: a long tree upload would
        // lock its last files for less (and past retention_days, B2 would refuse them).
        retention: job.lock.map(|l| l.retention_from(now_ms())),
        kept: Some(kept),
    }
    .run()
    .await?;
    usage::adjust(dest, bucket_id, &done.object_name, done.size as i64);
    Ok(done)
}

/// What every file of one upload shares: the part size, and the Object Lock policy.
#[derive(Clone, Copy)]
struct JobSettings {
    part_size: u64,
    lock: Option<crate::b2::object_lock::ObjectLockSettings>,
}
