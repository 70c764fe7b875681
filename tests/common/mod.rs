//! Shared by the integration tests: an in-process emulator and thin callers of the C ABI.
#![allow(dead_code)]

pub mod customer;
pub mod faults;
pub mod lock;
pub mod log;
pub mod recovery;
mod root;

#[allow(unused_imports)] // some test binaries need no root
pub use root::needs_root;

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;

use b2_emulator::{Config, Emulator, KeySpec};
use serde_json::{json, Value};

pub const BUCKET: &str = "b2dest-test";
/// Small parts keep multipart tests fast; the emulator is told the same minimum.
pub const MIN_PART: u64 = 10_000;
pub const PART: u64 = 100_000;

pub fn emulator() -> Emulator {
    emulator_with(|_| {})
}

pub fn emulator_with(adjust: impl FnOnce(&mut Config)) -> Emulator {
    let mut config = Config {
        buckets: vec![BUCKET.to_string(), "other-bucket".to_string()],
        min_part_size: MIN_PART,
        recommended_part_size: PART,
        ..Config::default()
    };
    adjust(&mut config);
    Emulator::start(config).expect("emulator starts")
}

/// The configuration of a destination on `emu`, with `extra` fields merged in.
pub fn config(emu: &Emulator, extra: Value) -> String {
    let mut base = json!({
        "name": "test destination",
        "account_id": emu.account_id(),
        "application_key": emu.application_key(),
        "bucket": BUCKET,
        "backup_directory": "backups/server1",
        "api_url": emu.url(),
        "part_size_bytes": PART,
        "retry_initial_delay_ms": 5,
        "timeout_seconds": 10,
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
    base.to_string()
}

pub fn restricted_key(
    emu: &Emulator,
    id: &str,
    caps: &[&str],
    bucket: Option<&str>,
    prefix: Option<&str>,
) -> (String, String) {
    let key = format!("{id}-secret-application-key");
    emu.add_key(KeySpec {
        key_id: id.to_string(),
        application_key: key.clone(),
        capabilities: caps.iter().map(|s| s.to_string()).collect(),
        bucket: bucket.map(str::to_string),
        name_prefix: prefix.map(str::to_string),
    });
    (id.to_string(), key)
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in test strings")
}

/// Takes ownership of a response, checks it is a JSON object with "ok" and "warnings",
/// and frees it.
pub fn take_response(status: i32, ptr: *mut c_char) -> (i32, Value) {
    assert!(!ptr.is_null(), "every call must store a response");
    let text = unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .expect("response is UTF-8")
        .to_string();
    unsafe { b2dest::ffi::dest_free(ptr) };
    let v: Value = serde_json::from_str(&text).expect("response is JSON");
    assert!(v["ok"].is_boolean(), "response has ok: {text}");
    assert!(v["warnings"].is_array(), "response has warnings: {text}");
    assert_eq!(
        v["ok"].as_bool(),
        Some(status == 0),
        "ok matches the status: {text}"
    );
    if status != 0 {
        let e = &v["error"];
        assert!(
            e["code"].is_string() && e["message"].is_string() && e["retryable"].is_boolean(),
            "{text}"
        );
    }
    assert_no_secret(&text);
    (status, v)
}

/// Every key the tests use holds this, and the master key is the emulator's default: no
/// response or log line of the whole suite may contain either, nor a B2 token. Every
/// response of every Rust test goes through `take_response`, which checks.
pub const SECRET_MARK: &str = "-secret-application-key";
pub const MASTER_KEY: &str = "emu-application-key";

/// The emulator's account and upload tokens start with these, as B2's do with "4_".
pub const TOKEN_MARKS: [&str; 2] = ["4_acct_", "4_upld_"];

/// The SSE-C customer keys the tests use (base64 of 32 bytes): secrets exactly like the
/// application key, so no response or log line may hold one.
pub const CUSTOMER_KEYS: [&str; 2] = [
    // 32 bytes of "customer-key-one-secret-32bytes!"
    "Y3VzdG9tZXIta2V5LW9uZS1zZWNyZXQtMzJieXRlcyE=",
    // 32 bytes of "another-customer-key-32-bytes-!!"
    "YW5vdGhlci1jdXN0b21lci1rZXktMzItYnl0ZXMtISE=",
];

pub fn assert_no_secret(text: &str) {
    assert!(
        !text.contains(SECRET_MARK) && !text.contains(MASTER_KEY),
        "a key leaked: {text}"
    );
    assert!(
        !CUSTOMER_KEYS.iter().any(|k| text.contains(k)),
        "an SSE-C customer key leaked: {text}"
    );
    assert!(
        !TOKEN_MARKS.iter().any(|t| text.contains(t)),
        "a B2 token leaked: {text}"
    );
}

pub fn validate(cfg: &str) -> (i32, Value) {
    let cfg = c(cfg);
    let mut out = std::ptr::null_mut();
    let st = unsafe { b2dest::ffi::dest_validate(cfg.as_ptr(), &mut out) };
    take_response(st, out)
}

pub type Progress = Option<unsafe extern "C" fn(u64, u64, *mut c_void) -> i32>;

pub fn upload_with(
    cfg: &str,
    local: &Path,
    remote: &str,
    progress: Progress,
    user: *mut c_void,
) -> (i32, Value) {
    let (cfg, local, remote) = (c(cfg), c(local.to_str().unwrap()), c(remote));
    let mut out = std::ptr::null_mut();
    let st = unsafe {
        b2dest::ffi::dest_upload(
            cfg.as_ptr(),
            local.as_ptr(),
            remote.as_ptr(),
            progress,
            user,
            &mut out,
        )
    };
    take_response(st, out)
}

pub fn upload(cfg: &str, local: &Path, remote: &str) -> (i32, Value) {
    upload_with(cfg, local, remote, None, std::ptr::null_mut())
}

pub fn download_with(
    cfg: &str,
    remote: &str,
    local: &Path,
    progress: Progress,
    user: *mut c_void,
) -> (i32, Value) {
    let (cfg, remote, local) = (c(cfg), c(remote), c(local.to_str().unwrap()));
    let mut out = std::ptr::null_mut();
    let st = unsafe {
        b2dest::ffi::dest_download(
            cfg.as_ptr(),
            remote.as_ptr(),
            local.as_ptr(),
            progress,
            user,
            &mut out,
        )
    };
    take_response(st, out)
}

pub fn download(cfg: &str, remote: &str, local: &Path) -> (i32, Value) {
    download_with(cfg, remote, local, None, std::ptr::null_mut())
}

/// Uploads `len` bytes of `content(len, seed)` as `f` and, when that worked, downloads
/// them back: the copy must be identical. Returns the upload's status and response.
pub fn round_trip(cfg: &str, len: usize, seed: u64) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(dir.path(), "f", len, seed);
    let (st, v) = upload(cfg, &f, "f");
    if st != OK {
        return (st, v);
    }
    let back = dir.path().join("back");
    let (st2, d) = download(cfg, "f", &back);
    assert_eq!(st2, OK, "{d}");
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&f).unwrap(),
        "the stored file is identical"
    );
    (st, v)
}

pub fn list(cfg: &str, remote: &str) -> (i32, Value) {
    let (cfg, remote) = (c(cfg), c(remote));
    let mut out = std::ptr::null_mut();
    let st = unsafe { b2dest::ffi::dest_list(cfg.as_ptr(), remote.as_ptr(), &mut out) };
    take_response(st, out)
}

pub fn usage(cfg: &str) -> (i32, Value) {
    let cfg = c(cfg);
    let mut out = std::ptr::null_mut();
    let st = unsafe { b2dest::ffi::dest_usage(cfg.as_ptr(), &mut out) };
    take_response(st, out)
}

pub fn delete(cfg: &str, remote: &str) -> (i32, Value) {
    let (cfg, remote) = (c(cfg), c(remote));
    let mut out = std::ptr::null_mut();
    let st = unsafe { b2dest::ffi::dest_delete(cfg.as_ptr(), remote.as_ptr(), &mut out) };
    take_response(st, out)
}

/// Deterministic, incompressible-looking content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub fn write_file(dir: &Path, name: &str, len: usize, seed: u64) -> std::path::PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, content(len, seed)).unwrap();
    path
}

pub fn sha1_hex(data: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub const OK: i32 = 0;
pub const INVALID_ARGUMENT: i32 = 1;
pub const CONFIG: i32 = 2;
pub const AUTH: i32 = 3;
pub const PERMISSION: i32 = 4;
pub const NOT_FOUND: i32 = 5;
pub const LIMIT: i32 = 6;
pub const LOCAL_IO: i32 = 7;
pub const NETWORK: i32 = 8;
pub const REMOTE: i32 = 9;
pub const INTEGRITY: i32 = 10;
pub const CANCELLED: i32 = 11;
pub const INTERNAL: i32 = 12;
pub const ENCRYPTION_KEY: i32 = 14;
pub const TLS: i32 = 15;

/// Lets the next `passed` requests of `call` through, then answers the `failing` after them
/// with `status` and `code`: a failure part-way through a transfer.
pub fn pass_then_fail(
    emu: &Emulator,
    call: &str,
    passed: u32,
    failing: u32,
    status: u16,
    code: &str,
) {
    emu.inject(b2_emulator::Fault {
        call: call.into(),
        count: passed,
        action: b2_emulator::FaultAction::Delay { millis: 0 },
    });
    emu.inject(b2_emulator::Fault {
        call: call.into(),
        count: failing,
        action: b2_emulator::FaultAction::Error {
            status,
            code: code.into(),
            retry_after: None,
            message: None,
        },
    });
}
