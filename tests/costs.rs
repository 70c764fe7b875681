//! What each call cost: every response's `transactions` are the B2 requests the operation
//! made, exactly as the emulator counted them, by call and by B2's billing class.

mod common;

use std::collections::BTreeMap;

use b2_emulator::{Emulator, Fault, FaultAction};
use common::*;
use serde_json::{json, Value};

/// B2's billing class of each call this library makes (Backblaze's pricing page).
fn class(call: &str) -> &'static str {
    match call {
        "b2_download_file_by_id" | "b2_download_file_by_name" | "b2_get_file_info" => "class_b",
        "b2_authorize_account" => "class_c",
        c if c.starts_with("b2_list_") => "class_c",
        _ => "class_a",
    }
}

/// Asserts the response's transactions equal what the emulator received since the reset.
fn assert_costs_match(emu: &Emulator, what: &str, v: &Value) {
    let counted: BTreeMap<String, u64> = emu.counts().calls;
    let t = &v["transactions"];
    let calls: BTreeMap<String, u64> =
        serde_json::from_value(t["calls"].clone()).unwrap_or_else(|e| panic!("{what}: {e}: {v}"));
    assert_eq!(
        calls, counted,
        "{what}: calls by name, response vs emulator"
    );
    assert!(!counted.is_empty(), "{what}: made no B2 call at all");
    let mut by_class: BTreeMap<&str, u64> = [("class_a", 0), ("class_b", 0), ("class_c", 0)].into();
    for (call, n) in &counted {
        *by_class.get_mut(class(call)).unwrap() += n;
    }
    for (c, n) in by_class {
        assert_eq!(t[c], n, "{what}: {c}: {v}");
    }
}

#[test]
fn every_response_says_what_its_b2_calls_were() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 2}));
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(dir.path(), "small", 5_000, 1);
    let large = write_file(dir.path(), "large", 3 * PART as usize + 11, 2);

    emu.reset_counts();
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    assert_costs_match(&emu, "validate", &v);

    emu.reset_counts();
    let (st, v) = upload(&cfg, &small, "small");
    assert_eq!(st, OK, "{v}");
    assert_costs_match(&emu, "small upload", &v);
    assert!(
        v["elapsed_ms"].is_u64() && v["bytes_per_second"].is_u64(),
        "{v}"
    );

    emu.reset_counts();
    let (st, v) = upload(&cfg, &large, "large");
    assert_eq!(st, OK, "{v}");
    assert_costs_match(&emu, "large upload", &v);
    assert_eq!(v["transactions"]["calls"]["b2_upload_part"], 4, "{v}");
    assert!(v["bytes_per_second"].as_u64().unwrap() > 0, "{v}");

    emu.reset_counts();
    let back = dir.path().join("back");
    let (st, v) = download(&cfg, "large", &back);
    assert_eq!(st, OK, "{v}");
    assert_costs_match(&emu, "download", &v);
    assert!(v["transactions"]["class_b"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["elapsed_ms"].is_u64(), "{v}");

    emu.reset_counts();
    let (st, v) = list(&cfg, "");
    assert_eq!(st, OK, "{v}");
    assert_costs_match(&emu, "list", &v);
    assert!(v.get("elapsed_ms").is_none(), "not a transfer: {v}");

    emu.reset_counts();
    let (st, v) = usage(&cfg);
    assert_eq!(st, OK, "{v}");
    assert_costs_match(&emu, "usage", &v);

    emu.reset_counts();
    let (st, v) = delete(&cfg, "small");
    assert_eq!(st, OK, "{v}");
    assert_costs_match(&emu, "delete", &v);
}

#[test]
fn retried_and_failed_calls_are_counted_too() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 5_000, 3);
    let unavailable = FaultAction::Error {
        status: 503,
        code: "service_unavailable".into(),
        retry_after: None,
        message: None,
    };
    emu.inject(Fault {
        call: "b2_upload_file".into(),
        count: 2,
        action: unavailable,
    });
    emu.reset_counts();
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["transactions"]["calls"]["b2_upload_file"], 3, "{v}");
    assert_costs_match(&emu, "upload after two 503s", &v);

    emu.inject(Fault {
        call: "b2_list_file_names".into(),
        count: 10,
        action: FaultAction::Error {
            status: 403,
            code: "transaction_cap_exceeded".into(),
            retry_after: None,
            message: None,
        },
    });
    emu.reset_counts();
    let (st, v) = list(&cfg, "");
    assert_eq!(st, LIMIT, "{v}");
    assert_costs_match(&emu, "a refused list", &v);
}

/// The calls of the last operation, without the session's authorization and bucket lookup.
fn restore_calls(v: &Value) -> BTreeMap<String, u64> {
    let mut calls: BTreeMap<String, u64> =
        serde_json::from_value(v["transactions"]["calls"].clone()).unwrap();
    calls.remove("b2_authorize_account");
    calls.remove("b2_list_buckets");
    calls
}

/// A single-file restore asks B2 for the file by name and learns its length, SHA1 and file
/// info from the answer's headers: no listing call (class C), whatever the file's size.
#[test]
fn a_single_file_restore_makes_no_listing_call() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 2}));
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(dir.path(), "small", 5_000, 11);
    let large = write_file(dir.path(), "large", 3 * PART as usize + 11, 12);
    let empty = write_file(dir.path(), "empty", 0, 13);
    for (f, name) in [(&small, "small"), (&large, "large"), (&empty, "empty")] {
        assert_eq!(upload(&cfg, f, name).0, OK);
    }
    // The large one went up as a large file: B2 holds no content SHA1 for it, only the
    // large_file_sha1 of its file info.
    let stored = emu.file_versions(BUCKET);
    let large_version = stored
        .iter()
        .find(|v| v.file_name.ends_with("/large"))
        .unwrap();
    assert_eq!(large_version.sha1, "none");
    assert!(large_version.file_info.contains_key("large_file_sha1"));

    emu.reset_counts();
    let (st, v) = download(&cfg, "small", &dir.path().join("small.back"));
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["verified"], true, "{v}");
    assert_costs_match(&emu, "small restore", &v);
    assert_eq!(
        restore_calls(&v),
        [("b2_download_file_by_name".to_string(), 1)].into(),
        "{v}"
    );

    emu.reset_counts();
    let back = dir.path().join("large.back");
    let (st, v) = download(&cfg, "large", &back);
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["verified"], true, "checked against large_file_sha1: {v}");
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&large).unwrap()
    );
    assert_costs_match(&emu, "large restore", &v);
    let calls = restore_calls(&v);
    assert_eq!(calls.get("b2_download_file_by_name"), Some(&1), "{v}");
    assert!(calls.get("b2_download_file_by_id") >= Some(&3), "{v}");
    assert!(calls.keys().all(|c| c.starts_with("b2_download_")), "{v}");
    assert_eq!(emu.counts().bytes_sent, 3 * PART + 11, "each byte once");

    // An empty file answers the first range with 416: asked once more without a Range.
    emu.reset_counts();
    let (st, v) = download(&cfg, "empty", &dir.path().join("empty.back"));
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["verified"], true, "{v}");
    assert_eq!(
        restore_calls(&v),
        [("b2_download_file_by_name".to_string(), 2)].into(),
        "{v}"
    );

    // A name with nothing under it: B2's 404, then the listing (it may be a directory).
    emu.reset_counts();
    let (st, v) = download(&cfg, "missing", &dir.path().join("missing.back"));
    assert_eq!(st, NOT_FOUND, "{v}");
    let counts = emu.counts();
    assert_eq!(counts.get("b2_download_file_by_name"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_list_file_names"), 1, "{counts:?}");
    assert_eq!(counts.get("b2_download_file_by_id"), 0, "{counts:?}");
    assert!(!dir.path().join("missing.back").exists());
}
