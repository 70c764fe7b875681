//! `B2Client`: a session as one operation uses it. Authorization and its renewal, the one
//! retry loop every B2 request runs in, and the session's bucket and upload-URL caches.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::AuthorizeResponse;
use super::calls::{GetUploadUrl, ListBuckets};
use super::encryption::Encryption;
use super::http::exchange_json;
use super::retry::{B2Failure, Failure, RetryPolicy};
use super::session::{take_fresh, Authorization, B2Session, BucketInfo, UploadTarget};
use super::throttle::Throttle;
use crate::error::{Error, Result};
use crate::operation::{LogLevel, Operation};

pub const API_VERSION: &str = "v4";
/// B2 tokens last 24 hours; renew well before, so a long upload never meets an expiry.
const AUTH_MAX_AGE: Duration = Duration::from_secs(20 * 3600);
/// Fresh tokens B2 may refuse as expired in a row before a call gives up (one refused as
/// bad gets a single renewal).
const MAX_REAUTHORIZATIONS: u32 = 3;

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

/// A request that failed, and how the retry rules treat it.
pub struct Failed {
    pub failure: Failure,
    pub error: Error,
}

impl From<B2Failure> for Failed {
    fn from(b2: B2Failure) -> Failed {
        let (failure, error) = b2.decide();
        Failed { failure, error }
    }
}

impl Failed {
    /// Whether the request got no answer, so B2 may have acted on it: the table tells
    /// every unanswered failure, and only those, as `Error::Network`.
    pub fn unanswered(&self) -> bool {
        matches!(self.error, Error::Network(_))
    }

    pub fn fatal(error: Error) -> Failed {
        Failed {
            failure: Failure::Fatal,
            error,
        }
    }
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
            // The table tells a refused key at authorization as such (never Reauthorize).
            let retry_after = match failed.failure {
                Failure::Transient { retry_after } | Failure::NewUploadUrl { retry_after } => {
                    retry_after
                }
                Failure::Reauthorize | Failure::Fatal => return Err(failed.error),
            };
            match self.calls.delay(attempt, started.elapsed(), retry_after) {
                Some(wait) => self.sleep(call, wait).await?,
                None => return Err(failed.error),
            }
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

    pub async fn sleep(&self, call: &str, wait: Duration) -> Result<()> {
        self.op.log(
            LogLevel::Debug,
            format!(
                "{call}: waiting {} ms before trying again",
                wait.as_millis()
            ),
        );
        self.op
            .or_cancel(async {
                tokio::time::sleep(wait).await;
                Ok(())
            })
            .await
    }

    /// Runs `attempt` under the retry rules of `policy`: re-authorizes on an expired token
    /// (up to `MAX_REAUTHORIZATIONS` times: B2 may expire a fresh token too), backs off on
    /// transient failures, gives up on the rest.
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
        let mut tries = 0;
        let mut auth = self.authorization().await?;
        loop {
            tries += 1;
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
                // A fresh token refused as bad (not expired) gets one renewal only.
                Failure::Reauthorize
                    if reauthorizations
                        < if matches!(failed.error, Error::Auth(_)) {
                            1
                        } else {
                            MAX_REAUTHORIZATIONS
                        } =>
                {
                    reauthorizations += 1;
                    auth = self.reauthorize(&auth).await?;
                    continue;
                }
                Failure::Reauthorize => return Err(failed.error),
                Failure::Transient { retry_after } | Failure::NewUploadUrl { retry_after } => {
                    self.op
                        .log(LogLevel::Warn, format!("{}; retrying", failed.error));
                    match policy.delay(tries, started.elapsed(), retry_after) {
                        Some(wait) => self.sleep(call, wait).await?,
                        None => return Err(failed.error),
                    }
                    // A long back-off may outlive the token.
                    auth = self.authorization().await?;
                }
            }
        }
    }

    /// A JSON API call, `POST {apiUrl}/b2api/v4/{call}`.
    pub async fn call<Req, Resp>(&self, call: &'static str, body: &Req) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let payload = serde_json::to_vec(body)
            .map_err(|e| Error::Internal(format!("could not encode {call}: {e}")))?;
        self.with_retries(call, &self.calls.clone(), |auth| {
            let req = self
                .decorate(
                    self.http()
                        .post(format!("{}/b2api/{API_VERSION}/{call}", auth.api_url)),
                    &auth.token,
                )
                .header("Content-Type", "application/json")
                .body(payload.clone());
            exchange_json(call, req, self.session.timeout, &self.op)
        })
        .await
    }

    /// The bucket's id (and, when the key may list buckets, its type and lifecycle rules),
    /// looked up once per session (one lookup at a time: the others wait for it and take
    /// its answer). Ids do not change while the session lives.
    pub async fn bucket(&self, name: &str) -> Result<BucketInfo> {
        let known = || {
            self.session
                .buckets
                .lock()
                .ok()
                .and_then(|m| m.get(name).cloned())
        };
        if let Some(b) = known() {
            return Ok(b);
        }
        let _one_at_a_time = self
            .op
            .or_cancel(async { Ok(self.session.bucket_lookup.lock().await) })
            .await?;
        if let Some(b) = known() {
            return Ok(b);
        }
        self.bucket_now(name).await
    }

    /// The bucket as B2 has it now, for checks of its type and lifecycle rules.
    pub async fn bucket_now(&self, name: &str) -> Result<BucketInfo> {
        let auth = self.authorization().await?;
        let restricted_id = auth.allowed.buckets.as_ref().and_then(|list| {
            list.iter()
                .find(|b| b.name.as_deref() == Some(name))
                .map(|b| b.id.clone())
        });
        if let Some(list) = &auth.allowed.buckets {
            if restricted_id.is_none() {
                let names: Vec<&str> = list.iter().filter_map(|b| b.name.as_deref()).collect();
                return Err(Error::Permission(format!(
                    "the application key is restricted to bucket(s) {} and may not use bucket \"{name}\": use a key for this bucket",
                    names.join(", ")
                )));
            }
        }
        let info = if auth.has_capability("listBuckets") {
            let found = self
                .list_buckets(&ListBuckets {
                    account_id: &auth.account_id,
                    bucket_name: name,
                })
                .await?;
            let bucket = found
                .buckets
                .into_iter()
                .find(|b| b.bucket_name == name)
                .ok_or_else(|| {
                    Error::NotFound(format!(
                        "bucket \"{name}\" does not exist in this B2 account: check the bucket name, or create it"
                    ))
                })?;
            BucketInfo {
                id: bucket.bucket_id.clone(),
                name: name.to_string(),
                details: Some(bucket),
            }
        } else if let Some(id) = restricted_id {
            BucketInfo {
                id,
                name: name.to_string(),
                details: None,
            }
        } else {
            return Err(Error::Permission(format!(
                "the application key may not list buckets, so bucket \"{name}\" cannot be found: give the key the listBuckets capability or restrict it to this bucket"
            )));
        };
        if let Ok(mut m) = self.session.buckets.lock() {
            m.insert(name.to_string(), info.clone());
        }
        Ok(info)
    }

    /// An upload URL nobody else is using: a pooled one, or a new one from B2.
    pub async fn take_upload_target(&self, bucket_id: &str) -> Result<UploadTarget> {
        let pooled = self
            .session
            .upload_targets
            .lock()
            .ok()
            .and_then(|mut m| m.get_mut(bucket_id).and_then(take_fresh));
        if let Some(t) = pooled {
            return Ok(t);
        }
        let got = self.get_upload_url(&GetUploadUrl { bucket_id }).await?;
        Ok(UploadTarget::new(got))
    }

    /// Gives back an upload URL whose last upload succeeded, for the next upload.
    pub fn return_upload_target(&self, bucket_id: &str, target: UploadTarget) {
        if let Ok(mut m) = self.session.upload_targets.lock() {
            let pool = m.entry(bucket_id.to_string()).or_default();
            if pool.len() < 64 {
                pool.push(target);
            }
        }
    }
}
