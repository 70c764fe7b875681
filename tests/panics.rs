//! A panic inside an operation becomes DEST_ERR_INTERNAL with a well-formed response, and
//! the host process goes on. Debug builds only: the panic switch is compiled out of release
//! builds. Its own test binary, as the switch is a process-wide environment variable.
#![cfg(debug_assertions)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_panic_in_an_operation_is_internal_and_the_host_survives() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1000, 1);
    for point in ["caller", "task"] {
        std::env::set_var("B2DEST_TEST_PANIC", point);
        let (st, v) = upload(&cfg, &f, "f");
        assert_eq!(st, INTERNAL, "{point}: {v}");
        assert_eq!(v["error"]["code"], "internal", "{point}: {v}");
        assert_eq!(v["error"]["retryable"], false, "{point}: {v}");
        let (st, v) = list(&cfg, "");
        assert_eq!(st, INTERNAL, "{point}: {v}");
        std::env::remove_var("B2DEST_TEST_PANIC");
        // The runtime and the session survive the panic: the next call works.
        let (st, v) = upload(&cfg, &f, "f");
        assert_eq!(st, OK, "after a panic at {point}: {v}");
    }
    assert_eq!(emu.file_versions(BUCKET).len(), 2);
}
