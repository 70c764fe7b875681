//! B2 Object Lock through the C ABI, against the emulator: what B2 holds is read back
//! from the emulator itself, never through the library.

mod common;

use b2_emulator::{Emulator, Fault, FaultAction};
use common::lock::*;
use common::*;
use serde_json::{json, Value};

const LARGE: usize = 5 * PART as usize + 123;

fn lock_cfg(emu: &Emulator, mode: &str, days: u32, bypass: bool) -> String {
    config(
        emu,
        json!({"object_lock": {"mode": mode, "retention_days": days, "bypass_governance": bypass}}),
    )
}

fn names(emu: &Emulator) -> Vec<String> {
    emu.file_versions(BUCKET)
        .into_iter()
        .map(|v| v.file_name.trim_start_matches(DIR).to_string())
        .collect()
}

fn expire(emu: &Emulator, name: &str) {
    emu.force_lock(
        BUCKET,
        &format!("{DIR}{name}"),
        Some(json!({"mode": "compliance", "retainUntilTimestamp": now_ms() - 1000})),
        None,
    );
}

#[test]
fn uploads_carry_their_retention_in_the_upload_itself_small_and_multipart() {
    let emu = locked_emulator();
    let cfg = lock_cfg(&emu, "compliance", 30, false);
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(dir.path(), "small", 1_000, 1);
    let big = write_file(dir.path(), "big", LARGE, 2);
    let before = now_ms();
    let (st, up) = upload(&cfg, &small, "night/small");
    assert_eq!(st, OK, "{up}");
    let (st, big_up) = upload(&cfg, &big, "night/big");
    assert_eq!(st, OK, "{big_up}");
    let after = now_ms();
    for (name, answer) in [("night/small", &up), ("night/big", &big_up)] {
        let v = stored(&emu, name);
        assert_eq!(v.retention_mode.as_deref(), Some("compliance"), "{name}");
        let until = v.retain_until.unwrap();
        assert!(
            until >= before + 30 * DAY_MS && until <= after + 30 * DAY_MS,
            "{name}: {until}"
        );
        assert_eq!(answer["retain_until_ms"], until, "{answer}");
        assert_eq!(answer["retention_mode"], "compliance");
    }
    let counts = emu.counts();
    assert_eq!(
        counts.get("b2_start_large_file"),
        1,
        "the big one is multipart"
    );
    assert_eq!(counts.get("b2_update_file_retention"), 0, "no second call");
    let (st, listed) = list(&cfg, "night");
    assert_eq!(st, OK);
    for e in listed["entries"].as_array().unwrap() {
        assert_eq!(e["retention_mode"], "compliance", "{e}");
        assert!(e["retain_until_ms"].as_u64().unwrap() > after, "{e}");
    }
}

#[test]
fn a_locked_backup_refuses_deletion_and_nothing_else_is_lost() {
    let emu = locked_emulator();
    let cfg = lock_cfg(&emu, "governance", 7, false);
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "tree/a", 300, 1);
    write_file(dir.path(), "tree/b", 700, 2);
    let (st, up) = upload(&cfg, &dir.path().join("tree"), "acct1");
    assert_eq!(st, OK, "{up}");
    let until = stored(&emu, "acct1/a").retain_until.unwrap();
    emu.reset_counts();
    let (st, v) = delete(&cfg, "acct1");
    assert_eq!(st, LOCKED, "{v}");
    assert_eq!(v["error"]["code"], "locked");
    assert_eq!(v["error"]["retryable"], false);
    assert_eq!(
        (
            v["deleted_versions"].as_u64(),
            v["locked_versions"].as_u64(),
            v["locked_bytes"].as_u64()
        ),
        (Some(0), Some(2), Some(1000)),
        "{v}"
    );
    assert_eq!(v["earliest_unlock_ms"], until);
    assert_eq!(names(&emu), ["acct1/a", "acct1/b"]);
    assert_eq!(
        emu.counts().get("b2_delete_file_version"),
        0,
        "B2 is not asked what it must refuse"
    );
    // The backup still restores whole.
    let back = dir.path().join("back");
    assert_eq!(download(&cfg, "acct1/b", &back).0, OK);
    assert_eq!(std::fs::read(&back).unwrap(), content(700, 2));
}

#[test]
fn a_directory_delete_deletes_exactly_the_free_files() {
    let emu = locked_emulator();
    let locked = lock_cfg(&emu, "compliance", 2, false);
    let free = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in ["l1", "l2", "x"].iter().enumerate() {
        let f = write_file(dir.path(), name, 100 + i, i as u64);
        assert_eq!(upload(&locked, &f, &format!("day/{name}")).0, OK);
    }
    for (i, name) in ["f1", "f2"].iter().enumerate() {
        let f = write_file(dir.path(), name, 50 + i, 9 + i as u64);
        assert_eq!(upload(&free, &f, &format!("day/{name}")).0, OK);
    }
    expire(&emu, "day/x");
    emu.reset_counts();
    let (st, v) = delete(&locked, "day");
    assert_eq!(st, LOCKED, "{v}");
    assert_eq!(
        (v["deleted_versions"].as_u64(), v["bytes_freed"].as_u64()),
        (Some(3), Some(102 + 50 + 51)),
        "{v}"
    );
    assert_eq!(
        (v["locked_versions"].as_u64(), v["locked_bytes"].as_u64()),
        (Some(2), Some(100 + 101)),
        "{v}"
    );
    assert_eq!(
        emu.counts().get("b2_delete_file_version"),
        3,
        "only the free ones were sent"
    );
    assert_eq!(names(&emu), ["day/l1", "day/l2"]);
    // A key that may not read retentions: B2 itself refuses, and the count is the same.
    let (id, key) = restricted_key(
        &emu,
        "blind",
        &[
            "listBuckets",
            "listFiles",
            "readFiles",
            "writeFiles",
            "deleteFiles",
        ],
        None,
        None,
    );
    let blind = config(&emu, json!({"account_id": id, "application_key": key}));
    emu.reset_counts();
    let (st, v) = delete(&blind, "day");
    assert_eq!(st, LOCKED, "{v}");
    assert_eq!(
        (v["locked_versions"].as_u64(), v["locked_bytes"].as_u64()),
        (Some(2), Some(201)),
        "{v}"
    );
    assert_eq!(v["earliest_unlock_ms"], Value::Null, "unknown to this key");
    assert_eq!(emu.counts().get("b2_delete_file_version"), 2);
    assert_eq!(names(&emu), ["day/l1", "day/l2"]);
}

#[test]
fn governance_is_bypassed_only_with_the_setting_and_the_capability() {
    let emu = locked_emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "g", 400, 3);
    assert_eq!(
        upload(&lock_cfg(&emu, "governance", 5, false), &f, "g").0,
        OK
    );
    assert_eq!(
        upload(&lock_cfg(&emu, "compliance", 5, false), &f, "c").0,
        OK
    );
    let (id, key) = restricted_key(
        &emu,
        "no-bypass",
        &[
            "listBuckets",
            "listFiles",
            "readFiles",
            "writeFiles",
            "deleteFiles",
            "readBucketRetentions",
            "readFileRetentions",
            "writeFileRetentions",
        ],
        None,
        None,
    );
    let lacking = config(
        &emu,
        json!({"account_id": id, "application_key": key,
               "object_lock": {"mode": "governance", "retention_days": 5, "bypass_governance": true}}),
    );
    for cfg in [&lock_cfg(&emu, "governance", 5, false), &lacking] {
        let (st, v) = delete(cfg, "g");
        assert_eq!(st, LOCKED, "{v}");
    }
    assert_eq!(names(&emu), ["c", "g"]);
    let bypassing = lock_cfg(&emu, "governance", 5, true);
    let (st, v) = delete(&bypassing, "c");
    assert_eq!(st, LOCKED, "compliance is never bypassed: {v}");
    let (st, v) = delete(&bypassing, "g");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["deleted_versions"], 1);
    assert_eq!(v["bytes_freed"], 400);
    assert_eq!(names(&emu), ["c"]);
}

#[test]
fn protect_moves_retain_until_forward_and_never_shortens_or_weakens() {
    let emu = locked_emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "db", 500, 4);
    assert_eq!(
        upload(&lock_cfg(&emu, "compliance", 10, false), &f, "n/db").0,
        OK
    );
    let first = stored(&emu, "n/db").retain_until.unwrap();
    emu.reset_counts();
    // Shorter than what B2 holds: nothing is asked of B2.
    let (st, v) = protect(&lock_cfg(&emu, "compliance", 3, false), "n");
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        (
            v["extended_versions"].as_u64(),
            v["unchanged_versions"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert_eq!(emu.counts().get("b2_update_file_retention"), 0);
    assert_eq!(stored(&emu, "n/db").retain_until, Some(first));
    // Longer, from a governance destination: moved forward, and still compliance.
    let (st, v) = protect(&lock_cfg(&emu, "governance", 20, false), "n");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["extended_versions"], 1, "{v}");
    let now = stored(&emu, "n/db");
    assert_eq!(now.retention_mode.as_deref(), Some("compliance"));
    assert_eq!(now.retain_until, v["retain_until_ms"].as_u64());
    assert!(now.retain_until.unwrap() >= first + 10 * DAY_MS - 60_000);
    assert_eq!(emu.counts().get("b2_update_file_retention"), 1);
    // An unlocked backup is locked by it too; without object_lock it is refused.
    assert_eq!(upload(&config(&emu, json!({})), &f, "n/plain").0, OK);
    let (st, v) = protect(&lock_cfg(&emu, "governance", 2, false), "n");
    assert_eq!((st, v["extended_versions"].as_u64()), (OK, Some(1)), "{v}");
    assert_eq!(
        stored(&emu, "n/plain").retention_mode.as_deref(),
        Some("governance")
    );
    assert_eq!(protect(&config(&emu, json!({})), "n").0, CONFIG);
}

#[test]
fn usage_counts_locked_versions_and_their_unlock_times() {
    let emu = locked_emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "u", 1_000, 5);
    assert_eq!(
        upload(&lock_cfg(&emu, "governance", 1, false), &f, "one").0,
        OK
    );
    assert_eq!(
        upload(&lock_cfg(&emu, "compliance", 3, false), &f, "three").0,
        OK
    );
    assert_eq!(upload(&config(&emu, json!({})), &f, "free").0, OK);
    let (st, u) = usage(&lock_cfg(&emu, "governance", 1, false));
    assert_eq!(st, OK, "{u}");
    assert_eq!(
        (u["versions"].as_u64(), u["locked_versions"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(u["locked_bytes"], 2_000);
    assert_eq!(
        u["earliest_unlock_ms"],
        stored(&emu, "one").retain_until.unwrap()
    );
    assert_eq!(
        u["latest_unlock_ms"],
        stored(&emu, "three").retain_until.unwrap()
    );
    expire(&emu, "three");
    let (_, u) = usage(&lock_cfg(&emu, "governance", 1, false));
    assert_eq!(u["locked_versions"], 1, "{u}");
}

#[test]
fn without_object_lock_on_the_bucket_or_the_capabilities_nothing_is_sent() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 6);
    let cfg = lock_cfg(&emu, "governance", 3, false);
    let (st, v) = validate(&cfg);
    assert_eq!(st, PERMISSION, "{v}");
    let check = |v: &Value, name: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(check(&v, "object_lock_bucket")["ok"], false, "{v}");
    assert!(check(&v, "object_lock_bucket")["message"]
        .as_str()
        .unwrap()
        .contains("Object Lock"));
    emu.reset_counts();
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, PERMISSION, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("enable Object Lock"));
    let counts = emu.counts();
    assert_eq!(
        counts.get("b2_start_large_file") + counts.get("b2_get_upload_url"),
        0
    );
    assert_eq!(counts.bytes_received, 0, "before any byte");

    emu.configure_object_lock(BUCKET, json!({"fileLockEnabled": true}));
    let (id, key) = restricted_key(
        &emu,
        "no-retention",
        &[
            "listBuckets",
            "listFiles",
            "readFiles",
            "writeFiles",
            "deleteFiles",
            "readBucketRetentions",
        ],
        None,
        None,
    );
    let lacking = config(
        &emu,
        json!({"account_id": id, "application_key": key,
               "object_lock": {"mode": "governance", "retention_days": 3}}),
    );
    let (st, v) = validate(&lacking);
    assert_eq!(st, PERMISSION, "{v}");
    assert_eq!(check(&v, "object_lock_capabilities")["ok"], false, "{v}");
    assert_eq!(check(&v, "object_lock_bucket")["ok"], true, "{v}");
    emu.reset_counts();
    let (st, v) = upload(&lacking, &f, "big");
    assert_eq!(st, PERMISSION, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("writeFileRetentions"));
    assert_eq!(emu.counts().bytes_received, 0);
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn validate_writes_a_probe_locked_for_a_minute_and_a_later_validate_removes_it() {
    let emu = locked_emulator();
    let cfg = lock_cfg(&emu, "compliance", 3, false);
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    let probes = emu.file_versions(BUCKET);
    assert_eq!(probes.len(), 1, "the probe stays for its minute");
    let p = &probes[0];
    assert_eq!(p.retention_mode.as_deref(), Some("compliance"));
    let left = p.retain_until.unwrap() - p.upload_timestamp;
    assert!((55_000..=65_000).contains(&left), "{left}");
    expire(&emu, p.file_name.trim_start_matches(DIR));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    let after = emu.file_versions(BUCKET);
    assert_eq!(after.len(), 1, "the old probe went, the new one stays");
    assert_ne!(after[0].file_id, p.file_id);
    // Without object_lock on a bucket with a default retention: a warning, and deletes
    // of fresh backups are refused.
    emu.configure_object_lock(
        BUCKET,
        json!({"defaultRetention": {"mode": "governance", "period": {"duration": 2, "unit": "days"}}}),
    );
    let plain = config(&emu, json!({}));
    emu.reset_counts();
    let (st, v) = validate(&plain);
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        emu.counts().get("b2_list_buckets"),
        1,
        "the bucket is read once"
    );
    let warned = v["warnings"].as_array().unwrap().iter().any(|w| {
        let w = w.as_str().unwrap();
        w.contains("default retention") && w.contains("deletes")
    });
    assert!(warned, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "d", 10, 7);
    assert_eq!(upload(&plain, &f, "d").0, OK);
    assert_eq!(delete(&plain, "d").0, LOCKED);
}

#[test]
fn a_resumed_locked_large_upload_keeps_its_retention() {
    let emu = locked_emulator();
    let cfg = config(
        &emu,
        json!({"concurrency": 1, "upload_retries": 1,
               "object_lock": {"mode": "governance", "retention_days": 4}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 8);
    let busy = FaultAction::Error {
        status: 503,
        code: "service_unavailable".into(),
        retry_after: None,
        message: None,
    };
    for (count, action) in [(2, FaultAction::Delay { millis: 0 }), (2, busy)] {
        emu.inject(Fault {
            call: "b2_upload_part".into(),
            count,
            action,
        });
    }
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, REMOTE, "{v}");
    emu.clear_faults();
    let unfinished = emu.unfinished_large_files(BUCKET);
    assert_eq!(unfinished.len(), 1);
    let first = unfinished[0].retain_until.unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    emu.reset_counts();
    let before = now_ms();
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.counts().get("b2_start_large_file"), 0, "resumed");
    assert_eq!(v["resumed_bytes"], 2 * PART);
    let done = stored(&emu, "big");
    // Counted from this try, not the first one (whose start B2 fixed the retention at).
    let held = done.retain_until.unwrap();
    assert!(held > first && held >= before + 4 * DAY_MS, "{held}");
    assert_eq!(v["retain_until_ms"], held);

    // An unfinished file started without a lock is not resumed into an unlocked file.
    let g = write_file(dir.path(), "big2", LARGE, 9);
    let unlocked = config(&emu, json!({"concurrency": 1, "upload_retries": 1}));
    pass_then_fail(&emu, "b2_upload_part", 2, 2, 503, "service_unavailable");
    assert_eq!(upload(&unlocked, &g, "big2").0, REMOTE);
    emu.clear_faults();
    // No longer sent parts by anyone (31 minutes quiet), so it can be cancelled.
    emu.backdate_unfinished(BUCKET, &format!("{DIR}big2"), 31 * 60_000);
    emu.reset_counts();
    let (st, v) = upload(&cfg, &g, "big2");
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.counts().get("b2_start_large_file"), 1, "started afresh");
    assert_eq!(
        stored(&emu, "big2").retention_mode.as_deref(),
        Some("governance")
    );
    assert!(
        emu.unfinished_large_files(BUCKET).is_empty(),
        "the unlocked one was cancelled"
    );
    assert_eq!(emu.counts().get("b2_cancel_large_file"), 1);
}

#[test]
fn an_expired_retention_lets_the_delete_through_and_a_legal_hold_does_not() {
    let emu = locked_emulator();
    let cfg = lock_cfg(&emu, "compliance", 9, false);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "e", 321, 10);
    assert_eq!(upload(&cfg, &f, "old").0, OK);
    assert_eq!(upload(&cfg, &f, "held").0, OK);
    assert_eq!(delete(&cfg, "old").0, LOCKED);
    expire(&emu, "old");
    let (st, v) = delete(&cfg, "old");
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        (v["deleted_versions"].as_u64(), v["bytes_freed"].as_u64()),
        (Some(1), Some(321))
    );
    emu.force_lock(BUCKET, &format!("{DIR}held"), None, Some("on"));
    expire(&emu, "held");
    let (st, v) = delete(&cfg, "held");
    assert_eq!(st, LOCKED, "{v}");
    assert_eq!(
        v["earliest_unlock_ms"],
        Value::Null,
        "a legal hold has no end"
    );
    assert_eq!(names(&emu), ["held"]);
}

#[test]
fn object_lock_settings_b2_would_refuse_are_refused_naming_the_field() {
    let emu = emulator();
    for (lock, field) in [
        (
            json!({"mode": "forever", "retention_days": 3}),
            "object_lock.mode",
        ),
        (
            json!({"mode": "governance", "retention_days": 0}),
            "object_lock.retention_days",
        ),
        (
            json!({"mode": "governance", "retention_days": 3001}),
            "object_lock.retention_days",
        ),
        (
            json!({"mode": "governance", "retention_days": 2.5}),
            "object_lock.retention_days",
        ),
    ] {
        let (st, v) = validate(&config(&emu, json!({ "object_lock": lock })));
        assert_eq!(st, CONFIG, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
    assert_eq!(emu.counts().get("b2_authorize_account"), 0);
}
