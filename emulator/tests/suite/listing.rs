//! Versions, hide markers, deletes, and listings with cursors and delimiters.

use serde_json::{json, Value};

use crate::common::*;

#[test]
fn versions_hide_markers_and_deletes() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let a1 = b2.upload_ok(&bucket_id, "a", b"a-one");
    let a2 = b2.upload_ok(&bucket_id, "a", b"a-two");
    b2.upload_ok(&bucket_id, "b", b"b-one");
    let hide = b2.ok(
        "b2_hide_file",
        json!({"bucketId": bucket_id, "fileName": "a"}),
    );
    assert_eq!(hide["action"], "hide");
    assert_eq!(hide["contentLength"], 0);

    let names = b2.ok("b2_list_file_names", json!({"bucketId": bucket_id}));
    assert_eq!(names_of(&names), ["b"]);
    let versions = b2.ok("b2_list_file_versions", json!({"bucketId": bucket_id}));
    let seen: Vec<(String, String)> = versions["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fileName"].as_str().unwrap().to_owned(),
                f["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("a", "hide"),
        ("a", "upload"),
        ("a", "upload"),
        ("b", "upload"),
    ]
    .iter()
    .map(|(n, a)| (n.to_string(), a.to_string()))
    .collect();
    assert_eq!(seen, expected);
    assert_eq!(versions["files"][1]["fileId"], a2["fileId"]);
    assert_eq!(versions["files"][2]["fileId"], a1["fileId"]);
    let stored = emu.file_versions(BUCKET);
    assert_eq!(stored.len(), 4);
    assert_eq!(stored[0].action, "hide");

    assert_eq!(b2.download(BUCKET, "a").status().as_u16(), 404);
    let (status, v) = b2.call(
        "b2_hide_file",
        json!({"bucketId": bucket_id, "fileName": "a"}),
    );
    assert_eq!((status, v["code"].as_str()), (400, Some("already_hidden")));
    let (status, v) = b2.call(
        "b2_hide_file",
        json!({"bucketId": bucket_id, "fileName": "zzz"}),
    );
    assert_eq!((status, v["code"].as_str()), (400, Some("no_such_file")));

    // Deleting the hide marker brings the newest version back.
    b2.ok(
        "b2_delete_file_version",
        json!({"fileName": "a", "fileId": hide["fileId"]}),
    );
    assert_eq!(b2.download(BUCKET, "a").bytes().unwrap().as_ref(), b"a-two");
    b2.ok(
        "b2_delete_file_version",
        json!({"fileName": "a", "fileId": a2["fileId"]}),
    );
    assert_eq!(b2.download(BUCKET, "a").bytes().unwrap().as_ref(), b"a-one");

    // Exactly one version per delete; wrong name or id: file_not_present.
    let (status, v) = b2.call(
        "b2_delete_file_version",
        json!({"fileName": "b", "fileId": a1["fileId"]}),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("file_not_present"))
    );
    let (status, v) = b2.call(
        "b2_delete_file_version",
        json!({"fileName": "a", "fileId": a2["fileId"]}),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("file_not_present"))
    );
    let info = b2.ok("b2_get_file_info", json!({"fileId": a1["fileId"]}));
    assert_eq!(info["fileName"], "a");
    assert_eq!(info["contentSha1"], sha1_hex(b"a-one"));
    let (status, _) = b2.call("b2_get_file_info", json!({"fileId": a2["fileId"]}));
    assert_eq!(status, 404);
    assert_eq!(emu.file_versions(BUCKET).len(), 2);
}

#[test]
fn names_are_paged_with_next_file_name() {
    let emu = start();
    emu.seed_files(BUCKET, "s/", 25, 10);
    assert_eq!(emu.counts().total(), 0, "seeding counts no calls");
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let mut all = Vec::new();
    let mut start: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut req = json!({"bucketId": bucket_id, "maxFileCount": 10});
        if let Some(s) = &start {
            req["startFileName"] = json!(s);
        }
        let page = b2.ok("b2_list_file_names", req);
        pages += 1;
        all.extend(names_of(&page));
        match page["nextFileName"].as_str() {
            Some(next) => start = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).map(|i| format!("s/{i:08}")).collect();
    assert_eq!(all, expected);
    // Seeded files carry real content and SHA1.
    let file = b2.ok(
        "b2_list_file_names",
        json!({"bucketId": bucket_id, "maxFileCount": 1}),
    );
    let sha1 = file["files"][0]["contentSha1"].as_str().unwrap().to_owned();
    let body = b2.download(BUCKET, "s/00000000").bytes().unwrap();
    assert_eq!(body.len(), 10);
    assert_eq!(sha1_hex(&body), sha1);
}

#[test]
fn versions_are_paged_with_name_and_id_cursors() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    for i in 0..3 {
        b2.upload_ok(&bucket_id, "x", format!("x{i}").as_bytes());
    }
    b2.upload_ok(&bucket_id, "y", b"y");
    let expected: Vec<String> = b2.ok("b2_list_file_versions", json!({"bucketId": bucket_id}))
        ["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fileId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(expected.len(), 4);
    let mut ids = Vec::new();
    let mut cursor: Option<(String, String)> = None;
    loop {
        let mut req = json!({"bucketId": bucket_id, "maxFileCount": 2});
        if let Some((name, id)) = &cursor {
            req["startFileName"] = json!(name);
            req["startFileId"] = json!(id);
        }
        let page = b2.ok("b2_list_file_versions", req);
        ids.extend(
            page["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["fileId"].as_str().unwrap().to_owned()),
        );
        match (page["nextFileName"].as_str(), page["nextFileId"].as_str()) {
            (Some(n), Some(i)) => cursor = Some((n.to_owned(), i.to_owned())),
            (None, None) => break,
            other => panic!("half a cursor: {other:?}"),
        }
    }
    assert_eq!(ids, expected);
    let (status, _) = b2.call(
        "b2_list_file_versions",
        json!({"bucketId": bucket_id, "startFileId": expected[1]}),
    );
    assert_eq!(status, 400, "startFileId without startFileName");
}

#[test]
fn delimiters_make_folders() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    for name in ["a.txt", "d1/x", "d1/y", "d1/sub/z", "d2/w", "e.txt"] {
        b2.upload_ok(&bucket_id, name, name.as_bytes());
    }
    let list = |extra: Value| {
        let mut req = json!({"bucketId": bucket_id, "delimiter": "/"});
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b2.ok("b2_list_file_names", req)
    };
    let top = list(json!({}));
    assert_eq!(names_of(&top), ["a.txt", "d1/", "d2/", "e.txt"]);
    assert_eq!(top["files"][1]["action"], "folder");
    assert_eq!(top["files"][1]["size"], 0);
    let d1 = list(json!({"prefix": "d1/"}));
    assert_eq!(names_of(&d1), ["d1/sub/", "d1/x", "d1/y"]);

    let page1 = list(json!({"maxFileCount": 2}));
    assert_eq!(names_of(&page1), ["a.txt", "d1/"]);
    assert_eq!(page1["nextFileName"], "d2/");
    let page2 = list(json!({"maxFileCount": 2, "startFileName": "d2/"}));
    assert_eq!(names_of(&page2), ["d2/", "e.txt"]);
    assert_eq!(page2["nextFileName"], Value::Null);

    // A folder whose files are all hidden disappears from the names, not the versions.
    b2.ok(
        "b2_hide_file",
        json!({"bucketId": bucket_id, "fileName": "d2/w"}),
    );
    assert_eq!(names_of(&list(json!({}))), ["a.txt", "d1/", "e.txt"]);
    let versions = b2.ok(
        "b2_list_file_versions",
        json!({"bucketId": bucket_id, "delimiter": "/"}),
    );
    assert_eq!(names_of(&versions), ["a.txt", "d1/", "d2/", "e.txt"]);
}

#[test]
fn max_file_count_defaults_to_100_and_is_capped_at_10000() {
    let emu = start();
    emu.seed_files(BUCKET, "many/", 10_050, 0);
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let page = b2.ok("b2_list_file_names", json!({"bucketId": bucket_id}));
    assert_eq!(page["files"].as_array().unwrap().len(), 100);
    assert_eq!(page["nextFileName"], "many/00000100");
    let page = b2.ok(
        "b2_list_file_names",
        json!({"bucketId": bucket_id, "maxFileCount": 50_000}),
    );
    assert_eq!(page["files"].as_array().unwrap().len(), 10_000);
    assert_eq!(page["nextFileName"], "many/00010000");
    let page = b2.ok(
        "b2_list_file_versions",
        json!({"bucketId": bucket_id, "maxFileCount": 10_000, "startFileName": "many/00010000"}),
    );
    assert_eq!(page["files"].as_array().unwrap().len(), 50);
    assert_eq!(page["nextFileName"], Value::Null);
    assert_eq!(page["files"][0]["size"], 0);
}

#[test]
fn buckets_are_created_updated_and_deleted() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = b2.account_id.clone();
    let created = b2.ok(
        "b2_create_bucket",
        json!({"accountId": acct, "bucketName": "made-by-api", "bucketType": "allPrivate"}),
    );
    assert_eq!(created["bucketType"], "allPrivate");
    assert_eq!(created["lifecycleRules"], json!([]));
    let id = created["bucketId"].as_str().unwrap().to_owned();
    let (status, v) = b2.call(
        "b2_create_bucket",
        json!({"accountId": acct, "bucketName": "made-by-api", "bucketType": "allPrivate"}),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("duplicate_bucket_name"))
    );
    for bad in ["short", "b2-reserved", "has_underscore"] {
        let (status, _) = b2.call(
            "b2_create_bucket",
            json!({"accountId": acct, "bucketName": bad, "bucketType": "allPrivate"}),
        );
        assert_eq!(status, 400, "{bad}");
    }
    let rules = json!([{"fileNamePrefix": "", "daysFromHidingToDeleting": 1, "daysFromUploadingToHiding": null}]);
    let updated = b2.ok(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id, "bucketType": "allPublic", "lifecycleRules": rules}),
    );
    assert_eq!(updated["bucketType"], "allPublic");
    assert_eq!(updated["lifecycleRules"], rules);
    let (status, _) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id, "bucketType": "allPrivate", "ifRevisionMatch": 1}),
    );
    assert_eq!(status, 409, "stale ifRevisionMatch");
    let (status, _) = b2.call(
        "b2_update_bucket",
        json!({"accountId": acct, "bucketId": id, "bucketType": "snapshotish"}),
    );
    assert_eq!(status, 400);

    let listed = b2.ok("b2_list_buckets", json!({"accountId": acct}));
    let names: Vec<&str> = listed["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bucketName"].as_str().unwrap())
        .collect();
    assert_eq!(names, [BUCKET, "made-by-api"]);
    let public_only = b2.ok(
        "b2_list_buckets",
        json!({"accountId": acct, "bucketTypes": ["allPublic"]}),
    );
    assert_eq!(public_only["buckets"].as_array().unwrap().len(), 1);

    b2.upload_ok(&id, "f", b"f");
    let (status, _) = b2.call(
        "b2_delete_bucket",
        json!({"accountId": acct, "bucketId": id}),
    );
    assert_eq!(status, 400, "a bucket with files cannot be deleted");
    let fid = emu.file_versions("made-by-api")[0].file_id.clone();
    b2.ok(
        "b2_delete_file_version",
        json!({"fileName": "f", "fileId": fid}),
    );
    b2.ok(
        "b2_delete_bucket",
        json!({"accountId": acct, "bucketId": id}),
    );
    let (status, _) = b2.call("b2_list_buckets", json!({"accountId": "someone-else"}));
    assert_eq!(status, 401);
}
