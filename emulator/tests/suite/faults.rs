//! Scripted faults, X-Bz-Test-Mode, call counts and the HTTP control API.

use std::time::{Duration, Instant};

use b2_emulator::{Fault, FaultAction};
use serde_json::json;

use crate::common::*;

fn fault(call: &str, count: u32, action: FaultAction) -> Fault {
    Fault {
        call: call.to_owned(),
        count,
        action,
    }
}

fn error(status: u16, code: &str, retry_after: Option<u64>) -> FaultAction {
    FaultAction::Error {
        status,
        code: code.to_owned(),
        retry_after,
        message: None,
    }
}

#[test]
fn error_faults_answer_b2_errors_and_store_nothing() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    emu.reset_counts();
    emu.inject(fault(
        "b2_upload_file",
        2,
        error(503, "service_unavailable", Some(1)),
    ));
    let data = content(10_000, 1);
    for _ in 0..2 {
        let resp = http()
            .post(&url)
            .header("Authorization", &token)
            .header("X-Bz-File-Name", "f")
            .header("Content-Type", "b2/x-auto")
            .header("X-Bz-Content-Sha1", sha1_hex(&data))
            .body(data.clone())
            .send()
            .unwrap();
        assert_eq!(resp.headers()["retry-after"], "1");
        let (status, v) = status_json(resp);
        assert_eq!(
            (status, v["code"].as_str(), v["status"].as_u64()),
            (503, Some("service_unavailable"), Some(503))
        );
    }
    assert!(emu.file_versions(BUCKET).is_empty());
    assert_eq!(blob_count(&emu), 0);
    let (status, _) = upload_to(&url, &token, "f", &data, &[]);
    assert_eq!(status, 200);
    let counts = emu.counts();
    assert_eq!(counts.get("b2_upload_file"), 3);
    assert_eq!(counts.bytes_received, 30_000);
}

#[test]
fn faults_fire_in_order_and_star_matches_any_call() {
    let emu = start();
    let b2 = B2::master(&emu);
    let acct = json!({"accountId": b2.account_id});
    emu.inject(fault(
        "b2_list_buckets",
        1,
        error(500, "internal_error", None),
    ));
    emu.inject(fault(
        "b2_list_buckets",
        1,
        error(429, "too_many_requests", Some(3)),
    ));
    assert_eq!(b2.call("b2_list_buckets", acct.clone()).0, 500);
    assert_eq!(b2.call("b2_list_buckets", acct.clone()).0, 429);
    assert_eq!(b2.call("b2_list_buckets", acct.clone()).0, 200);

    emu.inject(fault("*", 1, FaultAction::Corrupt));
    emu.inject(fault("*", 1, error(503, "service_unavailable", None)));
    // The corrupt fault waits for a download; the "*" error takes the next call.
    assert_eq!(b2.call("b2_list_buckets", acct.clone()).0, 503);
    assert_eq!(b2.call("b2_list_buckets", acct.clone()).0, 200);

    emu.inject(fault(
        "b2_list_buckets",
        5,
        error(503, "service_unavailable", None),
    ));
    emu.clear_faults();
    assert_eq!(b2.call("b2_list_buckets", acct).0, 200);
}

#[test]
fn drop_faults_close_the_connection_without_an_answer() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    emu.inject(fault(
        "b2_upload_file",
        1,
        FaultAction::Drop { after_bytes: 1000 },
    ));
    let data = content(500_000, 2);
    let result = http()
        .post(&url)
        .header("Authorization", &token)
        .header("X-Bz-File-Name", "d")
        .header("Content-Type", "b2/x-auto")
        .header("X-Bz-Content-Sha1", sha1_hex(&data))
        .body(data.clone())
        .send();
    assert!(
        result.is_err(),
        "expected a dropped connection, got {result:?}"
    );
    assert!(emu.file_versions(BUCKET).is_empty());

    // After a drop, the same URL works again (the upload no longer holds it).
    let (status, v) = upload_to(&url, &token, "d", &data, &[]);
    assert_eq!(status, 200, "{v}");

    emu.inject(fault(
        "b2_list_buckets",
        1,
        FaultAction::Drop { after_bytes: 0 },
    ));
    let request = format!(
        "POST /b2api/v2/b2_list_buckets HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        b2.token
    );
    let answer = raw_exchange(
        emu.url(),
        request.as_bytes(),
        false,
        Duration::from_secs(10),
    );
    assert_eq!(answer, "", "no answer at all");
}

#[test]
fn lose_answer_faults_act_then_close_without_an_answer() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    emu.inject(fault("b2_upload_file", 1, FaultAction::LoseAnswer));
    let data = content(50_000, 3);
    let result = http()
        .post(&url)
        .header("Authorization", &token)
        .header("X-Bz-File-Name", "lost")
        .header("Content-Type", "b2/x-auto")
        .header("X-Bz-Content-Sha1", sha1_hex(&data))
        .body(data.clone())
        .send();
    assert!(result.is_err(), "expected no answer, got {result:?}");
    let versions = emu.file_versions(BUCKET);
    assert_eq!(versions.len(), 1, "the upload was stored: {versions:?}");
    assert_eq!(versions[0].file_name, "lost");

    let file_id = versions[0].file_id.clone();
    emu.inject(fault("b2_delete_file_version", 1, FaultAction::LoseAnswer));
    let request = serde_json::to_string(&json!({"fileId": file_id, "fileName": "lost"})).unwrap();
    let request = format!(
        "POST /b2api/v2/b2_delete_file_version HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n{request}",
        b2.token,
        request.len()
    );
    let answer = raw_exchange(
        emu.url(),
        request.as_bytes(),
        false,
        Duration::from_secs(10),
    );
    assert_eq!(answer, "", "no answer at all");
    assert!(emu.file_versions(BUCKET).is_empty(), "the delete happened");
}

#[test]
fn delay_faults_slow_a_call_down() {
    let emu = start();
    let b2 = B2::master(&emu);
    emu.inject(fault(
        "b2_list_buckets",
        1,
        FaultAction::Delay { millis: 400 },
    ));
    // Queued behind it: fires only if the delay fired once and is gone.
    emu.inject(fault(
        "b2_list_buckets",
        1,
        FaultAction::Error {
            status: 503,
            code: "service_unavailable".into(),
            retry_after: None,
            message: None,
        },
    ));
    let t = Instant::now();
    b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert!(t.elapsed() >= Duration::from_millis(400));
    let (status, _) = b2.call("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(status, 503, "the delay fired on one call only");
    b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(emu.counts().get("b2_list_buckets"), 3);
    assert_eq!(emu.counts().arrivals_ms["b2_list_buckets"].len(), 3);
}

#[test]
fn hold_faults_keep_a_request_until_the_test_releases_it() {
    let emu = start();
    let b2 = B2::master(&emu);
    emu.inject(fault("b2_list_buckets", 1, FaultAction::Hold));
    // Queued behind it: fires only if the hold fired once and is gone.
    emu.inject(fault(
        "b2_list_buckets",
        1,
        error(503, "service_unavailable", None),
    ));
    assert_eq!(
        emu.release(1),
        0,
        "nothing held yet: a release is not saved"
    );
    let held = std::thread::scope(|s| {
        let call = s.spawn(|| b2.call("b2_list_buckets", json!({"accountId": b2.account_id})));
        assert!(
            emu.wait_held(1, Duration::from_secs(30)),
            "the request is held"
        );
        assert_eq!(emu.counts().get("b2_list_buckets"), 1, "counted on arrival");
        assert!(!call.is_finished(), "no answer while held");
        assert_eq!(emu.release(5), 1, "one request was held");
        call.join().unwrap()
    });
    assert_eq!(held.0, 200, "handled normally once released: {}", held.1);
    assert_eq!(emu.held(), 0);
    let (status, _) = b2.call("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(status, 503, "the hold fired on one call only");

    // Over the control API, and released by stopping the emulator.
    let control = format!("{}/__emulator", emu.url());
    let (status, _) = status_json(
        http()
            .post(format!("{control}/faults"))
            .json(&json!({"call": "b2_list_buckets", "count": 2, "action": "hold"}))
            .send()
            .unwrap(),
    );
    assert_eq!(status, 200);
    let answers = std::thread::scope(|s| {
        let calls: Vec<_> = (0..2)
            .map(|_| s.spawn(|| b2.call("b2_list_buckets", json!({"accountId": b2.account_id}))))
            .collect();
        assert!(emu.wait_held(2, Duration::from_secs(30)));
        let (_, v) = status_json(http().get(format!("{control}/held")).send().unwrap());
        assert_eq!(v["held"], 2);
        let (_, v) = status_json(
            http()
                .post(format!("{control}/release"))
                .json(&json!({"count": 1}))
                .send()
                .unwrap(),
        );
        assert_eq!(v["released"], 1);
        assert!(
            emu.wait_held(1, Duration::from_secs(30)) && emu.held() == 1,
            "the other is still held"
        );
        emu.stop();
        calls
            .into_iter()
            .map(|c| c.join().unwrap().0)
            .collect::<Vec<_>>()
    });
    assert_eq!(answers, [200, 200], "stopping lets the held request finish");
}

#[test]
fn damage_upload_faults_are_refused_by_the_sha1_check_as_b2_does() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let data = content(50_000, 4);
    emu.inject(fault("b2_upload_file", 1, FaultAction::DamageUpload));
    let (status, v) = b2.upload(&bucket_id, "d", &data);
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Sha1 did not match data received"),
        "{v}"
    );
    assert!(emu.file_versions(BUCKET).is_empty(), "nothing stored");
    // The same for a part, whose SHA1 comes at the end of the body.
    let file_id = b2.start_large(&bucket_id, "large", json!({}));
    emu.inject(fault("b2_upload_part", 1, FaultAction::DamageUpload));
    let (status, v) = b2.upload_part(&file_id, 1, &data);
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("bad_request")),
        "{v}"
    );
    // Fired once: the next sends land intact.
    b2.upload_ok(&bucket_id, "d", &data);
    let (status, v) = b2.upload_part(&file_id, 1, &data);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        b2.download(BUCKET, "d").bytes().unwrap().as_ref(),
        &data[..]
    );
}

#[test]
fn a_damage_upload_fault_for_any_call_waits_for_an_upload() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    emu.inject(fault("*", 1, FaultAction::DamageUpload));
    b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    let (status, _) = b2.upload(&bucket_id, "d", b"some bytes");
    assert_eq!(status, 400);
}

#[test]
fn corrupt_faults_flip_a_byte_of_a_download() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let data = content(3_000_000, 3);
    b2.upload_ok(&bucket_id, "c", &data);
    emu.inject(fault("b2_download_file_by_name", 1, FaultAction::Corrupt));
    let resp = b2.download(BUCKET, "c");
    assert_eq!(
        resp.headers()["x-bz-content-sha1"],
        sha1_hex(&data).as_str()
    );
    let body = resp.bytes().unwrap();
    assert_eq!(body.len(), data.len());
    assert_eq!(body.iter().zip(&data).filter(|(a, b)| a != b).count(), 1);
    assert_eq!(
        b2.download(BUCKET, "c").bytes().unwrap().as_ref(),
        &data[..]
    );
}

#[test]
fn test_mode_headers() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let mode = |m| [("X-Bz-Test-Mode", m)];
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            upload_to(
                &url,
                &token,
                &format!("t{i}"),
                b"t",
                &mode("fail_some_uploads"),
            )
            .0
        })
        .collect();
    assert_eq!(statuses, [503, 200, 200, 503, 200, 200]);
    assert_eq!(emu.file_versions(BUCKET).len(), 4);

    let (status, v) = upload_to(&url, &token, "cap", b"c", &mode("force_cap_exceeded"));
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("storage_cap_exceeded"))
    );
    let resp = http()
        .get(format!("{}/file/{BUCKET}/t1", emu.url()))
        .header("Authorization", &b2.token)
        .header("X-Bz-Test-Mode", "force_cap_exceeded")
        .send()
        .unwrap();
    let (status, v) = status_json(resp);
    assert_eq!(
        (status, v["code"].as_str()),
        (403, Some("download_cap_exceeded"))
    );

    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            let resp = http()
                .post(format!("{}/b2api/v2/b2_list_buckets", emu.url()))
                .header("Authorization", &b2.token)
                .header("X-Bz-Test-Mode", "expire_some_account_authorization_tokens")
                .json(&json!({"accountId": b2.account_id}))
                .send()
                .unwrap();
            let (status, v) = status_json(resp);
            if status == 401 {
                assert_eq!(v["code"], "expired_auth_token");
            }
            status
        })
        .collect();
    assert_eq!(statuses, [401, 200, 200]);
}

#[test]
fn every_request_to_a_call_is_counted() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    b2.upload_ok(&bucket_id, "x", b"12345");
    let bad = B2 {
        token: "bad".to_owned(),
        ..B2::master(&emu)
    };
    let _ = bad.call("b2_list_file_names", json!({"bucketId": bucket_id}));
    let _ = authorize_raw(emu.url(), "emu-account", "wrong", 4);
    let _ = b2.download(BUCKET, "x").bytes();
    let _ = http()
        .get(format!("{}/__emulator/counts", emu.url()))
        .send()
        .unwrap();
    let counts = emu.counts();
    assert_eq!(counts.get("b2_authorize_account"), 3);
    assert_eq!(counts.get("b2_list_buckets"), 1);
    assert_eq!(counts.get("b2_get_upload_url"), 1);
    assert_eq!(counts.get("b2_upload_file"), 1);
    assert_eq!(counts.get("b2_list_file_names"), 1);
    assert_eq!(counts.get("b2_download_file_by_name"), 1);
    assert_eq!(counts.total(), 8);
    assert_eq!(counts.bytes_received, 5);
    assert_eq!(counts.bytes_sent, 5);
    emu.reset_counts();
    assert_eq!(emu.counts().total(), 0);
    assert_eq!(emu.counts().bytes_sent, 0);
}

#[test]
fn the_http_control_api() {
    let emu = start();
    let control = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = http().request(method, format!("{}/__emulator/{path}", emu.url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        status_json(req.send().unwrap())
    };
    use reqwest::Method;
    assert_eq!(control(Method::GET, "health", None).0, 200);
    let (status, _) = control(
        Method::POST,
        "faults",
        Some(
            json!({"call":"b2_list_buckets","count":1,"action":"error","status":503,"code":"service_unavailable","retry_after":1}),
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(
        control(
            Method::POST,
            "faults",
            Some(json!({"call":"b2_nope","count":1,"action":"corrupt"}))
        )
        .0,
        400
    );
    assert_eq!(
        control(
            Method::POST,
            "faults",
            Some(json!({"call":"*","count":1,"action":"explode"}))
        )
        .0,
        400
    );
    let b2 = B2::master(&emu);
    assert_eq!(
        b2.call("b2_list_buckets", json!({"accountId": b2.account_id}))
            .0,
        503
    );

    control(
        Method::POST,
        "faults",
        Some(json!({"call":"b2_list_buckets","count":3,"action":"delay","millis":1})),
    );
    assert_eq!(control(Method::DELETE, "faults", None).0, 200);

    let (status, counts) = control(Method::GET, "counts", None);
    assert_eq!(status, 200);
    assert_eq!(counts["calls"]["b2_list_buckets"], 1);
    assert_eq!(counts["calls"]["b2_authorize_account"], 1);
    control(Method::POST, "counts/reset", None);
    assert_eq!(control(Method::GET, "counts", None).1["calls"], json!({}));

    let key = json!({"key_id":"k2","application_key":"s2","capabilities":["listFiles"],"bucket":BUCKET,"name_prefix":null});
    assert_eq!(control(Method::POST, "keys", Some(key)).0, 200);
    let (status, v) = authorize_raw(emu.url(), "k2", "s2", 4);
    assert_eq!(status, 200);
    assert_eq!(
        v["apiInfo"]["storageApi"]["allowed"]["buckets"][0]["name"],
        BUCKET
    );

    let (status, v) = control(
        Method::POST,
        &format!("buckets/{BUCKET}"),
        Some(
            json!({"bucketType": "allPublic", "lifecycleRules": [{"fileNamePrefix": "", "daysFromHidingToDeleting": 1}]}),
        ),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["bucketType"], "allPublic");
    assert_eq!(
        control(
            Method::POST,
            "seed",
            Some(json!({"bucket": BUCKET, "prefix": "p/", "count": 3, "size": 7}))
        )
        .0,
        200
    );
    let resp = http()
        .get(format!("{}/file/{BUCKET}/p/00000001", emu.url()))
        .send()
        .unwrap();
    assert_eq!(resp.bytes().unwrap().len(), 7, "public now, seeded");
    let (status, versions) = control(Method::GET, &format!("versions/{BUCKET}"), None);
    assert_eq!(status, 200);
    assert_eq!(versions.as_array().unwrap().len(), 3);
    assert_eq!(control(Method::GET, "nothing-here", None).0, 404);
    assert_eq!(
        control(
            Method::POST,
            "seed",
            Some(json!({"bucket": "nope", "prefix": "", "count": 1, "size": 1}))
        )
        .0,
        404
    );
}

#[test]
fn redirect_faults_answer_a_3xx_with_its_location() {
    let emu = start();
    let b2 = B2::master(&emu);
    emu.reset_counts();
    let elsewhere = "http://127.0.0.1:9/b2api/v4/b2_list_buckets";
    emu.inject(fault(
        "b2_list_buckets",
        1,
        FaultAction::Redirect {
            status: 307,
            location: elsewhere.into(),
        },
    ));
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let list = || {
        client
            .post(format!("{}/b2api/v4/b2_list_buckets", b2.url))
            .header("Authorization", &b2.token)
            .json(&json!({"accountId": b2.account_id}))
            .send()
            .unwrap()
    };
    let resp = list();
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(resp.headers()["location"], elsewhere);
    assert_eq!(list().status().as_u16(), 200, "fired once");
    assert_eq!(emu.counts().get("b2_list_buckets"), 2);
    let bad = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        emu.inject(fault(
            "b2_list_buckets",
            1,
            FaultAction::Redirect {
                status: 200,
                location: elsewhere.into(),
            },
        ))
    }));
    assert!(bad.is_err(), "a redirect fault must be a 3xx");
}
