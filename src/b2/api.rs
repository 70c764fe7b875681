//! The JSON shapes of B2's native API (v4) that this client reads and sends.
//!
//! Read the way Backblaze's own SDK reads them (see `lenient`): only the fields an
//! operation cannot do without are required (an account's token and URLs, an upload URL
//! and its token, a bucket's id and name, a listing's `files`); every other field may be
//! null, absent or of another shape, and is read as not given. Enum values this library
//! does not know are kept as text. An entry of a listing is never dropped: what an
//! operation needs from it and does not find fails that entry only, naming it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::lenient;
use super::object_lock::{BucketLock, BucketLockValue, Readable, RetentionValue, VersionLock};

/// Holds the account token: no `Debug`, so it cannot be formatted into a message.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeResponse {
    pub account_id: String,
    pub authorization_token: String,
    pub api_info: ApiInfo,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ApiInfo {
    pub storage_api: StorageApi,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StorageApi {
    pub api_url: String,
    pub download_url: String,
    /// B2's advice; 100 MB when not given.
    #[serde(default = "default_recommended", deserialize_with = "recommended")]
    pub recommended_part_size: u64,
    /// 5 MB when not given.
    #[serde(default = "default_minimum", deserialize_with = "minimum")]
    pub absolute_minimum_part_size: u64,
    /// Not given: nothing is known of the key's restrictions, and B2 refuses what it may
    /// not do.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub allowed: Allowed,
}

fn default_recommended() -> u64 {
    100_000_000
}

fn default_minimum() -> u64 {
    5_000_000
}

fn recommended<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(lenient::opt(d)?.unwrap_or_else(default_recommended))
}

fn minimum<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(lenient::opt(d)?.unwrap_or_else(default_minimum))
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct Allowed {
    /// None: every bucket of the account.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub buckets: Option<Vec<AllowedBucket>>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub capabilities: Vec<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub name_prefix: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct AllowedBucket {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub name: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub bucket_id: String,
    pub bucket_name: String,
    /// `allPrivate`, `allPublic`, or another type B2 adds (kept as given); empty when not
    /// given.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub bucket_type: String,
    #[serde(default, deserialize_with = "lenient::list")]
    pub lifecycle_rules: Vec<LifecycleRule>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub default_server_side_encryption: Option<BucketEncryption>,
    /// Object Lock settings, readable with `readBucketRetentions`.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub file_lock_configuration: Option<Readable<BucketLockValue>>,
}

/// `defaultServerSideEncryption` of a bucket: the value only for a key with
/// `readBucketEncryption`.
pub type BucketEncryption = Readable<FileEncryption>;

/// `serverSideEncryption` of a file version or a bucket's default, as B2 shows it: mode
/// and algorithm only, each kept as given (`SSE-B2`, `SSE-C`, `none`, or a mode B2 adds).
#[derive(Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct FileEncryption {
    #[serde(default, deserialize_with = "lenient::opt")]
    pub mode: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub algorithm: Option<String>,
}

impl Bucket {
    /// The bucket's default encryption: `Some("SSE-B2")`, `Some("none")`, or None when the
    /// key may not read it.
    pub fn default_encryption(&self) -> Option<&str> {
        let setting = self.default_server_side_encryption.as_ref()?.readable()?;
        Some(
            setting
                .as_ref()
                .and_then(|v| v.mode.as_deref())
                .filter(|m| !m.is_empty())
                .unwrap_or("none"),
        )
    }

    pub fn lock(&self) -> BucketLock {
        let Some(value) = self
            .file_lock_configuration
            .as_ref()
            .and_then(|c| c.readable())
        else {
            return BucketLock::Unknown;
        };
        match value {
            // b2sdk reads a null `isFileLockEnabled` as not enabled, and so does its
            // simulator mean it.
            Some(v) if v.is_file_lock_enabled == Some(true) => BucketLock::On(
                v.default_retention
                    .as_ref()
                    .and_then(|d| Some((d.mode?, d.period.as_ref()?)))
                    .and_then(|(mode, p)| Some((mode, p.duration?, p.unit.clone()?))),
            ),
            _ => BucketLock::Off,
        }
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    /// Empty (the whole bucket) when null or absent.
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub file_name_prefix: String,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub days_from_hiding_to_deleting: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub days_from_uploading_to_hiding: Option<u64>,
}

#[derive(Deserialize, Debug)]
pub struct ListBucketsResponse {
    /// A bucket this library cannot read (no id or name) is left out: the lookup is by
    /// name, and one without a name cannot be the one asked for.
    #[serde(default, deserialize_with = "lenient::list")]
    pub buckets: Vec<Bucket>,
}

/// An upload URL (or part upload URL) with its own token (no `Debug`, as above).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadUrlResponse {
    pub upload_url: String,
    pub authorization_token: String,
}

/// What a version is: B2's `action` field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Action {
    /// A stored file.
    Upload,
    /// An unfinished large file.
    Start,
    /// A hide marker.
    Hide,
    /// A virtual folder of `b2_list_file_names` with a delimiter.
    Folder,
    /// None given (absent or null).
    #[default]
    Unknown,
    /// An action this library does not know, kept as B2 wrote it.
    Other(String),
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
        let text: Option<String> = lenient::opt(d)?;
        Ok(match text.as_deref() {
            Some("upload") => Action::Upload,
            Some("start") => Action::Start,
            Some("hide") => Action::Hide,
            Some("folder") => Action::Folder,
            None | Some("") => Action::Unknown,
            Some(other) => Action::Other(other.to_string()),
        })
    }
}

impl Action {
    /// As B2 wrote it.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Upload => "upload",
            Action::Start => "start",
            Action::Hide => "hide",
            Action::Folder => "folder",
            Action::Unknown => "",
            Action::Other(s) => s,
        }
    }
}

/// One entry of a listing, or B2's answer about one file.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct FileVersion {
    #[serde(default, deserialize_with = "lenient::opt")]
    pub file_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub file_name: String,
    #[serde(default)]
    pub action: Action,
    /// The length: `contentLength` (v2 and later), or v1's `size`; see `length()`.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub(super) content_length: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub(super) size: Option<u64>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub content_sha1: Option<String>,
    #[serde(default, deserialize_with = "lenient::strings")]
    pub file_info: BTreeMap<String, String>,
    /// ms since the epoch; None when B2 did not say.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub upload_timestamp: Option<u64>,
    /// How B2 encrypts it (`mode` SSE-B2 or SSE-C; absent or null: not encrypted).
    #[serde(default, deserialize_with = "lenient::opt")]
    pub server_side_encryption: Option<FileEncryption>,
    /// Object Lock, readable with `readFileRetentions` / `readFileLegalHolds`.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub file_retention: Option<Readable<RetentionValue>>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub legal_hold: Option<Readable<String>>,
}

impl FileVersion {
    /// A version with what a test or a probe needs.
    pub fn new(file_id: &str, file_name: &str, action: Action, length: u64) -> FileVersion {
        FileVersion {
            file_id: Some(file_id.to_string()),
            file_name: file_name.to_string(),
            action,
            content_length: Some(length),
            ..FileVersion::default()
        }
    }

    /// Its length in bytes, if B2 gave one (`contentLength`, else v1's `size`).
    pub fn length(&self) -> Option<u64> {
        self.content_length.or(self.size)
    }

    /// The length where a figure is summed; a version without one counts 0 and is named
    /// in a warning by the operation (see `unreadable`).
    pub fn bytes(&self) -> u64 {
        self.length().unwrap_or(0)
    }

    /// When B2 received it (ms since the epoch), 0 when not given.
    pub fn uploaded_ms(&self) -> u64 {
        self.upload_timestamp.unwrap_or(0)
    }

    /// A stored file: an `upload`, or an entry whose action is missing or unknown but which
    /// has an id and a length (B2's copies, or an action added after this library), which
    /// is counted, listed and deleted as one (the operation names it in a warning).
    pub fn is_stored(&self) -> bool {
        match self.action {
            Action::Upload => true,
            Action::Unknown | Action::Other(_) => self.file_id.is_some() && self.length().is_some(),
            _ => false,
        }
    }

    /// Why an operation may not trust this entry as B2 described it, naming it: an action
    /// it does not know, no file id, or no length. None for an ordinary entry.
    pub fn unreadable(&self) -> Option<String> {
        let name = if self.file_name.is_empty() {
            "an entry without a name".to_string()
        } else {
            self.file_name.clone()
        };
        let mut missing = Vec::new();
        if self.file_id.is_none() {
            missing.push("no fileId");
        }
        if matches!(
            self.action,
            Action::Upload | Action::Unknown | Action::Other(_)
        ) && self.length().is_none()
        {
            missing.push("no contentLength");
        }
        let action = match &self.action {
            Action::Unknown => Some("no action".to_string()),
            Action::Other(a) => Some(format!(
                "the action \"{a}\", which this library does not know"
            )),
            _ => None,
        };
        if missing.is_empty() && action.is_none() {
            return None;
        }
        let what: Vec<String> = action
            .into_iter()
            .chain(missing.into_iter().map(str::to_string))
            .collect();
        let taken = if self.is_stored() {
            "taken as a stored file"
        } else {
            "not usable"
        };
        Some(format!(
            "B2 listed {name} ({}) with {}: {taken}",
            self.id(),
            what.join(", ")
        ))
    }

    /// The version's retention and legal hold, as far as the key may read them.
    pub fn lock(&self) -> VersionLock {
        let retention = self
            .file_retention
            .as_ref()
            .and_then(|r| r.readable())
            .map(|v| v.as_ref().and_then(RetentionValue::retention));
        let legal_hold = self
            .legal_hold
            .as_ref()
            .and_then(|h| h.readable())
            .and_then(|v| v.as_deref().map(|s| s.eq_ignore_ascii_case("on")));
        VersionLock {
            retention,
            legal_hold,
        }
    }

    /// The SHA1 of the whole file, as B2 knows it: the content SHA1 of a simple upload, or
    /// `large_file_sha1` from the file info of a large file.
    pub fn whole_sha1(&self) -> Option<String> {
        let content = self
            .content_sha1
            .as_deref()
            .map(|s| s.strip_prefix("unverified:").unwrap_or(s));
        match content {
            Some(s) if s.len() == 40 => Some(s.to_ascii_lowercase()),
            _ => self
                .file_info
                .get("large_file_sha1")
                .filter(|s| s.len() == 40)
                .map(|s| s.to_ascii_lowercase()),
        }
    }

    /// The SHA1 B2 computed from the bytes it received: `contentSha1` when it is one (not
    /// `none`, not `unverified:`). `large_file_sha1` is written by whoever uploaded the
    /// file and B2 never checks it, so it is not one.
    pub fn sha1_by_b2(&self) -> Option<String> {
        self.content_sha1
            .as_deref()
            .filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
    }

    pub fn id(&self) -> &str {
        self.file_id.as_deref().unwrap_or("")
    }

    pub fn modified_ms(&self) -> u64 {
        self.file_info
            .get("src_last_modified_millis")
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.uploaded_ms())
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ListFilesResponse {
    /// Every entry is kept: one that is not even an object becomes an entry with nothing
    /// in it, which the operation reports as unreadable.
    #[serde(deserialize_with = "every_entry")]
    pub files: Vec<FileVersion>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub next_file_name: Option<String>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub next_file_id: Option<String>,
}

fn every_entry<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<FileVersion>, D::Error> {
    let entries: Vec<serde_json::Value> = Vec::deserialize(d)?;
    Ok(entries
        .into_iter()
        .map(|e| serde_json::from_value(e).unwrap_or_default())
        .collect())
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub part_number: u32,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub content_length: u64,
    /// None when B2 did not say: such a part is never taken as matching a local one.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub content_sha1: Option<String>,
    /// When B2 received the part (ms): how an upload in progress elsewhere shows it is
    /// alive; None when B2 did not say.
    #[serde(default, deserialize_with = "lenient::opt")]
    pub upload_timestamp: Option<u64>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ListPartsResponse {
    #[serde(deserialize_with = "lenient::list")]
    pub parts: Vec<Part>,
    #[serde(default, deserialize_with = "lenient::opt")]
    pub next_part_number: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
pub struct ErrorBody {
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub code: String,
    #[serde(default, deserialize_with = "lenient::or_default")]
    pub message: String,
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
