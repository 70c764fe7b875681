//! Bounded property tests (run in the normal suite) of the configuration parser and the
//! remote-path rules, through the exported functions where it matters: nothing panics,
//! and no accepted path can leave the backup directory.

use std::ffi::CString;

use b2dest::config::DestinationConfig;
use b2dest::remote_path::{EmptyPath, RemotePath};
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,60}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("account_id".to_string()),
                    Just("application_key".to_string()),
                    Just("bucket".to_string()),
                    Just("backup_directory".to_string()),
                    Just("concurrency".to_string()),
                    Just("free_disk_space_limit".to_string()),
                    Just("quota_bytes".to_string()),
                    Just("api_url".to_string()),
                    Just("part_size_bytes".to_string()),
                    Just("read_only".to_string()),
                    ".{0,12}".prop_map(String::from),
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn path_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("..".to_string()),
            Just(".".to_string()),
            Just("/".to_string()),
            Just("//".to_string()),
            Just("\\".to_string()),
            Just("\u{0}".to_string()),
            Just("\u{7f}".to_string()),
            Just("é".to_string()),
            "[a-z0-9._-]{1,12}".prop_map(String::from),
            ".{1,4}".prop_map(String::from),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_and_never_echoes_the_key(value in json_value(), raw in ".{0,200}") {
        for text in [value.to_string(), raw] {
            if let Err(e) = DestinationConfig::parse(&text) {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty());
                if let Some(k) = value.get("application_key").and_then(|k| k.as_str()).filter(|k| k.len() > 6) {
                    prop_assert!(!msg.contains(k), "{msg}");
                }
            }
        }
    }

    #[test]
    fn accepted_paths_stay_inside_the_backup_directory(raw in path_string(), dir in prop_oneof![Just(""), Just("backups"), Just("a/b")]) {
        if let Ok(p) = RemotePath::resolve(&raw, dir, EmptyPath::Allowed) {
            prop_assert!(p.object_name.len() <= 1024);
            if !dir.is_empty() && !p.relative.is_empty() {
                let prefix = format!("{dir}/");
                prop_assert!(p.object_name.starts_with(&prefix));
            }
            for seg in p.relative.split('/').filter(|_| !p.relative.is_empty()) {
                prop_assert!(!seg.is_empty() && seg != ".." && seg != ".");
            }
            prop_assert!(!p.object_name.chars().any(|c| (c as u32) < 32 || c as u32 == 127 || c == '\\'));
        }
    }

    #[test]
    fn exported_functions_answer_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let bytes: Vec<u8> = bytes.into_iter().filter(|b| *b != 0).collect();
        let text = CString::new(bytes).unwrap();
        let mut out = std::ptr::null_mut();
        let status = unsafe { b2dest::ffi::dest_usage(text.as_ptr(), &mut out) };
        prop_assert!(status == 1 || status == 2, "status {status}");
        prop_assert!(!out.is_null());
        let body = unsafe { std::ffi::CStr::from_ptr(out) }.to_str().unwrap().to_string();
        unsafe { b2dest::ffi::dest_free(out) };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        prop_assert_eq!(v["ok"].as_bool(), Some(false));
    }
}

/// The configuration with one field set to `raw`, a JSON text (e.g. `50.0`, `1e7`).
fn config_with(field: &str, raw: &str) -> String {
    format!(
        r#"{{"name":"n","account_id":"a","application_key":"SECRETKEY","bucket":"bucket-1","quota_bytes":1000,"{field}":{raw}}}"#
    )
}

fn refused_naming(field: &str, raw: &str) -> bool {
    match DestinationConfig::parse(&config_with(field, raw)) {
        Err(b2dest::error::Error::Config(msg)) => msg.contains(&format!("\"{field}\"")),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// PHP sends whole numbers as floats: `50.0`, `1e7`, as numbers or as strings.
    #[test]
    fn whole_floats_are_taken_as_the_number(n in 1u64..=64, form in 0usize..5, quoted in any::<bool>()) {
        let text = match form {
            0 => format!("{n}.0"),
            1 => format!("{n}e0"),
            2 => format!("{n}.000"),
            3 => format!("{}e1", n as f64 / 10.0),
            _ => format!("{n}E+0"),
        };
        let raw = if quoted { format!("\"{text}\"") } else { text };
        let parsed = DestinationConfig::parse(&config_with("concurrency", &raw));
        prop_assert_eq!(parsed.map(|p| p.config.concurrency).ok(), Some(n as usize), "{}", raw);
    }

    #[test]
    fn large_whole_floats_are_exact(n in 1u64..(1u64 << 53)) {
        let raw = format!("{:e}", n as f64);
        let parsed = DestinationConfig::parse(&config_with("quota_bytes", &raw)).unwrap();
        prop_assert_eq!(parsed.config.quota_bytes, Some(n));
    }

    #[test]
    fn fractions_negatives_and_out_of_range_are_refused_by_name(
        n in 0u64..64,
        frac in 1u32..1000,
        field in prop_oneof![Just("concurrency"), Just("upload_retries"), Just("timeout_seconds"), Just("free_disk_space_limit")],
        quoted in any::<bool>(),
    ) {
        let q = |t: String| if quoted { format!("\"{t}\"") } else { t };
        for raw in [format!("{n}.{frac:03}"), format!("-{}.0", n + 1), format!("{}e9", n + 1)] {
            let raw = q(raw);
            prop_assert!(refused_naming(field, &raw), "{} = {} was taken", field, raw);
        }
    }
}

#[test]
fn whole_number_fields_refuse_what_is_not_a_number() {
    for raw in [
        "\"NaN\"",
        "\"nan\"",
        "\"inf\"",
        "\"-inf\"",
        "\"infinity\"",
        "\"1e400\"",
        "\"-0\"",
        "-0.0",
        "\"0x10\"",
        "\"\"",
        "\"5 0\"",
        "true",
        "[5]",
    ] {
        assert!(refused_naming("concurrency", raw), "{raw} was taken");
    }
    let c = DestinationConfig::parse(&config_with("upload_retries", "1e1")).unwrap();
    assert_eq!(c.config.b2.upload_retries, 10);
    let c = DestinationConfig::parse(&config_with("quota_bytes", "1e7")).unwrap();
    assert_eq!(c.config.quota_bytes, Some(10_000_000));
}
