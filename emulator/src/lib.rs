//! A strict local Backblaze B2 native-API server for tests, demos and benchmarks.
//!
//! It enforces what real B2 enforces (tokens, capabilities, bucket and prefix
//! restrictions, SHA1s, sizes, names), streams uploads to disk while hashing them,
//! persists its state in a data directory, and lets tests script faults and read
//! per-call counters. See README.md for the HTTP control API and the binary.

mod api;
mod auth;
mod calls;
mod content_file;
mod control;
mod download;
mod error;
mod faults;
mod http;
mod names;
mod server;
mod sse;
mod state;
mod store;
mod tls;
mod unsupported;
mod upload;
mod variants;
mod wan;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use auth::KeySpec;
pub use faults::{Counts, Fault, FaultAction};
pub use sse::Sse;
pub use store::StoredVersion;
pub use tls::TlsCert;
pub use variants::{Variant, VariantRule};
pub use wan::WanModel;

use state::Shared;

/// How to run an emulator.
#[derive(Clone, Debug)]
pub struct Config {
    /// Default 127.0.0.1:0 (any free port on loopback).
    pub listen: SocketAddr,
    /// `None`: a temp dir deleted when the emulator stops.
    pub data_dir: Option<PathBuf>,
    /// The master key's keyID (and the account id). Default "emu-account".
    pub account_id: String,
    /// Default "emu-application-key".
    pub application_key: String,
    /// Created (allPrivate) at start if missing. Default `["b2dest-test"]`.
    pub buckets: Vec<String>,
    /// Extra, possibly restricted, keys.
    pub keys: Vec<KeySpec>,
    /// absoluteMinimumPartSize, enforced for every part but the last. Default 5,000,000.
    pub min_part_size: u64,
    /// recommendedPartSize. Default 100,000,000.
    pub recommended_part_size: u64,
    /// Lifetime of account and upload tokens. Default 24 h.
    pub token_lifetime: Duration,
    /// Added latency and a bandwidth cap, for benchmarks. Default: off.
    pub wan: WanModel,
    /// The default encryption given to `buckets` at start: `Some(Some(Sse::B2))` for
    /// SSE-B2, `Some(None)` for none; `None` leaves them as they are.
    pub bucket_encryption: Option<Option<Sse>>,
    /// Answer shapes other than the canonical one, per call (`VariantRule`). Default: none.
    pub variants: Vec<VariantRule>,
    /// HTTPS with this certificate (the URLs handed out are then https); `None`: plain
    /// HTTP. The CA's PEM is at `Emulator::ca_pem_path`.
    pub tls: Option<TlsCert>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            data_dir: None,
            account_id: "emu-account".to_owned(),
            application_key: "emu-application-key".to_owned(),
            buckets: vec!["b2dest-test".to_owned()],
            keys: Vec::new(),
            min_part_size: 5_000_000,
            recommended_part_size: 100_000_000,
            token_lifetime: Duration::from_secs(24 * 3600),
            wan: WanModel::default(),
            bucket_encryption: None,
            variants: Vec::new(),
            tls: None,
        }
    }
}

/// A running emulator; stops (gracefully) on `stop` or drop.
pub struct Emulator {
    url: String,
    data_dir: PathBuf,
    account_id: String,
    application_key: String,
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    ca_pem_path: Option<PathBuf>,
    thread: Option<JoinHandle<()>>,
    /// Dropped after the server thread has stopped, deleting the temp data dir.
    _temp_dir: Option<tempfile::TempDir>,
}

impl Emulator {
    /// Runs the server on its own thread with its own multi-thread tokio runtime (so it
    /// can be used from sync tests and from inside another runtime); returns once listening.
    pub fn start(config: Config) -> io::Result<Emulator> {
        let (data_dir, temp_dir) = match &config.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new().prefix("b2-emulator-").tempdir()?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let store = store::Store::open(&data_dir)?;
        for name in &config.buckets {
            if store.bucket_by_name(name).is_none() {
                plain_bucket(&store, name).map_err(|e| io::Error::other(e.message))?;
            }
            if let (Some(sse), Some(bucket)) =
                (&config.bucket_encryption, store.bucket_by_name(name))
            {
                if bucket.default_sse != *sse {
                    store
                        .set_default_sse(&bucket.id, sse.clone())
                        .map_err(|e| io::Error::other(e.message))?;
                }
            }
        }
        let auth = auth::Auth::new(
            &config.account_id,
            &config.application_key,
            config.token_lifetime,
        );
        for key in &config.keys {
            auth.add_key(key.clone());
        }

        let listener = std::net::TcpListener::bind(config.listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let host = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let tls = match config.tls {
            Some(cert) => Some(tls::set_up(&data_dir, cert)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", SocketAddr::new(host, addr.port()));
        let ca_pem_path = tls.as_ref().map(|t| t.ca_pem_path.clone());
        let acceptor = tls.map(|t| t.acceptor);

        let shared = Arc::new(Shared {
            store,
            auth,
            faults: faults::Faults::new(calls::names()),
            base_url: url.clone(),
            min_part_size: config.min_part_size,
            recommended_part_size: config.recommended_part_size,
            wan: config.wan,
            clock_offset_ms: std::sync::atomic::AtomicI64::new(0),
            variants: variants::Variants::default(),
            tls_handshakes: Default::default(),
        });
        for rule in &config.variants {
            if rule.call != "*" && calls::find(&rule.call).is_none() {
                return Err(io::Error::other(format!(
                    "answer variants for an unknown call name {:?}",
                    rule.call
                )));
            }
            shared.variants.set(rule);
        }
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("b2-emulator".to_owned())
            .spawn(move || {
                let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name("b2-emulator-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => {
                            let _ = ready_tx.send(Ok(()));
                            server::serve(listener, thread_shared, acceptor, shutdown_rx).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                // Body readers and writers on blocking threads end with their connections.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })?;
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("emulator thread died during start"))??;
        Ok(Emulator {
            url,
            data_dir,
            account_id: config.account_id,
            application_key: config.application_key,
            shared,
            shutdown,
            ca_pem_path,
            thread: Some(thread),
            _temp_dir: temp_dir,
        })
    }

    /// `http://127.0.0.1:PORT` (`https://` with `tls`), no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PEM of the CA an HTTPS emulator's certificate is signed by (`tls/ca.pem` in
    /// the data directory); `None` for plain HTTP.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.ca_pem_path.as_deref()
    }

    /// TLS handshakes begun since the start, failed ones included (a client that refuses
    /// the certificate makes no B2 call the counts would show).
    pub fn tls_handshakes(&self) -> u64 {
        self.shared
            .tls_handshakes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    pub fn application_key(&self) -> &str {
        &self.application_key
    }

    /// Queues a scripted fault. Panics on an unknown call name (a test bug).
    pub fn inject(&self, fault: Fault) {
        if let Err(e) = self.shared.faults.validate(&fault) {
            panic!("b2-emulator: bad fault {fault:?}: {e}");
        }
        self.shared.faults.inject(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// How many requests a `FaultAction::Hold` is holding now.
    pub fn held(&self) -> usize {
        self.shared.faults.held()
    }

    /// Waits (up to `limit`) until at least `n` requests are held; false if they never were.
    /// Polls: what it waits for is an arrival, not a time.
    pub fn wait_held(&self, n: usize, limit: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while self.held() < n {
            if start.elapsed() > limit {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    /// Lets the `n` oldest held requests go on, to be handled normally; answers how many
    /// were held (no more than that are released: a release is never saved for later).
    pub fn release(&self, n: usize) -> usize {
        self.shared.faults.release(n)
    }

    /// Makes `rule.call` (or every call, `"*"`) answer in `rule.variants`' shapes from now
    /// on; an empty list goes back to the canonical shape. Panics on an unknown call name.
    pub fn set_variants(&self, rule: VariantRule) {
        if rule.call != "*" && calls::find(&rule.call).is_none() {
            panic!(
                "b2-emulator: unknown call name {:?} for variants",
                rule.call
            );
        }
        self.shared.variants.set(&rule);
    }

    /// Every call answers in the canonical shape again.
    pub fn clear_variants(&self) {
        self.shared.variants.clear();
    }

    pub fn counts(&self) -> Counts {
        self.shared.faults.counts()
    }

    pub fn reset_counts(&self) {
        self.shared.faults.reset_counts();
    }

    pub fn add_key(&self, spec: KeySpec) {
        self.shared.auth.add_key(spec);
    }

    /// Expires every account and upload token issued so far; new ones are valid as usual.
    pub fn expire_tokens(&self) {
        self.shared.auth.expire_tokens();
    }

    /// Changes a bucket's type and/or lifecycle rules. Panics if the bucket does not exist.
    pub fn update_bucket(
        &self,
        bucket: &str,
        bucket_type: Option<&str>,
        lifecycle_rules: Option<serde_json::Value>,
    ) {
        let change = control::BucketChange {
            bucket_type,
            lifecycle_rules,
            default_sse: None,
        };
        if let Err(e) = control::configure_bucket(&self.shared, bucket, change, false) {
            panic!("b2-emulator: update_bucket({bucket}): {}", e.message);
        }
    }

    /// Sets a bucket's default encryption (`Some(Sse::B2)`, or `None` for none), as
    /// `defaultServerSideEncryption` of b2_update_bucket does.
    pub fn set_default_encryption(&self, bucket: &str, sse: Option<Sse>) {
        if matches!(sse, Some(Sse::C { .. })) {
            panic!("b2-emulator: SSE-C cannot be a bucket's default encryption");
        }
        let change = control::BucketChange {
            default_sse: Some(sse),
            ..Default::default()
        };
        if let Err(e) = control::configure_bucket(&self.shared, bucket, change, false) {
            panic!(
                "b2-emulator: set_default_encryption({bucket}): {}",
                e.message
            );
        }
    }

    /// Sets a bucket's Object Lock settings as b2_update_bucket takes them
    /// (`{"fileLockEnabled": true, "defaultRetention": {...}}`). Panics on a refusal.
    pub fn configure_object_lock(&self, bucket: &str, settings: serde_json::Value) {
        if let Err(e) = self.try_configure_object_lock(bucket, settings) {
            panic!("b2-emulator: configure_object_lock({bucket}): {e}");
        }
    }

    /// The same, answering B2's refusal (e.g. `file_lock_conflict`) as text.
    pub fn try_configure_object_lock(
        &self,
        bucket: &str,
        settings: serde_json::Value,
    ) -> Result<(), String> {
        let map = settings.as_object().cloned().unwrap_or_default();
        control::configure_bucket_lock(&self.shared, bucket, &map)
            .map(|_| ())
            .map_err(|e| format!("{} {}: {}", e.status, e.code, e.message))
    }

    /// Sets the retention (`{"mode", "retainUntilTimestamp"}` or `{"mode": null}`) and/or
    /// legal hold ("on"/"off") of the newest stored version of `file_name`, whatever the
    /// rules say (a retain-until in the past included). Panics if there is no such file.
    pub fn force_lock(
        &self,
        bucket: &str,
        file_name: &str,
        retention: Option<serde_json::Value>,
        legal_hold: Option<&str>,
    ) -> StoredVersion {
        let body = serde_json::json!({
            "bucket": bucket, "fileName": file_name,
            "fileRetention": retention, "legalHold": legal_hold,
        });
        let parsed = serde_json::from_value(body).expect("lock request");
        match control::force_lock_request(&self.shared, &parsed) {
            Ok(v) => v,
            Err(e) => panic!(
                "b2-emulator: force_lock({bucket}, {file_name}): {}",
                e.message
            ),
        }
    }

    /// Deletes the empty bucket `name` and makes a new one of that name (a new id, default
    /// settings), as an admin who deleted and re-created it would. Panics when the bucket
    /// does not exist or is not empty.
    pub fn remake_bucket(&self, name: &str) {
        let store = &self.shared.store;
        let old = store.bucket_by_name(name).expect("no such bucket");
        store.delete_bucket(&old.id).expect("the bucket is empty");
        plain_bucket(store, name).expect("the name is free again");
    }

    /// Flips a byte of the newest version's stored content, keeping its recorded SHA1.
    /// Panics if there is no such file.
    pub fn corrupt_file(&self, bucket: &str, file_name: &str) {
        if let Err(e) = control::corrupt_file(&self.shared, bucket, file_name) {
            panic!(
                "b2-emulator: corrupt_file({bucket}, {file_name}): {}",
                e.message
            );
        }
    }

    /// Makes the unfinished large files named `file_name` (and their parts) look `millis`
    /// older, as if started and last sent to that long ago; returns how many there were.
    /// Panics on an unknown bucket.
    pub fn backdate_unfinished(&self, bucket: &str, file_name: &str, millis: u64) -> u64 {
        match control::backdate_unfinished(&self.shared, bucket, file_name, millis) {
            Ok(n) => n,
            Err(e) => panic!("b2-emulator: backdate_unfinished({bucket}): {}", e.message),
        }
    }

    /// Creates `count` finished files `{prefix}{i:08}` of `size` bytes (real content and
    /// SHA1, one shared blob) without counting any call. Panics on an unknown bucket.
    pub fn seed_files(&self, bucket: &str, prefix: &str, count: u64, size: u64) {
        if let Err(e) = control::seed_files(&self.shared, bucket, prefix, count, size) {
            panic!("b2-emulator: seed_files({bucket}): {}", e.message);
        }
    }

    /// Every version of the bucket in B2 order (name ascending, newest first), hide
    /// markers and unfinished large files ("start") included, as b2_list_file_versions
    /// shows them. Empty for an unknown bucket.
    /// Moves the emulator's clock, as its answers' `Date` tells it, by `ms` (0: the real one).
    pub fn set_clock_offset(&self, ms: i64) {
        self.shared
            .clock_offset_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn file_versions(&self, bucket: &str) -> Vec<StoredVersion> {
        control::stored_versions(&self.shared, bucket, false).unwrap_or_default()
    }

    /// The unfinished large files of the bucket, in the same order.
    pub fn unfinished_large_files(&self, bucket: &str) -> Vec<StoredVersion> {
        control::stored_versions(&self.shared, bucket, true).unwrap_or_default()
    }

    /// Stops accepting connections, lets requests in progress finish (up to 5 s), and
    /// waits for the server thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// A private bucket with default settings, as `--bucket` and `remake_bucket` make it.
fn plain_bucket(store: &store::Store, name: &str) -> error::B2Result<store::BucketMeta> {
    store.create_bucket(
        name,
        "allPrivate",
        serde_json::json!({}),
        serde_json::json!([]),
        serde_json::json!([]),
        store::BucketLock::default(),
    )
}
