//! Every destination operation, through the exported C functions, against the emulator.

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use serde_json::json;

#[test]
fn small_file_round_trip() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let data = content(12_345, 1);
    let local = dir.path().join("db.sql.gz");
    std::fs::write(&local, &data).unwrap();

    let (st, up) = upload(&cfg, &local, "2026-11-24/db.sql.gz");
    assert_eq!(st, OK, "{up}");
    assert_eq!(up["size"], 12_345);
    assert_eq!(up["sha1"], sha1_hex(&data));
    assert_eq!(up["remote_path"], "2026-11-24/db.sql.gz");
    let stored = emu.file_versions(BUCKET);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].file_name, "backups/server1/2026-11-24/db.sql.gz");
    assert!(stored[0].file_info.contains_key("src_last_modified_millis"));

    let (st, listed) = list(&cfg, "");
    assert_eq!(st, OK, "{listed}");
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["path"], "2026-11-24/db.sql.gz");
    assert_eq!(entries[0]["size"], 12_345);
    assert_eq!(entries[0]["sha1"], sha1_hex(&data));
    assert_eq!(entries[0]["file_id"], up["file_id"]);

    let back = dir.path().join("restore/db.sql.gz");
    let (st, down) = download(&cfg, "2026-11-24/db.sql.gz", &back);
    assert_eq!(st, OK, "{down}");
    assert_eq!(down["verified"], true);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&back).unwrap().permissions().mode() & 0o777,
        0o600,
        "restores are private"
    );

    let (st, used) = usage(&cfg);
    assert_eq!(st, OK, "{used}");
    assert_eq!(
        (
            used["used_bytes"].as_u64(),
            used["files"].as_u64(),
            used["versions"].as_u64()
        ),
        (Some(12_345), Some(1), Some(1))
    );

    let (st, del) = delete(&cfg, "2026-11-24");
    assert_eq!(st, OK, "{del}");
    assert_eq!(del["deleted_versions"], 1);
    assert_eq!(del["bytes_freed"], 12_345);
    assert!(emu.file_versions(BUCKET).is_empty());
    let (_, used) = usage(&cfg);
    assert_eq!(used["used_bytes"], 0);
}

#[test]
fn large_file_goes_in_parts_with_whole_sha1() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 3}));
    let dir = tempfile::tempdir().unwrap();
    let len = 3 * PART as usize + 4_321;
    let local = write_file(dir.path(), "home.tar", len, 2);
    let data = std::fs::read(&local).unwrap();

    let (st, up) = upload(&cfg, &local, "home.tar");
    assert_eq!(st, OK, "{up}");
    assert_eq!(up["sha1"], sha1_hex(&data));
    let counts = emu.counts();
    assert_eq!(counts.get("b2_upload_part"), 4);
    assert_eq!(counts.get("b2_upload_file"), 0);
    assert_eq!(counts.get("b2_start_large_file"), 1);
    assert_eq!(counts.get("b2_finish_large_file"), 1);
    let stored = emu.file_versions(BUCKET);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].size, len as u64);
    assert_eq!(
        stored[0]
            .file_info
            .get("large_file_sha1")
            .map(String::as_str),
        Some(sha1_hex(&data).as_str())
    );
    assert!(stored[0].file_info.contains_key("src_last_modified_millis"));
    // The parts stream from the file with their SHA1 in the header: bytes sent are the file.
    assert_eq!(counts.bytes_received, len as u64);

    emu.reset_counts();
    let back = dir.path().join("back.tar");
    let (st, down) = download(&cfg, "home.tar", &back);
    assert_eq!(st, OK, "{down}");
    assert_eq!(down["sha1"], sha1_hex(&data));
    assert_eq!(down["verified"], true);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // Fetched as ranges of at most the part size, each byte once, within the budget of
    // one call a range plus at most one extra a stream (3 here) for the stagger: the
    // first by name (its answer says the length and SHA1: no listing), the rest by id.
    let counts = emu.counts();
    assert_eq!(counts.get("b2_download_file_by_name"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_list_file_names"), 0, "{counts:?}");
    let whole_ranges = (len as u64).div_ceil(PART);
    let ranges = counts.get("b2_download_file_by_id") + 1;
    assert!(
        (whole_ranges..=whole_ranges + 3).contains(&ranges),
        "{counts:?}"
    );
    assert_eq!(counts.bytes_sent, len as u64, "each byte sent once");
}

#[test]
fn directory_trees_upload_list_download_and_delete() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("acct1");
    let mut expected = Vec::new();
    for (i, name) in ["a.txt", "sub/b.bin", "sub/deeper/c.bin", "empty"]
        .iter()
        .enumerate()
    {
        let len = if *name == "empty" {
            0
        } else {
            1000 * (i + 1) + if i == 2 { 2 * PART as usize } else { 0 }
        };
        write_file(&src, name, len, i as u64);
        expected.push((name.to_string(), len));
    }
    // A sibling that shares the prefix must survive deleting acct1.
    let other = write_file(dir.path(), "acct10", 10, 9);
    assert_eq!(upload(&cfg, &other, "acct10").0, OK);

    let (st, up) = upload(&cfg, &src, "acct1");
    assert_eq!(st, OK, "{up}");
    assert_eq!(up["file_count"], 4);
    let (st, listed) = list(&cfg, "acct1");
    assert_eq!(st, OK);
    let mut paths: Vec<String> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "acct1/a.txt",
            "acct1/empty",
            "acct1/sub/b.bin",
            "acct1/sub/deeper/c.bin"
        ]
    );

    let restore = dir.path().join("restore");
    let (st, down) = download(&cfg, "acct1", &restore);
    assert_eq!(st, OK, "{down}");
    assert_eq!(down["file_count"], 4);
    for (name, len) in &expected {
        let a = std::fs::read(src.join(name)).unwrap();
        assert_eq!(a.len(), *len);
        assert_eq!(std::fs::read(restore.join(name)).unwrap(), a, "{name}");
    }

    let (st, del) = delete(&cfg, "acct1");
    assert_eq!(st, OK, "{del}");
    assert_eq!(del["deleted_versions"], 4);
    let left: Vec<String> = emu
        .file_versions(BUCKET)
        .into_iter()
        .map(|v| v.file_name)
        .collect();
    assert_eq!(left, vec!["backups/server1/acct10"]);
}

#[test]
fn delete_removes_every_version_and_hide_marker() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..3 {
        let f = write_file(dir.path(), "f", 500 + seed as usize, seed);
        assert_eq!(upload(&cfg, &f, "daily/f").0, OK);
    }
    let (_, used) = usage(&cfg);
    assert_eq!(
        (
            used["files"].as_u64(),
            used["versions"].as_u64(),
            used["used_bytes"].as_u64()
        ),
        (Some(1), Some(3), Some(1503))
    );
    let (st, del) = delete(&cfg, "daily/f");
    assert_eq!(st, OK, "{del}");
    assert_eq!(del["deleted_versions"], 3);
    assert_eq!(del["bytes_freed"], 1503);
    assert!(emu.file_versions(BUCKET).is_empty());
    // Deleting what is not there is no error.
    let (st, del) = delete(&cfg, "daily/f");
    assert_eq!((st, del["deleted_versions"].as_u64()), (OK, Some(0)));
    assert_eq!(delete(&cfg, "").0, INVALID_ARGUMENT);
}

#[test]
fn validate_reports_every_check_and_warning() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "authorize",
            "capabilities",
            "bucket_access",
            "bucket_exists",
            "probe"
        ]
    );
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true));
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("keeps all versions"), "{warnings}");
    // The probe was deleted, all versions.
    assert!(emu.file_versions(BUCKET).is_empty());

    emu.update_bucket(BUCKET, Some("allPublic"), Some(json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 1, "daysFromUploadingToHiding": null}])));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("public"), "{warnings}");
    assert!(!warnings.contains("keeps all versions"), "{warnings}");
}

#[test]
fn validate_names_what_is_wrong_with_the_key_and_bucket() {
    let emu = emulator();
    let bad_key = config(
        &emu,
        json!({"application_key": "wrong-secret-application-key"}),
    );
    let (st, v) = validate(&bad_key);
    assert_eq!(st, AUTH, "{v}");
    assert_eq!(v["checks"][0]["ok"], false);

    let (id, key) = restricted_key(
        &emu,
        "nodelete",
        &["listBuckets", "listFiles", "readFiles", "writeFiles"],
        None,
        None,
    );
    let (st, v) = validate(&config(
        &emu,
        json!({"account_id": id, "application_key": key}),
    ));
    assert_eq!(st, PERMISSION, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deleteFiles"),
        "{v}"
    );

    let all = [
        "listBuckets",
        "listFiles",
        "readFiles",
        "writeFiles",
        "deleteFiles",
    ];
    let (id, key) = restricted_key(&emu, "otherbucket", &all, Some("other-bucket"), None);
    let (st, v) = validate(&config(
        &emu,
        json!({"account_id": id, "application_key": key}),
    ));
    assert_eq!(st, PERMISSION, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("other-bucket"),
        "{v}"
    );

    let (id, key) = restricted_key(&emu, "prefixed", &all, Some(BUCKET), Some("elsewhere/"));
    let (st, v) = validate(&config(
        &emu,
        json!({"account_id": id, "application_key": key}),
    ));
    assert_eq!(st, PERMISSION, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("elsewhere/"),
        "{v}"
    );

    // A key restricted to this bucket and a prefix that holds the backup directory works,
    // without listing other buckets or outside its prefix.
    let (id, key) = restricted_key(&emu, "scoped", &all, Some(BUCKET), Some("backups/"));
    let scoped = config(&emu, json!({"account_id": id, "application_key": key}));
    let (st, v) = validate(&scoped);
    assert_eq!(st, OK, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 3 * PART as usize, 3);
    assert_eq!(upload(&scoped, &f, "x/f").0, OK);
    assert_eq!(list(&scoped, "").0, OK);
    assert_eq!(usage(&scoped).0, OK);
    assert_eq!(delete(&scoped, "x").0, OK);

    let (st, v) = validate(&config(&emu, json!({"bucket": "no-such-bucket"})));
    assert_eq!(st, NOT_FOUND, "{v}");
}

#[test]
fn read_only_destination_restores_but_never_writes() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 100, 4);
    assert_eq!(upload(&cfg, &f, "f").0, OK);
    let ro = config(&emu, json!({"read_only": true}));
    let (st, v) = upload(&ro, &f, "g");
    assert_eq!(st, PERMISSION, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("read-only"));
    assert_eq!(delete(&ro, "f").0, PERMISSION);
    assert_eq!(download(&ro, "f", &dir.path().join("back")).0, OK);
    let (st, v) = validate(&ro);
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.file_versions(BUCKET).len(), 1);
}

#[test]
fn free_disk_space_limit_refuses_new_backups() {
    let emu = emulator();
    let cfg = config(
        &emu,
        json!({"free_disk_space_limit": 50, "quota_bytes": 2000}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1200, 5);
    assert_eq!(upload(&cfg, &f, "one").0, OK);
    let (st, v) = upload(&cfg, &f, "two");
    assert_eq!(st, LIMIT, "{v}");
    let (st, used) = usage(&cfg);
    assert_eq!(st, OK);
    assert_eq!(used["limit_reached"], true);
    assert_eq!(used["total_bytes"], 2000);
    assert_eq!(used["free_bytes"], 800);
    assert_eq!(used["used_percent"], 60.0);
    // Deleting frees the limit again, without a new listing being needed.
    assert_eq!(delete(&cfg, "one").0, OK);
    emu.reset_counts();
    assert_eq!(upload(&cfg, &f, "two").0, OK);
    assert_eq!(
        emu.counts().get("b2_list_file_versions"),
        0,
        "the kept usage figure is used"
    );
}

#[test]
fn missing_things_are_not_found() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let (st, v) = upload(&cfg, &dir.path().join("nope"), "x");
    assert_eq!(st, NOT_FOUND, "{v}");
    let (st, v) = download(&cfg, "nope", &dir.path().join("x"));
    assert_eq!(st, NOT_FOUND, "{v}");
    assert!(!dir.path().join("x").exists());
}

static PROGRESS_CALLS: AtomicU32 = AtomicU32::new(0);

/// Cancels once bytes have moved: a part is then under way at the (delayed) server.
unsafe extern "C" fn cancel_once_bytes_moved(done: u64, _total: u64, user: *mut c_void) -> i32 {
    // The callback runs on the caller's thread: compare with the id it passed.
    let caller = unsafe { &*(user as *const std::thread::ThreadId) };
    assert_eq!(*caller, std::thread::current().id());
    PROGRESS_CALLS.fetch_add(1, Ordering::SeqCst);
    (done > 0) as i32
}

#[test]
fn a_cancelled_upload_leaves_nothing_on_b2() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", 20 * PART as usize, 6);
    let me = std::thread::current().id();
    // The first part waits at the server, so the cancel lands with it in flight.
    emu.inject(b2_emulator::Fault {
        call: "b2_upload_part".into(),
        count: 1,
        action: b2_emulator::FaultAction::Delay { millis: 3000 },
    });
    let (st, v) = upload_with(
        &cfg,
        &f,
        "big",
        Some(cancel_once_bytes_moved),
        &me as *const _ as *mut c_void,
    );
    assert_eq!(st, CANCELLED, "{v}");
    assert!(PROGRESS_CALLS.load(Ordering::SeqCst) >= 2);
    let counts = emu.counts();
    assert_eq!(counts.get("b2_start_large_file"), 1, "{counts:?}");
    assert!(counts.get("b2_upload_part") >= 1, "{counts:?}");
    assert_eq!(
        counts.get("b2_cancel_large_file"),
        1,
        "the started large file was cancelled: {counts:?}"
    );
    assert_eq!(counts.get("b2_finish_large_file"), 0, "{counts:?}");
    assert!(
        emu.file_versions(BUCKET)
            .iter()
            .all(|v| v.action != "upload"),
        "no finished file"
    );
    assert!(
        emu.unfinished_large_files(BUCKET).is_empty(),
        "the large file was cancelled"
    );
}

unsafe extern "C" fn count_progress(done: u64, total: u64, user: *mut c_void) -> i32 {
    let seen = unsafe { &mut *(user as *mut Vec<(u64, u64, std::thread::ThreadId)>) };
    seen.push((done, total, std::thread::current().id()));
    0
}

#[test]
fn progress_runs_on_the_calling_thread_from_start_to_end() {
    let emu = emulator();
    // One stream, and the second request of each transfer waits at the server well past
    // the 500 ms heartbeat: a report must come while only the first part has moved.
    let cfg = config(&emu, json!({"concurrency": 1}));
    let hold_second = |call: &str| {
        for (count, millis) in [(1, 0), (1, 1500)] {
            emu.inject(b2_emulator::Fault {
                call: call.into(),
                count,
                action: b2_emulator::FaultAction::Delay { millis },
            });
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let len = 5 * PART;
    let f = write_file(dir.path(), "f", len as usize, 7);
    let mut seen: Vec<(u64, u64, std::thread::ThreadId)> = Vec::new();
    hold_second("b2_upload_part");
    let (st, _) = upload_with(
        &cfg,
        &f,
        "f",
        Some(count_progress),
        &mut seen as *mut _ as *mut c_void,
    );
    assert_eq!(st, OK);
    assert!(seen.iter().all(|s| s.2 == std::thread::current().id()));
    assert_progress_moves(&seen, len);
    seen.clear();
    hold_second("b2_download_file_by_id");
    let (st, _) = download_with(
        &cfg,
        "f",
        &dir.path().join("back"),
        Some(count_progress),
        &mut seen as *mut _ as *mut c_void,
    );
    assert_eq!(st, OK);
    assert!(seen.iter().all(|s| s.2 == std::thread::current().id()));
    assert_progress_moves(&seen, len);
}

/// Progress never goes back, ends at the whole length, and was reported part-way.
fn assert_progress_moves(seen: &[(u64, u64, std::thread::ThreadId)], len: u64) {
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    // The total is 0 only before the size is known, at the very start.
    assert!(
        seen.iter().all(|s| s.1 == len || (s.0, s.1) == (0, 0)),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|s| 0 < s.0 && s.0 < len),
        "a report part-way: {seen:?}"
    );
    assert_eq!(seen.last().map(|s| s.0), Some(len), "{seen:?}");
}

#[test]
fn one_session_serves_many_calls() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1000, 8);
    for i in 0..25 {
        assert_eq!(upload(&cfg, &f, &format!("many/{i}")).0, OK);
    }
    let counts = emu.counts();
    assert_eq!(counts.get("b2_authorize_account"), 1);
    assert_eq!(counts.get("b2_get_upload_url"), 1);
    assert_eq!(counts.get("b2_upload_file"), 25);
    assert_eq!(counts.get("b2_list_buckets"), 1);
}

#[test]
fn a_corrupt_download_leaves_the_existing_file_untouched() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    for (name, len) in [("small", 5000usize), ("large", 3 * PART as usize)] {
        let f = write_file(dir.path(), name, len, 10);
        assert_eq!(upload(&cfg, &f, name).0, OK);
        emu.corrupt_file(BUCKET, &format!("backups/server1/{name}"));
        let restore = dir.path().join("restore");
        std::fs::create_dir_all(&restore).unwrap();
        let target = restore.join(name);
        std::fs::write(&target, b"the previous restore").unwrap();
        let (st, v) = download(&cfg, name, &target);
        assert_eq!(st, INTEGRITY, "{v}");
        assert_eq!(std::fs::read(&target).unwrap(), b"the previous restore");
        let leftovers: Vec<_> = std::fs::read_dir(&restore)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(
            leftovers.is_empty(),
            "no temporary file is left: {leftovers:?}"
        );
    }
}

#[test]
fn usage_counts_unfinished_large_files_and_delete_cancels_them() {
    let emu = emulator();
    let cfg = config(&emu, json!({"upload_retries": 0, "concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", 4 * PART as usize, 11);
    // The second part fails, and so does the cancel: the parts stay on B2.
    emu.inject(b2_emulator::Fault {
        call: "b2_upload_part".into(),
        count: 1,
        action: b2_emulator::FaultAction::Delay { millis: 0 },
    });
    emu.inject(b2_emulator::Fault {
        call: "b2_upload_part".into(),
        count: 1,
        action: b2_emulator::FaultAction::Error {
            status: 400,
            code: "bad_request".into(),
            retry_after: None,
            message: None,
        },
    });
    emu.inject(b2_emulator::Fault {
        call: "b2_cancel_large_file".into(),
        count: 10,
        action: b2_emulator::FaultAction::Error {
            status: 500,
            code: "internal_error".into(),
            retry_after: None,
            message: None,
        },
    });
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, REMOTE, "{v}");
    emu.clear_faults();
    assert_eq!(emu.unfinished_large_files(BUCKET).len(), 1);
    let (st, used) = usage(&cfg);
    assert_eq!(st, OK);
    assert_eq!(used["unfinished_large_files"], 1);
    assert_eq!(used["used_bytes"], PART);
    let (st, del) = delete(&cfg, "big");
    assert_eq!(st, OK, "{del}");
    assert_eq!(del["cancelled_large_files"], 1);
    assert_eq!(del["bytes_freed"], PART);
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn billed_calls_stay_within_the_budget() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 4}));
    let dir = tempfile::tempdir().unwrap();
    for i in 0..40 {
        write_file(&dir.path().join("tree"), &format!("f{i:03}"), 2_000, i);
    }
    let (st, v) = upload(&cfg, &dir.path().join("tree"), "tree");
    assert_eq!(st, OK, "{v}");
    let c = emu.counts();
    assert_eq!(c.get("b2_upload_file"), 40);
    assert!(
        c.get("b2_get_upload_url") <= 4,
        "one upload URL per concurrent slot: {c:?}"
    );
    assert_eq!(
        c.total(),
        40 + c.get("b2_get_upload_url") + 2,
        "uploads + URLs + authorize + bucket lookup: {c:?}"
    );

    // Usage lists with B2's largest page: 12,000 versions are two calls.
    emu.seed_files(BUCKET, "backups/server1/seeded/", 12_000, 10);
    emu.reset_counts();
    let (st, used) = usage(&cfg);
    assert_eq!(st, OK, "{used}");
    assert_eq!(used["versions"], 12_040);
    assert_eq!(emu.counts().get("b2_list_file_versions"), 2);

    // Deleting them keeps `concurrency` deletes in flight and lists with full pages too.
    emu.reset_counts();
    let (st, del) = delete(&cfg, "seeded");
    assert_eq!(st, OK, "{del}");
    assert_eq!(del["deleted_versions"], 12_000);
    assert_eq!(emu.counts().get("b2_list_file_versions"), 2);
    assert_eq!(
        emu.counts().get("b2_authorize_account"),
        0,
        "the session is kept"
    );
}

static LAST_SEEN: std::sync::Mutex<Option<(u64, u64)>> = std::sync::Mutex::new(None);

/// Cancels only when called with nothing moved since its last call: a stall.
unsafe extern "C" fn cancel_when_stalled(done: u64, total: u64, _user: *mut c_void) -> i32 {
    let mut last = LAST_SEEN.lock().unwrap();
    let stalled = *last == Some((done, total)) && done > 0;
    *last = Some((done, total));
    stalled as i32
}

#[test]
fn a_stalled_upload_can_still_be_cancelled() {
    let emu = emulator();
    // A stall timeout far beyond the hang, so that only the cancel can end the upload early.
    let cfg = config(&emu, json!({"concurrency": 4, "timeout_seconds": 600}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", 3 * PART as usize, 15);
    // Every part hangs at the server: no byte moves, yet the host's stop must be heard.
    let hang = std::time::Duration::from_secs(120);
    emu.inject(b2_emulator::Fault {
        call: "b2_upload_part".into(),
        count: 10,
        action: b2_emulator::FaultAction::Delay {
            millis: hang.as_millis() as u64,
        },
    });
    let started = std::time::Instant::now();
    let (st, v) = upload_with(
        &cfg,
        &f,
        "big",
        Some(cancel_when_stalled),
        std::ptr::null_mut(),
    );
    assert_eq!(st, CANCELLED, "{v}");
    // Not a speed check: only a cancel that waits for the server's answer takes this long.
    assert!(started.elapsed() < hang / 2, "{:?}", started.elapsed());
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn a_failing_directory_upload_leaves_no_unfinished_large_file() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 3, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        write_file(
            &dir.path().join("tree"),
            &format!("big{i}"),
            4 * PART as usize,
            20 + i,
        );
    }
    emu.inject(b2_emulator::Fault {
        call: "b2_upload_part".into(),
        count: 2,
        action: b2_emulator::FaultAction::Delay { millis: 0 },
    });
    emu.inject(b2_emulator::Fault {
        call: "b2_upload_part".into(),
        count: 1,
        action: b2_emulator::FaultAction::Error {
            status: 400,
            code: "bad_request".into(),
            retry_after: None,
            message: None,
        },
    });
    let (st, v) = upload(&cfg, &dir.path().join("tree"), "tree");
    assert_eq!(st, REMOTE, "{v}");
    assert!(
        emu.unfinished_large_files(BUCKET).is_empty(),
        "every large file under way was finished or cancelled"
    );
}

#[test]
fn a_restore_does_not_follow_links_below_its_target() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("tree/etc"), "passwd", 10, 30);
    assert_eq!(upload(&cfg, &dir.path().join("tree"), "tree").0, OK);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let restore = dir.path().join("restore");
    std::fs::create_dir(&restore).unwrap();
    std::os::unix::fs::symlink(&elsewhere, restore.join("etc")).unwrap();
    let (st, v) = download(&cfg, "tree", &restore);
    assert_eq!(st, LOCAL_IO, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("symbolic link"),
        "{v}"
    );
    assert!(!elsewhere.join("passwd").exists());
}
