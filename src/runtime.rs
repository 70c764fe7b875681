//! The lazily built tokio runtime, rebuilt after `fork()`, and the loop that runs an
//! operation on it while the host's own thread waits, reports progress and relays logs.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::b2::SessionRegistry;
use crate::error::{Error, Result};
use crate::operation::{LogLevel, Operation};
use crate::usage_cache::UsageCache;

/// What lives once per process: the runtime and the B2 sessions bound to its connections.
pub struct ProcessState {
    pid: u32,
    runtime: tokio::runtime::Runtime,
    pub sessions: SessionRegistry,
    /// What each destination's backup directory uses, for the limit check.
    pub usage: UsageCache,
}

/// Never freed: a runtime inherited through `fork()` has no threads in the child and must be
/// abandoned, not dropped, so every state ever built stays leaked (one per process image).
static STATE: AtomicPtr<ProcessState> = AtomicPtr::new(std::ptr::null_mut());

/// The state of this process, built on first use and again in a forked child.
pub fn process_state() -> Result<&'static ProcessState> {
    let pid = std::process::id();
    let current = STATE.load(Ordering::Acquire);
    // SAFETY: every pointer stored in STATE comes from Box::leak and is never freed.
    if let Some(state) = unsafe { current.as_ref() } {
        if state.pid == pid {
            return Ok(state);
        }
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .max_blocking_threads(64)
        .thread_name("b2dest-worker")
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("could not start the I/O runtime: {e}")))?;
    let fresh = Box::leak(Box::new(ProcessState {
        pid,
        runtime,
        sessions: SessionRegistry::default(),
        usage: UsageCache::default(),
    }));
    match STATE.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(fresh),
        Err(winner) => {
            // Another thread built one first: ours has run nothing yet, so let it go.
            // SAFETY: `fresh` was leaked above and was never published.
            let mine = unsafe { Box::from_raw(fresh as *mut ProcessState) };
            mine.runtime.shutdown_background();
            // SAFETY: as above, `winner` is a leaked, never-freed state.
            Ok(unsafe { &*winner })
        }
    }
}

/// What the waiting thread does for the host while the operation runs.
pub trait Observer {
    /// Returns false to cancel the operation.
    fn progress(&mut self, done: u64, total: u64) -> bool;
    /// `secrets`: the B2 tokens the operation sent so far, to keep out of the line.
    fn log(&mut self, level: LogLevel, message: &str, secrets: &[String]);
}

const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);

/// Debug builds only: `B2DEST_TEST_PANIC=caller` (on the calling thread) or `=task` (on
/// the runtime) makes every operation panic there, so tests can check that a panic
/// becomes `DEST_ERR_INTERNAL`. Release builds have no such switch.
#[cfg(debug_assertions)]
fn test_panic(point: &str) {
    if std::env::var("B2DEST_TEST_PANIC").is_ok_and(|v| v == point) {
        panic!("B2DEST_TEST_PANIC={point}");
    }
}

#[cfg(not(debug_assertions))]
fn test_panic(_point: &str) {}

/// Runs `make(op)` on the runtime and blocks the calling thread until it ends. Progress and
/// log lines reach `observer` on the calling thread only: at the start, at most every
/// 100 ms while bytes move and every 500 ms while they do not, and at the end.
pub fn run<T, F, Fut>(observer: &mut dyn Observer, make: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Arc<Operation>) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    test_panic("caller");
    let state = process_state()?;
    let op = Arc::new(Operation::new());
    let (tx, rx) = mpsc::channel::<Result<T>>();
    let fut = make(op.clone());
    state.runtime.spawn(async move {
        // A panic in the operation is caught here, where its payload still is, and sent
        // back as the outcome (tokio would keep it in a JoinHandle nobody waits on).
        let outcome = AssertUnwindSafe(async move {
            test_panic("task");
            fut.await
        })
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| Err(Error::from_panic("in an operation task", payload.as_ref())));
        let _ = tx.send(outcome);
    });

    let mut last = op.progress();
    if !observer.progress(last.0, last.1) {
        op.cancel();
    }
    let mut last_report = Instant::now();
    let outcome = loop {
        let received = rx.recv_timeout(PROGRESS_INTERVAL);
        let lines = op.take_logs();
        if !lines.is_empty() {
            let secrets = op.secrets();
            for (level, message) in lines {
                observer.log(level, &message, &secrets);
            }
        }
        match received {
            Ok(result) => break result,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The task ended without sending: the runtime dropped it unfinished.
                break Err(Error::Internal(
                    "an operation task was stopped before it finished; try again".into(),
                ));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = op.progress();
        // Also when nothing moved for a while, so a host can cancel a stalled transfer.
        let due = if now != last {
            PROGRESS_INTERVAL
        } else {
            HEARTBEAT_INTERVAL
        };
        if last_report.elapsed() >= due {
            last = now;
            last_report = Instant::now();
            if !observer.progress(now.0, now.1) && !op.is_cancelled() {
                op.cancel();
            }
        }
    };
    let end = op.progress();
    observer.progress(end.0, end.1);
    outcome
}
