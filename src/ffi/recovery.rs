//! The recovery exports: list every version, restore as of a time or by version, roll
//! back. Each takes `options_json` (NULL is `{}`), checked before anything is asked of B2.

use std::ffi::{c_char, c_void};
use std::path::Path;

use super::{boundary, c_str, dest_progress_fn, run_operation, HostObserver};
use crate::error::Result;
use crate::ops::{self, recovery::RecoveryOptions};

/// `options_json` read and checked: NULL is `{}`, only `allowed` fields.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid during the call.
unsafe fn options(ptr: *const c_char, allowed: &[&str]) -> Result<RecoveryOptions> {
    let text = if ptr.is_null() {
        None
    } else {
        // SAFETY: non-NULL, as the caller promised.
        Some(unsafe { c_str(ptr, "options_json") }?)
    };
    RecoveryOptions::parse(text, allowed, crate::b2::wire::now_ms())
}

/// Lists every version under `remote_path` (a file, or a directory; `""` for the whole
/// backup directory), all pages, each name's versions newest first: uploads, hide markers
/// (`"action": "hide"`) and unfinished large files (`"start"`); an action this library does
/// not know is shown as B2 wrote it. `"entries": [{"remote_path", "file_id", "action",
/// "upload_ms", "size", "sha1"}]`, with `retain_until_ms`, `retention_mode`, `legal_hold`
/// where the key may read them. `options_json`: NULL or `{"as_of_ms": T}`, which adds
/// `"current_at": true|false` to each entry: true for the one file version that was current
/// at T (ms since 1970).
///
/// Bad options (not JSON, an unknown field, a wrong type, a time in the future) return
/// `DEST_ERR_INVALID_ARGUMENT` naming the field.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_list_versions(
    config_json: *const c_char,
    remote_path: *const c_char,
    options_json: *const c_char,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::logs_only(),
        config_json,
        [remote_path],
        {
            let options = options(options_json, &["as_of_ms"])?;
        },
        |dest| ops::versions::run(&dest, &remote_path, &options)
    )
}

/// Restores `remote_path` as it was at a time, or one version of one file, to
/// `local_path`. `options_json`: `{"as_of_ms": T}` restores the file or tree as it was at
/// T (ms since 1970): per name the newest upload at or before T; later versions and hide
/// markers are ignored, and names hidden or absent at T are not restored (counted in
/// `hidden_at_as_of`, `absent_at_as_of`). `{"file_id": "..."}` restores that version (of a
/// file at or below `remote_path`) to the file `local_path`. Exactly one of the two.
/// Everything `dest_download` guarantees holds: SHA1 checked, temporary file renamed into
/// place, SSE-C, progress and cancel. Each file in the response has `file_id` and
/// `upload_ms`: the version it came from.
///
/// Bad options return `DEST_ERR_INVALID_ARGUMENT` naming the field.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_download_as_of(
    config_json: *const c_char,
    remote_path: *const c_char,
    local_path: *const c_char,
    options_json: *const c_char,
    progress: dest_progress_fn,
    user_data: *mut c_void,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::with_progress(progress, user_data),
        config_json,
        [remote_path, local_path],
        {
            let options = options(options_json, &["as_of_ms", "file_id"])?;
            options.require_version_choice()?;
        },
        |dest| ops::restore_as_of::run(&dest, &remote_path, Path::new(&local_path), &options)
    )
}

/// Makes what is current under `remote_path` what was current at T. `options_json`:
/// `{"as_of_ms": T, "dry_run": false, "remove_newer_names": false}`. Per name, the versions
/// newer than T that may be deleted are deleted (hide markers included, their storage
/// freed); where a newer version is held by Object Lock, the version from T is made current
/// again by a server-side copy (`b2_copy_file`, no download or upload), which carries the
/// destination's own `object_lock` retention. Nothing uploaded at or before T is deleted.
/// Names hidden or absent at T are left alone unless `remove_newer_names` (then their newer
/// versions are deleted, or hidden when locked). A newer version with the same content as
/// the one from T is kept, so running it again does nothing. `dry_run` changes nothing and
/// reports what would be done. The response has `actions` (`delete`, `copy`, `hide`,
/// `left_locked`, each with file ids and size), `deleted_versions`, `deleted_bytes`,
/// `copied_files`, `copied_bytes`, `hidden_files`, `locked_versions_left`. A `read_only`
/// destination is refused with `DEST_ERR_PERMISSION`; bad options with
/// `DEST_ERR_INVALID_ARGUMENT`.
///
/// Ownership, threads and panics: as for every operation (the top of this header).
///
/// # Safety
/// Each pointer is NULL or valid as described.
#[no_mangle]
pub unsafe extern "C" fn dest_rollback(
    config_json: *const c_char,
    remote_path: *const c_char,
    options_json: *const c_char,
    response_json: *mut *mut c_char,
) -> i32 {
    export!(
        response_json,
        HostObserver::logs_only(),
        config_json,
        [remote_path],
        {
            let options = options(options_json, &["as_of_ms", "dry_run", "remove_newer_names"])?;
            options.require_as_of()?;
        },
        |dest| ops::rollback::run(&dest, &remote_path, &options)
    )
}
