//! Large files: parts, finish checks, listings of unfinished files and parts, cancel.

use serde_json::json;

use crate::common::*;

#[test]
fn parts_finish_into_one_file_served_as_their_concatenation() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let p1 = content(3000, 10);
    let p2 = content(1500, 11);
    let whole = [p1.clone(), p2.clone()].concat();
    let info =
        json!({"large_file_sha1": sha1_hex(&whole), "src_last_modified_millis": "1700000000000"});
    let file_id = b2.start_large(&bucket_id, "big/file.bin", info.clone());

    // Two uploaders, two part URLs; parts may arrive in any order.
    let (status, v) = b2.upload_part(&file_id, 2, &p2);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["partNumber"], 2);
    assert_eq!(v["contentSha1"], sha1_hex(&p2));
    let (status, _) = b2.upload_part(&file_id, 1, &p1);
    assert_eq!(status, 200);

    let parts = b2.ok("b2_list_parts", json!({"fileId": file_id}));
    let listed: Vec<(u64, u64, String)> = parts["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partNumber"].as_u64().unwrap(),
                p["contentLength"].as_u64().unwrap(),
                p["contentSha1"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, [(1, 3000, sha1_hex(&p1)), (2, 1500, sha1_hex(&p2))]);
    assert_eq!(parts["nextPartNumber"], serde_json::Value::Null);
    let page = b2.ok(
        "b2_list_parts",
        json!({"fileId": file_id, "maxPartCount": 1}),
    );
    assert_eq!(page["parts"].as_array().unwrap().len(), 1);
    assert_eq!(page["nextPartNumber"], 2);

    let unfinished = emu.unfinished_large_files(BUCKET);
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].action, "start");

    let done = b2.ok(
        "b2_finish_large_file",
        json!({"fileId": file_id, "partSha1Array": [sha1_hex(&p1), sha1_hex(&p2)]}),
    );
    assert_eq!(done["action"], "upload");
    assert_eq!(done["fileId"], file_id.as_str());
    assert_eq!(done["contentSha1"], "none");
    assert_eq!(done["contentLength"], 4500);
    assert_eq!(done["fileInfo"], info);
    assert!(emu.unfinished_large_files(BUCKET).is_empty());

    let resp = b2.download(BUCKET, "big/file.bin");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-bz-content-sha1"], "none");
    assert_eq!(
        resp.headers()["x-bz-info-large_file_sha1"],
        sha1_hex(&whole).as_str()
    );
    assert_eq!(resp.bytes().unwrap().as_ref(), &whole[..]);

    // A range across the part boundary.
    let resp = http()
        .get(format!("{}/file/{BUCKET}/big/file.bin", emu.url()))
        .header("Authorization", &b2.token)
        .header("Range", "bytes=2990-3009")
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.bytes().unwrap().as_ref(), &whole[2990..3010]);

    // Finishing twice is a 400 (the file is no longer unfinished).
    let (status, _) = b2.call(
        "b2_finish_large_file",
        json!({"fileId": file_id, "partSha1Array": [sha1_hex(&p1), sha1_hex(&p2)]}),
    );
    assert_eq!(status, 400);
    let (status, _) = b2.call("b2_get_upload_part_url", json!({"fileId": file_id}));
    assert_eq!(status, 400);
}

#[test]
fn part_sizes_and_numbers_follow_b2_rules() {
    let emu = start(); // min part size 1000
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);

    let small_first = b2.start_large(&bucket_id, "a", json!({}));
    let a1 = content(999, 1);
    let a2 = content(1000, 2);
    assert_eq!(
        b2.upload_part(&small_first, 1, &a1).0,
        200,
        "small parts are accepted at upload"
    );
    assert_eq!(b2.upload_part(&small_first, 2, &a2).0, 200);
    let (status, v) = b2.call(
        "b2_finish_large_file",
        json!({"fileId": small_first, "partSha1Array": [sha1_hex(&a1), sha1_hex(&a2)]}),
    );
    assert_eq!(status, 400, "a non-last part under the minimum: {v}");

    let small_last = b2.start_large(&bucket_id, "b", json!({}));
    let b1 = content(1000, 3);
    assert_eq!(b2.upload_part(&small_last, 1, &b1).0, 200);
    assert_eq!(b2.upload_part(&small_last, 2, b"z").0, 200);
    let (status, v) = b2.call(
        "b2_finish_large_file",
        json!({"fileId": small_last, "partSha1Array": [sha1_hex(&b1)]}),
    );
    assert_eq!(
        status, 400,
        "an uploaded part left out of partSha1Array: {v}"
    );
    let v = b2.ok(
        "b2_finish_large_file",
        json!({"fileId": small_last, "partSha1Array": [sha1_hex(&b1), sha1_hex(b"z")]}),
    );
    assert_eq!(v["contentLength"], 1001, "the last part may be small");

    let one_part = b2.start_large(&bucket_id, "c", json!({}));
    assert_eq!(b2.upload_part(&one_part, 1, &b1).0, 200);
    let (status, _) = b2.call(
        "b2_finish_large_file",
        json!({"fileId": one_part, "partSha1Array": [sha1_hex(&b1)]}),
    );
    assert_eq!(status, 400, "a large file has at least 2 parts");

    for number in [0u32, 10_001] {
        let (status, v) = b2.upload_part(&one_part, number, b"x");
        assert_eq!(status, 400, "part {number}: {v}");
    }
    assert_eq!(b2.upload_part(&one_part, 10_000, b"x").0, 200);
    let (status, _) = b2.upload_part(&one_part, 3, b"");
    assert_eq!(status, 400, "empty part");
}

#[test]
fn finish_checks_the_part_sha1_array() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let file_id = b2.start_large(&bucket_id, "f", json!({}));
    let p1 = content(1200, 1);
    let p2 = content(1300, 2);
    b2.upload_part(&file_id, 1, &p1);
    b2.upload_part(&file_id, 2, &p2);
    let (s1, s2) = (sha1_hex(&p1), sha1_hex(&p2));
    for (what, array) in [
        ("swapped", json!([s2, s1])),
        ("wrong sha1", json!([s1, sha1_hex(b"x")])),
        ("a part never uploaded", json!([s1, s2, s2])),
        ("empty", json!([])),
    ] {
        let (status, v) = b2.call(
            "b2_finish_large_file",
            json!({"fileId": file_id, "partSha1Array": array}),
        );
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("bad_request")),
            "{what}: {v}"
        );
    }
    assert_eq!(emu.unfinished_large_files(BUCKET).len(), 1);
    b2.ok(
        "b2_finish_large_file",
        json!({"fileId": file_id, "partSha1Array": [s1, s2]}),
    );
}

#[test]
fn resending_a_part_number_replaces_it() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let file_id = b2.start_large(&bucket_id, "r", json!({}));
    let old = content(1000, 1);
    let new = content(1000, 2);
    let last = content(10, 3);
    b2.upload_part(&file_id, 1, &old);
    b2.upload_part(&file_id, 1, &new);
    b2.upload_part(&file_id, 2, &last);
    let parts = b2.ok("b2_list_parts", json!({"fileId": file_id}));
    assert_eq!(parts["parts"][0]["contentSha1"], sha1_hex(&new));
    assert_eq!(parts["parts"].as_array().unwrap().len(), 2);
    assert_eq!(blob_count(&emu), 2, "the replaced part's content is gone");
    b2.ok(
        "b2_finish_large_file",
        json!({"fileId": file_id, "partSha1Array": [sha1_hex(&new), sha1_hex(&last)]}),
    );
    let body = b2.download(BUCKET, "r").bytes().unwrap();
    assert_eq!(body.as_ref(), &[new, last].concat()[..]);
}

#[test]
fn cancel_and_delete_discard_unfinished_files() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let a = b2.start_large(&bucket_id, "a", json!({}));
    let b = b2.start_large(&bucket_id, "b", json!({}));
    b2.upload_part(&a, 1, &content(1000, 1));
    b2.upload_part(&b, 1, &content(1000, 2));
    assert_eq!(blob_count(&emu), 2);

    let v = b2.ok("b2_cancel_large_file", json!({"fileId": a}));
    assert_eq!(v["fileName"], "a");
    assert_eq!(v["fileId"], a.as_str());
    let (status, _) = b2.call("b2_cancel_large_file", json!({"fileId": a}));
    assert_eq!(status, 400);
    let (status, _) = b2.call("b2_list_parts", json!({"fileId": a}));
    assert_eq!(status, 400);

    // b2_delete_file_version works on an unfinished large file too.
    let v = b2.ok(
        "b2_delete_file_version",
        json!({"fileName": "b", "fileId": b}),
    );
    assert_eq!(v["fileId"], b.as_str());
    assert!(emu.unfinished_large_files(BUCKET).is_empty());
    assert!(emu.file_versions(BUCKET).is_empty());
    assert_eq!(blob_count(&emu), 0);
}

#[test]
fn unfinished_large_files_are_listed_with_a_cursor() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let ids: Vec<String> = ["x/1", "x/2", "x/3", "y/1"]
        .iter()
        .map(|n| b2.start_large(&bucket_id, n, json!({"k": "v"})))
        .collect();
    let page = b2.ok(
        "b2_list_unfinished_large_files",
        json!({"bucketId": bucket_id, "namePrefix": "x/", "maxFileCount": 2}),
    );
    assert_eq!(names_of(&page), ["x/1", "x/2"]);
    assert_eq!(page["nextFileId"], ids[2].as_str());
    assert_eq!(page["files"][0]["action"], "start");
    assert_eq!(page["files"][0]["fileInfo"]["k"], "v");
    let page = b2.ok(
        "b2_list_unfinished_large_files",
        json!({"bucketId": bucket_id, "namePrefix": "x/", "startFileId": ids[2]}),
    );
    assert_eq!(names_of(&page), ["x/3"]);
    assert_eq!(page["nextFileId"], serde_json::Value::Null);
    let all = b2.ok(
        "b2_list_unfinished_large_files",
        json!({"bucketId": bucket_id}),
    );
    assert_eq!(names_of(&all).len(), 4);
    // Unfinished files show in b2_list_file_versions, not in b2_list_file_names.
    let versions = b2.ok("b2_list_file_versions", json!({"bucketId": bucket_id}));
    assert_eq!(names_of(&versions).len(), 4);
    let names = b2.ok("b2_list_file_names", json!({"bucketId": bucket_id}));
    assert!(names_of(&names).is_empty());
}
