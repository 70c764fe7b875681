//! `dest_delete`: every version of a backup file or tree, hide markers included, and its
//! unfinished large files, so the space (and the bill) really goes. Versions B2 Object
//! Lock holds stay, are counted, and make the status `DEST_ERR_LOCKED`.

use futures_util::stream::{self, StreamExt};
use serde_json::json;

use super::lock::{self, DeletePlan, Held};
use super::{usage, Destination, Report};
use crate::b2::api::{Action, FileVersion};
use crate::b2::calls::DeleteFileVersion;
use crate::b2::list::{self, FileLister};
use crate::b2::upload;
use crate::error::{Error, Result};
use crate::remote_path::{EmptyPath, RemotePath};

#[derive(Default)]
struct Freed {
    versions: u64,
    bytes: u64,
    large_files_cancelled: u64,
    held: Held,
}

/// What became of one version.
enum Removed {
    /// (versions, bytes, cancelled large file)
    Freed(u64, u64, bool),
    /// Object Lock keeps it: bytes, and until when if known.
    Held(u64, Option<u64>),
}

pub async fn run(dest: &Destination, remote: &str) -> Result<Report> {
    dest.check_writable("delete")?;
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Refused)?;
    let bucket = dest.bucket().await?;
    let client = &dest.client;
    let file_name = path.object_name.clone();
    let dir_prefix = path.dir_prefix();
    let mut freed = Freed::default();
    let may_bypass = lock::may_bypass(dest).await?;
    // One listing covers both the file and the tree below it; siblings that merely share
    // the prefix ("acct1" and "acct10") are passed over.
    let mut lister = FileLister::versions(&bucket.id, &file_name);
    while let Some(page) = lister.next_page(client).await? {
        let mine: Vec<FileVersion> = page
            .into_iter()
            .filter(|v| v.file_name == file_name || v.file_name.starts_with(&dir_prefix))
            .filter(|v| v.action != Action::Folder)
            .collect();
        let work: Vec<_> = mine
            .iter()
            .map(|v| remove(dest, &bucket.id, v, may_bypass))
            .collect();
        let results: Vec<Result<Removed>> = stream::iter(work)
            .buffer_unordered(dest.config.concurrency)
            .collect()
            .await;
        for r in results {
            match r? {
                Removed::Freed(versions, bytes, cancelled) => {
                    freed.versions += versions;
                    freed.bytes += bytes;
                    freed.large_files_cancelled += cancelled as u64;
                }
                Removed::Held(bytes, until) => freed.held.add(bytes, until),
            }
        }
        client.op.check_cancelled()?;
    }
    usage::adjust(dest, &bucket.id, &file_name, -(freed.bytes as i64));
    let mut report = Report::with(json!({
        "remote_path": path.relative,
        "deleted_versions": freed.versions,
        "bytes_freed": freed.bytes,
        "cancelled_large_files": freed.large_files_cancelled,
    }));
    let held = freed.held;
    if dest.object_lock().is_some() || held.versions > 0 {
        if let serde_json::Value::Object(more) = held.fields() {
            report.fields.extend(more);
        }
    }
    if held.versions > 0 {
        let until = match held.earliest_ms {
            Some(t) => format!(
                "the first of them goes free at {} ({t} ms)",
                crate::b2::upload::utc_time(t)
            ),
            None => {
                "their lock has no known end (a legal hold, or a retention this key may not read)"
                    .to_string()
            }
        };
        report.failure = Some(Error::Locked(format!(
            "B2 Object Lock keeps {} version(s) ({} bytes) under {}: everything else was deleted ({} version(s), {} bytes); {until}. Try the delete again after that, not before; a retention ends only on its date{}",
            held.versions,
            held.bytes,
            path.relative,
            freed.versions,
            freed.bytes,
            if held.without_end > 0 {
                format!(", and {} version(s) are held with no known end", held.without_end)
            } else {
                String::new()
            }
        )));
    }
    Ok(report)
}

/// Removes one version (or cancels one unfinished large file), unless Object Lock holds it.
async fn remove(
    dest: &Destination,
    bucket_id: &str,
    v: &FileVersion,
    may_bypass: bool,
) -> Result<Removed> {
    let client = &dest.client;
    if v.action == Action::Start {
        let bytes: u64 = list::parts(client, v.id())
            .await?
            .iter()
            .map(|p| p.content_length)
            .sum();
        return Ok(
            match upload::cancel_large_file(client, bucket_id, v.id(), &v.file_name).await? {
                true => Removed::Freed(0, bytes, true),
                false => Removed::Freed(0, 0, false),
            },
        );
    }
    let bytes = if v.action == Action::Upload {
        v.content_length
    } else {
        0
    };
    let bypass = match lock::delete_plan(v, may_bypass, upload::now_ms()) {
        DeletePlan::Held(until) => return Ok(Removed::Held(bytes, until)),
        DeletePlan::Delete { bypass } => bypass,
    };
    let request = DeleteFileVersion {
        bypass_governance: bypass,
        ..DeleteFileVersion::of(v)
    };
    let called = client.delete_file_version(&request).await;
    let freed = Removed::Freed(
        1,
        if v.action == Action::Upload {
            v.content_length
        } else {
            0
        },
        false,
    );
    match called.result {
        Ok(_) => Ok(freed),
        // Held although the key could not read it so (or it was locked meanwhile).
        Err(Error::Locked(_)) => Ok(Removed::Held(
            bytes,
            v.lock()
                .active_retention(upload::now_ms())
                .map(|r| r.retain_until_timestamp),
        )),
        // B2 deleted it on a try whose answer was lost, and the retry found it gone.
        Err(Error::NotFound(_)) if called.unanswered => Ok(freed),
        // Already gone (another delete raced us): nothing left to free.
        Err(Error::NotFound(_)) => Ok(Removed::Freed(0, 0, false)),
        Err(e) => Err(e),
    }
}
