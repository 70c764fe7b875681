//! `dest_upload`: a file, or a directory tree, to the backup directory.
//!
//! A directory is walked through directory handles: each subdirectory is opened relative to
//! its parent's handle without following links, and each file relative to its directory's
//! handle when its turn comes, refused unless it is still the file the walk saw. A file that
//! cannot be uploaded (an odd name, unreadable, swapped, changing while read) is skipped
//! and listed in `skipped`, and the rest of the tree still goes up (`DEST_OK` with a
//! warning), unless the configuration asks for `strict`. A directory upload that fails or
//! is cancelled part-way says which files went up (`files`) and which did not (`failed`,
//! `not_started`); the files that went up stay on B2, each one whole.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::{usage, Destination, Report};
use crate::b2::upload::{KeptCopies, KeptCopy, UploadJob, UploadedFile};
use crate::b2::wire::now_ms;
use crate::error::{Error, Result};
use crate::local::file::LocalFile;
use crate::local::sys::{is_link_error, EntryKind};
use crate::local::{open_named, shown, Dir, Named};
use crate::operation::{LogLevel, Operation};
use crate::remote_path::{check_segments, EmptyPath, RemotePath, MAX_NAME_BYTES};

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

enum WalkItem {
    /// A regular file `name` in `dir`, as the walk saw it (device, inode).
    File {
        remote: RemotePath,
        dir: Arc<Dir>,
        name: OsString,
        seen: (u64, u64),
    },
    /// A file or directory that cannot be uploaded, and why (the reason names it).
    Skip { local_path: PathBuf, reason: String },
}

/// A subdirectory still to list: the depth of its parent in `Walk::chain`, its name, its
/// `/`-path below the root, and the device and inode the walk saw.
type PendingDir = (usize, OsString, String, (u64, u64));

/// The walk of a directory tree, depth first, each directory's entries in byte order,
/// listed only when the upload reaches it. It holds a handle on the root, on the directory
/// listed last and on those of the files under way, never one per level or per file: a
/// customer's tree of any depth cannot use up the host process's open files. The parent of
/// the next directory to list is reached back through `..`, checked against the device and
/// inode the walk saw at that level (or, when a customer moved something, opened again
/// from the root, level by level, with the same check).
struct Walk {
    root: RemotePath,
    /// Progress: each file's size counts in the total as soon as the walk sees it.
    op: Arc<Operation>,
    root_dir: Arc<Dir>,
    /// The directory listed last.
    current: Arc<Dir>,
    /// From the root down to `current`: each level's name (empty for the root) and identity.
    chain: Vec<(OsString, (u64, u64))>,
    pending: Vec<PendingDir>,
    queue: VecDeque<WalkItem>,
    /// Entries that are neither files nor directories: skipped by design, not failures.
    warnings: Arc<Mutex<Vec<String>>>,
}

impl Walk {
    fn new(root_dir: Arc<Dir>, root: RemotePath, op: Arc<Operation>) -> Walk {
        let root_id = crate::local::dir::identity_of_dir(&root_dir).unwrap_or_default();
        let mut walk = Walk {
            root,
            op,
            root_dir: root_dir.clone(),
            current: root_dir.clone(),
            chain: vec![(OsString::new(), root_id)],
            pending: Vec::new(),
            queue: VecDeque::new(),
            warnings: Arc::default(),
        };
        walk.list(root_dir, String::new());
        walk
    }

    /// The directory at `depth` of the chain, now `current`.
    fn climb_to(&mut self, depth: usize) -> std::io::Result<Arc<Dir>> {
        while self.chain.len() > depth + 1 {
            let want = self.chain[self.chain.len() - 2].1;
            let up = self.current.parent()?;
            if crate::local::dir::identity_of_dir(&up)? != want {
                return self.descend_to(depth);
            }
            self.chain.pop();
            self.current = Arc::new(up);
        }
        Ok(self.current.clone())
    }

    /// Opens the chain down to `depth` again from the root, each level checked.
    fn descend_to(&mut self, depth: usize) -> std::io::Result<Arc<Dir>> {
        self.chain.truncate(depth + 1);
        let mut at = self.root_dir.clone();
        for (name, want) in &self.chain[1..] {
            let next = at.subdir(name)?;
            if crate::local::dir::identity_of_dir(&next)? != *want {
                return Err(std::io::Error::other(
                    "a directory above it was moved or replaced during the backup",
                ));
            }
            at = Arc::new(next);
        }
        self.current = at.clone();
        Ok(at)
    }

    fn skip(&mut self, local_path: PathBuf, reason: String) {
        self.queue.push_back(WalkItem::Skip { local_path, reason });
    }

    fn list(&mut self, dir: Arc<Dir>, prefix: String) {
        let names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                let reason = Error::local_io("could not list", dir.path(), &e).to_string();
                return self.skip(dir.path().to_path_buf(), reason);
            }
        };
        let mut subdirs = Vec::new();
        // `dir` is `current`, the deepest of the chain.
        let depth = self.chain.len() - 1;
        for name in names {
            let path = dir.display(&name);
            // The name is the customer's: messages show it escaped.
            let shown = shown(&path);
            let Some(text) = name.to_str() else {
                let reason = format!(
                    "{shown} has a name that is not UTF-8, which B2 file names must be: rename it"
                );
                self.skip(path, reason);
                continue;
            };
            let stat = match dir.stat_at(&name) {
                Ok(Some(s)) => s,
                Ok(None) => continue, // removed since the listing: nothing to back up
                Err(e) => {
                    let reason =
                        Error::local_io("could not read", Path::new(&shown), &e).to_string();
                    self.skip(path, reason);
                    continue;
                }
            };
            if !matches!(stat.kind, EntryKind::File | EntryKind::Dir) {
                if let Ok(mut w) = self.warnings.lock() {
                    w.push(format!(
                        "{shown} is not a regular file (a link, socket or device) and was skipped"
                    ));
                }
                continue;
            }
            if let Err(why) = check_segments(text) {
                let reason = format!("{shown} cannot be uploaded: its name {why}; rename it");
                self.skip(path, reason);
                continue;
            }
            let sub = if prefix.is_empty() {
                text.to_string()
            } else {
                format!("{prefix}/{text}")
            };
            if stat.kind == EntryKind::Dir {
                // No file below fits B2's names: not walked (a handle a level, each name
                // listed and refused one by one, for a tree a customer can make any depth).
                if self.root.child(&format!("{sub}/x")).is_err() {
                    let reason = format!(
                        "{shown} is too deep: the B2 name of any file below it would be over {MAX_NAME_BYTES} bytes; nothing below it was uploaded"
                    );
                    self.skip(path, reason);
                    continue;
                }
                subdirs.push((depth, name, sub, (stat.dev, stat.ino)));
                continue;
            }
            match self.root.child(&sub) {
                Ok(remote) => {
                    self.op.add_total(stat.len);
                    self.queue.push_back(WalkItem::File {
                        remote,
                        dir: dir.clone(),
                        name,
                        seen: (stat.dev, stat.ino),
                    })
                }
                Err(e) => {
                    let reason = format!("{shown} cannot be uploaded: {e}");
                    self.skip(path, reason);
                }
            }
        }
        // Popped from the end: push in reverse so that they are listed in byte order.
        self.pending.extend(subdirs.into_iter().rev());
    }

    /// Opens a subdirectory through its parent's handle, refusing a link or another
    /// directory put in the place of the one the walk saw.
    fn open_pending(&mut self) -> bool {
        let Some((depth, name, sub, seen)) = self.pending.pop() else {
            return false;
        };
        let parent = match self.climb_to(depth) {
            Ok(p) => p,
            Err(e) => {
                let path = self.root_dir.path().join(&sub);
                let reason = Error::local_io("could not reach the directory", &path, &e);
                self.skip(path, format!("{reason}; nothing below it was uploaded"));
                return true;
            }
        };
        let path = parent.display(&name);
        let opened = parent.subdir(&name).and_then(|d| {
            let id = crate::local::dir::identity_of_dir(&d)?;
            Ok((d, id))
        });
        match opened {
            Ok((d, id)) if id == seen => {
                let d = Arc::new(d);
                self.chain.push((name, id));
                self.current = d.clone();
                self.list(d, sub)
            }
            Ok(_) => self.skip(
                path.clone(),
                format!(
                    "{} was replaced by another directory after its parent was read; nothing below it was uploaded",
                    path.display()
                ),
            ),
            Err(e) if is_link_error(&e) => self.skip(
                path.clone(),
                format!(
                    "{} became a symbolic link after its parent was read; it was not followed and nothing below it was uploaded",
                    path.display()
                ),
            ),
            Err(e) => {
                let reason = Error::local_io("could not open the directory", &path, &e);
                self.skip(path, format!("{reason}; nothing below it was uploaded"))
            }
        }
        true
    }
}

impl Iterator for Walk {
    type Item = WalkItem;

    fn next(&mut self) -> Option<WalkItem> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if !self.open_pending() {
                return None;
            }
        }
    }
}
