//! Where b2sdk's RawSimulator departs from B2 in a way that changes what the library does:
//! each test says which quirk (listed at the top of `tests/simulator/b2sdk_front.py`), and
//! asserts what happens, so that a change in the library or the simulator shows. The
//! library is never bent to them. Runs as `simulator.rs` does.

mod common;
#[path = "simulator/front.rs"]
mod front;

use common::*;
use front::*;
use serde_json::json;

#[test]
fn usage_counts_a_tree_and_keeps_an_unfinished_upload_whose_parts_are_undated() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "tree/a", 700, 11);
    write_file(dir.path(), "tree/sub/b", 900, 12);
    upload_ok(&cfg, &dir.path().join("tree"), "acct");
    let big = write_file(dir.path(), "big", LARGE, 13);
    sim.fail("b2_upload_part", 1, 1, 400, "bad_request");
    sim.fail("b2_cancel_large_file", 0, 100, 500, "internal_error");
    assert_eq!(upload(&cfg, &big, "acct/big").0, REMOTE);
    sim.clear_faults();

    sim.reset_counts();
    let (st, used) = usage(&cfg);
    assert_eq!(st, OK, "{used}");
    // The simulator's upload timestamps count from 5000 ms after 1970, so its unfinished
    // file looks far past the resume window; but none of its parts is dated (they carry no
    // uploadTimestamp), and a part that cannot be dated may be one another upload is
    // sending now: usage counts the unfinished file (its 10,000 bytes of parts) and leaves
    // it, as it would on B2 where parts are dated (it was cancelled at once before).
    assert_eq!(
        (
            used["used_bytes"].as_u64(),
            used["files"].as_u64(),
            used["cancelled_large_files"].as_u64(),
            used["unfinished_large_files"].as_u64()
        ),
        (Some(700 + 900 + 10_000), Some(2), Some(0), Some(1)),
        "{used}"
    );
    assert_eq!(sim.calls("b2_cancel_large_file"), 0);
    assert_eq!(
        sim.files(SIM_BUCKET)
            .iter()
            .filter(|f| f["action"] == "start")
            .count(),
        1
    );
}

#[test]
fn a_lost_answer_to_a_small_upload_is_found_by_its_attempt_id_though_dated_1970() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(dir.path(), "small", 1_000, 23);
    sim.lose_answer("b2_upload_file", 0);
    upload_ok(&cfg, &small, "lost/small");
    // The version the lost answer left is found by the attempt id its file info carries
    // (`b2dest_attempt`), not by its time: the simulator's uploadTimestamp, a counter from
    // 5000 ms after 1970, no longer matters, and it is not sent again (it was, before).
    assert_eq!(sim.calls("b2_upload_file"), 1);
    let held = sim.files(SIM_BUCKET);
    assert_eq!(held.len(), 1, "{held:?}");
    let (st, listed) = list(&cfg, "lost");
    assert_eq!((st, listed["count"].as_u64()), (OK, Some(1)), "{listed}");
    restore_matches(&cfg, "lost/small", &small);
    let (st, del) = delete(&cfg, "lost");
    assert_eq!(
        (st, del["deleted_versions"].as_u64()),
        (OK, Some(1)),
        "{del}"
    );
}

#[test]
fn a_key_restricted_to_the_bucket_is_refused_uploads_by_the_simulator_a_prefix_key_is_not() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let caps = [
        "listBuckets",
        "listFiles",
        "readFiles",
        "writeFiles",
        "deleteFiles",
    ];
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "db", 1_000, 25);
    // The simulator's quirk, not B2's: b2_get_upload_url does not hand it the bucket id,
    // so a key restricted to the bucket fails its bucket check. The host is told plainly.
    let bucket_key = sim.create_key(&caps, Some(&[SIM_BUCKET]), None);
    let cfg = sim.config_with_key(SIM_BUCKET, &bucket_key, SIM_PART, json!({}));
    let (st, v) = upload(&cfg, &f, "r/db");
    assert_eq!(st, PERMISSION, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("b2_get_upload_url"),
        "{v}"
    );
    assert!(!v.to_string().contains(&bucket_key.1), "{v}");

    let prefix_key = sim.create_key(&caps, None, Some("backups/server1/"));
    let cfg = sim.config_with_key(SIM_BUCKET, &prefix_key, SIM_PART, json!({}));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    upload_ok(&cfg, &f, "r/db");
    restore_matches(&cfg, "r/db", &f);
    let (st, v) = delete(&cfg, "r");
    assert_eq!((st, v["deleted_versions"].as_u64()), (OK, Some(1)), "{v}");
    assert!(!v.to_string().contains(&prefix_key.1), "{v}");
}

#[test]
fn an_expired_token_in_the_simulators_words_is_not_taken_for_one() {
    let Some(sim) = Simulator::start() else {
        return;
    };
    let cfg = sim_config(&sim, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let big = write_file(dir.path(), "big", LARGE, 26);
    assert_eq!(validate(&cfg).0, OK);
    sim.expire_tokens();
    sim.reset_counts();
    // B2 says 401 expired_auth_token, which the library answers by authorizing again; the
    // simulator says auth_token_expired, which B2 does not, so the library reports a
    // refusal (as b2sdk's own error table would) and does not authorize again.
    let (st, v) = upload(&cfg, &big, "e/big");
    assert_eq!(st, PERMISSION, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("auth_token_expired"),
        "{v}"
    );
    assert_eq!(sim.calls("b2_authorize_account"), 0);
    assert!(sim.files(SIM_BUCKET).is_empty());
}
