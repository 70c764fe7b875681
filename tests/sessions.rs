//! Sessions and the rules around them: a refused key is not kept, a token that keeps
//! expiring is not blamed on the key, and a header that cannot be sent is a configuration
//! error (that replacing the log callback waits for the threads inside the old one is in
//! tests/log_lines.rs).

mod common;

use b2_emulator::Fault;
use common::faults::error;
use common::*;
use serde_json::json;

fn sessions_kept() -> usize {
    b2dest::runtime::process_state().unwrap().sessions.len()
}

#[test]
fn sessions_of_refused_keys_are_not_kept() {
    let emu = emulator();
    let good = config(&emu, json!({}));
    assert_eq!(validate(&good).0, OK);
    for i in 0..20 {
        let wrong = config(&emu, json!({ "application_key": format!("wrong-key-{i}") }));
        let (st, v) = validate(&wrong);
        assert_eq!(st, 3, "{v}");
    }
    // Other tests of this binary may hold sessions of their own while this runs; each
    // of them holds at most a few, and none of them 20.
    let kept = sessions_kept();
    assert!(kept < 10, "{kept} sessions kept after 20 refused keys");
    // The good key's session survived the refused ones: no second authorization.
    emu.reset_counts();
    assert_eq!(validate(&good).0, OK);
    assert_eq!(emu.counts().get("b2_authorize_account"), 0);
}

#[test]
fn a_token_that_expires_twice_in_a_row_is_renewed_twice() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    emu.inject(Fault {
        call: "b2_list_buckets".into(),
        count: 2,
        action: error(401, "expired_auth_token"),
    });
    let (st, v) = validate(&cfg);
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.counts().get("b2_authorize_account"), 3);
}

#[test]
fn a_token_that_keeps_expiring_is_not_blamed_on_the_key() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    emu.inject(Fault {
        call: "b2_list_buckets".into(),
        count: 50,
        action: error(401, "expired_auth_token"),
    });
    let (st, v) = validate(&cfg);
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(st, 9, "DEST_ERR_REMOTE: {v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    assert!(message.contains("kept expiring"), "{message}");
    assert!(!message.contains("check the Account ID"), "{message}");
    // The first authorization and three renewals, then it gives up.
    assert_eq!(emu.counts().get("b2_authorize_account"), 4);
}

#[test]
fn a_test_mode_that_is_no_header_value_is_a_config_error() {
    let emu = emulator();
    for mode in ["fail_some_uploads\r\nX-Evil: 1", "a\nb", "tab\u{7f}"] {
        let cfg = config(&emu, json!({ "test_mode": mode }));
        let (st, v) = validate(&cfg);
        assert_eq!(st, 2, "DEST_ERR_CONFIG for {mode:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("test_mode"),
            "{v}"
        );
    }
    assert_eq!(emu.counts().total(), 0, "nothing was sent");
}

#[test]
fn threads_that_start_together_share_one_authorization_and_one_bucket_lookup() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    // Each thread waits until all are ready, so that every one finds the session empty.
    let ready = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                ready.wait();
                let (st, v) = list(&cfg, "");
                assert_eq!(st, OK, "{v}");
            });
        }
    });
    let counts = emu.counts();
    assert_eq!(counts.get("b2_authorize_account"), 1);
    assert_eq!(counts.get("b2_list_buckets"), 1);
    assert_eq!(counts.get("b2_list_file_names"), 16);
}

#[test]
fn a_bucket_deleted_and_made_again_is_looked_up_anew_on_the_next_try() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 1_000, 21);
    // The session now knows the bucket's id.
    let (st, v) = list(&cfg, "");
    assert_eq!(st, OK, "{v}");
    emu.remake_bucket(BUCKET);
    emu.reset_counts();
    // B2 answers the old id with 400 bad_bucket_id: told, retryable, not sent again.
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, REMOTE, "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("bad_bucket_id") && message.contains("looks the bucket up anew"),
        "{v}"
    );
    assert_eq!(emu.counts().get("b2_list_buckets"), 0);
    // The next try looks the bucket up again, once, and lands in the new bucket.
    let (st, v) = upload(&cfg, &f, "f");
    assert_eq!(st, OK, "{v}");
    assert_eq!(emu.counts().get("b2_list_buckets"), 1);
    assert_eq!(emu.file_versions(BUCKET).len(), 1);
}
