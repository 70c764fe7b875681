//! `dest_download`: a file or a directory tree from the backup directory to local disk.

use std::path::{Path, PathBuf};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::{list, Destination, Report};
use crate::b2::api::FileVersion;
use crate::b2::download::{DownloadJob, DownloadedFile};
use crate::error::{Error, Result};
use crate::remote_path::{check_segments, EmptyPath, RemotePath};

pub async fn run(dest: &Destination, remote: &str, local: &Path) -> Result<Report> {
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Refused)?;
    let bucket = dest.bucket().await?;
    let range_size = dest.part_size().await?;
    let concurrency = dest.config.concurrency;
    if !remote.ends_with('/') {
        if let Some(version) =
            crate::b2::list::find_file(&dest.client, &bucket.id, &path.object_name).await?
        {
            let got = fetch(dest, &version, local, concurrency, range_size).await?;
            return Ok(Report::with(json!({
                "remote_path": path.relative, "size": got.size, "sha1": got.sha1, "verified": got.verified,
            })));
        }
    }
    let files = list::current_files(dest, &bucket.id, &path).await?;
    if files.is_empty() {
        return Err(Error::NotFound(format!(
            "nothing is stored at \"{}\" in the backup directory; list the destination to see what is there",
            path.relative
        )));
    }
    let prefix = path.dir_prefix();
    let mut plan: Vec<(PathBuf, &FileVersion, String)> = Vec::new();
    for f in &files {
        let sub = f.file_name.strip_prefix(&prefix).unwrap_or(&f.file_name);
        // A name written by another tool may hold '..': it must not lead outside `local`.
        check_segments(sub).map_err(|why| {
            Error::InvalidArgument(format!(
                "the stored file \"{}\" cannot be restored safely: its name {why}",
                f.file_name
            ))
        })?;
        plan.push((local.join(sub), f, sub.to_string()));
    }
    let per_file = (concurrency / plan.len().min(concurrency)).max(1);
    let work: Vec<_> = plan
        .iter()
        .map(|(target, version, sub)| async move {
            let got = fetch(dest, version, target, per_file, range_size).await?;
            let entry =
                json!({"path": sub, "size": got.size, "sha1": got.sha1, "verified": got.verified});
            Ok::<_, Error>((entry, got))
        })
        .collect();
    let restored: Vec<(Value, DownloadedFile)> = stream::iter(work)
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    let total: u64 = restored.iter().map(|(_, g)| g.size).sum();
    let verified = restored.iter().all(|(_, g)| g.verified);
    let entries: Vec<Value> = restored.into_iter().map(|(e, _)| e).collect();
    Ok(Report::with(json!({
        "remote_path": path.relative, "size": total, "verified": verified, "file_count": entries.len(), "files": entries,
    })))
}

async fn fetch(
    dest: &Destination,
    version: &FileVersion,
    local: &Path,
    concurrency: usize,
    range_size: u64,
) -> Result<DownloadedFile> {
    DownloadJob {
        client: &dest.client,
        version,
        dest: local,
        concurrency,
        range_size,
    }
    .run()
    .await
}
