//! Runs `b2sdk_front.py` (b2sdk's RawSimulator over HTTP) as a child process, and reads
//! what the simulator holds through the front's `/sim/` calls, never through the library.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

use crate::common::{download, upload, OK};

/// The simulator's bucket made without the lock flag (its `isFileLockEnabled` is null),
/// and one made with Object Lock on.
pub const SIM_BUCKET: &str = "b2dest-test";
pub const LOCKED_BUCKET: &str = "b2dest-locked";

/// Parts far below B2's 5 MB: the simulator's minimum is 200 bytes.
pub const SIM_PART: u64 = 10_000;
pub const LARGE: usize = 5 * SIM_PART as usize + 123;
pub const DIR: &str = "backups/server1/";

/// What the simulator's master key and tokens look like: no response may hold one.
const SIM_SECRETS: [&str; 2] = ["masterKey-", "auth_token_"];

pub struct Simulator {
    child: Child,
    url: String,
    account_id: String,
    application_key: String,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The venv's python: `B2DEST_SIMULATOR_PYTHON`, else the one scripts/test.sh makes.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("B2DEST_SIMULATOR_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let made = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/venv-b2sdk/bin/python");
    made.exists().then_some(made)
}

fn unavailable(why: &str) -> Option<Simulator> {
    if std::env::var("B2DEST_REQUIRE_SIMULATOR").as_deref() == Ok("1") {
        panic!("B2DEST_REQUIRE_SIMULATOR=1 but the b2sdk simulator cannot run: {why}");
    }
    eprintln!(
        "\n*** SKIPPED: the b2sdk simulator cannot run ({why}); set B2DEST_SIMULATOR_PYTHON \
         to a python with b2sdk (bash scripts/test.sh makes one) ***\n"
    );
    None
}

impl Simulator {
    /// A fresh simulator with `SIM_BUCKET` and `LOCKED_BUCKET`, or None (after a loud
    /// skip line) when no python with b2sdk is there.
    pub fn start() -> Option<Simulator> {
        let Some(python) = python() else {
            return unavailable("B2DEST_SIMULATOR_PYTHON is not set");
        };
        let front =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/simulator/b2sdk_front.py");
        let child = Command::new(&python)
            .arg(front)
            .args(["--bucket", SIM_BUCKET, "--locked-bucket", LOCKED_BUCKET])
            // The front exits when its stdin closes: it never outlives the test process.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => return unavailable(&format!("{}: {e}", python.display())),
        };
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut field = |name: &str| -> Option<String> {
            let line = lines.next()?.ok()?;
            line.strip_prefix(&format!("{name}=")).map(str::to_string)
        };
        let started = (|| {
            Some((
                field("B2_SIMULATOR_URL")?,
                field("B2_SIMULATOR_ACCOUNT_ID")?,
                field("B2_SIMULATOR_APPLICATION_KEY")?,
            ))
        })();
        let Some((url, account_id, application_key)) = started else {
            let _ = child.kill();
            let _ = child.wait();
            return unavailable(&format!(
                "{} did not start the front (is b2sdk installed in it?)",
                python.display()
            ));
        };
        Some(Simulator {
            child,
            url,
            account_id,
            application_key,
        })
    }

    /// A destination on `bucket` of the simulator (its master key), with `extra` merged in.
    pub fn config(&self, bucket: &str, part_size: u64, extra: Value) -> String {
        let key = (self.account_id.clone(), self.application_key.clone());
        self.config_with_key(bucket, &key, part_size, extra)
    }

    /// A key made by the simulator's own `b2_create_key`: (keyID, application key).
    pub fn create_key(
        &self,
        capabilities: &[&str],
        buckets: Option<&[&str]>,
        name_prefix: Option<&str>,
    ) -> (String, String) {
        let key = self.control(
            "POST",
            "/sim/create_key",
            json!({"capabilities": capabilities, "buckets": buckets, "namePrefix": name_prefix}),
        );
        (
            key["applicationKeyId"].as_str().unwrap().to_string(),
            key["applicationKey"].as_str().unwrap().to_string(),
        )
    }

    /// Hides `file_name` with the simulator's own `b2_hide_file`, as another tool would.
    pub fn hide(&self, bucket: &str, file_name: &str) {
        self.control(
            "POST",
            "/sim/hide",
            json!({"bucket": bucket, "fileName": file_name}),
        );
    }

    /// The simulator's own token expiry, for every token it has given out.
    pub fn expire_tokens(&self) {
        self.control("POST", "/sim/expire_tokens", json!({}));
    }

    /// `config` under another key.
    pub fn config_with_key(
        &self,
        bucket: &str,
        key: &(String, String),
        part_size: u64,
        extra: Value,
    ) -> String {
        let mut base = json!({
            "name": "simulator destination",
            "account_id": key.0,
            "application_key": key.1,
            "bucket": bucket,
            "backup_directory": "backups/server1",
            "api_url": self.url,
            "part_size_bytes": part_size,
            "retry_initial_delay_ms": 5,
            "timeout_seconds": 10,
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
            b.extend(e);
        }
        base.to_string()
    }

    /// One request to the front's control calls; the answer's JSON.
    fn control(&self, method: &str, path: &str, body: Value) -> Value {
        let addr = self.url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).expect("the front is listening");
        let body = body.to_string();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, json) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        serde_json::from_str(json).expect("JSON")
    }

    /// Every file the simulator holds in `bucket` (uploads, hide markers, unfinished large
    /// files), in B2's listing order: `fileName`, `action`, `contentLength`, `parts`,
    /// `retentionMode`, `retainUntil`, `sseMode`.
    pub fn files(&self, bucket: &str) -> Vec<Value> {
        let v = self.control("GET", &format!("/sim/files?bucket={bucket}"), json!({}));
        v.as_array().unwrap().clone()
    }

    fn counts(&self) -> Value {
        self.control("GET", "/sim/counts", json!({}))
    }

    /// How many times `call` reached the simulator since the start or the last reset.
    pub fn calls(&self, call: &str) -> u64 {
        self.counts()["calls"][call].as_u64().unwrap_or(0)
    }

    /// Upload bodies received (files and parts).
    pub fn bytes_received(&self) -> u64 {
        self.counts()["bytes"]["received"].as_u64().unwrap()
    }

    /// Download bodies sent.
    pub fn bytes_sent(&self) -> u64 {
        self.counts()["bytes"]["sent"].as_u64().unwrap()
    }

    pub fn reset_counts(&self) {
        self.control("POST", "/sim/reset_counts", json!({}));
    }

    /// Lets `after` requests of `call` through, then answers the next `count` with
    /// `status` and `code` (the front's, not the simulator's: it has no such faults).
    pub fn fail(&self, call: &str, after: u32, count: u32, status: u16, code: &str) {
        self.control(
            "POST",
            "/sim/fail",
            json!({"call": call, "after": after, "count": count, "status": status, "code": code}),
        );
    }

    /// Lets `after` requests of `call` through, then holds the next `count` for `millis`
    /// and answers them 503 (the simulator never sees them): a hung server.
    pub fn hang(&self, call: &str, after: u32, count: u32, millis: u64) {
        self.control(
            "POST",
            "/sim/fail",
            json!({"call": call, "after": after, "count": count, "status": 503,
                   "code": "service_unavailable", "delay_ms": millis}),
        );
    }

    /// Lets `after` requests of `call` through, then lets the simulator act on the next
    /// one and closes the connection before its answer.
    pub fn lose_answer(&self, call: &str, after: u32) {
        self.fail(call, after, 1, 0, "");
    }

    pub fn clear_faults(&self) {
        self.control("POST", "/sim/clear_faults", json!({}));
    }
}

/// The simulator's key and tokens are secrets too: checked beside `take_response`'s own.
pub fn assert_no_simulator_secret(v: &Value) {
    let text = v.to_string();
    for s in SIM_SECRETS {
        assert!(
            !text.contains(s),
            "a simulator secret ({s}...) leaked: {text}"
        );
    }
}

/// A destination on `SIM_BUCKET` with the master key.
pub fn sim_config(sim: &Simulator, extra: Value) -> String {
    sim.config(SIM_BUCKET, SIM_PART, extra)
}

pub fn upload_ok(cfg: &str, local: &std::path::Path, remote: &str) -> Value {
    let (st, v) = upload(cfg, local, remote);
    assert_eq!(st, OK, "{v}");
    assert_read_whole(&v);
    v
}

/// No secret of the simulator's, and every answer of its read: a warning would say an
/// entry or answer the library could not read.
pub fn assert_read_whole(v: &Value) {
    assert_no_simulator_secret(v);
    assert_eq!(v["warnings"], json!([]), "{v}");
}

pub fn restore_matches(cfg: &str, remote: &str, original: &std::path::Path) {
    let dir = tempfile::tempdir().unwrap();
    let back = dir.path().join("back");
    let (st, v) = download(cfg, remote, &back);
    assert_eq!(st, OK, "{v}");
    assert_eq!(v["verified"], true, "{v}");
    assert_read_whole(&v);
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(original).unwrap()
    );
}

/// Deletes `remote` and checks it freed `versions` versions of `bytes` in all and left the
/// simulator's bucket empty.
pub fn delete_everything(sim: &Simulator, cfg: &str, remote: &str, versions: u64, bytes: u64) {
    let (st, del) = crate::common::delete(cfg, remote);
    assert_eq!(st, crate::common::OK, "{del}");
    assert_read_whole(&del);
    assert_eq!(
        (
            del["deleted_versions"].as_u64(),
            del["bytes_freed"].as_u64()
        ),
        (Some(versions), Some(bytes)),
        "{del}"
    );
    assert!(sim.files(SIM_BUCKET).is_empty());
}
