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
            let mut report = Report::with(json!({
                "remote_path": path.relative, "size": got.size, "sha1": got.sha1, "verified": got.verified,
            }));
            if !got.verified {
                report.warnings.push(unverified_warning(&version.file_name));
            }
            return Ok(report);
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
        // The path itself named a file ("x/" given for the file x): it lands in `local`.
        let sub = match f.file_name.strip_prefix(&prefix) {
            Some(sub) => sub,
            None => f.file_name.rsplit('/').next().unwrap_or(&f.file_name),
        };
        // A name written by another tool may hold '..': it must not lead outside `local`.
        check_segments(sub).map_err(|why| {
            Error::InvalidArgument(format!(
                "the stored file \"{}\" cannot be restored safely: its name {why}",
                f.file_name
            ))
        })?;
        refuse_links(local, sub)?;
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
    let unverified: Vec<String> = restored
        .iter()
        .filter(|(_, g)| !g.verified)
        .map(|(entry, _)| unverified_warning(entry["path"].as_str().unwrap_or_default()))
        .collect();
    let verified = restored.iter().all(|(_, g)| g.verified);
    let entries: Vec<Value> = restored.into_iter().map(|(e, _)| e).collect();
    let mut report = Report::with(json!({
        "remote_path": path.relative, "size": total, "verified": verified, "file_count": entries.len(), "files": entries,
    }));
    report.warnings = unverified;
    Ok(report)
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

/// A directory below `local` that is a symbolic link could send a restore (often run as
/// root) anywhere on the machine: refuse it rather than follow it.
fn refuse_links(local: &Path, sub: &str) -> Result<()> {
    let mut at = local.to_path_buf();
    for segment in sub.split('/') {
        at.push(segment);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::LocalIo(format!(
                    "{} is a symbolic link; a restore does not follow links below its target directory: remove it or restore elsewhere",
                    at.display()
                )))
            }
            Ok(_) => {}
            Err(_) => return Ok(()), // nothing there yet: it will be created as a directory
        }
    }
    Ok(())
}

fn unverified_warning(name: &str) -> String {
    format!("{name} was restored unverified: B2 holds no SHA1 for it (a large file uploaded by another tool without large_file_sha1)")
}
