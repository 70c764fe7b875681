//! A file sent in one `b2_upload_file`, with the check for a version stored by an attempt
//! whose answer was lost or came late (attempts.rs).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use super::attempts::{
    attempt_id, family_versions, new_family, remove_other_attempts, ATTEMPT_INFO, LATE_ANSWER_WAIT,
};
use super::retention::delete_version;
use super::{UploadJob, UploadedFile};
use crate::b2::api::FileVersion;
use crate::b2::calls::UploadFile;
use crate::b2::late::LateAnswer;
use crate::b2::retry::Failed;
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
        let family = new_family();
        let family = family.as_str();
        let tries = AtomicU32::new(0);
        let tries = &tries;
        // The SHA1 of a body sent in full whose answer was lost: B2 may hold it already.
        let unanswered: Mutex<Option<[u8; 20]>> = Mutex::new(None);
        let unanswered = &unanswered;
        // Attempts given up for a stall, still waiting for B2's answer, with their SHA1.
        let lates: Mutex<Vec<(LateAnswer, [u8; 20])>> = Mutex::default();
        let lates = &lates;
        let any_unanswered = AtomicBool::new(false);
        let any_unanswered = &any_unanswered;
        let attempts = client
            .with_retries("b2_upload_file", &client.uploads.clone(), |_auth| {
                let mut headers = headers.clone();
                async move {
                    let lost = unanswered.lock().ok().and_then(|mut d| d.take());
                    if let Some(digest) = lost {
                        match self.stored_by_family(&digest, family).await {
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
                    let n = tries.fetch_add(1, Ordering::Relaxed) + 1;
                    headers.push((format!("X-Bz-Info-{ATTEMPT_INFO}"), attempt_id(family, n)));
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
                        .map_err(|f| {
                            if let Some(d) = f.unanswered {
                                any_unanswered.store(true, Ordering::Relaxed);
                                if let Ok(mut slot) = unanswered.lock() {
                                    *slot = Some(d);
                                }
                                if let (Some(late), Ok(mut l)) = (f.late, lates.lock()) {
                                    l.push((late, d));
                                }
                            }
                            if f.failed.failure == Failure::FreshUploadUrl {
                                client.drop_expired_upload_targets(job.bucket_id, &target);
                            }
                            f.failed
                        })?;
                    client.return_upload_target(job.bucket_id, target);
                    if stored.file_id.is_none() || stored.whole_sha1().is_none() {
                        // B2 stored something and did not say what: found as after a lost
                        // answer, never sent a second time unseen.
                        any_unanswered.store(true, Ordering::Relaxed);
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
        if let Err(Error::Cancelled) = attempts {
            return Err(Error::Cancelled);
        }
        // Stalled attempts are heard out: B2 had their whole bodies and may store them yet.
        let pending = std::mem::take(&mut *lates.lock().unwrap_or_else(|e| e.into_inner()));
        let mut late_stored: Vec<(FileVersion, [u8; 20])> = Vec::new();
        for (late, digest) in pending {
            if let Ok(Some(v)) = late.heard_out(&client.op, LATE_ANSWER_WAIT).await {
                late_stored.push((v, digest));
            }
        }
        let (stored, digest) = match attempts {
            Ok(done) => done,
            // The retries ran out: an attempt heard out late, or one whose answer was lost,
            // may have stored it.
            Err(e) => {
                let lost = unanswered.lock().ok().and_then(|mut d| d.take());
                match (late_stored.first(), lost) {
                    (Some((v, d)), _) => (v.clone(), *d),
                    (None, Some(digest)) => match self.stored_by_family(&digest, family).await {
                        Ok(Some(stored)) => (stored, digest),
                        _ => return Err(e),
                    },
                    (None, None) => return Err(e),
                }
            }
        };
        if any_unanswered.load(Ordering::Relaxed) {
            let late: Vec<FileVersion> = late_stored.into_iter().map(|(v, _)| v).collect();
            remove_other_attempts(job, family, &stored, late).await;
        }
        let sha1 = hex(&digest);
        // A version found by its attempt id may be listed without its SHA1: B2 checked the
        // body against the SHA1 that attempt sent, so only a SHA1 told and different fails.
        if stored.whole_sha1().is_some_and(|told| told != sha1) {
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

    /// The version an attempt of this upload whose answer was lost stored, if B2 has it:
    /// the name's newest version of this attempt family, with this upload's size, and its
    /// SHA1 where the listing tells one (B2 refuses a body that does not match the SHA1 sent,
    /// and the attempt id is this upload's own, so a listing without it still names ours).
    /// A lock B2 names in a way this library does not know, until the date asked, counts.
    async fn stored_by_family(
        &self,
        digest: &[u8; 20],
        family: &str,
    ) -> Result<Option<FileVersion>> {
        let job = self.job;
        let sha1 = hex(digest);
        // Ours by its attempt id, so stored with the encryption this upload sent. Its lock
        // is checked still: a governance lock can be taken off a version after the fact,
        // and a copy that lost it is no backup of this upload (sent again instead).
        Ok(family_versions(job, family).await?.into_iter().find(|v| {
            v.length() == Some(job.file.size())
                && v.whole_sha1().map_or(true, |told| told == sha1)
                && job.retention.as_ref().map_or(true, |wanted| {
                    v.lock()
                        .retention
                        .flatten()
                        .is_some_and(|held| held.kept_until(wanted))
                })
        }))
    }
}
