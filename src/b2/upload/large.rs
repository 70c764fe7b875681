//! A file sent as B2 parts: started (or resumed from the parts of an unfinished file of the
//! same content), its parts sent several at a time, finished, and cancelled when it fails
//! for good.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;

use super::attempts::{attempt_id, cancel_other_starts, new_family, of_family, ATTEMPT_INFO};
use super::unfinished::{
    cancel_large_file, is_abandoned, is_live, is_ours, keeps_lock, past_window, same_content,
    utc_time, LIVE_WITHIN,
};
use super::{SendFailed, UploadJob, UploadedFile, CONTENT_TYPE};
use crate::b2::api::{FileVersion, Part};
use crate::b2::calls::{
    FinishLargeFile, GetFileInfo, GetUploadPartUrl, StartLargeFile, UploadPart,
};
use crate::b2::late::LateAnswer;
use crate::b2::list;
use crate::b2::retry::Failed;
use crate::b2::retry::Failure;
use crate::b2::session::{take_fresh, UploadTarget};
use crate::b2::wire::now_ms;
use crate::error::{Error, Result};
use crate::local::file::hex;
use crate::operation::LogLevel;

/// A file sent as B2 parts.
pub(super) struct LargeFileUpload<'a, 'b> {
    job: &'a UploadJob<'b>,
    part_size: u64,
    part_targets: Mutex<Vec<UploadTarget>>,
    /// Parts of the file on B2 now: kept by a resume or sent by this upload.
    stored_parts: AtomicU64,
    /// Each part's SHA1, from the first pass over the file.
    part_sha1s: OnceLock<Vec<[u8; 20]>>,
    /// Starts that timed out, still waiting for B2's answer.
    late_starts: Mutex<Vec<LateAnswer>>,
    /// Whether a start went unanswered: B2 may have started a file for it.
    start_unanswered: AtomicBool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadedPart {
    part_number: u32,
}

impl<'a, 'b> LargeFileUpload<'a, 'b> {
    pub(super) fn new(job: &'a UploadJob<'b>, part_size: u64) -> Self {
        LargeFileUpload {
            job,
            part_size,
            part_targets: Mutex::new(Vec::new()),
            stored_parts: AtomicU64::new(0),
            part_sha1s: OnceLock::new(),
            late_starts: Mutex::default(),
            start_unanswered: AtomicBool::new(false),
        }
    }

    fn part_sha1(&self, number: u32) -> Option<[u8; 20]> {
        let index = (number as usize).checked_sub(1)?;
        self.part_sha1s.get()?.get(index).copied()
    }

    fn part_count(&self) -> u32 {
        self.job.file.size().div_ceil(self.part_size) as u32
    }

    fn part_range(&self, number: u32) -> (u64, u64) {
        let offset = (number as u64 - 1) * self.part_size;
        (offset, self.part_size.min(self.job.file.size() - offset))
    }

    pub(super) async fn run(&self) -> Result<UploadedFile> {
        let job = self.job;
        let client = job.client;
        client.op.log(
            LogLevel::Info,
            format!(
                "hashing {} for its whole-file and part SHA1s",
                job.file.path.display()
            ),
        );
        let hashes = job
            .file
            .sha1_with_parts(self.part_size, client.op.clone())
            .await?;
        let whole = hex(&hashes.whole);
        let _ = self.part_sha1s.set(hashes.parts);
        let mut info = BTreeMap::new();
        info.insert("large_file_sha1".to_string(), whole.clone());
        info.insert(
            "src_last_modified_millis".to_string(),
            job.file.identity.modified_millis().to_string(),
        );
        info.insert("b2dest_part_size".to_string(), self.part_size.to_string());
        info.extend(client.encryption.file_info());
        // The start's attempts are one request sent again: one id for all of them.
        let family = new_family();
        info.insert(ATTEMPT_INFO.to_string(), attempt_id(&family, 1));

        let (file, kept) = match self.find_resumable(&info).await? {
            Some(found) => found,
            None => match self.start(&info, &family).await {
                Ok(file) => (file, BTreeMap::new()),
                Err(e) => {
                    self.cancel_other_starts(&family, None).await;
                    return Err(e);
                }
            },
        };
        self.stored_parts
            .fetch_add(kept.len() as u64, Ordering::Relaxed);
        let ours = file.id().to_string();
        let done = self.send_and_settle(file, kept, &whole).await;
        // Ours stays, finished or kept for a resume (or already cancelled).
        self.cancel_other_starts(&family, Some(&ours)).await;
        done
    }

    /// Parts and finish of `file`, and what the upload comes to.
    async fn send_and_settle(
        &self,
        file: FileVersion,
        kept: BTreeMap<u32, String>,
        whole: &str,
    ) -> Result<UploadedFile> {
        let whole = whole.to_string();
        match self.send_and_finish(file.id(), kept).await {
            Ok(mut done) => {
                done.sha1 = whole;
                Ok(done)
            }
            // B2 busy, the network, a timeout: the host's next try resumes from the parts.
            Err(e) if e.retryable() => Err(self.kept_for_resume(e, &file)),
            Err(e) => {
                // B2 refusing a part or the finish may mean another upload of this same
                // content (resuming the same file) finished it first.
                if matches!(
                    e,
                    Error::Remote {
                        retryable: false,
                        ..
                    } | Error::NotFound(_)
                ) {
                    if let Some(done) = self.finished_elsewhere(file.id(), &whole).await {
                        return Ok(done);
                    }
                }
                self.cancel(file.id()).await;
                Err(e)
            }
        }
    }

    /// The file as another upload of the same content finished it, if it did.
    async fn finished_elsewhere(&self, file_id: &str, whole: &str) -> Option<UploadedFile> {
        let job = self.job;
        let info = job
            .client
            .detached()
            .get_file_info(&GetFileInfo { file_id })
            .await
            .ok()?;
        let same = info.is_stored()
            && info.length() == Some(job.file.size())
            && info.whole_sha1().as_deref() == Some(whole);
        if !same || job.file.check_unchanged().is_err() {
            return None;
        }
        job.client.op.log(
            LogLevel::Info,
            format!(
                "another upload of the same content finished {} first",
                job.object_name
            ),
        );
        Some(UploadedFile {
            object_name: job.object_name.to_string(),
            size: job.file.size(),
            sha1: whole.to_string(),
            file_id: info.id().to_string(),
            resumed_bytes: 0,
            retention: job.retention_of(&info),
        })
    }

    /// Starts the large file. Not cut short by a cancel: without its answer, the file id
    /// needed to cancel the started file would be lost and its parts left behind. After a
    /// lost answer, the file B2 started for this upload is adopted rather than a second one
    /// started (no resumable file of this content existed before the start).
    async fn start(&self, info: &BTreeMap<String, String>, family: &str) -> Result<FileVersion> {
        let job = self.job;
        let client = job.client.detached();
        let body = StartLargeFile {
            bucket_id: job.bucket_id,
            file_name: job.object_name,
            content_type: CONTENT_TYPE,
            file_info: info,
            server_side_encryption: job.client.encryption.start_json(),
            file_retention: job.retention.as_ref(),
        };
        let client_ref = &client;
        let started_for_us = || async move {
            let found = list::unfinished_large_files(client_ref, job.bucket_id, job.object_name)
                .await?
                .into_iter()
                .find(|f| {
                    f.file_id.is_some()
                        && of_family(f, family)
                        && same_content(f, info)
                        && job.client.encryption.matches(f)
                        && keeps_lock(f, job.retention.as_ref())
                });
            if found.is_some() {
                job.client.op.log(
                    LogLevel::Info,
                    format!(
                        "the answer to starting {} was lost; B2 had started it, going on with that file",
                        job.object_name
                    ),
                );
            }
            Ok(found)
        };
        let called = client.start_large_file(&body, started_for_us).await;
        if called.unanswered || !called.late.is_empty() {
            if let Ok(mut late) = self.late_starts.lock() {
                late.extend(called.late);
            }
            self.start_unanswered.store(true, Ordering::Relaxed);
        }
        let started = called.result?;
        if started.file_id.is_some() {
            return Ok(started);
        }
        // B2 started a file and did not say which: found as after a lost answer.
        self.start_unanswered.store(true, Ordering::Relaxed);
        started_for_us().await?.ok_or_else(|| Error::Remote {
            message: format!(
                "B2 answered b2_start_large_file for {} without a file id, and no started file of this upload was found; try again",
                job.object_name
            ),
            retryable: true,
        })
    }

    /// After a start whose answer was lost or late: the other files its attempts started,
    /// all but `ours`, are cancelled (see attempts.rs).
    async fn cancel_other_starts(&self, family: &str, ours: Option<&str>) {
        if !self.start_unanswered.load(Ordering::Relaxed) {
            return;
        }
        let late = std::mem::take(&mut *self.late_starts.lock().unwrap_or_else(|e| e.into_inner()));
        cancel_other_starts(self.job, family, ours, late).await;
    }

    /// The failure of an upload whose parts stay on B2, saying so and for how long.
    fn kept_for_resume(&self, e: Error, file: &FileVersion) -> Error {
        let client = self.job.client;
        let window = self.job.resume_window;
        let parts = self.stored_parts.load(Ordering::Relaxed);
        let until = if window.is_zero() {
            "the next usage or delete of this destination, or an upload of another file to this path, may cancel them from now on".to_string()
        } else {
            format!(
                "if no upload of it comes, they are cancelled after {} (the resume window, {} h from the upload's start) by the next upload, usage or delete that sees them",
                utc_time(file.upload_timestamp.unwrap_or_else(now_ms) + window.as_millis() as u64),
                window.as_secs() / 3600
            )
        };
        let note = format!(
            "the {parts} part(s) already on B2 were kept: the next upload of this same unchanged file resumes from them and sends only the rest; {until}"
        );
        client
            .op
            .log(LogLevel::Warn, format!("{}: {note}", self.job.object_name));
        match e {
            Error::Network(m) => Error::Network(format!("{m}; {note}")),
            Error::Remote { message, retryable } => Error::Remote {
                message: format!("{message}; {note}"),
                retryable,
            },
            other => other,
        }
    }

    /// An unfinished large file of this name started from this same content, and the parts
    /// of it that match the local file. Other unfinished files of the name cannot be
    /// resumed by this upload: they are cancelled, so they stop costing storage, unless
    /// another upload is still sending them parts (then this one goes up as a file of its
    /// own; B2 keeps several unfinished files of one name).
    async fn find_resumable(
        &self,
        info: &BTreeMap<String, String>,
    ) -> Result<Option<(FileVersion, BTreeMap<u32, String>)>> {
        let job = self.job;
        let client = job.client;
        let mut chosen = None;
        // The lookup covers the file's remote directory, so that files abandoned there
        // past the resume window go too.
        let dir = match job.object_name.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => String::new(),
        };
        let now = now_ms();
        let unfinished = match list::unfinished_under(client, job.bucket_id, &dir).await {
            // A key restricted to a name prefix that is not a directory may list only the name.
            Err(Error::Permission(_)) => {
                list::unfinished_large_files(client, job.bucket_id, job.object_name).await?
            }
            other => other?,
        };
        for candidate in unfinished {
            if candidate.file_id.is_none() {
                // Nothing can be done with it (no parts to list, nothing to cancel).
                client
                    .op
                    .log(LogLevel::Warn, candidate.unreadable().unwrap_or_default());
                continue;
            }
            if candidate.file_name != job.object_name {
                if is_ours(&candidate) && past_window(&candidate, job.resume_window, now) {
                    let parts = list::parts(client, candidate.id()).await?;
                    if is_abandoned(&candidate, &parts, job.resume_window, now) {
                        self.cancel_abandoned(&candidate).await;
                    }
                }
                continue;
            }
            let same = same_content(&candidate, info);
            if same
                && client.encryption.matches(&candidate)
                && keeps_lock(&candidate, job.retention.as_ref())
                && chosen.is_none()
            {
                chosen = Some(candidate);
                continue;
            }
            if same {
                // Parts under another key (or mode) would make a file no key can read whole;
                // a file started without this destination's lock would not carry it.
                client.op.log(
                    LogLevel::Info,
                    format!(
                        "an unfinished upload of {} was started with other encryption ({} here) or Object Lock settings than this destination's; it is not resumed",
                        job.object_name,
                        client.encryption.mode_name()
                    ),
                );
            }
            let parts = list::parts(client, candidate.id()).await?;
            if is_live(&candidate, &parts, now) {
                client.op.log(
                    LogLevel::Info,
                    format!(
                        "another upload of {} is under way (B2 saw it within the last {} minutes); leaving it alone and uploading this one as a large file of its own",
                        job.object_name,
                        LIVE_WITHIN.as_secs() / 60
                    ),
                );
                continue;
            }
            client.op.log(
                LogLevel::Info,
                format!(
                    "cancelling an unfinished upload of {} that no upload can resume",
                    job.object_name
                ),
            );
            self.cancel(candidate.id()).await;
        }
        let Some(candidate) = chosen else {
            return Ok(None);
        };
        let mut kept = BTreeMap::new();
        for part in list::parts(client, candidate.id()).await? {
            if part.part_number == 0 || part.part_number > self.part_count() {
                continue;
            }
            let (_, len) = self.part_range(part.part_number);
            if part.content_length == len && self.local_part_matches(&part) {
                client.op.add_done(len);
                let sha1 = part.content_sha1.unwrap_or_default().to_ascii_lowercase();
                kept.insert(part.part_number, sha1);
            }
        }
        client.op.log(
            LogLevel::Info,
            format!(
                "resuming {}: {} of {} parts already on B2",
                job.object_name,
                kept.len(),
                self.part_count()
            ),
        );
        Ok(Some((candidate, kept)))
    }

    /// Whether a part on B2 has the SHA1 the first pass found for that part of the file.
    fn local_part_matches(&self, part: &Part) -> bool {
        self.part_sha1(part.part_number)
            .zip(part.content_sha1.as_deref())
            .is_some_and(|(local, b2)| hex(&local).eq_ignore_ascii_case(b2))
    }

    async fn send_and_finish(
        &self,
        file_id: &str,
        mut sha1s: BTreeMap<u32, String>,
    ) -> Result<UploadedFile> {
        let job = self.job;
        let client = job.client;
        let missing: Vec<u32> = (1..=self.part_count())
            .filter(|n| !sha1s.contains_key(n))
            .collect();
        let resumed_bytes: u64 = sha1s.keys().map(|n| self.part_range(*n).1).sum();
        let sent: Vec<(u32, String)> =
            stream::iter(missing.into_iter().map(|n| self.send_part(file_id, n)))
                .buffer_unordered(job.concurrency.max(1))
                .try_collect()
                .await?;
        sha1s.extend(sent);
        job.file.check_unchanged()?;
        let body = FinishLargeFile {
            file_id,
            part_sha1_array: sha1s.values().map(String::as_str).collect(),
        };
        client.op.check_cancelled()?;
        // Not cut short either: a finish B2 completed must be reported as done. After a
        // lost answer, B2 is asked whether the file is finished before finishing it again.
        let detached = client.detached();
        let detached_ref = &detached;
        let finished: Result<FileVersion> = detached
            .finish_large_file(&body, || async move {
                match detached_ref.get_file_info(&GetFileInfo { file_id }).await {
                    Ok(v) if v.is_stored() => Ok(Some(v)),
                    Ok(_) | Err(Error::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await
            .result;
        let mut stored = match finished {
            Ok(v) => v,
            // A finish retried after a lost answer is refused although the first one
            // worked: ask B2 what became of the file before calling it a failure.
            Err(e) => match client
                .detached()
                .get_file_info(&GetFileInfo { file_id })
                .await
            {
                Ok(v) if v.is_stored() => v,
                _ => return Err(e),
            },
        };
        // The finish answers for the file it was asked to finish, said or not.
        stored.file_id.get_or_insert_with(|| file_id.to_string());
        Ok(UploadedFile {
            object_name: job.object_name.to_string(),
            size: job.file.size(),
            sha1: String::new(),
            file_id: stored.id().to_string(),
            resumed_bytes,
            retention: job.retention_of(&stored),
        })
    }

    async fn send_part(&self, file_id: &str, number: u32) -> Result<(u32, String)> {
        let job = self.job;
        let client = job.client;
        let _slot = job.request_slot().await?;
        let range = self.part_range(number);
        let known = self.part_sha1(number);
        let headers = UploadPart {
            part_number: number,
        }
        .headers();
        let secret_headers = client.encryption.part_headers();
        let secret_headers = &secret_headers;
        let digest = client
            .with_retries("b2_upload_part", &client.uploads.clone(), |_auth| {
                let headers = headers.clone();
                async move {
                    let target = self
                        .take_part_target(file_id)
                        .await
                        .map_err(Failed::fatal)?;
                    let (part, digest) = job
                        .send_range::<UploadedPart>(
                            "b2_upload_part",
                            &target,
                            range,
                            known,
                            &headers,
                            secret_headers,
                        )
                        .await
                        .map_err(|SendFailed { failed, .. }| {
                            if failed.failure == Failure::FreshUploadUrl {
                                if let Ok(mut pool) = self.part_targets.lock() {
                                    UploadTarget::drop_older_than(&mut pool, &target);
                                }
                            }
                            failed
                        })?;
                    if part.part_number != number {
                        return Err(Failed::fatal(Error::Remote {
                            message: format!(
                                "B2 stored part {} when part {number} was sent",
                                part.part_number
                            ),
                            retryable: true,
                        }));
                    }
                    if let Ok(mut pool) = self.part_targets.lock() {
                        pool.push(target);
                    }
                    self.stored_parts.fetch_add(1, Ordering::Relaxed);
                    Ok(digest)
                }
            })
            .await?;
        Ok((number, hex(&digest)))
    }

    /// A part upload URL for this file that no other part is using.
    async fn take_part_target(&self, file_id: &str) -> Result<UploadTarget> {
        if let Some(t) = self
            .part_targets
            .lock()
            .ok()
            .and_then(|mut p| take_fresh(&mut p))
        {
            return Ok(t);
        }
        let got = self
            .job
            .client
            .get_upload_part_url(&GetUploadPartUrl { file_id })
            .await?;
        Ok(UploadTarget::new(got))
    }

    async fn cancel_abandoned(&self, file: &FileVersion) {
        let job = self.job;
        job.client.op.log(
            LogLevel::Info,
            format!(
                "cancelling the unfinished upload of {}: nobody resumed it within the resume window",
                file.file_name
            ),
        );
        if let Err(e) = cancel_large_file(
            &job.client.detached(),
            job.bucket_id,
            file.id(),
            &file.file_name,
        )
        .await
        {
            job.client.op.log(
                LogLevel::Warn,
                format!(
                    "could not cancel the unfinished upload of {}: {e}",
                    file.file_name
                ),
            );
        }
    }

    /// Best effort: a cancel that fails (B2 unreachable) leaves the parts for the next
    /// upload of the same file to resume, or for `dest_usage` or `dest_delete` to remove.
    async fn cancel(&self, file_id: &str) {
        let job = self.job;
        if let Err(e) = cancel_large_file(
            &job.client.detached(),
            job.bucket_id,
            file_id,
            job.object_name,
        )
        .await
        {
            job.client.op.log(
                LogLevel::Warn,
                format!("could not cancel the unfinished upload of {}: {e}; the next upload of this file resumes it, or a usage or delete after the resume window cancels it", job.object_name),
            );
        }
    }
}
