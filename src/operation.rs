//! What one running operation shares between the worker tasks doing it and the host's
//! thread waiting for it: progress, cancellation and log lines.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

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
#[derive(Default)]
pub struct Operation {
    done_bytes: AtomicU64,
    total_bytes: AtomicU64,
    cancelled: AtomicBool,
    cancel_notify: Notify,
    logs: Mutex<Vec<(LogLevel, String)>>,
}

impl Operation {
    pub fn new() -> Operation {
        Operation::default()
    }

    pub fn add_total(&self, bytes: u64) {
        self.total_bytes.fetch_add(bytes, Ordering::Relaxed);
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

    pub fn take_logs(&self) -> Vec<(LogLevel, String)> {
        self.logs
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}
