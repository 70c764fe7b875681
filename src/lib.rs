//! b2dest: a Backblaze B2 backup destination for control-panel backup engines, loaded as a
//! C shared library (`libb2dest.so`). See `include/b2dest.h` and the README.
//!
//! - `ffi`: the exported C functions and their `boundary`; `ffi::logger` (the host's log
//!   callback) and `ffi::envelope` (the JSON response) beside them.
//! - `config`: the destination's configuration. `remote_path`: path rules.
//! - `ops`: what each destination operation does.
//! - `b2`: the B2 native-API client (sessions, retries in `b2::retry`, uploads, downloads).
//! - `local`: the local file system through directory handles (no link followed).
//! - `runtime`: the lazily built, fork-aware runtime; `operation`: progress, cancel, logs,
//!   and `DestLogLevel`, the one log-level type.
//! - `error` and `status`: the one error type and the ABI's status codes.

pub mod b2;
pub mod config;
pub mod error;
pub mod ffi;
pub mod local;
pub mod operation;
pub mod ops;
pub mod remote_path;
pub mod runtime;
pub mod status;
pub mod usage_cache;

pub use status::DestStatus;
