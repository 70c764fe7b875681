//! The host's log callback: set from any thread, called on the thread of the `dest_*` call a
//! line belongs to. Lock-free, because a lock held by another thread at `fork()` would stay
//! held forever in the child.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::operation::DestLogLevel;

struct Logger {
    callback: unsafe extern "C" fn(i32, *const c_char, *mut c_void),
    max_level: i32,
    user_data: usize,
    /// The next logger on the retired list, once this one has been replaced.
    retired_next: AtomicPtr<Logger>,
    /// Threads inside `callback` now: the pid they counted under in the high 32 bits, the
    /// count in the low. A count made under another pid was made before a `fork()` by
    /// threads the child does not have, and is taken as zero.
    inside: AtomicU64,
}

const COUNT_BITS: u64 = 0xffff_ffff;

impl Logger {
    fn enter(&self, pid: u32) {
        let mut now = self.inside.load(Ordering::SeqCst);
        loop {
            let next = if (now >> 32) as u32 == pid {
                now + 1
            } else {
                (u64::from(pid) << 32) | 1
            };
            match self
                .inside
                .compare_exchange_weak(now, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(seen) => now = seen,
            }
        }
    }

    fn leave(&self, pid: u32) {
        let mut now = self.inside.load(Ordering::SeqCst);
        // A count of another pid is the parent's (this thread entered before a fork).
        while (now >> 32) as u32 == pid && now & COUNT_BITS > 0 {
            match self.inside.compare_exchange_weak(
                now,
                now - 1,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return,
                Err(seen) => now = seen,
            }
        }
    }

    fn threads_inside(&self, pid: u32) -> u64 {
        let now = self.inside.load(Ordering::SeqCst);
        if (now >> 32) as u32 == pid {
            now & COUNT_BITS
        } else {
            0
        }
    }
}

thread_local! {
    /// The loggers whose callback this thread is inside, innermost last (a callback may
    /// make a `dest_*` call that logs again).
    static INSIDE_LOGGERS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// How many times this thread is inside `logger`'s callback.
fn own_entries(logger: *mut Logger) -> u64 {
    INSIDE_LOGGERS
        .try_with(|v| v.borrow().iter().filter(|p| **p == logger as usize).count() as u64)
        .unwrap_or(0)
}

/// The current logger, or NULL. A replaced logger is never freed (a line may be on its way
/// through it on another thread) but kept on the retired list, a few bytes per
/// `dest_set_log_callback`.
static LOGGER: AtomicPtr<Logger> = AtomicPtr::new(std::ptr::null_mut());
static RETIRED_LOGGERS: AtomicPtr<Logger> = AtomicPtr::new(std::ptr::null_mut());

/// Hands one line to the host's callback, if one is set and wants this level.
pub(super) fn deliver(level: DestLogLevel, message: &str) {
    let pid = std::process::id();
    // Counted in before the callback is read, and only if it is still the current one
    // after that, so `replace` sees every thread that may call it.
    let (ptr, logger) = loop {
        let ptr = LOGGER.load(Ordering::SeqCst);
        // SAFETY: LOGGER holds NULL or a leaked, never-freed Logger.
        let Some(logger) = (unsafe { ptr.as_ref() }) else {
            return;
        };
        logger.enter(pid);
        if LOGGER.load(Ordering::SeqCst) == ptr {
            break (ptr, logger);
        }
        logger.leave(pid);
    };
    if level as i32 <= logger.max_level {
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        let _ = INSIDE_LOGGERS.try_with(|v| v.borrow_mut().push(ptr as usize));
        // SAFETY: the host registered this callback with this user_data for log lines.
        unsafe { (logger.callback)(level as i32, text.as_ptr(), logger.user_data as *mut c_void) };
        let _ = INSIDE_LOGGERS.try_with(|v| v.borrow_mut().pop());
    }
    logger.leave(pid);
}

/// Makes `callback` (or none) the process-wide logger, then waits until no other thread of
/// this process is inside the one it replaced.
pub(super) fn replace(
    callback: Option<unsafe extern "C" fn(i32, *const c_char, *mut c_void)>,
    max_level: i32,
    user_data: *mut c_void,
) {
    let fresh = callback.map_or(std::ptr::null_mut(), |callback| {
        Box::into_raw(Box::new(Logger {
            callback,
            max_level,
            user_data: user_data as usize,
            retired_next: AtomicPtr::new(std::ptr::null_mut()),
            inside: AtomicU64::new(0),
        }))
    });
    let replaced = LOGGER.swap(fresh, Ordering::SeqCst);
    // SAFETY: `replaced` is NULL or a leaked Logger that nothing else retires (the swap
    // handed it to this thread alone); the list is push-only.
    let Some(old) = (unsafe { replaced.as_ref() }) else {
        return;
    };
    let mut head = RETIRED_LOGGERS.load(Ordering::Acquire);
    loop {
        old.retired_next.store(head, Ordering::Relaxed);
        match RETIRED_LOGGERS.compare_exchange_weak(
            head,
            replaced,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => break,
            Err(now) => head = now,
        }
    }
    let pid = std::process::id();
    let own = own_entries(replaced);
    let mut waited = 0u32;
    while old.threads_inside(pid) > own {
        if waited < 100 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        waited = waited.saturating_add(1);
    }
}
