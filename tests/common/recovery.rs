//! Callers of the recovery exports through the C ABI (`options_json` NULL when None).

use std::ffi::{c_char, CString};
use std::path::Path;

use serde_json::Value;

use super::take_response;

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn opts(o: Option<&str>) -> Option<CString> {
    o.map(c)
}

fn ptr(o: &Option<CString>) -> *const c_char {
    o.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

pub fn versions(cfg: &str, remote: &str, options: Option<&str>) -> (i32, Value) {
    let (cfg, remote, o) = (c(cfg), c(remote), opts(options));
    let mut out = std::ptr::null_mut();
    let st = unsafe {
        b2dest::ffi::dest_list_versions(cfg.as_ptr(), remote.as_ptr(), ptr(&o), &mut out)
    };
    take_response(st, out)
}

pub fn restore(cfg: &str, remote: &str, local: &Path, options: Option<&str>) -> (i32, Value) {
    let (cfg, remote, local, o) = (c(cfg), c(remote), c(local.to_str().unwrap()), opts(options));
    let mut out = std::ptr::null_mut();
    let st = unsafe {
        b2dest::ffi::dest_download_as_of(
            cfg.as_ptr(),
            remote.as_ptr(),
            local.as_ptr(),
            ptr(&o),
            None,
            std::ptr::null_mut(),
            &mut out,
        )
    };
    take_response(st, out)
}

pub fn rollback(cfg: &str, remote: &str, options: Option<&str>) -> (i32, Value) {
    let (cfg, remote, o) = (c(cfg), c(remote), opts(options));
    let mut out = std::ptr::null_mut();
    let st =
        unsafe { b2dest::ffi::dest_rollback(cfg.as_ptr(), remote.as_ptr(), ptr(&o), &mut out) };
    take_response(st, out)
}
