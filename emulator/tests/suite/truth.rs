//! The emulator tells the truth: calls it does not serve, settings it cannot honour and
//! what B2 itself refuses all get a B2-shaped error that names them.

use serde_json::{json, Value};

use crate::common::*;

/// Asserts a 400 whose message names `what`.
fn refused(status: u16, v: &Value, what: &str) {
    assert_eq!(status, 400, "{what}: {v}");
    let message = v["message"].as_str().unwrap_or("");
    assert!(message.contains(what), "message should name {what}: {v}");
}

#[test]
fn calls_b2_has_but_the_emulator_does_not_serve_name_themselves() {
    let emu = start();
    let b2 = B2::master(&emu);
    for call in [
        "b2_create_key",
        "b2_list_keys",
        "b2_get_download_authorization",
    ] {
        let (status, v) = b2.call(call, json!({}));
        refused(status, &v, call);
        assert_eq!(v["code"], "unsupported", "{call}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains("not implemented"),
            "{v}"
        );
        assert_eq!(emu.counts().get(call), 1, "{call} is counted");
    }
    // A name B2 does not have is still no endpoint at all.
    let (status, v) = b2.call("b2_no_such_call", json!({}));
    assert_eq!(status, 404, "{v}");
}

#[test]
fn the_master_key_advertises_only_what_implemented_calls_back() {
    let emu = start();
    let (status, v) = authorize_raw(emu.url(), emu.account_id(), emu.application_key(), 4);
    assert_eq!(status, 200);
    let mut caps: Vec<String> = v["apiInfo"]["storageApi"]["allowed"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    caps.sort();
    assert_eq!(
        caps,
        [
            "bypassGovernance",
            "deleteBuckets",
            "deleteFiles",
            "listBuckets",
            "listFiles",
            "readBucketEncryption",
            "readBucketRetentions",
            "readFileLegalHolds",
            "readFileRetentions",
            "readFiles",
            "writeBucketEncryption",
            "writeBucketRetentions",
            "writeBuckets",
            "writeFileLegalHolds",
            "writeFileRetentions",
            "writeFiles"
        ]
    );
}

#[test]
fn retention_and_legal_hold_on_a_bucket_without_object_lock_are_refused_and_nothing_stored() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let until = "4102444800000";
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("X-Bz-File-Retention-Mode", "governance"),
                ("X-Bz-File-Retention-Retain-Until-Timestamp", until),
            ],
            "Object Lock",
        ),
        (
            &[("X-Bz-File-Retention-Retain-Until-Timestamp", until)],
            "X-Bz-File-Retention-Mode",
        ),
        (&[("X-Bz-File-Legal-Hold", "on")], "Object Lock"),
    ];
    for (headers, what) in cases {
        let (status, v) = upload_to(&url, &token, "locked", b"data", headers);
        refused(status, &v, what);
    }
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn large_file_retention_and_legal_hold_on_a_bucket_without_object_lock_are_refused() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let base = json!({"bucketId": bucket_id, "fileName": "big", "contentType": "b2/x-auto"});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (field, value, what) in [
        (
            "fileRetention",
            json!({"mode": "compliance", "retainUntilTimestamp": 4102444800000u64}),
            "Object Lock",
        ),
        ("legalHold", json!("on"), "Object Lock"),
    ] {
        let (status, v) = b2.call("b2_start_large_file", with(field, value));
        refused(status, &v, what);
    }
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
    b2.ok(
        "b2_start_large_file",
        with("fileRetention", json!({"mode": null})),
    );
}

#[test]
fn if_revision_is_is_honoured() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = b2.account_id.clone();
    let id = b2.bucket_id(BUCKET);
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id, "bucketType": "allPublic", "ifRevisionIs": 7}),
    );
    assert_eq!(status, 409, "stale ifRevisionIs: {v}");
    let v = b2.ok(
        "b2_list_buckets",
        json!({"accountId": acct, "bucketName": BUCKET}),
    );
    assert_eq!(v["buckets"][0]["bucketType"], "allPrivate");
    let v = b2.ok(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id, "bucketType": "allPublic", "ifRevisionIs": 1}),
    );
    assert_eq!(v["revision"], 2);
    assert_eq!(v["bucketType"], "allPublic");
}

#[test]
fn lifecycle_rules_are_validated_as_b2_does() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = b2.account_id.clone();
    let id = b2.bucket_id(BUCKET);
    let update = |rules: Value| {
        b2.call(
            "b2_update_bucket",
            json!({"accountId": acct, "bucketId": id, "lifecycleRules": rules}),
        )
    };
    let rule = |prefix: &str| json!({"fileNamePrefix": prefix, "daysFromHidingToDeleting": 1});
    for (rules, what) in [
        (json!([rule("logs/"), rule("logs/old/")]), "logs/"),
        (json!([rule("a"), rule("a")]), "\"a\""),
        (json!([rule(""), rule("photos/")]), "photos/"),
        (
            json!([{"fileNamePrefix": "x/", "daysFromHidingToDeleting": null,
                    "daysFromUploadingToHiding": null}]),
            "does nothing",
        ),
        (json!([{"daysFromHidingToDeleting": 1}]), "fileNamePrefix"),
    ] {
        let (status, v) = update(rules);
        refused(status, &v, what);
    }
    let hundred_and_one: Vec<Value> = (0..101).map(|i| rule(&format!("p{i:03}/"))).collect();
    let (status, v) = update(json!(hundred_and_one));
    refused(status, &v, "100");
    let hundred = &hundred_and_one[..100];
    let (status, v) = update(json!(hundred));
    assert_eq!(status, 200, "{v}");
    let (status, v) = update(json!([
        {"fileNamePrefix": "tmp/", "daysFromStartingToCancelingUnfinishedLargeFiles": 2}
    ]));
    assert_eq!(status, 200, "{v}");
    // The control API follows the same rules.
    let rejected = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        emu.update_bucket(BUCKET, None, Some(json!([rule("q/"), rule("q/r")])))
    }));
    assert!(rejected.is_err(), "overlapping rules via update_bucket");
}

#[test]
fn bucket_info_holds_at_most_10_entries() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = b2.account_id.clone();
    let info = |n: usize| -> Value {
        (0..n)
            .map(|i| (format!("k{i}"), json!("v")))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let (status, v) = b2.call(
        "b2_create_bucket",
        json!({"accountId": acct, "bucketName": "info-bucket", "bucketType": "allPrivate", "bucketInfo": info(11)}),
    );
    refused(status, &v, "bucketInfo");
    let v = b2.ok(
        "b2_create_bucket",
        json!({"accountId": acct, "bucketName": "info-bucket", "bucketType": "allPrivate", "bucketInfo": info(10)}),
    );
    let id = v["bucketId"].as_str().unwrap();
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id, "bucketInfo": info(11)}),
    );
    refused(status, &v, "bucketInfo");
}

#[test]
fn only_b2s_own_b2_file_info_names_are_accepted() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let (status, v) = upload_to(&url, &token, "r", b"r", &[("X-Bz-Info-b2-secret", "x")]);
    refused(status, &v, "b2-secret");
    let (status, v) = b2.call(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "l", "contentType": "b2/x-auto",
               "fileInfo": {"b2-whatever": "x"}}),
    );
    refused(status, &v, "b2-whatever");
    let (status, v) = upload_to(
        &url,
        &token,
        "cached",
        b"cached",
        &[("X-Bz-Info-b2-cache-control", "max-age%3D60")],
    );
    assert_eq!(status, 200, "{v}");
    let resp = b2.download(BUCKET, "cached");
    assert_eq!(resp.headers()["cache-control"], "max-age=60");
    // B2 allows more than letters, digits and -_. in info names.
    let (status, v) = upload_to(
        &url,
        &token,
        "odd",
        b"odd",
        &[("X-Bz-Info-a~b", "1"), ("X-Bz-Info-c!d", "2")],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["fileInfo"]["a~b"], "1");
    assert_eq!(emu.file_versions(BUCKET).len(), 2);
}

#[test]
fn headers_b2_forbids_on_upload_file_are_refused() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    for (header, value) in [
        ("Content-Disposition", "attachment"),
        ("Content-Encoding", "gzip"),
        ("Content-Language", "en"),
        ("Content-Location", "/elsewhere"),
        ("Content-Range", "bytes 0-3/4"),
        ("Expires", "Thu, 01 Dec 2044 16:00:00 GMT"),
    ] {
        let (status, v) = upload_to(&url, &token, "h", b"data", &[(header, value)]);
        refused(status, &v, header);
    }
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn an_unsatisfiable_range_says_the_size() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    b2.upload_ok(&bucket_id, "ten", b"0123456789");
    let resp = http()
        .get(format!("{}/file/{BUCKET}/ten", emu.url()))
        .header("Authorization", &b2.token)
        .header("Range", "bytes=10-")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */10");
}
