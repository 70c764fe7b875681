//! The C ABI: the exported functions, and `boundary`, which wraps each one: it catches
//! panics, checks pointers and UTF-8, and always writes a response. Beside it: `logger` (the
//! host's log callback) and `envelope` (the JSON response and its last secret guard).
#![allow(non_camel_case_types)] // the C names of the callback types

mod envelope;
mod logger;

use std::ffi::{c_char, c_void, CStr, CString};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use crate::config::{DestinationConfig, Encryption};
use crate::error::{Error, Result};
pub use crate::operation::DestLogLevel;
use crate::operation::LogLevel;
use crate::ops::{self, Destination, Report};
use crate::runtime::{self, Observer};
use crate::status::DestStatus;

/// Progress of an upload or download.
///
/// Called on the thread that called `dest_upload` / `dest_download`, never on another one:
/// once at the start, at most about ten times a second while bytes move, twice a second
/// while they do not (so a stalled transfer can still be cancelled), and once at the end. `total_bytes` may grow while a directory is being scanned. Return 0 to go on;
/// any other value cancels the operation, which then returns `DEST_ERR_CANCELLED`: the file
/// under way is not kept, on B2 or on disk, and a directory operation lists in its response
/// the files it completed (kept) and those it did not. The callback may call other `dest_*`
/// functions (they run as separate operations); it must not unwind or longjmp.
pub type dest_progress_fn =
    Option<unsafe extern "C" fn(done_bytes: u64, total_bytes: u64, user_data: *mut c_void) -> i32>;

/// Receives the library's log lines: a `DestLogLevel` and a NUL-terminated UTF-8 message
/// that is valid only during the call (copy it to keep it). Lines never contain the
/// application key, the SSE-C customer key or a B2 token, even where B2 echoed one.
///
/// Called only on a thread that is inside a `dest_*` call, for the lines of that call,
/// before the call returns.
pub type dest_log_fn =
    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;

/// Relays progress and log lines to the host, on the host's calling thread.
struct HostObserver {
    progress: dest_progress_fn,
    user_data: *mut c_void,
    /// The application key and SSE-C customer key, kept out of every log line as out of
    /// the response (B2's error messages are logged as they come, and may echo them).
    secrets: Vec<String>,
}

impl HostObserver {
    fn logs_only() -> HostObserver {
        HostObserver::with_progress(None, std::ptr::null_mut())
    }

    fn with_progress(progress: dest_progress_fn, user_data: *mut c_void) -> HostObserver {
        HostObserver {
            progress,
            user_data,
            secrets: Vec::new(),
        }
    }
}

impl Observer for HostObserver {
    fn progress(&mut self, done: u64, total: u64) -> bool {
        match self.progress {
            // SAFETY: the host gave this function and user_data for this call, on this thread.
            Some(f) => unsafe { f(done, total, self.user_data) == 0 },
            None => true,
        }
    }

    fn log(&mut self, level: LogLevel, message: &str, tokens: &[String]) {
        let line = envelope::redact(&crate::local::one_line(message), &self.secrets);
        logger::deliver(level, &envelope::redact(&line, tokens));
    }
}

/// Borrows a C string argument: NULL and invalid UTF-8 are refused by name.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that outlives the call.
unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::InvalidArgument(format!(
            "{what} is NULL; pass a NUL-terminated UTF-8 string"
        )));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|e| {
        Error::InvalidArgument(format!(
            "{what} is not valid UTF-8 (at byte {})",
            e.valid_up_to()
        ))
    })
}

/// Parses the configuration and runs `work` on the runtime, the calling thread waiting.
/// The secrets to keep out of the response (the application key, the SSE-C customer key,
/// the tokens the operation used) go into `secrets` as soon as they are known, so that a
/// panic part-way still leaves them with the boundary.
fn run_operation<F, Fut>(
    config_json: &str,
    observer: &mut HostObserver,
    secrets: &mut Vec<String>,
    work: F,
) -> Result<Report>
where
    F: FnOnce(Destination) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Report>> + Send + 'static,
{
    let parsed = DestinationConfig::parse(config_json)?;
    secrets.push(parsed.config.b2.application_key.expose().to_string());
    if let Encryption::SseC(key) = &parsed.config.b2.encryption {
        secrets.push(key.expose_base64().to_string());
    }
    observer.secrets = secrets.clone();
    let config = parsed.config;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(
        None::<std::sync::Arc<crate::operation::Operation>>,
    ));
    let seen_by_run = seen.clone();
    let outcome = runtime::run(observer, move |op| {
        if let Ok(mut slot) = seen_by_run.lock() {
            *slot = Some(op.clone());
        }
        async move {
            let dest = Destination::open(config, op)?;
            work(dest).await
        }
    });
    let outcome = outcome.map(|mut report| {
        let mut warnings = parsed.warnings;
        warnings.append(&mut report.warnings);
        report.warnings = warnings;
        report
    });
    // What the B2 calls cost, in every response that ran an operation, failed or not.
    let op = seen.lock().ok().and_then(|s| s.clone());
    let costs = op.as_ref().map(|op| op.cost_fields());
    if let Some(op) = &op {
        secrets.extend(op.secrets());
    }
    match (outcome, costs) {
        (Ok(mut report), Some(costs)) => {
            report.fields.extend(costs);
            Ok(report)
        }
        (Err(e), Some(fields)) => Ok(Report {
            fields,
            failure: Some(e),
            ..Report::default()
        }),
        (outcome, None) => outcome,
    }
}

/// The one wrapper of every exported operation: the response pointer is cleared first, and
/// everything after (reading the arguments, the operation, rendering the response and
/// turning it into a C string) runs inside `catch_unwind`. A panic anywhere in it becomes
/// `DEST_ERR_INTERNAL`, its message (redacted) in the response and in an error log line.
///
/// # Safety
/// `response_json` is NULL or points to writable storage for one pointer.
unsafe fn boundary(
    response_json: *mut *mut c_char,
    call: impl FnOnce(&mut Vec<String>) -> Result<Report>,
) -> i32 {
    if !response_json.is_null() {
        // SAFETY: the caller gave writable storage; a NULL there is the safe default.
        unsafe { *response_json = std::ptr::null_mut() };
    }
    let mut secrets: Vec<String> = Vec::new();
    let answered = catch_unwind(AssertUnwindSafe(|| {
        let outcome = call(&mut secrets);
        respond(outcome, &secrets, !response_json.is_null())
    }));
    let (status, response) = match answered {
        Ok(done) => done,
        Err(payload) => {
            let error = Error::from_panic("at the C boundary", payload.as_ref());
            let line = envelope::redact(&error.to_string(), &secrets);
            let _ = catch_unwind(AssertUnwindSafe(|| logger::deliver(LogLevel::Error, &line)));
            // Rendering a bare error cannot panic in any way the first try could not; if
            // it does, the host still gets its status and a NULL response.
            catch_unwind(AssertUnwindSafe(|| {
                respond(Err(error), &secrets, !response_json.is_null())
            }))
            .unwrap_or((DestStatus::DestErrInternal, None))
        }
    };
    if let (false, Some(c)) = (response_json.is_null(), response) {
        // SAFETY: checked non-NULL above.
        unsafe { *response_json = c.into_raw() };
    }
    status as i32
}

/// The status and, when the host wants it, the response as a C string.
fn respond(
    outcome: Result<Report>,
    secrets: &[String],
    wanted: bool,
) -> (DestStatus, Option<CString>) {
    let (status, body) = envelope::render(outcome);
    (status, wanted.then(|| envelope::to_c_string(body, secrets)))
}

/// The body of every operation's export: reads each named C string argument (NULL and
/// invalid UTF-8 refused by name), then runs the operation on the runtime behind
/// `boundary`, the calling thread waiting.
///
/// `export!(response_json, observer, config_json, [arg, ...], |dest| work)`: `work` may
/// use each `arg` as a `String` and `dest` as the opened `Destination`. With a block of
/// statements before `|dest|`, they run after the arguments are read and before the
/// operation (checks of `options_json` that cost no B2 call), and what they bind is
/// `work`'s too.
macro_rules! export {
    ($response:ident, $observer:expr, $config:ident, [$($arg:ident),*], |$dest:ident| $work:expr) => {
        export!($response, $observer, $config, [$($arg),*], {}, |$dest| $work)
    };
    ($response:ident, $observer:expr, $config:ident, [$($arg:ident),*], { $($setup:tt)* }, |$dest:ident| $work:expr) => {
        // SAFETY: every pointer is NULL or valid, as the caller promised.
        unsafe {
            boundary($response, |secrets| {
                let config = c_str($config, stringify!($config))?;
                $(let $arg = c_str($arg, stringify!($arg))?.to_owned();)*
                $($setup)*
                let mut observer = $observer;
                run_operation(config, &mut observer, secrets, move |$dest| async move {
                    $work.await
                })
            })
        }
    };
}

mod recovery;
pub use recovery::{dest_download_as_of, dest_list_versions, dest_rollback};

/// Checks a destination: the key is accepted and has listFiles, readFiles, writeFiles and
/// deleteFiles; it may use this bucket and backup directory; the bucket exists; a probe
/// file written under the backup directory reads back identical and is deleted again.
///
/// `config_json`: the destination's configuration (see the README), not NULL.
/// `response_json`: NULL, or where to store the response, which the caller frees with
/// `dest_free`. The response has `"checks": [{"name", "ok", "message"}]` and `"warnings"`
/// (a public bucket, one that keeps old versions, a limit already reached). Returns
/// `DEST_OK` when every check passed, else the status of the first failed check.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_validate(
    config_json: *const c_char,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::logs_only(),
        config_json,
        [],
        |dest| { ops::validate::run(&dest) }
    )
}

/// Uploads `local_path` (a regular file, or a directory whose tree is uploaded) to
/// `remote_path` inside the backup directory. Large files go up in parts, several at once,
/// each with its SHA1, and record the whole file's SHA1; a cut-off large upload is resumed
/// by the next upload of the same unchanged file. Refused with `DEST_ERR_LIMIT` when the
/// free disk space limit is reached, and `DEST_ERR_PERMISSION` on a read-only destination.
///
/// `config_json`, `local_path`, `remote_path`: not NULL. `progress`: NULL or a callback run
/// on this thread (see `dest_progress_fn`), with `user_data` passed back to it untouched.
/// `response_json`: NULL or where to store the response (`remote_path`, `size`, `sha1`,
/// `file_id`; for a directory `files` and `skipped`), freed with `dest_free`.
///
/// A directory is read through directory handles, never following a link below
/// `local_path`. A file in it that cannot be uploaded (a name B2 refuses, unreadable,
/// swapped for a link or another file, changed while read) is listed in
/// `"skipped": [{"local_path", "reason"}]` with a warning, and the rest of the tree still
/// goes up: the status is then `DEST_OK`, so retry just the skipped files. With
/// `"strict": true` in the configuration the first such file fails the upload instead. A
/// directory upload that fails or is cancelled part-way keeps on B2 the files it completed
/// and its error response lists them in `files`, beside `failed` and `not_started`.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_upload(
    config_json: *const c_char,
    local_path: *const c_char,
    remote_path: *const c_char,
    progress: dest_progress_fn,
    user_data: *mut c_void,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::with_progress(progress, user_data),
        config_json,
        [local_path, remote_path],
        |dest| ops::upload::run(&dest, Path::new(&local_path), &remote_path)
    )
}

/// Restores `remote_path` (a file, or a directory tree) to `local_path`. A file is written
/// to a temporary file in the directory of `local_path` (unnamed where the file system
/// allows, so a killed process leaves nothing) and renamed into place only after its SHA1
/// matched (a mismatch is fetched once more first); on any failure nothing is left at
/// `local_path` and a file already there is untouched. Missing parent directories are
/// created. `local_path` is resolved once; below it no link is followed (one found is
/// refused with `DEST_ERR_LOCAL_IO`). A directory restore that fails or is cancelled
/// part-way keeps the files it completed, each verified, and lists them in `files`, beside
/// `failed` and `not_started`.
///
/// Arguments as for `dest_upload`. The response has `size`, `sha1`, `verified` (for a
/// directory, `files`), freed with `dest_free`.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_download(
    config_json: *const c_char,
    remote_path: *const c_char,
    local_path: *const c_char,
    progress: dest_progress_fn,
    user_data: *mut c_void,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::with_progress(progress, user_data),
        config_json,
        [remote_path, local_path],
        |dest| ops::download::run(&dest, &remote_path, Path::new(&local_path))
    )
}

/// Lists the current (newest, not hidden) files under `remote_path` (`""` for the whole
/// backup directory), all pages: `"entries": [{"path", "size", "sha1", "modified_ms",
/// "file_id"}]`, paths relative to the backup directory.
///
/// `config_json`, `remote_path`: not NULL. `response_json`: NULL or where to store the
/// response.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_list(
    config_json: *const c_char,
    remote_path: *const c_char,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::logs_only(),
        config_json,
        [remote_path],
        |dest| { ops::list::run(&dest, &remote_path) }
    )
}

/// Measures the space the backup directory uses on B2: `used_bytes` (every stored version,
/// hidden ones included, and the parts of unfinished large files), `files`, `versions`,
/// `unfinished_large_files`, `limit_reached` and, when `quota_bytes` is set, `total_bytes`,
/// `free_bytes`, `used_percent`.
///
/// `config_json`: not NULL. `response_json`: NULL or where to store the response.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_usage(
    config_json: *const c_char,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::logs_only(),
        config_json,
        [],
        |dest| { ops::usage::run(&dest) }
    )
}

/// Deletes every version of the file `remote_path` and of every file under
/// `remote_path/`, hide markers included, and cancels unfinished large files there, so the
/// space is really freed. An empty `remote_path` is refused. Deleting what does not exist
/// succeeds with `"deleted_versions": 0`. The response has `deleted_versions` and
/// `bytes_freed`. Versions under B2 Object Lock (retention not over, legal hold) are not
/// deleted: everything else is, and the call returns `DEST_ERR_LOCKED` (13) with
/// `locked_versions`, `locked_bytes` and `earliest_unlock_ms` (when to try again).
/// Governance-locked versions are deleted only with `object_lock.bypass_governance` and a
/// key with `bypassGovernance`.
///
/// `config_json`, `remote_path`: not NULL. `response_json`: NULL or where to store the
/// response.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_delete(
    config_json: *const c_char,
    remote_path: *const c_char,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::logs_only(),
        config_json,
        [remote_path],
        |dest| { ops::delete::run(&dest, &remote_path) }
    )
}

/// Extends the B2 Object Lock retention of existing backups: every stored version of the
/// file at `remote_path` and of everything under `remote_path/` (`""` for the whole backup
/// directory) is locked until now + `object_lock.retention_days`, in the destination's
/// mode. Only forward: a version already locked as long is left alone, one in compliance
/// mode stays in compliance mode, and no retention is ever shortened (the library never
/// asks B2 to). Needs `object_lock` in the configuration, a bucket with Object Lock, and a
/// key with `readFileRetentions` and `writeFileRetentions`. The response has
/// `extended_versions`, `unchanged_versions`, `retention_mode` and `retain_until_ms`.
///
/// `config_json`, `remote_path`: not NULL. `response_json`: NULL or where to store the
/// response.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_protect(
    config_json: *const c_char,
    remote_path: *const c_char,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::logs_only(),
        config_json,
        [remote_path],
        |dest| { ops::protect::run(&dest, &remote_path) }
    )
}

/// Frees a response stored by any `dest_*` function. NULL is fine. Each response must be
/// freed exactly once, and only with this function; the string is the caller's until then.
/// May be called from any thread, not only the one that got the response. Does nothing
/// that can panic (it only returns the memory).
///
/// # Safety
/// `response_json` is NULL or a pointer a `dest_*` function stored and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn dest_free(response_json: *mut c_char) {
    if !response_json.is_null() {
        // SAFETY: the pointer came from CString::into_raw in `boundary`.
        drop(unsafe { CString::from_raw(response_json) });
    }
}

/// The library's version, e.g. "0.1.0": a static string owned by the library, never NULL,
/// never to be freed. Any thread; needs no runtime and does nothing that can panic.
#[no_mangle]
pub extern "C" fn dest_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}

/// Sets (or, with NULL, removes) the process-wide receiver of log lines, at `max_level`
/// and more severe (`DEST_LOG_INFO` is a good default). `user_data` is passed back
/// untouched. Lines are delivered on the thread of the `dest_*` call they belong to (see
/// `dest_log_fn`). Safe to call at any time from any thread.
///
/// Returns only once no other thread is inside the callback it replaced, so the host may
/// free the old `user_data` as soon as this returns; no line reaches the old callback
/// after that. It waits (without a lock) for those threads to leave the old callback:
/// a host must not call this while holding a lock its own log callback takes. Called from
/// inside the log callback itself (on that thread) it does not wait for that thread, whose
/// callback is still running when this returns: free the old `user_data` only after the
/// callback has returned. In a child after `fork()`, threads of the parent that were
/// inside the callback do not exist and are not waited for.
///
/// `callback`: NULL (no logging) or a function the library keeps and calls until it is
/// replaced. `user_data`: NULL or anything; the library never reads or frees it, and keeps
/// it as long as `callback`. A panic inside is caught and the call returns with no status;
/// the previous callback may then still be the one in place.
#[no_mangle]
pub extern "C" fn dest_set_log_callback(
    callback: dest_log_fn,
    max_level: i32,
    user_data: *mut c_void,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        logger::replace(callback, max_level, user_data)
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

    unsafe extern "C" fn keep(_level: i32, message: *const c_char, _user: *mut c_void) {
        // SAFETY: the logger passes a NUL-terminated line valid during the call.
        let line = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        LINES.lock().unwrap().push(line.into_owned());
    }

    #[test]
    fn keys_and_the_tokens_an_operation_sent_are_redacted_from_its_log_lines() {
        logger::replace(Some(keep), 4, std::ptr::null_mut());
        let mut observer = HostObserver::logs_only();
        observer.secrets = vec!["app-key-secret".into()];
        let ran = runtime::run(&mut observer, |op| async move {
            op.add_secret("4_acct_token");
            op.log(LogLevel::Warn, "echoed: 4_acct_token and app-key-secret");
            Ok(())
        });
        logger::replace(None, 0, std::ptr::null_mut());
        assert!(ran.is_ok());
        let lines = LINES.lock().unwrap().clone();
        assert_eq!(lines, vec!["echoed: [redacted] and [redacted]".to_string()]);
    }
}
