//! `dest_delete`: every version of a backup file or tree, hide markers included, and its
//! unfinished large files, so the space (and the bill) really goes.

use futures_util::stream::{self, StreamExt};
use serde_json::json;

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
}

pub async fn run(dest: &Destination, remote: &str) -> Result<Report> {
    dest.check_writable("delete")?;
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Refused)?;
    let bucket = dest.bucket().await?;
    let client = &dest.client;
    let file_name = path.object_name.clone();
    let dir_prefix = path.dir_prefix();
    let mut freed = Freed::default();
    // One listing covers both the file and the tree below it; siblings that merely share
    // the prefix ("acct1" and "acct10") are passed over.
    let mut lister = FileLister::versions(&bucket.id, &file_name);
    while let Some(page) = lister.next_page(client).await? {
        let mine: Vec<FileVersion> = page
            .into_iter()
            .filter(|v| v.file_name == file_name || v.file_name.starts_with(&dir_prefix))
            .filter(|v| v.action != Action::Folder)
            .collect();
        let work: Vec<_> = mine.iter().map(|v| remove(dest, &bucket.id, v)).collect();
        let results: Vec<Result<(u64, u64, bool)>> = stream::iter(work)
            .buffer_unordered(dest.config.concurrency)
            .collect()
            .await;
        for r in results {
            let (versions, bytes, cancelled) = r?;
            freed.versions += versions;
            freed.bytes += bytes;
            freed.large_files_cancelled += cancelled as u64;
        }
        client.op.check_cancelled()?;
    }
    usage::adjust(dest, &bucket.id, &file_name, -(freed.bytes as i64));
    Ok(Report::with(json!({
        "remote_path": path.relative,
        "deleted_versions": freed.versions,
        "bytes_freed": freed.bytes,
        "cancelled_large_files": freed.large_files_cancelled,
    })))
}

/// Removes one version (or cancels one unfinished large file): (versions, bytes, cancelled).
async fn remove(dest: &Destination, bucket_id: &str, v: &FileVersion) -> Result<(u64, u64, bool)> {
    let client = &dest.client;
    if v.action == Action::Start {
        let bytes: u64 = list::parts(client, v.id())
            .await?
            .iter()
            .map(|p| p.content_length)
            .sum();
        return Ok(
            match upload::cancel_large_file(client, bucket_id, v.id(), &v.file_name).await? {
                true => (0, bytes, true),
                false => (0, 0, false),
            },
        );
    }
    let called = client.delete_file_version(&DeleteFileVersion::of(v)).await;
    let freed = (
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
        // B2 deleted it on a try whose answer was lost, and the retry found it gone.
        Err(Error::NotFound(_)) if called.unanswered => Ok(freed),
        // Already gone (another delete raced us): nothing left to free.
        Err(Error::NotFound(_)) => Ok((0, 0, false)),
        Err(e) => Err(e),
    }
}
