//! Answer variants over HTTP: set per call through the control API and `Emulator`, applied
//! to every JSON answer as it leaves, never to what is stored nor to a download's body.

use b2_emulator::{Fault, FaultAction, Variant, VariantRule};
use serde_json::{json, Value};

use crate::common::*;

fn rule(call: &str, variants: &[Variant], seed: u64) -> VariantRule {
    VariantRule {
        call: call.to_owned(),
        variants: variants.to_vec(),
        seed,
    }
}

#[test]
fn a_call_answers_in_its_variant_and_the_others_stay_canonical() {
    let emu = start();
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    b2.upload_ok(&bucket_id, "a.txt", b"hello");
    emu.set_variants(rule(
        "b2_list_file_versions",
        &[Variant::V1Size, Variant::Absent],
        1,
    ));
    let listed = b2.ok("b2_list_file_versions", json!({"bucketId": bucket_id}));
    let entry = &listed["files"][0];
    assert!(entry.get("contentLength").is_none(), "{entry}");
    assert_eq!(entry["size"], 5);
    assert!(entry.get("uploadTimestamp").is_none(), "{entry}");
    assert_eq!(entry["fileName"], "a.txt");
    // Another call keeps its canonical shape.
    let id = entry["fileId"].as_str().unwrap();
    let info = b2.ok("b2_get_file_info", json!({"fileId": id}));
    assert_eq!(info["contentLength"], 5);
    assert!(info["uploadTimestamp"].is_u64());
    // A download's body and SHA1 header are never touched.
    emu.set_variants(rule("*", &Variant::ALL, 3));
    let resp = b2.download(BUCKET, "a.txt");
    assert_eq!(
        resp.headers()["x-bz-content-sha1"].to_str().unwrap(),
        sha1_hex(b"hello")
    );
    assert_eq!(resp.bytes().unwrap().as_ref(), b"hello");
    // Nor what is stored.
    emu.clear_variants();
    let stored = emu.file_versions(BUCKET);
    assert_eq!((stored.len(), stored[0].size), (1, 5));
    assert_eq!(stored[0].sha1, sha1_hex(b"hello"));
}

#[test]
fn every_answer_of_a_session_can_carry_unknown_fields() {
    let emu = start();
    emu.set_variants(rule("*", &[Variant::Extra, Variant::UnknownEnum], 9));
    let (status, auth) = authorize_raw(emu.url(), emu.account_id(), emu.application_key(), 2);
    assert_eq!(status, 200);
    assert!(auth.get("emuExtraField0").is_some(), "{auth}");
    let caps = auth["allowed"]["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "listFiles"));
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let up = b2.upload_ok(&bucket_id, "b.txt", b"bytes");
    assert!(up.get("emuExtraField0").is_some(), "{up}");
    assert!(matches!(
        up.get("action").and_then(Value::as_str),
        None | Some("copy")
    ));
    assert_eq!(up["contentSha1"], sha1_hex(b"bytes"));
}

#[test]
fn retry_after_can_be_an_http_date() {
    let emu = start();
    emu.set_variants(rule("b2_list_buckets", &[Variant::RetryAfterDate], 0));
    emu.inject(Fault {
        call: "b2_list_buckets".into(),
        count: 1,
        action: FaultAction::Error {
            status: 503,
            code: "service_unavailable".into(),
            retry_after: Some(2),
            message: None,
        },
    });
    let b2 = B2::master(&emu);
    let resp = b2
        .http
        .post(format!("{}/b2api/v2/b2_list_buckets", b2.url))
        .header("Authorization", &b2.token)
        .json(&json!({"accountId": b2.account_id}))
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let text = resp.headers()["retry-after"].to_str().unwrap().to_owned();
    let at = httpdate::parse_http_date(&text).expect("an HTTP date");
    let ahead = at.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        ahead.as_secs() >= 1 && ahead.as_secs() <= 3,
        "{text}: {ahead:?}"
    );
    assert_eq!(status_json(resp).1["code"], "service_unavailable");
}

#[test]
fn variants_are_set_and_cleared_over_the_control_api() {
    let emu = start();
    let control = |method: reqwest::Method, body: Option<Value>| {
        let mut req = http().request(method, format!("{}/__emulator/variants", emu.url()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        status_json(req.send().unwrap())
    };
    use reqwest::Method;
    let (status, _) = control(
        Method::POST,
        Some(json!({"call": "b2_list_buckets", "variants": ["null"], "seed": 4})),
    );
    assert_eq!(status, 200);
    let bad = json!({"call": "b2_nope", "variants": ["null"]});
    assert_eq!(control(Method::POST, Some(bad)).0, 400);
    let bad = json!({"call": "*", "variants": ["sideways"]});
    assert_eq!(control(Method::POST, Some(bad)).0, 400);
    let (_, rules) = control(Method::GET, None);
    assert_eq!(
        rules,
        json!([{"call": "b2_list_buckets", "variants": ["null"], "seed": 4}])
    );
    let b2 = B2::master(&emu);
    let buckets = b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(buckets["buckets"][0]["bucketType"], Value::Null);
    assert_eq!(control(Method::DELETE, None).0, 200);
    let buckets = b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(buckets["buckets"][0]["bucketType"], "allPrivate");
}

#[test]
fn a_rule_for_a_call_b2_does_not_have_is_refused_at_start() {
    let mut cfg = config();
    cfg.variants = vec![rule("b2_nope", &[Variant::Null], 0)];
    let err = b2_emulator::Emulator::start(cfg).err().expect("refused");
    assert!(err.to_string().contains("b2_nope"), "{err}");
    let mut cfg = config();
    cfg.variants = vec!["b2_list_buckets=null@2".parse().unwrap()];
    let emu = b2_emulator::Emulator::start(cfg).unwrap();
    let b2 = B2::master(&emu);
    let buckets = b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    assert_eq!(buckets["buckets"][0]["bucketType"], Value::Null);
}
