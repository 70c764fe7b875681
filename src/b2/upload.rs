//! Uploads: `SimpleUpload` for files up to the part size, `LargeFileUpload` for the rest
//! (parts streamed from the file several at a time, resumable, cancelled when they fail).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::api::{FileVersion, Part, StartLargeFile, UploadUrlResponse};
use super::list;
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
        let result = if self.file.size() <= part_size {
            SimpleUpload { job: self }.run().await
        } else {
            LargeFileUpload::new(self, part_size).run().await
        };
        if let Ok(done) = &result {
            self.client
                .session
                .adjust_usage(self.bucket_id, &done.object_name, done.size as i64);
        }
        result
    }

    /// One of the operation's `concurrency` request slots, held while a request runs.
    async fn request_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.slots
            .acquire()
            .await
            .map_err(|_| Error::Internal("the request slots were closed".into()))
    }

    fn info_headers(&self) -> Vec<(String, String)> {
        vec![(
            "X-Bz-Info-src_last_modified_millis".to_string(),
            self.file.identity.modified_millis().to_string(),
        )]
    }

    /// One streamed POST of a range of the file to an upload URL; B2's answer is parsed as `T`.
    async fn send_range<T: for<'de> Deserialize<'de>>(
        &self,
        call: &'static str,
        target: &UploadTarget,
        offset: u64,
        len: u64,
        headers: &[(String, String)],
    ) -> std::result::Result<(T, [u8; 20]), Failed> {
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
        // B2 refused the bytes as not matching their SHA1: if the file changed, say so.
        let failed = match (failed.failure, &failed.error) {
            // B2 saw other bytes than the SHA1 computed from what was read: either the file
            // changed, or the bytes were damaged on the way, which a new attempt fixes.
            (_, Error::Integrity(_)) => match self.file.check_unchanged() {
                Err(changed) => Failed::fatal(changed),
                Ok(()) => Failed {
                    failure: Failure::Transient { retry_after: None },
                    error: failed.error,
                },
            },
            // An upload URL's own token expired: a new URL, not a new account token.
            (Failure::Reauthorize, _) => Failed {
                failure: Failure::Transient { retry_after: None },
                error: failed.error,
            },
            _ => failed,
        };
        Err(failed)
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
        let mut headers = job.info_headers();
        headers.push(("X-Bz-File-Name".to_string(), encode_name(job.object_name)));
        let len = job.file.size();
        let (stored, digest) = client
            .with_retries("b2_upload_file", &client.uploads.clone(), |_auth| {
                let headers = headers.clone();
                async move {
                    let target = client
                        .take_upload_target(job.bucket_id)
                        .await
                        .map_err(Failed::fatal)?;
                    let (stored, digest) = job
                        .send_range::<FileVersion>("b2_upload_file", &target, 0, len, &headers)
                        .await?;
                    client.return_upload_target(job.bucket_id, target);
                    Ok((stored, digest))
                }
            })
            .await?;
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
}

async fn delete_version(client: &B2Client, version: &FileVersion) {
    let cleanup = client.detached();
    let body = serde_json::json!({"fileName": version.file_name, "fileId": version.id()});
    if let Err(e) = cleanup
        .call::<_, serde_json::Value>("b2_delete_file_version", &body)
        .await
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

        let (file_id, kept) = match self.find_resumable(&info).await? {
            Some(found) => found,
            None => {
                // Not cut short by a cancel: without its answer, the file id needed to
                // cancel the started file would be lost and its parts left behind.
                let started: FileVersion = client
                    .detached()
                    .call(
                        "b2_start_large_file",
                        &StartLargeFile {
                            bucket_id: job.bucket_id,
                            file_name: job.object_name,
                            content_type: CONTENT_TYPE,
                            file_info: &info,
                        },
                    )
                    .await?;
                (started.id().to_string(), BTreeMap::new())
            }
        };
        match self.send_and_finish(&file_id, kept).await {
            Ok(mut done) => {
                done.sha1 = whole;
                Ok(done)
            }
            Err(e) => {
                self.cancel(&file_id).await;
                Err(e)
            }
        }
    }

    /// An unfinished large file of this name started from this same content, and the parts
    /// of it that match the local file. Unfinished files of the name that cannot be resumed
    /// are cancelled, so they stop costing storage.
    async fn find_resumable(
        &self,
        info: &BTreeMap<String, String>,
    ) -> Result<Option<(String, BTreeMap<u32, String>)>> {
        let job = self.job;
        let client = job.client;
        let mut chosen = None;
        for candidate in
            list::unfinished_large_files(client, job.bucket_id, job.object_name).await?
        {
            let same = [
                "large_file_sha1",
                "src_last_modified_millis",
                "b2dest_part_size",
            ]
            .iter()
            .all(|k| candidate.file_info.get(*k) == info.get(*k));
            if same && chosen.is_none() {
                chosen = Some(candidate);
            } else {
                client.op.log(
                    LogLevel::Info,
                    format!(
                        "cancelling a stale unfinished upload of {}",
                        job.object_name
                    ),
                );
                self.cancel(candidate.id()).await;
            }
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
        Ok(Some((candidate.id().to_string(), kept)))
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
        let part_sha1_array: Vec<&String> = sha1s.values().collect();
        let body = serde_json::json!({"fileId": file_id, "partSha1Array": part_sha1_array});
        client.op.check_cancelled()?;
        // Not cut short either: a finish B2 completed must be reported as done.
        let finished: Result<FileVersion> =
            client.detached().call("b2_finish_large_file", &body).await;
        let stored = match finished {
            Ok(v) => v,
            // A finish retried after a lost answer is refused although the first one
            // worked: ask B2 what became of the file before calling it a failure.
            Err(e) => match client
                .detached()
                .call::<_, FileVersion>("b2_get_file_info", &serde_json::json!({"fileId": file_id}))
                .await
            {
                Ok(v) if v.action == "upload" => v,
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
        let headers = vec![("X-Bz-Part-Number".to_string(), number.to_string())];
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
                        .await?;
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
        let got: UploadUrlResponse = self
            .job
            .client
            .call(
                "b2_get_upload_part_url",
                &serde_json::json!({"fileId": file_id}),
            )
            .await?;
        Ok(UploadTarget::new(got))
    }

    /// Best effort: a cancel that fails (B2 unreachable) leaves the parts for the next
    /// upload of the same file to resume, or for `dest_delete` to remove.
    async fn cancel(&self, file_id: &str) {
        let client = self.job.client.detached();
        if let Err(e) = client
            .call::<_, serde_json::Value>(
                "b2_cancel_large_file",
                &serde_json::json!({"fileId": file_id}),
            )
            .await
        {
            self.job.client.op.log(
                LogLevel::Warn,
                format!("could not cancel the unfinished upload of {}: {e}; the next upload of this file resumes it", self.job.object_name),
            );
        }
    }
}
