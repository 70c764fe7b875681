//! Failures that cost neither data nor hours: a large upload that fails for a passing
//! reason keeps its parts for the next try, abandoned ones are cancelled after the resume
//! window, retries after a lost answer find out what B2 did, and concurrent uploads of one
//! path leave each other alone.

mod common;

use std::ffi::c_void;
use std::time::Duration;

use b2_emulator::{Emulator, Fault, FaultAction};
use common::faults::{await_held, pass_then_hold};
use common::*;
use serde_json::json;

fn inject(emu: &Emulator, call: &str, count: u32, action: FaultAction) {
    emu.inject(Fault {
        call: call.to_string(),
        count,
        action,
    });
}

fn busy() -> FaultAction {
    FaultAction::Error {
        status: 503,
        code: "service_unavailable".into(),
        retry_after: None,
        message: None,
    }
}

const HOUR_MS: u64 = 3600 * 1000;
/// Six parts: five full ones and a short last one.
const LARGE: usize = 5 * PART as usize + 123;

/// A large upload of `f` to "dir/big" whose third part B2 keeps refusing: it fails, and
/// its first two parts stay on B2.
fn fail_after_two_parts(emu: &Emulator, cfg: &str, f: &std::path::Path) -> serde_json::Value {
    inject(emu, "b2_upload_part", 2, FaultAction::Delay { millis: 0 });
    inject(emu, "b2_upload_part", 2, busy());
    let (st, v) = upload(cfg, f, "dir/big");
    assert_eq!(st, REMOTE, "{v}");
    emu.clear_faults();
    v
}

#[test]
fn a_large_upload_out_of_retries_keeps_its_parts_and_the_next_try_sends_only_the_rest() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1, "upload_retries": 1}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 1);
    let v = fail_after_two_parts(&emu, &cfg, &f);
    assert_eq!(v["error"]["retryable"], true, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 part(s) already on B2 were kept")
            && message.contains("resumes")
            && message.contains("UTC"),
        "{v}"
    );
    assert_eq!(emu.counts().get("b2_cancel_large_file"), 0, "not cancelled");
    assert_eq!(emu.unfinished_large_files(BUCKET).len(), 1);

    emu.reset_counts();
    let (st, v) = upload(&cfg, &f, "dir/big");
    assert_eq!(st, OK, "{v}");
    let counts = emu.counts();
    assert_eq!(v["resumed_bytes"], 2 * PART, "{v}");
    assert_eq!(
        counts.get("b2_start_large_file"),
        0,
        "resumed, not started again"
    );
    assert_eq!(
        counts.get("b2_upload_part"),
        4,
        "only the four missing parts"
    );
    assert_eq!(
        counts.bytes_received,
        LARGE as u64 - 2 * PART,
        "only the missing parts' bytes were sent (their SHA1s go in the headers)"
    );
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
    let back = dir.path().join("back");
    assert_eq!(download(&cfg, "dir/big", &back).0, OK);
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
}

unsafe extern "C" fn cancel_midway(done: u64, _total: u64, _user: *mut c_void) -> i32 {
    (done >= 2 * PART) as i32
}

#[test]
fn a_large_upload_cancelled_by_the_host_still_cancels_its_parts() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 2);
    inject(
        &emu,
        "b2_upload_part",
        10,
        FaultAction::Delay { millis: 100 },
    );
    let (st, v) = upload_with(
        &cfg,
        &f,
        "dir/big",
        Some(cancel_midway),
        std::ptr::null_mut(),
    );
    assert_eq!(st, CANCELLED, "{v}");
    assert!(
        emu.counts().get("b2_upload_part") >= 1,
        "parts had been sent"
    );
    assert_eq!(emu.counts().get("b2_cancel_large_file"), 1);
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn an_abandoned_upload_is_cancelled_by_usage_after_the_resume_window() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 3);
    fail_after_two_parts(&emu, &cfg, &f);

    // Inside the window the parts are kept, and billed.
    let (st, u) = usage(&cfg);
    assert_eq!(st, OK, "{u}");
    assert_eq!(
        (
            u["unfinished_large_files"].as_u64(),
            u["cancelled_large_files"].as_u64()
        ),
        (Some(1), Some(0)),
        "{u}"
    );
    assert_eq!(u["used_bytes"], 2 * PART, "{u}");
    // Quiet for an hour, but inside its 24 hours: still kept.
    emu.backdate_unfinished(BUCKET, "backups/server1/dir/big", HOUR_MS);
    assert_eq!(usage(&cfg).1["cancelled_large_files"], 0);
    assert_eq!(emu.unfinished_large_files(BUCKET).len(), 1);

    emu.backdate_unfinished(BUCKET, "backups/server1/dir/big", 24 * HOUR_MS);
    let (st, u) = usage(&cfg);
    assert_eq!(st, OK, "{u}");
    assert_eq!(u["cancelled_large_files"], 1, "{u}");
    assert_eq!(u["unfinished_large_files"], 0, "{u}");
    assert_eq!(u["used_bytes"], 0, "{u}");
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn a_zero_resume_window_still_spares_an_upload_that_is_sending_parts() {
    let emu = emulator();
    let cfg = config(
        &emu,
        json!({"concurrency": 1, "upload_retries": 0, "resume_window_hours": 0}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 4);
    fail_after_two_parts(&emu, &cfg, &f);
    // Parts arrived moments ago: it may be an upload still under way elsewhere.
    assert_eq!(usage(&cfg).1["cancelled_large_files"], 0);
    emu.backdate_unfinished(BUCKET, "backups/server1/dir/big", HOUR_MS);
    assert_eq!(usage(&cfg).1["cancelled_large_files"], 1);
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn an_abandoned_upload_is_cancelled_by_the_next_large_upload_beside_it() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 5);
    fail_after_two_parts(&emu, &cfg, &f);
    let other = write_file(dir.path(), "other", LARGE, 6);
    // Quiet for an hour, but inside its 24 hours.
    emu.backdate_unfinished(BUCKET, "backups/server1/dir/big", HOUR_MS);
    assert_eq!(upload(&cfg, &other, "dir/other1").0, OK);
    assert_eq!(
        emu.unfinished_large_files(BUCKET).len(),
        1,
        "inside the resume window it is kept"
    );
    emu.backdate_unfinished(BUCKET, "backups/server1/dir/big", 24 * HOUR_MS);
    emu.reset_counts();
    assert_eq!(upload(&cfg, &other, "dir/other2").0, OK);
    assert_eq!(emu.counts().get("b2_cancel_large_file"), 1);
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

fn upload_versions(emu: &Emulator, name: &str) -> Vec<b2_emulator::StoredVersion> {
    emu.file_versions(BUCKET)
        .into_iter()
        .filter(|v| v.file_name == name && v.action == "upload")
        .collect()
}

#[test]
fn a_lost_answer_to_an_upload_stores_one_version() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 5_000, 7);
    inject(&emu, "b2_upload_file", 1, FaultAction::LoseAnswer);
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, OK, "{v}");
    let stored = upload_versions(&emu, "backups/server1/f");
    assert_eq!(stored.len(), 1, "one version, not a second billed one");
    assert_eq!(v["file_id"], stored[0].file_id.as_str());
    assert_eq!(emu.counts().get("b2_upload_file"), 1, "not sent again");

    // The same when the lost answer was the last try allowed.
    let cfg = config(&emu, json!({"upload_retries": 0}));
    let g = write_file(dir.path(), "g", 5_000, 8);
    inject(&emu, "b2_upload_file", 1, FaultAction::LoseAnswer);
    let (st, v) = upload(&cfg, &g, "g");
    assert_eq!(st, OK, "{v}");
    assert_eq!(upload_versions(&emu, "backups/server1/g").len(), 1);

    // An earlier version of other content is no proof that this upload was stored.
    emu.reset_counts();
    std::thread::sleep(Duration::from_millis(5));
    let f = write_file(dir.path(), "f", 5_000, 77);
    inject(
        &emu,
        "b2_upload_file",
        1,
        FaultAction::Drop { after_bytes: 10 },
    );
    let (st, v) = upload(&config(&emu, json!({})), &f, "f");
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.counts().get("b2_upload_file"), 2, "sent again");
    let stored = upload_versions(&emu, "backups/server1/f");
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].sha1, sha1_hex(&std::fs::read(&f).unwrap()));
}

#[test]
fn a_lost_answer_to_starting_a_large_file_leaves_no_orphan() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 9);
    inject(&emu, "b2_start_large_file", 1, FaultAction::LoseAnswer);
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        emu.counts().get("b2_start_large_file"),
        1,
        "adopted, not started twice"
    );
    assert!(emu.unfinished_large_files(BUCKET).is_empty(), "no orphan");
    let back = dir.path().join("back");
    assert_eq!(download(&cfg, "big", &back).0, OK);
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
}

#[test]
fn a_lost_answer_to_finishing_a_large_file_is_checked_not_repeated() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 10);
    inject(&emu, "b2_finish_large_file", 1, FaultAction::LoseAnswer);
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, OK, "{v}");
    let counts = emu.counts();
    assert_eq!(
        counts.get("b2_finish_large_file"),
        1,
        "asked, not finished again"
    );
    assert_eq!(counts.get("b2_cancel_large_file"), 0);
    let stored = upload_versions(&emu, "backups/server1/big");
    assert_eq!(stored.len(), 1);
    assert_eq!(v["file_id"], stored[0].file_id.as_str());
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn lost_answers_to_deletes_still_count_exactly() {
    let emu = emulator();
    // 3 versions of 10,000 bytes against a 40,000-byte quota with a 50% limit: uploads are
    // refused until the delete frees all 30,000.
    let cfg = config(
        &emu,
        json!({"quota_bytes": 40_000, "free_disk_space_limit": 50}),
    );
    let dir = tempfile::tempdir().unwrap();
    let plain = config(&emu, json!({}));
    for seed in 0..3 {
        let f = write_file(dir.path(), "f", 10_000, 20 + seed);
        assert_eq!(upload(&plain, &f, "f").0, OK);
    }
    let (st, u) = usage(&cfg);
    assert_eq!((st, u["limit_reached"].as_bool()), (OK, Some(true)), "{u}");

    inject(&emu, "b2_delete_file_version", 2, FaultAction::LoseAnswer);
    let (st, v) = delete(&cfg, "f");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["deleted_versions"], 3, "{v}");
    assert_eq!(v["bytes_freed"], 30_000, "{v}");
    assert!(emu.file_versions(BUCKET).is_empty());
    // The figure kept for the limit check went down by all of it.
    let small = write_file(dir.path(), "s", 100, 30);
    let (st, v) = upload(&cfg, &small, "s");
    assert_eq!(st, OK, "the cached usage is exact: {v}");
    let (_, u) = usage(&cfg);
    assert_eq!(u["used_bytes"], 100, "{u}");
}

#[test]
fn a_lost_answer_to_a_cancel_counts_as_cancelled() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 11);
    fail_after_two_parts(&emu, &cfg, &f);
    inject(&emu, "b2_cancel_large_file", 1, FaultAction::LoseAnswer);
    let (st, v) = delete(&cfg, "dir");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["cancelled_large_files"], 1, "{v}");
    assert_eq!(v["bytes_freed"], 2 * PART, "{v}");
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn two_concurrent_uploads_to_one_path_leave_each_other_alone() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    let first = write_file(dir.path(), "first", LARGE, 12);
    let second = write_file(dir.path(), "second", LARGE, 13);
    // The first upload's second part is held at the server, so the second upload runs
    // whole while the first is mid-way.
    pass_then_hold(&emu, "b2_upload_part", 1, 1);
    let slow = {
        let (cfg, first) = (cfg.clone(), first.clone());
        std::thread::spawn(move || upload(&cfg, &first, "same"))
    };
    await_held(&emu, 1);
    let (st, v) = upload(&cfg, &second, "same");
    assert_eq!(st, OK, "the second upload: {v}");
    assert_eq!(emu.release(1), 1);
    let (st, v) = slow.join().unwrap();
    assert_eq!(st, OK, "the first upload: {v}");
    assert_eq!(
        emu.counts().get("b2_cancel_large_file"),
        0,
        "neither cancelled"
    );
    assert_eq!(
        emu.counts().get("b2_start_large_file"),
        2,
        "two files of one name"
    );
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
    let stored = upload_versions(&emu, "backups/server1/same");
    assert_eq!(stored.len(), 2);
    // What a download serves is the version B2 lists first, whole.
    let back = dir.path().join("back");
    assert_eq!(download(&cfg, "same", &back).0, OK);
    let got = sha1_hex(&std::fs::read(&back).unwrap());
    assert_eq!(
        stored[0].file_info.get("large_file_sha1"),
        Some(&got),
        "the newest version is served"
    );
    assert!(
        [&first, &second]
            .iter()
            .any(|p| sha1_hex(&std::fs::read(p).unwrap()) == got),
        "and it is one of the two files"
    );
}

#[test]
fn two_concurrent_uploads_of_one_file_to_one_path_both_succeed() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 14);
    // The first upload's last part is held at the server: the second resumes the same
    // file, sends that part itself and finishes first; the first's part, let go, then
    // meets a finished file.
    pass_then_hold(&emu, "b2_upload_part", 5, 1);
    let slow = {
        let (cfg, f) = (cfg.clone(), f.clone());
        std::thread::spawn(move || upload(&cfg, &f, "same"))
    };
    await_held(&emu, 1);
    let (st, second) = upload(&cfg, &f, "same");
    assert_eq!(st, OK, "the second upload: {second}");
    assert_eq!(emu.release(1), 1);
    assert_eq!(second["resumed_bytes"], 5 * PART, "{second}");
    let (st, first) = slow.join().unwrap();
    assert_eq!(st, OK, "the first upload: {first}");
    assert_eq!(first["file_id"], second["file_id"]);
    let counts = emu.counts();
    assert_eq!(counts.get("b2_cancel_large_file"), 0);
    assert_eq!(counts.get("b2_start_large_file"), 1);
    assert_eq!(upload_versions(&emu, "backups/server1/same").len(), 1);
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn a_key_that_may_not_list_sends_again_after_a_lost_answer() {
    let emu = emulator();
    let (id, key) = restricted_key(
        &emu,
        "write-only",
        &["writeFiles", "listBuckets"],
        Some(BUCKET),
        None,
    );
    let cfg = config(&emu, json!({"account_id": id, "application_key": key}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 5_000, 15);
    inject(&emu, "b2_upload_file", 1, FaultAction::LoseAnswer);
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, OK, "cannot check, so sends again rather than fail: {v}");
    assert_eq!(emu.counts().get("b2_upload_file"), 2);
}

#[test]
fn a_key_limited_to_a_name_prefix_still_uploads_large_files_at_the_bucket_root() {
    let emu = emulator();
    let (id, key) = restricted_key(
        &emu,
        "acct1-only",
        &[
            "listBuckets",
            "listFiles",
            "readFiles",
            "writeFiles",
            "deleteFiles",
        ],
        Some(BUCKET),
        Some("acct1"),
    );
    let cfg = config(
        &emu,
        json!({"account_id": id, "application_key": key, "backup_directory": ""}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 16);
    let (st, v) = upload(&cfg, &f, "acct1.tar");
    assert_eq!(st, OK, "{v}");
}
