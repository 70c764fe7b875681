//! Unfinished large files on B2: which are this library's, which are still being uploaded,
//! which are abandoned, and cancelling one.

use std::collections::BTreeMap;

use crate::b2::api::{FileVersion, Part};
use crate::b2::calls::CancelLargeFile;
use crate::b2::client::B2Client;
use crate::b2::list;
use crate::b2::object_lock::Retention;
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

/// Whether another upload is still sending `file` parts, judged by B2's own timestamps. A
/// start or part B2 gave no time for cannot be dated, so it counts as live: erring that way
/// only delays a clean-up, the other way cancels an upload under way.
pub fn is_live(file: &FileVersion, parts: &[Part], now_ms: u64) -> bool {
    let Some(started) = file.upload_timestamp else {
        return true;
    };
    let mut newest = started;
    for part in parts {
        match part.upload_timestamp {
            Some(t) => newest = newest.max(t),
            None => return true,
        }
    }
    newest + LIVE_WITHIN.as_millis() as u64 > now_ms
}

/// Whether the resume window of `file`, counted from B2's start of it, is over (never, for
/// a start B2 gave no time for).
pub fn past_window(file: &FileVersion, window: std::time::Duration, now_ms: u64) -> bool {
    file.upload_timestamp
        .is_some_and(|t| t + window.as_millis() as u64 <= now_ms)
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

    fn ours_started_at(ms: Option<u64>) -> FileVersion {
        let mut f = FileVersion::new("4_z1", "a.tar", crate::b2::api::Action::Start, 0);
        f.file_info
            .insert("b2dest_part_size".to_string(), "100000000".to_string());
        f.upload_timestamp = ms;
        f
    }

    fn part(ms: Option<u64>) -> Part {
        Part {
            part_number: 1,
            content_length: 1,
            content_sha1: None,
            upload_timestamp: ms,
        }
    }

    #[test]
    fn a_start_or_part_without_a_time_is_never_taken_for_abandoned() {
        let day = std::time::Duration::from_secs(86_400);
        let now = 10 * 86_400_000;
        // Dated and old: abandoned.
        assert!(is_abandoned(
            &ours_started_at(Some(0)),
            &[part(Some(1))],
            day,
            now
        ));
        // B2 gave no time for the start (a null or missing uploadTimestamp): live, in window.
        let undated = ours_started_at(None);
        assert!(is_live(&undated, &[], now));
        assert!(!past_window(&undated, day, now));
        assert!(!is_abandoned(&undated, &[], day, now));
        // Nor for one of its parts.
        assert!(!is_abandoned(
            &ours_started_at(Some(0)),
            &[part(None)],
            day,
            now
        ));
        // A recent part keeps an old start alive.
        assert!(!is_abandoned(
            &ours_started_at(Some(0)),
            &[part(Some(now - 1))],
            day,
            now
        ));
    }
}
