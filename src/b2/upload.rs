//! Uploads: `SimpleUpload` for files up to the part size, `LargeFileUpload` for the rest
//! (parts streamed from the file several at a time, resumable, cancelled when they fail).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::api::{Action, FileVersion, Part};
use super::calls::{
    CancelLargeFile, DeleteFileVersion, FinishLargeFile, GetFileInfo, GetUploadPartUrl,
    StartLargeFile, UploadFile, UploadPart,
};
use super::list::{self, FileLister};
use super::retry::Failure;
use super::session::{
    failure_from_response, network_failure, read_json, take_fresh, timed_out, B2Client, Failed,
    UploadTarget,
};
use super::{MAX_PARTS, MAX_PART_SIZE};
use crate::error::{Error, Result};
use crate::local::file::{hex, LocalFile, RangeOutcome, RangeStream};
use crate::operation::LogLevel;

/// B2 file names travel percent-encoded, `/` kept as it is.
const NAME_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
const CONTENT_TYPE: &str = "application/octet-stream";

pub fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, NAME_ENCODE).to_string()
}

/// A file now stored on B2.
#[derive(Clone, Debug)]
pub struct UploadedFile {
    pub object_name: String,
    pub size: u64,
    pub sha1: String,
    pub file_id: String,
    /// Bytes of parts already on B2 that a resume kept instead of sending again.
    pub resumed_bytes: u64,
}

/// Where and how to upload one file.
pub struct UploadJob<'a> {
    pub client: &'a B2Client,
    pub bucket_id: &'a str,
    pub object_name: &'a str,
    pub file: &'a LocalFile,
    /// Request slots shared by the whole operation, so that a directory of large files
    /// still keeps only `concurrency` requests in flight.
    pub slots: &'a Arc<Semaphore>,
    pub concurrency: usize,
    pub part_size: u64,
    /// How long the parts of a failed large upload are kept for a resume.
    pub resume_window: std::time::Duration,
}

/// The part size to use for a file of `len` bytes: the configured one, grown so the file
/// fits in B2's 10,000 parts.
pub fn part_size_for(len: u64, configured: u64) -> u64 {
    let needed = len.div_ceil(MAX_PARTS);
    configured.max(needed).min(MAX_PART_SIZE)
}

impl UploadJob<'_> {
    pub async fn run(&self) -> Result<UploadedFile> {
        let part_size = part_size_for(self.file.size(), self.part_size);
        if self.file.size() <= part_size {
            SimpleUpload { job: self }.run().await
        } else {
            LargeFileUpload::new(self, part_size).run().await
        }
    }

    /// One of the operation's `concurrency` request slots, held while a request runs.
    async fn request_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.slots
            .acquire()
            .await
            .map_err(|_| Error::Internal("the request slots were closed".into()))
    }

    /// One streamed POST of a range of the file to an upload URL; B2's answer is parsed as `T`.
    /// A failure after the whole body went out with no answer back (B2 may have stored it)
    /// comes with the SHA1 of what was sent.
    async fn send_range<T: for<'de> Deserialize<'de>>(
        &self,
        call: &'static str,
        target: &UploadTarget,
        offset: u64,
        len: u64,
        headers: &[(String, String)],
    ) -> std::result::Result<(T, [u8; 20]), (Failed, Option<[u8; 20]>)> {
        let mut stream: RangeStream = self.file.stream_range(offset, len, self.client.op.clone());
        let read = stream.read.clone();
        let mut req = self
            .client
            .decorate(self.client.http().post(&target.url), &target.token)
            .header("Content-Type", CONTENT_TYPE)
            .header("Content-Length", stream.content_length)
            .header("X-Bz-Content-Sha1", "hex_digits_at_end");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let body = stream.body.take().expect("body taken once");
        let timeout = self.client.session.timeout;
        let sent = tokio::select! {
            sent = req.body(body).send() => Some(sent),
            _ = stalled(&read, timeout) => None,
        };
        // Every attempt B2 may have received is billed; a refused connect is not.
        if !matches!(&sent, Some(Err(e)) if e.is_connect()) {
            self.client.op.count_call(call);
        }
        let answer = match sent {
            Some(Ok(resp)) if resp.status().is_success() => {
                read_json::<T>(call, resp).await.map_err(Failed::fatal)
            }
            Some(Ok(resp)) => Err(failure_from_response(call, resp).await),
            Some(Err(e)) => Err(network_failure(call, &e)),
            None => Err(timed_out(call, timeout)),
        };
        // The reader ends as soon as the request stops pulling; bounded all the same.
        let outcome = tokio::time::timeout(timeout, stream.outcome())
            .await
            .unwrap_or(RangeOutcome::Abandoned);
        let unanswered = match (&answer, &outcome) {
            (Err(f), RangeOutcome::Read(digest)) if f.unanswered() => Some(*digest),
            _ => None,
        };
        let failed = match (answer, outcome) {
            (Ok(v), RangeOutcome::Read(digest)) => return Ok((v, digest)),
            (_, RangeOutcome::LocalFailure(kind)) => {
                let err = if kind == std::io::ErrorKind::UnexpectedEof {
                    self.file.changed_error()
                } else {
                    Error::LocalIo(format!(
                        "could not read {}: {kind}",
                        self.file.path.display()
                    ))
                };
                Failed::fatal(err)
            }
            (Ok(_), _) => Failed {
                failure: Failure::Transient { retry_after: None },
                error: Error::Network(format!("{call} ended before its body was sent")),
            },
            (Err(f), _) => f,
        };
        self.client.op.sub_done(read.load(Ordering::Relaxed));
        // The table tells a refusal of the body's SHA1 as Integrity, to be sent again on a
        // new URL: right only if the file did not change under us, which is checked here.
        let failed = match &failed.error {
            Error::Integrity(_) => match self.file.check_unchanged() {
                Err(changed) => Failed::fatal(changed),
                Ok(()) => failed,
            },
            _ => failed,
        };
        Err((failed, unanswered))
    }
}

/// Resolves when nothing moved for `timeout`: no body bytes, or no answer once the whole
/// body was sent. B2 answers only after the whole body, so a whole-request timeout would
/// fail every large part on a slow link.
async fn stalled(read: &std::sync::atomic::AtomicU64, timeout: std::time::Duration) {
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(timeout).await;
        let now = read.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

/// A file sent in one `b2_upload_file`.
struct SimpleUpload<'a, 'b> {
    job: &'a UploadJob<'b>,
}

impl SimpleUpload<'_, '_> {
    async fn run(&self) -> Result<UploadedFile> {
        let job = self.job;
        let client = job.client;
        let _slot = job.request_slot().await?;
        let headers = UploadFile {
            file_name: job.object_name,
            src_last_modified_millis: job.file.identity.modified_millis(),
        }
        .headers();
        let len = job.file.size();
        let began_ms = now_ms();
        // The SHA1 of a body sent in full whose answer was lost: B2 may hold it already.
        let unanswered: Mutex<Option<[u8; 20]>> = Mutex::new(None);
        let unanswered = &unanswered;
        let attempts = client
            .with_retries("b2_upload_file", &client.uploads.clone(), |_auth| {
                let headers = headers.clone();
                async move {
                    let lost = unanswered.lock().ok().and_then(|mut d| d.take());
                    if let Some(digest) = lost {
                        match self.stored_by_lost_attempt(&digest, began_ms).await {
                            Ok(Some(stored)) => return Ok((stored, digest)),
                            Ok(None) => {}
                            Err(e) if e.retryable() => {
                                if let Ok(mut slot) = unanswered.lock() {
                                    *slot = Some(digest);
                                }
                                return Err(Failed {
                                    failure: Failure::Transient { retry_after: None },
                                    error: e,
                                });
                            }
                            // A key without listFiles cannot look: send it again.
                            Err(_) => {}
                        }
                    }
                    let target = client
                        .take_upload_target(job.bucket_id)
                        .await
                        .map_err(Failed::fatal)?;
                    let (stored, digest) = job
                        .send_range::<FileVersion>("b2_upload_file", &target, 0, len, &headers)
                        .await
                        .map_err(|(failed, sent)| {
                            if let (Some(d), Ok(mut slot)) = (sent, unanswered.lock()) {
                                *slot = Some(d);
                            }
                            failed
                        })?;
                    client.return_upload_target(job.bucket_id, target);
                    Ok((stored, digest))
                }
            })
            .await;
        let (stored, digest) = match attempts {
            Ok(done) => done,
            // The retries ran out on a lost answer: the last attempt may have been stored.
            Err(e) => {
                let lost = unanswered.lock().ok().and_then(|mut d| d.take());
                match lost {
                    Some(digest) if !matches!(e, Error::Cancelled) => {
                        match self.stored_by_lost_attempt(&digest, began_ms).await {
                            Ok(Some(stored)) => (stored, digest),
                            _ => return Err(e),
                        }
                    }
                    _ => return Err(e),
                }
            }
        };
        let sha1 = hex(&digest);
        if stored.whole_sha1().as_deref() != Some(sha1.as_str()) {
            delete_version(client, &stored).await;
            return Err(Error::Integrity(format!(
                "B2 stored {} with a SHA1 other than the one sent; upload it again",
                job.object_name
            )));
        }
        if let Err(e) = job.file.check_unchanged() {
            // The bytes B2 has are consistent but the file moved on: do not leave a copy
            // that matches no state of it.
            delete_version(client, &stored).await;
            return Err(e);
        }
        Ok(UploadedFile {
            object_name: job.object_name.to_string(),
            size: len,
            sha1,
            file_id: stored.id().to_string(),
            resumed_bytes: 0,
        })
    }

    /// The version an attempt whose answer was lost stored, if B2 has it: the name's newest
    /// version, with this upload's SHA1, size and file info, uploaded since it began.
    async fn stored_by_lost_attempt(
        &self,
        digest: &[u8; 20],
        began_ms: u64,
    ) -> Result<Option<FileVersion>> {
        let job = self.job;
        let name = job.object_name;
        let mut lister = FileLister::versions(job.bucket_id, name).starting_at(name, 10);
        let page = lister.next_page(job.client).await?.unwrap_or_default();
        let newest = page
            .into_iter()
            .find(|v| v.file_name == name && v.action != Action::Start);
        let mtime = job.file.identity.modified_millis().to_string();
        let sha1 = hex(digest);
        Ok(newest.filter(|v| {
            v.action == Action::Upload
                && v.content_length == job.file.size()
                && v.whole_sha1().as_deref() == Some(sha1.as_str())
                && v.file_info.get("src_last_modified_millis") == Some(&mtime)
                && v.upload_timestamp + CLOCK_SKEW_MS >= began_ms
        }))
    }
}

/// How far this machine's clock may be ahead of B2's for the checks that compare them.
const CLOCK_SKEW_MS: u64 = 10 * 60 * 1000;

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn delete_version(client: &B2Client, version: &FileVersion) {
    let cleanup = client.detached();
    if let Err(e) = cleanup
        .delete_file_version(&DeleteFileVersion::of(version))
        .await
        .result
    {
        client.op.log(
            LogLevel::Warn,
            format!("could not remove {}: {e}", version.file_name),
        );
    }
}

/// A file sent as B2 parts.
struct LargeFileUpload<'a, 'b> {
    job: &'a UploadJob<'b>,
    part_size: u64,
    part_targets: Mutex<Vec<UploadTarget>>,
    /// Parts of the file on B2 now: kept by a resume or sent by this upload.
    stored_parts: AtomicU64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadedPart {
    part_number: u32,
}

impl<'a, 'b> LargeFileUpload<'a, 'b> {
    fn new(job: &'a UploadJob<'b>, part_size: u64) -> Self {
        LargeFileUpload {
            job,
            part_size,
            part_targets: Mutex::new(Vec::new()),
            stored_parts: AtomicU64::new(0),
        }
    }

    fn part_count(&self) -> u32 {
        self.job.file.size().div_ceil(self.part_size) as u32
    }

    fn part_range(&self, number: u32) -> (u64, u64) {
        let offset = (number as u64 - 1) * self.part_size;
        (offset, self.part_size.min(self.job.file.size() - offset))
    }

    async fn run(&self) -> Result<UploadedFile> {
        let job = self.job;
        let client = job.client;
        client.op.log(
            LogLevel::Info,
            format!(
                "hashing {} for its whole-file SHA1",
                job.file.path.display()
            ),
        );
        let whole = hex(&job.file.sha1(client.op.clone()).await?);
        let mut info = BTreeMap::new();
        info.insert("large_file_sha1".to_string(), whole.clone());
        info.insert(
            "src_last_modified_millis".to_string(),
            job.file.identity.modified_millis().to_string(),
        );
        info.insert("b2dest_part_size".to_string(), self.part_size.to_string());

        let (file, kept) = match self.find_resumable(&info).await? {
            Some(found) => found,
            None => (self.start(&info).await?, BTreeMap::new()),
        };
        self.stored_parts
            .fetch_add(kept.len() as u64, Ordering::Relaxed);
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
        let same = info.action == Action::Upload
            && info.content_length == job.file.size()
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
        })
    }

    /// Starts the large file. Not cut short by a cancel: without its answer, the file id
    /// needed to cancel the started file would be lost and its parts left behind. After a
    /// lost answer, the file B2 started for this upload is adopted rather than a second one
    /// started (no resumable file of this content existed before the start).
    async fn start(&self, info: &BTreeMap<String, String>) -> Result<FileVersion> {
        let job = self.job;
        let client = job.client.detached();
        let body = StartLargeFile {
            bucket_id: job.bucket_id,
            file_name: job.object_name,
            content_type: CONTENT_TYPE,
            file_info: info,
        };
        let client_ref = &client;
        client.start_large_file(&body, || async move {
            let found = list::unfinished_large_files(client_ref, job.bucket_id, job.object_name)
                .await?
                .into_iter()
                .find(|f| same_content(f, info));
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
        })
        .await
        .result
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
                utc_time(file.upload_timestamp + window.as_millis() as u64),
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
            if candidate.file_name != job.object_name {
                if is_ours(&candidate) && past_window(&candidate, job.resume_window, now) {
                    let parts = list::parts(client, candidate.id()).await?;
                    if is_abandoned(&candidate, &parts, job.resume_window, now) {
                        self.cancel_abandoned(&candidate).await;
                    }
                }
                continue;
            }
            if same_content(&candidate, info) && chosen.is_none() {
                chosen = Some(candidate);
                continue;
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
            let (offset, len) = self.part_range(part.part_number);
            if part.content_length == len && self.local_part_matches(&part, offset, len).await? {
                client.op.add_done(len);
                kept.insert(part.part_number, part.content_sha1.to_ascii_lowercase());
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

    async fn local_part_matches(&self, part: &Part, offset: u64, len: u64) -> Result<bool> {
        let local = hex(&self
            .job
            .file
            .range_sha1(offset, len, self.job.client.op.clone())
            .await?);
        Ok(local.eq_ignore_ascii_case(&part.content_sha1))
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
                    Ok(v) if v.action == Action::Upload => Ok(Some(v)),
                    Ok(_) | Err(Error::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await
            .result;
        let stored = match finished {
            Ok(v) => v,
            // A finish retried after a lost answer is refused although the first one
            // worked: ask B2 what became of the file before calling it a failure.
            Err(e) => match client
                .detached()
                .get_file_info(&GetFileInfo { file_id })
                .await
            {
                Ok(v) if v.action == Action::Upload => v,
                _ => return Err(e),
            },
        };
        Ok(UploadedFile {
            object_name: job.object_name.to_string(),
            size: job.file.size(),
            sha1: String::new(),
            file_id: stored.id().to_string(),
            resumed_bytes,
        })
    }

    async fn send_part(&self, file_id: &str, number: u32) -> Result<(u32, String)> {
        let job = self.job;
        let client = job.client;
        let _slot = job.request_slot().await?;
        let (offset, len) = self.part_range(number);
        let headers = UploadPart {
            part_number: number,
        }
        .headers();
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
                            offset,
                            len,
                            &headers,
                        )
                        .await
                        .map_err(|(failed, _)| failed)?;
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

/// Made by this library (only its own abandoned files are swept; another tool may still
/// mean to resume its own).
pub fn is_ours(file: &FileVersion) -> bool {
    file.file_info.contains_key("b2dest_part_size")
}

fn same_content(candidate: &FileVersion, info: &BTreeMap<String, String>) -> bool {
    [
        "large_file_sha1",
        "src_last_modified_millis",
        "b2dest_part_size",
    ]
    .iter()
    .all(|k| candidate.file_info.get(*k) == info.get(*k))
}

/// An unfinished large file counts as being uploaded by someone while B2 saw its start or
/// one of its parts this recently. A live upload stores a part every part-time divided by
/// its concurrency: 30 minutes covers a 100 MB part on one connection at 0.5 Mbit/s, or a
/// 5 GB part at 3 MB/s, with room for retries and for this machine's clock running ahead.
/// Erring long only delays the clean-up of an abandoned file.
pub const LIVE_WITHIN: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Whether another upload is still sending `file` parts, judged by B2's own timestamps.
pub fn is_live(file: &FileVersion, parts: &[Part], now_ms: u64) -> bool {
    let newest = parts
        .iter()
        .map(|p| p.upload_timestamp)
        .chain([file.upload_timestamp])
        .max()
        .unwrap_or(0);
    newest + LIVE_WITHIN.as_millis() as u64 > now_ms
}

/// Whether the resume window of `file`, counted from B2's start of it, is over.
pub fn past_window(file: &FileVersion, window: std::time::Duration, now_ms: u64) -> bool {
    file.upload_timestamp + window.as_millis() as u64 <= now_ms
}

/// An unfinished large file of this library that nobody resumed within `window` of its
/// start, and that nobody is sending parts to: it only costs money, so it is cancelled.
pub fn is_abandoned(
    file: &FileVersion,
    parts: &[Part],
    window: std::time::Duration,
    now_ms: u64,
) -> bool {
    is_ours(file) && past_window(file, window, now_ms) && !is_live(file, parts, now_ms)
}

/// Cancels an unfinished large file: true when this call cancelled it (also when only the
/// answer was lost), false when it was already gone.
pub async fn cancel_large_file(
    client: &B2Client,
    bucket_id: &str,
    file_id: &str,
    name: &str,
) -> Result<bool> {
    let called = client.cancel_large_file(&CancelLargeFile { file_id }).await;
    match called.result {
        Ok(_) => Ok(true),
        // A retry after a lost answer is refused when the first try worked: make sure.
        Err(
            Error::NotFound(_)
            | Error::Remote {
                retryable: false, ..
            },
        ) if called.unanswered => {
            let still = list::unfinished_large_files(client, bucket_id, name)
                .await?
                .iter()
                .any(|f| f.id() == file_id);
            if still {
                Err(Error::Remote {
                    message: format!("B2 refused to cancel the unfinished upload of {name}"),
                    retryable: true,
                })
            } else {
                Ok(true)
            }
        }
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM UTC`.
fn utc_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_time_is_calendar_time() {
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(
            utc_time(951_782_400_000 + 3_660_000),
            "2000-02-29 01:01 UTC"
        );
        assert_eq!(utc_time(1_798_761_600_000), "2027-01-01 00:00 UTC");
    }
}
