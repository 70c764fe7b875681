//! The bandwidth limit, through the C ABI against the emulator: a transfer at a limit takes
//! at least the time the limit implies; transfers from several host threads on one
//! destination share the one limit; a body held back by the limit is not taken for a
//! stalled one. Lower bounds on time only, which a slow machine cannot break.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const LIMIT: u64 = 200_000;
/// What the limiter lets through ahead of its schedule (a tenth of a second's worth).
const BURST: u64 = LIMIT / 10;

/// The least time `bytes` can take at `LIMIT`, less a little for timer granularity.
fn at_least(bytes: u64) -> Duration {
    Duration::from_secs_f64((bytes - BURST) as f64 / LIMIT as f64) - Duration::from_millis(50)
}

#[test]
fn an_upload_and_a_download_at_the_limit_take_at_least_what_it_implies() {
    let emu = emulator();
    let cfg = config(
        &emu,
        json!({"bandwidth_limit_bytes_per_second": LIMIT, "concurrency": 4}),
    );
    let dir = tempfile::tempdir().unwrap();
    // Four parts sent at once, then four ranges fetched at once: one limit for all.
    let len = 4 * PART as usize;
    let f = write_file(dir.path(), "big", len, 1);
    let start = Instant::now();
    let (st, v) = upload(&cfg, &f, "big");
    let took = start.elapsed();
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.counts().get("b2_upload_part"), 4);
    // The parts carry their SHA1 in the header: the bytes sent are the file's.
    let sent = len as u64;
    assert!(took >= at_least(sent), "{sent} bytes up in {took:?}");

    let back = dir.path().join("back");
    let start = Instant::now();
    let (st, v) = download(&cfg, "big", &back);
    let took = start.elapsed();
    assert_eq!(st, OK, "{v}");
    assert!(
        emu.counts().get("b2_download_file_by_id") >= 4,
        "ranges: {:?}",
        emu.counts()
    );
    assert!(took >= at_least(len as u64), "{len} bytes down in {took:?}");
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
}

#[test]
fn several_host_threads_on_one_destination_share_its_limit() {
    let emu = emulator();
    let cfg = config(&emu, json!({"bandwidth_limit_bytes_per_second": LIMIT}));
    let dir = tempfile::tempdir().unwrap();
    let len = 250_000;
    let files: Vec<_> = (0..3)
        .map(|i| write_file(dir.path(), &format!("f{i}"), len, 10 + i as u64))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (i, f) in files.iter().enumerate() {
            let cfg = &cfg;
            s.spawn(move || {
                let (st, v) = upload(cfg, f, &format!("tree/f{i}"));
                assert_eq!(st, OK, "{v}");
            });
        }
    });
    let took = start.elapsed();
    // Each alone would take 1.2 s; three under one limit take three times that.
    let total = files.len() as u64 * (len as u64 + 3 * 40);
    assert!(took >= at_least(total), "{total} bytes up in {took:?}");

    // A directory restored several files at once stays under it too.
    let start = Instant::now();
    let (st, v) = download(&cfg, "tree/", &dir.path().join("restored"));
    let took = start.elapsed();
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["file_count"], 3, "{v}");
    let total = files.len() as u64 * len as u64;
    assert!(took >= at_least(total), "{total} bytes down in {took:?}");
}

#[test]
fn configurations_differing_only_in_their_timeout_share_one_limit() {
    let emu = emulator();
    let limit = json!({"bandwidth_limit_bytes_per_second": LIMIT});
    let mut other = limit.clone();
    other["timeout_seconds"] = json!(11);
    let cfgs = [config(&emu, limit), config(&emu, other)];
    assert_ne!(cfgs[0], cfgs[1]);
    let dir = tempfile::tempdir().unwrap();
    let len = 250_000;
    let files: Vec<_> = (0..2)
        .map(|i| write_file(dir.path(), &format!("t{i}"), len, 40 + i as u64))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (i, (f, cfg)) in files.iter().zip(&cfgs).enumerate() {
            s.spawn(move || {
                let (st, v) = upload(cfg, f, &format!("timeouts/t{i}"));
                assert_eq!(st, OK, "{v}");
            });
        }
    });
    let took = start.elapsed();
    // With a limit each, the two would go side by side in half the time.
    let total = files.len() as u64 * len as u64;
    assert!(took >= at_least(total), "{total} bytes up in {took:?}");
}

#[test]
fn a_body_held_back_by_the_limit_is_not_a_stalled_one() {
    let emu = emulator();
    // One request of about three seconds at the limit, with a one-second stall timeout.
    let limit = 32_768u64;
    let cfg = config(
        &emu,
        json!({"bandwidth_limit_bytes_per_second": limit, "timeout_seconds": 1}),
    );
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 90_000, 20);
    let start = Instant::now();
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, OK, "{v}");
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "it was held back"
    );
    assert_eq!(
        emu.counts().get("b2_upload_file"),
        1,
        "sent once, never timed out and retried"
    );
    let back = dir.path().join("back");
    let (st, v) = download(&cfg, "f", &back);
    assert_eq!(st, OK, "{v}");
    // One request (by name), held back as the upload was, never timed out and retried.
    assert_eq!(emu.counts().get("b2_download_file_by_name"), 1);
    assert_eq!(emu.counts().get("b2_download_file_by_id"), 0);
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
}

#[test]
fn zero_means_no_limit() {
    let emu = emulator();
    let cfg = config(&emu, json!({"bandwidth_limit_bytes_per_second": "0"}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1000, 30);
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["warnings"], json!([]), "{v}");
}
