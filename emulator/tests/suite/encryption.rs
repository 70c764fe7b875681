//! Server-side encryption as B2 does it: SSE-B2 and SSE-C on uploads, parts, large-file
//! starts and downloads; the customer key's MD5 checked; a download without the key, or
//! with another one, refused with 403 `access_denied`; the mode shown in file info and
//! listings; the bucket's default; and the key never kept, only its MD5.

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::common::*;
use b2_emulator::{Emulator, Sse};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A customer key (base64) and its MD5 (base64).
fn key(seed: u8) -> (String, String) {
    let raw = [seed; 32];
    (b64(&raw), b64(&Md5::digest(raw)))
}

fn sse_c_headers<'a>(key: &'a str, md5: &'a str) -> [(&'static str, &'a str); 3] {
    [
        ("X-Bz-Server-Side-Encryption-Customer-Algorithm", "AES256"),
        ("X-Bz-Server-Side-Encryption-Customer-Key", key),
        ("X-Bz-Server-Side-Encryption-Customer-Key-Md5", md5),
    ]
}

fn download_with(
    emu: &Emulator,
    b2: &B2,
    name: &str,
    extra: &[(&str, &str)],
) -> reqwest::blocking::Response {
    let mut req = http()
        .get(format!("{}/file/{BUCKET}/{}", emu.url(), encode(name)))
        .header("Authorization", &b2.token);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().unwrap()
}

fn journal(emu: &Emulator) -> String {
    std::fs::read_to_string(emu.data_dir().join("journal.jsonl")).unwrap()
}

#[test]
fn an_sse_c_upload_needs_its_key_to_be_read_and_only_the_md5_is_kept() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let (k, md5) = key(1);
    let data = content(3000, 1);
    let (status, v) = upload_to(&url, &token, "secret", &data, &sse_c_headers(&k, &md5));
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["serverSideEncryption"],
        json!({"algorithm": "AES256", "mode": "SSE-C"})
    );
    let stored = emu.file_versions(BUCKET);
    assert_eq!(
        stored[0].encryption,
        Some(Sse::C {
            key_md5: md5.clone()
        })
    );

    // With the key: the bytes, and the mode in the headers.
    let resp = download_with(&emu, &b2, "secret", &sse_c_headers(&k, &md5));
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(
        h["x-bz-server-side-encryption-customer-algorithm"],
        "AES256"
    );
    assert_eq!(
        h["x-bz-server-side-encryption-customer-key-md5"],
        md5.as_str()
    );
    assert_eq!(resp.bytes().unwrap().as_ref(), &data[..]);
    // A range needs it too.
    let mut ranged = sse_c_headers(&k, &md5).to_vec();
    ranged.push(("Range", "bytes=10-19"));
    let resp = download_with(&emu, &b2, "secret", &ranged);
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().unwrap().as_ref(), &data[10..20]);

    // Without it, or with another key: 403 access_denied, no bytes.
    let (other, other_md5) = key(2);
    for headers in [vec![], sse_c_headers(&other, &other_md5).to_vec()] {
        let (status, v) = status_json(download_with(&emu, &b2, "secret", &headers));
        assert_eq!(status, 403, "{v}");
        assert_eq!(v["code"], "access_denied", "{v}");
    }
    let (status, _) = status_json(download_with(
        &emu,
        &b2,
        "secret",
        &[("Range", "bytes=0-9")],
    ));
    assert_eq!(status, 403);

    // Listings and file info show the mode, never a key.
    let listed = b2.ok(
        "b2_list_file_names",
        json!({"bucketId": bucket_id, "prefix": ""}),
    );
    assert_eq!(listed["files"][0]["serverSideEncryption"]["mode"], "SSE-C");
    let info = b2.ok(
        "b2_get_file_info",
        json!({"fileId": stored[0].file_id.clone()}),
    );
    assert_eq!(info["serverSideEncryption"]["mode"], "SSE-C");
    assert!(!info.to_string().contains(&k));
    let journal = journal(&emu);
    assert!(journal.contains(&md5), "the journal keeps the MD5");
    assert!(!journal.contains(&k), "the journal never keeps the key");
}

#[test]
fn a_wrong_md5_or_a_short_key_is_refused_and_nothing_is_stored() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let (k, _) = key(3);
    let (_, other_md5) = key(4);
    let (status, v) = upload_to(&url, &token, "f", b"data", &sse_c_headers(&k, &other_md5));
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("MD5"), "{v}");
    let short = b64(&[5u8; 16]);
    let short_md5 = b64(&Md5::digest([5u8; 16]));
    let (status, v) = upload_to(
        &url,
        &token,
        "f",
        b"data",
        &sse_c_headers(&short, &short_md5),
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = upload_to(
        &url,
        &token,
        "f",
        b"data",
        &[("X-Bz-Server-Side-Encryption", "NONE")],
    );
    assert_eq!(status, 400, "{v}");
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn an_sse_c_large_file_takes_the_same_key_on_every_part() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (k, md5) = key(6);
    let v = b2.ok(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "big", "contentType": "b2/x-auto",
               "serverSideEncryption": {"mode": "SSE-C", "algorithm": "AES256",
                                        "customerKey": k, "customerKeyMd5": md5}}),
    );
    assert_eq!(v["serverSideEncryption"]["mode"], "SSE-C");
    let file_id = v["fileId"].as_str().unwrap().to_owned();
    assert!(!journal(&emu).contains(&k));
    let parts = [content(1000, 7), content(1000, 8)];
    let (url, token) = b2.part_url(&file_id);
    let send = |number: u32, data: &[u8], extra: &[(&str, &str)]| {
        let mut req = http()
            .post(&url)
            .header("Authorization", &token)
            .header("X-Bz-Part-Number", number.to_string())
            .header("X-Bz-Content-Sha1", sha1_hex(data));
        for (h, v) in extra {
            req = req.header(*h, *v);
        }
        status_json(req.body(data.to_vec()).send().unwrap())
    };
    // No key, another key: refused, nothing kept.
    let (status, v) = send(1, &parts[0], &[]);
    assert_eq!(status, 400, "{v}");
    let (other, other_md5) = key(9);
    let (status, v) = send(1, &parts[0], &sse_c_headers(&other, &other_md5));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not the one"),
        "{v}"
    );
    let listed = b2.ok("b2_list_parts", json!({"fileId": file_id}));
    assert_eq!(listed["parts"], json!([]));
    // The same key: taken.
    let mut sha1s = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let (status, v) = send(i as u32 + 1, data, &sse_c_headers(&k, &md5));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["serverSideEncryption"]["mode"], "SSE-C");
        sha1s.push(sha1_hex(data));
    }
    let v = b2.ok(
        "b2_finish_large_file",
        json!({"fileId": file_id, "partSha1Array": sha1s}),
    );
    assert_eq!(v["serverSideEncryption"]["mode"], "SSE-C");
    let stored = emu.file_versions(BUCKET);
    assert_eq!(
        stored[0].encryption,
        Some(Sse::C {
            key_md5: md5.clone()
        })
    );
    let resp = download_with(&emu, &b2, "big", &sse_c_headers(&k, &md5));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().len(), 2000);
    let (status, _) = status_json(download_with(&emu, &b2, "big", &[]));
    assert_eq!(status, 403);
}

#[test]
fn sse_b2_on_an_upload_a_large_file_or_as_the_bucket_default() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = b2.account_id.clone();
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let (status, v) = upload_to(
        &url,
        &token,
        "b2",
        b"data",
        &[("X-Bz-Server-Side-Encryption", "AES256")],
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["serverSideEncryption"],
        json!({"algorithm": "AES256", "mode": "SSE-B2"})
    );
    let resp = b2.download(BUCKET, "b2");
    assert_eq!(resp.headers()["x-bz-server-side-encryption"], "AES256");
    let plain = b2.upload_ok(&bucket_id, "plain", b"plain");
    assert_eq!(plain["serverSideEncryption"]["mode"], Value::Null);
    let v = b2.ok(
        "b2_start_large_file",
        json!({"bucketId": bucket_id, "fileName": "big", "contentType": "b2/x-auto",
               "serverSideEncryption": {"mode": "SSE-B2", "algorithm": "AES256"}}),
    );
    assert_eq!(v["serverSideEncryption"]["mode"], "SSE-B2");

    // The bucket's default applies to what asks for nothing.
    let v = b2.ok(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": bucket_id,
               "defaultServerSideEncryption": {"mode": "SSE-B2", "algorithm": "AES256"}}),
    );
    assert_eq!(
        v["defaultServerSideEncryption"],
        json!({"isClientAuthorizedToRead": true, "value": {"algorithm": "AES256", "mode": "SSE-B2"}})
    );
    let v = b2.upload_ok(&bucket_id, "by-default", b"x");
    assert_eq!(v["serverSideEncryption"]["mode"], "SSE-B2");
    // SSE-C cannot be a default.
    let (k, md5) = key(1);
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": bucket_id,
               "defaultServerSideEncryption": {"mode": "SSE-C", "algorithm": "AES256",
                                               "customerKey": k, "customerKeyMd5": md5}}),
    );
    assert_eq!(status, 400, "{v}");
    let v = b2.ok(
        "b2_create_bucket",
        json!({"accountId": acct, "bucketName": "sse-bucket", "bucketType": "allPrivate",
               "defaultServerSideEncryption": {"mode": "SSE-B2", "algorithm": "AES256"}}),
    );
    assert_eq!(v["defaultServerSideEncryption"]["value"]["mode"], "SSE-B2");
    // Cleared again with mode null.
    let v = b2.ok(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": bucket_id,
               "defaultServerSideEncryption": {"mode": null}}),
    );
    assert_eq!(
        v["defaultServerSideEncryption"]["value"]["mode"],
        Value::Null
    );
    let v = b2.upload_ok(&bucket_id, "after", b"x");
    assert_eq!(v["serverSideEncryption"]["mode"], Value::Null);
}

#[test]
fn the_bucket_default_is_read_and_written_only_with_the_capabilities() {
    let emu = start();
    emu.set_default_encryption(BUCKET, Some(Sse::B2));
    emu.add_key(b2_emulator::KeySpec {
        key_id: "plain-key".into(),
        application_key: "plain-key-secret".into(),
        capabilities: vec!["listBuckets".into(), "writeBuckets".into()],
        bucket: None,
        name_prefix: None,
    });
    let b2 = B2::login(emu.url(), "plain-key", "plain-key-secret");
    let v = b2.ok(
        "b2_list_buckets",
        json!({"accountId": b2.account_id.clone(), "bucketName": BUCKET}),
    );
    assert_eq!(
        v["buckets"][0]["defaultServerSideEncryption"],
        json!({"isClientAuthorizedToRead": false, "value": null})
    );
    let id = v["buckets"][0]["bucketId"].as_str().unwrap().to_owned();
    let (status, v) = b2.call(
        "b2_update_bucket",
        json!({"accountId": b2.account_id.clone(), "bucketId": id,
               "defaultServerSideEncryption": {"mode": null}}),
    );
    assert_eq!(status, 401, "{v}");
    // The master key sees it, and so does the control API.
    let master = B2::master(&emu);
    let v = master.ok(
        "b2_list_buckets",
        json!({"accountId": master.account_id.clone(), "bucketName": BUCKET}),
    );
    assert_eq!(
        v["buckets"][0]["defaultServerSideEncryption"]["value"]["mode"],
        "SSE-B2"
    );
    let resp = http()
        .post(format!("{}/__emulator/buckets/{BUCKET}", emu.url()))
        .body(json!({"defaultServerSideEncryption": {"mode": null}}).to_string())
        .send()
        .unwrap();
    let (status, v) = status_json(resp);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["defaultServerSideEncryption"]["value"]["mode"],
        Value::Null
    );
}

#[test]
fn encryption_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || b2_emulator::Config {
        data_dir: Some(dir.path().to_owned()),
        ..config()
    };
    let (k, md5) = key(11);
    {
        let emu = Emulator::start(config()).unwrap();
        emu.set_default_encryption(BUCKET, Some(Sse::B2));
        let b2 = B2::master(&emu);
        let bucket_id = b2.bucket_id(BUCKET);
        let (url, token) = b2.upload_url(&bucket_id);
        let (status, v) = upload_to(&url, &token, "c", b"data", &sse_c_headers(&k, &md5));
        assert_eq!(status, 200, "{v}");
        emu.stop();
    }
    let emu = Emulator::start(config()).unwrap();
    let b2 = B2::master(&emu);
    assert_eq!(
        emu.file_versions(BUCKET)[0].encryption,
        Some(Sse::C {
            key_md5: md5.clone()
        })
    );
    let (status, _) = status_json(download_with(&emu, &b2, "c", &[]));
    assert_eq!(status, 403);
    let resp = download_with(&emu, &b2, "c", &sse_c_headers(&k, &md5));
    assert_eq!(resp.bytes().unwrap().as_ref(), b"data");
    let v = b2.upload_ok(&b2.bucket_id(BUCKET), "later", b"x");
    assert_eq!(
        v["serverSideEncryption"]["mode"], "SSE-B2",
        "the default too"
    );
}
