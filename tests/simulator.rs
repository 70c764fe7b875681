//! The core scenarios through the C ABI against a second B2 server: b2sdk's RawSimulator
//! (Backblaze's own in-memory B2), served over HTTP by `tests/simulator/b2sdk_front.py`.
//! What the simulator holds is read from it directly (`/sim/files`), never through the
//! library. Its quirks are listed at the top of the front; where they change what the
//! library does, `simulator_quirks.rs` shows it.
//!
//! Needs the python of a venv with the pinned b2sdk in `B2DEST_SIMULATOR_PYTHON`
//! (scripts/test.sh makes `target/venv-b2sdk` and sets it). Without it each test says so
//! loudly and passes, unless `B2DEST_REQUIRE_SIMULATOR=1`.

mod common;
#[path = "simulator/front.rs"]
mod front;

use common::lock::{now_ms, DAY_MS, LOCKED};
use common::*;
use front::*;
use serde_json::{json, Value};

#[test]
fn validate_passes_against_the_simulator() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let (st, v) = validate(&sim_config(&sim, json!({})));
    assert_no_simulator_secret(&v);
    assert_eq!(st, OK, "{v}");
    assert!(
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true),
        "{v}"
    );
    // The probe went up and came away again.
    assert!(
        sim.files(SIM_BUCKET).is_empty(),
        "{:?}",
        sim.files(SIM_BUCKET)
    );
}

#[test]
fn a_small_file_goes_up_lists_restores_counts_and_is_deleted() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "db.sql.gz", 1_234, 1);
    let up = upload_ok(&cfg, &f, "night/db.sql.gz");
    assert_eq!(up["size"], 1_234);
    assert_eq!(up["sha1"], sha1_hex(&content(1_234, 1)));
    let held = sim.files(SIM_BUCKET);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["fileName"], format!("{DIR}night/db.sql.gz"));
    assert_eq!(held[0]["action"], "upload");
    assert_eq!(held[0]["contentLength"], 1_234);
    assert_eq!(sim.calls("b2_upload_file"), 1);

    let (st, listed) = list(&cfg, "night");
    assert_eq!(st, OK, "{listed}");
    assert_read_whole(&listed);
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["size"], 1_234);
    assert_eq!(entries[0]["file_id"], up["file_id"]);

    restore_matches(&cfg, "night/db.sql.gz", &f);

    let (st, used) = usage(&cfg);
    assert_eq!(st, OK, "{used}");
    assert_read_whole(&used);
    assert_eq!(
        (used["used_bytes"].as_u64(), used["versions"].as_u64()),
        (Some(1_234), Some(1)),
        "{used}"
    );
    delete_everything(&sim, &cfg, "night", 1, 1_234);
}

#[test]
fn a_large_file_goes_up_in_parts_and_restores_in_parallel_ranges() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({"concurrency": 4}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "home.tar", LARGE, 2);
    let up = upload_ok(&cfg, &f, "home.tar");
    assert_eq!(up["size"], LARGE);
    assert_eq!(sim.calls("b2_start_large_file"), 1);
    assert_eq!(sim.calls("b2_upload_part"), 6, "5 full parts and the rest");
    assert_eq!(sim.calls("b2_finish_large_file"), 1);
    assert_eq!(sim.bytes_received(), LARGE as u64, "each byte once");
    let held = sim.files(SIM_BUCKET);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["contentLength"], LARGE);

    sim.reset_counts();
    restore_matches(&cfg, "home.tar", &f);
    // The first range (a part's size) by name, whose headers say the size and SHA1: no
    // listing. The rest by id, ramping up to the part size over the first `concurrency`
    // of them (plan_ranges).
    assert_eq!(sim.calls("b2_download_file_by_name"), 1);
    assert_eq!(sim.calls("b2_list_file_names"), 0);
    assert_eq!(sim.calls("b2_download_file_by_id"), 6);
    assert_eq!(sim.bytes_sent(), LARGE as u64, "each byte once");
}

#[test]
fn a_large_upload_cut_off_part_way_is_completed_by_the_next_try() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 3);
    // Two parts go through, then B2 is busy for good: a passing failure.
    sim.fail("b2_upload_part", 2, 100, 503, "service_unavailable");
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    let unfinished: Vec<Value> = sim
        .files(SIM_BUCKET)
        .into_iter()
        .filter(|f| f["action"] == "start")
        .collect();
    assert_eq!(unfinished.len(), 1, "the parts were kept: {unfinished:?}");
    assert_eq!(unfinished[0]["parts"], 2);
    sim.clear_faults();

    sim.reset_counts();
    let v = upload_ok(&cfg, &f, "big");
    assert_eq!(v["resumed_bytes"], 2 * SIM_PART, "{v}");
    assert_eq!(
        sim.calls("b2_start_large_file"),
        0,
        "resumed, not started again"
    );
    assert_eq!(sim.calls("b2_cancel_large_file"), 0);
    assert_eq!(
        sim.calls("b2_upload_part"),
        4,
        "only the four missing parts"
    );
    assert_eq!(sim.bytes_received(), LARGE as u64 - 2 * SIM_PART);
    let held = sim.files(SIM_BUCKET);
    assert_eq!(held.len(), 1, "nothing unfinished is left: {held:?}");
    assert_eq!(held[0]["action"], "upload");
    restore_matches(&cfg, "big", &f);
}

/// Run only as the child of `a_killed_upload_is_resumed_by_the_next_try`.
#[test]
#[ignore]
fn upload_child_for_kill() {
    let (Ok(cfg), Ok(local)) = (
        std::env::var("B2DEST_KILL_CHILD_CONFIG"),
        std::env::var("B2DEST_KILL_CHILD_FILE"),
    ) else {
        return;
    };
    upload(&cfg, std::path::Path::new(&local), "big");
}

#[test]
fn a_killed_upload_is_resumed_by_the_next_try() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({"concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", LARGE, 14);
    // Two parts go through; the third hangs while the host process is killed.
    sim.hang("b2_upload_part", 2, 1, 20_000);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "upload_child_for_kill",
            "--ignored",
            "--nocapture",
        ])
        .env("B2DEST_KILL_CHILD_CONFIG", &cfg)
        .env("B2DEST_KILL_CHILD_FILE", &f)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while sim.calls("b2_upload_part") < 3 {
        assert!(start.elapsed().as_secs() < 60, "the third part never came");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
    let unfinished: Vec<Value> = sim
        .files(SIM_BUCKET)
        .into_iter()
        .filter(|f| f["action"] == "start")
        .collect();
    assert_eq!(unfinished.len(), 1, "{unfinished:?}");
    assert_eq!(unfinished[0]["parts"], 2);

    sim.reset_counts();
    let v = upload_ok(&cfg, &f, "big");
    assert_eq!(v["resumed_bytes"], 2 * SIM_PART, "{v}");
    assert_eq!(
        sim.calls("b2_start_large_file"),
        0,
        "resumed, not started again"
    );
    assert_eq!(
        sim.calls("b2_upload_part"),
        4,
        "only the four missing parts"
    );
    assert_eq!(sim.bytes_received(), LARGE as u64 - 2 * SIM_PART);
    let held = sim.files(SIM_BUCKET);
    assert_eq!(held.len(), 1, "nothing unfinished is left: {held:?}");
    restore_matches(&cfg, "big", &f);
}

#[test]
fn a_delete_of_a_tree_cancels_its_unfinished_large_files() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "tree/a", 700, 4);
    write_file(dir.path(), "tree/sub/b", 900, 5);
    upload_ok(&cfg, &dir.path().join("tree"), "acct");
    // A large upload whose second part is refused for good, and whose cancel fails too:
    // its first part stays on B2.
    let big = write_file(dir.path(), "big", LARGE, 6);
    sim.fail("b2_upload_part", 1, 1, 400, "bad_request");
    sim.fail("b2_cancel_large_file", 0, 100, 500, "internal_error");
    let (st, v) = upload(&cfg, &big, "acct/big");
    assert_eq!(st, REMOTE, "{v}");
    sim.clear_faults();
    let started = sim
        .files(SIM_BUCKET)
        .into_iter()
        .filter(|f| f["action"] == "start")
        .count();
    assert_eq!(started, 1);

    sim.reset_counts();
    let (st, del) = delete(&cfg, "acct");
    assert_eq!(st, OK, "{del}");
    assert_read_whole(&del);
    assert_eq!(
        (
            del["deleted_versions"].as_u64(),
            del["cancelled_large_files"].as_u64(),
            del["bytes_freed"].as_u64()
        ),
        (Some(2), Some(1), Some(700 + 900 + SIM_PART)),
        "{del}"
    );
    assert!(
        sim.files(SIM_BUCKET).is_empty(),
        "{:?}",
        sim.files(SIM_BUCKET)
    );
}

#[test]
fn object_lock_uploads_are_locked_and_their_delete_is_refused() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim.config(
        LOCKED_BUCKET,
        SIM_PART,
        json!({"object_lock": {"mode": "governance", "retention_days": 7}, "concurrency": 2}),
    );
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(dir.path(), "small", 1_000, 7);
    let big = write_file(dir.path(), "big", LARGE, 8);
    let before = now_ms();
    let small_up = upload_ok(&cfg, &small, "night/small");
    let big_up = upload_ok(&cfg, &big, "night/big");
    let after = now_ms();
    // validate's probe stays too: it is written locked, and its delete must be refused.
    let night = |sim: &Simulator| -> Vec<Value> {
        sim.files(LOCKED_BUCKET)
            .into_iter()
            .filter(|f| {
                f["fileName"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{DIR}night/"))
            })
            .collect()
    };
    let held = night(&sim);
    assert_eq!(held.len(), 2, "{held:?}");
    for held in held {
        assert_eq!(held["action"], "upload", "{held}");
        assert_eq!(held["retentionMode"], "governance", "{held}");
        let until = held["retainUntil"].as_u64().unwrap();
        assert!(
            until >= before + 7 * DAY_MS && until <= after + 7 * DAY_MS,
            "{held}"
        );
    }
    assert_eq!(small_up["retention_mode"], "governance", "{small_up}");
    assert_eq!(big_up["retention_mode"], "governance", "{big_up}");

    sim.reset_counts();
    let (st, v) = delete(&cfg, "night");
    assert_eq!(st, LOCKED, "{v}");
    assert_eq!(v["error"]["code"], "locked", "{v}");
    assert_eq!(
        (
            v["deleted_versions"].as_u64(),
            v["locked_versions"].as_u64()
        ),
        (Some(0), Some(2)),
        "{v}"
    );
    assert_eq!(
        sim.calls("b2_delete_file_version"),
        0,
        "B2 is not asked what it must refuse"
    );
    assert_eq!(night(&sim).len(), 2, "both versions stay");
    restore_matches(&cfg, "night/big", &big);
}

#[test]
fn sse_c_backups_restore_with_their_key_and_never_without_it() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let key = CUSTOMER_KEYS[0];
    let cfg = sim_config(
        &sim,
        json!({"encryption": {"mode": "SSE-C", "customer_key": key}, "concurrency": 4}),
    );
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(dir.path(), "small", 1_500, 9);
    let big = write_file(dir.path(), "big", LARGE, 10);
    upload_ok(&cfg, &small, "small");
    upload_ok(&cfg, &big, "big");
    for held in sim.files(SIM_BUCKET) {
        assert_eq!(held["sseMode"], "SSE-C", "{held}");
    }
    restore_matches(&cfg, "small", &small);
    restore_matches(&cfg, "big", &big);

    let other = sim_config(
        &sim,
        json!({"encryption": {"mode": "SSE-C", "customer_key": CUSTOMER_KEYS[1]}}),
    );
    let target = tempfile::tempdir().unwrap();
    sim.reset_counts();
    let (st, v) = download(&other, "big", &target.path().join("big"));
    assert_eq!(st, ENCRYPTION_KEY, "{v}");
    // Known from the key's MD5 the upload recorded: nothing is asked of B2.
    assert_eq!(sim.calls("b2_download_file_by_id"), 0);
    assert_eq!(
        std::fs::read_dir(target.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn a_name_uploaded_twice_keeps_both_versions_until_its_delete() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let old = write_file(dir.path(), "old", 1_000, 20);
    let new = write_file(dir.path(), "new", 1_200, 21);
    upload_ok(&cfg, &old, "v/x");
    let up = upload_ok(&cfg, &new, "v/x");
    let (st, listed) = list(&cfg, "v");
    assert_eq!(st, OK, "{listed}");
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["entries"][0]["file_id"], up["file_id"], "the newest");
    restore_matches(&cfg, "v/x", &new);
    let (st, used) = usage(&cfg);
    assert_eq!(st, OK, "{used}");
    assert_read_whole(&used);
    assert_eq!(
        (
            used["used_bytes"].as_u64(),
            used["files"].as_u64(),
            used["versions"].as_u64()
        ),
        (Some(2_200), Some(1), Some(2)),
        "{used}"
    );
    delete_everything(&sim, &cfg, "v", 2, 2_200);
}

#[test]
fn protect_extends_a_retention_and_a_governance_bypass_deletes() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let lock = |mode: &str, days: u32, bypass: bool| {
        sim.config(
            LOCKED_BUCKET,
            SIM_PART,
            json!({"object_lock": {"mode": mode, "retention_days": days, "bypass_governance": bypass}}),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "db", 1_000, 22);
    upload_ok(&lock("governance", 3, false), &f, "p/db");
    let first = sim.files(LOCKED_BUCKET)[0]["retainUntil"].as_u64().unwrap();
    sim.reset_counts();
    let (st, v) = common::lock::protect(&lock("governance", 20, false), "p");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["extended_versions"], 1, "{v}");
    assert_eq!(sim.calls("b2_update_file_retention"), 1);
    let held = &sim.files(LOCKED_BUCKET)[0];
    assert_eq!(held["retainUntil"], v["retain_until_ms"], "{held} {v}");
    assert!(held["retainUntil"].as_u64().unwrap() >= first + 17 * DAY_MS);

    let (st, v) = delete(&lock("governance", 20, false), "p");
    assert_eq!(st, LOCKED, "{v}");
    let (st, v) = delete(&lock("governance", 20, true), "p");
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        (v["deleted_versions"].as_u64(), v["bytes_freed"].as_u64()),
        (Some(1), Some(1_000)),
        "{v}"
    );
    assert!(sim.files(LOCKED_BUCKET).is_empty());
}

#[test]
fn a_lost_answer_to_a_finish_is_checked_not_repeated() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({"concurrency": 2}));
    let dir = tempfile::tempdir().unwrap();
    let big = write_file(dir.path(), "big", LARGE, 24);
    sim.lose_answer("b2_finish_large_file", 0);
    upload_ok(&cfg, &big, "lost/big");
    assert_eq!(
        sim.calls("b2_finish_large_file"),
        1,
        "checked, not finished again"
    );
    assert_eq!(sim.calls("b2_get_file_info"), 1);
    let held = sim.files(SIM_BUCKET);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["action"], "upload");
    restore_matches(&cfg, "lost/big", &big);
}

#[test]
fn a_name_hidden_by_another_tool_is_not_listed_is_counted_and_is_deleted_whole() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({}));
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "tree/a", 700, 30);
    write_file(dir.path(), "tree/b", 900, 31);
    upload_ok(&cfg, &dir.path().join("tree"), "h");
    sim.hide(SIM_BUCKET, &format!("{DIR}h/a"));
    let (st, listed) = list(&cfg, "h");
    assert_eq!(st, OK, "{listed}");
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["entries"][0]["path"], "h/b");
    let (st, v) = download(&cfg, "h/a", &dir.path().join("a.back"));
    assert_eq!(st, NOT_FOUND, "{v}");
    let (st, used) = usage(&cfg);
    assert_eq!(st, OK, "{used}");
    assert_read_whole(&used);
    assert_eq!(
        (
            used["used_bytes"].as_u64(),
            used["versions"].as_u64(),
            used["hide_markers"].as_u64()
        ),
        (Some(1_600), Some(2), Some(1)),
        "the hidden bytes still cost: {used}"
    );
    delete_everything(&sim, &cfg, "h", 3, 1_600);
}

#[test]
fn a_listing_longer_than_a_page_is_followed_to_its_end() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({}));
    let dir = tempfile::tempdir().unwrap();
    // dest_list asks for pages of 1,000: the simulator's next page starts at the last name
    // of the page plus a space, which sorts before the next name.
    const FILES: usize = 1_001;
    for i in 0..FILES {
        write_file(dir.path(), &format!("tree/f{i:04}"), 10, i as u64);
    }
    let up = upload_ok(&cfg, &dir.path().join("tree"), "many");
    assert_eq!(up["file_count"], FILES);
    sim.reset_counts();
    let (st, listed) = list(&cfg, "many");
    assert_eq!(st, OK, "{}", listed["error"]);
    assert_read_whole(&listed);
    assert_eq!(listed["count"], FILES);
    let mut paths: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    paths.dedup();
    assert_eq!(paths.len(), FILES, "each name once");
    assert_eq!(sim.calls("b2_list_file_names"), 2, "two pages");
    let (st, del) = delete(&cfg, "many");
    assert_eq!(st, OK, "{}", del["error"]);
    assert_eq!(del["deleted_versions"], FILES);
    assert!(sim.files(SIM_BUCKET).is_empty());
}
