//! Every test that installs the library's log callback, which is process-wide: each holds
//! a `LogTurn` (tests/common/log.rs) from its first line to its last, so the tests of this
//! binary run one at a time and each sees only its own lines. (tests/panics.rs installs
//! one too, alone in its own binary.) Grouped by what they are about: retries, secrets,
//! restores, a customer's file names, the callback itself, and b2sdk's simulator.

mod common;
#[path = "simulator/front.rs"]
mod front;

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use b2_emulator::{Emulator, Fault, FaultAction};
use common::faults::{error, error_saying, inject};
use common::log::LogTurn;
use common::*;
use serde_json::{json, Value};

/// A large SSE-C file: three parts and a tail.
const SSE_C_LARGE: usize = 3 * PART as usize + 777;

fn sse_c(key: &str) -> Value {
    json!({"encryption": {"mode": "SSE-C", "customer_key": key}, "concurrency": 4})
}

fn journal(emu: &Emulator) -> String {
    std::fs::read_to_string(emu.data_dir().join("journal.jsonl")).unwrap()
}

fn lines_with(lines: &[String], mark: &str) -> Vec<String> {
    lines.iter().filter(|l| l.contains(mark)).cloned().collect()
}

/// A customer's home below `base`, owned by the customer's uid (4242).
fn customer_home(base: &std::path::Path) -> std::path::PathBuf {
    let home = base.join("home/alice");
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(4242), Some(4242)).unwrap();
    home
}

// ---------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------

#[test]
fn a_retry_says_what_happened_and_only_the_final_failure_says_the_retries_ran_out() {
    let log = LogTurn::take();
    log.collect();
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 100, 4);

    // Two failures, then a success.
    let cfg = config(&emu, json!({"upload_retries": 3}));
    inject(
        &emu,
        "b2_upload_file",
        2,
        error_saying(503, "service_unavailable", Some("busy-then-fine")),
    );
    let (st, v) = upload(&cfg, &f, "recovers");
    assert_eq!(st, OK, "{v}");

    // Failures until the retries are over.
    let cfg = config(&emu, json!({"upload_retries": 1}));
    inject(
        &emu,
        "b2_upload_file",
        100,
        error_saying(503, "service_unavailable", Some("busy-for-good")),
    );
    let (st, v) = upload(&cfg, &f, "gives-up");
    let lines = log.stop();
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("503 service_unavailable: busy-for-good")
            && message.contains("kept failing after the retries (2 tries in all)"),
        "{message}"
    );

    let recovers = lines_with(&lines, "busy-then-fine");
    assert_eq!(recovers.len(), 2, "{recovers:#?}");
    for (line, attempt) in recovers.iter().zip(["attempt 2 of 4", "attempt 3 of 4"]) {
        assert!(
            line.contains("B2 answered b2_upload_file with 503")
                && line.contains("trying again in")
                && line.contains(attempt)
                && !line.contains("kept failing"),
            "{line}"
        );
    }
    let gives_up = lines_with(&lines, "busy-for-good");
    assert_eq!(gives_up.len(), 1, "one retry, then the end: {gives_up:#?}");
    assert!(
        gives_up[0].contains("attempt 2 of 2") && !gives_up[0].contains("kept failing"),
        "{gives_up:#?}"
    );
    for l in &lines {
        assert_no_secret(l);
    }
}

#[test]
fn log_lines_tell_what_happened_and_never_hold_a_secret() {
    let log = LogTurn::take();
    log.collect();
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    emu.inject(Fault {
        call: "b2_upload_file".into(),
        count: 1,
        action: FaultAction::Error {
            status: 429,
            code: "too_many_requests".into(),
            retry_after: Some(1),
            message: None,
        },
    });
    assert_eq!(round_trip(&cfg, 100, 13).0, OK);
    let lines = log.stop();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().any(|l| l.contains("b2_upload_file")),
        "the retry is logged: {lines:#?}"
    );
    // Retry-After: 1 is honoured over the 5 ms back-off of this configuration: the
    // emulator saw the second try at least a second after the first.
    let arrivals = emu.counts().arrivals_ms["b2_upload_file"].clone();
    assert_eq!(arrivals.len(), 2, "{arrivals:?}");
    assert!(arrivals[1] - arrivals[0] >= 1000, "{arrivals:?}");
    for l in &lines {
        assert_no_secret(l);
    }
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

#[test]
fn the_customer_key_is_in_no_response_or_log_line() {
    let log = LogTurn::take();
    log.collect();
    let emu = emulator();
    let cfg = config(&emu, sse_c(CUSTOMER_KEYS[0]));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", SSE_C_LARGE, 8);
    // Every response goes through take_response, which looks for both customer keys.
    assert_eq!(validate(&cfg).0, OK);
    emu.inject(Fault {
        call: "b2_upload_part".into(),
        count: 1,
        action: FaultAction::Error {
            status: 503,
            code: "service_unavailable".into(),
            retry_after: None,
            message: None,
        },
    });
    assert_eq!(upload(&cfg, &f, "big").0, OK);
    assert_eq!(list(&cfg, "").0, OK);
    assert_eq!(download(&cfg, "big", &dir.path().join("back")).0, OK);
    let wrong = config(&emu, sse_c(CUSTOMER_KEYS[1]));
    assert_eq!(
        download(&wrong, "big", &dir.path().join("wrong")).0,
        ENCRYPTION_KEY
    );
    assert_eq!(usage(&cfg).0, OK);
    assert_eq!(delete(&cfg, "big").0, OK);
    let lines = log.stop();
    assert!(
        lines.iter().any(|l| l.contains("b2_upload_part")),
        "the retry was logged: {lines:#?}"
    );
    for l in &lines {
        assert_no_secret(l);
    }
    assert!(!journal(&emu).contains(CUSTOMER_KEYS[0]));
}

#[test]
fn keys_echoed_in_b2_error_messages_are_redacted_from_log_lines() {
    let log = LogTurn::take();
    let emu = emulator();
    let cfg = config(&emu, sse_c(CUSTOMER_KEYS[0]));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "small", 5000, 31);
    // What B2 or a proxy in between could send: the request's own secrets, echoed.
    let echo = format!(
        "echoing the request: key {} and Authorization {}",
        CUSTOMER_KEYS[0],
        emu.application_key()
    );
    emu.inject(Fault {
        call: "b2_upload_file".into(),
        count: 1,
        action: FaultAction::Error {
            status: 503,
            code: "service_unavailable".into(),
            retry_after: None,
            message: Some(echo.clone()),
        },
    });
    log.collect();
    let (st, _) = upload(&cfg, &f, "small");
    let lines = log.stop();
    assert_eq!(st, OK);
    assert_eq!(emu.counts().get("b2_upload_file"), 2, "the 503 was retried");
    let retry: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("echoing the request"))
        .collect();
    assert!(!retry.is_empty(), "the retry was logged: {lines:#?}");
    for l in &retry {
        assert!(
            l.contains("key [redacted] and Authorization [redacted]"),
            "{l}"
        );
    }
    for l in &lines {
        assert_no_secret(l);
    }
}

// ---------------------------------------------------------------------------------------
// Restores
// ---------------------------------------------------------------------------------------

#[test]
fn a_restore_that_replaces_a_file_flushes_it_first() {
    let log = LogTurn::take();
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 5_000, 3);
    assert_eq!(upload(&cfg, &f, "f").0, OK);
    let fresh = dir.path().join("fresh");
    let existing = dir.path().join("existing");
    std::fs::write(&existing, b"the previous restore").unwrap();
    log.collect();
    assert_eq!(download(&cfg, "f", &fresh).0, OK);
    assert_eq!(download(&cfg, "f", &existing).0, OK);
    let flushed: Vec<String> = log
        .stop()
        .into_iter()
        .filter(|l| l.contains("flushed"))
        .collect();
    assert_eq!(flushed.len(), 1, "{flushed:?}");
    assert!(flushed[0].contains("existing"), "{flushed:?}");
    assert_eq!(
        std::fs::read(&existing).unwrap(),
        std::fs::read(&f).unwrap()
    );
}

// ---------------------------------------------------------------------------------------
// A customer's file names
// ---------------------------------------------------------------------------------------

#[test]
fn a_file_name_with_a_unicode_line_break_cannot_forge_a_line_in_the_hosts_log() {
    // U+2028 is a valid B2 name character, so the walk queues such a file; every text
    // that names it afterwards (the "uploading <path>" log line, the skip reasons of
    // LocalFile::open_in for a hard link, a swap or a symbolic link, the changed-file
    // error) shows it through `local::shown`, which escapes U+0085, U+2028 and U+2029 as
    // it does control characters. Needs root: the home is given to the customer's uid.
    if !needs_root() {
        return;
    }
    let log = LogTurn::take();
    log.collect();
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let base = tempfile::tempdir().unwrap();
    let home = customer_home(base.path());
    let forged =
        "\u{2028}2026-12-02 03:00:00 [INFO] restore of bob: OK, sent to bob@evil.example\u{2028}";
    write_file(&home, &format!("page{forged}.html"), 100, 1);
    let shadow = base.path().join("shadow");
    std::fs::write(&shadow, b"root:$6$hash:19000:0:99999:7:::\n").unwrap();
    std::fs::hard_link(&shadow, home.join(format!("link{forged}"))).unwrap();
    let (st, v) = upload(&cfg, &home, "home");
    let lines = log.stop();
    assert_eq!(st, OK, "{v}");
    let mut raw: Vec<String> = lines
        .iter()
        .filter(|l| l.contains('\u{2028}'))
        .map(|l| format!("log line: {l:?}"))
        .collect();
    for w in v["warnings"].as_array().unwrap() {
        let w = w.as_str().unwrap();
        if w.contains('\u{2028}') {
            raw.push(format!("response warning: {w:?}"));
        }
    }
    for s in v["skipped"].as_array().unwrap() {
        let r = s["reason"].as_str().unwrap();
        if r.contains('\u{2028}') {
            raw.push(format!("skip reason: {r:?}"));
        }
    }
    assert!(
        raw.is_empty(),
        "raw U+2028 line breaks from a customer's file name: {raw:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// The callback itself
// ---------------------------------------------------------------------------------------

static SLOW_ENTERED: AtomicBool = AtomicBool::new(false);
static SLOW_FINISHED: AtomicBool = AtomicBool::new(false);
static REENTERED: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn slow_logger(_level: i32, _message: *const c_char, _user: *mut c_void) {
    if !SLOW_ENTERED.swap(true, Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(500));
        SLOW_FINISHED.store(true, Ordering::SeqCst);
    }
}

unsafe extern "C" fn reentrant_logger(_level: i32, _message: *const c_char, user: *mut c_void) {
    // Replaces itself from inside: must neither deadlock nor wait for this very thread.
    b2dest::ffi::dest_set_log_callback(Some(reentrant_logger), 4, user);
    REENTERED.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn removing_the_log_callback_waits_for_threads_inside_it() {
    let _turn = LogTurn::take();
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    // A retried 503 logs a warning on the calling thread.
    emu.inject(Fault {
        call: "b2_list_buckets".into(),
        count: 1,
        action: error(503, "service_unavailable"),
    });
    b2dest::ffi::dest_set_log_callback(Some(slow_logger), 4, std::ptr::null_mut());
    let caller = std::thread::spawn(move || validate(&cfg));
    let mut waited = 0;
    while !SLOW_ENTERED.load(Ordering::SeqCst) {
        assert!(waited < 30_000, "no log line reached the callback");
        std::thread::sleep(Duration::from_millis(1));
        waited += 1;
    }
    b2dest::ffi::dest_set_log_callback(None, 0, std::ptr::null_mut());
    assert!(
        SLOW_FINISHED.load(Ordering::SeqCst),
        "dest_set_log_callback(NULL) returned while a thread was inside the old callback"
    );
    assert_eq!(caller.join().unwrap().0, OK);

    // A callback that sets the callback again, from inside, on the calling thread.
    let cfg = config(&emu, json!({}));
    emu.inject(Fault {
        call: "b2_list_buckets".into(),
        count: 1,
        action: error(503, "service_unavailable"),
    });
    b2dest::ffi::dest_set_log_callback(Some(reentrant_logger), 4, std::ptr::null_mut());
    assert_eq!(validate(&cfg).0, OK);
    b2dest::ffi::dest_set_log_callback(None, 0, std::ptr::null_mut());
    assert!(REENTERED.load(Ordering::SeqCst) >= 1);
}

// ---------------------------------------------------------------------------------------
// b2sdk's simulator (skipped, as in simulator.rs, where it cannot run)
// ---------------------------------------------------------------------------------------

mod simulator {
    use super::*;
    use crate::front::*;

    #[test]
    fn the_customer_key_the_simulator_echoes_reaches_no_response_or_log_line() {
        let log = LogTurn::take();
        let Some(sim) = Simulator::start() else {
            return;
        };
        // Debug lines too.
        log.collect();
        let key = CUSTOMER_KEYS[0];
        let cfg = sim_config(
            &sim,
            json!({"encryption": {"mode": "SSE-C", "customer_key": key}, "concurrency": 2}),
        );
        let dir = tempfile::tempdir().unwrap();
        let small = write_file(dir.path(), "small", 1_500, 40);
        let big = write_file(dir.path(), "big", LARGE, 41);
        // The simulator answers uploads, starts and parts with `customerKey` itself (B2 only
        // ever answers its MD5); a part refused once puts an answer in the retry's log line.
        sim.fail("b2_upload_part", 1, 1, 503, "service_unavailable");
        let (st, v) = validate(&cfg);
        assert_eq!(st, OK, "{v}");
        upload_ok(&cfg, &small, "small");
        upload_ok(&cfg, &big, "big");
        assert_eq!(list(&cfg, "").0, OK);
        restore_matches(&cfg, "big", &big);
        let wrong = sim_config(
            &sim,
            json!({"encryption": {"mode": "SSE-C", "customer_key": CUSTOMER_KEYS[1]}}),
        );
        assert_eq!(
            download(&wrong, "small", &dir.path().join("wrong")).0,
            ENCRYPTION_KEY
        );
        assert_eq!(usage(&cfg).0, OK);
        for name in ["small", "big"] {
            let (st, v) = delete(&cfg, name);
            assert_eq!(st, OK, "{v}");
        }
        let lines = log.stop();
        assert!(
            lines.iter().any(|l| l.contains("b2_upload_part")),
            "the refused part was logged: {lines:#?}"
        );
        for line in &lines {
            assert_no_secret(line);
            assert_no_simulator_secret(&json!(line));
        }
    }
}
