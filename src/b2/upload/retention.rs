//! Object Lock around an upload: the retention B2 holds brought up to the one asked for
//! (a resumed large file carries the one its first try started with), and what a clean-up
//! delete B2 refused leaves behind.

use std::sync::Mutex;

use super::unfinished::utc_time;
use super::{UploadJob, UploadedFile};
use crate::b2::api::FileVersion;
use crate::b2::calls::{DeleteFileVersion, UpdateFileRetention};
use crate::b2::client::B2Client;
use crate::b2::object_lock::Retention;
use crate::error::Result;
use crate::operation::LogLevel;

/// A version an upload meant to remove (it matched no state of the file) that B2 kept:
/// most often because Object Lock refused the delete.
#[derive(Clone, Debug)]
pub struct KeptCopy {
    pub object_name: String,
    pub file_id: String,
    /// The retention B2 answered for it, when readable.
    pub retain_until_ms: Option<u64>,
    /// B2's refusal.
    pub reason: String,
    /// A second copy of what was uploaded (an earlier attempt's), not a stray one.
    pub duplicate: bool,
}

impl KeptCopy {
    /// What the host is told: the copy is on B2, and until when.
    pub fn note(&self) -> String {
        let until = self.retain_until_ms.map_or(String::new(), |t| {
            format!(", locked until {} (retain_until_ms {t})", utc_time(t))
        });
        if self.duplicate {
            return format!(
                "B2 refused to remove a second copy that an earlier attempt of this upload stored ({}): version {} of {} stays on B2{until}, identical to the one uploaded",
                self.reason, self.file_id, self.object_name
            );
        }
        format!(
            "B2 refused to remove the copy it had stored ({}): version {} of {} stays on B2{until}; it is not a backup of any state of the file",
            self.reason, self.file_id, self.object_name
        )
    }
}

/// Copies kept on B2 against an upload's will, collected for the response.
pub type KeptCopies = Mutex<Vec<KeptCopy>>;

/// Deletes a version the upload must not leave; when B2 refuses, what stays.
pub(super) async fn delete_version(client: &B2Client, version: &FileVersion) -> Option<KeptCopy> {
    let cleanup = client.detached();
    let e = cleanup
        .delete_file_version(&DeleteFileVersion::of(version))
        .await
        .result
        .err()?;
    client.op.log(
        LogLevel::Warn,
        format!("could not remove {}: {e}", version.file_name),
    );
    Some(KeptCopy {
        object_name: version.file_name.clone(),
        file_id: version.id().to_string(),
        retain_until_ms: version
            .lock()
            .retention
            .flatten()
            .map(|r| r.retain_until_timestamp),
        reason: e.to_string(),
        duplicate: false,
    })
}

impl UploadJob<'_> {
    /// Records `kept` for the response and gives the note for the error.
    pub(super) fn kept(&self, kept: KeptCopy) -> String {
        let note = kept.note();
        if let Some(list) = self.kept {
            list.lock().unwrap_or_else(|e| e.into_inner()).push(kept);
        }
        note
    }

    /// B2 fixes a large file's retention at its start: a resume of one started long ago
    /// (or a slow upload) would hold less than asked. Extending is always allowed, so the
    /// retention is moved forward to what this upload asked for; `done` then says what B2
    /// holds.
    pub(super) async fn hold_as_asked(&self, done: &mut UploadedFile) -> Result<()> {
        let Some(wanted) = self.retention else {
            return Ok(());
        };
        if done.retention.is_some_and(|held| held.covers(&wanted)) {
            return Ok(());
        }
        let target = Retention {
            mode: done
                .retention
                .map_or(wanted.mode, |held| held.mode.strongest(wanted.mode)),
            retain_until_timestamp: wanted.retain_until_timestamp,
        };
        let answer = self
            .client
            .update_file_retention(&UpdateFileRetention {
                file_name: self.object_name,
                file_id: &done.file_id,
                file_retention: &target,
            })
            .await
            .map_err(|e| {
                let held = done.retention.map_or("none".to_string(), |r| {
                    format!("until {}", utc_time(r.retain_until_timestamp))
                });
                e.with_note(&format!(
                    "{} was uploaded (file_id {}) but B2 holds its lock only {held}, short of the retention asked for (until {}), and could not extend it: upload it again",
                    self.object_name,
                    done.file_id,
                    utc_time(wanted.retain_until_timestamp)
                ))
            })?;
        self.client.op.log(
            LogLevel::Info,
            format!(
                "extended the lock of {} to {}",
                self.object_name,
                utc_time(answer.held(&target).retain_until_timestamp)
            ),
        );
        done.retention = Some(answer.held(&target));
        Ok(())
    }
}
