//! Application keys, account tokens and per-URL upload tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::error::{B2Error, B2Result};
use serde::{Deserialize, Serialize};

/// An application key: capabilities, and optionally one bucket (by name) and a name prefix.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeySpec {
    pub key_id: String,
    pub application_key: String,
    pub capabilities: Vec<String>,
    pub bucket: Option<String>,
    pub name_prefix: Option<String>,
}

/// Capabilities of the master key: only those an implemented call needs (B2's master
/// key has more, e.g. writeKeys and shareFiles, whose calls the emulator does not serve).
pub const MASTER_CAPABILITIES: &[&str] = &[
    "listBuckets",
    "writeBuckets",
    "deleteBuckets",
    "listFiles",
    "readFiles",
    "writeFiles",
    "deleteFiles",
    "readBucketEncryption",
    "writeBucketEncryption",
    "readBucketRetentions",
    "writeBucketRetentions",
    "readFileRetentions",
    "writeFileRetentions",
    "readFileLegalHolds",
    "writeFileLegalHolds",
    "bypassGovernance",
];

/// A key as the server sees it after authorization.
#[derive(Debug)]
pub struct Key {
    pub spec: KeySpec,
}

impl Key {
    pub fn has(&self, capability: &str) -> bool {
        self.spec.capabilities.iter().any(|c| c == capability)
    }

    pub fn require(&self, capability: &str) -> B2Result<()> {
        if self.has(capability) {
            Ok(())
        } else {
            Err(B2Error::unauthorized(format!(
                "application key lacks the {capability} capability"
            )))
        }
    }

    /// A key restricted to one bucket may touch only that bucket (by name).
    pub fn require_bucket(&self, bucket_name: &str) -> B2Result<()> {
        match &self.spec.bucket {
            Some(allowed) if allowed != bucket_name => Err(B2Error::unauthorized(format!(
                "application key is restricted to bucket {allowed}"
            ))),
            _ => Ok(()),
        }
    }

    /// A key restricted to a name prefix may touch only names under it.
    pub fn require_name(&self, file_name: &str) -> B2Result<()> {
        match &self.spec.name_prefix {
            Some(prefix) if !file_name.starts_with(prefix.as_str()) => Err(B2Error::unauthorized(
                format!("application key is restricted to names starting with {prefix:?}"),
            )),
            _ => Ok(()),
        }
    }

    /// A listing must ask for a prefix inside the key's own prefix.
    pub fn require_list_prefix(&self, list_prefix: &str) -> B2Result<()> {
        match &self.spec.name_prefix {
            Some(prefix) if !list_prefix.starts_with(prefix.as_str()) => {
                Err(B2Error::unauthorized(format!(
                    "application key is restricted to names starting with {prefix:?}: list with a prefix inside it"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// What an upload token lets its holder write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadTarget {
    /// b2_upload_file into this bucket id.
    Bucket(String),
    /// b2_upload_part for the unfinished large file with this sequence number.
    LargeFile(u64),
}

#[derive(Debug)]
pub struct UploadGrant {
    /// The random last segment of the upload URL this token belongs to.
    pub url_id: String,
    pub target: UploadTarget,
    pub key: Arc<Key>,
    expires: Instant,
    busy: AtomicBool,
}

/// Marks an upload grant as in use until dropped (also when a connection dies mid-body).
pub struct BusyGuard(Arc<UploadGrant>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

struct Session {
    key: Arc<Key>,
    expires: Instant,
}

pub struct Auth {
    account_id: String,
    lifetime: Duration,
    keys: Mutex<HashMap<String, Arc<Key>>>,
    sessions: Mutex<HashMap<String, Session>>,
    uploads: Mutex<HashMap<String, Arc<UploadGrant>>>,
    /// Tokens issued at or before this instant are expired (`expire_tokens`).
    expired_up_to: Mutex<Option<Instant>>,
}

/// Old tokens are forgotten only when the maps grow past this, so an expired token
/// keeps answering `expired_auth_token` rather than `bad_auth_token`.
const TOKEN_PRUNE_THRESHOLD: usize = 100_000;

impl Auth {
    pub fn new(account_id: &str, application_key: &str, lifetime: Duration) -> Auth {
        let master = KeySpec {
            key_id: account_id.to_owned(),
            application_key: application_key.to_owned(),
            capabilities: MASTER_CAPABILITIES.iter().map(|c| c.to_string()).collect(),
            bucket: None,
            name_prefix: None,
        };
        let auth = Auth {
            account_id: account_id.to_owned(),
            lifetime,
            keys: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            expired_up_to: Mutex::new(None),
        };
        auth.add_key(master);
        auth
    }

    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// Expires every account and upload token issued so far, as if their lifetime had
    /// passed: tests control token expiry instead of racing a short lifetime.
    pub fn expire_tokens(&self) {
        *self.expired_up_to.lock().unwrap() = Some(Instant::now());
    }

    fn is_expired(&self, expires: Instant) -> bool {
        let issued = expires - self.lifetime;
        Instant::now() >= expires
            || self
                .expired_up_to
                .lock()
                .unwrap()
                .is_some_and(|cutoff| issued <= cutoff)
    }

    pub fn add_key(&self, spec: KeySpec) {
        let id = spec.key_id.clone();
        self.keys.lock().unwrap().insert(id, Arc::new(Key { spec }));
    }

    /// Checks `Authorization: Basic base64(keyID:applicationKey)` and opens a session.
    pub fn authorize(&self, header: Option<&str>) -> B2Result<(String, Arc<Key>)> {
        let wrong =
            || B2Error::unauthorized("the applicationKeyId and/or the applicationKey are wrong");
        let header = header.ok_or_else(|| B2Error::unauthorized("missing Authorization header"))?;
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(|| B2Error::bad_request("Authorization must be HTTP Basic"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| B2Error::bad_request("Authorization: bad base64"))?;
        let decoded = String::from_utf8(decoded).map_err(|_| wrong())?;
        let (key_id, secret) = decoded.split_once(':').ok_or_else(wrong)?;
        let key = self
            .keys
            .lock()
            .unwrap()
            .get(key_id)
            .cloned()
            .ok_or_else(wrong)?;
        if key.spec.application_key != secret {
            return Err(wrong());
        }
        let token = new_token("4_acct");
        let mut sessions = self.sessions.lock().unwrap();
        prune(&mut sessions, |s| s.expires);
        sessions.insert(
            token.clone(),
            Session {
                key: key.clone(),
                expires: Instant::now() + self.lifetime,
            },
        );
        Ok((token, key))
    }

    /// The key behind an account token from an `Authorization` header.
    pub fn session(&self, header: Option<&str>) -> B2Result<Arc<Key>> {
        let token =
            header.ok_or_else(|| B2Error::bad_auth_token("missing Authorization header"))?;
        let sessions = self.sessions.lock().unwrap();
        let session = sessions
            .get(token.trim())
            .ok_or_else(|| B2Error::bad_auth_token("invalid account authorization token"))?;
        if self.is_expired(session.expires) {
            return Err(B2Error::expired_auth_token());
        }
        Ok(session.key.clone())
    }

    /// Issues a token valid only at the upload URL ending in the returned url id.
    pub fn issue_upload(&self, target: UploadTarget, key: Arc<Key>) -> (String, String) {
        let token = new_token("4_upld");
        let url_id = new_token("u");
        let grant = UploadGrant {
            url_id: url_id.clone(),
            target,
            key,
            expires: Instant::now() + self.lifetime,
            busy: AtomicBool::new(false),
        };
        let mut uploads = self.uploads.lock().unwrap();
        prune(&mut uploads, |g| g.expires);
        uploads.insert(token.clone(), Arc::new(grant));
        (token, url_id)
    }

    /// Checks an upload token against the URL it is used at.
    pub fn upload_grant(
        &self,
        header: Option<&str>,
        target: &UploadTarget,
        url_id: &str,
    ) -> B2Result<Arc<UploadGrant>> {
        let token =
            header.ok_or_else(|| B2Error::bad_auth_token("missing Authorization header"))?;
        let grant = self
            .uploads
            .lock()
            .unwrap()
            .get(token.trim())
            .cloned()
            .ok_or_else(|| B2Error::bad_auth_token("invalid upload authorization token"))?;
        if grant.url_id != url_id || &grant.target != target {
            return Err(B2Error::bad_auth_token(
                "this upload authorization token belongs to another upload URL",
            ));
        }
        if self.is_expired(grant.expires) {
            return Err(B2Error::expired_auth_token());
        }
        Ok(grant)
    }

    /// Claims the grant for one upload; a second concurrent upload with the same URL
    /// and token is refused (B2 allows one upload at a time per upload URL).
    pub fn claim(grant: &Arc<UploadGrant>) -> B2Result<BusyGuard> {
        if grant
            .busy
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(B2Error::bad_request(
                "upload URL is in use by another upload: one upload at a time per upload URL and token",
            ));
        }
        Ok(BusyGuard(grant.clone()))
    }
}

fn prune<V>(map: &mut HashMap<String, V>, expires: impl Fn(&V) -> Instant) {
    if map.len() < TOKEN_PRUNE_THRESHOLD {
        return;
    }
    let now = Instant::now();
    map.retain(|_, v| expires(v) > now);
}

fn new_token(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut token = String::with_capacity(prefix.len() + 41);
    token.push_str(prefix);
    token.push('_');
    for _ in 0..40 {
        token.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    token
}
