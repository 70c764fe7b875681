//! `dest_download`: a file or a directory tree from the backup directory to local disk.
//!
//! The path the host names is resolved once, at the start (it may hold links of the host's
//! own: a `/home` on a symbolic link). Everything below it is created and written relative
//! to directory handles opened level by level without following links, so a link planted
//! by a customer at any moment is refused, never followed. A directory restore that fails
//! or is cancelled part-way keeps the files it completed (each verified whole) and says
//! which they are; nothing partial of the others is left.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use super::{list, Destination, Report};
use crate::b2::api::FileVersion;
use crate::b2::by_name::{self, Opened};
use crate::b2::download::{DownloadJob, DownloadedFile, Opening};
use crate::b2::encryption::{check_readable, explain_key_refusal};
use crate::b2::list::find_file;
use crate::b2::session::BucketInfo;
use crate::error::{Error, Result};
use crate::local::temp::{check_target, remove_stale_temps};
use crate::local::{make_dirs_below, Dir};
use crate::operation::LogLevel;
use crate::remote_path::{check_segments, EmptyPath, RemotePath};

pub async fn run(dest: &Destination, remote: &str, local: &Path) -> Result<Report> {
    let path = RemotePath::resolve(remote, &dest.config.backup_directory, EmptyPath::Refused)?;
    let bucket = dest.bucket().await?;
    let range_size = dest.part_size().await?;
    // A path ending in '/' is a directory; any other is first asked for by name.
    let by_name = !remote.ends_with('/');
    if by_name {
        if let Some(report) = restore_file(dest, &bucket, &path, local, range_size).await? {
            return Ok(report);
        }
    }
    let (files, odd) = list::current_files(dest, &bucket.id, &path, by_name).await?;
    if files.is_empty() {
        return Err(Error::NotFound(format!(
            "nothing is stored at \"{}\" in the backup directory; list the destination to see what is there",
            path.relative
        )));
    }
    restore_tree(dest, &path, local, &files, odd, range_size).await
}

/// Restores `files` (current ones, or those chosen as of a time) below `local`, each at
/// its path below `path`, concurrently; what a failure or a cancel leaves is reported.
pub(super) async fn restore_tree(
    dest: &Destination,
    path: &RemotePath,
    local: &Path,
    files: &[FileVersion],
    odd: super::OddEntries,
    range_size: u64,
) -> Result<Report> {
    let concurrency = dest.config.concurrency;
    let prefix = path.dir_prefix();
    let mut plan: Vec<(&FileVersion, String)> = Vec::new();
    for f in files {
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
        plan.push((f, sub.to_string()));
    }
    let root = Arc::new(
        Dir::open_or_create_named(local)
            .map_err(|e| Error::local_io("could not open or create the directory", local, &e))?,
    );
    // The directories (by their path below the target) whose leftovers were looked for.
    let cleaned: Mutex<HashSet<String>> = Mutex::default();
    let (cleaned, root) = (&cleaned, &root);
    let per_file = (concurrency / plan.len().min(concurrency)).max(1);
    // After a failure no new file starts; the ones under way finish or clean up after
    // themselves, so that the response can say exactly what is on disk.
    let failed = AtomicBool::new(false);
    let failed = &failed;
    let work: Vec<_> = plan
        .iter()
        .map(|(version, sub)| async move {
            if failed.load(Ordering::SeqCst) || dest.client.op.is_cancelled() {
                return Outcome::NotStarted(sub.clone());
            }
            let attempt = async {
                let (dir_sub, name) = split_sub(sub);
                // Each level opened afresh below the root's handle: a link planted since
                // the last file is refused, not followed.
                let dir = make_dirs_below(root, dir_sub)?;
                let first_visit = cleaned
                    .lock()
                    .map(|mut c| c.insert(dir_sub.to_string()))
                    .unwrap_or(false);
                if first_visit {
                    clean_stale(dest, &dir);
                }
                fetch(dest, version, &dir, OsStr::new(name), per_file, range_size).await
            };
            match attempt.await {
                Ok(got) => Outcome::Restored(
                    json!({"path": sub, "size": got.size, "sha1": got.sha1, "verified": got.verified,
                           "file_id": version.id(), "upload_ms": version.upload_timestamp}),
                    got,
                ),
                Err(e) => {
                    failed.store(true, Ordering::SeqCst);
                    Outcome::Failed(sub.clone(), e)
                }
            }
        })
        .collect();
    let outcomes: Vec<Outcome> = stream::iter(work)
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let (mut restored, mut failed_files, mut not_started) = (Vec::new(), Vec::new(), Vec::new());
    let mut failure: Option<Error> = None;
    for outcome in outcomes {
        match outcome {
            Outcome::Restored(entry, got) => restored.push((entry, got)),
            Outcome::Failed(sub, e) => {
                failed_files.push(json!({"path": sub, "reason": e.to_string()}));
                if failure.is_none() || matches!(failure, Some(Error::Cancelled)) {
                    failure = Some(e);
                }
            }
            Outcome::NotStarted(sub) => not_started.push(Value::from(sub)),
        }
    }
    if failure.is_none() && !not_started.is_empty() {
        failure = Some(Error::Cancelled);
    }
    let total: u64 = restored.iter().map(|(_, g)| g.size).sum();
    let unverified: Vec<String> = restored
        .iter()
        .filter_map(|(entry, g)| {
            let sub = entry["path"].as_str().unwrap_or_default();
            unverified_warning(sub, g, &local.join(sub))
        })
        .collect();
    let verified = restored.iter().all(|(_, g)| g.verified);
    let entries: Vec<Value> = restored.into_iter().map(|(e, _)| e).collect();
    let count = entries.len();
    let mut report = Report::with(json!({
        "remote_path": path.relative, "size": total, "verified": verified, "file_count": count, "files": entries,
    }));
    report.warnings = unverified;
    odd.warn(
        &mut report,
        "those taken as stored files were restored and checked like any other",
    );
    if let Some(e) = failure {
        let note = format!(
            "{count} file(s) were restored into {} before it stopped and are kept, each verified whole (listed in \"files\"); the other {} were not restored and nothing partial of them was left (\"failed\", \"not_started\")",
            local.display(),
            failed_files.len() + not_started.len()
        );
        report.fields.insert("failed".into(), failed_files.into());
        report
            .fields
            .insert("not_started".into(), not_started.into());
        report.failure = Some(e.with_note(&note));
    }
    Ok(report)
}

/// A single-file restore: the by-name download first, whose answer says what a listing
/// would, so no listing call is made. None when nothing is stored under exactly that name
/// (the path may be a directory).
async fn restore_file(
    dest: &Destination,
    bucket: &BucketInfo,
    path: &RemotePath,
    local: &Path,
    range_size: u64,
) -> Result<Option<Report>> {
    let client = &dest.client;
    let name = &path.object_name;
    let (parent, file_name) = split_target(local)?;
    // The target's directory opened, and the target checked, before B2 is asked, as a
    // restore from a listing did: a swap or a link planted during the download is met
    // by the handle and the rename, never followed. A directory still missing is made
    // only once the file is found.
    // (A target that is a directory is refused only once the path turns out to be a file:
    // a directory restore names one.)
    let (early, target_refused) = match Dir::open_named(parent) {
        Ok(dir) => {
            let dir = Arc::new(dir);
            let checked = check_target(&dir, file_name).err();
            (Some(dir), checked)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, None),
        Err(e) => return Err(Error::local_io("could not open the directory", parent, &e)),
    };
    let (version, opening) = match by_name::open(client, &bucket.name, name, range_size).await? {
        Opened::Found(version, answer, len) => (*version, Some(Opening::new(answer, len))),
        Opened::Missing => return Ok(None),
        Opened::Unreadable => match find_file(client, &bucket.id, name).await? {
            Some(version) => (version, None),
            None => return Ok(None),
        },
        // Refused (its SSE-C key, most likely): the listing says which key the file
        // needs, for the message, and whether it is SSE-C at all (a file stored before
        // SSE-C was configured is refused when sent a key; it goes by id without one).
        Opened::Refused(e, key_sent) => {
            let Some(version) = find_file(client, &bucket.id, name).await? else {
                return Err(e);
            };
            let target = local.to_path_buf();
            check_readable(&version, &client.encryption, &target)?;
            if version.encryption_mode() == Some("SSE-C") || !key_sent {
                return Err(explain_key_refusal(
                    e,
                    &version,
                    &client.encryption,
                    &target,
                ));
            }
            (version, None)
        }
    };
    if let Some(e) = target_refused {
        return Err(e);
    }
    let dir = match early {
        Some(dir) => dir,
        None => {
            let dir = Arc::new(Dir::open_or_create_named(parent).map_err(|e| {
                Error::local_io("could not open or create the directory", parent, &e)
            })?);
            check_target(&dir, file_name)?;
            dir
        }
    };
    clean_stale(dest, &dir);
    let got = DownloadJob {
        client,
        version: &version,
        dir: &dir,
        name: file_name,
        concurrency: dest.config.concurrency,
        range_size,
        opening,
    }
    .run()
    .await?;
    let mut report = Report::with(json!({
        "remote_path": path.relative, "size": got.size, "sha1": got.sha1, "verified": got.verified,
    }));
    report
        .warnings
        .extend(unverified_warning(&version.file_name, &got, local));
    Ok(Some(report))
}

enum Outcome {
    Restored(Value, DownloadedFile),
    Failed(String, Error),
    NotStarted(String),
}

/// `a/b/c` as (`a/b`, `c`); `c` as (``, `c`).
fn split_sub(sub: &str) -> (&str, &str) {
    sub.rsplit_once('/').unwrap_or(("", sub))
}

/// The directory and name of a single-file restore's target.
pub(super) fn split_target(local: &Path) -> Result<(&Path, &OsStr)> {
    let name = local.file_name().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{} does not name a file; give the path of the file to write",
            local.display()
        ))
    })?;
    let parent = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((parent, name))
}

pub(super) fn clean_stale(dest: &Destination, dir: &Dir) {
    let removed = remove_stale_temps(dir);
    if removed > 0 {
        dest.client.op.log(
            LogLevel::Info,
            format!(
                "removed {removed} private temporary directory(ies) that interrupted restores had left in {}",
                dir.path().display()
            ),
        );
    }
}

async fn fetch(
    dest: &Destination,
    version: &FileVersion,
    dir: &Arc<Dir>,
    name: &OsStr,
    concurrency: usize,
    range_size: u64,
) -> Result<DownloadedFile> {
    DownloadJob {
        client: &dest.client,
        version,
        dir,
        name,
        concurrency,
        range_size,
        opening: None,
    }
    .run()
    .await
}

/// Why a restored file is `"verified": false`, if it is.
fn unverified_warning(name: &str, got: &DownloadedFile, local: &Path) -> Option<String> {
    if !got.in_place {
        Some(format!(
            "{name} was restored with its SHA1 checked, but right after it was put at {} something else was there (the directory's owner replaced it): what is there now was not verified",
            local.display()
        ))
    } else if !got.verified {
        Some(format!("{name} was restored unverified: B2 holds no SHA1 for it (a large file uploaded by another tool without large_file_sha1)"))
    } else {
        None
    }
}
