//! What the host is told of Object Lock when not everything goes to plan: a key that may
//! not read retentions, a delete that leaves locked versions, a protect that stops part-way.

mod common;

use b2_emulator::Emulator;
use common::lock::*;
use common::*;
use serde_json::{json, Value};

fn lock_cfg(emu: &Emulator, mode: &str, days: u32) -> String {
    config(
        emu,
        json!({"concurrency": 1, "object_lock": {"mode": mode, "retention_days": days}}),
    )
}

/// `b2_hide_file` over the emulator's B2 API, as another tool (or B2's lifecycle) would.
fn hide(emu: &Emulator, name: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let json = |r: reqwest::Response| async move {
            assert!(r.status().is_success(), "{}", r.status());
            serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()
        };
        let auth = json(
            http.get(format!("{}/b2api/v4/b2_authorize_account", emu.url()))
                .basic_auth(emu.account_id(), Some(emu.application_key()))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let api = auth["apiInfo"]["storageApi"]["apiUrl"].as_str().unwrap();
        let token = auth["authorizationToken"].as_str().unwrap();
        let call = |name: &str, body: Value| {
            http.post(format!("{api}/b2api/v4/{name}"))
                .header("Authorization", token)
                .body(body.to_string())
                .send()
        };
        let buckets = json(
            call(
                "b2_list_buckets",
                json!({"accountId": auth["accountId"], "bucketName": BUCKET}),
            )
            .await
            .unwrap(),
        )
        .await;
        let bucket_id = buckets["buckets"][0]["bucketId"].clone();
        json(
            call(
                "b2_hide_file",
                json!({"bucketId": bucket_id, "fileName": name}),
            )
            .await
            .unwrap(),
        )
        .await;
    });
}

#[test]
fn a_key_that_cannot_read_retentions_does_not_report_nothing_locked() {
    let emu = locked_emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1_000, 41);
    assert_eq!(upload(&lock_cfg(&emu, "compliance", 3), &f, "f").0, OK);
    let (id, key) = restricted_key(
        &emu,
        "no-read-retention",
        &[
            "listBuckets",
            "listFiles",
            "readFiles",
            "writeFiles",
            "deleteFiles",
            "readBucketRetentions",
        ],
        None,
        None,
    );
    // No object_lock in this configuration: the bucket's lock is what counts.
    let blind = config(&emu, json!({"account_id": id, "application_key": key}));
    let (st, u) = usage(&blind);
    assert_eq!(st, OK, "{u}");
    assert_eq!(u["lock_readable"], false, "{u}");
    assert!(u["locked_versions"].is_null(), "{u}");
    assert!(u["locked_bytes"].is_null(), "{u}");
    assert!(
        u["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("readFileRetentions")),
        "{u}"
    );
    let (st, l) = list(&blind, "");
    assert_eq!(st, OK, "{l}");
    assert_eq!(l["entries"][0]["retention_readable"], false, "{l}");

    // The master key reads it: counted, and no such field.
    let (_, u) = usage(&config(&emu, json!({})));
    assert_eq!(
        (u["lock_readable"].as_bool(), u["locked_versions"].as_u64()),
        (Some(true), Some(1)),
        "{u}"
    );
    let (_, l) = list(&config(&emu, json!({})), "");
    assert!(l["entries"][0].get("retention_readable").is_none(), "{l}");
}

#[test]
fn a_delete_keeps_the_hide_marker_of_a_locked_backup_so_it_does_not_reappear() {
    let emu = locked_emulator();
    let cfg = lock_cfg(&emu, "compliance", 3);
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1_000, 42);
    assert_eq!(upload(&cfg, &f, "t/locked").0, OK);
    assert_eq!(upload(&config(&emu, json!({})), &f, "t/free").0, OK);
    hide(&emu, &format!("{DIR}t/locked"));
    hide(&emu, &format!("{DIR}t/free"));
    let (st, l) = list(&cfg, "t");
    assert_eq!(
        (st, l["entries"].as_array().map(Vec::len)),
        (OK, Some(0)),
        "{l}"
    );

    let (st, v) = delete(&cfg, "t");
    assert_eq!(st, LOCKED, "{v}");
    assert_eq!(v["locked_versions"], 1, "{v}");
    // free: its version and its hide marker; locked: nothing.
    assert_eq!(v["deleted_versions"], 2, "{v}");
    let left: Vec<(String, String)> = emu
        .file_versions(BUCKET)
        .into_iter()
        .map(|v| (v.file_name.trim_start_matches(DIR).to_string(), v.action))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.contains(&("t/locked".into(), "hide".into())),
        "{left:?}"
    );
    let (st, l) = list(&cfg, "t");
    assert_eq!(
        (st, l["entries"].as_array().map(Vec::len)),
        (OK, Some(0)),
        "still hidden: {l}"
    );
}

#[test]
fn a_protect_that_stops_part_way_says_how_many_it_extended() {
    let emu = locked_emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 500, 43);
    let short = lock_cfg(&emu, "governance", 1);
    for name in ["p/a", "p/b", "p/c"] {
        assert_eq!(upload(&short, &f, name).0, OK);
    }
    pass_then_fail(&emu, "b2_update_file_retention", 1, 1, 400, "bad_request");
    let (st, v) = protect(&lock_cfg(&emu, "governance", 5), "p");
    // A plain 400 bad_request matches no rule of the retry table (src/b2/retry.rs): its
    // fallback, REMOTE, final, "B2 refused the request".
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], false, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("B2 refused the request"),
        "{v}"
    );
    let extended = emu
        .file_versions(BUCKET)
        .iter()
        .filter(|v| v.retain_until.unwrap() > now_plus_days(3))
        .count();
    assert!(extended >= 1, "one went through before the refusal");
    assert_eq!(v["extended_versions"], extended, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("extended"),
        "{v}"
    );
}

fn now_plus_days(days: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + days * 86_400_000
}
