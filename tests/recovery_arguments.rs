//! The recovery exports' arguments: NULL pointers, bad `options_json`, a read-only
//! destination; refused by name before any B2 call.

mod common;

use common::lock::*;
use common::recovery::*;
use common::*;
use serde_json::json;

#[test]
fn rollback_is_refused_on_a_read_only_destination_and_bad_options_name_their_field() {
    let emu = locked_emulator();
    let ro = config(&emu, json!({"read_only": true}));
    let (st, v) = rollback(
        &ro,
        "site",
        Some(&format!("{{\"as_of_ms\": {}}}", now_ms() - 1)),
    );
    assert_eq!(st, PERMISSION, "{v}");
    let cfg = config(&emu, json!({}));
    let future = format!("{{\"as_of_ms\": {}}}", now_ms() + DAY_MS);
    let both = "{\"as_of_ms\": 5, \"file_id\": \"x\"}".to_string();
    let dir = tempfile::tempdir().unwrap();
    emu.reset_counts();
    for (options, field) in [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ("{\"as_of_ms\": \"yesterday\"}", "as_of_ms"),
        ("{\"as_of_ms\": -5}", "as_of_ms"),
        (future.as_str(), "future"),
        (both.as_str(), "file_id"),
        ("{\"dry_run\": 1, \"as_of_ms\": 5}", "dry_run"),
        ("{\"colour\": 1}", "colour"),
    ] {
        for (st, v) in [
            rollback(&cfg, "site", Some(options)),
            restore(&cfg, "site", &dir.path().join("x"), Some(options)),
        ] {
            assert_eq!(st, INVALID_ARGUMENT, "{options}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(field),
                "{options}: {v}"
            );
        }
    }
    // Fields that belong to another export are refused too, and a rollback needs a time.
    let (st, v) = versions(&cfg, "", Some("{\"dry_run\": true}"));
    assert_eq!(st, INVALID_ARGUMENT, "{v}");
    let (st, v) = rollback(&cfg, "site", None);
    assert_eq!(st, INVALID_ARGUMENT, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("as_of_ms"));
    let (st, v) = restore(&cfg, "site", &dir.path().join("x"), Some("{}"));
    assert_eq!(st, INVALID_ARGUMENT, "{v}");
    assert_eq!(emu.counts().total(), 0, "bad options cost no B2 call");
}

#[test]
fn null_pointers_are_refused_by_name_and_a_null_response_is_fine() {
    let emu = locked_emulator();
    let cfg = c(&config(&emu, json!({})));
    let remote = c("site");
    let mut out = std::ptr::null_mut();
    let st = unsafe {
        b2dest::ffi::dest_list_versions(
            std::ptr::null(),
            remote.as_ptr(),
            std::ptr::null(),
            &mut out,
        )
    };
    let (st, v) = take_response(st, out);
    assert_eq!(st, INVALID_ARGUMENT);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("config_json"));
    let mut out = std::ptr::null_mut();
    let st = unsafe {
        b2dest::ffi::dest_download_as_of(
            cfg.as_ptr(),
            remote.as_ptr(),
            std::ptr::null(),
            c"{\"as_of_ms\": 1}".as_ptr(),
            None,
            std::ptr::null_mut(),
            &mut out,
        )
    };
    let (st, v) = take_response(st, out);
    assert_eq!(st, INVALID_ARGUMENT);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("local_path"));
    let st = unsafe {
        b2dest::ffi::dest_rollback(
            cfg.as_ptr(),
            remote.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, INVALID_ARGUMENT);
    // NULL options is {}: a listing of nothing.
    let (st, v) = versions(&config(&emu, json!({})), "site", None);
    assert_eq!((st, v["count"].as_u64()), (OK, Some(0)), "{v}");
}
