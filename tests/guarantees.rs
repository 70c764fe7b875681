//! README guarantees that no other test covers on its own: an unverifiable restore, five
//! tries for calls other than uploads, the flush before a replacing rename, restores that
//! stop part-way, and private modes for every restored file.

mod common;

use std::ffi::c_void;
use std::os::unix::fs::PermissionsExt;

use b2_emulator::{Emulator, FaultAction};
use base64::Engine;
use common::faults::{error, inject};
use common::*;
use serde_json::{json, Value};

/// Stores a large file the way another tool might: through B2's own calls, with no
/// `large_file_sha1`, so B2 holds no SHA1 of the whole file.
fn upload_large_without_sha1(emu: &Emulator, name: &str, data: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            emu.account_id(),
            emu.application_key()
        ));
        let auth: Value = http
            .get(format!("{}/b2api/v2/b2_authorize_account", emu.url()))
            .header("Authorization", format!("Basic {basic}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        let token = auth["authorizationToken"].as_str().unwrap().to_string();
        let call = |name: &str, body: Value| {
            let req = http
                .post(format!("{}/b2api/v2/{name}", emu.url()))
                .header("Authorization", &token)
                .body(body.to_string());
            async move {
                let resp = req.send().await.unwrap();
                assert!(resp.status().is_success());
                serde_json::from_slice::<Value>(&resp.bytes().await.unwrap()).unwrap()
            }
        };
        let buckets = call(
            "b2_list_buckets",
            json!({"accountId": auth["accountId"], "bucketName": BUCKET}),
        )
        .await;
        let bucket_id = buckets["buckets"][0]["bucketId"].clone();
        let started = call(
            "b2_start_large_file",
            json!({"bucketId": bucket_id, "fileName": name, "contentType": "b2/x-auto"}),
        )
        .await;
        let file_id = started["fileId"].clone();
        let part_url = call("b2_get_upload_part_url", json!({"fileId": file_id})).await;
        let mut sha1s = Vec::new();
        for (i, part) in data.chunks(MIN_PART as usize).enumerate() {
            let sha1 = sha1_hex(part);
            let resp = http
                .post(part_url["uploadUrl"].as_str().unwrap())
                .header(
                    "Authorization",
                    part_url["authorizationToken"].as_str().unwrap(),
                )
                .header("X-Bz-Part-Number", (i + 1).to_string())
                .header("X-Bz-Content-Sha1", &sha1)
                .body(part.to_vec())
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
            sha1s.push(sha1);
        }
        call(
            "b2_finish_large_file",
            json!({"fileId": file_id, "partSha1Array": sha1s}),
        )
        .await;
    });
}

#[test]
fn a_file_b2_holds_no_sha1_of_is_restored_unverified_with_a_warning() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let data = content(2 * MIN_PART as usize + 123, 1);
    upload_large_without_sha1(&emu, "backups/server1/foreign.tar", &data);
    let dir = tempfile::tempdir().unwrap();
    let back = dir.path().join("foreign.tar");
    let (st, v) = download(&cfg, "foreign.tar", &back);
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["verified"], false, "{v}");
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("foreign.tar")),
        "a warning names the file: {v}"
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);
    // A file uploaded by this library is verified.
    let f = write_file(dir.path(), "own.tar", 2 * PART as usize, 2);
    assert_eq!(upload(&cfg, &f, "own.tar").0, OK);
    let (st, v) = download(&cfg, "own.tar", &dir.path().join("own.back"));
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["verified"], true, "{v}");
}

#[test]
fn calls_other_than_uploads_are_tried_five_times() {
    let emu = emulator();
    let cfg = config(&emu, json!({"upload_retries": 20}));
    inject(
        &emu,
        "b2_list_file_names",
        100,
        error(503, "service_unavailable"),
    );
    let (st, v) = list(&cfg, "");
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    assert_eq!(emu.counts().get("b2_list_file_names"), 5);
}

/// Cancels once bytes have arrived.
unsafe extern "C" fn cancel_once_bytes_moved(done: u64, _total: u64, _user: *mut c_void) -> i32 {
    (done > 0) as i32
}

fn hidden_leftovers(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect()
}

#[test]
fn a_cancelled_or_failed_restore_leaves_no_partial_file_and_the_old_one_untouched() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", 4 * PART as usize, 4);
    assert_eq!(upload(&cfg, &f, "big").0, OK);
    let restore = dir.path().join("restore");
    std::fs::create_dir(&restore).unwrap();
    for existing in [false, true] {
        let target = restore.join("big");
        if existing {
            std::fs::write(&target, b"the previous restore").unwrap();
        }
        // Cancelled: the second range waits at the server, so the cancel comes mid-way.
        inject(
            &emu,
            "b2_download_file_by_id",
            1,
            FaultAction::Delay { millis: 0 },
        );
        inject(
            &emu,
            "b2_download_file_by_id",
            1,
            FaultAction::Delay { millis: 3000 },
        );
        let (st, v) = download_with(
            &cfg,
            "big",
            &target,
            Some(cancel_once_bytes_moved),
            std::ptr::null_mut(),
        );
        emu.clear_faults();
        assert_eq!(st, CANCELLED, "{v}");
        // Failed: every try of a range after the first is refused.
        inject(
            &emu,
            "b2_download_file_by_id",
            1,
            FaultAction::Delay { millis: 0 },
        );
        inject(
            &emu,
            "b2_download_file_by_id",
            100,
            error(500, "internal_error"),
        );
        let (st2, v2) = download(&cfg, "big", &target);
        emu.clear_faults();
        assert_eq!(st2, REMOTE, "{v2}");
        if existing {
            assert_eq!(std::fs::read(&target).unwrap(), b"the previous restore");
        } else {
            assert!(!target.exists(), "no partial file");
        }
        assert!(
            hidden_leftovers(&restore).is_empty(),
            "no temporary file: {:?}",
            hidden_leftovers(&restore)
        );
    }
}

#[test]
fn every_restored_file_is_private_large_files_and_trees_included() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    write_file(&tree, "small", 1000, 5);
    write_file(&tree, "sub/large", 3 * PART as usize, 6);
    assert_eq!(upload(&cfg, &tree, "tree").0, OK);
    let restore = dir.path().join("restore");
    let (st, v) = download(&cfg, "tree", &restore);
    assert_eq!(st, OK, "{v}");
    let single = dir.path().join("large");
    assert_eq!(download(&cfg, "tree/sub/large", &single).0, OK);
    for file in [restore.join("small"), restore.join("sub/large"), single] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
}

/// Plants a link to `precious` at the restore's final name once bytes have moved: after
/// the restore checked that name.
unsafe extern "C" fn plant_link_mid_way(done: u64, _total: u64, user: *mut c_void) -> i32 {
    let (target, precious) = unsafe { &*(user as *const (std::path::PathBuf, std::path::PathBuf)) };
    if done > 0 && std::fs::symlink_metadata(target).is_err() {
        std::os::unix::fs::symlink(precious, target).unwrap();
        PLANTED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    0
}

static PLANTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[test]
fn a_link_at_the_final_name_of_a_restore_is_refused_or_replaced_never_written_through() {
    let emu = emulator();
    let cfg = config(&emu, json!({"concurrency": 1}));
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("tree/etc"), "passwd", 10, 7);
    let big = write_file(&dir.path().join("tree"), "big", 3 * PART as usize, 8);
    assert_eq!(upload(&cfg, &dir.path().join("tree"), "tree").0, OK);
    let precious = dir.path().join("precious");
    std::fs::write(&precious, b"not the customer's").unwrap();

    // There before the restore, in a tree and as a one-file target: refused, naming it.
    let restore = dir.path().join("restore");
    std::fs::create_dir_all(restore.join("etc")).unwrap();
    std::os::unix::fs::symlink(&precious, restore.join("etc/passwd")).unwrap();
    let single = dir.path().join("single");
    std::os::unix::fs::symlink(&precious, &single).unwrap();
    for (remote, local) in [("tree", &restore), ("tree/etc/passwd", &single)] {
        let (st, v) = download(&cfg, remote, local);
        assert_eq!(st, LOCAL_IO, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("symbolic link"),
            "{v}"
        );
    }
    assert!(std::fs::symlink_metadata(&single)
        .unwrap()
        .file_type()
        .is_symlink());

    // Planted while the restore runs (the second range waits at the server): the
    // verified file replaces the link by rename.
    let target = dir.path().join("planted");
    inject(
        &emu,
        "b2_download_file_by_id",
        1,
        FaultAction::Delay { millis: 0 },
    );
    inject(
        &emu,
        "b2_download_file_by_id",
        1,
        FaultAction::Delay { millis: 1500 },
    );
    let arg = (target.clone(), precious.clone());
    let (st, v) = download_with(
        &cfg,
        "tree/big",
        &target,
        Some(plant_link_mid_way),
        &arg as *const _ as *mut c_void,
    );
    assert_eq!(st, OK, "{v}");
    assert!(
        PLANTED.load(std::sync::atomic::Ordering::SeqCst),
        "planted mid-way"
    );
    let meta = std::fs::symlink_metadata(&target).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        std::fs::read(&big).unwrap()
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"not the customer's");
}
