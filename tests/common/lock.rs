//! Shared by the Object Lock tests: a locked bucket, `dest_protect`, and what B2 holds, read
//! from the emulator itself, never through the library.

use std::ffi::CString;

use b2_emulator::{Emulator, StoredVersion};
use serde_json::{json, Value};

use super::{emulator, take_response, BUCKET};

pub const LOCKED: i32 = 13;
pub const DAY_MS: u64 = 86_400_000;
/// The backup directory of `config`.
pub const DIR: &str = "backups/server1/";

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// An emulator whose test bucket has Object Lock (no default retention).
pub fn locked_emulator() -> Emulator {
    let emu = emulator();
    emu.configure_object_lock(BUCKET, json!({"fileLockEnabled": true}));
    emu
}

pub fn protect(cfg: &str, remote: &str) -> (i32, Value) {
    let (cfg, remote) = (CString::new(cfg).unwrap(), CString::new(remote).unwrap());
    let mut out = std::ptr::null_mut();
    let st = unsafe { b2dest::ffi::dest_protect(cfg.as_ptr(), remote.as_ptr(), &mut out) };
    take_response(st, out)
}

/// The stored versions (hide markers and unfinished files left out).
pub fn uploaded(emu: &Emulator) -> Vec<StoredVersion> {
    emu.file_versions(BUCKET)
        .into_iter()
        .filter(|v| v.action == "upload")
        .collect()
}

/// The stored version of `name` under `DIR`.
pub fn stored(emu: &Emulator, name: &str) -> StoredVersion {
    uploaded(emu)
        .into_iter()
        .find(|v| v.file_name == format!("{DIR}{name}"))
        .unwrap_or_else(|| panic!("{name} is on B2"))
}

/// One call of B2's API on the emulator with its master key, as another tool (or an
/// attacker holding the key) would make it: (status, answer).
pub fn raw_b2_call(emu: &Emulator, name: &str, body: Value) -> (u16, Value) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let auth: Value = http
            .get(format!("{}/b2api/v4/b2_authorize_account", emu.url()))
            .basic_auth(emu.account_id(), Some(emu.application_key()))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap();
        let api = auth["apiInfo"]["storageApi"]["apiUrl"].as_str().unwrap();
        let token = auth["authorizationToken"].as_str().unwrap();
        let mut body = body;
        if body.get("bucketId").is_some_and(|b| b == "?") {
            let buckets: Value = http
                .post(format!("{api}/b2api/v4/b2_list_buckets"))
                .header("Authorization", token)
                .body(json!({"accountId": auth["accountId"], "bucketName": BUCKET}).to_string())
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .map(|b| serde_json::from_slice(&b).unwrap())
                .unwrap();
            body["bucketId"] = buckets["buckets"][0]["bucketId"].clone();
        }
        let r = http
            .post(format!("{api}/b2api/v4/{name}"))
            .header("Authorization", token)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}
