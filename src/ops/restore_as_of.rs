//! `dest_download_as_of`: a file or a tree as it was at a time T (per name the newest
//! upload at or before T; names hidden or absent at T are not restored), or one version
//! by its file id. Every file goes through `DownloadJob` as in `dest_download`: SHA1
//! checked, temporary file renamed into place, SSE-C, progress and cancel.

use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use super::download::{clean_stale, restore_tree, split_target};
use super::recovery::{decider_at, for_each_name, under, RecoveryOptions};
use super::{Destination, Report};
use crate::b2::api::FileVersion;
use crate::b2::calls::GetFileInfo;
use crate::b2::download::{DownloadJob, DownloadedFile};
use crate::error::{Error, Result};
use crate::local::Dir;
use crate::remote_path::{relative_to, EmptyPath, RemotePath};

pub async fn run(
    dest: &Destination,
    remote: &str,
    local: &Path,
    options: &RecoveryOptions,
) -> Result<Report> {
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Allowed)?;
    let range_size = dest.part_size().await?;
    match (&options.file_id, options.as_of_ms) {
        (Some(id), _) => by_id(dest, &path, local, id, range_size).await,
        (None, Some(t)) => as_of(dest, remote, &path, local, t, range_size).await,
        (None, None) => Err(Error::InvalidArgument(
            "options_json: give field \"as_of_ms\" or field \"file_id\"".into(),
        )),
    }
}

async fn by_id(
    dest: &Destination,
    path: &RemotePath,
    local: &Path,
    file_id: &str,
    range_size: u64,
) -> Result<Report> {
    let version = dest.client.get_file_info(&GetFileInfo { file_id }).await?;
    if !version.is_stored() {
        return Err(Error::InvalidArgument(format!(
            "options_json: file_id {file_id} is a \"{}\" entry of {}, not a stored file",
            version.action.as_str(),
            version.file_name
        )));
    }
    if !under(path, &version.file_name) {
        return Err(Error::InvalidArgument(format!(
            "options_json: file_id {file_id} is a version of {}, which is not at \"{}\" in the backup directory",
            version.file_name, path.relative
        )));
    }
    let got = restore_one(dest, &version, local, range_size).await?;
    Ok(Report::with(one_file(dest, &version, &got)))
}

fn one_file(dest: &Destination, v: &FileVersion, got: &DownloadedFile) -> serde_json::Value {
    json!({
        "remote_path": relative_to(&v.file_name, &dest.config.backup_directory)
            .unwrap_or_else(|| v.file_name.clone()),
        "size": got.size, "sha1": got.sha1, "verified": got.verified,
        "file_id": v.id(), "upload_ms": v.upload_timestamp,
    })
}

/// One version written at `local` (a file path).
async fn restore_one(
    dest: &Destination,
    version: &FileVersion,
    local: &Path,
    range_size: u64,
) -> Result<DownloadedFile> {
    let (parent, name) = split_target(local)?;
    let dir = Arc::new(
        Dir::open_or_create_named(parent)
            .map_err(|e| Error::local_io("could not open or create the directory", parent, &e))?,
    );
    clean_stale(dest, &dir);
    DownloadJob {
        client: &dest.client,
        version,
        dir: &dir,
        name,
        concurrency: dest.config.concurrency,
        range_size,
        opening: None,
    }
    .run()
    .await
}

async fn as_of(
    dest: &Destination,
    remote: &str,
    path: &RemotePath,
    local: &Path,
    t: u64,
    range_size: u64,
) -> Result<Report> {
    let bucket = dest.bucket().await?;
    let mut chosen: Vec<FileVersion> = Vec::new();
    let (mut hidden, mut absent) = (0u64, 0u64);
    let odd = for_each_name(dest, &bucket.id, path, |versions| {
        match decider_at(&versions, t) {
            Some((i, true)) => chosen.push(versions[i].clone()),
            Some((_, false)) => hidden += 1,
            None => absent += 1,
        }
        Ok(())
    })
    .await?;
    if chosen.is_empty() {
        return Err(Error::NotFound(format!(
            "nothing was stored at \"{}\" in the backup directory at {t} (ms since 1970); list its versions to see what is there",
            path.relative
        )));
    }
    let single = !remote.ends_with('/')
        && !path.relative.is_empty()
        && chosen.len() == 1
        && chosen[0].file_name == path.object_name;
    let mut report = if single {
        let got = restore_one(dest, &chosen[0], local, range_size).await?;
        Report::with(one_file(dest, &chosen[0], &got))
    } else {
        restore_tree(dest, path, local, &chosen, odd, range_size).await?
    };
    report.fields.insert("as_of_ms".into(), t.into());
    report
        .fields
        .insert("hidden_at_as_of".into(), hidden.into());
    report
        .fields
        .insert("absent_at_as_of".into(), absent.into());
    Ok(report)
}
