//! The JSON shapes of B2's native API (v4) that this client reads and sends.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::encryption::FileEncryption;
use super::lock::{BucketLock, BucketLockValue, Readable, Retention, RetentionValue, VersionLock};

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
    pub recommended_part_size: u64,
    pub absolute_minimum_part_size: u64,
    pub allowed: Allowed,
}

#[derive(Deserialize, Debug, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct Allowed {
    #[serde(default)]
    pub buckets: Option<Vec<AllowedBucket>>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub name_prefix: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
pub struct AllowedBucket {
    pub id: String,
    pub name: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub bucket_id: String,
    pub bucket_name: String,
    #[serde(default)]
    pub bucket_type: String,
    #[serde(default)]
    pub lifecycle_rules: Vec<LifecycleRule>,
    #[serde(default)]
    pub default_server_side_encryption: Option<BucketEncryption>,
    /// Object Lock settings, readable with `readBucketRetentions`.
    #[serde(default)]
    pub file_lock_configuration: Option<Readable<BucketLockValue>>,
}

/// `defaultServerSideEncryption` of a bucket: the value only for a key with
/// `readBucketEncryption`.
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct BucketEncryption {
    #[serde(default)]
    pub is_client_authorized_to_read: bool,
    #[serde(default)]
    pub value: Option<FileEncryption>,
}

impl Bucket {
    /// The bucket's default encryption: `Some("SSE-B2")`, `Some("none")`, or None when the
    /// key may not read it.
    pub fn default_encryption(&self) -> Option<&str> {
        let setting = self.default_server_side_encryption.as_ref()?;
        if !setting.is_client_authorized_to_read {
            return None;
        }
        Some(
            setting
                .value
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
            Some(v) if v.is_file_lock_enabled => BucketLock::On(
                v.default_retention
                    .as_ref()
                    .and_then(|d| Some((d.mode?, d.period.as_ref()?)))
                    .map(|(mode, p)| (mode, p.duration, p.unit.clone())),
            ),
            _ => BucketLock::Off,
        }
    }
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleRule {
    #[serde(default)]
    pub file_name_prefix: String,
    pub days_from_hiding_to_deleting: Option<u64>,
    pub days_from_uploading_to_hiding: Option<u64>,
}

#[derive(Deserialize, Debug)]
pub struct ListBucketsResponse {
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
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A stored file.
    Upload,
    /// An unfinished large file.
    Start,
    /// A hide marker.
    Hide,
    /// A virtual folder of `b2_list_file_names` with a delimiter.
    Folder,
    /// Missing, or an action this library does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct FileVersion {
    pub file_id: Option<String>,
    pub file_name: String,
    #[serde(default)]
    pub action: Action,
    #[serde(default)]
    pub content_length: u64,
    #[serde(default)]
    pub content_sha1: Option<String>,
    #[serde(default)]
    pub file_info: BTreeMap<String, String>,
    #[serde(default)]
    pub upload_timestamp: u64,
    /// How B2 encrypts it (`mode` SSE-B2 or SSE-C; absent or null: not encrypted).
    #[serde(default)]
    pub server_side_encryption: Option<FileEncryption>,
    /// Object Lock, readable with `readFileRetentions` / `readFileLegalHolds`.
    #[serde(default)]
    pub file_retention: Option<Readable<RetentionValue>>,
    #[serde(default)]
    pub legal_hold: Option<Readable<String>>,
}

impl FileVersion {
    /// The version's retention and legal hold, as far as the key may read them.
    pub fn lock(&self) -> VersionLock {
        let retention = self
            .file_retention
            .as_ref()
            .and_then(|r| r.readable())
            .map(|v| {
                v.and_then(|v| {
                    Some(Retention {
                        mode: v.mode?,
                        retain_until_timestamp: v.retain_until_timestamp?,
                    })
                })
            });
        let legal_hold = self
            .legal_hold
            .as_ref()
            .and_then(|h| h.readable())
            .and_then(|v| v.as_deref().map(|s| s == "on"));
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

    pub fn id(&self) -> &str {
        self.file_id.as_deref().unwrap_or("")
    }

    pub fn modified_ms(&self) -> u64 {
        self.file_info
            .get("src_last_modified_millis")
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.upload_timestamp)
    }
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ListFilesResponse {
    pub files: Vec<FileVersion>,
    pub next_file_name: Option<String>,
    #[serde(default)]
    pub next_file_id: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub part_number: u32,
    pub content_length: u64,
    pub content_sha1: String,
    /// When B2 received the part (ms): how an upload in progress elsewhere shows it is alive.
    #[serde(default)]
    pub upload_timestamp: u64,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ListPartsResponse {
    pub parts: Vec<Part>,
    pub next_part_number: Option<u32>,
}

#[derive(Deserialize, Debug, Default)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}
