//! One B2 session per destination credentials, kept while in use or recently used: the
//! account authorization, pooled connections, upload URLs and bucket facts, shared by every
//! call and thread. `B2Client` (client.rs) is a session seen by one operation.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::api::{Allowed, Bucket, UploadUrlResponse};
use super::settings::{ApplicationKey, B2Settings};
use super::throttle::{Throttle, ThrottleRegistry};
use super::tls::ExtraRoots;
use crate::error::{Error, Result};

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
    pub(super) obtained: Instant,
    pub(super) generation: u64,
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
    /// The extra roots' digest: a session trusts what its HTTP client trusts.
    extra_roots: Option<[u8; 20]>,
}

/// What one bandwidth limit covers: one bucket of one account's key. Not the session's
/// key, which also holds the request timeout and test mode: two configurations of one
/// destination differing only in those must not get a limit each.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ThrottleKey {
    api_url: String,
    account_id: String,
    key_digest: [u8; 20],
    bucket: String,
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

/// All sessions of this process, and the HTTP clients (connection pools) they share: one
/// for the system's roots, one more for each set of extra roots (`ca_file`), since what a
/// pooled connection was checked against must be what its next user trusts. It lives in
/// the process state, so a forked child builds its own.
#[derive(Default)]
pub struct SessionRegistry {
    http: Mutex<HashMap<Option<[u8; 20]>, reqwest::Client>>,
    sessions: Mutex<HashMap<SessionKey, Arc<B2Session>>>,
    /// Bandwidth limits, by account key and bucket (and by the limit).
    throttles: ThrottleRegistry<ThrottleKey>,
}

impl SessionKey {
    fn of(settings: &B2Settings) -> SessionKey {
        SessionKey {
            api_url: settings.api_url.clone(),
            account_id: settings.account_id.clone(),
            key_digest: Sha1::digest(settings.application_key.expose().as_bytes()).into(),
            timeout_secs: settings.timeout.as_secs(),
            test_mode: settings.test_mode.clone(),
            extra_roots: settings.extra_roots.as_ref().map(|r| r.digest),
        }
    }
}

impl SessionRegistry {
    /// The bandwidth limit every transfer to `bucket` under these credentials shares, while
    /// any holds it.
    pub fn throttle_for(&self, settings: &B2Settings, bucket: &str) -> Option<Arc<Throttle>> {
        let session = SessionKey::of(settings);
        let key = ThrottleKey {
            api_url: session.api_url,
            account_id: session.account_id,
            key_digest: session.key_digest,
            bucket: bucket.to_string(),
        };
        self.throttles.get(key, settings.bandwidth_limit)
    }

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
        let http = self.http(settings.extra_roots.as_deref())?;
        let session = Arc::new(B2Session::new(http, settings));
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

    /// The shared client for these roots, built on first use (with the registry's lock held).
    fn http(&self, extra_roots: Option<&ExtraRoots>) -> Result<reqwest::Client> {
        let mut clients = self
            .http
            .lock()
            .map_err(|_| Error::Internal("HTTP client lock poisoned".into()))?;
        let key = extra_roots.map(|r| r.digest);
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let mut builder = reqwest::Client::builder();
        for cert in extra_roots.map_or(&[][..], |r| &r.certs[..]) {
            // Added to the system's roots, not instead of them.
            let cert = reqwest::Certificate::from_der(cert.as_ref())
                .map_err(|e| Error::Internal(format!("a ca_file certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .tcp_keepalive(Duration::from_secs(30))
            // B2 never redirects; a redirect followed would carry every header of the
            // request (the SSE-C key) to whatever host it names. retry.rs says why it failed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("could not build the HTTPS client: {e}")))?;
        clients.insert(key, client.clone());
        Ok(client)
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
    pub(super) http: reqwest::Client,
    pub(super) api_url: String,
    pub(super) account_id: String,
    pub(super) application_key: ApplicationKey,
    pub(super) test_mode: Option<String>,
    pub timeout: Duration,
    pub(super) auth: tokio::sync::Mutex<Option<Arc<Authorization>>>,
    pub(super) generations: AtomicU64,
    /// Whether the last authorization attempt succeeded: a session whose key was refused
    /// is not kept.
    pub(super) authorized: AtomicBool,
    /// `now_millis()` of the last call made through this session.
    pub(super) last_used: AtomicU64,
    pub(super) buckets: Mutex<HashMap<String, BucketInfo>>,
    /// Held while a bucket is looked up, so that threads starting together make one
    /// `b2_list_buckets`, not one each.
    pub(super) bucket_lookup: tokio::sync::Mutex<()>,
    pub(super) upload_targets: Mutex<HashMap<String, Vec<UploadTarget>>>,
    pub(super) upload_retries: u32,
    pub(super) retry_initial_delay: Duration,
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
            bucket_lookup: tokio::sync::Mutex::new(()),
            upload_targets: Mutex::default(),
            upload_retries: settings.upload_retries,
            retry_initial_delay: settings.retry_initial_delay,
            resume_window: settings.resume_window,
        }
    }

    pub(super) fn touch(&self) {
        self.last_used.store(now_millis(), Ordering::Relaxed);
    }

    fn last_used(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    fn is_authorized(&self) -> bool {
        self.authorized.load(Ordering::Relaxed)
    }
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
            encryption: Default::default(),
            bandwidth_limit: None,
            object_lock: None,
            extra_roots: None,
        };
        let s = B2Session::new(reqwest::Client::new(), &settings);
        s.authorized.store(authorized, Ordering::Relaxed);
        s.last_used.store(last_used, Ordering::Relaxed);
        (SessionKey::of(&settings), Arc::new(s))
    }

    #[test]
    fn one_limit_per_key_and_bucket_whatever_the_timeout() {
        let registry = SessionRegistry::default();
        let (_, s) = session("k", true, 0);
        let mut settings = B2Settings {
            api_url: s.api_url.clone(),
            account_id: s.account_id.clone(),
            application_key: s.application_key.clone(),
            timeout: Duration::from_secs(60),
            upload_retries: 3,
            retry_initial_delay: Duration::from_millis(500),
            test_mode: None,
            resume_window: Duration::from_secs(3600),
            encryption: Default::default(),
            bandwidth_limit: Some(100_000),
            object_lock: None,
            extra_roots: None,
        };
        let a = registry.throttle_for(&settings, "bucket").unwrap();
        settings.timeout = Duration::from_secs(5);
        settings.test_mode = Some("fail_some_uploads".into());
        let same = registry.throttle_for(&settings, "bucket").unwrap();
        assert!(
            Arc::ptr_eq(&a, &same),
            "timeout and test mode are not the destination"
        );
        let other_bucket = registry.throttle_for(&settings, "another").unwrap();
        assert!(
            !Arc::ptr_eq(&a, &other_bucket),
            "another bucket, another limit"
        );
        settings.application_key = ApplicationKey::new("other".into());
        let other_key = registry.throttle_for(&settings, "bucket").unwrap();
        assert!(!Arc::ptr_eq(&a, &other_key));
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
