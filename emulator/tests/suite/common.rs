//! A tiny blocking B2 client for the emulator's tests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use b2_emulator::{Config, Emulator};
use reqwest::blocking::{Client, Response};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

pub const BUCKET: &str = "b2dest-test";

pub fn sha1_hex(data: &[u8]) -> String {
    let digest = Sha1::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Test config: small minimum part size so large-file tests stay quick.
pub fn config() -> Config {
    Config {
        min_part_size: 1000,
        ..Config::default()
    }
}

pub fn start() -> Emulator {
    Emulator::start(config()).expect("emulator starts")
}

pub fn http() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A session of one key against one emulator.
pub struct B2 {
    pub http: Client,
    pub url: String,
    pub token: String,
    pub account_id: String,
}

pub fn authorize_raw(url: &str, key_id: &str, key: &str, version: u8) -> (u16, Value) {
    let resp = http()
        .get(format!("{url}/b2api/v{version}/b2_authorize_account"))
        .basic_auth(key_id, Some(key))
        .send()
        .unwrap();
    status_json(resp)
}

pub fn status_json(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

impl B2 {
    pub fn master(emu: &Emulator) -> B2 {
        B2::login(emu.url(), emu.account_id(), emu.application_key())
    }

    pub fn login(url: &str, key_id: &str, key: &str) -> B2 {
        let (status, auth) = authorize_raw(url, key_id, key, 2);
        assert_eq!(status, 200, "authorize {key_id}: {auth}");
        B2 {
            http: http(),
            url: url.to_owned(),
            token: auth["authorizationToken"].as_str().unwrap().to_owned(),
            account_id: auth["accountId"].as_str().unwrap().to_owned(),
        }
    }

    /// POSTs a JSON API call and returns (status, body).
    pub fn call(&self, name: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/b2api/v2/{name}", self.url))
            .header("Authorization", &self.token)
            .json(&body)
            .send()
            .unwrap();
        status_json(resp)
    }

    /// A call that must succeed.
    pub fn ok(&self, name: &str, body: Value) -> Value {
        let (status, value) = self.call(name, body);
        assert_eq!(status, 200, "{name} failed: {value}");
        value
    }

    pub fn bucket_id(&self, name: &str) -> String {
        let v = self.ok(
            "b2_list_buckets",
            json!({"accountId": self.account_id, "bucketName": name}),
        );
        v["buckets"][0]["bucketId"].as_str().unwrap().to_owned()
    }

    pub fn upload_url(&self, bucket_id: &str) -> (String, String) {
        let v = self.ok("b2_get_upload_url", json!({ "bucketId": bucket_id }));
        (
            v["uploadUrl"].as_str().unwrap().to_owned(),
            v["authorizationToken"].as_str().unwrap().to_owned(),
        )
    }

    /// Uploads with the SHA1 in the header; returns (status, body).
    pub fn upload(&self, bucket_id: &str, name: &str, data: &[u8]) -> (u16, Value) {
        let (url, token) = self.upload_url(bucket_id);
        upload_to(&url, &token, name, data, &[])
    }

    pub fn upload_ok(&self, bucket_id: &str, name: &str, data: &[u8]) -> Value {
        let (status, v) = self.upload(bucket_id, name, data);
        assert_eq!(status, 200, "upload {name}: {v}");
        v
    }

    pub fn download(&self, bucket: &str, name: &str) -> Response {
        self.http
            .get(format!("{}/file/{bucket}/{}", self.url, encode(name)))
            .header("Authorization", &self.token)
            .send()
            .unwrap()
    }

    pub fn start_large(&self, bucket_id: &str, name: &str, info: Value) -> String {
        let v = self.ok(
            "b2_start_large_file",
            json!({"bucketId": bucket_id, "fileName": name, "contentType": "b2/x-auto", "fileInfo": info}),
        );
        v["fileId"].as_str().unwrap().to_owned()
    }

    pub fn part_url(&self, file_id: &str) -> (String, String) {
        let v = self.ok("b2_get_upload_part_url", json!({ "fileId": file_id }));
        (
            v["uploadUrl"].as_str().unwrap().to_owned(),
            v["authorizationToken"].as_str().unwrap().to_owned(),
        )
    }

    pub fn upload_part(&self, file_id: &str, number: u32, data: &[u8]) -> (u16, Value) {
        let (url, token) = self.part_url(file_id);
        part_to(&url, &token, number, data)
    }
}

/// Percent-encodes a file name the way B2 clients do (keeping '/').
pub fn encode(name: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(name, SET).to_string()
}

pub fn upload_to(
    url: &str,
    token: &str,
    name: &str,
    data: &[u8],
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut headers = vec![
        ("Authorization".to_owned(), token.to_owned()),
        ("X-Bz-File-Name".to_owned(), encode(name)),
        ("Content-Type".to_owned(), "b2/x-auto".to_owned()),
        ("X-Bz-Content-Sha1".to_owned(), sha1_hex(data)),
    ];
    // Extra headers replace the defaults of the same name.
    for (k, v) in extra {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        headers.push((k.to_string(), v.to_string()));
    }
    let mut req = http().post(url);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    status_json(req.body(data.to_vec()).send().unwrap())
}

pub fn part_to(url: &str, token: &str, number: u32, data: &[u8]) -> (u16, Value) {
    let resp = http()
        .post(url)
        .header("Authorization", token)
        .header("X-Bz-Part-Number", number.to_string())
        .header("X-Bz-Content-Sha1", sha1_hex(data))
        .body(data.to_vec())
        .send()
        .unwrap();
    status_json(resp)
}

/// Deterministic test content.
pub fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

/// `host:port` of an `http://host:port[/...]` URL.
pub fn host_port(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest.split('/').next().unwrap().to_owned()
}

/// The path of an `http://host:port/path` URL.
pub fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    format!("/{}", rest.split_once('/').unwrap().1)
}

/// Sends raw bytes on a fresh connection, optionally half-closes, and reads the whole
/// answer (until the server closes or `wait` passes). Returns the answer as text.
pub fn raw_exchange(url: &str, request: &[u8], half_close: bool, wait: Duration) -> String {
    let mut stream = TcpStream::connect(host_port(url)).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    stream.write_all(request).unwrap();
    if half_close {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Number of content blobs the emulator holds (to check "nothing stored").
pub fn blob_count(emu: &Emulator) -> usize {
    std::fs::read_dir(emu.data_dir().join("blobs"))
        .unwrap()
        .count()
}

pub fn temp_count(emu: &Emulator) -> usize {
    std::fs::read_dir(emu.data_dir().join("tmp"))
        .unwrap()
        .count()
}

pub fn names_of(list: &Value) -> Vec<String> {
    list["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fileName"].as_str().unwrap().to_owned())
        .collect()
}
