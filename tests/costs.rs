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
