//! `B2Client`: a session as one operation uses it. Authorization and its renewal, the one
//! retry loop every B2 request runs in, and the session's bucket and upload-URL caches.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::AuthorizeResponse;
use super::backoff::RetryPolicy;
use super::encryption::Encryption;
use super::http::exchange_json;
use super::retry::{gave_up, Failed, Failure};
use super::session::{Authorization, B2Session};
use super::throttle::Throttle;
use crate::error::{Error, Result};
use crate::operation::{LogLevel, Operation};

pub const API_VERSION: &str = "v4";
/// B2 tokens last 24 hours; renew well before, so a long upload never meets an expiry.
const AUTH_MAX_AGE: Duration = Duration::from_secs(20 * 3600);
/// Fresh tokens B2 may refuse as expired in a row before a call gives up (one refused as
/// bad gets a single renewal).
const MAX_REAUTHORIZATIONS: u32 = 3;
/// New upload URLs a request may take in a row, at once and uncounted, for upload tokens
/// that expired; past this, a server that expires every token gets the back-off and the
/// retry bound of any failure.
pub const MAX_FRESH_UPLOAD_URLS: u32 = 3;

/// A session as one operation uses it: with that operation's cancellation, logs and
/// retry bounds.
#[derive(Clone)]
pub struct B2Client {
    pub session: Arc<B2Session>,
    pub op: Arc<Operation>,
    pub calls: RetryPolicy,
    pub uploads: RetryPolicy,
    /// How this destination's new files are encrypted, and the key its SSE-C files need.
    pub encryption: Encryption,
    /// The destination's bandwidth limit, shared with every transfer under it.
    pub throttle: Option<Arc<Throttle>>,
}

impl B2Client {
    pub fn new(session: Arc<B2Session>, op: Arc<Operation>) -> B2Client {
        B2Client {
            calls: RetryPolicy::for_calls(session.retry_initial_delay),
            uploads: RetryPolicy::for_uploads(session.upload_retries, session.retry_initial_delay),
            session,
            op,
            encryption: Encryption::BucketDefault,
            throttle: None,
        }
    }

    /// With the destination's encryption and bandwidth limit.
    pub fn with_transfer_settings(
        mut self,
        encryption: Encryption,
        throttle: Option<Arc<Throttle>>,
    ) -> B2Client {
        self.encryption = encryption;
        self.throttle = throttle;
        self
    }

    /// The same session under an operation of its own, for clean-up that must run even
    /// after this operation was cancelled.
    pub fn detached(&self) -> B2Client {
        B2Client {
            op: Arc::new(self.op.detached()),
            ..self.clone()
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.session.http
    }

    /// Adds the headers every request carries.
    pub fn decorate(&self, req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
        self.op.add_secret(token);
        let req = req.header("Authorization", token);
        match &self.session.test_mode {
            Some(mode) => req.header("X-Bz-Test-Mode", mode),
            None => req,
        }
    }

    /// The current authorization, obtained or renewed as needed. Threads that find it
    /// missing wait for the one that is getting it.
    pub async fn authorization(&self) -> Result<Arc<Authorization>> {
        self.session.touch();
        let mut slot = self
            .op
            .or_cancel(async { Ok(self.session.auth.lock().await) })
            .await?;
        if let Some(auth) = slot.as_ref() {
            if auth.obtained.elapsed() < AUTH_MAX_AGE {
                return Ok(auth.clone());
            }
        }
        let fresh = Arc::new(self.authorize().await?);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// Renews the authorization after B2 refused `stale`'s token, unless another thread
    /// already did: one re-authorization serves every thread of the destination.
    async fn reauthorize(&self, stale: &Authorization) -> Result<Arc<Authorization>> {
        let mut slot = self
            .op
            .or_cancel(async { Ok(self.session.auth.lock().await) })
            .await?;
        if let Some(current) = slot.as_ref() {
            if current.generation != stale.generation {
                return Ok(current.clone());
            }
        }
        self.op.log(
            LogLevel::Info,
            "B2 token expired or was refused; authorizing again",
        );
        // The refused token is no use to anyone, whatever comes of this.
        *slot = None;
        let fresh = Arc::new(self.authorize().await?);
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    /// `b2_authorize_account`, with the retry rules; the session remembers whether it
    /// holds a valid authorization, so one whose key was refused is not kept.
    async fn authorize(&self) -> Result<Authorization> {
        let got = self.authorize_now().await;
        self.session
            .authorized
            .store(got.is_ok(), Ordering::Relaxed);
        got
    }

    async fn authorize_now(&self) -> Result<Authorization> {
        let url = format!(
            "{}/b2api/{API_VERSION}/b2_authorize_account",
            self.session.api_url
        );
        let call = "b2_authorize_account";
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut req = self.http().get(&url).basic_auth(
                &self.session.account_id,
                Some(self.session.application_key.expose()),
            );
            if let Some(mode) = &self.session.test_mode {
                req = req.header("X-Bz-Test-Mode", mode);
            }
            let timeout = self.session.timeout;
            let exchanged = self
                .op
                .or_cancel(async {
                    Ok(exchange_json::<AuthorizeResponse>(call, req, timeout, &self.op).await)
                })
                .await?;
            let failed = match exchanged {
                Ok(body) => return Ok(self.authorization_from(body)),
                Err(f) => f,
            };
            // The table tells a refused key at authorization as such (never Reauthorize,
            // nor an upload URL's expiry): anything but a pause is final here.
            if matches!(
                failed.failure,
                Failure::FreshUploadUrl
                    | Failure::Reauthorize
                    | Failure::BucketGone
                    | Failure::Fatal
            ) {
                return Err(failed.error);
            }
            self.back_off(call, &self.calls, failed, attempt, started)
                .await?;
        }
    }

    fn authorization_from(&self, body: AuthorizeResponse) -> Authorization {
        let api = body.api_info.storage_api;
        Authorization {
            token: body.authorization_token,
            api_url: api.api_url.trim_end_matches('/').to_string(),
            download_url: api.download_url.trim_end_matches('/').to_string(),
            account_id: body.account_id,
            recommended_part_size: api.recommended_part_size,
            min_part_size: api.absolute_minimum_part_size,
            allowed: api.allowed,
            obtained: Instant::now(),
            generation: self.session.generations.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub async fn sleep(&self, wait: Duration) -> Result<()> {
        self.op
            .or_cancel(async {
                tokio::time::sleep(wait).await;
                Ok(())
            })
            .await
    }

    /// Says that a failed request is tried again, as what happened and what comes next:
    /// the final failure alone says the retries ran out.
    fn log_retry(&self, call: &str, error: &Error, wait: Duration, next: u32, of: u32) {
        let what = error.to_string();
        let what = if what.contains(call) {
            what
        } else {
            format!("{call}: {what}")
        };
        self.op.log(
            LogLevel::Warn,
            format!(
                "{what}; trying again in {} ms (attempt {next} of {of})",
                wait.as_millis()
            ),
        );
    }

    /// Runs `attempt` under the retry rules of `policy`: re-authorizes on an expired
    /// account token (up to `MAX_REAUTHORIZATIONS` times: B2 may expire a fresh token too),
    /// takes a new upload URL at once on an expired upload token (up to
    /// `MAX_FRESH_UPLOAD_URLS` times, uncounted), backs off on transient failures, gives up
    /// on the rest.
    pub async fn with_retries<T, F, Fut>(
        &self,
        call: &str,
        policy: &RetryPolicy,
        mut attempt: F,
    ) -> Result<T>
    where
        F: FnMut(Arc<Authorization>) -> Fut,
        Fut: Future<Output = std::result::Result<T, Failed>>,
    {
        let started = Instant::now();
        let mut reauthorizations = 0;
        let mut fresh_urls = 0;
        // Attempts counted against the policy: an expired upload URL's is not.
        let mut tries = 0;
        let mut auth = self.authorization().await?;
        loop {
            let failed = match self
                .op
                .or_cancel(async { Ok(attempt(auth.clone()).await) })
                .await?
            {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            match failed.failure {
                Failure::Fatal => return Err(failed.error),
                Failure::BucketGone => {
                    // Every operation of this session would meet the same stale id.
                    if let Ok(mut buckets) = self.session.buckets.lock() {
                        buckets.clear();
                    }
                    return Err(failed.error);
                }
                Failure::FreshUploadUrl if fresh_urls < MAX_FRESH_UPLOAD_URLS => {
                    fresh_urls += 1;
                    self.op.log(
                        LogLevel::Info,
                        format!(
                            "{}; taking a new upload URL at once (not counted against the retries)",
                            failed.error
                        ),
                    );
                    continue;
                }
                // A fresh token refused as bad (not expired) gets one renewal only.
                Failure::Reauthorize
                    if reauthorizations
                        < if matches!(failed.error, Error::Auth(_)) {
                            1
                        } else {
                            MAX_REAUTHORIZATIONS
                        } =>
                {
                    tries += 1;
                    reauthorizations += 1;
                    auth = self.reauthorize(&auth).await?;
                    continue;
                }
                Failure::Reauthorize => {
                    return Err(gave_up(failed.failure, failed.error, tries + 1))
                }
                Failure::FreshUploadUrl
                | Failure::Transient { .. }
                | Failure::NewUploadUrl { .. } => {}
            }
            tries += 1;
            self.back_off(call, policy, failed, tries, started).await?;
            // A long back-off may outlive the token.
            auth = self.authorization().await?;
        }
    }

    /// After failed try number `tries` of `call`: waits as `policy` and B2's `Retry-After`
    /// say and logs that it will try again, or, when the policy is spent, ends with what
    /// the host reads (`gave_up`). The one back-off of every retry, authorization's too.
    async fn back_off(
        &self,
        call: &str,
        policy: &RetryPolicy,
        failed: Failed,
        tries: u32,
        started: Instant,
    ) -> Result<()> {
        let retry_after = match failed.failure {
            Failure::Transient { retry_after } | Failure::NewUploadUrl { retry_after } => {
                retry_after
            }
            _ => None,
        };
        let Some(wait) = policy.delay(tries, started.elapsed(), retry_after) else {
            return Err(gave_up(failed.failure, failed.error, tries));
        };
        self.log_retry(call, &failed.error, wait, tries + 1, policy.max_attempts);
        self.sleep(wait).await
    }
}
