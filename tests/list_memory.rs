//! `dest_list` of 100,000 entries holds a page at a time, not every entry: the library
//! process's peak RSS grows by at most twice the response plus 16 MiB. Measured in a child
//! process (this test binary again, running the ignored test below), so that the emulator
//! and the test's own parsing are not counted.

mod common;

use std::ffi::{CStr, CString};

use common::*;
use serde_json::json;

const ENTRIES: u64 = 100_000;
const CHILD_ENV: &str = "B2DEST_LIST_MEMORY_CONFIG";

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

fn list_raw(cfg: &CString, remote: &str) -> (i32, String) {
    let remote = CString::new(remote).unwrap();
    let mut out = std::ptr::null_mut();
    let st = unsafe { b2dest::ffi::dest_list(cfg.as_ptr(), remote.as_ptr(), &mut out) };
    assert!(!out.is_null());
    // Only the head is copied: the response itself is what is measured.
    let text = unsafe { CStr::from_ptr(out) };
    let len = text.to_bytes().len();
    let head: String = String::from_utf8_lossy(&text.to_bytes()[..len.min(4096)]).into_owned();
    let tail: String =
        String::from_utf8_lossy(&text.to_bytes()[len.saturating_sub(4096)..]).into_owned();
    unsafe { b2dest::ffi::dest_free(out) };
    (st, format!("{len}\n{head}\n{tail}"))
}

#[test]
#[ignore = "the child process of the_memory_of_a_listing_is_a_page_not_every_entry"]
fn child_lists_the_directory() {
    let cfg = CString::new(std::env::var(CHILD_ENV).expect("run by the parent test")).unwrap();
    // Warm-up: the runtime, the HTTP client, the session, the allocator's pools.
    let (st, _) = list_raw(&cfg, "no-such-dir/");
    assert_eq!(st, OK);
    // Peak RSS from here on (the kernel's clear_refs 5 resets VmHWM to the current RSS).
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:") * 1024;
    let (st, text) = list_raw(&cfg, "");
    let peak = status_kib("VmHWM:") * 1024;
    println!("LIST status={st} rss_before={before} peak={peak} response={text}");
}

#[test]
fn the_memory_of_a_listing_is_a_page_not_every_entry() {
    let emu = emulator();
    emu.seed_files(BUCKET, "backups/server1/accounts/", ENTRIES, 1);
    let cfg = config(&emu, json!({}));
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_lists_the_directory",
            "--nocapture",
        ])
        .env(CHILD_ENV, &cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("LIST "))
        .expect("the child's line");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let (before, peak, response) = (field("rss_before"), field("peak"), field("response"));
    assert_eq!(field("status"), OK as u64, "{stdout}");
    assert!(
        stdout.contains(&format!("\"count\":{ENTRIES}")),
        "every entry listed: {stdout}"
    );
    let growth = peak.saturating_sub(before);
    let bound = 2 * response + 16 * 1024 * 1024;
    eprintln!("dest_list of {ENTRIES} entries: response {response} bytes, peak RSS +{growth} bytes (bound {bound})");
    assert!(
        growth <= bound,
        "peak RSS grew by {growth} bytes for a {response}-byte response (bound {bound})"
    );
    // Pages of 1,000: what B2 bills anyway, one call per 1,000 entries returned (and one
    // for the child's warm-up).
    assert_eq!(
        emu.counts().get("b2_list_file_names"),
        1 + ENTRIES / 1_000 + 1
    );
}
