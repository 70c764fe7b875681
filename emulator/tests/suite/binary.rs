//! The `b2-emulator` binary: first stdout line, flags, clean stop on SIGTERM / SIGINT.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::*;

fn run_until_signal(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_b2-emulator"))
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--account-id", "acct", "--application-key", "secret"])
        .args(["--bucket", "first-bucket", "--bucket", "second-bucket"])
        .args(["--key", "rk:rs:listBuckets,listFiles:first-bucket:logs/"])
        .args(["--min-part-size", "1234", "--token-lifetime-secs", "60"])
        .args(["--bucket-encryption", "SSE-B2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let url = first
        .trim()
        .strip_prefix("B2_EMULATOR_URL=")
        .unwrap_or_else(|| panic!("first line was {first:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let b2 = B2::login(&url, "acct", "secret");
    let buckets = b2.ok("b2_list_buckets", json!({"accountId": "acct"}));
    assert_eq!(buckets["buckets"].as_array().unwrap().len(), 2);
    for b in buckets["buckets"].as_array().unwrap() {
        assert_eq!(
            b["defaultServerSideEncryption"]["value"]["mode"], "SSE-B2",
            "{b}"
        );
    }
    let (status, v) = authorize_raw(&url, "rk", "rs", 1);
    assert_eq!(status, 200);
    assert_eq!(v["allowed"]["bucketName"], "first-bucket");
    assert_eq!(v["allowed"]["namePrefix"], "logs/");
    assert_eq!(v["absoluteMinimumPartSize"], 1234);

    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t = Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "exit status {exit:?}");
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "did not stop on SIG{signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.path().join("journal.jsonl").exists());
}

#[test]
fn the_binary_stops_cleanly_on_sigterm() {
    run_until_signal("TERM");
}

#[test]
fn the_binary_stops_cleanly_on_sigint() {
    run_until_signal("INT");
}
