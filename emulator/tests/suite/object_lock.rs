//! Object Lock as B2 does it: bucket settings, per-version retention and legal hold, the
//! capabilities, locked deletes refused with 403 `access_denied`, persistence.

use b2_emulator::{Config, Emulator, KeySpec};
use serde_json::{json, Value};

use crate::common::*;

const LOCKED: &str = "locked-bucket";
const DAY_MS: u64 = 86_400_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn locked_bucket(b2: &B2) -> String {
    let v = b2.ok(
        "b2_create_bucket",
        json!({"accountId": b2.account_id, "bucketName": LOCKED, "bucketType": "allPrivate",
               "fileLockEnabled": true}),
    );
    v["bucketId"].as_str().unwrap().to_owned()
}

fn add_key(emu: &Emulator, id: &str, caps: &[&str]) -> B2 {
    emu.add_key(KeySpec {
        key_id: id.to_owned(),
        application_key: format!("{id}-secret"),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        bucket: None,
        name_prefix: None,
    });
    B2::login(emu.url(), id, &format!("{id}-secret"))
}

fn upload_locked(b2: &B2, bucket_id: &str, name: &str, mode: &str, until: u64) -> (u16, Value) {
    let (url, token) = b2.upload_url(bucket_id);
    let until = until.to_string();
    upload_to(
        &url,
        &token,
        name,
        name.as_bytes(),
        &[
            ("X-Bz-File-Retention-Mode", mode),
            ("X-Bz-File-Retention-Retain-Until-Timestamp", &until),
        ],
    )
}

fn delete(b2: &B2, v: &Value, bypass: bool) -> (u16, Value) {
    b2.call(
        "b2_delete_file_version",
        json!({"fileName": v["fileName"], "fileId": v["fileId"], "bypassGovernance": bypass}),
    )
}

#[test]
fn bucket_lock_settings_are_kept_shown_to_readers_and_never_turned_off() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = b2.account_id.clone();
    let id = locked_bucket(&b2);
    let v = b2.ok(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id,
               "defaultRetention": {"mode": "governance", "period": {"duration": 7, "unit": "days"}}}),
    );
    assert_eq!(
        v["fileLockConfiguration"],
        json!({"isClientAuthorizedToRead": true, "value": {"isFileLockEnabled": true,
            "defaultRetention": {"mode": "governance", "period": {"duration": 7, "unit": "days"}}}})
    );
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id, "fileLockEnabled": false}),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("file_lock_conflict")),
        "{v}"
    );
    // The read shape is not what b2_update_bucket takes.
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id,
               "fileLockConfiguration": {"value": {"isFileLockEnabled": true}}}),
    );
    assert_eq!(status, 400, "{v}");
    // A default retention needs Object Lock; 3,001 days is past B2's limit.
    let plain = b2.bucket_id(BUCKET);
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": plain,
               "defaultRetention": {"mode": "compliance", "period": {"duration": 1, "unit": "days"}}}),
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id,
               "defaultRetention": {"mode": "compliance", "period": {"duration": 3001, "unit": "days"}}}),
    );
    assert_eq!(status, 400, "{v}");
    // Without readBucketRetentions the settings are hidden; without writeBucketRetentions
    // they cannot be set.
    let reader = add_key(&emu, "no-bucket-lock", &["listBuckets", "writeBuckets"]);
    let v = reader.ok(
        "b2_list_buckets",
        json!({"accountId": acct, "bucketName": LOCKED}),
    );
    assert_eq!(
        v["buckets"][0]["fileLockConfiguration"],
        json!({"isClientAuthorizedToRead": false, "value": null})
    );
    let (status, v) = reader.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": plain, "fileLockEnabled": true}),
    );
    assert_eq!(status, 401, "{v}");
    let listed = b2.ok(
        "b2_list_buckets",
        json!({"accountId": acct, "bucketName": BUCKET}),
    );
    assert_eq!(
        listed["buckets"][0]["fileLockConfiguration"]["value"]["isFileLockEnabled"],
        false
    );
}

#[test]
fn locked_versions_refuse_deletes_and_governance_gives_way_only_to_bypass() {
    let emu = start();
    let b2 = B2::master(&emu);
    let id = locked_bucket(&b2);
    let until = now_ms() + DAY_MS;
    let (status, gov) = upload_locked(&b2, &id, "gov", "governance", until);
    assert_eq!(status, 200, "{gov}");
    assert_eq!(
        gov["fileRetention"],
        json!({"isClientAuthorizedToRead": true, "value": {"mode": "governance", "retainUntilTimestamp": until}})
    );
    let (_, comp) = upload_locked(&b2, &id, "comp", "compliance", until);
    let free = b2.upload_ok(&id, "free", b"free");
    let stored = emu.file_versions(LOCKED);
    let held: Vec<_> = stored
        .iter()
        .map(|v| {
            (
                v.file_name.as_str(),
                v.retention_mode.as_deref(),
                v.retain_until,
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            ("comp", Some("compliance"), Some(until)),
            ("free", None, None),
            ("gov", Some("governance"), Some(until)),
        ]
    );
    for v in [&gov, &comp] {
        let (status, answer) = delete(&b2, v, false);
        assert_eq!(
            (status, answer["code"].as_str()),
            (403, Some("access_denied")),
            "{answer}"
        );
    }
    // A key without bypassGovernance cannot bypass, even when it asks.
    let deleter = add_key(&emu, "deleter", &["deleteFiles", "listFiles"]);
    let (status, _) = delete(&deleter, &gov, true);
    assert_eq!(status, 403);
    // Compliance gives way to nobody.
    let (status, _) = delete(&b2, &comp, true);
    assert_eq!(status, 403);
    assert_eq!(emu.file_versions(LOCKED).len(), 3, "nothing was deleted");
    let (status, v) = delete(&b2, &gov, true);
    assert_eq!(status, 200, "{v}");
    let (status, v) = delete(&b2, &free, false);
    assert_eq!(status, 200, "{v}");
    let names: Vec<_> = emu
        .file_versions(LOCKED)
        .into_iter()
        .map(|v| v.file_name)
        .collect();
    assert_eq!(names, ["comp"]);
    assert_eq!(emu.counts().get("b2_delete_file_version"), 6);
}

#[test]
fn compliance_is_only_extended_and_governance_shortened_only_with_bypass() {
    let emu = start();
    let b2 = B2::master(&emu);
    let id = locked_bucket(&b2);
    let until = now_ms() + DAY_MS;
    let (_, comp) = upload_locked(&b2, &id, "comp", "compliance", until);
    let (_, gov) = upload_locked(&b2, &id, "gov", "governance", until);
    let update = |v: &Value, mode: Value, until: u64, bypass: bool| {
        b2.call(
            "b2_update_file_retention",
            json!({"fileName": v["fileName"], "fileId": v["fileId"], "bypassGovernance": bypass,
                   "fileRetention": {"mode": mode, "retainUntilTimestamp": until}}),
        )
    };
    for (mode, to, bypass) in [
        (json!("compliance"), until - 1000, true),
        (json!("governance"), until + DAY_MS, true),
        (json!(null), 0, true),
    ] {
        let (status, v) = update(&comp, mode, to, bypass);
        assert_eq!(
            (status, v["code"].as_str()),
            (403, Some("access_denied")),
            "{v}"
        );
    }
    let (status, v) = update(&comp, json!("compliance"), until + DAY_MS, false);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["fileRetention"]["retainUntilTimestamp"], until + DAY_MS);
    let (status, _) = update(&gov, json!("governance"), until - 1000, false);
    assert_eq!(status, 403);
    let (status, v) = update(&gov, json!("governance"), until - 1000, true);
    assert_eq!(status, 200, "{v}");
    // In the past is refused.
    let (status, _) = update(&gov, json!("governance"), now_ms() - 1000, true);
    assert_eq!(status, 400);
    let got: Vec<_> = emu
        .file_versions(LOCKED)
        .into_iter()
        .map(|v| (v.file_name, v.retain_until))
        .collect();
    assert_eq!(
        got,
        [
            ("comp".to_owned(), Some(until + DAY_MS)),
            ("gov".to_owned(), Some(until - 1000))
        ]
    );
}

#[test]
fn legal_hold_default_retention_and_expired_retention() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = b2.account_id.clone();
    let id = locked_bucket(&b2);
    let (url, token) = b2.upload_url(&id);
    let (status, held) = upload_to(
        &url,
        &token,
        "held",
        b"h",
        &[("X-Bz-File-Legal-Hold", "on")],
    );
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["legalHold"]["value"], "on");
    let (status, _) = delete(&b2, &held, true);
    assert_eq!(status, 403, "a legal hold is not bypassed");
    b2.ok(
        "b2_update_file_legal_hold",
        json!({"fileName": "held", "fileId": held["fileId"], "legalHold": "off"}),
    );
    assert_eq!(delete(&b2, &held, false).0, 200);

    b2.ok(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id,
               "defaultRetention": {"mode": "compliance", "period": {"duration": 2, "unit": "days"}}}),
    );
    let before = now_ms();
    let by_default = b2.upload_ok(&id, "default", b"d");
    let value = &by_default["fileRetention"]["value"];
    assert_eq!(value["mode"], "compliance");
    let until = value["retainUntilTimestamp"].as_u64().unwrap();
    assert!(
        until >= before + 2 * DAY_MS && until <= now_ms() + 2 * DAY_MS,
        "{value}"
    );
    assert_eq!(delete(&b2, &by_default, false).0, 403);
    // A retain-until in the past at upload is refused; set by the control API, it frees.
    let (status, _) = upload_locked(&b2, &id, "late", "governance", now_ms() - 1);
    assert_eq!(status, 400);
    let forced = emu.force_lock(
        LOCKED,
        "default",
        Some(json!({"mode": "compliance", "retainUntilTimestamp": now_ms() - 1})),
        None,
    );
    assert_eq!(forced.retention_mode.as_deref(), Some("compliance"));
    assert_eq!(delete(&b2, &by_default, false).0, 200);
    assert!(emu.file_versions(LOCKED).is_empty());
}

#[test]
fn keys_without_the_capabilities_neither_see_nor_set_locks() {
    let emu = start();
    let b2 = B2::master(&emu);
    let id = locked_bucket(&b2);
    let until = now_ms() + DAY_MS;
    let writer = add_key(
        &emu,
        "plain-writer",
        &["writeFiles", "listFiles", "readFiles"],
    );
    let (status, v) = upload_locked(&writer, &id, "x", "governance", until);
    assert_eq!(status, 401, "writeFileRetentions is needed: {v}");
    let plain = writer.upload_ok(&id, "plain", b"p");
    assert_eq!(
        plain["fileRetention"],
        json!({"isClientAuthorizedToRead": false, "value": null})
    );
    upload_locked(&b2, &id, "locked", "governance", until);
    let listed = writer.ok("b2_list_file_names", json!({"bucketId": id}));
    for f in listed["files"].as_array().unwrap() {
        assert_eq!(f["fileRetention"]["isClientAuthorizedToRead"], false, "{f}");
        assert_eq!(f["legalHold"]["value"], Value::Null, "{f}");
    }
    let listed = b2.ok("b2_list_file_names", json!({"bucketId": id}));
    assert_eq!(
        listed["files"][0]["fileRetention"]["value"]["mode"],
        "governance"
    );
    let (status, _) = writer.call(
        "b2_update_file_retention",
        json!({"fileName": "plain", "fileId": plain["fileId"],
               "fileRetention": {"mode": "governance", "retainUntilTimestamp": until}}),
    );
    assert_eq!(status, 401);
}

#[test]
fn a_large_file_is_locked_from_its_start_and_the_lock_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: Some(dir.path().to_owned()),
        ..config()
    };
    let until = now_ms() + DAY_MS;
    {
        let emu = Emulator::start(cfg.clone()).unwrap();
        let b2 = B2::master(&emu);
        let id = locked_bucket(&b2);
        let started = b2.ok(
            "b2_start_large_file",
            json!({"bucketId": id, "fileName": "big", "contentType": "b2/x-auto",
                   "fileRetention": {"mode": "compliance", "retainUntilTimestamp": until}}),
        );
        assert_eq!(started["fileRetention"]["value"]["mode"], "compliance");
        let file_id = started["fileId"].as_str().unwrap().to_owned();
        let (a, b) = (content(2000, 1), content(500, 2));
        assert_eq!(b2.upload_part(&file_id, 1, &a).0, 200);
        assert_eq!(b2.upload_part(&file_id, 2, &b).0, 200);
        let done = b2.ok(
            "b2_finish_large_file",
            json!({"fileId": file_id, "partSha1Array": [sha1_hex(&a), sha1_hex(&b)]}),
        );
        assert_eq!(
            done["fileRetention"]["value"]["retainUntilTimestamp"],
            until
        );
        assert_eq!(delete(&b2, &done, true).0, 403);
        emu.stop();
    }
    let emu = Emulator::start(cfg).unwrap();
    let got: Vec<_> = emu
        .file_versions(LOCKED)
        .into_iter()
        .map(|v| (v.file_name, v.action, v.retention_mode, v.retain_until))
        .collect();
    assert_eq!(
        got,
        [(
            "big".to_owned(),
            "upload".to_owned(),
            Some("compliance".to_owned()),
            Some(until)
        )]
    );
    let b2 = B2::master(&emu);
    let listed = b2.ok(
        "b2_list_buckets",
        json!({"accountId": b2.account_id, "bucketName": LOCKED}),
    );
    assert_eq!(
        listed["buckets"][0]["fileLockConfiguration"]["value"]["isFileLockEnabled"],
        true
    );
}

#[test]
fn the_control_api_sets_bucket_and_version_locks_over_http() {
    let emu = start();
    let b2 = B2::master(&emu);
    let control = |path: &str, body: Value| {
        status_json(
            http()
                .post(format!("{}/__emulator/{path}", emu.url()))
                .json(&body)
                .send()
                .unwrap(),
        )
    };
    let (status, v) = control(
        &format!("buckets/{BUCKET}"),
        json!({"fileLockEnabled": true,
               "defaultRetention": {"mode": "governance", "period": {"duration": 1, "unit": "days"}}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["fileLockConfiguration"]["value"]["isFileLockEnabled"],
        true
    );
    let id = b2.bucket_id(BUCKET);
    let up = b2.upload_ok(&id, "f", b"f");
    assert_eq!(up["fileRetention"]["value"]["mode"], "governance");
    let (status, v) = control(
        "lock",
        json!({"bucket": BUCKET, "fileName": "f", "legalHold": "on",
               "fileRetention": {"mode": null}}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["retention_mode"].clone(), v["legal_hold"].clone()),
        (Value::Null, json!(true))
    );
    assert_eq!(delete(&b2, &up, true).0, 403, "held");
    let (status, _) = control(
        "lock",
        json!({"bucket": BUCKET, "fileName": "f", "legalHold": "off"}),
    );
    assert_eq!(status, 200);
    assert_eq!(delete(&b2, &up, false).0, 200);
    let (status, _) = control(
        "lock",
        json!({"bucket": BUCKET, "fileName": "missing", "legalHold": "on"}),
    );
    assert_eq!(status, 404);
    // Once on, still never off.
    let (status, v) = control(
        &format!("buckets/{BUCKET}"),
        json!({"fileLockEnabled": false}),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("file_lock_conflict")),
        "{v}"
    );
}

#[test]
fn a_locked_encrypted_version_keeps_both_through_a_restart() {
    use base64::Engine as _;
    use md5::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        data_dir: Some(dir.path().to_owned()),
        ..config()
    };
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let customer_key = [7u8; 32];
    let (k, md5) = (b64(&customer_key), b64(&md5::Md5::digest(customer_key)));
    let until = now_ms() + DAY_MS;
    {
        let emu = Emulator::start(cfg.clone()).unwrap();
        let b2 = B2::master(&emu);
        let id = locked_bucket(&b2);
        // Set one after the other: each bucket record must carry the other setting.
        emu.set_default_encryption(LOCKED, Some(b2_emulator::Sse::B2));
        emu.configure_object_lock(
            LOCKED,
            json!({"defaultRetention": {"mode": "governance", "period": {"duration": 1, "unit": "days"}}}),
        );
        let (url, token) = b2.upload_url(&id);
        let until_s = until.to_string();
        let (status, v) = upload_to(
            &url,
            &token,
            "both",
            b"data",
            &[
                ("X-Bz-File-Retention-Mode", "compliance"),
                ("X-Bz-File-Retention-Retain-Until-Timestamp", &until_s),
                ("X-Bz-Server-Side-Encryption-Customer-Algorithm", "AES256"),
                ("X-Bz-Server-Side-Encryption-Customer-Key", &k),
                ("X-Bz-Server-Side-Encryption-Customer-Key-Md5", &md5),
            ],
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["serverSideEncryption"]["mode"], "SSE-C", "{v}");
        assert_eq!(v["fileRetention"]["value"]["mode"], "compliance", "{v}");
        emu.stop();
    }
    let emu = Emulator::start(cfg).unwrap();
    let stored = emu.file_versions(LOCKED);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].encryption,
        Some(b2_emulator::Sse::C {
            key_md5: md5.clone()
        })
    );
    assert_eq!(
        (stored[0].retention_mode.as_deref(), stored[0].retain_until),
        (Some("compliance"), Some(until))
    );
    let b2 = B2::master(&emu);
    let listed = b2.ok(
        "b2_list_buckets",
        json!({"accountId": b2.account_id, "bucketName": LOCKED}),
    );
    let bucket = &listed["buckets"][0];
    assert_eq!(
        bucket["defaultServerSideEncryption"]["value"]["mode"], "SSE-B2",
        "{bucket}"
    );
    assert_eq!(
        bucket["fileLockConfiguration"]["value"]["defaultRetention"]["mode"], "governance",
        "{bucket}"
    );
    let files = b2.ok(
        "b2_list_file_versions",
        json!({"bucketId": bucket["bucketId"]}),
    );
    assert_eq!(delete(&b2, &files["files"][0], true).0, 403);
    // A later upload that names nothing gets both bucket defaults.
    let v = b2.upload_ok(bucket["bucketId"].as_str().unwrap(), "later", b"x");
    assert_eq!(v["serverSideEncryption"]["mode"], "SSE-B2", "{v}");
    assert_eq!(v["fileRetention"]["value"]["mode"], "governance", "{v}");
}

#[test]
fn a_bucket_with_object_lock_holds_file_name_and_info_to_2048_bytes() {
    let emu = start();
    let b2 = B2::master(&emu);
    let locked = locked_bucket(&b2);
    let plain = b2.bucket_id(BUCKET);
    // 1,000 bytes of name and 1,100 of info: within 7,000, over 2,048.
    let name = "n".repeat(1000);
    let info = "v".repeat(1096);
    let headers = [("X-Bz-Info-note", info.as_str())];
    let (url, token) = b2.upload_url(&locked);
    let (status, v) = upload_to(&url, &token, &name, b"x", &headers);
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("2048"), "{v}");
    let (status, v) = b2.call(
        "b2_start_large_file",
        json!({"bucketId": locked, "fileName": name, "contentType": "b2/x-auto",
               "fileInfo": {"note": info}}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(emu.file_versions(LOCKED).is_empty());
    let (url, token) = b2.upload_url(&plain);
    let (status, v) = upload_to(&url, &token, &name, b"x", &headers);
    assert_eq!(
        status, 200,
        "the same file fits a bucket without Object Lock: {v}"
    );
}
