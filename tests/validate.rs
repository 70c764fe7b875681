//! `dest_validate` refuses every configuration a later upload or download would refuse,
//! judged by the limits `b2_authorize_account` returns, not only by fixed bounds.

mod common;

use common::*;
use serde_json::{json, Value};

fn failed_check(v: &Value) -> (String, String) {
    let failed = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["ok"] == false)
        .unwrap_or_else(|| panic!("no check failed: {v}"));
    (
        failed["name"].as_str().unwrap().to_string(),
        failed["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn part_size_below_the_accounts_minimum_is_refused_by_validate_as_by_upload() {
    let emu = emulator();
    let cfg = config(&emu, json!({"part_size_bytes": MIN_PART - 1}));
    let (st, v) = validate(&cfg);
    assert_eq!(st, CONFIG, "{v}");
    assert_eq!(v["valid"], false, "{v}");
    let (name, message) = failed_check(&v);
    assert_eq!(name, "probe");
    assert!(message.contains("part_size_bytes"), "{message}");
    assert!(message.contains(&MIN_PART.to_string()), "{message}");
    // Refused before anything was written.
    assert_eq!(emu.counts().get("b2_upload_file"), 0);
    assert!(emu.file_versions(BUCKET).is_empty());

    // What validate refused, an upload refuses too, with the same status.
    let dir = tempfile::tempdir().unwrap();
    let local = write_file(dir.path(), "f", 1000, 1);
    let (st, up) = upload(&cfg, &local, "f");
    assert_eq!(st, CONFIG, "{up}");
}

#[test]
fn read_only_destination_with_a_part_size_downloads_refuse_is_refused() {
    let emu = emulator();
    let writer = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let local = write_file(dir.path(), "f", 1000, 2);
    assert_eq!(upload(&writer, &local, "f").0, OK);

    let cfg = config(
        &emu,
        json!({"read_only": true, "part_size_bytes": MIN_PART - 1}),
    );
    let (st, v) = validate(&cfg);
    assert_eq!(st, CONFIG, "{v}");
    assert!(failed_check(&v).1.contains("part_size_bytes"), "{v}");
    let (st, down) = download(&cfg, "f", &dir.path().join("back"));
    assert_eq!(st, CONFIG, "{down}");
}

#[test]
fn a_recommended_part_size_below_the_minimum_is_refused_when_none_is_configured() {
    let emu = emulator_with(|c| c.recommended_part_size = MIN_PART / 2);
    let mut cfg: Value = serde_json::from_str(&config(&emu, json!({}))).unwrap();
    cfg.as_object_mut().unwrap().remove("part_size_bytes");
    let cfg = cfg.to_string();
    let (st, v) = validate(&cfg);
    assert_eq!(st, CONFIG, "{v}");
    assert!(failed_check(&v).1.contains("below B2's minimum"), "{v}");
    let dir = tempfile::tempdir().unwrap();
    let local = write_file(dir.path(), "f", 1000, 3);
    assert_eq!(upload(&cfg, &local, "f").0, CONFIG);
}

#[test]
fn the_minimum_part_size_itself_is_accepted() {
    let emu = emulator();
    let cfg = config(&emu, json!({"part_size_bytes": MIN_PART}));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true));
}
