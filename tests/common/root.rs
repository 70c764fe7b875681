//! Tests that need root (files given to another user's uid, as a customer's are) skip,
//! saying so, when run as a normal user: `if !needs_root() { return; }`.

/// True when running as root; otherwise prints why the calling test is skipped.
pub fn needs_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let test = std::thread::current();
    eprintln!(
        "skipped: needs root ({} gives files to another user)",
        test.name().unwrap_or("this test")
    );
    false
}
