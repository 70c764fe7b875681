//! A host at full load (issue 22): many restores at once in one process, uploads beside
//! them, all end, verified; and what one restore holds in memory grows neither with the
//! file nor with `concurrency`. A hang is turned into a failure by a watchdog that aborts
//! the test process with a message, so CI fails instead of waiting for ever.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use serde_json::json;

/// Aborts the process, naming `what`, unless the returned sender is dropped within
/// `limit`. Generous: it is there to catch a hang, not to time anything.
fn watchdog(what: &'static str, limit: Duration) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Straight to the stream: the test harness's capture of `eprintln!` would be
            // lost with the process.
            let _ = writeln!(
                std::io::stderr(),
                "WATCHDOG: {what} did not finish within {limit:?}: the library hung"
            );
            std::process::abort();
        }
    });
    tx
}

fn watchdog_limit(default_secs: u64) -> Duration {
    let secs = std::env::var("B2DEST_TEST_WATCHDOG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_secs);
    Duration::from_secs(secs)
}

const MIB: u64 = 1 << 20;
/// The size of each restored file in the load tests.
const FILE: u64 = 2 * MIB;
/// Ranges of 5 MB: each 2 MiB file is one range, as with B2's real part sizes.
const RANGE: u64 = 5_000_000;

fn file_sha1(path: &Path) -> String {
    sha1_hex(&std::fs::read(path).unwrap())
}

/// `threads` host threads, each uploading a 2 MiB file as a large file of 100 KB parts
/// (at the default concurrency) while the restores run; each must end OK.
fn uploads_beside(
    cfg: &str,
    dir: &Path,
    threads: usize,
) -> Vec<std::thread::JoinHandle<(i32, serde_json::Value)>> {
    (0..threads)
        .map(|i| {
            let cfg = cfg.to_string();
            let path = write_file(dir, &format!("up{i}.bin"), FILE as usize, 100 + i as u64);
            std::thread::spawn(move || upload(&cfg, &path, &format!("uploads/up{i}.bin")))
        })
        .collect()
}

fn assert_uploads(uploads: Vec<std::thread::JoinHandle<(i32, serde_json::Value)>>) {
    for (i, h) in uploads.into_iter().enumerate() {
        let (st, v) = h.join().unwrap();
        assert_eq!(st, OK, "upload {i}: {v}");
        assert_eq!(v["size"], FILE, "upload {i}: {v}");
    }
}

/// 100 host threads each restoring one 2 MiB file at the default concurrency, with uploads
/// beside them: before issue 22, 70 such threads hung the process for ever.
#[test]
fn a_hundred_concurrent_restores_and_uploads_all_end_verified() {
    let _alive = watchdog("100 concurrent restores with uploads", watchdog_limit(300));
    let emu = emulator();
    let cfg = config(&emu, json!({ "part_size_bytes": RANGE }));
    emu.seed_files(BUCKET, "backups/server1/load/f", 100, FILE);
    let tmp = tempfile::tempdir().unwrap();
    let uploads = uploads_beside(
        &config(&emu, json!({ "part_size_bytes": PART })),
        tmp.path(),
        8,
    );
    let restores: Vec<_> = (0..100)
        .map(|i| {
            let cfg = cfg.clone();
            let target = tmp.path().join(format!("restored/{i}.bin"));
            std::thread::spawn(move || {
                let got = download(&cfg, &format!("load/f{i:08}"), &target);
                (got, target)
            })
        })
        .collect();
    let mut sha1s = std::collections::HashSet::new();
    for (i, h) in restores.into_iter().enumerate() {
        let ((st, v), target) = h.join().unwrap();
        assert_eq!(st, OK, "restore {i}: {v}");
        assert_eq!(v["verified"], true, "restore {i}: {v}");
        assert_eq!(v["size"], FILE, "restore {i}: {v}");
        assert_eq!(v["sha1"], file_sha1(&target), "restore {i}: {v}");
        sha1s.insert(v["sha1"].as_str().unwrap().to_string());
    }
    assert_eq!(sha1s.len(), 1, "the seeded files share one content");
    assert_uploads(uploads);
    // One GET a file, by name (a 2 MiB file is one range): nothing was fetched twice.
    assert_eq!(emu.counts().get("b2_download_file_by_name"), 100);
    assert_eq!(emu.counts().get("b2_download_file_by_id"), 0);
}

/// Four host threads each restoring a directory of 25 files of 2 MiB (16 files at once
/// each, one connection a file), with uploads beside them: before issue 22, 64 files in
/// flight at once hung the process for ever.
#[test]
fn four_concurrent_directory_restores_and_uploads_all_end_verified() {
    let _alive = watchdog(
        "4 concurrent directory restores with uploads",
        watchdog_limit(300),
    );
    let emu = emulator();
    let cfg = config(&emu, json!({ "part_size_bytes": RANGE }));
    for d in 0..4 {
        emu.seed_files(BUCKET, &format!("backups/server1/dirs/d{d}/f"), 25, FILE);
    }
    let tmp = tempfile::tempdir().unwrap();
    let uploads = uploads_beside(
        &config(&emu, json!({ "part_size_bytes": PART })),
        tmp.path(),
        4,
    );
    let restores: Vec<_> = (0..4)
        .map(|d| {
            let cfg = cfg.clone();
            let target = tmp.path().join(format!("restored/d{d}"));
            std::thread::spawn(move || (download(&cfg, &format!("dirs/d{d}/"), &target), target))
        })
        .collect();
    for (d, h) in restores.into_iter().enumerate() {
        let ((st, v), target) = h.join().unwrap();
        assert_eq!(st, OK, "directory {d}: {v}");
        assert_eq!(v["file_count"], 25, "directory {d}: {v}");
        assert_eq!(v["verified"], true, "directory {d}: {v}");
        for f in v["files"].as_array().unwrap() {
            let path = target.join(f["path"].as_str().unwrap());
            assert_eq!(f["sha1"], file_sha1(&path), "directory {d}: {f}");
        }
    }
    assert_uploads(uploads);
    assert_eq!(emu.counts().get("b2_download_file_by_id"), 100);
}

// The memory bound, measured in a child process of this test binary that does nothing but
// restore, so that neither the emulator nor another test is counted.

const CHILD_ENV: &str = "B2DEST_TEST_RESTORE_MEMORY_CHILD";
/// The most a restore may add to the host process's peak RSS, at any `concurrency`.
const BOUND: u64 = 64 * MIB;
/// The restored file: large enough that a restore holding a share of it would show.
/// `B2DEST_TEST_RESTORE_BYTES` sets another size, for measuring.
fn large() -> u64 {
    std::env::var("B2DEST_TEST_RESTORE_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 * MIB)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Run as the child only (`CHILD_ENV` holds the configuration): a small restore first, to
/// build the runtime, the HTTP client and the allocator's pools, then the large one;
/// prints the peak RSS (VmHWM) before and after.
#[test]
fn restore_memory_child() {
    let Ok(cfg) = std::env::var(CHILD_ENV) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (st, v) = download(&cfg, "mem/warm00000000", &tmp.path().join("warm"));
    assert_eq!(st, OK, "{v}");
    let before = status_kib("VmHWM:") * 1024;
    let target = tmp.path().join("large");
    let (st, v) = download(&cfg, "mem/large00000000", &target);
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(v["size"], large(), "{v}");
    let after = status_kib("VmHWM:") * 1024;
    println!("CHILD-HWM {before} {after}");
}

/// The large restore's ranges: 4 MB, so that even at the largest concurrency every
/// connection is open at once (`B2DEST_TEST_RESTORE_RANGE` sets another, for measuring).
fn large_range() -> u64 {
    std::env::var("B2DEST_TEST_RESTORE_RANGE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000_000)
}

/// Peak RSS before and after the large restore, from a child process at `concurrency`.
fn child_peak(emu: &b2_emulator::Emulator, concurrency: u64) -> (u64, u64) {
    let cfg = config(
        emu,
        json!({ "part_size_bytes": large_range(), "concurrency": concurrency }),
    );
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "restore_memory_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD-HWM ").map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no CHILD-HWM line: {stdout}"));
    let mut it = line.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// A 256 MiB restore adds at most 64 MiB to the process's peak RSS, at the default
/// concurrency and at the largest the configuration allows.
#[test]
fn a_large_restore_adds_at_most_64_mib_at_any_concurrency() {
    let _alive = watchdog("the restore memory test", watchdog_limit(600));
    let emu = emulator_with(|c| c.min_part_size = 1_000_000);
    emu.seed_files(BUCKET, "backups/server1/mem/warm", 1, MIB);
    emu.seed_files(BUCKET, "backups/server1/mem/large", 1, large());
    for concurrency in [16, 64] {
        let (before, after) = child_peak(&emu, concurrency);
        let growth = after.saturating_sub(before);
        eprintln!(
            "concurrency {concurrency}: VmHWM {} -> {} MiB (+{:.1} MiB) for a restore of {} MiB in ranges of {} bytes",
            before / MIB,
            after / MIB,
            growth as f64 / MIB as f64,
            large() / MIB,
            large_range()
        );
        assert!(
            growth <= BOUND,
            "at concurrency {concurrency} the restore added {growth} bytes to the peak RSS"
        );
    }
}
