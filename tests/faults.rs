//! Reliability under faults: B2's retry rules on every call an operation uses, resume of a
//! cut-off large upload, files that change while read, and the storage cap.

mod common;

use std::ffi::c_void;
use std::sync::Arc;

use b2_emulator::FaultAction;
use common::faults::{error, inject};
use common::*;
use serde_json::json;

const TRANSIENT: &[(u16, &str)] = &[
    (500, "internal_error"),
    (503, "service_unavailable"),
    (408, "request_timeout"),
    (429, "too_many_requests"),
];

#[test]
fn every_call_of_an_upload_survives_transient_faults() {
    let small_calls = [
        "b2_authorize_account",
        "b2_list_buckets",
        "b2_get_upload_url",
        "b2_upload_file",
    ];
    let large_calls = [
        "b2_authorize_account",
        "b2_list_buckets",
        "b2_list_unfinished_large_files",
        "b2_start_large_file",
        "b2_get_upload_part_url",
        "b2_upload_part",
        "b2_finish_large_file",
    ];
    for (calls, len) in [
        (&small_calls[..], 5_000usize),
        (&large_calls[..], 3 * PART as usize + 7),
    ] {
        for call in calls {
            for (status, code) in TRANSIENT {
                let emu = emulator();
                let cfg = config(&emu, json!({}));
                inject(&emu, call, 2, error(*status, code));
                let (st, v) = round_trip(&cfg, len, 1);
                assert_eq!(st, OK, "{call} {status}: {v}");
                assert!(emu.counts().get(call) >= 3, "{call} was tried again");
            }
        }
    }
}

#[test]
fn a_failed_upload_takes_a_new_upload_url() {
    for (call, url_call, len) in [
        ("b2_upload_file", "b2_get_upload_url", 5_000usize),
        (
            "b2_upload_part",
            "b2_get_upload_part_url",
            2 * PART as usize + 1,
        ),
    ] {
        for action in [
            error(503, "service_unavailable"),
            error(500, "internal_error"),
            error(408, "request_timeout"),
            error(401, "expired_auth_token"),
            FaultAction::Drop { after_bytes: 1000 },
        ] {
            let emu = emulator();
            let cfg = config(&emu, json!({"concurrency": 1}));
            inject(&emu, call, 1, action.clone());
            let (st, v) = round_trip(&cfg, len, 2);
            assert_eq!(st, OK, "{call} {action:?}: {v}");
            assert_eq!(
                emu.counts().get(url_call),
                2,
                "{call} {action:?}: a fresh URL after the failure"
            );
            assert_eq!(
                emu.counts().get("b2_authorize_account"),
                1,
                "{call} {action:?}: the account token was not renewed for it"
            );
        }
    }
}

#[test]
fn an_expired_token_is_renewed_once_and_the_work_goes_on() {
    let large = 2 * PART as usize + 5;
    for (call, len) in [
        ("b2_list_buckets", 100),
        ("b2_get_upload_url", 100),
        ("b2_start_large_file", large),
        ("b2_get_upload_part_url", large),
        ("b2_finish_large_file", large),
        ("b2_download_file_by_name", 100),
        ("b2_download_file_by_id", large),
    ] {
        let emu = emulator();
        let cfg = config(&emu, json!({}));
        inject(&emu, call, 1, error(401, "expired_auth_token"));
        let (st, v) = round_trip(&cfg, len, 3);
        assert_eq!(st, OK, "{call}: {v}");
        assert_eq!(
            emu.counts().get("b2_authorize_account"),
            2,
            "{call}: one re-authorization"
        );
    }
    // On an upload URL, an expired token means a new upload URL, not a new account token.
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    inject(&emu, "b2_upload_file", 1, error(401, "expired_auth_token"));
    assert_eq!(round_trip(&cfg, 100, 4).0, OK);
    assert_eq!(emu.counts().get("b2_get_upload_url"), 2);
}

#[test]
fn refusals_are_not_retried() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    inject(&emu, "b2_list_file_names", 5, error(401, "bad_auth_token"));
    let (st, v) = list(&cfg, "");
    assert_eq!(st, AUTH, "{v}");
    assert_eq!(
        emu.counts().get("b2_list_file_names"),
        2,
        "one retry after one re-authorization"
    );
    emu.clear_faults();

    emu.reset_counts();
    inject(&emu, "b2_upload_file", 5, error(400, "bad_request"));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 10, 5);
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], false);
    assert_eq!(emu.counts().get("b2_upload_file"), 1);
    emu.clear_faults();

    emu.reset_counts();
    inject(
        &emu,
        "b2_upload_file",
        5,
        error(403, "storage_cap_exceeded"),
    );
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, LIMIT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Caps & Alerts"),
        "{v}"
    );
    assert_eq!(emu.counts().get("b2_upload_file"), 1);
}

#[test]
fn retries_are_bounded_by_upload_retries() {
    let emu = emulator();
    let cfg = config(&emu, json!({"upload_retries": 2}));
    inject(
        &emu,
        "b2_upload_file",
        100,
        error(503, "service_unavailable"),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 10, 6);
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], true);
    assert_eq!(
        emu.counts().get("b2_upload_file"),
        3,
        "the first try and two retries"
    );
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn b2_test_modes_are_survived_or_reported() {
    let emu = emulator();
    let cfg = config(
        &emu,
        json!({"test_mode": "fail_some_uploads", "upload_retries": 20}),
    );
    assert_eq!(round_trip(&cfg, 4 * PART as usize, 7).0, OK);
    let cfg = config(
        &emu,
        json!({"test_mode": "expire_some_account_authorization_tokens", "upload_retries": 20}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 3 * PART as usize, 8);
    for i in 0..3 {
        assert_eq!(upload(&cfg, &f, &format!("t{i}")).0, OK);
    }
    let cfg = config(&emu, json!({"test_mode": "force_cap_exceeded"}));
    let (st, v) = upload(&cfg, &f, "capped");
    assert_eq!(st, LIMIT, "{v}");
}

#[test]
fn a_random_mix_of_faults_during_a_multipart_upload_changes_nothing() {
    let mut rng = fastrand::Rng::with_seed(42);
    for round in 0..4 {
        let emu = emulator();
        let cfg = config(&emu, json!({"upload_retries": 10, "concurrency": 3}));
        for _ in 0..8 {
            let call = [
                "b2_upload_part",
                "b2_upload_part",
                "b2_get_upload_part_url",
                "b2_finish_large_file",
                "b2_start_large_file",
            ][rng.usize(..5)];
            let action = match rng.usize(..5) {
                0 => error(503, "service_unavailable"),
                1 => error(500, "internal_error"),
                2 => error(401, "expired_auth_token"),
                3 => FaultAction::Drop {
                    after_bytes: rng.u64(0..50_000),
                },
                _ => error(408, "request_timeout"),
            };
            inject(&emu, call, 1, action);
        }
        let (st, v) = round_trip(&cfg, 6 * PART as usize + 999, round);
        assert_eq!(st, OK, "round {round}: {v}");
        assert!(emu.unfinished_large_files(BUCKET).is_empty());
    }
}

#[test]
fn a_large_upload_cut_off_by_a_server_restart_resumes_where_it_stopped() {
    let data = tempfile::tempdir().unwrap();
    let start = |port: u16| {
        emulator_with(|c| {
            c.data_dir = Some(data.path().to_path_buf());
            c.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        })
    };
    let emu = start(0);
    let port: u16 = emu.url().rsplit(':').next().unwrap().parse().unwrap();
    let cfg = config(&emu, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    let len = 8 * PART as usize;
    let f = write_file(dir.path(), "big", len, 9);
    // Part 4 is held at the server, and the server goes away while it is in flight.
    common::faults::pass_then_hold(&emu, "b2_upload_part", 3, 1);
    let (st, v) = std::thread::scope(|s| {
        let uploading = s.spawn(|| upload(&cfg, &f, "big"));
        common::faults::await_held(&emu, 1);
        emu.stop();
        uploading.join().unwrap()
    });
    // Part 4 is answered as the server stops; the next request finds no server. A request
    // without an answer is NETWORK, whatever the call (the table in src/b2/retry.rs).
    assert_eq!(st, NETWORK, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not reach B2"),
        "{v}"
    );

    let emu = start(port);
    assert_eq!(
        emu.unfinished_large_files(BUCKET).len(),
        1,
        "the parts survived the restart"
    );
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, OK, "{v}");
    let counts = emu.counts();
    assert_eq!(
        counts.get("b2_start_large_file"),
        0,
        "resumed, not started again"
    );
    assert!(v["resumed_bytes"].as_u64().unwrap() >= 3 * PART, "{v}");
    assert_eq!(
        counts.bytes_received + v["resumed_bytes"].as_u64().unwrap(),
        len as u64,
        "only missing parts were sent (each part's SHA1 goes in its header)"
    );
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
    let back = dir.path().join("back");
    assert_eq!(download(&cfg, "big", &back).0, OK);
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
}

#[test]
fn an_unfinished_upload_of_a_changed_file_is_cancelled_not_resumed() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1, "upload_retries": 0}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", 4 * PART as usize, 10);
    inject(&emu, "b2_upload_part", 1, FaultAction::Delay { millis: 0 });
    inject(&emu, "b2_upload_part", 1, error(400, "bad_request"));
    inject(
        &emu,
        "b2_cancel_large_file",
        10,
        error(500, "internal_error"),
    );
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, REMOTE, "{v}");
    emu.clear_faults();
    let stale = emu.unfinished_large_files(BUCKET);
    assert_eq!(stale.len(), 1);
    // Parts sent within the last minutes could be another upload's, still under way.
    emu.backdate_unfinished(BUCKET, "backups/server1/big", 3600 * 1000);
    write_file(dir.path(), "big", 4 * PART as usize, 11);
    let (st, v) = upload(&cfg, &f, "big");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["resumed_bytes"], 0);
    assert!(
        emu.unfinished_large_files(BUCKET).is_empty(),
        "the stale upload was cancelled"
    );
}

unsafe extern "C" fn mutate_file(done: u64, _total: u64, user: *mut c_void) -> i32 {
    let (path, how) = unsafe { &*(user as *const (std::path::PathBuf, &str)) };
    if done > 0 {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        match *how {
            "truncate" => f.set_len(10).unwrap(),
            "rewrite-last" => {
                use std::os::unix::fs::FileExt;
                let len = f.metadata().unwrap().len();
                f.write_all_at(b"rewritten", len - 9).unwrap();
            }
            "grow" => {
                use std::io::{Seek, Write};
                let mut f = f;
                f.seek(std::io::SeekFrom::End(0)).unwrap();
                f.write_all(b"more").unwrap();
            }
            _ => {
                use std::os::unix::fs::FileExt;
                f.write_all_at(b"rewritten", 0).unwrap();
            }
        }
    }
    0
}

#[test]
fn a_file_that_changes_while_it_is_read_fails_and_leaves_nothing() {
    for how in ["truncate", "grow", "rewrite"] {
        for len in [3_000usize, 6 * PART as usize] {
            let emu = emulator();
            let cfg = config(&emu, json!({"concurrency": 1}));
            let dir = tempfile::tempdir().unwrap();
            let f = write_file(dir.path(), "f", len, 12);
            // Slow the uploads so the change lands while they are under way.
            inject(
                &emu,
                "b2_upload_file",
                10,
                FaultAction::Delay { millis: 400 },
            );
            inject(
                &emu,
                "b2_upload_part",
                10,
                FaultAction::Delay { millis: 400 },
            );
            let arg = (f.clone(), how);
            let (st, v) = upload_with(
                &cfg,
                &f,
                "f",
                Some(mutate_file),
                &arg as *const _ as *mut c_void,
            );
            assert_eq!(st, LOCAL_IO, "{how} {len}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("changed"),
                "{v}"
            );
            assert!(
                emu.file_versions(BUCKET)
                    .iter()
                    .all(|v| v.action != "upload"),
                "{how} {len}: no finished file"
            );
            assert!(emu.unfinished_large_files(BUCKET).is_empty(), "{how} {len}");
        }
    }
}

/// Each part's SHA1 comes from the first read of the file and goes ahead of the part, so a
/// part changed after that read is refused by B2. That is the customer's file changing, not
/// the network: it is told as a local change, and the refused part is not sent again.
#[test]
fn a_part_changed_after_it_was_hashed_is_a_local_change_and_not_sent_again() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1, "upload_retries": 3}));
    let dir = tempfile::tempdir().unwrap();
    let parts = 4;
    let f = write_file(dir.path(), "f", parts * PART as usize, 16);
    inject(
        &emu,
        "b2_upload_part",
        10,
        FaultAction::Delay { millis: 300 },
    );
    // Progress starts with the sending, after the hashing read; the last part is read for
    // sending only after the first three, so it goes out changed.
    let arg = (f.clone(), "rewrite-last");
    let (st, v) = upload_with(
        &cfg,
        &f,
        "f",
        Some(mutate_file),
        &arg as *const _ as *mut c_void,
    );
    assert_eq!(st, LOCAL_IO, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("changed"),
        "{v}"
    );
    assert_eq!(
        emu.counts().get("b2_upload_part"),
        parts as u64,
        "every part sent once, the refused one not again"
    );
    assert!(emu
        .file_versions(BUCKET)
        .iter()
        .all(|v| v.action != "upload"));
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
}

#[test]
fn a_stalled_request_times_out_and_is_retried_on_a_new_url() {
    let emu = emulator();
    let cfg = config(&emu, json!({"timeout_seconds": 1}));
    inject(
        &emu,
        "b2_upload_file",
        1,
        FaultAction::Delay { millis: 3000 },
    );
    let (st, v) = round_trip(&cfg, 50_000, 14);
    assert_eq!(st, OK, "{v}");
    // On a busy machine a later try may time out too: bound the count from below only,
    // and check each try had its own URL and that the first was given up after 1 s.
    let counts = emu.counts();
    let tries = counts.get("b2_upload_file");
    assert!(tries >= 2, "{counts:?}");
    assert_eq!(counts.get("b2_get_upload_url"), tries, "{counts:?}");
    let arrivals = &counts.arrivals_ms["b2_upload_file"];
    assert!(arrivals[1] - arrivals[0] >= 1000, "{arrivals:?}");
}

#[test]
fn threads_that_meet_an_expired_token_share_one_reauthorization() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    assert_eq!(list(&cfg, "").0, OK);
    emu.expire_tokens();
    emu.reset_counts();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (cfg, barrier) = (cfg.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                list(&cfg, "").0
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), OK);
    }
    assert_eq!(
        emu.counts().get("b2_authorize_account"),
        1,
        "one re-authorization for all threads"
    );
}

#[test]
fn an_upload_damaged_in_transit_is_sent_again_and_lands_intact() {
    // The emulator flips a byte as it receives the body; its own SHA1 check refuses it
    // with B2's answer (400 bad_request, "Sha1 did not match data received").
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
        let cfg = config(&emu, json!({"concurrency": 1}));
        inject(&emu, call, 1, FaultAction::DamageUpload);
        let (st, v) = round_trip(&cfg, len, 15);
        assert_eq!(st, OK, "{call}: {v}");
        assert_eq!(
            emu.counts().get(call),
            sends,
            "{call}: the damaged body, sent again"
        );
        assert_eq!(
            emu.counts().get(url_call),
            2,
            "{call}: sent again on a new URL"
        );
    }
}
