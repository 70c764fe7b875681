//! The Object Lock promise under stress, against the emulator: a file that changes while it
//! is sent leaves no locked copy (or the response names it), a resume or a long tree upload
//! is locked for the whole retention, and an upload needs the key to read retentions.

mod common;

use std::ffi::c_void;

use b2_emulator::{Emulator, Fault, FaultAction};
use common::lock::*;
use common::*;
use serde_json::{json, Value};

/// Rewrites the start of the file (its identity changes) once any byte was read.
unsafe extern "C" fn rewrite_file(done: u64, _total: u64, user: *mut c_void) -> i32 {
    let path = unsafe { &*(user as *const std::path::PathBuf) };
    if done > 0 {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(b"rewritten", 0).unwrap();
    }
    0
}

fn upload_changing(cfg: &str, f: &std::path::PathBuf) -> (i32, Value) {
    upload_with(
        cfg,
        f,
        "f",
        Some(rewrite_file),
        f as *const std::path::PathBuf as *mut c_void,
    )
}

#[test]
fn a_small_file_written_while_it_is_sent_never_becomes_a_locked_copy() {
    let emu = locked_emulator();
    // One b2_upload_file of several body chunks, slowed so the write lands mid-body.
    let cfg = config(
        &emu,
        json!({"concurrency": 1, "part_size_bytes": 8_000_000,
               "bandwidth_limit_bytes_per_second": 1_048_576,
               "object_lock": {"mode": "compliance", "retention_days": 1}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 6 << 20, 31);
    let (st, v) = upload_changing(&cfg, &f);
    assert_eq!(st, LOCAL_IO, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("changed"),
        "{v}"
    );
    assert_eq!(emu.counts().get("b2_upload_file"), 1, "{v}");
    assert!(uploaded(&emu).is_empty(), "no copy stored, so none locked");
    assert!(v.get("kept_on_b2").is_none(), "{v}");
}

#[test]
fn a_clean_up_delete_refused_by_the_lock_is_told_not_hidden() {
    let emu = locked_emulator();
    let cfg = config(
        &emu,
        json!({"concurrency": 1,
               "object_lock": {"mode": "compliance", "retention_days": 1}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 3_000, 32);
    // The answer is held back: the write lands after the whole body was sent.
    emu.inject(Fault {
        call: "b2_upload_file".into(),
        count: 1,
        action: FaultAction::Delay { millis: 600 },
    });
    let (st, v) = upload_changing(&cfg, &f);
    assert_eq!(st, LOCAL_IO, "{v}");
    let kept = stored(&emu, "f");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(!message.contains("nothing was kept"), "{v}");
    assert!(message.contains(&kept.file_id), "{v}");
    assert_eq!(v["kept_on_b2"][0]["file_id"], kept.file_id.as_str(), "{v}");
    assert_eq!(
        v["kept_on_b2"][0]["retain_until_ms"],
        kept.retain_until.unwrap()
    );
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(&kept.file_id)),
        "{v}"
    );
}

#[test]
fn a_resume_of_a_file_started_with_a_shorter_lock_is_held_for_the_full_retention() {
    let emu = locked_emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", 5 * PART as usize + 77, 33);
    let first = config(
        &emu,
        json!({"concurrency": 1, "upload_retries": 1,
               "object_lock": {"mode": "compliance", "retention_days": 1}}),
    );
    pass_then_fail(&emu, "b2_upload_part", 2, 2, 503, "service_unavailable");
    let (st, v) = upload(&first, &f, "big");
    assert_eq!(st, REMOTE, "{v}");
    emu.clear_faults();
    let started = emu.unfinished_large_files(BUCKET)[0].retain_until.unwrap();
    assert!(started < now_ms() + 2 * DAY_MS);

    let second = config(
        &emu,
        json!({"concurrency": 1,
               "object_lock": {"mode": "compliance", "retention_days": 30}}),
    );
    emu.reset_counts();
    let before = now_ms();
    let (st, v) = upload(&second, &f, "big");
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.counts().get("b2_start_large_file"), 0, "resumed: {v}");
    assert_eq!(v["resumed_bytes"], 2 * PART);
    let done = stored(&emu, "big");
    let held = done.retain_until.unwrap();
    assert!(held >= before + 30 * DAY_MS, "B2 holds {held}");
    assert_eq!(done.retention_mode.as_deref(), Some("compliance"));
    assert_eq!(
        v["retain_until_ms"], held,
        "the response tells what B2 holds"
    );
    assert_eq!(emu.counts().get("b2_update_file_retention"), 1);

    // A fresh upload already holds what it asked for: no extra call.
    let g = write_file(dir.path(), "small", 10, 34);
    emu.reset_counts();
    assert_eq!(upload(&second, &g, "small").0, OK);
    assert_eq!(emu.counts().get("b2_update_file_retention"), 0);
}

#[test]
fn each_file_of_a_tree_is_locked_from_its_own_start() {
    let emu = locked_emulator();
    let cfg = config(
        &emu,
        json!({"concurrency": 1,
               "object_lock": {"mode": "governance", "retention_days": 2}}),
    );
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "a", 100, 35);
    write_file(dir.path(), "b", 100, 36);
    // The first file's answer comes 1.5 s late, so the second starts at least that later.
    emu.inject(Fault {
        call: "b2_upload_file".into(),
        count: 1,
        action: FaultAction::Delay { millis: 1500 },
    });
    let (st, v) = upload(&cfg, dir.path(), "t");
    assert_eq!(st, OK, "{v}");
    let a = stored(&emu, "t/a").retain_until.unwrap();
    let b = stored(&emu, "t/b").retain_until.unwrap();
    assert!(b >= a + 1500, "a {a}, b {b}");
    assert!(b >= stored(&emu, "t/b").upload_timestamp + 2 * DAY_MS - 1500);
}

#[test]
fn an_upload_needs_a_key_that_can_read_retentions_too() {
    let emu = locked_emulator();
    let (id, key) = restricted_key(
        &emu,
        "write-only-retention",
        &[
            "listBuckets",
            "listFiles",
            "readFiles",
            "writeFiles",
            "deleteFiles",
            "readBucketRetentions",
            "writeFileRetentions",
        ],
        None,
        None,
    );
    let cfg = config(
        &emu,
        json!({"account_id": id, "application_key": key,
               "object_lock": {"mode": "governance", "retention_days": 3}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 100, 37);
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, PERMISSION, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("readFileRetentions"),
        "{v}"
    );
    assert_eq!(emu.counts().bytes_received, 0);
    assert!(uploaded(&emu).is_empty());
}

#[test]
fn a_clock_far_from_b2s_is_refused_before_anything_is_locked() {
    let emu = locked_emulator();
    let cfg = config(
        &emu,
        json!({"object_lock": {"mode": "compliance", "retention_days": 1}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 100, 38);
    for (offset, says) in [(-10 * 60_000i64, "ahead of"), (10 * 60_000, "behind")] {
        emu.set_clock_offset(offset);
        let (st, v) = upload(&cfg, &f, "f");
        assert_eq!(st, CONFIG, "{v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("clock") && message.contains(says), "{v}");
        assert_eq!(emu.counts().bytes_received, 0);
        let (st, v) = upload(&cfg, &f, "f");
        assert_eq!(st, CONFIG, "the next call too: {v}");
    }
    assert!(uploaded(&emu).is_empty());
    // A minute off is within what is allowed.
    emu.set_clock_offset(60_000);
    assert_eq!(upload(&cfg, &f, "f").0, OK);
    assert_eq!(uploaded(&emu).len(), 1);
}

/// Strips the lock of the newest stored version of `DIR/f` once there is one: what a lost
/// answer's retry then finds matches in everything but its lock.
unsafe extern "C" fn strip_lock(_done: u64, _total: u64, user: *mut c_void) -> i32 {
    let emu = unsafe { &*(user as *const Emulator) };
    let name = format!("{DIR}f");
    let locked = emu
        .file_versions(BUCKET)
        .into_iter()
        .any(|v| v.file_name == name && v.action == "upload" && v.retention_mode.is_some());
    if locked
        && emu.file_versions(BUCKET).len() == 1
        && !STRIPPED.swap(true, std::sync::atomic::Ordering::SeqCst)
    {
        emu.force_lock(BUCKET, &name, Some(json!({"mode": null})), None);
    }
    0
}

/// `strip_lock` strips one lock only: that of the lost answer's version.
static STRIPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[test]
fn a_lost_answer_is_recovered_only_by_a_version_that_carries_the_lock() {
    let emu = locked_emulator();
    let cfg = config(
        &emu,
        json!({"concurrency": 1, "retry_initial_delay_ms": 1500,
               "object_lock": {"mode": "compliance", "retention_days": 1}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 2_000, 39);
    emu.inject(Fault {
        call: "b2_upload_file".into(),
        count: 1,
        action: FaultAction::LoseAnswer,
    });
    let (st, v) = upload_with(
        &cfg,
        &f,
        "f",
        Some(strip_lock),
        &emu as *const Emulator as *mut c_void,
    );
    assert_eq!(st, OK, "{v}");
    assert!(STRIPPED.load(std::sync::atomic::Ordering::SeqCst));
    // The version that lost its lock was not taken for the backup: sent again, and the
    // unlocked copy removed as a second copy of the same upload.
    let versions = uploaded(&emu);
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(v["file_id"], versions[0].file_id.as_str(), "{v}");
    assert_eq!(versions[0].retention_mode.as_deref(), Some("compliance"));
    assert_eq!(emu.counts().get("b2_upload_file"), 2);
    assert_eq!(emu.counts().get("b2_delete_file_version"), 1);
}
