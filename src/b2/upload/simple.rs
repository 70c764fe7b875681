//! A file sent in one `b2_upload_file`, with the check for a version stored by an attempt
//! whose answer was lost.

use std::sync::Mutex;

use super::retention::delete_version;
use super::{now_ms, UploadJob, UploadedFile, CLOCK_SKEW_MS};
use crate::b2::api::{Action, FileVersion};
use crate::b2::calls::UploadFile;
use crate::b2::client::Failed;
use crate::b2::list::FileLister;
use crate::b2::retry::{B2Failure, Failure};
use crate::error::{Error, Result};
use crate::local::file::hex;

/// A file sent in one `b2_upload_file`.
pub(super) struct SimpleUpload<'a, 'b> {
    pub(super) job: &'a UploadJob<'b>,
}

impl SimpleUpload<'_, '_> {
    pub(super) async fn run(&self) -> Result<UploadedFile> {
        let job = self.job;
        let client = job.client;
        let _slot = job.request_slot().await?;
        let headers = UploadFile {
            file_name: job.object_name,
            src_last_modified_millis: job.file.identity.modified_millis(),
            customer_key_md5: client.encryption.key_md5(),
            retention: job.retention.as_ref(),
        }
        .headers();
        let secret_headers = client.encryption.upload_headers();
        let secret_headers = &secret_headers;
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
                        .send_range::<FileVersion>(
                            "b2_upload_file",
                            &target,
                            (0, len),
                            None,
                            &headers,
                            secret_headers,
                        )
                        .await
                        .map_err(|(failed, sent)| {
                            if let (Some(d), Ok(mut slot)) = (sent, unanswered.lock()) {
                                *slot = Some(d);
                            }
                            failed
                        })?;
                    client.return_upload_target(job.bucket_id, target);
                    if stored.file_id.is_none() || stored.whole_sha1().is_none() {
                        // B2 stored something and did not say what: found as after a lost
                        // answer, never sent a second time unseen.
                        if let Ok(mut slot) = unanswered.lock() {
                            *slot = Some(digest);
                        }
                        let message = "B2 answered b2_upload_file without the file id or SHA1 of what it stored; looking for it".to_string();
                        return Err(Failed::from(B2Failure::unanswered(
                            "b2_upload_file",
                            message,
                            true,
                        )));
                    }
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
            let what = format!(
                "B2 stored {} with a SHA1 other than the one sent; upload it again",
                job.object_name
            );
            return Err(match delete_version(client, &stored).await {
                Some(kept) => Error::Integrity(format!("{what}; {}", job.kept(kept))),
                None => Error::Integrity(what),
            });
        }
        if let Err(e) = job.file.check_unchanged() {
            // Written after the body was read (a write during it fails the body): the
            // copy is not of the file as it is now, so it is not left.
            return Err(match delete_version(client, &stored).await {
                Some(kept) => Error::LocalIo(format!(
                    "the local file {} changed while it was being uploaded; {}: upload it again once it is no longer being written",
                    job.file.path.display(),
                    job.kept(kept)
                )),
                None => e,
            });
        }
        Ok(UploadedFile {
            object_name: job.object_name.to_string(),
            size: len,
            sha1,
            file_id: stored.id().to_string(),
            resumed_bytes: 0,
            retention: job.retention_of(&stored),
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
            v.is_stored()
                && v.length() == Some(job.file.size())
                && v.whole_sha1().as_deref() == Some(sha1.as_str())
                && v.file_info.get("src_last_modified_millis") == Some(&mtime)
                // Without B2's time, an identical version (same content, same mtime) from
                // before stands for this one: the host's file is on B2 either way.
                && v.upload_timestamp.map_or(true, |t| t + CLOCK_SKEW_MS >= began_ms)
                && job.client.encryption.matches(v)
                && job.retention.as_ref().map_or(true, |wanted| {
                    v.lock()
                        .retention
                        .flatten()
                        .is_some_and(|held| held.covers(wanted))
                })
        }))
    }
}
