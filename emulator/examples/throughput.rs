//! Measures the emulator's sustained upload throughput:
//! 1. one 1 GiB b2_upload_file with its SHA1 in the header;
//! 2. a large file of 100 MB parts sent by 4 connections at once;
//! 3. downloading the 1 GiB file back in 4 ranges at once.
//!
//! The client streams a reused 16 MiB buffer (zero-copy `Bytes` clones), so it never
//! holds the whole body. Run it in release mode:
//!
//! ```text
//! cargo run --release -p b2-emulator --example throughput [-- --data-dir DIR] [--rounds N]
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use b2_emulator::{Config, Emulator};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const GIB: u64 = 1 << 30;
const PART_SIZE: u64 = 100_000_000;
const PARTS: u64 = 12;
const CONNECTIONS: usize = 4;
const BLOCK: usize = 16 << 20;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// `len` bytes of the repeating pattern, as a stream of cheap `Bytes` clones of `block`.
fn body_stream(block: Bytes, offset: u64, len: u64) -> reqwest::Body {
    let block_len = block.len() as u64;
    let mut pos = offset;
    let end = offset + len;
    let chunks = std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let start = (pos % block_len) as usize;
        let n = (block_len - start as u64).min(end - pos) as usize;
        pos += n as u64;
        Some(Ok::<Bytes, std::io::Error>(block.slice(start..start + n)))
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

fn sha1_of(block: &[u8], offset: u64, len: u64) -> String {
    let mut hasher = Sha1::new();
    let mut pos = offset;
    let end = offset + len;
    while pos < end {
        let start = (pos % block.len() as u64) as usize;
        let n = ((block.len() - start) as u64).min(end - pos) as usize;
        hasher.update(&block[start..start + n]);
        pos += n as u64;
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn call(&self, name: &str, body: Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}/b2api/v2/{name}", self.url))
            .header("Authorization", &self.token)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let value: Value = resp.json().await?;
        if !status.is_success() {
            return Err(format!("{name}: {status} {value}").into());
        }
        Ok(value)
    }
}

fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

async fn single_upload(api: &Api, bucket_id: &str, block: &Bytes, sha1: &str) -> Result<Duration> {
    let target = api
        .call("b2_get_upload_url", json!({"bucketId": bucket_id}))
        .await?;
    let started = Instant::now();
    let resp = api
        .http
        .post(target["uploadUrl"].as_str().unwrap())
        .header(
            "Authorization",
            target["authorizationToken"].as_str().unwrap(),
        )
        .header("X-Bz-File-Name", "bench/one-gib.bin")
        .header("Content-Type", "application/octet-stream")
        .header("X-Bz-Content-Sha1", sha1)
        .header("Content-Length", GIB)
        .body(body_stream(block.clone(), 0, GIB))
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        return Err(format!("upload: {status} {text}").into());
    }
    Ok(started.elapsed())
}

async fn parallel_parts(api: Arc<Api>, bucket_id: &str, block: &Bytes) -> Result<Duration> {
    let start = api
        .call(
            "b2_start_large_file",
            json!({"bucketId": bucket_id, "fileName": "bench/parts.bin", "contentType": "b2/x-auto"}),
        )
        .await?;
    let file_id = start["fileId"].as_str().unwrap().to_owned();
    // Part URLs and SHA1s are prepared before the clock starts.
    let mut urls = Vec::new();
    for _ in 0..CONNECTIONS {
        let u = api
            .call("b2_get_upload_part_url", json!({"fileId": file_id}))
            .await?;
        urls.push((
            u["uploadUrl"].as_str().unwrap().to_owned(),
            u["authorizationToken"].as_str().unwrap().to_owned(),
        ));
    }
    let sha1s: Vec<String> = (0..PARTS)
        .map(|i| sha1_of(block, i * PART_SIZE, PART_SIZE))
        .collect();
    let sha1s = Arc::new(sha1s);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (worker, (url, token)) in urls.into_iter().enumerate() {
        let api = api.clone();
        let block = block.clone();
        let sha1s = sha1s.clone();
        tasks.push(tokio::spawn(async move {
            let mut part = worker as u64;
            while part < PARTS {
                let resp = api
                    .http
                    .post(&url)
                    .header("Authorization", &token)
                    .header("X-Bz-Part-Number", part + 1)
                    .header("X-Bz-Content-Sha1", &sha1s[part as usize])
                    .header("Content-Length", PART_SIZE)
                    .body(body_stream(block.clone(), part * PART_SIZE, PART_SIZE))
                    .send()
                    .await?;
                let status = resp.status();
                let text = resp.text().await?;
                if !status.is_success() {
                    return Err::<(), Box<dyn std::error::Error + Send + Sync>>(
                        format!("part {}: {status} {text}", part + 1).into(),
                    );
                }
                part += CONNECTIONS as u64;
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed();
    api.call(
        "b2_finish_large_file",
        json!({"fileId": file_id, "partSha1Array": *sha1s}),
    )
    .await?;
    Ok(elapsed)
}

/// The 1 GiB file back in `CONNECTIONS` ranges at once, as a restore fetches it: one
/// connection alone is slower than the emulator can send.
async fn download(api: Arc<Api>) -> Result<Duration> {
    let started = Instant::now();
    let share = GIB / CONNECTIONS as u64;
    let mut tasks = Vec::new();
    for worker in 0..CONNECTIONS as u64 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let (first, last) = (worker * share, (worker + 1) * share - 1);
            let resp = api
                .http
                .get(format!("{}/file/b2dest-test/bench/one-gib.bin", api.url))
                .header("Authorization", &api.token)
                .header("Range", format!("bytes={first}-{last}"))
                .send()
                .await?;
            let mut stream = resp.bytes_stream();
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                total += chunk?.len() as u64;
            }
            Ok::<u64, Box<dyn std::error::Error + Send + Sync>>(total)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    if total != GIB {
        return Err(format!("downloaded {total} bytes").into());
    }
    Ok(started.elapsed())
}

fn main() -> Result<()> {
    let mut data_dir: Option<PathBuf> = None;
    let mut rounds = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--data-dir" => data_dir = args.next().map(PathBuf::from),
            "--rounds" => rounds = args.next().and_then(|r| r.parse().ok()).unwrap_or(3),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let emulator = Emulator::start(Config {
        data_dir,
        ..Config::default()
    })?;
    println!(
        "emulator at {} (data dir {})",
        emulator.url(),
        emulator.data_dir().display()
    );

    // The client gets its own runtime; the emulator runs on its own threads.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut block = vec![0u8; BLOCK];
        fastrand::Rng::with_seed(7).fill(&mut block);
        let block = Bytes::from(block);
        let gib_sha1 = sha1_of(&block, 0, GIB);

        let http = reqwest::Client::builder().build()?;
        let auth: Value = http
            .get(format!("{}/b2api/v2/b2_authorize_account", emulator.url()))
            .basic_auth(emulator.account_id(), Some(emulator.application_key()))
            .send()
            .await?
            .json()
            .await?;
        let api = Arc::new(Api {
            http,
            url: emulator.url().to_owned(),
            token: auth["authorizationToken"].as_str().unwrap().to_owned(),
        });
        let buckets = api
            .call("b2_list_buckets", json!({"accountId": emulator.account_id()}))
            .await?;
        let bucket_id = buckets["buckets"][0]["bucketId"].as_str().unwrap().to_owned();

        let mut single = Vec::new();
        let mut parts = Vec::new();
        let mut downloads = Vec::new();
        for round in 1..=rounds {
            let t = single_upload(&api, &bucket_id, &block, &gib_sha1).await?;
            single.push(mb_per_s(GIB, t));
            let t = parallel_parts(api.clone(), &bucket_id, &block).await?;
            parts.push(mb_per_s(PARTS * PART_SIZE, t));
            let t = download(api.clone()).await?;
            downloads.push(mb_per_s(GIB, t));
            println!(
                "round {round}: 1 GiB single upload {:.0} MB/s | {PARTS} x 100 MB parts on {CONNECTIONS} connections {:.0} MB/s | 1 GiB download on {CONNECTIONS} connections {:.0} MB/s",
                single.last().unwrap(),
                parts.last().unwrap(),
                downloads.last().unwrap()
            );
        }
        let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        let median = |v: &[f64]| {
            let mut s = v.to_vec();
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            s[s.len() / 2]
        };
        println!(
            "single 1 GiB upload (SHA1 in header): median {:.0} MB/s, best {:.0} MB/s",
            median(&single),
            best(&single)
        );
        println!(
            "100 MB parts x {CONNECTIONS} connections: median {:.0} MB/s, best {:.0} MB/s",
            median(&parts),
            best(&parts)
        );
        println!(
            "1 GiB download on {CONNECTIONS} connections: median {:.0} MB/s, best {:.0} MB/s",
            median(&downloads),
            best(&downloads)
        );
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    emulator.stop();
    Ok(())
}
