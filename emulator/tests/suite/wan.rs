//! The WAN model: latency per request and a bandwidth cap per connection (lower bounds
//! on time only; what the calls did is checked as everywhere else).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use b2_emulator::{Emulator, WanModel};
use serde_json::json;

use crate::common::*;

const BODY: usize = 5_000_000;
const TEN_MB_PER_S: u64 = 10_000_000;

fn start_with(wan: WanModel) -> Emulator {
    Emulator::start(b2_emulator::Config { wan, ..config() }).expect("emulator starts")
}

fn capped() -> WanModel {
    WanModel {
        bandwidth_bytes_per_sec: Some(TEN_MB_PER_S),
        ..WanModel::default()
    }
}

fn body() -> Vec<u8> {
    (0..BODY).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_bandwidth_cap_paces_an_upload() {
    // Slower than the download's cap: a debug build's hashing of the body alone must not
    // be able to account for the time.
    let emu = start_with(WanModel {
        bandwidth_bytes_per_sec: Some(2_000_000),
        ..WanModel::default()
    });
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let (url, token) = b2.upload_url(&bucket_id);
    let data = &body()[..2_000_000];
    let t = Instant::now();
    let (status, v) = upload_to(&url, &token, "wan/up.bin", data, &[]);
    let elapsed = t.elapsed();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["contentLength"], 2_000_000);
    assert_eq!(emu.counts().bytes_received, 2_000_000);
    // 2 MB at 2 MB/s: 1 s, less one pacing chunk (10 ms) and the 20 ms catch-up.
    assert!(
        elapsed >= Duration::from_millis(950),
        "2 MB went up in {elapsed:?}"
    );
}

#[test]
fn a_bandwidth_cap_paces_a_download() {
    let emu = start_with(capped());
    let b2 = B2::master(&emu);
    let bucket_id = b2.bucket_id(BUCKET);
    let data = body();
    b2.upload_ok(&bucket_id, "wan/down.bin", &data);
    emu.reset_counts();
    let t = Instant::now();
    let resp = b2.download(BUCKET, "wan/down.bin");
    assert_eq!(resp.status().as_u16(), 200);
    let got = resp.bytes().unwrap();
    let elapsed = t.elapsed();
    assert!(got[..] == data[..], "downloaded body differs");
    assert_eq!(emu.counts().bytes_sent, BODY as u64);
    // 5 MB at 10 MB/s: 0.5 s, less one pacing chunk (10 ms) and the 20 ms catch-up.
    assert!(
        elapsed >= Duration::from_millis(450),
        "5 MB came down in {elapsed:?}"
    );
}

#[test]
fn latency_is_added_to_every_request() {
    let emu = start_with(WanModel {
        latency: Duration::from_millis(80),
        ..WanModel::default()
    });
    let b2 = B2::master(&emu);
    emu.reset_counts();
    let t = Instant::now();
    for _ in 0..5 {
        b2.ok("b2_list_buckets", json!({"accountId": b2.account_id}));
    }
    let elapsed = t.elapsed();
    assert_eq!(emu.counts().get("b2_list_buckets"), 5);
    assert!(
        elapsed >= Duration::from_millis(5 * 80),
        "5 calls took {elapsed:?}"
    );
}

#[test]
fn the_binary_takes_the_wan_flags() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_b2-emulator"))
        .args(["--account-id", "acct", "--application-key", "secret"])
        .args(["--latency-ms", "150", "--bandwidth-mb-per-s", "10"])
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
        .unwrap()
        .to_owned();

    let t = Instant::now();
    let b2 = B2::login(&url, "acct", "secret");
    assert!(
        t.elapsed() >= Duration::from_millis(150),
        "{:?}",
        t.elapsed()
    );
    let bucket_id = b2.bucket_id(BUCKET);
    let (upload_url, token) = b2.upload_url(&bucket_id);
    let t = Instant::now();
    let (status, v) = upload_to(&upload_url, &token, "wan/bin.bin", &body(), &[]);
    let elapsed = t.elapsed();
    assert_eq!(status, 200, "{v}");
    // One request's latency plus 5 MB at 10 MB/s.
    assert!(elapsed >= Duration::from_millis(150 + 450), "{elapsed:?}");
    let _ = child.kill();
    let _ = child.wait();

    let refused = Command::new(env!("CARGO_BIN_EXE_b2-emulator"))
        .args(["--bandwidth-mb-per-s", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!refused.success(), "a zero bandwidth cap was accepted");
}
