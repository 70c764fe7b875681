use serde_json::{json, Value};

use super::super::{Variant, VariantRule, VariantSet};
use super::{rewrite, Rng};

/// A stored, locked, encrypted version as b2_list_file_versions shows it.
fn locked_upload() -> Value {
    json!({
        "accountId": "acct", "action": "upload", "bucketId": "b1",
        "contentLength": 1234, "size": 1234,
        "contentSha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "contentType": "application/octet-stream", "fileId": "4_zb1_f0001",
        "fileInfo": {"src_last_modified_millis": "1700000000000"},
        "fileName": "backups/a.tar", "uploadTimestamp": 1_700_000_000_123u64,
        "fileRetention": {"isClientAuthorizedToRead": true,
            "value": {"mode": "governance", "retainUntilTimestamp": 1_800_000_000_000u64}},
        "legalHold": {"isClientAuthorizedToRead": true, "value": "off"},
        "serverSideEncryption": {"algorithm": "AES256", "mode": "SSE-B2"},
    })
}

fn listing() -> Value {
    let mut unlocked = locked_upload();
    unlocked["fileId"] = json!("4_zb1_f0002");
    unlocked["fileRetention"]["value"] = json!({"mode": null, "retainUntilTimestamp": null});
    json!({"files": [
        locked_upload(),
        unlocked,
        {"accountId": "acct", "action": "hide", "bucketId": "b1", "contentLength": 0,
         "size": 0, "contentSha1": "none", "fileId": "4_zb1_f0003", "fileInfo": {},
         "fileName": "backups/b.tar", "uploadTimestamp": 5},
        {"accountId": "acct", "action": "start", "bucketId": "b1", "contentLength": 0,
         "size": 0, "contentSha1": "none", "fileId": "4_zb1_f0004", "fileInfo": {},
         "fileName": "backups/c.tar", "uploadTimestamp": 6},
    ], "nextFileName": null, "nextFileId": null})
}

fn bucket() -> Value {
    json!({"buckets": [{
        "accountId": "acct", "bucketId": "b1", "bucketName": "bkt",
        "bucketType": "allPrivate", "bucketInfo": {}, "corsRules": [],
        "lifecycleRules": [{"daysFromHidingToDeleting": 1,
            "daysFromUploadingToHiding": null, "fileNamePrefix": ""}],
        "revision": 3, "options": ["s3"],
        "defaultServerSideEncryption": {"isClientAuthorizedToRead": true,
            "value": {"algorithm": null, "mode": null}},
        "fileLockConfiguration": {"isClientAuthorizedToRead": true, "value": {
            "defaultRetention": {"mode": null, "period": null},
            "isFileLockEnabled": false}},
        "replicationConfiguration": {"isClientAuthorizedToRead": true, "value": null},
    }]})
}

fn shaped(call: &str, mut answer: Value, variants: &[Variant], seed: u64) -> Value {
    rewrite(
        call,
        &mut answer,
        VariantSet::of(variants),
        &mut Rng::new(seed),
    );
    answer
}

/// What an entry means: id, name, length (by either name), SHA1 where told, lock where told.
type Meaning = (String, String, u64, Option<String>, Option<Value>);

fn meaning(files: &Value) -> Vec<Meaning> {
    files["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let length = f.get("contentLength").or_else(|| f.get("size"));
            let retention = f
                .get("fileRetention")
                .and_then(|r| r.get("value"))
                .filter(|v| !v.is_null())
                .map(|v| json!({"until": v["retainUntilTimestamp"]}));
            (
                f["fileId"].as_str().unwrap().to_owned(),
                f["fileName"].as_str().unwrap().to_owned(),
                length.and_then(Value::as_u64).expect("a length"),
                f.get("contentSha1")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                retention,
            )
        })
        .collect()
}

#[test]
fn no_variant_leaves_the_answer_alone() {
    assert_eq!(
        shaped("b2_list_file_versions", listing(), &[], 1),
        listing()
    );
}

#[test]
fn null_makes_the_optional_fields_null_and_keeps_the_locks() {
    let out = shaped("b2_list_file_versions", listing(), &[Variant::Null], 7);
    let locked = &out["files"][0];
    for key in ["uploadTimestamp", "contentSha1", "serverSideEncryption"] {
        assert_eq!(locked[key], Value::Null, "{key}: {locked}");
    }
    // The info a client stored stays; none may read as null.
    assert_eq!(locked["fileInfo"], locked_upload()["fileInfo"]);
    assert_eq!(out["files"][2]["fileInfo"], Value::Null);
    // The retention is told: its value stays, only the flag goes.
    assert_eq!(locked["fileRetention"]["value"]["mode"], "governance");
    assert_eq!(
        locked["fileRetention"]["isClientAuthorizedToRead"],
        Value::Null
    );
    // A legal hold that is off and a retention without a mode may be null.
    assert_eq!(locked["legalHold"]["value"], Value::Null);
    assert_eq!(locked["legalHold"]["isClientAuthorizedToRead"], true);
    assert_eq!(out["files"][1]["fileRetention"]["value"], Value::Null);
    // What the listing means is not touched: ids, names, lengths.
    assert_eq!(out["files"][2]["action"], "hide");
    assert_eq!(out["files"][3]["action"], "start");
    assert_eq!(out["files"][0]["contentLength"], 1234);
    assert_eq!(out["nextFileName"], Value::Null);
}

#[test]
fn null_and_absent_on_a_bucket_keep_its_rules_and_lock() {
    let out = shaped("b2_list_buckets", bucket(), &[Variant::Null], 3);
    let b = &out["buckets"][0];
    for key in [
        "bucketType",
        "bucketInfo",
        "corsRules",
        "options",
        "replicationConfiguration",
    ] {
        assert_eq!(b[key], Value::Null, "{key}: {b}");
    }
    // Rules that exist stay; a rule for the whole bucket may lose its "" prefix.
    assert_eq!(b["lifecycleRules"][0]["daysFromHidingToDeleting"], 1);
    assert_eq!(b["lifecycleRules"][0]["fileNamePrefix"], Value::Null);
    let lock = &b["fileLockConfiguration"];
    assert_eq!(lock["value"]["isFileLockEnabled"], Value::Null);
    assert_eq!(lock["isClientAuthorizedToRead"], Value::Null);
    assert_eq!(
        b["defaultServerSideEncryption"]["value"],
        Value::Null,
        "no default encryption may read as null"
    );

    let out = shaped("b2_list_buckets", bucket(), &[Variant::Absent], 3);
    let b = out["buckets"][0].as_object().unwrap();
    assert!(!b.contains_key("bucketType") && !b.contains_key("options"));
    assert!(!b["lifecycleRules"][0]
        .as_object()
        .unwrap()
        .contains_key("fileNamePrefix"));
    let value = &b["fileLockConfiguration"]["value"];
    assert!(!value.as_object().unwrap().contains_key("isFileLockEnabled"));
}

#[test]
fn a_lock_that_is_on_is_never_taken_away() {
    let mut b = bucket();
    b["buckets"][0]["fileLockConfiguration"]["value"] = json!({
        "defaultRetention": {"mode": "compliance", "period": {"duration": 7, "unit": "days"}},
        "isFileLockEnabled": true});
    for seed in 0..20 {
        for variants in [[Variant::Null], [Variant::Absent]] {
            let out = shaped("b2_list_buckets", b.clone(), &variants, seed);
            let value = &out["buckets"][0]["fileLockConfiguration"]["value"];
            assert_eq!(value["isFileLockEnabled"], true, "{value}");
            assert_eq!(value["defaultRetention"]["mode"], "compliance");
            assert_eq!(value["defaultRetention"]["period"]["duration"], 7);
        }
    }
}

#[test]
fn absent_removes_what_null_would_null() {
    let out = shaped("b2_get_file_info", locked_upload(), &[Variant::Absent], 9);
    let f = out.as_object().unwrap();
    for key in ["uploadTimestamp", "contentSha1", "serverSideEncryption"] {
        assert!(!f.contains_key(key), "{key}: {out}");
    }
    assert!(f.contains_key("fileInfo"), "stored info stays: {out}");
    assert_eq!(out["fileRetention"]["value"]["mode"], "governance");
    assert_eq!(out["fileId"], "4_zb1_f0001");
}

#[test]
fn null_and_absent_together_take_both_shapes() {
    let (mut nulls, mut gone) = (0, 0);
    for seed in 0..40 {
        let out = shaped(
            "b2_get_file_info",
            locked_upload(),
            &[Variant::Null, Variant::Absent],
            seed,
        );
        match out.get("uploadTimestamp") {
            Some(Value::Null) => nulls += 1,
            None => gone += 1,
            Some(other) => panic!("uploadTimestamp kept: {other}"),
        }
    }
    assert!(nulls > 0 && gone > 0, "{nulls} null, {gone} absent");
}

#[test]
fn extra_fields_go_everywhere_but_into_the_customers_maps() {
    let out = shaped("b2_list_file_versions", listing(), &[Variant::Extra], 5);
    assert!(out.get("emuExtraField0").is_some());
    let f = &out["files"][0];
    assert!(f.get("emuExtraField0").is_some());
    assert!(f["fileRetention"].get("emuExtraField0").is_some());
    assert!(f["fileRetention"]["value"].get("emuExtraField0").is_some());
    assert_eq!(
        f["fileInfo"],
        json!({"src_last_modified_millis": "1700000000000"})
    );
    assert_eq!(meaning(&out), meaning(&listing()));
}

#[test]
fn unknown_enums_change_names_not_what_is_stored() {
    let (mut copies, mut missing) = (0, 0);
    for seed in 0..40 {
        let out = shaped(
            "b2_list_file_versions",
            listing(),
            &[Variant::UnknownEnum],
            seed,
        );
        match out["files"][0].get("action").and_then(Value::as_str) {
            Some("copy") => copies += 1,
            None => missing += 1,
            other => panic!("action {other:?}"),
        }
        // Hide markers and unfinished files keep what they are.
        assert_eq!(out["files"][2]["action"], "hide");
        assert_eq!(out["files"][3]["action"], "start");
        let mode = out["files"][0]["fileRetention"]["value"]["mode"]
            .as_str()
            .unwrap();
        assert!(!["governance", "compliance"].contains(&mode), "{mode}");
        assert_eq!(
            out["files"][1]["fileRetention"]["value"]["mode"],
            Value::Null
        );
        let algorithm = &out["files"][0]["serverSideEncryption"]["algorithm"];
        assert_ne!(algorithm, "AES256");
        assert_eq!(out["files"][0]["serverSideEncryption"]["mode"], "SSE-B2");
        assert_eq!(meaning(&out), meaning(&listing()));
    }
    assert!(copies > 0 && missing > 0);
    let out = shaped("b2_list_buckets", bucket(), &[Variant::UnknownEnum], 1);
    let kind = out["buckets"][0]["bucketType"].as_str().unwrap();
    assert!(!kind.starts_with("all"), "{kind}");
    assert_eq!(out["buckets"][0]["options"].as_array().unwrap().len(), 2);
}

#[test]
fn v1_size_names_lengths_size_in_listings_only() {
    let out = shaped("b2_list_file_versions", listing(), &[Variant::V1Size], 1);
    for f in out["files"].as_array().unwrap() {
        assert!(
            f.get("contentLength").is_none() && f.get("size").is_some(),
            "{f}"
        );
    }
    assert_eq!(meaning(&out), meaning(&listing()));
    let out = shaped("b2_get_file_info", locked_upload(), &[Variant::V1Size], 1);
    assert_eq!(out["contentLength"], 1234);
}

#[test]
fn every_variant_together_keeps_the_meaning_and_repeats_with_its_seed() {
    let all = Variant::ALL;
    for seed in 0..20 {
        let out = shaped("b2_list_file_versions", listing(), &all, seed);
        let m = meaning(&out);
        let canonical = meaning(&listing());
        for (got, want) in m.iter().zip(&canonical) {
            assert_eq!((&got.0, &got.1, got.2), (&want.0, &want.1, want.2));
            assert!(got.3.is_none() || got.3 == want.3);
            assert!(got.4.is_none() || got.4 == want.4);
        }
        assert_eq!(out, shaped("b2_list_file_versions", listing(), &all, seed));
    }
}

#[test]
fn rules_parse_from_the_command_line() {
    let r: VariantRule = "null,extra@42".parse().unwrap();
    assert_eq!(
        (r.call.as_str(), r.variants, r.seed),
        ("*", vec![Variant::Null, Variant::Extra], 42)
    );
    let r: VariantRule = "b2_list_file_versions=v1_size".parse().unwrap();
    assert_eq!(r.call, "b2_list_file_versions");
    assert_eq!(r.seed, 0);
    assert!("nul".parse::<VariantRule>().is_err());
    assert!("null@x".parse::<VariantRule>().is_err());
}
