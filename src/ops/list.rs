//! `dest_list`: the current files under a remote path.

use serde_json::{json, Value};

use super::{Destination, OddEntries, Report};
use crate::b2::api::FileVersion;
use crate::b2::list::{self, FileLister};
use crate::error::Result;
use crate::remote_path::{relative_to, EmptyPath, RemotePath};

pub fn entry(dest: &Destination, f: &FileVersion) -> Value {
    let mut entry = json!({
        "path": relative_to(&f.file_name, &dest.config.backup_directory).unwrap_or_else(|| f.file_name.clone()),
        "size": f.length(),
        "sha1": f.whole_sha1(),
        "modified_ms": f.modified_ms(),
        "file_id": f.id(),
        // "SSE-B2", "SSE-C" or "none"; for SSE-C, the MD5 of the key a restore needs.
        "encryption": f.encryption_mode().unwrap_or("none"),
        "customer_key_md5": f.recorded_key_md5(),
    });
    for (k, v) in super::lock::entry_fields(f) {
        entry[k] = v;
    }
    entry
}

/// The current files at `path`: the file itself, or everything below it, and the entries
/// B2 listed there that could not be fully read.
pub async fn current_files(
    dest: &Destination,
    bucket_id: &str,
    path: &RemotePath,
) -> Result<(Vec<FileVersion>, OddEntries)> {
    let mut odd = OddEntries::default();
    let mut files: Vec<FileVersion> = FileLister::names(bucket_id, &path.dir_prefix())
        .collect_all(&dest.client)
        .await?
        .into_iter()
        .inspect(|f| odd.note(f))
        .filter(FileVersion::is_stored)
        .collect();
    if files.is_empty() && !path.relative.is_empty() {
        let found = list::find_file(&dest.client, bucket_id, &path.object_name).await?;
        found.iter().for_each(|f| odd.note(f));
        files.extend(found);
    }
    Ok((files, odd))
}

pub async fn run(dest: &Destination, remote: &str) -> Result<Report> {
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Allowed)?;
    let bucket = dest.bucket().await?;
    let (files, odd) = current_files(dest, &bucket.id, &path).await?;
    let entries: Vec<Value> = files.iter().map(|f| entry(dest, f)).collect();
    let mut report = Report::with(
        json!({"remote_path": path.relative, "count": entries.len(), "entries": entries}),
    );
    odd.warn(&mut report, "those taken as stored files are listed");
    Ok(report)
}
