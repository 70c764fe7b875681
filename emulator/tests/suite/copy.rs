//! Server-side copies: b2_copy_file and b2_copy_part, with Object Lock and SSE-C.

use base64::Engine;
use md5::{Digest, Md5};
use serde_json::json;

use crate::common::*;

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
        json!({"accountId": b2.account_id, "bucketName": "copy-locked", "bucketType": "allPrivate",
               "fileLockEnabled": true}),
    );
    v["bucketId"].as_str().unwrap().to_owned()
}

#[test]
fn a_copy_of_a_locked_version_is_a_new_version_with_its_own_lock() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket = locked_bucket(&b2);
    let (url, token) = b2.upload_url(&bucket);
    let until = (now_ms() + DAY_MS).to_string();
    let data = content(4000, 7);
    let (status, orig) = upload_to(
        &url,
        &token,
        "a.bin",
        &data,
        &[
            ("X-Bz-File-Retention-Mode", "compliance"),
            ("X-Bz-File-Retention-Retain-Until-Timestamp", &until),
        ],
    );
    assert_eq!(status, 200, "{orig}");
    b2.upload_ok(&bucket, "a.bin", b"garbage");
    let blobs = blob_count(&emu);
    let copy_until = now_ms() + 2 * DAY_MS;
    let copy = b2.ok(
        "b2_copy_file",
        json!({"sourceFileId": orig["fileId"], "fileName": "a.bin",
               "fileRetention": {"mode": "governance", "retainUntilTimestamp": copy_until}}),
    );
    assert_ne!(copy["fileId"], orig["fileId"]);
    assert_eq!(copy["contentLength"], 4000);
    assert_eq!(copy["contentSha1"], sha1_hex(&data));
    assert_eq!(copy["action"], "upload");
    assert_eq!(
        copy["fileRetention"]["value"],
        json!({"mode": "governance", "retainUntilTimestamp": copy_until})
    );
    assert_eq!(
        blob_count(&emu),
        blobs,
        "a whole copy shares the source's content"
    );
    let resp = b2.download("copy-locked", "a.bin");
    assert_eq!(resp.bytes().unwrap().as_ref(), &data[..]);
    // The copy is locked: refused like any locked version; the source still is.
    for v in [&copy, &orig] {
        let (status, e) = b2.call(
            "b2_delete_file_version",
            json!({"fileName": "a.bin", "fileId": v["fileId"]}),
        );
        assert_eq!((status, e["code"].as_str()), (403, Some("access_denied")));
    }
    // A range makes its own content and SHA1.
    let part = b2.ok(
        "b2_copy_file",
        json!({"sourceFileId": orig["fileId"], "fileName": "part.bin", "range": "bytes=10-19",
               "metadataDirective": "REPLACE", "contentType": "application/octet-stream",
               "fileInfo": {"k": "v"}}),
    );
    assert_eq!(part["contentLength"], 10);
    assert_eq!(part["contentSha1"], sha1_hex(&data[10..20]));
    assert_eq!(part["fileInfo"], json!({"k": "v"}));
    assert_eq!(emu.counts().get("b2_copy_file"), 2);
}

#[test]
fn copies_refuse_what_they_cannot_honour() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket = b2.bucket_id(BUCKET);
    let v = b2.upload_ok(&bucket, "x", b"hello");
    let cases = [
        (
            json!({"sourceFileId": v["fileId"], "fileName": "y", "contentType": "text/plain"}),
            "metadataDirective COPY",
        ),
        (
            json!({"sourceFileId": v["fileId"], "fileName": "y", "metadataDirective": "REPLACE"}),
            "contentType is required",
        ),
        (
            json!({"sourceFileId": v["fileId"], "fileName": "y", "metadataDirective": "MOVE"}),
            "metadataDirective",
        ),
        (
            json!({"sourceFileId": v["fileId"], "fileName": "y", "colour": "red"}),
            "colour",
        ),
        (
            json!({"sourceFileId": "4_zbogus_f0000000000000099", "fileName": "y"}),
            "sourceFileId",
        ),
        // Retention on a bucket without Object Lock is refused, not dropped.
        (
            json!({"sourceFileId": v["fileId"], "fileName": "y",
                "fileRetention": {"mode": "governance", "retainUntilTimestamp": now_ms() + DAY_MS}}),
            "Object Lock",
        ),
    ];
    for (body, what) in cases {
        let (status, e) = b2.call("b2_copy_file", body);
        assert_eq!(status, 400, "{what}: {e}");
        assert!(e["message"].as_str().unwrap().contains(what), "{what}: {e}");
    }
    let hide = b2.ok("b2_hide_file", json!({"bucketId": bucket, "fileName": "x"}));
    let (status, e) = b2.call(
        "b2_copy_file",
        json!({"sourceFileId": hide["fileId"], "fileName": "y"}),
    );
    assert_eq!(status, 400, "a hide marker is no source: {e}");
}

#[test]
fn an_sse_c_source_needs_its_key_and_the_copy_may_take_another() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket = b2.bucket_id(BUCKET);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let key = |seed: u8| (b64(&[seed; 32]), b64(&Md5::digest([seed; 32])));
    let ((k1, m1), (k2, m2)) = (key(1), key(2));
    let (url, token) = b2.upload_url(&bucket);
    let (status, v) = upload_to(
        &url,
        &token,
        "s",
        b"secret bytes",
        &[
            ("X-Bz-Server-Side-Encryption-Customer-Algorithm", "AES256"),
            ("X-Bz-Server-Side-Encryption-Customer-Key", &k1),
            ("X-Bz-Server-Side-Encryption-Customer-Key-Md5", &m1),
        ],
    );
    assert_eq!(status, 200, "{v}");
    let sse = |k: &str, m: &str| json!({"mode": "SSE-C", "algorithm": "AES256", "customerKey": k, "customerKeyMd5": m});
    let (status, e) = b2.call(
        "b2_copy_file",
        json!({"sourceFileId": v["fileId"], "fileName": "t"}),
    );
    assert_eq!(
        (status, e["code"].as_str()),
        (403, Some("access_denied")),
        "{e}"
    );
    let (status, e) = b2.call(
        "b2_copy_file",
        json!({"sourceFileId": v["fileId"], "fileName": "t", "sourceServerSideEncryption": sse(&k2, &m2)}),
    );
    assert_eq!(status, 403, "{e}");
    let c = b2.ok(
        "b2_copy_file",
        json!({"sourceFileId": v["fileId"], "fileName": "t",
               "sourceServerSideEncryption": sse(&k1, &m1),
               "destinationServerSideEncryption": sse(&k2, &m2)}),
    );
    assert_eq!(c["serverSideEncryption"]["mode"], "SSE-C");
    let resp = http()
        .get(format!("{}/file/{BUCKET}/t", emu.url()))
        .header("Authorization", &b2.token)
        .header("X-Bz-Server-Side-Encryption-Customer-Algorithm", "AES256")
        .header("X-Bz-Server-Side-Encryption-Customer-Key", &k2)
        .header("X-Bz-Server-Side-Encryption-Customer-Key-Md5", &m2)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().as_ref(), b"secret bytes");
}

#[test]
fn copy_part_builds_a_large_file_from_stored_versions() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket = b2.bucket_id(BUCKET);
    let data = content(12_000, 3);
    let src = b2.upload_ok(&bucket, "src", &data);
    let large = b2.start_large(&bucket, "big", json!({}));
    for (n, range) in [(1, "bytes=0-5999"), (2, "bytes=6000-11999")] {
        let p = b2.ok(
            "b2_copy_part",
            json!({"sourceFileId": src["fileId"], "largeFileId": large, "partNumber": n, "range": range}),
        );
        assert_eq!(p["contentLength"], 6000);
    }
    let sha1s = [sha1_hex(&data[..6000]), sha1_hex(&data[6000..])];
    let (status, e) = b2.call(
        "b2_finish_large_file",
        json!({"fileId": large, "partSha1Array": sha1s}),
    );
    assert_eq!(status, 200, "{e}");
    let resp = b2.download(BUCKET, "big");
    assert_eq!(resp.bytes().unwrap().as_ref(), &data[..]);
    let (status, e) = b2.call(
        "b2_copy_part",
        json!({"sourceFileId": src["fileId"], "largeFileId": large, "partNumber": 0}),
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(emu.counts().get("b2_copy_part"), 3);
}

#[test]
fn a_copy_keeps_its_content_when_the_source_is_deleted_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || b2_emulator::Config {
        data_dir: Some(dir.path().to_owned()),
        ..config()
    };
    let data = content(5000, 11);
    {
        let emu = b2_emulator::Emulator::start(config()).unwrap();
        let b2 = B2::master(&emu);
        let bucket = b2.bucket_id(BUCKET);
        let src = b2.upload_ok(&bucket, "src", &data);
        b2.ok(
            "b2_copy_file",
            json!({"sourceFileId": src["fileId"], "fileName": "dst"}),
        );
        b2.ok(
            "b2_delete_file_version",
            json!({"fileName": "src", "fileId": src["fileId"]}),
        );
        assert_eq!(
            blob_count(&emu),
            1,
            "the shared blob outlives its first owner"
        );
        assert_eq!(
            b2.download(BUCKET, "dst").bytes().unwrap().as_ref(),
            &data[..]
        );
        emu.stop();
    }
    let emu = b2_emulator::Emulator::start(config()).unwrap();
    let b2 = B2::master(&emu);
    assert_eq!(
        b2.download(BUCKET, "dst").bytes().unwrap().as_ref(),
        &data[..]
    );
    let v = b2.ok(
        "b2_list_file_versions",
        json!({"bucketId": b2.bucket_id(BUCKET)}),
    );
    let dst = &v["files"][0];
    b2.ok(
        "b2_delete_file_version",
        json!({"fileName": "dst", "fileId": dst["fileId"]}),
    );
    assert_eq!(blob_count(&emu), 0, "the last owner frees it");
}
