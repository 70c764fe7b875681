//! A panic inside an operation becomes DEST_ERR_INTERNAL with a well-formed response, and
//! the host process goes on. Debug builds only: the panic switch is compiled out of release
//! builds. Its own test binary, as the switch is a process-wide environment variable.
#![cfg(debug_assertions)]

mod common;

use std::ffi::{c_char, c_void, CStr};
use std::sync::Mutex;

use common::*;
use serde_json::json;

static ERROR_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn keep_errors(level: i32, message: *const c_char, _user: *mut c_void) {
    // SAFETY: the library passes a NUL-terminated line valid during the call.
    let line = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    if level == b2dest::ffi::DestLogLevel::DestLogError as i32 {
        ERROR_LINES.lock().unwrap().push(line);
    }
}

#[test]
fn a_panic_in_an_operation_is_internal_and_the_host_survives() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1000, 1);
    b2dest::ffi::dest_set_log_callback(Some(keep_errors), 4, std::ptr::null_mut());
    for (point, place) in [
        ("caller", "at the C boundary"),
        ("task", "in an operation task"),
    ] {
        std::env::set_var("B2DEST_TEST_PANIC", point);
        let (st, v) = upload(&cfg, &f, "f");
        assert_eq!(st, INTERNAL, "{point}: {v}");
        assert_eq!(v["error"]["code"], "internal", "{point}: {v}");
        assert_eq!(v["error"]["retryable"], false, "{point}: {v}");
        // The panic's own message, and where it was caught, reach the host.
        let said = format!("a panic was caught {place}: B2DEST_TEST_PANIC={point}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(&said), "{point}: {v}");
        let (st, v) = list(&cfg, "");
        assert_eq!(st, INTERNAL, "{point}: {v}");
        std::env::remove_var("B2DEST_TEST_PANIC");
        // The runtime and the session survive the panic: the next call works.
        let (st, v) = upload(&cfg, &f, "f");
        assert_eq!(st, OK, "after a panic at {point}: {v}");
    }
    b2dest::ffi::dest_set_log_callback(None, 0, std::ptr::null_mut());
    assert_eq!(emu.file_versions(BUCKET).len(), 2);
    // The boundary logs each panic it catches (the upload's and the listing's at the
    // caller); a task's panic is its operation's outcome, told in the response.
    let lines = ERROR_LINES.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert!(
            l.contains("a panic was caught at the C boundary: B2DEST_TEST_PANIC=caller"),
            "{lines:?}"
        );
    }
}
