//! State survives a restart on the same data directory.

use b2_emulator::{Config, Emulator};
use serde_json::json;

use crate::common::*;

#[test]
fn a_restart_keeps_buckets_versions_and_unfinished_large_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config {
        data_dir: Some(dir.path().to_owned()),
        ..config()
    };
    let p1 = content(2000, 1);
    let p2 = content(700, 2);
    let (versions_before, unfinished_before, large_id, extra_bucket) = {
        let emu = Emulator::start(config()).unwrap();
        let b2 = B2::master(&emu);
        let bucket_id = b2.bucket_id(BUCKET);
        b2.upload_ok(&bucket_id, "kept", b"v1");
        b2.upload_ok(&bucket_id, "kept", b"v2");
        let gone = b2.upload_ok(&bucket_id, "gone", b"bye");
        b2.ok(
            "b2_delete_file_version",
            json!({"fileName": "gone", "fileId": gone["fileId"]}),
        );
        b2.upload_ok(&bucket_id, "hidden", b"h");
        b2.ok(
            "b2_hide_file",
            json!({"bucketId": bucket_id, "fileName": "hidden"}),
        );
        let extra = b2.ok(
            "b2_create_bucket",
            json!({"accountId": b2.account_id, "bucketName": "second-bucket", "bucketType": "allPublic"}),
        );
        let large_id = b2.start_large(
            &bucket_id,
            "large",
            json!({"large_file_sha1": sha1_hex(&[p1.clone(), p2.clone()].concat())}),
        );
        assert_eq!(b2.upload_part(&large_id, 1, &p1).0, 200);
        assert_eq!(b2.upload_part(&large_id, 2, &p2).0, 200);
        emu.seed_files(BUCKET, "seed/", 3, 5);
        let before = (
            emu.file_versions(BUCKET),
            emu.unfinished_large_files(BUCKET),
            large_id,
            extra["bucketId"].as_str().unwrap().to_owned(),
        );
        emu.stop();
        before
    };

    let emu = Emulator::start(config()).unwrap();
    let after = emu.file_versions(BUCKET);
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&versions_before).unwrap()
    );
    assert_eq!(
        serde_json::to_value(emu.unfinished_large_files(BUCKET)).unwrap(),
        serde_json::to_value(&unfinished_before).unwrap()
    );
    let b2 = B2::master(&emu);
    assert_eq!(b2.bucket_id("second-bucket"), extra_bucket);
    assert_eq!(b2.download(BUCKET, "kept").bytes().unwrap().as_ref(), b"v2");
    assert_eq!(b2.download(BUCKET, "hidden").status().as_u16(), 404);
    assert_eq!(b2.download(BUCKET, "gone").status().as_u16(), 404);
    assert_eq!(
        b2.download(BUCKET, "seed/00000002").bytes().unwrap().len(),
        5
    );

    // The unfinished large file resumes: its parts are listed and it can be finished.
    let parts = b2.ok("b2_list_parts", json!({"fileId": large_id}));
    let shas: Vec<&str> = parts["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["contentSha1"].as_str().unwrap())
        .collect();
    assert_eq!(shas, [sha1_hex(&p1), sha1_hex(&p2)]);
    b2.ok(
        "b2_finish_large_file",
        json!({"fileId": large_id, "partSha1Array": [sha1_hex(&p1), sha1_hex(&p2)]}),
    );
    assert_eq!(
        b2.download(BUCKET, "large").bytes().unwrap().as_ref(),
        &[p1, p2].concat()[..]
    );

    // New uploads after a restart get ids that do not collide with old ones.
    let bucket_id = b2.bucket_id(BUCKET);
    let fresh = b2.upload_ok(&bucket_id, "fresh", b"f");
    assert!(!versions_before
        .iter()
        .any(|v| v.file_id == fresh["fileId"].as_str().unwrap()));
    emu.stop();
    assert!(dir.path().join("journal.jsonl").exists());
}

#[test]
fn two_emulators_cannot_share_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config {
        data_dir: Some(dir.path().to_owned()),
        ..config()
    };
    let first = Emulator::start(config()).unwrap();
    let second = Emulator::start(config());
    assert!(
        second.is_err(),
        "a second emulator on the same data dir must fail"
    );
    first.stop();
    Emulator::start(config()).unwrap().stop();
}

#[test]
fn a_temp_data_dir_is_removed_on_stop() {
    let emu = start();
    let dir = emu.data_dir().to_owned();
    assert!(dir.exists());
    emu.stop();
    assert!(!dir.exists());
}
