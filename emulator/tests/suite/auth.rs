//! Authorization shapes, tokens, capabilities and key restrictions.

use std::time::Duration;

use b2_emulator::{Config, Emulator, KeySpec};
use serde_json::{json, Value};

use crate::common::*;

fn key(id: &str, caps: &[&str], bucket: Option<&str>, prefix: Option<&str>) -> KeySpec {
    KeySpec {
        key_id: id.to_owned(),
        application_key: format!("{id}-secret"),
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        bucket: bucket.map(str::to_owned),
        name_prefix: prefix.map(str::to_owned),
    }
}

const ALL_FILE_CAPS: &[&str] = &[
    "listBuckets",
    "listFiles",
    "readFiles",
    "writeFiles",
    "deleteFiles",
];

#[test]
fn authorize_answers_in_each_versions_shape() {
    let emu = start();
    let url = emu.url();
    for version in [1u8, 2] {
        let (status, v) = authorize_raw(url, "emu-account", "emu-application-key", version);
        assert_eq!(status, 200);
        assert_eq!(v["accountId"], "emu-account");
        assert_eq!(v["apiUrl"], url);
        assert_eq!(v["downloadUrl"], url);
        assert!(v["s3ApiUrl"].is_string());
        assert_eq!(v["recommendedPartSize"], 100_000_000);
        assert_eq!(v["absoluteMinimumPartSize"], 1000);
        assert_eq!(v["minimumPartSize"], 100_000_000);
        assert!(v["authorizationToken"].is_string());
        assert_eq!(v["allowed"]["bucketId"], Value::Null);
        assert_eq!(v["allowed"]["namePrefix"], Value::Null);
        let caps = v["allowed"]["capabilities"].as_array().unwrap();
        assert!(caps.contains(&json!("writeFiles")) && caps.contains(&json!("deleteFiles")));
    }
    let (status, v) = authorize_raw(url, "emu-account", "emu-application-key", 3);
    assert_eq!(status, 200);
    let api = &v["apiInfo"]["storageApi"];
    assert_eq!(api["apiUrl"], url);
    assert_eq!(api["downloadUrl"], url);
    assert_eq!(api["infoType"], "storageApi");
    assert_eq!(api["absoluteMinimumPartSize"], 1000);
    assert_eq!(api["bucketId"], Value::Null);
    assert!(api["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("listFiles")));
    assert!(v.get("apiUrl").is_none());

    // v4 by POST with an empty JSON object, as the b2 CLI does.
    let resp = http()
        .post(format!("{url}/b2api/v4/b2_authorize_account"))
        .basic_auth("emu-account", Some("emu-application-key"))
        .body("{}")
        .send()
        .unwrap();
    let (status, v) = status_json(resp);
    assert_eq!(status, 200, "{v}");
    let api = &v["apiInfo"]["storageApi"];
    assert_eq!(api["apiUrl"], url);
    assert_eq!(api["recommendedPartSize"], 100_000_000);
    assert_eq!(api["allowed"]["buckets"], Value::Null);
    assert!(api["allowed"]["capabilities"]
        .as_array()
        .unwrap()
        .contains(&json!("readFiles")));
}

#[test]
fn restricted_keys_report_their_bucket_and_prefix() {
    let mut config = config();
    config.keys = vec![key("rk", ALL_FILE_CAPS, Some(BUCKET), Some("pre/"))];
    let emu = Emulator::start(config).unwrap();
    let bucket_id = B2::master(&emu).bucket_id(BUCKET);
    let (_, v1) = authorize_raw(emu.url(), "rk", "rk-secret", 1);
    assert_eq!(v1["allowed"]["bucketId"], bucket_id.as_str());
    assert_eq!(v1["allowed"]["bucketName"], BUCKET);
    assert_eq!(v1["allowed"]["namePrefix"], "pre/");
    let (_, v3) = authorize_raw(emu.url(), "rk", "rk-secret", 3);
    assert_eq!(v3["apiInfo"]["storageApi"]["bucketId"], bucket_id.as_str());
    assert_eq!(v3["apiInfo"]["storageApi"]["namePrefix"], "pre/");
    let (_, v4) = authorize_raw(emu.url(), "rk", "rk-secret", 4);
    let allowed = &v4["apiInfo"]["storageApi"]["allowed"];
    assert_eq!(
        allowed["buckets"],
        json!([{"id": bucket_id, "name": BUCKET}])
    );
    assert_eq!(allowed["namePrefix"], "pre/");
    assert_eq!(allowed["capabilities"], json!(ALL_FILE_CAPS));
}

#[test]
fn wrong_credentials_are_unauthorized() {
    let emu = start();
    let (status, v) = authorize_raw(emu.url(), "emu-account", "wrong", 2);
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = authorize_raw(emu.url(), "nobody", "emu-application-key", 4);
    assert_eq!(status, 401);
    let resp = http()
        .get(format!("{}/b2api/v2/b2_authorize_account", emu.url()))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

#[test]
fn bad_and_misused_tokens_are_refused() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let forged = B2 {
        token: "4_acct_forged".to_owned(),
        ..B2::master(&emu)
    };
    let (status, v) = forged.call("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_auth_token")));
    let resp = http()
        .post(format!("{}/b2api/v2/b2_list_buckets", emu.url()))
        .json(&json!({"accountId": b2.account_id}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401, "missing Authorization");

    let (url_a, token_a) = b2.upload_url(&bucket_id);
    let (url_b, _token_b) = b2.upload_url(&bucket_id);
    // An upload token is not an account token...
    let as_account = B2 {
        token: token_a.clone(),
        ..B2::master(&emu)
    };
    let (status, v) = as_account.call("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_auth_token")));
    // ...an account token does not upload...
    let (status, v) = upload_to(&url_a, &b2.token, "x", b"data", &[]);
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_auth_token")));
    // ...and an upload token is only valid at its own URL.
    let (status, v) = upload_to(&url_b, &token_a, "x", b"data", &[]);
    assert_eq!((status, v["code"].as_str()), (401, Some("bad_auth_token")));
    let (status, _) = upload_to(&url_a, &token_a, "x", b"data", &[]);
    assert_eq!(status, 200);
    assert_eq!(emu.file_versions(BUCKET).len(), 1);
}

#[test]
fn tokens_expire_after_their_lifetime() {
    let lifetime = Duration::from_millis(500);
    let emu = Emulator::start(Config {
        token_lifetime: lifetime,
        ..config()
    })
    .unwrap();
    // Only a lower bound on time: however slow the machine, the token is past its
    // lifetime when used.
    let b2 = B2::master(&emu);
    std::thread::sleep(lifetime + Duration::from_millis(100));
    let (status, v) = b2.call("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("expired_auth_token"))
    );
}

#[test]
fn expired_tokens_are_refused_everywhere_and_new_ones_work() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    emu.expire_tokens();
    let (status, v) = b2.call("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("expired_auth_token"))
    );
    let (status, v) = upload_to(&url, &token, "late", b"data", &[]);
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("expired_auth_token"))
    );
    let resp = b2.download(BUCKET, "late");
    assert_eq!(resp.status().as_u16(), 401);
    // A fresh authorization works again, and so do its upload URLs.
    let b2 = B2::master(&emu);
    b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    b2.upload_ok(&bucket_id, "fresh", b"data");
}

#[test]
fn capabilities_are_enforced() {
    let mut config = config();
    config.keys = vec![
        key("lister", &["listBuckets", "listFiles"], None, None),
        key("reader", &["readFiles"], None, None),
        key("writer", &["listBuckets", "writeFiles"], None, None),
    ];
    let emu = Emulator::start(config).unwrap();
    let master = B2::master(&emu);
    let bucket_id = master.bucket_id(BUCKET);
    let uploaded = master.upload_ok(&bucket_id, "f.txt", b"hello");
    let file_id = uploaded["fileId"].as_str().unwrap();

    let lister = B2::login(emu.url(), "lister", "lister-secret");
    lister.ok("b2_list_file_names", json!({"bucketId": bucket_id}));
    for (call, body) in [
        ("b2_get_upload_url", json!({"bucketId": bucket_id})),
        (
            "b2_delete_file_version",
            json!({"fileName": "f.txt", "fileId": file_id}),
        ),
        (
            "b2_hide_file",
            json!({"bucketId": bucket_id, "fileName": "f.txt"}),
        ),
        ("b2_get_file_info", json!({"fileId": file_id})),
        (
            "b2_create_bucket",
            json!({"accountId": master.account_id, "bucketName": "another-one", "bucketType": "allPrivate"}),
        ),
        (
            "b2_start_large_file",
            json!({"bucketId": bucket_id, "fileName": "l", "contentType": "b2/x-auto"}),
        ),
    ] {
        let (status, v) = lister.call(call, body);
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{call}: {v}"
        );
    }
    assert_eq!(lister.download(BUCKET, "f.txt").status().as_u16(), 401);

    let reader = B2::login(emu.url(), "reader", "reader-secret");
    let (status, _) = reader.call("b2_list_file_names", json!({"bucketId": bucket_id}));
    assert_eq!(status, 401);
    let (status, _) = reader.call("b2_list_buckets", json!({"accountId": master.account_id}));
    assert_eq!(status, 401);
    let resp = reader.download(BUCKET, "f.txt");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), b"hello");
    reader.ok("b2_get_file_info", json!({"fileId": file_id}));

    let writer = B2::login(emu.url(), "writer", "writer-secret");
    writer.upload_ok(&bucket_id, "w.txt", b"w");
    let (status, _) = writer.call(
        "b2_delete_file_version",
        json!({"fileName": "f.txt", "fileId": file_id}),
    );
    assert_eq!(status, 401);
    assert_eq!(emu.file_versions(BUCKET).len(), 2);
}

#[test]
fn a_bucket_restricted_key_stays_in_its_bucket() {
    let mut config = config();
    config.buckets = vec![BUCKET.to_owned(), "other-bucket".to_owned()];
    config.keys = vec![key("one", ALL_FILE_CAPS, Some(BUCKET), None)];
    let emu = Emulator::start(config).unwrap();
    let master = B2::master(&emu);
    let mine = master.bucket_id(BUCKET);
    let other = master.bucket_id("other-bucket");
    master.upload_ok(&other, "secret.txt", b"s");

    let b2 = B2::login(emu.url(), "one", "one-secret");
    let (status, v) = b2.call("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("unauthorized")),
        "must name its bucket"
    );
    let v = b2.ok(
        "b2_list_buckets",
        json!({"accountId": b2.account_id, "bucketName": BUCKET}),
    );
    assert_eq!(v["buckets"].as_array().unwrap().len(), 1);
    b2.ok(
        "b2_list_buckets",
        json!({"accountId": b2.account_id, "bucketId": mine}),
    );
    let (status, _) = b2.call(
        "b2_list_buckets",
        json!({"accountId": b2.account_id, "bucketName": "other-bucket"}),
    );
    assert_eq!(status, 401);

    b2.upload_ok(&mine, "ok.txt", b"fine");
    for (call, body) in [
        ("b2_list_file_names", json!({"bucketId": other})),
        ("b2_list_file_versions", json!({"bucketId": other})),
        ("b2_get_upload_url", json!({"bucketId": other})),
        (
            "b2_hide_file",
            json!({"bucketId": other, "fileName": "secret.txt"}),
        ),
        (
            "b2_create_bucket",
            json!({"accountId": b2.account_id, "bucketName": "third-bucket", "bucketType": "allPrivate"}),
        ),
    ] {
        let (status, v) = b2.call(call, body);
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("unauthorized")),
            "{call}: {v}"
        );
    }
    assert_eq!(
        b2.download("other-bucket", "secret.txt").status().as_u16(),
        401
    );
    assert_eq!(b2.download(BUCKET, "ok.txt").status().as_u16(), 200);
}

#[test]
fn a_prefix_restricted_key_stays_under_its_prefix() {
    let mut config = config();
    config.keys = vec![key("pk", ALL_FILE_CAPS, Some(BUCKET), Some("allowed/"))];
    let emu = Emulator::start(config).unwrap();
    let master = B2::master(&emu);
    let bucket_id = master.bucket_id(BUCKET);
    master.upload_ok(&bucket_id, "other/y", b"y");

    let b2 = B2::login(emu.url(), "pk", "pk-secret");
    for prefix in ["", "other/", "allow"] {
        let (status, v) = b2.call(
            "b2_list_file_names",
            json!({"bucketId": bucket_id, "prefix": prefix}),
        );
        assert_eq!(
            (status, v["code"].as_str()),
            (401, Some("unauthorized")),
            "prefix {prefix:?}"
        );
    }
    let (status, _) = b2.call("b2_list_file_versions", json!({"bucketId": bucket_id}));
    assert_eq!(status, 401);
    let (status, _) = b2.call(
        "b2_list_unfinished_large_files",
        json!({"bucketId": bucket_id}),
    );
    assert_eq!(status, 401);
    b2.ok(
        "b2_list_file_names",
        json!({"bucketId": bucket_id, "prefix": "allowed/"}),
    );
    b2.ok(
        "b2_list_file_versions",
        json!({"bucketId": bucket_id, "prefix": "allowed/sub/"}),
    );

    let (status, v) = b2.upload(&bucket_id, "other/x", b"x");
    assert_eq!((status, v["code"].as_str()), (401, Some("unauthorized")));
    b2.upload_ok(&bucket_id, "allowed/x", b"x");
    assert_eq!(b2.download(BUCKET, "other/y").status().as_u16(), 401);
    assert_eq!(b2.download(BUCKET, "allowed/x").status().as_u16(), 200);
    let (status, _) = b2.call(
        "b2_hide_file",
        json!({"bucketId": bucket_id, "fileName": "other/y"}),
    );
    assert_eq!(status, 401);
    let (status, _) = b2.call(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "other/big", "contentType": "b2/x-auto"}),
    );
    assert_eq!(status, 401);
    let names: Vec<String> = emu
        .file_versions(BUCKET)
        .into_iter()
        .map(|v| v.file_name)
        .collect();
    assert_eq!(names, ["allowed/x", "other/y"]);
}
