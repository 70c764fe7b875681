//! What one running operation shares between the worker tasks doing it and the host's
//! thread waiting for it: progress, cancellation and log lines.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Map, Value};

use tokio::sync::Notify;

use crate::error::{Error, Result};

/// Levels of log lines, most severe first.
///
/// The one log-level type: the library queues lines with it and the host receives its
/// value as the `level` of `dest_log_fn`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DestLogLevel {
    DestLogError = 1,
    DestLogWarn = 2,
    DestLogInfo = 3,
    DestLogDebug = 4,
}

/// The short spelling the library's own code uses: `LogLevel::Info` is `DEST_LOG_INFO`.
/// (cbindgen names C enumerators after the Rust variants, hence the long variant names.)
pub use DestLogLevel as LogLevel;

#[allow(non_upper_case_globals)]
impl DestLogLevel {
    pub const Error: DestLogLevel = DestLogLevel::DestLogError;
    pub const Warn: DestLogLevel = DestLogLevel::DestLogWarn;
    pub const Info: DestLogLevel = DestLogLevel::DestLogInfo;
    pub const Debug: DestLogLevel = DestLogLevel::DestLogDebug;
}

/// Shared by the tasks of one operation and the thread that waits for it.
pub struct Operation {
    done_bytes: AtomicU64,
    total_bytes: AtomicU64,
    /// Whether bytes were to move (an upload or download), so the response says how fast.
    transfer: AtomicBool,
    started: Instant,
    cancelled: AtomicBool,
    cancel_notify: Notify,
    logs: Mutex<Vec<(LogLevel, String)>>,
    /// B2 requests sent, by call name: shared with detached clean-up, which is billed too.
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
    /// B2's clock minus this machine's, in ms, from the `Date` of the last answer.
    b2_clock_offset_ms: Mutex<Option<i64>>,
    /// The B2 tokens this operation sent, to keep out of its log lines and response.
    secrets: Arc<Mutex<Vec<String>>>,
}

impl Default for Operation {
    fn default() -> Operation {
        Operation {
            done_bytes: AtomicU64::new(0),
            total_bytes: AtomicU64::new(0),
            transfer: AtomicBool::new(false),
            started: Instant::now(),
            cancelled: AtomicBool::new(false),
            cancel_notify: Notify::new(),
            logs: Mutex::default(),
            calls: Arc::default(),
            b2_clock_offset_ms: Mutex::default(),
            secrets: Arc::default(),
        }
    }
}

impl Operation {
    pub fn new() -> Operation {
        Operation::default()
    }

    /// Records how far B2's clock (an answer's `Date`) is from this machine's.
    pub fn note_b2_clock(&self, offset_ms: i64) {
        if let Ok(mut slot) = self.b2_clock_offset_ms.lock() {
            *slot = Some(offset_ms);
        }
    }

    /// B2's clock minus this machine's, when an answer of this operation told it.
    pub fn b2_clock_offset(&self) -> Option<i64> {
        self.b2_clock_offset_ms.lock().ok().and_then(|s| *s)
    }

    /// A new operation (not cancelled with this one) whose B2 requests count as this
    /// one's: for clean-up that must run even after a cancel.
    pub fn detached(&self) -> Operation {
        Operation {
            calls: self.calls.clone(),
            secrets: self.secrets.clone(),
            ..Operation::default()
        }
    }

    pub fn add_total(&self, bytes: u64) {
        self.transfer.store(true, Ordering::Relaxed);
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts one request to B2 that reached it (or may have: sent, then no answer).
    /// Called where each request is sent, for every attempt, since B2 bills every request
    /// it receives; a connect that was refused never reached B2 and is not counted.
    pub fn count_call(&self, call: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            *calls.entry(call.to_string()).or_default() += 1;
        }
    }

    /// What the operation cost, for its response: `transactions` by B2's billing class
    /// and by call, and for a transfer `elapsed_ms` and `bytes_per_second` (of the bytes
    /// the progress counted as done).
    pub fn cost_fields(&self) -> Map<String, Value> {
        use crate::b2::billing::{billing_class, BillingClass};
        let calls = self.calls.lock().map(|c| c.clone()).unwrap_or_default();
        let mut classes = [0u64; 3];
        for (call, n) in &calls {
            let i = match billing_class(call) {
                BillingClass::A => 0,
                BillingClass::B => 1,
                BillingClass::C => 2,
            };
            classes[i] += n;
        }
        let mut fields = Map::new();
        fields.insert(
            "transactions".into(),
            json!({"class_a": classes[0], "class_b": classes[1], "class_c": classes[2],
                "calls": calls}),
        );
        if self.transfer.load(Ordering::Relaxed) {
            let elapsed_ms = self.started.elapsed().as_millis() as u64;
            let done = self.done_bytes.load(Ordering::Relaxed);
            fields.insert("elapsed_ms".into(), elapsed_ms.into());
            fields.insert(
                "bytes_per_second".into(),
                (done.saturating_mul(1000) / elapsed_ms.max(1)).into(),
            );
        }
        fields
    }

    pub fn add_done(&self, bytes: u64) {
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Takes back bytes counted as done whose upload or download failed and will be redone.
    pub fn sub_done(&self, bytes: u64) {
        let _ = self
            .done_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(bytes))
            });
    }

    pub fn progress(&self) -> (u64, u64) {
        (
            self.done_bytes.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        )
    }

    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.cancel_notify.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    pub fn check_cancelled(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Resolves once the operation is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.cancel_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// Runs `fut` unless the operation is cancelled first.
    pub async fn or_cancel<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            biased;
            _ = self.cancelled() => Err(Error::Cancelled),
            r = fut => r,
        }
    }

    /// Queues a log line; the waiting thread hands it to the host's logger.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        if let Ok(mut logs) = self.logs.lock() {
            if logs.len() < 10_000 {
                logs.push((level, message.into()));
            }
        }
    }

    /// Remembers a token sent to B2, so no log line or response of this operation shows
    /// it (B2, or a proxy, may echo a request's headers in an error message).
    pub fn add_secret(&self, secret: &str) {
        if let Ok(mut secrets) = self.secrets.lock() {
            if !secrets.iter().any(|s| s == secret) && secrets.len() < 1000 {
                secrets.push(secret.to_string());
            }
        }
    }

    pub fn secrets(&self) -> Vec<String> {
        self.secrets.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn take_logs(&self) -> Vec<(LogLevel, String)> {
        self.logs
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}
