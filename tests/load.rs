//! JetBackup's engine at full load (issue 22): tests/c/load.c forks 10 processes (one per
//! account), each runs 10 threads, each thread sends one object per `dest_upload` call,
//! through the public C ABI only, while this test injects faults at the emulator in waves
//! (503 and 429 with and without Retry-After, 500, cut connections, lost and garbled
//! answers, a refused upload token, every token expired at once). Then every process
//! restores some of its files from all its threads at once and compares them.
//!
//! Afterwards, at the emulator: exactly one version of every name and nothing else, no
//! unfinished large file, every SHA1 right; and the B2 calls, per process (from the
//! `transactions` of every response, which must add up to the emulator's own counts) and
//! in total, against what the faults explain. The library is built as a host gets it
//! (`cargo build -p b2dest --lib`, as in tests/host_process.rs); the emulator runs in
//! this process. The driver's alarm and this test's time limit turn a hang into a failure.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use b2_emulator::{Config, Emulator, Fault, FaultAction};
use serde_json::Value;
use sha1::{Digest, Sha1};

const BUCKET: &str = "b2dest-test";
const PROCS: u64 = 10;
const THREADS: u64 = 10;
const SMALL: u64 = 2_400; // 240 a process, 1-64 KiB
const LARGE_SIZE: u64 = 450_000; // 5 parts of 100,000: one a process
const RESTORE: u64 = 3; // small files each thread restores (and thread 0 the large one)
const LIMIT: Duration = Duration::from_secs(300);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` in its own process group, killed whole after `limit`; (success, stdout, stderr).
fn run_with_limit(cmd: &mut Command, limit: Duration) -> (bool, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().expect("the command starts");
    let pid = child.id() as libc::pid_t;
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if started.elapsed() > limit {
            // SAFETY: kill(2) on the process group this test created.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, mut err) = (out.join().unwrap(), err.join().unwrap());
    if status.is_none() {
        err.push_str(&format!("\nkilled after the time limit of {limit:?}"));
    }
    (status.is_some_and(|s| s.success()), out, err)
}

/// `cargo build -p b2dest --lib` in this test's profile and target directory (a host's
/// build: `cargo test`'s own copy has the dev-dependencies' features, which break fork),
/// and tests/c/load.c compiled and linked to it.
fn build_driver(dir: &Path) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let profile = profile_dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let target_dir = profile_dir.parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(manifest_dir())
        .args([
            "build",
            "-p",
            "b2dest",
            "--lib",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--target-dir")
        .arg(target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let (ok, out, err) = run_with_limit(&mut cmd, Duration::from_secs(900));
    assert!(ok, "building the library failed:\n{err}");
    let so = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "b2dest")
        .flat_map(|m| m["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|f| f.extension().is_some_and(|e| e == "so"))
        .expect("cargo reported libb2dest.so");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::copy(&so, lib.join("libb2dest.so")).unwrap();
    std::os::unix::fs::symlink("libb2dest.so", lib.join("libb2dest.so.0")).unwrap();
    let driver = dir.join("load");
    let mut cc = Command::new("cc");
    cc.current_dir(manifest_dir())
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-D_GNU_SOURCE",
        ])
        .args(["-pthread", "-O1", "-g", "-Iinclude", "tests/c/load.c", "-o"])
        .arg(&driver)
        .arg(format!("-L{}", lib.display()))
        .arg("-lb2dest")
        .arg(format!("-Wl,-rpath,{}", lib.display()));
    let (ok, _, err) = run_with_limit(&mut cc, Duration::from_secs(120));
    assert!(ok, "compiling tests/c/load.c failed:\n{err}");
    driver
}

fn error(call: &str, count: u32, status: u16, code: &str, retry_after: Option<u64>) -> Fault {
    Fault {
        call: call.into(),
        count,
        action: FaultAction::Error {
            status,
            code: code.into(),
            retry_after,
            message: None,
        },
    }
}

fn fault(call: &str, count: u32, action: FaultAction) -> Fault {
    Fault {
        call: call.into(),
        count,
        action,
    }
}

/// b2_upload_file faults that store nothing (each adds one b2_upload_file and drops its
/// upload URL), and those that store but whose answer is lost (settled, never re-sent).
struct Injected {
    failed_uploads: u64,
    unanswered_uploads: u64,
    upload_url_faults: u64,
}

/// The faults, in waves as the night goes on (by the count of b2_upload_file so far),
/// and the expiry of every token once every process has authorized.
fn feed_faults(emu: &Emulator, stop: &AtomicBool) -> Injected {
    let up = "b2_upload_file";
    emu.inject(error(
        "b2_get_upload_url",
        3,
        503,
        "service_unavailable",
        None,
    ));
    emu.inject(error("b2_upload_part", 3, 503, "service_unavailable", None));
    emu.inject(fault("b2_finish_large_file", 1, FaultAction::LoseAnswer));
    emu.inject(error(
        "b2_download_file_by_id",
        3,
        503,
        "service_unavailable",
        None,
    ));
    let waves: Vec<(u64, Vec<Fault>)> = vec![
        (
            200,
            vec![
                error(up, 10, 503, "service_unavailable", None),
                error(up, 5, 429, "too_many_requests", Some(1)),
            ],
        ),
        (
            500,
            vec![
                error(up, 10, 500, "internal_error", None),
                error(up, 5, 503, "service_unavailable", Some(1)),
            ],
        ),
        (
            800,
            vec![
                fault(up, 5, FaultAction::LoseAnswer),
                fault(up, 5, FaultAction::Drop { after_bytes: 100 }),
            ],
        ),
        (
            1_300,
            vec![
                error(up, 5, 401, "expired_auth_token", None),
                fault(up, 3, FaultAction::GarbleAnswer),
            ],
        ),
    ];
    let injected = Injected {
        failed_uploads: 10 + 5 + 10 + 5 + 5 + 5,
        unanswered_uploads: 5 + 3,
        upload_url_faults: 3,
    };
    let mut next = 0;
    let mut expired = false;
    while !stop.load(Ordering::Relaxed) && (next < waves.len() || !expired) {
        let counts = emu.counts();
        let uploads = counts.get(up);
        if next < waves.len() && uploads >= waves[next].0 {
            for f in waves[next].1.clone() {
                emu.inject(f);
            }
            next += 1;
        }
        // Every process has authorized, none is near its end: each renews exactly once.
        if !expired && uploads >= 1_000 && counts.get("b2_authorize_account") == PROCS {
            emu.expire_tokens();
            expired = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        next == waves.len() && expired,
        "the run ended before every fault wave was injected ({next} of {}, tokens expired: {expired})",
        waves.len()
    );
    injected
}

fn sha1_hex(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha1::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn call(v: &Value, name: &str) -> u64 {
    v["calls"][name].as_u64().unwrap_or(0)
}

#[test]
fn ten_processes_of_ten_threads_upload_and_restore_through_faults() {
    let work = tempfile::Builder::new()
        .prefix("b2dest-load-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let driver = build_driver(work.path());
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let emu = Emulator::start(Config {
        min_part_size: 10_000,
        recommended_part_size: 100_000,
        ..Default::default()
    })
    .expect("the emulator starts");

    let stop = Arc::new(AtomicBool::new(false));
    let run = std::thread::scope(|s| {
        let feeder = s.spawn(|| feed_faults(&emu, &stop));
        let mut cmd = Command::new(&driver);
        cmd.arg(emu.url())
            .arg(&scratch)
            .args([
                "--procs",
                &PROCS.to_string(),
                "--threads",
                &THREADS.to_string(),
            ])
            .args([
                "--files",
                &SMALL.to_string(),
                "--min-size",
                "1024",
                "--max-size",
                "65536",
            ])
            .args(["--large", "1", "--large-size", &LARGE_SIZE.to_string()])
            .args(["--part-size", "100000", "--restore", &RESTORE.to_string()])
            .args(["--retries", "10", "--timeout", "240", "--prefix", "load"])
            .env("B2DEST_ACCOUNT_ID", emu.account_id())
            .env("B2DEST_APPLICATION_KEY", emu.application_key())
            .env("B2DEST_BUCKET", BUCKET);
        let run = run_with_limit(&mut cmd, LIMIT);
        stop.store(true, Ordering::Relaxed);
        (run, feeder.join())
    });
    let ((ok, stdout, stderr), injected) = run;
    println!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(ok, "tests/c/load.c failed:\n{stdout}\n{stderr}");
    let injected = injected.unwrap_or_else(|e| std::panic::resume_unwind(e));
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("the driver's summary is not JSON ({e}): {stdout}"));
    assert_eq!(summary["uploaded"], SMALL + PROCS, "{summary}");
    assert_eq!(
        summary["restored"],
        PROCS * (THREADS * RESTORE + 1),
        "{summary}"
    );

    // Exactly one version of every name, nothing else, every SHA1 right.
    let mut expected: BTreeMap<String, (PathBuf, bool)> = BTreeMap::new();
    for p in 0..PROCS {
        for i in 0..SMALL / PROCS {
            let local = scratch.join(format!("p{p:02}/f{i:05}.bin"));
            expected.insert(format!("load/p{p:02}/f{i:05}.bin"), (local, false));
        }
        let local = scratch.join(format!("p{p:02}/large00000.bin"));
        expected.insert(format!("load/p{p:02}/large00000.bin"), (local, true));
    }
    let versions = emu.file_versions(BUCKET);
    let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
    for v in &versions {
        *seen.entry(v.file_name.as_str()).or_default() += 1;
        let Some((local, large)) = expected.get(&v.file_name) else {
            panic!("a version nobody uploaded: {} ({})", v.file_name, v.action);
        };
        assert_eq!(v.action, "upload", "{}", v.file_name);
        let sha1 = if *large {
            v.file_info
                .get("large_file_sha1")
                .cloned()
                .unwrap_or_default()
        } else {
            v.sha1.clone()
        };
        assert_eq!(sha1, sha1_hex(local), "SHA1 of {}", v.file_name);
        assert_eq!(
            v.size,
            std::fs::metadata(local).unwrap().len(),
            "{}",
            v.file_name
        );
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "names with more than one version: {twice:?}"
    );
    assert_eq!(seen.len(), expected.len(), "names stored vs uploaded");
    let unfinished = emu.unfinished_large_files(BUCKET);
    assert!(
        unfinished.is_empty(),
        "unfinished large files: {unfinished:?}"
    );

    // The calls: what every response said it made adds up to what the emulator counted.
    let counts = emu.counts();
    let counted: BTreeMap<String, u64> = counts.calls.into_iter().filter(|(_, n)| *n > 0).collect();
    let reported: BTreeMap<String, u64> = serde_json::from_value(summary["calls"].clone()).unwrap();
    assert_eq!(
        reported, counted,
        "calls in the responses vs at the emulator"
    );

    // Per process: one authorization before the expiry and one after it (every process
    // had authorized and still had work when all tokens expired; its threads share the
    // renewal), and one bucket lookup, which a renewal does not repeat.
    for p in summary["processes"].as_array().unwrap() {
        assert_eq!(call(p, "b2_authorize_account"), 2, "process {p}");
        assert_eq!(call(p, "b2_list_buckets"), 1, "process {p}");
    }

    // One b2_upload_file a small file, one more for every injected failure that stored
    // nothing, and at most one more for each upload URL the expiry found in use or pooled
    // (at most one a thread). A lost or garbled answer is settled, never sent again.
    let uploads = call(&summary, "b2_upload_file");
    let floor = SMALL + injected.failed_uploads;
    assert!(
        (floor..=floor + PROCS * THREADS).contains(&uploads),
        "b2_upload_file {uploads}, expected {floor} to {}",
        floor + PROCS * THREADS
    );
    // Upload URLs: one a thread, one more after every upload that failed or went
    // unanswered (its URL is dropped), the faulted requests for one, and at most one a
    // thread refused for the expired account token.
    let urls = call(&summary, "b2_get_upload_url");
    let bound = PROCS * THREADS
        + (uploads - SMALL)
        + injected.unanswered_uploads
        + injected.upload_url_faults
        + PROCS * THREADS;
    assert!(
        (PROCS..=bound).contains(&urls),
        "b2_get_upload_url {urls}, expected {PROCS} to {bound}"
    );
    println!(
        "load: {uploads} b2_upload_file for {SMALL} small files ({} injected failures), \
         {urls} b2_get_upload_url (bound {bound}), upload phase {} s",
        injected.failed_uploads, summary["upload_wall_s"]
    );
}
