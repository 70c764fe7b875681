//! `dest_upload`: a file, or a directory tree, to the backup directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::{usage, Destination, Report};
use crate::b2::local_file::LocalFile;
use crate::b2::upload::{UploadJob, UploadedFile};
use crate::error::{Error, Result};
use crate::operation::LogLevel;
use crate::remote_path::{EmptyPath, RemotePath};

fn file_entry(path: &RemotePath, f: &UploadedFile) -> Value {
    json!({
        "remote_path": path.relative,
        "size": f.size,
        "sha1": f.sha1,
        "file_id": f.file_id,
        "resumed_bytes": f.resumed_bytes,
    })
}

pub async fn run(dest: &Destination, local: &Path, remote: &str) -> Result<Report> {
    dest.check_writable("upload")?;
    let root = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Refused)?;
    if remote.ends_with('/') {
        return Err(Error::InvalidArgument(
            "the remote path of an upload names the file or directory to create; remove the trailing '/'".into(),
        ));
    }
    let meta = std::fs::metadata(local).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound(format!(
            "the local path {} does not exist; check the path the backup gave",
            local.display()
        )),
        _ => Error::local_io("could not read", local, &e),
    })?;
    let bucket = dest.bucket().await?;
    usage::check_limit(dest, &bucket.id).await?;
    let part_size = dest.part_size().await?;
    let slots = Arc::new(Semaphore::new(dest.config.concurrency));

    if meta.is_file() {
        let file = LocalFile::open(local)?;
        dest.client.op.add_total(file.size());
        let done = upload_one(dest, &bucket.id, &root, &file, &slots, part_size).await?;
        return Ok(Report::with(file_entry(&root, &done)));
    }
    if !meta.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "{} is neither a regular file nor a directory",
            local.display()
        )));
    }
    let mut warnings = Vec::new();
    let tree = walk(local, &mut warnings)?;
    let mut jobs = Vec::with_capacity(tree.len());
    for (sub, path, len) in tree {
        jobs.push((root.child(&sub)?, path));
        dest.client.op.add_total(len);
    }
    // Files are opened only when their turn comes (a tree may hold more files than the
    // process may open); small files go `concurrency` at a time, and a large one's parts
    // share the same slots.
    let bucket_id = bucket.id.as_str();
    let slots = &slots;
    // After a failure no new file starts, but the ones under way run to their end (success
    // or their own clean-up): dropping them mid-way would leave unfinished large files.
    let failed = AtomicBool::new(false);
    let failed = &failed;
    let work: Vec<_> = jobs
        .iter()
        .map(|(remote_file, path)| async move {
            if failed.load(Ordering::SeqCst) {
                return None;
            }
            let attempt = async {
                let file = LocalFile::open(path)?;
                let done =
                    upload_one(dest, bucket_id, remote_file, &file, slots, part_size).await?;
                Ok::<_, Error>((file_entry(remote_file, &done), done.size))
            };
            let result = attempt.await;
            if result.is_err() {
                failed.store(true, Ordering::SeqCst);
            }
            Some(result)
        })
        .collect();
    let results: Vec<Option<Result<(Value, u64)>>> = stream::iter(work)
        .buffered(dest.config.concurrency)
        .collect()
        .await;
    let uploaded: Vec<(Value, u64)> = results.into_iter().flatten().collect::<Result<_>>()?;
    let total: u64 = uploaded.iter().map(|(_, size)| size).sum();
    let uploaded: Vec<Value> = uploaded.into_iter().map(|(v, _)| v).collect();
    let mut report = Report::with(json!({
        "remote_path": root.relative,
        "size": total,
        "file_count": uploaded.len(),
        "files": uploaded,
    }));
    report.warnings = warnings;
    Ok(report)
}

async fn upload_one(
    dest: &Destination,
    bucket_id: &str,
    remote: &RemotePath,
    file: &LocalFile,
    slots: &Arc<Semaphore>,
    part_size: u64,
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
    UploadJob {
        client: &dest.client,
        bucket_id,
        object_name: &remote.object_name,
        file,
        slots,
        concurrency: dest.config.concurrency,
        part_size,
        resume_window: dest.config.resume_window,
    }
    .run()
    .await
}

/// Every regular file below `root`, with its `/`-separated path relative to it, sorted.
/// Symbolic links are not followed: a backup tree that links outside itself would
/// otherwise upload what it points at.
fn walk(root: &Path, warnings: &mut Vec<String>) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut pending = vec![(String::new(), root.to_path_buf())];
    while let Some((prefix, dir)) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| Error::local_io("could not list", &dir, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::local_io("could not list", &dir, &e))?;
            let path = entry.path();
            let name = entry.file_name().into_string().map_err(|_| {
                Error::InvalidArgument(format!(
                    "{} has a name that is not UTF-8, which B2 file names must be; rename it",
                    path.display()
                ))
            })?;
            let sub = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(|e| Error::local_io("could not read", &path, &e))?;
            if kind.is_dir() {
                pending.push((sub, path));
            } else if kind.is_file() {
                let len = entry
                    .metadata()
                    .map_err(|e| Error::local_io("could not read", &path, &e))?
                    .len();
                out.push((sub, path, len));
            } else {
                warnings.push(format!(
                    "{} is not a regular file (a link, socket or device) and was skipped",
                    path.display()
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}
