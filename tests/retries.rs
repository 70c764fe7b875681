//! How failed requests are tried again: an expired upload token costs no retry, the
//! account token's expiry still re-authorizes, and only the final failure says the retries
//! ran out (what a retry's log line says is in tests/log_lines.rs).

mod common;

use b2_emulator::{Emulator, FaultAction};
use common::faults::{error_saying as error, inject};
use common::*;
use serde_json::json;

#[test]
fn an_expired_upload_token_takes_a_new_url_at_once_without_using_a_retry() {
    for (call, url_call, len, sends) in [
        ("b2_upload_file", "b2_get_upload_url", 5_000usize, 2),
        (
            "b2_upload_part",
            "b2_get_upload_part_url",
            2 * PART as usize + 1,
            3 + 1,
        ),
    ] {
        let emu = emulator();
        // No retry at all, and a back-off of a minute were one taken.
        let cfg = config(
            &emu,
            json!({"upload_retries": 0, "concurrency": 1, "retry_initial_delay_ms": 60_000}),
        );
        inject(&emu, call, 1, error(401, "expired_auth_token", None));
        let (st, v) = round_trip(&cfg, len, 1);
        assert_eq!(st, OK, "{call}: {v}");
        let counts = emu.counts();
        assert_eq!(counts.get(call), sends, "{call}: {counts:?}");
        assert_eq!(counts.get(url_call), 2, "{call}: a new URL: {counts:?}");
        assert_eq!(
            counts.get("b2_authorize_account"),
            1,
            "{call}: the account token is not renewed for an upload token: {counts:?}"
        );
    }
}

#[test]
fn an_upload_token_that_expires_every_time_ends_in_the_retry_bound() {
    let emu = emulator();
    let cfg = config(&emu, json!({"upload_retries": 1}));
    inject(
        &emu,
        "b2_upload_file",
        100,
        error(401, "expired_auth_token", None),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 100, 2);
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("upload URL's token kept expiring")
            && !message.contains("check the Account ID"),
        "{message}"
    );
    // Three new URLs at once, then the normal path: the first try and one retry.
    let counts = emu.counts();
    assert_eq!(counts.get("b2_upload_file"), 3 + 2, "{counts:?}");
    assert_eq!(counts.get("b2_get_upload_url"), 3 + 2, "{counts:?}");
    assert_eq!(counts.get("b2_authorize_account"), 1, "{counts:?}");
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn an_expired_account_token_still_reauthorizes_and_the_upload_uses_no_retry() {
    let emu = emulator();
    let cfg = config(&emu, json!({"upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1_000, 3);
    assert_eq!(upload(&cfg, &f, "first").0, OK);
    // Every token so far, the account's and the pooled upload URL's, now expired.
    emu.expire_tokens();
    emu.reset_counts();
    let (st, v) = upload(&cfg, &f, "second");
    assert_eq!(st, OK, "{v}");
    let counts = emu.counts();
    // The pooled URL refused, a new one asked for with the expired account token and
    // refused, one re-authorization, the new URL, the upload.
    assert_eq!(counts.get("b2_authorize_account"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_get_upload_url"), 2, "{counts:?}");
    assert_eq!(counts.get("b2_upload_file"), 2, "{counts:?}");
}

#[test]
fn a_download_damaged_in_transit_twice_says_what_arrived_and_may_be_tried_again() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 5_000, 5);
    assert_eq!(upload(&cfg, &f, "f").0, OK);
    let sha1 = sha1_hex(&std::fs::read(&f).unwrap());
    // The same byte flipped on the wire twice: the same wrong SHA1 twice, B2's copy intact.
    // The first try is the by-name request, the second goes by the id it gave.
    inject(&emu, "b2_download_file_by_name", 1, FaultAction::Corrupt);
    inject(&emu, "b2_download_file_by_id", 1, FaultAction::Corrupt);
    emu.reset_counts();
    let target = dir.path().join("back");
    let (st, v) = download(&cfg, "f", &target);
    assert_eq!(st, INTEGRITY, "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "did not match the SHA1 B2 recorded ({sha1}) on two tries"
        )) && message.contains("the same bytes arrived both times")
            && !message.contains("most likely damaged"),
        "{message}"
    );
    let counts = emu.counts();
    assert_eq!(counts.get("b2_download_file_by_name"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_download_file_by_id"), 1, "{counts:?}");
    assert!(!target.exists(), "nothing written");
    // The host's next try gets the intact copy.
    let (st, v) = download(&cfg, "f", &target);
    assert_eq!(st, OK, "{v}");
    assert_eq!(std::fs::read(&target).unwrap(), std::fs::read(&f).unwrap());
}

/// The versions of `name` (under the test configuration's backup directory) on B2.
fn versions_of(emu: &Emulator, name: &str) -> Vec<b2_emulator::StoredVersion> {
    let full = format!("backups/server1/{name}");
    emu.file_versions(BUCKET)
        .into_iter()
        .filter(|v| v.file_name == full && v.action == "upload")
        .collect()
}

#[test]
fn an_upload_b2_stores_after_the_client_gave_up_leaves_one_version() {
    let emu = emulator();
    let cfg = config(&emu, json!({"timeout_seconds": 1}));
    // B2 holds the first attempt for 4 s, then stores it: long after the client gave up
    // on it (1 s), sent it again, and had the second stored.
    inject(
        &emu,
        "b2_upload_file",
        1,
        FaultAction::Delay { millis: 4_000 },
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 20_000, 6);
    let began = std::time::Instant::now();
    let (st, v) = upload(&cfg, &f, "slow");
    assert_eq!(st, OK, "{v}");
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
    // Whatever B2 was still doing with the first attempt is done by now.
    std::thread::sleep(std::time::Duration::from_millis(5_000).saturating_sub(began.elapsed()));
    let stored = versions_of(&emu, "slow");
    assert_eq!(stored.len(), 1, "exactly one version: {stored:?}");
    assert_eq!(v["file_id"], stored[0].file_id, "{v}");
    let counts = emu.counts();
    assert_eq!(counts.get("b2_upload_file"), 2, "{counts:?}");
    assert_eq!(
        counts.get("b2_delete_file_version"),
        1,
        "the late copy removed: {counts:?}"
    );
    let back = dir.path().join("back");
    assert_eq!(download(&cfg, "slow", &back).0, OK);
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&f).unwrap());
}

#[test]
fn an_upload_out_of_retries_whose_stalled_attempt_is_stored_late_is_reported_stored() {
    let emu = emulator();
    let cfg = config(&emu, json!({"timeout_seconds": 1, "upload_retries": 0}));
    inject(
        &emu,
        "b2_upload_file",
        1,
        FaultAction::Delay { millis: 2_500 },
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 20_000, 7);
    let began = std::time::Instant::now();
    let (st, v) = upload(&cfg, &f, "late");
    assert_eq!(st, OK, "{v}");
    std::thread::sleep(std::time::Duration::from_millis(3_500).saturating_sub(began.elapsed()));
    let stored = versions_of(&emu, "late");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(v["file_id"], stored[0].file_id, "{v}");
    let counts = emu.counts();
    assert_eq!(counts.get("b2_upload_file"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_delete_file_version"), 0, "{counts:?}");
}

#[test]
fn a_large_file_start_b2_carries_out_after_the_client_gave_up_is_cancelled() {
    let emu = emulator();
    let cfg = config(&emu, json!({"timeout_seconds": 1, "concurrency": 1}));
    // B2 starts the file of the first try 3 s in, long after the client gave up on it and
    // started a second one.
    inject(
        &emu,
        "b2_start_large_file",
        1,
        FaultAction::Delay { millis: 3_000 },
    );
    let dir = tempfile::tempdir().unwrap();
    let len = 3 * PART as usize;
    let f = write_file(dir.path(), "f", len, 8);
    let began = std::time::Instant::now();
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, OK, "{v}");
    std::thread::sleep(std::time::Duration::from_millis(4_000).saturating_sub(began.elapsed()));
    let stored = versions_of(&emu, "big");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(v["file_id"], stored[0].file_id, "{v}");
    let unfinished = emu.unfinished_large_files(BUCKET);
    assert!(
        unfinished.is_empty(),
        "nothing left started: {unfinished:?}"
    );
    let counts = emu.counts();
    assert_eq!(counts.get("b2_start_large_file"), 2, "{counts:?}");
    assert_eq!(counts.get("b2_upload_part"), 3, "{counts:?}");
    assert_eq!(counts.get("b2_cancel_large_file"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_finish_large_file"), 1, "{counts:?}");
}

#[test]
fn a_late_copy_object_lock_keeps_is_reported_in_the_warnings() {
    let emu = emulator();
    emu.configure_object_lock(BUCKET, json!({"fileLockEnabled": true}));
    let cfg = config(
        &emu,
        json!({"timeout_seconds": 1,
               "object_lock": {"mode": "governance", "retention_days": 1}}),
    );
    inject(
        &emu,
        "b2_upload_file",
        1,
        FaultAction::Delay { millis: 3_000 },
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 20_000, 9);
    let (st, v) = upload(&cfg, &f, "locked");
    assert_eq!(st, OK, "{v}");
    let stored = versions_of(&emu, "locked");
    assert_eq!(stored.len(), 2, "the lock keeps the late copy: {stored:?}");
    let kept = v["kept_on_b2"].as_array().expect("kept_on_b2");
    assert_eq!(kept.len(), 1, "{v}");
    assert_ne!(kept[0]["file_id"], v["file_id"], "{v}");
    assert!(
        stored
            .iter()
            .any(|s| kept[0]["file_id"] == s.file_id.as_str()),
        "{v}"
    );
    let warnings = v["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("second copy")),
        "{v}"
    );
    assert_eq!(emu.counts().get("b2_delete_file_version"), 1);
}
