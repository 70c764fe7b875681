//! Encryption at rest through the C ABI, against the emulator: SSE-B2 and SSE-C round trips
//! of small and large files (ranged downloads), verified at the emulator (the mode stored,
//! the key's MD5); a restore without the key or with another fails plainly and writes
//! nothing; a resume never mixes keys; validate probes with the configured encryption and
//! reports the bucket's default; the customer key is in no response or journal (nor in a
//! log line: tests/log_lines.rs).

mod common;

use b2_emulator::{Emulator, Fault, FaultAction, Sse};
use base64::Engine;
use common::*;
use md5::{Digest, Md5};
use serde_json::{json, Value};

/// Four parts of PART (the last one short), downloaded as ranges of PART.
const LARGE: usize = 3 * PART as usize + 777;

fn md5_of(key_b64: &str) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(key_b64)
        .unwrap();
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(raw))
}

fn sse_c(key: &str) -> Value {
    json!({"encryption": {"mode": "SSE-C", "customer_key": key}, "concurrency": 4})
}

fn stored(emu: &Emulator, name: &str) -> b2_emulator::StoredVersion {
    emu.file_versions(BUCKET)
        .into_iter()
        .find(|v| v.file_name == format!("backups/server1/{name}") && v.action == "upload")
        .unwrap_or_else(|| panic!("{name} is stored"))
}

fn journal(emu: &Emulator) -> String {
    std::fs::read_to_string(emu.data_dir().join("journal.jsonl")).unwrap()
}

/// Uploads a small and a large file under `cfg`, restores both, and checks the bytes.
fn round_trip(emu: &Emulator, cfg: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let small = write_file(dir.path(), "small", 1500, 1);
    let large = write_file(dir.path(), "large", LARGE, 2);
    assert_eq!(upload(cfg, &small, "small").0, OK);
    let (st, v) = upload(cfg, &large, "large");
    assert_eq!(st, OK, "{v}");
    emu.reset_counts();
    for name in ["small", "large"] {
        let back = dir.path().join(format!("{name}.back"));
        let (st, v) = download(cfg, name, &back);
        assert_eq!(st, OK, "{v}");
        assert_eq!(v["verified"], true, "{v}");
        assert_eq!(
            std::fs::read(&back).unwrap(),
            std::fs::read(dir.path().join(name)).unwrap()
        );
    }
    // The small one in one request, the large one as (at least four) ranges, each one
    // carrying what B2 needs: each file's first by name, the rest by id, no listing.
    let counts = emu.counts();
    assert_eq!(counts.get("b2_download_file_by_name"), 2, "{counts:?}");
    assert!(counts.get("b2_download_file_by_id") >= 3, "{counts:?}");
    assert_eq!(counts.get("b2_list_file_names"), 0, "{counts:?}");
    let (st, listed) = list(cfg, "");
    assert_eq!(st, OK, "{listed}");
    (dir, listed)
}

fn entry<'a>(listed: &'a Value, path: &str) -> &'a Value {
    listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("{path} listed: {listed}"))
}

#[test]
fn sse_c_round_trips_small_and_large_files_with_the_key_on_every_request() {
    let emu = emulator();
    let key = CUSTOMER_KEYS[0];
    let md5 = md5_of(key);
    let cfg = config(&emu, sse_c(key));
    let (_dir, listed) = round_trip(&emu, &cfg);
    for name in ["small", "large"] {
        assert_eq!(
            stored(&emu, name).encryption,
            Some(Sse::C {
                key_md5: md5.clone()
            }),
            "{name} is stored SSE-C under this key"
        );
        let e = entry(&listed, name);
        assert_eq!(e["encryption"], "SSE-C", "{e}");
        assert_eq!(e["customer_key_md5"], md5.as_str(), "{e}");
    }
    // B2 never keeps the key, only its MD5; the emulator's journal shows it.
    let journal = journal(&emu);
    assert!(journal.contains(&md5));
    assert!(!journal.contains(key));
}

#[test]
fn sse_b2_round_trips_small_and_large_files() {
    let emu = emulator();
    let cfg = config(
        &emu,
        json!({"encryption": {"mode": "SSE-B2"}, "concurrency": 4}),
    );
    let (_dir, listed) = round_trip(&emu, &cfg);
    for name in ["small", "large"] {
        assert_eq!(stored(&emu, name).encryption, Some(Sse::B2), "{name}");
        let e = entry(&listed, name);
        assert_eq!(e["encryption"], "SSE-B2", "{e}");
        assert_eq!(e["customer_key_md5"], Value::Null, "{e}");
    }
}

#[test]
fn without_a_setting_the_bucket_default_applies_and_validate_reports_it() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    assert_eq!(
        v["encryption"],
        json!({"mode": "bucket_default", "customer_key_md5": null, "bucket_default": "none"})
    );
    emu.set_default_encryption(BUCKET, Some(Sse::B2));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["encryption"]["bucket_default"], "SSE-B2", "{v}");
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 500, 3);
    assert_eq!(upload(&cfg, &f, "f").0, OK);
    assert_eq!(stored(&emu, "f").encryption, Some(Sse::B2));
    let (_, listed) = list(&cfg, "");
    assert_eq!(entry(&listed, "f")["encryption"], "SSE-B2");
}

#[test]
fn validate_writes_and_reads_the_probe_with_the_customer_key() {
    let emu = emulator();
    let key = CUSTOMER_KEYS[1];
    let md5 = md5_of(key);
    let cfg = config(&emu, sse_c(key));
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["encryption"]["mode"], "SSE-C");
    assert_eq!(v["encryption"]["customer_key_md5"], md5.as_str());
    let probe = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "probe")
        .unwrap();
    assert!(probe["message"].as_str().unwrap().contains(&md5), "{v}");
    // The probe went up SSE-C under this key (the journal recorded its MD5), came back
    // (the emulator refuses a download of it without the key), and is gone.
    assert!(journal(&emu).contains(&md5));
    assert_eq!(emu.counts().get("b2_download_file_by_id"), 1);
    assert!(emu.file_versions(BUCKET).is_empty());
}

#[test]
fn a_restore_without_the_key_or_with_another_one_fails_plainly_and_writes_nothing() {
    let emu = emulator();
    let key = CUSTOMER_KEYS[0];
    let md5 = md5_of(key);
    let cfg = config(&emu, sse_c(key));
    let src = tempfile::tempdir().unwrap();
    let small = write_file(src.path(), "small", 1500, 4);
    let large = write_file(src.path(), "large", LARGE, 5);
    assert_eq!(upload(&cfg, &small, "small").0, OK);
    assert_eq!(upload(&cfg, &large, "large").0, OK);

    let no_key = config(&emu, json!({"concurrency": 4}));
    let other_key = config(&emu, sse_c(CUSTOMER_KEYS[1]));
    for (cfg, has) in [
        (&no_key, "no customer_key".to_string()),
        (&other_key, format!("MD5 {}", md5_of(CUSTOMER_KEYS[1]))),
    ] {
        for name in ["small", "large"] {
            let target = tempfile::tempdir().unwrap();
            std::fs::write(target.path().join("kept"), b"an older restore").unwrap();
            emu.reset_counts();
            let (st, v) = download(cfg, name, &target.path().join(name));
            assert_eq!(st, ENCRYPTION_KEY, "{v}");
            assert_eq!(v["error"]["code"], "encryption_key", "{v}");
            assert_eq!(v["error"]["retryable"], false, "{v}");
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("SSE-C") && message.contains(&md5) && message.contains(&has),
                "the message says which key the file needs and which is configured: {message}"
            );
            assert!(
                message.contains("nothing was downloaded or written"),
                "{message}"
            );
            // B2 refused the by-name request (no byte came); the listing then told which
            // key the file was stored under, and no range was asked for.
            let counts = emu.counts();
            assert_eq!(
                counts.get("b2_download_file_by_name"),
                1,
                "{name}: {counts:?}"
            );
            assert_eq!(counts.get("b2_list_file_names"), 1, "{name}: {counts:?}");
            assert_eq!(
                counts.get("b2_download_file_by_id"),
                0,
                "{name}: {counts:?}"
            );
            let left: Vec<_> = std::fs::read_dir(target.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(
                left,
                vec![std::ffi::OsString::from("kept")],
                "nothing written"
            );
            assert_eq!(
                std::fs::read(target.path().join("kept")).unwrap(),
                b"an older restore"
            );
        }
    }
    // With the key it restores.
    let back = src.path().join("back");
    assert_eq!(download(&cfg, "large", &back).0, OK);
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&large).unwrap());
}

#[test]
fn a_download_refused_for_a_file_without_sse_c_is_a_permission_error() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "plain", 900, 7);
    let cfg = config(&emu, sse_c(CUSTOMER_KEYS[0]));
    assert_eq!(upload(&config(&emu, json!({})), &f, "plain").0, OK);
    emu.inject(Fault {
        call: "b2_download_file_by_id".into(),
        count: 1,
        action: FaultAction::Error {
            status: 403,
            code: "access_denied".into(),
            retry_after: None,
            message: None,
        },
    });
    let back = dir.path().join("back");
    let (st, v) = download(&cfg, "plain", &back);
    assert_eq!(st, PERMISSION, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("may not do this") && !message.contains("SSE-C"),
        "{message}"
    );
    assert!(!back.exists());
}

#[test]
fn files_uploaded_before_sse_c_was_configured_still_restore() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "old", 900, 6);
    assert_eq!(upload(&config(&emu, json!({})), &f, "old").0, OK);
    let cfg = config(&emu, sse_c(CUSTOMER_KEYS[0]));
    let back = dir.path().join("back");
    let (st, v) = download(&cfg, "old", &back);
    assert_eq!(st, OK, "{v}");
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
}

fn fail_after_two_parts(emu: &Emulator, cfg: &str, f: &std::path::Path) {
    pass_then_fail(emu, "b2_upload_part", 2, 2, 503, "service_unavailable");
    let (st, v) = upload(cfg, f, "big");
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    emu.clear_faults();
}

#[test]
fn an_sse_c_upload_resumes_under_its_key_and_never_under_another() {
    let emu = emulator();
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "big", 5 * PART as usize + 11, 7);
    let settings = |key: &str| {
        config(
            &emu,
            json!({"encryption": {"mode": "SSE-C", "customer_key": key},
                   "concurrency": 1, "upload_retries": 1}),
        )
    };
    let first = settings(CUSTOMER_KEYS[0]);
    let second = settings(CUSTOMER_KEYS[1]);

    // Same key: the kept parts are resumed.
    fail_after_two_parts(&emu, &first, &f);
    let (st, v) = upload(&first, &f, "big");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["resumed_bytes"], 2 * PART, "{v}");
    assert_eq!(
        stored(&emu, "big").encryption,
        Some(Sse::C {
            key_md5: md5_of(CUSTOMER_KEYS[0])
        })
    );

    // Another key: the parts under the first key are not taken; a file of its own goes up.
    fail_after_two_parts(&emu, &first, &f);
    emu.reset_counts();
    let (st, v) = upload(&second, &f, "big");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["resumed_bytes"], 0, "{v}");
    assert_eq!(emu.counts().get("b2_start_large_file"), 1);
    assert_eq!(emu.counts().get("b2_upload_part"), 6);
    let newest = &emu
        .file_versions(BUCKET)
        .into_iter()
        .filter(|v| v.action == "upload")
        .collect::<Vec<_>>()[0];
    assert_eq!(
        newest.encryption,
        Some(Sse::C {
            key_md5: md5_of(CUSTOMER_KEYS[1])
        })
    );
    let back = dir.path().join("back");
    assert_eq!(download(&second, "big", &back).0, OK);
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(&f).unwrap());
    // Nor does an upload without a key take them.
    emu.reset_counts();
    let (st, v) = upload(&config(&emu, json!({"concurrency": 1})), &f, "big");
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["resumed_bytes"], 0, "{v}");
}

#[test]
fn bad_encryption_settings_are_refused_by_name() {
    let emu = emulator();
    let short = base64::engine::general_purpose::STANDARD.encode([3u8; 31]);
    for (extra, names) in [
        (
            json!({"encryption": {"mode": "SSE-C"}}),
            "encryption.customer_key",
        ),
        (
            json!({"encryption": {"mode": "SSE-C", "customer_key": short}}),
            "encryption.customer_key",
        ),
        (
            json!({"encryption": {"mode": "SSE-C", "customer_key": "not base64 at all"}}),
            "encryption.customer_key",
        ),
        (
            json!({"encryption": {"mode": "SSE-B2", "customer_key": CUSTOMER_KEYS[0]}}),
            "encryption.customer_key",
        ),
        (json!({"encryption": {"mode": "AES"}}), "encryption.mode"),
        (json!({"encryption": "SSE-B2"}), "encryption"),
        (
            json!({"bandwidth_limit_bytes_per_second": 100}),
            "bandwidth_limit_bytes_per_second",
        ),
    ] {
        let (st, v) = validate(&config(&emu, extra.clone()));
        assert_eq!(st, CONFIG, "{extra}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{extra}: {message}");
        assert!(!message.contains(&short), "{message}");
    }
    assert_eq!(emu.counts().get("b2_authorize_account"), 0);
}

#[test]
fn a_redirect_is_not_followed_so_the_customer_key_goes_nowhere_else() {
    let emu = emulator();
    let elsewhere = emulator();
    let cfg = config(&emu, sse_c(CUSTOMER_KEYS[0]));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "small", 5000, 32);
    assert_eq!(upload(&cfg, &f, "small").0, OK);
    for (call, status, path) in [
        (
            "b2_download_file_by_name",
            307,
            "file/b2dest-test/backups/server1/small",
        ),
        ("b2_list_file_names", 302, "b2api/v4/b2_list_file_names"),
    ] {
        emu.reset_counts();
        emu.inject(Fault {
            call: call.into(),
            count: 1,
            action: FaultAction::Redirect {
                status,
                location: format!("{}/{path}", elsewhere.url()),
            },
        });
        let back = dir.path().join("back");
        let (st, v) = if call == "b2_list_file_names" {
            list(&cfg, "")
        } else {
            download(&cfg, "small", &back)
        };
        assert_eq!(st, REMOTE, "{call}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("redirect") && message.contains("not followed"),
            "{message}"
        );
        assert_eq!(v["error"]["retryable"], false, "{v}");
        assert_eq!(emu.counts().get(call), 1, "{call}: not retried");
        assert_eq!(
            elsewhere.counts().total(),
            0,
            "{call}: the redirect was followed: {:?}",
            elsewhere.counts()
        );
        assert!(!back.exists());
    }
}
