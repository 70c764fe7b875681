//! Per-call counters, scripted faults and the `X-Bz-Test-Mode` switches. Calls are
//! known by name; `calls.rs` lists them and hands the names over at start.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Request and byte counters, as returned by `Emulator::counts` and `GET /__emulator/counts`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub calls: BTreeMap<String, u64>,
    /// Upload and part body bytes read, whether the upload was accepted or not.
    pub bytes_received: u64,
    /// Download body bytes sent.
    pub bytes_sent: u64,
    /// When each counted request arrived, per call, in milliseconds since the emulator
    /// started (so tests can bound the time between two requests from below).
    #[serde(default)]
    pub arrivals_ms: BTreeMap<String, Vec<u64>>,
}

impl Counts {
    pub fn get(&self, call: &str) -> u64 {
        self.calls.get(call).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.calls.values().sum()
    }
}

/// A scripted fault: fires on the next `count` requests to `call` (`"*"` = any call).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    pub call: String,
    pub count: u32,
    #[serde(flatten)]
    pub action: FaultAction,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with a B2 JSON error (uploads: after draining the body; nothing is stored).
    Error {
        status: u16,
        code: String,
        #[serde(default)]
        retry_after: Option<u64>,
        /// The error's message; by default it names the scripted fault.
        #[serde(default)]
        message: Option<String>,
    },
    /// Answer with a redirect (`status` 3xx) to `location`, as a proxy or a hijacked
    /// address might; B2 itself never redirects an API call or a download.
    Redirect { status: u16, location: String },
    /// Read this many request body bytes, then close the connection with no answer.
    Drop { after_bytes: u64 },
    /// Sleep, then handle the request normally.
    Delay { millis: u64 },
    /// Wait until the test releases the request (`Emulator::release`), then handle it
    /// normally: a test acts while the request is known to be in flight, without timing.
    Hold,
    /// Handle the request in full (store, delete, cancel...), then close the connection
    /// without answering: the client cannot tell whether B2 acted.
    LoseAnswer,
    /// Handle the request in full, then answer 200 with a body that is not the JSON the
    /// call answers with (cut off half-way), as a broken proxy might: the client cannot
    /// read what B2 did.
    GarbleAnswer,
    /// Downloads only: flip a byte of the body sent, headers unchanged.
    Corrupt,
    /// Uploads only: flip the first content byte of the body as received, as a bad link
    /// would; the SHA1 check then refuses it as B2 does (400 `bad_request`).
    DamageUpload,
}

/// The `X-Bz-Test-Mode` values real B2 understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestMode {
    FailSomeUploads,
    ExpireSomeAccountAuthorizationTokens,
    ForceCapExceeded,
}

impl TestMode {
    pub fn parse(value: &str) -> Option<TestMode> {
        match value.trim() {
            "fail_some_uploads" => Some(TestMode::FailSomeUploads),
            "expire_some_account_authorization_tokens" => {
                Some(TestMode::ExpireSomeAccountAuthorizationTokens)
            }
            "force_cap_exceeded" => Some(TestMode::ForceCapExceeded),
            _ => None,
        }
    }
}

pub struct Faults {
    /// Every call name a fault may target (`"*"` targets any).
    known_calls: Vec<&'static str>,
    queue: Mutex<VecDeque<Fault>>,
    calls: Mutex<BTreeMap<String, u64>>,
    arrivals_ms: Mutex<BTreeMap<String, Vec<u64>>>,
    started: Instant,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    fail_some_uploads_seen: AtomicU64,
    expire_some_tokens_seen: AtomicU64,
    /// The requests a `Hold` fault stopped, oldest first; sending (or dropping) lets one
    /// go. `None` once the emulator stops: nothing is held any more.
    held: Mutex<Option<VecDeque<tokio::sync::oneshot::Sender<()>>>>,
}

impl Faults {
    pub fn new(known_calls: Vec<&'static str>) -> Faults {
        Faults {
            known_calls,
            queue: Mutex::default(),
            calls: Mutex::default(),
            arrivals_ms: Mutex::default(),
            started: Instant::now(),
            bytes_received: AtomicU64::default(),
            bytes_sent: AtomicU64::default(),
            fail_some_uploads_seen: AtomicU64::default(),
            expire_some_tokens_seen: AtomicU64::default(),
            held: Mutex::new(Some(VecDeque::new())),
        }
    }

    pub fn count_call(&self, call: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry(call.to_owned())
            .or_insert(0) += 1;
        let at = self.started.elapsed().as_millis() as u64;
        self.arrivals_ms
            .lock()
            .unwrap()
            .entry(call.to_owned())
            .or_default()
            .push(at);
    }

    pub fn add_received(&self, n: u64) {
        self.bytes_received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_sent(&self, n: u64) {
        self.bytes_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            calls: self.calls.lock().unwrap().clone(),
            arrivals_ms: self.arrivals_ms.lock().unwrap().clone(),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
        }
    }

    pub fn reset_counts(&self) {
        self.calls.lock().unwrap().clear();
        self.arrivals_ms.lock().unwrap().clear();
        self.bytes_received.store(0, Ordering::Relaxed);
        self.bytes_sent.store(0, Ordering::Relaxed);
    }

    /// Checks a fault's call name; `Err` names the problem.
    pub fn validate(&self, fault: &Fault) -> Result<(), String> {
        if fault.call != "*" && !self.known_calls.contains(&fault.call.as_str()) {
            return Err(format!("unknown call name {:?}", fault.call));
        }
        if let FaultAction::Error { status, .. } = fault.action {
            if !(400..=599).contains(&status) {
                return Err(format!("error status {status} is not a 4xx/5xx"));
            }
        }
        if let FaultAction::Redirect { status, location } = &fault.action {
            if !(300..=399).contains(status) {
                return Err(format!("redirect status {status} is not a 3xx"));
            }
            if location.is_empty() || hyper::header::HeaderValue::from_str(location).is_err() {
                return Err(format!(
                    "redirect location {location:?} is not a header value"
                ));
            }
        }
        Ok(())
    }

    pub fn inject(&self, fault: Fault) {
        if fault.count > 0 {
            self.queue.lock().unwrap().push_back(fault);
        }
    }

    pub fn clear(&self) {
        self.queue.lock().unwrap().clear();
    }

    /// Takes one firing of the oldest fault matching `call`, if any. A `Corrupt` fault
    /// only matches downloads and a `DamageUpload` only uploads, so a `"*"` one waits
    /// for the next request it can act on.
    pub fn take(&self, call: &str, is_download: bool, is_upload: bool) -> Option<FaultAction> {
        let mut queue = self.queue.lock().unwrap();
        let index = queue.iter().position(|f| {
            (f.call == "*" || f.call == call)
                && (is_download || !matches!(f.action, FaultAction::Corrupt))
                && (is_upload || !matches!(f.action, FaultAction::DamageUpload))
        })?;
        let fault = &mut queue[index];
        let action = fault.action.clone();
        fault.count -= 1;
        if fault.count == 0 {
            queue.remove(index);
        }
        Some(action)
    }

    /// Waits until `release` (or `release_all`) lets this request go.
    pub async fn hold(&self) {
        let (go, wait) = tokio::sync::oneshot::channel();
        match self.held.lock().unwrap().as_mut() {
            Some(held) => held.push_back(go),
            None => return,
        }
        let _ = wait.await;
    }

    /// How many requests are held now (one whose client went away is not counted).
    pub fn held(&self) -> usize {
        let mut held = self.held.lock().unwrap();
        let Some(held) = held.as_mut() else { return 0 };
        held.retain(|go| !go.is_closed());
        held.len()
    }

    /// Lets the `n` oldest held requests go; answers how many there were.
    pub fn release(&self, n: usize) -> usize {
        let mut held = self.held.lock().unwrap();
        let Some(held) = held.as_mut() else { return 0 };
        held.retain(|go| !go.is_closed());
        let n = n.min(held.len());
        for go in held.drain(..n) {
            let _ = go.send(());
        }
        n
    }

    /// Lets every held request go and holds none from now on: at shutdown, so no request
    /// waits for a release that will never come.
    pub fn release_all(&self) {
        self.held.lock().unwrap().take();
    }

    /// Whether this request, carrying `mode`, is one of the "some" that fail. Which ones
    /// is the emulator's own choice (B2 does not say): deterministically the 1st, 4th,
    /// 7th... request carrying that mode, so its own tests can rely on it while clients
    /// still see mostly successes. Client tests should not depend on the pattern.
    pub fn test_mode_fires(&self, mode: TestMode) -> bool {
        let counter = match mode {
            TestMode::FailSomeUploads => &self.fail_some_uploads_seen,
            TestMode::ExpireSomeAccountAuthorizationTokens => &self.expire_some_tokens_seen,
            TestMode::ForceCapExceeded => return true,
        };
        counter.fetch_add(1, Ordering::Relaxed) % 3 == 0
    }
}
