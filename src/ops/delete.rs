//! `dest_delete`: every version of a backup file or tree, hide markers included, and its
//! unfinished large files, so the space (and the bill) really goes. Versions B2 Object
//! Lock holds stay, are counted, and make the status `DEST_ERR_LOCKED`.

use std::collections::HashSet;

use futures_util::stream::{self, StreamExt};
use serde_json::json;

use super::object_lock::{self, DeletePlan, Held};
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
    odd: super::OddEntries,
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
    let file_name = path.object_name.clone();
    let mut freed = Freed::default();
    let may_bypass = object_lock::may_bypass(dest).await?;
    let outcome = remove_all(dest, &bucket.id, &path, may_bypass, &mut freed).await;
    usage::adjust(dest, &bucket.id, &file_name, -(freed.bytes as i64));
    let mut report = Report::with(json!({
        "remote_path": path.relative,
        "deleted_versions": freed.versions,
        "bytes_freed": freed.bytes,
        "cancelled_large_files": freed.large_files_cancelled,
    }));
    freed.odd.warn(
        &mut report,
        "those with a file id were deleted like any other version",
    );
    let held = freed.held;
    if dest.object_lock().is_some() || held.versions > 0 {
        if let serde_json::Value::Object(more) = held.fields() {
            report.fields.extend(more);
        }
    }
    if let Err(e) = outcome {
        // What was deleted and what stays locked so far still counts for the host.
        report.failure = Some(e.with_note(&format!(
            "before it stopped, {} version(s) ({} bytes) were deleted and {} version(s) stay locked",
            freed.versions, freed.bytes, held.versions
        )));
        return Ok(report);
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

/// Deletes every version of `path` into `freed`. Hide markers go last, and only for names
/// none of whose versions Object Lock keeps: a locked backup must not reappear as current
/// in `dest_list` once its hide marker is gone.
async fn remove_all(
    dest: &Destination,
    bucket_id: &str,
    path: &RemotePath,
    may_bypass: bool,
    freed: &mut Freed,
) -> Result<()> {
    let client = &dest.client;
    let file_name = path.object_name.as_str();
    let dir_prefix = path.dir_prefix();
    let mut hides: Vec<FileVersion> = Vec::new();
    let mut held_names: HashSet<String> = HashSet::new();
    // One listing covers both the file and the tree below it; siblings that merely share
    // the prefix ("acct1" and "acct10") are passed over.
    let mut lister = FileLister::versions(bucket_id, file_name);
    while let Some(page) = lister.next_page(client).await? {
        let (hide, mine): (Vec<FileVersion>, Vec<FileVersion>) = page
            .into_iter()
            .filter(|v| v.file_name == file_name || v.file_name.starts_with(&dir_prefix))
            .inspect(|v| freed.odd.note(v))
            .filter(|v| v.action != Action::Folder)
            .partition(|v| v.action == Action::Hide);
        hides.extend(hide);
        tally(dest, bucket_id, &mine, may_bypass, freed, &mut held_names).await?;
        client.op.check_cancelled()?;
    }
    hides.retain(|h| !held_names.contains(&h.file_name));
    tally(dest, bucket_id, &hides, may_bypass, freed, &mut held_names).await
}

async fn tally(
    dest: &Destination,
    bucket_id: &str,
    versions: &[FileVersion],
    may_bypass: bool,
    freed: &mut Freed,
    held_names: &mut HashSet<String>,
) -> Result<()> {
    let work: Vec<_> = versions
        .iter()
        .map(|v| async move { (v, remove(dest, bucket_id, v, may_bypass).await) })
        .collect();
    let results: Vec<(&FileVersion, Result<Removed>)> = stream::iter(work)
        .buffer_unordered(dest.config.concurrency)
        .collect()
        .await;
    let mut failure = None;
    for (v, r) in results {
        match r {
            Ok(Removed::Freed(versions, bytes, cancelled)) => {
                freed.versions += versions;
                freed.bytes += bytes;
                freed.large_files_cancelled += cancelled as u64;
            }
            Ok(Removed::Held(bytes, until)) => {
                freed.held.add(bytes, until);
                held_names.insert(v.file_name.clone());
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    failure.map_or(Ok(()), Err)
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
    if v.file_id.is_none() {
        return Err(Error::Remote {
            message: format!(
                "{}; it cannot be deleted without one: delete it with Backblaze's web console, or try again later",
                v.unreadable().unwrap_or_default()
            ),
            retryable: false,
        });
    }
    let bytes = if v.is_stored() { v.bytes() } else { 0 };
    let bypass = match object_lock::delete_plan(v, may_bypass, crate::b2::wire::now_ms()) {
        DeletePlan::Held(until) => return Ok(Removed::Held(bytes, until)),
        DeletePlan::Delete { bypass } => bypass,
    };
    let request = DeleteFileVersion {
        bypass_governance: bypass,
        ..DeleteFileVersion::of(v)
    };
    let called = client.delete_file_version(&request).await;
    let freed = Removed::Freed(1, bytes, false);
    match called.result {
        Ok(_) => Ok(freed),
        // Held although the key could not read it so (or it was locked meanwhile).
        Err(Error::Locked(_)) => Ok(Removed::Held(
            bytes,
            v.lock()
                .active_retention(crate::b2::wire::now_ms())
                .map(|r| r.retain_until_timestamp),
        )),
        // B2 deleted it on a try whose answer was lost, and the retry found it gone.
        Err(Error::NotFound(_)) if called.unanswered => Ok(freed),
        // Already gone (another delete raced us): nothing left to free.
        Err(Error::NotFound(_)) => Ok(Removed::Freed(0, 0, false)),
        Err(e) => Err(e),
    }
}
