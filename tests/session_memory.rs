//! A long-lived host that validates many distinct keys does not grow with them. Alone in
//! its own test binary, so no other test's memory is counted.

mod common;

use common::*;
use serde_json::json;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

fn validate_wrong_keys(emu: &b2_emulator::Emulator, range: std::ops::Range<u32>) {
    for i in range {
        let cfg = config(
            emu,
            json!({ "application_key": format!("wrong-key-{i:05}") }),
        );
        let (st, v) = validate(&cfg);
        assert_eq!(st, 3, "DEST_ERR_AUTH: {v}");
    }
}

#[test]
fn five_thousand_refused_keys_cost_no_more_than_a_few_megabytes() {
    let emu = emulator();
    // The warm-up builds the runtime, the HTTP client and the allocator's pools.
    validate_wrong_keys(&emu, 0..200);
    let before = rss_bytes();
    validate_wrong_keys(&emu, 200..5000);
    let after = rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!("RSS {before} -> {after} bytes (+{growth}) over 4800 refused keys");
    assert!(
        growth < 8 * 1024 * 1024,
        "RSS grew by {growth} bytes over 4800 refused keys"
    );
    assert!(
        b2dest::runtime::process_state().unwrap().sessions.len() <= 1,
        "sessions of refused keys are kept"
    );
    assert_eq!(emu.counts().get("b2_authorize_account"), 5000);
}
