//! When a failed B2 request is tried again, and how long to wait first: B2's rules.

use std::time::Duration;

/// How a failed request is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Try again after a back-off, with the same URL (API calls) or a new one (uploads).
    Transient { retry_after: Option<Duration> },
    /// The account token expired or was refused: authorize once more, then try again.
    Reauthorize,
    /// No point trying again.
    Fatal,
}

impl Failure {
    /// Classifies an HTTP answer (None when the request never got one: connection refused,
    /// reset, timeout).
    pub fn classify(status: Option<u16>, code: &str, retry_after: Option<Duration>) -> Failure {
        match status {
            None => Failure::Transient { retry_after: None },
            Some(401) if code == "expired_auth_token" || code == "bad_auth_token" => {
                Failure::Reauthorize
            }
            Some(408) | Some(429) | Some(500..=599) => Failure::Transient { retry_after },
            Some(_) => Failure::Fatal,
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_b2() {
        assert_eq!(
            Failure::classify(Some(503), "service_unavailable", None),
            Failure::Transient { retry_after: None }
        );
        assert_eq!(
            Failure::classify(Some(401), "expired_auth_token", None),
            Failure::Reauthorize
        );
        assert_eq!(
            Failure::classify(Some(401), "unauthorized", None),
            Failure::Fatal
        );
        assert_eq!(
            Failure::classify(Some(400), "bad_request", None),
            Failure::Fatal
        );
        assert_eq!(
            Failure::classify(Some(403), "storage_cap_exceeded", None),
            Failure::Fatal
        );
        assert_eq!(
            Failure::classify(None, "", None),
            Failure::Transient { retry_after: None }
        );
    }

    #[test]
    fn back_off_grows_honours_retry_after_and_stops() {
        let p = RetryPolicy::for_uploads(3, Duration::from_secs(1));
        let d1 = p.delay(1, Duration::ZERO, None).unwrap();
        let d3 = p.delay(3, Duration::ZERO, None).unwrap();
        assert!(d1 >= Duration::from_secs(1) && d1 <= Duration::from_millis(1250));
        assert!(d3 >= Duration::from_millis(2250));
        assert!(
            p.delay(1, Duration::ZERO, Some(Duration::from_secs(7)))
                .unwrap()
                >= Duration::from_secs(7)
        );
        assert_eq!(p.delay(4, Duration::ZERO, None), None);
        assert_eq!(p.delay(1, Duration::from_secs(3600), None), None);
    }
}
