//! Uploads: `SimpleUpload` (simple.rs) for files up to the part size, `LargeFileUpload`
//! (large.rs) for the rest: parts streamed from the file several at a time, resumable,
//! cancelled when they fail. unfinished.rs judges the unfinished large files B2 holds.

mod attempts;
mod large;
mod retention;
mod simple;
mod unfinished;

use super::late::{LateAnswer, SendError};
use large::LargeFileUpload;
use simple::SimpleUpload;

pub use retention::{KeptCopies, KeptCopy};
pub use unfinished::{
    cancel_large_file, is_abandoned, is_live, is_ours, past_window, utc_time, LIVE_WITHIN,
};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::api::FileVersion;
use super::client::B2Client;
use super::http::{failure_from_response, network_failure, read_success, timed_out};
use super::object_lock::Retention;
use super::retry::Failed;
use super::retry::{B2Failure, Failure};
use super::session::UploadTarget;
use super::throttle::{paced, Pacing};
use super::{MAX_FILE_SIZE, MAX_PARTS, MAX_PART_SIZE};
use crate::error::{Error, Result};
use crate::local::file::{LocalFile, RangeOutcome, RangeStream};
use crate::local::shown;

const CONTENT_TYPE: &str = "application/octet-stream";

/// A file now stored on B2.
#[derive(Clone, Debug)]
pub struct UploadedFile {
    pub object_name: String,
    pub size: u64,
    pub sha1: String,
    pub file_id: String,
    /// Bytes of parts already on B2 that a resume kept instead of sending again.
    pub resumed_bytes: u64,
    /// The Object Lock retention the file carries: as B2 answered it when the key may
    /// read it, else as it was asked for.
    pub retention: Option<Retention>,
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
    /// Object Lock: the retention the file is written with (and that an unfinished file
    /// must already carry to be resumed).
    pub retention: Option<Retention>,
    /// Where copies B2 kept against the upload's will (a refused clean-up) are told.
    pub kept: Option<&'a KeptCopies>,
}

/// The part size to use for a file of `len` bytes: the configured one, grown so the file
/// fits in B2's 10,000 parts.
pub fn part_size_for(len: u64, configured: u64) -> u64 {
    let needed = len.div_ceil(MAX_PARTS);
    configured.max(needed).min(MAX_PART_SIZE)
}

impl UploadJob<'_> {
    /// The retention `stored` carries: B2's word when the key may read it.
    fn retention_of(&self, stored: &FileVersion) -> Option<Retention> {
        match stored.lock().retention {
            Some(read) => read,
            None => self.retention,
        }
    }

    pub async fn run(&self) -> Result<UploadedFile> {
        // A customer's `truncate -s 8E` costs them nothing: refused before a byte is read,
        // where hashing it would run for ever and its part list would not fit in memory.
        if self.file.size() > MAX_FILE_SIZE {
            return Err(Error::InvalidArgument(format!(
                "{} is {} bytes long, over B2's largest file of {MAX_FILE_SIZE} bytes (10 TB); it was not uploaded: split it, or leave it out of the backup",
                shown(&self.file.path),
                self.file.size()
            )));
        }
        let part_size = part_size_for(self.file.size(), self.part_size);
        let mut done = if self.file.size() <= part_size {
            SimpleUpload { job: self }.run().await?
        } else {
            LargeFileUpload::new(self, part_size).run().await?
        };
        self.hold_as_asked(&mut done).await?;
        Ok(done)
    }

    /// One of the operation's `concurrency` request slots, held while a request runs.
    async fn request_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        self.slots
            .acquire()
            .await
            .map_err(|_| Error::Internal("the request slots were closed".into()))
    }

    /// One streamed POST of a range of the file to an upload URL; B2's answer is parsed as `T`.
    /// `known`: the range's SHA1 from a first pass, sent ahead instead of hashing while
    /// sending. A failure after the whole body went out with no answer back (B2 may have
    /// stored it) comes with the SHA1 of what was sent, and when it was given up for a
    /// stall, with the request itself, still waiting for B2's answer.
    async fn send_range<T: for<'de> Deserialize<'de>>(
        &self,
        call: &'static str,
        target: &UploadTarget,
        (offset, len): (u64, u64),
        known: Option<[u8; 20]>,
        headers: &[(String, String)],
        secret_headers: &[(&'static str, HeaderValue)],
    ) -> std::result::Result<(T, [u8; 20]), SendFailed> {
        let mut stream: RangeStream =
            self.file
                .stream_range(offset, len, known, self.client.op.clone());
        let read = stream.read.clone();
        let mut req = self
            .client
            .decorate(self.client.http().post(&target.url), &target.token)
            .header("Content-Type", CONTENT_TYPE)
            .header("Content-Length", stream.content_length)
            .header("X-Bz-Content-Sha1", &stream.sha1_header);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        for (k, v) in secret_headers {
            req = req.header(*k, v.clone());
        }
        let chunks = stream.body.take().expect("body taken once");
        let pacing = Arc::new(Pacing::default());
        let body = match &self.client.throttle {
            Some(t) => reqwest::Body::wrap_stream(paced(chunks, t.clone(), pacing.clone())),
            None => reqwest::Body::wrap_stream(chunks),
        };
        let timeout = self.client.session.timeout;
        // Its own task, so that a request given up for a stall can still be heard out.
        let mut sending = LateAnswer::spawn(req.body(body));
        let sent = tokio::select! {
            sent = sending.answer() => Some(sent),
            _ = stalled(&read, &pacing, timeout) => None,
        };
        let stalled_out = sent.is_none();
        if stalled_out && read.load(Ordering::Relaxed) < len {
            // Cut off mid-body: B2 cannot store it, and the reader waits for the request.
            sending.abort();
        }
        // Every attempt B2 may have received is billed; a refused connect is not.
        if !matches!(&sent, Some(Err(SendError::Http(e))) if e.is_connect()) {
            self.client.op.count_call(call);
        }
        let answer = match sent {
            Some(Ok(resp)) if resp.status().is_success() => read_success::<T>(call, resp).await,
            Some(Ok(resp)) => Err(failure_from_response(call, resp).await),
            Some(Err(SendError::Http(e))) => Err(network_failure(call, &e)),
            Some(Err(SendError::Lost(e))) => Err(Failed::from(B2Failure::unanswered(
                call,
                format!("the request {call} was lost: {e}"),
                true,
            ))),
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
        // B2 has the whole body and is still at it: its answer may yet say it stored it.
        // Otherwise the request goes (and its connection with it).
        let late = (stalled_out && unanswered.is_some()).then_some(sending);
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
                Ok(()) => match known {
                    Some(digest) => self.changed_since_hashed(offset, len, digest, failed).await,
                    None => failed,
                },
            },
            _ => failed,
        };
        Err(SendFailed {
            failed,
            unanswered,
            late,
        })
    }

    /// B2 refused the SHA1 a first pass computed although the file kept its identity (a
    /// write through a shared mapping can leave its times alone for a while): the range is
    /// read again, and a local change is told apart from bytes damaged on the way.
    async fn changed_since_hashed(
        &self,
        offset: u64,
        len: u64,
        digest: [u8; 20],
        failed: Failed,
    ) -> Failed {
        match self
            .file
            .range_sha1(offset, len, self.client.op.clone())
            .await
        {
            Ok(now) if now == digest => failed,
            Ok(_) => Failed::fatal(self.file.changed_error()),
            Err(e) => Failed::fatal(e),
        }
    }
}

/// A request of `send_range` that failed.
struct SendFailed {
    failed: Failed,
    /// The SHA1 of a body sent in full whose answer never came: B2 may have stored it.
    unanswered: Option<[u8; 20]>,
    /// That request, given up for a stall but still waiting for B2's answer.
    late: Option<LateAnswer>,
}

/// Resolves when nothing moved for `timeout`: no body bytes, or no answer once the whole
/// body was sent. B2 answers only after the whole body, so a whole-request timeout would
/// fail every large part on a slow link. A body held back by the bandwidth limit is not
/// stalled: each slice it lets through counts, and so does waiting for the next one.
async fn stalled(
    read: &std::sync::atomic::AtomicU64,
    pacing: &Pacing,
    timeout: std::time::Duration,
) {
    let mut last = u64::MAX;
    let mut last_paced = u64::MAX;
    loop {
        tokio::time::sleep(timeout).await;
        let now = read.load(Ordering::Relaxed);
        let (paced_moved, paced) = pacing.moved_since(last_paced);
        if now == last && !paced_moved {
            return;
        }
        last = now;
        last_paced = paced;
    }
}
