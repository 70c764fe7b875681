//! One B2 session per destination credentials, kept for the life of the process: the
//! account authorization, pooled connections, upload URLs and bucket facts, shared by every
//! call and thread. `B2Client` is a session seen by one operation.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sha1::{Digest, Sha1};

use super::api::{Allowed, AuthorizeResponse, Bucket, UploadUrlResponse};
use super::calls::{GetUploadUrl, ListBuckets};
use super::retry::{B2Failure, Failure, RetryPolicy};
use super::settings::{ApplicationKey, B2Settings};
use crate::error::{Error, Result};
use crate::operation::{LogLevel, Operation};

pub const API_VERSION: &str = "v4";
/// B2 tokens last 24 hours; renew well before, so a long upload never meets an expiry.
const AUTH_MAX_AGE: Duration = Duration::from_secs(20 * 3600);
/// Fresh tokens B2 may refuse as expired in a row before a call gives up (one refused as
/// bad gets a single renewal).
const MAX_REAUTHORIZATIONS: u32 = 3;
const USER_AGENT: &str = concat!("b2dest/", env!("CARGO_PKG_VERSION"));

/// A successful `b2_authorize_account`.
pub struct Authorization {
    pub token: String,
    pub api_url: String,
    pub download_url: String,
    pub account_id: String,
    pub recommended_part_size: u64,
    pub min_part_size: u64,
    pub allowed: Allowed,
    obtained: Instant,
    generation: u64,
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorization")
            .field("api_url", &self.api_url)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Authorization {
    pub fn has_capability(&self, name: &str) -> bool {
        self.allowed.capabilities.iter().any(|c| c == name)
    }
}

/// An upload URL and its token, used by one upload at a time.
pub struct UploadTarget {
    pub url: String,
    pub token: String,
    obtained: Instant,
}

/// The newest pooled upload URL that is still fresh; stale ones are dropped.
pub fn take_fresh(pool: &mut Vec<UploadTarget>) -> Option<UploadTarget> {
    pool.retain(UploadTarget::is_fresh);
    pool.pop()
}

/// Upload URL tokens last 24 hours too: a pooled URL older than this is dropped unused.
const UPLOAD_URL_MAX_AGE: Duration = Duration::from_secs(23 * 3600);

impl UploadTarget {
    pub fn new(got: UploadUrlResponse) -> UploadTarget {
        UploadTarget {
            url: got.upload_url,
            token: got.authorization_token,
            obtained: Instant::now(),
        }
    }

    pub fn is_fresh(&self) -> bool {
        self.obtained.elapsed() < UPLOAD_URL_MAX_AGE
    }
}

/// Bucket facts looked up once per session.
#[derive(Clone, Debug)]
pub struct BucketInfo {
    pub id: String,
    pub name: String,
    /// None when the key may not list buckets, so type and rules are unknown.
    pub details: Option<Bucket>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct SessionKey {
    api_url: String,
    account_id: String,
    key_digest: [u8; 20],
    timeout_secs: u64,
    test_mode: Option<String>,
}

/// A session nobody used for this long is dropped. What it saves is one
/// `b2_authorize_account` and the bucket id (the pooled connections expire after 60 s,
/// the usage figure after 5 minutes): a backup run uses a destination in bursts seconds
/// to minutes apart, which 15 minutes covers, while a worker that only validated keys an
/// admin typed lets them go soon.
const SESSION_IDLE_LIMIT: Duration = Duration::from_secs(15 * 60);
/// At most this many sessions not in use are kept; the least recently used goes first.
/// Sessions in use are never dropped, so more may exist while that many calls run.
const MAX_IDLE_SESSIONS: usize = 64;
/// Every request is bounded by the destination's own timeout; this only stops a connect
/// from hanging longer than any destination would wait.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Milliseconds since the first use, for the idle clock of sessions.
fn now_millis() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// All sessions of this process, and the one HTTP client (one connection pool) they
/// share. It lives in the process state, so a forked child builds its own.
#[derive(Default)]
pub struct SessionRegistry {
    http: std::sync::OnceLock<reqwest::Client>,
    sessions: Mutex<HashMap<SessionKey, Arc<B2Session>>>,
}

impl SessionKey {
    fn of(settings: &B2Settings) -> SessionKey {
        SessionKey {
            api_url: settings.api_url.clone(),
            account_id: settings.account_id.clone(),
            key_digest: Sha1::digest(settings.application_key.expose().as_bytes()).into(),
            timeout_secs: settings.timeout.as_secs(),
            test_mode: settings.test_mode.clone(),
        }
    }
}

impl SessionRegistry {
    pub fn session_for(&self, settings: &B2Settings) -> Result<Arc<B2Session>> {
        let key = SessionKey::of(settings);
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| Error::Internal("session registry lock poisoned".into()))?;
        drop_unneeded(&mut sessions, now_millis());
        if let Some(s) = sessions.get(&key) {
            s.touch();
            return Ok(s.clone());
        }
        let session = Arc::new(B2Session::new(self.http()?, settings));
        sessions.insert(key, session.clone());
        Ok(session)
    }

    /// How many sessions are kept, in use or not.
    pub fn len(&self) -> usize {
        self.sessions.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shared client, built on first use (with the registry's lock held).
    fn http(&self) -> Result<reqwest::Client> {
        if let Some(client) = self.http.get() {
            return Ok(client.clone());
        }
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Internal(format!("could not build the HTTPS client: {e}")))?;
        Ok(self.http.get_or_init(|| client).clone())
    }
}

/// Drops the sessions no call holds that are not worth keeping: without a valid
/// authorization (its key was refused, or it never got one), idle too long, or beyond
/// the count, least recently used first.
fn drop_unneeded(sessions: &mut HashMap<SessionKey, Arc<B2Session>>, now: u64) {
    let idle_limit = SESSION_IDLE_LIMIT.as_millis() as u64;
    let in_use = |s: &Arc<B2Session>| Arc::strong_count(s) > 1;
    sessions.retain(|_, s| {
        in_use(s) || (s.is_authorized() && now.saturating_sub(s.last_used()) < idle_limit)
    });
    let idle = sessions.values().filter(|s| !in_use(s)).count();
    if idle > MAX_IDLE_SESSIONS {
        let mut by_age: Vec<(u64, SessionKey)> = sessions
            .iter()
            .filter(|(_, s)| !in_use(s))
            .map(|(k, s)| (s.last_used(), k.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(used, _)| *used);
        for (_, k) in by_age.into_iter().take(idle - MAX_IDLE_SESSIONS) {
            sessions.remove(&k);
        }
    }
}

pub struct B2Session {
    http: reqwest::Client,
    api_url: String,
    account_id: String,
    application_key: ApplicationKey,
    test_mode: Option<String>,
    pub timeout: Duration,
    auth: tokio::sync::Mutex<Option<Arc<Authorization>>>,
    generations: AtomicU64,
    /// Whether the last authorization attempt succeeded: a session whose key was refused
    /// is not kept.
    authorized: AtomicBool,
    /// `now_millis()` of the last call made through this session.
    last_used: AtomicU64,
    buckets: Mutex<HashMap<String, BucketInfo>>,
    upload_targets: Mutex<HashMap<String, Vec<UploadTarget>>>,
    upload_retries: u32,
    retry_initial_delay: Duration,
    /// How long the parts of a failed large upload are kept for a resume.
    pub resume_window: Duration,
}

impl B2Session {
    fn new(http: reqwest::Client, settings: &B2Settings) -> B2Session {
        B2Session {
            http,
            api_url: settings.api_url.clone(),
            account_id: settings.account_id.clone(),
            application_key: settings.application_key.clone(),
            test_mode: settings.test_mode.clone(),
            timeout: settings.timeout,
            auth: tokio::sync::Mutex::new(None),
            generations: Default::default(),
            authorized: AtomicBool::new(false),
            last_used: AtomicU64::new(now_millis()),
            buckets: Mutex::default(),
            upload_targets: Mutex::default(),
            upload_retries: settings.upload_retries,
            retry_initial_delay: settings.retry_initial_delay,
            resume_window: settings.resume_window,
        }
    }

    fn touch(&self) {
        self.last_used.store(now_millis(), Ordering::Relaxed);
    }

    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    fn is_authorized(&self) -> bool {
        self.authorized.load(Ordering::Relaxed)
    }
}

/// A session as one operation uses it: with that operation's cancellation, logs and
/// retry bounds.
#[derive(Clone)]
pub struct B2Client {
    pub session: Arc<B2Session>,
    pub op: Arc<Operation>,
    pub calls: RetryPolicy,
    pub uploads: RetryPolicy,
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
        }
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
    /// looked up once per session: ids do not change.
    pub async fn bucket(&self, name: &str) -> Result<BucketInfo> {
        if let Some(b) = self
            .session
            .buckets
            .lock()
            .ok()
            .and_then(|m| m.get(name).cloned())
        {
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

/// One request whose answer is JSON, bounded by `timeout` in all (API answers are small).
/// Counted in `op`'s transactions unless it never reached B2.
pub async fn exchange_json<T: DeserializeOwned>(
    call: &str,
    req: reqwest::RequestBuilder,
    timeout: Duration,
    op: &Operation,
) -> std::result::Result<T, Failed> {
    let counted = AtomicBool::new(false);
    let count = || {
        if !counted.swap(true, Ordering::Relaxed) {
            op.count_call(call);
        }
    };
    let exchange = async {
        let sent = req.send().await;
        if sent.as_ref().map_or_else(|e| !e.is_connect(), |_| true) {
            count();
        }
        match sent {
            Ok(resp) if resp.status().is_success() => {
                read_json(call, resp).await.map_err(|e| match e {
                    // A success whose body was cut off: the call may simply be made again.
                    Error::Network(_) => Failed {
                        failure: Failure::Transient { retry_after: None },
                        error: e,
                    },
                    other => Failed::fatal(other),
                })
            }
            Ok(resp) => Err(failure_from_response(call, resp).await),
            Err(e) => Err(network_failure(call, &e)),
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => {
            // Perhaps still connecting, perhaps received: B2 may bill it.
            count();
            Err(timed_out(call, timeout))
        }
    }
}

pub fn timed_out(call: &str, timeout: Duration) -> Failed {
    let message = format!(
        "{call} made no progress for {} s; B2 or the network stalled",
        timeout.as_secs()
    );
    Failed::from(B2Failure::unanswered(call, message, true))
}

pub async fn read_json<T: DeserializeOwned>(call: &str, resp: reqwest::Response) -> Result<T> {
    let bytes = resp.bytes().await.map_err(|e| {
        Error::Network(format!(
            "the answer of B2 to {call} was cut off: {}",
            error_chain(&e)
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Remote {
        message: format!("B2 answered {call} with JSON this library does not understand: {e}"),
        retryable: false,
    })
}

/// Reads B2's `{status, code, message}` error answer; the table decides what it means.
pub async fn failure_from_response(call: &str, resp: reqwest::Response) -> Failed {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.bytes().await.unwrap_or_default();
    Failed::from(B2Failure::answered(
        call,
        status,
        &body,
        retry_after.as_deref(),
    ))
}

pub fn network_failure(call: &str, e: &reqwest::Error) -> Failed {
    let message = format!(
        "could not reach B2 for {call}: {}; check the server's network connection and the api_url",
        error_chain(e)
    );
    // A refused connect never reached B2; anything later may have.
    Failed::from(B2Failure::unanswered(call, message, !e.is_connect()))
}

/// An error with its causes, which carry the useful part (refused, reset, timed out).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(key: &str, authorized: bool, last_used: u64) -> (SessionKey, Arc<B2Session>) {
        let settings = B2Settings {
            api_url: "http://127.0.0.1:1".into(),
            account_id: "a".into(),
            application_key: ApplicationKey::new(key.into()),
            timeout: Duration::from_secs(60),
            upload_retries: 3,
            retry_initial_delay: Duration::from_millis(500),
            test_mode: None,
            resume_window: Duration::from_secs(24 * 3600),
        };
        let s = B2Session::new(reqwest::Client::new(), &settings);
        s.authorized.store(authorized, Ordering::Relaxed);
        s.last_used.store(last_used, Ordering::Relaxed);
        (SessionKey::of(&settings), Arc::new(s))
    }

    #[test]
    fn refused_idle_and_surplus_sessions_go_those_in_use_stay() {
        let minute = 60_000;
        let now = 100 * minute;
        let mut map = HashMap::new();
        let mut held = Vec::new();
        for (name, authorized, idle_minutes, in_use) in [
            ("fresh", true, 1, false),
            ("idle", true, 16, false),
            ("refused", false, 0, false),
            ("refused-in-use", false, 0, true),
            ("idle-in-use", true, 60, true),
        ] {
            let (k, s) = session(name, authorized, now - idle_minutes * minute);
            if in_use {
                held.push(s.clone());
            }
            map.insert(k, s);
        }
        drop_unneeded(&mut map, now);
        let mut kept: Vec<u64> = map.values().map(|s| s.last_used()).collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            vec![now - 60 * minute, now - minute, now],
            "fresh and in use"
        );

        // Beyond the cap, the least recently used go first.
        let mut map = HashMap::new();
        for i in 0..(MAX_IDLE_SESSIONS as u64 + 6) {
            let (k, s) = session(&format!("key-{i}"), true, now - minute + i);
            map.insert(k, s);
        }
        drop_unneeded(&mut map, now);
        assert_eq!(map.len(), MAX_IDLE_SESSIONS);
        assert!(map.values().all(|s| s.last_used() >= now - minute + 6));
        drop(held);
    }
}
