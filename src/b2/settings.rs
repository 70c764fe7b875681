//! What the B2 client needs to know about one account: where it is, the key, and the
//! bounds of its requests. Nothing of the host (names, quotas, read-only) comes here.

use std::fmt;
use std::time::Duration;

pub use super::encryption::{CustomerKey, Encryption};

/// The application key. Its `Debug` and `Display` never show it, so it cannot leak through
/// a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApplicationKey(String);

impl ApplicationKey {
    pub fn new(key: String) -> ApplicationKey {
        ApplicationKey(key)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApplicationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApplicationKey(<redacted>)")
    }
}

/// One account's settings, as the client uses them.
#[derive(Clone, Debug)]
pub struct B2Settings {
    /// Where `b2_authorize_account` is called.
    pub api_url: String,
    /// The key ID (or the account ID, for the master key).
    pub account_id: String,
    pub application_key: ApplicationKey,
    /// How long one request may make no progress.
    pub timeout: Duration,
    /// Retries of one upload or part after the first try.
    pub upload_retries: u32,
    /// The first back-off; later ones grow from it.
    pub retry_initial_delay: Duration,
    /// Sent as `X-Bz-Test-Mode` on every request (B2's own fault injection).
    pub test_mode: Option<String>,
    /// How long the parts of a failed large upload are kept for a resume.
    pub resume_window: Duration,
    /// How new files are encrypted (its `Debug` never shows a customer key).
    pub encryption: Encryption,
    /// Bytes a second for every transfer under these settings together; None: no limit.
    pub bandwidth_limit: Option<u64>,
    /// Object Lock: the retention every upload carries, and whether governance may be
    /// bypassed. Not part of the session's identity: operations read it from their own
    /// destination's settings, never from a session shared with another destination.
    pub object_lock: Option<super::object_lock::ObjectLockSettings>,
    /// Certificates trusted besides the system's roots (`ca_file`); part of the session's
    /// identity and of the HTTP client's.
    pub extra_roots: Option<std::sync::Arc<super::tls::ExtraRoots>>,
}
