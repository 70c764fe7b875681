//! Unfinished large files on B2: which are this library's, which are still being uploaded,
//! which are abandoned, and cancelling one.

use std::collections::BTreeMap;

use crate::b2::api::{FileVersion, Part};
use crate::b2::calls::CancelLargeFile;
use crate::b2::client::B2Client;
use crate::b2::list;
use crate::b2::lock::Retention;
use crate::error::{Error, Result};

/// Made by this library (only its own abandoned files are swept; another tool may still
/// mean to resume its own).
pub fn is_ours(file: &FileVersion) -> bool {
    file.file_info.contains_key("b2dest_part_size")
}

/// A locked upload resumes only an unfinished file that B2 started with a retention of
/// the same mode (the one of the first try, which the host's retention counted from): a
/// file started without one would end up unlocked, since the lock is set only at the start.
pub(super) fn keeps_lock(candidate: &FileVersion, wanted: Option<&Retention>) -> bool {
    let Some(wanted) = wanted else {
        return true;
    };
    match candidate.lock().retention {
        Some(Some(held)) => held.mode == wanted.mode,
        // Without readFileRetentions the upload was refused before it began.
        _ => false,
    }
}

pub(super) fn same_content(candidate: &FileVersion, info: &BTreeMap<String, String>) -> bool {
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
        .chain([file.uploaded_ms()])
        .max()
        .unwrap_or(0);
    newest + LIVE_WITHIN.as_millis() as u64 > now_ms
}

/// Whether the resume window of `file`, counted from B2's start of it, is over.
pub fn past_window(file: &FileVersion, window: std::time::Duration, now_ms: u64) -> bool {
    file.uploaded_ms() + window.as_millis() as u64 <= now_ms
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
pub fn utc_time(ms: u64) -> String {
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
