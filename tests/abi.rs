//! The C boundary itself: hostile arguments, configuration errors, the committed header.

mod common;

use std::ffi::{c_char, CStr};
use std::ptr::null_mut;

use b2dest::ffi::*;
use common::*;
use serde_json::{json, Value};

fn cfg_for_port(port: u16, extra: Value) -> String {
    let mut v = json!({"name": "n", "account_id": "id", "application_key": "abc-secret-application-key",
        "bucket": "b2dest-test", "api_url": format!("http://127.0.0.1:{port}"), "timeout_seconds": 2, "retry_initial_delay_ms": 1});
    if let (Value::Object(b), Value::Object(e)) = (&mut v, extra) {
        b.extend(e);
    }
    v.to_string()
}

const GOOD: &[u8] = b"x\0";

#[test]
fn null_pointers_are_refused_by_every_function() {
    let cfg = std::ffi::CString::new(cfg_for_port(9, json!({}))).unwrap();
    let s = GOOD.as_ptr() as *const c_char;
    let n: *const c_char = std::ptr::null();
    unsafe {
        let mut out = null_mut();
        for status in [
            dest_validate(n, &mut out),
            {
                take_response(dest_validate(n, &mut out), out);
                dest_upload(n, s, s, None, null_mut(), &mut out)
            },
            {
                take_response(
                    dest_upload(cfg.as_ptr(), n, s, None, null_mut(), &mut out),
                    out,
                );
                dest_upload(cfg.as_ptr(), s, n, None, null_mut(), &mut out)
            },
            {
                take_response(
                    dest_upload(cfg.as_ptr(), s, n, None, null_mut(), &mut out),
                    out,
                );
                dest_download(cfg.as_ptr(), n, s, None, null_mut(), &mut out)
            },
            {
                take_response(
                    dest_download(cfg.as_ptr(), n, s, None, null_mut(), &mut out),
                    out,
                );
                dest_download(cfg.as_ptr(), s, n, None, null_mut(), &mut out)
            },
            {
                take_response(
                    dest_download(cfg.as_ptr(), s, n, None, null_mut(), &mut out),
                    out,
                );
                dest_list(n, s, &mut out)
            },
            {
                take_response(dest_list(n, s, &mut out), out);
                dest_list(cfg.as_ptr(), n, &mut out)
            },
            {
                take_response(dest_list(cfg.as_ptr(), n, &mut out), out);
                dest_usage(n, &mut out)
            },
            {
                take_response(dest_usage(n, &mut out), out);
                dest_delete(n, s, &mut out)
            },
            {
                take_response(dest_delete(n, s, &mut out), out);
                dest_delete(cfg.as_ptr(), n, &mut out)
            },
            {
                take_response(dest_delete(cfg.as_ptr(), n, &mut out), out);
                dest_protect(n, s, &mut out)
            },
            {
                take_response(dest_protect(n, s, &mut out), out);
                dest_protect(cfg.as_ptr(), n, &mut out)
            },
        ] {
            assert_eq!(status, INVALID_ARGUMENT);
        }
        take_response(dest_protect(cfg.as_ptr(), n, &mut out), out);
        // A NULL response pointer is allowed: the status still comes back.
        assert_eq!(dest_validate(n, std::ptr::null_mut()), INVALID_ARGUMENT);
        assert_eq!(
            dest_list(cfg.as_ptr(), n, std::ptr::null_mut()),
            INVALID_ARGUMENT
        );
        dest_free(null_mut());
        let v = CStr::from_ptr(dest_version()).to_str().unwrap();
        assert_eq!(v, env!("CARGO_PKG_VERSION"));
    }
}

#[test]
fn invalid_utf8_and_bad_json_are_named() {
    let bad: &[u8] = b"{\"name\":\"\xff\xfe\"}\0";
    let mut out = null_mut();
    let st = unsafe { dest_validate(bad.as_ptr() as *const c_char, &mut out) };
    let (st, v) = take_response(st, out);
    assert_eq!(st, INVALID_ARGUMENT);
    assert!(v["error"]["message"].as_str().unwrap().contains("UTF-8"));

    for (text, field) in [
        ("", "JSON"),
        ("{", "JSON"),
        ("[1,2]", "object"),
        ("{\"name\":\"n\"}", "account_id"),
        (&"[".repeat(100_000), "JSON"),
        (
            &format!("{{\"name\":\"{}\"}}", "x".repeat(5_000_000)),
            "name",
        ),
    ] {
        let (st, v) = validate(text);
        assert_eq!(st, CONFIG, "{text:.40}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
}

#[test]
fn each_config_field_is_checked_by_name() {
    for (extra, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(41)}), "name"),
        (json!({"name": 5}), "name"),
        (json!({"account_id": null}), "account_id"),
        (
            json!({"application_key": ["abc-secret-application-key"]}),
            "application_key",
        ),
        (json!({"bucket": "no"}), "bucket"),
        (json!({"backup_directory": "/abs"}), "backup_directory"),
        (json!({"backup_directory": "a//b"}), "backup_directory"),
        (json!({"backup_directory": "a/../b"}), "backup_directory"),
        (
            json!({"free_disk_space_limit": 101, "quota_bytes": 5}),
            "free_disk_space_limit",
        ),
        (json!({"free_disk_space_limit": 50}), "quota_bytes"),
        (json!({"quota_bytes": 0}), "quota_bytes"),
        (json!({"upload_retries": -1}), "upload_retries"),
        (json!({"upload_retries": 101}), "upload_retries"),
        (json!({"concurrency": 0}), "concurrency"),
        (json!({"concurrency": 65}), "concurrency"),
        (json!({"concurrency": 1.5}), "concurrency"),
        (
            json!({"part_size_bytes": 6_000_000_000u64}),
            "part_size_bytes",
        ),
        (json!({"read_only": "yes"}), "read_only"),
        (json!({"api_url": "http://203.0.113.9"}), "api_url"),
        (json!({"ca_file": 5}), "ca_file"),
        (json!({"ca_file": "/nonexistent/ca.pem"}), "ca_file"),
        (json!({"api_url": "ftp://127.0.0.1"}), "api_url"),
        (json!({"timeout_seconds": 0}), "timeout_seconds"),
    ] {
        let (st, v) = validate(&cfg_for_port(9, extra.clone()));
        assert_eq!(st, CONFIG, "{extra}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{extra}: {msg}");
    }
}

#[test]
fn unknown_fields_are_warnings_and_numbers_may_be_strings() {
    let emu = emulator();
    let cfg = config(&emu, json!({"future_option": 1, "upload_retries": "2"}));
    let (st, v) = list(&cfg, "");
    assert_eq!(st, OK, "{v}");
    assert!(v["warnings"].to_string().contains("future_option"), "{v}");
}

#[test]
fn remote_paths_that_could_escape_are_refused() {
    let emu = emulator();
    let cfg = config(&emu, json!({}));
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", 10, 1);
    let long = "a/".repeat(520) + "f";
    for bad in [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "a\\b",
        "a\u{7}b",
        "a\u{7f}",
        long.as_str(),
        "./a",
        "dir/",
    ] {
        let (st, v) = upload(&cfg, &f, bad);
        assert_eq!(st, INVALID_ARGUMENT, "{bad:?}: {v}");
        if !bad.is_empty() && !bad.ends_with('/') {
            assert_eq!(
                download(&cfg, bad, &dir.path().join("out")).0,
                INVALID_ARGUMENT,
                "{bad:?}"
            );
        }
    }
    assert!(emu.file_versions(BUCKET).is_empty());
    assert_eq!(emu.counts().get("b2_upload_file"), 0);
}

#[test]
fn an_unreachable_server_is_a_network_error() {
    // Nothing listens on this port.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (st, v) = usage(&cfg_for_port(port, json!({})));
    assert_eq!(st, NETWORK, "{v}");
    assert_eq!(v["error"]["retryable"], true);
}

/// build.rs writes the header into OUT_DIR only, so this compares the code's header with
/// the committed one, never a file with itself. A header that cannot be read fails the test.
#[test]
fn the_committed_header_is_what_the_code_generates() {
    for name in ["b2dest.h", "b2dest_ffi.h"] {
        let out = std::path::Path::new(env!("OUT_DIR")).join(name);
        let generated = std::fs::read_to_string(&out).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build.rs did not generate the header (see its warning)",
                out.display()
            )
        });
        let committed_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("include")
            .join(name);
        let committed = std::fs::read_to_string(&committed_path)
            .unwrap_or_else(|e| panic!("{}: {e}", committed_path.display()));
        assert!(
            generated == committed,
            "include/{name} differs from what the code generates: run scripts/regen-header.sh and commit include/"
        );
    }
}

#[test]
#[should_panic(expected = "a B2 token leaked")]
fn the_secret_check_catches_a_token() {
    assert_no_secret("{\"error\":\"Authorization: 4_acct_Zx9\"}");
}
