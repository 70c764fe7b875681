//! How long to wait before a request is tried again: the back-off of a retry policy, and
//! B2's `Retry-After`. Whether to try again at all is the failure table's (`retry.rs`).

use std::time::Duration;

/// Bounds and back-off of retries: exponential from `initial_delay` by 1.5, capped at 64 s,
/// with jitter, honouring `Retry-After`, and never past `max_elapsed` in all.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub max_elapsed: Duration,
}

impl RetryPolicy {
    /// For uploads of files and parts: the destination's Upload Retries.
    pub fn for_uploads(upload_retries: u32, initial_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts: upload_retries.saturating_add(1),
            initial_delay,
            max_delay: Duration::from_secs(64),
            max_elapsed: Duration::from_secs(30 * 60),
        }
    }

    /// For API calls, listings, downloads and deletes: five tries, as B2 suggests.
    pub fn for_calls(initial_delay: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_delay,
            max_delay: Duration::from_secs(64),
            max_elapsed: Duration::from_secs(15 * 60),
        }
    }

    /// The wait before attempt `attempt + 1` (attempt counts from 1), or None to give up.
    pub fn delay(
        &self,
        attempt: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || elapsed >= self.max_elapsed {
            return None;
        }
        let base = self.initial_delay.as_secs_f64() * 1.5f64.powi(attempt.saturating_sub(1) as i32);
        let capped = base.min(self.max_delay.as_secs_f64());
        // Up to 25% jitter, so threads that failed together do not return together.
        let jittered = capped * (1.0 + fastrand::f64() * 0.25);
        let wait = Duration::from_secs_f64(jittered).max(retry_after.unwrap_or_default());
        Some(wait.min(self.max_elapsed.saturating_sub(elapsed)))
    }
}

/// `Retry-After` (RFC 7231 7.1.3): whole seconds, or an HTTP date (the IMF-fixdate form
/// servers send) read against `now_ms`, a date already past meaning at once. Anything else
/// is ignored, and the back-off alone decides. Either form is bounded where the back-off
/// is: by the policy's `max_elapsed`.
pub fn retry_after(value: &str, now_ms: u64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at_ms = super::wire::http_date_ms(value)?;
    Some(Duration::from_millis(at_ms.saturating_sub(now_ms)))
}
