//! The library's log callback is process-wide: a test collecting lines would also collect
//! those of any test running beside it in the same binary. So every test that installs a
//! callback lives in tests/log_lines.rs and holds a `LogTurn` from its first line to its
//! last: that binary's tests run one at a time, and each sees only its own lines.
//! (tests/panics.rs installs one too, alone in its own binary.)

use std::ffi::{c_char, c_void, CStr};
use std::sync::{Mutex, MutexGuard};

static TURN: Mutex<()> = Mutex::new(());
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn keep_line(_level: i32, message: *const c_char, _user: *mut c_void) {
    // SAFETY: the library passes a NUL-terminated line valid during the call.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LINES.lock().unwrap_or_else(|e| e.into_inner()).push(text);
}

/// This test's turn with the log callback; dropping it removes any callback installed.
pub struct LogTurn {
    _turn: MutexGuard<'static, ()>,
}

impl LogTurn {
    /// Waits until no other test holds the callback (a failed test's turn still ends).
    pub fn take() -> LogTurn {
        LogTurn {
            _turn: TURN.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Starts keeping every line, debug included, from an empty list.
    pub fn collect(&self) {
        LINES.lock().unwrap_or_else(|e| e.into_inner()).clear();
        b2dest::ffi::dest_set_log_callback(Some(keep_line), 4, std::ptr::null_mut());
    }

    /// Removes the callback (the library waits for threads inside it) and answers every
    /// line kept since `collect`.
    pub fn stop(&self) -> Vec<String> {
        b2dest::ffi::dest_set_log_callback(None, 0, std::ptr::null_mut());
        self.lines()
    }

    /// The lines kept so far.
    pub fn lines(&self) -> Vec<String> {
        LINES.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for LogTurn {
    fn drop(&mut self) {
        b2dest::ffi::dest_set_log_callback(None, 0, std::ptr::null_mut());
    }
}
